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
from loader.map import BatchCursor, Map
from loader.memory import MemoryBackend
from loader.program import Program
from loader.typed import TypedMap

__all__ = [
    "Backend",
    "BatchCursor",
    "BatchCursorError",
    "BatchResult",
    "Collection",
    "KernelBackend",
    "KeyExistsError",
    "KeyNotFoundError",
    "LoaderError",
    "Map",
    "MapAttrs",
    "MapClosedError",
    "MapError",
    "MapIncompatibleError",
    "MapInfo",
    "MemoryBackend",
    "NotSupportedError",
    "Program",
    "TypedMap",
    "VerifierError",
    "load_collection",
]
