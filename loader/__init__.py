"""loader: live BPF objects created from ``ebpfspec`` specs, behind a pluggable backend.

``Map.create(spec)`` makes a live map (``KernelBackend`` by default: the real ``bpf(2)``;
``MemoryBackend`` models the kernel's map semantics in-process). Errors are in
:mod:`loader.errors` and re-exported here.
"""

from loader.backend import Backend, BatchResult, MapAttrs, MapInfo
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
from loader.map import BatchCursor, Map
from loader.typed import TypedMap


def __getattr__(name: str) -> object:
    # The backends import lazily: KernelBackend needs ctypes and a Linux libc,
    # MemoryBackend is pure Python.
    if name == "KernelBackend":
        from loader.kernel import KernelBackend

        return KernelBackend
    if name == "MemoryBackend":
        from loader.memory import MemoryBackend

        return MemoryBackend
    raise AttributeError(f"module 'loader' has no attribute {name!r}")


__all__ = [
    "Backend", "BatchCursor", "BatchCursorError", "BatchResult", "KernelBackend", "KeyExistsError",
    "KeyNotFoundError", "LoaderError", "Map", "MapAttrs", "MapClosedError", "MapError", "MapIncompatibleError",
    "MapInfo", "MemoryBackend", "NotSupportedError", "TypedMap", "VerifierError",
]
