"""The ELF reader against the project's own testdata, exact expected specs, both byte orders.

Expected values are written out from testdata/README.md (and the C sources), not read
back from the reader.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import btf
import ebpfspec
from ebpfspec import AttachType, MapType, PinType, ProgramType
from ebpfspec.asm.opcodes import PSEUDO_CALL, PSEUDO_FUNC, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE
from tests.conftest import TESTDATA

ORDERS = ["el", "eb"]
BPF_F_RDONLY_PROG = 0x80


def load(name: str, order: str) -> ebpfspec.CollectionSpec:
    return ebpfspec.load_collection_spec(TESTDATA / f"{name}-{order}.o")


def u32(value: int, order: str) -> bytes:
    return value.to_bytes(4, "little" if order == "el" else "big")


def map_fields(m: ebpfspec.MapSpec) -> tuple[MapType, int, int, int, int]:
    return (m.type, m.key_size, m.value_size, m.max_entries, m.flags)


# -- maps.c ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_btf_maps(order: str) -> None:
    spec = load("maps", order)
    assert spec.byte_order == ("little" if order == "el" else "big")
    m = spec.maps
    expected = {
        "hash_map": (MapType.HASH, 4, 24, 1024, 0),
        "array_map": (MapType.ARRAY, 4, 8, 16, 0),
        "percpu_hash": (MapType.PERCPU_HASH, 4, 8, 128, 0),
        "percpu_array": (MapType.PERCPU_ARRAY, 4, 4, 8, 0),
        "lru_hash": (MapType.LRU_HASH, 8, 8, 256, 0),
        "lru_percpu_hash": (MapType.LRU_PERCPU_HASH, 4, 8, 64, 0),
        "ringbuf": (MapType.RINGBUF, 0, 0, 16384, 0),
        "perf_events": (MapType.PERF_EVENT_ARRAY, 4, 4, 0, 0),
        "queue": (MapType.QUEUE, 0, 4, 32, 0),
        "stack": (MapType.STACK, 0, 8, 16, 0),
        "bloom": (MapType.BLOOM_FILTER, 0, 4, 1000, 0),
        "noprealloc_hash": (MapType.HASH, 4, 4, 512, 1),
        "numa_hash": (MapType.HASH, 4, 4, 32, 4),
        "pinned_array": (MapType.ARRAY, 4, 8, 4, 0),
        "inner_a": (MapType.LRU_HASH, 4, 16, 16, 0),
        "inner_b": (MapType.LRU_HASH, 4, 16, 16, 0),
        "array_of_maps": (MapType.ARRAY_OF_MAPS, 4, 4, 4, 0),
        "hash_of_maps": (MapType.HASH_OF_MAPS, 4, 4, 8, 0),
        "inner_small": (MapType.ARRAY, 4, 16, 2, 0x1000),
        "inner_large": (MapType.ARRAY, 4, 16, 8, 0x1000),
        "array_of_arrays": (MapType.ARRAY_OF_MAPS, 4, 4, 2, 0),
        "jump_table": (MapType.PROG_ARRAY, 4, 4, 4, 0),
    }
    for name, fields in expected.items():
        assert map_fields(m[name]) == fields, name
    assert m["bloom"].map_extra == 3
    assert m["numa_hash"].numa_node == 0
    assert m["pinned_array"].pinning == PinType.BY_NAME
    assert all(m[n].pinning == PinType.NONE for n in expected if n != "pinned_array")
    # BTF key/value types
    value = m["hash_map"].value
    assert isinstance(value, btf.Struct) and value.name == "flow_stats"
    assert [mem.name for mem in value.members] == ["packets", "bytes", "flags", "port", "proto", "pad"]
    assert m["hash_map"].key is not None and btf.sizeof(m["hash_map"].key) == 4
    assert m["ringbuf"].key is None and m["ringbuf"].value is None
    assert m["perf_events"].key is None
    assert m["jump_table"].key is None


@pytest.mark.parametrize("order", ORDERS)
def test_map_in_map_and_prog_array_contents(order: str) -> None:
    spec = load("maps", order)
    m = spec.maps
    for outer in ("array_of_maps", "hash_of_maps"):
        inner = m[outer].inner_map
        assert inner is not None, outer
        assert map_fields(inner) == (MapType.LRU_HASH, 4, 16, 16, 0)
        assert isinstance(inner.value, btf.Struct) and inner.value.name == "inner_value"
    assert [(kv.key, kv.value) for kv in m["array_of_maps"].contents] == [
        (u32(0, order), "inner_a"),
        (u32(1, order), "inner_b"),
    ]
    assert [(kv.key, kv.value) for kv in m["hash_of_maps"].contents] == [(u32(3, order), "inner_b")]
    inner_arrays = m["array_of_arrays"].inner_map
    assert inner_arrays is not None
    assert map_fields(inner_arrays) == (MapType.ARRAY, 4, 16, 4, 0x1000)
    assert [(kv.key, kv.value) for kv in m["array_of_arrays"].contents] == [
        (u32(0, order), "inner_small"),
        (u32(1, order), "inner_large"),
    ]
    assert [(kv.key, kv.value) for kv in m["jump_table"].contents] == [
        (u32(0, order), "prog_a"),
        (u32(2, order), "prog_b"),
    ]
    assert m["jump_table"].inner_map is None


@pytest.mark.parametrize("order", ORDERS)
def test_maps_programs(order: str) -> None:
    spec = load("maps", order)
    assert set(spec.programs) == {"prog_a", "prog_b", "use_maps"}
    use = spec.programs["use_maps"]
    assert (use.type, use.attach_type, use.attach_to, use.section_name) == (
        ProgramType.XDP,
        AttachType.XDP,
        "",
        "xdp",
    )
    assert use.license == "GPL"
    used = set(use.maps_used)
    assert used == {
        "hash_map",
        "array_map",
        "percpu_hash",
        "percpu_array",
        "lru_hash",
        "lru_percpu_hash",
        "ringbuf",
        "perf_events",
        "queue",
        "stack",
        "bloom",
        "noprealloc_hash",
        "numa_hash",
        "pinned_array",
        "array_of_maps",
        "hash_of_maps",
        "array_of_arrays",
        "jump_table",
    }
    for insn in use.instructions:
        if insn.reference in used:
            assert insn.is_ld_imm64 and insn.src == PSEUDO_MAP_FD and insn.constant == 0


# -- legacy maps -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_legacy_maps(order: str) -> None:
    spec = load("legacy_maps", order)
    assert {n: map_fields(m) for n, m in spec.maps.items()} == {
        "legacy_hash": (MapType.HASH, 4, 8, 64, 0),
        "legacy_array": (MapType.ARRAY, 4, 16, 8, 0),
        "legacy_percpu_hash": (MapType.PERCPU_HASH, 8, 4, 32, 1),
        "legacy_prog_array": (MapType.PROG_ARRAY, 4, 4, 2, 0),
    }
    assert all(m.extra is None and m.key is None for m in spec.maps.values())
    prog = spec.programs["legacy_prog"]
    assert (prog.type, prog.attach_type, prog.section_name) == (
        ProgramType.SOCKET_FILTER,
        AttachType.NONE,
        "socket",
    )
    assert set(prog.maps_used) == set(spec.maps)


@pytest.mark.parametrize("order", ORDERS)
def test_iproute2_maps_keep_extra_bytes(order: str) -> None:
    spec = load("iproute2_maps", order)
    m = spec.maps
    assert map_fields(m["tc_counters"]) == (MapType.ARRAY, 4, 8, 4, 0)
    assert map_fields(m["tc_flows"]) == (MapType.HASH, 4, 4, 128, 1)
    assert map_fields(m["tc_percpu"]) == (MapType.PERCPU_ARRAY, 4, 4, 2, 0)

    def words(*values: int) -> bytes:
        return b"".join(u32(v, order) for v in values)

    assert m["tc_counters"].extra == words(1, 2, 0, 0)
    assert m["tc_flows"].extra == words(2, 1, 0x11223344, 7)
    assert m["tc_percpu"].extra == words(3, 0, 0, 0xFFFFFFFF)
    assert all(x.pinning == PinType.NONE for x in m.values())
    prog = spec.programs["tc_ingress"]
    assert (prog.type, prog.section_name) == (ProgramType.SCHED_CLS, "classifier")


# -- globals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_data_sections_and_variables(order: str) -> None:
    spec = load("globals", order)
    m = spec.maps
    assert map_fields(m[".data"]) == (MapType.ARRAY, 4, 44, 1, 0)
    assert map_fields(m[".rodata"]) == (MapType.ARRAY, 4, 16, 1, BPF_F_RDONLY_PROG)
    assert map_fields(m[".bss"]) == (MapType.ARRAY, 4, 28, 1, 0)
    assert map_fields(m[".data.custom"]) == (MapType.ARRAY, 4, 16, 1, 0)
    assert map_fields(m[".rodata.custom"]) == (MapType.ARRAY, 4, 4, 1, BPF_F_RDONLY_PROG)
    assert m[".rodata"].freeze and m[".rodata.custom"].freeze and not m[".data"].freeze
    assert m[".bss"].contents == ()
    if order == "el":
        assert m[".data"].contents[0].value == bytes.fromhex(
            "07000000 00000000 03000000 901f1101 88776655 44332211 0a000000 14000000 "
            "1e000000 28000000 5a5a5a5a".replace(" ", "")
        )
        assert m[".rodata"].contents[0].value == bytes.fromhex("2a000000000000000df0fecaefbeadde")
    datasec = m[".data"].value
    assert isinstance(datasec, btf.Datasec) and datasec.size == 44  # fixed up from 0
    assert [v.offset for v in datasec.vars] == sorted(v.offset for v in datasec.vars)

    v = spec.variables
    expected = {
        "counter": (".data", 0, 4, False),
        "settings": (".data", 8, 16, False),
        "table": (".data", 24, 16, False),
        "internal_state": (".data", 40, 4, False),
        "limit": (".rodata", 0, 4, True),
        "debug": (".rodata", 4, 1, True),
        "magic": (".rodata", 8, 8, True),
        "hits": (".bss", 0, 8, False),
        "last_len": (".bss", 8, 4, False),
        "scratch": (".bss", 12, 16, False),
        "custom_val": (".data.custom", 0, 4, False),
        "custom_total": (".data.custom", 8, 8, False),
        "custom_ro": (".rodata.custom", 0, 4, True),
    }
    assert {n: (x.section_name, x.offset, x.size, x.constant) for n, x in v.items()} == expected
    assert v["counter"].value == u32(7, order)
    assert v["limit"].value == u32(42, order)
    assert v["scratch"].value == bytes(16)
    assert isinstance(v["counter"].type, btf.Var) and v["counter"].type.name == "counter"


@pytest.mark.parametrize("order", ORDERS)
def test_data_references_carry_offsets(order: str) -> None:
    spec = load("globals", order)
    prog = spec.programs["xdp_globals"]
    refs = {
        (i.reference, i.constant >> 32)
        for i in prog.instructions
        if i.src == PSEUDO_MAP_VALUE and i.is_ld_imm64
    }
    # table -> 24 (through its own symbol), internal_state -> 40 (through the section symbol)
    assert (".data", 24) in refs
    assert (".data", 40) in refs
    assert {r for r, _ in refs} >= {".data", ".rodata", ".bss", ".data.custom", ".rodata.custom"}


@pytest.mark.parametrize("order", ORDERS)
def test_with_variables_updates_variable_and_section(order: str) -> None:
    spec = load("globals", order)
    before = spec.to_dict()
    changed = spec.with_variables(limit=1000, debug=True, counter=b"\x01\x02\x03\x04")
    assert changed.variables["limit"].value == u32(1000, order)
    assert changed.variables["debug"].value == b"\x01"
    rodata = changed.maps[".rodata"].contents[0].value
    assert isinstance(rodata, bytes)
    assert rodata[0:4] == u32(1000, order) and rodata[4:5] == b"\x01"
    data = changed.maps[".data"].contents[0].value
    assert isinstance(data, bytes) and data[0:4] == b"\x01\x02\x03\x04"
    bss = spec.with_variables(last_len=5).maps[".bss"].contents[0].value
    assert isinstance(bss, bytes) and len(bss) == 28 and bss[8:12] == u32(5, order)
    assert spec.to_dict() == before  # the original is untouched
    with pytest.raises(KeyError, match="no_such_var"):
        spec.with_variables(no_such_var=1)
    with pytest.raises(ValueError, match="4 bytes"):
        spec.with_variables(counter=b"\x01\x02")
    with pytest.raises(ValueError):
        spec.with_variables(counter=1 << 40)


# -- programs ------------------------------------------------------------------------------


PROGRAMS = {
    "xdp_prog": ("xdp", ProgramType.XDP, AttachType.XDP, ""),
    "socket_prog": ("socket", ProgramType.SOCKET_FILTER, AttachType.NONE, ""),
    "tc_prog": ("tc", ProgramType.SCHED_CLS, AttachType.NONE, ""),
    "tail_target": ("tc", ProgramType.SCHED_CLS, AttachType.NONE, ""),
    "tail_entry": ("tc", ProgramType.SCHED_CLS, AttachType.NONE, ""),
    "classifier_prog": ("classifier", ProgramType.SCHED_CLS, AttachType.NONE, ""),
    "tracepoint_prog": (
        "tracepoint/syscalls/sys_enter_getpid",
        ProgramType.TRACEPOINT,
        AttachType.NONE,
        "syscalls/sys_enter_getpid",
    ),
    "kprobe_prog": ("kprobe/do_sys_openat2", ProgramType.KPROBE, AttachType.NONE, "do_sys_openat2"),
    "kretprobe_prog": ("kretprobe/do_sys_openat2", ProgramType.KPROBE, AttachType.NONE, "do_sys_openat2"),
    "raw_tracepoint_prog": (
        "raw_tracepoint/sys_enter",
        ProgramType.RAW_TRACEPOINT,
        AttachType.NONE,
        "sys_enter",
    ),
    "tp_btf_prog": ("tp_btf/sched_switch", ProgramType.TRACING, AttachType.TRACE_RAW_TP, "sched_switch"),
    "cgroup_skb_prog": ("cgroup_skb/ingress", ProgramType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, ""),
}


@pytest.mark.parametrize("order", ORDERS)
def test_program_types_from_sections(order: str) -> None:
    spec = load("programs", order)
    assert set(spec.programs) == set(PROGRAMS)  # bump, global_mix, loop_cb are subprograms
    for name, (section, ptype, attach, attach_to) in PROGRAMS.items():
        p = spec.programs[name]
        assert (p.section_name, p.type, p.attach_type, p.attach_to) == (section, ptype, attach, attach_to), (
            name
        )
        assert p.license == "GPL"
        assert p.instructions[0].symbol == name
        assert p.instructions[0].func_info is not None and p.instructions[0].func_info.name == name


@pytest.mark.parametrize("order", ORDERS)
def test_subprograms_are_linked_and_calls_patched(order: str) -> None:
    spec = load("programs", order)
    users_of_bump = [
        "xdp_prog",
        "socket_prog",
        "tracepoint_prog",
        "kretprobe_prog",
        "raw_tracepoint_prog",
        "tp_btf_prog",
    ]
    for name in users_of_bump:
        assert spec.programs[name].subprograms == ("bump",), name
    assert spec.programs["classifier_prog"].subprograms == ("global_mix",)
    assert spec.programs["cgroup_skb_prog"].subprograms == ("global_mix",)
    assert spec.programs["tc_prog"].subprograms == ("loop_cb",)
    assert spec.programs["kprobe_prog"].subprograms == ()
    for prog in spec.programs.values():
        starts = {}
        slot = 0
        slots = []
        for insn in prog.instructions:
            slots.append(slot)
            if insn.symbol is not None:
                starts[insn.symbol] = slot
            slot += insn.width
        for insn, at in zip(prog.instructions, slots, strict=True):
            if not (insn.is_bpf_to_bpf_call or insn.is_load_of_function_pointer):
                continue
            assert insn.reference is not None
            assert insn.src == (PSEUDO_CALL if insn.is_bpf_to_bpf_call else PSEUDO_FUNC)
            assert at + insn.constant + 1 == starts[insn.reference], prog.name
    tc = spec.programs["tc_prog"]
    assert any(i.is_load_of_function_pointer and i.reference == "loop_cb" for i in tc.instructions)
    funcs = [i.func_info.name for i in tc.instructions if i.func_info is not None]
    assert funcs == ["tc_prog", "loop_cb"]


@pytest.mark.parametrize("order", ORDERS)
def test_rodata_of_bpf_printk(order: str) -> None:
    spec = load("programs", order)
    assert spec.maps[".rodata"].value_size == 14
    assert spec.maps[".rodata"].contents[0].value == b"openat2 by %d\0"
    assert ".rodata" in spec.programs["kprobe_prog"].maps_used


@pytest.mark.parametrize("order", ORDERS)
def test_trampoline_programs_parse(order: str) -> None:
    spec = load("fentry", order)
    expected = {
        "fentry_openat2": (ProgramType.TRACING, AttachType.TRACE_FENTRY, "do_sys_openat2"),
        "fexit_openat2": (ProgramType.TRACING, AttachType.TRACE_FEXIT, "do_sys_openat2"),
        "lsm_file_open": (ProgramType.LSM, AttachType.LSM_MAC, "file_open"),
        "freplace_mix": (ProgramType.EXT, AttachType.NONE, "global_mix"),
    }
    assert {n: (p.type, p.attach_type, p.attach_to) for n, p in spec.programs.items()} == expected


@pytest.mark.parametrize("order", ORDERS)
def test_core_relocations_ride_on_instructions(order: str) -> None:
    spec = load("core", order)
    prog = spec.programs["core_read"]
    relos = [i.core_relo for i in prog.instructions if i.core_relo is not None]
    assert len(relos) >= 10
    assert all(spec.types is not None and spec.types.type_by_id(r.type_id).name for r in relos)
    lines = [i.line_info for i in prog.instructions if i.line_info is not None]
    assert lines and any(li.file_name.endswith("core.c") for li in lines)


@pytest.mark.parametrize("order", ORDERS)
def test_externs_are_recorded(order: str) -> None:
    spec = load("kconfig", order)
    x = spec.externs
    assert x["LINUX_KERNEL_VERSION"].kind == ebpfspec.ExternKind.KCONFIG
    assert x["CONFIG_BPF_SYSCALL"].kind == ebpfspec.ExternKind.KCONFIG and x["CONFIG_BPF_SYSCALL"].weak
    assert x["bpf_task_acquire"].kind == ebpfspec.ExternKind.KFUNC
    kfunc_calls = [
        i for p in spec.programs.values() for i in p.instructions if i.is_call and i.src == PSEUDO_KFUNC_CALL
    ]
    assert {i.reference for i in kfunc_calls} >= {"bpf_task_acquire", "bpf_task_release"}


@pytest.mark.parametrize("order", ORDERS)
def test_license_and_version(order: str) -> None:
    spec = load("license_version", order)
    assert set(spec.programs) == {"versioned_kprobe", "versioned_socket"}
    for prog in spec.programs.values():
        assert prog.license == "GPL"
        assert prog.kernel_version == 0x00061200
    assert load("maps", order).programs["prog_a"].kernel_version == 0


def test_many_maps_object_has_only_maps() -> None:
    spec = load("many_maps", "el")
    assert len(spec.maps) == 72 and not spec.programs
    big = [m for m in spec.maps.values() if m.max_entries == 65536]
    assert len(big) == 8 and all(m.value_size == 64 for m in big)


def test_sources_are_equivalent() -> None:
    path = TESTDATA / "maps-el.o"
    raw = path.read_bytes()
    a = ebpfspec.load_collection_spec(path)
    b = ebpfspec.load_collection_spec(raw)
    c = ebpfspec.load_collection_spec(io.BytesIO(raw))
    d = ebpfspec.CollectionSpec.from_file(str(path))
    assert a == b == c == d


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*-el.o")), ids=lambda p: p.name)
def test_both_byte_orders_give_the_same_specs(path: Path) -> None:
    """-eb.o objects hold the same things as -el.o, only byte-swapped."""
    el = ebpfspec.load_collection_spec(path)
    eb = ebpfspec.load_collection_spec(path.with_name(path.name.replace("-el.o", "-eb.o")))
    assert set(el.maps) == set(eb.maps) and set(el.programs) == set(eb.programs)
    for name, m in el.maps.items():
        assert map_fields(m) == map_fields(eb.maps[name])
        assert len(m.contents) == len(eb.maps[name].contents)
    for name, p in el.programs.items():
        other = eb.programs[name]
        # clang may generate different code per byte order (bitfield reads in core.c),
        # so compare what the instructions refer to, not their number
        assert p.subprograms == other.subprograms, name
        assert [i.reference for i in p.instructions if i.reference] == [
            i.reference for i in other.instructions if i.reference
        ], name
