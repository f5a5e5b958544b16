"""``loader.Map`` under threads, against both backends (lesson 5 and closing while in use).

Lesson 5: ``update(..., NOEXIST)`` racing on the same keys yields exactly one success
per key and ``KeyExistsError`` for every other attempt -- nothing else, no warnings.
Closing a map while other threads use it ends each of them with ``MapClosedError`` and
never lets one operate on a recycled descriptor.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ebpfspec import MapSpec, MapType, UpdateFlags
from loader import Backend, BatchCursor, KeyExistsError, Map, MapClosedError
from tests.test_map import BACKENDS, Maps, RecordingBackend, open_backend, u32, u64


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return open_backend(request.param)


@pytest.fixture
def maps(backend: Backend) -> Iterator[Maps]:
    made = Maps(backend)
    try:
        yield made
    finally:
        made.close()


def run_threads(n: int, target: Any, timeout: float = 60) -> None:
    threads = [threading.Thread(target=target, args=(i,), name=f"worker-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a worker thread hangs"


# -- lesson 5 ------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH])
def test_noexist_race_has_exactly_one_winner(maps: Maps, map_type: MapType) -> None:
    n_threads, n_keys = 8, 1000
    m = maps(map_type, 4, 8, 4 * n_keys, name="race")
    barrier = threading.Barrier(n_threads)
    won: list[list[int]] = [[] for _ in range(n_threads)]
    lost = [0] * n_threads
    unexpected: list[BaseException] = []

    def worker(tid: int) -> None:
        # Half the threads go up, half go down: they collide at the start, middle and end.
        order = range(n_keys) if tid % 2 == 0 else range(n_keys - 1, -1, -1)
        barrier.wait()
        for k in order:
            try:
                m.update(u32(k), u64(tid), UpdateFlags.NOEXIST)
            except KeyExistsError:
                lost[tid] += 1
            except BaseException as err:
                unexpected.append(err)
            else:
                won[tid].append(k)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_threads(n_threads, worker, timeout=100)
    assert unexpected == []
    assert [str(w.message) for w in caught] == []
    winners = Counter(k for keys in won for k in keys)
    assert sorted(winners) == list(range(n_keys))
    assert set(winners.values()) == {1}  # exactly one success per key
    assert sum(lost) == (n_threads - 1) * n_keys  # every other attempt: KeyExistsError
    owner = {k: tid for tid, keys in enumerate(won) for k in keys}
    cpus = maps.backend.possible_cpus()
    contents = dict(m.items())
    assert len(contents) == n_keys
    for k, tid in owner.items():
        expected: Any = [u64(tid)] * cpus if map_type.has_per_cpu_value else u64(tid)
        assert contents[u32(k)] == expected


# -- closing while in use -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_close_while_other_threads_use_the_map(maps: Maps) -> None:
    backend = maps.backend
    n_threads = 6
    for round_ in range(4):
        m = Map.create(MapSpec(name="busy", type=MapType.HASH, key_size=4, value_size=8, max_entries=64),
                       backend)
        maps.adopt(m)
        old_fd = m.fileno()
        ready = threading.Barrier(n_threads + 1)
        outcomes: list[object] = [None] * n_threads
        ops = [0] * n_threads

        def hammer(tid: int, m: Map = m, ready: threading.Barrier = ready,
                   outcomes: list[object] = outcomes, ops: list[int] = ops) -> None:
            key = u32(tid)
            ready.wait()
            try:
                while True:
                    n = ops[tid]
                    m.update(key, u64(n))
                    if m.lookup(key) != u64(n):
                        raise AssertionError(f"thread {tid}: read back a different value")
                    if n % 16 == 0:
                        list(m.items())
                        m.batch_lookup(BatchCursor(), 8)
                    if n % 3 == 0:
                        m.delete(key)
                    ops[tid] = n + 1
            except MapClosedError as err:
                outcomes[tid] = "closed" if err.map_name == "busy" else err
            except BaseException as err:
                outcomes[tid] = err

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        ready.wait()
        time.sleep(0.02 * (round_ + 1))
        m.close()
        # At once: new maps that would accept exactly what the workers write, on what may be
        # the old descriptor number.
        fresh = [maps(MapType.HASH, 4, 8, 64, name=f"fresh{i}") for i in range(4)]
        if backend.name == "kernel":
            assert old_fd in {f.fileno() for f in fresh}  # the number was reused
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert outcomes == ["closed"] * n_threads
        assert sum(ops) > 0
        for f in fresh:
            assert list(f.keys()) == [], "a worker wrote to a recycled descriptor"
        m.close()  # idempotent


class BlockingBackend(RecordingBackend):
    """A backend whose lookups wait until ``release`` is set (to hold an operation open)."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.inside = threading.Event()
        self.release = threading.Event()

    def map_lookup(self, fd: int, key: bytes, value_size: int, flags: int = 0, *,
                   value: bytes | None = None) -> bytes:
        self.inside.set()
        assert self.release.wait(30)
        return super().map_lookup(fd, key, value_size, flags, value=value)


@pytest.mark.timeout(60)
def test_close_waits_for_running_operations(backend: Backend) -> None:
    blocking = BlockingBackend(backend)
    spec = MapSpec(name="held", type=MapType.ARRAY, key_size=4, value_size=8, max_entries=1)
    m = Map.create(spec, blocking)
    fd = m.fileno()
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(m.lookup(u32(0))))
    reader.start()
    assert blocking.inside.wait(10)
    closer = threading.Thread(target=m.close)
    closer.start()
    time.sleep(0.1)
    assert m.closed  # new operations fail at once ...
    with pytest.raises(MapClosedError):
        m.update(u32(0), u64(1))
    assert fd not in blocking.closed and closer.is_alive()  # ... but the fd stays until the lookup is done
    blocking.release.set()
    reader.join(10)
    closer.join(10)
    assert results == [bytes(8)]
    assert blocking.closed == [fd] and blocking.open_handles() == []


class BlockingUpdates(RecordingBackend):
    """A backend whose updates wait until ``release`` is set."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.inside = threading.Event()
        self.release = threading.Event()

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        self.inside.set()
        assert self.release.wait(30)
        super().map_update(fd, key, value, flags)


@pytest.mark.timeout(60)
def test_closing_an_inner_map_waits_for_its_insertion(backend: Backend) -> None:
    """``outer.update(k, inner)`` hands the kernel inner's fd number: inner.close() must wait for it."""
    blocking = BlockingUpdates(backend)
    inner_spec = MapSpec(name="inner", type=MapType.ARRAY, key_size=4, value_size=8, max_entries=1)
    outer = Map.create(MapSpec(name="outer", type=MapType.ARRAY_OF_MAPS, key_size=4, value_size=4,
                               max_entries=1, inner_map=inner_spec), blocking)
    inner = Map.create(inner_spec, blocking)
    inner_fd, inner_id = inner.fileno(), inner.info().id
    closed_before = blocking.closed.count(inner_fd)  # the template may have had the same number
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            outer.update(u32(0), inner)
        except BaseException as err:
            errors.append(err)

    try:
        inserter = threading.Thread(target=insert)
        inserter.start()
        assert blocking.inside.wait(10)
        closer = threading.Thread(target=inner.close)
        closer.start()
        time.sleep(0.1)
        assert inner.closed and closer.is_alive()
        assert blocking.closed.count(inner_fd) == closed_before  # still open while the update may use it
        blocking.release.set()
        inserter.join(10)
        closer.join(10)
        assert errors == []
        assert blocking.closed.count(inner_fd) == closed_before + 1
        assert outer.lookup(u32(0)) == inner_id
        with pytest.raises(MapClosedError):  # a closed Map cannot be inserted at all
            outer.update(u32(0), inner)
    finally:
        blocking.release.set()
        outer.close()
        inner.close()
    assert blocking.open_handles() == []
