"""What a :class:`~loader.memory.MemoryBackend` handle can point to, and the errors it raises.

Every object (a map, a program or a BTF blob) is reference-counted like a kernel object:
each handle, each pin, each map-in-map or program-array slot holding it, each map or
program using a BTF blob and each program using a map counts one reference. When the
last one goes, the object is released: it loses its id and drops the references it held
itself (the inner maps or programs in its slots, its BTF, a program's maps).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import btf

__all__ = ["ENOTSUPP", "BpfObject", "BtfObject", "ObjectTable", "ProgObject", "oserror"]

#: The kernel-internal "not supported" errno (``ENOTSUPP``, not ``EOPNOTSUPP``) that
#: ``bpf(2)`` leaks to user space; ``os.strerror`` does not know it.
ENOTSUPP = 524


def oserror(code: int, detail: str = "") -> OSError:
    """An ``OSError`` for errno ``code`` (the matching subclass, as ``bpf(2)`` failures give).

    ``detail`` says what the model found wrong; it is appended to the usual message.
    """
    message = "Operation not supported (ENOTSUPP)" if code == ENOTSUPP else os.strerror(code)
    if detail:
        message = f"{message}: {detail}"
    return OSError(code, message)


class BpfObject:
    """A kernel object of the model: reference-counted, with an id of its kind.

    ``refs`` and ``id`` belong to the backend's object table and change only under its
    lock. :meth:`release` runs once, after the last reference is gone. ``urefs`` counts
    the references user space holds (handles and pins; the kernel's ``usercnt`` of a
    map): when the last goes, a program array drops its programs, as in the kernel,
    which breaks the cycle of a program that tail-calls through an array holding it.
    """

    __slots__ = ("id", "refs", "urefs")

    #: "map", "prog" or "btf" (what ``bpf(2)`` would find behind the fd).
    kind: ClassVar[str] = ""

    def __init__(self) -> None:
        self.id = 0
        self.refs = 0
        self.urefs = 0

    def release(self) -> list[BpfObject]:
        """Free what the object holds; returns the objects whose references it gave up."""
        return []


class BtfObject(BpfObject):
    """A loaded BTF blob (``BPF_BTF_LOAD``): the raw bytes and their parsed types."""

    __slots__ = ("raw", "spec")

    kind = "btf"

    def __init__(self, raw: bytes, spec: btf.Spec) -> None:
        super().__init__()
        self.raw = raw
        self.spec = spec


class ProgObject(BpfObject):
    """A loaded program (``BPF_PROG_LOAD``): accepted, never verified and never run.

    ``used`` are the objects the program holds references to, in the order the kernel
    records them: the maps its instructions name (``used_maps``), the target program of a
    freplace or fentry/fexit program (``dst_prog``), then its BTF.
    """

    __slots__ = ("btf_id", "expected_attach_type", "func_ids", "insns", "license", "map_ids", "name",
                 "prog_flags", "prog_type", "tag", "used")

    kind = "prog"

    def __init__(self, *, prog_type: int, name: str, insns: bytes, license: str, tag: bytes,
                 expected_attach_type: int, prog_flags: int, used: list[BpfObject], map_ids: tuple[int, ...],
                 btf_id: int, func_ids: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.prog_type = prog_type
        self.name = name
        self.insns = insns
        self.license = license
        self.tag = tag
        self.expected_attach_type = expected_attach_type
        self.prog_flags = prog_flags
        self.used = used
        self.map_ids = map_ids
        self.btf_id = btf_id
        #: The BTF type ids of the program's func info (one per subprogram): what freplace can target.
        self.func_ids = func_ids

    def release(self) -> list[BpfObject]:
        """Give up the maps and the BTF the program held."""
        held, self.used = self.used, []
        return held


class ObjectTable(Protocol):
    """What a map needs from its backend to store other objects (map-in-map slots)."""

    def get_object(self, fd: int) -> BpfObject:
        """A new reference to the object behind handle ``fd``; ``OSError(EBADF)`` if there is none.

        Taken atomically with the look-up (like the kernel's ``bpf_map_get``), so the object
        cannot be released in between; the caller keeps it or gives it back with :meth:`decref`.
        """
        ...

    def decref(self, obj: BpfObject) -> None:
        """Drop a reference to ``obj``, releasing it if it was the last."""
        ...
