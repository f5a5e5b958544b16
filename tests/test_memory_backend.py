"""Tests of :class:`loader.memory.MemoryBackend`, the in-process model of the kernel's maps.

Most behaviour tests take the ``backend`` fixture and run twice: on the model and on the
real kernel (``KernelBackend``, Linux 6.18), asserting the same literal results and
errnos on both — so every expectation here is the kernel's, not just the model's.
:class:`TestModelMatchesKernel` goes further and replays random operation sequences on
both at once, comparing every answer. Tests of what only the model has (handle numbers,
object lifetimes, pins, size checks, threads) take ``mem`` (4 possible CPUs).

The kernel cases need root and a usable ``bpf(2)``; they skip otherwise (and fail under
``EBPFSPEC_REQUIRE_KERNEL=1``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import random
import resource
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import btf
from ebpfspec.enums import MapFlags, MapType, UpdateFlags
from loader.backend import Backend, BatchResult, MapAttrs
from loader.memory import MemoryBackend
from loader.memory.jhash import htab_hash, jhash
from loader.memory.objects import ENOTSUPP

U32 = struct.Struct("=I")
PAGE = resource.getpagesize()
KMALLOC_MAX_SIZE = PAGE << 10

ANY, NOEXIST, EXIST, LOCK = (int(f) for f in (UpdateFlags.ANY, UpdateFlags.NOEXIST, UpdateFlags.EXIST,
                                               UpdateFlags.LOCK))
HASH, ARRAY, PROG_ARRAY = MapType.HASH, MapType.ARRAY, MapType.PROG_ARRAY
PERF_EVENT_ARRAY, PERCPU_HASH = MapType.PERF_EVENT_ARRAY, MapType.PERCPU_HASH
PERCPU_ARRAY = MapType.PERCPU_ARRAY
LRU_HASH, LRU_PERCPU_HASH = MapType.LRU_HASH, MapType.LRU_PERCPU_HASH
ARRAY_OF_MAPS, HASH_OF_MAPS = MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS
QUEUE, STACK, RINGBUF, BLOOM_FILTER = MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.BLOOM_FILTER


def u32(i: int) -> bytes:
    """A native-endian u32 (array keys, fds, ids)."""
    return U32.pack(i)


def unu32(raw: bytes) -> int:
    """The inverse of :func:`u32`."""
    value: int = U32.unpack(raw)[0]
    return value


def eno(fn: Callable[..., object], *args: Any, **kwargs: Any) -> int | None:
    """The errno ``fn(*args, **kwargs)`` fails with, or None if it succeeds."""
    try:
        fn(*args, **kwargs)
    except OSError as err:
        return err.errno
    return None


def round8(n: int) -> int:
    return (n + 7) & ~7


class Session:
    """A backend and the handles a test opened on it; :meth:`close_all` closes what is left."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.fds: list[int] = []

    @property
    def cpus(self) -> int:
        return self.b.possible_cpus()

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def create(self, map_type: int, key_size: int, value_size: int, max_entries: int, **kw: Any) -> int:
        """A new map (closed at teardown)."""
        return self.keep(self.b.map_create(MapAttrs(int(map_type), key_size, value_size, max_entries, **kw)))

    def create_errno(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                     **kw: Any) -> int | None:
        """The errno creating the map fails with, or None (the map is then kept)."""
        try:
            self.create(map_type, key_size, value_size, max_entries, **kw)
        except OSError as err:
            return err.errno
        return None

    def peek(self, fd: int, value_size: int, value: bytes | None = None) -> bytes:
        """A bloom filter lookup of ``value``: both backends take the value to test as ``value=``."""
        return self.b.map_lookup(fd, b"", value_size, value=value)

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self.b.close(fd)

    def keys(self, fd: int, key_size: int = 4) -> list[bytes]:
        """Every key, walking with get_next_key from None."""
        out: list[bytes] = []
        key: bytes | None = None
        while True:
            try:
                key = self.b.map_get_next_key(fd, key, key_size)
            except FileNotFoundError:
                return out
            out.append(key)
            assert len(out) <= 1 << 16

    def ints(self, fd: int) -> list[int]:
        """Every u32 key, in walk order."""
        return [unu32(k) for k in self.keys(fd)]

    def btf(self, *types: btf.Type) -> int:
        """A loaded BTF blob of ``types``."""
        return self.keep(self.b.btf_load(btf.marshal_types(list(types))))

    def close_all(self) -> None:
        while self.fds:
            fd = self.fds.pop()
            with contextlib.suppress(OSError):
                self.b.close(fd)


def _record_errno(out: list[int | None], fn: Callable[..., object], *args: Any) -> None:
    """Append the errno of ``fn(*args)`` (None for success) to ``out`` (a thread target)."""
    out.append(eno(fn, *args))


@functools.cache
def kernel_unavailable() -> str:
    """Why the kernel cases cannot run ("" if they can)."""
    try:
        from loader.kernel import KernelBackend
    except ImportError as err:
        return f"loader.kernel.KernelBackend cannot be imported: {err}"
    if os.geteuid() != 0:
        return "the kernel cases need root"
    try:
        kb = KernelBackend()
        kb.close(kb.map_create(MapAttrs(int(ARRAY), 4, 4, 1)))
    except Exception as err:
        return f"bpf(2) is not usable here: {err}"
    return ""


def kernel_backend() -> Backend:
    reason = kernel_unavailable()
    if reason:
        pytest.skip(reason)
    from loader.kernel import KernelBackend

    return KernelBackend()


@pytest.fixture
def mem() -> Iterator[Session]:
    """The model with 4 possible CPUs."""
    s = Session(MemoryBackend(possible_cpus=4))
    yield s
    s.close_all()


@pytest.fixture(params=["memory", pytest.param("kernel", marks=pytest.mark.kernel)])
def backend(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The model (with this machine's possible CPUs) and the kernel: the same tests on both."""
    b: Backend = MemoryBackend() if request.param == "memory" else kernel_backend()
    s = Session(b)
    yield s
    s.close_all()


@pytest.fixture
def one_cpu() -> Iterator[None]:
    """Run on one CPU: the kernel's LRU lists are per CPU, the model is one CPU's view."""
    if not hasattr(os, "sched_setaffinity"):  # the model needs no pinning
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# ===================================================================================== creation

_CREATE_CASES: list[tuple[str, tuple[int, int, int, int], dict[str, Any], int | None]] = [
    ("hash", (HASH, 4, 8, 16), {}, None),
    ("hash key 0", (HASH, 0, 8, 16), {}, errno.EINVAL),
    ("hash value 0", (HASH, 4, 0, 16), {}, errno.EINVAL),
    ("hash max_entries 0", (HASH, 4, 8, 0), {}, errno.EINVAL),
    ("hash key beyond MAX_BPF_STACK is fine", (HASH, 513, 4, 4), {}, None),
    ("hash key+value at kmalloc limit", (HASH, 4, KMALLOC_MAX_SIZE - 48 - 4, 1), {}, errno.E2BIG),
    ("hash key+value just under kmalloc limit", (HASH, 4, KMALLOC_MAX_SIZE - 48 - 5, 1), {}, None),
    ("hash max_entries above 2^31", (HASH, 4, 4, (1 << 31) + 1), {}, errno.E2BIG),
    ("hash too many buckets", (HASH, 4, 4, (1 << 27) + 1), {"map_flags": MapFlags.NO_PREALLOC}, errno.E2BIG),
    ("hash NO_PREALLOC", (HASH, 4, 4, 4), {"map_flags": MapFlags.NO_PREALLOC}, None),
    ("hash ZERO_SEED", (HASH, 4, 4, 4), {"map_flags": MapFlags.ZERO_SEED}, None),
    ("hash NO_COMMON_LRU", (HASH, 4, 4, 4), {"map_flags": MapFlags.NO_COMMON_LRU}, errno.EINVAL),
    ("hash MMAPABLE", (HASH, 4, 4, 4), {"map_flags": MapFlags.MMAPABLE}, errno.EINVAL),
    ("hash INNER_MAP", (HASH, 4, 4, 4), {"map_flags": MapFlags.INNER_MAP}, errno.EINVAL),
    ("hash LINK flag", (HASH, 4, 4, 4), {"map_flags": MapFlags.LINK}, errno.EINVAL),
    ("hash TOKEN_FD without token", (HASH, 4, 4, 4), {"map_flags": MapFlags.TOKEN_FD}, errno.EINVAL),
    ("RDONLY|WRONLY", (HASH, 4, 4, 4), {"map_flags": MapFlags.RDONLY | MapFlags.WRONLY}, errno.EINVAL),
    ("RDONLY_PROG|WRONLY_PROG", (HASH, 4, 4, 4), {"map_flags": MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG},
     errno.EINVAL),
    ("hash numa node 0", (HASH, 4, 4, 4), {"map_flags": MapFlags.NUMA_NODE, "numa_node": 0}, None),
    ("hash numa node offline", (HASH, 4, 4, 4), {"map_flags": MapFlags.NUMA_NODE, "numa_node": 4000},
     errno.EINVAL),
    ("numa_node ignored without the flag", (HASH, 4, 4, 4), {"numa_node": 4000}, None),
    ("percpu hash with numa", (PERCPU_HASH, 4, 4, 4), {"map_flags": MapFlags.NUMA_NODE}, errno.EINVAL),
    ("map_extra on a hash", (HASH, 4, 4, 4), {"map_extra": 1}, errno.EINVAL),
    ("BTF key without value", (HASH, 4, 4, 4), {"btf_key_type_id": 1}, errno.EINVAL),
    ("vmlinux BTF on a hash", (HASH, 4, 4, 4), {"btf_vmlinux_value_type_id": 1}, errno.EINVAL),
    ("name with '-'", (HASH, 4, 4, 4), {"name": "a-b"}, errno.EINVAL),
    ("name ok", (HASH, 4, 4, 4), {"name": "ok.name_1"}, None),
    ("unknown map type", (34, 4, 4, 4), {}, errno.EINVAL),
    ("map type 0", (0, 4, 4, 4), {}, errno.EINVAL),
    ("percpu hash slot 32 KiB", (PERCPU_HASH, 4, 32768, 1), {}, None),
    ("percpu hash slot above 32 KiB", (PERCPU_HASH, 4, 32769, 1), {}, errno.E2BIG),
    ("lru percpu slot above 32 KiB", (LRU_PERCPU_HASH, 4, 32769, 1), {}, errno.E2BIG),
    ("lru NO_PREALLOC", (LRU_HASH, 4, 4, 4), {"map_flags": MapFlags.NO_PREALLOC}, ENOTSUPP),
    ("lru NO_COMMON_LRU", (LRU_HASH, 4, 4, 4), {"map_flags": MapFlags.NO_COMMON_LRU}, None),
    ("lru NO_COMMON_LRU numa", (LRU_HASH, 4, 4, 4),
     {"map_flags": MapFlags.NO_COMMON_LRU | MapFlags.NUMA_NODE}, errno.EINVAL),
    ("array", (ARRAY, 4, 4, 4), {}, None),
    ("array key 8", (ARRAY, 8, 4, 4), {}, errno.EINVAL),
    ("array value 0", (ARRAY, 4, 0, 4), {}, errno.EINVAL),
    ("array max_entries 0", (ARRAY, 4, 4, 0), {}, errno.EINVAL),
    ("array NO_PREALLOC", (ARRAY, 4, 4, 4), {"map_flags": MapFlags.NO_PREALLOC}, errno.EINVAL),
    ("array ZERO_SEED", (ARRAY, 4, 4, 4), {"map_flags": MapFlags.ZERO_SEED}, errno.EINVAL),
    ("array MMAPABLE", (ARRAY, 4, 4, 4), {"map_flags": MapFlags.MMAPABLE}, None),
    ("array INNER_MAP", (ARRAY, 4, 4, 4), {"map_flags": MapFlags.INNER_MAP}, None),
    ("array PRESERVE_ELEMS", (ARRAY, 4, 4, 4), {"map_flags": MapFlags.PRESERVE_ELEMS}, errno.EINVAL),
    ("array value above INT_MAX", (ARRAY, 4, 1 << 31, 1), {}, errno.E2BIG),
    ("percpu array MMAPABLE", (PERCPU_ARRAY, 4, 4, 4), {"map_flags": MapFlags.MMAPABLE}, errno.EINVAL),
    ("percpu array INNER_MAP", (PERCPU_ARRAY, 4, 4, 4), {"map_flags": MapFlags.INNER_MAP}, errno.EINVAL),
    ("percpu array numa", (PERCPU_ARRAY, 4, 4, 4), {"map_flags": MapFlags.NUMA_NODE}, errno.EINVAL),
    ("percpu array slot above 32 KiB", (PERCPU_ARRAY, 4, 32769, 1), {}, errno.E2BIG),
    ("perf event array max_entries 0", (PERF_EVENT_ARRAY, 4, 4, 0), {}, errno.EINVAL),
    ("perf event array value 8", (PERF_EVENT_ARRAY, 4, 8, 4), {}, errno.EINVAL),
    ("perf event array PRESERVE_ELEMS", (PERF_EVENT_ARRAY, 4, 4, 4), {"map_flags": MapFlags.PRESERVE_ELEMS},
     None),
    ("prog array", (PROG_ARRAY, 4, 4, 4), {}, None),
    ("prog array RDONLY_PROG", (PROG_ARRAY, 4, 4, 4), {"map_flags": MapFlags.RDONLY_PROG}, errno.EINVAL),
    ("queue", (QUEUE, 0, 4, 4), {}, None),
    ("queue key 4", (QUEUE, 4, 4, 4), {}, errno.EINVAL),
    ("queue value 0", (QUEUE, 0, 0, 4), {}, errno.EINVAL),
    ("queue max_entries 0", (QUEUE, 0, 4, 0), {}, errno.EINVAL),
    ("queue NO_PREALLOC", (QUEUE, 0, 4, 4), {"map_flags": MapFlags.NO_PREALLOC}, errno.EINVAL),
    ("stack value above kmalloc", (STACK, 0, KMALLOC_MAX_SIZE + 1, 1), {}, errno.E2BIG),
    ("bloom", (BLOOM_FILTER, 0, 4, 4), {}, None),
    ("bloom key 4", (BLOOM_FILTER, 4, 4, 4), {}, errno.EINVAL),
    ("bloom 15 hashes", (BLOOM_FILTER, 0, 4, 4), {"map_extra": 15}, None),
    ("bloom map_extra 16", (BLOOM_FILTER, 0, 4, 4), {"map_extra": 16}, errno.EINVAL),
    ("bloom ZERO_SEED", (BLOOM_FILTER, 0, 4, 4), {"map_flags": MapFlags.ZERO_SEED}, None),
    ("bloom value above kmalloc", (BLOOM_FILTER, 4, KMALLOC_MAX_SIZE + 1, 1), {}, errno.E2BIG),
    ("ringbuf", (RINGBUF, 0, 0, PAGE), {}, None),
    ("ringbuf 4 pages", (RINGBUF, 0, 0, 4 * PAGE), {}, None),
    ("ringbuf 3 pages", (RINGBUF, 0, 0, 3 * PAGE), {}, errno.EINVAL),
    ("ringbuf half a page", (RINGBUF, 0, 0, PAGE // 2), {}, errno.EINVAL),
    ("ringbuf key", (RINGBUF, 4, 0, PAGE), {}, errno.EINVAL),
    ("ringbuf value", (RINGBUF, 0, 4, PAGE), {}, errno.EINVAL),
    ("ringbuf RDONLY", (RINGBUF, 0, 0, PAGE), {"map_flags": MapFlags.RDONLY}, errno.EINVAL),
    ("offload of a queue", (QUEUE, 0, 4, 4), {"map_ifindex": 1}, errno.EINVAL),
    ("hash undefined flag bit 19", (HASH, 4, 4, 4), {"map_flags": 1 << 19}, errno.EINVAL),
    ("array undefined flag bit 30", (ARRAY, 4, 4, 4), {"map_flags": 1 << 30}, errno.EINVAL),
    ("queue flag bit 31", (QUEUE, 0, 4, 4), {"map_flags": 1 << 31}, errno.EINVAL),
    ("bloom flag bit 25", (BLOOM_FILTER, 0, 4, 4), {"map_flags": 1 << 25}, errno.EINVAL),
    ("ringbuf flag bit 20", (RINGBUF, 0, 0, PAGE), {"map_flags": 1 << 20}, errno.EINVAL),
    ("percpu hash flag bit 29", (PERCPU_HASH, 4, 4, 4), {"map_flags": 1 << 29}, errno.EINVAL),
]


class TestCreate:
    """``BPF_MAP_CREATE`` validation, errno for errno."""

    @pytest.mark.parametrize(("attrs", "kwargs", "expected"),
                             [pytest.param(a, kw, e, id=name) for name, a, kw, e in _CREATE_CASES])
    def test_create(self, backend: Session, attrs: tuple[int, int, int, int], kwargs: dict[str, Any],
                    expected: int | None) -> None:
        assert backend.create_errno(*attrs, **kwargs) == expected

    def test_info(self, backend: Session) -> None:
        fd = backend.create(HASH, 4, 8, 16, name="counts", map_flags=MapFlags.NO_PREALLOC | MapFlags.RDONLY)
        info = backend.b.map_info(fd)
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (HASH, 4, 8, 16)
        assert info.name == "counts"
        assert info.map_flags == MapFlags.NO_PREALLOC  # RDONLY/WRONLY belong to the fd, not the map
        assert type(info.map_flags) is int
        assert info.id > 0 and info.btf_id == 0

    def test_info_lru_rounds_per_cpu(self, backend: Session) -> None:
        cpus = backend.cpus
        fd = backend.create(LRU_HASH, 4, 4, cpus + 1, map_flags=MapFlags.NO_COMMON_LRU)
        assert backend.b.map_info(fd).max_entries == 2 * cpus

    def test_map_in_map_value_size(self, backend: Session) -> None:
        inner = backend.create(ARRAY, 4, 4, 4)
        assert backend.create_errno(ARRAY_OF_MAPS, 4, 8, 4, inner_map_fd=inner) == errno.EINVAL
        assert backend.create_errno(HASH_OF_MAPS, 4, 8, 4, inner_map_fd=inner) == errno.EINVAL
        assert backend.create_errno(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=inner) is None

    def test_inner_map_fd_checked(self, backend: Session) -> None:
        assert backend.create_errno(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=999_999) == errno.EBADF
        outer = backend.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=backend.create(ARRAY, 4, 4, 4))
        assert backend.create_errno(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=outer) == errno.EINVAL  # no nesting
        bt = backend.btf(btf.Int(1, "u32", 4))
        assert backend.create_errno(HASH_OF_MAPS, 4, 4, 4, inner_map_fd=bt) == errno.EINVAL

    @pytest.mark.parametrize(("inner", "expected"), [
        ((PROG_ARRAY, 4, 4, 4), ENOTSUPP),
        ((RINGBUF, 0, 0, PAGE), None),
        ((QUEUE, 0, 4, 4), None),
        ((BLOOM_FILTER, 0, 4, 4), None),
        ((PERF_EVENT_ARRAY, 4, 4, 4), None),
        ((LRU_HASH, 4, 4, 4), None),
        ((PERCPU_ARRAY, 4, 4, 4), None),
    ])
    def test_inner_map_types(self, backend: Session, inner: tuple[int, int, int, int],
                             expected: int | None) -> None:
        fd = backend.create(*inner)
        assert backend.create_errno(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=fd) == expected
        assert backend.create_errno(HASH_OF_MAPS, 4, 4, 4, inner_map_fd=fd) == expected


class TestMemoryCreate:
    """Creation details only the model has."""

    def test_unmodelled_kernel_type(self, mem: Session) -> None:
        assert mem.create_errno(MapType.LPM_TRIE, 8, 4, 4, map_flags=MapFlags.NO_PREALLOC) == errno.EOPNOTSUPP

    def test_missing_inner_map_fd(self, mem: Session) -> None:
        assert mem.create_errno(ARRAY_OF_MAPS, 4, 4, 4) == errno.EINVAL

    def test_offload_of_a_hash(self, mem: Session) -> None:
        assert mem.create_errno(HASH, 4, 4, 4, map_ifindex=1) == errno.EOPNOTSUPP

    @pytest.mark.parametrize("name", ["a" * 16, "a\0b"])
    def test_unpassable_names(self, mem: Session, name: str) -> None:
        with pytest.raises(ValueError):
            mem.create(HASH, 4, 4, 4, name=name)

    def test_possible_cpus(self) -> None:
        assert MemoryBackend(possible_cpus=3).possible_cpus() == 3
        assert MemoryBackend().possible_cpus() >= 1
        with pytest.raises(ValueError):
            MemoryBackend(possible_cpus=0)


# ============================================================================= handles and ids


class TestHandles:
    def test_handles_are_private_numbers(self, mem: Session) -> None:
        fd = mem.create(HASH, 4, 4, 4)
        assert fd >= MemoryBackend.FIRST_HANDLE
        assert mem.b.map_info(fd).id == 1  # ids count from 1 in every backend

    def test_close(self, mem: Session) -> None:
        fd = mem.b.map_create(MapAttrs(int(HASH), 4, 4, 4))
        mem.b.close(fd)
        assert eno(mem.b.close, fd) == errno.EBADF
        assert eno(mem.b.close, 12345) == errno.EBADF
        assert eno(mem.b.map_lookup, fd, u32(1), 4) == errno.EBADF
        assert eno(mem.b.map_info, fd) == errno.EBADFD

    def test_dup(self, mem: Session) -> None:
        fd = mem.create(HASH, 4, 4, 4)
        fd2 = mem.keep(mem.b.dup(fd))
        assert fd2 != fd
        mem.b.map_update(fd, u32(1), b"abcd")
        assert mem.b.map_lookup(fd2, u32(1), 4) == b"abcd"
        map_id = mem.b.map_info(fd).id
        mem.close(fd)
        assert mem.b.map_lookup(fd2, u32(1), 4) == b"abcd"
        assert mem.b.map_info(fd2).id == map_id
        mem.close(fd2)
        assert eno(mem.b.map_fd_by_id, map_id) == errno.ENOENT
        assert eno(mem.b.dup, fd2) == errno.EBADF

    def test_fd_by_id(self, mem: Session) -> None:
        fd = mem.create(ARRAY, 4, 4, 2)
        map_id = mem.b.map_info(fd).id
        fd2 = mem.keep(mem.b.map_fd_by_id(map_id))
        mem.b.map_update(fd2, u32(1), b"wxyz")
        assert mem.b.map_lookup(fd, u32(1), 4) == b"wxyz"
        assert eno(mem.b.map_fd_by_id, 0) == errno.ENOENT
        assert eno(mem.b.map_fd_by_id, map_id + 100) == errno.ENOENT

    def test_btf_handle_is_not_a_map(self, mem: Session) -> None:
        bt = mem.btf(btf.Int(1, "u32", 4))
        assert eno(mem.b.map_lookup, bt, u32(0), 4) == errno.EINVAL
        assert eno(mem.b.map_info, bt) == errno.EINVAL
        assert eno(mem.b.map_freeze, bt) == errno.EINVAL
        assert eno(mem.b.map_update_batch, bt, u32(0), u32(0), 1) == errno.EINVAL
        assert eno(mem.b.obj_pin, bt, "/x/btf") == errno.EINVAL

    def test_accounting(self) -> None:
        b = MemoryBackend(possible_cpus=2)
        fd = b.map_create(MapAttrs(int(HASH), 4, 4, 4))
        fd2 = b.dup(fd)
        assert (b.open_handles(), b.live_objects()) == (2, 1)
        b.close(fd)
        b.close(fd2)
        assert (b.open_handles(), b.live_objects()) == (0, 0)

    def test_errors_are_oserror_subclasses(self, mem: Session) -> None:
        fd = mem.create(HASH, 4, 4, 4)
        with pytest.raises(FileNotFoundError):
            mem.b.map_lookup(fd, u32(1), 4)
        mem.b.map_update(fd, u32(1), b"abcd")
        with pytest.raises(FileExistsError):
            mem.b.map_update(fd, u32(1), b"abcd", NOEXIST)
        with pytest.raises(OSError, match="ENOTSUPP") as info:
            mem.b.map_lookup_and_delete(mem.create(ARRAY, 4, 4, 1), u32(0), 4)
        assert info.value.errno == ENOTSUPP

    def test_wrong_sizes_raise_value_error(self, mem: Session) -> None:
        fd = mem.create(PERCPU_HASH, 4, 4, 4)
        with pytest.raises(ValueError):
            mem.b.map_update(fd, u32(1), b"abcd")  # one CPU's value; 4 CPUs of 8 bytes are needed
        with pytest.raises(ValueError):
            mem.b.map_lookup(fd, b"abc", 32)
        with pytest.raises(ValueError):
            mem.b.map_lookup(fd, u32(1), 4)
        with pytest.raises(ValueError):
            mem.b.map_get_next_key(fd, None, 8)
        with pytest.raises(ValueError):
            mem.b.map_lookup_batch(fd, None, 4, 4, 4, 8)
        with pytest.raises(ValueError):
            mem.b.map_lookup_batch(fd, None, 4, 4, 32, 0)
        with pytest.raises(ValueError):
            mem.b.map_update_batch(fd, u32(1) * 2, bytes(32), 2)


class TestObjectLifetime:
    """An object lives while a handle, a pin or a map-in-map slot refers to it."""

    def test_inner_map_lives_in_its_slot(self, mem: Session) -> None:
        inner = mem.create(ARRAY, 4, 4, 4)
        outer = mem.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=inner)
        mem.b.map_update(inner, u32(2), b"data")
        mem.b.map_update(outer, u32(0), u32(inner))
        inner_id = mem.b.map_info(inner).id
        mem.close(inner)
        assert unu32(mem.b.map_lookup(outer, u32(0), 4)) == inner_id
        again = mem.keep(mem.b.map_fd_by_id(inner_id))
        assert mem.b.map_lookup(again, u32(2), 4) == b"data"
        mem.close(again)
        mem.b.map_delete(outer, u32(0))
        assert eno(mem.b.map_fd_by_id, inner_id) == errno.ENOENT

    def test_closing_the_outer_map_frees_its_inner_maps(self) -> None:
        b = MemoryBackend(possible_cpus=1)
        inner = b.map_create(MapAttrs(int(HASH), 4, 4, 4))
        outer = b.map_create(MapAttrs(int(HASH_OF_MAPS), 4, 4, 4, inner_map_fd=inner))
        b.map_update(outer, u32(7), u32(inner))
        b.map_update(outer, u32(8), u32(inner))
        b.close(inner)
        assert b.live_objects() == 2
        b.close(outer)
        assert (b.live_objects(), b.open_handles()) == (0, 0)

    def test_replacing_a_slot_drops_the_old_map(self, mem: Session) -> None:
        t = mem.create(ARRAY, 4, 4, 1)
        outer = mem.create(ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=t)
        a = mem.b.map_create(MapAttrs(int(ARRAY), 4, 4, 1))
        a_id = mem.b.map_info(a).id
        mem.b.map_update(outer, u32(1), u32(a))
        mem.b.close(a)
        mem.b.map_update(outer, u32(1), u32(t))
        assert eno(mem.b.map_fd_by_id, a_id) == errno.ENOENT

    def test_btf_lives_with_its_map(self, mem: Session) -> None:
        b = mem.b
        assert isinstance(b, MemoryBackend)
        bt = b.btf_load(btf.marshal_types([btf.Int(1, "u32", 4)]))
        fd = mem.create(HASH, 4, 4, 4, btf_fd=bt, btf_key_type_id=1, btf_value_type_id=1)
        b.close(bt)
        assert b.map_info(fd).btf_id == 1
        assert b.live_objects() == 2
        mem.close(fd)
        assert b.live_objects() == 0


class TestPins:
    def test_pin_get_unpin(self, mem: Session, tmp_path: Path) -> None:
        b = mem.b
        assert isinstance(b, MemoryBackend)
        fd = b.map_create(MapAttrs(int(HASH), 4, 4, 4))
        map_id = b.map_info(fd).id
        pin = str(tmp_path / "counts")
        b.obj_pin(fd, pin)
        assert eno(b.obj_pin, fd, pin) == errno.EEXIST
        assert not os.path.exists(pin)  # the pin lives in the backend only
        b.close(fd)
        got = mem.keep(b.obj_get(f"{tmp_path}//counts"))
        assert b.map_info(got).id == map_id
        mem.close(got)
        b.obj_unpin(pin)
        assert eno(b.obj_get, pin) == errno.ENOENT
        assert eno(b.obj_unpin, pin) == errno.ENOENT
        assert eno(b.map_fd_by_id, map_id) == errno.ENOENT

    def test_pin_needs_a_directory(self, mem: Session, tmp_path: Path) -> None:
        fd = mem.create(HASH, 4, 4, 4)
        assert eno(mem.b.obj_pin, fd, str(tmp_path / "missing" / "m")) == errno.ENOENT
        (tmp_path / "file").write_text("")
        assert eno(mem.b.obj_pin, fd, str(tmp_path / "file" / "m")) == errno.ENOTDIR

    def test_obj_get_modes(self, mem: Session, tmp_path: Path) -> None:
        b = mem.b
        fd = mem.create(HASH, 4, 4, 4)
        pin = str(tmp_path / "m")
        b.obj_pin(fd, pin)
        ro = mem.keep(b.obj_get(pin, MapFlags.RDONLY))
        wo = mem.keep(b.obj_get(pin, MapFlags.WRONLY))
        assert eno(b.map_update, ro, u32(1), u32(1)) == errno.EPERM
        assert eno(b.map_freeze, ro) == errno.EPERM
        assert eno(b.map_update, wo, u32(1), u32(1)) is None
        assert eno(b.map_lookup, wo, u32(1), 4) == errno.EPERM
        assert eno(b.map_lookup_and_delete, wo, u32(1), 4) == errno.EPERM
        assert eno(b.map_update, mem.keep(b.dup(ro)), u32(1), u32(1)) == errno.EPERM
        assert eno(b.obj_get, pin, MapFlags.RDONLY | MapFlags.WRONLY) == errno.EINVAL
        assert eno(b.obj_get, pin, MapFlags.NO_PREALLOC) == errno.EINVAL
        assert isinstance(b, MemoryBackend)
        b.obj_unpin(pin)


# ========================================================================= file modes, freezing


class TestModesAndFreeze:
    def test_frozen_map(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 4)
        b.map_update(h, u32(1), b"abcd")
        b.map_freeze(h)
        assert eno(b.map_freeze, h) == errno.EPERM  # the write permission is gone before EBUSY is looked at
        assert eno(b.map_update, h, u32(2), b"abcd") == errno.EPERM
        assert eno(b.map_delete, h, u32(1)) == errno.EPERM
        assert eno(b.map_lookup_and_delete, h, u32(1), 4) == errno.EPERM
        assert eno(b.map_update_batch, h, u32(2), b"abcd", 1) == errno.EPERM
        assert eno(b.map_delete_batch, h, u32(1), 1) == errno.EPERM
        assert eno(b.map_lookup_batch, h, None, 4, 4, 4, 4, delete=True) == errno.EPERM
        assert b.map_lookup(h, u32(1), 4) == b"abcd"
        assert b.map_get_next_key(h, None, 4) == u32(1)
        assert b.map_lookup_batch(h, None, 4, 4, 4, 4).keys == u32(1)

    def test_frozen_queue(self, backend: Session) -> None:
        b = backend.b
        q = backend.create(QUEUE, 0, 4, 4)
        b.map_update(q, b"", b"abcd")
        b.map_freeze(q)
        assert b.map_lookup(q, b"", 4) == b"abcd"
        assert eno(b.map_lookup_and_delete, q, b"", 4) == errno.EPERM
        assert eno(b.map_update, q, b"", b"abcd") == errno.EPERM

    def test_freeze_ringbuf(self, backend: Session) -> None:
        assert eno(backend.b.map_freeze, backend.create(RINGBUF, 0, 0, PAGE)) is None

    def test_rdonly_map(self, backend: Session) -> None:
        b = backend.b
        ro = backend.create(HASH, 4, 4, 4, map_flags=MapFlags.RDONLY)
        assert eno(b.map_update, ro, u32(1), b"abcd") == errno.EPERM
        assert eno(b.map_delete, ro, u32(1)) == errno.EPERM
        assert eno(b.map_freeze, ro) == errno.EPERM
        assert eno(b.map_lookup_and_delete, ro, u32(1), 4) == errno.EPERM
        assert eno(b.map_lookup, ro, u32(1), 4) == errno.ENOENT
        # a handle by id is read-write: the mode belongs to the fd
        rw = backend.keep(b.map_fd_by_id(b.map_info(ro).id))
        assert eno(b.map_update, rw, u32(1), b"abcd") is None

    def test_wronly_map(self, backend: Session) -> None:
        b = backend.b
        wo = backend.create(HASH, 4, 4, 4, map_flags=MapFlags.WRONLY)
        assert eno(b.map_update, wo, u32(1), b"abcd") is None
        assert eno(b.map_lookup, wo, u32(1), 4) == errno.EPERM
        assert eno(b.map_get_next_key, wo, None, 4) == errno.EPERM
        assert eno(b.map_lookup_batch, wo, None, 4, 4, 4, 4) == errno.EPERM
        assert eno(b.map_delete, wo, u32(1)) is None
        assert eno(b.map_freeze, wo) is None

    def test_lock_flag(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 4)
        b.map_update(h, u32(1), b"abcd")
        assert eno(b.map_update, h, u32(1), b"abcd", LOCK) == errno.EINVAL
        assert eno(b.map_lookup, h, u32(1), 4, LOCK) == errno.EINVAL
        assert eno(b.map_lookup, h, u32(1), 4, NOEXIST) == errno.EINVAL
        assert eno(b.map_lookup_and_delete, h, u32(1), 4, NOEXIST) == errno.EINVAL
        assert eno(b.map_lookup_and_delete, h, u32(1), 4, LOCK) == errno.EINVAL
        assert eno(b.map_lookup_batch, h, None, 4, 4, 4, 4, elem_flags=LOCK) == errno.EINVAL


# ======================================================================================= hashes


class TestHash:
    def test_flags(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 2)
        assert eno(b.map_update, h, u32(1), b"aaaa", EXIST) == errno.ENOENT
        b.map_update(h, u32(1), b"aaaa", NOEXIST)
        assert eno(b.map_update, h, u32(1), b"bbbb", NOEXIST) == errno.EEXIST
        b.map_update(h, u32(1), b"cccc", EXIST)
        b.map_update(h, u32(1), b"dddd", ANY)
        assert b.map_lookup(h, u32(1), 4) == b"dddd"
        assert eno(b.map_update, h, u32(1), b"dddd", NOEXIST | EXIST) == errno.EINVAL
        assert eno(b.map_update, h, u32(1), b"dddd", 8) == errno.EINVAL

    def test_full(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 1)
        b.map_update(h, u32(1), b"aaaa")
        assert eno(b.map_update, h, u32(2), b"bbbb") == errno.E2BIG
        assert eno(b.map_update, h, u32(2), b"bbbb", EXIST) == errno.ENOENT  # the flags are checked first
        assert eno(b.map_update, h, u32(1), b"bbbb", NOEXIST) == errno.EEXIST
        b.map_update(h, u32(1), b"cccc")  # replacing is fine when full
        b.map_delete(h, u32(1))
        b.map_update(h, u32(2), b"bbbb")

    def test_delete_and_pop(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 4)
        assert eno(b.map_delete, h, u32(1)) == errno.ENOENT
        assert eno(b.map_lookup_and_delete, h, u32(1), 4) == errno.ENOENT
        b.map_update(h, u32(1), b"abcd")
        assert b.map_lookup_and_delete(h, u32(1), 4) == b"abcd"
        assert eno(b.map_lookup, h, u32(1), 4) == errno.ENOENT

    def test_odd_key_sizes(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 3, 5, 4)
        b.map_update(h, b"key", b"value")
        assert b.map_lookup(h, b"key", 5) == b"value"
        assert backend.keys(h, 3) == [b"key"]

    def test_get_next_key(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 8)
        assert eno(b.map_get_next_key, h, None, 4) == errno.ENOENT
        for i in range(5):
            b.map_update(h, u32(i), u32(i))
        walk = backend.ints(h)
        assert sorted(walk) == list(range(5))
        assert b.map_get_next_key(h, u32(99), 4) == u32(walk[0])  # a missing key restarts
        assert eno(b.map_get_next_key, h, u32(walk[-1]), 4) == errno.ENOENT
        assert b.map_get_next_key(h, u32(walk[1]), 4) == u32(walk[2])

    def test_zero_seed_order_is_the_kernels(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 16, map_flags=MapFlags.ZERO_SEED)
        for i in range(16):
            b.map_update(h, u32(i * 7), u32(i))
        # the kernel's order (buckets by jhash with seed 0, newest first in a bucket)
        assert backend.ints(h) == [35, 77, 21, 70, 98, 49, 42, 0, 28, 14, 7, 84, 91, 63, 105, 56]

    def test_update_moves_to_bucket_head(self, backend: Session) -> None:
        same = [i for i in range(1000) if htab_hash(u32(i), 0) & 7 == 0][:3]
        for map_type, value_size, moves in ((HASH, 4, True), (PERCPU_HASH, 4, False), (LRU_HASH, 4, True),
                                            (LRU_PERCPU_HASH, 4, False)):
            size = round8(value_size) * backend.cpus if map_type.has_per_cpu_value else value_size
            h = backend.create(map_type, 4, value_size, 8, map_flags=MapFlags.ZERO_SEED)
            for i in same:
                backend.b.map_update(h, u32(i), bytes(size))
            assert backend.ints(h) == same[::-1]
            backend.b.map_update(h, u32(same[0]), bytes(size))
            expected = [same[0], same[2], same[1]] if moves else same[::-1]
            assert backend.ints(h) == expected, map_type

    def test_per_cpu_values(self, backend: Session) -> None:
        b = backend.b
        cpus = backend.cpus
        h = backend.create(PERCPU_HASH, 4, 4, 4)
        value = b"".join(bytes([cpu]) * 4 + b"pad" + bytes([cpu]) for cpu in range(cpus))
        b.map_update(h, u32(1), value)
        assert b.map_lookup(h, u32(1), 8 * cpus) == value  # the padding round-trips, as in the kernel
        assert b.map_lookup_and_delete(h, u32(1), 8 * cpus) == value

    def test_hash_of_maps(self, backend: Session) -> None:
        b = backend.b
        inner = backend.create(ARRAY, 4, 4, 4)
        hom = backend.create(HASH_OF_MAPS, 4, 4, 4, inner_map_fd=inner)
        inner_id = b.map_info(inner).id
        b.map_update(hom, b"1234", u32(inner), NOEXIST)
        assert eno(b.map_update, hom, b"1234", u32(inner), NOEXIST) == errno.EEXIST
        assert eno(b.map_update, hom, b"9999", u32(inner), EXIST) == errno.ENOENT
        assert b.map_lookup(hom, b"1234", 4) == u32(inner_id)
        assert eno(b.map_update, hom, b"1234", u32(999_999)) == errno.EBADF
        wrong = backend.create(HASH, 4, 4, 4)
        assert eno(b.map_update, hom, b"1234", u32(wrong)) == errno.EINVAL
        assert eno(b.map_lookup_and_delete, hom, b"1234", 4) == ENOTSUPP
        b.map_delete(hom, b"1234")
        assert eno(b.map_delete, hom, b"1234") == errno.ENOENT

    def test_hash_inner_max_entries_may_differ(self, backend: Session) -> None:
        b = backend.b
        hom = backend.create(HASH_OF_MAPS, 4, 4, 4, inner_map_fd=backend.create(HASH, 4, 4, 4))
        assert eno(b.map_update, hom, b"1234", u32(backend.create(HASH, 4, 4, 8))) is None
        other_flags = backend.create(HASH, 4, 4, 8, map_flags=MapFlags.NO_PREALLOC)
        assert eno(b.map_update, hom, b"1234", u32(other_flags)) == errno.EINVAL


class TestMemoryHash:
    def test_is_a_backend(self) -> None:
        assert isinstance(MemoryBackend(possible_cpus=1), Backend)

    def test_sparse_walk_of_many_buckets(self, mem: Session) -> None:
        """A walk and batches over a huge, sparse table visit every key once, quickly."""
        b = mem.b
        h = mem.create(HASH, 4, 4, 1 << 26, map_flags=MapFlags.NO_PREALLOC)
        keys = {u32(i * 7919) for i in range(1000)}
        for key in keys:
            b.map_update(h, key, key)
        walk = mem.keys(h)
        assert len(walk) == 1000 and set(walk) == keys
        batched, results = _batch_all(mem, h, 64)
        assert batched == walk and len(results) > 10
        for key in walk[:500]:
            b.map_delete(h, key)
        assert mem.keys(h) == walk[500:]

    def test_every_map_hashes_like_a_zero_seed_kernel_map(self, mem: Session) -> None:
        h = mem.create(HASH, 4, 4, 16)
        for i in range(16):
            mem.b.map_update(h, u32(i * 7), u32(i))
        assert mem.ints(h) == [35, 77, 21, 70, 98, 49, 42, 0, 28, 14, 7, 84, 91, 63, 105, 56]

    def test_buckets_spread_sequential_keys(self, mem: Session) -> None:
        """jhash spreads 10000 sequential keys over 16384 buckets: most hold one key."""
        b = mem.b
        h = mem.create(HASH, 4, 4, 10000)
        for i in range(10000):
            b.map_update(h, u32(i), u32(i))
        fits = enospc = seen = 0
        cursor: bytes | None = None
        count = 1
        while True:
            try:
                r = b.map_lookup_batch(h, cursor, 4, 4, 4, count)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                enospc += 1
                count += 1
                continue
            fits += count == 1
            seen += r.count
            count = 1
            if r.done:
                break
            cursor = r.next_batch
        assert seen == 10000
        assert fits > 2 * enospc > 0

    def test_huge_array_is_lazy(self, mem: Session) -> None:
        a = mem.create(ARRAY, 4, 1 << 20, 1 << 20)
        assert mem.b.map_lookup(a, u32((1 << 20) - 1), 1 << 20) == bytes(1 << 20)


class TestLRU:
    """The kernel's LRU lists, seen from one CPU: see ``HashMap``'s docstring."""

    def test_never_full(self, backend: Session, one_cpu: None) -> None:
        b = backend.b
        cpus = backend.cpus
        max_entries = 16 * cpus  # target_free = 8: a full map loses 8 elements at once
        h = backend.create(LRU_HASH, 4, 4, max_entries)
        for i in range(max_entries):
            b.map_update(h, u32(i), u32(i))
        assert len(backend.keys(h)) == max_entries
        b.map_update(h, u32(1000), u32(0))
        assert sorted(backend.ints(h)) == [*range(8, max_entries), 1000]
        for i in range(7):
            b.map_update(h, u32(2000 + i), u32(0))  # the freed nodes are used first
        assert len(backend.keys(h)) == max_entries

    def test_lookups_do_not_count(self, backend: Session, one_cpu: None) -> None:
        b = backend.b
        h = backend.create(LRU_HASH, 4, 4, 2 * backend.cpus)  # target_free = 1
        n = 2 * backend.cpus
        for i in range(n):
            b.map_update(h, u32(i), u32(i))
        b.map_lookup(h, u32(0), 4)  # syscall lookups do not mark the element (map_lookup_elem_sys_only)
        b.map_update(h, u32(100), u32(0))
        assert 0 not in backend.ints(h)
        b.map_update(h, u32(1), u32(1))  # an update is a use
        b.map_update(h, u32(101), u32(0))
        assert 1 in backend.ints(h) and 2 not in backend.ints(h)

    def test_failed_noexist_still_evicts(self, backend: Session, one_cpu: None) -> None:
        b = backend.b
        n = 2 * backend.cpus
        h = backend.create(LRU_HASH, 4, 4, n)
        for i in range(n):
            b.map_update(h, u32(i), u32(i))
        assert eno(b.map_update, h, u32(n - 1), u32(0), NOEXIST) == errno.EEXIST
        assert len(backend.keys(h)) == n - 1  # the node taken for the update evicted element 0

    def test_no_common_lru(self, backend: Session, one_cpu: None) -> None:
        b = backend.b
        cpus = backend.cpus
        h = backend.create(LRU_PERCPU_HASH, 4, 4, 8 * cpus, map_flags=MapFlags.NO_COMMON_LRU)
        size = 8 * cpus
        for i in range(9):  # this CPU owns 8 nodes and frees 4 at a time
            b.map_update(h, u32(i), bytes(size))
        assert sorted(backend.ints(h)) == [4, 5, 6, 7, 8]

    def test_exist_update_takes_no_node(self, backend: Session, one_cpu: None) -> None:
        b = backend.b
        n = 2 * backend.cpus
        h = backend.create(LRU_PERCPU_HASH, 4, 4, n)
        size = 8 * backend.cpus
        for i in range(n):
            b.map_update(h, u32(i), bytes(size))
        b.map_update(h, u32(n - 1), b"\1" * size, EXIST)
        assert len(backend.keys(h)) == n
        assert b.map_lookup(h, u32(n - 1), size) == b"\1" * size


# ======================================================================================= arrays


class TestArray:
    def test_semantics(self, backend: Session) -> None:
        b = backend.b
        a = backend.create(ARRAY, 4, 6, 4)
        assert b.map_lookup(a, u32(3), 6) == bytes(6)
        assert eno(b.map_lookup, a, u32(4), 6) == errno.ENOENT
        b.map_update(a, u32(3), b"abcdef")
        b.map_update(a, u32(3), b"ghijkl", EXIST)
        assert b.map_lookup(a, u32(3), 6) == b"ghijkl"
        assert eno(b.map_update, a, u32(1), b"abcdef", NOEXIST) == errno.EEXIST
        assert eno(b.map_update, a, u32(4), b"abcdef") == errno.E2BIG
        assert eno(b.map_update, a, u32(4), b"abcdef", NOEXIST) == errno.E2BIG
        assert eno(b.map_update, a, u32(1), b"abcdef", 3) == errno.EINVAL
        assert eno(b.map_delete, a, u32(1)) == errno.EINVAL
        assert eno(b.map_delete, a, u32(9)) == errno.EINVAL
        assert eno(b.map_lookup_and_delete, a, u32(1), 6) == ENOTSUPP

    def test_get_next_key(self, backend: Session) -> None:
        b = backend.b
        a = backend.create(ARRAY, 4, 4, 4)
        assert backend.ints(a) == [0, 1, 2, 3]
        assert b.map_get_next_key(a, u32(7), 4) == u32(0)
        assert b.map_get_next_key(a, u32(2), 4) == u32(3)
        assert eno(b.map_get_next_key, a, u32(3), 4) == errno.ENOENT

    def test_per_cpu(self, backend: Session) -> None:
        b = backend.b
        cpus = backend.cpus
        a = backend.create(PERCPU_ARRAY, 4, 4, 2)
        assert b.map_lookup(a, u32(1), 8 * cpus) == bytes(8 * cpus)
        value = b"".join(b"cpu" + bytes([c]) + b"PADS" for c in range(cpus))
        b.map_update(a, u32(0), value)
        assert b.map_lookup(a, u32(0), 8 * cpus) == value
        assert eno(b.map_update, a, u32(0), value, NOEXIST) == errno.EEXIST
        assert eno(b.map_update, a, u32(2), value) == errno.E2BIG
        assert eno(b.map_update, a, u32(0), value, LOCK) == errno.EINVAL


class TestFdArrays:
    def test_prog_array(self, backend: Session) -> None:
        b = backend.b
        p = backend.create(PROG_ARRAY, 4, 4, 4)
        h = backend.create(HASH, 4, 4, 4)
        assert eno(b.map_lookup, p, u32(0), 4) == errno.ENOENT
        assert eno(b.map_lookup, p, u32(9), 4) == errno.ENOENT
        assert eno(b.map_update, p, u32(0), u32(h)) == errno.EINVAL  # not a program
        assert eno(b.map_update, p, u32(0), u32(999_999)) == errno.EBADF
        assert eno(b.map_update, p, u32(0), u32(h), NOEXIST) == errno.EINVAL
        assert eno(b.map_update, p, u32(9), u32(h)) == errno.E2BIG
        assert eno(b.map_delete, p, u32(0)) == errno.ENOENT
        assert eno(b.map_delete, p, u32(9)) == errno.E2BIG
        assert backend.ints(p) == [0, 1, 2, 3]

    def test_perf_event_array(self, backend: Session) -> None:
        b = backend.b
        p = backend.create(PERF_EVENT_ARRAY, 4, 4, 4)
        h = backend.create(HASH, 4, 4, 4)
        assert eno(b.map_lookup, p, u32(0), 4) == ENOTSUPP
        assert eno(b.map_lookup, p, u32(9), 4) == ENOTSUPP
        assert eno(b.map_update, p, u32(0), u32(h)) == errno.EBADF  # not a perf event
        assert eno(b.map_update, p, u32(0), u32(h), EXIST) == errno.EINVAL
        assert eno(b.map_update, p, u32(9), u32(h)) == errno.E2BIG
        assert eno(b.map_delete, p, u32(0)) == errno.ENOENT
        assert eno(b.map_delete, p, u32(9)) == errno.E2BIG

    def test_array_of_maps(self, backend: Session) -> None:
        b = backend.b
        template = backend.create(ARRAY, 4, 4, 4)
        aom = backend.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=template)
        inner = backend.create(ARRAY, 4, 4, 4)
        assert eno(b.map_lookup, aom, u32(0), 4) == errno.ENOENT
        assert eno(b.map_update, aom, u32(0), u32(inner), NOEXIST) == errno.EINVAL
        assert eno(b.map_update, aom, u32(0), u32(inner), EXIST) == errno.EINVAL
        b.map_update(aom, u32(0), u32(inner))
        assert b.map_lookup(aom, u32(0), 4) == u32(b.map_info(inner).id)
        assert eno(b.map_update, aom, u32(4), u32(inner)) == errno.E2BIG
        assert eno(b.map_update, aom, u32(1), u32(backend.create(ARRAY, 4, 4, 8))) == errno.EINVAL
        assert eno(b.map_update, aom, u32(1), u32(backend.create(ARRAY, 4, 8, 4))) == errno.EINVAL
        assert eno(b.map_update, aom, u32(1), u32(backend.create(HASH, 4, 4, 4))) == errno.EINVAL
        read_only = backend.create(ARRAY, 4, 4, 4, map_flags=MapFlags.RDONLY)  # not part of the map's flags
        assert eno(b.map_update, aom, u32(1), u32(read_only)) is None
        assert eno(b.map_update, aom, u32(2), u32(999_999)) == errno.EBADF
        b.map_delete(aom, u32(0))
        assert eno(b.map_delete, aom, u32(0)) == errno.ENOENT
        assert eno(b.map_delete, aom, u32(4)) == errno.E2BIG

    def test_inner_map_flag(self, backend: Session) -> None:
        """``BPF_F_INNER_MAP`` on the template lets array inner maps differ in size."""
        b = backend.b
        aom = backend.create(ARRAY_OF_MAPS, 4, 4, 4,
                             inner_map_fd=backend.create(ARRAY, 4, 4, 4, map_flags=MapFlags.INNER_MAP))
        big = backend.create(ARRAY, 4, 4, 64, map_flags=MapFlags.INNER_MAP)
        assert eno(b.map_update, aom, u32(0), u32(big)) is None
        plain = backend.create(ARRAY, 4, 4, 4)
        assert eno(b.map_update, aom, u32(1), u32(plain)) == errno.EINVAL  # the flags must match


# ============================================================================ queue, stack, ...


class TestQueueStack:
    def test_queue(self, backend: Session) -> None:
        b = backend.b
        q = backend.create(QUEUE, 0, 4, 3)
        assert eno(b.map_lookup, q, b"", 4) == errno.ENOENT
        assert eno(b.map_lookup_and_delete, q, b"", 4) == errno.ENOENT
        for i in range(3):
            b.map_update(q, b"", u32(i))
        assert eno(b.map_update, q, b"", u32(9)) == errno.E2BIG
        b.map_update(q, b"", u32(9), EXIST)  # drops the oldest
        assert b.map_lookup(q, b"", 4) == u32(1)
        assert [b.map_lookup_and_delete(q, b"", 4) for _ in range(3)] == [u32(1), u32(2), u32(9)]

    def test_stack(self, backend: Session) -> None:
        b = backend.b
        s = backend.create(STACK, 0, 4, 3)
        for i in range(3):
            b.map_update(s, b"", u32(i))
        b.map_update(s, b"", u32(9), EXIST)  # drops the oldest, too
        assert b.map_lookup(s, b"", 4) == u32(9)
        assert [b.map_lookup_and_delete(s, b"", 4) for _ in range(3)] == [u32(9), u32(2), u32(1)]
        assert eno(b.map_lookup_and_delete, s, b"", 4) == errno.ENOENT

    def test_errors(self, backend: Session) -> None:
        b = backend.b
        q = backend.create(QUEUE, 0, 4, 2)
        assert eno(b.map_update, q, b"", u32(1), NOEXIST) == errno.EINVAL
        assert eno(b.map_update, q, b"", u32(1), NOEXIST | EXIST) == errno.EINVAL
        assert eno(b.map_update, q, b"", u32(1), LOCK) == errno.EINVAL
        assert eno(b.map_delete, q, b"") == errno.EINVAL
        assert eno(b.map_get_next_key, q, None, 0) == errno.EINVAL
        assert eno(b.map_get_next_key, q, b"", 0) == errno.EINVAL
        assert eno(b.map_lookup_and_delete, q, b"", 4, EXIST) == errno.EINVAL
        assert eno(b.map_lookup, q, b"", 4, NOEXIST) == errno.EINVAL
        assert eno(b.map_lookup_batch, q, None, 4, 0, 4, 4) == ENOTSUPP
        assert eno(b.map_update_batch, q, b"", u32(1), 1) == ENOTSUPP


class TestBloomFilter:
    def test_semantics(self, backend: Session) -> None:
        b = backend.b
        bl = backend.create(BLOOM_FILTER, 0, 4, 100)
        assert eno(backend.peek, bl, 4, b"abcd") == errno.ENOENT
        b.map_update(bl, b"", b"abcd")
        assert backend.peek(bl, 4, b"abcd") == b"abcd"
        assert eno(b.map_update, bl, b"", b"abcd", NOEXIST) == errno.EINVAL
        assert eno(b.map_update, bl, b"", b"abcd", EXIST) == errno.EINVAL
        assert eno(b.map_delete, bl, b"") == errno.EOPNOTSUPP
        assert eno(b.map_get_next_key, bl, None, 0) == errno.EOPNOTSUPP
        assert eno(b.map_lookup_and_delete, bl, b"", 4) == ENOTSUPP
        assert eno(b.map_lookup_batch, bl, None, 4, 0, 4, 4) == ENOTSUPP

    def test_zero_value_without_value(self, backend: Session) -> None:
        b = backend.b
        bl = backend.create(BLOOM_FILTER, 0, 4, 100)
        assert eno(b.map_lookup, bl, b"", 4) == errno.ENOENT
        b.map_update(bl, b"", bytes(4))
        assert b.map_lookup(bl, b"", 4) == bytes(4)

    @pytest.mark.parametrize("value_size", [4, 5, 16])
    def test_zero_seed_false_positives_are_the_kernels(self, backend: Session, value_size: int) -> None:
        """A tiny filter with the kernel's hashes and seed 0: the very same false positives."""
        b = backend.b
        bl = backend.create(BLOOM_FILTER, 0, value_size, 2, map_extra=2, map_flags=MapFlags.ZERO_SEED)
        for i in range(6):
            b.map_update(bl, b"", (b"%03d" % i).ljust(value_size, b"x"))
        hits = [i for i in range(200)
                if eno(backend.peek, bl, value_size, (b"%03d" % i).ljust(value_size, b"x")) is None]
        assert hits[:6] == list(range(6))
        assert len(hits) > 6  # false positives
        assert hits == _bloom_hits(value_size)

    @pytest.mark.skipif(struct.pack("=I", 1) != b"\1\0\0\0", reason="little-endian identity")
    def test_jhash_and_jhash2_agree_on_little_endian(self) -> None:
        """The kernel's ``jhash`` and ``jhash2`` give the same hash for whole words on little-endian."""
        assert jhash(b"", 7) == (0xDEADBEEF + 7) & 0xFFFFFFFF
        for n in (4, 8, 12, 16, 24, 36):
            data = bytes(range(n))
            assert jhash(data, 5) == htab_hash(data, 5)


def _bloom_hits(value_size: int) -> list[int]:
    """Which of the 200 probes a kernel bloom filter (seed 0, 2 hashes, max 2) says may be present.

    Computed with the model's jhash, which the kernel cases of the test check.
    """
    mask = 63  # 2 entries * 2 hashes * 7 / 5 <= 64 bits
    bits: set[int] = set()

    def positions(v: bytes) -> list[int]:
        if len(v) % 4 == 0:
            return [htab_hash(v, i) & mask for i in range(2)]
        return [jhash(v, i) & mask for i in range(2)]

    for i in range(6):
        bits.update(positions((b"%03d" % i).ljust(value_size, b"x")))
    return [i for i in range(200) if all(p in bits for p in positions((b"%03d" % i).ljust(value_size, b"x")))]


class TestRingBuf:
    def test_no_element_operations(self, backend: Session) -> None:
        b = backend.b
        r = backend.create(RINGBUF, 0, 0, PAGE)
        assert eno(b.map_lookup, r, b"", 0) == ENOTSUPP
        assert eno(b.map_update, r, b"", b"") == ENOTSUPP
        assert eno(b.map_delete, r, b"") == ENOTSUPP
        assert eno(b.map_get_next_key, r, None, 0) == ENOTSUPP
        assert eno(b.map_lookup_and_delete, r, b"", 0) == ENOTSUPP
        assert eno(b.map_lookup_batch, r, None, 4, 0, 0, 1) == ENOTSUPP


# ====================================================================================== batches


def _batch_all(s: Session, fd: int, count: int, *, key_size: int = 4, value_size: int = 4,
               delete: bool = False) -> tuple[list[bytes], list[BatchResult]]:
    """Every key, batch after batch; also the results."""
    cursor: bytes | None = None
    keys: list[bytes] = []
    results: list[BatchResult] = []
    batch_size = max(key_size, 4)
    for _ in range(1000):
        r = s.b.map_lookup_batch(fd, cursor, batch_size, key_size, value_size, count, delete=delete)
        results.append(r)
        keys += [r.keys[i * key_size:(i + 1) * key_size] for i in range(r.count)]
        assert len(r.values) == r.count * value_size
        if r.done:
            return keys, results
        cursor = r.next_batch
    raise AssertionError("the batches never ended")


class TestBatch:
    def test_hash_from_null_cursor(self, backend: Session) -> None:
        """Lesson 1: lookup(-and-delete) batches from a NULL cursor work on hash and per-CPU hash maps."""
        for map_type in (HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH):
            size = 8 * backend.cpus if map_type.has_per_cpu_value else 4
            h = backend.create(map_type, 4, 4, 64)
            for i in range(20):
                backend.b.map_update(h, u32(i), bytes([i]) * size)
            keys, _ = _batch_all(backend, h, 64, value_size=size)
            assert sorted(unu32(k) for k in keys) == list(range(20))
            keys, _ = _batch_all(backend, h, 64, value_size=size, delete=True)
            assert sorted(unu32(k) for k in keys) == list(range(20))
            assert backend.keys(h) == []

    def test_hash_buckets_and_cursor(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 16, map_flags=MapFlags.ZERO_SEED)
        for i in range(16):
            b.map_update(h, u32(i * 7), u32(i))
        r = b.map_lookup_batch(h, None, 4, 4, 4, 3)
        # buckets 0 (35) and 4 (77, 21) fit; bucket 5 would not: the cursor is bucket 5
        assert (r.count, r.keys, r.next_batch, r.done) == (3, u32(35) + u32(77) + u32(21), u32(5), False)
        assert r.values == u32(5) + u32(11) + u32(3)
        assert eno(b.map_lookup_batch, h, u32(6), 4, 4, 4, 2) == errno.ENOSPC  # bucket 6 holds 3
        r = b.map_lookup_batch(h, u32(6), 4, 4, 4, 3)
        assert (unu32(r.next_batch), r.keys) == (8, u32(98) + u32(49) + u32(42))  # empty bucket 7 skipped
        r = b.map_lookup_batch(h, u32(14), 4, 4, 4, 5)
        assert (r.count, r.next_batch, r.done) == (2, u32(16), True)
        r = b.map_lookup_batch(h, u32(16), 4, 4, 4, 5)
        assert (r.count, r.next_batch, r.done) == (0, bytes(4), True)  # the cursor is not written
        keys, _ = _batch_all(backend, h, 3)
        assert [unu32(k) for k in keys] == backend.ints(h)

    def test_hash_exact_fit_then_done(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 4)
        assert b.map_lookup_batch(h, None, 4, 4, 4, 4) == BatchResult(0, b"", b"", u32(4), True)
        b.map_update(h, u32(1), b"abcd")
        r = b.map_lookup_batch(h, None, 8, 4, 4, 1)  # a larger cursor buffer keeps its tail zero
        assert (r.count, r.keys, r.values, r.done) == (1, u32(1), b"abcd", True)
        assert r.next_batch == u32(4) + bytes(4)

    def test_enospc(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 1)  # one bucket
        b.map_update(h, u32(1), b"abcd")
        assert b.map_lookup_batch(h, None, 4, 4, 4, 1).count == 1
        h = backend.create(HASH, 4, 4, 2, map_flags=MapFlags.ZERO_SEED)
        pair = [i for i in range(100) if htab_hash(u32(i), 0) & 1 == 0][:2]
        for i in pair:
            b.map_update(h, u32(i), b"abcd")
        assert eno(b.map_lookup_batch, h, None, 4, 4, 4, 1) == errno.ENOSPC
        assert eno(b.map_lookup_batch, h, None, 4, 4, 4, 1, delete=True) == errno.ENOSPC
        assert len(backend.keys(h)) == 2  # nothing was deleted

    def test_array(self, backend: Session) -> None:
        b = backend.b
        a = backend.create(ARRAY, 4, 4, 4)
        b.map_update(a, u32(2), b"two!")
        r = b.map_lookup_batch(a, None, 4, 4, 4, 3)
        assert (r.count, r.keys, r.values, r.next_batch, r.done) == (
            3, u32(0) + u32(1) + u32(2), bytes(8) + b"two!", u32(2), False)
        r = b.map_lookup_batch(a, u32(2), 4, 4, 4, 3)
        assert (r.count, r.keys, r.next_batch, r.done) == (1, u32(3), u32(3), True)
        r = b.map_lookup_batch(a, u32(3), 4, 4, 4, 3)
        assert (r.count, r.next_batch, r.done) == (0, bytes(4), True)
        r = b.map_lookup_batch(a, u32(9), 4, 4, 4, 2)  # a cursor beyond the end starts over
        assert (r.count, r.keys, r.done) == (2, u32(0) + u32(1), False)
        r = b.map_lookup_batch(a, None, 4, 4, 4, 4)
        assert (r.count, r.next_batch, r.done) == (4, u32(3), False)  # exactly full: no ENOENT yet
        assert eno(b.map_lookup_batch, a, None, 4, 4, 4, 4, delete=True) == ENOTSUPP
        assert eno(b.map_delete_batch, a, u32(0), 1) == ENOTSUPP

    def test_array_of_maps_skips_empty_slots(self, backend: Session) -> None:
        b = backend.b
        inner = backend.create(ARRAY, 4, 4, 4)
        aom = backend.create(ARRAY_OF_MAPS, 4, 4, 4, inner_map_fd=inner)
        assert b.map_lookup_batch(aom, None, 4, 4, 4, 4) == BatchResult(0, b"", b"", bytes(4), True)
        assert b.map_update_batch(aom, u32(1), u32(inner), 1) == 1
        r = b.map_lookup_batch(aom, None, 4, 4, 4, 4)
        assert (r.count, r.keys, r.values, r.next_batch, r.done) == (
            1, u32(1), u32(b.map_info(inner).id), u32(3), True)
        assert eno(b.map_delete_batch, aom, u32(1), 1) == ENOTSUPP
        assert eno(b.map_lookup_batch, aom, None, 4, 4, 4, 4, delete=True) == ENOTSUPP

    def test_hash_of_maps(self, backend: Session) -> None:
        b = backend.b
        inner = backend.create(ARRAY, 4, 4, 4)
        hom = backend.create(HASH_OF_MAPS, 4, 4, 4, inner_map_fd=inner)
        assert b.map_update_batch(hom, b"1234", u32(inner), 1) == 1
        r = b.map_lookup_batch(hom, None, 4, 4, 4, 4, delete=True)
        assert (r.count, r.keys, r.values, r.next_batch, r.done) == (
            1, b"1234", u32(b.map_info(inner).id), u32(4), True)
        assert backend.keys(hom) == []

    @pytest.mark.parametrize("map_type", [PROG_ARRAY, PERF_EVENT_ARRAY])
    def test_no_batches(self, backend: Session, map_type: MapType) -> None:
        b = backend.b
        fd = backend.create(map_type, 4, 4, 4)
        assert eno(b.map_lookup_batch, fd, None, 4, 4, 4, 4) == ENOTSUPP
        assert eno(b.map_update_batch, fd, u32(0), u32(0), 1) == ENOTSUPP

    def test_update_batch(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 3)
        keys = b"".join(u32(i) for i in range(5))
        with pytest.raises(OSError) as info:
            b.map_update_batch(h, keys, b"v000v111v222v333v444", 5)
        assert (info.value.errno, getattr(info.value, "count", None)) == (errno.E2BIG, 3)
        assert sorted(backend.ints(h)) == [0, 1, 2]
        for flags in (NOEXIST, EXIST, LOCK):  # elem_flags may only be BPF_F_LOCK
            with pytest.raises(OSError) as info:
                b.map_update_batch(h, u32(0), b"zzzz", 1, elem_flags=flags)
            assert (info.value.errno, getattr(info.value, "count", None)) == (errno.EINVAL, 0)
        a = backend.create(ARRAY, 4, 4, 4)
        with pytest.raises(OSError) as info:
            b.map_update_batch(a, u32(1) + u32(5) + u32(2), b"aaaabbbbcccc", 3)
        assert (info.value.errno, getattr(info.value, "count", None)) == (errno.E2BIG, 1)

    def test_delete_batch(self, backend: Session) -> None:
        b = backend.b
        h = backend.create(HASH, 4, 4, 8)
        for i in range(3):
            b.map_update(h, u32(i), u32(i))
        with pytest.raises(OSError) as info:
            b.map_delete_batch(h, u32(0) + u32(1) + u32(7) + u32(2), 4)
        assert (info.value.errno, getattr(info.value, "count", None)) == (errno.ENOENT, 2)
        assert backend.ints(h) == [2]
        assert b.map_delete_batch(h, u32(2), 1) == 1

    def test_per_cpu_array_batch(self, backend: Session) -> None:
        b = backend.b
        size = 8 * backend.cpus
        a = backend.create(PERCPU_ARRAY, 4, 4, 2)
        value = bytes(range(size))
        assert b.map_update_batch(a, u32(0) + u32(1), value * 2, 2) == 2
        r = b.map_lookup_batch(a, None, 4, 4, size, 8)
        assert (r.count, r.values, r.done) == (2, value * 2, True)


# ============================================================================================ BTF


class TestBTF:
    TYPES = (
        btf.Int(1, "u32", 4),
        btf.Struct(2, "pair", 8, (btf.Member("a", 1, 0, 0), btf.Member("b", 1, 32, 0))),
        btf.Typedef(3, "u32_t", 1),
        btf.Struct(4, "four", 4, (btf.Member("x", 1, 0, 0),)),
        btf.Var(5, "v", 4, btf.VarLinkage.GLOBAL),
        btf.Datasec(6, ".data", 4, (btf.VarSecinfo(5, 0, 4),)),
        btf.Fwd(7, "fw", False),
        btf.Int(8, "u16in32", 4, bits=16),
    )

    def test_load(self, backend: Session) -> None:
        assert eno(backend.b.btf_load, b"garbage") == errno.EINVAL
        raw = btf.marshal_types(list(self.TYPES))
        assert eno(backend.b.btf_load, raw[:30]) == errno.EINVAL
        backend.keep(backend.b.btf_load(raw))

    @pytest.mark.parametrize(("attrs", "key_id", "value_id", "expected"), [
        ((HASH, 4, 8, 4), 1, 2, None),
        ((HASH, 4, 8, 4), 3, 2, None),
        ((HASH, 4, 4, 4), 1, 2, errno.EINVAL),
        ((HASH, 4, 8, 4), 0, 2, errno.EINVAL),
        ((HASH, 4, 8, 4), 1, 99, errno.EINVAL),
        ((HASH, 4, 8, 4), 99, 2, errno.EINVAL),
        ((HASH, 4, 4, 4), 1, 7, errno.EINVAL),
        ((HASH, 4, 4, 4), 1, 5, None),
        ((ARRAY, 4, 8, 4), 4, 2, errno.EINVAL),
        ((ARRAY, 4, 8, 4), 1, 2, None),
        ((ARRAY, 4, 8, 4), 3, 2, None),
        ((ARRAY, 4, 8, 4), 8, 2, errno.EINVAL),
        ((ARRAY, 4, 4, 1), 0, 6, None),
        ((ARRAY, 4, 4, 2), 0, 6, errno.EINVAL),
        ((ARRAY, 4, 4, 1), 0, 4, errno.EINVAL),
        ((PERCPU_HASH, 4, 8, 4), 1, 2, None),
        ((PERCPU_ARRAY, 4, 8, 4), 1, 2, None),
        ((LRU_HASH, 4, 8, 4), 1, 2, None),
        ((QUEUE, 0, 8, 4), 0, 2, errno.EINVAL),
        ((BLOOM_FILTER, 0, 8, 4), 0, 2, None),
        ((BLOOM_FILTER, 0, 4, 4), 1, 1, errno.EINVAL),
        ((PERF_EVENT_ARRAY, 4, 4, 4), 1, 1, ENOTSUPP),
        ((PROG_ARRAY, 4, 4, 4), 4, 1, None),
        ((PROG_ARRAY, 4, 4, 4), 0, 1, errno.EINVAL),
        ((RINGBUF, 0, 0, PAGE), 0, 1, errno.EINVAL),
    ])
    def test_map_btf(self, backend: Session, attrs: tuple[int, int, int, int], key_id: int, value_id: int,
                     expected: int | None) -> None:
        bt = backend.btf(*self.TYPES)
        assert backend.create_errno(*attrs, btf_fd=bt, btf_key_type_id=key_id,
                                    btf_value_type_id=value_id) == expected

    def test_map_in_map_takes_no_btf(self, backend: Session) -> None:
        bt = backend.btf(*self.TYPES)
        inner = backend.create(ARRAY, 4, 4, 4)
        for map_type in (ARRAY_OF_MAPS, HASH_OF_MAPS):
            assert backend.create_errno(map_type, 4, 4, 4, inner_map_fd=inner, btf_fd=bt, btf_key_type_id=1,
                                        btf_value_type_id=1) == ENOTSUPP

    def test_btf_fd(self, backend: Session) -> None:
        h = backend.create(HASH, 4, 4, 4)
        assert backend.create_errno(HASH, 4, 4, 4, btf_fd=999_999, btf_key_type_id=1,
                                    btf_value_type_id=1) == errno.EBADF
        assert backend.create_errno(HASH, 4, 4, 4, btf_fd=h, btf_key_type_id=1,
                                    btf_value_type_id=1) == errno.EINVAL
        bt = backend.btf(*self.TYPES)
        fd = backend.create(HASH, 4, 4, 4, btf_fd=bt)  # no type ids: the fd is ignored
        assert backend.b.map_info(fd).btf_id == 0

    def test_info(self, backend: Session) -> None:
        bt = backend.btf(*self.TYPES)
        fd = backend.create(HASH, 4, 8, 4, btf_fd=bt, btf_key_type_id=1, btf_value_type_id=2)
        info = backend.b.map_info(fd)
        assert (info.btf_key_type_id, info.btf_value_type_id) == (1, 2)
        assert info.btf_id > 0

    def test_inner_map_with_struct_value(self, backend: Session) -> None:
        """Lesson 3: an array of maps whose inner maps have a BTF struct value."""
        b = backend.b
        bt = backend.btf(*self.TYPES)
        template = backend.create(ARRAY, 4, 8, 4, map_flags=MapFlags.INNER_MAP, btf_fd=bt, btf_key_type_id=1,
                                  btf_value_type_id=2)
        outer = backend.create(ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=template)
        inner = backend.create(ARRAY, 4, 8, 16, map_flags=MapFlags.INNER_MAP, btf_fd=bt, btf_key_type_id=1,
                               btf_value_type_id=2)
        b.map_update(outer, u32(0), u32(inner))
        assert b.map_lookup(outer, u32(0), 4) == u32(b.map_info(inner).id)


# ======================================================================================== threads


class TestThreads:
    def test_noexist_race(self, backend: Session) -> None:
        """Lesson 5: racing NOEXIST updates of one key: exactly one wins, the rest get EEXIST."""
        b = backend.b
        h = backend.create(HASH, 4, 4, 64)
        results: list[int | None] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def worker(n: int) -> None:
            start.wait()
            for key in range(50):
                r = eno(b.map_update, h, u32(key), u32(n), NOEXIST)
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(None) == 50
        assert results.count(errno.EEXIST) == 7 * 50

    def test_concurrent_mixed_operations(self, mem: Session) -> None:
        b = mem.b
        h = mem.create(LRU_HASH, 4, 4, 32)
        errors: list[BaseException] = []

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(2000):
                    key = u32(rng.randrange(64))
                    op = rng.randrange(4)
                    if op == 0:
                        eno(b.map_update, h, key, key, rng.choice((ANY, NOEXIST, EXIST)))
                    elif op == 1:
                        eno(b.map_delete, h, key)
                    elif op == 2:
                        eno(b.map_lookup_batch, h, None, 4, 4, 4, 8, delete=rng.random() < 0.3)
                    else:
                        eno(b.map_get_next_key, h, key, 4)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(mem.keys(h)) <= 32

    def test_map_in_map_update_racing_close(self) -> None:
        """A slot update and the close of the inner map's handle race: the slot keeps the map alive."""
        b = MemoryBackend(possible_cpus=1)
        template = b.map_create(MapAttrs(int(ARRAY), 4, 4, 1))
        outer = b.map_create(MapAttrs(int(ARRAY_OF_MAPS), 4, 4, 1, inner_map_fd=template))
        for _ in range(200):
            inner = b.map_create(MapAttrs(int(ARRAY), 4, 4, 1))
            result: list[int | None] = []
            t = threading.Thread(target=_record_errno, args=(result, b.map_update, outer, u32(0), u32(inner)))
            t.start()
            b.close(inner)
            t.join()
            assert result[0] in (None, errno.EBADF)
            if result[0] is None:  # the map lives on in the slot, though its handle is closed
                b.close(b.map_fd_by_id(unu32(b.map_lookup(outer, u32(0), 4))))
        b.map_delete(outer, u32(0))
        b.close(outer)
        b.close(template)
        assert (b.live_objects(), b.open_handles()) == (0, 0)

    def test_close_while_in_use(self) -> None:
        b = MemoryBackend(possible_cpus=1)
        fd = b.map_create(MapAttrs(int(HASH), 4, 4, 1024))
        stop = threading.Event()
        seen: set[int | None] = set()

        def worker() -> None:
            i = 0
            while not stop.is_set():
                seen.add(eno(b.map_update, fd, u32(i % 1024), b"abcd"))
                i += 1

        t = threading.Thread(target=worker)
        t.start()
        while not seen:
            pass
        b.close(fd)
        stop.set()
        t.join()
        assert seen <= {None, errno.EBADF}
        assert b.live_objects() == 0


# ==================================================================== the model against the kernel


def _replay(s: Session, fd: int, ops: list[tuple[Any, ...]], *, key_size: int,
            value_size: int) -> list[object]:
    """Run ``ops`` on map ``fd``; every result or errno, in order."""
    b = s.b
    out: list[object] = []
    cursor: bytes | None = None
    batch_size = max(key_size, 4)
    for op in ops:
        name = op[0]
        try:
            if name == "update":
                b.map_update(fd, op[1], op[2], op[3])
                out.append("ok")
            elif name == "lookup":
                out.append(b.map_lookup(fd, op[1], value_size, op[2]))
            elif name == "peek":
                out.append(s.peek(fd, value_size, op[1]))
            elif name == "delete":
                b.map_delete(fd, op[1])
                out.append("ok")
            elif name == "pop":
                out.append(b.map_lookup_and_delete(fd, op[1], value_size, op[2]))
            elif name == "next":
                out.append(b.map_get_next_key(fd, op[1], key_size))
            elif name == "batch":
                in_batch = cursor if op[3] else None
                r = b.map_lookup_batch(fd, in_batch, batch_size, key_size, value_size, op[1], delete=op[2])
                cursor = None if r.done else r.next_batch
                out.append(r)
            elif name == "update_batch":
                keys, values = b"".join(op[1]), b"".join(op[2])
                out.append(b.map_update_batch(fd, keys, values, len(op[1]), elem_flags=op[3]))
            elif name == "delete_batch":
                out.append(b.map_delete_batch(fd, b"".join(op[1]), len(op[1])))
            elif name == "walk":
                out.append(s.keys(fd, key_size) if key_size else [])
            else:  # pragma: no cover
                raise AssertionError(name)
        except OSError as err:
            out.append(("errno", err.errno, getattr(err, "count", None)))
    return out


def _random_ops(rng: random.Random, *, key_size: int, value_size: int, n_keys: int, n: int,
                keyless: bool = False) -> list[tuple[Any, ...]]:
    """A random sequence of map operations over ``n_keys`` keys."""
    def key() -> bytes:
        return b"" if keyless else (b"k%06d" % rng.randrange(n_keys)).rjust(key_size, b"_")[-key_size:]

    def value() -> bytes:
        return rng.randbytes(value_size)

    flags = (ANY, ANY, ANY, NOEXIST, EXIST, NOEXIST | EXIST, LOCK)
    ops: list[tuple[Any, ...]] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            ops.append(("update", key(), value(), rng.choice(flags)))
        elif r < 0.5:
            ops.append(("lookup", key(), rng.choice((0, 0, 0, LOCK, NOEXIST))))
        elif r < 0.58:
            ops.append(("delete", key()))
        elif r < 0.66:
            ops.append(("pop", key(), rng.choice((0, 0, 0, LOCK))))
        elif r < 0.74:
            ops.append(("next", rng.choice((None, key()))))
        elif r < 0.86:
            ops.append(("batch", rng.randrange(1, 9), rng.random() < 0.3, rng.random() < 0.7))
        elif r < 0.92:
            count = rng.randrange(1, 5)
            ops.append(("update_batch", [key() for _ in range(count)], [value() for _ in range(count)],
                        rng.choice((0, 0, 0, NOEXIST))))
        elif r < 0.96:
            ops.append(("delete_batch", [key() for _ in range(rng.randrange(1, 4))]))
        else:
            ops.append(("walk",))
    ops.append(("walk",))
    return ops


@pytest.mark.kernel
class TestModelMatchesKernel:
    """Random operation sequences, replayed on the model and on the kernel: every answer equal."""

    @pytest.fixture
    def both(self) -> Iterator[tuple[Session, Session]]:
        kernel = Session(kernel_backend())
        model = Session(MemoryBackend())
        yield model, kernel
        model.close_all()
        kernel.close_all()

    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize(("map_type", "key_size", "value_size", "max_entries", "flags"), [
        (HASH, 4, 4, 8, MapFlags.ZERO_SEED),
        (HASH, 7, 3, 16, MapFlags.ZERO_SEED),
        (HASH, 16, 8, 5, MapFlags.ZERO_SEED | MapFlags.NO_PREALLOC),
        (PERCPU_HASH, 8, 4, 8, MapFlags.ZERO_SEED),
        (LRU_HASH, 4, 4, 16, MapFlags.ZERO_SEED),
        (LRU_HASH, 8, 4, 12, MapFlags.ZERO_SEED | MapFlags.NO_COMMON_LRU),
        (LRU_PERCPU_HASH, 4, 12, 16, MapFlags.ZERO_SEED),
        (ARRAY, 4, 5, 6, 0),
        (PERCPU_ARRAY, 4, 4, 5, 0),
    ])
    def test_keyed(self, both: tuple[Session, Session], one_cpu: None, seed: int, map_type: MapType,
                   key_size: int, value_size: int, max_entries: int, flags: int) -> None:
        model, kernel = both
        user_size = round8(value_size) * model.cpus if map_type.has_per_cpu_value else value_size
        rng = random.Random(f"{map_type}-{key_size}-{flags}-{seed}")
        n_keys = max_entries * 2
        ops = _random_ops(rng, key_size=key_size, value_size=user_size, n_keys=n_keys, n=400)
        if map_type in (ARRAY, PERCPU_ARRAY):  # keys are indices
            ops = [_as_index_op(op, max_entries + 2) for op in ops]
        results = []
        for s in (model, kernel):
            fd = s.create(map_type, key_size, value_size, max_entries, map_flags=flags)
            results.append(_replay(s, fd, ops, key_size=key_size, value_size=user_size))
        for i, (got, want) in enumerate(zip(*results, strict=True)):
            assert got == want, f"op {i} {ops[i][:2]}: model {got!r}, kernel {want!r}"

    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize(("map_type", "value_size", "max_entries", "extra", "flags"), [
        (QUEUE, 4, 5, 0, 0),
        (STACK, 3, 4, 0, 0),
        (BLOOM_FILTER, 4, 3, 2, MapFlags.ZERO_SEED),
        (BLOOM_FILTER, 6, 2, 1, MapFlags.ZERO_SEED),
    ])
    def test_keyless(self, both: tuple[Session, Session], seed: int, map_type: MapType, value_size: int,
                     max_entries: int, extra: int, flags: int) -> None:
        model, kernel = both
        rng = random.Random(f"{map_type}-{value_size}-{seed}")
        values = [rng.randbytes(value_size) for _ in range(12)]
        ops: list[tuple[Any, ...]] = []
        for _ in range(200):
            r = rng.random()
            if r < 0.4:
                update_flags = rng.choice((ANY, ANY, NOEXIST, EXIST, NOEXIST | EXIST, LOCK))
                ops.append(("update", b"", rng.choice(values), update_flags))
            elif r < 0.6:
                ops.append(("peek", rng.choice(values)))
            elif r < 0.8:
                ops.append(("pop", b"", rng.choice((0, 0, 0, EXIST))))
            elif r < 0.85:
                ops.append(("delete", b""))
            elif r < 0.9:
                ops.append(("next", None))
            else:
                ops.append(("batch", 2, False, False))
        results = []
        for s in (model, kernel):
            fd = s.create(map_type, 0, value_size, max_entries, map_flags=flags, map_extra=extra)
            results.append(_replay(s, fd, ops, key_size=0, value_size=value_size))
        for i, (got, want) in enumerate(zip(*results, strict=True)):
            assert got == want, f"op {i} {ops[i][:2]}: model {got!r}, kernel {want!r}"


def _as_index_op(op: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """``op`` with its keys replaced by u32 indices below ``n`` (for arrays)."""
    def index(key: object) -> object:
        if isinstance(key, bytes) and key:
            return u32(int.from_bytes(key, "little") % n)
        return key

    if op[0] in ("update_batch", "delete_batch"):
        return (op[0], [index(k) for k in op[1]], *op[2:])
    if op[0] in ("update", "lookup", "delete", "pop", "next"):
        return (op[0], index(op[1]), *op[2:])
    return op
