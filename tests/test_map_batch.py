"""Batch operations and per-CPU values, against both backends (lessons 1 and 2).

Lesson 1: ``lookup_and_delete_batch`` from a fresh cursor (the kernel's NULL
``in_batch``) drains hash and per-CPU hash maps, every entry exactly once.
Lesson 2: per-CPU values are ``round_up(value_size, 8)`` per possible CPU; a wrongly
sized key or value is a ``ValueError`` raised before any backend call.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ebpfspec import MapSpec, MapType, UpdateFlags
from loader import Backend, BatchCursor, BatchCursorError, KeyNotFoundError, Map, MapError
from tests.test_map import BACKENDS, Maps, RecordingBackend, as_int, open_backend, u32, u64


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


def value_for(m: Map, i: int) -> Any:
    """A distinct value for entry ``i`` (a distinct one per CPU for per-CPU maps)."""
    if m.type.has_per_cpu_value:
        return [(i * 131 + cpu * 7 + 1).to_bytes(m.value_size, "little", signed=False)
                for cpu in range(m.backend.possible_cpus())]
    return (i * 131 + 1).to_bytes(m.value_size, "little")


def fill(m: Map, n: int) -> dict[bytes, Any]:
    expected = {u32(i): value_for(m, i) for i in range(n)}
    step = 2500
    items = list(expected.items())
    for start in range(0, n, step):
        chunk = items[start:start + step]
        assert m.batch_update([k for k, _ in chunk], [v for _, v in chunk]) == len(chunk)
    return expected


def drain(m: Map, count: int, *, delete: bool) -> tuple[list[bytes], list[Any]]:
    cursor = BatchCursor()
    keys: list[bytes] = []
    values: list[Any] = []
    calls = 0
    while True:
        ks, vs = (m.batch_lookup_and_delete if delete else m.batch_lookup)(cursor, count)
        assert len(ks) == len(vs)
        if count >= 64:
            assert len(ks) <= count
        calls += 1
        assert calls <= 4 * m.max_entries + 4, "the batch walk does not end"
        if not ks:
            assert cursor.done
            break
        keys += ks
        values += vs
    assert m.batch_lookup(cursor, count) == ([], [])  # an exhausted cursor stays exhausted
    return keys, values


# -- lesson 1 ------------------------------------------------------------------------------------


N_ENTRIES = 10_000


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH])
def test_lookup_and_delete_batch_drains_from_a_fresh_cursor(maps: Maps, map_type: MapType) -> None:
    m = maps(map_type, 4, 8, N_ENTRIES, name="drained")
    for count in (1, 7, 64, 1000, 4096):
        expected = fill(m, N_ENTRIES)
        keys, values = drain(m, count, delete=True)
        assert len(keys) == len(set(keys)) == N_ENTRIES, f"batch size {count}"
        assert dict(zip(keys, values, strict=True)) == expected, f"batch size {count}"
        assert list(m.keys()) == [], f"batch size {count}"
        with pytest.raises(KeyNotFoundError):
            m.lookup(u32(0))


#: MemoryBackend discrepancy: its hash maps bucket keys by crc32, not jhash.


def test_hash_buckets_spread_keys_like_the_kernel(backend: Backend, request: pytest.FixtureRequest) -> None:
    """A batch of 1 fits most buckets of a hash map (the kernel hashes keys with seeded jhash).

    Draining 10000 keys one at a time must mostly succeed at count 1, and fall back to a
    larger batch (after ENOSPC) only for the buckets that hold several keys.
    """
    rec = RecordingBackend(backend)
    spec = MapSpec(name="spread", type=MapType.HASH, key_size=4, value_size=8, max_entries=N_ENTRIES)
    with Map.create(spec, rec) as m:
        fill(m, N_ENTRIES)
        del rec.calls[:]
        keys, _ = drain(m, 1, delete=True)
        assert len(keys) == N_ENTRIES
        counts = Counter(args[5] for method, args in rec.calls if method == "map_lookup_batch")
        assert counts[2] > 0  # some buckets hold two or more keys: ENOSPC, then a batch of 2
        assert counts[1] > 2 * counts[2]  # but most hold one


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                                      MapType.LRU_PERCPU_HASH, MapType.ARRAY, MapType.PERCPU_ARRAY])
@pytest.mark.parametrize("count", [1, 5, 256])
def test_batch_lookup_sees_every_entry_once(maps: Maps, map_type: MapType, count: int) -> None:
    # LRU maps hand out free nodes to each CPU in chunks (max_entries / cpus / 2), so a map
    # filled close to max_entries from a thread that moves between CPUs may evict early.
    max_entries = 600
    m = maps(map_type, 4, 8, max_entries, name="looked")
    is_array = map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY)
    n = 250
    expected = fill(m, n) if not is_array else {}
    if is_array:
        expected = {u32(i): value_for(m, i) for i in range(n)}
        assert m.batch_update(list(expected), list(expected.values())) == n
        zero = [bytes(8)] * m.backend.possible_cpus() if m.type.has_per_cpu_value else bytes(8)
        expected.update({u32(i): zero for i in range(n, max_entries)})
    keys, values = drain(m, count, delete=False)
    assert len(keys) == len(set(keys)) == len(expected)
    assert dict(zip(keys, values, strict=True)) == expected
    if is_array:
        assert keys == [u32(i) for i in range(max_entries)]  # arrays come in index order
    # Nothing was deleted.
    assert sorted(m.keys()) == sorted(expected)


def test_batch_on_an_empty_map(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 64, name="empty")
    cursor = BatchCursor()
    assert m.batch_lookup(cursor) == ([], [])
    assert cursor.done
    assert m.batch_lookup_and_delete(BatchCursor()) == ([], [])
    assert list(m.iter_batches()) == []


@pytest.mark.parametrize("delete", [False, True])
def test_iter_batches(maps: Maps, delete: bool) -> None:
    m = maps(MapType.PERCPU_HASH, 4, 8, 3000, name="batches")
    expected = fill(m, 2500)
    seen: dict[bytes, Any] = {}
    batches = 0
    for keys, values in m.iter_batches(count=300, delete=delete):
        assert 0 < len(keys) == len(values) <= 300
        for k, v in zip(keys, values, strict=True):
            assert k not in seen
            seen[k] = v
        batches += 1
    assert seen == expected
    assert batches >= 2500 // 300
    assert sorted(m.keys()) == ([] if delete else sorted(expected))


def test_cursor_is_bound_to_its_first_map(maps: Maps) -> None:
    a = maps(MapType.HASH, 4, 8, 16, name="first")
    b = maps(MapType.HASH, 4, 8, 16, name="second")
    for m in (a, b):
        m.batch_update([u32(1), u32(2)], [u64(1), u64(2)])
    cursor = BatchCursor()
    a.batch_lookup(cursor, 1)
    with pytest.raises(BatchCursorError, match="first"):
        b.batch_lookup(cursor)
    with pytest.raises(BatchCursorError):
        b.batch_lookup_and_delete(cursor)
    assert sorted(b.keys()) == [u32(1), u32(2)]  # the refused call touched nothing
    # It still works on its own map, and a fresh cursor works on the other.
    rest = a.batch_lookup(cursor)
    assert b.batch_lookup(BatchCursor())[0] != []
    assert len(rest[0]) <= 2


def test_exhausted_cursor_makes_no_calls(backend: Backend) -> None:
    rec = RecordingBackend(backend)
    spec = MapSpec(name="done", type=MapType.HASH, key_size=4, value_size=8, max_entries=8)
    with Map.create(spec, rec) as m:
        m.batch_update([u32(1)], [u64(1)])
        cursor = BatchCursor()
        while not cursor.done:
            m.batch_lookup(cursor)
        before = len(rec.calls)
        for _ in range(3):
            assert m.batch_lookup(cursor) == ([], [])
            assert m.batch_lookup_and_delete(cursor) == ([], [])
        with pytest.raises(ValueError):
            m.batch_lookup(BatchCursor(), 0)
        assert len(rec.calls) == before
        assert m[u32(1)] == u64(1)


def test_batch_update_and_delete(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 64, name="bupdate")
    assert m.batch_update([], []) == 0
    assert m.batch_delete([]) == 0
    keys = [u32(i) for i in range(10)]
    assert m.batch_update(keys, [u64(i) for i in range(10)]) == 10
    # Batch updates take no NOEXIST/EXIST (only BPF_F_LOCK): refused before any element.
    for flags in (UpdateFlags.NOEXIST, UpdateFlags.EXIST):
        with pytest.raises(MapError) as refused:
            m.batch_update([u32(20), u32(3)], [u64(20), u64(3)], flags)
        assert refused.value.errno == errno.EINVAL and refused.value.map_name == "bupdate"
        assert refused.value.count == 0
    assert u32(20) not in m
    assert m.batch_update([u32(3), u32(20)], [u64(33), u64(20)]) == 2  # ANY replaces and creates
    assert m[u32(3)] == u64(33) and m[u32(20)] == u64(20)
    assert m.batch_delete(keys[:5]) == 5
    assert sorted(as_int(k) for k in m) == [5, 6, 7, 8, 9, 20]
    with pytest.raises(KeyNotFoundError) as absent:
        m.batch_delete([u32(5), u32(0)])
    assert absent.value.errno == errno.ENOENT and absent.value.op == "batch_delete"
    assert absent.value.count == 1  # the kernel stops at the first failing element
    assert sorted(as_int(k) for k in m) == [6, 7, 8, 9, 20]


def test_array_batch_lookup_and_delete_is_not_supported(maps: Maps) -> None:
    m = maps(MapType.ARRAY, 4, 8, 4, name="nodelete")
    with pytest.raises(MapError) as unsupported:
        m.batch_lookup_and_delete(BatchCursor())
    assert unsupported.value.errno == 524  # the kernel's internal ENOTSUPP
    with pytest.raises(MapError) as delete:
        m.batch_delete([u32(0)])
    assert delete.value.errno == 524


# -- lesson 2: per-CPU values ------------------------------------------------------------------------------


PER_CPU_TYPES = [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH]


@pytest.mark.parametrize("value_size", [4, 12])
@pytest.mark.parametrize("map_type", PER_CPU_TYPES)
def test_per_cpu_values(maps: Maps, map_type: MapType, value_size: int) -> None:
    m = maps(map_type, 4, value_size, 8, name="percpu")
    cpus = maps.backend.possible_cpus()
    assert cpus >= 1

    def distinct(seed: int, n: int = cpus) -> list[bytes]:
        return [bytes([seed, cpu + 1]) + b"\xee" * (value_size - 2) for cpu in range(n)]

    full = distinct(1)
    m.update(u32(0), full)
    got = m.lookup(u32(0))
    assert isinstance(got, list) and len(got) == cpus
    assert all(type(v) is bytes and len(v) == value_size for v in got)
    assert got == full

    m.update(u32(1), distinct(2, 1))  # shorter list: the other CPUs get zeros
    assert m.lookup(u32(1)) == distinct(2, 1) + [bytes(value_size)] * (cpus - 1)

    one = b"\x5a" * value_size  # one value for every CPU
    m.update(u32(2), one)
    assert m.lookup(u32(2)) == [one] * cpus
    m.update(u32(3), [])  # no values: all zeros
    assert m.lookup(u32(3)) == [bytes(value_size)] * cpus

    assert dict(m.items())[u32(0)] == full
    assert m.lookup(u32(2)) == [one] * cpus


@pytest.mark.parametrize("value_size", [4, 12])
@pytest.mark.parametrize("map_type", PER_CPU_TYPES)
def test_per_cpu_batch_round_trip(maps: Maps, map_type: MapType, value_size: int) -> None:
    m = maps(map_type, 4, value_size, 128, name="pcpu_batch")
    cpus = maps.backend.possible_cpus()
    expected = {
        u32(i): [bytes([i, cpu]) + bytes(range(value_size - 2)) for cpu in range(cpus)] for i in range(50)
    }
    assert m.batch_update(list(expected), list(expected.values())) == 50
    for k, v in expected.items():
        assert m.lookup(k) == v
    if map_type == MapType.PERCPU_ARRAY:
        expected.update({u32(i): [bytes(value_size)] * cpus for i in range(50, 128)})
    for count in (1, 3, 128):
        keys, values = drain(m, count, delete=False)
        assert dict(zip(keys, values, strict=True)) == expected
        assert all(len(v) == cpus and all(len(x) == value_size for x in v) for v in values)
    if map_type != MapType.PERCPU_ARRAY:
        keys, values = drain(m, 4, delete=True)
        assert dict(zip(keys, values, strict=True)) == expected
        assert list(m.keys()) == []


def wrong_size_calls(m: Map) -> list[tuple[str, Callable[[], object]]]:
    """Operations with a wrongly sized key or value, each of which must fail before any call."""
    vs = m.value_size
    cpus = m.backend.possible_cpus()
    per_cpu = m.type.has_per_cpu_value
    good_value: Any = [bytes(vs)] * cpus if per_cpu else bytes(vs)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("short key lookup", lambda: m.lookup(b"\0" * 3)),
        ("long key lookup", lambda: m.lookup(b"\0" * 5)),
        ("no key lookup", lambda: m.lookup()),
        ("short key update", lambda: m.update(b"\0" * 3, good_value)),
        ("short key delete", lambda: m.delete(b"\0" * 3)),
        ("short key in", lambda: b"\0" * 3 in m),
        ("short value", lambda: m.update(u32(0), bytes(vs - 1))),
        ("long value", lambda: m.update(u32(0), bytes(vs + 1))),
        ("slot-sized value", lambda: m.update(u32(0), bytes((vs + 7) & ~7))),
        ("batch lengths differ", lambda: m.batch_update([u32(0), u32(1)], [good_value])),
        ("batch key", lambda: m.batch_update([u32(0), b"\0" * 2], [good_value, good_value])),
        ("batch value", lambda: m.batch_update([u32(0), u32(1)], [good_value, bytes(vs + 1)])),
        ("batch delete key", lambda: m.batch_delete([u32(0), b"\0"])),
    ]
    if per_cpu:
        calls += [
            ("too many CPUs", lambda: m.update(u32(0), [bytes(vs)] * (cpus + 1))),
            ("wrong element", lambda: m.update(u32(0), [bytes(vs)] * (cpus - 1) + [bytes(vs + 1)])),
            ("short element", lambda: m.update(u32(0), [bytes(vs - 1)])),
            ("all CPUs packed", lambda: m.update(u32(0), bytes(((vs + 7) & ~7) * cpus))),
            ("batch too many CPUs", lambda: m.batch_update([u32(0)], [[bytes(vs)] * (cpus + 1)])),
        ]
    return calls


@pytest.mark.parametrize("value_size", [4, 12])
@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.ARRAY, *PER_CPU_TYPES])
def test_wrong_sizes_fail_before_any_backend_call(
    backend: Backend, map_type: MapType, value_size: int
) -> None:
    rec = RecordingBackend(backend)
    spec = MapSpec(name="sizes", type=map_type, key_size=4, value_size=value_size, max_entries=4)
    with Map.create(spec, rec) as m:
        for what, call in wrong_size_calls(m):
            before = list(rec.calls)
            with pytest.raises(ValueError):
                call()
            assert rec.calls == before, f"{what}: the backend was called: {rec.calls[len(before):]}"
        # Nothing was written along the way.
        assert u32(0) not in m or m.type in (MapType.ARRAY, MapType.PERCPU_ARRAY)
        if map_type in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            zero: Any = bytes(value_size)
            if m.type.has_per_cpu_value:
                zero = [zero] * backend.possible_cpus()
            assert all(v == zero for v in m.values())
        else:
            assert list(m.keys()) == []


def test_per_cpu_buffers_are_slot_sized(backend: Backend) -> None:
    """The library hands the backend round_up(value_size, 8) * possible CPUs, per entry."""
    rec = RecordingBackend(backend)
    cpus = backend.possible_cpus()
    spec = MapSpec(name="slots", type=MapType.PERCPU_HASH, key_size=4, value_size=12, max_entries=8)
    with Map.create(spec, rec) as m:
        m.update(u32(1), [b"\1" * 12])
        updates = [args for method, args in rec.calls if method == "map_update"]
        assert len(updates) == 1
        assert updates[0][2] == b"\1" * 12 + bytes(4) + bytes(16 * (cpus - 1))
        m.lookup(u32(1))
        assert [c[1][2] for c in rec.calls if c[0] == "map_lookup"] == [16 * cpus]
        m.batch_lookup(BatchCursor(), 2)
        batch = [c[1] for c in rec.calls if c[0] == "map_lookup_batch"]
        assert batch and all(args[4] == 16 * cpus for args in batch)
