"""Inputs ``tools/fuzz.py`` found that broke the readers' users, kept as regressions; and a short run of it.

Each input sits in ``tests/regressions/`` (the case that produced it is in the test's
docstring: ``python tools/fuzz.py --replay TARGET:INDEX --seed N`` makes it again). Before
the fixes:

* ``btf-union-contains-itself.btf``: ``btf.format_c`` recursed until ``RecursionError``
  (a union containing itself by value: its layout needed its own alignment);
* ``elf-cyclic-type-chain.o``: ``ebpfspec inspect`` (``report.type_name``) recursed
  until ``RecursionError`` on a variable whose type chain is cyclic;
* ``elf-4gib-struct-padding.o``: ``btf dump --format c`` wrote padding bitfields for a
  struct of 3 GiB, ``long: 64;`` by ``long: 64;``: it never finished (45 MB after 5 s);
* ``btf-slow-format-c.btf``: ``format_c`` took 3 s and 15 MB before refusing;
* ``btf-format-c-memory.btf``: ``format_c`` allocated 5.3 MB for 2 KB of BTF.

Now ``format_c`` refuses a struct that contains itself by value and any output out of
proportion to the BTF (``btf.format_c.MAX_ITEMS_BASE``/``MAX_ITEMS_PER_TYPE``), and
``type_name`` cuts chains at 32 links.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import btf
import ebpfspec
from ebpfspec import report
from ebpfspec.cli import main
from tests.conftest import ROOT

REGRESSIONS = Path(__file__).resolve().parent / "regressions"

#: What one of these inputs may cost (the fuzzer's bound for ~2-7 KB inputs is 4.5-6 MB).
SECONDS = 1.0
PEAK_BYTES = 4 << 20


def measured(func: Callable[[], Any]) -> tuple[Any, float, int]:
    """``func()``'s result (or the BTFError/SpecError it raised), its time and tracemalloc peak."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        try:
            result: Any = func()
        except (btf.BTFError, ebpfspec.SpecError) as err:
            result = err
        return result, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def raw(name: str) -> bytes:
    return (REGRESSIONS / name).read_bytes()


def test_union_containing_itself_by_value() -> None:
    """``--replay btf:984 --seed 1``: a member of union 34 re-pointed at union 34."""
    spec = btf.load_spec(raw("btf-union-contains-itself.btf"))
    result, seconds, peak = measured(lambda: btf.format_c(spec))
    assert isinstance(result, btf.BTFError) and "contains itself by value" in str(result)
    assert seconds < SECONDS and peak < PEAK_BYTES


def test_cyclic_type_chain_in_the_cli_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """``--replay elf:1463 --seed 1``: a variable's type is a cycle of qualifiers/pointers."""
    spec = ebpfspec.load_collection_spec(REGRESSIONS / "elf-cyclic-type-chain.o")
    rows, seconds, _ = measured(lambda: list(report.variable_rows(spec)))
    assert isinstance(rows, list) and any("..." in row for row in rows)
    assert seconds < SECONDS
    assert main(["inspect", str(REGRESSIONS / "elf-cyclic-type-chain.o")]) == 0
    assert "..." in capsys.readouterr().out


def test_type_name_cuts_long_chains() -> None:
    int_t = btf.Int(1, "int", 4, btf.IntEncoding.SIGNED)
    chain: list[btf.Type] = [int_t, *(btf.Pointer(i, "", i - 1) for i in range(2, 100))]
    spec = btf.load_spec(btf.marshal_types(chain))
    assert report.type_name(spec.type_by_id(3)) == "int * *"
    assert report.type_name(spec.type_by_id(99)).endswith("... " + "* " * 31 + "*")


def test_huge_struct_padding_is_refused_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    """``--replay elf:226 --seed 1``: a struct's size field set to 0xb81f2970 (3 GiB)."""
    path = REGRESSIONS / "elf-4gib-struct-padding.o"
    spec = ebpfspec.load_collection_spec(path)
    assert spec.types is not None
    types = spec.types
    result, seconds, peak = measured(lambda: btf.format_c(types))
    assert isinstance(result, btf.BTFError) and "out of proportion" in str(result)
    assert seconds < SECONDS and peak < PEAK_BYTES
    status = main(["btf", "dump", str(path), "--format", "c"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("ebpfspec: error: ") and "out of proportion" in err


@pytest.mark.parametrize(("name", "case"), [("btf-slow-format-c.btf", "btf:671 --seed 1"),
                                            ("btf-format-c-memory.btf", "btf:6464 --seed 3")])
def test_format_c_cost_is_bounded(name: str, case: str) -> None:
    """``--replay {case}``: padding and members adding up to far more text than the BTF justifies."""
    spec = btf.load_spec(raw(name))
    result, seconds, peak = measured(lambda: btf.format_c(spec))
    assert isinstance(result, btf.BTFError)
    assert seconds < SECONDS and peak < PEAK_BYTES


def test_format_c_budget_leaves_real_headers_alone() -> None:
    """The budget is far above what real BTF needs: every testdata object's BTF still formats."""
    for path in sorted((ROOT / "testdata").glob("*.o")):
        spec = ebpfspec.load_collection_spec(path)
        assert spec.types is not None
        assert "struct" in btf.format_c(spec.types) or not any(isinstance(t, btf.Struct) for t in spec.types)


@pytest.mark.timeout(120)
def test_fuzz_script_short_run(tmp_path: Path) -> None:
    """``tools/fuzz.py`` itself: 2000 seeded cases (both targets, memory traced on every 32nd),
    no failure, both outcomes seen; the long run (≥ 100k cases) is reported in SECURITY.md."""
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fuzz.py"), "--cases", "2000", "--seed", "2024", "--jobs", "1",
         "--trace-every", "32", "--quiet", "--json", str(summary), "--crash-dir", str(tmp_path / "failures")],
        capture_output=True, text=True, timeout=110, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(summary.read_text())
    assert result["cases"] == 2000 and result["failures"] == 0 and result["traced_cases"] > 0
    outcomes = result["outcomes"]
    assert outcomes["elf:loaded"] > 50 and outcomes["elf:rejected"] > 50
    assert outcomes["btf:parsed"] > 50 and outcomes["btf:rejected"] > 50
    assert result["max_case_seconds"] < 1.0 and result["max_peak_share_of_bound"] < 1.0
