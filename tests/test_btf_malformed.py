"""btf on bad input: every malformation is a ``BTFError`` naming the place at fault.

Blobs are built by hand with :mod:`struct` (both byte orders) so each test controls the
exact bytes and can assert the exact type ID and offset reported. Offsets in errors are
relative to the start of the blob for header problems, to the type section for record
problems and to the string section for string-table problems.

The parser is lazy: :func:`btf.load_spec` checks the header, the record boundaries and
each type's own name offset; everything else in a record (references, member names, INT
encodings, linkage) is checked when the record is decoded, so tests call ``list(spec)``.

Also here: cyclic and pathological type graphs in :mod:`btf.layout`, immutability of
types and of :meth:`btf.Spec.copy`, and wire round trips of real BTF.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import btf
from btf import Kind
from btf.layout import MAX_NESTING_DEPTH
from btf.strings import StringTable
from btf.wire import HEADER_SIZE, RECORD_PER_VLEN, ByteOrder
from tests.conftest import bpf_objects
from tests.util import elf_section

VMLINUX = Path("/sys/kernel/btf/vmlinux")

#: struct prefixes of the two byte orders; every hand-built case runs in both.
ORDERS = ["<", ">"]
ORDER_IDS = ["le", "be"]

#: The string table of the hand-built blobs: "int" at 1, "x" at 5, "y" at 7.
STRINGS = b"\0int\0x\0y\0"
INT_NAME, X, Y = 1, 5, 7

#: Byte offset (in the type section) of type 2 in the blobs built by :func:`with_int`.
REC2 = 16


# -- blob builders ---------------------------------------------------------------------


def header(e: str, *, magic: int = 0xEB9F, version: int = 1, flags: int = 0, hdr_len: int = HEADER_SIZE,
           type_off: int = 0, type_len: int = 0, str_off: int = 0, str_len: int = 0) -> bytes:
    """A 24-byte ``struct btf_header`` in byte order ``e`` (``"<"`` or ``">"``)."""
    return struct.pack(e + "HBBIIIII", magic, version, flags, hdr_len, type_off, type_len, str_off, str_len)


def blob(e: str, types: bytes, strings: bytes = STRINGS, **fields: int) -> bytes:
    """Header + type section + string section, with the header describing them (unless
    ``fields`` override its values)."""
    values = {"type_off": 0, "type_len": len(types), "str_off": len(types), "str_len": len(strings)}
    values.update(fields)
    return header(e, **values) + types + strings


def rec(e: str, name_off: int, kind: int, size_or_type: int = 0, *, vlen: int = 0,
        kind_flag: bool = False) -> bytes:
    """The 12-byte common part of a type record (``struct btf_type``)."""
    info = int(kind_flag) << 31 | kind << 24 | vlen
    return struct.pack(e + "III", name_off, info, size_or_type)


def int_rec(e: str, name_off: int = INT_NAME, size: int = 4, bits: int = 32, bit_offset: int = 0,
            encoding: int = 0) -> bytes:
    """A complete ``BTF_KIND_INT`` record (16 bytes)."""
    return rec(e, name_off, Kind.INT, size) + struct.pack(e + "I", encoding << 24 | bit_offset << 16 | bits)


def words(e: str, *values: int) -> bytes:
    """``values`` as u32 words."""
    return struct.pack(f"{e}{len(values)}I", *values)


def with_int(e: str, *records: bytes) -> bytes:
    """A blob whose type 1 is ``int`` and whose types 2... are ``records`` (type 2 at offset 16)."""
    return blob(e, int_rec(e) + b"".join(records))


def raises_btf(func: Callable[[], object]) -> btf.BTFError:
    """Call ``func``, which must raise ``BTFError``; return the error."""
    with pytest.raises(btf.BTFError) as info:
        func()
    err = info.value
    assert isinstance(err, ValueError)
    return err


def assert_names(err: btf.BTFError, *, type_id: int | None = None, offset: int | None = None) -> None:
    """``err`` carries ``type_id`` and ``offset`` as attributes and in its message."""
    if type_id is not None:
        assert err.type_id == type_id, str(err)
        assert f"[{type_id}]" in str(err)
    if offset is not None:
        assert err.offset == offset, str(err)
        assert f"{offset:#x}" in str(err)


def decode_all(data: bytes) -> btf.Spec:
    """Load ``data`` and decode every type."""
    spec = btf.load_spec(data)
    list(spec)
    return spec


@pytest.fixture(params=ORDERS, ids=ORDER_IDS)
def e(request: pytest.FixtureRequest) -> str:
    """The byte order of a hand-built case."""
    order: str = request.param
    return order


def test_builders_make_valid_btf(e: str) -> None:
    """The builders' baseline blob parses, in the byte order asked for."""
    spec = decode_all(with_int(e, rec(e, X, Kind.PTR, 1)))
    assert spec.byte_order == ("little" if e == "<" else "big")
    assert [t.kind for t in spec] == [Kind.UNKNOWN, Kind.INT, Kind.PTR]
    assert spec.type_by_id(1).name == "int" and spec.type_by_id(2).name == "x"


# -- header --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 12, HEADER_SIZE - 1])
def test_short_header(e: str, length: int) -> None:
    """Fewer bytes than a header: an error, whatever the prefix."""
    data = with_int(e)[:length]
    err = raises_btf(lambda: btf.load_spec(data))
    assert "too short" in str(err)


@pytest.mark.parametrize("magic", [0, 0x9FEB + 1, 0xEB9E, 0xFFFF])
def test_bad_magic(e: str, magic: int) -> None:
    """Not eb9f in either byte order (0x9FEB would be the other byte order's magic)."""
    data = with_int(e)
    bad = struct.pack(e + "H", magic) + data[2:]
    err = raises_btf(lambda: btf.load_spec(bad))
    assert_names(err, offset=0)
    assert "magic" in str(err)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_bad_version(e: str, version: int) -> None:
    """Only version 1 exists."""
    data = bytearray(with_int(e))
    data[2] = version
    err = raises_btf(lambda: btf.load_spec(bytes(data)))
    assert_names(err, offset=2)
    assert "version" in str(err)


@pytest.mark.parametrize("hdr_len", [0, 8, HEADER_SIZE - 1, 1000, 0xFFFFFFFF])
def test_bad_header_length(e: str, hdr_len: int) -> None:
    """Shorter than the known header, or longer than the whole blob."""
    types = int_rec(e)
    data = header(e, hdr_len=hdr_len, type_len=len(types), str_off=len(types), str_len=len(STRINGS))
    err = raises_btf(lambda: btf.load_spec(data + types + STRINGS))
    assert_names(err, offset=4)
    assert "header length" in str(err)


def test_longer_header_with_zero_tail_is_accepted(e: str) -> None:
    """A newer, longer header is fine as long as the fields we do not know are zero."""
    types = int_rec(e)
    data = header(e, hdr_len=32, type_len=len(types), str_off=len(types), str_len=len(STRINGS))
    spec = decode_all(data + bytes(8) + types + STRINGS)
    assert spec.type_by_id(1).name == "int"


@pytest.mark.parametrize("where", [0, 3, 7])
def test_unknown_non_zero_header_bytes(e: str, where: int) -> None:
    """Header bytes past the fields we know must be zero (as the kernel requires)."""
    types = int_rec(e)
    tail = bytearray(8)
    tail[where] = 1
    data = header(e, hdr_len=32, type_len=len(types), str_off=len(types), str_len=len(STRINGS))
    err = raises_btf(lambda: btf.load_spec(data + bytes(tail) + types + STRINGS))
    assert_names(err, offset=HEADER_SIZE)


@pytest.mark.parametrize("type_len", [26, 28, 1 << 20, 0xFFFFFFFF])
def test_type_section_runs_past_the_end(e: str, type_len: int) -> None:
    """A type_len larger than the data (25 bytes of body): an error, not an allocation of
    type_len bytes."""
    types = int_rec(e)
    data = blob(e, types, type_len=type_len)
    tracemalloc.start()
    try:
        err = raises_btf(lambda: btf.load_spec(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_names(err, offset=HEADER_SIZE)
    assert "type section" in str(err)
    assert peak < 64 * 1024


@pytest.mark.parametrize(("str_off", "str_len"), [(16, 10), (16, 0xFFFFFFFF), (0xFFFFFFFF, 1), (27, 1)])
def test_string_section_runs_past_the_end(e: str, str_off: int, str_len: int) -> None:
    """str_off/str_len past the data (including u32 wrap-around values)."""
    types = int_rec(e)  # 16 bytes of types + 9 of strings: 25 bytes of body
    data = blob(e, types, str_off=str_off, str_len=str_len)
    err = raises_btf(lambda: btf.load_spec(data))
    assert_names(err, offset=HEADER_SIZE + str_off)
    assert "string section" in str(err)


@pytest.mark.parametrize(
    ("type_off", "type_len", "str_off", "str_len"),
    [
        (0, 16, 8, 9),   # strings start inside the types
        (8, 16, 0, 12),  # types start inside the strings
        (0, 16, 0, 16),  # both start at the same offset
        (4, 8, 0, 24),   # types entirely inside the strings
        (0, 24, 4, 8),   # strings entirely inside the types
    ],
)
def test_overlapping_sections(e: str, type_off: int, type_len: int, str_off: int, str_len: int) -> None:
    """Type and string sections may not share bytes, however they overlap."""
    body = bytes(32)
    data = header(e, type_off=type_off, type_len=type_len, str_off=str_off, str_len=str_len) + body
    err = raises_btf(lambda: btf.load_spec(data))
    assert_names(err, offset=8)
    assert "overlap" in str(err)


def test_adjacent_sections_in_either_order_are_accepted(e: str) -> None:
    """Strings first, then types: legal, and not mistaken for an overlap."""
    types = int_rec(e)
    pad = bytes(-len(STRINGS) % 4)  # keeps type_off aligned
    data = header(e, type_off=len(STRINGS) + len(pad), type_len=len(types), str_off=0,
                  str_len=len(STRINGS))
    spec = decode_all(data + STRINGS + pad + types)
    assert spec.type_by_id(1).name == "int"


@pytest.mark.parametrize("type_off", [1, 2, 3, 6])
def test_misaligned_type_section(e: str, type_off: int) -> None:
    """type_off must be 4-byte aligned."""
    types = int_rec(e)
    data = header(e, type_off=type_off, type_len=len(types), str_off=type_off + len(types),
                  str_len=len(STRINGS))
    err = raises_btf(lambda: btf.load_spec(data + bytes(type_off) + types + STRINGS))
    assert_names(err, offset=8)
    assert "aligned" in str(err)


# -- string table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strings", "message"),
    [
        (b"", "start with the empty string"),
        (b"int\0", "start with the empty string"),
        (b"\0int", "not NUL-terminated"),
        (b"\0int\0x", "not NUL-terminated"),
    ],
)
def test_bad_string_table(e: str, strings: bytes, message: str) -> None:
    """The table must start with the empty string and end with a NUL."""
    types = rec(e, 0, Kind.PTR, 0)
    data = blob(e, types, strings)
    err = raises_btf(lambda: btf.load_spec(data))
    assert message in str(err)
    assert err.offset == HEADER_SIZE + len(types)  # where the string section starts


@pytest.mark.parametrize("name_off", [len(STRINGS), len(STRINGS) + 1, 0xFFFFFFFF])
def test_type_name_offset_out_of_range(e: str, name_off: int) -> None:
    """Checked when the spec is opened, naming the type and its record."""
    data = with_int(e, rec(e, 0, Kind.PTR, 1), rec(e, name_off, Kind.TYPEDEF, 1), rec(e, 0, Kind.PTR, 1))
    err = raises_btf(lambda: btf.load_spec(data))
    assert_names(err, type_id=3, offset=REC2 + 12)
    assert str(name_off) in str(err)


def test_type_name_offset_at_the_last_nul_is_the_empty_name(e: str) -> None:
    """The boundary: the last byte (a NUL) is a valid offset."""
    spec = decode_all(with_int(e, rec(e, len(STRINGS) - 1, Kind.TYPEDEF, 1)))
    assert spec.type_by_id(2).name == ""


def test_name_offset_into_the_middle_of_a_string(e: str) -> None:
    """Legal (tables share suffixes): the name is the string's tail."""
    spec = decode_all(with_int(e, rec(e, INT_NAME + 1, Kind.TYPEDEF, 1)))
    assert spec.type_by_id(2).name == "nt"


def _member_name_cases(e: str, bad: int) -> dict[str, bytes]:
    """Records (as type 2) whose member/enumerator/parameter name offset is ``bad``."""
    return {
        "struct member": rec(e, X, Kind.STRUCT, 4, vlen=1) + words(e, bad, 1, 0),
        "union member": rec(e, X, Kind.UNION, 4, vlen=2) + words(e, Y, 1, 0, bad, 1, 0),
        "enum value": rec(e, X, Kind.ENUM, 4, vlen=1) + words(e, bad, 7),
        "enum64 value": rec(e, X, Kind.ENUM64, 8, vlen=1) + words(e, bad, 7, 0),
        "func_proto param": rec(e, 0, Kind.FUNC_PROTO, 1, vlen=1) + words(e, bad, 1),
    }


@pytest.mark.parametrize("case", list(_member_name_cases("<", 0)))
def test_component_name_offset_out_of_range(e: str, case: str) -> None:
    """Found when the record is decoded; the error still names the record."""
    data = with_int(e, _member_name_cases(e, len(STRINGS) + 3)[case])
    spec = btf.load_spec(data)
    assert spec.type_by_id(1).name == "int"  # the good types stay usable
    for decode in (lambda: list(spec), lambda: spec.type_by_id(2)):
        err = raises_btf(decode)
        assert_names(err, type_id=2, offset=REC2)
        assert str(len(STRINGS) + 3) in str(err)


# -- record boundaries (checked when the spec is opened) -------------------------------


@pytest.mark.parametrize("length", [1, 4, 8])
def test_type_record_header_truncated(e: str, length: int) -> None:
    """Fewer than 12 bytes left for a record's common header."""
    data = blob(e, int_rec(e) + rec(e, X, Kind.PTR, 1)[:length] + bytes(-length % 4))
    err = raises_btf(lambda: btf.load_spec(data))
    assert_names(err, type_id=2, offset=REC2)
    assert "truncated" in str(err)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [(Kind.INT, 4), (Kind.ARRAY, 12), (Kind.VAR, 4), (Kind.DECL_TAG, 4)],
)
def test_type_record_data_truncated(e: str, kind: Kind, extra: int) -> None:
    """The fixed data after the 12-byte header is cut short."""
    record = rec(e, X, kind, 1) + bytes(extra - 4)  # four bytes missing
    err = raises_btf(lambda: btf.load_spec(with_int(e, record)))
    assert_names(err, type_id=2, offset=REC2)
    assert "past the end of the type section" in str(err)


@pytest.mark.parametrize("kind", [Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FUNC_PROTO,
                                  Kind.DATASEC])
@pytest.mark.parametrize("vlen", [1, 3, 0xFFFF])
def test_vlen_larger_than_the_section(e: str, kind: Kind, vlen: int) -> None:
    """vlen entries that do not fit: an error before anything is sized by vlen."""
    # one entry short; for vlen 0xFFFF, a 40-byte section (786k bytes short)
    filler = RECORD_PER_VLEN[kind] * (vlen - 1) if vlen < 0xFFFF else 28
    section = rec(e, X, kind, 4, vlen=vlen) + bytes(filler)
    data = blob(e, section)
    tracemalloc.start()
    try:
        err = raises_btf(lambda: btf.load_spec(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_names(err, type_id=1, offset=0)
    assert peak < 64 * 1024, f"{peak} bytes allocated for a {len(data)}-byte blob"


def test_huge_vlen_in_the_middle_of_the_section(e: str) -> None:
    """A record whose entries would swallow the records after it and run past the end."""
    section = int_rec(e) + rec(e, X, Kind.STRUCT, 4, vlen=0xFFFF) + int_rec(e) * 4
    err = raises_btf(lambda: btf.load_spec(blob(e, section)))
    assert_names(err, type_id=2, offset=REC2)


@pytest.mark.parametrize("kind", [0, *range(20, 32)])
def test_unknown_kind(e: str, kind: int) -> None:
    """Kind 0 has no record; 20..31 do not exist (yet). Found when the spec is opened."""
    data = with_int(e, rec(e, X, kind, 1), rec(e, Y, Kind.PTR, 1))
    err = raises_btf(lambda: btf.load_spec(data))
    assert_names(err, type_id=2, offset=REC2)
    assert f"unknown kind {kind}" in str(err)


# -- references (checked when a record is decoded) ---------------------------------------


def _ref_cases(e: str, bad: int) -> dict[str, tuple[bytes, int]]:
    """Records (as type 2) that refer to type ``bad``, with the offset of the bad field
    inside the record."""
    return {
        "PTR": (rec(e, 0, Kind.PTR, bad), 8),
        "TYPEDEF": (rec(e, X, Kind.TYPEDEF, bad), 8),
        "VOLATILE": (rec(e, 0, Kind.VOLATILE, bad), 8),
        "CONST": (rec(e, 0, Kind.CONST, bad), 8),
        "RESTRICT": (rec(e, 0, Kind.RESTRICT, bad), 8),
        "TYPE_TAG": (rec(e, X, Kind.TYPE_TAG, bad), 8),
        "FUNC": (rec(e, X, Kind.FUNC, bad, vlen=1), 8),
        "ARRAY elem": (rec(e, 0, Kind.ARRAY) + words(e, bad, 1, 4), 12),
        "ARRAY index": (rec(e, 0, Kind.ARRAY) + words(e, 1, bad, 4), 16),
        "STRUCT member": (rec(e, X, Kind.STRUCT, 8, vlen=2) + words(e, X, 1, 0, Y, bad, 32), 28),
        "UNION member": (rec(e, X, Kind.UNION, 4, vlen=2) + words(e, X, bad, 0, Y, 1, 0), 16),
        "FUNC_PROTO return": (rec(e, 0, Kind.FUNC_PROTO, bad, vlen=1) + words(e, X, 1), 8),
        "FUNC_PROTO param": (rec(e, 0, Kind.FUNC_PROTO, 1, vlen=2) + words(e, X, 1, Y, bad), 24),
        "DATASEC var": (rec(e, X, Kind.DATASEC, 8, vlen=2) + words(e, 1, 0, 4, bad, 4, 4), 24),
        "VAR": (rec(e, X, Kind.VAR, bad) + words(e, 1), 8),
        "DECL_TAG": (rec(e, X, Kind.DECL_TAG, bad) + struct.pack(e + "i", -1), 8),
    }


REF_CASES = list(_ref_cases("<", 0))


@pytest.mark.parametrize("bad", [3, 4, 1000, 0x7FFFFFFF, 0xFFFFFFFF])
@pytest.mark.parametrize("case", REF_CASES)
def test_reference_out_of_range(e: str, case: str, bad: int) -> None:
    """Type 2 of 3 (Void, int, it) refers to a type that does not exist."""
    record, field = _ref_cases(e, bad)[case]
    spec = btf.load_spec(with_int(e, record))
    assert len(spec) == 3
    assert spec.type_by_id(1).name == "int"
    decoders: list[Callable[[], object]] = [lambda: list(spec), lambda: spec.type_by_id(2)]
    if struct.unpack_from(e + "I", record)[0] == X:  # named: reachable by name, too
        decoders.append(lambda: spec.types_by_name("x"))
    for decode in decoders:
        err = raises_btf(decode)
        assert_names(err, type_id=2, offset=REC2 + field)
        assert str(bad) in str(err)
    # the error is not cached away: asking again raises again
    assert_names(raises_btf(lambda: list(spec)), type_id=2)


@pytest.mark.parametrize("case", REF_CASES)
def test_reference_to_the_last_type_is_fine(e: str, case: str) -> None:
    """The boundary: ID len(spec) - 1 (here, the record itself) exists."""
    record, _ = _ref_cases(e, 2)[case]
    spec = decode_all(with_int(e, record))
    assert 2 in spec.type_by_id(2).refs()


def test_split_btf_reference_and_name_out_of_range(e: str) -> None:
    """Split BTF: IDs and string offsets continue the base's; past both is an error."""
    order = "little" if e == "<" else "big"
    base = btf.load_spec(with_int(e))  # IDs 0-1, 9 bytes of strings
    split_strings = b"y\0"  # "y" at 9
    good = blob(e, rec(e, 9, Kind.TYPEDEF, 1) + rec(e, 0, Kind.PTR, 3), split_strings)
    split = btf.load_spec(good, base=base)
    assert [t.name for t in split] == ["", "int", "y", ""]
    again = btf.load_spec(split.to_bytes(), base=base)
    assert again == split and again.byte_order == order
    bad_ref = blob(e, rec(e, 9, Kind.TYPEDEF, 4), split_strings)
    assert_names(raises_btf(lambda: list(btf.load_spec(bad_ref, base=base))), type_id=2, offset=8)
    bad_name = blob(e, rec(e, 11, Kind.TYPEDEF, 1), split_strings)
    assert_names(raises_btf(lambda: btf.load_spec(bad_name, base=base)), type_id=2, offset=0)


# -- invalid values (checked when a record is decoded) -----------------------------------


@pytest.mark.parametrize(
    ("size", "bits", "bit_offset"),
    [(0, 0, 0), (3, 24, 0), (5, 32, 0), (32, 32, 0), (0xFFFFFFFF, 32, 0),
     (4, 33, 0), (1, 9, 0), (4, 32, 1), (8, 1, 64), (16, 129, 0)],
)
def test_invalid_int(e: str, size: int, bits: int, bit_offset: int) -> None:
    """INT sizes are 1/2/4/8/16 bytes, and the bits must fit the size."""
    spec = btf.load_spec(with_int(e, int_rec(e, X, size=size, bits=bits, bit_offset=bit_offset)))
    err = raises_btf(lambda: list(spec))
    assert_names(err, type_id=2, offset=REC2 + 12)
    assert "INT" in str(err)


@pytest.mark.parametrize("linkage", [3, 0xFF, 0xFFFF])
def test_invalid_func_linkage(e: str, linkage: int) -> None:
    """FUNC linkage (the vlen field) is static, global or extern."""
    proto = rec(e, 0, Kind.FUNC_PROTO, 1)
    spec = btf.load_spec(with_int(e, rec(e, X, Kind.FUNC, 3, vlen=linkage), proto))
    err = raises_btf(lambda: list(spec))
    assert_names(err, type_id=2, offset=REC2)
    assert "linkage" in str(err)


@pytest.mark.parametrize("linkage", [3, 0x100, 0xFFFFFFFF])
def test_invalid_var_linkage(e: str, linkage: int) -> None:
    """VAR linkage is static, global or extern."""
    spec = btf.load_spec(with_int(e, rec(e, X, Kind.VAR, 1) + words(e, linkage)))
    err = raises_btf(lambda: list(spec))
    assert_names(err, type_id=2, offset=REC2 + 12)
    assert "linkage" in str(err)


# -- cycles and pathological graphs -----------------------------------------------------

INT = btf.Int(1, "int", 4, btf.IntEncoding.SIGNED)


def build(*types: btf.Type, byte_order: ByteOrder = "little") -> btf.Spec:
    """A spec of ``types`` (IDs from 1), marshaled and parsed back, fully decoded."""
    spec = btf.load_spec(btf.marshal_types(types, byte_order=byte_order))
    assert len(list(spec)) == len(types) + 1  # parsing is lazy and accepts cycles
    return spec


def assert_cyclic(func: Callable[[btf.Type], object], t: btf.Type, ids: set[int]) -> None:
    """``func(t)`` raises ``BTFError`` naming one of the types in the cycle ``ids``."""
    err = raises_btf(lambda: func(t))
    assert err.type_id in ids, str(err)
    assert f"[{err.type_id}]" in str(err)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_typedef_cycle(byte_order: ByteOrder) -> None:
    """typedef A -> typedef B -> typedef A."""
    spec = build(btf.Typedef(1, "A", 2), btf.Typedef(2, "B", 1), byte_order=byte_order)
    for tid in (1, 2):
        t = spec.type_by_id(tid)
        for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers_and_typedefs):
            assert_cyclic(func, t, {1, 2})
        assert btf.skip_qualifiers(t) == t  # a typedef is not a qualifier: nothing to follow


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", [btf.Const, btf.Volatile, btf.Restrict, btf.TypeTag])
def test_qualifier_self_loop(kind: Callable[[int, str, int], btf.Type]) -> None:
    """A qualifier (or type tag) on itself."""
    spec = build(kind(1, "", 1))
    t = spec.type_by_id(1)
    for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers, btf.skip_qualifiers_and_typedefs):
        assert_cyclic(func, t, {1})


@pytest.mark.timeout(10)
def test_type_tag_and_typedef_mixed_cycle() -> None:
    """A cycle through every kind of layer the helpers look through."""
    spec = build(INT, btf.Const(2, "", 3), btf.TypeTag(3, "user", 4), btf.Typedef(4, "T", 5),
                 btf.Volatile(5, "", 2))
    for tid in range(2, 6):
        for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers_and_typedefs):
            assert_cyclic(func, spec.type_by_id(tid), {2, 3, 4, 5})


@pytest.mark.timeout(10)
def test_array_of_itself() -> None:
    """An array whose element type is the array."""
    spec = build(INT, btf.Array(2, "", 2, 1, 4))
    t = spec.type_by_id(2)
    assert_cyclic(btf.sizeof, t, {2})
    assert_cyclic(btf.alignof, t, {2})
    assert btf.skip_qualifiers_and_typedefs(t) == t  # an array is neither: returned as is


@pytest.mark.timeout(10)
def test_struct_containing_itself() -> None:
    """By value: alignment (which walks the members) is an error. The size is the one
    the record declares (as libbpf's btf__resolve_size), so it needs no walk."""
    spec = build(INT, btf.Struct(2, "s", 8, (btf.Member("a", 1, 0), btf.Member("self", 2, 32))))
    t = spec.type_by_id(2)
    assert_cyclic(btf.alignof, t, {2})
    assert_cyclic(btf.is_packed, t, {2})  # type: ignore[arg-type]
    assert btf.sizeof(t) == 8
    assert btf.skip_qualifiers_and_typedefs(t) == t


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "types",
    [
        # struct a { struct b b; }; struct b { struct a a; };
        (btf.Struct(2, "a", 4, (btf.Member("b", 3, 0),)), btf.Struct(3, "b", 4, (btf.Member("a", 2, 0),))),
        # struct a { struct a arr[2]; };
        (btf.Struct(2, "a", 8, (btf.Member("arr", 3, 0),)), btf.Array(3, "", 2, 1, 2)),
        # typedef struct a T; struct a { const T t; };
        (btf.Struct(2, "a", 4, (btf.Member("t", 4, 0),)), btf.Typedef(3, "T", 2), btf.Const(4, "", 3)),
        # union u { int i; union v { union u u; } v; };
        (btf.Union(2, "u", 4, (btf.Member("i", 1, 0), btf.Member("v", 3, 0))),
         btf.Union(3, "v", 4, (btf.Member("u", 2, 0),))),
    ],
    ids=["mutual", "array-of-self", "typedef-of-self", "union"],
)
def test_composite_containment_cycles(types: tuple[btf.Type, ...]) -> None:
    """Structs/unions that contain themselves through other types."""
    spec = build(INT, *types)
    ids = {t.id for t in types}
    for t in list(spec)[2:]:
        assert_cyclic(btf.alignof, t, ids)
        if isinstance(t, (btf.Struct, btf.Union)):
            assert_cyclic(btf.is_packed, t, ids)  # type: ignore[arg-type]


def test_self_reference_through_a_pointer_is_fine() -> None:
    """struct list_head { struct list_head *next, *prev; } is not a cycle."""
    spec = build(btf.Struct(1, "list_head", 16, (btf.Member("next", 2, 0), btf.Member("prev", 2, 64))),
                 btf.Pointer(2, "", 1))
    head = spec.type_by_id(1)
    assert (btf.sizeof(head), btf.alignof(head)) == (16, 8)
    assert not btf.is_packed(head)  # type: ignore[arg-type]


@pytest.mark.timeout(10)
def test_deep_struct_nesting_is_bounded() -> None:
    """A chain of structs each containing the previous: fine up to MAX_NESTING_DEPTH,
    a BTFError (not a RecursionError) beyond."""
    depth = 3 * MAX_NESTING_DEPTH
    chain = [btf.Struct(i, f"s{i}", 4, (btf.Member("m", i - 1, 0),)) for i in range(2, depth + 2)]
    spec = build(INT, *chain)
    assert btf.alignof(spec.type_by_id(MAX_NESTING_DEPTH + 1)) == 4
    err = raises_btf(lambda: btf.alignof(spec.type_by_id(depth + 1)))
    assert "nested" in str(err) and err.type_id is not None


@pytest.mark.timeout(10)
def test_long_typedef_chain_is_bounded() -> None:
    """2000 typedefs deep (not a cycle): a BTFError past MAX_RESOLVE_DEPTH, quickly."""
    chain = [btf.Typedef(i, f"t{i}", i - 1) for i in range(2, 2000)]
    spec = build(INT, *chain)
    last = spec.type_by_id(1999)
    for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers_and_typedefs):
        with pytest.raises(btf.BTFError):
            func(last)


@pytest.mark.timeout(10)
def test_alignment_of_a_type_dag_takes_linear_time() -> None:
    """struct s_n { struct s_n-1 a, b; }: 2**60 paths, but only 60 distinct structs."""
    levels = [btf.Struct(2, "s0", 4, (btf.Member("a", 1, 0),))]
    for i in range(3, 62):
        levels.append(btf.Struct(i, f"s{i}", 4, (btf.Member("a", i - 1, 0), btf.Member("b", i - 1, 0))))
    spec = build(INT, *levels)
    top = spec.type_by_id(61)
    assert btf.alignof(top) == 4
    assert btf.is_packed(top) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("nelems", [0xFFFFFFFF, 1 << 31])
def test_size_overflowing_u32_is_an_error(nelems: int) -> None:
    """char[n][2] with n * 2 > 2**32 - 1: the kernel rejects it, and callers allocate by
    sizeof, so it is an error naming the outer array rather than a 2**33-byte size."""
    char = btf.Int(1, "char", 1, btf.IntEncoding.CHAR)
    spec = build(char, btf.Array(2, "", 1, 1, nelems), btf.Array(3, "", 2, 1, 2),
                 btf.Typedef(4, "T", 3), btf.Pointer(5, "", 3), btf.Array(6, "", 5, 1, 1 << 30))
    assert btf.sizeof(spec.type_by_id(2)) == nelems  # fits
    for tid in (3, 4, 6):
        err = raises_btf(lambda tid=tid: btf.sizeof(spec.type_by_id(tid)))  # type: ignore[misc]
        assert_names(err, type_id=tid)
        assert "more than a BTF size" in str(err)
    assert btf.sizeof(spec.type_by_id(5)) == 8  # a pointer to it is fine


def test_types_by_name_with_impossible_names() -> None:
    """A name with a NUL or a lone surrogate is in no string table: no match, no exception.
    (the table holds "a" NUL "b" NUL, so a search for "a" NUL "b" must not find "a".)"""
    spec = build(btf.Int(1, "a", 4), btf.Typedef(2, "b", 1))
    assert spec.types_by_name("a") == (spec.type_by_id(1),)
    for name in ("a\0b", "a\0", "\0", "\ud800", "a\udfff"):
        assert spec.types_by_name(name) == ()
        with pytest.raises(btf.BTFError):
            spec.type_by_name(name)


def test_undecodable_names_round_trip() -> None:
    """Names are bytes on the wire; invalid UTF-8 survives parse and marshal unchanged."""
    strings = b"\0\xff\xfe\0ok\xe2\x82\0"
    data = blob("<", rec("<", 1, Kind.TYPEDEF, 2) + int_rec("<", 4), strings)
    spec = decode_all(data)
    names = [t.name for t in spec][1:]
    assert [n.encode("utf-8", "surrogateescape") for n in names] == [b"\xff\xfe", b"ok\xe2\x82"]
    assert spec.types_by_name(names[0]) == (spec.type_by_id(1),)
    raw = spec.to_bytes()
    assert btf.load_spec(raw) == spec
    assert b"\0\xff\xfe\0" in raw and b"\0ok\xe2\x82\0" in raw  # the same bytes on the wire


@pytest.mark.parametrize("name", ["\ud800", "a\0b"])
def test_marshaling_an_unencodable_name_is_a_btf_error(name: str) -> None:
    """Names that cannot go on the wire are a BTFError, not a UnicodeError."""
    with pytest.raises(btf.BTFError, match="name"):
        btf.marshal_types([btf.Int(1, name, 4)])


# -- immutability --------------------------------------------------------------------------


def all_kinds_spec(byte_order: ByteOrder = "little") -> btf.Spec:
    """A spec with one type (at least) of every kind."""
    L = btf.Member
    types: list[btf.Type] = [
        INT,
        btf.Pointer(2, "", 3),
        btf.Struct(3, "s", 16, (L("a", 1, 0), L("p", 2, 64), L("bf", 1, 96, 3))),
        btf.Union(4, "u", 4, (L("i", 1, 0),)),
        btf.Enum(5, "e", 4, (btf.EnumValue("A", -1), btf.EnumValue("B", 7)), signed=True),
        btf.Fwd(6, "fwd", union=True),
        btf.Typedef(7, "T", 3),
        btf.Volatile(8, "", 1),
        btf.Const(9, "", 8),
        btf.Restrict(10, "", 2),
        btf.FuncProto(11, "", 1, (btf.Param("x", 1), btf.Param("", 0))),
        btf.Func(12, "f", 11, btf.FuncLinkage.GLOBAL),
        btf.Var(13, "v", 3, btf.VarLinkage.GLOBAL),
        btf.Datasec(14, ".data", 16, (btf.VarSecinfo(13, 0, 16),)),
        btf.Float(15, "double", 8),
        btf.DeclTag(16, "tag", 3, 1),
        btf.TypeTag(17, "user", 1),
        btf.Enum64(18, "e64", 8, (btf.EnumValue("BIG", 1 << 40), btf.EnumValue("NEG", -2)), signed=True),
        btf.Array(19, "", 3, 1, 4),
    ]
    return build(*types, byte_order=byte_order)


def test_all_kinds_spec_covers_every_kind() -> None:
    """The all-kinds spec really has every kind (other tests rely on it)."""
    assert {t.kind for t in all_kinds_spec()} == set(Kind)


def _records(spec: btf.Spec) -> list[Any]:
    """Every type of ``spec`` and every member/param/secinfo/enumerator inside them."""
    out: list[Any] = []
    for t in spec:
        out.append(t)
        for attr in ("members", "params", "vars", "values"):
            out.extend(getattr(t, attr, ()))
    return out


def globals_spec() -> btf.Spec:
    """The BTF of testdata/globals-el.o."""
    raw = elf_section(bpf_objects("globals-el.o")[0], ".BTF")
    assert raw is not None
    return btf.load_spec(raw)


@pytest.mark.parametrize("spec_factory", [all_kinds_spec, globals_spec], ids=["all-kinds", "globals"])
def test_types_are_immutable(spec_factory: Callable[[], btf.Spec]) -> None:
    """Types and their members/params/secinfos/enumerators cannot be changed in any way."""
    spec = spec_factory()
    records = _records(spec)
    assert len(records) > len(spec)
    for r in records:
        assert not hasattr(r, "__dict__"), type(r)
        assert tuple in type(r).__mro__
        before = tuple(r)
        for field in (*getattr(r, "FIELDS", ()), *getattr(r, "_fields", ()), "name", "id", "spec"):
            if hasattr(r, field):
                with pytest.raises(AttributeError):
                    setattr(r, field, 1)
                with pytest.raises(AttributeError):
                    delattr(r, field)
        with pytest.raises(AttributeError):
            r.new_attribute = 1
        with pytest.raises(TypeError):
            r[0] = 1
        assert tuple(r) == before
        hash(r)  # hashable, hence usable as dict keys
    for t in spec:
        for attr in ("members", "params", "vars", "values"):
            assert isinstance(getattr(t, attr, ()), tuple)


def test_type_attributes_are_read_only_properties() -> None:
    """The assignments a user would try all fail, and change nothing."""
    t = all_kinds_spec().type_by_id(3)
    assert isinstance(t, btf.Struct)
    with pytest.raises(AttributeError):
        t.name = "other"
    with pytest.raises(AttributeError):
        t.members = ()
    with pytest.raises(AttributeError):
        t.members[0].offset = 8
    assert t.name == "s" and t.members[0].offset == 0


_MUTABLE = (list, dict, set, bytearray, __import__("array").array)


def _assert_no_shared_state(a: object, b: object, path: str) -> int:
    """No mutable container is reachable from the attributes of both ``a`` and ``b``.
    Returns how many mutable attributes were compared."""
    checked = 0
    names = set(getattr(a, "__dict__", {})) | {
        s for cls in type(a).__mro__ for s in getattr(cls, "__slots__", ())
    }
    for name in sorted(names):
        if name == "_decoder":  # a stateless codec per byte order (its cache only holds struct.Struct)
            continue
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if isinstance(getattr(va, "__self__", None), _MUTABLE):  # a bound method of a dict, ...
            va, vb = va.__self__, getattr(vb, "__self__", None)  # type: ignore[union-attr]
        if isinstance(va, _MUTABLE):
            assert va is not vb, f"{path}.{name} is shared"
            checked += 1
        elif isinstance(va, (btf.Spec, StringTable)):
            assert va is not vb, f"{path}.{name} is shared"
            checked += _assert_no_shared_state(va, vb, f"{path}.{name}")
    return checked


@pytest.mark.parametrize("decode_first", [False, True])
def test_spec_copy_shares_no_mutable_state(decode_first: bool) -> None:
    """copy() equals the original and shares no list, dict or array with it."""
    spec = all_kinds_spec()
    if decode_first:
        list(spec)
    copy = spec.copy()
    assert copy == spec and copy is not spec
    assert _assert_no_shared_state(spec, copy, "spec") >= 4
    assert spec._cache is not copy._cache
    assert spec.strings._cache is not copy.strings._cache
    # decoding the copy fills only the copy's caches, and its types belong to it
    fresh = btf.load_spec(spec.to_bytes())
    fresh_copy = fresh.copy()
    types = list(fresh_copy)
    assert all(t is None for t in fresh._cache)
    assert all(t.spec is fresh_copy for t in types)
    assert types == list(fresh)
    assert all(a.spec is fresh for a in fresh)


def test_split_spec_copy_copies_the_base() -> None:
    """A split spec's copy has its own copy of the base, too."""
    base = btf.load_spec(with_int("<"))
    split = btf.load_spec(blob("<", rec("<", 9, Kind.TYPEDEF, 1), b"y\0"), base=base)
    copy = split.copy()
    assert copy == split
    assert copy.base is not None and copy.base is not base and copy.base == base
    assert copy.strings._base is not split.strings._base
    assert _assert_no_shared_state(split, copy, "split") >= 8


# -- round trips -------------------------------------------------------------------------

OTHER: dict[str, ByteOrder] = {"little": "big", "big": "little"}


def assert_round_trips(spec: btf.Spec) -> None:
    """to_bytes in either byte order parses back to an equal spec, and marshaling is stable."""
    raw = spec.to_bytes()
    again = btf.load_spec(raw)
    assert again == spec
    assert again.byte_order == spec.byte_order
    assert again.to_bytes() == raw
    other = OTHER[spec.byte_order]
    swapped = btf.load_spec(spec.to_bytes(byte_order=other))
    assert swapped.byte_order == other
    assert swapped == spec
    assert swapped.to_bytes(byte_order=spec.byte_order) == raw


@pytest.mark.parametrize("path", bpf_objects(), ids=lambda p: p.name)
def test_object_btf_round_trips(path: Path) -> None:
    """The .BTF of every testdata object round trips in both byte orders."""
    raw = elf_section(path, ".BTF")
    assert raw is not None
    spec = btf.load_spec(raw)
    assert spec.byte_order == ("big" if path.name.endswith("-eb.o") else "little")
    assert_round_trips(spec)


@pytest.mark.parametrize("path", bpf_objects("*-el.o"), ids=lambda p: p.name)
def test_object_btf_is_the_same_in_both_byte_orders(path: Path) -> None:
    """clang's -eb and -el objects carry the same types."""
    little = elf_section(path, ".BTF")
    big = elf_section(path.with_name(path.name.replace("-el.o", "-eb.o")), ".BTF")
    assert little is not None and big is not None
    assert btf.load_spec(little) == btf.load_spec(big)


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_all_kinds_round_trip(byte_order: ByteOrder) -> None:
    """Every kind survives marshaling, in both byte orders."""
    assert_round_trips(all_kinds_spec(byte_order))


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_btf_round_trips() -> None:
    """The running kernel's ~100k types round trip in both byte orders."""
    if not VMLINUX.exists():
        pytest.skip(f"{VMLINUX} does not exist")
    kernel = btf.load_kernel_spec()
    assert len(kernel) > 1000
    assert_round_trips(kernel)
