"""Shared test configuration.

* ``@pytest.mark.kernel`` marks tests that need the running kernel (BPF syscall, kernel
  BTF, bpftool, bpffs). Where the kernel cannot provide them they skip — unless
  ``EBPFSPEC_REQUIRE_KERNEL=1`` (set by CI), where every skip is turned into a failure,
  so kernel tests can never silently stop running.
* Every test module is checked for file-descriptor leaks (``/proc/self/fd``).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pluggy
import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
REQUIRE_KERNEL = os.environ.get("EBPFSPEC_REQUIRE_KERNEL") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel: needs the running kernel (BPF, BTF, bpftool, bpffs)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport]]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_KERNEL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but EBPFSPEC_REQUIRE_KERNEL=1 forbids skips: {reason}"


def open_fds() -> set[str]:
    """The file descriptors this process has open, with what each points to."""
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except FileNotFoundError:  # the fd listdir itself used
            continue
    return fds


@pytest.fixture(autouse=True, scope="module")
def no_fd_leaks() -> Iterator[None]:
    """Fail the module if it leaves file descriptors open that it did not start with."""
    before = open_fds()
    yield
    leaked = open_fds() - before
    assert not leaked, f"file descriptors leaked by this module: {sorted(leaked)}"


def bpf_objects(pattern: str = "*.o") -> list[Path]:
    """The committed BPF objects in testdata/ matching ``pattern``."""
    return sorted(TESTDATA.glob(pattern))
