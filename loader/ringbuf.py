"""``loader.RingBuffer``: read the records BPF programs submit to a ``BPF_MAP_TYPE_RINGBUF`` map.

How a BPF ring buffer is read from user space (``kernel/bpf/ringbuf.c``):

- The map's descriptor is mmapped twice. Page 0 (read-write, exactly one page) holds the
  consumer position, a ``u64`` only the reader writes. From page 1 on (read-only) come the
  producer page, whose first ``u64`` is the producer position, and then the data area of
  ``max_entries`` bytes (a power of two, a multiple of the page size) — mapped *twice* in a
  row, so a record that wraps past the end of the ring can still be read as one piece.
- Positions only grow; ``pos & (max_entries - 1)`` is the offset in the data area. Every
  record starts 8-byte aligned with an 8-byte header: ``u32 len`` (bit 31 ``BUSY``: reserved
  and not yet submitted; bit 30 ``DISCARD``: dropped by the program) and ``u32 pg_off``
  (the kernel's own), then ``len`` bytes of data, padded to a multiple of 8.
- The reader walks from the consumer position up to the producer position, skips
  discarded records, stops at the first busy one, and stores the new consumer position
  after each record so the producer can reuse the space.
- The map's descriptor is readable (``EPOLLIN``) while records are waiting; the kernel
  wakes a waiting reader when a record is submitted at the position it is waiting at.

Every position and length read from the shared pages is checked before it is used: a
length larger than the ring, a record running past the producer position, or a producer
more than a ring ahead of the consumer raises :class:`~loader.errors.MapError`
(``EBADMSG``) naming the map, and nothing is ever read outside the mapped area.

Ordering: the kernel publishes a record with a release store of its header and of the
producer position. This module reads the positions and headers with single aligned 8-
and 4-byte loads from the mapping, and stores the consumer position after the record's
bytes have been copied out. On x86 (TSO) that is all the ordering needed; on weakly
ordered machines the many interpreter steps between loads are not a formal barrier,
which is the usual caveat of reading these rings from Python.

Thread-safety: readers may poll from many threads; consumption is serialised by a lock,
so each record is returned exactly once. ``close()`` wakes every waiting thread (through
an eventfd watched by the same epoll) and waits for them to leave before unmapping
anything, so no thread can ever read from a mapping that is gone.

:class:`PollingReader` (this waiting and closing machinery) is shared with
:class:`loader.PerfReader`.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import select
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from ebpfspec import MapType
from loader.errors import MapClosedError, MapError, NotSupportedError
from loader.handle import Handle, HandleClosed

if TYPE_CHECKING:
    from loader.map import Map

__all__ = ["BUSY_BIT", "DISCARD_BIT", "HEADER_SIZE", "PollingReader", "RingBuffer"]

#: ``BPF_RINGBUF_BUSY_BIT``: the record is reserved, not yet submitted (or discarded).
BUSY_BIT: Final = 1 << 31
#: ``BPF_RINGBUF_DISCARD_BIT``: the program discarded the record.
DISCARD_BIT: Final = 1 << 30
#: ``BPF_RINGBUF_HDR_SZ``: the record header (``u32 len``, ``u32 pg_off``).
HEADER_SIZE: Final = 8

_U64: Final = struct.Struct("=Q")
_U32: Final = struct.Struct("=I")

_T = TypeVar("_T")


def ensure_kernel_map(m: Map, map_type: MapType, what: str) -> None:
    """Check that ``m`` is a live ``map_type`` map of the kernel backend (mmap and epoll need one)."""
    if m.type != map_type:
        raise ValueError(f"map {m.name!r}: a {what} needs a {map_type} map, not a {m.type} map")
    if getattr(m.backend, "name", "") != "kernel":
        raise NotSupportedError(f"map {m.name!r}: a {what} needs the kernel backend: the "
                                f"{getattr(m.backend, 'name', type(m.backend).__name__)} backend has no "
                                "memory to map and nothing to wait on")


class PollingReader(Generic[_T]):
    """Waiting (epoll) and closing for readers of shared-memory rings. Subclasses provide the rest.

    A subclass calls :meth:`_start` with the descriptors to watch once its resources exist,
    and implements :meth:`_drain` (take every record now available; called with the
    consumption lock held) and :meth:`_release` (free every resource; called once, when no
    thread is using them any more).
    """

    _name: str = "?"

    def _start(self, name: str, fds: Iterable[int]) -> None:
        """Watch ``fds`` for ``EPOLLIN``; from here on :meth:`close` releases everything."""
        self._name = name
        self._lock = threading.Lock()
        epoll = select.epoll()
        try:
            wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            epoll.close()
            raise
        try:
            epoll.register(wake, select.EPOLLIN)
            for fd in fds:
                epoll.register(fd, select.EPOLLIN)
        except BaseException:
            epoll.close()
            os.close(wake)
            raise
        self._epoll = epoll
        self._wake = wake
        self._handle = Handle(wake, self._close_all)

    # -- subclass hooks ----------------------------------------------------------------------------

    def _drain(self) -> list[_T]:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------------------------

    def poll(self, timeout: float | None = None) -> list[_T]:
        """The records available, waiting up to ``timeout`` seconds (None: until there are some) for one.

        Returns ``[]`` when the time runs out, or when another thread closes the reader
        meanwhile. :class:`~loader.errors.MapClosedError` if it is already closed.
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._using("poll"):
            while True:
                records = self._take()
                if records or self._handle.closed:
                    return records
                if deadline is None:
                    wait = -1.0
                else:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        return []
                self._epoll.poll(wait)

    def read_available(self) -> list[_T]:
        """The records available now, without waiting."""
        with self._using("read"):
            return self._take()

    def records(self, timeout: float | None = None) -> Iterator[_T]:
        """Iterate over records as they come; stops once none comes for ``timeout`` seconds or on close.

        With ``timeout`` None it runs until :meth:`close` (from another thread).
        """
        if self.closed:
            raise MapClosedError("records", self._name)
        while not self.closed:
            batch = self.poll(timeout)
            if not batch:
                return
            yield from batch

    def consume(self, callback: Callable[[_T], object], timeout: float | None = 0) -> int:
        """Call ``callback(record)`` for every record :meth:`poll` gives; returns how many there were.

        The callbacks run after the records were taken out of the ring and the reader's lock
        was let go, so a callback may use (or close) the reader.
        """
        records = self.poll(timeout)
        for record in records:
            callback(record)
        return len(records)

    def _take(self) -> list[_T]:
        with self._lock:
            return self._drain()

    @contextlib.contextmanager
    def _using(self, op: str) -> Iterator[None]:
        try:
            self._handle.acquire()
        except HandleClosed:
            raise MapClosedError(op, self._name) from None
        try:
            yield
        finally:
            self._handle.release()

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading: wake every waiting thread, wait for them to leave, unmap and close everything.

        Idempotent.
        """
        handle = getattr(self, "_handle", None)
        if handle is None or handle.closed:
            return
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)  # never read back: epoll keeps reporting it from here on
        handle.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has begun."""
        handle = getattr(self, "_handle", None)
        return handle is None or handle.closed

    def _close_all(self, _wake: int) -> None:
        try:
            self._release()
        finally:
            self._epoll.close()
            os.close(self._wake)

    def __del__(self) -> None:
        if not self.closed:
            warnings.warn(f"unclosed {type(self).__name__} of map {self._name!r}", ResourceWarning,
                          stacklevel=2, source=self)
            with contextlib.suppress(Exception):
                self.close()


class RingBuffer(PollingReader[bytes]):
    """A reader of a ``RINGBUF`` map (kernel backend only).

    ``rb.poll(timeout)`` → ``list[bytes]``; ``rb.read_available()``; ``for record in
    rb.records(timeout=1.0)``; ``rb.consume(callback, timeout)``; ``close()`` (also as a
    context manager). The reader holds its own descriptor of the map, so closing the
    :class:`~loader.Map` does not disturb it.
    """

    def __init__(self, m: Map):
        """Map ``m``'s ring; ``NotSupportedError`` for a map of a backend other than the kernel's."""
        ensure_kernel_map(m, MapType.RINGBUF, "ring buffer reader")
        size = m.max_entries
        page = mmap.PAGESIZE
        if size <= 0 or size & (size - 1) or size % page:
            raise MapError(errno.EINVAL, "ring buffer", m.name,
                           f"max_entries {size} is not a power of two multiple of the page size {page}")
        self.name = m.name
        #: The size of the data area in bytes (the map's ``max_entries``).
        self.size = size
        self._mask = size - 1
        self._data = page  # where the data area starts in the producer mapping
        self._mapped = page + 2 * size
        own = m.clone()
        try:
            fd = own.fileno()
            try:
                consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            except OSError as err:
                raise MapError(err.errno or errno.EIO, "ring buffer mmap", m.name, "consumer page") from None
            try:
                producer = mmap.mmap(fd, self._mapped, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
            except OSError as err:
                consumer.close()
                raise MapError(err.errno or errno.EIO, "ring buffer mmap", m.name,
                               "producer page and data area") from None
            self._map = own
            self._consumer = consumer
            self._producer = producer
            try:
                self._start(m.name, [fd])
            except OSError as err:
                raise MapError(err.errno or errno.EIO, "ring buffer epoll", m.name) from None
        except BaseException:
            for res in ("_producer", "_consumer"):
                mapping = self.__dict__.pop(res, None)
                if mapping is not None:
                    mapping.close()
            own.close()
            raise

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.size} bytes"
        return f"<loader.RingBuffer {self.name!r} {state}>"

    @property
    def available(self) -> int:
        """Bytes submitted (or reserved) and not consumed yet, headers included."""
        with self._using("available"):
            return int(_U64.unpack_from(self._producer, 0)[0] - _U64.unpack_from(self._consumer, 0)[0])

    def _corrupt(self, detail: str) -> MapError:
        return MapError(errno.EBADMSG, "read ring buffer", self.name, detail)

    def _drain(self) -> list[bytes]:
        consumer, producer = self._consumer, self._producer
        size, mask, data = self.size, self._mask, self._data
        out: list[bytes] = []
        cons = _U64.unpack_from(consumer, 0)[0]
        budget = size  # bytes to consume in one call at most: a busy producer cannot keep us here
        while budget > 0:
            prod = _U64.unpack_from(producer, 0)[0]
            if prod < cons or prod - cons > size:
                raise self._corrupt(f"producer position {prod} is not within {size} bytes after the "
                                    f"consumer position {cons}")
            if prod == cons:
                break
            busy = False
            while cons < prod:
                at = data + (cons & mask)
                header = _U32.unpack_from(producer, at)[0]
                if header & BUSY_BIT:
                    busy = True
                    break
                length = header & ~(BUSY_BIT | DISCARD_BIT)
                total = (length + HEADER_SIZE + 7) & ~7
                if total > size or cons + total > prod:
                    raise self._corrupt(f"record at position {cons} claims {length} bytes, past the producer "
                                        f"position {prod} (ring of {size} bytes)")
                if not header & DISCARD_BIT:
                    out.append(producer[at + HEADER_SIZE:at + HEADER_SIZE + length])
                cons += total
                budget -= total
                _U64.pack_into(consumer, 0, cons)  # after the copy: the space may be reused from here on
            if busy:
                break
        return out

    def _release(self) -> None:
        try:
            self._producer.close()
            self._consumer.close()
        finally:
            self._map.close()
