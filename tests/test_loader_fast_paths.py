"""The loader's fast paths behave exactly as the plain ones: one BTF load per collection (with
the per-map fallback kept), the lock-free ``Handle``, the light worker pool, key/value checks
on the hot paths, map name cleaning.
"""

from __future__ import annotations

import errno
import functools
import random
import sys
import threading
import time
from typing import Any

import pytest

import ebpfspec
from ebpfspec import MapSpec, MapType
from loader import Backend, Map, MapAttrs, MapClosedError, load_collection
from loader.collection import run_all
from loader.handle import Handle, HandleClosed
from loader.map import map_attrs_name
from tests.conftest import TESTDATA
from tests.test_map import BACKENDS, Maps, RecordingBackend, open_backend, u32, u64


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return open_backend(request.param)


MANY = TESTDATA / "many_maps-el.o"


def _btf_loads(rec: RecordingBackend) -> int:
    return rec.methods().count("btf_load")


# -- one BTF load per collection ---------------------------------------------------------------------


def test_collection_btf_is_loaded_once_for_its_maps(backend: Backend) -> None:
    spec = ebpfspec.load_collection_spec(MANY)
    assert spec.types is not None
    rec = RecordingBackend(backend)
    with load_collection(spec, backend=rec, workers=2) as coll:
        assert _btf_loads(rec) == 1
        btf_ids = set()
        for name, m in coll.maps.items():
            info = m.info()
            assert info.btf_fallback == "", name
            # The collection's own type IDs: its BTF was loaded whole, in ID order.
            assert info.btf_value_type_id == spec.maps[name].value.id  # type: ignore[union-attr]
            assert info.btf_key_type_id == spec.maps[name].key.id  # type: ignore[union-attr]
            btf_ids.add(info.btf_id)
        assert len(btf_ids) == 1 and 0 not in btf_ids
    assert rec.open_handles() == []  # the shared BTF handle was closed too


class RefusingBackend(RecordingBackend):
    """Refuses the first BTF load (EINVAL), or map creations with the first BTF loaded."""

    def __init__(self, inner: Backend, *, refuse_load: bool = False, refuse_create_with: bool = False):
        super().__init__(inner)
        self.refuse_load = refuse_load
        self.refuse_create_with = refuse_create_with
        self.first_btf: int | None = None

    def btf_load(self, raw: bytes) -> int:
        if self.refuse_load and self.first_btf is None:
            self.first_btf = -2
            self._record("btf_load", raw)
            raise OSError(errno.EINVAL, "refused")
        fd = super().btf_load(raw)
        if self.first_btf is None:
            self.first_btf = fd
        return fd

    def map_create(self, attrs: MapAttrs) -> int:
        if self.refuse_create_with and attrs.btf_fd == self.first_btf:
            self._record("map_create", attrs)
            raise OSError(errno.EINVAL, "refused with this BTF")
        return super().map_create(attrs)


@pytest.mark.parametrize("how", ["refuse_load", "refuse_create_with"])
def test_refused_collection_btf_falls_back_to_each_maps_own(backend: Backend, how: str) -> None:
    spec = ebpfspec.load_collection_spec(MANY)
    rec = RefusingBackend(backend, **{how: True})
    with load_collection(spec, backend=rec, workers=2) as coll:
        assert _btf_loads(rec) == 1 + len(spec.maps)  # the collection's, then one per map
        for name, m in coll.maps.items():
            info = m.info()
            assert info.btf_fallback == "" and info.btf_value_type_id != 0, name
    assert rec.open_handles() == []


def test_maps_whose_types_are_not_the_collections_load_their_own(backend: Backend) -> None:
    spec = ebpfspec.load_collection_spec(MANY)
    foreign = ebpfspec.CollectionSpec(maps=dict(spec.maps))  # types=None: not the maps' BTF
    rec = RecordingBackend(backend)
    with load_collection(foreign, backend=rec) as coll:
        assert _btf_loads(rec) == len(spec.maps)
        assert all(m.info().btf_fallback == "" for m in coll.maps.values())
    assert rec.open_handles() == []


def test_map_create_alone_still_loads_its_own_btf(maps: Maps) -> None:
    spec = ebpfspec.load_collection_spec(MANY)
    rec = RecordingBackend(maps.backend)
    m = maps.create(spec.maps["small_hash_00"], backend=rec)
    assert rec.methods().count("btf_load") == 1
    assert m.info().btf_fallback == "" and m.info().btf_value_type_id != 0


@pytest.fixture
def maps(backend: Backend) -> Any:
    made = Maps(backend)
    try:
        yield made
    finally:
        made.close()


def test_the_same_spec_checked_once_still_refuses_bad_specs(backend: Backend) -> None:
    bad = MapSpec(name="bad", type=MapType.HASH, key_size=4, value_size=8, max_entries=1 << 33)
    for _ in range(2):  # a refused spec is not remembered as good
        with pytest.raises(Exception, match="max_entries"):
            Map.create(bad, backend)
    good = MapSpec(name="good", type=MapType.HASH, key_size=4, value_size=8, max_entries=4)
    for _ in range(3):
        with Map.create(good, backend) as m:
            m.update(u32(1), u64(2))
            assert m.lookup(u32(1)) == u64(2)


# -- the handle ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_handle_never_lends_a_closed_descriptor() -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(60):
            _close_race()
    finally:
        sys.setswitchinterval(old)


def _close_race() -> None:
    """Five users and three closers on one handle: one close wins, and only after every use."""
    released: list[int] = []
    h = Handle(7, released.append)
    lock = threading.Lock()
    bad: list[str] = []
    closed_by: list[bool] = []

    def user() -> None:
        while True:
            try:
                h.acquire()
            except HandleClosed:
                return
            with lock:
                if released:
                    bad.append("a use began after the release")
            time.sleep(random.random() * 0.0002)
            with lock:
                if released:
                    bad.append("the descriptor was released during a use")
            h.release()

    def closer() -> None:
        closed_by.append(h.close())

    users = [threading.Thread(target=user) for _ in range(5)]
    for t in users:
        t.start()
    time.sleep(random.random() * 0.002)
    closers = [threading.Thread(target=closer) for _ in range(3)]
    for t in closers:
        t.start()
    for t in (*closers, *users):
        t.join(30)
        assert not t.is_alive(), "a thread hangs"
    assert released == [7] and bad == []
    assert sorted(closed_by) == [False, False, True]  # exactly one close() closed it


def test_closed_map_refuses_the_fast_paths(backend: Backend) -> None:
    m = Map.create(MapSpec(name="gone", type=MapType.HASH, key_size=4, value_size=8, max_entries=4), backend)
    m.close()
    for op in (lambda: m.lookup(u32(0)), lambda: m.update(u32(0), u64(0))):
        with pytest.raises(MapClosedError) as err:
            op()
        assert err.value.map_name == "gone" and err.value.__cause__ is None


# -- the worker pool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2, 4, 100])
def test_run_all_keeps_the_order_of_the_tasks(workers: int) -> None:
    tasks = {f"t{i}": functools.partial(pow, i, 2) for i in range(50)}
    assert run_all(tasks, workers, "test") == {f"t{i}": i * i for i in range(50)}
    assert run_all({}, workers, "test") == {}


def test_run_all_raises_the_first_failure_after_the_running_tasks_end() -> None:
    started: list[int] = []
    ended: list[int] = []

    def task(i: int) -> int:
        started.append(i)
        if i == 3:
            raise KeyError("boom")
        time.sleep(0.01)
        ended.append(i)
        return i

    with pytest.raises(KeyError, match="boom"):
        run_all({str(i): functools.partial(task, i) for i in range(40)}, 1, "test")
    assert started == [0, 1, 2, 3] and ended == [0, 1, 2]  # nothing started after the failure
    started.clear()
    ended.clear()
    with pytest.raises(KeyError, match="boom"):
        run_all({str(i): functools.partial(task, i) for i in range(40)}, 3, "test")
    assert sorted(ended) == sorted(i for i in started if i != 3)  # every started task ran to its end
    assert len(started) < 40


# -- key and value checks on the fast paths ------------------------------------------------------------------


class Bytes(bytes):
    """A bytes subclass: not taken as it is by the fast paths (it goes through ``bytes()``)."""


def test_keys_and_values_of_every_kind_are_checked(maps: Maps) -> None:
    m = maps(MapType.HASH, 4, 8, 64, name="kinds")
    keys: list[Any] = [u32(1), bytearray(u32(2)), memoryview(u32(3)), Bytes(u32(4))]
    values: list[Any] = [u64(10), bytearray(u64(20)), memoryview(u64(30)), Bytes(u64(40))]
    for k, v in zip(keys, values, strict=True):
        m.update(k, v)
        assert m.lookup(k) == bytes(v) and type(m.lookup(k)) is bytes
    assert m.batch_update(keys, values) == 4
    for bad_key in (b"\0" * 3, bytearray(5), memoryview(b"\0" * 8)):
        with pytest.raises(ValueError, match="key is"):
            m.lookup(bad_key)
        with pytest.raises(ValueError, match="key is"):
            m.batch_update([u32(9), bad_key], [u64(9), u64(9)])
        with pytest.raises(ValueError, match="key is"):
            m.batch_delete([u32(9), bad_key])
    with pytest.raises(ValueError, match="value is"):
        m.update(u32(9), b"\0" * 7)
    with pytest.raises(ValueError, match="value is"):
        m.batch_update([u32(9), u32(10)], [u64(9), b"\0" * 9])
    # Lengths that only add up: every key and value is checked on its own.
    with pytest.raises(ValueError, match="key is"):
        m.batch_update([b"\0" * 3, b"\0" * 5], [u64(1), u64(2)])
    with pytest.raises(ValueError, match="value is"):
        m.batch_update([u32(1), u32(2)], [b"\0" * 7, b"\0" * 9])
    assert sorted(m.keys()) == sorted(bytes(k) for k in keys)


# -- map names -------------------------------------------------------------------------------------------


def _reference_name(name: str) -> str:
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)
    return cleaned[:15]


@pytest.mark.parametrize("name", [
    "", "a", "bench_create", ".data", ".rodata.str1.1", "a_rather_long_map_name-with-dashes",
    "wéird-näme!", "²³¹", "٣digits", "ﬁ_ligature", "tab\there", "nul\0byte", "emoji_😀_map", "x" * 40,
    "ÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀÀ",
])
def test_map_attrs_name_is_the_reference_cleaning(name: str) -> None:
    assert map_attrs_name(name) == _reference_name(name)


def test_map_attrs_name_on_random_names() -> None:
    rng = random.Random(1)
    alphabet = "abcXYZ019_.-/ é²ﬁ😀\0\t"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
        assert map_attrs_name(name) == _reference_name(name)
