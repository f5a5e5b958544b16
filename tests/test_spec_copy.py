"""Specs are immutable, copies are deep, and many threads may share one spec (lesson 4)."""

from __future__ import annotations

import array
import enum
import gc
import io
import json
import threading
import time
import types
from pathlib import Path

import attrs
import pytest

import btf
import ebpfspec
from btf.strings import StringTable
from tests.conftest import TESTDATA

OBJECTS = sorted(TESTDATA.glob("*.o"))

_ATOMS = (str, bytes, int, float, bool, type(None), complex, range)
_MUTABLE_TYPES = (list, dict, set, bytearray, array.array, io.BytesIO, io.StringIO)


def _is_mutable(obj: object) -> bool:
    if isinstance(obj, (enum.Enum, type, types.ModuleType, types.FunctionType, types.MethodType)):
        return False  # enum singletons and code: no data state
    if isinstance(obj, _MUTABLE_TYPES):
        return True
    if isinstance(obj, memoryview):
        return not obj.readonly
    if isinstance(obj, (btf.Spec, StringTable)):
        return True  # logically immutable, but they hold caches
    return hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType))


def _is_boundary(obj: object) -> bool:
    """Objects not walked into: code and classes, and immutable leaves."""
    return isinstance(obj, (type, types.ModuleType, types.FunctionType, types.CodeType, enum.Enum,
                            types.BuiltinFunctionType, types.MethodType, *_ATOMS)) and not (
        isinstance(obj, types.BuiltinMethodType) and not isinstance(getattr(obj, "__self__", None),
                                                                      types.ModuleType)
    )


def reachable(root: object) -> dict[int, object]:
    """Every object reachable from ``root`` through data (not through classes or code)."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, types.BuiltinMethodType):  # a bound builtin such as dict.get
            owner = getattr(obj, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                stack.append(owner)
            continue
        if _is_boundary(obj):
            continue
        stack.extend(gc.get_referents(obj))
    return seen


def shared_mutable(a: object, b: object) -> list[str]:
    in_a = reachable(a)
    in_b = reachable(b)
    return [f"{type(o).__name__} {o!r:.80}" for i, o in in_a.items() if i in in_b and _is_mutable(o)]


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_copy_is_deep_and_equal(path: Path) -> None:
    spec = ebpfspec.load_collection_spec(path)
    list(spec.types or ())  # decode everything, so caches are full on both sides
    copy = spec.copy()
    assert copy == spec
    assert copy.to_dict() == spec.to_dict()
    assert shared_mutable(spec, copy) == []
    for name, m in spec.maps.items():
        m_copy = m.copy()
        assert m_copy == m
        assert shared_mutable(m, m_copy) == [], name
    for name, p in spec.programs.items():
        p_copy = p.copy()
        assert p_copy == p
        assert shared_mutable(p, p_copy) == [], name


def test_the_walker_finds_shared_mutable_objects() -> None:
    """The check above can fail: a shallow copy sharing a BTF spec is caught."""
    spec = ebpfspec.load_collection_spec(TESTDATA / "maps-el.o")
    shallow = attrs.evolve(spec)
    assert shared_mutable(spec, shallow) != []
    m = spec.maps["hash_map"]
    assert shared_mutable(m, m.replace(max_entries=5)) != []  # replace keeps the BTF spec


def test_specs_are_frozen() -> None:
    spec = ebpfspec.load_collection_spec(TESTDATA / "iproute2_maps-el.o")
    m = spec.maps["tc_flows"]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.max_entries = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.maps["x"] = m  # type: ignore[index]
    assert isinstance(m.extra, bytes) and isinstance(m.contents, tuple)
    prog = next(iter(spec.programs.values()))
    assert isinstance(prog.instructions, tuple)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        prog.instructions[0].constant = 1  # type: ignore[misc]


def test_replace_and_with_maps_make_new_objects() -> None:
    spec = ebpfspec.load_collection_spec(TESTDATA / "maps-el.o")
    before = spec.to_dict()
    m2 = spec.maps["ringbuf"].replace(max_entries=4096 * 16)
    spec2 = spec.with_maps(ringbuf=m2)
    assert spec2.maps["ringbuf"].max_entries == 4096 * 16
    assert spec.maps["ringbuf"].max_entries == 16384
    assert spec.to_dict() == before
    with pytest.raises(TypeError):
        spec.with_maps(ringbuf="not a map")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_to_dict_round_trips_through_json(path: Path) -> None:
    spec = ebpfspec.load_collection_spec(path)
    data = json.loads(json.dumps(spec.to_dict()))
    again = ebpfspec.CollectionSpec.from_dict(data)
    assert again == spec
    assert again.to_dict() == data


def test_from_dict_rejects_garbage() -> None:
    with pytest.raises(ebpfspec.SpecError):
        ebpfspec.CollectionSpec.from_dict({"maps": {"x": {"name": "x", "type": "NoSuchType"}}})


@pytest.mark.timeout(60)
def test_32_threads_share_one_spec() -> None:
    """Copy, read, serialise and derive from one spec in 32 threads; every result is right."""
    spec = ebpfspec.load_collection_spec(TESTDATA / "iproute2_maps-el.o").with_maps(
        ebpfspec.load_collection_spec(TESTDATA / "maps-el.o").maps
    )
    expected_dict = spec.to_dict()
    expected_extra = spec.maps["tc_flows"].extra
    errors: list[str] = []
    counts = [0] * 32
    deadline = time.monotonic() + 3.0

    def work(n: int) -> None:
        try:
            while True:  # at least one full round per thread, then until the deadline
                copy = spec.copy()
                if copy != spec or copy.maps["tc_flows"].extra != expected_extra:
                    errors.append(f"thread {n}: copy differs")
                if spec.to_dict() != expected_dict:
                    errors.append(f"thread {n}: to_dict differs")
                changed = spec.with_maps(hash_map=spec.maps["hash_map"].replace(max_entries=n + 1))
                if changed.maps["hash_map"].max_entries != n + 1 or spec.maps["hash_map"].max_entries != 1024:
                    errors.append(f"thread {n}: with_maps leaked")
                value = copy.maps["hash_map"].value
                if value is None or btf.sizeof(value) != 24:
                    errors.append(f"thread {n}: BTF of the copy is wrong")
                counts[n] += 1
                if time.monotonic() >= deadline:
                    break
        except Exception as err:  # report, don't hide, any failure in a thread
            errors.append(f"thread {n}: {err!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(c > 0 for c in counts)
    assert spec.to_dict() == expected_dict

