"""``MemoryBackend``: the :class:`loader.backend.Backend` protocol as an in-process model.

It answers every map operation the way Linux 6.18's ``bpf(2)`` does — the same results
and the same errno for the same mistakes — without touching the kernel, so code and
tests that use maps run anywhere, without privileges. What ``kernel/bpf/syscall.c``
checks for every map (fd modes, frozen maps, flags, which batch commands a type has)
is here; what each map type does is in :mod:`loader.memory.maps`.

Handles are private numbers counted from :attr:`MemoryBackend.FIRST_HANDLE` (so they
are never mistaken for small real file descriptors). An object (map or BTF) lives while
a handle, a pin, a map-in-map slot or (for BTF) a map refers to it, exactly like a
kernel object; map and BTF ids count from 1.

Modelled map types: ``HASH``, ``ARRAY``, ``PROG_ARRAY``, ``PERF_EVENT_ARRAY``,
``PERCPU_HASH``, ``PERCPU_ARRAY``, ``LRU_HASH``, ``LRU_PERCPU_HASH``, ``ARRAY_OF_MAPS``,
``HASH_OF_MAPS``, ``QUEUE``, ``STACK``, ``RINGBUF``, ``BLOOM_FILTER``. Creating another
kernel map type fails with ``EOPNOTSUPP`` (an unknown type number with ``EINVAL``, as
in the kernel). There are no programs (so program arrays stay empty), no perf events,
no ``mmap`` and no BPF spin locks (``BPF_F_LOCK`` is ``EINVAL`` as for any map whose
value has no ``struct bpf_spin_lock``).

Pins live in the backend (no file is created), but like the kernel's they need an
existing directory (ENOENT otherwise). Besides the protocol,
:meth:`MemoryBackend.open_handles` and :meth:`MemoryBackend.live_objects` count what is
still open, for leak checks.

Where the model is narrower than the kernel: BTF is checked by :func:`btf.load_spec`
(the kernel's verifier refuses more), special BTF fields (spin locks, timers, kptrs)
are not recognised, the LRU lists are one CPU's view (see :mod:`loader.memory.lru`),
and no operation ever fails for lack of memory.

Passing a key or value of the wrong size (or a wrong ``value_size``/``key_size``
argument) raises ``ValueError``: with the kernel it would be a buffer overrun, a bug in
the caller rather than an errno.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading

import btf
from ebpfspec.enums import MapType
from loader.backend import BatchResult, MapAttrs, MapInfo
from loader.cpus import parse_cpu_list
from loader.cpus import possible_cpus as _system_possible_cpus
from loader.memory import kconst as k
from loader.memory.maps import F_LOCK, InnerTemplate, MemoryMap, map_class
from loader.memory.objects import ENOTSUPP, BpfObject, BtfObject, oserror

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


def _bad_elem_flags(flags: int) -> OSError:
    """EINVAL for batch ``elem_flags``: only BPF_F_LOCK exists, and no value here has a spin lock."""
    return oserror(errno.EINVAL, f"elem_flags {flags:#x}: only BPF_F_LOCK, for values with a bpf_spin_lock")


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
        self._map_ids = itertools.count(1)
        self._btf_ids = itertools.count(1)
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
            fd = next(self._handle_numbers)
            self._handles[fd] = _Handle(obj, read, write)
            obj.refs += 1
        return fd

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
        for held in obj.release():
            self.decref(held)

    def open_handles(self) -> int:
        """How many handles are open (not closed yet)."""
        with self._lock:
            return len(self._handles)

    def live_objects(self) -> int:
        """How many maps and BTF objects are alive (referred to by a handle, pin, map or slot)."""
        with self._lock:
            return len(self._maps) + len(self._btfs)

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
                             inner.map_flags)

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
        m.check_btf(key_type, value_type)

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
            if flags & F_LOCK:
                raise oserror(errno.EINVAL, "BPF_F_LOCK: the map's value has no bpf_spin_lock")
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
            if flags & F_LOCK:
                raise oserror(errno.EINVAL, "BPF_F_LOCK: the map's value has no bpf_spin_lock")
            m.update(bytes(key), bytes(value), flags)

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
            if flags & F_LOCK:
                raise oserror(errno.EINVAL, "BPF_F_LOCK: the map's value has no bpf_spin_lock")
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
            if elem_flags:
                raise _bad_elem_flags(elem_flags)
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
        kernel, ``elem_flags`` may only be ``BPF_F_LOCK`` (so NOEXIST/EXIST are EINVAL).
        """
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        h, m = self._write_batch_map(fd)
        if len(keys) != count * m.key_size or len(values) != count * m.user_value_size:
            raise ValueError(f"{len(keys)} bytes of keys and {len(values)} of values for {count} entries "
                             f"of {m.key_size}/{m.user_value_size} bytes")
        ks, vs = m.key_size, m.user_value_size
        key_list = [bytes(keys[i * ks:(i + 1) * ks]) for i in range(count)]
        value_list = [bytes(values[i * vs:(i + 1) * vs]) for i in range(count)]
        with m.lock:
            try:
                self._alive(m)
                if not self._writable(h, m):
                    raise _not_writable(m)
                if "update" not in m.batch_ops:
                    raise oserror(ENOTSUPP, f"{m.map_type} maps have no batch update")
                if elem_flags:
                    raise _bad_elem_flags(elem_flags)
            except OSError as err:
                raise _with_count(err) from None
            return m.update_batch(key_list, value_list, 0)

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
                if elem_flags:
                    raise _bad_elem_flags(elem_flags)
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
        with self._lock:
            m = self._maps.get(map_id)
            if m is None:
                raise oserror(errno.ENOENT, f"no map with id {map_id}")
            fd = next(self._handle_numbers)
            self._handles[fd] = _Handle(m, True, True)
            m.refs += 1
        return fd

    # -- objects --------------------------------------------------------------------------------

    @staticmethod
    def _pin_key(path: str) -> str:
        if not isinstance(path, str) or not path or "\0" in path:
            raise ValueError(f"invalid pin path {path!r}")
        return os.path.abspath(path)

    def obj_pin(self, fd: int, path: str) -> None:
        """``BPF_OBJ_PIN``: keep the map alive under ``path``, in this backend's own table of pins.

        As with the kernel, the directory must exist (ENOENT; ENOTDIR if it is no
        directory) — a real directory on any file system, where no file is created.
        EEXIST if something is pinned there already; EINVAL for objects other than maps.
        """
        key = self._pin_key(path)
        obj = self._handle(fd).obj
        if not isinstance(obj, MemoryMap):
            raise oserror(errno.EINVAL, f"handle {fd}: only maps can be pinned here")
        parent = os.path.dirname(key)
        if not os.path.isdir(parent):
            raise oserror(errno.ENOTDIR if os.path.exists(parent) else errno.ENOENT, parent)
        with self._lock:
            if key in self._pins:
                raise oserror(errno.EEXIST, path)
            self._pins[key] = obj
            obj.refs += 1

    def obj_get(self, path: str, flags: int = 0) -> int:
        """``BPF_OBJ_GET``: a new handle to what is pinned at ``path``.

        ``flags`` are ``file_flags``: ``BPF_F_RDONLY`` or ``BPF_F_WRONLY`` open the handle
        read-only or write-only.
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
        return fd

    def obj_unpin(self, path: str) -> None:
        """Remove the pin at ``path`` (``unlink`` on bpffs); ENOENT if there is none."""
        key = self._pin_key(path)
        with self._lock:
            obj = self._pins.pop(key, None)
        if obj is None:
            raise oserror(errno.ENOENT, path)
        self.decref(obj)

    def dup(self, fd: int) -> int:
        """A second handle to the same object, with the same mode (closed separately)."""
        with self._lock:
            h = self._handles.get(fd)
            if h is None:
                raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
            new = next(self._handle_numbers)
            self._handles[new] = _Handle(h.obj, h.read, h.write)
            h.obj.refs += 1
        return new

    def close(self, fd: int) -> None:
        """Release a handle (EBADF if it is not open)."""
        with self._lock:
            h = self._handles.pop(fd, None)
        if h is None:
            raise oserror(errno.EBADF, f"{fd} is not an open handle of this backend")
        self.decref(h.obj)

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
        obj = BtfObject(data, spec)
        with self._lock:
            obj.id = next(self._btf_ids)
            self._btfs[obj.id] = obj
        return self._new_handle(obj)


#: Hash map types: their batch cursor is a u32 bucket index.
_HASH_TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                         MapType.HASH_OF_MAPS})
