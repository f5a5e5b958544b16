"""Programs: every testdata program loads (or fails clearly, naming it), test runs, tail calls,
global variables, verifier errors, CO-RE against the running kernel.

Expected behaviours are the ones testdata/README.md documents for each program.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

import ebpfspec
import loader
import loader.kconfig
from ebpfspec import ProgramType
from ebpfspec.asm import Instruction, Instructions
from loader import Backend, load_collection
from loader.errors import LoaderError, ProgramError, VerifierError
from tests.conftest import TESTDATA

pytestmark = pytest.mark.kernel

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3


@pytest.fixture(scope="module")
def kernel() -> Backend:
    if os.geteuid() != 0:
        pytest.skip("loading programs needs root")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF")
    return loader.KernelBackend()


def spec_of(name: str) -> ebpfspec.CollectionSpec:
    return ebpfspec.load_collection_spec(TESTDATA / f"{name}-{'el' if sys.byteorder == 'little' else 'eb'}.o")


# -- every testdata object ----------------------------------------------------------------------


LOADS_FULLY = [
    "maps",
    "globals",
    "programs",
    "xdp_test",
    "trace",
    "core",
    "license_version",
    "legacy_maps",
    "kconfig",
    "iter",
]


@pytest.mark.parametrize("name", LOADS_FULLY)
def test_object_loads_and_bpftool_sees_its_programs(kernel: Backend, name: str) -> None:
    spec = spec_of(name)
    with load_collection(spec, backend=kernel) as coll:
        assert set(coll.programs) == set(spec.programs)
        bpftool = shutil.which("bpftool")
        if bpftool is None:
            pytest.skip("bpftool is not installed")
        for prog_name, prog in coll.programs.items():
            info = prog.info()
            assert info.type == spec.programs[prog_name].type
            shown = json.loads(
                subprocess.run(
                    [bpftool, "prog", "show", "id", str(info.id), "-j"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            # bpftool shows the full name from BTF func info, the kernel keeps 15 characters
            assert shown["name"] in (prog_name, loader.program_load.program_name(prog_name))
            assert info.name == loader.program_load.program_name(prog_name)
            kernel_type = ProgramType(info.type).kernel_name.removeprefix("BPF_PROG_TYPE_").lower()
            assert shown["type"].replace("_", "") == kernel_type.replace("_", "")
            used = {m.info().id for n, m in coll.maps.items() if n in spec.programs[prog_name].maps_used}
            assert used <= set(shown.get("map_ids", []))


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("fentry", ProgramError, r"program '(fentry_openat2|fexit_openat2|lsm_file_open)'"),
        ("iproute2_maps", LoaderError, r"trailing bytes"),
        # typed __ksym variables need kallsyms data symbols, which this kernel lacks
        ("ksym_typed", VerifierError, r"(?s)program 'xdp_ksym_typed'.*bpf_prog_active"),
    ],
)
def test_objects_the_kernel_or_loader_refuses_fail_clearly(
    kernel: Backend, name: str, error: type[Exception], message: str
) -> None:
    spec = spec_of(name)
    if name == "fentry":  # freplace needs a target; the others fail with EPERM on this kernel
        spec = ebpfspec.CollectionSpec(
            maps=spec.maps,
            programs={k: p for k, p in spec.programs.items() if k != "freplace_mix"},
            types=spec.types,
            byte_order=spec.byte_order,
        )
    with pytest.raises(error, match=message):
        load_collection(spec, backend=kernel)


def test_freplace_needs_a_target(kernel: Backend) -> None:
    """An extension program loads against a target program (``Program.load(spec, target=...)``, see
    tests/test_freplace.py); without one it is the kernel's EINVAL, saying how to give one."""
    with pytest.raises(ProgramError, match=r"freplace_mix.*target program.*Program\.load\(spec, targ") as err:
        load_collection(spec_of("fentry"), backend=kernel, only=["freplace_mix"])
    assert err.value.errno == errno.EINVAL


# -- test runs ------------------------------------------------------------------------------------


def test_xdp_and_socket_filter_test_runs(kernel: Backend) -> None:
    with load_collection(spec_of("xdp_test"), backend=kernel) as coll:
        xdp = coll.programs["xdp_len_filter"]
        packet = bytes(range(64))
        result = xdp.test_run(packet)
        assert result.retval == XDP_PASS
        assert result.data == bytes([0xFF]) + packet[1:]
        short = xdp.test_run(bytes(range(30)))
        assert short.retval == XDP_DROP and short.data == bytes(range(30))
        assert xdp.test_run(packet, repeat=100).duration_ns >= 0

        sock = coll.programs["sock_len_filter"]
        assert sock.test_run(bytes(100)).retval == 42
        assert sock.test_run(bytes(30)).retval == 0
        stats = coll.maps["sock_stats"]
        assert stats.lookup((0).to_bytes(4, sys.byteorder)) == (2).to_bytes(8, sys.byteorder)
        assert stats.lookup((1).to_bytes(4, sys.byteorder)) == (86 + 16).to_bytes(8, sys.byteorder)


def test_tail_call_through_program_array(kernel: Backend) -> None:
    with load_collection(spec_of("xdp_test"), backend=kernel) as coll:
        jump = coll.maps["xdp_jmp"]
        assert jump.lookup((0).to_bytes(4, sys.byteorder)) == coll.programs["xdp_tail"].info().id
        assert coll.programs["xdp_entry"].test_run(bytes(64)).retval == XDP_TX
        jump.delete((0).to_bytes(4, sys.byteorder))
        assert coll.programs["xdp_entry"].test_run(bytes(64)).retval == XDP_PASS


def test_global_variables_steer_programs(kernel: Backend) -> None:
    spec = spec_of("globals")
    with load_collection(spec, backend=kernel, only=["xdp_globals"]) as coll:
        prog = coll.programs["xdp_globals"]
        assert prog.test_run(bytes(30)).retval == XDP_PASS
        assert prog.test_run(bytes(100)).retval == XDP_DROP  # longer than limit (42)
        hits = coll.maps[".bss"].lookup(b"\0\0\0\0")[0:8]
        assert int.from_bytes(hits, sys.byteorder) == 2
    changed = spec.with_variables(limit=1000, debug=True)
    with load_collection(changed, backend=kernel, only=["xdp_globals"]) as coll:
        assert coll.programs["xdp_globals"].test_run(bytes(100)).retval == XDP_TX


def test_verifier_error_carries_the_log(kernel: Backend) -> None:
    bad = ebpfspec.ProgramSpec(
        name="reads_r2",
        type=ProgramType.SOCKET_FILTER,
        license="GPL",
        byte_order=sys.byteorder,
        instructions=Instructions(
            [
                Instruction(opcode=0xBF, dst=0, src=2, offset=0, constant=0),  # r0 = r2 (never written)
                Instruction(opcode=0x95, dst=0, src=0, offset=0, constant=0),  # exit
            ]
        ),
    )
    with pytest.raises(VerifierError) as exc:
        loader.Program.load(bad, kernel)
    err = exc.value
    assert err.program == "reads_r2"
    assert any("R2 !read_ok" in line for line in err.log)
    assert "reads_r2" in str(err) and "R2 !read_ok" in str(err)
    assert "processed" in str(err)


def test_verifier_log_on_success_when_asked(kernel: Backend) -> None:
    good = ebpfspec.ProgramSpec(
        name="returns_one",
        type=ProgramType.SOCKET_FILTER,
        license="GPL",
        byte_order=sys.byteorder,
        instructions=Instructions(
            [
                Instruction(opcode=0xB7, dst=0, src=0, offset=0, constant=1),  # r0 = 1
                Instruction(opcode=0x95, dst=0, src=0, offset=0, constant=0),
            ]
        ),
    )
    with loader.Program.load(good, kernel, log_level=2) as prog:
        assert "processed 2 insns" in prog.verifier_log
        assert prog.test_run(bytes(20)).retval == 1
    with loader.Program.load(good, kernel) as prog:
        assert prog.verifier_log == ""
    with pytest.raises(ProgramError) as exc:
        prog.test_run(bytes(20))
    assert "closed" in str(exc.value)


def test_kconfig_and_ksym_externs_are_filled(kernel: Backend) -> None:
    """.kconfig values from /proc/config.gz and uname, untyped ksyms from kallsyms, weak ones 0."""
    spec = spec_of("kconfig")
    with load_collection(spec, backend=kernel, only=["xdp_kconfig"]) as coll:
        assert coll.programs["xdp_kconfig"].test_run(bytes(64)).retval == XDP_PASS
        bss = coll.maps[".bss"].lookup(b"\0\0\0\0")
        v = spec.variables

        def value(name: str) -> int:
            return int.from_bytes(bss[v[name].offset : v[name].offset + v[name].size], sys.byteorder)

        assert value("kernel_version") == loader.kconfig.kernel_version_code()
        config = loader.kconfig.read_kernel_config()
        assert value("bpf_syscall") == (config.get("CONFIG_BPF_SYSCALL") in ("y", "m"))
        assert value("hz") == int(config["CONFIG_HZ"])
        assert value("cls_bpf") == {"y": 1, "m": 2}.get(config.get("CONFIG_NET_CLS_BPF", "n"), 0)
        assert value("no_such_option") == 0
        assert value("stext_addr") == loader.program_load.kallsyms_address("_stext", "test")
        assert value("missing_addr") == 0
        assert ".kconfig" in coll.maps


# -- CO-RE -----------------------------------------------------------------------------------------


def test_core_program_reads_the_calling_task(kernel: Backend) -> None:
    spec = spec_of("core")
    with load_collection(spec, backend=kernel, only=["core_read"]) as coll:
        coll.programs["core_read"].test_run()
        bss = coll.maps[".bss"].lookup(b"\0\0\0\0")

        def field(index: int) -> int:
            return int.from_bytes(bss[4 * index : 4 * index + 4], sys.byteorder, signed=True)

        assert field(0) == 1  # runs
        assert field(1) == os.getpid() == field(2)  # pid == tgid for the main thread
        assert field(3) == os.getppid()  # parent_tgid
        assert field(10) == 0  # has_missing: ebpfspec_missing_type exists in no kernel
        with open(f"/proc/{os.getpid()}/comm", "rb") as comm:
            assert bss[56:72].rstrip(b"\0") == comm.read().strip()[:15]


# -- memory backend -----------------------------------------------------------------------------------


def test_memory_backend_accepts_programs_but_cannot_run_them() -> None:
    backend = loader.MemoryBackend()
    with load_collection(spec_of("xdp_test"), backend=backend) as coll:
        prog = coll.programs["xdp_entry"]
        assert prog.info().type == ProgramType.XDP
        assert (
            coll.maps["xdp_jmp"].lookup((0).to_bytes(4, sys.byteorder)) == coll.programs["xdp_tail"].info().id
        )
        with pytest.raises(ProgramError):
            prog.test_run(bytes(64))
