"""btf.core: CO-RE relocation resolution (libbpf's relo_core.c semantics).

Three sources of truth:

* hand-made local/target specs, where every expected value is worked out by hand — and
  bitfield reads are checked by *executing* the relocated read (load, shift left, shift
  right) on a memory image of the target struct, in both byte orders and both bitfield
  encodings;
* ``testdata/core-{el,eb}.o`` against the running kernel's BTF (``@pytest.mark.kernel``),
  checked against the kernel's own member offsets;
* cilium/ebpf's CO-RE test objects when installed (``relocs.c``, ``relocs_read.c``).
"""

from __future__ import annotations

import gc
import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

import btf
import ebpfspec
from btf import IntEncoding, core
from btf.core import CoreCache, CoreResult, essential_name
from btf.ext import CORERelocation, CORERelocKind
from btf.types import (
    Array,
    Enum,
    Enum64,
    EnumValue,
    Fwd,
    Int,
    Member,
    Pointer,
    Struct,
    Type,
    Typedef,
    Union,
)
from ebpfspec.asm import Instruction
from tests.conftest import TESTDATA

K = CORERelocKind
ByteOrder = Literal["little", "big"]
VMLINUX = "/sys/kernel/btf/vmlinux"
CILIUM = Path("/usr/share/gocode/src/github.com/cilium/ebpf/btf/testdata")
MASK64 = (1 << 64) - 1
SIGNED = IntEncoding.SIGNED


# -- helpers ---------------------------------------------------------------------------------


class Builder:
    """Numbers types from 1 in the order they are added; ``ids[name]`` remembers them."""

    def __init__(self) -> None:
        self.types: list[Type] = []
        self.ids: dict[str, int] = {}

    def add(self, cls: Callable[..., Type], *args: Any, key: str | None = None, **kwargs: Any) -> int:
        type_id = len(self.types) + 1
        self.types.append(cls(type_id, *args, **kwargs))
        self.ids[key if key is not None else str(args[0])] = type_id
        return type_id

    def spec(self, byte_order: ByteOrder = "little") -> btf.Spec:
        return btf.Spec.from_types(self.types, byte_order=byte_order)


def relo(type_id: int, accessor: str, kind: CORERelocKind) -> CORERelocation:
    return CORERelocation(0, type_id, accessor, kind)


def run(local: btf.Spec, target: btf.Spec, type_id: int, accessor: str, kind: CORERelocKind) -> CoreResult:
    return core.resolve(relo(type_id, accessor, kind), local, target)


def values(local: btf.Spec, target: btf.Spec, type_id: int, accessor: str,
           kind: CORERelocKind) -> tuple[int, int]:
    result = run(local, target, type_id, accessor, kind)
    assert not result.poison, result
    return result.local_value, result.target_value


def read_bitfield(memory: bytes, byte_order: ByteOrder, offset: int, size: int, lshift: int,
                  rshift: int, signed: bool) -> int:
    """What BPF_CORE_READ_BITFIELD does with relocated values: load, shift left, shift right."""
    value = int.from_bytes(memory[offset:offset + size], byte_order)
    value = (value << lshift) & MASK64
    if signed:
        value -= (value >> 63) << 64
        return value >> rshift  # arithmetic
    return value >> rshift


def bitfield_read(local: btf.Spec, target: btf.Spec, type_id: int, accessor: str,
                  memory: bytes, *, side: Literal["local", "target"] = "target") -> int:
    """Resolve the five relocations of one bitfield read and execute it on ``memory``."""
    got = {kind: run(local, target, type_id, accessor, kind)
           for kind in (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64,
                        K.FIELD_RSHIFT_U64, K.FIELD_SIGNED)}
    pick = {kind: (r.local_value if side == "local" else r.target_value) for kind, r in got.items()}
    order = (local if side == "local" else target).byte_order
    return read_bitfield(memory, order, pick[K.FIELD_BYTE_OFFSET], pick[K.FIELD_BYTE_SIZE],
                         pick[K.FIELD_LSHIFT_U64], pick[K.FIELD_RSHIFT_U64], bool(pick[K.FIELD_SIGNED]))


def place(size: int, byte_order: ByteOrder, fields: Sequence[tuple[int, int, int]]) -> bytes:
    """A ``size``-byte struct image with ``(bit_offset, bits, value)`` fields set, as a compiler
    for ``byte_order`` lays bitfields out (little: from the LSB of the first byte; big: from
    the MSB of the first byte)."""
    whole = 0
    for bit_offset, bits, value in fields:
        value &= (1 << bits) - 1
        shift = bit_offset if byte_order == "little" else size * 8 - bit_offset - bits
        whole |= value << shift
    return whole.to_bytes(size, byte_order)


def insn_value(insn: Instruction) -> int:
    """The value a CO-RE relocation patches: the offset of loads/stores, else the constant."""
    return insn.offset if insn.opcode & 0x07 in (0x01, 0x02, 0x03) else insn.constant


def relocated(spec: ebpfspec.CollectionSpec) -> Iterator[tuple[str, Instruction, CORERelocation]]:
    for name, prog in spec.programs.items():
        for insn in prog.instructions:
            if insn.core_relo is not None:
                yield name, insn, insn.core_relo


def kernel_or_skip() -> btf.Spec:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} does not exist")
    return btf.load_kernel_spec()


def base_ints(b: Builder) -> None:
    b.add(Int, "int", 4, SIGNED)
    b.add(Int, "unsigned int", 4)
    b.add(Int, "long", 8, SIGNED)
    b.add(Int, "unsigned long", 8)
    b.add(Int, "char", 1, IntEncoding.CHAR)


# -- the fixture specs ---------------------------------------------------------------------------


def local_builder() -> Builder:
    """The program's view of the world."""
    b = Builder()
    base_ints(b)
    i = b.ids
    ptr = b.add(Pointer, "", 0, key="ptr")  # patched below to point at struct foo
    arr4 = b.add(Array, "", i["int"], i["int"], 4, key="int[4]")
    foo = b.add(Struct, "foo", 40, (
        Member("a", i["int"], 0), Member("b", i["unsigned int"], 32), Member("c", i["int"], 64),
        Member("next", ptr, 128), Member("arr", arr4, 192),
    ))
    b.types[ptr - 1] = Pointer(ptr, "", foo)
    b.add(Struct, "foo___v1", 4, (Member("gone", i["int"], 0),))
    b.add(Struct, "foo___v2", 8, (Member("b", i["unsigned long"], 0),))
    b.add(Typedef, "foo_t", foo)
    b.add(Struct, "bar", 4, (Member("x", i["int"], 0),))
    b.add(Struct, "baz", 4, (Member("x", i["int"], 0),))
    b.add(Struct, "missing", 4, (Member("x", i["int"], 0),))
    b.add(Struct, "qux", 4, (Member("x", i["int"], 0),))
    b.add(Struct, "", 4, (Member("x", i["int"], 0),), key="anon")
    b.add(Enum, "color", 4, (EnumValue("RED", 0), EnumValue("GREEN", 1), EnumValue("BLUE", 2)))
    b.add(Enum, "color___new", 4, (EnumValue("RED___v2", 7),))
    b.add(Enum, "big", 8, (EnumValue("HUGE", 1),))
    b.add(Enum, "gone_enum", 4, (EnumValue("G", 1),))
    flex = b.add(Array, "", i["int"], i["int"], 0, key="int[]")
    b.add(Struct, "fa", 4, (Member("n", i["int"], 0), Member("data", flex, 32)))
    arr2 = b.add(Array, "", i["int"], i["int"], 2, key="int[2]")
    b.add(Struct, "small", 8, (Member("v", arr2, 0),))
    return b


def target_builder() -> Builder:
    """The "kernel": fields moved, grown, renamed with flavors, gone; enums changed."""
    b = Builder()
    base_ints(b)
    i = b.ids
    ptr = b.add(Pointer, "", 0, key="ptr")
    arr8 = b.add(Array, "", i["int"], i["int"], 8, key="int[8]")
    anon = b.add(Union, "", 4, (Member("a", i["int"], 0), Member("alias", i["int"], 0)), key="anon-union")
    foo = b.add(Struct, "foo", 72, (
        Member("pad", i["long"], 0), Member("b", i["unsigned long"], 64), Member("arr", arr8, 128),
        Member("", anon, 384), Member("c", i["long"], 448), Member("next", ptr, 512),
    ))
    b.types[ptr - 1] = Pointer(ptr, "", foo)
    b.add(Typedef, "foo_t", foo)
    b.add(Struct, "bar", 4, (Member("x", i["int"], 0),))
    b.add(Struct, "bar___v2", 16, (Member("pad", i["long"], 0), Member("x", i["int"], 64)))
    b.add(Struct, "baz", 16, (Member("x", i["int"], 0), Member("y", i["long"], 64)))
    b.add(Struct, "baz___copy", 4, (Member("x", i["int"], 0),))
    b.add(Union, "qux", 4, (Member("x", i["int"], 0),))
    b.add(Enum, "color", 4, (EnumValue("GREEN", 10), EnumValue("RED", 11)))
    b.add(Enum64, "big", 8, (EnumValue("HUGE", 1 << 40),), False)
    flex = b.add(Array, "", i["int"], i["int"], 0, key="int[]")
    b.add(Struct, "fa", 8, (Member("n", i["long"], 0), Member("data", flex, 64)))
    arr2 = b.add(Array, "", i["int"], i["int"], 2, key="int[2]")
    b.add(Struct, "small", 8, (Member("v", arr2, 0),))
    return b


@pytest.fixture(scope="module")
def lb() -> Builder:
    return local_builder()


@pytest.fixture(scope="module")
def local(lb: Builder) -> btf.Spec:
    return lb.spec()


@pytest.fixture(scope="module")
def tb() -> Builder:
    return target_builder()


@pytest.fixture(scope="module")
def target(tb: Builder) -> btf.Spec:
    return tb.spec()


# -- names and candidates --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "essential"), [
    ("task_struct", "task_struct"),
    ("task_struct___old", "task_struct"),
    ("task_struct___ids", "task_struct"),
    ("a___b___c", "a___b"),
    ("nf_conn___init", "nf_conn"),
    ("foo____bar", "foo____bar"),    # four underscores: not a flavor separator
    ("foo___", "foo___"),            # nothing after the separator
    ("___x", "___x"),
    ("_a___b", "_a"),
    ("", ""),
])
def test_essential_name(name: str, essential: str) -> None:
    assert essential_name(name) == essential


def test_candidates_same_essential_name_and_kind(local: btf.Spec, target: btf.Spec,
                                                 lb: Builder, tb: Builder) -> None:
    cache = CoreCache(target)
    bar = local.type_by_id(lb.ids["bar"])
    assert [t.id for t in cache.candidates(bar)] == [tb.ids["bar"], tb.ids["bar___v2"]]
    # a flavored local name looks for the essential name and every flavor of it
    v1 = local.type_by_id(lb.ids["foo___v1"])
    assert [t.name for t in cache.candidates(v1)] == ["foo"]
    # the typedef foo_t only matches typedefs; struct qux does not match union qux
    assert [t.id for t in cache.candidates(local.type_by_id(lb.ids["foo_t"]))] == [tb.ids["foo_t"]]
    assert cache.candidates(local.type_by_id(lb.ids["qux"])) == ()
    assert core.candidates(bar, target) == cache.candidates(bar)
    with pytest.raises(btf.BTFError, match="anonymous"):
        cache.candidates(local.type_by_id(lb.ids["anon"]))


def test_candidates_are_cached_per_essential_name(local: btf.Spec, lb: Builder) -> None:
    target = target_builder().spec()
    calls: list[str] = []
    original = target.types_by_name

    def counting(name: str, kind: btf.Kind | None = None) -> tuple[Type, ...]:
        calls.append(name)
        return original(name, kind)

    target.types_by_name = counting  # type: ignore[method-assign]
    cache = CoreCache(target)
    for name in ("bar", "bar", "baz", "bar"):
        cache.candidates(local.type_by_id(lb.ids[name]))
    assert calls.count("bar") == 1 and calls.count("bar___v2") == 1 and calls.count("baz") == 1
    # resolve() without an explicit cache shares one per target spec
    calls.clear()
    for _ in range(3):
        core.resolve(relo(lb.ids["baz"], "0:0", K.FIELD_BYTE_OFFSET), local, target)
    assert calls.count("baz") == 1


def test_shared_cache_does_not_keep_the_spec_alive(local: btf.Spec, lb: Builder) -> None:
    target = target_builder().spec()
    ref = weakref.ref(target)
    core.resolve(relo(lb.ids["baz"], "0:0", K.FIELD_BYTE_OFFSET), local, target)
    assert id(target) in core._stores
    key = id(target)
    del target
    gc.collect()
    assert ref() is None and key not in core._stores


def test_flavored_target_names_found_by_scan_fallback(local: btf.Spec, lb: Builder, tb: Builder) -> None:
    """Without access to the raw string table the cache scans every name once."""
    target = target_builder().spec()
    cache = CoreCache(target)
    assert cache._flavored_names_by_scan("bar") == {"bar___v2"}
    assert cache._flavored_names_by_scan("baz") == {"baz___copy"}
    assert cache._flavored_names_by_scan("foo") == set()
    assert cache._flavored_names("bar") == {"bar___v2"}


# -- field relocations --------------------------------------------------------------------------------


def test_field_byte_offset_moved_fields(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    foo = lb.ids["foo"]
    assert values(local, target, foo, "0:0", K.FIELD_BYTE_OFFSET) == (0, 48)   # a: in an anonymous union
    assert values(local, target, foo, "0:1", K.FIELD_BYTE_OFFSET) == (4, 8)
    assert values(local, target, foo, "0:2", K.FIELD_BYTE_OFFSET) == (8, 56)
    assert values(local, target, foo, "0:3", K.FIELD_BYTE_OFFSET) == (16, 64)  # next: a pointer
    assert values(local, target, foo, "0:4", K.FIELD_BYTE_OFFSET) == (24, 16)  # arr
    assert values(local, target, foo, "0:4:2", K.FIELD_BYTE_OFFSET) == (32, 24)  # arr[2]
    assert values(local, target, foo, "1:0", K.FIELD_BYTE_OFFSET) == (40, 72 + 48)  # p[1].a
    assert values(local, target, foo, "3", K.FIELD_BYTE_OFFSET) == (120, 216)  # p[3] itself
    # through a typedef root
    assert values(local, target, lb.ids["foo_t"], "0:1", K.FIELD_BYTE_OFFSET) == (4, 8)


def test_field_result_details(local: btf.Spec, target: btf.Spec, lb: Builder, tb: Builder) -> None:
    r = run(local, target, lb.ids["foo"], "0:0", K.FIELD_BYTE_OFFSET)
    assert r.validate and not r.poison
    assert r.target_type_id == tb.ids["foo"]
    assert r.kind == K.FIELD_BYTE_OFFSET and r.local_type_id == lb.ids["foo"]
    assert r.description == f"<field_byte_offset> [{lb.ids['foo']}] struct foo.a (0:0 @ offset 0)"
    assert r.target_description == f"[{tb.ids['foo']}] struct foo.a (0:3:0 @ offset 48)"
    assert (r.local_mem_size, r.target_mem_size, r.mem_size_change_unsafe) == (4, 4, False)
    assert (r.target_field_size, r.target_field_signed) == (4, True)
    assert "struct foo.a" in str(r) and "0 -> 48" in str(r)
    arr = run(local, target, lb.ids["foo"], "0:4:2", K.FIELD_BYTE_OFFSET)
    assert arr.description.endswith("struct foo.arr[2] (0:4:2 @ offset 32)")
    assert (arr.local_mem_size, arr.target_mem_size) == (4, 4)


def test_field_changed_size(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    foo = lb.ids["foo"]
    # b: unsigned int -> unsigned long: a load of it may grow from 4 to 8 bytes
    b = run(local, target, foo, "0:1", K.FIELD_BYTE_OFFSET)
    assert (b.local_mem_size, b.target_mem_size, b.mem_size_change_unsafe) == (4, 8, False)
    assert values(local, target, foo, "0:1", K.FIELD_BYTE_SIZE) == (4, 8)
    # c: int -> long: a signed value cannot be resized: loads of it must be poisoned
    c = run(local, target, foo, "0:2", K.FIELD_BYTE_OFFSET)
    assert (c.local_mem_size, c.target_mem_size, c.mem_size_change_unsafe) == (4, 8, True)
    assert not c.poison
    # pointers are always resizable
    nxt = run(local, target, foo, "0:3", K.FIELD_BYTE_OFFSET)
    assert (nxt.local_mem_size, nxt.target_mem_size, nxt.mem_size_change_unsafe) == (8, 8, False)
    # the array grew: its size changes, its elements do not
    assert values(local, target, foo, "0:4", K.FIELD_BYTE_SIZE) == (16, 32)
    assert values(local, target, foo, "0:4:3", K.FIELD_BYTE_SIZE) == (4, 4)


def test_field_signed_and_shifts_of_plain_fields(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    foo = lb.ids["foo"]
    assert values(local, target, foo, "0:0", K.FIELD_SIGNED) == (1, 1)
    assert values(local, target, foo, "0:1", K.FIELD_SIGNED) == (0, 0)
    assert values(local, target, foo, "0:3", K.FIELD_SIGNED) == (0, 0)
    # a whole 4-byte field read with a 4-byte load: shifted to the top, then back
    assert values(local, target, foo, "0:1", K.FIELD_LSHIFT_U64) == (32, 0)
    assert values(local, target, foo, "0:1", K.FIELD_RSHIFT_U64) == (32, 0)
    r = run(local, target, foo, "0:1", K.FIELD_LSHIFT_U64)
    assert r.validate  # not a bitfield: the compiler's value is checked


def test_field_exists(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    foo = lb.ids["foo"]
    for accessor in ("0:0", "0:1", "0:3", "0:4:3", "5:2"):
        assert values(local, target, foo, accessor, K.FIELD_EXISTS) == (1, 1)
    # foo___v1.gone: a flavor of foo, but foo has no member 'gone'
    r = run(local, target, lb.ids["foo___v1"], "0:0", K.FIELD_EXISTS)
    assert (r.local_value, r.target_value, r.poison) == (1, 0, False)
    assert r.target_type_id is None and r.target_description is None
    # no candidate at all
    assert values(local, target, lb.ids["missing"], "0:0", K.FIELD_EXISTS) == (1, 0)


def test_field_flavors(local: btf.Spec, target: btf.Spec, lb: Builder, tb: Builder) -> None:
    r = run(local, target, lb.ids["foo___v2"], "0:0", K.FIELD_BYTE_OFFSET)
    assert (r.local_value, r.target_value, r.target_type_id) == (0, 8, tb.ids["foo"])
    assert "foo___v2.b" in r.description
    # several candidates that agree are fine: baz.x and baz___copy.x are both at 0
    assert values(local, target, lb.ids["baz"], "0:0", K.FIELD_BYTE_OFFSET) == (0, 0)


def test_field_missing_poisons(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    for kind in (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_SIGNED, K.FIELD_LSHIFT_U64,
                 K.FIELD_RSHIFT_U64):
        r = run(local, target, lb.ids["foo___v1"], "0:0", kind)
        assert r.poison and r.target_value == 0, kind
        r = run(local, target, lb.ids["missing"], "0:0", kind)
        assert r.poison and r.target_type_id is None, kind
    assert "poison" in str(run(local, target, lb.ids["missing"], "0:0", K.FIELD_BYTE_OFFSET))


def test_field_array_bounds_and_flexible_arrays(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    # flexible array members take any index, locally and in the target
    assert values(local, target, lb.ids["fa"], "0:1:5", K.FIELD_BYTE_OFFSET) == (4 + 20, 8 + 20)
    assert values(local, target, lb.ids["fa"], "0:1:5", K.FIELD_BYTE_SIZE) == (4, 4)
    # a fixed array: an index past the local bound is malformed ...
    with pytest.raises(btf.BTFError, match="out of range"):
        run(local, target, lb.ids["small"], "0:0:2", K.FIELD_BYTE_OFFSET)
    # ... past the target's bound there is no match (foo.arr has 4 local, 8 target elements)
    assert values(local, target, lb.ids["foo"], "0:4:3", K.FIELD_EXISTS) == (1, 1)


def test_field_array_element_only_offset_and_size(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    with pytest.raises(btf.BTFError, match="array element"):
        run(local, target, lb.ids["foo"], "0:4:1", K.FIELD_LSHIFT_U64)


def test_ambiguous_candidates_raise(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    # bar.x is at offset 0 in 'bar' and 8 in 'bar___v2'
    for kind in (K.FIELD_BYTE_OFFSET, K.FIELD_EXISTS, K.FIELD_BYTE_SIZE):
        with pytest.raises(btf.BTFError, match=r"ambiguous.*struct bar\.x") as err:
            run(local, target, lb.ids["bar"], "0:0", kind)
        assert f"<{kind}> [{lb.ids['bar']}] struct bar.x (0:0 @ offset 0)" in str(err.value)
    # type relocations: both exist (agree), but their sizes differ
    assert values(local, target, lb.ids["bar"], "0", K.TYPE_EXISTS) == (1, 1)
    with pytest.raises(btf.BTFError, match="ambiguous"):
        run(local, target, lb.ids["bar"], "0", K.TYPE_SIZE)
    with pytest.raises(btf.BTFError, match="ambiguous"):
        run(local, target, lb.ids["bar"], "0", K.TYPE_ID_TARGET)


@pytest.mark.parametrize(("accessor", "kind", "problem"), [
    ("0:x", K.FIELD_BYTE_OFFSET, "invalid access string"),
    ("", K.FIELD_BYTE_OFFSET, "empty access string"),
    ("0:-1", K.FIELD_BYTE_OFFSET, "invalid access string"),
    ("0:9", K.FIELD_BYTE_OFFSET, "member index 9 is out of range"),
    ("0:0:1", K.FIELD_BYTE_OFFSET, "neither a struct"),
    ("1", K.TYPE_EXISTS, "access string '0'"),
    ("0", K.ENUMVAL_VALUE, "not an enum"),
    (":".join(["0"] * 65), K.FIELD_BYTE_OFFSET, "more than 64"),
])
def test_malformed_relocations(local: btf.Spec, target: btf.Spec, lb: Builder,
                               accessor: str, kind: CORERelocKind, problem: str) -> None:
    with pytest.raises(btf.BTFError, match=problem) as err:
        run(local, target, lb.ids["foo"], accessor, kind)
    assert "CO-RE relocation" in str(err.value) and "foo" in str(err.value)


def test_bad_type_id_and_anonymous_root(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    with pytest.raises(btf.BTFError, match="out of range"):
        run(local, target, 999, "0:0", K.FIELD_BYTE_OFFSET)
    with pytest.raises(btf.BTFError, match="anonymous"):
        run(local, target, lb.ids["anon"], "0:0", K.FIELD_BYTE_OFFSET)


# -- bitfields ----------------------------------------------------------------------------------------


def bitfield_specs(byte_order: ByteOrder, legacy: bool) -> tuple[btf.Spec, btf.Spec, Builder, Builder]:
    """``struct flags`` locally (kind_flag bitfields) and in a target of either encoding.

    Local:  u32 x:3 @0; s32 y:5 @3; u32 z:10 @8; u32 w @32 (plain).
    Target: u8 pad @0; u32 z:10 @8; s32 y:5 @30 (straddles 4 bytes: needs an 8-byte load);
            u32 x:3 @40; u32 w:7 @48 (became a bitfield). Size 8.
    """
    lb = Builder()
    base_ints(lb)
    i = lb.ids
    lb.add(Struct, "flags", 8, (
        Member("x", i["unsigned int"], 0, 3), Member("y", i["int"], 3, 5),
        Member("z", i["unsigned int"], 8, 10), Member("w", i["unsigned int"], 32),
    ))
    tb = Builder()
    base_ints(tb)
    j = tb.ids
    u8 = tb.add(Int, "unsigned char", 1)
    if legacy:  # no kind_flag: the INT type carries the width
        u10 = tb.add(Int, "unsigned int", 4, IntEncoding.NONE, 0, 10, key="u:10")
        s5 = tb.add(Int, "int", 4, SIGNED, 0, 5, key="s:5")
        u3 = tb.add(Int, "unsigned int", 4, IntEncoding.NONE, 0, 3, key="u:3")
        u7 = tb.add(Int, "unsigned int", 4, IntEncoding.NONE, 0, 7, key="u:7")
        members = (Member("pad", u8, 0), Member("z", u10, 8), Member("y", s5, 30),
                   Member("x", u3, 40), Member("w", u7, 48))
    else:
        members = (Member("pad", u8, 0), Member("z", j["unsigned int"], 8, 10), Member("y", j["int"], 30, 5),
                   Member("x", j["unsigned int"], 40, 3), Member("w", j["unsigned int"], 48, 7))
    tb.add(Struct, "flags", 8, members)
    return lb.spec(byte_order), tb.spec(byte_order), lb, tb


@pytest.mark.parametrize("legacy", [False, True], ids=["kind_flag", "legacy"])
@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_bitfield_reads_execute_correctly(byte_order: ByteOrder, legacy: bool) -> None:
    local, target, lb, _ = bitfield_specs(byte_order, legacy)
    flags = lb.ids["flags"]
    memory = place(8, byte_order, [(0, 8, 0xA5), (8, 10, 0x2F3), (30, 5, -7), (40, 3, 5), (48, 7, 0x55)])
    assert bitfield_read(local, target, flags, "0:0", memory) == 5        # x
    assert bitfield_read(local, target, flags, "0:1", memory) == -7       # y, signed, straddling
    assert bitfield_read(local, target, flags, "0:2", memory) == 0x2F3    # z
    local_memory = place(8, byte_order, [(0, 3, 6), (3, 5, -3), (8, 10, 0x155), (32, 32, 0xDEADBEEF)])
    assert bitfield_read(local, target, flags, "0:0", local_memory, side="local") == 6
    assert bitfield_read(local, target, flags, "0:1", local_memory, side="local") == -3
    assert bitfield_read(local, target, flags, "0:2", local_memory, side="local") == 0x155
    assert bitfield_read(local, target, flags, "0:3", local_memory, side="local") == 0xDEADBEEF
    # w became a bitfield: its value is still readable with the shifts ...
    assert bitfield_read(local, target, flags, "0:3", memory) == 0x55
    # ... but a plain load of it cannot be relocated: libbpf poisons such loads
    w = run(local, target, flags, "0:3", K.FIELD_BYTE_OFFSET)
    assert (w.local_mem_size, w.target_mem_size, w.mem_size_change_unsafe) == (4, 0, True)


@pytest.mark.parametrize("legacy", [False, True], ids=["kind_flag", "legacy"])
def test_bitfield_values_by_byte_order(legacy: bool) -> None:
    """The exact numbers, worked out by hand: only the left shift depends on the byte order."""
    expected = {  # accessor: (byte_off, byte_sz, lshift little, lshift big, rshift, signed)
        "0:0": (4, 4, 53, 40, 61, 0),   # x:3 @40 -> 4-byte load at 4, bits 8..10 of it
        "0:1": (0, 8, 29, 30, 59, 1),   # y:5 @30 -> 8-byte load at 0
        "0:2": (0, 4, 46, 40, 54, 0),   # z:10 @8 -> 4-byte load at 0
    }
    for byte_order in ("little", "big"):
        local, target, lb, _ = bitfield_specs(byte_order, legacy)
        flags = lb.ids["flags"]
        for accessor, (off, size, lsh_le, lsh_be, rsh, signed) in expected.items():
            got = [run(local, target, flags, accessor, kind).target_value
                   for kind in (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64,
                                K.FIELD_RSHIFT_U64, K.FIELD_SIGNED)]
            lsh = lsh_le if byte_order == "little" else lsh_be
            assert got == [off, size, lsh, rsh, signed], (byte_order, accessor)
        # validation: off for the compiler-dependent values, on for right shift and signedness
        validate = {kind: run(local, target, flags, "0:1", kind).validate
                    for kind in (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64,
                                 K.FIELD_RSHIFT_U64, K.FIELD_SIGNED)}
        assert validate == {K.FIELD_BYTE_OFFSET: False, K.FIELD_BYTE_SIZE: False,
                            K.FIELD_LSHIFT_U64: False, K.FIELD_RSHIFT_U64: True, K.FIELD_SIGNED: True}
        r = run(local, target, flags, "0:1", K.FIELD_BYTE_OFFSET)
        assert (r.local_mem_size, r.target_mem_size, r.target_field_size, r.target_field_signed) == \
            (0, 0, 8, True)


def test_local_lshift_uses_local_byte_order() -> None:
    """A big-endian object relocated against a little-endian kernel: each side in its own order."""
    local, _, lb, _ = bitfield_specs("big", legacy=False)
    _, target, _, _ = bitfield_specs("little", legacy=False)
    r = run(local, target, lb.ids["flags"], "0:2", K.FIELD_LSHIFT_U64)
    # local z:10 @8 in a 4-byte load at 0: big-endian 32 + 8; little-endian target: 64 - 18
    assert (r.local_value, r.target_value) == (40, 46)


def test_bitfield_beyond_a_64_bit_load() -> None:
    b = Builder()
    base_ints(b)
    b.add(Struct, "wide", 8, (Member("v", b.ids["unsigned long"], 0, 60),))
    local = b.spec()
    t = Builder()
    base_ints(t)
    t.add(Struct, "wide", 16, (Member("v", t.ids["unsigned long"], 8, 60),))
    with pytest.raises(btf.BTFError, match="64-bit load"):
        run(local, t.spec(), 6, "0:0", K.FIELD_BYTE_OFFSET)


# -- type relocations ---------------------------------------------------------------------------


def test_type_id_local_and_target(local: btf.Spec, target: btf.Spec, lb: Builder, tb: Builder) -> None:
    r = run(local, target, lb.ids["foo"], "0", K.TYPE_ID_LOCAL)
    assert (r.local_value, r.target_value, r.validate, r.poison) == (lb.ids["foo"],) * 2 + (False, False)
    # anonymous types only have local IDs
    anon = lb.ids["anon"]
    assert run(local, target, anon, "0", K.TYPE_ID_LOCAL).target_value == anon
    with pytest.raises(btf.BTFError, match="anonymous"):
        run(local, target, anon, "0", K.TYPE_ID_TARGET)
    r = run(local, target, lb.ids["foo"], "0", K.TYPE_ID_TARGET)
    assert (r.local_value, r.target_value, r.target_type_id) == (lb.ids["foo"], tb.ids["foo"], tb.ids["foo"])
    assert values(local, target, lb.ids["foo_t"], "0", K.TYPE_ID_TARGET) == (lb.ids["foo_t"], tb.ids["foo_t"])
    assert values(local, target, lb.ids["int"], "0", K.TYPE_ID_TARGET) == (lb.ids["int"], tb.ids["int"])


def test_type_exists_and_size(local: btf.Spec, target: btf.Spec, lb: Builder) -> None:
    assert values(local, target, lb.ids["foo"], "0", K.TYPE_EXISTS) == (1, 1)
    assert values(local, target, lb.ids["foo"], "0", K.TYPE_SIZE) == (40, 72)
    assert values(local, target, lb.ids["foo_t"], "0", K.TYPE_SIZE) == (40, 72)
    assert values(local, target, lb.ids["foo___v1"], "0", K.TYPE_SIZE) == (4, 72)  # flavor
    assert values(local, target, lb.ids["unsigned long"], "0", K.TYPE_SIZE) == (8, 8)
    # type relocations without a target resolve to 0, they are never poisoned (libbpf)
    for kind in (K.TYPE_EXISTS, K.TYPE_SIZE, K.TYPE_ID_TARGET, K.TYPE_MATCHES):
        r = run(local, target, lb.ids["missing"], "0", kind)
        assert not r.poison and r.target_value == 0 and r.target_type_id is None, kind
    # a struct is not a union
    assert values(local, target, lb.ids["qux"], "0", K.TYPE_EXISTS) == (1, 0)
    # enums of either width are one kind
    assert values(local, target, lb.ids["big"], "0", K.TYPE_EXISTS) == (1, 1)
    assert values(local, target, lb.ids["big"], "0", K.TYPE_SIZE) == (8, 8)


def test_type_compat_rules() -> None:
    """bpf_core_types_are_compat: typedefs are followed, ints are all alike, pointers recurse."""
    b = Builder()
    base_ints(b)
    i = b.ids
    s = b.add(Struct, "s", 4, (Member("x", i["int"], 0),))
    b.add(Typedef, "t_int", i["int"])
    b.add(Typedef, "t_struct", s)
    p = b.add(Pointer, "", s, key="ps")
    b.add(Typedef, "t_ptr", p)
    pp = b.add(Pointer, "", i["int"], key="pi")
    b.add(Typedef, "t_ptr2", pp)
    local = b.spec()
    t = Builder()
    base_ints(t)
    j = t.ids
    u = t.add(Union, "s", 4, (Member("x", j["int"], 0),))
    t.add(Typedef, "t_int", j["unsigned long"])      # other size and signedness: compatible
    t.add(Typedef, "t_struct", u)                    # struct vs union: not
    up = t.add(Pointer, "", u, key="pu")
    t.add(Typedef, "t_ptr", up)                      # pointer to union: not
    lp = t.add(Pointer, "", j["long"], key="pl")
    t.add(Typedef, "t_ptr2", lp)                     # pointer to another int: compatible
    target = t.spec()
    got = {name: values(local, target, i[name], "0", K.TYPE_EXISTS)[1]
           for name in ("t_int", "t_struct", "t_ptr", "t_ptr2")}
    assert got == {"t_int": 1, "t_struct": 0, "t_ptr": 0, "t_ptr2": 1}


def test_type_matches() -> None:
    """bpf_core_types_match: names, sizes, signedness, member subsets, enum variant subsets."""
    b = Builder()
    base_ints(b)
    i = b.ids
    opaque = b.add(Fwd, "opaque", False)
    p_opaque = b.add(Pointer, "", opaque, key="p_opaque")
    arr3 = b.add(Array, "", i["int"], i["int"], 3, key="int[3]")
    b.add(Struct, "m", 16, (Member("a", i["int"], 0), Member("p", p_opaque, 64)))
    b.add(Struct, "m_sign", 4, (Member("a", i["int"], 0),))
    b.add(Struct, "m_arr", 12, (Member("v", arr3, 0),))
    b.add(Enum, "e", 4, (EnumValue("A", 0), EnumValue("B", 1)))
    b.add(Enum, "e_size", 4, (EnumValue("A", 0),))
    b.add(Struct, "m_flavor", 4, (Member("a___new", i["int"], 0),))
    b.add(Struct, "m_fwd", 8, (Member("p", p_opaque, 0),))
    local = b.spec()

    t = Builder()
    base_ints(t)
    j = t.ids
    opaque_t = t.add(Struct, "opaque", 4, (Member("z", j["int"], 0),))
    p_opaque_t = t.add(Pointer, "", opaque_t, key="p_opaque")
    arr4 = t.add(Array, "", j["int"], j["int"], 4, key="int[4]")
    opaque_u = t.add(Fwd, "opaque", True, key="opaque-union")
    p_union = t.add(Pointer, "", opaque_u, key="p_union")
    t.add(Struct, "m", 24, (Member("z", j["long"], 0), Member("a", j["int"], 64),
                            Member("p", p_opaque_t, 128)))
    t.add(Struct, "m_sign", 4, (Member("a", j["unsigned int"], 0),))
    t.add(Struct, "m_arr", 16, (Member("v", arr4, 0),))
    t.add(Enum, "e", 4, (EnumValue("C", 0), EnumValue("B", 5), EnumValue("A", 9)))
    t.add(Enum64, "e_size", 8, (EnumValue("A", 0),))
    t.add(Struct, "m_flavor", 4, (Member("a", j["int"], 0),))
    t.add(Struct, "m_fwd", 8, (Member("p", p_union, 0),))  # a union behind the pointer: no match
    target = t.spec()

    expected = {"m": 1, "m_sign": 0, "m_arr": 0, "e": 1, "e_size": 0, "m_flavor": 1, "m_fwd": 0}
    got = {name: values(local, target, i[name], "0", K.TYPE_MATCHES)[1] for name in expected}
    assert got == expected
    # TYPE_EXISTS is looser: every one of them exists
    assert all(values(local, target, i[name], "0", K.TYPE_EXISTS)[1] == 1 for name in expected)


# -- enum value relocations -------------------------------------------------------------------------


def test_enumval(local: btf.Spec, target: btf.Spec, lb: Builder, tb: Builder) -> None:
    color = lb.ids["color"]
    assert values(local, target, color, "0", K.ENUMVAL_VALUE) == (0, 11)   # RED moved
    assert values(local, target, color, "1", K.ENUMVAL_VALUE) == (1, 10)   # GREEN moved
    assert values(local, target, color, "0", K.ENUMVAL_EXISTS) == (1, 1)
    assert values(local, target, color, "2", K.ENUMVAL_EXISTS) == (1, 0)   # BLUE is gone
    blue = run(local, target, color, "2", K.ENUMVAL_VALUE)
    assert blue.poison and blue.target_value == 0
    r = run(local, target, color, "0", K.ENUMVAL_VALUE)
    assert r.description == f"<enumval_value> [{color}] enum color::RED = 0"
    assert r.target_description == f"[{tb.ids['color']}] enum color::RED = 11"
    # flavored enum and flavored enumerator: color___new::RED___v2 is color::RED
    assert values(local, target, lb.ids["color___new"], "0", K.ENUMVAL_VALUE) == (7, 11)
    # ENUM against ENUM64
    assert values(local, target, lb.ids["big"], "0", K.ENUMVAL_VALUE) == (1, 1 << 40)
    # the enum itself is missing
    assert values(local, target, lb.ids["gone_enum"], "0", K.ENUMVAL_EXISTS) == (1, 0)
    assert run(local, target, lb.ids["gone_enum"], "0", K.ENUMVAL_VALUE).poison
    with pytest.raises(btf.BTFError, match="enumerator index"):
        run(local, target, color, "3", K.ENUMVAL_VALUE)
    with pytest.raises(btf.BTFError, match="enumerator index"):
        run(local, target, color, "0:1", K.ENUMVAL_VALUE)


def test_enumval_negative_and_64_bit_values() -> None:
    """ENUM values are signed 32-bit (libbpf sign-extends them), ENUM64 values unsigned."""
    b = Builder()
    b.add(Enum, "e", 4, (EnumValue("NEG", 0), EnumValue("HIGH", 1)))
    b.add(Enum64, "e64", 8, (EnumValue("TOP", 0),))
    local = b.spec()
    t = Builder()
    t.add(Enum, "e", 4, (EnumValue("NEG", -1), EnumValue("HIGH", 0x80000000)), True)
    t.add(Enum64, "e64", 8, (EnumValue("TOP", -2),), True)
    target = t.spec()
    assert values(local, target, 1, "0", K.ENUMVAL_VALUE) == (0, -1)
    assert values(local, target, 1, "1", K.ENUMVAL_VALUE) == (1, -0x80000000)
    assert values(local, target, 2, "0", K.ENUMVAL_VALUE) == (0, MASK64 - 1)


# -- the project's own object against the running kernel -------------------------------------------


@pytest.fixture(scope="module", params=["core-el.o", "core-eb.o"])
def core_object(request: pytest.FixtureRequest) -> ebpfspec.CollectionSpec:
    return ebpfspec.load_collection_spec(TESTDATA / str(request.param))


@pytest.mark.kernel
def test_core_object_against_kernel(core_object: ebpfspec.CollectionSpec) -> None:
    kernel = kernel_or_skip()
    local = core_object.types
    assert local is not None
    task = kernel.type_by_name("task_struct", btf.Kind.STRUCT)
    assert isinstance(task, Struct)

    def offset(name: str) -> int:
        return task.member(name).offset // 8

    byte_offsets: dict[str, set[int]] = {}
    seen: dict[tuple[str, CORERelocKind], int] = {}
    cache = CoreCache(kernel)
    for _, insn, r in relocated(core_object):
        result = cache.resolve(r, local)
        assert not result.poison, result
        if result.validate:  # the compiler's value is the local value
            assert insn_value(insn) & MASK64 == result.local_value & MASK64, result
        root = local.type_by_id(r.type_id)
        if root.name.startswith("task_struct") and r.kind != K.TYPE_EXISTS:
            if root.name != "task_struct___old":  # ___ids and the rest: the kernel's task_struct
                assert result.target_type_id == task.id, result
            assert isinstance(root, Struct)
            member = root.members[int(r.accessor.split(":")[1])].name
            seen[member, r.kind] = result.target_value
            if r.kind == K.FIELD_BYTE_OFFSET:
                byte_offsets.setdefault(member, set()).add(result.target_value)
        else:
            seen[root.name, r.kind] = result.target_value

    assert byte_offsets["pid"] == {offset("pid")}
    assert byte_offsets["tgid"] == {offset("tgid")}  # task_struct.tgid and task_struct___ids.tgid
    for name in ("real_parent", "__state", "flags", "comm"):
        assert byte_offsets[name] == {offset(name)}, name
    assert seen["comm", K.FIELD_BYTE_SIZE] == 16
    assert seen["pid", K.FIELD_EXISTS] == 1
    has_state = any(m.name == "state" for m in task.members)
    assert seen["state", K.FIELD_EXISTS] == int(has_state)  # task_struct___old.state: 0 since 5.14
    assert seen["task_struct", K.TYPE_EXISTS] == 1
    assert seen["ebpfspec_missing_type", K.TYPE_EXISTS] == 0
    pid_type = kernel.type_by_name("pid_type", btf.Kind.ENUM)
    assert isinstance(pid_type, Enum)
    assert seen["pid_type", K.ENUMVAL_VALUE] == pid_type.value_of("PIDTYPE_SID") == 3
    assert seen["pid_type", K.ENUMVAL_EXISTS] == 1

    # in_execve: execute the relocated bitfield read on images of a kernel task_struct
    bit = task.member("in_execve")
    width = bit.bitfield_size or 1
    ids = {r.kind: r for _, _, r in relocated(core_object) if r.accessor == "0:2"}
    got = {kind: cache.resolve(r, local) for kind, r in ids.items()}
    for value in (0, 1):
        noise = [(task.member(n).offset, 32, 0x5A5A5A5A) for n in ("pid", "tgid")]
        memory = place(task.size, kernel.byte_order, [*noise, (bit.offset, width, value)])
        read = read_bitfield(memory, kernel.byte_order, got[K.FIELD_BYTE_OFFSET].target_value,
                             got[K.FIELD_BYTE_SIZE].target_value, got[K.FIELD_LSHIFT_U64].target_value,
                             got[K.FIELD_RSHIFT_U64].target_value, bool(got[K.FIELD_SIGNED].target_value))
        assert read == value


@pytest.mark.kernel
def test_core_object_resolves_fast() -> None:
    """All relocations of core-el.o against the kernel with a fresh cache (the brief: < 50 ms)."""
    kernel = kernel_or_skip()
    spec = ebpfspec.load_collection_spec(TESTDATA / "core-el.o")
    assert spec.types is not None
    relos = [r for _, _, r in relocated(spec)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        results = CoreCache(kernel).resolve_all(relos, spec.types)
        best = min(best, time.perf_counter() - start)
    assert len(results) == len(relos) == 21
    assert best < 0.25, f"{best * 1000:.1f} ms"


# -- cilium/ebpf's CO-RE test objects ---------------------------------------------------------------


def cilium_or_skip(name: str) -> Path:
    path = CILIUM / name
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    return path


@pytest.mark.parametrize("suffix", ["el", "eb"])
def test_cilium_relocs_against_own_btf(suffix: str) -> None:
    """relocs.c: every relocation resolves against its own BTF to the compiler's value, and the
    two err_ambiguous programs are ambiguous (``ambiguous`` and ``ambiguous___flavour`` both
    match either name)."""
    spec = ebpfspec.load_collection_spec(cilium_or_skip(f"relocs-{suffix}.elf"))
    own = spec.types
    assert own is not None
    checked = 0
    for program, insn, r in relocated(spec):
        if program.startswith("err_ambiguous"):
            with pytest.raises(btf.BTFError, match=r"ambiguous: candidates \[35\] struct ambiguous and "
                                                   r"\[38\] struct ambiguous___flavour"):
                core.resolve(r, own, own)
            continue
        result = core.resolve(r, own, own)
        assert not result.poison, result
        assert result.target_value == result.local_value, result
        assert insn_value(insn) & MASK64 == result.local_value & MASK64, result
        checked += 1
    assert checked == 82


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_cilium_relocs_read(byte_order: ByteOrder) -> None:
    """relocs_read.c against relocs_read_tgt.c: members reordered, bitfields moved, resized,
    retyped; the program's checks, executed on the memory image it builds."""
    suffix = "el" if byte_order == "little" else "eb"
    spec = ebpfspec.load_collection_spec(cilium_or_skip(f"relocs_read-{suffix}.elf"))
    tgt = ebpfspec.load_collection_spec(cilium_or_skip(f"relocs_read_tgt-{suffix}.elf")).types
    local = spec.types
    assert local is not None and tgt is not None
    s = local.type_by_name("s", btf.Kind.STRUCT)
    bits = local.type_by_name("bits", btf.Kind.STRUCT)
    assert isinstance(bits, Struct)
    # struct s { char b; char a; } locally, { char a; char b; } in the target
    assert values(local, tgt, s.id, "0:1", K.FIELD_BYTE_OFFSET) == (1, 0)
    assert values(local, tgt, s.id, "0:0", K.FIELD_BYTE_OFFSET) == (0, 1)
    # the 8 bytes read_subprog() writes into 'struct bits'
    g = bytes((0x22, 0x33, 0x44, 0x55)) if byte_order == "little" else bytes((0x55, 0x44, 0x33, 0x22))
    memory = bytes((0xFF, 0x00, 0x56, 0x56)) + g
    expected = {"a": 15, "b": 3, "d": 3, "c": 0, "e": 0, "f": 0x5656,
                # g is the low 30 bits of the little-endian u32 0x55443322, and the top 30
                # bits of the big-endian one (relocs_read.c only checks the former)
                "g": 0x15443322 if byte_order == "little" else 0x55443322 >> 2}
    accessors = {m.name: f"0:{i}" for i, m in enumerate(bits.members)}
    got = {name: bitfield_read(local, tgt, bits.id, accessors[name], memory) for name in expected}
    assert got == expected
    # every relocation the object carries resolves; the nonexistent types give 0, not poison
    results = [core.resolve(r, local, tgt) for _, _, r in relocated(spec)]
    assert len(results) == 47 and not any(r.poison for r in results)
    assert {(r.kind, r.target_value) for r in results if "nonexist" in r.description} == {
        (K.TYPE_EXISTS, 0), (K.FIELD_EXISTS, 0), (K.ENUMVAL_EXISTS, 0)}
