"""The map kinds of :class:`~loader.memory.MemoryBackend`, one class per family of map types.

Each class models what the kernel's ``struct bpf_map_ops`` of those types does when
called from the ``bpf(2)`` system call, errno for errno (Linux 6.18):

- :class:`HashMap` — ``HASH``, ``PERCPU_HASH``, ``LRU_HASH``, ``LRU_PERCPU_HASH``,
  ``HASH_OF_MAPS`` (``kernel/bpf/hashtab.c``, ``bpf_lru_list.c``);
- :class:`ArrayMap` — ``ARRAY``, ``PERCPU_ARRAY`` (``arraymap.c``);
- :class:`FdArrayMap` — ``PROG_ARRAY``, ``PERF_EVENT_ARRAY``, ``ARRAY_OF_MAPS``
  (``arraymap.c``, ``map_in_map.c``);
- :class:`QueueStackMap` — ``QUEUE``, ``STACK`` (``queue_stack_maps.c``);
- :class:`BloomFilterMap` — ``BLOOM_FILTER`` (``bloom_filter.c``);
- :class:`RingBufMap` — ``RINGBUF`` (``ringbuf.c``): created, but no element operations.

The checks common to every map (file modes, frozen maps, ``BPF_F_LOCK``, the batch
commands a type lacks) are the backend's, as they are ``syscall.c``'s in the kernel.
A map's methods run with :attr:`MemoryMap.lock` held and may assume those checks passed
and that keys and values have the map's sizes.

Values are stored as the ``bytes`` user space sees (all CPUs' slots of
``round_up(value_size, 8)`` bytes for per-CPU maps, padding included, as the kernel
copies them), so a lookup hands out the stored object without copying.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from collections import deque
from typing import ClassVar

import attrs

import btf
from ebpfspec.enums import MapFlags, MapType
from loader.backend import BatchResult, MapAttrs
from loader.memory import kconst as k
from loader.memory.jhash import htab_hash, jhash, jhash2
from loader.memory.lru import Lru, LruNode
from loader.memory.objects import ENOTSUPP, BpfObject, BtfObject, ObjectTable, ProgObject, oserror

__all__ = [
    "MAP_CLASSES", "ArrayMap", "BloomFilterMap", "FdArrayMap", "HashMap", "InnerTemplate", "MemoryMap",
    "QueueStackMap", "RingBufMap", "map_class",
]

#: ``BPF_ANY`` / ``BPF_NOEXIST`` / ``BPF_EXIST`` / ``BPF_F_LOCK``.
ANY, NOEXIST, EXIST, F_LOCK = 0, 1, 2, 4

#: ``BPF_PROG_TYPE_EXT``: freplace programs, which take the type of the program they replace.
_PROG_TYPE_EXT = 28

#: A native-endian u32: array indices, the fds user space stores, the ids it reads back.
_U32 = struct.Struct("=I")


def _index(key: bytes) -> int:
    """An array key (a native u32) as an int."""
    i: int = _U32.unpack(key)[0]
    return i


@attrs.frozen
class InnerTemplate:
    """The kernel's ``inner_map_meta``: what an inner map of a map-in-map must look like.

    ``bpf_map_meta_equal`` compares type, key size, value size, flags and the special
    fields of the value (``btf_record_equal``: here the spin locks' offsets);
    ``array_map_meta_equal`` (arrays) also ``max_entries`` unless the template has
    ``BPF_F_INNER_MAP``.
    """

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    spin_locks: tuple[int, ...] = ()

    def matches(self, m: MemoryMap) -> bool:
        """Whether ``m`` may be stored in a map-in-map made from this template."""
        if (m.map_type != self.map_type or m.key_size != self.key_size or m.value_size != self.value_size
                or m.map_flags != self.map_flags or m.spin_locks != self.spin_locks):
            return False
        if m.meta_equal() == "array" and not self.map_flags & k.BPF_F_INNER_MAP:
            return m.max_entries == self.max_entries
        return True


class MemoryMap(BpfObject):
    """What every map kind shares: its attributes, its lock and the kernel's defaults.

    A method the map kind does not override answers what the kernel answers for a map
    type without that operation.
    """

    __slots__ = (
        "btf", "btf_key_type_id", "btf_value_type_id", "dead", "frozen", "inner", "key_size", "lock",
        "map_extra", "map_flags", "map_type", "max_entries", "name", "ncpus", "spin_locks", "table",
        "user_value_size", "value_size",
    )

    kind = "map"
    #: The map types this class models.
    TYPES: ClassVar[frozenset[MapType]] = frozenset()

    def __init__(self, a: MapAttrs, *, max_entries: int, ncpus: int, table: ObjectTable,
                 inner: InnerTemplate | None = None) -> None:
        super().__init__()
        self.map_type = MapType(a.map_type)
        self.key_size = a.key_size
        self.value_size = a.value_size
        self.max_entries = max_entries
        self.map_flags = a.map_flags
        self.map_extra = a.map_extra
        self.name = a.name
        self.ncpus = ncpus
        self.table = table
        self.inner = inner
        self.btf: BtfObject | None = None
        self.btf_key_type_id = 0
        self.btf_value_type_id = 0
        #: offsets of the value's ``struct bpf_spin_lock`` fields (from its BTF, see
        #: :mod:`loader.memory.spinlock`): user space never writes them, reads them as zeros
        self.spin_locks: tuple[int, ...] = ()
        self.lock = threading.Lock()
        self.frozen = False
        self.dead = False
        self.user_value_size = _user_value_size(self.map_type, a.value_size, ncpus)
        self._init_storage()

    def _init_storage(self) -> None:
        """Set up the (empty) storage of the map kind."""

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        """``map_alloc_check``: raise ``OSError`` for attributes the type refuses."""

    @classmethod
    def check_alloc(cls, a: MapAttrs, ncpus: int) -> int:
        """The checks ``map_alloc`` makes; returns the ``max_entries`` the map really gets."""
        return a.max_entries

    def meta_equal(self) -> str | None:
        """How the kernel compares an inner map of this type with its template (``map_meta_equal``):
        "generic", "array", or None when the type cannot be an inner map (ENOTSUPP)."""
        return "generic"

    def has_check_btf(self) -> bool:
        """Whether the type has a ``map_check_btf`` (BTF without a key type needs one)."""
        return False

    def check_btf(self, key: btf.Type | None, value: btf.Type) -> None:
        """``map_check_btf`` of the type: ``key`` is None when no key type was given.

        Called after the key and value types' sizes were found equal to the map's.
        """

    @property
    def batch_ops(self) -> frozenset[str]:
        """The batch commands the type has: "lookup", "lookup_and_delete", "update", "delete"."""
        return frozenset()

    # -- element operations ----------------------------------------------------------------------

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``; ``value`` is what the caller's value buffer holds (bloom filters)."""
        raise oserror(ENOTSUPP)

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        """``BPF_MAP_UPDATE_ELEM``."""
        raise oserror(ENOTSUPP)

    def delete(self, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM``."""
        raise oserror(ENOTSUPP)

    def pop(self, key: bytes) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` (the backend calls it only for types that have it)."""
        raise oserror(ENOTSUPP)

    def get_next_key(self, key: bytes | None) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``."""
        raise oserror(ENOTSUPP)

    # -- batches: the kernel's generic_map_*_batch ------------------------------------------------

    def lookup_batch(self, in_batch: bytes | None, batch_size: int, count: int, delete: bool) -> BatchResult:
        """``generic_map_lookup_batch``: walk with get_next_key from the last key returned.

        ``in_batch`` is that last key; entries whose lookup says ENOENT are skipped. The
        cursor is written only when an entry was returned (else it reads as zeros).
        """
        prev = None if in_batch is None else in_batch[:self.key_size]
        keys: list[bytes] = []
        values: list[bytes] = []
        done = False
        while len(keys) < count:
            try:
                nxt = self.get_next_key(prev)
            except OSError as err:
                if err.errno != errno.ENOENT:
                    raise
                done = True
                break
            try:
                value = self.lookup(nxt, None)
            except OSError as err:
                if err.errno != errno.ENOENT:
                    raise
            else:
                keys.append(nxt)
                values.append(value)
            prev = nxt
        token = prev if keys and prev is not None else b""
        return BatchResult(len(keys), b"".join(keys), b"".join(values), token.ljust(batch_size, b"\0"), done)

    def update_batch(self, keys: list[bytes], values: list[bytes], flags: int) -> int:
        """``generic_map_update_batch``: one update after the other, stopping at the first error.

        The error carries ``count``: how many entries were written before it.
        """
        for done, (key, value) in enumerate(zip(keys, values, strict=True)):
            try:
                self.update(key, value, flags)
            except OSError as err:
                err.count = done  # type: ignore[attr-defined]
                raise
        return len(keys)

    def delete_batch(self, keys: list[bytes]) -> int:
        """``generic_map_delete_batch``: one delete after the other, stopping at the first error."""
        for done, key in enumerate(keys):
            try:
                self.delete(key)
            except OSError as err:
                err.count = done  # type: ignore[attr-defined]
                raise
        return len(keys)

    # -- lifetime ---------------------------------------------------------------------------------

    def clear(self) -> list[BpfObject]:
        """Drop every element; returns the objects the elements referred to."""
        return []

    def release(self) -> list[BpfObject]:
        """Free the map: its elements and its BTF. Later operations on it fail with EBADF."""
        with self.lock:
            self.dead = True
            held = self.clear()
        if self.btf is not None:
            held.append(self.btf)
            self.btf = None
        return held


def _user_value_size(map_type: MapType, value_size: int, ncpus: int) -> int:
    """``bpf_map_value_size``: what a lookup copies out to user space."""
    if map_type.has_per_cpu_value:
        return k.round_up8(value_size) * ncpus
    if map_type.can_store_map_or_program or map_type == MapType.PERF_EVENT_ARRAY:
        return 4
    return value_size


def _check_btf_array_key(map_type: MapType, max_entries: int, key: btf.Type | None, value: btf.Type) -> None:
    """``array_map_check_btf``: a u32 key, or no key for a one-element ``.data``-style array."""
    if key is None:
        if (map_type != MapType.ARRAY or max_entries != 1
                or not isinstance(btf.skip_qualifiers_and_typedefs(value), btf.Datasec)):
            raise oserror(errno.EINVAL, "BTF without a key type is only for one-element arrays of a DATASEC")
        return
    resolved = btf.skip_qualifiers_and_typedefs(key)
    if not isinstance(resolved, btf.Int) or resolved.bits != 32 or resolved.bit_offset:
        raise oserror(errno.EINVAL, "an array's BTF key type must be a 32-bit integer")


def _array_alloc_check(a: MapAttrs, *, value_size_is_fd: bool = False) -> None:
    """``array_map_alloc_check`` (after ``fd_array_map_alloc_check`` for fd arrays)."""
    map_type = MapType(a.map_type)
    percpu = map_type == MapType.PERCPU_ARRAY
    if value_size_is_fd:
        if a.value_size != 4:
            raise oserror(errno.EINVAL, "the value of a map of fds is a 4-byte fd")
        if a.map_flags & (k.BPF_F_RDONLY_PROG | k.BPF_F_WRONLY_PROG):
            raise oserror(errno.EINVAL, "BPF_F_RDONLY_PROG/WRONLY_PROG are not for maps of fds")
    if (a.max_entries == 0 or a.key_size != 4 or a.value_size == 0
            or a.map_flags & ~k.ARRAY_CREATE_FLAG_MASK or not k.flags_access_ok(a.map_flags)
            or (percpu and a.map_flags & k.BPF_F_NUMA_NODE)):
        raise oserror(errno.EINVAL, "arrays need key_size 4, a value and max_entries; or bad flags")
    if map_type != MapType.ARRAY and a.map_flags & (k.BPF_F_MMAPABLE | k.BPF_F_INNER_MAP):
        raise oserror(errno.EINVAL, "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for plain arrays")
    if map_type != MapType.PERF_EVENT_ARRAY and a.map_flags & k.BPF_F_PRESERVE_ELEMS:
        raise oserror(errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for perf event arrays")
    if a.value_size > k.INT_MAX:
        raise oserror(errno.E2BIG, "value_size above INT_MAX")
    if percpu and k.round_up8(a.value_size) > k.PCPU_MIN_UNIT_SIZE:
        raise oserror(errno.E2BIG, f"a per-CPU value slot is at most {k.PCPU_MIN_UNIT_SIZE} bytes")


def _array_next_key(key: bytes | None, max_entries: int) -> bytes:
    """``array_map_get_next_key``: index order; a missing or out-of-range key gives index 0."""
    index = k.U32_MAX if key is None else _index(key)
    if index >= max_entries:
        return _U32.pack(0)
    if index == max_entries - 1:
        raise oserror(errno.ENOENT)
    return _U32.pack(index + 1)


# ---------------------------------------------------------------------------------- arrays


class ArrayMap(MemoryMap):
    """``ARRAY`` and ``PERCPU_ARRAY``: ``max_entries`` zero-initialised slots, never deleted.

    Storage is sparse (only slots ever written are kept), so huge arrays cost nothing
    until used.
    """

    __slots__ = ("_values", "_zero")

    TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})

    def _init_storage(self) -> None:
        self._values: dict[int, bytes] = {}
        self._zero = bytes(self.user_value_size)

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        _array_alloc_check(a)

    def meta_equal(self) -> str | None:
        return "array"

    def has_check_btf(self) -> bool:
        return True

    def check_btf(self, key: btf.Type | None, value: btf.Type) -> None:
        _check_btf_array_key(self.map_type, self.max_entries, key, value)

    @property
    def batch_ops(self) -> frozenset[str]:
        return frozenset({"lookup", "update"})

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        index = _index(key)
        if index >= self.max_entries:
            raise oserror(errno.ENOENT)
        return self._values.get(index, self._zero)

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        # array_map_update_elem / bpf_percpu_array_update (BPF_F_LOCK was refused before for values
        # without a spin lock; with one, the value is copied in place, the lock left alone)
        if flags & ~F_LOCK > EXIST:
            raise oserror(errno.EINVAL, f"unknown update flags {flags:#x}")
        index = _index(key)
        if index >= self.max_entries:
            raise oserror(errno.E2BIG, f"index {index} is beyond max_entries {self.max_entries}")
        if flags & NOEXIST:
            raise oserror(errno.EEXIST, "array elements always exist")
        self._values[index] = value

    def delete(self, key: bytes) -> None:
        raise oserror(errno.EINVAL, "array elements cannot be deleted")

    def get_next_key(self, key: bytes | None) -> bytes:
        return _array_next_key(key, self.max_entries)

    def clear(self) -> list[BpfObject]:
        self._values.clear()
        return []


class FdArrayMap(MemoryMap):
    """``PROG_ARRAY``, ``PERF_EVENT_ARRAY``, ``ARRAY_OF_MAPS``: arrays of kernel objects.

    Updates take a 4-byte fd; lookups give back the stored object's id (or ENOTSUPP for
    perf event arrays, which have no ``map_fd_sys_lookup_elem``). This backend has no
    perf events, so ``PERF_EVENT_ARRAY`` slots cannot be filled.

    A program array belongs to the type of the first program that is stored in it or
    loaded using it (``__bpf_prog_map_compatible``): programs of other types are EINVAL.
    """

    __slots__ = ("_owner_type", "_slots")

    TYPES = frozenset({MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.ARRAY_OF_MAPS})

    def _init_storage(self) -> None:
        self._slots: dict[int, BpfObject] = {}
        self._owner_type: int | None = None

    def prog_compatible(self, prog: ProgObject) -> bool:
        """``__bpf_prog_map_compatible``: the first program claims the array for its type.

        Called with :attr:`lock` held. Extension programs (``BPF_PROG_TYPE_EXT``) take their
        target's type in the kernel; the model has no targets and refuses them.
        """
        if prog.prog_type == _PROG_TYPE_EXT:
            return False
        if self._owner_type is None:
            self._owner_type = prog.prog_type
            return True
        return self._owner_type == prog.prog_type

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        _array_alloc_check(a, value_size_is_fd=True)

    def meta_equal(self) -> str | None:
        # prog arrays have no map_meta_equal: they cannot be inner maps (ENOTSUPP)
        return None if self.map_type == MapType.PROG_ARRAY else "generic"

    def has_check_btf(self) -> bool:
        return self.map_type != MapType.PROG_ARRAY  # map_check_no_btf for the others

    def check_btf(self, key: btf.Type | None, value: btf.Type) -> None:
        if self.map_type != MapType.PROG_ARRAY:
            raise oserror(ENOTSUPP, f"{self.map_type} maps take no BTF")

    @property
    def batch_ops(self) -> frozenset[str]:
        if self.map_type == MapType.ARRAY_OF_MAPS:
            return frozenset({"lookup", "update"})
        return frozenset()

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        # bpf_fd_array_map_lookup_elem
        if self.map_type == MapType.PERF_EVENT_ARRAY:
            raise oserror(ENOTSUPP, "perf event arrays cannot be read from user space")
        obj = self._slots.get(_index(key))
        if obj is None:
            raise oserror(errno.ENOENT)
        return _U32.pack(obj.id)

    def _object(self, fd: int) -> BpfObject:
        """``map_fd_get_ptr``: a reference to the object behind ``fd`` if this array may hold it."""
        if self.map_type == MapType.PERF_EVENT_ARRAY:
            raise oserror(errno.EBADF, f"fd {fd} is not a perf event")
        if self.map_type == MapType.PROG_ARRAY:
            obj = self.table.get_object(fd)
            if not isinstance(obj, ProgObject):
                self.table.decref(obj)
                raise oserror(errno.EINVAL, f"fd {fd} is not a program")
            if not self.prog_compatible(obj):
                self.table.decref(obj)
                raise oserror(errno.EINVAL, f"program {obj.name!r} (type {obj.prog_type}) does not match the "
                                            f"program array's type {self._owner_type}")
            return obj
        return _get_inner(self, fd)

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        # bpf_fd_array_map_update_elem
        if flags != ANY:
            raise oserror(errno.EINVAL, "maps of fds take only BPF_ANY")
        index = _index(key)
        if index >= self.max_entries:
            raise oserror(errno.E2BIG, f"index {index} is beyond max_entries {self.max_entries}")
        obj = self._object(_index(value))
        old = self._slots.get(index)
        self._slots[index] = obj
        if old is not None:
            self.table.decref(old)

    def delete(self, key: bytes) -> None:
        # __fd_array_map_delete_elem
        index = _index(key)
        if index >= self.max_entries:
            raise oserror(errno.E2BIG, f"index {index} is beyond max_entries {self.max_entries}")
        old = self._slots.pop(index, None)
        if old is None:
            raise oserror(errno.ENOENT)
        self.table.decref(old)

    def get_next_key(self, key: bytes | None) -> bytes:
        return _array_next_key(key, self.max_entries)

    def clear(self) -> list[BpfObject]:
        held = list(self._slots.values())
        self._slots.clear()
        return held


def _get_inner(outer: MemoryMap, fd: int) -> MemoryMap:
    """``bpf_map_fd_get_ptr``: a reference to the map behind ``fd`` if it matches ``outer``'s template."""
    obj = outer.table.get_object(fd)
    assert outer.inner is not None
    if not isinstance(obj, MemoryMap) or not outer.inner.matches(obj):
        outer.table.decref(obj)
        if not isinstance(obj, MemoryMap):
            raise oserror(errno.EINVAL, f"fd {fd} is not a map")
        raise oserror(errno.EINVAL, f"map {obj.name!r} (id {obj.id}) does not match the inner map template")
    return obj


# ------------------------------------------------------------------------------------ hashes


class _BucketIndex:
    """Which buckets of a hash map hold elements, with a fast "next non-empty from i".

    Two levels of ``bytearray`` flags (per bucket, per block of 4096 buckets) searched
    with ``bytearray.find``, so walking a sparse map of many buckets stays cheap and
    memory grows with the buckets in use, not with ``n_buckets``.
    """

    __slots__ = ("_bits", "_blocks", "_counts")

    _SHIFT = 12
    _MASK = (1 << _SHIFT) - 1

    def __init__(self, n_buckets: int) -> None:
        self._blocks = bytearray(((n_buckets - 1) >> self._SHIFT) + 1)
        self._bits: dict[int, bytearray] = {}
        self._counts: dict[int, int] = {}

    def add(self, bucket: int) -> None:
        """Mark ``bucket`` non-empty (it was empty)."""
        block = bucket >> self._SHIFT
        bits = self._bits.get(block)
        if bits is None:
            bits = self._bits[block] = bytearray(1 << self._SHIFT)
            self._counts[block] = 0
            self._blocks[block] = 1
        bits[bucket & self._MASK] = 1
        self._counts[block] += 1

    def discard(self, bucket: int) -> None:
        """Mark ``bucket`` empty (it was not)."""
        block = bucket >> self._SHIFT
        self._bits[block][bucket & self._MASK] = 0
        self._counts[block] -= 1
        if not self._counts[block]:
            del self._bits[block], self._counts[block]
            self._blocks[block] = 0

    def next(self, start: int) -> int:
        """The first non-empty bucket at or after ``start``; -1 if none."""
        block = start >> self._SHIFT
        bits = self._bits.get(block)
        if bits is not None:
            found = bits.find(1, start & self._MASK)
            if found >= 0:
                return (block << self._SHIFT) | found
        block = self._blocks.find(1, block + 1)
        if block < 0:
            return -1
        return (block << self._SHIFT) | self._bits[block].find(1)

    def clear(self) -> None:
        """Mark every bucket empty."""
        self._bits.clear()
        self._counts.clear()
        self._blocks[:] = bytes(len(self._blocks))


def _check_flags(present: bool, flags: int) -> None:
    """hashtab.c's ``check_flags``: NOEXIST on a present key, EXIST on an absent one."""
    if present and flags & ~F_LOCK == NOEXIST:
        raise oserror(errno.EEXIST)
    if not present and flags & ~F_LOCK == EXIST:
        raise oserror(errno.ENOENT)


class HashMap(MemoryMap):
    """``HASH``, ``PERCPU_HASH``, ``LRU_HASH``, ``LRU_PERCPU_HASH``, ``HASH_OF_MAPS``.

    Buckets like the kernel's: ``n_buckets = roundup_pow_of_two(max_entries)``, a new or
    replaced element goes to the head of its bucket (per-CPU and map-of-maps updates, and
    ``BPF_F_LOCK`` updates of an existing element, happen in place),
    ``get_next_key`` walks bucket by bucket from the head, and batches return whole
    buckets (ENOSPC when the first bucket does not fit). The bucket of a key is the
    kernel's ``jhash`` with seed 0, for every map: a ``BPF_F_ZERO_SEED`` map walks in
    exactly the kernel's order, and any other map spreads its keys as the kernel's
    randomly seeded hash does, but deterministically.

    LRU maps take their nodes from :class:`loader.memory.lru.Lru`, the kernel's LRU lists as
    seen from one CPU: a full map evicts several elements at once, as the kernel's does,
    and lookups from user space do not count as uses. An ``LRU_HASH`` update takes a new
    node even when the key exists (and may evict for it, even when it then fails).
    """

    __slots__ = (
        "_bucket_of", "_buckets", "_lru", "_mask", "_nodes", "_occupied", "_percpu", "_values", "n_buckets",
    )

    TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                       MapType.HASH_OF_MAPS})

    def _init_storage(self) -> None:
        self.n_buckets = k.roundup_pow_of_two(self.max_entries)
        self._mask = self.n_buckets - 1
        self._percpu = self.map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
        # key -> value (bytes; the inner map for HASH_OF_MAPS)
        self._values: dict[bytes, object] = {}
        # bucket -> its keys, oldest first (the kernel's list runs newest first); key -> its bucket
        self._buckets: dict[int, dict[bytes, None]] = {}
        self._bucket_of: dict[bytes, int] = {}
        self._occupied = _BucketIndex(self.n_buckets)
        # LRU maps: the LRU lists and each element's node
        self._lru: Lru | None = None
        self._nodes: dict[bytes, LruNode] = {}
        if self.map_type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
            self._lru = Lru(max_entries=self.max_entries, ncpus=self.ncpus,
                            percpu=bool(self.map_flags & k.BPF_F_NO_COMMON_LRU), evict=self._evict)

    # -- creation ------------------------------------------------------------------------------

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        map_type = MapType(a.map_type)
        if map_type == MapType.HASH_OF_MAPS and a.value_size != 4:  # fd_htab_map_alloc_check
            raise oserror(errno.EINVAL, "the value of a map of maps is a 4-byte fd")
        # htab_map_alloc_check
        percpu = map_type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
        lru = map_type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)
        percpu_lru = bool(a.map_flags & k.BPF_F_NO_COMMON_LRU)
        prealloc = not a.map_flags & k.BPF_F_NO_PREALLOC
        numa = bool(a.map_flags & k.BPF_F_NUMA_NODE)
        if a.map_flags & ~k.HTAB_CREATE_FLAG_MASK or not k.flags_access_ok(a.map_flags):
            raise oserror(errno.EINVAL, f"flags {MapFlags(a.map_flags)} are not for hash maps")
        if not lru and percpu_lru:
            raise oserror(errno.EINVAL, "BPF_F_NO_COMMON_LRU is for LRU maps")
        if lru and not prealloc:
            raise oserror(ENOTSUPP, "LRU maps are always preallocated (BPF_F_NO_PREALLOC)")
        if numa and (percpu or percpu_lru):
            raise oserror(errno.EINVAL, "per-CPU maps take no NUMA node")
        if a.max_entries == 0 or a.key_size == 0 or a.value_size == 0:
            raise oserror(errno.EINVAL, "hash maps need a key, a value and max_entries")
        if a.key_size + a.value_size >= k.KMALLOC_MAX_SIZE - k.HTAB_ELEM_SIZE:
            raise oserror(errno.E2BIG, "key_size + value_size too large to kmalloc")
        if percpu and k.round_up8(a.value_size) > k.PCPU_MIN_UNIT_SIZE:
            raise oserror(errno.E2BIG, f"a per-CPU value slot is at most {k.PCPU_MIN_UNIT_SIZE} bytes")

    @classmethod
    def check_alloc(cls, a: MapAttrs, ncpus: int) -> int:
        max_entries = a.max_entries
        if a.map_flags & k.BPF_F_NO_COMMON_LRU:
            # each CPU's list gets the same number (>= 1) of nodes
            rounded = -(-max_entries // ncpus) * ncpus
            max_entries = rounded if rounded <= k.U32_MAX else max_entries // ncpus * ncpus
        if max_entries > k.HTAB_MAX_ENTRIES:
            raise oserror(errno.E2BIG, f"max_entries above {k.HTAB_MAX_ENTRIES}")
        if k.roundup_pow_of_two(max_entries) > k.U32_MAX // k.HTAB_BUCKET_SIZE:
            raise oserror(errno.E2BIG, "too many buckets")
        return max_entries

    def has_check_btf(self) -> bool:
        return self.map_type == MapType.HASH_OF_MAPS  # map_check_no_btf

    def check_btf(self, key: btf.Type | None, value: btf.Type) -> None:
        if self.map_type == MapType.HASH_OF_MAPS:
            raise oserror(ENOTSUPP, "maps of maps take no BTF")

    @property
    def batch_ops(self) -> frozenset[str]:
        return frozenset({"lookup", "lookup_and_delete", "update", "delete"})

    # -- buckets ---------------------------------------------------------------------------------

    def _link(self, key: bytes) -> None:
        """Put ``key`` at the head of its bucket."""
        bucket = self._bucket_of[key] = htab_hash(key, 0) & self._mask
        keys = self._buckets.get(bucket)
        if keys is None:
            keys = self._buckets[bucket] = {}
            self._occupied.add(bucket)
        keys[key] = None

    def _relink(self, key: bytes) -> None:
        """Move ``key`` to the head of its bucket (a new element replaced it)."""
        keys = self._buckets[self._bucket_of[key]]
        del keys[key]
        keys[key] = None

    def _unlink(self, key: bytes) -> None:
        """Take ``key`` out of its bucket."""
        bucket = self._bucket_of.pop(key)
        keys = self._buckets[bucket]
        del keys[key]
        if not keys:
            del self._buckets[bucket]
            self._occupied.discard(bucket)

    def _remove(self, key: bytes) -> object:
        """Take ``key`` out of the map (its LRU node back to a free list); returns its value."""
        value = self._values.pop(key)
        self._unlink(key)
        if self._lru is not None:
            self._lru.push_free(self._nodes.pop(key))
        return value

    def _value_out(self, value: object) -> bytes:
        """What user space reads for a stored value: the bytes, or the inner map's id."""
        if isinstance(value, BpfObject):
            return _U32.pack(value.id)
        assert isinstance(value, bytes)
        return value

    # -- LRU ---------------------------------------------------------------------------------------

    def _evict(self, node: LruNode) -> None:
        """``htab_lru_map_delete_node``: the LRU evicts ``node``'s element."""
        key = node.key
        del self._values[key]
        del self._nodes[key]
        self._unlink(key)

    def _pop_free(self, key: bytes) -> LruNode:
        """``prealloc_lru_pop``: a node for a new element of ``key`` (ENOMEM if none)."""
        assert self._lru is not None
        node = self._lru.pop_free(key)
        if node is None:
            raise oserror(errno.ENOMEM, "no free LRU node")
        return node

    # -- element operations -------------------------------------------------------------------------

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        stored = self._values.get(key)
        if stored is None:
            raise oserror(errno.ENOENT)
        return self._value_out(stored)

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        if self.map_type == MapType.HASH_OF_MAPS:  # bpf_fd_htab_map_update_elem: the fd first
            inner = _get_inner(self, _index(value))
            try:
                self._update(key, inner, flags)
            except OSError:
                self.table.decref(inner)
                raise
            return
        if flags & ~F_LOCK > EXIST:
            raise oserror(errno.EINVAL, f"unknown update flags {flags:#x}")
        if self.map_type == MapType.LRU_HASH:
            self._update_lru(key, value, flags)
            return
        if self.map_type == MapType.LRU_PERCPU_HASH:
            self._update_lru_percpu(key, value, flags)
            return
        self._update(key, value, flags)

    def _update(self, key: bytes, stored: object, flags: int) -> None:
        """``htab_map_update_elem`` / ``__htab_percpu_map_update_elem``: store ``stored``
        (bytes, or a reference to an inner map, which the map then owns)."""
        if flags & ~F_LOCK > EXIST:
            raise oserror(errno.EINVAL, f"unknown update flags {flags:#x}")
        values = self._values
        present = key in values
        _check_flags(present, flags)
        if not present and len(values) >= self.max_entries:
            raise oserror(errno.E2BIG, f"the map is full ({self.max_entries} elements)")
        old = values.get(key)
        values[key] = stored
        if not present:
            self._link(key)
        elif not self._percpu and self.map_type != MapType.HASH_OF_MAPS and not flags & F_LOCK:
            self._relink(key)  # a new element at the head replaces the old one
        # per-CPU hashes and maps of maps (htab_map_update_elem_in_place, as Linux 6.18 does)
        # update the element in place: it keeps its position in the bucket; so does an
        # existing element updated with BPF_F_LOCK (copy_map_value_locked into it)
        if isinstance(old, BpfObject):
            self.table.decref(old)

    def _update_lru(self, key: bytes, value: bytes, flags: int) -> None:
        """``htab_lru_map_update_elem``: a fresh node first (it may evict), then the flags check."""
        assert self._lru is not None
        node = self._pop_free(key)
        present = key in self._values
        try:
            _check_flags(present, flags)
        except OSError:
            self._lru.push_free(node)
            raise
        self._values[key] = value
        if present:
            old = self._nodes[key]
            node.ref = True  # the replacing node is marked used
            self._nodes[key] = node
            self._relink(key)
            self._lru.push_free(old)
        else:
            self._nodes[key] = node
            self._link(key)

    def _update_lru_percpu(self, key: bytes, value: bytes, flags: int) -> None:
        """``__htab_lru_percpu_map_update_elem``: no new node for BPF_EXIST; in-place updates."""
        assert self._lru is not None
        node = self._pop_free(key) if flags != EXIST else None
        present = key in self._values
        try:
            _check_flags(present, flags)
        except OSError:
            if node is not None:
                self._lru.push_free(node)
            raise
        self._values[key] = value
        if present:
            self._nodes[key].ref = True  # bpf_lru_node_set_ref
            if node is not None:
                self._lru.push_free(node)
        else:
            assert node is not None  # BPF_EXIST on a missing key failed the flags check
            self._nodes[key] = node
            self._link(key)

    def delete(self, key: bytes) -> None:
        if key not in self._values:
            raise oserror(errno.ENOENT)
        old = self._remove(key)
        if isinstance(old, BpfObject):
            self.table.decref(old)

    def pop(self, key: bytes) -> bytes:
        if key not in self._values:
            raise oserror(errno.ENOENT)
        return self._value_out(self._remove(key))

    def get_next_key(self, key: bytes | None) -> bytes:
        # htab_map_get_next_key: the next key in the bucket, else the next non-empty bucket;
        # a key that is not there restarts from the first bucket
        start = 0
        if key is not None and key in self._values:
            bucket = self._bucket_of[key]
            newest_first = reversed(self._buckets[bucket])
            for candidate in newest_first:
                if candidate == key:
                    following = next(newest_first, None)
                    if following is not None:
                        return following
                    break
            start = bucket + 1
        if start >= self.n_buckets:
            raise oserror(errno.ENOENT)
        bucket = self._occupied.next(start)
        if bucket < 0:
            raise oserror(errno.ENOENT)
        return next(reversed(self._buckets[bucket]))

    def lookup_batch(self, in_batch: bytes | None, batch_size: int, count: int, delete: bool) -> BatchResult:
        """``__htab_map_lookup_and_delete_batch``: whole buckets, the cursor a u32 bucket index.

        ENOSPC when the first non-empty bucket holds more than ``count`` elements; the
        batch ends (without ENOENT) before a later bucket that does not fit.
        """
        bucket = 0 if in_batch is None else _index(in_batch[:4])
        if bucket >= self.n_buckets:
            return BatchResult(0, b"", b"", bytes(batch_size), True)
        keys: list[bytes] = []
        values: list[bytes] = []
        done = False
        total = 0
        while True:
            bucket = self._occupied.next(bucket)
            if bucket < 0:
                bucket = self.n_buckets
                done = True
                break
            members = self._buckets[bucket]
            if len(members) > count - total:
                if total == 0:
                    raise oserror(errno.ENOSPC, f"bucket {bucket} holds {len(members)} elements, "
                                                f"more than the batch of {count}")
                break
            taken = list(reversed(members))
            for key in taken:
                keys.append(key)
                values.append(self._value_out(self._values[key]))
            if delete:
                for key in taken:
                    old = self._remove(key)
                    if isinstance(old, BpfObject):
                        self.table.decref(old)
            total += len(taken)
            bucket += 1
            if bucket >= self.n_buckets:
                done = True
                break
        token = _U32.pack(bucket).ljust(batch_size, b"\0")
        return BatchResult(total, b"".join(keys), b"".join(values), token, done)

    def clear(self) -> list[BpfObject]:
        held = [v for v in self._values.values() if isinstance(v, BpfObject)]
        self._values.clear()
        self._buckets.clear()
        self._bucket_of.clear()
        self._occupied.clear()
        self._nodes.clear()
        self._lru = None
        return held


# --------------------------------------------------------------------- queues, stacks, bloom


class QueueStackMap(MemoryMap):
    """``QUEUE`` (FIFO) and ``STACK`` (LIFO): push with update, peek with lookup, pop with
    lookup-and-delete. ``BPF_EXIST`` on a full map drops the oldest element to make room."""

    __slots__ = ("_items", "_stack")

    TYPES = frozenset({MapType.QUEUE, MapType.STACK})

    def _init_storage(self) -> None:
        self._items: deque[bytes] = deque()
        self._stack = self.map_type == MapType.STACK

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        # queue_stack_map_alloc_check
        if (a.max_entries == 0 or a.key_size != 0 or a.value_size == 0
                or a.map_flags & ~k.QUEUE_STACK_CREATE_FLAG_MASK or not k.flags_access_ok(a.map_flags)):
            raise oserror(errno.EINVAL, "queues and stacks need key_size 0, a value and max_entries")
        if a.value_size > k.KMALLOC_MAX_SIZE:
            raise oserror(errno.E2BIG, "value_size above KMALLOC_MAX_SIZE")

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        if not self._items:
            raise oserror(errno.ENOENT)
        return self._items[-1] if self._stack else self._items[0]

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        # queue_stack_map_push_elem
        if flags & NOEXIST or flags > EXIST:
            raise oserror(errno.EINVAL, "queues and stacks take BPF_ANY or BPF_EXIST")
        if len(self._items) >= self.max_entries:
            if not flags & EXIST:
                raise oserror(errno.E2BIG, "full (BPF_EXIST replaces the oldest element)")
            self._items.popleft()
        self._items.append(value)

    def pop(self, key: bytes) -> bytes:
        if not self._items:
            raise oserror(errno.ENOENT)
        return self._items.pop() if self._stack else self._items.popleft()

    def delete(self, key: bytes) -> None:
        raise oserror(errno.EINVAL, "queues and stacks are emptied with lookup_and_delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise oserror(errno.EINVAL, "queues and stacks have no keys")

    def clear(self) -> list[BpfObject]:
        self._items.clear()
        return []


class BloomFilterMap(MemoryMap):
    """``BLOOM_FILTER``: push values with update, test them with lookup (ENOENT: surely absent).

    The bit array and hashes are the kernel's (``jhash`` of the value seeded with
    ``hash_seed + i``, masked to a power-of-2 bit count), so false positives happen as
    they would in the kernel; with ``BPF_F_ZERO_SEED`` they are the very same ones.
    """

    __slots__ = ("_bits", "_mask", "_nr_hashes", "_seed")

    TYPES = frozenset({MapType.BLOOM_FILTER})

    def _init_storage(self) -> None:
        self._nr_hashes = (self.map_extra & 0xF) or k.BLOOM_DEFAULT_HASHES
        nr_bits = self.max_entries * self._nr_hashes
        if nr_bits > k.U32_MAX or (nr_bits // 5) * 7 > 1 << 31:  # 2**32 bits at most
            self._mask = k.U32_MAX
        else:
            nr_bits = (nr_bits // 5) * 7
            self._mask = (64 if nr_bits <= 64 else k.roundup_pow_of_two(nr_bits)) - 1
        self._seed = 0 if self.map_flags & k.BPF_F_ZERO_SEED else int.from_bytes(os.urandom(4), "little")
        self._bits: set[int] = set()

    @classmethod
    def check_attrs(cls, a: MapAttrs, ncpus: int) -> None:
        if a.value_size > k.KMALLOC_MAX_SIZE:  # bloom_map_alloc_check
            raise oserror(errno.E2BIG, "value_size above KMALLOC_MAX_SIZE")

    @classmethod
    def check_alloc(cls, a: MapAttrs, ncpus: int) -> int:
        if (a.key_size != 0 or a.value_size == 0 or a.max_entries == 0
                or a.map_flags & ~k.BLOOM_CREATE_FLAG_MASK or not k.flags_access_ok(a.map_flags)
                or a.map_extra & ~0xF):
            raise oserror(errno.EINVAL, "bloom filters need key_size 0, a value, max_entries and "
                                        "at most 15 hash functions (map_extra)")
        return a.max_entries

    def has_check_btf(self) -> bool:
        return True

    def check_btf(self, key: btf.Type | None, value: btf.Type) -> None:
        if key is not None:
            raise oserror(errno.EINVAL, "bloom filters have no key type")

    def _positions(self, value: bytes) -> list[int]:
        """The bits ``value`` sets: one per hash function."""
        seed, mask = self._seed, self._mask
        if len(value) & 3 == 0:
            words = struct.unpack(f"={len(value) >> 2}I", value)
            return [jhash2(words, (seed + i) & k.U32_MAX) & mask for i in range(self._nr_hashes)]
        return [jhash(value, (seed + i) & k.U32_MAX) & mask for i in range(self._nr_hashes)]

    def lookup(self, key: bytes, value: bytes | None) -> bytes:
        probe = value if value is not None else bytes(self.value_size)
        bits = self._bits
        for position in self._positions(probe):
            if position not in bits:
                raise oserror(errno.ENOENT)
        return probe

    def update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != ANY:
            raise oserror(errno.EINVAL, "bloom filters take only BPF_ANY")
        self._bits.update(self._positions(value))

    def delete(self, key: bytes) -> None:
        raise oserror(errno.EOPNOTSUPP, "bloom filters cannot delete")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise oserror(errno.EOPNOTSUPP, "bloom filters have no keys")

    def clear(self) -> list[BpfObject]:
        self._bits.clear()
        return []


class RingBufMap(MemoryMap):
    """``RINGBUF``: can be created (and frozen, pinned, stored in maps of maps), but user space
    has no element operations on it (ENOTSUPP, as the kernel's ``ringbuf_map_*_elem``)."""

    __slots__ = ()

    TYPES = frozenset({MapType.RINGBUF})

    @classmethod
    def check_alloc(cls, a: MapAttrs, ncpus: int) -> int:
        if a.map_flags & ~k.RINGBUF_CREATE_FLAG_MASK:
            raise oserror(errno.EINVAL, f"flags {MapFlags(a.map_flags)} are not for ring buffers")
        size = a.max_entries
        if a.key_size or a.value_size or size == 0 or size & (size - 1) or size % k.PAGE_SIZE:
            raise oserror(errno.EINVAL, "a ring buffer has no key or value and a power-of-2 "
                                        f"multiple of {k.PAGE_SIZE} bytes as max_entries")
        return size


#: Every modelled map class.
MAP_CLASSES: tuple[type[MemoryMap], ...] = (HashMap, ArrayMap, FdArrayMap, QueueStackMap, BloomFilterMap,
                                            RingBufMap)
_BY_TYPE: dict[int, type[MemoryMap]] = {int(t): cls for cls in MAP_CLASSES for t in cls.TYPES}


def map_class(map_type: int) -> type[MemoryMap] | None:
    """The class modelling ``map_type``, or None if the model does not have that type."""
    return _BY_TYPE.get(map_type)
