"""The raw ``bpf(2)`` system call through ``ctypes``.

``libc.syscall`` is called with no ``argtypes``: ctypes then converts each small Python
int to a C ``int`` and passes ctypes pointer objects (``byref``, ``c_void_p``) as
pointers. Declaring ``argtypes`` costs about a microsecond per call, which is as much
as the system call itself. ``CDLL`` functions release the GIL for the duration of the
call, so other Python threads keep running while the kernel works.

The system call number is per architecture. On an architecture not listed here the
module still imports (so the in-memory backend works everywhere), but
:func:`syscall_number` and :func:`bpf` raise :class:`~loader.errors.NotSupportedError`.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import os
import platform
from typing import Final

from loader.errors import NotSupportedError

#: ``libc`` with ``errno`` captured after every call (read with ``ctypes.get_errno``).
libc: Final = ctypes.CDLL(None, use_errno=True)

#: ``long syscall(long number, ...)``. Deliberately no ``argtypes`` (see the module docstring).
raw_syscall: Final = libc.syscall

#: ``__NR_bpf`` by ``platform.machine()``. The generic syscall table (arm64, riscv64,
#: loongarch64) numbers it 280.
_BPF_SYSCALL_NUMBERS: Final[dict[str, int]] = {
    "x86_64": 321,
    "amd64": 321,
    "i386": 357,
    "i486": 357,
    "i586": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "armv6l": 386,
    "armv7l": 386,
    "armv8l": 386,
    "riscv64": 280,
    "ppc64": 361,
    "ppc64le": 361,
    "s390x": 351,
    "loongarch64": 280,
}

#: ``errno`` the kernel leaks for "not supported" (``ENOTSUPP``, not ``EOPNOTSUPP``);
#: ``os.strerror`` does not know it.
ENOTSUPP: Final = 524

MACHINE: Final = platform.machine()

#: How often :func:`bpf` tries a command that keeps failing with EINTR (or EAGAIN).
MAX_ATTEMPTS: Final = 5

#: The bpf syscall number of this machine, or None where this module does not know it.
BPF_SYSCALL_NR: Final[int | None] = _BPF_SYSCALL_NUMBERS.get(MACHINE.lower())

# Used on the hot paths of the backend; -1 (ENOSYS) where unknown, but no backend
# exists there since KernelBackend() calls syscall_number() first.
NR: Final[int] = BPF_SYSCALL_NR if BPF_SYSCALL_NR is not None else -1


def syscall_number() -> int:
    """``__NR_bpf`` for this machine; :class:`NotSupportedError` where it is not known."""
    if BPF_SYSCALL_NR is None:
        raise NotSupportedError(
            f"bpf(2): unsupported architecture {MACHINE!r} (the bpf syscall number is known for "
            f"{', '.join(sorted(set(_BPF_SYSCALL_NUMBERS)))})"
        )
    return BPF_SYSCALL_NR


def strerror(code: int) -> str:
    """``os.strerror`` that also names the kernel-internal ``ENOTSUPP``."""
    if code == ENOTSUPP:
        return "Operation not supported (ENOTSUPP)"
    return os.strerror(code)


def errno_error(code: int) -> OSError:
    """``OSError(code, strerror)`` (Python picks the subclass: ``FileNotFoundError`` for ENOENT, ...)."""
    return OSError(code, strerror(code))


def raise_errno() -> None:
    """Raise the ``OSError`` for the errno the last ctypes call left behind."""
    code = ctypes.get_errno()
    raise errno_error(code if code else errno_codes.EIO)


def bpf(cmd: int, attr: ctypes.Structure, size: int | None = None, *, retry_eagain: bool = False) -> int:
    """``bpf(cmd, &attr, size)``: the kernel's return value (an fd or 0).

    ``size`` defaults to ``ctypes.sizeof(attr)``: the kernel accepts an attr shorter than
    its own ``union bpf_attr`` (the rest reads as zero) and a longer one as long as the
    extra bytes are zero. Raises ``OSError(errno, strerror)`` when the kernel returns -1.
    ``EINTR`` is retried, and ``EAGAIN`` too with ``retry_eagain`` (``BPF_PROG_LOAD``
    may return it when the verifier is interrupted), up to :data:`MAX_ATTEMPTS` tries.
    """
    nr = syscall_number()
    if size is None:
        size = ctypes.sizeof(attr)
    elif size > ctypes.sizeof(attr):
        raise ValueError(f"bpf(2) attr size {size} exceeds the buffer ({ctypes.sizeof(attr)} bytes)")
    ref = ctypes.byref(attr)
    attempts = 0
    while True:
        ret: int = raw_syscall(nr, cmd, ref, size)
        if ret >= 0:
            return ret
        code = ctypes.get_errno()
        attempts += 1
        retry = code == errno_codes.EINTR or (retry_eagain and code == errno_codes.EAGAIN)
        if not retry or attempts >= MAX_ATTEMPTS:
            raise errno_error(code if code else errno_codes.EIO)
