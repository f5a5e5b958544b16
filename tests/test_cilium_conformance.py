"""Conformance with cilium/ebpf's own compiled testdata, as Debian ships it.

``apt-get install golang-github-cilium-ebpf-dev`` (CI installs it). For each object
the test checks what that object exists to exercise (read its ``.c`` beside it); the
deliberately invalid objects raise ``SpecError``.

One deliberate difference: ``invalid_map`` is a legacy definition whose trailing bytes
are non-zero. cilium parses it and refuses to *create* the map; so do we — trailing
bytes are kept as ``MapSpec.extra`` because iproute2 objects rely on them, and the
loader refuses non-zero ``extra``. So it is checked here for what it is, not for
a parse error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import btf
import ebpfspec
from btf.ext import CORERelocKind
from ebpfspec import AttachType, MapFlags, MapType, PinType, ProgramType
from ebpfspec.asm.opcodes import PSEUDO_FUNC, PSEUDO_MAP_VALUE

CILIUM = Path("/usr/share/gocode/src/github.com/cilium/ebpf")
TESTDATA = CILIUM / "testdata"
BTF_TESTDATA = CILIUM / "btf" / "testdata"


def objects(directory: Path, stem: str) -> list[Path]:
    found = sorted(directory.glob(f"{stem}-e[lb].elf"))
    return found


def require(paths: list[Path]) -> list[Path]:
    if not paths:
        pytest.skip(f"cilium/ebpf testdata not installed under {CILIUM} (golang-github-cilium-ebpf-dev)")
    return paths


def each(stem: str, directory: Path = TESTDATA) -> list[ebpfspec.CollectionSpec]:
    return [ebpfspec.load_collection_spec(p) for p in require(objects(directory, stem))]


def u32(value: int, spec: ebpfspec.CollectionSpec) -> bytes:
    return value.to_bytes(4, spec.byte_order)


def fields(m: ebpfspec.MapSpec) -> tuple[MapType, int, int, int, int]:
    return (m.type, m.key_size, m.value_size, m.max_entries, m.flags)


# -- invalid objects -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "message"),
    [
        ("invalid_btf_map_init", r"section '\.maps'.*initial data"),
        ("invalid_map_static", r"section 'maps', symbol 'hash_map': static maps are not supported"),
    ],
)
def test_invalid_objects_raise_spec_error(stem: str, message: str) -> None:
    for path in require(objects(TESTDATA, stem)):
        with pytest.raises(ebpfspec.SpecError, match=message):
            ebpfspec.load_collection_spec(path)


def test_invalid_map_keeps_its_non_zero_trailing_bytes() -> None:
    for spec in each("invalid_map"):
        m = spec.maps["invalid_map"]
        assert fields(m) == (MapType.HASH, 4, 2, 1, 0)
        assert m.extra == u32(1, spec)  # the 'dummy' word the loader must refuse


# -- loader.c: every clang version ----------------------------------------------------------


LOADER_STEMS = ["loader", "loader-clang-14", "loader-clang-9", "loader-clang-7"]


@pytest.mark.parametrize("stem", LOADER_STEMS)
def test_loader_maps(stem: str) -> None:
    for spec in each(stem):
        m = spec.maps
        assert fields(m["hash_map"]) == (MapType.HASH, 4, 8, 1, MapFlags.NO_PREALLOC)
        assert fields(m["hash_map2"]) == (MapType.HASH, 4, 8, 2, 0)
        assert (m["array_of_hash_map"].type, m["array_of_hash_map"].max_entries) == (MapType.ARRAY_OF_MAPS, 2)
        assert m["perf_event_array"].type == MapType.PERF_EVENT_ARRAY
        if stem == "loader-clang-7":  # no BTF maps or globals before clang 9
            assert spec.types is None or "btf_pin" not in m
            continue
        assert fields(m["btf_pin"]) == (MapType.HASH, 4, 8, 1, 0)
        assert m["btf_pin"].pinning == PinType.BY_NAME
        for outer in ("btf_outer_map", "btf_outer_map_anon"):
            assert fields(m[outer]) == (MapType.ARRAY_OF_MAPS, 4, 4, 1, 0)
            inner = m[outer].inner_map
            assert inner is not None and inner.name == f"{outer}_inner"
            assert fields(inner) == (MapType.HASH, 4, 4, 1, 0)
        assert m[".rodata.test"].freeze and m[".rodata.test"].flags == 0x80


@pytest.mark.parametrize("stem", LOADER_STEMS)
def test_loader_programs(stem: str) -> None:
    for spec in each(stem):
        p = spec.programs
        expected = {
            "xdp_prog": ("xdp", ProgramType.XDP),
            "no_relocation": ("socket", ProgramType.SOCKET_FILTER),
            "asm_relocation": ("socket/2", ProgramType.SOCKET_FILTER),
            "data_sections": ("socket/3", ProgramType.SOCKET_FILTER),
            "anon_const": ("socket/4", ProgramType.SOCKET_FILTER),
            "global_fn3": ("other", ProgramType.UNSPEC),
            "static_fn": ("static", ProgramType.UNSPEC),
        }
        assert {n: (x.section_name, x.type) for n, x in p.items()} == expected
        assert all(x.license == "MIT" for x in p.values())
        xdp = p["xdp_prog"]
        assert set(xdp.subprograms) == {"static_fn", "global_fn", "global_fn2", "global_fn3"}
        assert {"hash_map", "hash_map2"} <= set(xdp.maps_used)
        assert p["no_relocation"].maps_used == () and p["no_relocation"].subprograms == ()
        # inline asm 'r0 = MY_CONST ll' leaves an extern for the user to supply
        assert any(i.reference == "MY_CONST" for i in p["asm_relocation"].instructions)
        assert "MY_CONST" in spec.externs
        # .rodata.cst32 has no BTF; it is still a data section the program reads
        assert ".rodata.cst32" in p["anon_const"].maps_used
        assert spec.maps[".rodata.cst32"].value_size == 32


def test_loader_data_sections_and_variables() -> None:
    for spec in each("loader"):
        v = spec.variables
        assert v["key3"].section_name == ".rodata" and v["key3"].value == u32(2, spec)
        assert v["uneg"].value == u32(0xFFFFFFFF, spec)
        assert v["neg"].value == (-2).to_bytes(4, spec.byte_order, signed=True)
        assert v["key1"].section_name == ".bss" and v["key2"].section_name == ".data"
        assert v["arg2"].section_name == ".rodata.test"
        insns = spec.programs["data_sections"].instructions
        refs = {i.reference for i in insns if i.is_ld_imm64 and i.src == PSEUDO_MAP_VALUE}
        assert refs == {".rodata"}
        changed = spec.with_variables(arg=7, arg2=9)
        assert changed.variables["arg"].value == u32(7, spec)
        rodata_test = changed.maps[".rodata.test"].contents[0].value
        assert isinstance(rodata_test, bytes) and rodata_test[v["arg2"].offset :][:4] == u32(9, spec)


# -- the rest -------------------------------------------------------------------------------


def test_btf_map_init_values() -> None:
    for spec in each("btf_map_init"):
        prog_array = spec.maps["prog_array_init"]
        assert fields(prog_array) == (MapType.PROG_ARRAY, 4, 4, 2, 0)
        assert [(kv.key, kv.value) for kv in prog_array.contents] == [(u32(1, spec), "tail_1")]
        outer = spec.maps["outer_map_init"]
        assert fields(outer) == (MapType.ARRAY_OF_MAPS, 4, 4, 2, 0)
        assert [(kv.key, kv.value) for kv in outer.contents] == [(u32(1, spec), "inner_map")]
        assert outer.inner_map is not None and fields(outer.inner_map) == (MapType.ARRAY, 4, 4, 1, 0)
        assert {p.section_name for p in spec.programs.values()} == {"socket/tail", "socket/main"}
        assert "prog_array_init" in spec.programs["tail_main"].maps_used


def test_iproute2_map_compat() -> None:
    for spec in each("iproute2_map_compat"):
        m = spec.maps["hash_map"]
        assert fields(m) == (MapType.HASH, 4, 8, 2, 0)
        # id, pinning (PIN_GLOBAL_NS = 2), inner_id, inner_idx
        assert m.extra == u32(0, spec) + u32(2, spec) + u32(0, spec) + u32(0, spec)
        assert m.pinning == PinType.NONE


def test_map_spin_lock_value_type() -> None:
    for spec in each("map_spin_lock"):
        value = spec.maps["spin_lock_map"].value
        assert isinstance(value, btf.Struct) and value.name == "hash_elem"
        lock = value.member("lock")
        assert lock.type.name == "bpf_spin_lock" and lock.offset == 32


def test_subprog_function_pointer() -> None:
    for spec in each("subprog_reloc"):
        prog = spec.programs["fp_relocation"]
        assert prog.subprograms == ("sub_prog",)
        loads = [i for i in prog.instructions if i.is_load_of_function_pointer]
        assert len(loads) == 1 and loads[0].src == PSEUDO_FUNC and loads[0].reference == "sub_prog"


def test_freplace_and_raw_tracepoint_sections() -> None:
    for spec in each("freplace"):
        replacement = spec.programs["replacement"]
        assert (replacement.type, replacement.attach_to) == (ProgramType.EXT, "subprog")
        exec_prog = spec.programs["sched_process_exec"]
        assert (exec_prog.type, exec_prog.attach_to) == (ProgramType.RAW_TRACEPOINT, "sched_process_exec")
        assert exec_prog.subprograms == ("subprog",)
    for spec in each("raw_tracepoint"):
        prog = spec.programs["sched_process_exec"]
        assert (prog.type, prog.attach_type, prog.attach_to) == (
            ProgramType.RAW_TRACEPOINT, AttachType.NONE, "sched_process_exec")


def test_string_section_becomes_a_data_map() -> None:
    """cilium refuses .rodata.str1.1; we treat it as the read-only data section it is."""
    for spec in each("strings"):
        strings = spec.maps[".rodata.str1.1"]
        assert strings.freeze
        data = strings.contents[0].value
        assert isinstance(data, bytes)
        assert b"This string is allocated in the string section\n\0" in data
        assert ".rodata.str1.1" in spec.programs["filter"].maps_used


def test_forward_declared_function_is_an_extern() -> None:
    for spec in each("fwd_decl"):
        assert spec.externs["fwd"].kind == ebpfspec.ExternKind.KFUNC
        call = next(i for i in spec.programs["call_fwd"].instructions if i.is_call)
        assert call.reference == "fwd"


def test_core_relocation_objects() -> None:
    for spec in each("relocs", BTF_TESTDATA):
        assert set(spec.programs) >= {"enums", "fields", "type_ids", "types"}
        kinds = {i.core_relo.kind for p in spec.programs.values() for i in p.instructions if i.core_relo}
        assert {CORERelocKind.FIELD_BYTE_OFFSET, CORERelocKind.TYPE_ID_TARGET, CORERelocKind.TYPE_EXISTS,
                CORERelocKind.ENUMVAL_EXISTS} <= kinds
    for spec in each("relocs_read", BTF_TESTDATA):
        reads = spec.programs["reads"]
        kinds = {i.core_relo.kind for i in reads.instructions if i.core_relo}
        assert {CORERelocKind.FIELD_LSHIFT_U64, CORERelocKind.FIELD_RSHIFT_U64, CORERelocKind.FIELD_SIGNED,
                CORERelocKind.FIELD_BYTE_SIZE} <= kinds  # the bitfield reads
        # records inside the subprogram travel with it into the linked program
        assert reads.subprograms == ("read_subprog",)
        start = next(n for n, i in enumerate(reads.instructions) if i.symbol == "read_subprog")
        assert any(i.core_relo for i in reads.instructions[start:])
    for spec in each("relocs_read_tgt", BTF_TESTDATA):
        assert not spec.programs and ".bss" in spec.maps


def test_every_valid_object_parses_and_round_trips() -> None:
    paths = require(sorted(TESTDATA.glob("*.elf")) + sorted(BTF_TESTDATA.glob("*.elf")))
    invalid = ("invalid_btf_map_init", "invalid_map_static")
    for path in paths:
        if path.name.startswith(invalid):
            continue
        spec = ebpfspec.load_collection_spec(path)
        assert ebpfspec.CollectionSpec.from_dict(spec.to_dict()) == spec, path.name
        assert spec.copy() == spec, path.name
