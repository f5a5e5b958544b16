"""``loader.Map`` against both backends: single elements, flags, errors, iteration, lifetime.

Every behaviour test takes the ``backend`` fixture, parametrised over the real kernel
(``KernelBackend``, marked ``kernel``) and the in-process model (``MemoryBackend``), and
asserts exactly the same results for both. Kernel-only witnesses (``/proc/self/fd``,
``bpftool``, bpffs) are marked ``kernel`` and say so.

The helpers here (``open_backend``, ``Maps``, ``RecordingBackend``) are shared with the
other ``test_map_*`` modules.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ebpfspec import MapKV, MapSpec, MapType, UpdateFlags
from loader import (
    Backend,
    BatchResult,
    KeyExistsError,
    KeyNotFoundError,
    Map,
    MapAttrs,
    MapClosedError,
    MapError,
    MapInfo,
)
from loader.map import map_attrs_name

# -- backends ----------------------------------------------------------------------------------

#: Possible CPUs of the MemoryBackend: deliberately not the host's, and odd.
MEMORY_CPUS = 3

BACKENDS = [
    pytest.param("kernel", marks=pytest.mark.kernel, id="kernel"),
    pytest.param("memory", id="memory"),
]

_kernel_backend: Backend | None = None
_kernel_unusable: str | None = None


def kernel_backend() -> Backend:
    """The process-wide KernelBackend; skips the test when BPF is not usable here."""
    global _kernel_backend, _kernel_unusable
    if _kernel_backend is None and _kernel_unusable is None:
        _kernel_unusable = _probe_kernel()
    if _kernel_unusable is not None:
        pytest.skip(_kernel_unusable)
    assert _kernel_backend is not None
    return _kernel_backend


def _probe_kernel() -> str | None:
    global _kernel_backend
    if sys.platform != "linux":
        return "the kernel backend needs Linux"
    if os.geteuid() != 0:
        return "the kernel backend tests need root (CAP_BPF, CAP_SYS_ADMIN)"
    from loader.kernel import KernelBackend

    kb = KernelBackend()
    try:
        fd = kb.map_create(MapAttrs(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1))
    except OSError as err:
        return f"BPF is not usable here: {err}"
    kb.close(fd)
    _kernel_backend = kb
    return None


def open_backend(name: str) -> Backend:
    """A backend by fixture parameter name: the shared kernel backend, or a fresh MemoryBackend."""
    if name == "kernel":
        return kernel_backend()
    from loader.memory import MemoryBackend

    backend: Backend = MemoryBackend(possible_cpus=MEMORY_CPUS)
    return backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return open_backend(request.param)


class Maps:
    """Creates maps on one backend and closes them all at the end of the test."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.made: list[Map] = []

    def __call__(self, type: MapType, key_size: int = 4, value_size: int = 8, max_entries: int = 16, *,
                 name: str | None = None, backend: Backend | None = None, **fields: Any) -> Map:
        spec = MapSpec(name=name or f"t_{type.name.lower()}", type=type, key_size=key_size,
                       value_size=value_size, max_entries=max_entries, **fields)
        return self.create(spec, backend=backend)

    def create(self, spec: MapSpec, *, backend: Backend | None = None) -> Map:
        m = Map.create(spec, backend or self.backend)
        self.made.append(m)
        return m

    def adopt(self, m: Map) -> Map:
        self.made.append(m)
        return m

    def close(self) -> None:
        for m in self.made:
            m.close()


@pytest.fixture
def maps(backend: Backend) -> Iterator[Maps]:
    made = Maps(backend)
    try:
        yield made
    finally:
        made.close()


# -- a recording backend ---------------------------------------------------------------------------


class RecordingBackend:
    """Wraps a backend and records every call made through it as ``(method, args)``.

    It also counts the handles it hands out and takes back, so a test can tell which
    are still open.
    """

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.opened: list[int] = []
        self.closed: list[int] = []
        self._lock = threading.Lock()

    def _record(self, method: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((method, args))

    def _opened(self, handle: int) -> int:
        with self._lock:
            self.opened.append(handle)
        return handle

    def methods(self) -> list[str]:
        """The names of the methods called so far, in order."""
        with self._lock:
            return [method for method, _ in self.calls]

    def open_handles(self) -> list[int]:
        """Handles returned and not yet closed (as a multiset difference)."""
        with self._lock:
            still = list(self.opened)
            for h in self.closed:
                still.remove(h)
            return still

    def __getattr__(self, method: str) -> Any:
        """Every other backend operation (programs, attaching): recorded and passed on."""
        target = getattr(self.inner, method)
        if not callable(target):
            return target

        def forward(*args: Any, **kwargs: Any) -> Any:
            self._record(method, *args)
            return target(*args, **kwargs)

        return forward

    def possible_cpus(self) -> int:
        self._record("possible_cpus")
        return self.inner.possible_cpus()

    def map_create(self, attrs: MapAttrs) -> int:
        self._record("map_create", attrs)
        return self._opened(self.inner.map_create(attrs))

    def map_lookup(self, fd: int, key: bytes, value_size: int, flags: int = 0, *,
                   value: bytes | None = None) -> bytes:
        self._record("map_lookup", fd, key, value_size, flags)
        if value is None:
            return self.inner.map_lookup(fd, key, value_size, flags)
        # A bloom filter's lookup reads the value to test (both backends take ``value=``).
        lookup: Any = self.inner.map_lookup
        found: bytes = lookup(fd, key, value_size, flags, value=value)
        return found

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        self._record("map_update", fd, key, value, flags)
        self.inner.map_update(fd, key, value, flags)

    def map_delete(self, fd: int, key: bytes) -> None:
        self._record("map_delete", fd, key)
        self.inner.map_delete(fd, key)

    def map_lookup_and_delete(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes:
        self._record("map_lookup_and_delete", fd, key, value_size, flags)
        return self.inner.map_lookup_and_delete(fd, key, value_size, flags)

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        self._record("map_get_next_key", fd, key, key_size)
        return self.inner.map_get_next_key(fd, key, key_size)

    def map_lookup_batch(
        self, fd: int, in_batch: bytes | None, batch_size: int, key_size: int, value_size: int,
        count: int, *, delete: bool = False, elem_flags: int = 0,
    ) -> BatchResult:
        self._record("map_lookup_batch", fd, in_batch, batch_size, key_size, value_size, count, delete,
                     elem_flags)
        return self.inner.map_lookup_batch(fd, in_batch, batch_size, key_size, value_size, count,
                                           delete=delete, elem_flags=elem_flags)

    def map_update_batch(
        self, fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
    ) -> int:
        self._record("map_update_batch", fd, keys, values, count, elem_flags)
        return self.inner.map_update_batch(fd, keys, values, count, elem_flags=elem_flags)

    def map_delete_batch(self, fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
        self._record("map_delete_batch", fd, keys, count, elem_flags)
        return self.inner.map_delete_batch(fd, keys, count, elem_flags=elem_flags)

    def map_freeze(self, fd: int) -> None:
        self._record("map_freeze", fd)
        self.inner.map_freeze(fd)

    def map_info(self, fd: int) -> MapInfo:
        self._record("map_info", fd)
        return self.inner.map_info(fd)

    def map_fd_by_id(self, map_id: int) -> int:
        self._record("map_fd_by_id", map_id)
        return self._opened(self.inner.map_fd_by_id(map_id))

    def obj_pin(self, fd: int, path: str) -> None:
        self._record("obj_pin", fd, path)
        self.inner.obj_pin(fd, path)

    def obj_get(self, path: str, flags: int = 0) -> int:
        self._record("obj_get", path, flags)
        return self._opened(self.inner.obj_get(path, flags))

    def obj_unpin(self, path: str) -> None:
        self._record("obj_unpin", path)
        self.inner.obj_unpin(path)

    def dup(self, fd: int) -> int:
        self._record("dup", fd)
        return self._opened(self.inner.dup(fd))

    def close(self, fd: int) -> None:
        self._record("close", fd)
        with self._lock:
            self.closed.append(fd)
        self.inner.close(fd)

    def btf_load(self, raw: bytes) -> int:
        self._record("btf_load", raw)
        return self._opened(self.inner.btf_load(raw))


# -- small helpers -------------------------------------------------------------------------------------


def u32(n: int) -> bytes:
    return n.to_bytes(4, sys.byteorder)


def u64(n: int) -> bytes:
    return n.to_bytes(8, sys.byteorder)


def as_int(raw: bytes) -> int:
    return int.from_bytes(raw, sys.byteorder)


@pytest.fixture
def kernel_maps() -> Iterator[Maps]:
    """Maps on the kernel backend only, for kernel-side witnesses (/proc/self/fd, bpftool)."""
    made = Maps(kernel_backend())
    try:
        yield made
    finally:
        made.close()


def proc_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- single elements -------------------------------------------------------------------------------------


def test_recording_backend_is_a_backend(backend: Backend) -> None:
    assert isinstance(RecordingBackend(backend), Backend)
    assert isinstance(backend, Backend)


def test_hash_lookup_update_delete(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 16, name="crud")
    with pytest.raises(KeyNotFoundError) as missing:
        m.lookup(u32(1))
    err = missing.value
    assert isinstance(err, KeyError) and isinstance(err, MapError) and isinstance(err, OSError)
    assert err.errno == errno.ENOENT and err.op == "lookup" and err.map_name == "crud"
    assert "crud" in str(err)

    m.update(u32(1), u64(5))
    assert m.lookup(u32(1)) == u64(5)
    assert type(m.lookup(u32(1))) is bytes
    # bytes-like in, bytes out
    m.update(bytearray(u32(2)), memoryview(u64(6)))
    assert m.lookup(memoryview(u32(2))) == u64(6)
    m.update(u32(1), u64(7))  # ANY replaces
    assert m.lookup(u32(1)) == u64(7)

    m.delete(u32(1))
    with pytest.raises(KeyNotFoundError):
        m.lookup(u32(1))
    with pytest.raises(KeyNotFoundError) as gone:
        m.delete(u32(1))
    assert gone.value.errno == errno.ENOENT and gone.value.op == "delete"
    assert m.lookup(u32(2)) == u64(6)


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH])
def test_update_flags(maps: Maps, map_type: MapType) -> None:
    m = maps(map_type, 4, 8, 16, name="flags")
    per_cpu = map_type.has_per_cpu_value

    def val(n: int) -> Any:
        return [u64(n)] * m.backend.possible_cpus() if per_cpu else u64(n)

    with pytest.raises(KeyNotFoundError) as absent:
        m.update(u32(1), u64(1), UpdateFlags.EXIST)
    assert isinstance(absent.value, KeyError)
    assert absent.value.errno == errno.ENOENT and absent.value.op == "update"
    assert absent.value.map_name == "flags"
    assert u32(1) not in m

    m.update(u32(1), u64(1), UpdateFlags.NOEXIST)
    assert m.lookup(u32(1)) == val(1)
    with pytest.raises(KeyExistsError) as exists:
        m.update(u32(1), u64(2), UpdateFlags.NOEXIST)
    err = exists.value
    assert isinstance(err, FileExistsError) and isinstance(err, MapError)
    assert err.errno == errno.EEXIST and err.op == "update" and err.map_name == "flags"
    assert "flags" in str(err)
    assert m.lookup(u32(1)) == val(1)

    m.update(u32(1), u64(3), UpdateFlags.EXIST)
    assert m.lookup(u32(1)) == val(3)
    m.update(u32(1), u64(4), UpdateFlags.ANY)
    assert m.lookup(u32(1)) == val(4)
    m.update(u32(2), u64(5), UpdateFlags.ANY)
    assert m.lookup(u32(2)) == val(5)


@pytest.mark.parametrize("flags", [UpdateFlags.NOEXIST | UpdateFlags.EXIST, UpdateFlags.LOCK, 8])
def test_invalid_update_flags(maps: Maps, flags: int) -> None:
    # NOEXIST|EXIST is contradictory; LOCK needs a bpf_spin_lock in the value; 8 is unknown.
    m = maps(MapType.HASH, 4, 8, 4, name="badflags")
    with pytest.raises(MapError) as bad:
        m.update(u32(1), u64(1), flags)
    assert bad.value.errno == errno.EINVAL and bad.value.map_name == "badflags"
    assert not isinstance(bad.value, (KeyError, FileExistsError))
    assert list(m.keys()) == []


def test_hash_full_e2big(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 8, name="full_hash")
    for i in range(8):
        m.update(u32(i), u64(i), UpdateFlags.NOEXIST)
    with pytest.raises(MapError) as full:
        m.update(u32(100), u64(100))
    err = full.value
    assert err.errno == errno.E2BIG and err.op == "update" and err.map_name == "full_hash"
    assert not isinstance(err, (KeyError, FileExistsError))
    assert "full_hash" in str(err)
    with pytest.raises(MapError) as full_noexist:
        m.update(u32(101), u64(101), UpdateFlags.NOEXIST)
    assert full_noexist.value.errno == errno.E2BIG
    # Existing keys can still be replaced, and NOEXIST on one is still EEXIST.
    m.update(u32(3), u64(33))
    assert m.lookup(u32(3)) == u64(33)
    with pytest.raises(KeyExistsError):
        m.update(u32(3), u64(34), UpdateFlags.NOEXIST)
    assert sorted(as_int(k) for k in m) == list(range(8))
    m.delete(u32(0))
    m.update(u32(100), u64(100), UpdateFlags.NOEXIST)
    assert m.lookup(u32(100)) == u64(100)


def test_array(maps: Maps) -> None:
    m = maps(MapType.ARRAY, 4, 8, 4, name="arr")
    assert [m.lookup(u32(i)) for i in range(4)] == [bytes(8)] * 4
    assert list(m.keys()) == [u32(i) for i in range(4)]
    m.update(u32(2), u64(22))
    m.update(u32(3), u64(33), UpdateFlags.EXIST)
    assert m.lookup(u32(2)) == u64(22) and m.lookup(u32(3)) == u64(33)
    assert dict(m.items()) == {u32(0): bytes(8), u32(1): bytes(8), u32(2): u64(22), u32(3): u64(33)}
    with pytest.raises(KeyExistsError) as noexist:  # every slot of an array exists
        m.update(u32(0), u64(1), UpdateFlags.NOEXIST)
    assert noexist.value.errno == errno.EEXIST
    with pytest.raises(MapError) as out_of_range:
        m.update(u32(4), u64(1))
    assert out_of_range.value.errno == errno.E2BIG and out_of_range.value.map_name == "arr"
    with pytest.raises(MapError) as out_of_range_noexist:
        m.update(u32(4), u64(1), UpdateFlags.NOEXIST)
    assert out_of_range_noexist.value.errno == errno.E2BIG
    with pytest.raises(KeyNotFoundError):
        m.lookup(u32(4))
    assert u32(4) not in m
    with pytest.raises(MapError) as delete:
        m.delete(u32(1))
    err = delete.value
    assert err.errno == errno.EINVAL and err.op == "delete" and err.map_name == "arr"
    assert not isinstance(err, KeyError)
    assert m.lookup(u32(2)) == u64(22)


def test_lru_hash_evicts_oldest(maps: Maps) -> None:
    """Inserting beyond max_entries evicts the least recently inserted keys, never fails.

    The kernel's LRU frees nodes in small batches (up to ``max_entries / cpus / 2``, at
    most 128, at once), so the size may drop below ``max_entries`` right after an eviction;
    what both backends guarantee is: the newest key is there, never more than
    ``max_entries`` keys, and the survivors are exactly the newest ones.
    """
    max_entries = 64
    m = maps(MapType.LRU_HASH, 4, 8, max_entries, name="lru")
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:  # one CPU: the kernel's per-CPU LRU free lists stay out of the picture
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(saved)})
    try:
        total = 3 * max_entries
        for i in range(total):
            m.update(u32(i), u64(i))
            assert m.lookup(u32(i)) == u64(i)  # the newest key stays
            assert len(list(m.keys())) <= max_entries
    finally:
        if pinned:
            os.sched_setaffinity(0, saved)
    present = sorted(as_int(k) for k in m)
    assert max_entries // 2 <= len(present) <= max_entries
    assert present == list(range(total - len(present), total))  # the newest survive
    for k in present:
        assert m.lookup(u32(k)) == u64(k)
    # NOEXIST on a present key is still EEXIST, and an update of it does not evict it.
    with pytest.raises(KeyExistsError):
        m.update(u32(total - 1), u64(0), UpdateFlags.NOEXIST)
    m.delete(u32(total - 1))
    with pytest.raises(KeyNotFoundError):
        m.lookup(u32(total - 1))


@pytest.mark.parametrize("map_type", [MapType.QUEUE, MapType.STACK])
def test_queue_and_stack(maps: Maps, map_type: MapType) -> None:
    m = maps(map_type, 0, 8, 4, name="qs")
    lifo = map_type == MapType.STACK
    for empty_op in (m.lookup, m.lookup_and_delete):
        with pytest.raises(KeyNotFoundError) as empty:
            empty_op()
        assert isinstance(empty.value, KeyError) and empty.value.errno == errno.ENOENT
        assert empty.value.map_name == "qs"
    for i in range(1, 5):
        m.update(None, u64(i))
    with pytest.raises(MapError) as full:
        m.update(None, u64(5))
    assert full.value.errno == errno.E2BIG
    assert m.lookup() == (u64(4) if lifo else u64(1))  # peek does not remove
    assert m.lookup() == (u64(4) if lifo else u64(1))
    popped = [m.lookup_and_delete() for _ in range(4)]
    assert popped == ([u64(4), u64(3), u64(2), u64(1)] if lifo else [u64(1), u64(2), u64(3), u64(4)])
    with pytest.raises(KeyNotFoundError):
        m.lookup_and_delete()

    # Full, with EXIST: the oldest element makes room (for both queue and stack).
    for i in range(1, 5):
        m.update(None, u64(i))
    m.update(None, u64(5), UpdateFlags.EXIST)
    popped = [m.lookup_and_delete() for _ in range(4)]
    assert popped == ([u64(5), u64(4), u64(3), u64(2)] if lifo else [u64(2), u64(3), u64(4), u64(5)])

    # What the kernel refuses: NOEXIST, a delete, a key.
    with pytest.raises(MapError) as noexist:
        m.update(None, u64(1), UpdateFlags.NOEXIST)
    assert noexist.value.errno == errno.EINVAL
    with pytest.raises(KeyNotFoundError):
        m.lookup()  # the refused push left nothing behind
    m.update(None, u64(9))
    with pytest.raises(MapError) as delete:
        m.delete(b"")
    assert delete.value.errno == errno.EINVAL and not isinstance(delete.value, KeyError)
    with pytest.raises(MapError) as iterate:
        list(m.keys())
    assert iterate.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        m.update(u32(0), u64(1))
    assert m.lookup_and_delete() == u64(9)


def test_bloom_filter(backend: Backend) -> None:
    rec = RecordingBackend(backend)
    maps = Maps(rec)
    try:
        check_bloom_filter(maps.create(MapSpec(name="bloom", type=MapType.BLOOM_FILTER, key_size=0,
                                               value_size=4, max_entries=100, map_extra=3)), rec)
    finally:
        maps.close()
    assert rec.open_handles() == []


def check_bloom_filter(m: Map, rec: RecordingBackend) -> None:
    present = [u32(i * 7919) for i in range(20)]
    for v in present:
        m.update(None, v)
    for v in present:
        assert v in m  # no false negatives
    absent = [u32(1_000_000 + i) for i in range(200)]
    false_positives = sum(v in m for v in absent)
    assert false_positives < 20  # 512 bits, 3 hashes, 20 values: well under 1% expected
    with pytest.raises(MapError) as exist:  # a bloom filter push takes only ANY
        m.update(None, u32(1), UpdateFlags.EXIST)
    assert exist.value.errno == errno.EINVAL
    with pytest.raises(MapError) as delete:
        m.delete(b"")
    assert delete.value.errno == errno.EOPNOTSUPP
    with pytest.raises(MapError) as iterate:
        list(m.keys())
    assert iterate.value.errno == errno.EINVAL
    before = list(rec.calls)
    with pytest.raises(ValueError):
        m.update(None, b"\0" * 5)  # wrong value size, caught before the backend
    with pytest.raises(ValueError):
        assert b"\0" * 5 in m
    assert rec.calls == before


def test_freeze(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 8, name="frozen")
    m.update(u32(1), u64(1))
    m.freeze()
    calls: list[tuple[str, Callable[[], object]]] = [
        ("update", lambda: m.update(u32(2), u64(2))),
        ("update", lambda: m.update(u32(1), u64(9))),
        ("delete", lambda: m.delete(u32(1))),
        ("batch_update", lambda: m.batch_update([u32(3)], [u64(3)])),
    ]
    for op, call in calls:
        with pytest.raises(MapError) as frozen:
            call()
        err = frozen.value
        assert err.errno == errno.EPERM and err.op == op and err.map_name == "frozen"
        assert not isinstance(err, (KeyError, FileExistsError))
    assert m.lookup(u32(1)) == u64(1)
    assert list(m.keys()) == [u32(1)]
    with pytest.raises(MapError) as again:
        m.freeze()
    # A frozen map is not writable, so freezing it again is refused before "already frozen".
    assert again.value.errno == errno.EPERM and again.value.op == "freeze"


def test_spec_contents_and_freeze(maps: Maps) -> None:
    spec = MapSpec(name="rodata_like", type=MapType.ARRAY, key_size=4, value_size=8, max_entries=2,
                   contents=(MapKV(u32(0), u64(10)), MapKV(u32(1), u64(11))), freeze=True)
    m = maps.create(spec)
    assert dict(m.items()) == {u32(0): u64(10), u32(1): u64(11)}
    with pytest.raises(MapError) as frozen:
        m.update(u32(0), u64(0))
    assert frozen.value.errno == errno.EPERM
    assert m.spec is spec


BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
#: MemoryBackend discrepancy: unknown map_flags bits above the highest MapFlags member are accepted.


BAD_ATTRIBUTES: list[tuple[str, dict[str, Any], int]] = [
    ("hash without a key", dict(type=MapType.HASH, key_size=0, value_size=8, max_entries=4), errno.EINVAL),
    ("hash without a value", dict(type=MapType.HASH, key_size=4, value_size=0, max_entries=4), errno.EINVAL),
    ("hash without entries", dict(type=MapType.HASH, key_size=4, value_size=8, max_entries=0), errno.EINVAL),
    ("hash value too big", dict(type=MapType.HASH, key_size=4, value_size=1 << 30, max_entries=4),
     errno.E2BIG),
    ("array with an 8-byte key", dict(type=MapType.ARRAY, key_size=8, value_size=8, max_entries=4),
     errno.EINVAL),
    ("array not preallocated", dict(type=MapType.ARRAY, key_size=4, value_size=8, max_entries=4, flags=1),
     errno.EINVAL),
    ("queue with a key", dict(type=MapType.QUEUE, key_size=4, value_size=8, max_entries=4), errno.EINVAL),
    ("bloom filter with a key", dict(type=MapType.BLOOM_FILTER, key_size=4, value_size=4, max_entries=4),
     errno.EINVAL),
    ("read-only and write-only", dict(type=MapType.HASH, key_size=4, value_size=8, max_entries=4,
                                      flags=BPF_F_RDONLY | BPF_F_WRONLY), errno.EINVAL),
    ("LRU not preallocated", dict(type=MapType.LRU_HASH, key_size=4, value_size=8, max_entries=4, flags=1),
     524),
    ("unknown flag 1<<19", dict(type=MapType.HASH, key_size=4, value_size=8, max_entries=4, flags=1 << 19),
     errno.EINVAL),
    ("unknown flag 1<<30", dict(type=MapType.ARRAY, key_size=4, value_size=8, max_entries=4, flags=1 << 30),
     errno.EINVAL),
]


@pytest.mark.parametrize(("what", "fields", "expected"),
                         [pytest.param(*case, id=case[0]) for case in BAD_ATTRIBUTES])
def test_create_refuses_bad_attributes(
    backend: Backend, request: pytest.FixtureRequest, what: str, fields: dict[str, Any], expected: int
) -> None:
    rec = RecordingBackend(backend)
    with pytest.raises(MapError) as refused:
        Map.create(MapSpec(name="refused", **fields), rec).close()
    err = refused.value
    assert err.errno == expected and err.op == "create" and err.map_name == "refused"
    assert "refused" in str(err)
    assert rec.open_handles() == []


def test_access_flags(maps: Maps) -> None:
    ro = maps(MapType.HASH, 4, 8, 4, name="ro", flags=BPF_F_RDONLY)
    with pytest.raises(MapError) as write:
        ro.update(u32(1), u64(1))
    assert write.value.errno == errno.EPERM and not isinstance(write.value, KeyError)
    with pytest.raises(KeyNotFoundError):
        ro.lookup(u32(1))
    assert list(ro.keys()) == []
    wo = maps(MapType.HASH, 4, 8, 4, name="wo", flags=BPF_F_WRONLY)
    wo.update(u32(1), u64(1))
    for read in (lambda: wo.lookup(u32(1)), lambda: list(wo.keys())):
        with pytest.raises(MapError) as denied:
            read()
        assert denied.value.errno == errno.EPERM and not isinstance(denied.value, KeyError)
    wo.delete(u32(1))


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.ARRAY])
def test_lookup_and_delete(maps: Maps, map_type: MapType) -> None:
    m = maps(map_type, 4, 4, 8, name="take")
    cpus = maps.backend.possible_cpus()
    value: Any = [u32(cpu + 1) for cpu in range(cpus)] if map_type.has_per_cpu_value else u32(7)
    m.update(u32(1), value)
    if map_type == MapType.ARRAY:
        with pytest.raises(MapError) as unsupported:
            m.lookup_and_delete(u32(1))
        assert unsupported.value.errno == 524 and not isinstance(unsupported.value, KeyError)
        assert m.lookup(u32(1)) == value
        return
    assert m.lookup_and_delete(u32(1)) == value
    assert u32(1) not in m
    with pytest.raises(KeyNotFoundError) as gone:
        m.lookup_and_delete(u32(1))
    assert gone.value.op == "lookup_and_delete"


def test_dict_sugar(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 8, name="sugar")
    m[u32(1)] = u64(10)
    m[bytearray(u32(2))] = u64(20)
    assert m[u32(1)] == u64(10) and m[u32(2)] == u64(20)
    assert u32(1) in m and u32(3) not in m
    assert "not bytes" not in m and 1 not in m
    with pytest.raises(KeyError):
        m[u32(3)]
    del m[u32(1)]
    assert u32(1) not in m
    with pytest.raises(KeyError):
        del m[u32(1)]
    assert set(m) == {u32(2)}


# -- iteration -----------------------------------------------------------------------------------


BPF_F_ZERO_SEED = 1 << 6


@pytest.mark.skipif(sys.byteorder != "little", reason="the orders below were taken on a little-endian kernel")
@pytest.mark.parametrize(("key_size", "order"), [
    # What Linux 6.18 (x86-64) walks for keys 0..23 inserted in order into 32 entries.
    (4, [18, 21, 16, 15, 17, 2, 8, 9, 3, 10, 4, 23, 5, 19, 0, 14, 7, 13, 1, 20, 12, 11, 6, 22]),
    (13, [21, 18, 19, 23, 6, 13, 1, 20, 3, 8, 11, 12, 7, 2, 4, 15, 16, 22, 14, 9, 10, 5, 17, 0]),
])
def test_zero_seed_hash_order_is_the_kernels(maps: Maps, key_size: int, order: list[int]) -> None:
    """With BPF_F_ZERO_SEED a hash map's buckets (jhash, seed 0) and so its walk order are fixed."""
    m = maps(MapType.HASH, key_size, 8, 32, name="zero_seed", flags=BPF_F_ZERO_SEED)
    for i in range(24):
        m[i.to_bytes(key_size, "little")] = u64(i)
    walked = [int.from_bytes(k, "little") for k in m.keys()]  # noqa: SIM118 - keys() itself is under test
    assert walked == order
    batched = [int.from_bytes(k, "little") for keys, _ in m.iter_batches(count=5) for k in keys]
    assert batched == order


def test_keys_values_items(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 256, name="iter")
    assert list(m.keys()) == [] and list(m.items()) == [] and list(m.values()) == []
    expected = {u32(i): u64(i * 3) for i in range(200)}
    for k, v in expected.items():
        m[k] = v
    keys = list(m.keys())
    assert len(keys) == len(set(keys)) == 200 and set(keys) == set(expected)
    assert dict(m.items()) == expected
    assert sorted(m.values()) == sorted(expected.values())
    assert sorted(iter(m)) == sorted(expected)


def test_delete_current_key_while_iterating(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 512, name="drain")
    keys = {u32(i) for i in range(300)}
    for k in keys:
        m[k] = k + k
    seen = []
    for k in m.keys():  # noqa: SIM118 - keys() itself is under test
        seen.append(k)
        m.delete(k)
        assert len(seen) <= len(keys)
    assert len(seen) == len(set(seen)) and set(seen) == keys
    assert list(m.keys()) == []


def test_delete_some_keys_while_iterating(maps: Maps) -> None:
    # Deleting every other key (the one just yielded) must not cut the walk short.
    m = maps(MapType.HASH, 4, 8, 512, name="thin")
    keys = {u32(i) for i in range(300)}
    for k in keys:
        m[k] = k + k
    seen = []
    for i, (k, v) in enumerate(m.items()):
        assert v == k + k
        seen.append(k)
        if i % 2 == 0:
            del m[k]
    assert len(seen) == len(set(seen)) and set(seen) == keys
    assert len(list(m.keys())) == 150


def test_iteration_survives_concurrent_changes(maps: Maps) -> None:
    """Another thread inserts and deletes keys while this one iterates.

    The walk ends, yields no key twice, and sees every key that was there all along.
    """
    m = maps(MapType.HASH, 4, 8, 1024, name="churn")
    stable = {u32(i) for i in range(200)}
    for k in stable:
        m[k] = u64(1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        try:
            while not stop.is_set():
                k = u32(10_000 + i % 300)
                try:
                    if i % 3 == 2:
                        m.delete(k)
                    else:
                        m.update(k, u64(2))
                except KeyNotFoundError:
                    pass
                i += 1
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=churn)
    t.start()
    try:
        deadline = time.monotonic() + 1.0
        rounds = 0
        while time.monotonic() < deadline or rounds < 3:
            seen = [k for k, _ in m.items()]
            assert len(seen) == len(set(seen))
            assert stable <= set(seen)
            assert len(seen) <= m.max_entries
            rounds += 1
    finally:
        stop.set()
        t.join(30)
    assert not t.is_alive() and not errors


# -- lifetime ------------------------------------------------------------------------------------


def test_close_is_idempotent_and_final(backend: Backend) -> None:
    m = Map.create(MapSpec(name="closing", type=MapType.HASH, key_size=4, value_size=8, max_entries=4),
                   backend)
    m[u32(1)] = u64(1)
    assert not m.closed
    m.close()
    m.close()
    assert m.closed
    assert "closed" in repr(m)
    for call in (lambda: m.lookup(u32(1)), lambda: m.update(u32(1), u64(1)), lambda: m.delete(u32(1)),
                 lambda: list(m.keys()), m.fileno, m.info, m.freeze):
        with pytest.raises(MapClosedError) as closed:
            call()
        assert closed.value.errno == errno.EBADF and closed.value.map_name == "closing"
        assert isinstance(closed.value, MapError)


def test_context_manager_closes(backend: Backend) -> None:
    rec = RecordingBackend(backend)
    with Map.create(MapSpec(name="ctx", type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1),
                    rec) as m:
        assert m.lookup(u32(0)) == bytes(4)
        assert rec.open_handles() == [m.fileno()]
    assert m.closed
    assert rec.open_handles() == []


def test_unclosed_map_warns_and_is_closed(backend: Backend) -> None:
    rec = RecordingBackend(backend)
    m = Map.create(MapSpec(name="leaky", type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1), rec)
    assert len(rec.open_handles()) == 1
    with pytest.warns(ResourceWarning, match="leaky"):
        del m
        gc.collect()
    assert rec.open_handles() == []


def test_errors_pickle(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 4, name="pickled")
    errs: list[MapError] = []
    for call in (lambda: m.lookup(u32(1)), lambda: m.update(u32(1), u64(1), UpdateFlags.EXIST)):
        with pytest.raises(KeyNotFoundError) as absent:
            call()
        errs.append(absent.value)
    m[u32(1)] = u64(1)
    with pytest.raises(KeyExistsError) as exists:
        m.update(u32(1), u64(1), UpdateFlags.NOEXIST)
    errs.append(exists.value)
    m.close()
    with pytest.raises(MapClosedError) as closed:
        m.lookup(u32(1))
    errs.append(closed.value)
    for err in errs:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert (copy.errno, copy.op, copy.map_name) == (err.errno, err.op, err.map_name)


def test_from_id_from_fd_and_clone(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 8, name="origin")
    m[u32(1)] = u64(1)
    info = m.info()
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (MapType.HASH, 4, 8, 8)
    assert info.name == "origin" and info.id > 0
    same = maps.adopt(Map.from_id(info.id, maps.backend))
    assert same.info().id == info.id and same.name == "origin" and same.type == MapType.HASH
    assert same[u32(1)] == u64(1)
    same[u32(2)] = u64(2)
    assert m[u32(2)] == u64(2)
    clone = maps.adopt(m.clone())
    assert clone.fileno() != m.fileno() and clone.info().id == info.id
    clone.close()
    assert m[u32(1)] == u64(1)
    with pytest.raises(MapError) as no_such_id:
        Map.from_id(0x7FFF_FFF0, maps.backend)
    assert no_such_id.value.errno == errno.ENOENT


def test_long_names_are_truncated(maps: Maps) -> None:
    m = maps(MapType.HASH, name="a_rather_long_map_name-with-dashes")
    assert m.name == "a_rather_long_map_name-with-dashes"
    assert m.info().name == map_attrs_name(m.name) == "a_rather_long_m"


@pytest.mark.kernel
def test_fd_count_returns_to_baseline() -> None:
    backend = kernel_backend()
    specs = [
        MapSpec(name="fd_hash", type=MapType.HASH, key_size=4, value_size=8, max_entries=8),
        MapSpec(name="fd_pcpu", type=MapType.PERCPU_ARRAY, key_size=4, value_size=4, max_entries=8),
        MapSpec(name="fd_outer", type=MapType.ARRAY_OF_MAPS, key_size=4, value_size=4, max_entries=2,
                        inner_map=MapSpec(name="fd_inner", type=MapType.ARRAY, key_size=4, value_size=4,
                                  max_entries=1)),
    ]
    baseline = proc_fd_count()
    for _ in range(20):
        made = [Map.create(spec, backend) for spec in specs]
        assert proc_fd_count() == baseline + len(made)  # no template, no stray handle
        made.append(made[0].clone())
        made.append(Map.from_id(made[1].info().id, backend))
        assert proc_fd_count() == baseline + len(made)
        for m in made:
            m.close()
        assert proc_fd_count() == baseline
    with pytest.raises(MapError):
        Map.create(MapSpec(name="fd_bad", type=MapType.HASH, key_size=0, value_size=8, max_entries=8),
                   backend)
    assert proc_fd_count() == baseline


# -- pinning -------------------------------------------------------------------------------------------


@pytest.fixture
def pin_dir(backend: Backend) -> Iterator[str]:
    """A directory to pin in: a private bpffs mount for the kernel, a plain path for the model."""
    path = tempfile.mkdtemp(prefix="ebpfspec-bpffs-")
    mounted = False
    try:
        if backend.name == "kernel":
            done = subprocess.run(["mount", "-t", "bpf", "bpf", path], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
            mounted = True
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", path], check=True)
        shutil.rmtree(path, ignore_errors=True)


def test_pin_load_pinned_unpin(maps: Maps, pin_dir: str) -> None:
    kernel = maps.backend.name == "kernel"
    m = maps(MapType.HASH, 4, 8, 8, name="pinned")
    m[u32(1)] = u64(1)
    path = os.path.join(pin_dir, "pinned")
    m.pin(path)
    assert m.pinned_path == path
    if kernel:
        assert os.path.exists(path)
    with pytest.raises(MapError) as twice:
        m.pin(path)
    assert twice.value.errno == errno.EEXIST and not isinstance(twice.value, KeyExistsError)

    again = maps.adopt(Map.load_pinned(path, maps.backend))
    assert again.info().id == m.info().id
    assert again.pinned_path == path and again.name == "pinned" and again.type == MapType.HASH
    assert again[u32(1)] == u64(1)
    again[u32(2)] = u64(2)
    assert m[u32(2)] == u64(2)

    m.close()  # the pin keeps the map alive
    assert again[u32(2)] == u64(2)
    again.unpin()
    assert again.pinned_path is None
    if kernel:
        assert not os.path.exists(path)
    again.unpin()  # no-op
    with pytest.raises(MapError) as gone:
        Map.load_pinned(path, maps.backend)
    assert gone.value.errno == errno.ENOENT
    with pytest.raises(ValueError):
        again.pin("")




def test_pin_needs_an_existing_directory(maps: Maps, pin_dir: str, request: pytest.FixtureRequest) -> None:
    m = maps(MapType.ARRAY, 4, 4, 1, name="homeless")
    with pytest.raises(MapError) as refused:
        m.pin(os.path.join(pin_dir, "no_such_dir", "homeless"))
    assert refused.value.errno == errno.ENOENT and refused.value.op == "pin"
    assert refused.value.map_name == "homeless" and m.pinned_path is None


# -- bpftool as a witness ------------------------------------------------------------------------------


def bpftool(*args: str) -> Any:
    exe = shutil.which("bpftool")
    if exe is None:
        pytest.skip("bpftool is not installed")
    done = subprocess.run([exe, *args, "-j"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def hex_bytes(items: list[str]) -> bytes:
    return bytes(int(x, 16) for x in items)


@pytest.mark.kernel
@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH])
def test_bpftool_sees_what_map_wrote(kernel_maps: Maps, map_type: MapType) -> None:
    maps = kernel_maps
    m = maps(map_type, 4, 12, 16, name="witness", flags=0 if map_type == MapType.ARRAY else 1)
    cpus = maps.backend.possible_cpus()
    expected: dict[bytes, Any] = {}
    for i in range(10):
        if map_type.has_per_cpu_value:
            value: Any = [bytes([i, cpu]) * 6 for cpu in range(cpus)]
        else:
            value = bytes([i]) * 12
        m[u32(i)] = value
        expected[u32(i)] = value
    if map_type == MapType.ARRAY:
        expected.update({u32(i): bytes(12) for i in range(10, 16)})
    info = m.info()
    show = bpftool("map", "show", "id", str(info.id))
    assert show["id"] == info.id
    assert show["type"] == {MapType.HASH: "hash", MapType.ARRAY: "array", MapType.PERCPU_HASH: "percpu_hash"}[
        map_type]
    assert (show["bytes_key"], show["bytes_value"], show["max_entries"]) == (4, 12, 16)
    assert show["flags"] == m.flags == info.map_flags
    assert show["name"] == "witness"

    dumped: dict[bytes, Any] = {}
    for entry in bpftool("map", "dump", "id", str(info.id)):
        key = hex_bytes(entry["key"])
        if map_type.has_per_cpu_value:
            per_cpu = sorted(entry["values"], key=lambda v: v["cpu"])
            dumped[key] = [hex_bytes(v["value"]) for v in per_cpu]
        else:
            dumped[key] = hex_bytes(entry["value"])
    assert dumped == expected
    assert dict(m.items()) == expected
