"""Marshaling types back to the ``.BTF`` wire format."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from btf.errors import BTFError
from btf.kinds import Kind
from btf.strings import StringTableBuilder
from btf.types import (
    Array,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Struct,
    Type,
    TypeTag,
    Union,
    Var,
    Void,
)
from btf.wire import HEADER_SIZE, MAGIC, MAX_VLEN, VERSION, ByteOrder, byte_order_prefix

if TYPE_CHECKING:
    from btf.spec import Spec


def marshal_types(
    types: Sequence[Type], *, byte_order: ByteOrder = "little", base: Spec | None = None
) -> bytes:
    """Encode ``types`` (IDs consecutive from 1, or after ``base``) as a raw BTF blob."""
    return marshal_with_strings(types, (), byte_order=byte_order, base=base)[0]


def marshal_with_strings(
    types: Sequence[Type], extra_strings: Iterable[str], *, byte_order: ByteOrder = "little",
    base: Spec | None = None,
) -> tuple[bytes, dict[str, int]]:
    """Like :func:`marshal_types`, with ``extra_strings`` added to the string table.

    Returns the blob and each extra string's offset in it: what ``.BTF.ext`` line info
    (file names, source lines) must refer to when a program is loaded with this BTF.
    """
    e = byte_order_prefix(byte_order)
    strings = StringTableBuilder(first=len(base.strings) if base is not None else 0)
    encoder = _RecordEncoder(e, strings)
    body = b"".join(encoder.encode(t) for t in types)
    offsets = {text: strings.add(text) for text in extra_strings}
    string_data = strings.to_bytes()
    header = struct.pack(
        e + "HBBIIIII", MAGIC, VERSION, 0, HEADER_SIZE, 0, len(body), len(body), len(string_data)
    )
    return header + body + string_data, offsets


def marshal_subset(
    roots: Iterable[Type], *, byte_order: ByteOrder | None = None
) -> tuple[bytes, dict[int, int]]:
    """Encode ``roots`` and every type they reach, renumbered from 1, as a raw BTF blob.

    Returns the blob and the map from each original type ID to its new ID (``0 -> 0``).
    All roots must belong to one spec. This is what a map's key/value types need when
    they are loaded into the kernel on their own.
    """
    roots = list(roots)
    spec = _common_spec(roots)
    order: list[int] = []
    seen = {0}
    stack = [t.id for t in reversed(roots)]
    while stack:
        tid = stack.pop()
        if tid in seen:
            continue
        seen.add(tid)
        order.append(tid)
        stack.extend(reversed(spec.type_by_id(tid).refs()))
    new_ids = {0: 0}
    for new, old in enumerate(order, start=1):
        new_ids[old] = new
    renumbered = [
        spec.type_by_id(old).with_refs(new_ids.__getitem__, new_id=new_ids[old]) for old in order
    ]
    return marshal_types(renumbered, byte_order=byte_order or spec.byte_order), new_ids


def _common_spec(types: list[Type]) -> Spec:
    specs = {id(t.spec): t.spec for t in types if not isinstance(t, Void)}
    if len(specs) != 1 or None in specs.values():
        raise BTFError("types to marshal must all belong to one btf.Spec")
    (spec,) = specs.values()
    assert spec is not None
    return spec


class _RecordEncoder:
    def __init__(self, e: str, strings: StringTableBuilder):
        self._head = struct.Struct(e + "III")
        self._u32 = struct.Struct(e + "I")
        self._i32 = struct.Struct(e + "i")
        self._pair = struct.Struct(e + "II")
        self._triple = struct.Struct(e + "III")
        self._strings = strings

    def _header(self, t: Type, vlen: int, kind_flag: bool, size_or_type: int) -> bytes:
        if vlen > MAX_VLEN:
            raise BTFError(f"{t} has {vlen} entries, more than BTF allows ({MAX_VLEN})")
        info = t.kind << 24 | vlen | (int(kind_flag) << 31)
        return self._head.pack(self._strings.add(t.name), info, size_or_type)

    def encode(self, t: Type) -> bytes:
        name = self._strings.add
        if isinstance(t, Int):
            extra = int(t.encoding) << 24 | t.bit_offset << 16 | t.bits
            return self._header(t, 0, False, t.size) + self._u32.pack(extra)
        if isinstance(t, Array):
            return self._header(t, 0, False, 0) + self._triple.pack(
                t.type_id, t.index_type_id, t.nelems
            )
        if isinstance(t, (Struct, Union)):
            bitfields = any(m.bitfield_size for m in t.members)
            parts = [self._header(t, len(t.members), bitfields, t.size)]
            for m in t.members:
                offset = m.offset
                if bitfields:
                    if offset >= 1 << 24 or m.bitfield_size >= 1 << 8:
                        raise BTFError(f"member '{m.name}' of {t} does not fit a bitfield record")
                    offset |= m.bitfield_size << 24
                parts.append(self._triple.pack(name(m.name), m.type_id, offset))
            return b"".join(parts)
        if isinstance(t, Enum):
            parts = [self._header(t, len(t.values), t.signed, t.size)]
            parts.extend(self._pair.pack(name(v.name), v.value & 0xFFFFFFFF) for v in t.values)
            return b"".join(parts)
        if isinstance(t, Enum64):
            parts = [self._header(t, len(t.values), t.signed, t.size)]
            for v in t.values:
                raw = v.value & 0xFFFFFFFFFFFFFFFF
                parts.append(self._triple.pack(name(v.name), raw & 0xFFFFFFFF, raw >> 32))
            return b"".join(parts)
        if isinstance(t, Fwd):
            return self._header(t, 0, t.union, 0)
        if isinstance(t, Func):
            return self._header(t, int(t.linkage), False, t.type_id)
        if isinstance(t, TypeTag):
            return self._header(t, 0, t.attribute, t.type_id)
        if isinstance(t, DeclTag):
            return self._header(t, 0, t.attribute, t.type_id) + self._i32.pack(t.component_idx)
        if isinstance(t, Var):
            return self._header(t, 0, False, t.type_id) + self._u32.pack(int(t.linkage))
        if isinstance(t, FuncProto):
            parts = [self._header(t, len(t.params), False, t.return_type_id)]
            parts.extend(self._pair.pack(name(p.name), p.type_id) for p in t.params)
            return b"".join(parts)
        if isinstance(t, Datasec):
            parts = [self._header(t, len(t.vars), False, t.size)]
            parts.extend(self._triple.pack(v.type_id, v.offset, v.size) for v in t.vars)
            return b"".join(parts)
        if isinstance(t, Float):
            return self._header(t, 0, False, t.size)
        if t.kind in (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT):
            return self._header(t, 0, False, t.refs()[0])
        raise BTFError(f"cannot marshal {t}: {t.kind} has no wire record")
