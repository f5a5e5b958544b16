"""The ``.BTF`` wire format: the header, record sizes, and decoding one type record.

A record is a 12-byte ``struct btf_type`` (name_off, info, size-or-type) followed by
kind-specific data whose length depends only on the kind and ``vlen``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from btf.errors import BTFError
from btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage
from btf.types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Pointer,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)

if TYPE_CHECKING:
    from btf.spec import Spec

ByteOrder = Literal["little", "big"]

MAGIC = 0xEB9F
VERSION = 1
HEADER_SIZE = 24
MAX_KIND = max(Kind)
MAX_VLEN = 0xFFFF
MAX_TYPE_ID = (1 << 31) - 1

#: Bytes of kind-specific data after the common header, fixed part and per vlen entry.
RECORD_FIXED = [0] * (MAX_KIND + 1)
RECORD_PER_VLEN = [0] * (MAX_KIND + 1)
for _kind, _fixed in ((Kind.INT, 4), (Kind.ARRAY, 12), (Kind.VAR, 4), (Kind.DECL_TAG, 4)):
    RECORD_FIXED[_kind] = _fixed
for _kind, _each in (
    (Kind.STRUCT, 12), (Kind.UNION, 12), (Kind.ENUM, 8), (Kind.FUNC_PROTO, 8),
    (Kind.DATASEC, 12), (Kind.ENUM64, 12),
):
    RECORD_PER_VLEN[_kind] = _each


#: Enum members by wire value: indexing a tuple is far cheaper than calling the enum class.
_INT_ENCODINGS = tuple(IntEncoding(v) for v in range(16))
_FUNC_LINKAGES = {int(v): v for v in FuncLinkage}
_VAR_LINKAGES = {int(v): v for v in VarLinkage}


def byte_order_prefix(byte_order: ByteOrder) -> str:
    """The :mod:`struct` prefix for ``byte_order``."""
    return "<" if byte_order == "little" else ">"


@dataclass(frozen=True, slots=True)
class Header:
    """``struct btf_header``. Section offsets are relative to the end of the header."""

    byte_order: ByteOrder
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int


def parse_header(data: bytes) -> Header:
    """Read and check the header of raw BTF ``data``."""
    if len(data) < HEADER_SIZE:
        raise BTFError(f"{len(data)} bytes is too short for a BTF header ({HEADER_SIZE} bytes)")
    byte_order: ByteOrder
    if struct.unpack_from("<H", data)[0] == MAGIC:
        byte_order = "little"
    elif struct.unpack_from(">H", data)[0] == MAGIC:
        byte_order = "big"
    else:
        raise BTFError(f"bad magic {data[:2].hex()} (want eb9f in either byte order)", offset=0)
    fields = struct.unpack_from(byte_order_prefix(byte_order) + "HBBIIIII", data)
    header = Header(byte_order, *fields[1:])
    if header.version != VERSION:
        raise BTFError(f"unsupported BTF version {header.version}", offset=2)
    if header.hdr_len < HEADER_SIZE or header.hdr_len > len(data):
        raise BTFError(f"header length {header.hdr_len} is invalid for {len(data)} bytes", offset=4)
    if any(data[HEADER_SIZE : header.hdr_len]):
        raise BTFError("unknown non-zero header fields", offset=HEADER_SIZE)
    body = len(data) - header.hdr_len
    for what, off, length in (
        ("type", header.type_off, header.type_len),
        ("string", header.str_off, header.str_len),
    ):
        if off + length > body:
            raise BTFError(
                f"{what} section [{off}, +{length}) runs past the end of the data ({body} bytes)",
                offset=header.hdr_len + off,
            )
    if header.type_off % 4:
        raise BTFError(f"type section offset {header.type_off} is not 4-byte aligned", offset=8)
    if (header.type_len and header.str_len
            and header.type_off < header.str_off + header.str_len
            and header.str_off < header.type_off + header.type_len):
        raise BTFError("type and string sections overlap", offset=8)
    return header


@functools.lru_cache(maxsize=1024)
def _word_struct(prefix: str, count: int) -> struct.Struct:
    """A cached :class:`struct.Struct` of ``count`` u32 words (vlen values repeat a lot)."""
    return struct.Struct(f"{prefix}{count}I")


_new = tuple.__new__  # builds a type from its values in ``cls.FIELDS`` order (see btf.types)


class RecordDecoder:
    """Decodes type records of one byte order into :mod:`btf.types` objects bound to a spec.

    This is the hot path of a full decode (~300k objects for the kernel), so each handler
    builds its result with ``tuple.__new__`` in the class's ``FIELDS`` order.
    """

    __slots__ = ("_dispatch", "_e", "_i32", "_pair", "_triple", "_u32", "head")

    def __init__(self, byte_order: ByteOrder):
        e = byte_order_prefix(byte_order)
        self.head = struct.Struct(e + "III")
        self._u32 = struct.Struct(e + "I")
        self._i32 = struct.Struct(e + "i")
        self._pair = struct.Struct(e + "II")
        self._triple = struct.Struct(e + "III")
        self._e = e
        handlers: dict[Kind, Callable[..., Type]] = {
            Kind.INT: self._int,
            Kind.PTR: self._ref,
            Kind.TYPEDEF: self._ref,
            Kind.VOLATILE: self._ref,
            Kind.CONST: self._ref,
            Kind.RESTRICT: self._ref,
            Kind.FUNC: self._func,
            Kind.TYPE_TAG: self._type_tag,
            Kind.ARRAY: self._array,
            Kind.STRUCT: self._composite,
            Kind.UNION: self._composite,
            Kind.ENUM: self._enum,
            Kind.ENUM64: self._enum64,
            Kind.FWD: self._fwd,
            Kind.FUNC_PROTO: self._func_proto,
            Kind.VAR: self._var,
            Kind.DATASEC: self._datasec,
            Kind.FLOAT: self._float,
            Kind.DECL_TAG: self._decl_tag,
        }
        self._dispatch: tuple[Callable[..., Type] | None, ...] = tuple(
            handlers.get(Kind(k)) for k in range(MAX_KIND + 1)
        )

    def decode(self, spec: Spec, type_id: int, data: bytes, pos: int) -> Type:
        """Decode the record at ``pos`` of the type section ``data`` as type ``type_id``."""
        name_off, info, size_type = self.head.unpack_from(data, pos)
        kind = (info >> 24) & 0x1F
        handler = self._dispatch[kind] if kind <= MAX_KIND else None
        if handler is None:
            raise BTFError(f"unknown kind {kind}", type_id=type_id, offset=pos)
        strings = spec.strings
        try:
            name = (strings.cached(name_off) or strings.lookup(name_off)) if name_off else ""
            decoded: Type = handler(spec, type_id, name, kind, info, size_type, data, pos + 12)
        except BTFError as err:
            if err.type_id is not None:
                raise
            raise _in_record(err, type_id, pos) from None
        return decoded

    def decode_all(
        self, spec: Spec, first_id: int, data: bytes, offsets: Sequence[int]
    ) -> list[Type]:
        """Decode every record at ``offsets`` (IDs from ``first_id``): :meth:`decode` in a loop,
        with one Python call per type instead of three."""
        unpack, dispatch, strings = self.head.unpack_from, self._dispatch, spec.strings
        cached, lookup = strings.cached, strings.lookup
        decoded: list[Type] = []
        append = decoded.append
        type_id, pos = first_id, 0
        try:  # free unless raised (3.11+), so it stays outside the loop body's hot path
            for type_id, pos in enumerate(offsets, first_id):
                name_off, info, size_type = unpack(data, pos)
                kind = (info >> 24) & 0x1F
                handler = dispatch[kind] if kind <= MAX_KIND else None
                if handler is None:
                    raise BTFError(f"unknown kind {kind}", type_id=type_id, offset=pos)
                name = (cached(name_off) or lookup(name_off)) if name_off else ""
                append(handler(spec, type_id, name, kind, info, size_type, data, pos + 12))
        except BTFError as err:
            if err.type_id is not None:
                raise
            raise _in_record(err, type_id, pos) from None
        return decoded

    def _words(self, count: int) -> struct.Struct:
        """A :class:`struct.Struct` for ``count`` u32 words."""
        return _word_struct(self._e, count)

    @staticmethod
    def _names(spec: Spec, offsets: Sequence[int]) -> list[str]:
        """The strings at ``offsets`` ('' for offset 0)."""
        cached, lookup = spec.strings.cached, spec.strings.lookup
        return [(cached(n) or lookup(n)) if n else "" for n in offsets]

    @staticmethod
    def _check_refs(spec: Spec, tid: int, pos: int, stride: int, refs: Sequence[int]) -> None:
        """Check the IDs a record's entries refer to (one ``max`` when all are fine)."""
        if refs and max(refs) >= spec.type_count:
            for i, ref in enumerate(refs):
                spec.check_ref(ref, tid, pos + stride * i)

    # Each handler takes (spec, id, name, kind, info, size_type, data, pos of extra data).

    def _int(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
             data: bytes, pos: int) -> Type:
        (raw,) = self._u32.unpack_from(data, pos)
        encoding, bit_offset, bits = (raw >> 24) & 0x0F, (raw >> 16) & 0xFF, raw & 0xFF
        if size not in (1, 2, 4, 8, 16) or bits > size * 8 or bit_offset + bits > size * 8:
            raise BTFError(f"invalid INT size={size} bits={bits} bit_offset={bit_offset}",
                           type_id=tid, offset=pos)
        return _new(Int, (tid, name, size, _INT_ENCODINGS[encoding], bit_offset, bits, spec))

    def _ref(self, spec: Spec, tid: int, name: str, kind: int, info: int, ref: int,
             data: bytes, pos: int) -> Type:
        if ref >= spec.type_count:
            spec.check_ref(ref, tid, pos - 4)
        return _new(_REF_CLASSES[kind], (tid, name, ref, spec))

    def _func(self, spec: Spec, tid: int, name: str, kind: int, info: int, ref: int,
              data: bytes, pos: int) -> Type:
        if ref >= spec.type_count:
            spec.check_ref(ref, tid, pos - 4)
        linkage = _FUNC_LINKAGES.get(info & 0xFFFF)
        if linkage is None:
            raise BTFError(f"invalid FUNC linkage {info & 0xFFFF}", type_id=tid, offset=pos - 12)
        return _new(Func, (tid, name, ref, linkage, spec))

    def _type_tag(self, spec: Spec, tid: int, name: str, kind: int, info: int, ref: int,
                  data: bytes, pos: int) -> Type:
        spec.check_ref(ref, tid, pos - 4)
        return _new(TypeTag, (tid, name, ref, bool(info >> 31), spec))

    def _array(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
               data: bytes, pos: int) -> Type:
        elem, index, nelems = self._triple.unpack_from(data, pos)
        if elem >= spec.type_count or index >= spec.type_count:  # check_ref raises only then
            spec.check_ref(elem, tid, pos)
            spec.check_ref(index, tid, pos + 4)
        return _new(Array, (tid, name, elem, index, nelems, spec))

    def _composite(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
                   data: bytes, pos: int) -> Type:
        # One pass over the (name_off, type, offset) entries. Anything unusual — a type ID out
        # of range, a bad name offset — goes to _composite_checked, which checks every
        # reference before any name, as always, and so raises the same error.
        spec_types = spec.type_count
        strings = spec.strings
        cached, lookup = strings.cached, strings.lookup
        members: list[Member] = []
        append = members.append
        try:
            entries = self._triple.iter_unpack(data[pos : pos + 12 * (info & 0xFFFF)])
            if info >> 31:  # kind_flag: offset holds bitfield_size << 24 | bit offset
                for n, t, o in entries:
                    if t >= spec_types:
                        raise _Unusual
                    append(_new(Member, ((cached(n) or lookup(n)) if n else "", t, o & 0xFFFFFF, o >> 24,
                                         spec)))
            else:
                for n, t, o in entries:
                    if t >= spec_types:
                        raise _Unusual
                    append(_new(Member, ((cached(n) or lookup(n)) if n else "", t, o, 0, spec)))
        except (_Unusual, BTFError, struct.error):
            return self._composite_checked(spec, tid, name, kind, info, size, data, pos)
        return _new(Struct if kind == Kind.STRUCT else Union, (tid, name, size, tuple(members), spec))

    def _composite_checked(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
                           data: bytes, pos: int) -> Type:
        flat = self._words(3 * (info & 0xFFFF)).unpack_from(data, pos)
        types = flat[1::3]
        self._check_refs(spec, tid, pos + 4, 12, types)  # (name_off, type, offset) entries
        names = self._names(spec, flat[0::3])
        if info >> 31:  # kind_flag: offset holds bitfield_size << 24 | bit offset
            members = tuple([
                _new(Member, (n, t, o & 0xFFFFFF, o >> 24, spec))
                for n, t, o in zip(names, types, flat[2::3], strict=True)
            ])
        else:
            members = tuple([
                _new(Member, (n, t, o, 0, spec))
                for n, t, o in zip(names, types, flat[2::3], strict=True)
            ])
        return _new(Struct if kind == Kind.STRUCT else Union, (tid, name, size, members, spec))

    def _enum(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
              data: bytes, pos: int) -> Type:
        vlen = info & 0xFFFF
        signed = bool(info >> 31)
        lookup = spec.strings.lookup
        values = []
        for name_off, raw in self._pair.iter_unpack(data[pos : pos + 8 * vlen]):
            value = raw - (1 << 32) if signed and raw >= 1 << 31 else raw
            values.append(EnumValue(lookup(name_off), value))
        return _new(Enum, (tid, name, size, tuple(values), signed, spec))

    def _enum64(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
                data: bytes, pos: int) -> Type:
        vlen = info & 0xFFFF
        signed = bool(info >> 31)
        lookup = spec.strings.lookup
        values = []
        for name_off, lo, hi in self._triple.iter_unpack(data[pos : pos + 12 * vlen]):
            raw = hi << 32 | lo
            value = raw - (1 << 64) if signed and raw >= 1 << 63 else raw
            values.append(EnumValue(lookup(name_off), value))
        return _new(Enum64, (tid, name, size, tuple(values), signed, spec))

    def _fwd(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
             data: bytes, pos: int) -> Type:
        return _new(Fwd, (tid, name, bool(info >> 31), spec))

    def _func_proto(self, spec: Spec, tid: int, name: str, kind: int, info: int, ret: int,
                    data: bytes, pos: int) -> Type:
        # One pass over the (name_off, type) entries; anything unusual goes to
        # _func_proto_checked, as for _composite.
        spec_types = spec.type_count
        strings = spec.strings
        cached, lookup = strings.cached, strings.lookup
        params: list[Param] = []
        append = params.append
        try:
            if ret >= spec_types:
                raise _Unusual
            for n, t in self._pair.iter_unpack(data[pos : pos + 8 * (info & 0xFFFF)]):
                if t >= spec_types:
                    raise _Unusual
                append(_new(Param, ((cached(n) or lookup(n)) if n else "", t, spec)))
        except (_Unusual, BTFError, struct.error):
            return self._func_proto_checked(spec, tid, name, kind, info, ret, data, pos)
        return _new(FuncProto, (tid, name, ret, tuple(params), spec))

    def _func_proto_checked(self, spec: Spec, tid: int, name: str, kind: int, info: int, ret: int,
                            data: bytes, pos: int) -> Type:
        if ret >= spec.type_count:
            spec.check_ref(ret, tid, pos - 4)
        flat = self._words(2 * (info & 0xFFFF)).unpack_from(data, pos)
        types = flat[1::2]
        self._check_refs(spec, tid, pos + 4, 8, types)  # (name_off, type) entries
        names = self._names(spec, flat[0::2])
        params = tuple([_new(Param, (n, t, spec)) for n, t in zip(names, types, strict=True)])
        return _new(FuncProto, (tid, name, ret, params, spec))

    def _var(self, spec: Spec, tid: int, name: str, kind: int, info: int, ref: int,
             data: bytes, pos: int) -> Type:
        if ref >= spec.type_count:  # check_ref raises only then
            spec.check_ref(ref, tid, pos - 4)
        (raw,) = self._u32.unpack_from(data, pos)
        linkage = _VAR_LINKAGES.get(raw)
        if linkage is None:
            raise BTFError(f"invalid VAR linkage {raw}", type_id=tid, offset=pos)
        return _new(Var, (tid, name, ref, linkage, spec))

    def _datasec(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
                 data: bytes, pos: int) -> Type:
        # One pass over the (type, offset, size) entries; anything unusual goes to
        # _datasec_checked, as for _composite.
        spec_types = spec.type_count
        secinfos: list[VarSecinfo] = []
        append = secinfos.append
        try:
            for t, o, z in self._triple.iter_unpack(data[pos : pos + 12 * (info & 0xFFFF)]):
                if t >= spec_types:
                    raise _Unusual
                append(_new(VarSecinfo, (t, o, z, spec)))
        except (_Unusual, struct.error):
            return self._datasec_checked(spec, tid, name, kind, info, size, data, pos)
        return _new(Datasec, (tid, name, size, tuple(secinfos), spec))

    def _datasec_checked(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
                         data: bytes, pos: int) -> Type:
        flat = self._words(3 * (info & 0xFFFF)).unpack_from(data, pos)
        types = flat[0::3]
        self._check_refs(spec, tid, pos, 12, types)
        secinfos = tuple([
            _new(VarSecinfo, (t, o, z, spec))
            for t, o, z in zip(types, flat[1::3], flat[2::3], strict=True)
        ])
        return _new(Datasec, (tid, name, size, secinfos, spec))

    def _float(self, spec: Spec, tid: int, name: str, kind: int, info: int, size: int,
               data: bytes, pos: int) -> Type:
        return _new(Float, (tid, name, size, spec))

    def _decl_tag(self, spec: Spec, tid: int, name: str, kind: int, info: int, ref: int,
                  data: bytes, pos: int) -> Type:
        spec.check_ref(ref, tid, pos - 4)
        (component,) = self._i32.unpack_from(data, pos)
        return _new(DeclTag, (tid, name, ref, component, bool(info >> 31), spec))


class _Unusual(Exception):
    """Raised inside a fast decoding loop to hand the record to its fully checked decoder."""


def _in_record(err: BTFError, type_id: int, pos: int) -> BTFError:
    """``err`` (which names no type) as an error of record ``type_id`` at ``pos``: a bad
    member, parameter or enumerator name offset is found by the string table, which does
    not know the record."""
    return BTFError(err.args[0], type_id=type_id, offset=pos)


_REF_CLASSES: dict[int, type[Type]] = {
    Kind.PTR: Pointer,
    Kind.TYPEDEF: Typedef,
    Kind.VOLATILE: Volatile,
    Kind.CONST: Const,
    Kind.RESTRICT: Restrict,
}
