"""``MemoryBackend``: the :class:`loader.backend.Backend` protocol as an in-process model.

It answers every map operation the way Linux 6.18's ``bpf(2)`` does — the same results
and the same errno for the same mistakes — without touching the kernel, so code and
tests that use maps run anywhere, without privileges. What ``kernel/bpf/syscall.c``
checks for every map (fd modes, frozen maps, flags, which batch commands a type has)
is here; what each map type does is in :mod:`loader.memory.maps`.

Handles are private numbers counted from :attr:`MemoryBackend.FIRST_HANDLE` (so they
are never mistaken for small real file descriptors). An object (map, program or BTF)
lives while a handle, a pin, a map-in-map or program-array slot, a program using it or
(for BTF) a map refers to it, exactly like a kernel object; map, program and BTF ids
count from 1.

Modelled map types: ``HASH``, ``ARRAY``, ``PROG_ARRAY``, ``PERF_EVENT_ARRAY``,
``PERCPU_HASH``, ``PERCPU_ARRAY``, ``LRU_HASH``, ``LRU_PERCPU_HASH``, ``ARRAY_OF_MAPS``,
``HASH_OF_MAPS``, ``QUEUE``, ``STACK``, ``RINGBUF``, ``BLOOM_FILTER``. Creating another
kernel map type fails with ``EOPNOTSUPP`` (an unknown type number with ``EINVAL``, as
in the kernel). There are no perf events and no ``mmap``.

BPF spin locks are modelled as user space sees them (:mod:`loader.memory.spinlock` finds
them in the BTF value type as the kernel does, and refuses BTF whose structs misuse
them): a map whose value holds a ``struct bpf_spin_lock`` must be a ``HASH`` or an
``ARRAY`` (other types ``EOPNOTSUPP``, ``BPF_F_RDONLY_PROG``/``WRONLY_PROG`` ``EACCES``),
its lock bytes are never stored from user space and read back as zeros, ``BPF_F_LOCK``
is accepted by lookups, updates (with ``BPF_NOEXIST``/``BPF_EXIST`` too) and batch
``elem_flags`` (``EINVAL`` for any other map), a ``BPF_F_LOCK`` update of an existing
hash element keeps its place in the bucket, and map-in-map templates compare the locks'
offsets. Nothing ever holds a lock here, so ``BPF_F_LOCK`` never waits.

Programs are accepted but cannot run: :meth:`MemoryBackend.prog_load` makes the
kernel's checks before the verifier (flags, instruction count, program type, name, the
maps the instructions name, BTF) and gives a handle with an id, a tag computed as the
kernel does and the ids of the maps used, so ``prog_info``, ``prog_fd_by_id``, pins and
program arrays work (a program array takes program handles and its lookups give program
ids; it empties when user space lets go of it, as in the kernel). The verifier is not
modelled. :meth:`MemoryBackend.prog_test_run` fails with ``ENOTSUPP`` (524, what the
kernel answers for a program type without a test run); every attach primitive (links,
``BPF_PROG_ATTACH``, raw tracepoints, perf events, socket filters) with ``EOPNOTSUPP``.

Pins live in the backend (no file is created), but like the kernel's they need an
existing directory (ENOENT otherwise). Besides the protocol,
:meth:`MemoryBackend.open_handles` and :meth:`MemoryBackend.live_objects` count what is
still open, for leak checks.

Where the model is narrower than the kernel: BTF is checked by :func:`btf.load_spec`
(the kernel's verifier refuses more), special BTF fields other than spin locks (timers,
kptrs, list heads, ...) are not recognised, the LRU lists are one CPU's view (see
:mod:`loader.memory.lru`), and no operation ever fails for lack of memory.

Passing a key or value of the wrong size (or a wrong ``value_size``/``key_size``
argument) raises ``ValueError``: with the kernel it would be a buffer overrun, a bug in
the caller rather than an errno.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import struct
import sys
import threading
from collections.abc import Mapping

import btf
from ebpfspec.enums import AttachType, MapType, ProgramFlags, ProgramType
from loader.backend import (
    BatchResult,
    LinkInfo,
    MapAttrs,
    MapInfo,
    ProgLoadError,
    ProgramAttrs,
    ProgramInfo,
    TestRunResult,
)
from loader.cpus import parse_cpu_list
from loader.cpus import possible_cpus as _system_possible_cpus
from loader.memory import kconst as k
from loader.memory.maps import F_LOCK, FdArrayMap, InnerTemplate, MemoryMap, map_class
from loader.memory.objects import ENOTSUPP, BpfObject, BtfObject, ProgObject, oserror
from loader.memory.spinlock import check_struct_spin_locks, value_spin_locks, without_locks

__all__ = ["MemoryBackend"]

#: Map types whose ``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` does something (others: ENOTSUPP).
_LOOKUP_AND_DELETE_TYPES = frozenset({
    MapType.QUEUE, MapType.STACK, MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH,
})
#: Characters ``bpf_obj_name_cpy`` accepts in an object name.
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
#: Numbers of the map types Linux 6.18 has (1 to 33).
_KERNEL_MAP_TYPES = range(1, 34)
_NODE_ONLINE_FILE = "/sys/devices/system/node/online"


def _default_cpus() -> int:
    try:
        return _system_possible_cpus()
    except (OSError, ValueError):
        return 1


def _online_nodes() -> frozenset[int]:
    """The NUMA nodes ``BPF_F_NUMA_NODE`` may name: the machine's online nodes (else node 0)."""
    try:
        with open(_NODE_ONLINE_FILE, encoding="ascii") as f:
            return frozenset(parse_cpu_list(f.read()))
    except (OSError, ValueError):
        return frozenset({0})


def _with_count(err: OSError, count: int = 0) -> OSError:
    """``err`` with ``count`` set: the entries a batch write processed before it."""
    err.count = count  # type: ignore[attr-defined]
    return err


def _not_writable(m: MemoryMap) -> OSError:
    """EPERM for a write through a read-only handle or to a frozen map."""
    return oserror(errno.EPERM, "the map is frozen" if m.frozen else "the handle is read-only")


#: The map types whose value may hold a ``struct bpf_spin_lock`` (of those the model has).
_SPIN_LOCK_TYPES = frozenset({MapType.HASH, MapType.ARRAY})


def _check_lock_flag(m: MemoryMap, flags: int) -> None:
    """EINVAL for ``BPF_F_LOCK`` on a map whose value has no ``struct bpf_spin_lock``."""
    if flags & F_LOCK and not m.spin_locks:
        raise oserror(errno.EINVAL, "BPF_F_LOCK: the map's value has no bpf_spin_lock")


def _check_elem_flags(m: MemoryMap, flags: int) -> None:
    """EINVAL for batch ``elem_flags`` other than ``BPF_F_LOCK``, and for that one without a spin lock."""
    if flags & ~F_LOCK or (flags & F_LOCK and not m.spin_locks):
        raise oserror(errno.EINVAL, f"elem_flags {flags:#x}: BPF_F_LOCK alone, for a bpf_spin_lock")


def _stored(m: MemoryMap, value: bytes) -> bytes:
    """``value`` as the map keeps it: its spin locks' bytes are never copied from user space."""
    return without_locks(value, m.spin_locks) if m.spin_locks else bytes(value)


def _sized_type(spec: btf.Spec, type_id: int) -> tuple[btf.Type, int]:
    """``btf_type_id_size``: the type with id ``type_id`` and its size; EINVAL if it has none."""
    try:
        t = spec.type_by_id(type_id)
        size = btf.sizeof(t)
    except (btf.BTFError, IndexError, KeyError, ValueError) as err:
        raise oserror(errno.EINVAL, f"BTF type {type_id}: {err}") from None
    return btf.skip_qualifiers_and_typedefs(t), size


class _Handle:
    """One handle: the object and the file mode it was opened with."""

    __slots__ = ("obj", "read", "write")

    def __init__(self, obj: BpfObject, read: bool, write: bool) -> None:
        self.obj = obj
        self.read = read
        self.write = write


class MemoryBackend:
    """An in-process model of the kernel's BPF maps (see the module docstring).

    ``possible_cpus`` is the number of per-CPU value slots; by default the machine's
    possible CPUs (``/sys/devices/system/cpu/possible``), or 1 where that cannot be read.
    Thread-safe: a lock guards the handle table, and one lock per map its contents.
    """

    name = "memory"
    #: The first handle number given out.
    FIRST_HANDLE = 1_000_000

    def __init__(self, possible_cpus: int | None = None) -> None:
        ncpus = _default_cpus() if possible_cpus is None else possible_cpus
        if not isinstance(ncpus, int) or isinstance(ncpus, bool) or ncpus < 1:
            raise ValueError(f"possible_cpus must be a positive int, not {possible_cpus!r}")
        self._ncpus = ncpus
        self._lock = threading.Lock()
        self._handles: dict[int, _Handle] = {}
        self._handle_numbers = itertools.count(self.FIRST_HANDLE)
        self._maps: dict[int, MemoryMap] = {}
        self._btfs: dict[int, BtfObject] = {}
        self._progs: dict[int, ProgObject] = {}
        self._map_ids = itertools.count(1)
        self._btf_ids = itertools.count(1)
        self._prog_ids = itertools.count(1)
        self._pins: dict[str, BpfObject] = {}
        self._numa_nodes = _online_nodes()

    def __repr__(self) -> str:
        return f"MemoryBackend(possible_cpus={self._ncpus})"

    def possible_cpus(self) -> int:
        """The number of per-CPU slots per-CPU maps have (given to the constructor)."""
        return self._ncpus

    # -- the object table ----------------------------------------------------------------------

    def _new_handle(self, obj: BpfObject, *, read: bool = True, write: bool = True) -> int:
        """A new handle to ``obj`` (taking a reference)."""
        with self._lock:
            return self._new_handle_locked(obj, read, write)

    def _new_handle_locked(self, obj: BpfObject, read: bool, write: bool) -> int:
        """:meth:`_new_handle` with :attr:`_lock` already held."""
        fd = next(self._handle_numbers)
        self._handles[fd] = _Handle(obj, read, write)
        obj.refs += 1
        obj.urefs += 1
        return fd

    def _handle_by_id(self, objects: Mapping[int, BpfObject], object_id: int, what: str) -> int:
        """``BPF_*_GET_FD_BY_ID``: a new read-write handle to ``objects[object_id]`` (ENOENT if
        none), found and referenced under one hold of the lock, so it cannot go away between."""
        with self._lock:
            obj = objects.get(object_id)
            if obj is None:
                raise oserror(errno.ENOENT, f"no {what} with id {object_id}")
            return self._new_handle_locked(obj, True, True)

    def _handle(self, fd: int) -> _Handle:
        with self._lock:
            h = self._handles.get(fd)
        if h is None:
            raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
        return h

    def _map_handle(self, fd: int) -> tuple[_Handle, MemoryMap]:
        """The handle ``fd`` and its map: EBADF if no such handle, EINVAL if it is no map."""
        h = self._handle(fd)
        if not isinstance(h.obj, MemoryMap):
            raise oserror(errno.EINVAL, f"handle {fd} is not a map")
        return h, h.obj

    def get_object(self, fd: int) -> BpfObject:
        """A new reference to the object behind handle ``fd`` (EBADF if none), taken atomically."""
        with self._lock:
            h = self._handles.get(fd)
            if h is None:
                raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
            h.obj.refs += 1
            return h.obj

    def decref(self, obj: BpfObject) -> None:
        """Drop a reference to ``obj``; the last one releases it (and what it holds)."""
        with self._lock:
            obj.refs -= 1
            if obj.refs:
                return
            if isinstance(obj, MemoryMap):
                self._maps.pop(obj.id, None)
            elif isinstance(obj, BtfObject):
                self._btfs.pop(obj.id, None)
            elif isinstance(obj, ProgObject):
                self._progs.pop(obj.id, None)
        for held in obj.release():
            self.decref(held)

    def open_handles(self) -> int:
        """How many handles are open (not closed yet)."""
        with self._lock:
            return len(self._handles)

    def live_objects(self) -> int:
        """How many maps, programs and BTF objects are alive (held by a handle, pin, map, program or slot)."""
        with self._lock:
            return len(self._maps) + len(self._btfs) + len(self._progs)

    # -- map creation --------------------------------------------------------------------------

    def map_create(self, attrs: MapAttrs) -> int:
        """``BPF_MAP_CREATE``: check ``attrs`` as the kernel does, in its order; the new map's handle."""
        a = attrs
        name = a.name.encode()
        if len(name) >= k.BPF_OBJ_NAME_LEN:
            raise ValueError(f"map name {a.name!r} is longer than {k.BPF_OBJ_NAME_LEN - 1} bytes")
        if b"\0" in name:
            raise ValueError(f"map name {a.name!r} contains a NUL byte")
        token = bool(a.map_flags & k.BPF_F_TOKEN_FD)
        flags = int(a.map_flags & ~k.BPF_F_TOKEN_FD)
        if a.btf_vmlinux_value_type_id:
            if a.map_type != MapType.STRUCT_OPS or a.btf_key_type_id or a.btf_value_type_id:
                raise oserror(errno.EINVAL, "btf_vmlinux_value_type_id is for struct_ops maps")
        elif a.btf_key_type_id and not a.btf_value_type_id:
            raise oserror(errno.EINVAL, "a BTF key type needs a BTF value type")
        if a.map_type not in (MapType.BLOOM_FILTER, MapType.ARENA) and a.map_extra:
            raise oserror(errno.EINVAL, "map_extra is for bloom filters and arenas")
        if flags & k.BPF_F_RDONLY and flags & k.BPF_F_WRONLY:
            raise oserror(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
        if flags & k.BPF_F_NUMA_NODE and a.numa_node not in self._numa_nodes:
            raise oserror(errno.EINVAL, f"NUMA node {a.numa_node} is not online")
        cls = map_class(a.map_type)
        if cls is None:
            if a.map_type in _KERNEL_MAP_TYPES:
                raise oserror(errno.EOPNOTSUPP, f"MemoryBackend does not model {MapType(a.map_type)} maps")
            raise oserror(errno.EINVAL, f"unknown map type {a.map_type}")
        checked = MapAttrs(
            map_type=a.map_type, key_size=a.key_size, value_size=a.value_size, max_entries=a.max_entries,
            map_flags=flags, numa_node=a.numa_node, name=a.name, map_extra=a.map_extra)
        cls.check_attrs(checked, self._ncpus)
        if a.map_ifindex:  # offloaded maps: only hashes and arrays, and no device here can
            if a.map_type not in (MapType.HASH, MapType.ARRAY):
                raise oserror(errno.EINVAL, "only hash and array maps can be offloaded")
            raise oserror(errno.EOPNOTSUPP, f"no offload device with ifindex {a.map_ifindex}")
        if token:
            raise oserror(errno.EINVAL, "BPF_F_TOKEN_FD: this backend has no BPF tokens")
        inner = self._inner_template(a.inner_map_fd) if MapType(a.map_type).is_map_in_map else None
        max_entries = cls.check_alloc(checked, self._ncpus)
        if any(c not in _NAME_CHARS for c in name):
            raise oserror(errno.EINVAL, f"map name {a.name!r}: only letters, digits, '_' and '.'")
        # the map keeps the flags tied to the object, not to the fd (bpf_map_flags_retain_permanent)
        kept = MapAttrs(
            map_type=a.map_type, key_size=a.key_size, value_size=a.value_size, max_entries=a.max_entries,
            map_flags=int(flags & ~(k.BPF_F_RDONLY | k.BPF_F_WRONLY)), name=a.name, map_extra=a.map_extra)
        m = cls(kept, max_entries=max_entries, ncpus=self._ncpus, table=self, inner=inner)
        if a.btf_key_type_id or a.btf_value_type_id or a.btf_vmlinux_value_type_id:
            btf_obj = self._btf_object(a.btf_fd)  # a reference, which the map keeps
            try:
                if a.btf_value_type_id:
                    self._check_map_btf(m, btf_obj, a.btf_key_type_id, a.btf_value_type_id)
            except OSError:
                self.decref(btf_obj)
                raise
            m.btf = btf_obj
            m.btf_key_type_id = a.btf_key_type_id
            m.btf_value_type_id = a.btf_value_type_id
        with self._lock:
            m.id = next(self._map_ids)
            self._maps[m.id] = m
        return self._new_handle(m, read=not flags & k.BPF_F_WRONLY, write=not flags & k.BPF_F_RDONLY)

    def _inner_template(self, fd: int) -> InnerTemplate:
        """``bpf_map_meta_alloc``: the template a map-in-map's inner maps must match."""
        if fd < 0:
            raise oserror(errno.EINVAL, "a map of maps needs inner_map_fd")
        inner = self._handle(fd).obj
        if not isinstance(inner, MemoryMap):
            raise oserror(errno.EINVAL, f"inner_map_fd {fd} is not a map")
        if inner.inner is not None:
            raise oserror(errno.EINVAL, "a map of maps cannot be an inner map")
        if inner.meta_equal() is None:
            raise oserror(ENOTSUPP, f"{inner.map_type} maps cannot be inner maps")
        return InnerTemplate(inner.map_type, inner.key_size, inner.value_size, inner.max_entries,
                             inner.map_flags, inner.spin_locks)

    def _btf_object(self, fd: int) -> BtfObject:
        """``btf_get_by_fd``: a reference to the BTF behind ``fd``."""
        if fd < 0:
            raise oserror(errno.EINVAL, "BTF type ids need btf_fd")
        obj = self.get_object(fd)
        if not isinstance(obj, BtfObject):
            self.decref(obj)
            raise oserror(errno.EINVAL, f"btf_fd {fd} is not BTF")
        return obj

    @staticmethod
    def _check_map_btf(m: MemoryMap, btf_obj: BtfObject, key_id: int, value_id: int) -> None:
        """``map_check_btf``: the key and value types fit the map's sizes and type."""
        key_type = None
        if key_id:
            key_type, key_size = _sized_type(btf_obj.spec, key_id)
            if key_size != m.key_size:
                raise oserror(errno.EINVAL, f"BTF key type is {key_size} bytes, key_size is {m.key_size}")
        elif not m.has_check_btf():
            raise oserror(errno.EINVAL, f"{m.map_type} maps need a BTF key type")
        value_type, value_size = _sized_type(btf_obj.spec, value_id)
        if value_size != m.value_size:
            raise oserror(errno.EINVAL, f"BTF value type is {value_size} bytes, value_size is {m.value_size}")
        locks = value_spin_locks(value_type)
        if locks:
            if m.map_flags & (k.BPF_F_RDONLY_PROG | k.BPF_F_WRONLY_PROG):
                raise oserror(errno.EACCES, "a value with a bpf_spin_lock: no BPF_F_RDONLY_PROG/WRONLY_PROG")
            if m.map_type not in _SPIN_LOCK_TYPES:
                raise oserror(errno.EOPNOTSUPP, f"{m.map_type} maps cannot hold a bpf_spin_lock")
        m.check_btf(key_type, value_type)
        m.spin_locks = locks

    # -- single elements -----------------------------------------------------------------------

    @staticmethod
    def _check_key(m: MemoryMap, key: bytes) -> None:
        if len(key) != m.key_size:
            raise ValueError(f"key of {len(key)} bytes for a map with key_size {m.key_size}")

    @staticmethod
    def _check_value_size(m: MemoryMap, size: int, what: str = "value") -> None:
        if size != m.user_value_size:
            raise ValueError(f"{what} of {size} bytes; this map's values are {m.user_value_size} bytes")

    @staticmethod
    def _alive(m: MemoryMap) -> None:
        if m.dead:
            raise oserror(errno.EBADF, "the map was closed")

    @staticmethod
    def _writable(h: _Handle, m: MemoryMap) -> bool:
        """``map_get_sys_perms`` & FMODE_CAN_WRITE: a frozen map is read-only from user space."""
        return h.write and not m.frozen

    def map_lookup(self, fd: int, key: bytes, value_size: int, flags: int = 0, *,
                   value: bytes | None = None) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: ``value_size`` bytes.

        ``value`` is what the caller's value buffer holds: a bloom filter tests it (the
        all-zero value when None) and gives it back if it may be present; other maps
        ignore it, as the kernel overwrites the buffer.
        """
        if flags & ~F_LOCK:
            raise oserror(errno.EINVAL, f"unknown lookup flags {flags:#x}")
        h, m = self._map_handle(fd)
        self._check_key(m, key)
        self._check_value_size(m, value_size)
        if value is not None and m.map_type == MapType.BLOOM_FILTER and len(value) != m.value_size:
            raise ValueError(f"value of {len(value)} bytes; this map's values are {m.value_size} bytes")
        with m.lock:
            self._alive(m)
            if not h.read:
                raise oserror(errno.EPERM, "the handle is write-only")
            _check_lock_flag(m, flags)
            return m.lookup(bytes(key), None if value is None else bytes(value))

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        """``BPF_MAP_UPDATE_ELEM``. For queue/stack/bloom maps ``key`` is ``b""``."""
        h, m = self._map_handle(fd)
        self._check_key(m, key)
        self._check_value_size(m, len(value))
        with m.lock:
            self._alive(m)
            if not self._writable(h, m):
                raise _not_writable(m)
            _check_lock_flag(m, flags)
            m.update(bytes(key), _stored(m, value), flags)

    def map_delete(self, fd: int, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM``."""
        h, m = self._map_handle(fd)
        self._check_key(m, key)
        with m.lock:
            self._alive(m)
            if not self._writable(h, m):
                raise _not_writable(m)
            m.delete(bytes(key))

    def map_lookup_and_delete(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM``: pop from a queue/stack (``key=b""``) or take from a hash."""
        if flags & ~F_LOCK:
            raise oserror(errno.EINVAL, f"unknown flags {flags:#x}")
        h, m = self._map_handle(fd)
        self._check_key(m, key)
        self._check_value_size(m, value_size)
        with m.lock:
            self._alive(m)
            if not h.read or not self._writable(h, m):
                raise oserror(errno.EPERM, "lookup-and-delete needs a readable and writable map")
            if flags and m.map_type in (MapType.QUEUE, MapType.STACK):
                raise oserror(errno.EINVAL, "queues and stacks take no flags here")
            _check_lock_flag(m, flags)
            if m.map_type not in _LOOKUP_AND_DELETE_TYPES:
                raise oserror(ENOTSUPP, f"{m.map_type} maps have no lookup-and-delete")
            return m.pop(bytes(key))

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``: the key after ``key`` (the first if None); ENOENT at the end."""
        h, m = self._map_handle(fd)
        if key_size != m.key_size:
            raise ValueError(f"key_size {key_size} for a map with key_size {m.key_size}")
        if key is not None and m.key_size:
            self._check_key(m, key)
        with m.lock:
            self._alive(m)
            if not h.read:
                raise oserror(errno.EPERM, "the handle is write-only")
            if key is not None and not m.key_size:
                raise oserror(errno.EINVAL, "this map has no keys")  # __bpf_copy_key
            return m.get_next_key(None if key is None else bytes(key))

    # -- batches --------------------------------------------------------------------------------

    def map_lookup_batch(
        self, fd: int, in_batch: bytes | None, batch_size: int, key_size: int, value_size: int,
        count: int, *, delete: bool = False, elem_flags: int = 0,
    ) -> BatchResult:
        """``BPF_MAP_LOOKUP_BATCH`` / ``BPF_MAP_LOOKUP_AND_DELETE_BATCH`` of up to ``count`` entries.

        The cursor is this model's own: for hash maps a u32 bucket index (in the first 4
        of ``batch_size`` bytes, like the kernel's), for arrays the last key returned.
        ``in_batch`` None starts at the beginning; ENOENT (nothing after these entries)
        returns ``done=True`` with the entries; ENOSPC (the first bucket holds more than
        ``count``) raises.
        """
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        h, m = self._map_handle(fd)
        with m.lock:
            self._alive(m)
            if not h.read or (delete and not self._writable(h, m)):
                raise oserror(errno.EPERM, "the handle or map does not allow this batch")
            if ("lookup_and_delete" if delete else "lookup") not in m.batch_ops:
                raise oserror(ENOTSUPP, f"{m.map_type} maps have no such batch operation")
            cursor = 4 if m.map_type in _HASH_TYPES else m.key_size
            if key_size != m.key_size or value_size != m.user_value_size:
                raise ValueError(f"key_size/value_size {key_size}/{value_size} for a map of "
                                 f"{m.key_size}/{m.user_value_size}")
            if batch_size < cursor:
                raise ValueError(f"batch_size {batch_size}: this map's cursor needs {cursor} bytes")
            if in_batch is not None and len(in_batch) != batch_size:
                raise ValueError(f"in_batch is {len(in_batch)} bytes, not batch_size={batch_size}")
            _check_elem_flags(m, elem_flags)
            return m.lookup_batch(None if in_batch is None else bytes(in_batch), batch_size, count, delete)

    def _write_batch_map(self, fd: int) -> tuple[_Handle, MemoryMap]:
        """The map of a batch write (errors carry ``count`` 0)."""
        try:
            return self._map_handle(fd)
        except OSError as err:
            raise _with_count(err) from None

    def map_update_batch(
        self, fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
    ) -> int:
        """``BPF_MAP_UPDATE_BATCH`` (``generic_map_update_batch``): one update after the other.

        On failure the ``OSError`` has ``count``: the entries written before it. Like the
        kernel, ``elem_flags`` may only be ``BPF_F_LOCK`` (so NOEXIST/EXIST are EINVAL), and
        only for a value with a spin lock.
        """
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        h, m = self._write_batch_map(fd)
        if len(keys) != count * m.key_size or len(values) != count * m.user_value_size:
            raise ValueError(f"{len(keys)} bytes of keys and {len(values)} of values for {count} entries "
                             f"of {m.key_size}/{m.user_value_size} bytes")
        ks, vs = m.key_size, m.user_value_size
        key_list = [bytes(keys[i * ks:(i + 1) * ks]) for i in range(count)]
        value_list = [_stored(m, values[i * vs:(i + 1) * vs]) for i in range(count)]
        with m.lock:
            try:
                self._alive(m)
                if not self._writable(h, m):
                    raise _not_writable(m)
                if "update" not in m.batch_ops:
                    raise oserror(ENOTSUPP, f"{m.map_type} maps have no batch update")
                _check_elem_flags(m, elem_flags)
            except OSError as err:
                raise _with_count(err) from None
            return m.update_batch(key_list, value_list, elem_flags)

    def map_delete_batch(self, fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
        """``BPF_MAP_DELETE_BATCH`` (``generic_map_delete_batch``); ``count`` on the error as for updates."""
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        h, m = self._write_batch_map(fd)
        if len(keys) != count * m.key_size:
            raise ValueError(f"{len(keys)} bytes of keys for {count} keys of {m.key_size} bytes")
        ks = m.key_size
        key_list = [bytes(keys[i * ks:(i + 1) * ks]) for i in range(count)]
        with m.lock:
            try:
                self._alive(m)
                if not self._writable(h, m):
                    raise _not_writable(m)
                if "delete" not in m.batch_ops:
                    raise oserror(ENOTSUPP, f"{m.map_type} maps have no batch delete")
                _check_elem_flags(m, elem_flags)
            except OSError as err:
                raise _with_count(err) from None
            return m.delete_batch(key_list)

    # -- the rest of the map commands --------------------------------------------------------------

    def map_freeze(self, fd: int) -> None:
        """``BPF_MAP_FREEZE``: user space may no longer write the map.

        A second freeze is EPERM, as in the kernel: a frozen map's fds have lost their
        write permission, and that is checked before the EBUSY for an already frozen map.
        """
        h, m = self._map_handle(fd)
        with m.lock:
            self._alive(m)
            if not self._writable(h, m):
                raise _not_writable(m)
            if m.frozen:
                raise oserror(errno.EBUSY)
            m.frozen = True

    def map_info(self, fd: int) -> MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a map (EBADFD for a handle that is not open, as the kernel)."""
        with self._lock:
            h = self._handles.get(fd)
        if h is None:
            raise oserror(errno.EBADFD, f"{fd} is not an open handle of this backend")
        m = h.obj
        if not isinstance(m, MemoryMap):
            raise oserror(errno.EINVAL, f"handle {fd} is not a map")
        btf_obj = m.btf
        return MapInfo(
            type=int(m.map_type), id=m.id, key_size=m.key_size, value_size=m.value_size,
            max_entries=m.max_entries, map_flags=m.map_flags, name=m.name,
            btf_id=btf_obj.id if btf_obj is not None else 0, btf_key_type_id=m.btf_key_type_id,
            btf_value_type_id=m.btf_value_type_id, map_extra=m.map_extra,
        )

    def map_fd_by_id(self, map_id: int) -> int:
        """``BPF_MAP_GET_FD_BY_ID``: a new read-write handle to the map with this id (ENOENT if none)."""
        return self._handle_by_id(self._maps, map_id, "map")

    # -- objects --------------------------------------------------------------------------------

    @staticmethod
    def _pin_key(path: str) -> str:
        if not isinstance(path, str) or not path or "\0" in path:
            raise ValueError(f"invalid pin path {path!r}")
        return os.path.abspath(path)

    def obj_pin(self, fd: int, path: str) -> None:
        """``BPF_OBJ_PIN``: keep the map or program alive under ``path``, in this backend's own table of pins.

        As with the kernel, the directory must exist (ENOENT; ENOTDIR if it is no
        directory) — a real directory on any file system, where no file is created.
        EEXIST if something is pinned there already; EINVAL for BTF (the kernel pins only
        maps, programs and links).
        """
        key = self._pin_key(path)
        obj = self._handle(fd).obj
        if not isinstance(obj, MemoryMap | ProgObject):
            raise oserror(errno.EINVAL, f"handle {fd}: only maps and programs can be pinned")
        parent = os.path.dirname(key)
        if not os.path.isdir(parent):
            raise oserror(errno.ENOTDIR if os.path.exists(parent) else errno.ENOENT, parent)
        with self._lock:
            if key in self._pins:
                raise oserror(errno.EEXIST, path)
            self._pins[key] = obj
            obj.refs += 1
            obj.urefs += 1

    def obj_get(self, path: str, flags: int = 0) -> int:
        """``BPF_OBJ_GET``: a new handle to what is pinned at ``path``.

        ``flags`` are ``file_flags``: ``BPF_F_RDONLY`` or ``BPF_F_WRONLY`` open a map's
        handle read-only or write-only (a program's handle takes them and ignores them,
        as the kernel does).
        """
        if flags & ~(k.BPF_OBJ_FLAG_MASK | k.BPF_F_PATH_FD):
            raise oserror(errno.EINVAL, f"unknown file_flags {flags:#x}")
        if flags & k.BPF_F_RDONLY and flags & k.BPF_F_WRONLY:
            raise oserror(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
        key = self._pin_key(path)
        with self._lock:
            obj = self._pins.get(key)
            if obj is None:
                raise oserror(errno.ENOENT, path)
            fd = next(self._handle_numbers)
            self._handles[fd] = _Handle(obj, not flags & k.BPF_F_WRONLY, not flags & k.BPF_F_RDONLY)
            obj.refs += 1
            obj.urefs += 1
        return fd

    def obj_unpin(self, path: str) -> None:
        """Remove the pin at ``path`` (``unlink`` on bpffs); ENOENT if there is none."""
        key = self._pin_key(path)
        with self._lock:
            obj = self._pins.pop(key, None)
        if obj is None:
            raise oserror(errno.ENOENT, path)
        self._drop_user_ref(obj)

    def dup(self, fd: int) -> int:
        """A second handle to the same object, with the same mode (closed separately)."""
        with self._lock:
            h = self._handles.get(fd)
            if h is None:
                raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
            new = next(self._handle_numbers)
            self._handles[new] = _Handle(h.obj, h.read, h.write)
            h.obj.refs += 1
            h.obj.urefs += 1
        return new

    def close(self, fd: int) -> None:
        """Release a handle (EBADF if it is not open)."""
        with self._lock:
            h = self._handles.pop(fd, None)
        if h is None:
            raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
        self._drop_user_ref(h.obj)

    def _drop_user_ref(self, obj: BpfObject) -> None:
        """Drop a handle's or pin's reference; the last user reference to a program array empties it.

        That is the kernel's ``prog_array_map_clear`` on ``map_release_uref``: what keeps
        a program array's programs is user space holding the array, not the programs that
        tail-call through it (which would otherwise keep each other alive forever).
        """
        with self._lock:
            obj.urefs -= 1
            last = obj.urefs == 0
        if last and isinstance(obj, FdArrayMap) and obj.map_type == MapType.PROG_ARRAY:
            with obj.lock:
                held = obj.clear()
            for prog in held:
                self.decref(prog)
        self.decref(obj)

    # -- BTF --------------------------------------------------------------------------------------

    def btf_load(self, raw: bytes) -> int:
        """``BPF_BTF_LOAD``: parse ``raw`` with :func:`btf.load_spec` (EINVAL if it is malformed)."""
        data = bytes(raw)
        if len(data) > k.BTF_MAX_SIZE:
            raise oserror(errno.E2BIG, f"BTF of {len(data)} bytes is larger than {k.BTF_MAX_SIZE}")
        try:
            spec = btf.load_spec(data)
            for _ in spec:  # decode (and so check) every type
                pass
        except (btf.BTFError, ValueError) as err:
            raise oserror(errno.EINVAL, f"BTF rejected: {err}") from None
        check_struct_spin_locks(spec)
        obj = BtfObject(data, spec)
        with self._lock:
            obj.id = next(self._btf_ids)
            self._btfs[obj.id] = obj
        return self._new_handle(obj)

    def btf_fd_by_id(self, btf_id: int) -> int:
        """``BPF_BTF_GET_FD_BY_ID``: a new handle to the BTF object with this id (ENOENT if none)."""
        return self._handle_by_id(self._btfs, btf_id, "BTF")

    def btf_raw(self, fd: int) -> bytes:
        """The blob given to :meth:`btf_load` (EBADF if ``fd`` is not open, EINVAL if it is no BTF)."""
        obj = self._handle(fd).obj
        if not isinstance(obj, BtfObject):
            raise oserror(errno.EINVAL, f"handle {fd} is not BTF")
        return obj.raw

    # -- programs ------------------------------------------------------------------------------------

    def _used_maps(self, insns: bytes, fd_array: tuple[int, ...]) -> list[MemoryMap]:
        """``resolve_pseudo_ldimm64``: a reference to each map the instructions name, in first-use order.

        A map is named by a 64-bit load whose ``src_reg`` is ``PSEUDO_MAP_FD``/``_VALUE``
        (the immediate is a handle) or ``PSEUDO_MAP_IDX``/``_IDX_VALUE`` (an index into
        ``fd_array``). EBADF for a handle that is not open, EINVAL for one that is not a
        map, for direct value access to a map other than an array, or for a value offset
        beyond the value. On failure no reference is kept.
        """
        used: list[MemoryMap] = []
        try:
            pos, end = 0, len(insns)
            while pos < end:
                opcode, regs, _off, imm = _INSN.unpack_from(insns, pos)
                if opcode != _LD_IMM64:
                    pos += 8
                    continue
                where = f"instruction {pos // 8}"
                if pos + 16 > end:
                    raise oserror(errno.EINVAL, f"{where}: a 64-bit load without its second half")
                opcode2, regs2, off2, imm2 = _INSN.unpack_from(insns, pos + 8)
                if opcode2 or regs2 or off2:
                    raise oserror(errno.EINVAL, f"{where}: invalid second half of a 64-bit load")
                _dst, src = _regs(regs)
                if src in (_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE, _PSEUDO_MAP_IDX, _PSEUDO_MAP_IDX_VALUE):
                    fd = imm
                    if src in (_PSEUDO_MAP_IDX, _PSEUDO_MAP_IDX_VALUE):
                        if not fd_array:
                            raise oserror(errno.EPROTO, f"{where}: fd_idx without fd_array")
                        if not 0 <= imm < len(fd_array):
                            # the kernel reads whatever lies past the array: most likely no map fd
                            raise oserror(errno.EINVAL, f"{where}: fd_array index {imm} out of range")
                        fd = fd_array[imm]
                    obj = self.get_object(fd)
                    if not isinstance(obj, MemoryMap):
                        self.decref(obj)
                        raise oserror(errno.EINVAL, f"{where}: fd {fd} is not a map")
                    if obj in used:
                        self.decref(obj)
                    else:
                        used.append(obj)
                    if src in (_PSEUDO_MAP_VALUE, _PSEUDO_MAP_IDX_VALUE):
                        self._check_direct_value(obj, imm2, where)
                pos += 16
        except OSError:
            for m in used:
                self.decref(m)
            raise
        return used

    @staticmethod
    def _check_direct_value(m: MemoryMap, offset: int, where: str) -> None:
        """``map_direct_value_addr``: only arrays have it, only with one element (ENOTSUPP otherwise)."""
        if m.map_type != MapType.ARRAY:
            raise oserror(errno.EINVAL, f"{where}: no direct value access to {m.map_type} maps")
        if m.max_entries != 1:
            raise oserror(ENOTSUPP, f"{where}: direct value access to an array of {m.max_entries} elements")
        if not 0 <= offset < m.value_size:
            raise oserror(errno.EINVAL, f"{where}: value offset {offset} beyond value_size {m.value_size}")

    def _attach_target(self, a: ProgramAttrs) -> ProgObject | None:
        """The program ``attach_prog_fd`` / ``attach_btf_obj_fd`` (one field in the kernel) names, if any.

        As in ``bpf_prog_load``: a handle that is a program is the target program (returned
        with a reference taken, as the kernel's ``dst_prog``); one that is BTF would be a
        module's or the kernel's BTF, which the model has none of (ENOTSUPP, the kernel's
        answer for a program's BTF there); anything else EINVAL.
        """
        fd = a.attach_prog_fd if a.attach_prog_fd >= 0 else a.attach_btf_obj_fd
        if fd < 0:
            return None
        with self._lock:
            h = self._handles.get(fd)
            if h is not None and isinstance(h.obj, ProgObject):
                h.obj.refs += 1
                return h.obj
        if h is not None and isinstance(h.obj, BtfObject):
            raise oserror(ENOTSUPP, f"attach BTF {fd} is not a kernel or module BTF")
        raise oserror(errno.EINVAL, f"attach target {fd} is neither a program nor BTF")

    def _check_target_function(self, a: ProgramAttrs, target: ProgObject) -> None:
        """``bpf_check_attach_target`` for a target program: EINVAL where the verifier refuses.

        The target must have BTF, ``attach_btf_id`` must be a ``BTF_KIND_FUNC`` of it that
        starts one of the target's subprograms (its func info), the target must not be of
        the loading program's own type ("Cannot recursively attach"), and an extension
        may only replace global functions.
        """
        with self._lock:
            btf_obj = self._btfs.get(target.btf_id) if target.btf_id else None
        if btf_obj is None:
            raise oserror(errno.EINVAL, f"target program {target.name!r} has no BTF")
        try:
            func = btf_obj.spec.type_by_id(a.attach_btf_id)
        except (btf.BTFError, IndexError, KeyError, ValueError):
            raise oserror(errno.EINVAL, f"attach_btf_id {a.attach_btf_id} is invalid") from None
        if a.attach_btf_id not in target.func_ids or not isinstance(func, btf.Func):
            raise oserror(errno.EINVAL, f"subprog {func.name!r} (BTF id {a.attach_btf_id}) doesn't exist "
                                        f"in target program {target.name!r}")
        if target.prog_type == a.prog_type:
            raise oserror(errno.EINVAL, f"cannot recursively attach to {ProgramType(a.prog_type)} program "
                                        f"{target.name!r}")
        if a.prog_type == ProgramType.EXT and func.linkage != btf.FuncLinkage.GLOBAL:
            raise oserror(errno.EINVAL, f"cannot replace static function {func.name!r}")

    def prog_load(self, attrs: ProgramAttrs, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
        """``BPF_PROG_LOAD``: accept the program after the kernel's checks before its verifier.

        Checked, with the kernel's errno (as :class:`ProgLoadError` with an empty log):
        ``prog_flags`` (EINVAL), the instruction count (E2BIG for none or more than a
        million), the program type (EINVAL for a type Linux 6.18 does not have), the
        expected attach type and BTF target the type needs (EINVAL), the name
        (EINVAL for characters other than ``[A-Za-z0-9_.]``), every map the instructions name
        (see :meth:`_used_maps`), and with func/line info ``prog_btf_fd`` (EBADF, EINVAL) and
        the func info records (one ``BTF_KIND_FUNC`` per subprogram, at its first
        instruction: EINVAL otherwise). Without func/line info ``prog_btf_fd`` is ignored,
        as by the kernel. With a target program (``attach_prog_fd``: freplace, fentry/fexit
        on a BPF program) the verifier's checks of the target function are made too
        (:meth:`_check_target_function`, EINVAL). The program holds references to its maps,
        its target program and its BTF.

        The verifier is not modelled otherwise: a program the kernel would reject may be
        accepted here. With ``log_level`` > 0 the "log" is a one-line note saying so. ``ValueError``
        as for the kernel backend (instructions not whole slots, names longer than 15 bytes
        or with a NUL, a license with a NUL).
        """
        a = attrs
        insns = bytes(a.insns)
        if len(insns) % 8:
            raise ValueError(f"instructions of {len(insns)} bytes are not a whole number of 8-byte slots")
        if not isinstance(a.license, str) or "\0" in a.license:
            raise ValueError(f"license {a.license!r} is not a string without NUL bytes")
        name_raw = a.name.encode("utf-8", "replace")
        if len(name_raw) >= k.BPF_OBJ_NAME_LEN:
            raise ValueError(f"program name {a.name!r} is longer than {k.BPF_OBJ_NAME_LEN - 1} bytes")
        if "\0" in a.name:
            raise ValueError(f"program name {a.name!r} contains a NUL byte")
        for what, blob, rec in (("func_info", a.func_info, _FUNC_INFO_SIZE), ("line_info", a.line_info,
                                                                                  _LINE_INFO_SIZE)):
            if len(blob) % rec:
                raise ValueError(f"{what} of {len(blob)} bytes is not a whole number of {rec}-byte records")
        if log_level < 0 or log_size < 0:
            raise ValueError(f"log_level {log_level} / log_size {log_size} must not be negative")
        if a.attach_btf_obj_fd >= 0 and a.attach_prog_fd >= 0:
            raise ValueError("attach_btf_obj_fd and attach_prog_fd share one field: give one of them")
        if a.prog_flags & ~_PROG_FLAGS:
            raise _prog_error(errno.EINVAL, f"unknown prog_flags {a.prog_flags & ~_PROG_FLAGS:#x}")
        if a.prog_flags & int(ProgramFlags.TOKEN_FD):
            raise _prog_error(errno.EINVAL, "BPF_F_TOKEN_FD: this backend has no BPF tokens")
        n_insns = len(insns) // 8
        if n_insns == 0 or n_insns > _MAX_INSNS:
            raise _prog_error(errno.E2BIG, f"{n_insns} instructions (1 to {_MAX_INSNS})")
        if a.prog_type not in _KERNEL_PROG_TYPES:
            raise _prog_error(errno.EINVAL, f"unknown program type {a.prog_type}")
        try:
            target = self._attach_target(a)
        except OSError as err:
            raise _prog_error(err.errno or errno.EINVAL, str(err.strerror)) from None
        try:
            _check_attach(a, target is not None)
            if target is not None:
                self._check_target_function(a, target)
            if any(c not in _STR_NAME_CHARS for c in a.name):
                raise oserror(errno.EINVAL, f"program name {a.name!r}: only letters, digits, '_' and '.'")
            if (a.func_info or a.line_info) and a.prog_btf_fd < 0:
                raise oserror(errno.EINVAL, "func_info and line_info need prog_btf_fd")
            used: list[BpfObject] = list(self._used_maps(insns, a.fd_array))
        except OSError as err:
            if target is not None:
                self.decref(target)
            raise _prog_error(err.errno or errno.EINVAL, str(err.strerror)) from None
        if target is not None:
            used.append(target)  # the kernel's dst_prog: held while the program lives
        btf_id = 0
        func_ids: tuple[int, ...] = ()
        try:
            if a.func_info or a.line_info:  # without them the kernel ignores prog_btf_fd
                btf_obj = self._btf_object(a.prog_btf_fd)
                used.append(btf_obj)
                btf_id = btf_obj.id
                if a.func_info:
                    _check_func_info(insns, bytes(a.func_info), btf_obj.spec)
                    func_ids = tuple(type_id for _off, type_id in _FUNC_INFO.iter_unpack(bytes(a.func_info)))
            prog = ProgObject(
                prog_type=a.prog_type, name=a.name, insns=insns, license=a.license, tag=_program_tag(insns),
                expected_attach_type=a.expected_attach_type, prog_flags=a.prog_flags, used=used,
                map_ids=tuple(m.id for m in used if isinstance(m, MemoryMap)), btf_id=btf_id,
                func_ids=func_ids)
            for m in used:  # bpf_check_tail_call: a program array belongs to the first program type
                if isinstance(m, FdArrayMap) and m.map_type == MapType.PROG_ARRAY:
                    with m.lock:
                        if not m.prog_compatible(prog):
                            raise oserror(errno.EINVAL, f"program array {m.name!r} holds programs of another "
                                                        f"type than {a.prog_type}")
        except OSError as err:
            for held in used:
                self.decref(held)
            raise _prog_error(err.errno or errno.EINVAL, str(err.strerror)) from None
        with self._lock:
            prog.id = next(self._prog_ids)
            self._progs[prog.id] = prog
        fd = self._new_handle(prog)
        log = f"memory backend: {n_insns} instructions accepted without verification\n" if log_level else ""
        return fd, log

    def _prog(self, fd: int) -> ProgObject:
        """The program behind handle ``fd``: EBADF if no such handle, EINVAL if it is no program."""
        obj = self._handle(fd).obj
        if not isinstance(obj, ProgObject):
            raise oserror(errno.EINVAL, f"handle {fd} is not a program")
        return obj

    def prog_test_run(
        self, fd: int, *, data: bytes = b"", data_out_size: int = 0, ctx: bytes = b"",
        ctx_out_size: int = 0, repeat: int = 1, flags: int = 0, cpu: int = 0,
    ) -> TestRunResult:
        """``BPF_PROG_TEST_RUN``: programs cannot run here.

        After the handle checks (EBADF, EINVAL for a handle that is no program) this
        always fails with ``ENOTSUPP`` (524), the errno the kernel gives for a program type
        without a test run (``bpf_prog_test_run`` when ``ops->test_run`` is NULL), not
        ``EOPNOTSUPP`` (95).
        """
        prog = self._prog(fd)
        raise oserror(ENOTSUPP, f"MemoryBackend cannot run programs ({prog.name or 'program'} "
                                f"id {prog.id} was not run)")

    def prog_info(self, fd: int) -> ProgramInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a program (EBADFD for a handle that is not open, as for maps).

        ``tag`` is computed as Linux 6.18 does; ``xlated_prog_len`` is the length of the
        instructions as loaded (the kernel's rewrites are not modelled) and
        ``jited_prog_len`` 0 (nothing is compiled).
        """
        with self._lock:
            h = self._handles.get(fd)
        if h is None:
            raise oserror(errno.EBADFD, f"{fd} is not an open handle of this backend")
        prog = h.obj
        if not isinstance(prog, ProgObject):
            raise oserror(errno.EINVAL, f"handle {fd} is not a program")
        return ProgramInfo(type=prog.prog_type, id=prog.id, name=prog.name, tag=prog.tag,
                           xlated_prog_len=len(prog.insns), jited_prog_len=0, btf_id=prog.btf_id,
                           map_ids=prog.map_ids)

    def prog_fd_by_id(self, prog_id: int) -> int:
        """``BPF_PROG_GET_FD_BY_ID``: a new handle to the program with this id (ENOENT if none)."""
        return self._handle_by_id(self._progs, prog_id, "program")

    # -- attaching programs: nothing can be attached here ---------------------------------------------

    @staticmethod
    def _cannot_attach(what: str) -> OSError:
        return oserror(errno.EOPNOTSUPP, f"MemoryBackend cannot attach programs ({what})")

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                    target_btf_id: int = 0, cookie: int = 0, iter_info: bytes = b"") -> int:
        """``BPF_LINK_CREATE``: ``EOPNOTSUPP`` (programs cannot be attached to a model; iterators neither)."""
        raise self._cannot_attach("BPF_LINK_CREATE")

    def iter_create(self, link_fd: int) -> int:
        """``BPF_ITER_CREATE``: no handle of this backend is a link: EBADF if ``link_fd`` is not open,
        else EINVAL (as the kernel answers for a descriptor that is not an iterator link)."""
        self._handle(link_fd)
        raise oserror(errno.EINVAL, f"handle {link_fd} is not an iterator link")

    def raw_tracepoint_open(self, name: str | None, prog_fd: int, *, cookie: int = 0) -> int:
        """``BPF_RAW_TRACEPOINT_OPEN``: ``EOPNOTSUPP``."""
        raise self._cannot_attach("BPF_RAW_TRACEPOINT_OPEN")

    def prog_attach(self, prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
        """``BPF_PROG_ATTACH``: ``EOPNOTSUPP``."""
        raise self._cannot_attach("BPF_PROG_ATTACH")

    def prog_detach(self, prog_fd: int, target_fd: int, attach_type: int) -> None:
        """``BPF_PROG_DETACH``: ``EOPNOTSUPP``."""
        raise self._cannot_attach("BPF_PROG_DETACH")

    def link_info(self, fd: int) -> LinkInfo:
        """No handle of this backend is a link: EBADF if ``fd`` is not open, else EINVAL (as the kernel)."""
        self._handle(fd)
        raise oserror(errno.EINVAL, f"handle {fd} is not a link")

    def link_detach(self, fd: int) -> None:
        """No handle of this backend is a link: EBADF if ``fd`` is not open, else EINVAL (as the kernel)."""
        self._handle(fd)
        raise oserror(errno.EINVAL, f"handle {fd} is not a link")

    def perf_event_open_tracepoint(self, category: str, name: str, *, pid: int = -1, cpu: int = 0) -> int:
        """``EOPNOTSUPP``: this backend has no perf events."""
        raise self._cannot_attach("perf events")

    def perf_event_open_kprobe(self, func: str, *, retprobe: bool = False, offset: int = 0) -> int:
        """``EOPNOTSUPP``: this backend has no perf events."""
        raise self._cannot_attach("perf events")

    def perf_event_open_uprobe(self, path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                               ref_ctr_offset: int = 0) -> int:
        """``EOPNOTSUPP``: this backend has no perf events."""
        raise self._cannot_attach("perf events")

    def perf_event_set_bpf(self, perf_fd: int, prog_fd: int) -> None:
        """``EOPNOTSUPP``: this backend has no perf events."""
        raise self._cannot_attach("perf events")

    def perf_event_enable(self, perf_fd: int) -> None:
        """``EOPNOTSUPP``: this backend has no perf events."""
        raise self._cannot_attach("perf events")

    def socket_attach_filter(self, sock_fd: int, prog_fd: int) -> None:
        """``EOPNOTSUPP``: programs cannot filter real sockets from a model."""
        raise self._cannot_attach("SO_ATTACH_BPF")

    def socket_detach_filter(self, sock_fd: int) -> None:
        """``EOPNOTSUPP``."""
        raise self._cannot_attach("SO_DETACH_BPF")

    def perf_event_open_bpf_output(self, cpu: int) -> int:
        """``EOPNOTSUPP``: this backend has no perf events (so no perf event array readers)."""
        raise self._cannot_attach("perf events")


# -- programs ----------------------------------------------------------------------------------------

#: ``struct bpf_insn`` in native byte order: opcode, registers, offset, immediate.
_INSN = struct.Struct("=BBhi")
#: ``BPF_LD | BPF_IMM | BPF_DW``: the 16-byte 64-bit immediate load.
_LD_IMM64 = 0x18
#: ``src_reg`` of a 64-bit load naming a map: by fd, by fd with a value offset, by ``fd_array``
#: index, by ``fd_array`` index with a value offset; and of one loading a function's address.
_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE, _PSEUDO_MAP_IDX, _PSEUDO_MAP_IDX_VALUE = 1, 2, 5, 6
_PSEUDO_FUNC = 4
#: ``BPF_JMP | BPF_CALL`` and its ``src_reg`` for a bpf-to-bpf call.
_CALL, _PSEUDO_CALL = 0x85, 1
#: ``BPF_COMPLEXITY_LIMIT_INSNS``: the most instructions a (privileged) program may have.
_MAX_INSNS = 1_000_000
#: ``prog_flags`` Linux 6.18 knows.
_PROG_FLAGS = int(sum(ProgramFlags))
#: Program type numbers Linux 6.18 has (1 to 32).
_KERNEL_PROG_TYPES = frozenset(int(t) for t in ProgramType if t != ProgramType.UNSPEC)
#: ``sizeof(struct bpf_func_info)`` / ``sizeof(struct bpf_line_info)``.
_FUNC_INFO_SIZE, _LINE_INFO_SIZE = 8, 16
#: ``struct bpf_func_info``: instruction offset, BTF type id.
_FUNC_INFO = struct.Struct("=II")
_STR_NAME_CHARS = frozenset(chr(c) for c in _NAME_CHARS)


_A = AttachType
#: ``bpf_prog_load_check_attach``: the expected attach types a program type must have
#: (program types not listed take any).
_EXPECTED_ATTACH: dict[int, frozenset[int]] = {
    ProgramType.CGROUP_SOCK: frozenset({_A.CGROUP_INET_SOCK_CREATE, _A.CGROUP_INET_SOCK_RELEASE,
                                        _A.CGROUP_INET4_POST_BIND, _A.CGROUP_INET6_POST_BIND}),
    ProgramType.CGROUP_SOCK_ADDR: frozenset({
        _A.CGROUP_INET4_BIND, _A.CGROUP_INET6_BIND, _A.CGROUP_INET4_CONNECT, _A.CGROUP_INET6_CONNECT,
        _A.CGROUP_UNIX_CONNECT, _A.CGROUP_INET4_GETPEERNAME, _A.CGROUP_INET6_GETPEERNAME,
        _A.CGROUP_UNIX_GETPEERNAME, _A.CGROUP_INET4_GETSOCKNAME, _A.CGROUP_INET6_GETSOCKNAME,
        _A.CGROUP_UNIX_GETSOCKNAME, _A.CGROUP_UDP4_SENDMSG, _A.CGROUP_UDP6_SENDMSG, _A.CGROUP_UNIX_SENDMSG,
        _A.CGROUP_UDP4_RECVMSG, _A.CGROUP_UDP6_RECVMSG, _A.CGROUP_UNIX_RECVMSG}),
    ProgramType.CGROUP_SKB: frozenset({_A.CGROUP_INET_INGRESS, _A.CGROUP_INET_EGRESS}),
    ProgramType.CGROUP_SOCKOPT: frozenset({_A.CGROUP_GETSOCKOPT, _A.CGROUP_SETSOCKOPT}),
    ProgramType.SK_LOOKUP: frozenset({_A.SK_LOOKUP}),
    ProgramType.SK_REUSEPORT: frozenset({_A.SK_REUSEPORT_SELECT, _A.SK_REUSEPORT_SELECT_OR_MIGRATE}),
    ProgramType.NETFILTER: frozenset({_A.NETFILTER}),
    ProgramType.SYSCALL: frozenset({0}),
    ProgramType.EXT: frozenset({0}),
}
#: Program types that name their target by BTF id (``attach_btf_id``), and must.
_BTF_TARGETED = frozenset({ProgramType.TRACING, ProgramType.LSM, ProgramType.STRUCT_OPS, ProgramType.EXT})


def _check_attach(a: ProgramAttrs, dst_prog: bool) -> None:
    """``bpf_prog_load_fixup_attach_type`` and ``bpf_prog_load_check_attach``, then the verifier's
    "must provide btf_id" for tracing-like programs: EINVAL where they refuse.

    ``dst_prog``: the program names a target program (``attach_prog_fd``).
    """
    expected = a.expected_attach_type
    if a.prog_type == ProgramType.CGROUP_SOCK and expected == 0:
        expected = int(AttachType.CGROUP_INET_SOCK_CREATE)  # the kernel's fix-up for old loaders
    if a.attach_btf_id and a.prog_type not in _BTF_TARGETED:
        raise oserror(errno.EINVAL, "attach_btf_id is for tracing, lsm, struct_ops and extension programs")
    if dst_prog and a.prog_type not in (ProgramType.TRACING, ProgramType.EXT):
        raise oserror(errno.EINVAL, "attach_prog_fd is for tracing and extension programs")
    allowed = _EXPECTED_ATTACH.get(a.prog_type)
    if allowed is not None and expected not in allowed:
        raise oserror(errno.EINVAL, f"expected_attach_type {expected} for program type {a.prog_type}")
    if a.prog_type in _BTF_TARGETED and not a.attach_btf_id:
        raise oserror(errno.EINVAL, f"{ProgramType(a.prog_type)} programs must name their target by BTF id")


def _prog_error(code: int, detail: str) -> ProgLoadError:
    """A :class:`ProgLoadError` as ``BPF_PROG_LOAD`` fails before the verifier: no log."""
    plain = oserror(code, detail)
    return ProgLoadError(code, str(plain.strerror), "")


def _regs(byte: int) -> tuple[int, int]:
    """``(dst_reg, src_reg)`` of an instruction's register byte in native byte order."""
    if sys.byteorder == "little":
        return byte & 0xF, byte >> 4
    return byte >> 4, byte & 0xF


def _subprog_starts(insns: bytes) -> list[int]:
    """``add_subprog_and_kfunc``: where each subprogram starts (0 and every bpf-to-bpf call target).

    Targets are of ``call`` with ``src_reg`` ``BPF_PSEUDO_CALL`` and of 64-bit loads of a
    function address (``BPF_PSEUDO_FUNC``), both relative to the next instruction.
    """
    starts = {0}
    n = len(insns) // 8
    for i in range(n):
        opcode, regs, _off, imm = _INSN.unpack_from(insns, i * 8)
        _dst, src = _regs(regs)
        if (opcode == _CALL and src == _PSEUDO_CALL) or (opcode == _LD_IMM64 and src == _PSEUDO_FUNC):
            target = i + imm + 1
            if not 0 <= target < n:
                raise oserror(errno.EINVAL, f"instruction {i}: call to {target}, outside the program")
            starts.add(target)
    return sorted(starts)


def _check_func_info(insns: bytes, func_info: bytes, spec: btf.Spec) -> None:
    """``check_btf_func``: one record per subprogram, at its start, naming a ``BTF_KIND_FUNC``."""
    records = [struct.unpack_from("=II", func_info, pos) for pos in range(0, len(func_info), _FUNC_INFO_SIZE)]
    previous = -1
    for i, (insn_off, type_id) in enumerate(records):
        if i == 0 and insn_off:
            raise oserror(errno.EINVAL, f"nonzero insn_off {insn_off} for the first func info record")
        if insn_off <= previous:
            raise oserror(errno.EINVAL, f"func info record {i}: insn_off {insn_off} not after {previous}")
        previous = insn_off
        try:
            kind = spec.type_by_id(type_id).kind
        except (btf.BTFError, IndexError, KeyError, ValueError):
            kind = None
        if kind != btf.Kind.FUNC:
            raise oserror(errno.EINVAL, f"invalid type id {type_id} in func info")
    starts = _subprog_starts(insns)
    if [off for off, _ in records] != starts:
        raise oserror(errno.EINVAL, f"func info at instructions {[off for off, _ in records]} does not match "
                                    f"the subprograms starting at {starts}")


def _program_tag(insns: bytes) -> bytes:
    """``bpf_prog_calc_tag`` of Linux 6.18: SHA-256 of the instructions, map fds zeroed, first 8 bytes.

    The immediates of a 64-bit load of a map by fd (and of its second slot, which holds
    the value offset for ``PSEUDO_MAP_VALUE``) are unstable from user space, so they are
    cleared first; ``fd_array`` indices are kept. Kernels before 6.18 used SHA-1.
    """
    out = bytearray(insns)
    was_ld_map = False
    for pos in range(0, len(insns), 8):
        opcode, regs, off, _imm = _INSN.unpack_from(insns, pos)
        _dst, src = _regs(regs)
        if not was_ld_map and opcode == _LD_IMM64 and src in (_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE):
            was_ld_map = True
            out[pos + 4:pos + 8] = bytes(4)
        elif was_ld_map and opcode == 0 and regs == 0 and off == 0:
            was_ld_map = False
            out[pos + 4:pos + 8] = bytes(4)
        else:
            was_ld_map = False
    return hashlib.sha256(bytes(out)).digest()[:8]


#: Hash map types: their batch cursor is a u32 bucket index.
_HASH_TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                         MapType.HASH_OF_MAPS})
