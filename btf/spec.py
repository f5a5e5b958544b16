"""``btf.Spec``: a parsed BTF blob, decoded lazily.

Opening a spec reads the header and makes one pass over the type section that records
each record's offset, name offset and kind (``struct.unpack_from`` on the raw bytes, no
objects made). A type is decoded on first use and cached. A name lookup finds the name's
offsets in the string table, then those offsets in the packed array of name offsets,
both with ``bytes.find``. This is what makes opening the kernel's ~126k types and finding
``task_struct`` cost tens of milliseconds.

Thread-safety: a ``Spec`` is logically immutable. Its caches are filled idempotently
(two threads decoding the same type get equal objects; list and dict stores are atomic),
so one spec may be shared by many threads.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterator, Mapping, Sequence

from btf.errors import BTFError
from btf.kinds import Kind
from btf.strings import StringTable
from btf.types import Type, Void
from btf.wire import (
    HEADER_SIZE,
    MAX_KIND,
    RECORD_FIXED,
    RECORD_PER_VLEN,
    ByteOrder,
    RecordDecoder,
    byte_order_prefix,
    parse_header,
)

_NATIVE_U32 = struct.Struct("=I")
_DECODERS = {"little": RecordDecoder("little"), "big": RecordDecoder("big")}


class Spec:
    """The types of one BTF blob (plus its base's types, for split BTF).

    IDs run from 0 (``Void``) to ``len(spec) - 1``; for split BTF the base's IDs come
    first. Build one with :func:`load_spec`, :func:`btf.load_kernel_spec` or
    :meth:`Spec.from_types`.
    """

    def __init__(
        self,
        types_data: bytes,
        strings: StringTable,
        byte_order: ByteOrder,
        base: Spec | None = None,
        *,
        _index: tuple[array[int], array[int], bytes] | None = None,
    ):
        self._data = bytes(types_data)
        self.strings = strings
        self.byte_order: ByteOrder = byte_order
        self.base = base
        self._first_id = len(base) if base is not None else 1
        # A given index comes from a spec whose names were checked against a string table of
        # this length (copy, with_datasec_layout): only a new index is checked here.
        check_names = _index is None
        if _index is None:
            _index = _build_index(self._data, self._first_id, byte_order)
        self._offsets, self._name_offs, self._kinds = _index
        self._name_offs_raw = self._name_offs.tobytes()
        self._decoder = _DECODERS[byte_order]
        self._len = self._first_id + len(self._offsets)
        #: Number of type IDs (``len(self)``), as a plain attribute for the decoder's hot path.
        self.type_count = self._len
        self._cache: list[Type | None] = [None] * len(self._offsets)
        self._void = Void(spec=self)
        if check_names and self._name_offs and max(self._name_offs) >= len(strings):
            bad = next(i for i, off in enumerate(self._name_offs) if off >= len(strings))
            raise BTFError(
                f"name offset {self._name_offs[bad]} is outside the string table "
                f"({len(strings)} bytes)",
                type_id=self._first_id + bad,
                offset=self._offsets[bad],
            )

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_types(
        cls, types: Sequence[Type], *, byte_order: ByteOrder = "little", base: Spec | None = None
    ) -> Spec:
        """A spec holding ``types``, which must be numbered consecutively after the base (or 1).

        The types are marshaled and parsed back, so the result is checked exactly as
        parsed BTF is, and its types belong to it.
        """
        from btf.marshal import marshal_types

        first = len(base) if base is not None else 1
        for i, t in enumerate(types):
            if t.id != first + i:
                raise BTFError(f"types must be numbered from {first}; got {t.id} at position {i}")
        raw = marshal_types(types, byte_order=byte_order, base=base)
        return load_spec(raw, base=base)

    def with_datasec_layout(self, layout: Mapping[int, tuple[int, Sequence[int]]]) -> Spec:
        """A spec whose ``DATASEC`` records get new sizes and variable offsets.

        ``layout`` maps the ID of each DATASEC to change (one of this spec's own types) to
        ``(size, offsets)``: the section's size and each variable's offset, one per
        ``VarSecinfo`` in order. Everything else is as in this spec.

        clang leaves every DATASEC with size 0 and offsets 0; a loader fills them in from the
        ELF object (what :func:`ebpfspec.load_collection_spec` does). Those fields do not
        change any record's length, so the new spec is this one's raw type section with just
        those words patched: it shares this spec's string table and record index (both
        immutable) instead of marshaling every type and parsing them back. Its types are
        decoded lazily, as always, and belong to it.

        Raises :class:`BTFError` if an ID is not one of this spec's own DATASECs, the number of
        offsets is not its number of variables, or a value does not fit in a u32.
        """
        data = bytearray(self._data)
        u32 = struct.Struct(byte_order_prefix(self.byte_order) + "I")
        for type_id, (size, offsets) in layout.items():
            local = type_id - self._first_id
            if not 0 <= local < len(self._offsets):
                raise BTFError(f"type ID {type_id} is not one of this spec's own types")
            if self._kinds[local] != Kind.DATASEC:
                raise BTFError(f"is {Kind(self._kinds[local])}, not DATASEC", type_id=type_id)
            pos = self._offsets[local]
            (info,) = u32.unpack_from(data, pos + 4)
            vlen = info & 0xFFFF
            if len(offsets) != vlen:
                raise BTFError(f"{len(offsets)} offsets given for a DATASEC of {vlen} variables",
                               type_id=type_id)
            for value in (size, *offsets):
                if not 0 <= value <= 0xFFFFFFFF:
                    raise BTFError(f"DATASEC size or offset {value} does not fit in a u32", type_id=type_id)
            u32.pack_into(data, pos + 8, size)
            for i, offset in enumerate(offsets):
                u32.pack_into(data, pos + 16 + 12 * i, offset)  # VarSecinfo: type, offset, size
        index = (self._offsets, self._name_offs, self._kinds)
        return Spec(bytes(data), self.strings, self.byte_order, self.base, _index=index)

    def copy(self) -> Spec:
        """An independent spec with the same types: it shares no mutable state with this one."""
        base = self.base.copy() if self.base is not None else None
        index = (array("I", self._offsets), array("I", self._name_offs), self._kinds)
        return Spec(self._data, self.strings.copy(), self.byte_order, base, _index=index)

    # -- lookups ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Type]:
        if self.base is not None:
            yield from self.base
        else:
            yield self._void
        yield from self.own_types()

    def own_types(self) -> Iterator[Type]:
        """This spec's types without its base's (for split BTF), in ID order; no ``Void``."""
        if None in self._cache:
            self._decode_all()
        yield from self._cache  # type: ignore[misc]  # no None left

    def type_by_id(self, type_id: int) -> Type:
        """The type with ID ``type_id``; ``BTFError`` if there is none."""
        local = type_id - self._first_id
        if local >= 0:
            if local >= len(self._cache):
                raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")
            return self._cache[local] or self._decode(local)
        if self.base is not None:
            return self.base.type_by_id(type_id)
        if type_id == 0:
            return self._void
        raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")

    def name_of(self, type_id: int) -> str:
        """The name of type ``type_id``, without decoding it ("" if anonymous)."""
        local = type_id - self._first_id
        if local >= 0:
            if local >= len(self._name_offs):
                raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")
            offset = self._name_offs[local]
            return (self.strings.cached(offset) or self.strings.lookup(offset)) if offset else ""
        if self.base is not None:
            return self.base.name_of(type_id)
        if type_id == 0:
            return ""
        raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")

    def kind_of(self, type_id: int) -> Kind:
        """The kind of type ``type_id``, without decoding it."""
        local = type_id - self._first_id
        if local >= 0:
            if local >= len(self._kinds):
                raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")
            return Kind(self._kinds[local])
        if self.base is not None:
            return self.base.kind_of(type_id)
        if type_id == 0:
            return Kind.UNKNOWN
        raise BTFError(f"type ID {type_id} is out of range (spec has {self._len} types)")

    def types_by_name(self, name: str, kind: Kind | None = None) -> tuple[Type, ...]:
        """Every type called ``name`` (of ``kind``, if given), in ID order."""
        found: list[Type] = []
        if self.base is not None:
            found.extend(self.base.types_by_name(name, kind))
        if not name:
            return tuple(found)
        locals_: list[int] = []
        for offset in self.strings.offsets_of(name):
            locals_.extend(self._types_named_at(offset))
        for local in sorted(locals_):
            if kind is None or self._kinds[local] == kind:
                found.append(self._cache[local] or self._decode(local))
        return tuple(found)

    def types_by_kind(self, kind: Kind) -> tuple[Type, ...]:
        """Every type of ``kind``, in ID order (the base's first), decoding only those."""
        found: list[Type] = []
        if self.base is not None:
            found.extend(self.base.types_by_kind(kind))
        elif kind == Kind.UNKNOWN:
            found.append(self._void)
        kinds, needle = self._kinds, bytes((kind,))
        local = kinds.find(needle)
        while local >= 0:
            found.append(self._cache[local] or self._decode(local))
            local = kinds.find(needle, local + 1)
        return tuple(found)

    def type_by_name(self, name: str, kind: Kind | None = None) -> Type:
        """The one type called ``name`` (of ``kind``); ``BTFError`` if none or several."""
        found = self.types_by_name(name, kind)
        what = f"{kind} '{name}'" if kind is not None else f"'{name}'"
        if not found:
            raise BTFError(f"no type {what}")
        if len(found) > 1:
            raise BTFError(f"{len(found)} types are called {what}: {[t.id for t in found]}")
        return found[0]

    def type_id(self, t: Type) -> int:
        """The ID of ``t`` in this spec; ``BTFError`` if ``t`` is not one of its types."""
        if 0 <= t.id < self._len and self.type_by_id(t.id) == t:
            return t.id
        raise BTFError(f"{t} is not a type of this spec")

    def check_ref(self, ref: int, type_id: int, offset: int) -> None:
        """Raise ``BTFError`` if a record of ``type_id`` refers to an ID that does not exist."""
        if ref >= self._len:
            raise BTFError(
                f"refers to type ID {ref}, beyond the last type ({self._len - 1})",
                type_id=type_id,
                offset=offset,
            )

    # -- marshaling ---------------------------------------------------------------------

    def to_bytes(self, *, byte_order: ByteOrder | None = None) -> bytes:
        """This spec's own types in wire format (split BTF stays split on the same base)."""
        from btf.marshal import marshal_types

        return marshal_types(
            list(self.own_types()), byte_order=byte_order or self.byte_order, base=self.base
        )

    # -- comparison -----------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        if len(self) != len(other) or self.base != other.base:
            return False
        return all(a == b for a, b in zip(self.own_types(), other.own_types(), strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        split = f", base of {len(self.base)} types" if self.base is not None else ""
        return f"<btf.Spec {self._len} types, {self.byte_order}-endian{split}>"

    # -- internals ----------------------------------------------------------------------

    def _decode_all(self) -> None:
        self.strings.preload()
        decoded = self._decoder.decode_all(self, self._first_id, self._data, self._offsets)
        for local, t in enumerate(decoded):
            if self._cache[local] is None:  # keep objects other threads already handed out
                self._cache[local] = t

    def _decode(self, local: int) -> Type:
        t = self._decoder.decode(self, self._first_id + local, self._data, self._offsets[local])
        self._cache[local] = t
        return t

    def _types_named_at(self, name_off: int) -> Iterator[int]:
        """Local indices of the types whose name is at ``name_off``.

        Searches the packed name-offset array for the 4-byte value at C speed (a hit
        must fall on a 4-byte boundary); no per-spec index has to be built first.
        """
        raw = self._name_offs_raw
        needle = _NATIVE_U32.pack(name_off)
        pos = raw.find(needle)
        while pos >= 0:
            if pos % 4 == 0:
                yield pos // 4
                pos = raw.find(needle, pos + 4)
            else:
                pos = raw.find(needle, pos + 1)


def _build_index(data: bytes, first_id: int, byte_order: ByteOrder) -> tuple[array[int], array[int], bytes]:
    """One pass over the type section: each record's offset, name offset and kind."""
    unpack = _DECODERS[byte_order].head.unpack_from
    fixed, per_vlen = RECORD_FIXED, RECORD_PER_VLEN
    offsets: array[int] = array("I")
    names: array[int] = array("I")
    kinds = bytearray()
    add_offset, add_name, add_kind = offsets.append, names.append, kinds.append
    end = len(data)
    pos = 0
    while pos < end:
        if pos + 12 > end:
            raise BTFError(
                f"truncated type record ({end - pos} bytes left, 12 needed)",
                type_id=first_id + len(offsets),
                offset=pos,
            )
        name_off, info, _ = unpack(data, pos)
        kind = (info >> 24) & 0x1F
        if kind == 0 or kind > MAX_KIND:
            raise BTFError(f"unknown kind {kind}", type_id=first_id + len(offsets), offset=pos)
        add_offset(pos)
        add_name(name_off)
        add_kind(kind)
        pos += 12 + fixed[kind] + (info & 0xFFFF) * per_vlen[kind]
    if pos != end:
        raise BTFError(
            f"last record runs {pos - end} bytes past the end of the type section",
            type_id=first_id + len(offsets) - 1,
            offset=offsets[-1],
        )
    return offsets, names, bytes(kinds)


def load_spec(source: bytes | bytearray | memoryview | str | os.PathLike[str],
              *, base: Spec | None = None) -> Spec:
    """Parse raw BTF (``.BTF`` section contents, or a path to a raw BTF file).

    ``base`` is the spec that split BTF (kernel module BTF) builds on. For the BTF
    inside an ELF object use :func:`ebpfspec.load_collection_spec`.
    Raises :class:`BTFError` for anything malformed.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data = f.read()
    else:
        data = bytes(source)
    header = parse_header(data)
    if base is not None and base.byte_order != header.byte_order:
        raise BTFError(f"split BTF is {header.byte_order}-endian but its base is {base.byte_order}-endian")
    body = header.hdr_len
    types_data = data[body + header.type_off : body + header.type_off + header.type_len]
    strings_data = data[body + header.str_off : body + header.str_off + header.str_len]
    base_strings = base.strings if base is not None else None
    try:
        strings = StringTable(strings_data, base_strings)
    except BTFError as err:
        raise BTFError(f"string section: {err}", offset=body + header.str_off) from None
    return Spec(types_data, strings, header.byte_order, base)


__all__ = ["HEADER_SIZE", "Spec", "load_spec"]
