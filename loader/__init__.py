"""loader: live BPF objects created from ``ebpfspec`` specs, behind a pluggable backend.

``Map.create(spec)`` makes a live map (``KernelBackend`` by default: the real ``bpf(2)``;
``MemoryBackend`` models the kernel's map semantics in-process). Errors are in
:mod:`loader.errors` and re-exported here.
"""

from loader.backend import Backend, BatchResult, MapAttrs, MapInfo
from loader.collection import Collection, load_collection
from loader.errors import (
    BatchCursorError,
    KeyExistsError,
    KeyNotFoundError,
    LoaderError,
    MapClosedError,
    MapError,
    MapIncompatibleError,
    NotSupportedError,
    VerifierError,
)
from loader.kernel import KernelBackend
from loader.link import IterLink, Link, LinkKind
from loader.map import BatchCursor, Map
from loader.memory import MemoryBackend
from loader.perf_reader import PerfReader, PerfRecord
from loader.program import Program
from loader.ringbuf import RingBuffer
from loader.typed import TypedMap

__all__ = [
    "Backend",
    "BatchCursor",
    "BatchCursorError",
    "BatchResult",
    "Collection",
    "IterLink",
    "KernelBackend",
    "KeyExistsError",
    "KeyNotFoundError",
    "Link",
    "LinkKind",
    "LoaderError",
    "Map",
    "MapAttrs",
    "MapClosedError",
    "MapError",
    "MapIncompatibleError",
    "MapInfo",
    "MemoryBackend",
    "NotSupportedError",
    "PerfReader",
    "PerfRecord",
    "Program",
    "RingBuffer",
    "TypedMap",
    "VerifierError",
    "load_collection",
]
