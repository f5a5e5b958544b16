"""Pin paths: where pinned objects live, and the checks that keep every pin where it belongs.

Three rules, checked before any pin is made or reused:

* **A pin path is a plain path**: a non-empty ``str`` without NUL and without ``..``
  components (:func:`check_pin_path`).
* **A pin name is one path component**: no ``/`` (so no absolute path either), not ``.``
  or ``..``, no NUL (:func:`check_pin_name`). Names come from object files, which are
  not trusted, so a name can never point outside the directory the caller chose. In the
  file name every ``.`` becomes ``_`` (:func:`pin_file`, as libbpf's
  ``sanitize_pin_path`` does): bpffs refuses names with dots (``EPERM``, they are
  reserved), so ``.rodata`` is pinned as ``_rodata``.
* **A pin stays on bpffs, under its root** (:func:`check_pin_target`): for the kernel
  backend the real directory a pin is made in (every symlink resolved) must be on bpffs
  (``statfs`` magic :data:`BPF_FS_MAGIC`), and when the pin belongs to a pin root (the
  ``pin_path`` of :func:`loader.load_collection`) the pin's real path — a symlink at the
  pin itself resolved too — must lie inside the root's real path. A symlink planted in
  the pin directory can therefore neither lead a load to reuse an object pinned
  elsewhere nor make it pin outside bpffs.

The checks read the file system at the time they run; the kernel resolves the path
again when it pins. Whoever can change the pin directory between the two (root, or the
directory's owner) can still redirect a pin: the pin directory must not be writable by
anyone the caller does not trust (see SECURITY.md).

:class:`~loader.MemoryBackend` pins are entries in the backend, not files: for it the
path rules and the root confinement apply, the bpffs checks do not.
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
    """Raise ``ValueError`` for paths no pin can have: not a string, empty, NUL bytes, ``..`` components."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"invalid pin path {path!r}")
    if "\0" in path:
        raise ValueError(f"pin path {path!r} contains a NUL byte")
    if ".." in path.split("/"):
        raise ValueError(f"pin path {path!r} has a '..' component")


def check_pin_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a single, ordinary path component."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid pin name {name!r}: it must be one path component without '/' or NUL")


def pin_file(directory: str, name: str, backend: Backend | None = None) -> str:
    """The pin of object ``name`` under the pin root ``directory``, after checking both.

    The name must be one path component; its dots become underscores (bpffs refuses
    dots). The pin's real path (a symlink already there resolved) must stay inside the
    root's. With ``backend``, also :func:`check_pin_target` (bpffs) for it.
    """
    check_pin_name(name)
    path = os.path.join(directory, name.replace(".", "_"))
    check_pin_target(path, backend, root=directory)
    return path


def check_pin_dir(directory: str, backend: Backend) -> None:
    """Raise ``ValueError`` unless ``directory`` can hold pins for ``backend``.

    For the kernel backend it must be an existing directory on bpffs (symlinks resolved).
    """
    check_pin_path(directory)
    if not _is_kernel(backend):
        return
    if not os.path.isdir(directory):
        raise ValueError(f"pin path {directory!r} is not a directory")
    _check_on_bpffs(os.path.realpath(directory), directory)


def check_pin_target(path: str, backend: Backend | None, *, root: str | None = None) -> None:
    """Raise ``ValueError`` unless an object may be pinned at (or reused from) ``path``.

    * ``path`` passes :func:`check_pin_path` (no NUL, no ``..``);
    * with ``root``: ``path`` is inside ``root``, and so is its real path (symlinks in
      the directories and at ``path`` itself resolved);
    * for the kernel backend: the real directory of the pin is on bpffs (and a symlink at
      ``path`` leads to bpffs).

    A directory that does not exist is left to the backend, which fails with ``ENOENT``
    as the kernel does. ``backend`` None: the path rules and ``root`` only.
    Use it before ``obj_pin`` in ``Map.pin``/``Program.pin``/``Link.pin``.
    """
    check_pin_path(path)
    absolute = os.path.abspath(path)
    real = os.path.realpath(absolute)
    if root is not None:
        check_pin_path(root)
        base = os.path.abspath(root)
        if not _inside(absolute, base):
            raise ValueError(f"pin {path!r} is not inside the pin root {root!r}")
        real_base = os.path.realpath(base)
        if not _inside(real, real_base):
            raise ValueError(f"pin {path!r} resolves to {real!r}, outside the pin root {root!r} "
                             f"({real_base!r}): a symlink leads out of it")
    if backend is None or not _is_kernel(backend):
        return
    parent = os.path.dirname(real)
    if not os.path.isdir(parent):
        return  # the kernel answers ENOENT/ENOTDIR, as for any pin in a missing directory
    _check_on_bpffs(parent, path)


def _inside(path: str, root: str) -> bool:
    """True if normalised absolute ``path`` is strictly below ``root``."""
    return path != root and path.startswith(root.rstrip("/") + "/")


def _is_kernel(backend: Backend) -> bool:
    return getattr(backend, "name", "") == "kernel"


def _check_on_bpffs(real_directory: str, asked: str) -> None:
    fs_type = filesystem_type(real_directory)
    if fs_type != BPF_FS_MAGIC:
        shown = repr(asked) if real_directory == asked else f"{asked!r} (really {real_directory!r})"
        raise ValueError(f"pin path {shown} is not on bpffs (filesystem magic {fs_type:#x}); "
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
