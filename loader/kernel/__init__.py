"""The kernel backend: ``bpf(2)`` through ``ctypes``.

- :mod:`loader.kernel.syscall` — the system call itself (numbers per architecture, errno);
- :mod:`loader.kernel.attr` — ``union bpf_attr`` parts and ``struct bpf_map_info``;
- :mod:`loader.kernel.backend` — :class:`KernelBackend`, the :class:`loader.backend.Backend`
  protocol on top of them.
"""

from loader.kernel.backend import KernelBackend

__all__ = ["KernelBackend"]
