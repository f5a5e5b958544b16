"""``Handle``: a backend handle (file descriptor) that can be closed safely while in use.

Every operation on a live object brackets its backend call with :meth:`Handle.acquire`
and :meth:`Handle.release`. :meth:`Handle.close` marks the handle closed — new
acquisitions fail at once — and waits for the operations already running to finish
before it releases the descriptor. So no thread can ever operate on a descriptor number
that was closed and reused for something else.

How, cheaply (no lock on any path): the use count is a list holding one token per
running operation; ``list.append`` and ``list.pop`` are atomic.

* An acquisition appends its token first and checks the closed flag *after* that
  (backing out if it is set), while :meth:`Handle.close` sets the flag first and looks
  at the list after that: either the closer sees the token (and waits for it), or the
  acquirer sees the flag (and gives up) — never neither.
* Exactly one :meth:`Handle.close` wins: the one that pops the single "closing" token.
* A closer that has to wait makes an event, publishes it, *then* re-checks the list
  before each wait; a release pops its token, *then* (if the handle is closed) sets the
  published event. So a release the closer did not see is always followed by a
  ``set()`` after the closer's ``clear()``: no wake-up is lost.

:meth:`loader.Map.lookup` and :meth:`loader.Map.update` inline acquire/release (the
same steps, in the same order) on their hot paths.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class HandleClosed(Exception):
    """Raised by :meth:`Handle.acquire` once the handle is closed."""


class Handle:
    """A descriptor with a use count. Thread-safe."""

    __slots__ = ("_closed", "_closing", "_fd", "_idle", "_release_fd", "_users")

    def __init__(self, fd: int, release_fd: Callable[[int], None]):
        self._fd = fd
        self._release_fd = release_fd
        #: one token per use taken and not yet given back
        self._users: list[None] = []
        self._closed = False
        #: the one token a close() takes to be the one that closes
        self._closing: list[None] = [None]
        #: made (and published) by a close() that has to wait for running uses
        self._idle: threading.Event | None = None

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
        if self._closed:
            raise HandleClosed
        self._users.append(None)
        if self._closed:  # a close() began meanwhile: it may not have seen our token, so back out
            self.release()
            raise HandleClosed
        return self._fd

    def release(self) -> None:
        """Give back a use taken by :meth:`acquire`."""
        self._users.pop()
        if self._closed:
            self._wake()

    def _wake(self) -> None:
        """Tell a waiting :meth:`close` that a use ended (it checks whether any are left)."""
        idle = self._idle
        if idle is not None:
            idle.set()

    def close(self) -> bool:
        """Close once every running use has ended. Idempotent; True if this call closed it.

        A second ``close()`` while the first waits returns False at once.
        """
        try:
            self._closing.pop()
        except IndexError:
            return False
        self._closed = True  # from here on no new use starts (acquire checks after appending)
        if self._users:
            idle = self._idle = threading.Event()
            while self._users:
                idle.wait()
                idle.clear()
        self._release_fd(self._fd)
        return True
