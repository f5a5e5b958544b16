"""btf: parsing against bpftool, lookups, layout, marshaling, split BTF, .BTF.ext."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Literal

import pytest

import btf
from btf import Kind
from btf.ext import CORERelocKind, load_ext
from btf.format_raw import format_raw
from tests.conftest import bpf_objects
from tests.util import elf_section

VMLINUX = "/sys/kernel/btf/vmlinux"


def kernel_or_skip() -> btf.Spec:
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} does not exist")
    return btf.load_kernel_spec()


def bpftool_or_skip() -> str:
    path = shutil.which("bpftool")
    if path is None:
        pytest.skip("bpftool is not installed")
    return path


def object_btf(path: Path) -> btf.Spec:
    raw = elf_section(path, ".BTF")
    assert raw is not None, f"{path.name} has no .BTF"
    return btf.load_spec(raw)


# -- the kernel's BTF against bpftool ------------------------------------------------------


@pytest.mark.kernel
def test_kernel_raw_dump_equals_bpftool() -> None:
    """Every one of the kernel's types prints exactly as bpftool prints it."""
    kernel = kernel_or_skip()
    expected = subprocess.run(
        [bpftool_or_skip(), "btf", "dump", "file", VMLINUX], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    ours = list(format_raw(kernel))
    assert len(kernel) == 1 + sum(1 for line in expected if line.startswith("["))
    assert len(ours) == len(expected)
    mismatches = [(a, b) for a, b in zip(ours, expected, strict=True) if a != b]
    assert mismatches[:5] == []


@pytest.mark.kernel
@pytest.mark.parametrize("path", bpf_objects("*-el.o")[:6], ids=lambda p: p.name)
def test_object_raw_dump_equals_bpftool(path: Path) -> None:
    """Object BTF (DATASEC, VAR, FUNC, DECL_TAG ...) prints exactly as bpftool prints it."""
    expected = subprocess.run(
        [bpftool_or_skip(), "btf", "dump", "file", str(path)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert list(format_raw(object_btf(path))) == expected


@pytest.mark.kernel
def test_kernel_lookups() -> None:
    kernel = kernel_or_skip()
    assert isinstance(kernel.type_by_id(0), btf.Void)
    (task,) = kernel.types_by_name("task_struct", kind=Kind.STRUCT)
    assert isinstance(task, btf.Struct)
    assert kernel.type_id(task) == task.id
    assert kernel.type_by_id(task.id) is task  # cached
    pid = task.member("pid")
    assert btf.sizeof(pid.type) == 4
    assert pid.offset % 8 == 0
    assert btf.sizeof(task) == task.size > 1000
    assert btf.alignof(task) in (8, 16, 32, 64)
    # iteration is in ID order and covers every ID exactly once
    ids = [t.id for t in kernel]
    assert ids == list(range(len(kernel)))
    with pytest.raises(btf.BTFError, match="out of range"):
        kernel.type_by_id(len(kernel))
    with pytest.raises(btf.BTFError, match="no type"):
        kernel.type_by_name("no_such_type_in_any_kernel")


@pytest.mark.kernel
def test_kernel_spec_is_cached_and_thread_safe() -> None:
    kernel_or_skip()
    results: list[btf.Spec] = []

    def load() -> None:
        results.append(btf.load_kernel_spec())

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert all(spec is results[0] for spec in results)


@pytest.mark.kernel
def test_kernel_concurrent_decoding_gives_equal_types() -> None:
    kernel = kernel_or_skip().copy()  # a fresh cache, decoded from scratch by 4 threads
    names = ["task_struct", "sk_buff", "file", "inode", "bpf_map", "xdp_md", "mm_struct"]
    seen: list[list[btf.Type]] = []

    def lookup() -> None:
        seen.append([kernel.type_by_name(n, Kind.STRUCT) for n in names * 3])

    threads = [threading.Thread(target=lookup) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4
    assert all(s == seen[0] for s in seen)
    assert [t.name for t in seen[0][: len(names)]] == names


@pytest.mark.kernel
def test_module_spec_rejects_bad_names() -> None:
    kernel_or_skip()
    for bad in ("", "../vmlinux", "a/b", ".", "x\0y"):
        with pytest.raises(btf.BTFError, match="invalid kernel module name"):
            btf.load_module_spec(bad)
    with pytest.raises(btf.BTFError, match="does not exist"):
        btf.load_module_spec("ebpfspec_no_such_module")


# -- split BTF ------------------------------------------------------------------------------


@pytest.mark.kernel
def test_split_btf_on_kernel_base() -> None:
    """A module-style blob on top of vmlinux: IDs and strings continue the base's."""
    kernel = kernel_or_skip()
    first = len(kernel)
    int_id = kernel.type_by_name("int", Kind.INT).id
    task_id = kernel.type_by_name("task_struct", Kind.STRUCT).id
    module_types = [
        btf.Struct(first, "ebpfspec_mod_state", 16, (
            btf.Member("task", first + 1, 0),
            btf.Member("count", int_id, 64),
        )),
        btf.Pointer(first + 1, "", task_id),
        btf.Typedef(first + 2, "pid_t", int_id),  # a name the base has already
    ]
    raw = btf.marshal_types(module_types, base=kernel)
    split = btf.load_spec(raw, base=kernel)
    assert len(split) == first + 3
    state = split.type_by_name("ebpfspec_mod_state")
    assert isinstance(state, btf.Struct)
    assert state.member("task").type.type == kernel.type_by_id(task_id)  # type: ignore[attr-defined]
    assert split.type_by_id(task_id) == kernel.type_by_id(task_id)
    assert len(split.types_by_name("pid_t", Kind.TYPEDEF)) == 2  # base's and ours
    assert [t.id for t in split.own_types()] == [first, first + 1, first + 2]
    assert btf.load_spec(split.to_bytes(), base=kernel) == split
    dump = list(format_raw(split))
    assert dump[0] == f"[{first}] STRUCT 'ebpfspec_mod_state' size=16 vlen=2"


# -- hand-made specs: layout and marshaling ---------------------------------------------------


def small_spec() -> btf.Spec:
    u32 = btf.Int(1, "unsigned int", 4)
    return btf.Spec.from_types([
        u32,
        btf.Int(2, "char", 1, btf.IntEncoding.CHAR),
        btf.Array(3, "", 2, 1, 6),                                   # char[6]
        btf.Struct(4, "packed_s", 7, (btf.Member("a", 2, 0), btf.Member("b", 1, 8))),
        btf.Struct(5, "aligned_s", 16, (btf.Member("a", 2, 0), btf.Member("p", 6, 64))),
        btf.Pointer(6, "", 5),                                       # self-referencing
        btf.Typedef(7, "name_t", 3),
        btf.Const(8, "", 7),
        btf.Struct(9, "bits", 4, (
            btf.Member("lo", 1, 0, 3), btf.Member("hi", 1, 3, 29),
        )),
        btf.Enum(10, "e", 4, (btf.EnumValue("NEG", -1), btf.EnumValue("POS", 7)), signed=True),
        btf.Enum64(11, "e64", 8, (btf.EnumValue("BIG", 1 << 63),)),
    ])


def test_layout_of_hand_made_types() -> None:
    spec = small_spec()
    t = spec.type_by_id
    assert btf.sizeof(t(3)) == 6
    assert btf.alignof(t(3)) == 1
    assert btf.sizeof(t(8)) == 6  # const name_t -> char[6]
    assert btf.skip_qualifiers(t(8)) == t(7)
    assert btf.skip_qualifiers_and_typedefs(t(8)) == t(3)
    assert btf.alignof(t(4)) == 1 and btf.is_packed(t(4))  # type: ignore[arg-type]
    assert btf.alignof(t(5)) == 8 and not btf.is_packed(t(5))  # type: ignore[arg-type]
    assert btf.sizeof(t(6)) == 8
    bits = t(9)
    assert isinstance(bits, btf.Struct)
    assert [(m.name, m.offset, m.bitfield_size) for m in bits.members] == [("lo", 0, 3), ("hi", 3, 29)]
    enum = t(10)
    assert isinstance(enum, btf.Enum)
    assert enum.value_of("NEG") == -1
    enum64 = t(11)
    assert isinstance(enum64, btf.Enum64)
    assert enum64.value_of("BIG") == 1 << 63
    with pytest.raises(btf.BTFError, match="has no size"):
        btf.sizeof(spec.type_by_id(0))


def test_round_trip_both_byte_orders() -> None:
    spec = small_spec()
    orders: tuple[Literal["little"], Literal["big"]] = ("little", "big")
    for order in orders:
        raw = spec.to_bytes(byte_order=order)
        again = btf.load_spec(raw)
        assert again.byte_order == order
        assert again == spec
        assert list(format_raw(again)) == list(format_raw(spec))


def test_marshal_subset_renumbers_reachable_types() -> None:
    spec = small_spec()
    raw, ids = btf.marshal_subset([spec.type_by_id(8)])  # const -> typedef -> array -> char, u32
    sub = btf.load_spec(raw)
    assert set(ids) == {0, 8, 7, 3, 2, 1}
    assert len(sub) == 6
    const = sub.type_by_id(ids[8])
    assert isinstance(const, btf.Const)
    assert btf.sizeof(const) == 6
    assert sub.type_by_id(ids[7]).name == "name_t"


def test_types_are_immutable_and_compare_by_value() -> None:
    spec = small_spec()
    s = spec.type_by_id(5)
    with pytest.raises(AttributeError):
        s.name = "other"
    assert not hasattr(s, "__dict__")
    copy = spec.copy()
    assert copy == spec
    assert copy.type_by_id(5) == s
    assert copy.type_by_id(5).spec is copy
    assert hash(copy.type_by_id(5)) == hash(s)
    assert btf.Pointer(6, "", 5) == spec.type_by_id(6)
    assert btf.Pointer(6, "", 5) != btf.Typedef(6, "", 5)


def test_from_types_requires_consecutive_ids() -> None:
    with pytest.raises(btf.BTFError, match="numbered from 1"):
        btf.Spec.from_types([btf.Int(2, "int", 4)])


def test_free_type_cannot_resolve_references() -> None:
    with pytest.raises(btf.BTFError, match=r"not part of a btf\.Spec"):
        _ = btf.Pointer(1, "", 2).type


# -- object BTF and .BTF.ext -----------------------------------------------------------------


@pytest.mark.parametrize("path", bpf_objects(), ids=lambda p: p.name)
def test_object_btf_round_trips(path: Path) -> None:
    spec = object_btf(path)
    assert spec.byte_order == ("big" if path.name.endswith("-eb.o") else "little")
    assert btf.load_spec(spec.to_bytes()) == spec


OBJECTS_WITH_PROGRAMS = [p for p in bpf_objects() if not p.name.startswith("many_maps")]


@pytest.mark.parametrize("path", OBJECTS_WITH_PROGRAMS, ids=lambda p: p.name)
def test_object_ext_infos_point_at_functions(path: Path) -> None:
    spec = object_btf(path)
    raw = elf_section(path, ".BTF.ext")
    assert raw is not None
    ext = load_ext(raw, spec.strings, spec.byte_order)
    for section, funcs in ext.func_infos:
        assert funcs, section
        for info in funcs:
            assert isinstance(spec.type_by_id(info.type_id), btf.Func)
            assert info.insn_off % 8 == 0
    for section, lines in ext.line_infos:
        assert any(line.file_name.endswith(".c") for line in lines), section
        # line 0 marks compiler-generated code; real lines carry their source text
        assert any(line.line_number > 0 for line in lines), section
        assert all(line.line for line in lines if line.line_number > 0), section


@pytest.mark.parametrize("name", ["core-el.o", "core-eb.o"])
def test_core_relocations_of_core_object(name: str) -> None:
    path = next(p for p in bpf_objects() if p.name == name)
    spec = object_btf(path)
    raw = elf_section(path, ".BTF.ext")
    assert raw is not None
    ext = load_ext(raw, spec.strings, spec.byte_order)
    _, _, relos = ext.for_section("raw_tracepoint/sys_enter")
    kinds = {r.kind for r in relos}
    assert {CORERelocKind.FIELD_BYTE_OFFSET, CORERelocKind.FIELD_EXISTS,
            CORERelocKind.TYPE_EXISTS, CORERelocKind.ENUMVAL_VALUE} <= kinds
    first = relos[0]
    assert first.kind == CORERelocKind.FIELD_BYTE_OFFSET
    root = spec.type_by_id(first.type_id)
    assert root.name == "task_struct"
    assert all(c.isdigit() or c == ":" for c in first.accessor)


def test_ext_rejects_counts_beyond_the_section() -> None:
    spec = small_spec()
    import struct

    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 28, 28, 0)
    func_part = struct.pack("<I", 8) + struct.pack("<II", 0, 1_000_000) + b"\0" * 16
    with pytest.raises(btf.BTFError, match="claims 1000000 records"):
        load_ext(header + func_part, spec.strings, "little")
