"""BPF spin locks: maps whose BTF value holds a ``struct bpf_spin_lock``, on both backends.

Every expectation here was first observed on Linux 6.18 (the ``kernel`` parameter runs
the same assertions there): which BTF the kernel refuses at ``BPF_BTF_LOAD`` because of
a lock, which map types and flags may hold one, where in a value the kernel finds locks
(and where it does not), that lock bytes are never written from user space and read
back as zeros, ``BPF_F_LOCK`` on lookups, updates (with ``NOEXIST``/``EXIST``),
lookup-and-delete and batch ``elem_flags``, that a ``BPF_F_LOCK`` update of an existing
hash element keeps its place in the bucket, and that map-in-map templates compare the
locks. ``loader/memory/spinlock.py`` has the rules the model follows.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import btf
import ebpfspec
from btf import Array, Const, Datasec, Int, Member, Struct, Typedef, Union, Var, VarSecinfo, Volatile
from ebpfspec import MapFlags, MapSpec, MapType, UpdateFlags
from loader import Backend, BatchCursor, KeyExistsError, KeyNotFoundError, Map, MapAttrs, MapError
from tests.test_map import BACKENDS, Maps, open_backend, u32

#: The kernel's ENOTSUPP (not EOPNOTSUPP).
ENOTSUPP = 524
LOCK = int(UpdateFlags.LOCK)
NOEXIST = int(UpdateFlags.NOEXIST)
EXIST = int(UpdateFlags.EXIST)
ZERO_SEED = int(MapFlags.ZERO_SEED)
NO_PREALLOC = int(MapFlags.NO_PREALLOC)
RDONLY_PROG = int(MapFlags.RDONLY_PROG)
WRONLY_PROG = int(MapFlags.WRONLY_PROG)


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


# -- BTF ------------------------------------------------------------------------------------------------

U = Int(1, "unsigned int", 4)


def lock_type(type_id: int, size: int = 4) -> Struct:
    """``struct bpf_spin_lock { __u32 val; }`` (of ``size`` bytes) with id ``type_id``."""
    return Struct(type_id, "bpf_spin_lock", size, (Member("val", 1, 0),))


L = lock_type(2)
#: ``struct val { __u32 x; struct bpf_spin_lock lock; __u32 y; }``: the lock at byte 4.
VALUE_TYPES = btf.Spec.from_types([U, L, Struct(3, "val", 12, (Member("x", 1, 0), Member("lock", 2, 32),
                                                               Member("y", 1, 64)))])
U32 = VALUE_TYPES.type_by_id(1)
VALUE = VALUE_TYPES.type_by_id(3)
#: The same layout without a lock.
PLAIN_TYPES = btf.Spec.from_types([U, Struct(2, "plain", 12, (Member("x", 1, 0), Member("l", 1, 32),
                                                              Member("y", 1, 64)))])
PLAIN = PLAIN_TYPES.type_by_id(2)


def val(x: int, lock: int, y: int) -> bytes:
    return u32(x) + u32(lock) + u32(y)


def lock_spec(map_type: MapType = MapType.HASH, *, max_entries: int = 4, flags: int = 0,
              value: btf.Type = VALUE, name: str = "locked") -> MapSpec:
    """A map of u32 keys and 12-byte values of type ``value`` (by default the lock at 4)."""
    assert value.spec is not None
    key = value.spec.type_by_id(1)  # each spec here has its u32 as type 1
    return MapSpec(name=name, type=map_type, key_size=4, value_size=12, max_entries=max_entries, flags=flags,
                   key=key, value=value)


def errno_of(fn: Callable[[], Any]) -> int:
    """0 if ``fn()`` succeeds, else the errno it raised."""
    try:
        fn()
    except OSError as err:
        assert err.errno is not None
        return err.errno
    return 0


def load_btf(backend: Backend, types: list[btf.Type]) -> int:
    return backend.btf_load(btf.marshal_types(types, byte_order=sys.byteorder))


def create_errno(backend: Backend, types: list[btf.Type], map_type: MapType, value_id: int, *,
                 key_size: int = 4, value_size: int = 4, key_id: int = 1, flags: int = 0,
                 max_entries: int = 4, inner_map_fd: int = -1) -> int:
    """``BPF_MAP_CREATE`` with BTF ``types``: 0 if the map is made (then closed), else the errno."""
    btf_fd = load_btf(backend, types)
    try:
        fd = backend.map_create(MapAttrs(
            map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
            map_flags=flags, btf_fd=btf_fd, btf_key_type_id=key_id, btf_value_type_id=value_id,
            inner_map_fd=inner_map_fd))
    except OSError as err:
        assert err.errno is not None
        return err.errno
    finally:
        backend.close(btf_fd)
    backend.close(fd)
    return 0


# -- BPF_BTF_LOAD: structs with a bpf_spin_lock member are searched at once ----------------------------------


def _lock_at(offset: int, lock: Struct = L, size: int = 12) -> list[btf.Type]:
    return [U, lock, Struct(3, "val", size, (Member("lock", 2, offset * 8),))]


BTF_LOAD_CASES = {
    "lock at 0": (_lock_at(0), 0),
    "lock at 8": (_lock_at(8), 0),
    "lock at 2 (unaligned)": (_lock_at(2), errno.EFAULT),
    "an 8-byte struct bpf_spin_lock": (_lock_at(0, lock_type(2, 8)), errno.EFAULT),
    "two locks in one struct": ([U, L, Struct(3, "val", 8, (Member("a", 2, 0), Member("b", 2, 32)))],
                                errno.E2BIG),
    "an int named bpf_spin_lock beside a lock": (
        [U, L, Int(3, "bpf_spin_lock", 4), Struct(4, "val", 8, (Member("i", 3, 0), Member("l", 2, 32)))],
        errno.E2BIG),
    "a bitfield not on a byte beside a lock": (
        [U, L, Struct(3, "val", 8, (Member("a", 1, 0, 3), Member("b", 1, 3, 5), Member("l", 2, 32)))],
        errno.EINVAL),
    # only the first struct named bpf_spin_lock is the lock type searched for here
    "a second, 8-byte bpf_spin_lock": (
        [U, L, lock_type(3, 8), Struct(4, "val", 12, (Member("x", 1, 0), Member("l", 3, 32)))], 0),
    # structs without a direct lock member are not searched: two nested locks load
    "two locks in nested structs": (
        [U, L, Struct(3, "a", 4, (Member("l", 2, 0),)), Struct(4, "b", 4, (Member("l", 2, 0),)),
         Struct(5, "val", 8, (Member("a", 3, 0), Member("b", 4, 32)))], 0),
}


@pytest.mark.parametrize("case", list(BTF_LOAD_CASES))
def test_btf_load_refuses_misused_locks(backend: Backend, case: str) -> None:
    types, expected = BTF_LOAD_CASES[case]

    def load() -> None:
        backend.close(load_btf(backend, types))

    assert errno_of(load) == expected


# -- BPF_MAP_CREATE: which maps may hold a lock --------------------------------------------------------------

#: ``struct one { struct bpf_spin_lock lock; }``: 4 bytes, so maps of fds can be tried too.
ONE_LOCK = [U, L, Struct(3, "one", 4, (Member("lock", 2, 0),))]

#: (key_size, BTF key id) -> errno, per map type, for a value with a lock.
CREATE_CASES: dict[MapType, dict[tuple[int, int], int]] = {
    MapType.HASH: {(4, 1): 0, (4, 0): errno.EINVAL},  # hashes need a key type (no map_check_btf)
    MapType.ARRAY: {(4, 1): 0},
    MapType.PERCPU_HASH: {(4, 1): errno.EOPNOTSUPP, (4, 0): errno.EINVAL},
    MapType.PERCPU_ARRAY: {(4, 1): errno.EOPNOTSUPP, (4, 0): errno.EOPNOTSUPP},
    MapType.LRU_HASH: {(4, 1): errno.EOPNOTSUPP},
    MapType.LRU_PERCPU_HASH: {(4, 1): errno.EOPNOTSUPP},
    MapType.PROG_ARRAY: {(4, 1): errno.EOPNOTSUPP},  # the lock check comes before map_check_btf
    MapType.PERF_EVENT_ARRAY: {(4, 1): errno.EOPNOTSUPP},
    MapType.ARRAY_OF_MAPS: {(4, 1): errno.EOPNOTSUPP},
    MapType.HASH_OF_MAPS: {(4, 1): errno.EOPNOTSUPP},
    MapType.BLOOM_FILTER: {(0, 0): errno.EOPNOTSUPP},
    MapType.QUEUE: {(0, 0): errno.EINVAL},  # no map_check_btf: BTF without a key type is refused first
    MapType.STACK: {(0, 0): errno.EINVAL},
}


@pytest.mark.parametrize("map_type", list(CREATE_CASES), ids=lambda t: t.name)
def test_which_map_types_may_hold_a_lock(backend: Backend, map_type: MapType) -> None:
    inner = backend.map_create(MapAttrs(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1))
    try:
        for (key_size, key_id), expected in CREATE_CASES[map_type].items():
            got = create_errno(backend, ONE_LOCK, map_type, 3, key_size=key_size, key_id=key_id,
                               inner_map_fd=inner if map_type.is_map_in_map else -1)
            assert got == expected, (map_type, key_size, key_id)
    finally:
        backend.close(inner)


def test_a_value_that_is_the_lock_itself_has_no_lock(backend: Backend) -> None:
    """Only a lock *member* counts: a value of type ``struct bpf_spin_lock`` is four plain bytes."""
    assert create_errno(backend, [U, L], MapType.PERCPU_HASH, 2) == 0
    inner = backend.map_create(MapAttrs(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1))
    try:  # maps of maps take no BTF at all: ENOTSUPP, not the lock's EOPNOTSUPP
        assert create_errno(backend, [U, L], MapType.HASH_OF_MAPS, 2, inner_map_fd=inner) == ENOTSUPP
    finally:
        backend.close(inner)


@pytest.mark.parametrize(("flags", "expected"), [
    (RDONLY_PROG, errno.EACCES), (WRONLY_PROG, errno.EACCES), (RDONLY_PROG | WRONLY_PROG, errno.EINVAL),
    (NO_PREALLOC, 0), (int(MapFlags.RDONLY), 0),
])
def test_program_access_flags_and_locks(backend: Backend, flags: int, expected: int) -> None:
    """A value with a lock refuses BPF_F_RDONLY_PROG/WRONLY_PROG (EACCES, even on a per-CPU map:
    that check comes first); without a lock the flags are fine."""
    assert create_errno(backend, ONE_LOCK, MapType.HASH, 3, flags=flags) == expected
    if flags & (RDONLY_PROG | WRONLY_PROG) and expected == errno.EACCES:
        assert create_errno(backend, ONE_LOCK, MapType.PERCPU_HASH, 3, flags=flags) == errno.EACCES
        plain = [U, Struct(2, "one", 4, (Member("x", 1, 0),))]
        assert create_errno(backend, plain, MapType.HASH, 2, flags=flags) == 0


@pytest.mark.parametrize("map_type", [MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH,
                                      MapType.LRU_PERCPU_HASH], ids=lambda t: t.name)
def test_maps_that_cannot_hold_a_lock_are_made_without_btf(maps: Maps, map_type: MapType) -> None:
    """``Map.create`` falls back to no BTF when the kernel refuses the lock (EOPNOTSUPP); the map's
    value is then plain bytes: BPF_F_LOCK is EINVAL and the "lock" bytes are stored."""
    m = maps.create(lock_spec(map_type, max_entries=8))
    info = m.info()
    assert info.btf_id == 0 and "not supported" in info.btf_fallback
    stored = val(1, 0xDEAD, 2)
    m.update(u32(1), stored)
    got = m.lookup(u32(1))
    assert (got == [stored] * len(got)) if map_type.has_per_cpu_value else got == stored
    with pytest.raises(MapError) as err:
        m.lookup(u32(1), UpdateFlags.LOCK)
    assert err.value.errno == errno.EINVAL


# -- where the kernel finds locks in a value -----------------------------------------------------------------


def S(type_id: int, name: str, size: int, *members: tuple[int | str, ...]) -> Struct:
    """A struct from ``(name, type id, byte offset[, bitfield bits])`` members (bitfields: bit offset)."""
    made = []
    for name_, type_, offset, *bits in members:
        assert isinstance(name_, str) and isinstance(type_, int) and isinstance(offset, int)
        made.append(Member(name_, type_, offset, int(bits[0])) if bits else Member(name_, type_, 8 * offset))
    return Struct(type_id, name, size, tuple(made))


#: ``struct inner { struct bpf_spin_lock lock; }`` as type 3 (4 bytes).
INNER = S(3, "inner", 4, ("lock", 2, 0))
#: ``struct v { u32 x; <type 3> l; }``: what most cases below are about is type 3.
V8 = S(4, "v", 8, ("x", 1, 0), ("l", 3, 4))
#: twelve members of type 3 (``struct inner``), one every 4 bytes
TWELVE = [(f"i{i}", 3, 4 * i) for i in range(12)]

#: name -> (types, value type id, value size, offsets of the locks found) for a hash map's value
WHERE_CASES: dict[str, tuple[list[btf.Type], int, int, tuple[int, ...]]] = {
    "direct, at 4": ([U, L, S(3, "v", 12, ("x", 1, 0), ("l", 2, 4), ("y", 1, 8))], 3, 12, (4,)),
    "in a nested struct": ([U, L, S(3, "in", 8, ("x", 1, 0), ("l", 2, 4)),
                            S(4, "v", 12, ("y", 1, 0), ("in", 3, 4))],
                           4, 12, (8,)),
    "three levels down": ([U, L, INNER, S(4, "mid", 8, ("z", 1, 0), ("in", 3, 4)),
                           S(5, "v", 12, ("y", 1, 0), ("m", 4, 4))], 5, 12, (8,)),
    "nested struct at an unaligned offset": ([U, L, INNER, S(4, "v", 8, ("y", 1, 0), ("in", 3, 2))],
                                             4, 8, (2,)),
    "nested struct in an array of one": ([U, L, INNER, Array(4, "", 3, 1, 1),
                                          S(5, "v", 8, ("y", 1, 0), ("in", 4, 4))],
                                         5, 8, (4,)),
    "nested struct in an array of two: none": (
        [U, L, INNER, Array(4, "", 3, 1, 2), S(5, "v", 12, ("y", 1, 0), ("in", 4, 4))], 5, 12, ()),
    "locks in two nested structs: both": ([U, L, INNER, S(4, "b", 4, ("l", 2, 0)),
                                           S(5, "v", 8, ("a", 3, 0), ("b", 4, 4))],
                                          5, 8, (0, 4)),
    "direct and nested: both": ([U, L, INNER, S(4, "v", 8, ("l", 2, 0), ("a", 3, 4))], 4, 8, (0, 4)),
    "eleven nested: all": ([U, L, INNER, S(4, "v", 44, *TWELVE[:11])], 4, 44, tuple(range(0, 44, 4))),
    "twelve nested: none (E2BIG)": ([U, L, INNER, S(4, "v", 48, *TWELVE)], 4, 48, ()),
    "array of one lock": ([U, L, Array(3, "", 2, 1, 1), V8], 4, 8, (4,)),
    "array of one array of one lock": ([U, L, Array(3, "", 5, 1, 1), S(4, "v", 8, ("x", 1, 0), ("l", 3, 4)),
                                        Array(5, "", 2, 1, 1)], 4, 8, (4,)),
    "array of two locks: none": ([U, L, Array(3, "", 2, 1, 2), S(4, "v", 12, ("l", 3, 0), ("x", 1, 8))],
                                 4, 12, ()),
    "empty array of locks, then a lock": ([U, L, Array(3, "", 2, 1, 0), S(4, "v", 8, ("z", 3, 0), ("l", 2, 0),
                                                                          ("x", 1, 4))], 4, 8, (0,)),
    "typedef'd lock member: none": ([U, L, Typedef(3, "lock_t", 2), V8], 4, 8, ()),
    "const lock member: none": ([U, L, Const(3, "", 2), V8], 4, 8, ()),
    "volatile lock member: none": ([U, L, Volatile(3, "", 2), V8], 4, 8, ()),
    "typedef'd nested struct: none": ([U, L, Typedef(3, "inner_t", 5), V8, S(5, "inner", 4, ("lock", 2, 0))],
                                      4, 8, ()),
    "second struct bpf_spin_lock of 4 bytes": ([U, L, lock_type(3), V8], 4, 8, (4,)),
    "second struct bpf_spin_lock of 8 bytes: none": (
        [U, L, lock_type(3, 8), S(4, "v", 12, ("x", 1, 0), ("l", 3, 4))], 4, 12, ()),
    "union named bpf_spin_lock: none": ([U, Union(2, "bpf_spin_lock", 4, (Member("val", 1, 0),)),
                                         S(3, "v", 8, ("x", 1, 0), ("l", 2, 4))], 3, 8, ()),
    "union value: none": ([U, L, Union(3, "u", 4, (Member("lock", 2, 0), Member("x", 1, 0)))],
                          3, 4, ()),
    "lock in a union member: none": ([U, L, Union(3, "u", 4, (Member("lock", 2, 0), Member("x", 1, 0))), V8],
                                     4, 8, ()),
    "typedef'd value": ([U, L, S(3, "v", 8, ("x", 1, 0), ("l", 2, 4)), Typedef(4, "v_t", 3)], 4, 8, (4,)),
    "const value": ([U, L, S(3, "v", 8, ("x", 1, 0), ("l", 2, 4)), Const(4, "", 3)], 4, 8, (4,)),
    "a bitfield off a byte, nested lock: none": (
        [U, L, INNER, S(4, "v", 8, ("a", 1, 0, 3), ("b", 1, 3, 5), ("n", 3, 4))], 4, 8, ()),
    "a bitfield on a byte, nested lock": (
        [U, L, INNER, S(4, "v", 8, ("a", 1, 0, 8), ("b", 1, 8, 8), ("n", 3, 4))], 4, 8, (4,)),
    "res spin lock: not special here": ([U, S(2, "bpf_res_spin_lock", 8, ("a", 1, 0), ("b", 1, 4)),
                                         S(3, "v", 16, ("l", 2, 0), ("x", 1, 8))], 3, 16, ()),
}

_VARS = [U, L, Var(3, "lock", 2), Var(4, "x", 1)]


def _bss(type_id: int, size: int, *secinfos: tuple[int, int, int]) -> Datasec:
    return Datasec(type_id, ".bss", size, tuple(VarSecinfo(*v) for v in secinfos))


#: name -> (types, datasec id, size, offsets of the locks found): values of one-element arrays (.bss)
DATASEC_CASES: dict[str, tuple[list[btf.Type], int, int, tuple[int, ...]]] = {
    "lock variable at 4": ([*_VARS, _bss(5, 8, (4, 0, 4), (3, 4, 4))], 5, 8, (4,)),
    "lock variable of the wrong size: none": ([*_VARS, _bss(5, 12, (3, 0, 8), (4, 8, 4))], 5, 12, ()),
    "lock variable at 2: none": ([*_VARS, _bss(5, 8, (3, 2, 4))], 5, 8, ()),
    "two lock variables: none": ([*_VARS, Var(5, "lock2", 2), _bss(6, 8, (3, 0, 4), (5, 4, 4))], 6, 8, ()),
    "struct variable holding a lock": ([*_VARS, S(5, "s", 8, ("x", 1, 0), ("l", 2, 4)), Var(6, "s", 5),
                                        _bss(7, 12, (4, 0, 4), (6, 4, 8))], 7, 12, (8,)),
}


def _zeroed_and_lockable(backend: Backend, types: list[btf.Type], value_id: int, size: int, map_type: MapType,
                         key_id: int = 1, max_entries: int = 4) -> tuple[list[int], bool]:
    """Store all-ones, read back: which bytes came back zero, and whether BPF_F_LOCK lookups work."""
    btf_fd = load_btf(backend, types)
    try:
        fd = backend.map_create(MapAttrs(map_type=map_type, key_size=4, value_size=size,
                                         max_entries=max_entries, btf_fd=btf_fd, btf_key_type_id=key_id,
                                         btf_value_type_id=value_id))
    finally:
        backend.close(btf_fd)
    try:
        backend.map_update(fd, u32(0), b"\xff" * size)
        got = backend.map_lookup(fd, u32(0), size)
        lockable = errno_of(lambda: backend.map_lookup(fd, u32(0), size, LOCK)) == 0
    finally:
        backend.close(fd)
    return [i for i, b in enumerate(got) if b == 0], lockable


def _lock_bytes(offsets: tuple[int, ...]) -> list[int]:
    return sorted(i for off in offsets for i in range(off, off + 4))


@pytest.mark.parametrize("case", list(WHERE_CASES))
def test_where_locks_are_found(backend: Backend, case: str) -> None:
    types, value_id, size, locks = WHERE_CASES[case]
    zeroed, lockable = _zeroed_and_lockable(backend, types, value_id, size, MapType.HASH)
    assert zeroed == _lock_bytes(locks)
    assert lockable == bool(locks)


@pytest.mark.parametrize("case", list(DATASEC_CASES))
def test_locks_in_a_data_section_value(backend: Backend, case: str) -> None:
    types, datasec_id, size, locks = DATASEC_CASES[case]
    zeroed, lockable = _zeroed_and_lockable(backend, types, datasec_id, size, MapType.ARRAY, key_id=0,
                                            max_entries=1)
    assert zeroed == _lock_bytes(locks)
    assert lockable == bool(locks)


# -- lookups and updates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("map_type", [MapType.HASH, MapType.ARRAY], ids=lambda t: t.name)
def test_lock_bytes_are_never_stored(maps: Maps, map_type: MapType) -> None:
    m = maps.create(lock_spec(map_type))
    assert m.info().btf_id != 0 and not m.info().btf_fallback
    for flags in (UpdateFlags.ANY, UpdateFlags.LOCK):
        m.update(u32(1), val(1, 0xDEAD, 2), flags)
        assert m.lookup(u32(1)) == val(1, 0, 2)
        assert m.lookup(u32(1), UpdateFlags.LOCK) == val(1, 0, 2)
        m.update(u32(1), val(3, 0xBEEF, 4), UpdateFlags.LOCK | UpdateFlags.EXIST)
        assert m.lookup(u32(1), flags) == val(3, 0, 4)
    typed = m.typed()
    assert typed.lookup(1, UpdateFlags.LOCK) == {"x": 3, "lock": {"val": 0}, "y": 4}
    batched = {k: v for keys, values in m.iter_batches(flags=UpdateFlags.LOCK)
               for k, v in zip(keys, values, strict=True)}
    assert batched[u32(1)] == val(3, 0, 4)


#: (map type, flags, key present) -> errno of the update (0: it succeeds)
UPDATE_CASES = {
    (MapType.HASH, LOCK | NOEXIST, True): errno.EEXIST,
    (MapType.HASH, LOCK | NOEXIST, False): 0,
    (MapType.HASH, LOCK | EXIST, True): 0,
    (MapType.HASH, LOCK | EXIST, False): errno.ENOENT,
    (MapType.HASH, LOCK | NOEXIST | EXIST, True): errno.EINVAL,
    (MapType.HASH, LOCK | 8, True): errno.EINVAL,
    (MapType.HASH, NOEXIST | EXIST, False): errno.EINVAL,
    (MapType.ARRAY, LOCK | NOEXIST, True): errno.EEXIST,  # array elements always exist
    (MapType.ARRAY, LOCK | EXIST, True): 0,
    (MapType.ARRAY, LOCK | NOEXIST | EXIST, True): errno.EINVAL,
    (MapType.ARRAY, LOCK | 8, True): errno.EINVAL,
    (MapType.ARRAY, LOCK, False): errno.E2BIG,  # "absent": an index beyond max_entries
    (MapType.ARRAY, LOCK | EXIST, False): errno.E2BIG,
}


@pytest.mark.parametrize(("map_type", "flags", "present"), list(UPDATE_CASES),
                         ids=lambda v: v.name if isinstance(v, MapType) else str(v))
def test_update_flags_with_a_lock(maps: Maps, map_type: MapType, flags: int, present: bool) -> None:
    m = maps.create(lock_spec(map_type))
    m.update(u32(1), val(1, 0, 1))
    key = u32(1) if present else u32(100)
    got = errno_of(lambda: m.update(key, val(5, 7, 6), flags))
    assert got == UPDATE_CASES[map_type, flags, present]
    if got == 0:
        assert m.lookup(key) == val(5, 0, 6)


def _lock_ops(m: Map) -> dict[str, Callable[[], Any]]:
    """Every operation of ``m`` given ``UpdateFlags.LOCK``, by name."""
    return {
        "lookup": lambda: m.lookup(u32(1), UpdateFlags.LOCK),
        "update": lambda: m.update(u32(1), val(1, 2, 3), UpdateFlags.LOCK),
        "lookup_and_delete": lambda: m.lookup_and_delete(u32(1), UpdateFlags.LOCK),
        "batch_lookup": lambda: m.batch_lookup(BatchCursor(), 8, UpdateFlags.LOCK),
        "batch_update": lambda: m.batch_update([u32(1)], [val(1, 2, 3)], UpdateFlags.LOCK),
        "batch_delete": lambda: m.batch_delete([u32(1)], UpdateFlags.LOCK),
    }


def test_lock_flag_needs_a_value_with_a_lock(maps: Maps) -> None:
    """EINVAL for BPF_F_LOCK on maps without BTF, or whose BTF value has no lock; lookups take no
    other flag even with a lock."""
    for m in (maps.create(lock_spec(value=PLAIN, name="plain_btf")),
              maps(MapType.HASH, 4, 12, 4, name="no_btf"), maps(MapType.ARRAY, 4, 12, 4, name="array")):
        m.update(u32(1), val(1, 2, 3))
        for name, op in _lock_ops(m).items():
            # arrays have no batch delete: ENOTSUPP comes before the flags are looked at
            expected = ENOTSUPP if m.type == MapType.ARRAY and name == "batch_delete" else errno.EINVAL
            assert errno_of(op) == expected, (m.name, name)
        assert m.lookup(u32(1)) == val(1, 2, 3)  # no lock: every byte is kept
    locked = maps.create(lock_spec())
    locked.update(u32(1), val(1, 2, 3))
    for bad in (8, LOCK | 8, NOEXIST):
        assert errno_of(lambda: locked.lookup(u32(1), bad)) == errno.EINVAL  # noqa: B023
        assert errno_of(lambda: locked.lookup_and_delete(u32(1), bad)) == errno.EINVAL  # noqa: B023


def test_lookup_and_delete_with_the_lock(maps: Maps) -> None:
    h = maps.create(lock_spec())
    h.update(u32(1), val(1, 9, 2))
    assert h.lookup_and_delete(u32(1), UpdateFlags.LOCK) == val(1, 0, 2)
    with pytest.raises(KeyNotFoundError):
        h.lookup(u32(1))
    a = maps.create(lock_spec(MapType.ARRAY))
    assert errno_of(lambda: a.lookup_and_delete(u32(1), UpdateFlags.LOCK)) == ENOTSUPP  # after the lock check


#: Four keys whose jhash (seed 0) puts the first two in bucket 0 and the last two in bucket 1 of four.
SAME_BUCKET_KEYS = [bytes(4), bytes.fromhex("136da6da"), bytes.fromhex("c4e6dd78"), bytes.fromhex("b179379e")]
KERNEL_ORDER = ["136da6da", "00000000", "b179379e", "c4e6dd78"]  # the newest first in each bucket
MOVED_ORDER = ["00000000", "136da6da", "b179379e", "c4e6dd78"]  # key 0 replaced: at its bucket's head


@pytest.mark.parametrize("prealloc", [True, False], ids=["prealloc", "no_prealloc"])
@pytest.mark.parametrize(("flags", "order"), [
    (LOCK, KERNEL_ORDER), (LOCK | EXIST, KERNEL_ORDER), (0, MOVED_ORDER), (EXIST, MOVED_ORDER),
])
def test_lock_update_keeps_the_element_in_place(maps: Maps, prealloc: bool, flags: int,
                                                order: list[str]) -> None:
    """A BPF_F_LOCK update of an existing element copies into it (``copy_map_value_locked``), so
    it keeps its place in the bucket; any other update puts a new element at the head."""
    m = maps.create(lock_spec(flags=ZERO_SEED | (0 if prealloc else NO_PREALLOC)))
    for k in SAME_BUCKET_KEYS:
        m.update(k, val(1, 0, 1))
    assert [k.hex() for k in m] == KERNEL_ORDER
    m.update(SAME_BUCKET_KEYS[0], val(2, 5, 2), flags)
    assert [k.hex() for k in m] == order
    assert m.lookup(SAME_BUCKET_KEYS[0]) == val(2, 0, 2)
    # the map is full: updating an element in place still works, a new key does not fit
    m.update(SAME_BUCKET_KEYS[1], val(3, 0, 3), UpdateFlags.LOCK)
    with pytest.raises(MapError) as full:
        m.update(u32(77), val(1, 0, 1), UpdateFlags.LOCK)
    assert full.value.errno == errno.E2BIG
    with pytest.raises(KeyExistsError):
        m.update(SAME_BUCKET_KEYS[1], val(3, 0, 3), UpdateFlags.LOCK | UpdateFlags.NOEXIST)


# -- batches -------------------------------------------------------------------------------------------------


def test_batches_with_the_lock(maps: Maps, backend: Backend) -> None:
    h = maps.create(lock_spec(flags=ZERO_SEED))
    assert h.batch_update(SAME_BUCKET_KEYS, [val(i, 0xFF, i) for i in range(4)], UpdateFlags.LOCK) == 4
    assert [k.hex() for k in h] == KERNEL_ORDER
    # a BPF_F_LOCK batch update of existing elements updates them in place too
    assert h.batch_update(SAME_BUCKET_KEYS[:1], [val(9, 1, 9)], UpdateFlags.LOCK) == 1
    assert [k.hex() for k in h] == KERNEL_ORDER
    keys, values = h.batch_lookup(BatchCursor(), 8, UpdateFlags.LOCK)
    assert [k.hex() for k in keys] == KERNEL_ORDER
    assert dict(zip(keys, values, strict=True))[SAME_BUCKET_KEYS[0]] == val(9, 0, 9)
    assert all(v[4:8] == bytes(4) for v in values)
    for flags in (NOEXIST, EXIST, LOCK | NOEXIST, 8):  # elem_flags take BPF_F_LOCK alone
        with pytest.raises(MapError) as err:
            h.batch_update(SAME_BUCKET_KEYS[:1], [val(0, 0, 0)], flags)
        assert err.value.errno == errno.EINVAL
        for op in (lambda: h.batch_lookup(BatchCursor(), 8, flags),  # noqa: B023
                   lambda: h.batch_lookup_and_delete(BatchCursor(), 8, flags),  # noqa: B023
                   lambda: h.batch_delete(SAME_BUCKET_KEYS[:1], flags)):  # noqa: B023
            assert errno_of(op) == errno.EINVAL
    assert h.batch_delete(SAME_BUCKET_KEYS[:1], UpdateFlags.LOCK) == 1
    keys, values = h.batch_lookup_and_delete(BatchCursor(), 8, UpdateFlags.LOCK)
    assert len(keys) == 3 and all(v[4:8] == bytes(4) for v in values)
    assert list(h) == []

    a = maps.create(lock_spec(MapType.ARRAY))
    assert a.batch_update([u32(0), u32(3)], [val(1, 1, 1), val(2, 2, 2)], UpdateFlags.LOCK) == 2
    keys, values = a.batch_lookup(BatchCursor(), 8, UpdateFlags.LOCK)
    assert values == [val(1, 0, 1), bytes(12), bytes(12), val(2, 0, 2)]
    assert errno_of(lambda: a.batch_delete([u32(0)], UpdateFlags.LOCK)) == ENOTSUPP
    assert errno_of(lambda: a.batch_lookup_and_delete(BatchCursor(), 8, UpdateFlags.LOCK)) == ENOTSUPP


# -- maps of maps --------------------------------------------------------------------------------------------

_LOCK_AT_0 = btf.Spec.from_types([U, L, Struct(3, "v", 12, (Member("l", 2, 0), Member("x", 1, 32),
                                                             Member("y", 1, 64)))]).type_by_id(3)
#: inner map shapes: the value's lock at 4, at 0, BTF without a lock, no BTF at all
INNER_VALUES: dict[str, btf.Type | None] = {
    "lock@4": VALUE, "lock@0": _LOCK_AT_0, "no lock": PLAIN, "no btf": None,
}


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS], ids=lambda t: t.name)
@pytest.mark.parametrize("template", list(INNER_VALUES))
def test_map_in_map_templates_compare_locks(maps: Maps, outer_type: MapType, template: str) -> None:
    """``bpf_map_meta_equal`` compares the values' special fields: an inner map fits only if its
    locks are where the template's are (BTF without a lock and no BTF are alike)."""
    def inner(name: str, value: btf.Type | None) -> MapSpec:
        spec = lock_spec(value=value or PLAIN, name=name)
        return spec.replace(key=None, value=None) if value is None else spec

    outer = maps.create(MapSpec(name="outer", type=outer_type, key_size=4, value_size=4, max_entries=2,
                                inner_map=inner("tmpl", INNER_VALUES[template])))
    fits = {}
    for name, value in INNER_VALUES.items():
        candidate = maps.create(inner("cand", value))
        assert not candidate.info().btf_fallback
        fits[name] = errno_of(lambda: outer.update(u32(0), candidate))  # noqa: B023
    locks = {"lock@4": "lock@4", "lock@0": "lock@0"}.get(template)
    expected = {name: 0 if (name == locks if locks else name in ("no lock", "no btf")) else errno.EINVAL
                for name in INNER_VALUES}
    assert fits == expected


# -- from an ELF object -------------------------------------------------------------------------------------


def test_cilium_map_spin_lock_object(backend: Backend) -> None:
    """cilium/ebpf's ``map_spin_lock`` object (``struct hash_elem { int cnt; struct bpf_spin_lock
    lock; }``): loaded with the collection's BTF, its map takes BPF_F_LOCK and hides the lock."""
    from loader import load_collection
    from tests.test_cilium_conformance import TESTDATA, require

    path = TESTDATA / f"map_spin_lock-{'el' if sys.byteorder == 'little' else 'eb'}.elf"
    spec = ebpfspec.load_collection_spec(require([path] if path.exists() else [])[0])
    with load_collection(spec, backend=backend) as coll:
        m = coll.maps["spin_lock_map"]
        assert m.info().btf_id != 0 and not m.info().btf_fallback
        m.update(u32(1), u32(7) + u32(0xFFFFFFFF), UpdateFlags.LOCK | UpdateFlags.NOEXIST)
        assert m.lookup(u32(1), UpdateFlags.LOCK) == u32(7) + bytes(4)
        assert m.typed().lookup(1) == {"cnt": 7, "lock": {"val": 0}}
