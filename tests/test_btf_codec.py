"""btf value codecs: bytes <-> Python values by BTF type (:mod:`btf.codec`).

Hand-made specs (``btf.Spec.from_types``, IDs from 1) cover each mapping rule in both
byte orders, the errors, raw passthrough and malformed type graphs; the expected bytes
are spelled out with :mod:`struct` or by hand. The last tests compile a small C file
with clang for ``bpfel`` and ``bpfeb`` and check the codec against the compiler's own
layout of bitfields, arrays, enums and unions in ``.data``.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

import btf
from btf import EnumValue, IntEncoding, Member, VarSecinfo
from btf.codec import MAX_DEPTH
from btf.wire import ByteOrder
from tests.util import elf_section

ORDERS: list[ByteOrder] = ["little", "big"]
S, U, CHAR, BOOL = IntEncoding.SIGNED, IntEncoding.NONE, IntEncoding.CHAR, IntEncoding.BOOL


def make(*types: btf.Type, byte_order: ByteOrder = "little") -> btf.Spec:
    """A spec of ``types`` (numbered from 1)."""
    return btf.Spec.from_types(list(types), byte_order=byte_order)


def p(byte_order: ByteOrder) -> str:
    """The :mod:`struct` prefix of ``byte_order``."""
    return "<" if byte_order == "little" else ">"


def roundtrip(t: btf.Type, value: object, byte_order: ByteOrder | None = None) -> bytes:
    """Encode ``value``, check the size and that it decodes back to ``value``; the bytes."""
    raw = btf.encode_value(t, value, byte_order=byte_order)
    assert len(raw) == btf.sizeof(t)
    assert btf.decode_value(t, raw, byte_order=byte_order) == value
    return raw


# Types shared by several tests: scalars 1..12, then whatever a test appends from 13.
BASE: list[btf.Type] = [
    btf.Int(1, "int", 4, S),
    btf.Int(2, "unsigned int", 4, U),
    btf.Int(3, "char", 1, S),
    btf.Int(4, "unsigned char", 1, U),
    btf.Int(5, "_Bool", 1, BOOL),
    btf.Int(6, "long long", 8, S),
    btf.Int(7, "unsigned long long", 8, U),
    btf.Int(8, "short", 2, S),
    btf.Float(9, "float", 4),
    btf.Float(10, "double", 8),
    btf.Int(11, "unsigned short", 2, U),
    btf.Int(12, "signed char", 1, S),
]
INT, UINT, CHAR_T, UCHAR, BOOL_T, LL, ULL, SHORT, FLOAT, DOUBLE, USHORT, SCHAR = range(1, 13)


def with_base(*extra: btf.Type, byte_order: ByteOrder = "little") -> btf.Spec:
    """:data:`BASE` plus ``extra`` (IDs from 13)."""
    return make(*BASE, *extra, byte_order=byte_order)


# -- integers ------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("tid", "fmt", "values"),
    [
        (INT, "i", [0, 1, -1, 2**31 - 1, -(2**31)]),
        (UINT, "I", [0, 1, 2**32 - 1]),
        (CHAR_T, "b", [0, -128, 127]),
        (UCHAR, "B", [0, 255]),
        (LL, "q", [0, -(2**63), 2**63 - 1]),
        (ULL, "Q", [0, 2**64 - 1]),
        (SHORT, "h", [-(2**15), 2**15 - 1]),
        (USHORT, "H", [0, 0xABCD]),
    ],
)
def test_int_values(order: ByteOrder, tid: int, fmt: str, values: list[int]) -> None:
    t = with_base(byte_order=order).type_by_id(tid)
    for value in values:
        raw = roundtrip(t, value)
        assert raw == struct.pack(p(order) + fmt, value)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("tid", "bad"),
    [(INT, 2**31), (INT, -(2**31) - 1), (UINT, -1), (UINT, 2**32), (UCHAR, 256), (ULL, 2**64),
     (SHORT, 40000)],
)
def test_int_out_of_range(order: ByteOrder, tid: int, bad: int) -> None:
    t = with_base(byte_order=order).type_by_id(tid)
    with pytest.raises(ValueError, match=rf"{bad} is out of range for INT '{t.name}' \[{tid}\]"):
        btf.encode_value(t, bad)


def test_int_wrong_python_type() -> None:
    t = with_base().type_by_id(INT)
    for bad in (1.5, "1", None, [1]):
        with pytest.raises(ValueError, match=r"expected an int .*INT 'int' \[1\], got"):
            btf.encode_value(t, bad)
    assert btf.encode_value(t, True) == b"\x01\0\0\0"  # bool is an int


@pytest.mark.parametrize("order", ORDERS)
def test_bool(order: ByteOrder) -> None:
    t = with_base(byte_order=order).type_by_id(BOOL_T)
    assert roundtrip(t, True) == b"\x01"
    assert roundtrip(t, False) == b"\x00"
    assert btf.encode_value(t, 1) == b"\x01"
    assert btf.decode_value(t, b"\x07") is True
    assert btf.decode_value(t, b"\x00") is False
    with pytest.raises(ValueError, match=r"2 is out of range for INT '_Bool' \[5\] \(0\.\.1\)"):
        btf.encode_value(t, 2)
    with pytest.raises(ValueError, match="expected a bool"):
        btf.encode_value(t, "yes")


@pytest.mark.parametrize("order", ORDERS)
def test_int128_and_odd_sizes(order: ByteOrder) -> None:
    spec = make(btf.Int(1, "__int128", 16, S), btf.Int(2, "unsigned __int128", 16, U), byte_order=order)
    i128, u128 = (spec.type_by_id(i) for i in (1, 2))
    u24 = btf.Int(3, "u24", 3, U)  # the parser rejects such sizes; a free-standing type still works
    assert roundtrip(i128, -1) == b"\xff" * 16
    assert roundtrip(i128, -(2**127)) == (-(2**127)).to_bytes(16, order, signed=True)
    assert roundtrip(u128, 2**128 - 1) == b"\xff" * 16
    assert roundtrip(u128, 0x0102) == (0x0102).to_bytes(16, order)
    assert roundtrip(u24, 0xABCDEF, order) == (0xABCDEF).to_bytes(3, order)
    with pytest.raises(ValueError, match="out of range"):
        btf.encode_value(i128, 2**127)
    with pytest.raises(ValueError, match="out of range"):
        btf.encode_value(u24, 2**24, byte_order=order)


@pytest.mark.parametrize("order", ORDERS)
def test_int_with_bits_and_bit_offset(order: ByteOrder) -> None:
    """An INT whose ``bits``/``bit_offset`` leave part of its storage unused (pre-kind_flag BTF)."""
    spec = make(btf.Int(1, "int", 4, S, bit_offset=4, bits=8), byte_order=order)
    t = spec.type_by_id(1)
    raw = roundtrip(t, -3)
    # Little-endian bit k is bit k of the storage counted from the least significant bit;
    # big-endian bit k counts from the most significant bit.
    shift = 4 if order == "little" else 32 - 4 - 8
    assert raw == ((0xFD) << shift).to_bytes(4, order)
    assert roundtrip(t, 127) == (0x7F << shift).to_bytes(4, order)
    with pytest.raises(ValueError, match=r"128 is out of range for 8-bit INT 'int' \[1\] \(-128\.\.127\)"):
        btf.encode_value(t, 128)
    # Bits outside the value are ignored on decode.
    assert btf.decode_value(t, ((0x05 << shift) | ~(0xFF << shift) & 0xFFFFFFFF).to_bytes(4, order)) == 5


# -- enums, floats, pointers -----------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_enums(order: ByteOrder) -> None:
    spec = make(
        btf.Enum(1, "color", 4, (EnumValue("RED", 1), EnumValue("GREEN", 2), EnumValue("NEG", -3)),
                 signed=True),
        btf.Enum(2, "flags", 4, (EnumValue("A", 1), EnumValue("TOP", 0x80000000))),
        btf.Enum64(3, "big", 8, (EnumValue("HUGE", 2**63 + 5),)),
        btf.Enum(4, "tiny", 1, (EnumValue("X", 7),)),
        byte_order=order,
    )
    color, flags, big, tiny = (spec.type_by_id(i) for i in (1, 2, 3, 4))
    assert roundtrip(color, -3) == struct.pack(p(order) + "i", -3)
    assert btf.encode_value(color, "NEG") == btf.encode_value(color, -3)
    assert btf.encode_value(color, "GREEN") == struct.pack(p(order) + "i", 2)
    assert btf.decode_value(color, struct.pack(p(order) + "i", 2)) == 2
    assert roundtrip(flags, 0x80000000) == struct.pack(p(order) + "I", 0x80000000)
    assert btf.encode_value(flags, "TOP") == struct.pack(p(order) + "I", 0x80000000)
    # Unsigned enums also take the signed reading of the bits (clang < 15 does not say).
    assert btf.encode_value(flags, -1) == b"\xff" * 4
    assert btf.decode_value(flags, b"\xff" * 4) == 2**32 - 1
    assert roundtrip(big, 2**63 + 5) == struct.pack(p(order) + "Q", 2**63 + 5)
    assert btf.encode_value(big, "HUGE") == struct.pack(p(order) + "Q", 2**63 + 5)
    assert roundtrip(tiny, 7) == b"\x07"
    with pytest.raises(ValueError, match=r"'BLUE' is not an enumerator of ENUM 'color' \[1\] "
                                         r"\(RED, GREEN, NEG\)"):
        btf.encode_value(color, "BLUE")
    with pytest.raises(ValueError, match=r"4294967296 is out of range for ENUM 'flags' \[2\]"):
        btf.encode_value(flags, 2**32)
    with pytest.raises(ValueError, match="out of range for ENUM 'tiny'"):
        btf.encode_value(tiny, 256)
    with pytest.raises(ValueError, match="expected an int or enumerator name"):
        btf.encode_value(color, 1.0)


@pytest.mark.parametrize("order", ORDERS)
def test_floats(order: ByteOrder) -> None:
    spec = make(btf.Float(1, "float", 4), btf.Float(2, "double", 8), btf.Float(3, "_Float16", 2),
                btf.Float(4, "long double", 16), byte_order=order)
    f32, f64, f16, f128 = (spec.type_by_id(i) for i in (1, 2, 3, 4))
    assert roundtrip(f32, 1.5) == struct.pack(p(order) + "f", 1.5)
    assert roundtrip(f64, -2.25e300) == struct.pack(p(order) + "d", -2.25e300)
    assert roundtrip(f16, 0.5) == struct.pack(p(order) + "e", 0.5)
    assert btf.encode_value(f64, 3) == struct.pack(p(order) + "d", 3.0)  # ints are accepted
    assert isinstance(btf.decode_value(f32, btf.encode_value(f32, 2)), float)
    with pytest.raises(ValueError, match=r"1e\+300 is out of range for FLOAT 'float' \[1\]"):
        btf.encode_value(f32, 1e300)
    with pytest.raises(ValueError, match=r"expected a float .*FLOAT 'double' \[2\], got str"):
        btf.encode_value(f64, "1.0")
    with pytest.raises(btf.BTFError, match="floats of 16 bytes are not supported"):
        btf.Codec(f128)


@pytest.mark.parametrize("order", ORDERS)
def test_pointer(order: ByteOrder) -> None:
    spec = with_base(btf.Pointer(13, "", INT), byte_order=order)
    ptr = spec.type_by_id(13)
    assert btf.sizeof(ptr) == 8
    assert roundtrip(ptr, 0xFFFF_8880_0000_1234) == struct.pack(p(order) + "Q", 0xFFFF_8880_0000_1234)
    with pytest.raises(ValueError, match=r"-1 is out of range for PTR '\(anon\)' \[13\]"):
        btf.encode_value(ptr, -1)


@pytest.mark.parametrize("order", ORDERS)
def test_typedefs_and_qualifiers_are_transparent(order: ByteOrder) -> None:
    spec = with_base(
        btf.Typedef(13, "u32", UINT),
        btf.Const(14, "", 13),
        btf.Volatile(15, "", 14),
        btf.TypeTag(16, "user", 15),
        btf.Pointer(17, "", INT),
        btf.Restrict(18, "", 17),
        btf.Var(19, "v", 16),
        byte_order=order,
    )
    for tid in (13, 14, 15, 16, 19):
        t = spec.type_by_id(tid)
        assert roundtrip(t, 0xDEADBEEF) == struct.pack(p(order) + "I", 0xDEADBEEF)
        with pytest.raises(ValueError, match=r"out of range for INT 'unsigned int' \[2\]"):
            btf.encode_value(t, -1)
    assert roundtrip(spec.type_by_id(18), 42) == struct.pack(p(order) + "Q", 42)


# -- arrays ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_char_arrays_are_bytes(order: ByteOrder) -> None:
    spec = with_base(
        btf.Array(13, "", CHAR_T, INT, 8),
        btf.Array(14, "", UCHAR, INT, 4),
        btf.Typedef(15, "__u8", UCHAR),
        btf.Array(16, "", 15, INT, 6),
        btf.Array(17, "", SCHAR, INT, 2),
        btf.Int(18, "u8", 1, CHAR),
        btf.Array(19, "", 18, INT, 3),
        btf.Const(20, "", CHAR_T),
        btf.Array(21, "", 20, INT, 5),
        byte_order=order,
    )
    name = spec.type_by_id(13)
    assert roundtrip(name, b"abcdefgh") == b"abcdefgh"
    assert btf.encode_value(name, b"hi") == b"hi\0\0\0\0\0\0"  # shorter: zero padded
    assert btf.decode_value(name, b"hi\0\0\0\0\0\0") == b"hi\0\0\0\0\0\0"  # all N bytes
    assert btf.encode_value(name, "hé") == "hé".encode() + b"\0" * 5  # str: UTF-8
    assert btf.encode_value(name, bytearray(b"x")) == b"x" + b"\0" * 7
    assert btf.encode_value(name, memoryview(b"xyz")) == b"xyz" + b"\0" * 5
    with pytest.raises(ValueError, match=r"9 bytes do not fit ARRAY '\(anon\)' \[13\] \(char\[8\]\)"):
        btf.encode_value(name, b"123456789")
    with pytest.raises(ValueError, match="expected bytes or str of at most 8 bytes"):
        btf.encode_value(name, [1, 2])
    for tid, n in ((14, 4), (16, 6), (17, 2), (19, 3), (21, 5)):
        assert roundtrip(spec.type_by_id(tid), bytes(range(1, n + 1))) == bytes(range(1, n + 1))


@pytest.mark.parametrize("order", ORDERS)
def test_other_arrays_are_lists(order: ByteOrder) -> None:
    spec = with_base(
        btf.Array(13, "", INT, INT, 3),
        btf.Array(14, "", BOOL_T, INT, 2),
        btf.Array(15, "", 13, INT, 2),  # int[2][3]
        btf.Int(16, "__s8", 1, S),  # a 1-byte int not called char: a number
        btf.Array(17, "", 16, INT, 2),
        btf.Array(18, "", DOUBLE, INT, 2),
        btf.Array(19, "", INT, INT, 0),  # flexible array member
        btf.Array(20, "", 21, INT, 2),
        btf.Enum(21, "e", 2, (EnumValue("A", 1),)),
        byte_order=order,
    )
    ints, bools, matrix, s8s, doubles, empty, enums = (
        spec.type_by_id(i) for i in (13, 14, 15, 17, 18, 19, 20)
    )
    assert roundtrip(ints, [1, -2, 3]) == struct.pack(p(order) + "3i", 1, -2, 3)
    assert btf.encode_value(ints, (1, -2, 3)) == btf.encode_value(ints, [1, -2, 3])
    assert btf.encode_value(ints, range(3)) == struct.pack(p(order) + "3i", 0, 1, 2)
    assert roundtrip(bools, [True, False]) == b"\x01\x00"
    assert roundtrip(matrix, [[1, 2, 3], [4, 5, 6]]) == struct.pack(p(order) + "6i", 1, 2, 3, 4, 5, 6)
    assert roundtrip(s8s, [-1, 5]) == b"\xff\x05"
    assert roundtrip(doubles, [0.5, -1.0]) == struct.pack(p(order) + "2d", 0.5, -1.0)
    assert roundtrip(empty, []) == b""
    assert roundtrip(enums, [1, 3]) == struct.pack(p(order) + "2H", 1, 3)
    assert btf.encode_value(enums, ["A", 0]) == struct.pack(p(order) + "2H", 1, 0)

    with pytest.raises(ValueError, match=r"expected exactly 3 elements for ARRAY '\(anon\)' \[13\] "
                                         r"\(int\[3\]\), got 2"):
        btf.encode_value(ints, [1, 2])
    with pytest.raises(ValueError, match=r"expected exactly 3 elements.*got 4"):
        btf.encode_value(ints, [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"at \[1\]: 2147483648 is out of range for INT 'int'"):
        btf.encode_value(ints, [1, 2**31, 3])
    with pytest.raises(ValueError, match=r"at \[1\]\[2\]: expected an int"):
        btf.encode_value(matrix, [[1, 2, 3], [4, 5, "6"]])
    with pytest.raises(ValueError, match="expected a sequence of 3 elements"):
        btf.encode_value(ints, "abc")
    with pytest.raises(ValueError, match="expected a sequence of 3 elements"):
        btf.encode_value(ints, 7)


# -- structs and unions ------------------------------------------------------------------------


def point_spec(order: ByteOrder) -> btf.Spec:
    """struct point { char tag; /* 3 bytes padding */ int x; long long y; unsigned short z; };  (24 bytes)"""
    return with_base(
        btf.Struct(13, "point", 24, (Member("tag", CHAR_T, 0), Member("x", INT, 32), Member("y", LL, 64),
                                     Member("z", USHORT, 128))),
        byte_order=order,
    )


@pytest.mark.parametrize("order", ORDERS)
def test_struct(order: ByteOrder) -> None:
    point = point_spec(order).type_by_id(13)
    value = {"tag": -1, "x": 7, "y": -(2**40), "z": 0xBEEF}
    raw = roundtrip(point, value)
    assert raw == struct.pack(p(order) + "b3xiqH6x", -1, 7, -(2**40), 0xBEEF)
    assert raw[1:4] == b"\0\0\0" and raw[18:] == b"\0" * 6  # padding is zero
    # Missing members are zero.
    assert btf.encode_value(point, {"x": 1}) == struct.pack(p(order) + "b3xiqH6x", 0, 1, 0, 0)
    assert btf.encode_value(point, {}) == b"\0" * 24
    # Any mapping will do.
    from types import MappingProxyType

    assert btf.encode_value(point, MappingProxyType(value)) == raw


def test_struct_errors() -> None:
    point = point_spec("little").type_by_id(13)
    with pytest.raises(ValueError, match=r"STRUCT 'point' \[13\] has no members 'nope', 'w' "
                                         r"\(it has: tag, x, y, z\)"):
        btf.encode_value(point, {"x": 1, "w": 2, "nope": 3})
    with pytest.raises(ValueError, match=r"cannot encode STRUCT 'point' \[13\] at z: 65536 is out of range "
                                         r"for INT 'unsigned short' \[11\] \(0\.\.65535\)"):
        btf.encode_value(point, {"z": 65536})
    with pytest.raises(ValueError, match=r"at x: expected an int"):
        btf.encode_value(point, {"x": 1.5})
    with pytest.raises(ValueError, match=r"expected a mapping of member names to values \(or 24 raw bytes\)"):
        btf.encode_value(point, [1, 2, 3, 4])


def test_flat_struct_uses_one_struct_and_agrees_with_slow_path() -> None:
    """A struct of plain scalars is one ``struct.Struct``; its errors match the member-wise path."""
    codec = btf.Codec(point_spec("big").type_by_id(13))
    node: Any = codec._node
    assert type(node).__name__ == "_FlatNode"
    assert node.st.format == ">b3xiqH6x"
    assert codec.size == 24
    outer = btf.Codec(
        with_base(
            btf.Struct(13, "point", 24, (Member("tag", CHAR_T, 0), Member("x", INT, 32), Member("y", LL, 64),
                                         Member("z", USHORT, 128))),
            btf.Array(14, "", 13, INT, 2),
        ).type_by_id(14)
    )
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"tag": 128}, "at tag: 128 is out of range", r"at \[1\]\.tag: 128 is out of range"),
        ({"y": "x"}, "at y: expected an int", r"at \[1\]\.y: expected an int"),
        ({"y": 1.0}, "at y: expected an int", r"at \[1\]\.y: expected an int"),
        ({"q": 1}, r"point' \[13\]: STRUCT 'point' \[13\] has no members 'q'",
         r"at \[1\]: STRUCT .* members 'q'"),
    ]
    for bad, message, nested_message in cases:
        with pytest.raises(ValueError, match=message):
            codec.encode(bad)
        with pytest.raises(ValueError, match=nested_message):
            outer.encode([{}, bad])  # nested: the struct is packed into the outer buffer
    assert outer.decode(outer.encode([{"x": 1}, {"z": 2}])) == [
        {"tag": 0, "x": 1, "y": 0, "z": 0}, {"tag": 0, "x": 0, "y": 0, "z": 2}
    ]


@pytest.mark.parametrize("order", ORDERS)
def test_nested_structs_and_arrays(order: ByteOrder) -> None:
    spec = with_base(
        btf.Struct(13, "inner", 8, (Member("a", INT, 0), Member("b", FLOAT, 32))),
        btf.Array(14, "", 13, INT, 2),
        btf.Array(15, "", CHAR_T, INT, 4),
        btf.Struct(16, "outer", 28, (Member("name", 15, 0), Member("items", 14, 32),
                                     Member("ok", BOOL_T, 160), Member("pad", UCHAR, 168))),
        byte_order=order,
    )
    outer = spec.type_by_id(16)
    value = {"name": b"ab\0\0", "items": [{"a": 1, "b": 0.5}, {"a": -2, "b": 2.0}], "ok": True, "pad": 9}
    raw = roundtrip(outer, value)
    e = p(order)
    assert raw == b"ab\0\0" + struct.pack(e + "ifif", 1, 0.5, -2, 2.0) + b"\x01\x09" + b"\0" * 6
    with pytest.raises(ValueError, match=r"cannot encode STRUCT 'outer' \[16\] at items\[1\]\.a: "
                                         r"2147483648 is out"):
        btf.encode_value(outer, {"items": [{}, {"a": 2**31}]})
    with pytest.raises(ValueError, match=r"at items\[0\]: STRUCT 'inner' \[13\] has no members 'c'"):
        btf.encode_value(outer, {"items": [{"c": 1}, {}]})


@pytest.mark.parametrize("order", ORDERS)
def test_union(order: ByteOrder) -> None:
    spec = with_base(
        btf.Array(13, "", UCHAR, INT, 8),
        btf.Union(14, "u", 8, (Member("i", INT, 0), Member("ll", ULL, 0), Member("raw", 13, 0))),
        byte_order=order,
    )
    u = spec.type_by_id(14)
    raw = btf.encode_value(u, {"i": -1})
    assert raw == b"\xff\xff\xff\xff\0\0\0\0"
    assert btf.decode_value(u, raw) == {
        "i": -1,
        "ll": int.from_bytes(raw, order),
        "raw": raw,
    }
    # A decoded union (every member's view) encodes back to the same bytes.
    data = bytes(range(1, 9))
    assert btf.encode_value(u, btf.decode_value(u, data)) == data
    # Members given together are written in declaration order.
    assert btf.encode_value(u, {"raw": b"\x01" * 8, "i": 0}) == b"\x01" * 8
    assert btf.encode_value(u, {"i": 0, "ll": 2**64 - 1}) == b"\xff" * 8
    # A short char array is zero padded over what an earlier member wrote.
    assert btf.encode_value(u, {"ll": 2**64 - 1, "raw": b"\x05"}) == b"\x05" + b"\0" * 7


@pytest.mark.parametrize("order", ORDERS)
def test_anonymous_members_are_flattened(order: ByteOrder) -> None:
    spec = with_base(
        btf.Union(13, "", 4, (Member("x", INT, 0), Member("f", FLOAT, 0))),
        btf.Struct(14, "", 4, (Member("s", SHORT, 0), Member("", 15, 16))),
        btf.Struct(15, "", 2, (Member("deep", USHORT, 0),)),
        btf.Struct(16, "outer", 12, (Member("a", INT, 0), Member("", 13, 32), Member("", 14, 64))),
        btf.Struct(17, "clash", 8, (Member("x", INT, 0), Member("", 13, 32))),
        btf.Struct(18, "pads", 4, (Member("a", INT, 0, 3), Member("", INT, 3, 5), Member("", UCHAR, 8),
                                   Member("b", UINT, 16, 16))),
        byte_order=order,
    )
    outer = spec.type_by_id(16)
    two_as_float = struct.unpack(p(order) + "f", struct.pack(p(order) + "i", 2))[0]
    value = {"a": 1, "x": 2, "f": two_as_float, "s": -3, "deep": 4}
    raw = roundtrip(outer, value)
    assert raw == struct.pack(p(order) + "iihH", 1, 2, -3, 4)
    assert btf.encode_value(outer, {"deep": 9}) == struct.pack(p(order) + "iihH", 0, 0, 0, 9)
    with pytest.raises(ValueError, match="has no members 'u'"):
        btf.encode_value(outer, {"u": 1})
    with pytest.raises(btf.BTFError, match=r"STRUCT 'clash' \[17\] has more than one member called 'x'"):
        btf.Codec(spec.type_by_id(17))
    # Unnamed members that are not structs or unions (``int : 5;``) are padding: no key, zero.
    pads = spec.type_by_id(18)
    assert btf.decode_value(pads, b"\xff" * 4) == {"a": -1, "b": 0xFFFF}
    expected = pack_bits([(0, 3, -1), (16, 16, 0xFFFF)], 4, order)
    assert btf.encode_value(pads, {"a": -1, "b": 0xFFFF}) == expected


# -- bitfields ----------------------------------------------------------------------------------


def pack_bits(fields: Sequence[tuple[int, int, int]], size: int, order: ByteOrder) -> bytes:
    """Bytes holding each ``(bit_offset, width, value)``, laid out as clang lays out bitfields:
    bit k is bit k % 8 of byte k // 8, counted from the least significant bit (little) or
    from the most significant bit (big)."""
    bits = [0] * (8 * size)
    for offset, width, value in fields:
        value &= (1 << width) - 1
        for i in range(width):
            # Little-endian: the value's least significant bit comes first; big: its most.
            bit = (value >> i) & 1 if order == "little" else (value >> (width - 1 - i)) & 1
            bits[offset + i] = bit
    out = bytearray(size)
    for k, bit in enumerate(bits):
        if bit:
            out[k // 8] |= 1 << (k % 8) if order == "little" else 0x80 >> (k % 8)
    return bytes(out)


def bitfield_spec(order: ByteOrder) -> btf.Spec:
    """struct bits { int a:3; unsigned b:5; unsigned c:12; enum e d:4; _Bool f:1; long long g:40;
    short h; }"""
    return with_base(
        btf.Enum(13, "e", 4, (EnumValue("E0", 0), EnumValue("E5", 5)), signed=False),
        btf.Struct(14, "bits", 16, (
            Member("a", INT, 0, 3),
            Member("b", UINT, 3, 5),
            Member("c", UINT, 8, 12),    # crosses a byte boundary
            Member("d", 13, 20, 4),
            Member("f", BOOL_T, 24, 1),
            Member("g", LL, 25, 40),     # crosses the 32-bit storage unit boundary
            Member("h", SHORT, 96),      # an ordinary member after the bitfields
        )),
        byte_order=order,
    )


@pytest.mark.parametrize("order", ORDERS)
def test_bitfields(order: ByteOrder) -> None:
    t = bitfield_spec(order).type_by_id(14)
    value = {"a": -2, "b": 17, "c": 0xABC, "d": 5, "f": True, "g": -(2**39) + 3, "h": -7}
    raw = roundtrip(t, value)
    expected = bytearray(pack_bits([(0, 3, -2), (3, 5, 17), (8, 12, 0xABC), (20, 4, 5), (24, 1, 1),
                                    (25, 40, -(2**39) + 3)], 16, order))
    expected[12:14] = struct.pack(p(order) + "h", -7)
    assert raw == bytes(expected)
    assert btf.encode_value(t, {"d": "E5"}) == pack_bits([(20, 4, 5)], 16, order)
    # Neighbours are left alone when one bitfield is written.
    assert btf.encode_value(t, {"c": 0xFFF}) == pack_bits([(8, 12, 0xFFF)], 16, order)
    assert btf.decode_value(t, pack_bits([(0, 3, 3), (3, 5, 31)], 16, order))["a"] == 3
    assert btf.decode_value(t, pack_bits([(0, 3, -4)], 16, order))["a"] == -4


def test_bitfield_range_errors() -> None:
    t = bitfield_spec("little").type_by_id(14)
    for member, bad, bounds in [("a", 4, "-4..3"), ("a", -5, "-4..3"), ("b", 32, "0..31"), ("b", -1, "0..31"),
                                ("d", 16, "-8..15"), ("f", 2, "0..1"), ("g", 2**39, "")]:
        with pytest.raises(ValueError, match=rf"at {member}: {bad} is out of range for \d+-bit bitfield "
                                             rf"{member} of .*{bounds}"):
            btf.encode_value(t, {member: bad})
    with pytest.raises(ValueError, match=r"at b: expected an int for 5-bit bitfield b of INT 'unsigned int' "
                                         r"\[2\], got bytes b'\\x01'"):
        btf.encode_value(t, {"b": b"\x01"})  # bitfields take values only, not raw bytes


@pytest.mark.parametrize("order", ORDERS)
def test_bitfields_random_round_trips(order: ByteOrder) -> None:
    """Random values at random bit offsets and widths decode to themselves, in both byte orders."""
    rng = random.Random(1234)
    for _ in range(40):
        members: list[Member] = []
        expected: list[tuple[int, int, int]] = []
        value: dict[str, int] = {}
        bit = rng.randrange(8)
        while True:
            width = rng.randint(1, 32)
            if bit + width > 128:
                break
            signed = rng.random() < 0.5
            name = f"m{len(members)}"
            members.append(Member(name, INT if signed else UINT, bit, width))
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            v = rng.randint(lo, hi)
            value[name] = v
            expected.append((bit, width, v))
            bit += width + rng.randrange(3)
        t = with_base(btf.Struct(13, "r", 16, tuple(members)), byte_order=order).type_by_id(13)
        raw = roundtrip(t, value)
        assert raw == pack_bits(expected, 16, order)


@pytest.mark.parametrize("order", ORDERS)
def test_legacy_bitfields_without_kind_flag(order: ByteOrder) -> None:
    """Old BTF: no bitfield_size; the member's INT carries ``bits`` and a ``bit_offset``."""
    spec = make(
        btf.Int(1, "int", 4, S, bit_offset=0, bits=3),
        btf.Int(2, "unsigned int", 4, U, bit_offset=2, bits=6),  # lands at member offset + 2
        btf.Int(3, "int", 4, S),
        btf.Struct(4, "old", 8, (Member("a", 1, 0), Member("b", 2, 3), Member("c", 3, 32))),
        byte_order=order,
    )
    t = spec.type_by_id(4)
    assert isinstance(t, btf.Struct) and not any(m.bitfield_size for m in t.members)
    raw = roundtrip(t, {"a": -1, "b": 45, "c": 9})
    expected = bytearray(pack_bits([(0, 3, -1), (5, 6, 45)], 8, order))
    expected[4:] = struct.pack(p(order) + "i", 9)
    assert raw == bytes(expected)


def test_bitfield_malformed() -> None:
    spec = with_base(
        btf.Struct(13, "wide", 4, (Member("a", UCHAR, 0, 9),)),
        btf.Struct(14, "past", 2, (Member("a", UINT, 12, 8),)),
        btf.Struct(15, "flt", 4, (Member("a", FLOAT, 0, 3),)),
        btf.Struct(16, "odd", 8, (Member("a", FLOAT, 4),)),
    )
    with pytest.raises(btf.BTFError, match=r"member 'a' of STRUCT 'wide' \[13\] is 9 bits wide, its type 8"):
        btf.Codec(spec.type_by_id(13))
    with pytest.raises(btf.BTFError, match="ends past the end of the 2-byte STRUCT"):
        btf.Codec(spec.type_by_id(14))
    with pytest.raises(btf.BTFError, match=r"is a bitfield of FLOAT 'float' \[9\]"):
        btf.Codec(spec.type_by_id(15))
    with pytest.raises(btf.BTFError, match="starts at bit 4, not on a byte"):
        btf.Codec(spec.type_by_id(16))


# -- datasec and var -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_datasec(order: ByteOrder) -> None:
    spec = with_base(
        btf.Var(13, "counter", INT, btf.VarLinkage.GLOBAL),
        btf.Array(14, "", CHAR_T, INT, 5),
        btf.Var(15, "name", 14, btf.VarLinkage.STATIC),
        btf.Var(16, "ratio", DOUBLE, btf.VarLinkage.GLOBAL),
        btf.Datasec(17, ".data", 24, (VarSecinfo(13, 0, 4), VarSecinfo(15, 4, 5), VarSecinfo(16, 16, 8))),
        btf.Datasec(18, ".data", 0, (VarSecinfo(13, 0, 4), VarSecinfo(15, 0, 5))),  # as clang leaves it
        btf.Datasec(19, ".bss", 12, (VarSecinfo(15, 4, 5), VarSecinfo(13, 0, 4))),  # not in offset order
        byte_order=order,
    )
    sec = spec.type_by_id(17)
    value = {"counter": -5, "name": b"abc\0\0", "ratio": 0.25}
    raw = roundtrip(sec, value)
    assert raw == struct.pack(p(order) + "i5s7xd", -5, b"abc", 0.25)
    assert btf.encode_value(sec, {"ratio": 1.0}) == struct.pack(p(order) + "16xd", 1.0)
    with pytest.raises(ValueError, match=r"DATASEC '\.data' \[17\] has no members 'other'"):
        btf.encode_value(sec, {"other": 1})
    # Variables need not be listed in offset order.
    bss = spec.type_by_id(19)
    raw = roundtrip(bss, {"counter": 1, "name": b"x\0\0\0\0"})
    assert raw == struct.pack(p(order) + "i", 1) + b"x" + b"\0" * 7
    # A section as clang leaves it (size 0, offsets 0) must be fixed up first.
    with pytest.raises(btf.BTFError, match=r"DATASEC '\.data' \[18\] has size 0: .* not been filled in"):
        btf.Codec(spec.type_by_id(18))
    # A VAR is its type.
    assert roundtrip(spec.type_by_id(16), 2.5) == struct.pack(p(order) + "d", 2.5)


def test_datasec_malformed() -> None:
    spec = with_base(
        btf.Var(13, "v", LL),
        btf.FuncProto(14, "", 0),
        btf.Func(15, "f", 14, btf.FuncLinkage.GLOBAL),
        btf.Datasec(16, ".small", 8, (VarSecinfo(13, 0, 4),)),
        btf.Datasec(17, ".ksyms", 8, (VarSecinfo(15, 0, 0),)),
        btf.Datasec(18, ".short", 4, (VarSecinfo(13, 0, 8),)),
        btf.Var(19, "w", INT),
        btf.Datasec(20, ".overlap", 16, (VarSecinfo(13, 0, 8), VarSecinfo(19, 4, 4))),
    )
    with pytest.raises(btf.BTFError, match=r"variable 'v' of DATASEC '\.small' \[16\] has 4 bytes, "
                                           r"its type 8"):
        btf.Codec(spec.type_by_id(16))
    with pytest.raises(btf.BTFError, match=r"holds FUNC 'f' \[15\], which has no value"):
        btf.Codec(spec.type_by_id(17))
    with pytest.raises(btf.BTFError, match="ends past the end of the 4-byte section"):
        btf.Codec(spec.type_by_id(18))
    with pytest.raises(btf.BTFError, match=r"variables 'v' and 'w' of DATASEC '\.overlap' \[20\] overlap"):
        btf.Codec(spec.type_by_id(20))


# -- types without values ------------------------------------------------------------------------


def test_types_without_values() -> None:
    spec = with_base(
        btf.Fwd(13, "later"),
        btf.FuncProto(14, "", INT, (btf.Param("x", INT),)),
        btf.Func(15, "fn", 14),
        btf.Struct(16, "has_fwd", 4, (Member("f", 13, 0),)),
        btf.Typedef(17, "vt", 0),
    )
    for tid, name in [(13, r"FWD 'later' \[13\]"), (14, r"FUNC_PROTO '\(anon\)' \[14\]"),
                      (15, r"FUNC 'fn' \[15\]"), (16, r"FWD 'later' \[13\]"), (17, "void")]:
        t = spec.type_by_id(tid)
        with pytest.raises(btf.BTFError, match=rf"{name} has no values to encode or decode"):
            btf.encode_value(t, 0)
        with pytest.raises(btf.BTFError, match=rf"{name} has no values"):
            btf.decode_value(t, b"")
    with pytest.raises(btf.BTFError, match="void has no values"):
        btf.Codec(spec.type_by_id(0))


# -- sizes, raw bytes, byte order --------------------------------------------------------------


def test_sizes_and_decode_length() -> None:
    spec = point_spec("little")
    for t in spec:
        try:
            codec = btf.Codec(t)
        except btf.BTFError:
            continue
        assert codec.size == btf.sizeof(t)
        assert len(codec.encode(b"\0" * codec.size)) == codec.size
        with pytest.raises(ValueError, match=rf"expected {codec.size} bytes, got {codec.size + 1}"):
            codec.decode(b"\0" * (codec.size + 1))
    point = spec.type_by_id(13)
    with pytest.raises(ValueError, match=r"cannot decode STRUCT 'point' \[13\]: expected 24 bytes, got 23"):
        btf.decode_value(point, b"\0" * 23)
    data = btf.encode_value(point, {"x": 3})
    assert btf.decode_value(point, bytearray(data)) == btf.decode_value(point, memoryview(data))


@pytest.mark.parametrize("raw_type", [bytes, bytearray, memoryview])
def test_raw_bytes_pass_through(raw_type: type) -> None:
    spec = with_base(
        btf.Array(13, "", INT, INT, 2),
        btf.Struct(14, "s", 24, (Member("a", INT, 0), Member("arr", 13, 32), Member("f", DOUBLE, 128))),
        btf.Union(15, "u", 8, (Member("s", 16, 0),)),
        btf.Struct(16, "pair", 8, (Member("lo", INT, 0), Member("hi", 13, 32))),
    )
    data = bytes(range(24))
    for tid in (INT, BOOL_T, DOUBLE, 13, 14):
        t = spec.type_by_id(tid)
        size = btf.sizeof(t)
        assert btf.encode_value(t, raw_type(data[:size])) == data[:size]
    s = spec.type_by_id(14)
    nested = btf.encode_value(s, {"a": 1, "arr": raw_type(b"\x09" * 8), "f": raw_type(b"\x07" * 8)})
    assert nested == b"\x01\0\0\0" + b"\x09" * 8 + b"\0" * 4 + b"\x07" * 8
    with pytest.raises(ValueError, match=r"at arr: expected 8 raw bytes for ARRAY .*got 7"):
        btf.encode_value(s, {"arr": raw_type(b"\0" * 7)})
    with pytest.raises(ValueError, match=r"expected 24 raw bytes for STRUCT 's' \[14\], got 23"):
        btf.encode_value(s, raw_type(b"\0" * 23))
    with pytest.raises(ValueError, match=r"expected 4 raw bytes for INT 'int' \[1\], got 3"):
        btf.encode_value(spec.type_by_id(INT), raw_type(b"\0" * 3))


def test_byte_order_defaults_and_overrides() -> None:
    big = point_spec("big").type_by_id(INT)
    little = point_spec("little").type_by_id(INT)
    assert btf.encode_value(big, 1) == b"\0\0\0\x01"
    assert btf.encode_value(little, 1) == b"\x01\0\0\0"
    assert btf.encode_value(big, 1, byte_order="little") == b"\x01\0\0\0"
    assert btf.decode_value(little, b"\0\0\0\x01", byte_order="big") == 1
    assert btf.Codec(big).byte_order == "big"
    free = btf.Int(1, "int", 4, S)  # belongs to no spec: little-endian
    assert btf.encode_value(free, 2) == b"\x02\0\0\0"
    with pytest.raises(ValueError, match="byte_order must be 'little' or 'big'"):
        btf.Codec(big, "middle")  # type: ignore[arg-type]


def test_codec_reuse() -> None:
    codec = btf.Codec(bitfield_spec("big").type_by_id(14))
    assert codec.size == 16
    assert repr(codec) == "<btf.Codec STRUCT 'bits' [14], 16 bytes, big-endian>"
    for i in range(50):
        value = {"a": i % 4, "b": i % 32, "c": i, "d": i % 16, "f": bool(i % 2), "g": -i, "h": i - 25}
        assert codec.decode(codec.encode(value)) == value


# -- malformed type graphs -----------------------------------------------------------------------


def test_cycles_and_depth() -> None:
    spec = with_base(
        btf.Struct(13, "self", 8, (Member("a", INT, 0), Member("me", 13, 32))),
        btf.Array(14, "", 14, INT, 2),
        btf.Typedef(15, "loop", 16),
        btf.Typedef(16, "loop2", 15),
        btf.Struct(17, "a", 4, (Member("b", 18, 0),)),
        btf.Union(18, "b", 4, (Member("arr", 19, 0),)),
        btf.Array(19, "", 17, INT, 1),
        btf.Var(20, "v", 20),
    )
    with pytest.raises(btf.BTFError, match=r"STRUCT 'self' \[13\] contains itself by value"):
        btf.Codec(spec.type_by_id(13))
    with pytest.raises(btf.BTFError, match=r"ARRAY '\(anon\)' \[14\] contains itself"):
        btf.Codec(spec.type_by_id(14))
    with pytest.raises(btf.BTFError, match="cyclic"):
        btf.Codec(spec.type_by_id(15))
    with pytest.raises(btf.BTFError, match=r"STRUCT 'a' \[17\] contains itself"):
        btf.Codec(spec.type_by_id(17))
    with pytest.raises(btf.BTFError, match="cyclic"):
        btf.Codec(spec.type_by_id(20))

    # A chain of structs, each holding the next, deeper than MAX_DEPTH.
    chain = [btf.Struct(i, f"s{i}", 4, (Member("n", i + 1, 0),)) for i in range(1, MAX_DEPTH + 5)]
    deep = make(*chain, btf.Int(MAX_DEPTH + 5, "int", 4, S))
    with pytest.raises(btf.BTFError, match=f"nested more than {MAX_DEPTH} deep"):
        btf.Codec(deep.type_by_id(1))
    shallow = btf.Codec(deep.type_by_id(10))  # within the limit: fine
    assert shallow.size == 4


def test_zero_sized_elements() -> None:
    """An array of empty structs may not decode to a huge list out of no bytes."""
    spec = make(
        btf.Struct(1, "empty", 0),
        btf.Int(2, "int", 4, S),
        btf.Array(3, "", 1, 2, 3),
        btf.Array(4, "", 1, 2, 2**32 - 1),
    )
    assert roundtrip(spec.type_by_id(3), [{}, {}, {}]) == b""
    with pytest.raises(btf.BTFError, match="more than 65536 elements of size 0"):
        btf.Codec(spec.type_by_id(4))


def test_long_listings_are_cut() -> None:
    members = tuple(Member(f"m{i}", 1, 8 * i) for i in range(30))
    values = tuple(EnumValue(f"E{i}", i) for i in range(30))
    spec = make(btf.Int(1, "char", 1, S), btf.Struct(2, "wide", 30, members), btf.Enum(3, "many", 4, values))
    with pytest.raises(ValueError, match=r"it has: m0, m1, .*, m19, \.\.\. \(10 more\)\)$"):
        btf.encode_value(spec.type_by_id(2), {"zz": 1})
    with pytest.raises(ValueError, match=r"\(E0, .*, E19, \.\.\. \(10 more\)\)$"):
        btf.encode_value(spec.type_by_id(3), "NOPE")


def test_shared_subtypes_are_built_once() -> None:
    """A struct of two copies of a struct of two copies of ...: linear, not exponential."""
    types: list[btf.Type] = [btf.Int(1, "int", 4, S)]
    for i in range(2, 60):
        types.append(btf.Struct(i, f"s{i}", 8, (Member("l", i - 1, 0), Member("r", i - 1, 0))))
    spec = make(*types)
    codec = btf.Codec(spec.type_by_id(59))
    assert codec.size == 8


# -- the kernel's types -------------------------------------------------------------------------


@pytest.mark.kernel
def test_kernel_types() -> None:
    """Codecs build for a sample of the kernel's structs and unions; real bitfields decode."""
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip(f"{vmlinux} does not exist")
    kernel = btf.load_kernel_spec()
    composites = [t for t in kernel if isinstance(t, (btf.Struct, btf.Union))]
    for t in [*composites[::25], *kernel.types_by_name("task_struct", btf.Kind.STRUCT)]:
        codec = btf.Codec(t)
        assert codec.size == btf.sizeof(t)
        assert codec.encode(codec.decode(bytes(codec.size))) == bytes(codec.size)
    (iphdr,) = kernel.types_by_name("iphdr", btf.Kind.STRUCT)
    header = bytes.fromhex("4500003c1c4640004006b1e6ac100a63ac100a0c")
    ip = btf.decode_value(iphdr, header)
    assert (ip["version"], ip["ihl"], ip["ttl"], ip["protocol"]) == (4, 5, 64, 6)
    assert btf.encode_value(iphdr, ip) == header


# -- against clang -----------------------------------------------------------------------------

C_SOURCE = r"""
enum color { RED = 1, GREEN = 2, BLUE = -3 };

struct g_t {
    int a:3;
    unsigned b:5;
    unsigned c2:9;
    char name[8];
    long long c;
    enum color e;
    union { int x; unsigned char bytes[4]; } u;
    struct { short s:4; unsigned short t:12; };
    unsigned char flags:1, mode:7;
    int arr[2];
};

struct g_t g = {
    .a = -2, .b = 17, .c2 = 300, .name = "hi", .c = -5, .e = BLUE,
    .u = { .x = 0x01020304 }, .s = -3, .t = 0xabc, .flags = 1, .mode = 100, .arr = { -1, 7 },
};
int counter = 42;
"""


def compile_bpf(tmp_path: Path, target: str) -> tuple[btf.Spec, bytes]:
    """Compile :data:`C_SOURCE` for ``target``; its BTF (``.data``'s DATASEC fixed up) and ``.data``."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed")
    src = tmp_path / "g.c"
    src.write_text(C_SOURCE)
    obj = tmp_path / f"g-{target}.o"
    subprocess.run([clang, "-O2", "-g", "-target", target, "-c", str(src), "-o", str(obj)], check=True)
    raw_btf, data = elf_section(obj, ".BTF"), elf_section(obj, ".data")
    assert raw_btf is not None and data is not None
    spec = btf.load_spec(raw_btf)
    # clang leaves the DATASEC's size and offsets at 0; take them from the symbols, as libbpf does.
    with obj.open("rb") as f:
        elf = ELFFile(f)
        symtab: Any = elf.get_section_by_name(".symtab")
        data_index = next(i for i, sec in enumerate(elf.iter_sections()) if sec.name == ".data")
        offsets = {
            sym.name: sym["st_value"] for sym in symtab.iter_symbols() if sym["st_shndx"] == data_index
        }
    sec = spec.type_by_name(".data", btf.Kind.DATASEC)
    assert isinstance(sec, btf.Datasec) and sec.size == 0
    fixed = btf.Datasec(sec.id, sec.name, len(data),
                        tuple(VarSecinfo(v.type_id, offsets[v.type.name], v.size) for v in sec.vars))
    types = [fixed if t.id == sec.id else t for t in spec.own_types()]
    return btf.Spec.from_types(types, byte_order=spec.byte_order), data


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_against_clang(tmp_path: Path, target: str) -> None:
    spec, data = compile_bpf(tmp_path, target)
    assert spec.byte_order == ("little" if target == "bpfel" else "big")
    (g_t,) = spec.types_by_name("g_t", btf.Kind.STRUCT)
    (color,) = spec.types_by_name("color", btf.Kind.ENUM)
    assert isinstance(color, btf.Enum) and isinstance(g_t, btf.Struct)
    assert any(m.bitfield_size for m in g_t.members)
    expected_g = {
        "a": -2, "b": 17, "c2": 300, "name": b"hi\0\0\0\0\0\0", "c": -5, "e": color.value_of("BLUE"),
        "u": {"x": 0x01020304, "bytes": (0x01020304).to_bytes(4, spec.byte_order)},
        "s": -3, "t": 0xABC, "flags": 1, "mode": 100, "arr": [-1, 7],
    }
    g_size = btf.sizeof(g_t)
    (g_var,) = spec.types_by_name("g", btf.Kind.VAR)
    (sec,) = spec.types_by_name(".data", btf.Kind.DATASEC)
    assert isinstance(sec, btf.Datasec)
    g_offset = next(v.offset for v in sec.vars if v.type_id == g_var.id)
    g_bytes = data[g_offset : g_offset + g_size]

    assert btf.decode_value(g_t, g_bytes) == expected_g
    assert btf.encode_value(g_t, expected_g) == g_bytes
    assert btf.encode_value(g_t, {**expected_g, "e": "BLUE"}) == g_bytes
    assert btf.encode_value(g_t, {**expected_g, "e": -3}) == g_bytes

    # The whole section.
    section = btf.Codec(sec)
    assert section.size == len(data)
    assert section.decode(data) == {"g": expected_g, "counter": 42}
    assert section.encode({"g": expected_g, "counter": 42}) == data
    # The other byte order gives other bytes for the same value.
    other: ByteOrder = "big" if spec.byte_order == "little" else "little"
    swapped = btf.encode_value(g_t, {**expected_g, "u": {"x": 0x01020304}}, byte_order=other)
    assert swapped != g_bytes
    assert btf.decode_value(g_t, swapped, byte_order=other) == {
        **expected_g, "u": {"x": 0x01020304, "bytes": (0x01020304).to_bytes(4, other)}
    }


def test_clang_byte_orders_agree(tmp_path: Path) -> None:
    """The same initialiser decodes to the same values from the bpfel and the bpfeb object."""
    el_spec, el_data = compile_bpf(tmp_path, "bpfel")
    eb_spec, eb_data = compile_bpf(tmp_path, "bpfeb")
    el = btf.decode_value(el_spec.type_by_name(".data", btf.Kind.DATASEC), el_data)
    eb = btf.decode_value(eb_spec.type_by_name(".data", btf.Kind.DATASEC), eb_data)
    assert el_data != eb_data
    el["g"].pop("u")
    eb["g"].pop("u")
    assert el == eb
