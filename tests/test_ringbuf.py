"""``loader.RingBuffer`` and ``loader.PerfReader``.

The parsers are first checked on fake rings (byte arrays laid out as the kernel lays out
its pages): discarded and busy records, records that wrap around the end, lost-sample
records, and corrupt lengths that must raise instead of reading past the mapping. Then
against the kernel: trace.c's ``raw_getpid`` submits one ``struct event`` per getpid() call
to the ``events`` ring buffer and, with ``use_perf``, to the ``perf_events`` perf event array;
the tests read them back in order, across wrap-arounds, from several threads, after
overflows, and check that closing wakes a blocked reader.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator

import pytest

import btf
import ebpfspec
import loader
from ebpfspec import MapType
from loader import (
    MapClosedError,
    MapError,
    MemoryBackend,
    NotSupportedError,
    PerfReader,
    PerfRecord,
    RingBuffer,
)
from loader.backend import MapAttrs
from loader.kernel import KernelBackend
from loader.kernel import perf as kernel_perf
from loader.perf_reader import PERF_RECORD_LOST, PERF_RECORD_SAMPLE, _Ring
from loader.ringbuf import BUSY_BIT, DISCARD_BIT
from tests.test_links import EVENT, GETPID_NR, TRACE, getpid_calls, load, our_events, syscall_getpid

PAGE = mmap.PAGESIZE
#: This process's id, read once: every getpid() call is counted by the programs under test.
ME = os.getpid()

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


# -- fake rings -------------------------------------------------------------------------------------


class FakeRing:
    """A ring buffer's consumer page, producer page and doubly mapped data area, in byte arrays."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.consumer = bytearray(PAGE)
        self.producer = bytearray(PAGE + 2 * size)

    def put(self, pos: int, payload: bytes, flags: int = 0, length: int | None = None) -> int:
        """Write a record at ``pos`` (in both copies of the data area); returns the next position."""
        raw = struct.pack("=II", (len(payload) if length is None else length) | flags, 0) + payload
        for i, byte in enumerate(raw):
            at = (pos + i) % self.size
            self.producer[PAGE + at] = byte
            self.producer[PAGE + self.size + at] = byte
        return pos + ((len(raw) + 7) & ~7)

    def positions(self, consumer: int, producer: int) -> None:
        struct.pack_into("=Q", self.consumer, 0, consumer)
        struct.pack_into("=Q", self.producer, 0, producer)

    @property
    def consumer_pos(self) -> int:
        pos: int = struct.unpack_from("=Q", self.consumer, 0)[0]
        return pos

    def reader(self) -> RingBuffer:
        """A RingBuffer reading these arrays (no map, no epoll: only its parser is used)."""
        rb = RingBuffer.__new__(RingBuffer)
        rb.name = "fake"
        rb.size = self.size
        rb._mask = self.size - 1
        rb._data = PAGE
        rb._consumer = self.consumer  # type: ignore[assignment]
        rb._producer = self.producer  # type: ignore[assignment]
        return rb


def test_ring_parser_skips_discarded_and_stops_at_busy() -> None:
    ring = FakeRing()
    pos = ring.put(0, b"first")
    pos = ring.put(pos, b"dropped", DISCARD_BIT)
    pos = ring.put(pos, b"third!!!")
    busy_at = pos
    pos = ring.put(pos, b"not yet", BUSY_BIT)
    pos = ring.put(pos, b"after busy")
    ring.positions(0, pos)
    rb = ring.reader()
    assert rb._drain() == [b"first", b"third!!!"]
    assert ring.consumer_pos == busy_at  # the producer may not reuse anything from the busy record on
    ring.put(busy_at, b"not yet")  # submitted now
    assert rb._drain() == [b"not yet", b"after busy"]
    assert ring.consumer_pos == pos
    assert rb._drain() == []


def test_ring_parser_reads_records_that_wrap() -> None:
    ring = FakeRing(4096)
    start = 4096 * 3 - 16  # positions grow forever; this record starts 16 bytes before the end of the area
    payload = bytes(range(200))
    end = ring.put(start, payload)
    ring.positions(start, end)
    assert ring.reader()._drain() == [payload]
    assert ring.consumer_pos == end


@pytest.mark.parametrize(("consumer", "producer", "length", "message"), [
    (0, 64, 4096, "claims 4096 bytes"),             # longer than the ring
    (0, 16, 12, "past the producer position"),      # runs past what was produced
    (0, 4096 + 8, 0, "not within 4096 bytes"),      # producer more than a ring ahead
    (64, 8, 0, "not within 4096 bytes"),            # producer behind the consumer
])
def test_ring_parser_rejects_corrupt_positions(consumer: int, producer: int, length: int,
                                               message: str) -> None:
    ring = FakeRing(4096)
    ring.put(consumer, b"", length=length)
    ring.positions(consumer, producer)
    with pytest.raises(MapError, match=message) as info:
        ring.reader()._drain()
    assert info.value.errno == errno.EBADMSG
    assert info.value.map_name == "fake"
    assert ring.consumer_pos == consumer


class FakePerfRing:
    """A perf event's metadata page and data area, in a byte array."""

    def __init__(self, pages: int = 1) -> None:
        self.mapping = bytearray(PAGE * (1 + pages))
        self.size = PAGE * pages
        self.head = 0
        self.ring = _Ring(3, -1, self.mapping, PAGE, pages)  # type: ignore[arg-type]

    def put(self, kind: int, body: bytes, size: int | None = None) -> None:
        raw = struct.pack("=IHH", kind, 0, 8 + len(body) if size is None else size) + body
        for i, byte in enumerate(raw):
            self.mapping[PAGE + (self.head + i) % self.size] = byte
        self.head += len(raw)
        struct.pack_into("=Q", self.mapping, 1024, self.head)

    def sample(self, data: bytes) -> None:
        padded = data + bytes(-(4 + len(data)) % 8)
        self.put(PERF_RECORD_SAMPLE, struct.pack("=I", len(padded)) + padded)

    def start_at(self, position: int) -> None:
        self.head = position
        struct.pack_into("=Q", self.mapping, 1024, position)
        struct.pack_into("=Q", self.mapping, 1032, position)

    @property
    def tail(self) -> int:
        tail: int = struct.unpack_from("=Q", self.mapping, 1032)[0]
        return tail

    def reader(self) -> PerfReader:
        reader = PerfReader.__new__(PerfReader)
        reader.name = "fake_perf"
        reader._lost = 0
        reader._rings = (self.ring,)
        return reader


def test_perf_parser_samples_lost_and_wrap() -> None:
    ring = FakePerfRing(pages=1)
    ring.start_at(10 * PAGE - 24)  # the second sample straddles the end of the data area
    ring.sample(b"A" * 12)
    ring.sample(bytes(range(40)))
    ring.put(PERF_RECORD_LOST, struct.pack("=QQ", 77, 5))
    ring.put(99, b"\0" * 8)  # a record type the reader does not know: skipped
    ring.sample(b"z")
    reader = ring.reader()
    got = reader._drain()
    assert got == [
        PerfRecord(3, b"A" * 12),
        PerfRecord(3, bytes(range(40)) + bytes(4)),  # raw data padded so the sample stays 8-byte aligned
        PerfRecord(3, b"", 5),
        PerfRecord(3, b"z" + bytes(3)),
    ]
    assert reader.lost == 5
    assert ring.tail == ring.head
    assert reader._drain() == []


@pytest.mark.parametrize(("kind", "body", "size", "message"), [
    (PERF_RECORD_SAMPLE, b"", 4, "has size 4"),                          # smaller than its header
    (PERF_RECORD_SAMPLE, struct.pack("=I", 100) + bytes(4), None, "claims 100 raw bytes"),
    (PERF_RECORD_SAMPLE, b"", None, "has no raw size"),
    (PERF_RECORD_LOST, bytes(8), None, "too short"),
    (PERF_RECORD_SAMPLE, bytes(8), 64, "has size 64"),                   # past the head
])
def test_perf_parser_rejects_corrupt_records(kind: int, body: bytes, size: int | None, message: str) -> None:
    ring = FakePerfRing()
    ring.put(kind, body, size)
    with pytest.raises(MapError, match=message) as info:
        ring.reader()._drain()
    assert info.value.errno == errno.EBADMSG
    assert "CPU 3" in str(info.value)
    assert ring.tail == 0


def test_perf_parser_rejects_a_head_too_far_ahead() -> None:
    ring = FakePerfRing()
    struct.pack_into("=Q", ring.mapping, 1024, ring.size + 8)
    with pytest.raises(MapError, match="not within"):
        ring.reader()._drain()


def test_readers_need_the_kernel_backend_and_the_right_map() -> None:
    spec = ebpfspec.load_collection_spec(TRACE)
    with loader.load_collection(spec, backend=MemoryBackend(possible_cpus=2)) as coll:
        with pytest.raises(NotSupportedError, match=r"'events'.*kernel backend"):
            RingBuffer(coll.maps["events"])
        with pytest.raises(NotSupportedError, match=r"'perf_events'.*kernel backend"):
            PerfReader(coll.maps["perf_events"])
        with pytest.raises(ValueError, match="needs a RingBuf map, not a Hash map"):
            RingBuffer(coll.maps["getpid_calls"])
        with pytest.raises(ValueError, match="needs a PerfEventArray map"):
            PerfReader(coll.maps["events"])


# -- the perf event primitive ---------------------------------------------------------------------


def test_memory_backend_has_no_bpf_output_events() -> None:
    with pytest.raises(OSError) as info:
        MemoryBackend().perf_event_open_bpf_output(0)
    assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(ValueError, match="CPU"):
        kernel_perf.open_bpf_output(-1)


@pytest.mark.kernel
def test_bpf_output_event_goes_into_a_perf_event_array() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    kb = KernelBackend()
    fd = kb.perf_event_open_bpf_output(0)
    array = kb.map_create(MapAttrs(int(MapType.PERF_EVENT_ARRAY), 4, 4, kb.possible_cpus()))
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        kb.map_update(array, struct.pack("=I", 0), struct.pack("=I", fd))
        kb.map_delete(array, struct.pack("=I", 0))
    finally:
        kb.close(array)
        kb.close(fd)
    with pytest.raises(OSError) as info:
        kb.perf_event_open_bpf_output(1 << 20)  # no such CPU
    assert info.value.errno in (errno.EINVAL, errno.ENODEV)
    assert "BPF output event on CPU" in str(info.value)


@pytest.mark.kernel
def test_perf_event_mmap_page_offsets_match_kernel_btf() -> None:
    try:
        kernel = btf.load_kernel_spec()
    except OSError as err:
        pytest.skip(f"no kernel BTF: {err}")
    (page,) = kernel.types_by_name("perf_event_mmap_page", kind=btf.Kind.STRUCT)
    offsets = {m.name: m.offset // 8 for m in getattr(page, "members", ())}
    assert {name: offsets[name] for name in ("data_head", "data_tail", "data_offset", "data_size")} == {
        "data_head": 1024, "data_tail": 1032, "data_offset": 1040, "data_size": 1048}


# -- against the kernel ---------------------------------------------------------------------------------


@pytest.fixture
def trace() -> Iterator[loader.Collection]:
    """trace.c loaded, emitting to the ring buffer and the perf event array."""
    with load(TRACE, getpid_nr=GETPID_NR, use_perf=True) as coll:
        yield coll


@pytest.fixture
def attached(trace: loader.Collection) -> Iterator[loader.Collection]:
    """trace.c with raw_getpid attached to sys_enter."""
    with trace.programs["raw_getpid"].attach_raw_tracepoint("sys_enter"):
        yield trace


def counts(records: list[bytes]) -> list[int]:
    """The ``count`` of this process's events, in the order read."""
    return [event[2] for event in our_events(records, ME)]


def perf_counts(records: list[PerfRecord]) -> list[int]:
    out = []
    for record in records:
        if record.lost:
            continue
        assert len(record.data) == EVENT.size + 4  # the kernel pads raw samples: u32 size + 36 bytes
        event = EVENT.unpack_from(record.data)
        if event[1] == ME:
            out.append(event[2])
    return out


@pytest.mark.kernel
def test_ring_buffer_reads_events_in_order(attached: loader.Collection) -> None:
    rb = RingBuffer(attached.maps["events"])
    try:
        assert rb.size == 65536
        assert repr(rb) == "<loader.RingBuffer 'events' 65536 bytes>"
        rb.read_available()
        syscall_getpid(10)
        assert rb.available >= 10 * 40
        assert counts(rb.poll(timeout=1)) == list(range(1, 11))
        syscall_getpid(3)
        got: list[bytes] = []
        assert rb.consume(got.append, timeout=1) >= 3
        assert counts(got) == [11, 12, 13]
        syscall_getpid(2)
        assert counts(list(rb.records(timeout=0.1))) == [14, 15]
    finally:
        rb.close()
    rb.close()
    assert rb.closed
    assert "closed" in repr(rb)
    for op in (rb.read_available, rb.poll, lambda: list(rb.records())):
        with pytest.raises(MapClosedError, match="'events'"):
            op()


@pytest.mark.kernel
def test_ring_buffer_outlives_the_map_object(attached: loader.Collection) -> None:
    with RingBuffer(attached.maps["events"]) as rb:
        rb.read_available()
        attached.maps["events"].close()  # the reader holds its own descriptor
        syscall_getpid(2)
        assert counts(rb.poll(timeout=1)) == [1, 2]


@pytest.mark.kernel
def test_ring_buffer_wraps_around(attached: loader.Collection) -> None:
    """6000 records of 40 bytes through a 64 KiB ring: several laps, some records split by its end."""
    with RingBuffer(attached.maps["events"]) as rb:
        seen: list[int] = []
        for _ in range(6):
            syscall_getpid(1000)
            seen += counts(rb.read_available())
        assert seen == list(range(1, 6001))
        assert getpid_calls(attached, ME) == 6000


@pytest.mark.kernel
def test_ring_buffer_overflow_drops_new_events_only(attached: loader.Collection) -> None:
    with RingBuffer(attached.maps["events"]) as rb:
        rb.read_available()
        syscall_getpid(3000)  # more than the 65536 / 40 = 1638 records the ring holds
        got = counts(rb.read_available())
        assert 0 < len(got) <= 65536 // 40
        assert got == list(range(1, len(got) + 1))  # the first ones, in order; the rest never made it
        assert getpid_calls(attached, ME) == 3000
        syscall_getpid(2)
        assert counts(rb.poll(timeout=1)) == [3001, 3002]


@pytest.mark.kernel
def test_ring_buffer_poll_times_out_and_wakes(trace: loader.Collection) -> None:
    """Nothing attached: nothing arrives. poll() waits out its timeout; an event wakes it."""
    with RingBuffer(trace.maps["events"]) as rb:
        start = time.monotonic()
        assert rb.poll(timeout=0.2) == []
        assert 0.19 <= time.monotonic() - start < 2
        assert rb.poll(timeout=0) == []
        with pytest.raises(ValueError, match="timeout"):
            rb.poll(timeout=-1)

        def later() -> None:
            time.sleep(0.2)
            with trace.programs["raw_getpid"].attach_raw_tracepoint("sys_enter"):
                os.getpid()

        thread = threading.Thread(target=later)
        thread.start()
        start = time.monotonic()
        got: list[bytes] = []
        for record in rb.records(timeout=5):
            got.append(record)
            if counts(got):
                break
        thread.join()
        assert counts(got) == [1]
        assert time.monotonic() - start < 4


@pytest.mark.kernel
def test_close_wakes_a_blocked_reader(trace: loader.Collection) -> None:
    rb = RingBuffer(trace.maps["events"])
    results: list[object] = []

    def wait_forever() -> None:
        results.append(rb.poll())  # no timeout: until a record comes or the reader is closed
        try:
            results.append(list(rb.records()))
        except MapClosedError as err:
            results.append(err)

    thread = threading.Thread(target=wait_forever)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()
    start = time.monotonic()
    rb.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2
    assert results[0] == []
    assert isinstance(results[1], MapClosedError)  # iterating a closed reader


@pytest.mark.kernel
def test_ring_buffer_from_many_threads_gives_each_record_once(attached: loader.Collection) -> None:
    with RingBuffer(attached.maps["events"]) as rb:
        rb.read_available()
        seen: list[list[bytes]] = [[] for _ in range(4)]
        done = threading.Event()

        def consume(mine: list[bytes]) -> None:
            while not done.is_set():
                mine.extend(rb.poll(timeout=0.05))
            mine.extend(rb.read_available())

        threads = [threading.Thread(target=consume, args=(mine,)) for mine in seen]
        for t in threads:
            t.start()
        syscall_getpid(1000)  # fewer than the ring holds: none dropped however slow the readers
        time.sleep(0.2)
        done.set()
        for t in threads:
            t.join()
        assert sorted(counts([r for mine in seen for r in mine])) == list(range(1, 1001))


@pytest.mark.kernel
def test_callback_may_close_the_reader(attached: loader.Collection) -> None:
    rb = RingBuffer(attached.maps["events"])
    syscall_getpid(2)
    assert rb.consume(lambda record: rb.close(), timeout=1) >= 2
    assert rb.closed


@pytest.mark.kernel
def test_unclosed_ring_buffer_warns() -> None:
    with load(TRACE, getpid_nr=GETPID_NR) as coll:
        rb: RingBuffer | None = RingBuffer(coll.maps["events"])
        with pytest.warns(ResourceWarning, match="unclosed RingBuffer of map 'events'"):
            rb = None
            import gc

            gc.collect()
        assert rb is None


# -- perf event arrays -------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_perf_reader_reads_the_same_events(attached: loader.Collection) -> None:
    with PerfReader(attached.maps["perf_events"]) as reader, RingBuffer(attached.maps["events"]) as rb:
        assert reader.cpus == tuple(range(KernelBackend().possible_cpus()))
        assert repr(reader) == f"<loader.PerfReader 'perf_events' {len(reader.cpus)} CPUs>"
        reader.read(timeout=0)
        rb.read_available()
        syscall_getpid(50)
        records = reader.read(timeout=1)
        assert {r.cpu for r in records} <= set(reader.cpus)
        assert sorted(perf_counts(records)) == list(range(1, 51))  # one ring per CPU: merged, not ordered
        assert counts(rb.read_available()) == list(range(1, 51))
        assert reader.lost == 0
    assert reader.closed
    with pytest.raises(MapClosedError):
        reader.read()


@pytest.mark.kernel
def test_perf_reader_wraps_around(attached: loader.Collection) -> None:
    """One data page per CPU: 48-byte samples lap the 4 KiB rings and straddle their ends."""
    with PerfReader(attached.maps["perf_events"], per_cpu_pages=1) as reader:
        seen: list[int] = []
        for _ in range(10):
            syscall_getpid(40)
            seen += perf_counts(reader.read_available())
        assert sorted(seen) == list(range(1, 401))
        assert reader.lost == 0


@pytest.mark.kernel
def test_perf_reader_reports_lost_samples(attached: loader.Collection) -> None:
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # every sample into one ring
    try:
        with PerfReader(attached.maps["perf_events"], per_cpu_pages=1) as reader:
            syscall_getpid(300)  # a 4 KiB ring holds about 85
            first = reader.read_available()
            syscall_getpid(1)  # the kernel writes the LOST record once there is room again
            second = reader.read_available()
    finally:
        os.sched_setaffinity(0, cpus)
    records = first + second
    lost = [r for r in records if r.lost]
    assert lost and all(r.data == b"" for r in lost)
    assert sum(r.lost for r in lost) == reader.lost
    ours = perf_counts(records)
    assert 0 < len(ours) < 300
    assert len(ours) + reader.lost >= 300
    assert ours[-1] == 301


@pytest.mark.kernel
def test_perf_reader_arguments(trace: loader.Collection) -> None:
    with pytest.raises(ValueError, match="power of two"):
        PerfReader(trace.maps["perf_events"], per_cpu_pages=3)
    trace.maps["perf_events"].close()
    with pytest.raises(MapClosedError):
        PerfReader(trace.maps["perf_events"])


def test_bpf_output_attr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attr the reader's events are opened with (checked without opening one)."""
    captured: list[kernel_perf.PerfEventAttr] = []

    def fake_open(attr: kernel_perf.PerfEventAttr, pid: int, cpu: int, **kw: object) -> int:
        captured.append(attr)
        assert (pid, cpu) == (-1, 1)
        return 99

    monkeypatch.setattr(kernel_perf, "perf_event_open", fake_open)
    assert kernel_perf.open_bpf_output(1) == 99
    (attr,) = captured
    assert (attr.type, attr.config, attr.sample_type) == (
        kernel_perf.PERF_TYPE_SOFTWARE, kernel_perf.PERF_COUNT_SW_BPF_OUTPUT, kernel_perf.PERF_SAMPLE_RAW)
    assert (attr.sample_period, attr.wakeup_events) == (1, 1)
    assert ctypes.sizeof(attr) == kernel_perf.PERF_ATTR_SIZE
