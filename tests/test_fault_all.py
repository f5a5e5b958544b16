"""Fault injection at every backend call, for every testdata collection that loads here, on both backends.

For each object, every other map (in name order) is made ``PinType.BY_NAME`` (so loads
go through both the plain-creation and the pin-or-reuse paths) and pinned under a
private pin directory. A clean load through a counting backend gives the number of
backend calls ``N``; then for every ``n`` in ``1..N`` a fresh load runs whose ``n``-th call
fails with ``EIO``. Each such load must

* raise a :class:`~loader.errors.LoaderError` whose message names a map or program of
  the spec — or succeed, but only when the call that failed was a ``btf_load`` (a refused
  BTF is tolerated, as libbpf does: the map or program goes on without it);
* leave no handle open (:class:`FaultyBackend` tracks every handle handed out —
  maps, BTF, programs, duplicates — and every ``close``), no file descriptor
  (``/proc/self/fd``), no pin (the pin directory is a private bpffs for the kernel
  backend and must hold what it held before; every pinned map's path is looked up), and
  for the memory backend no live object at all.

A successful load has every map and program of the spec (``kconfig``'s ``.kconfig`` map
is made by the loader for the object's ``__kconfig`` externs, so it is one more).

Every call is covered for every object — no sampling: the objects are small (3 to 73
backend calls each, about 200 per backend in all) and a load takes milliseconds, so the
module runs in about 15 s. ``FaultyBackend`` is the one of ``tests/test_collection.py``
extended to programs: it also tracks the descriptors ``prog_load`` (which returns
``(fd, log)``) and ``prog_fd_by_id`` give out.

The verifier log is a resource a failing load consumes: ``load_program`` grows it on
``ENOSPC`` up to ``loader.program_load.MAX_LOG_SIZE`` and no further (checked with a backend
whose log never fits), and the kernel writes no more than the buffer ``KernelBackend``
hands it.

Left out, because they do not load here at all: ``fentry`` (tracing programs get EPERM
from this kernel; ``freplace`` needs a target program), ``ksym_typed`` on the kernel (no
data symbols in kallsyms; it loads on the memory backend, so it is in for that one) and
``iproute2_maps`` (its maps' trailing bytes are refused by design;
``tests/test_collection.py`` injects faults into it with the bytes zeroed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import ebpfspec
import loader
from ebpfspec import CollectionSpec, PinType
from loader import Backend, load_collection
from loader.backend import ProgLoadError, ProgramAttrs
from loader.errors import LoaderError, VerifierError
from loader.pinning import pin_file
from loader.program_load import MAX_LOG_SIZE, load_program
from tests.conftest import TESTDATA, open_fds

#: Objects whose every map and program load on both backends (Linux 6.18 here).
LOADABLE = ["maps", "globals", "programs", "xdp_test", "trace", "core", "license_version", "legacy_maps",
            "many_maps", "kconfig", "iter"]
#: Objects that load on the memory backend only (see the module docstring).
MEMORY_ONLY = ["ksym_typed"]

CASES = [
    *(pytest.param("kernel", name, marks=pytest.mark.kernel, id=f"kernel-{name}") for name in LOADABLE),
    *(pytest.param("memory", name, id=f"memory-{name}") for name in LOADABLE + MEMORY_ONLY),
]


class FaultyBackend:
    """Wraps a backend: the ``fail_at``-th operation (counting from 1) fails with ``EIO``.

    Tracks every handle the backend hands out (maps, BTF, programs, duplicates, handles
    by id or from a pin) and every ``close``. ``close``/``obj_unpin``/``possible_cpus``
    never fail: they are how a failed load cleans up.
    """

    _NEVER_FAIL = ("close", "obj_unpin", "possible_cpus")
    _OPENS = ("map_create", "obj_get", "dup", "btf_load", "map_fd_by_id", "prog_fd_by_id")

    def __init__(self, inner: Backend, fail_at: int):
        self._inner = inner
        self._fail_at = fail_at
        self.calls = 0
        self.name = inner.name
        self.open: set[int] = set()
        self.failed_op: str | None = None
        self.ops: Counter[str] = Counter()
        self._lock = threading.Lock()

    def disarm(self) -> None:
        """Stop injecting failures."""
        self._fail_at = 0

    def __getattr__(self, op: str) -> Any:
        target = getattr(self._inner, op)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                counted = op not in self._NEVER_FAIL
                self.calls += counted
                self.ops[op] += counted
                fail = counted and self.calls == self._fail_at != 0
            if fail:
                self.failed_op = op
                raise OSError(errno.EIO, f"injected failure in {op}")
            result = target(*args, **kwargs)
            with self._lock:
                if op in self._OPENS:
                    self.open.add(result)
                elif op == "prog_load":
                    self.open.add(result[0])
                elif op == "close":
                    self.open.discard(args[0])
            return result

        return call


def make_backend(kind: str) -> Backend:
    if kind == "memory":
        return loader.MemoryBackend()
    if os.geteuid() != 0:
        pytest.skip("the kernel backend needs root")
    return loader.KernelBackend()


def pin_half(spec: CollectionSpec) -> CollectionSpec:
    """``spec`` with every other map (in name order) pinned by name, as well as those pinned already."""
    changed = {name: spec.maps[name].replace(pinning=PinType.BY_NAME) for name in sorted(spec.maps)[::2]}
    return spec.with_maps(**changed) if changed else spec


def pinned_names(spec: CollectionSpec) -> list[str]:
    return [name for name, m in spec.maps.items() if m.pinning == PinType.BY_NAME]


@contextlib.contextmanager
def pin_directory(kind: str) -> Iterator[str]:
    """A pin directory: a private bpffs mount for the kernel backend, any directory for the memory one."""
    directory = tempfile.mkdtemp(prefix="ebpfspec-fault-")
    mounted = False
    try:
        if kind == "kernel":
            done = subprocess.run(["mount", "-t", "bpf", "bpf", directory], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
            mounted = True
        yield directory
    finally:
        if mounted:
            subprocess.run(["umount", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


def assert_no_pins(backend: Backend, directory: str, names: list[str], listing: list[str], when: str) -> None:
    """Nothing pinned under ``directory``: its listing is as before and no pinned map's path resolves."""
    assert sorted(os.listdir(directory)) == listing, f"{when}: pins left: {sorted(os.listdir(directory))}"
    for name in names:
        with pytest.raises(OSError) as missing:
            fd = backend.obj_get(pin_file(directory, name))
            backend.close(fd)
        assert missing.value.errno == errno.ENOENT, f"{when}: the pin of {name!r} is left"


def unpin_all(coll: loader.Collection) -> None:
    for m in coll.maps.values():
        m.unpin()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("kind", "name"), CASES)
def test_fault_at_every_backend_call(kind: str, name: str) -> None:
    backend = make_backend(kind)
    spec = pin_half(ebpfspec.load_collection_spec(TESTDATA / f"{name}-el.o"))
    pinned = pinned_names(spec)
    with pin_directory(kind) as pins:
        listing = sorted(os.listdir(pins))
        counter = FaultyBackend(backend, fail_at=0)
        with load_collection(spec, backend=counter, pin_path=pins, workers=1) as coll:
            assert set(spec.maps) <= set(coll.maps) and set(coll.programs) == set(spec.programs)
            objects = [*coll.maps, *coll.programs]  # what an error may name
            unpin_all(coll)
        assert counter.open == set()
        total = counter.calls
        assert total >= len(spec.maps) + len(spec.programs)
        outcomes: Counter[str] = Counter()
        for n in range(1, total + 1):
            when = f"{kind} {name}: failing call {n}/{total}"
            fds_before = open_fds()
            faulty = FaultyBackend(backend, fail_at=n)
            try:
                coll = load_collection(spec, backend=faulty, pin_path=pins, workers=2)
            except LoaderError as err:
                message = str(err)
                assert faulty.failed_op is not None, f"{when}: an error without a failed call: {message}"
                assert any(f"'{o}'" in message for o in objects), f"{when}: no object named in {message!r}"
                outcomes[f"error in {faulty.failed_op}"] += 1
            else:
                faulty.disarm()
                assert faulty.failed_op in ("btf_load", None), f"{when}: {faulty.failed_op} failed silently"
                assert set(spec.maps) <= set(coll.maps) and set(coll.programs) == set(spec.programs), when
                outcomes[f"tolerated {faulty.failed_op}"] += 1
                unpin_all(coll)
                coll.close()
            assert faulty.open == set(), f"{when}: handles left open: {faulty.open}"
            assert open_fds() == fds_before, f"{when}: descriptors leaked"
            assert_no_pins(backend, pins, pinned, listing, when)
            if isinstance(backend, loader.MemoryBackend):
                assert backend.open_handles() == 0 and backend.live_objects() == 0, f"{when}: objects left"
        assert sum(n for outcome, n in outcomes.items() if outcome.startswith("error")) > 0, outcomes


# -- resource bounds under failure: the verifier log -------------------------------------------------------


class EndlessLog:
    """A backend whose every program load fails with ENOSPC: the log never fits, however large."""

    name = "endless-log"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def prog_load(self, attrs: ProgramAttrs, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
        self.sizes.append(log_size)
        log = "0: (b7) r0 = 0\n" * 4
        raise ProgLoadError(errno.ENOSPC, "the log did not fit", log, log_true_size=1 << 40)


@pytest.mark.parametrize("log_level", [0, 1, 2])
def test_verifier_log_growth_stops_at_max_log_size(log_level: int) -> None:
    """``loader.program_load.load_program`` grows the log on ENOSPC, but never past
    ``MAX_LOG_SIZE`` (256 MiB), even when the kernel says it needs more; then it reports
    the truncated log."""
    backend = EndlessLog()
    with pytest.raises(VerifierError) as info:
        load_program(ProgramAttrs(prog_type=1, insns=bytes(16)), "endless", backend,  # type: ignore[arg-type]
                     log_level=log_level)
    assert info.value.truncated and info.value.program == "endless"
    assert max(backend.sizes) == MAX_LOG_SIZE
    assert all(size <= MAX_LOG_SIZE for size in backend.sizes)
    assert len(backend.sizes) <= 6, backend.sizes  # grows geometrically: a handful of attempts


def _rejected_program() -> bytes:
    """``r0 = r2; exit``: r2 is never written, so the verifier refuses it (with a log)."""
    mov_r0_r2 = bytes([0xBF, 0x20 if sys.byteorder == "little" else 0x02]) + bytes(6)
    exit_ = bytes([0x95]) + bytes(7)
    return mov_r0_r2 + exit_


@pytest.mark.kernel
def test_kernel_writes_no_more_log_than_the_buffer() -> None:
    """``KernelBackend.prog_load``: the buffer handed to the kernel is ``log_size`` bytes and the
    kernel keeps to it — a 48-byte log buffer gives at most 47 characters and ENOSPC or the
    verifier's own error, never more."""
    backend = make_backend("kernel")
    attrs = ProgramAttrs(prog_type=1, insns=_rejected_program(), license="GPL")
    with pytest.raises(ProgLoadError) as small:
        backend.prog_load(attrs, log_level=1, log_size=48)
    assert len(small.value.log.encode()) < 48
    assert small.value.log_true_size > 48  # the kernel says how much the whole log needs
    with pytest.raises(ProgLoadError) as whole:
        backend.prog_load(attrs, log_level=1, log_size=small.value.log_true_size)
    assert "R2 !read_ok" in whole.value.log
