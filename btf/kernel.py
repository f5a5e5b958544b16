"""The running kernel's BTF: ``/sys/kernel/btf/vmlinux`` and module BTF beside it."""

from __future__ import annotations

import os
import threading

from btf.errors import BTFError
from btf.spec import Spec, load_spec

#: Where the kernel publishes its BTF.
KERNEL_BTF_DIR = "/sys/kernel/btf"

_lock = threading.Lock()
_kernel: Spec | None = None
_modules: dict[str, Spec] = {}


def load_kernel_spec() -> Spec:
    """The kernel's BTF (``/sys/kernel/btf/vmlinux``), read once and cached.

    Thread-safe: concurrent first calls read the file once. Callers share the one spec,
    which is immutable; use :meth:`Spec.copy` for an independent one.
    Raises ``BTFError`` if the kernel has no BTF.
    """
    global _kernel
    spec = _kernel
    if spec is None:
        with _lock:
            spec = _kernel
            if spec is None:
                spec = _kernel = _read(os.path.join(KERNEL_BTF_DIR, "vmlinux"), None)
    return spec


def load_module_spec(name: str) -> Spec:
    """The split BTF of kernel module ``name`` on top of :func:`load_kernel_spec`, cached."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise BTFError(f"invalid kernel module name {name!r}")
    base = load_kernel_spec()
    with _lock:
        spec = _modules.get(name)
    if spec is None:
        spec = _read(os.path.join(KERNEL_BTF_DIR, name), base)
        with _lock:
            spec = _modules.setdefault(name, spec)
    return spec


def _read(path: str, base: Spec | None) -> Spec:
    try:
        return load_spec(path, base=base)
    except FileNotFoundError:
        raise BTFError(f"{path} does not exist: the kernel has no BTF for it") from None
    except OSError as err:
        raise BTFError(f"cannot read {path}: {err.strerror}") from err
