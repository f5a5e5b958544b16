"""``load_collection`` loads the collection's BTF once, for its maps and its programs together,
and runs small collections without a thread per task."""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any

import pytest

import ebpfspec
import loader
from loader import load_collection
from loader.collection import TASKS_PER_THREAD, run_all
from loader.create import TYPES_WITHOUT_BTF
from tests.conftest import TESTDATA


def spec_of(name: str) -> ebpfspec.CollectionSpec:
    return ebpfspec.load_collection_spec(TESTDATA / f"{name}-{'el' if sys.byteorder == 'little' else 'eb'}.o")


class CountingKernel(loader.KernelBackend):
    """The kernel backend, counting ``BPF_BTF_LOAD`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.btf_loads = 0

    def btf_load(self, *args: Any, **kwargs: Any) -> int:
        self.btf_loads += 1
        return super().btf_load(*args, **kwargs)


@pytest.fixture(scope="module")
def kernel() -> CountingKernel:
    if os.geteuid() != 0:
        pytest.skip("loading programs needs root")
    return CountingKernel()


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["globals", "maps", "trace"])
def test_one_btf_load_serves_maps_and_programs(kernel: CountingKernel, name: str) -> None:
    spec = spec_of(name)
    kernel.btf_loads = 0
    with load_collection(spec, backend=kernel) as coll:
        assert kernel.btf_loads == 1
        program_btf_ids = {p.info().btf_id for p in coll.programs.values()}
        assert len(program_btf_ids) == 1 and 0 not in program_btf_ids
        typed_maps = [m for n, m in coll.maps.items()
                      if getattr(spec.maps[n].value, "spec", None) is spec.types
                      and spec.maps[n].type not in TYPES_WITHOUT_BTF]
        assert typed_maps
        for m in typed_maps:
            info = m.info()
            assert info.btf_id in program_btf_ids, m.name
            assert info.btf_fallback == ""
        for n, m in coll.maps.items():
            if spec.maps[n].type in TYPES_WITHOUT_BTF:  # never sent (as libbpf): no refusal, no fallback
                assert m.info().btf_id == 0 and m.info().btf_fallback == "", n


@pytest.mark.kernel
def test_maps_alone_load_the_btf_once(kernel: CountingKernel) -> None:
    spec = spec_of("maps")
    typed = [n for n, m in spec.maps.items() if m.value is not None and m.type not in TYPES_WITHOUT_BTF]
    kernel.btf_loads = 0
    with load_collection(spec, backend=kernel, only=typed) as coll:
        assert kernel.btf_loads == 1
        assert len({coll.maps[n].info().btf_id for n in typed}) == 1


_LOCK = threading.Lock()


def _note_thread(seen: set[str], i: int) -> int:
    with _LOCK:
        seen.add(threading.current_thread().name)
    return i


def test_run_all_starts_one_thread_per_tasks_per_thread() -> None:
    for n in (1, TASKS_PER_THREAD, TASKS_PER_THREAD + 1, 5 * TASKS_PER_THREAD):
        seen: set[str] = set()
        tasks = {str(i): functools.partial(_note_thread, seen, i) for i in range(n)}
        assert run_all(tasks, 64, "t") == {str(i): i for i in range(n)}
        assert threading.current_thread().name not in seen  # the caller only waits
        assert len(seen) <= -(-n // TASKS_PER_THREAD)
        assert all(t.startswith("t_") for t in seen)
