"""``MemoryBackend``: an in-process model of the kernel's BPF maps and programs (no privileges needed).

- :mod:`loader.memory.backend` — :class:`MemoryBackend`, the :class:`loader.backend.Backend`
  protocol: handles, ids, pins, what ``bpf(2)`` checks for every map, and programs
  (accepted, never run);
- :mod:`loader.memory.maps` — one class per family of map types and their semantics;
- :mod:`loader.memory.lru` — the kernel's LRU lists, for the LRU hash maps;
- :mod:`loader.memory.objects` — reference-counted objects (programs among them) and ``OSError``
  construction;
- :mod:`loader.memory.jhash` — the kernel's ``jhash`` (hash buckets, bloom filters);
- :mod:`loader.memory.kconst` — the kernel limits and flag masks the model follows.
"""

from loader.memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]
