"""The kernel backend: ``bpf(2)`` through ``ctypes``.

- :mod:`loader.kernel.syscall` — the system call itself (numbers per architecture, errno);
- :mod:`loader.kernel.attr` — ``union bpf_attr`` parts and the ``bpf_{map,prog,link}_info`` structs;
- :mod:`loader.kernel.perf` — ``perf_event_open(2)`` (tracepoints from tracefs, the kprobe and
  uprobe PMUs) and the perf ioctls that hand an event a BPF program;
- :mod:`loader.kernel.backend` — :class:`KernelBackend`, the :class:`loader.backend.Backend`
  protocol on top of them.
"""

from loader.kernel.backend import KernelBackend

__all__ = ["KernelBackend"]
