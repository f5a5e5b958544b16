"""A deterministic fuzzer for the BTF parser: mutated real BTF either works or is a BTFError.

Seeds are the small ``.BTF`` sections of ``testdata/*.o`` (both byte orders), a
synthetic blob with every kind, and split BTF on top of it. Mutations: bit flips, byte overwrites, truncation,
insertion, header field edits, and structure-aware edits of record fields (kinds, vlen,
IDs around the number of types, name offsets around the string table's end, type
references re-pointed at other types or their own record to make cycles).

Every input goes through :func:`exercise`: load, decode every type, marshal and parse
back, and the layout functions on every type. The only acceptable failure is
``btf.BTFError``; anything else (IndexError, struct.error, RecursionError, ...) fails
the test with the input's hex, as does a case slower than a second or one whose memory
use is out of proportion to its size. Hypothesis runs derandomized, so every run tries
the same ~2k inputs.

Crashes the fuzzer found are pinned below as regression tests with their bytes inline.
"""

from __future__ import annotations

import contextlib
import struct
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import btf
from btf import Kind
from btf.wire import HEADER_SIZE, RECORD_FIXED, RECORD_PER_VLEN
from tests.conftest import bpf_objects
from tests.test_btf_malformed import all_kinds_spec
from tests.util import elf_section

#: Largest seed (bytes): keeps each case fast.
MAX_SEED = 3000

#: Time one input may take to be fully exercised.
CASE_SECONDS = 1.0

FUZZ = settings(
    max_examples=250,
    derandomize=True,
    database=None,
    deadline=None,  # timed by check() itself, without hypothesis' first-call flakiness
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)


@dataclass(frozen=True)
class Seed:
    """A valid BTF blob and where its parts are: the header, the type section right after
    it, then the string section (as clang and btf.marshal_types lay BTF out)."""

    name: str
    data: bytes
    e: str  # struct byte-order prefix
    type_start: int  # absolute offset of the type section
    type_len: int
    str_start: int
    str_len: int
    records: tuple[int, ...]  # absolute offsets of the type records
    refs: tuple[tuple[int, int], ...]  # (absolute offset, ID of its record) of every type-ID field
    types: int  # len(spec)
    strings: int  # len(spec.strings): the end of the name offsets (base's included)
    base: btf.Spec | None  # for split BTF

    @classmethod
    def of(cls, name: str, data: bytes, base: btf.Spec | None = None) -> Seed:
        e = "<" if struct.unpack_from("<H", data)[0] == 0xEB9F else ">"
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "5I", data, 4)
        assert (hdr_len, type_off, str_off, str_off + str_len) == (
            HEADER_SIZE, 0, type_len, len(data) - HEADER_SIZE), f"{name} is not laid out as expected"
        start = hdr_len + type_off
        first_id = len(base) if base is not None else 1
        records: list[int] = []
        refs: list[tuple[int, int]] = []
        pos = start
        while pos < start + type_len:
            type_id = first_id + len(records)
            records.append(pos)
            info = struct.unpack_from(e + "I", data, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            refs.extend((pos + off, type_id) for off in _ref_fields(kind, vlen))
            pos += 12 + RECORD_FIXED[kind] + vlen * RECORD_PER_VLEN[kind]
        spec = btf.load_spec(data, base=base)
        return cls(name, data, e, start, type_len, hdr_len + str_off, str_len, tuple(records),
                   tuple(refs), len(spec), len(spec.strings), base)


def _ref_fields(kind: int, vlen: int) -> list[int]:
    """Offsets, inside a record of ``kind`` with ``vlen`` entries, of its type-ID fields."""
    if kind in (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.FUNC,
                Kind.VAR, Kind.DECL_TAG, Kind.TYPE_TAG):
        return [8]
    if kind == Kind.ARRAY:
        return [12, 16]
    if kind in (Kind.STRUCT, Kind.UNION):
        return [12 + 12 * i + 4 for i in range(vlen)]
    if kind == Kind.FUNC_PROTO:
        return [8] + [12 + 8 * i + 4 for i in range(vlen)]
    if kind == Kind.DATASEC:
        return [12 + 12 * i for i in range(vlen)]
    return []


def _seeds() -> list[Seed]:
    seeds = []
    for path in bpf_objects():
        raw = elf_section(path, ".BTF")
        if raw is not None and len(raw) <= MAX_SEED:
            seeds.append(Seed.of(path.name, raw))
    for order in ("little", "big"):
        seeds.append(Seed.of(f"all-kinds-{order}", all_kinds_spec(order).to_bytes()))
    return seeds


def _split_seeds() -> list[Seed]:
    """Split BTF (as kernel modules have) on top of the all-kinds spec, in both byte orders."""
    seeds = []
    M, P = btf.Member, btf.Param
    for order in ("little", "big"):
        base = all_kinds_spec(order)
        n = len(base)
        types: list[btf.Type] = [
            btf.Typedef(n, "split_t", 3),
            btf.Struct(n + 1, "split_s", 32, (M("t", n, 0), M("e", 5, 128), M("p", n + 2, 192))),
            btf.Pointer(n + 2, "", n + 1),
            btf.FuncProto(n + 3, "", n + 1, (P("p", n + 2), P("x", 1))),
            btf.Func(n + 4, "split_f", n + 3, btf.FuncLinkage.GLOBAL),
            btf.Var(n + 5, "split_v", n + 1, btf.VarLinkage.GLOBAL),
            btf.Datasec(n + 6, ".bss", 32, (btf.VarSecinfo(n + 5, 0, 32),)),
            btf.Enum(n + 7, "split_e", 4, (btf.EnumValue("S1", 1), btf.EnumValue("int", 2))),
            btf.Array(n + 8, "", n + 1, 1, 3),
        ]
        raw = btf.marshal_types(types, byte_order=order, base=base)
        seeds.append(Seed.of(f"split-{order}", raw, base))
    return seeds


SEEDS = _seeds()
SPLIT_SEEDS = _split_seeds()


def test_seeds_are_valid_and_varied() -> None:
    """The corpus: real objects in both byte orders plus every kind; all of it parses."""
    assert len(SEEDS) >= 10
    assert {s.e for s in SEEDS} == {"<", ">"}
    kinds = set()
    for seed in SEEDS:
        spec = btf.load_spec(seed.data)
        kinds |= {t.kind for t in spec}
        assert len(seed.records) == len(spec) - 1
        refs = sorted(ref for t in spec for ref in t.refs())
        assert refs == sorted(struct.unpack_from(seed.e + "I", seed.data, pos)[0] for pos, _ in seed.refs)
    assert kinds == set(btf.Kind)
    for seed in SPLIT_SEEDS:
        assert seed.base is not None
        split = btf.load_spec(seed.data, base=seed.base)
        assert len(split) == len(seed.base) + len(seed.records)
        split_s = split.type_by_name("split_s")
        assert isinstance(split_s, btf.Struct)
        assert split_s.members[0].type.name == "split_t"


# -- the oracle --------------------------------------------------------------------------


def exercise(data: bytes, base: btf.Spec | None = None) -> None:
    """Do everything a user may do with parsed BTF. Raises BTFError or nothing."""
    spec = btf.load_spec(data, base=base)
    types = list(spec)
    assert len(types) == len(spec)
    # What parsed must marshal, and parse back to the same types.
    raw = spec.to_bytes()
    again = btf.load_spec(raw, base=base)
    assert again == spec, "to_bytes() did not round trip"
    for t in types:
        assert spec.type_by_id(t.id) is t
        for ref in t.refs():
            spec.type_by_id(ref)  # checked when t was decoded, so it must exist
        if t.name:
            assert t in spec.types_by_name(t.name, t.kind)
        str(t), repr(t), hash(t)
        for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers, btf.skip_qualifiers_and_typedefs):
            with contextlib.suppress(btf.BTFError):
                func(t)
        if isinstance(t, (btf.Struct, btf.Union)):
            with contextlib.suppress(btf.BTFError):
                btf.is_packed(t)


def check(data: bytes, base: btf.Spec | None = None) -> None:
    """``exercise(data)`` finishes within CASE_SECONDS, raising nothing but BTFError."""
    start = time.perf_counter()
    try:
        exercise(data, base)
    except btf.BTFError as err:
        assert isinstance(err, ValueError)
        assert str(err)
    except Exception as err:
        raise AssertionError(f"{type(err).__name__}: {err}\ninput: {data.hex()}") from err
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"took {elapsed:.2f}s\ninput: {data.hex()}"


def test_check_fails_on_a_crash_with_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle itself can fail: a non-BTFError escaping is reported with the input."""
    seed = SEEDS[0]
    check(seed.data)

    def crash(t: btf.Type) -> int:
        raise IndexError("simulated parser bug")

    monkeypatch.setattr(btf, "sizeof", crash)
    with pytest.raises(AssertionError, match=f"IndexError: simulated parser bug\ninput: {seed.data.hex()}"):
        check(seed.data)


def test_check_fails_on_a_slow_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle's time limit is enforced (here, a limit no case can meet)."""
    monkeypatch.setattr(sys.modules[__name__], "CASE_SECONDS", 0.0)
    with pytest.raises(AssertionError, match="took"):
        check(SEEDS[0].data)


# -- mutations -----------------------------------------------------------------------------

#: u32 values that tend to break parsers.
EDGE_U32 = [0, 1, 2, 3, 4, 7, 8, 12, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def positions(seed: Seed) -> st.SearchStrategy[int]:
    """Byte positions in the seed, biased towards the type section."""
    anywhere = st.integers(0, len(seed.data) - 1)
    if not seed.type_len:
        return anywhere
    in_types = st.integers(seed.type_start, seed.type_start + seed.type_len - 1)
    return st.one_of(anywhere, in_types, in_types)


def u32_values(seed: Seed, own_id: int | None = None) -> st.SearchStrategy[int]:
    """Values for a u32 field: edge cases, IDs around the last type, valid IDs (the
    record's own ID makes cycles), offsets around the end of the string table,
    kind/vlen/kind_flag words, anything."""
    near_ids = [seed.types + d for d in (-2, -1, 0, 1)] + ([own_id] * 4 if own_id is not None else [])
    near_strings = [seed.strings + d for d in (-2, -1, 0, 1)]
    infos = st.builds(
        lambda kind, vlen, flag: flag << 31 | kind << 24 | vlen,
        st.integers(0, 31), st.sampled_from([0, 1, 2, 3, 0xFFFF]) | st.integers(0, 0xFFFF), st.integers(0, 1),
    )
    return st.one_of(
        st.sampled_from(EDGE_U32 + near_ids + near_strings),
        st.integers(0, seed.types - 1),
        infos,
        st.integers(0, 0xFFFFFFFF),
    )


def set_u32(seed: Seed, data: bytearray, pos: int, value: int) -> None:
    """Store ``value`` as a u32 in the seed's byte order at ``pos``."""
    struct.pack_into(seed.e + "I", data, pos, value)


@dataclass(frozen=True)
class Case:
    """One fuzz input: raw BTF, and the base it is split BTF of (if any)."""

    data: bytes
    base: btf.Spec | None = None

    def __repr__(self) -> str:
        return f"Case(bytes.fromhex({self.data.hex()!r}), base={self.base!r})"


@st.composite
def bit_flips(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Flip one to eight bits."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(positions(seed))] ^= 1 << draw(st.integers(0, 7))
    return Case(bytes(data), seed.base)


@st.composite
def byte_overwrites(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Overwrite one to eight bytes, often with 0, 1, 0x7f, 0x80 or 0xff."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(positions(seed))] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
    return Case(bytes(data), seed.base)


@st.composite
def truncations_and_insertions(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Cut the blob short, or insert or delete bytes; with or without fixing the header's
    section lengths to match (fixed, the damage lands on the records themselves). Word-
    aligned insertions and deletions in the type section shift whole fields."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    fix_header = draw(st.booleans())
    types_end = seed.type_start + seed.type_len
    op = draw(st.sampled_from(["truncate", "insert", "delete"]))
    if op == "truncate":
        cut = draw(st.integers(0, len(data) - 1) | st.integers(seed.type_start, len(data) - 1))
        del data[cut:]
        if fix_header and cut >= HEADER_SIZE:
            body = cut - seed.type_start
            set_u32(seed, data, 12, min(seed.type_len, body))  # type_len; type_off is 0
            set_u32(seed, data, 16, min(seed.type_len, body))  # str_off
            set_u32(seed, data, 20, max(0, body - seed.type_len))  # str_len
        return Case(bytes(data), seed.base)
    aligned = draw(st.booleans()) and seed.type_len >= 4
    if aligned:  # whole u32 words at a word boundary of the type section
        at = seed.type_start + 4 * draw(st.integers(0, seed.type_len // 4 - 1))
        count = 4 * draw(st.integers(1, 4))
    else:
        at = draw(positions(seed))
        count = draw(st.integers(1, 16))
    if op == "insert":
        data[at:at] = draw(st.binary(min_size=count, max_size=count))
    else:
        count = min(count, len(data) - at)
        del data[at : at + count]
        count = -count
    if fix_header and at >= HEADER_SIZE:
        if at < types_end:
            set_u32(seed, data, 12, max(0, seed.type_len + count))
            set_u32(seed, data, 16, max(0, seed.type_len + count))
        else:
            set_u32(seed, data, 20, max(0, seed.str_len + count))
    return Case(bytes(data), seed.base)


@st.composite
def header_edits(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Set header fields (version/flags bytes, hdr_len, section offsets and lengths)."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    near_sizes = [len(data) + d for d in (-HEADER_SIZE - 1, -HEADER_SIZE, -1, 0, 1)]
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.integers(0, 6))
        if field <= 1:  # version, flags
            data[2 + field] = draw(st.integers(0, 255))
        else:  # hdr_len, type_off, type_len, str_off, str_len
            value = draw(st.sampled_from(EDGE_U32 + near_sizes + [seed.type_len, seed.str_len])
                         | st.integers(0, 2 * len(data)))
            set_u32(seed, data, 4 * (field - 1), value)
    return Case(bytes(data), seed.base)


@st.composite
def record_edits(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Overwrite u32 fields of type records (header words and the data after them)."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    end = seed.type_start + seed.type_len
    first_id = seed.types - len(seed.records)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(seed.records) - 1))
        word = draw(st.sampled_from([0, 1, 2]) | st.integers(0, 8))
        pos = seed.records[index] + 4 * word
        if pos + 4 <= end:
            set_u32(seed, data, pos, draw(u32_values(seed, first_id + index)))
    return Case(bytes(data), seed.base)


@st.composite
def reference_edits(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Point type-ID fields at other existing types, often at their own record: cycles,
    self-containing structs, functions whose prototype is an int, ..."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 3))):
        pos, own_id = draw(st.sampled_from(seed.refs))
        value = draw(st.one_of(st.just(own_id), st.integers(0, seed.types - 1),
                               st.sampled_from([0, seed.types - 1, seed.types])))
        set_u32(seed, data, pos, value)
    return Case(bytes(data), seed.base)


@st.composite
def record_splices(draw: st.DrawFn, pool: Sequence[Seed] = SEEDS) -> Case:
    """Append copies of existing records to the type section (with the header fixed), so
    the new types refer to, and are referred to by, real ones; then edit one field."""
    seed = draw(st.sampled_from(pool))
    data = bytearray(seed.data)
    end = seed.type_start + seed.type_len
    bounds = [*seed.records, end]
    chosen = draw(st.lists(st.integers(0, len(seed.records) - 1), min_size=1, max_size=4))
    extra = b"".join(bytes(data[bounds[i] : bounds[i + 1]]) for i in chosen)
    data[end:end] = extra
    set_u32(seed, data, 12, seed.type_len + len(extra))
    set_u32(seed, data, 16, seed.type_len + len(extra))  # str_off
    if draw(st.booleans()):
        pos = draw(st.integers(end, end + len(extra) - 4).map(lambda p: p - p % 4))
        set_u32(seed, data, pos, draw(u32_values(seed)))
    return Case(bytes(data), seed.base)


# -- the fuzz tests (about 2k inputs in all) ------------------------------------------


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=250)
@given(bit_flips())
def test_fuzz_bit_flips(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=200)
@given(byte_overwrites())
def test_fuzz_byte_overwrites(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=250)
@given(truncations_and_insertions())
def test_fuzz_truncations_and_insertions(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=200)
@given(header_edits())
def test_fuzz_header_edits(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=300)
@given(record_edits())
def test_fuzz_record_edits(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=250)
@given(reference_edits())
def test_fuzz_reference_edits(case: Case) -> None:
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=200)
@given(record_splices())
def test_fuzz_record_splices(case: Case) -> None:
    check(case.data, case.base)


#: Memory one case may use: a fixed allowance plus this much per input byte. An
#: allocation sized by an unchecked field (vlen * 12, a u32 length) breaks it.
MEMORY_BASE = 512 * 1024
MEMORY_PER_BYTE = 128


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=200)
@given(st.one_of(*(strategy(SPLIT_SEEDS) for strategy in (bit_flips, record_edits, reference_edits,
                                                         record_splices))))
def test_fuzz_split_btf(case: Case) -> None:
    """Split BTF: IDs and name offsets continue the base's."""
    assert case.base is not None
    check(case.data, case.base)


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=150)
@given(st.one_of(record_edits(), header_edits(), truncations_and_insertions()))
def test_fuzz_memory_is_proportional_to_the_input(case: Case) -> None:
    """Loading and decoding never allocates more than the input's size justifies."""
    data = case.data
    tracemalloc.start()
    try:
        try:
            spec = btf.load_spec(data)
            list(spec)
        except btf.BTFError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    limit = MEMORY_BASE + MEMORY_PER_BYTE * len(data)
    assert peak < limit, f"peak {peak} bytes > {limit}\ninput: {data.hex()}"


def test_memory_limit_is_meaningful() -> None:
    """The limit is above what valid seeds use and below a vlen-sized allocation."""
    for seed in SEEDS:
        tracemalloc.start()
        try:
            list(btf.load_spec(seed.data))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_BASE + MEMORY_PER_BYTE * len(seed.data), seed.name
    # 65535 members decoded from a blob of 64 bytes would need ~1.5 MB
    assert MEMORY_BASE + MEMORY_PER_BYTE * 64 < 0xFFFF * 12


# -- regressions: crashes the fuzzer found, with their bytes ------------------------------


def test_regression_struct_containing_itself_by_a_bitfield() -> None:
    """One bit flip (byte 92 of the all-kinds seed, 0x01 -> 0x03) turns the bitfield member
    ``bf`` of ``struct s`` [3] into a member of type 3: ``struct s`` contains itself.
    ``alignof`` recursed until RecursionError."""
    data = bytes.fromhex(
        "9feb010018000000000000007001000070010000460000000100000000000001040000002000000100"
        "00000000000002030000000500000003000084100000000700000001000000000000000900000002"
        "000000400000000b00000003000000600000030e0000000100000504000000100000000100000000"
        "00000012000000020000860400000014000000ffffffff16000000070000001800000000000087000"
        "000001c0000000000000803000000000000000000000901000000000000000000000a080000000000"
        "00000000000b02000000000000000200000d010000001e0000000100000000000000000000002000"
        "00000100000c0b000000220000000000000e0300000001000000240000000100000f100000000d00"
        "000000000000100000002a0000000000001008000000310000000000001103000000010000003500"
        "000000000012010000003a00000002000093080000003e000000000000000001000042000000feff"
        "ffffffffffff0000000000000003000000000300000001000000040000000069"
        "6e7400730061007000626600750069006500410042006677640054007800660076002e6461746100"
        "646f75626c650074616700757365720065363400424947004e454700"
    )
    check(data)
    spec = btf.load_spec(data)
    s = spec.type_by_id(3)
    assert isinstance(s, btf.Struct) and s.members[2].type_id == 3
    for func in (btf.alignof, btf.is_packed):
        with pytest.raises(btf.BTFError) as info:
            func(s)
        assert info.value.type_id == 3
