"""ebpfspec: read BPF ELF objects and their BTF into immutable specs.

No syscalls here: loading specs into the kernel is the ``loader`` package's job.
"""

from ebpfspec.errors import SpecError

__all__ = ["SpecError"]
