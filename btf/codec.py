"""Value codecs: bytes <-> Python values, by BTF type.

:class:`Codec` turns the bytes of a value of a BTF type (a map key or value, a global
variable, a whole ``.data`` section) into a Python value and back::

    codec = btf.Codec(spec.type_by_name("event", btf.Kind.STRUCT))
    event = codec.decode(raw)              # {"pid": 42, "comm": b"bash\\0...", ...}
    raw = codec.encode({"pid": 42})         # members left out are zero

:func:`encode_value` and :func:`decode_value` do the same for one value. Building a codec
walks the type once and precomputes a plan (a single ``struct.Struct`` for a struct of
plain integers, pointers and floats), so a codec reused per element costs little per value.

How values map:

============================  ==================================================================
BTF type                      Python value
============================  ==================================================================
INT                           ``int`` (signed per its encoding), range checked on encode;
                              ``bool`` for the BOOL encoding (encode accepts ``False``/``True``/0/1)
ENUM, ENUM64                  ``int`` (signed per the enum's signedness flag); encode also takes
                              an enumerator's name, and any integer that fits the storage
                              either signed or unsigned (BTF from before LLVM 15 does not record
                              an enum's signedness)
FLOAT (2, 4, 8 bytes)         ``float`` (encode also takes an ``int``)
PTR                           ``int`` (8 bytes, unsigned)
``char[N]``                   ``bytes`` of exactly N bytes on decode; encode takes ``bytes`` or
                              ``str`` (UTF-8) of at most N bytes and pads with zeros. An array is
                              "char" if its element is a 1-byte non-bool INT called ``char``,
                              ``signed char`` or ``unsigned char`` (through typedefs: ``__u8``
                              qualifies) or with the CHAR encoding.
other ARRAY                   ``list``; encode takes any sequence of exactly N elements
STRUCT, UNION                 ``dict`` by member name; members of anonymous struct/union members
                              appear at the parent's level, as in C. Encode: missing members
                              are zero, unknown names are an error. Union members given
                              together are written in declaration order over one another;
                              decode gives every member's view of the bytes, and encoding
                              that gives the same bytes back (padding aside).
bitfields                     as their INT/ENUM type, in the member's width; both byte orders
DATASEC                       ``dict`` by variable name, at the variables' section offsets
VAR, TYPEDEF, qualifiers      the value of the type they refer to
VOID, FWD, FUNC, FUNC_PROTO   no values: :class:`~btf.BTFError`
============================  ==================================================================

On encode, ``bytes``, ``bytearray`` or ``memoryview`` of exactly the type's size are
accepted for any type (and nested value) and copied as they are. Padding is zero.
:meth:`Codec.encode` always returns exactly ``btf.sizeof(t)`` bytes and
:meth:`Codec.decode` requires exactly that many.

A ``DATASEC`` must have been fixed up first: clang leaves every ``DATASEC`` in ``.BTF``
with size 0 and variable offsets 0 for the loader to fill in from the ELF section and
symbols (``ebpfspec`` does, as libbpf does). A DATASEC of size 0 with variables, or with
overlapping variables, is a :class:`~btf.BTFError` here, as it is to the kernel.

Errors: a value that does not fit its type raises ``ValueError`` naming the type, the
value, and where in the value it sits (``"... at hdr.flags[2]: ..."``); a type without
values, or malformed BTF (a struct containing itself, members outside their struct),
raises :class:`~btf.BTFError` when the codec is built.

Bitfields: BTF bit offsets count from the first byte of the struct; within each byte
from the least significant bit on little-endian targets and from the most significant
bit on big-endian ones (``-target bpfeb``), which is how clang lays them out.

Thread-safety: a codec is immutable once built; share it freely.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from btf.errors import BTFError
from btf.kinds import IntEncoding
from btf.layout import POINTER_SIZE, skip_qualifiers_and_typedefs
from btf.types import (
    Array,
    Datasec,
    Enum,
    Enum64,
    Float,
    Int,
    Pointer,
    Struct,
    Type,
    Union,
    Var,
    Void,
)
from btf.wire import ByteOrder

__all__ = ["Codec", "decode_value", "encode_value"]

Buffer = bytes | bytearray | memoryview

#: How many types deep (structs, unions, arrays, variables) a codec follows a type
#: before declaring it malformed; it also bounds the recursion of encode and decode.
MAX_DEPTH: Final = 100

#: Most elements an array of zero-sized elements may have.
MAX_EMPTY_ELEMENTS: Final = 1 << 16

#: ``struct`` format characters of plain integers, by size: (unsigned, signed).
_INT_CODES: Final = {1: ("B", "b"), 2: ("H", "h"), 4: ("I", "i"), 8: ("Q", "q")}
_FLOAT_CODES: Final = {2: "e", 4: "f", 8: "d"}
_CHAR_NAMES: Final = frozenset({"char", "signed char", "unsigned char"})
_RAW: Final = (bytes, bytearray, memoryview)
_MISSING: Final = object()


def _describe(t: Type) -> str:
    """``t`` for error messages."""
    if isinstance(t, Void):
        return "void"
    return str(t)


def _c_name(t: Type) -> str:
    """A short name of ``t`` for error messages: ``int``, ``struct foo``, ``PTR``."""
    if isinstance(t, (Struct, Union)):
        return f"{str(t.kind).lower()} {t.name or '(anon)'}"
    return t.name or str(t.kind)


def _raw_len(value: Buffer) -> int:
    return value.nbytes if isinstance(value, memoryview) else len(value)


class _EncodeError(ValueError):
    """A value that does not fit its type; ``path`` grows (innermost first) as it propagates."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail
        self.path: list[str] = []

    def message(self, top: str) -> str:
        where = ""
        for part in reversed(self.path):
            where += part if part.startswith("[") or not where else "." + part
        return f"cannot encode {top}{' at ' + where if where else ''}: {self.detail}"


# -- plan nodes ---------------------------------------------------------------------------
#
# A node encodes into / decodes from a buffer at a byte offset given at call time, so one
# node serves every place its type occurs. Nodes are immutable once built.


class _Node:
    """A compiled plan for the values of one type."""

    __slots__ = ("code", "size", "what")

    def __init__(self, size: int, what: str):
        #: Bytes the value occupies from the node's offset.
        self.size = size
        #: The type, for error messages.
        self.what = what
        #: ``struct`` format character if the value is a plain scalar that ``struct`` both
        #: encodes (with the right range checks) and decodes to the right Python value.
        self.code: str | None = None

    def decode_from(self, data: bytes, off: int) -> Any:
        """The value at ``data[off : off + size]``."""
        raise NotImplementedError

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        """Write ``value`` at ``buf[off : off + size]`` (which is zero, or holds other bitfields)."""
        raise NotImplementedError

    def encode_whole(self, value: object) -> bytes:
        """``value`` as a fresh ``bytes`` of exactly ``size`` (what :meth:`Codec.encode` calls)."""
        buf = bytearray(self.size)
        self.encode_into(buf, 0, value)
        return bytes(buf)

    def copy_raw(self, buf: bytearray, off: int, value: Buffer) -> None:
        """Copy raw bytes of exactly this node's size."""
        n = _raw_len(value)
        if n != self.size:
            raise _EncodeError(f"expected {self.size} raw bytes for {self.what}, got {n}")
        buf[off : off + n] = value

    def type_error(self, expected: str, value: object) -> _EncodeError:
        """The error for a ``value`` of the wrong Python type."""
        raw = "" if isinstance(self, _BitsNode) and not self.whole else f" (or {self.size} raw bytes)"
        return _EncodeError(
            f"expected {expected}{raw} for {self.what}, got {type(value).__name__} {_short_repr(value)}"
        )


def _listing(items: list[str], limit: int = 20) -> str:
    """``items`` joined by commas, the first ``limit`` of them."""
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Scalar:
    """How the unsigned bits of an INT, ENUM or bitfield map to a Python value and back."""

    __slots__ = ("as_bool", "enumerators", "hi", "lo", "mask", "nbits", "sign_bit", "signed", "what")

    def __init__(self, t: Type, nbits: int, what: str):
        self.nbits = nbits
        self.what = what
        self.mask = (1 << nbits) - 1
        self.as_bool = isinstance(t, Int) and bool(t.encoding & IntEncoding.BOOL)
        self.enumerators: dict[str, int] | None = None
        if isinstance(t, (Enum, Enum64)):
            self.signed = t.signed
            self.enumerators = {}
            for v in t.values:
                self.enumerators.setdefault(v.name, v.value)
            # Either reading of the bits: signedness is often unknown (no kind_flag before LLVM 15).
            self.lo, self.hi = -(1 << (nbits - 1)), self.mask
        elif self.as_bool:
            self.signed = False
            self.lo, self.hi = 0, 1
        else:
            self.signed = isinstance(t, Int) and t.signed
            if self.signed:
                self.lo, self.hi = -(1 << (nbits - 1)), (1 << (nbits - 1)) - 1
            else:
                self.lo, self.hi = 0, self.mask
        self.sign_bit = 1 << (nbits - 1) if self.signed else 0

    def from_bits(self, bits: int) -> int | bool:
        """The Python value of ``bits`` (an unsigned ``nbits``-wide integer)."""
        if self.as_bool:
            return bits != 0
        if bits & self.sign_bit:
            return bits - (1 << self.nbits)
        return bits

    def to_bits(self, value: object, node: _Node) -> int:
        """``value`` as an unsigned ``nbits``-wide integer; ``_EncodeError`` if it does not fit."""
        if isinstance(value, str) and self.enumerators is not None:
            try:
                value = self.enumerators[value]
            except KeyError:
                names = _listing(list(self.enumerators))
                raise _EncodeError(f"{value!r} is not an enumerator of {self.what} ({names})") from None
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            if self.as_bool:
                expected = "a bool"
            elif self.enumerators is not None:
                expected = "an int or enumerator name"
            else:
                expected = "an int"
            raise node.type_error(expected, value) from None
        if not self.lo <= number <= self.hi:
            raise _EncodeError(f"{number} is out of range for {self.what} ({self.lo}..{self.hi})")
        return number & self.mask


class _IntNode(_Node):
    """INT (whole storage), ENUM, ENUM64 and PTR values."""

    __slots__ = ("byte_order", "fast_st", "scalar", "st")

    def __init__(self, size: int, scalar: _Scalar, byte_order: ByteOrder, what: str):
        super().__init__(size, what)
        self.scalar = scalar
        self.byte_order: ByteOrder = byte_order
        codes = _INT_CODES.get(size)
        self.st = None if codes is None else struct.Struct(_prefix(byte_order) + codes[scalar.signed])
        #: ``st`` if ``struct`` packs exactly the values this type accepts (plain INT and PTR).
        self.fast_st = self.st if scalar.enumerators is None and not scalar.as_bool else None
        if self.fast_st is not None:
            self.code = self.fast_st.format[1:]

    def decode_from(self, data: bytes, off: int) -> Any:
        if self.st is not None:
            value: int = self.st.unpack_from(data, off)[0]
        else:
            value = int.from_bytes(data[off : off + self.size], self.byte_order, signed=self.scalar.signed)
        if self.scalar.as_bool:
            return value != 0
        return value

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        st = self.fast_st
        if st is not None:
            try:
                st.pack_into(buf, off, value)
                return
            except struct.error:
                pass  # not an int, or out of range: say which, below
        if isinstance(value, _RAW):
            self.copy_raw(buf, off, value)
            return
        bits = self.scalar.to_bits(value, self)
        buf[off : off + self.size] = bits.to_bytes(self.size, self.byte_order)

    def encode_whole(self, value: object) -> bytes:
        st = self.fast_st
        if st is not None:
            try:
                return st.pack(value)
            except struct.error:
                pass  # say why, in encode_into
        return super().encode_whole(value)


class _BitsNode(_Node):
    """A bitfield: ``nbits`` bits at bit ``bit_off`` from the node's byte offset.

    Serves bitfield members (``bit_off`` counts from the start of the struct, so the node
    is used at the struct's offset) and INTs whose ``bits``/``bit_offset`` leave part of
    their storage unused. ``size`` is the extent in bytes from the node's offset.
    """

    __slots__ = ("byte_order", "first", "nbytes", "scalar", "shift", "whole")

    def __init__(self, bit_off: int, nbits: int, scalar: _Scalar, byte_order: ByteOrder, what: str,
                 size: int | None = None):
        end = (bit_off + nbits + 7) // 8
        super().__init__(end if size is None else size, what)
        #: True for an INT's own storage (``size`` given), which raw bytes may fill.
        self.whole = size is not None
        self.first = bit_off // 8
        self.nbytes = end - self.first
        self.scalar = scalar
        self.byte_order: ByteOrder = byte_order
        if byte_order == "little":  # bit k is bit k % 8 (from the least significant) of byte k // 8
            self.shift = bit_off % 8
        else:  # bit k is bit k % 8 from the most significant of byte k // 8
            self.shift = 8 * self.nbytes - bit_off % 8 - nbits

    def decode_from(self, data: bytes, off: int) -> Any:
        start = off + self.first
        word = int.from_bytes(data[start : start + self.nbytes], self.byte_order)
        return self.scalar.from_bits((word >> self.shift) & self.scalar.mask)

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        if self.whole and isinstance(value, _RAW):
            self.copy_raw(buf, off, value)
            return
        bits = self.scalar.to_bits(value, self)
        start = off + self.first
        end = start + self.nbytes
        word = int.from_bytes(buf[start:end], self.byte_order)
        word = (word & ~(self.scalar.mask << self.shift)) | (bits << self.shift)
        buf[start:end] = word.to_bytes(self.nbytes, self.byte_order)


class _FloatNode(_Node):
    """FLOAT values of 2, 4 or 8 bytes."""

    __slots__ = ("st",)

    def __init__(self, size: int, byte_order: ByteOrder, what: str):
        super().__init__(size, what)
        self.st = struct.Struct(_prefix(byte_order) + _FLOAT_CODES[size])
        self.code = _FLOAT_CODES[size]

    def decode_from(self, data: bytes, off: int) -> Any:
        return self.st.unpack_from(data, off)[0]

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        try:
            self.st.pack_into(buf, off, value)
            return
        except OverflowError:
            raise _EncodeError(f"{value!r} is out of range for {self.what}") from None
        except struct.error:
            pass  # not a number
        if isinstance(value, _RAW):
            self.copy_raw(buf, off, value)
            return
        raise self.type_error("a float", value)

    def encode_whole(self, value: object) -> bytes:
        try:
            return self.st.pack(value)
        except (struct.error, OverflowError):
            return super().encode_whole(value)  # raw bytes, or say why not


class _CharArrayNode(_Node):
    """``char[N]``: ``bytes``."""

    __slots__ = ()

    def decode_from(self, data: bytes, off: int) -> Any:
        return data[off : off + self.size]

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, _RAW):
            raise _EncodeError(
                f"expected bytes or str of at most {self.size} bytes for {self.what}, "
                f"got {type(value).__name__} {_short_repr(value)}"
            )
        n = _raw_len(value)
        if n > self.size:
            raise _EncodeError(f"{n} bytes do not fit {self.what} ({self.size} bytes at most)")
        buf[off : off + n] = value
        if n < self.size:  # zero padded, also over the bytes of an earlier union member
            buf[off + n : off + self.size] = bytes(self.size - n)


class _ArrayNode(_Node):
    """Other arrays: ``list``."""

    __slots__ = ("bulk", "elem", "nelems", "stride")

    def __init__(self, elem: _Node, nelems: int, byte_order: ByteOrder, what: str):
        super().__init__(elem.size * nelems, what)
        self.elem = elem
        self.nelems = nelems
        self.stride = elem.size
        #: One ``struct`` for the whole array if its elements are plain scalars.
        self.bulk = struct.Struct(f"{_prefix(byte_order)}{nelems}{elem.code}") if elem.code else None

    def decode_from(self, data: bytes, off: int) -> Any:
        if self.bulk is not None:
            return list(self.bulk.unpack_from(data, off))
        elem, stride = self.elem, self.stride
        return [elem.decode_from(data, off + i * stride) for i in range(self.nelems)]

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        if isinstance(value, _RAW):
            self.copy_raw(buf, off, value)
            return
        if not isinstance(value, (list, tuple)) and (
            not isinstance(value, Sequence) or isinstance(value, str)
        ):
            raise self.type_error(f"a sequence of {self.nelems} elements", value)
        if len(value) != self.nelems:
            raise _EncodeError(
                f"expected exactly {self.nelems} elements for {self.what}, got {len(value)} "
                f"(arrays are encoded whole)"
            )
        if self.bulk is not None:
            try:
                self.bulk.pack_into(buf, off, *value)
                return
            except (struct.error, OverflowError):
                pass  # find the element at fault, below
        elem, stride = self.elem, self.stride
        for i, item in enumerate(value):
            try:
                elem.encode_into(buf, off + i * stride, item)
            except _EncodeError as err:
                err.path.append(f"[{i}]")
                raise


class _FieldsNode(_Node):
    """STRUCT, UNION and DATASEC: ``dict`` by name."""

    __slots__ = ("fields", "names")

    def __init__(self, size: int, fields: tuple[tuple[str, int, _Node], ...], what: str):
        super().__init__(size, what)
        self.fields = fields
        self.names = frozenset(name for name, _, _ in fields)

    def decode_from(self, data: bytes, off: int) -> Any:
        return {name: node.decode_from(data, off + foff) for name, foff, node in self.fields}

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        if isinstance(value, _RAW):
            self.copy_raw(buf, off, value)
            return
        if not isinstance(value, Mapping):
            raise self.type_error("a mapping of member names to values", value)
        if not self.names.issuperset(value):
            unknown = _listing(sorted(repr(k) for k in value if k not in self.names))
            known = _listing([name for name, _, _ in self.fields])
            raise _EncodeError(f"{self.what} has no members {unknown} (it has: {known})")
        for name, foff, node in self.fields:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                continue
            try:
                node.encode_into(buf, off + foff, item)
            except _EncodeError as err:
                err.path.append(name)
                raise


class _FlatNode(_FieldsNode):
    """A struct of non-overlapping plain scalars: one ``struct.Struct`` for all of it."""

    __slots__ = ("name_order", "st", "zeros")

    def __init__(self, size: int, fields: tuple[tuple[str, int, _Node], ...], what: str, st: struct.Struct):
        super().__init__(size, fields, what)
        self.st = st
        self.name_order = tuple(name for name, _, _ in fields)
        self.zeros = (0,) * len(fields)

    def decode_from(self, data: bytes, off: int) -> Any:
        return dict(zip(self.name_order, self.st.unpack_from(data, off), strict=False))

    def encode_into(self, buf: bytearray, off: int, value: object) -> None:
        if type(value) is dict and self.names.issuperset(value):
            try:
                self.st.pack_into(buf, off, *map(value.get, self.name_order, self.zeros))
                return
            except (struct.error, OverflowError, TypeError):
                pass  # find the member at fault, below
        super().encode_into(buf, off, value)

    def encode_whole(self, value: object) -> bytes:
        if type(value) is dict and self.names.issuperset(value):
            try:
                return self.st.pack(*map(value.get, self.name_order, self.zeros))
            except (struct.error, OverflowError, TypeError):
                pass  # find the member at fault, in encode_into
        return super().encode_whole(value)


def _prefix(byte_order: ByteOrder) -> str:
    return "<" if byte_order == "little" else ">"


# -- building plans -----------------------------------------------------------------------


class _Compiler:
    """Builds the nodes for the types of one codec, each type once."""

    def __init__(self, byte_order: ByteOrder):
        self.byte_order: ByteOrder = byte_order
        self.memo: dict[int, _Node] = {}
        self.in_progress: set[int] = set()
        self.depth = 0

    def resolve(self, t: Type) -> Type:
        """``t`` without typedefs, qualifiers and VAR layers."""
        for _ in range(MAX_DEPTH):
            t = skip_qualifiers_and_typedefs(t)
            if not isinstance(t, Var):
                return t
            t = t.type
        raise BTFError("variable/typedef chain too long or cyclic", type_id=t.id)

    def node(self, t: Type) -> _Node:
        t = self.resolve(t)
        known = self.memo.get(t.id)
        if known is not None:
            return known
        if t.id in self.in_progress:
            raise BTFError(f"{_describe(t)} contains itself by value", type_id=t.id)
        if self.depth >= MAX_DEPTH:
            raise BTFError(f"types nested more than {MAX_DEPTH} deep", type_id=t.id)
        self.in_progress.add(t.id)
        self.depth += 1
        try:
            built = self.build(t)
        finally:
            self.depth -= 1
            self.in_progress.discard(t.id)
        self.memo[t.id] = built
        return built

    def build(self, t: Type) -> _Node:
        what = _describe(t)
        if isinstance(t, Int):
            return self.int_node(t, what)
        if isinstance(t, (Enum, Enum64)):
            if t.size <= 0:
                raise BTFError(f"{what} has size {t.size}", type_id=t.id)
            return _IntNode(t.size, _Scalar(t, 8 * t.size, what), self.byte_order, what)
        if isinstance(t, Pointer):
            scalar = _Scalar(t, 8 * POINTER_SIZE, what)
            return _IntNode(POINTER_SIZE, scalar, self.byte_order, what)
        if isinstance(t, Float):
            if t.size not in _FLOAT_CODES:
                raise BTFError(f"{what}: floats of {t.size} bytes are not supported", type_id=t.id)
            return _FloatNode(t.size, self.byte_order, what)
        if isinstance(t, Array):
            return self.array_node(t, what)
        if isinstance(t, (Struct, Union)):
            return self.composite_node(t, what)
        if isinstance(t, Datasec):
            return self.datasec_node(t, what)
        raise BTFError(f"{what} has no values to encode or decode", type_id=t.id)

    def int_node(self, t: Int, what: str) -> _Node:
        if t.size <= 0:
            raise BTFError(f"{what} has size {t.size}", type_id=t.id)
        if t.bits <= 0 or t.bit_offset + t.bits > 8 * t.size:
            raise BTFError(
                f"{what}: {t.bits} bits at bit offset {t.bit_offset} do not fit {t.size} bytes", type_id=t.id
            )
        if t.bits == 8 * t.size:
            return _IntNode(t.size, _Scalar(t, t.bits, what), self.byte_order, what)
        scalar = _Scalar(t, t.bits, f"{t.bits}-bit {what}")
        return _BitsNode(t.bit_offset, t.bits, scalar, self.byte_order, what, size=t.size)

    def array_node(self, t: Array, what: str) -> _Node:
        elem_type = self.resolve(t.type)
        what = f"{what} ({_c_name(t.type)}[{t.nelems}])"
        if (
            isinstance(elem_type, Int)
            and elem_type.size == 1
            and elem_type.bits == 8
            and not elem_type.encoding & IntEncoding.BOOL
            and (elem_type.encoding & IntEncoding.CHAR or elem_type.name in _CHAR_NAMES)
        ):
            return _CharArrayNode(t.nelems, what)
        elem = self.node(elem_type)
        if elem.size == 0 and t.nelems > MAX_EMPTY_ELEMENTS:
            # Decoding would build a list of this many values out of no bytes at all.
            raise BTFError(f"{what}: more than {MAX_EMPTY_ELEMENTS} elements of size 0", type_id=t.id)
        return _ArrayNode(elem, t.nelems, self.byte_order, what)

    def composite_node(self, t: Struct | Union, what: str) -> _Node:
        fields: list[tuple[str, int, _Node]] = []
        for m in t.members:
            member_what = f"member '{m.name or '(anon)'}' of {what}"
            mtype = self.resolve(m.type)
            if m.bitfield_size or (
                isinstance(mtype, Int) and (m.offset % 8 or mtype.bits != 8 * mtype.size or mtype.bit_offset)
            ):
                bits = self.bitfield(t, m.name, m.offset, m.bitfield_size, mtype, what)
                if m.name:  # an unnamed bitfield (``int : 3;``) is padding
                    fields.append((m.name, 0, bits))
                continue
            if m.offset % 8:
                raise BTFError(f"{member_what} starts at bit {m.offset}, not on a byte", type_id=t.id)
            node = self.node(mtype)
            start = m.offset // 8
            if start + node.size > t.size:
                raise BTFError(
                    f"{member_what} ({node.size} bytes at offset {start}) ends past the end "
                    f"of the {t.size}-byte {t.kind}",
                    type_id=t.id,
                )
            if m.name:
                fields.append((m.name, start, node))
            elif isinstance(mtype, (Struct, Union)) and isinstance(node, _FieldsNode):
                fields.extend((name, start + foff, sub) for name, foff, sub in node.fields)
            # Other unnamed members hold no value (zero on encode).
        return self.fields_node(t, t.size, fields, what, flat_ok=isinstance(t, Struct))

    def bitfield(self, t: Struct | Union, name: str, offset: int, width: int, mtype: Type,
                 what: str) -> _Node:
        """The node of a bitfield member (relative to the start of its struct)."""
        member_what = f"member '{name or '(anon)'}' of {what}"
        if isinstance(mtype, Int):
            if not width:  # BTF without kind_flag: the INT carries the width and extra offset
                offset += mtype.bit_offset
                width = mtype.bits
            storage = mtype.size
        elif isinstance(mtype, (Enum, Enum64)):
            storage = mtype.size
        else:
            raise BTFError(f"{member_what} is a bitfield of {_describe(mtype)}", type_id=t.id)
        if not 0 < width <= 8 * storage:
            raise BTFError(f"{member_what} is {width} bits wide, its type {8 * storage}", type_id=t.id)
        if offset + width > 8 * t.size:
            raise BTFError(
                f"{member_what} ({width} bits at bit {offset}) ends past the end of the "
                f"{t.size}-byte {t.kind}",
                type_id=t.id,
            )
        scalar = _Scalar(mtype, width, f"{width}-bit bitfield {name or '(anon)'} of {_describe(mtype)}")
        return _BitsNode(offset, width, scalar, self.byte_order, scalar.what)

    def datasec_node(self, t: Datasec, what: str) -> _Node:
        size = t.size
        if size == 0 and t.vars:
            raise BTFError(
                f"{what} has size 0: its size and variable offsets have not been filled in from "
                "the ELF section and symbols (clang leaves them to the loader)",
                type_id=t.id,
            )
        end, last = 0, ""
        for v in sorted(t.vars, key=lambda v: v.offset):
            if v.offset < end:
                raise BTFError(f"variables '{last}' and '{v.type.name}' of {what} overlap", type_id=t.id)
            end, last = v.offset + v.size, v.type.name
        fields: list[tuple[str, int, _Node]] = []
        for v in t.vars:
            var = v.type
            if not isinstance(var, Var):
                raise BTFError(f"{what} holds {_describe(var)}, which has no value", type_id=t.id)
            node = self.node(var)
            if node.size > v.size:
                raise BTFError(
                    f"variable '{var.name}' of {what} has {v.size} bytes, its type {node.size}", type_id=t.id
                )
            if v.offset + v.size > size:
                raise BTFError(
                    f"variable '{var.name}' of {what} ({v.size} bytes at offset {v.offset}) ends past "
                    f"the end of the {size}-byte section",
                    type_id=t.id,
                )
            fields.append((var.name, v.offset, node))
        return self.fields_node(t, size, fields, what, flat_ok=True)

    def fields_node(self, t: Type, size: int, fields: list[tuple[str, int, _Node]], what: str,
                    *, flat_ok: bool) -> _Node:
        """A :class:`_FlatNode` if the fields allow one, else a :class:`_FieldsNode`."""
        seen: set[str] = set()
        for name, _, _ in fields:
            if name in seen:
                raise BTFError(f"{what} has more than one member called '{name}'", type_id=t.id)
            seen.add(name)
        frozen = tuple(fields)
        if flat_ok:
            st = self.flat_struct(size, frozen)
            if st is not None:
                return _FlatNode(size, frozen, what, st)
        return _FieldsNode(size, frozen, what)

    def flat_struct(self, size: int, fields: tuple[tuple[str, int, _Node], ...]) -> struct.Struct | None:
        """One ``struct.Struct`` for ``fields`` if they are plain scalars in increasing, disjoint order."""
        if not fields:
            return None
        fmt = [_prefix(self.byte_order)]
        pos = 0
        for _, off, node in fields:
            if node.code is None or off < pos:
                return None
            if off > pos:
                fmt.append(f"{off - pos}x")
            fmt.append(node.code)
            pos = off + node.size
        if size > pos:
            fmt.append(f"{size - pos}x")
        st = struct.Struct("".join(fmt))
        return st if st.size == size else None


# -- public API ---------------------------------------------------------------------------


class Codec:
    """Encodes and decodes values of one BTF type in one byte order.

    ``byte_order`` defaults to that of the type's spec (``"little"`` for a type without
    one). Building a codec walks the type once; :meth:`encode` and :meth:`decode` then
    reuse that plan. Raises :class:`~btf.BTFError` for a type without values (void,
    functions, forward declarations) or malformed BTF.
    """

    __slots__ = ("_encode", "_node", "byte_order", "size", "type")

    _encode: Callable[[object], bytes]

    def __init__(self, t: Type, byte_order: ByteOrder | None = None):
        if byte_order is None:
            byte_order = t.spec.byte_order if t.spec is not None else "little"
        if byte_order not in ("little", "big"):
            raise ValueError(f"byte_order must be 'little' or 'big', not {byte_order!r}")
        #: The type this codec is for.
        self.type = t
        #: ``"little"`` or ``"big"``.
        self.byte_order: ByteOrder = byte_order
        self._node = _Compiler(byte_order).node(t)
        #: The size in bytes of every encoded value.
        self.size: int = self._node.size
        self._encode = self._node.encode_whole

    def encode(self, value: object) -> bytes:
        """``value`` as exactly :attr:`size` bytes; ``ValueError`` if it does not fit the type."""
        try:
            return self._encode(value)
        except _EncodeError as err:
            raise ValueError(err.message(_describe(self.type))) from None

    def decode(self, data: Buffer) -> Any:
        """The value held by ``data``, which must be exactly :attr:`size` bytes (else ``ValueError``)."""
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) != self.size:
            raise ValueError(
                f"cannot decode {_describe(self.type)}: expected {self.size} bytes, got {len(data)}"
            )
        return self._node.decode_from(data, 0)

    def __repr__(self) -> str:
        return f"<btf.Codec {_describe(self.type)}, {self.size} bytes, {self.byte_order}-endian>"


def encode_value(t: Type, value: object, *, byte_order: ByteOrder | None = None) -> bytes:
    """``value`` as the bytes of a ``t``: exactly ``btf.sizeof(t)`` of them.

    See :mod:`btf.codec` for how Python values map to BTF types. ``byte_order``
    defaults to that of ``t``'s spec. For many values of one type, build a :class:`Codec`.
    """
    return Codec(t, byte_order).encode(value)


def decode_value(t: Type, data: Buffer, *, byte_order: ByteOrder | None = None) -> Any:
    """The Python value held by ``data``, the bytes of a ``t`` (exactly ``btf.sizeof(t)`` of them)."""
    return Codec(t, byte_order).decode(data)
