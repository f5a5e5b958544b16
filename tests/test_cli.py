"""The ``ebpfspec`` command line: output, JSON, exit statuses, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ebpfspec
from ebpfspec.cli import main
from tests.conftest import TESTDATA

MAPS = TESTDATA / "maps-el.o"
GLOBALS = TESTDATA / "globals-eb.o"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_inspect_tables(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "inspect", str(MAPS))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["MAP", "TYPE", "KEY", "VALUE"]
    row = next(line for line in lines if line.startswith("hash_map "))
    assert row.split()[:9] == [
        "hash_map",
        "Hash",
        "4",
        "(__u32)",
        "24",
        "(struct",
        "flow_stats)",
        "1024",
        "0x0",
    ]
    outer = next(line for line in lines if line.startswith("array_of_maps "))
    assert "LRUHash k4/v16/16" in outer
    prog = next(line for line in lines if line.startswith("use_maps "))
    assert prog.split()[:4] == ["use_maps", "xdp", "XDP", "XDP"]


def test_inspect_one_part(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "inspect", str(GLOBALS), "--variables")
    assert status == 0
    assert out.splitlines()[0].split() == ["VARIABLE", "SECTION", "OFFSET", "SIZE", "TYPE", "CONST", "VALUE"]
    limit = next(line for line in out.splitlines() if line.startswith("limit "))
    assert limit.split() == ["limit", ".rodata", "0", "4", "const", "volatile", "__u32", "yes", "0000002a"]
    assert "MAP" not in out


def test_inspect_json_is_to_dict(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "inspect", str(MAPS), "--json")
    assert status == 0
    assert json.loads(out) == ebpfspec.load_collection_spec(MAPS).to_dict()
    status, out, _ = run(capsys, "inspect", str(MAPS), "--json", "--maps")
    assert set(json.loads(out)) == {"maps"}


def test_inspect_disasm(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "inspect", str(TESTDATA / "programs-el.o"), "--disasm", "xdp_prog")
    assert status == 0
    spec = ebpfspec.load_collection_spec(TESTDATA / "programs-el.o")
    assert out == spec.programs["xdp_prog"].instructions.disassemble() + "\n"
    assert "exit" in out and "bump" in out


def test_btf_dump_raw_and_c(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "btf", "dump", str(MAPS))
    assert status == 0
    assert out.startswith("[1] ")
    assert "STRUCT 'flow_stats' size=24 vlen=6" in out
    status, out, _ = run(capsys, "btf", "dump", str(MAPS), "--format", "c")
    assert status == 0
    assert "struct flow_stats {" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "/etc/hostname"], "malformed ELF"),
        (["inspect", "/no/such/file.o"], "No such file or directory"),
        (["inspect", str(MAPS), "--disasm", "nope"], "no program 'nope'"),
        (["btf", "dump", "/etc/hostname"], "malformed ELF"),
    ],
)
def test_clean_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 1
    assert out == ""
    assert err.startswith("ebpfspec: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["btf", "dump", str(MAPS), "--kernel"])
    assert exc.value.code == 2


def test_module_entry_point(tmp_path: Path) -> None:
    """``python -m ebpfspec`` runs the same CLI, with real exit statuses."""
    ok = subprocess.run(
        [sys.executable, "-m", "ebpfspec", "inspect", str(MAPS), "--programs"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "use_maps" in ok.stdout
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x7fELF" + b"\0" * 10)
    bad = subprocess.run(
        [sys.executable, "-m", "ebpfspec", "inspect", str(junk)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and bad.stderr.startswith("ebpfspec: error:")


# -- load / map dump (they need the loader) --------------------------------------------------------


def test_load_with_memory_backend_prints_every_map(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "load", str(TESTDATA / "many_maps-el.o"), "--backend", "memory", "--json")
    assert status == 0, err
    rows = json.loads(out)["maps"]
    spec = ebpfspec.load_collection_spec(TESTDATA / "many_maps-el.o")
    assert {r["name"] for r in rows} == set(spec.maps)
    assert all(r["id"] > 0 for r in rows)


def test_load_prints_programs_too(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "load", str(TESTDATA / "xdp_test-el.o"), "--backend", "memory", "--json")
    assert status == 0, err
    loaded = json.loads(out)
    assert {r["name"] for r in loaded["programs"]} == {
        "xdp_len_filter",
        "sock_len_filter",
        "xdp_entry",
        "xdp_tail",
    }
    assert all(r["id"] > 0 and r["type"] for r in loaded["programs"])


def test_load_failure_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "load", str(TESTDATA / "iproute2_maps-el.o"), "--backend", "memory")
    assert status == 1 and out == ""
    assert err.startswith("ebpfspec: error: ") and "trailing bytes" in err and "Traceback" not in err


@pytest.mark.kernel
def test_load_pins_and_map_dump_reads_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root")
    pins = tmp_path / "pins"
    pins.mkdir()
    if subprocess.run(["mount", "-t", "bpf", "bpf", str(pins)], capture_output=True).returncode:
        pytest.skip("cannot mount bpffs")
    try:
        only_pinned = ebpfspec.load_collection_spec(MAPS).maps["pinned_array"]
        assert only_pinned.pinning == ebpfspec.PinType.BY_NAME
        before = sorted(os.listdir(pins))  # a new bpffs already holds the kernel's *.debug files
        status, out, err = run(capsys, "load", str(TESTDATA / "many_maps-el.o"), "--pin", str(pins))
        assert status == 0, err
        # many_maps has no pinned maps: nothing may appear under the pin directory
        assert sorted(os.listdir(pins)) == before
        import loader

        with loader.Map.create(only_pinned) as m:
            m.update(b"\x02\0\0\0", b"\x2a" + b"\0" * 7)
            m.pin(str(pins / "pinned_array"))
        status, out, err = run(capsys, "map", "dump", str(pins / "pinned_array"), "--json")
        assert status == 0, err
        entries = {e["key"]: e["value"] for e in json.loads(out)}
        assert entries["02000000"] == "2a00000000000000"
        assert len(entries) == 4  # an array shows every slot
        status, out, err = run(capsys, "map", "dump", str(pins / "missing"))
        assert status == 1 and "No such file" in err
    finally:
        subprocess.run(["umount", str(pins)], check=False)
