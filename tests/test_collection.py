"""``load_collection``: concurrency, dependency order, pinning, replacements, no leaks on failure.

Every test runs on both backends with the same assertions (``backend`` fixture).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ebpfspec
import loader
from ebpfspec import MapType, PinType
from loader import Backend, load_collection
from loader.create import TYPES_WITHOUT_BTF
from loader.errors import LoaderError, MapIncompatibleError
from tests.conftest import TESTDATA, open_fds

BACKENDS = [pytest.param("kernel", marks=pytest.mark.kernel), "memory"]


def make_backend(kind: str) -> Backend:
    if kind == "memory":
        return loader.MemoryBackend()
    if os.geteuid() != 0:
        pytest.skip("the kernel backend needs root")
    return loader.KernelBackend()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request.param)


@pytest.fixture
def bpffs(backend: Backend) -> Iterator[str]:
    """A pin directory: a private bpffs mount for the kernel backend, any path for memory."""
    directory = tempfile.mkdtemp(prefix="ebpfspec-pins-")
    mounted = False
    if backend.name == "kernel":
        result = subprocess.run(["mount", "-t", "bpf", "bpf", directory], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount bpffs: {result.stderr.strip()}")
        mounted = True
    try:
        yield directory
    finally:
        if mounted:
            subprocess.run(["umount", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)


def mixed_spec() -> ebpfspec.CollectionSpec:
    """A maps-only spec with BTF maps, maps of maps, legacy maps with extra bytes, data sections."""
    maps = ebpfspec.load_collection_spec(TESTDATA / "maps-el.o").maps
    legacy = ebpfspec.load_collection_spec(TESTDATA / "legacy_maps-el.o").maps
    iproute2 = ebpfspec.load_collection_spec(TESTDATA / "iproute2_maps-el.o").maps
    data = ebpfspec.load_collection_spec(TESTDATA / "globals-el.o").maps
    chosen = {n: m for n, m in maps.items() if n != "jump_table"}  # its contents name programs
    chosen.update(legacy)
    chosen.update({n: m.replace(extra=bytes(16)) for n, m in iproute2.items()})  # zero extra: loadable
    chosen.update(data)
    return ebpfspec.CollectionSpec(maps=chosen)


MIXED = mixed_spec()


# -- loading --------------------------------------------------------------------------------


def test_loads_every_map_with_its_contents(backend: Backend) -> None:
    with load_collection(MIXED, backend=backend) as coll:
        assert set(coll.maps) == set(MIXED.maps)
        for name, m in coll.maps.items():
            assert (m.type, m.key_size) == (MIXED.maps[name].type, MIXED.maps[name].key_size), name
        # data sections were filled and .rodata frozen
        assert coll.maps[".data"].lookup(b"\0\0\0\0") == MIXED.maps[".data"].contents[0].value
        with pytest.raises(loader.MapError) as exc:
            coll.maps[".rodata"].update(b"\0\0\0\0", bytes(16))
        assert exc.value.errno == errno.EPERM
        # maps of maps hold the maps their contents name
        inner_a = coll.maps["inner_a"].info().id
        assert coll.maps["array_of_maps"].lookup((0).to_bytes(4, "little")) == inner_a
        # perf event array fixed up to the possible CPUs, the spec untouched
        assert coll.maps["perf_events"].max_entries == backend.possible_cpus()
    assert MIXED.maps["perf_events"].max_entries == 0
    assert all(m.closed for m in coll.maps.values())


def test_programs_load_and_fill_program_arrays(backend: Backend) -> None:
    spec = ebpfspec.load_collection_spec(TESTDATA / "maps-el.o")
    with load_collection(spec, backend=backend) as coll:
        assert set(coll.programs) == {"prog_a", "prog_b", "use_maps"}
        jump = coll.maps["jump_table"]
        assert jump.lookup((0).to_bytes(4, "little")) == coll.programs["prog_a"].info().id
        assert jump.lookup((2).to_bytes(4, "little")) == coll.programs["prog_b"].info().id
        with pytest.raises(KeyError):
            jump.lookup((1).to_bytes(4, "little"))
    assert all(p.closed for p in coll.programs.values())


def test_only_loads_dependencies(backend: Backend) -> None:
    with load_collection(MIXED, backend=backend, only=["array_of_maps"]) as coll:
        assert set(coll.maps) == {"array_of_maps", "inner_a", "inner_b"}
    with pytest.raises(KeyError, match="no_such"):
        load_collection(MIXED, backend=backend, only=["no_such"])


def test_non_zero_extra_bytes_are_refused(backend: Backend) -> None:
    iproute2 = ebpfspec.load_collection_spec(TESTDATA / "iproute2_maps-el.o")
    with pytest.raises(LoaderError, match=r"tc_counters.*trailing bytes"):
        load_collection(iproute2, backend=backend, only=["tc_counters"])


def test_replacements_are_checked_and_shared(backend: Backend) -> None:
    spec = MIXED.maps["hash_map"]
    with loader.Map.create(spec, backend) as shared:
        shared.update(b"\1\0\0\0", bytes(24))
        with load_collection(
            MIXED, backend=backend, only=["hash_map"], map_replacements={"hash_map": shared}
        ) as coll:
            assert coll.maps["hash_map"].info().id == shared.info().id
            assert coll.maps["hash_map"].lookup(b"\1\0\0\0") == bytes(24)
        assert not shared.closed  # the collection closed its own duplicate only
        other = loader.Map.create(spec.replace(max_entries=7), backend)
        with other, pytest.raises(MapIncompatibleError, match="max_entries 7 != 1024"):
            load_collection(MIXED, backend=backend, only=["hash_map"], map_replacements={"hash_map": other})


# -- pinning -----------------------------------------------------------------------------------


def test_pinned_maps_are_created_then_reused(backend: Backend, bpffs: str) -> None:
    spec = MIXED.with_maps(array_map=MIXED.maps["array_map"].replace(pinning=PinType.BY_NAME))
    with load_collection(spec, backend=backend, pin_path=bpffs, only=["array_map"]) as first:
        first.maps["array_map"].update(b"\1\0\0\0", b"\7" * 8)
        first_id = first.maps["array_map"].info().id
    with load_collection(spec, backend=backend, pin_path=bpffs, only=["array_map"]) as second:
        m = second.maps["array_map"]
        assert m.info().id == first_id
        assert m.lookup(b"\1\0\0\0") == b"\7" * 8
        assert m.pinned_path == os.path.join(bpffs, "array_map")
        m.unpin()
    with pytest.raises(loader.MapError) as exc:
        loader.Map.load_pinned(os.path.join(bpffs, "array_map"), backend)
    assert exc.value.errno == errno.ENOENT


def test_incompatible_pin_names_the_fields(backend: Backend, bpffs: str) -> None:
    spec = MIXED.with_maps(array_map=MIXED.maps["array_map"].replace(pinning=PinType.BY_NAME))
    with load_collection(spec, backend=backend, pin_path=bpffs, only=["array_map"]):
        pass
    changed = spec.with_maps(array_map=spec.maps["array_map"].replace(max_entries=99, value_size=16))
    before = open_fds()
    with pytest.raises(MapIncompatibleError, match=r"value_size 8 != 16.*max_entries 16 != 99"):
        load_collection(changed, backend=backend, pin_path=bpffs, only=["array_map"])
    assert open_fds() == before


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".", "..", "", "nul\0byte"])
def test_bad_pin_names_are_refused(backend: Backend, bpffs: str, bad: str) -> None:
    pinned = MIXED.maps["array_map"].replace(name=bad, pinning=PinType.BY_NAME)
    spec = ebpfspec.CollectionSpec(maps={bad: pinned})
    with pytest.raises(ValueError, match="invalid pin name"):
        load_collection(spec, backend=backend, pin_path=bpffs)


@pytest.mark.kernel
def test_pin_path_must_be_on_bpffs() -> None:
    backend = make_backend("kernel")
    with tempfile.TemporaryDirectory() as directory, pytest.raises(ValueError, match="not on bpffs"):
        load_collection(MIXED, backend=backend, pin_path=directory, only=["array_map"])


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_two_processes_racing_to_pin_share_one_map(tmp_path: Path) -> None:
    backend = make_backend("kernel")
    directory = tmp_path / "pins"
    directory.mkdir()
    if subprocess.run(["mount", "-t", "bpf", "bpf", str(directory)], capture_output=True).returncode:
        pytest.skip("cannot mount bpffs")
    script = (
        "import sys, ebpfspec, loader\n"
        "spec = ebpfspec.load_collection_spec(sys.argv[1])\n"
        "spec = ebpfspec.CollectionSpec(maps={'hash_map': spec.maps['hash_map'].replace(pinning=1)})\n"
        "sys.stdin.readline()\n"
        "with loader.load_collection(spec, pin_path=sys.argv[2]) as c:\n"
        "    print(c.maps['hash_map'].info().id, flush=True)\n"
    )
    try:
        for round_ in range(10):
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", script, str(TESTDATA / "maps-el.o"), str(directory)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            for p in procs:  # release both at once
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            ids = [int(p.communicate(timeout=60)[0]) for p in procs]
            assert all(p.returncode == 0 for p in procs)
            assert ids[0] == ids[1], f"round {round_}: the processes got different maps {ids}"
            os.unlink(directory / "hash_map")
    finally:
        subprocess.run(["umount", str(directory)], check=False)
    assert backend.name == "kernel"


# -- failures leave nothing behind ------------------------------------------------------------------


class FaultyBackend:
    """Wraps a backend: the ``fail_at``-th operation (counting from 1) fails with EIO.

    It also tracks every handle the backend hands out and every ``close``, so a test can
    check that nothing was left open, on any backend. ``close``/``obj_unpin``/
    ``possible_cpus`` never fail: they are how a failed load cleans up.
    """

    _NEVER_FAIL = ("close", "obj_unpin", "possible_cpus")
    _OPENS = ("map_create", "obj_get", "dup", "btf_load", "map_fd_by_id")

    def __init__(self, inner: Backend, fail_at: int):
        self._inner = inner
        self._fail_at = fail_at
        self.calls = 0
        self.name = inner.name
        self.open: set[int] = set()
        self.failed_op: str | None = None
        self._lock = threading.Lock()

    def disarm(self) -> None:
        """Stop injecting failures (to inspect what a load that survived created)."""
        self._fail_at = 0

    def __getattr__(self, op: str) -> Callable[..., Any]:
        target = getattr(self._inner, op)
        if not callable(target):
            return target  # type: ignore[no-any-return]

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                counted = op not in self._NEVER_FAIL
                self.calls += counted
                fail = counted and self.calls == self._fail_at != 0
            if fail:
                self.failed_op = op
                raise OSError(errno.EIO, f"injected failure in {op}")
            result = target(*args, **kwargs)
            with self._lock:
                if op in self._OPENS:
                    self.open.add(result)
                elif op == "close":
                    self.open.discard(args[0])
            return result

        return call


@pytest.mark.timeout(300)
def test_fault_at_every_backend_call_leaks_nothing(backend: Backend, bpffs: str) -> None:
    spec = MIXED.with_maps(array_map=MIXED.maps["array_map"].replace(pinning=PinType.BY_NAME))
    pin = os.path.join(bpffs, "array_map")
    counter = FaultyBackend(backend, fail_at=0)
    with load_collection(spec, backend=counter, pin_path=bpffs, workers=1):
        pass
    assert counter.open == set()
    total = counter.calls
    backend.obj_unpin(pin)
    assert total > len(spec.maps)
    tolerated = 0
    for n in range(1, total + 1):
        fds_before = open_fds()
        faulty = FaultyBackend(backend, fail_at=n)
        try:
            coll = load_collection(spec, backend=faulty, pin_path=bpffs, workers=2)
        except LoaderError as err:
            message = str(err)
            assert any(f"'{name}'" in message for name in spec.maps), (
                f"call {n}: no object named: {message!r}"
            )
        else:  # a failed BTF load is tolerated (as libbpf does): the map is created without BTF
            faulty.disarm()
            assert faulty.failed_op in ("btf_load", None), f"call {n}: {faulty.failed_op} failed silently"
            tolerated += faulty.failed_op is not None
            assert set(coll.maps) == set(spec.maps)
            # the map whose own BTF load failed records it; if it was the collection's BTF
            # that failed, every map with types loaded its own instead
            typed = [m for name, m in coll.maps.items()
                     if spec.maps[name].value is not None and spec.maps[name].type not in TYPES_WITHOUT_BTF]
            assert typed
            assert (any(m.info().btf_fallback for m in coll.maps.values())
                    or all(m.info().btf_value_type_id for m in typed))
            coll.close()
            backend.obj_unpin(pin)
        assert faulty.open == set(), f"call {n} left handles open: {faulty.open}"
        assert open_fds() == fds_before, f"call {n} leaked descriptors"
        with pytest.raises(OSError) as no_pin:  # no pin was left behind
            backend.obj_get(pin)
        assert no_pin.value.errno == errno.ENOENT, f"call {n} left the pin {pin}"
    assert 0 < tolerated < total


# -- concurrency ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_16_threads_load_one_spec_50_times(backend: Backend) -> None:
    before = json.dumps(MIXED.to_dict(), sort_keys=True)
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            for i in range(50 if backend.name == "memory" else 12):
                with load_collection(MIXED, backend=backend, workers=2) as coll:
                    if set(coll.maps) != set(MIXED.maps):
                        errors.append(f"thread {n}: incomplete collection")
                    mark = (n * 1000 + i).to_bytes(8, "little")
                    coll.maps["array_map"].update(b"\0\0\0\0", mark)
                    coll.maps["legacy_hash"].update(b"\1\0\0\0", mark)
                    if coll.maps["array_map"].lookup(b"\0\0\0\0") != mark:
                        errors.append(f"thread {n}: collections are not independent")
                    if coll.maps["legacy_hash"].lookup(b"\1\0\0\0") != mark:
                        errors.append(f"thread {n}: legacy map lost its value")
                    if coll.maps["array_of_maps"].lookup(b"\1\0\0\0") != coll.maps["inner_b"].info().id:
                        errors.append(f"thread {n}: map of maps holds a foreign inner map")
        except Exception as err:
            errors.append(f"thread {n}: {err!r}")

    fds_before = open_fds()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.dumps(MIXED.to_dict(), sort_keys=True) == before  # the spec never changed
    assert open_fds() == fds_before


# -- bpftool as witness ------------------------------------------------------------------------------


@pytest.mark.kernel
def test_bpftool_sees_exactly_the_collection() -> None:
    backend = make_backend("kernel")
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed")
    with load_collection(MIXED, backend=backend) as coll:
        shown = json.loads(
            subprocess.run([bpftool, "map", "show", "-j"], check=True, capture_output=True, text=True).stdout
        )
        by_id = {entry["id"]: entry for entry in shown}
        for name, m in coll.maps.items():
            info = m.info()
            entry = by_id[info.id]
            assert entry["bytes_key"] == m.key_size, name
            assert entry["bytes_value"] == info.value_size, name
            assert entry["max_entries"] == m.max_entries, name
            assert entry["flags"] == m.flags, name
            assert entry["name"] == loader.map.map_attrs_name(name), name
            kernel_type = MapType(info.type).kernel_name.removeprefix("BPF_MAP_TYPE_").lower()
            assert entry["type"].replace("_", "") == kernel_type.replace("_", ""), name
