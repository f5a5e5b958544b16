"""Pin paths: where ``PinType.BY_NAME`` maps live, and the checks that keep pins inside it.

A pin directory must be on bpffs (``statfs`` magic ``BPF_FS_MAGIC``) for the kernel
backend; a pin name is one path component: no ``/``, no ``..``, no NUL. So a name
taken from an object file can never point outside the directory the caller chose.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loader.backend import Backend

#: ``statfs.f_type`` of bpffs.
BPF_FS_MAGIC = 0xCAFE4A11


def check_pin_path(path: str) -> None:
    """Raise ``ValueError`` for paths no pin can have (not a string, empty, NUL bytes)."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"invalid pin path {path!r}")
    if "\0" in path:
        raise ValueError(f"pin path {path!r} contains a NUL byte")


def check_pin_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a single, ordinary path component."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid pin name {name!r}: it must be one path component without '/' or NUL")


def pin_file(directory: str, name: str) -> str:
    """The pin of map ``name`` under ``directory``, after checking the name."""
    check_pin_name(name)
    return os.path.join(directory, name)


def check_pin_dir(directory: str, backend: Backend) -> None:
    """Raise ``ValueError`` unless ``directory`` can hold pins for ``backend``.

    For the kernel backend it must be an existing directory on bpffs.
    """
    check_pin_path(directory)
    if getattr(backend, "name", "") != "kernel":
        return
    if not os.path.isdir(directory):
        raise ValueError(f"pin path {directory!r} is not a directory")
    fs_type = filesystem_type(directory)
    if fs_type != BPF_FS_MAGIC:
        raise ValueError(f"pin path {directory!r} is not on bpffs (filesystem magic {fs_type:#x}); "
                         "mount one with: mount -t bpf bpf /sys/fs/bpf")


class _StatFS(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type comes first; the rest is room for the kernel to write.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]


def filesystem_type(path: str) -> int:
    """``statfs(path).f_type``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = _StatFS()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(buf.f_type) & 0xFFFFFFFF
