"""Errors of the ``loader`` package. Every error names the map or program at fault.

``MapError`` and its subclasses are also ``OSError``\\ s carrying the kernel's errno, so
``except FileExistsError`` / ``except KeyError`` work as Python users expect:

- :class:`KeyNotFoundError` — ``ENOENT`` on a lookup/delete, or an ``update(..., EXIST)``
  of an absent key (also a ``KeyError``);
- :class:`KeyExistsError` — ``EEXIST`` on ``update(..., NOEXIST)`` (also a ``FileExistsError``).
"""

from __future__ import annotations

import errno as errno_codes
import os


class LoaderError(Exception):
    """Base of every loader error."""


class MapError(LoaderError, OSError):
    """A map operation failed: ``errno``, the ``op`` that failed and the ``map_name``.

    ``count`` is set for batch operations that failed part way: how many entries were
    processed before the failure (None if unknown).
    """

    count: int | None = None

    def __init__(self, errno: int, op: str, map_name: str, detail: str = ""):
        message = f"map {map_name!r}: {op}: {os.strerror(errno)}"
        if detail:
            message += f" ({detail})"
        OSError.__init__(self, errno, message)
        self.op = op
        self.map_name = map_name
        self.detail = detail

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errno, self.op, self.map_name, self.detail), {"count": self.count})


class KeyNotFoundError(MapError, KeyError):
    """The key is not in the map (``ENOENT``)."""

    __str__ = MapError.__str__


class KeyExistsError(MapError, FileExistsError):
    """The key is already in the map and ``NOEXIST`` was asked (``EEXIST``). An expected outcome."""


class MapClosedError(MapError):
    """The map was closed (possibly by another thread) before or during the operation."""

    def __init__(self, op: str, map_name: str):
        super().__init__(errno_codes.EBADF, op, map_name, "the map is closed")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.op, self.map_name))


class MapIncompatibleError(LoaderError):
    """An existing map (pinned, or a replacement) does not match the spec; names the fields."""


class NotSupportedError(LoaderError):
    """The kernel (or backend) does not support what was asked."""


class BatchCursorError(LoaderError):
    """A batch cursor was used on a map other than the one it started on."""


class ProgramError(LoaderError, OSError):
    """A program operation failed: ``errno``, the ``op`` and the ``program`` name (and a hint)."""

    def __init__(self, errno: int, op: str, program: str, detail: str = ""):
        message = f"program {program!r}: {op}: {os.strerror(errno)}"
        if detail:
            message += f" ({detail})"
        OSError.__init__(self, errno, message)
        self.op = op
        self.program = program

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errno, self.op, self.program))


class VerifierError(LoaderError):
    """The verifier rejected a program. ``log`` holds its log lines; ``str()`` ends with the last ones."""

    def __init__(self, program: str, errno: int, log: list[str], *, truncated: bool = False):
        self.program = program
        self.errno = errno
        self.log = log
        self.truncated = truncated
        lines = [line for line in log if line.strip()]
        processed = next((line for line in reversed(lines) if line.startswith("processed ")), "")
        tail = [line for line in lines if line != processed][-5:]
        summary = f"program {program!r}: the verifier rejected it ({os.strerror(errno)})"
        if processed:
            summary += f"; {processed.split(' (')[0]}"  # "processed 12 insns"
        if tail:
            summary += ":\n  " + "\n  ".join(tail)
        if truncated:
            summary += "\n  (the log was truncated at the size limit)"
        super().__init__(summary)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.program, self.errno, self.log))


#: Operations whose ENOENT means "no such key" (update: with ``EXIST``).
_KEY_OPS = frozenset({"lookup", "delete", "lookup_and_delete", "update", "batch_delete"})
#: Operations whose EEXIST means "the key is there" (with ``NOEXIST``).
_CREATE_OPS = frozenset({"update"})


def map_error(err: OSError, op: str, map_name: str) -> MapError:
    """The library error for ``err`` (an errno from the kernel or a backend).

    A batch error's ``count`` (entries processed before it), if the backend set one, is kept.
    """
    code = err.errno or errno_codes.EIO
    error: MapError
    if code == errno_codes.ENOENT and op in _KEY_OPS:
        error = KeyNotFoundError(code, op, map_name)
    elif code == errno_codes.EEXIST and op in _CREATE_OPS:
        error = KeyExistsError(code, op, map_name)
    else:
        error = MapError(code, op, map_name)
    count = getattr(err, "count", None)
    if isinstance(count, int):
        error.count = count
    return error
