"""``LiveObject``: the lifetime and pinning that :class:`~loader.Map` and :class:`~loader.Program` share.

A live object owns one backend handle (use-counted by :class:`~loader.handle.Handle`, so
``close()`` waits for running operations and no operation ever reaches a recycled
descriptor), may be pinned on bpffs, and warns with ``ResourceWarning`` when garbage
collected open. Subclasses say how their errors look (:meth:`_error`) and route
operations through their own ``_call``.
"""

from __future__ import annotations

import errno
import warnings
from typing import Any, ClassVar, Self

from loader.backend import Backend
from loader.errors import LoaderError
from loader.handle import Handle, HandleClosed


class LiveObject:
    """Base of live kernel objects: ``close``, ``fileno``, context manager, ``pin``/``unpin``."""

    #: "map" / "program": how messages name the object.
    KIND: ClassVar[str] = "object"

    name: str
    type: Any
    _backend: Backend
    _handle: Handle
    _pinned_path: str | None

    def _error(self, code: int, op: str, detail: str = "") -> LoaderError:
        """The library error for ``op`` failing with errno ``code`` on this object."""
        raise NotImplementedError

    def _call(self, op: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a backend operation on the descriptor (each subclass has its own fast path)."""
        raise NotImplementedError

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the descriptor (idempotent). Waits for operations running in other threads."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._handle.closed

    def fileno(self) -> int:
        """The descriptor (an ``EBADF`` error naming the object if closed). Stays owned by this object."""
        try:
            return self._handle.peek()
        except HandleClosed:
            raise self._error(errno.EBADF, "fileno", f"the {self.KIND} is closed") from None

    @property
    def fd(self) -> int:
        """Same as :meth:`fileno`."""
        return self.fileno()

    @property
    def backend(self) -> Backend:
        """The backend this object lives in."""
        return self._backend

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and not handle.closed:
            warnings.warn(f"unclosed {self.KIND} {self.name!r}", ResourceWarning, stacklevel=2, source=self)
            handle.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._handle.peek()}"
        return f"<loader.{type(self).__name__} {self.name!r} {self.type} {state}>"

    # -- pinning -----------------------------------------------------------------------------------

    def pin(self, path: str) -> None:
        """Pin the object at ``path`` (on bpffs)."""
        from loader.pinning import check_pin_target

        check_pin_target(path, self._backend)
        self._call("pin", self._backend.obj_pin, path)
        self._pinned_path = path

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` or found by ``load_pinned`` (no-op if none)."""
        path = self._pinned_path
        if path is None:
            return
        try:
            self._backend.obj_unpin(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise self._error(err.errno or errno.EIO, "unpin", path) from None
        self._pinned_path = None

    @property
    def pinned_path(self) -> str | None:
        """Where the object is pinned, if this object pinned or loaded it."""
        return self._pinned_path
