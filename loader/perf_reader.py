"""``loader.PerfReader``: read what BPF programs send to a ``PERF_EVENT_ARRAY`` (``bpf_perf_event_output``).

A ``PERF_EVENT_ARRAY`` holds one perf event per CPU; a program's output goes to the event
of the CPU it runs on (``BPF_F_CURRENT_CPU``). For each possible CPU the reader opens a
``PERF_COUNT_SW_BPF_OUTPUT`` software event (``PERF_SAMPLE_RAW``, a wakeup per sample),
mmaps its ring — one metadata page (``struct perf_event_mmap_page``) and ``per_cpu_pages``
data pages — and stores the event in the array at that CPU's index. Offline CPUs (``ENODEV``)
are skipped, like cilium/ebpf and libbpf do.

Reading a ring (``include/uapi/linux/perf_event.h``): the kernel advances ``data_head``
(offset 1024 of the metadata page) after writing records; the reader consumes from
``data_tail`` (offset 1032, which only the reader writes) up to the head and then stores
the new tail. Offsets in the data area are ``position % data_size``; records are 8-byte
aligned but may wrap around the end of the data area, and are reassembled here. Each record
starts with ``struct perf_event_header`` (``u32 type``, ``u16 misc``, ``u16 size``):

- ``PERF_RECORD_SAMPLE`` (9) with ``PERF_SAMPLE_RAW``: ``u32 size`` and the raw bytes. The
  kernel pads raw data so that the whole sample stays 8-byte aligned, so ``data`` may end in
  up to 7 bytes of padding beyond what the program emitted (as in cilium/ebpf and libbpf);
- ``PERF_RECORD_LOST`` (2): ``u64 id``, ``u64 lost`` — samples dropped because the ring was
  full. They are reported as a record with ``lost`` set and added to :attr:`PerfReader.lost`.

Sizes read from the rings are checked (a head more than a ring ahead of the tail, a record
smaller than its header or running past the head, a raw size running past its record) and
raise :class:`~loader.errors.MapError` (``EBADMSG``) naming the map; nothing is read
outside a mapping. Waiting, thread-safety and closing are those of
:class:`loader.RingBuffer` (see :mod:`loader.ringbuf`).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import struct
from typing import TYPE_CHECKING, Final

import attrs

from ebpfspec import MapType
from loader.errors import LoaderError, MapError, NotSupportedError
from loader.ringbuf import PollingReader, ensure_kernel_map

if TYPE_CHECKING:
    from loader.backend import Backend
    from loader.map import Map

__all__ = ["PERF_RECORD_LOST", "PERF_RECORD_SAMPLE", "PerfReader", "PerfRecord"]

#: ``PERF_RECORD_LOST``: ``{u64 id; u64 lost}``.
PERF_RECORD_LOST: Final = 2
#: ``PERF_RECORD_SAMPLE``: with ``PERF_SAMPLE_RAW`` only, ``{u32 size; char data[size]}``.
PERF_RECORD_SAMPLE: Final = 9

#: Offsets in ``struct perf_event_mmap_page``.
_DATA_HEAD: Final = 1024
_DATA_TAIL: Final = 1032
_DATA_OFFSET: Final = 1040
_DATA_SIZE: Final = 1048

_U64: Final = struct.Struct("=Q")
_HEADER: Final = struct.Struct("=IHH")  # struct perf_event_header
_LOST: Final = struct.Struct("=QQ")
_U32: Final = struct.Struct("=I")


@attrs.frozen
class PerfRecord:
    """One record of a perf ring: a sample's raw ``data``, or (``lost`` > 0) a count of dropped samples.

    ``data`` may carry up to 7 bytes of alignment padding after what the program emitted.
    """

    cpu: int
    data: bytes
    lost: int = 0


class _Ring:
    """One CPU's perf event and its mapped ring."""

    def __init__(self, cpu: int, fd: int, mapping: mmap.mmap, page: int, pages: int):
        self.cpu = cpu
        self.fd = fd
        self.mapping = mapping
        offset = _U64.unpack_from(mapping, _DATA_OFFSET)[0]
        size = _U64.unpack_from(mapping, _DATA_SIZE)[0]
        if not size:  # kernels before 4.1 leave these 0: the data area follows the metadata page
            offset, size = page, page * pages
        if offset + size > len(mapping) or size & (size - 1):
            raise ValueError(f"CPU {cpu}: the kernel's data area ({size} bytes at {offset}) is not within "
                             f"the {len(mapping)} bytes mapped")
        self.offset = offset
        self.size = size

    def read(self, n: int, position: int) -> bytes:
        """``n`` bytes of the data area from ``position``, joined across the end of the ring."""
        start = position & (self.size - 1)
        base = self.offset
        end = start + n
        if end <= self.size:
            return self.mapping[base + start:base + end]
        return self.mapping[base + start:base + self.size] + self.mapping[base:base + end - self.size]


class PerfReader(PollingReader[PerfRecord]):
    """A reader of a ``PERF_EVENT_ARRAY`` map (kernel backend only).

    ``reader.read(timeout)`` → ``list[PerfRecord]``; also ``poll``, ``read_available``,
    ``records(timeout)``, ``consume(callback, timeout)`` as on :class:`~loader.RingBuffer`.
    :attr:`lost` counts samples the kernel dropped because a ring was full. ``close()`` (or
    the context manager) removes the events from the array and releases everything.
    """

    def __init__(self, m: Map, *, per_cpu_pages: int = 8):
        """Open, map and store one event per possible CPU; ``per_cpu_pages`` is a power of two."""
        ensure_kernel_map(m, MapType.PERF_EVENT_ARRAY, "perf reader")
        if per_cpu_pages < 1 or per_cpu_pages & (per_cpu_pages - 1):
            raise ValueError(f"map {m.name!r}: per_cpu_pages must be a power of two, not {per_cpu_pages}")
        self.name = m.name
        self.per_cpu_pages = per_cpu_pages
        self._lost = 0
        page = mmap.PAGESIZE
        own = m.clone()
        backend: Backend = own.backend
        rings: list[_Ring] = []
        stored: list[int] = []
        try:
            cpus = min(backend.possible_cpus(), own.max_entries)
            for cpu in range(cpus):
                try:
                    fd = backend.perf_event_open_bpf_output(cpu)
                except OSError as err:
                    if err.errno == errno.ENODEV:  # an offline CPU
                        continue
                    if err.errno == errno.EOPNOTSUPP:
                        raise NotSupportedError(f"map {m.name!r}: perf reader: {err.strerror}") from None
                    raise MapError(err.errno or errno.EIO, "perf reader", m.name,
                                   f"opening the BPF output event of CPU {cpu}") from None
                try:
                    mapping = mmap.mmap(fd, page * (1 + per_cpu_pages), mmap.MAP_SHARED,
                                        mmap.PROT_READ | mmap.PROT_WRITE)
                except OSError as err:
                    backend.close(fd)
                    raise MapError(err.errno or errno.EIO, "perf reader mmap", m.name, f"CPU {cpu}") from None
                try:
                    rings.append(_Ring(cpu, fd, mapping, page, per_cpu_pages))
                except ValueError as err:
                    mapping.close()
                    backend.close(fd)
                    raise MapError(errno.EINVAL, "perf reader mmap", m.name, str(err)) from None
                own.update(_U32.pack(cpu), _U32.pack(fd))
                stored.append(cpu)
            if not rings:
                raise MapError(errno.ENODEV, "perf reader", m.name, "no CPU could open a BPF output event")
            self._map = own
            self._rings = tuple(rings)
            self._stored = tuple(stored)
            try:
                self._start(m.name, [ring.fd for ring in rings])
            except OSError as err:
                raise MapError(err.errno or errno.EIO, "perf reader epoll", m.name) from None
        except BaseException:
            self.__dict__.pop("_rings", None)
            _release_rings(own, backend, rings, stored)
            raise

    def __enter__(self) -> PerfReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._rings)} CPUs"
        return f"<loader.PerfReader {self.name!r} {state}>"

    @property
    def lost(self) -> int:
        """Samples dropped so far because a ring was full (from the ``PERF_RECORD_LOST`` records read)."""
        return self._lost

    @property
    def cpus(self) -> tuple[int, ...]:
        """The CPUs read from (the possible CPUs that were online when the reader was made)."""
        return tuple(ring.cpu for ring in self._rings)

    def read(self, timeout: float | None = None) -> list[PerfRecord]:
        """The records available, waiting up to ``timeout`` seconds (None: until some come); as ``poll``."""
        return self.poll(timeout)

    def _corrupt(self, cpu: int, detail: str) -> MapError:
        return MapError(errno.EBADMSG, "read perf ring", self.name, f"CPU {cpu}: {detail}")

    def _drain(self) -> list[PerfRecord]:
        out: list[PerfRecord] = []
        for ring in self._rings:
            self._drain_ring(ring, out)
        return out

    def _drain_ring(self, ring: _Ring, out: list[PerfRecord]) -> None:
        mapping, cpu, size = ring.mapping, ring.cpu, ring.size
        head = _U64.unpack_from(mapping, _DATA_HEAD)[0]
        tail = _U64.unpack_from(mapping, _DATA_TAIL)[0]
        if head < tail or head - tail > size:
            raise self._corrupt(cpu, f"head {head} is not within {size} bytes after tail {tail}")
        while tail < head:
            if head - tail < _HEADER.size:
                raise self._corrupt(cpu, f"{head - tail} bytes at {tail} cannot hold a record header")
            kind, _misc, length = _HEADER.unpack(ring.read(_HEADER.size, tail))
            if length < _HEADER.size or length > head - tail:
                raise self._corrupt(cpu, f"record at {tail} has size {length}, outside 8..{head - tail}")
            record = ring.read(length, tail)
            if kind == PERF_RECORD_SAMPLE:
                if length < _HEADER.size + _U32.size:
                    raise self._corrupt(cpu, f"sample at {tail} of {length} bytes has no raw size")
                raw = _U32.unpack_from(record, _HEADER.size)[0]
                start = _HEADER.size + _U32.size
                if start + raw > length:
                    raise self._corrupt(cpu, f"sample at {tail} claims {raw} raw bytes in a {length}-byte "
                                             "record")
                out.append(PerfRecord(cpu, record[start:start + raw]))
            elif kind == PERF_RECORD_LOST:
                if length < _HEADER.size + _LOST.size:
                    raise self._corrupt(cpu, f"lost record at {tail} of {length} bytes is too short")
                _id, lost = _LOST.unpack_from(record, _HEADER.size)
                self._lost += lost
                out.append(PerfRecord(cpu, b"", lost))
            tail += length
            _U64.pack_into(mapping, _DATA_TAIL, tail)  # after the copy: the kernel may reuse the space

    def _release(self) -> None:
        _release_rings(self._map, self._map.backend, list(self._rings), list(self._stored))


def _release_rings(own: Map, backend: Backend, rings: list[_Ring], stored: list[int]) -> None:
    """Take the events out of the array, unmap and close them, and close the map descriptor."""
    try:
        for cpu in stored:
            with contextlib.suppress(LoaderError, OSError):
                own.delete(_U32.pack(cpu))
        for ring in rings:
            try:
                ring.mapping.close()
            finally:
                backend.close(ring.fd)
    finally:
        own.close()
