"""Maps of maps, maps with BTF, and the typed view, against both backends (lesson 3).

An ``ARRAY_OF_MAPS``/``HASH_OF_MAPS`` is created against a temporary inner map made
from ``inner_map`` (closed again at once), even when that inner map has a BTF struct
value; inner maps go in as ``Map`` objects (or fds) and come out as map ids.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator

import pytest

import btf
from ebpfspec import MapSpec, MapType, UpdateFlags
from loader import Backend, KeyExistsError, KeyNotFoundError, Map, MapClosedError, MapError
from tests.test_map import BACKENDS, Maps, RecordingBackend, open_backend, proc_fd_count, u32, u64

BPF_F_INNER_MAP = 0x1000


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


def btf_types() -> btf.Spec:
    """``unsigned int`` [1], ``struct inner_value { u64 seen; u32 ifindex; u32 mark; }`` [2], u64 [3]."""
    return btf.Spec.from_types([
        btf.Int(1, "unsigned int", 4),
        btf.Struct(2, "inner_value", 16, (btf.Member("seen", 3, 0), btf.Member("ifindex", 1, 64),
                                          btf.Member("mark", 1, 96))),
        btf.Int(3, "long long unsigned int", 8),
    ])


TYPES = btf_types()
U32 = TYPES.type_by_id(1)
INNER_VALUE = TYPES.type_by_id(2)


def inner_spec(name: str = "inner", *, map_type: MapType = MapType.LRU_HASH, max_entries: int = 32,
               flags: int = 0) -> MapSpec:
    return MapSpec(name=name, type=map_type, key_size=4, value_size=16, max_entries=max_entries, flags=flags,
                   key=U32, value=INNER_VALUE)


def packed_value(seen: int, ifindex: int, mark: int) -> bytes:
    order = sys.byteorder
    return seen.to_bytes(8, order) + ifindex.to_bytes(4, order) + mark.to_bytes(4, order)


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
def test_map_of_maps_with_btf_struct_inner(backend: Backend, outer_type: MapType) -> None:
    rec = RecordingBackend(backend)
    outer_spec = MapSpec(name="outer", type=outer_type, key_size=4, value_size=4, max_entries=8,
                         inner_map=inner_spec())
    fds_before = proc_fd_count() if backend.name == "kernel" else 0
    outer = Map.create(outer_spec, rec)
    inners: list[Map] = []
    try:
        # The template (and every BTF handle) is gone again: only the outer map is open.
        assert rec.open_handles() == [outer.fileno()]
        assert rec.methods().count("map_create") == 2
        template_attrs = rec.calls[rec.methods().index("map_create")][1][0]
        assert template_attrs.map_type == MapType.LRU_HASH and template_attrs.btf_value_type_id != 0
        if backend.name == "kernel":
            assert proc_fd_count() == fds_before + 1
        assert outer.value_size == 4 and outer.info().value_size == 4

        for i in range(3):
            inners.append(Map.create(inner_spec(f"inner{i}"), rec))
        for i, inner in enumerate(inners):
            outer.update(u32(i), inner)
        for i, inner in enumerate(inners):
            assert outer.lookup(u32(i)) == inner.info().id
            assert outer[u32(i)] == inner.info().id
        assert len({outer.lookup(u32(i)) for i in range(3)}) == 3

        # Write through the inner maps, read back through the ids the outer map returns.
        for i, inner in enumerate(inners):
            view = inner.typed()
            view[7] = {"seen": 100 + i, "ifindex": i, "mark": 0xABC}
            inner.update(u32(8), packed_value(1, 2, 3))
        for i in range(3):
            with Map.from_id(outer.lookup(u32(i)), rec) as via:
                assert via.type == MapType.LRU_HASH and via.value_size == 16
                assert via.lookup(u32(7)) == packed_value(100 + i, i, 0xABC)
                assert via.lookup(u32(8)) == packed_value(1, 2, 3)
                via.update(u32(9), packed_value(9, 9, 9))
        assert inners[2].typed()[9] == {"seen": 9, "ifindex": 9, "mark": 9}

        # The outer map holds its own reference: closing an inner Map does not empty the slot.
        inner0_id = inners[0].info().id
        inners[0].close()
        with Map.from_id(outer.lookup(u32(0)), rec) as via:
            assert via.info().id == inner0_id and via.lookup(u32(7)) == packed_value(100, 0, 0xABC)
        with pytest.raises(MapClosedError):
            outer.update(u32(4), inners[0])

        # A raw fd works too; an empty slot is KeyNotFoundError; delete empties it.
        outer.update(u32(5), inners[1].fileno())
        assert outer.lookup(u32(5)) == inners[1].info().id
        with pytest.raises(KeyNotFoundError):
            outer.lookup(u32(6))
        outer.delete(u32(5))
        with pytest.raises(KeyNotFoundError):
            outer.lookup(u32(5))
        assert sorted(outer.keys()) == ([u32(i) for i in range(8)] if outer_type == MapType.ARRAY_OF_MAPS
                                        else [u32(0), u32(1), u32(2)])
        if outer_type == MapType.HASH_OF_MAPS:
            with pytest.raises(KeyExistsError):
                outer.update(u32(1), inners[2], UpdateFlags.NOEXIST)
        with pytest.raises(ValueError):
            outer.update(u32(3), b"\0\0\0\0")

        # Not like the template: another type, another value size.
        wrong_type = MapSpec(name="wrong_type", type=MapType.HASH, key_size=4, value_size=16, max_entries=32)
        for other in (wrong_type, inner_spec("wrong_value").replace(value_size=8, value=None)):
            with Map.create(other, rec) as wrong:
                with pytest.raises(MapError) as refused:
                    outer.update(u32(3), wrong)
                err = refused.value
                assert err.errno == errno.EINVAL and err.op == "update" and err.map_name == "outer"
        with pytest.raises(KeyNotFoundError):
            outer.lookup(u32(3))
    finally:
        outer.close()
        for inner in inners:
            inner.close()
    assert rec.open_handles() == []


def test_inner_map_flag_allows_other_array_sizes(maps: Maps) -> None:
    template = MapSpec(name="tmpl", type=MapType.ARRAY, key_size=4, value_size=16, max_entries=4,
                       flags=BPF_F_INNER_MAP, key=U32, value=INNER_VALUE)
    flexible = maps.create(MapSpec(name="flexible", type=MapType.ARRAY_OF_MAPS, key_size=4, value_size=4,
                                   max_entries=4, inner_map=template))
    strict = maps.create(MapSpec(name="strict", type=MapType.ARRAY_OF_MAPS, key_size=4, value_size=4,
                                 max_entries=4, inner_map=template.replace(flags=0)))
    for i, size in enumerate((1, 4, 64)):
        inner = maps.create(template.replace(name=f"flex{size}", max_entries=size))
        inner.typed()[size - 1] = {"seen": size, "ifindex": 1, "mark": 2}
        flexible.update(u32(i), inner)
        assert flexible.lookup(u32(i)) == inner.info().id
        with Map.from_id(flexible.lookup(u32(i)), maps.backend) as via:
            assert via.max_entries == size
            assert via.lookup(u32(size - 1)) == packed_value(size, 1, 2)

    same_size = maps.create(template.replace(name="same", flags=0))
    strict.update(u32(0), same_size)
    assert strict.lookup(u32(0)) == same_size.info().id
    other_size = maps.create(template.replace(name="other", flags=0, max_entries=8))
    with pytest.raises(MapError) as refused:
        strict.update(u32(1), other_size)
    assert refused.value.errno == errno.EINVAL and refused.value.map_name == "strict"
    # The flag itself is part of what must match.
    with pytest.raises(MapError) as unflagged:
        flexible.update(u32(3), same_size)
    assert unflagged.value.errno == errno.EINVAL


def test_inner_map_flag_on_a_hash_template_is_refused(maps: Maps) -> None:
    template = inner_spec("hash_tmpl", map_type=MapType.HASH, flags=BPF_F_INNER_MAP)
    rec = RecordingBackend(maps.backend)
    with pytest.raises(Exception) as refused:
        Map.create(MapSpec(name="bad_outer", type=MapType.HASH_OF_MAPS, key_size=4, value_size=4,
                           max_entries=2, inner_map=template), rec)
    assert "bad_outer" in str(refused.value) and "Invalid argument" in str(refused.value)
    assert rec.open_handles() == []


def test_map_with_btf_reports_it(maps: Maps) -> None:
    m = maps.create(inner_spec("with_btf", map_type=MapType.HASH))
    info = m.info()
    assert info.btf_fallback == ""
    assert info.btf_key_type_id != 0 and info.btf_value_type_id != 0
    if maps.backend.name == "kernel":
        assert info.btf_id != 0
    plain = maps(MapType.HASH, 4, 16, 4, name="no_btf")
    assert plain.info().btf_id == 0 and plain.info().btf_fallback == ""


def test_btf_the_kernel_refuses_falls_back(maps: Maps) -> None:
    # The value type is 16 bytes, the map's values 8: the kernel refuses the BTF, not the map.
    spec = inner_spec("misfit", map_type=MapType.HASH).replace(value_size=8)
    m = maps.create(spec)
    info = m.info()
    assert info.btf_fallback != "" and info.btf_id == 0 and info.btf_value_type_id == 0
    m[u32(1)] = u64(1)
    assert m[u32(1)] == u64(1)


# -- the typed view ---------------------------------------------------------------------------------


def test_typed_view(maps: Maps) -> None:
    m = maps.create(inner_spec("typed", map_type=MapType.HASH))
    t = m.typed()
    value = {"seen": 2**40 + 5, "ifindex": 7, "mark": 0xFFFF_FFFF}
    t[1] = value
    assert t[1] == value
    assert m[u32(1)] == packed_value(2**40 + 5, 7, 0xFFFF_FFFF)
    t.update(2, {"seen": 1, "ifindex": 2, "mark": 3}, UpdateFlags.NOEXIST)
    with pytest.raises(KeyExistsError):
        t.update(2, value, UpdateFlags.NOEXIST)
    assert dict(t.items()) == {1: value, 2: {"seen": 1, "ifindex": 2, "mark": 3}}
    assert sorted(t.keys()) == [1, 2] and sorted(t) == [1, 2]
    assert sorted(v["seen"] for v in t.values()) == [1, 2**40 + 5]
    assert 1 in t and 3 not in t
    del t[1]
    assert 1 not in t
    with pytest.raises(KeyNotFoundError):
        t.delete(1)
    with pytest.raises(KeyError):
        t[1]
    for bad in ({"seen": 1, "ifindex": 2, "mark": 2**32}, {"seen": 1, "nope": 2}, 5):
        with pytest.raises(ValueError):
            t[3] = bad
    with pytest.raises(ValueError):
        t[2**32] = value
    assert 3 not in t


def test_typed_per_cpu(maps: Maps) -> None:
    m = maps.create(inner_spec("typed_pcpu", map_type=MapType.PERCPU_HASH))
    t = m.typed()
    cpus = maps.backend.possible_cpus()
    zero = {"seen": 0, "ifindex": 0, "mark": 0}
    first = {"seen": 1, "ifindex": 2, "mark": 3}
    t[1] = [first]
    assert t[1] == [first] + [zero] * (cpus - 1)
    t[2] = first  # one value for every CPU
    assert t[2] == [first] * cpus
    each = [{"seen": cpu, "ifindex": cpu * 2, "mark": cpu * 3} for cpu in range(cpus)]
    t[3] = each
    assert t[3] == each
    assert dict(t.items())[3] == each
    with pytest.raises(ValueError):
        t[4] = [first] * (cpus + 1)


def test_typed_needs_btf(maps: Maps) -> None:
    plain = maps(MapType.HASH, 4, 16, 4, name="untyped")
    with pytest.raises(ValueError, match="untyped"):
        plain.typed()
    with_btf = maps.create(inner_spec("typed_by_id", map_type=MapType.HASH))
    with Map.from_id(with_btf.info().id, maps.backend) as by_id, pytest.raises(ValueError):
        by_id.typed()  # a Map without its spec has no types to encode by
