"""``Handle``: a backend handle (file descriptor) that can be closed safely while in use.

Every operation on a live object brackets its backend call with :meth:`Handle.acquire`
and :meth:`Handle.release`. :meth:`Handle.close` marks the handle closed — new
acquisitions fail at once — and waits for the operations already running to finish
before it releases the descriptor. So no thread can ever operate on a descriptor number
that was closed and reused for something else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class HandleClosed(Exception):
    """Raised by :meth:`Handle.acquire` once the handle is closed."""


class Handle:
    """A descriptor with a use count. Thread-safe."""

    __slots__ = ("_closed", "_fd", "_idle", "_lock", "_release_fd", "_users")

    def __init__(self, fd: int, release_fd: Callable[[int], None]):
        self._fd = fd
        self._release_fd = release_fd
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def peek(self) -> int:
        """The descriptor number, without taking a use (for messages and ``fileno()``)."""
        if self._closed:
            raise HandleClosed
        return self._fd

    def acquire(self) -> int:
        """Take a use of the descriptor; ``HandleClosed`` if it is closed."""
        with self._lock:
            if self._closed:
                raise HandleClosed
            self._users += 1
            return self._fd

    def release(self) -> None:
        """Give back a use taken by :meth:`acquire`."""
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._closed:
                self._idle.notify_all()

    def close(self) -> bool:
        """Close once every running use has ended. Idempotent; True if this call closed it."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            while self._users:
                self._idle.wait()
        self._release_fd(self._fd)
        return True
