"""Random map operations on both backends in lockstep, and exact buffer sizes at the kernel boundary.

**Lockstep** (:func:`test_lockstep`): for every map type the ``MemoryBackend`` models,
a few shapes (key/value sizes, max_entries, flags) are drawn from a seeded generator;
each shape is created on the kernel and in the model, and one random program of
100 operations — lookups, updates with every flag (valid or not), deletes, pops, peeks,
membership, full iteration, batch lookups (with and without delete) with random counts,
batch updates and deletes, keys and values of the wrong size now and then — runs on both.
Every operation must give the same result, or the same error class and errno; after each
operation that changes the map, and at the end, the whole contents must match too.

So that the two stay comparable without modelling the kernel's randomness:

* hash maps and bloom filters are created with ``BPF_F_ZERO_SEED`` (hash order and bloom
  bits are then the kernel's exactly; the model uses the same jhash);
* LRU maps get 256 entries and keys from a space of 32, so no eviction happens (the
  kernel's per-CPU LRU free lists evict at times the model does not reproduce);
* ids (program arrays, maps of maps) are compared as "which object of my pool".

Hash and array shapes whose BTF value holds a ``struct bpf_spin_lock`` (``Shape.spin_lock``)
run with ``BPF_F_LOCK`` on lookups, updates and batches much of the time, and random bytes
where the lock is (which must never be stored).

**Buffer sizes** (:func:`test_buffer_sizes_are_exactly_what_the_kernel_uses`): the same
kind of program runs on a :class:`CheckedKernelBackend`, a ``KernelBackend`` whose map
methods first assert, from ``BPF_OBJ_GET_INFO_BY_FD``, that every key is ``key_size``
bytes, every value ``value_size`` (per-CPU: ``round_up(value_size, 8) * possible CPUs``;
4 for maps of fds), every batch buffer ``count`` entries, the batch cursor at least what
the kernel copies (4 bytes for hash maps, ``key_size`` for arrays) — and that what comes
back has those sizes too.

**Iteration bounds** (:func:`test_iteration_is_bounded_by_max_entries`): a walk over a map
that never stops changing still ends, after at most ``2 * max_entries`` keys.

Everything is seeded (``SEED``); the module runs a few thousand operations per backend
in a few seconds.
"""

from __future__ import annotations

import errno
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import btf
import ebpfspec
import loader
from ebpfspec import MapFlags, MapSpec, MapType, UpdateFlags
from loader import Backend, BatchCursor, Map, load_collection
from loader.backend import BatchResult
from loader.errors import LoaderError
from tests.conftest import TESTDATA

SEED = 0x5EED_0007
OPS_PER_MAP = 100
ZERO_SEED = int(MapFlags.ZERO_SEED)
NO_PREALLOC = int(MapFlags.NO_PREALLOC)
HASHES = (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.HASH_OF_MAPS)
INNER = MapSpec(name="inner", type=MapType.ARRAY, key_size=4, value_size=8, max_entries=2)


@dataclass(frozen=True)
class Shape:
    """One map to create (on each backend), and the key space operations draw from."""

    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    map_extra: int = 0
    key_space: int = 0  # distinct keys the operations use (0: about twice max_entries)
    spin_lock: int = -1  # offset of a struct bpf_spin_lock in the BTF value (-1: no BTF)

    @property
    def id(self) -> str:
        return (f"{self.type.name.lower()}-k{self.key_size}v{self.value_size}m{self.max_entries}"
                f"f{self.flags:#x}" + (f"x{self.map_extra}" if self.map_extra else "")
                + (f"l{self.spin_lock}" if self.spin_lock >= 0 else ""))

    def spec(self) -> MapSpec:
        inner = INNER if self.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) else None
        key = value = None
        if self.spin_lock >= 0:  # key: an int of key_size bytes; value: a struct with the lock
            types = btf.Spec.from_types([
                btf.Int(1, "unsigned int", 4),
                btf.Struct(2, "bpf_spin_lock", 4, (btf.Member("val", 1, 0),)),
                btf.Struct(3, "fuzz_value", self.value_size, (btf.Member("lock", 2, 8 * self.spin_lock),)),
                btf.Int(4, "fuzz_key", self.key_size),
            ])
            key, value = types.type_by_id(4), types.type_by_id(3)
        return MapSpec(name="fuzz", type=self.type, key_size=self.key_size, value_size=self.value_size,
                       max_entries=self.max_entries, flags=self.flags, map_extra=self.map_extra,
                       inner_map=inner, key=key, value=value)


def shapes(seed: int) -> list[Shape]:
    """Two or three shapes per modelled map type, drawn from ``seed``."""
    rng = random.Random(seed)
    out: list[Shape] = []
    for _ in range(2):
        for t in (MapType.HASH, MapType.PERCPU_HASH):
            out.append(Shape(t, rng.choice((1, 4, 8, 13)), rng.choice((1, 3, 8, 12, 100)),
                             rng.choice((1, 8, 33)), ZERO_SEED | rng.choice((0, NO_PREALLOC))))
        for t in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
            out.append(Shape(t, rng.choice((4, 8)), rng.choice((3, 8, 24)), 256, ZERO_SEED, key_space=32))
        for t in (MapType.ARRAY, MapType.PERCPU_ARRAY):
            out.append(Shape(t, 4, rng.choice((1, 3, 4, 8, 24)), rng.choice((1, 5, 16))))
        for t in (MapType.QUEUE, MapType.STACK):
            out.append(Shape(t, 0, rng.choice((1, 4, 9)), rng.choice((1, 3, 8))))
        bloom_value, hashes = rng.choice((4, 8, 5)), rng.choice((1, 3, 5))
        out.append(Shape(MapType.BLOOM_FILTER, 0, bloom_value, 64, ZERO_SEED, hashes))
        out.append(Shape(MapType.ARRAY_OF_MAPS, 4, 4, rng.choice((1, 4))))
        out.append(Shape(MapType.HASH_OF_MAPS, 4, 4, rng.choice((1, 4)), ZERO_SEED))
        out.append(Shape(MapType.PROG_ARRAY, 4, 4, rng.choice((1, 4))))
    out.append(Shape(MapType.PERF_EVENT_ARRAY, 4, 4, 4))
    out.append(Shape(MapType.RINGBUF, 0, 0, 4096))
    locks = random.Random(seed ^ 0x1F0C)  # (a generator of their own: the shapes above stay as they were)
    for _ in range(2):
        size = locks.choice((4, 8, 12, 24))
        out.append(Shape(MapType.HASH, locks.choice((4, 8)), size, locks.choice((1, 8, 33)),
                         ZERO_SEED | locks.choice((0, NO_PREALLOC)), spin_lock=locks.randrange(0, size, 4)))
        size = locks.choice((4, 8, 12, 24))
        out.append(Shape(MapType.ARRAY, 4, size, locks.choice((1, 5, 16)),
                         spin_lock=locks.randrange(0, size, 4)))
    return list({s.id: s for s in out}.values())


SHAPES = shapes(SEED)


def test_every_modelled_map_type_is_fuzzed() -> None:
    """The shapes cover every map type the MemoryBackend models (see its docstring)."""
    modelled = {MapType.HASH, MapType.ARRAY, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
                MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
                MapType.BLOOM_FILTER}
    assert {s.type for s in SHAPES} == modelled
    assert len(SHAPES) >= 2 * len(modelled) - 4
    assert {s.type for s in SHAPES if s.spin_lock >= 0} == {MapType.HASH, MapType.ARRAY}


# -- one side of the lockstep: a map, its pool of objects, and how results are compared ----------------


@dataclass
class Side:
    """A map on one backend, with the objects (inner maps, programs) its values may be."""

    backend: Backend
    map: Map
    pool: list[Any] = field(default_factory=list)
    ids: dict[int, int] = field(default_factory=dict)  # kernel id -> index in pool
    owned: list[Any] = field(default_factory=list)  # closed at the end

    def resolve(self, value: Any) -> Any:
        """``value``, or the pool object an int value stands for."""
        if isinstance(value, int) and not isinstance(value, bool):
            return self.pool[value % len(self.pool)]
        return value

    def close(self) -> None:
        self.map.close()
        for obj in self.owned:
            obj.close()


def make_side(backend: Backend, shape: Shape) -> Side:
    """Create the map of ``shape`` on ``backend`` and its pool of values for maps of fds."""
    side = Side(backend, Map.create(shape.spec(), backend))
    if shape.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        inner = [Map.create(INNER.replace(name=f"inner{i}"), backend) for i in range(3)]
        odd_spec = MapSpec(name="odd", type=MapType.HASH, key_size=4, value_size=8, max_entries=2)
        odd = Map.create(odd_spec, backend)
        side.pool = [*inner, odd]  # the last does not match the template: EINVAL on update
        side.owned = list(side.pool)
    elif shape.type in (MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY):
        spec = ebpfspec.load_collection_spec(TESTDATA / "xdp_test-el.o")
        coll = load_collection(spec, backend=backend, only=["xdp_len_filter", "xdp_tail", "sock_len_filter"])
        side.pool = [coll.programs[name] for name in ("xdp_len_filter", "xdp_tail", "sock_len_filter")]
        side.owned = [coll]
    side.ids = {obj.info().id: i for i, obj in enumerate(side.pool)}
    return side


def normalize(side: Side, shape: Shape, value: Any) -> Any:
    """A result as comparable across backends: object ids become pool indexes."""
    if shape.type.can_store_map_or_program and isinstance(value, int) and not isinstance(value, bool):
        return ("object", side.ids.get(value, f"foreign id {value}"))
    if isinstance(value, tuple):
        return tuple(normalize(side, shape, v) for v in value)
    if isinstance(value, list):
        return [normalize(side, shape, v) for v in value]
    return value


def outcome(side: Side, shape: Shape, op: Callable[[Side], Any], *, ids: bool = True) -> Any:
    """``op(side)``'s result (``ids``: with object ids normalised), or ``("error", class, errno)``."""
    try:
        result = op(side)
    except (LoaderError, ValueError, KeyError, OSError) as err:
        return ("error", type(err).__name__, getattr(err, "errno", None))
    return ("ok", normalize(side, shape, result) if ids else result)


def contents(side: Side) -> Any:
    """Everything in the map that user space can see, in the kernel's order."""
    m = side.map
    if not m.type.has_key or m.type == MapType.PERF_EVENT_ARRAY:
        return None
    return list(m.items())


# -- the random program -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation. Values that are ints stand for objects of a side's pool (maps of fds)."""

    #: lookup, update, delete, lookup_and_delete, contains, keys, batches, batch_update, batch_delete
    kind: str
    key: bytes | None = None
    value: Any = None
    flags: int = 0
    count: int = 0
    delete: bool = False
    pairs: tuple[tuple[bytes | None, Any], ...] = ()

    @property
    def returns_ids(self) -> bool:
        """Whether the result holds stored objects' ids (not counts, keys or booleans)."""
        return self.kind in ("lookup", "lookup_and_delete", "batches")

    @property
    def changes(self) -> bool:
        """Whether the map may differ afterwards."""
        return self.kind in ("update", "delete", "lookup_and_delete", "batch_update", "batch_delete") or (
            self.kind == "batches" and self.delete)

    def run(self, side: Side) -> Any:
        """Apply to ``side``'s map; returns what the ``Map`` method returned."""
        m = side.map
        if self.kind == "lookup":
            return m.lookup(self.key, self.flags)
        if self.kind == "update":
            return m.update(self.key, side.resolve(self.value), self.flags)
        if self.kind == "delete":
            return m.delete(self.key)  # type: ignore[arg-type]  # None on purpose for key-less maps
        if self.kind == "lookup_and_delete":
            return m.lookup_and_delete(self.key, self.flags)
        if self.kind == "contains":
            return self.value in m
        if self.kind == "keys":
            return list(m.keys())
        if self.kind == "batches":
            return batches(m, self.count, self.delete, self.flags)
        if self.kind == "batch_update":
            return m.batch_update([k for k, _ in self.pairs],  # type: ignore[misc]
                                  [side.resolve(v) for _, v in self.pairs], self.flags)
        if self.kind == "batch_delete":
            return m.batch_delete([k for k, _ in self.pairs], self.flags)  # type: ignore[misc]
        raise AssertionError(self.kind)


class Program:
    """A seeded sequence of operations for one shape."""

    def __init__(self, shape: Shape, cpus: int, seed: str):
        self.shape = shape
        self.cpus = cpus
        self.rng = random.Random(seed)
        space = shape.key_space or (max(2 * shape.max_entries, 4) if shape.type in HASHES
                                    else shape.max_entries + 2)
        self.keys = [self.key_for(i) for i in range(space)]

    def key_for(self, i: int) -> bytes:
        """Key ``i``: array indexes stay small (a few beyond max_entries); hash keys are spread out."""
        size = self.shape.key_size
        if not size:
            return b""
        n = i if self.shape.type not in HASHES else i * 0x9E3779B1
        return (n & ((1 << (8 * size)) - 1)).to_bytes(size, sys.byteorder)

    # -- random ingredients ---------------------------------------------------------------------------

    def key(self) -> bytes | None:
        rng, size = self.rng, self.shape.key_size
        if rng.random() < 0.04:  # a key of the wrong size: ValueError before any call, on both
            return bytes(rng.choice([s for s in (0, 1, 3, 4, 5, 8, 16) if s != size]))
        if not size:
            return None
        return rng.choice(self.keys)

    def value(self) -> Any:
        rng, size, t = self.rng, self.shape.value_size, self.shape.type
        if t.can_store_map_or_program:
            return rng.randrange(4)  # an index into the pool (resolved per side)
        if rng.random() < 0.03:
            return bytes(size + rng.choice((-1, 1, 8))) if size else b"x"
        if t.has_per_cpu_value:
            if rng.random() < 0.3:
                return rng.randbytes(size)  # one value for every CPU
            return [rng.randbytes(size) for _ in range(rng.randint(1, self.cpus + (rng.random() < 0.1)))]
        return rng.randbytes(size)

    def flags(self) -> int:
        """Mostly ``ANY`` (all that maps of fds, queues and bloom filters take), sometimes worse.

        With a spin lock in the value, ``LOCK`` (alone or with ``NOEXIST``/``EXIST``) half the time.
        """
        if self.shape.spin_lock >= 0 and self.rng.random() < 0.5:
            return int(UpdateFlags.LOCK) | int(self.rng.choice((UpdateFlags.ANY, UpdateFlags.NOEXIST,
                                                                 UpdateFlags.EXIST, UpdateFlags.ANY)))
        roll = self.rng.random()
        if roll < 0.08:
            return int(self.rng.choice((UpdateFlags.LOCK, 3, 8, 1 << 31)))
        if roll < 0.4:
            return int(self.rng.choice((UpdateFlags.NOEXIST, UpdateFlags.EXIST)))
        return int(UpdateFlags.ANY)

    def read_flags(self) -> int:
        """Lookup and batch flags: 0, except for values with a spin lock (mostly ``LOCK``, now and
        then something the kernel refuses)."""
        if self.shape.spin_lock < 0:
            return 0  # (no random draw: the programs of the other shapes stay as they were)
        return self.rng.choice((0, int(UpdateFlags.LOCK), int(UpdateFlags.LOCK), int(UpdateFlags.LOCK),
                                int(UpdateFlags.EXIST), 8))

    def count(self) -> int:
        rng = self.rng
        return rng.choice((0, -1)) if rng.random() < 0.04 else rng.randint(1, self.shape.max_entries + 3)

    # -- operations -------------------------------------------------------------------------------------

    def ops(self, n: int) -> Iterator[Op]:
        """``n`` random operations."""
        keyed = self.shape.type.has_key
        rng = self.rng
        for _ in range(n):
            roll = rng.random()
            if keyed and roll < 0.25:
                yield Op("lookup", self.key(), flags=self.read_flags())
            elif roll < 0.55:
                key = self.key() if keyed or rng.random() < 0.1 else None
                yield Op("update", key, self.value(), self.flags())
            elif roll < 0.65:
                yield Op("delete", self.key())
            elif roll < 0.75:
                yield Op("lookup_and_delete" if roll < 0.7 else "lookup", self.key() if keyed else None,
                         flags=self.read_flags())
            elif roll < 0.8:
                yield Op("contains", value=self.key() if keyed else self.value())
            elif roll < 0.85:
                yield Op("keys")
            elif roll < 0.93:
                yield Op("batches", count=self.count(), delete=rng.random() < 0.3, flags=self.read_flags())
            elif roll < 0.97:
                pairs = tuple((self.key(), self.value()) for _ in range(rng.randint(1, 4)))
                yield Op("batch_update", pairs=pairs, flags=self.flags())
            else:
                yield Op("batch_delete", pairs=tuple((self.key(), None) for _ in range(rng.randint(1, 4))),
                         flags=self.read_flags())


def batches(m: Map, count: int, delete: bool, flags: int = 0) -> list[Any]:
    """Every batch from a fresh cursor (at most 64 rounds), as one list of outcomes."""
    cursor, got = BatchCursor(), []
    for _ in range(64):
        keys, values = (m.batch_lookup_and_delete if delete else m.batch_lookup)(cursor, count, flags)
        got.append((keys, values))
        if cursor.done or not keys:
            break
    return got


# -- the lockstep test -------------------------------------------------------------------------------------


def kernel_backend() -> Backend:
    from tests.test_map import kernel_backend as shared

    return shared()


#: MemoryBackend finding: Linux 6.18 replaces the value of an existing HASH_OF_MAPS key in place.
#: Shapes whose seeded program hits a known difference between the model and the kernel.
KNOWN_DIFFERENCES: dict[str, str] = {}


@pytest.mark.kernel
@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", [
    pytest.param(s, id=s.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[s.id])]
                 if s.id in KNOWN_DIFFERENCES else [])
    for s in SHAPES
])
def test_lockstep(shape: Shape) -> None:
    kernel = kernel_backend()
    memory = loader.MemoryBackend(possible_cpus=kernel.possible_cpus())
    created = [outcome_of_create(b, shape) for b in (kernel, memory)]
    assert created[0][0] == created[1][0], f"create: kernel {created[0][0]} != memory {created[1][0]}"
    sides = [side for _, side in created if side is not None]
    if len(sides) < 2:
        return
    if shape.spin_lock >= 0:  # the lock is really there: the map was made with its BTF
        assert [s.map.info().btf_fallback for s in sides] == ["", ""]
    try:
        program = Program(shape, kernel.possible_cpus(), f"{SEED}/{shape.id}")
        for step, op in enumerate(program.ops(OPS_PER_MAP)):
            results = [outcome(s, shape, op.run, ids=op.returns_ids) for s in sides]
            assert results[0] == results[1], f"op {step} {op}:\n kernel {results[0]}\n memory {results[1]}"
            if op.changes:
                states = [outcome(s, shape, contents) for s in sides]
                assert states[0] == states[1], (
                    f"after op {step} {op}:\n kernel {states[0]}\n memory {states[1]}")
    finally:
        for s in sides:
            s.close()
    assert memory.open_handles() == 0


@pytest.mark.kernel
def test_hash_of_maps_update_keeps_its_place() -> None:
    """Two keys in one bucket of a HASH_OF_MAPS (zero seed): replacing the second one's inner
    map leaves the walk order as it was on the kernel; the model must do the same."""
    kernel = kernel_backend()
    shape = Shape(MapType.HASH_OF_MAPS, 4, 4, 4, ZERO_SEED)
    keys = [bytes(4), bytes.fromhex("136da6da"), bytes.fromhex("c4e6dd78"), bytes.fromhex("b179379e")]
    orders = []
    for backend in (kernel, loader.MemoryBackend(possible_cpus=kernel.possible_cpus())):
        side = make_side(backend, shape)
        try:
            for k in keys:
                side.map.update(k, side.pool[0])
            side.map.update(keys[0], side.pool[1])  # an existing key: a new inner map
            orders.append([k.hex() for k in side.map])
        finally:
            side.close()
    assert orders[0] == ["136da6da", "00000000", "b179379e", "c4e6dd78"]  # the kernel: no move
    assert orders[1] == orders[0]


def outcome_of_create(backend: Backend, shape: Shape) -> tuple[Any, Side | None]:
    try:
        return ("ok",), make_side(backend, shape)
    except (LoaderError, ValueError) as err:
        return ("error", type(err).__name__, getattr(err, "errno", None)), None


# -- exact buffer sizes at the kernel boundary -------------------------------------------------------------


class CheckedKernelBackend(loader.KernelBackend):
    """A ``KernelBackend`` that asserts every map buffer has the size the kernel reads or writes.

    The sizes come from the map itself (``BPF_OBJ_GET_INFO_BY_FD``), not from the caller.
    ``seen`` counts the checked calls per method.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def _sizes(self, fd: int, method: str) -> tuple[int, int, int]:
        """``(key_size, value bytes the kernel copies, batch cursor bytes the kernel copies)``."""
        self.seen[method] = self.seen.get(method, 0) + 1
        info = super().map_info(fd)
        t = MapType(info.type)
        value = info.value_size
        if t.has_per_cpu_value:
            value = (value + 7) // 8 * 8 * self.possible_cpus()
        elif t.can_store_map_or_program and method in ("map_lookup", "map_lookup_batch"):
            value = 4  # a lookup gives the stored object's u32 id
        cursor = 4 if t in HASHES else info.key_size  # htab: a u32 bucket; generic batch ops: a key
        return info.key_size, value, cursor

    def map_lookup(self, fd: int, key: bytes, value_size: int, flags: int = 0, *,
                   value: bytes | None = None) -> bytes:
        key_size, value_len, _ = self._sizes(fd, "map_lookup")
        assert len(key) == key_size and value_size == value_len, (len(key), key_size, value_size, value_len)
        assert value is None or len(value) == value_len
        got = super().map_lookup(fd, key, value_size, flags, value=value)
        assert len(got) == value_len
        return got

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        key_size, value_len, _ = self._sizes(fd, "map_update")
        assert len(key) == key_size and len(value) == value_len, (len(key), key_size, len(value), value_len)
        super().map_update(fd, key, value, flags)

    def map_delete(self, fd: int, key: bytes) -> None:
        key_size, _, _ = self._sizes(fd, "map_delete")
        assert len(key) == key_size
        super().map_delete(fd, key)

    def map_lookup_and_delete(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes:
        key_size, value_len, _ = self._sizes(fd, "map_lookup_and_delete")
        assert len(key) == key_size and value_size == value_len
        got = super().map_lookup_and_delete(fd, key, value_size, flags)
        assert len(got) == value_len
        return got

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        real_key_size, _, _ = self._sizes(fd, "map_get_next_key")
        assert key_size == real_key_size and (key is None or len(key) == key_size)
        got = super().map_get_next_key(fd, key, key_size)
        assert len(got) == key_size
        return got

    def map_lookup_batch(
        self, fd: int, in_batch: bytes | None, batch_size: int, key_size: int, value_size: int,
        count: int, *, delete: bool = False, elem_flags: int = 0,
    ) -> BatchResult:
        real_key_size, value_len, cursor = self._sizes(fd, "map_lookup_batch")
        assert key_size == real_key_size and value_size == value_len and count > 0
        assert batch_size >= cursor, f"batch cursor of {batch_size} bytes; the kernel copies {cursor}"
        assert in_batch is None or len(in_batch) == batch_size
        got = super().map_lookup_batch(fd, in_batch, batch_size, key_size, value_size, count, delete=delete,
                                       elem_flags=elem_flags)
        assert 0 <= got.count <= count
        assert len(got.keys) == got.count * key_size and len(got.values) == got.count * value_size
        assert len(got.next_batch) == batch_size
        return got

    def map_update_batch(
        self, fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
    ) -> int:
        key_size, value_len, _ = self._sizes(fd, "map_update_batch")
        assert len(keys) == count * key_size, (len(keys), key_size, count)
        assert len(values) == count * value_len, (len(values), value_len, count)
        return super().map_update_batch(fd, keys, values, count, elem_flags=elem_flags)

    def map_delete_batch(self, fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
        key_size, _, _ = self._sizes(fd, "map_delete_batch")
        assert len(keys) == count * key_size
        return super().map_delete_batch(fd, keys, count, elem_flags=elem_flags)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_buffer_sizes_are_exactly_what_the_kernel_uses() -> None:
    """Every shape's random program on the checking backend: no assertion fails, and every
    map method was checked (the per-CPU and fd-map cases included)."""
    kernel_backend()  # skips where BPF is not usable
    checked = CheckedKernelBackend()
    for shape in SHAPES:
        created = outcome_of_create(checked, shape)
        side = created[1]
        if side is None:
            continue
        try:
            program = Program(shape, checked.possible_cpus(), f"sizes/{SEED}/{shape.id}")
            for op in program.ops(OPS_PER_MAP):
                try:
                    op.run(side)
                except (LoaderError, ValueError, KeyError, OSError):
                    continue
                except AssertionError as err:
                    raise AssertionError(f"{shape.id}: {op}: {err}") from err
            outcome(side, shape, contents)
        finally:
            side.close()
    expected = {"map_lookup", "map_update", "map_delete", "map_lookup_and_delete", "map_get_next_key",
                "map_lookup_batch", "map_update_batch", "map_delete_batch"}
    assert expected <= set(checked.seen), sorted(expected - set(checked.seen))
    assert sum(checked.seen.values()) > 1000, checked.seen


@pytest.mark.kernel
def test_checked_backend_catches_a_wrong_size() -> None:
    """The checker itself works: a value one byte short is caught before the system call."""
    kernel_backend()
    checked = CheckedKernelBackend()
    with Map.create(MapSpec(name="sz", type=MapType.PERCPU_ARRAY, key_size=4, value_size=3, max_entries=1),
                    checked) as m:
        with pytest.raises(AssertionError):
            checked.map_lookup(m.fd, b"\0\0\0\0", 3)  # the kernel writes round_up(3, 8) * cpus bytes
        with pytest.raises(AssertionError):
            checked.map_update(m.fd, b"\0\0\0\0", bytes(8))
        assert m.lookup(b"\0\0\0\0") == [bytes(3)] * checked.possible_cpus()
    assert errno.ENOENT  # (module imports errno for the messages above)


# -- iteration stays bounded however the map changes under it ---------------------------------------------


class ChurningBackend(loader.MemoryBackend):
    """A map changed faster than it is walked: every ``get_next_key`` answers a key never seen
    before (``fresh``), or restarts from the first key as the kernel does when the current key
    was deleted (``restart``)."""

    def __init__(self, mode: str):
        super().__init__(possible_cpus=2)
        self.mode = mode
        self.calls = 0

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        self.calls += 1
        if self.mode == "fresh":
            return self.calls.to_bytes(key_size, "little")
        return bytes(key_size)  # always "the first key"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("mode", "limit"), [("fresh", 2 * 16), ("restart", 1)])
def test_iteration_is_bounded_by_max_entries(mode: str, limit: int) -> None:
    """``Map.keys()`` ends after ``2 * max_entries`` distinct keys, or after ``max_entries``
    keys in a row that it had seen already (loader/map.py ``Map.keys``), so a walk over a map
    that never stops changing still ends. (``tests/test_map.py::
    test_iteration_survives_concurrent_changes`` has a real map churned by another thread.)"""
    backend = ChurningBackend(mode)
    with Map.create(MapSpec(name="churn", type=MapType.HASH, key_size=4, value_size=8, max_entries=16),
                    backend) as m:
        keys = list(m.keys())
    assert len(keys) == limit and len(set(keys)) == len(keys)
    assert backend.calls <= 2 * 16 + 16 + 2
