"""``Program.attach*`` and ``loader.Link`` against the running kernel.

The programs come from the committed objects (``testdata/trace-el.o``, ``programs-el.o``),
loaded with ``ebpfspec.load_collection_spec`` + ``loader.load_collection``, and are seen to
fire through their own maps: ``getpid_calls`` (trace.c: calls per tgid) and ``calls``
(programs.c: one counter slot per program). ``ip``, ``bpftool`` and sockets are the
independent witnesses of what is attached, and that closing a link detaches it.

Tests that need the kernel are marked ``kernel`` (root, bpf(2)); mounts (tracefs, bpffs)
and cgroups are private to the test that uses them and removed afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

import ebpfspec
import loader
from loader import KernelBackend, Link, LinkKind, MemoryBackend, NotSupportedError, Program
from loader.errors import ProgramError
from loader.kernel import perf as kernel_perf
from loader.link import uprobe_offset
from tests.conftest import TESTDATA

TRACE = TESTDATA / "trace-el.o"
PROGRAMS = TESTDATA / "programs-el.o"
#: getpid's syscall number (trace.c's ``getpid_nr``).
GETPID_NR = {"x86_64": 39, "aarch64": 172}.get(os.uname().machine, 39)
# enum bpf_link_type
LINK_RAW_TRACEPOINT, LINK_TRACING, LINK_CGROUP, LINK_XDP, LINK_PERF_EVENT = 1, 2, 3, 6, 7
# enum bpf_attach_type
ATTACH_CGROUP_INET_INGRESS, ATTACH_PERF_EVENT = 0, 41
#: ``programs.c`` counter slots: ``bump(n)`` per program.
SLOT_SOCKET, SLOT_TRACEPOINT, SLOT_KRETPROBE, SLOT_RAW_TRACEPOINT, SLOT_TP_BTF = 1, 2, 3, 4, 5
#: ``struct event`` of trace.c: pid, tgid, count, comm.
EVENT = struct.Struct("=IIQ16s")

LIBC: Any = ctypes.CDLL(None, use_errno=True)

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


# -- fixtures ---------------------------------------------------------------------------------------


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("attaching programs needs root")


@contextlib.contextmanager
def mounted(fstype: str, where: Path) -> Iterator[Path]:
    """``fstype`` mounted at ``where`` (made here) for the block; unmounted afterwards."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", fstype, fstype, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount {fstype}: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def tracefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private tracefs mount, the only place :mod:`loader.kernel.perf` looks for tracepoints."""
    need_root()
    with mounted("tracefs", tmp_path / "tracefs") as mnt:
        monkeypatch.setattr(kernel_perf, "TRACEFS_ROOTS", (str(mnt),))
        yield mnt


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs mount."""
    need_root()
    with mounted("bpf", tmp_path / "bpffs") as mnt:
        yield mnt


def cgroup2_root() -> str | None:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A new, empty cgroup v2 directory, removed afterwards."""
    need_root()
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    path = Path(root) / f"ebpfspec-links-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                path.rmdir()
                break
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)


def load(path: Path, backend: loader.Backend | None = None, **variables: Any) -> loader.Collection:
    """The collection of the object at ``path`` (with ``variables`` set), loaded into the kernel."""
    need_root()
    spec = ebpfspec.load_collection_spec(path)
    if variables:
        spec = spec.with_variables(**variables)
    try:
        return loader.load_collection(spec, backend=backend)
    except loader.LoaderError as err:
        if getattr(err, "errno", None) == errno.EPERM:
            pytest.skip(f"the kernel refuses bpf(): {err}")
        raise


@pytest.fixture
def trace() -> Iterator[loader.Collection]:
    """trace.c loaded (getpid_nr set for this machine)."""
    with load(TRACE, getpid_nr=GETPID_NR) as coll:
        yield coll


@pytest.fixture
def programs() -> Iterator[loader.Collection]:
    """programs.c loaded."""
    with load(PROGRAMS) as coll:
        yield coll


class RefusingLinks(KernelBackend):
    """A KernelBackend playing a kernel without some links: ``BPF_LINK_CREATE`` of these types is EINVAL."""

    def __init__(self, *attach_types: int) -> None:
        super().__init__()
        self.refused = frozenset(attach_types)
        self.refusals = 0

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                    target_btf_id: int = 0, cookie: int = 0, iter_info: bytes = b"") -> int:
        if attach_type in self.refused:
            self.refusals += 1
            raise OSError(errno.EINVAL, "Invalid argument: BPF_LINK_CREATE (refused by the test)")
        return super().link_create(prog_fd, target_fd, attach_type, flags=flags, target_btf_id=target_btf_id,
                                   cookie=cookie, iter_info=iter_info)


# -- helpers ----------------------------------------------------------------------------------------


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def getpid_calls(coll: loader.Collection, tgid: int) -> int:
    """trace.c's count of getpid() calls by process ``tgid`` (0 if none)."""
    try:
        raw = coll.maps["getpid_calls"].lookup(u32(tgid))
    except loader.KeyNotFoundError:
        return 0
    count: int = struct.unpack("=Q", raw)[0]
    return count


def calls(coll: loader.Collection, slot: int) -> int:
    """programs.c's counter ``slot``."""
    count: int = struct.unpack("=Q", coll.maps["calls"].lookup(u32(slot)))[0]
    return count


def our_events(records: list[bytes], tgid: int) -> list[tuple[int, int, int, bytes]]:
    """The ``struct event`` records of process ``tgid``: (pid, tgid, count, comm)."""
    out = []
    for record in records:
        assert len(record) == EVENT.size
        event = EVENT.unpack(record)
        if event[1] == tgid:
            out.append(event)
    return out


def syscall_getpid(times: int) -> None:
    """getpid(2) ``times`` times (os.getpid makes the system call every time: glibc caches no pid)."""
    for _ in range(times):
        os.getpid()


def run_json(*argv: str) -> Any:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else None


def xdp_prog_id_on_lo() -> int | None:
    (link,) = run_json("ip", "-j", "-d", "link", "show", "lo")
    prog = (link.get("xdp") or {}).get("prog") or {}
    return int(prog["id"]) if "id" in prog else None


def cgroup_prog_ids(path: Path) -> list[int]:
    return [int(p["id"]) for p in run_json("bpftool", "cgroup", "show", str(path), "-j") or []]


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def libc_path() -> str:
    with open("/proc/self/maps", encoding="utf-8") as f:
        paths = [line.split()[-1] for line in f if "/libc.so" in line or "/libc-" in line]
    if not paths:
        pytest.skip("this process maps no libc.so")
    return paths[0]


# -- tracepoints ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_tracepoint_counts_getpid_and_submits_events(tracefs: Path, trace: loader.Collection) -> None:
    me, n = os.getpid(), 7
    with loader.RingBuffer(trace.maps["events"]) as rb:
        rb.read_available()  # anything other processes caused so far
        link = trace.programs["tp_getpid"].attach_tracepoint("syscalls", "sys_enter_getpid")
        try:
            assert link.kind is LinkKind.LINK
            assert link.info().type == LINK_PERF_EVENT
            assert link.info().prog_id == trace.programs["tp_getpid"].info().id
            syscall_getpid(n)
            assert getpid_calls(trace, me) == n
            events = our_events(rb.poll(timeout=2), me)
        finally:
            link.close()
        assert [count for _pid, _tgid, count, _comm in events] == list(range(1, n + 1))
        for pid, _tgid, _count, comm in events:
            assert pid == threading.get_native_id()
            assert comm.rstrip(b"\0").decode() == Path(f"/proc/{me}/comm").read_text().strip()
        # detached: no more counting, no more events
        syscall_getpid(n)
        assert getpid_calls(trace, me) == n
        assert our_events(rb.poll(timeout=0.1), me) == []


@pytest.mark.kernel
def test_raw_tracepoint_counts_getpid(trace: loader.Collection) -> None:
    me, n = os.getpid(), 5
    with loader.RingBuffer(trace.maps["events"]) as rb:
        with trace.programs["raw_getpid"].attach_raw_tracepoint("sys_enter") as link:
            assert link.info().type == LINK_RAW_TRACEPOINT
            syscall_getpid(n)
            assert getpid_calls(trace, me) == n
        assert link.closed
        events = our_events(rb.read_available(), me)
        assert [e[2] for e in events] == list(range(1, n + 1))
        syscall_getpid(3)
        assert getpid_calls(trace, me) == n


@pytest.mark.kernel
def test_tracepoint_takes_category_slash_name_and_a_cookie(tracefs: Path, trace: loader.Collection) -> None:
    me = os.getpid()
    with trace.programs["tp_getpid"].attach_tracepoint("syscalls/sys_enter_getpid", cookie=0xC0FFEE) as link:
        syscall_getpid(2)
        assert getpid_calls(trace, me) == 2
        assert link.info().type == LINK_PERF_EVENT


@pytest.mark.kernel
def test_tracepoint_falls_back_to_the_perf_event_ioctls(tracefs: Path) -> None:
    """Without BPF_PERF_EVENT links (before 5.15): PERF_EVENT_IOC_SET_BPF, detached by closing the event."""
    backend = RefusingLinks(ATTACH_PERF_EVENT)
    me = os.getpid()
    with load(TRACE, backend, getpid_nr=GETPID_NR) as coll:
        prog = coll.programs["tp_getpid"]
        link = prog.attach_tracepoint("syscalls", "sys_enter_getpid")
        try:
            assert backend.refusals == 1
            assert link.kind is LinkKind.PERF_EVENT
            syscall_getpid(4)
            assert getpid_calls(coll, me) == 4
            with pytest.raises(NotSupportedError, match=r"tp_getpid.*not a BPF link"):
                link.info()
            with pytest.raises(NotSupportedError, match="not a BPF link"):
                link.pin("/sys/fs/bpf/never")
        finally:
            link.close()
        syscall_getpid(4)
        assert getpid_calls(coll, me) == 4
        # cookies need the link: a clear error, nothing left open
        with pytest.raises(NotSupportedError, match=r"tp_getpid.*cookies need BPF_PERF_EVENT links"):
            prog.attach_tracepoint("syscalls", "sys_enter_getpid", cookie=1)


@pytest.mark.kernel
def test_tracepoint_errors_name_the_program(tracefs: Path, trace: loader.Collection,
                                            programs: loader.Collection) -> None:
    prog = trace.programs["tp_getpid"]
    with pytest.raises(ProgramError) as info:
        prog.attach_tracepoint("syscalls", "sys_enter_no_such_call")
    assert info.value.errno == errno.ENOENT
    assert info.value.program == "tp_getpid"
    assert info.value.op == "attach tracepoint"
    assert str(tracefs / "events" / "syscalls" / "sys_enter_no_such_call" / "id") in str(info.value)
    # a program of another type: refused before anything is opened
    with pytest.raises(ProgramError, match=r"xdp_prog.*XDP programs cannot attach to tracepoint") as info:
        programs.programs["xdp_prog"].attach_tracepoint("syscalls", "sys_enter_getpid")
    assert info.value.errno == errno.EINVAL


@pytest.mark.kernel
def test_tracepoint_without_tracefs_says_how_to_mount_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          trace: loader.Collection) -> None:
    monkeypatch.setattr(kernel_perf, "TRACEFS_ROOTS", (str(tmp_path / "nothing"),))
    with pytest.raises(ProgramError, match=r"tp_getpid.*mount -t tracefs") as info:
        trace.programs["tp_getpid"].attach()
    assert info.value.errno == errno.ENOENT


# -- kprobes and uprobes ------------------------------------------------------------------------------


@pytest.mark.kernel
def test_kprobes_unavailable_or_attached(programs: loader.Collection) -> None:
    """This kernel has no kprobes (CONFIG_KPROBES=n): a NotSupportedError saying so; elsewhere they attach."""
    prog = programs.programs["kprobe_prog"]
    pmu = Path(kernel_perf.EVENT_SOURCE_DEVICES) / "kprobe" / "type"
    if not pmu.exists():
        for attach in (prog.attach, lambda: prog.attach_kprobe("do_sys_openat2"),
                       lambda: programs.programs["kretprobe_prog"].attach_kretprobe("do_sys_openat2")):
            with pytest.raises(NotSupportedError, match="kprobes are unavailable") as info:
                attach()
            assert "_prog" in str(info.value)
            assert str(pmu) in str(info.value)
        return
    with prog.attach() as link:
        assert link.info().type == LINK_PERF_EVENT


@pytest.mark.kernel
def test_uprobe_by_symbol_and_uretprobe(programs: loader.Collection) -> None:
    """A kprobe-type program (kretprobe_prog, bump(3)) on libc's getpid, found by name in the ELF symbols."""
    path = libc_path()
    prog = programs.programs["kretprobe_prog"]
    before = calls(programs, SLOT_KRETPROBE)
    with prog.attach_uprobe(path, "getpid", pid=os.getpid()) as link:
        assert link.info().type == LINK_PERF_EVENT
        for _ in range(6):
            LIBC.getpid()
        assert calls(programs, SLOT_KRETPROBE) >= before + 6
    after = calls(programs, SLOT_KRETPROBE)
    LIBC.getpid()
    assert calls(programs, SLOT_KRETPROBE) == after
    with prog.attach_uretprobe(path, "getpid", pid=os.getpid()):
        LIBC.getpid()
        assert calls(programs, SLOT_KRETPROBE) >= after + 1
    # and by offset
    with prog.attach_uprobe(path, uprobe_offset(path, "getpid"), pid=os.getpid()):
        LIBC.getpid()
        assert calls(programs, SLOT_KRETPROBE) >= after + 2


def test_uprobe_offset_is_the_file_offset_of_the_symbol() -> None:
    path = libc_path()
    with open(path, "rb") as f:
        elf = ELFFile(f)
        dynsym: Any = elf.get_section_by_name(".dynsym")
        vaddr = dynsym.get_symbol_by_name("getpid")[0]["st_value"]
        expected = next(seg["p_offset"] + vaddr - seg["p_vaddr"] for seg in elf.iter_segments()
                        if seg["p_type"] == "PT_LOAD"
                        and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"])
    assert uprobe_offset(path, "getpid") == expected
    assert uprobe_offset(path, "getpid+0x4") == expected + 4
    with pytest.raises(LookupError, match="no_such_function_here"):
        uprobe_offset(path, "no_such_function_here")
    with pytest.raises(ValueError, match="not a usable ELF"):
        uprobe_offset(__file__, "getpid")
    with pytest.raises(ValueError, match="offset"):
        uprobe_offset(path, "getpid+x")


@pytest.mark.kernel
def test_uprobe_errors_name_the_program(programs: loader.Collection, tmp_path: Path) -> None:
    prog = programs.programs["kretprobe_prog"]
    with pytest.raises(ProgramError, match=r"kretprobe_prog.*no function 'no_such_function_here'") as info:
        prog.attach_uprobe(libc_path(), "no_such_function_here")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(ProgramError, match="kretprobe_prog") as info:
        prog.attach_uprobe(str(tmp_path / "missing"), "main")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(ProgramError, match="SocketFilter programs cannot attach"):
        programs.programs["socket_prog"].attach_uprobe(libc_path(), "getpid")


# -- auto-attach and tracing ----------------------------------------------------------------------------


@pytest.mark.kernel
def test_attach_picks_the_hook_from_the_section(tracefs: Path, programs: loader.Collection) -> None:
    links: list[Link] = []
    try:
        for name in ("tracepoint_prog", "raw_tracepoint_prog", "tp_btf_prog"):
            links.append(programs.programs[name].attach())
        types = [link.info().type for link in links]
        assert types == [LINK_PERF_EVENT, LINK_RAW_TRACEPOINT, LINK_RAW_TRACEPOINT]
        assert [link.target for link in links] == ["tracepoint syscalls/sys_enter_getpid",
                                                   "raw tracepoint sys_enter", "tp_btf/sched_switch"]
        syscall_getpid(3)
        time.sleep(0.05)  # a few context switches for tp_btf/sched_switch
        assert calls(programs, SLOT_TRACEPOINT) >= 3
        assert calls(programs, SLOT_RAW_TRACEPOINT) >= 3
        assert eventually(lambda: calls(programs, SLOT_TP_BTF) > 0)
    finally:
        for link in links:
            link.close()
    for name, hint in (("xdp_prog", "attach_xdp"), ("socket_prog", "attach_socket"),
                       ("cgroup_skb_prog", "attach_cgroup"), ("tc_prog", "need a target")):
        with pytest.raises(NotSupportedError, match=rf"{name}.*{hint}"):
            programs.programs[name].attach()


@pytest.mark.kernel
def test_tracing_link_with_a_cookie(programs: loader.Collection) -> None:
    with programs.programs["tp_btf_prog"].attach_tracing(cookie=42) as link:
        assert link.info().type in (LINK_RAW_TRACEPOINT, LINK_TRACING)
        before = calls(programs, SLOT_TP_BTF)
        assert eventually(lambda: calls(programs, SLOT_TP_BTF) > before)


@pytest.mark.kernel
def test_attach_without_a_spec_needs_a_method(programs: loader.Collection) -> None:
    prog = programs.programs["raw_tracepoint_prog"]
    bare = Program.from_id(prog.info().id)
    try:
        assert bare.spec is None
        with pytest.raises(NotSupportedError, match="no spec"):
            bare.attach()
        with bare.attach_raw_tracepoint("sys_enter") as link:
            assert link.program == "raw_tracepoint_"  # the kernel keeps 15 characters
    finally:
        bare.close()


# -- XDP ------------------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_xdp_on_lo_by_name_and_by_index(programs: loader.Collection) -> None:
    prog = programs.programs["xdp_prog"]
    prog_id = prog.info().id
    assert xdp_prog_id_on_lo() is None
    with prog.attach_xdp("lo") as link:
        assert xdp_prog_id_on_lo() == prog_id
        assert link.info().type == LINK_XDP
        assert link.target == f"xdp on lo (ifindex {socket.if_nametoindex('lo')})"
        with pytest.raises(ProgramError) as info:  # lo is taken
            prog.attach_xdp(socket.if_nametoindex("lo"))
        assert info.value.errno == errno.EBUSY
        assert "xdp_prog" in str(info.value)
    assert xdp_prog_id_on_lo() is None
    with prog.attach_xdp(socket.if_nametoindex("lo")):
        assert xdp_prog_id_on_lo() == prog_id
    assert xdp_prog_id_on_lo() is None
    with pytest.raises(ProgramError, match="no network interface 'nonexistent0'") as info:
        prog.attach_xdp("nonexistent0")
    assert info.value.errno == errno.ENODEV


@pytest.mark.kernel
def test_link_detach_leaves_an_open_defunct_link(programs: loader.Collection) -> None:
    with programs.programs["xdp_prog"].attach_xdp("lo") as link:
        link.detach()
        assert xdp_prog_id_on_lo() is None
        assert link.info().type == LINK_XDP  # still a link, still open


# -- sockets --------------------------------------------------------------------------------------------


def udp_pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    return rx, tx


@pytest.mark.kernel
def test_socket_filter_drops_until_closed(programs: loader.Collection) -> None:
    """socket_prog returns 0: every datagram is dropped while it is attached."""
    prog = programs.programs["socket_prog"]
    rx, tx = udp_pair()
    with rx, tx:
        before = calls(programs, SLOT_SOCKET)
        link = prog.attach_socket(rx)
        try:
            assert link.kind is LinkKind.SOCKET_FILTER
            tx.sendto(b"dropped", rx.getsockname())
            with pytest.raises(TimeoutError):
                rx.recv(100)
            assert calls(programs, SLOT_SOCKET) == before + 1
            with pytest.raises(NotSupportedError, match="socket filter"):
                link.info()
        finally:
            link.close()
        tx.sendto(b"received", rx.getsockname())
        assert rx.recv(100) == b"received"
        # by descriptor, and closing the socket first: the link's own duplicate still detaches cleanly
        link = prog.attach_socket(rx.fileno())
        tx.sendto(b"dropped", rx.getsockname())
        with pytest.raises(TimeoutError):
            rx.recv(100)
    link.close()
    with pytest.raises(ProgramError, match="XDP programs cannot attach to a socket"):
        programs.programs["xdp_prog"].attach_socket(0)


@pytest.mark.kernel
def test_socket_filter_rejects_what_is_not_a_socket(programs: loader.Collection) -> None:
    prog = programs.programs["socket_prog"]
    with pytest.raises(TypeError):
        prog.attach_socket("not a socket")
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        prog.attach_socket(closed)
    with open(__file__, "rb") as f, pytest.raises(ProgramError, match="socket_prog") as info:
        prog.attach_socket(f)
    assert info.value.errno == errno.ENOTSOCK


# -- cgroups --------------------------------------------------------------------------------------------


def send_from_cgroup(cgroup: Path) -> None:
    """A process in ``cgroup`` sends a datagram to itself (ingress runs the cgroup's skb programs)."""
    script = (f"import os, socket; open({str(cgroup / 'cgroup.procs')!r}, 'w').write(str(os.getpid())); "
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); "
              "s.sendto(b'x', s.getsockname())")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.mark.kernel
def test_cgroup_skb_link(programs: loader.Collection, cgroup: Path) -> None:
    prog = programs.programs["cgroup_skb_prog"]
    prog_id = prog.info().id
    with prog.attach_cgroup(cgroup) as link:  # attach type from the section: cgroup_skb/ingress
        assert link.kind is LinkKind.LINK
        assert link.info().type == LINK_CGROUP
        assert cgroup_prog_ids(cgroup) == [prog_id]
        shown = run_json("bpftool", "cgroup", "show", str(cgroup), "-j")
        assert shown[0]["attach_type"] in ("cgroup_inet_ingress", "ingress")
        send_from_cgroup(cgroup)
    assert cgroup_prog_ids(cgroup) == []
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with prog.attach_cgroup(fd, ATTACH_CGROUP_INET_INGRESS):
            assert cgroup_prog_ids(cgroup) == [prog_id]
    finally:
        os.close(fd)
    assert cgroup_prog_ids(cgroup) == []
    with pytest.raises(ProgramError, match="cgroup_skb_prog") as info:
        prog.attach_cgroup(cgroup / "no-such-cgroup")
    assert info.value.errno == errno.ENOENT


@pytest.mark.kernel
def test_cgroup_falls_back_to_prog_attach(cgroup: Path) -> None:
    """Where cgroup links are refused (before 5.7): BPF_PROG_ATTACH, undone by BPF_PROG_DETACH on close."""
    backend = RefusingLinks(ATTACH_CGROUP_INET_INGRESS)
    with load(PROGRAMS, backend) as coll:
        prog = coll.programs["cgroup_skb_prog"]
        prog_id = prog.info().id
        link = prog.attach_cgroup(str(cgroup))
        try:
            assert backend.refusals == 1
            assert link.kind is LinkKind.PROG_ATTACH
            assert cgroup_prog_ids(cgroup) == [prog_id]
            with pytest.raises(NotSupportedError, match="prog attach"):
                link.info()
            prog.close()  # the link keeps its own program descriptor to detach with
        finally:
            link.close()
        assert cgroup_prog_ids(cgroup) == []
        link.close()  # idempotent


# -- Link: lifetime, pins, threads ----------------------------------------------------------------------


@pytest.mark.kernel
def test_link_close_is_idempotent_and_final(programs: loader.Collection) -> None:
    link = programs.programs["xdp_prog"].attach_xdp("lo")
    fd = link.fileno()
    assert repr(link) == f"<loader.Link 'xdp_prog' link to xdp on lo (ifindex 1) fd={fd}>"
    link.close()
    link.close()
    assert link.closed
    assert "closed" in repr(link)
    for op in (link.info, link.fileno, link.detach, lambda: link.pin("/sys/fs/bpf/x")):
        with pytest.raises(ProgramError, match="the link is closed") as info:
            op()
        assert info.value.errno == errno.EBADF


@pytest.mark.kernel
def test_attach_on_a_closed_program(programs: loader.Collection) -> None:
    prog = programs.programs["xdp_prog"]
    prog.close()
    with pytest.raises(ProgramError, match="program is closed") as info:
        prog.attach_xdp("lo")
    assert info.value.errno == errno.EBADF


@pytest.mark.kernel
def test_pinned_link_outlives_its_descriptor(programs: loader.Collection, bpffs: Path) -> None:
    prog = programs.programs["xdp_prog"]
    prog_id = prog.info().id
    pin = str(bpffs / "xdp_lo")
    link = prog.attach_xdp("lo")
    link_id = link.info().id
    link.pin(pin)
    assert link.pinned_path == pin
    link.close()
    assert xdp_prog_id_on_lo() == prog_id  # the pin holds it
    again = Link.load_pinned(pin)
    try:
        assert again.info().id == link_id
        assert again.program == "xdp_prog"
        assert again.pinned_path == pin
        again.unpin()
        again.unpin()  # no-op
        assert not os.path.exists(pin)
        assert xdp_prog_id_on_lo() == prog_id  # still held by this descriptor
    finally:
        again.close()
    assert xdp_prog_id_on_lo() is None
    with pytest.raises(ProgramError, match="load pinned link") as info:
        Link.load_pinned(pin)
    assert info.value.errno == errno.ENOENT


@pytest.mark.kernel
def test_load_pinned_refuses_what_is_not_a_link(programs: loader.Collection, bpffs: Path) -> None:
    pin = str(bpffs / "a_map")
    programs.maps["calls"].pin(pin)
    with pytest.raises(ProgramError, match="not a link"):
        Link.load_pinned(pin)
    programs.maps["calls"].unpin()


@pytest.mark.kernel
def test_unclosed_link_warns_and_detaches_when_collected(programs: loader.Collection) -> None:
    link: Link | None = programs.programs["xdp_prog"].attach_xdp("lo")
    assert xdp_prog_id_on_lo() is not None
    with pytest.warns(ResourceWarning, match="unclosed link of program 'xdp_prog'"):
        link = None
        gc.collect()
    assert link is None
    assert xdp_prog_id_on_lo() is None


def close_from_threads(link: Link, closers: int = 8) -> list[BaseException]:
    """``closers`` threads close ``link`` while another uses it; the errors other than EBADF they met."""
    errors: list[BaseException] = []
    start = threading.Barrier(closers + 1)

    def close() -> None:
        start.wait()
        try:
            link.close()
        except BaseException as err:
            errors.append(err)

    def use() -> None:
        start.wait()
        for _ in range(50):
            try:
                link.fileno()
            except ProgramError as err:
                if err.errno != errno.EBADF:
                    errors.append(err)
                return

    threads = [threading.Thread(target=close) for _ in range(closers)] + [threading.Thread(target=use)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.kernel
def test_concurrent_close_detaches_once(programs: loader.Collection) -> None:
    """Many threads closing one link while another uses it: one detach, no error but EBADF for late users."""
    prog = programs.programs["socket_prog"]
    rx, tx = udp_pair()
    with rx, tx:
        for _ in range(20):
            link = prog.attach_socket(rx)
            assert close_from_threads(link) == []
            assert link.closed
        tx.sendto(b"through", rx.getsockname())
        assert rx.recv(100) == b"through"  # the last filter is gone


def test_memory_backend_cannot_attach() -> None:
    spec = ebpfspec.load_collection_spec(PROGRAMS)
    with loader.load_collection(spec, backend=MemoryBackend(possible_cpus=2)) as coll:
        attaches: tuple[Callable[[], object], ...] = (
            lambda: coll.programs["xdp_prog"].attach_xdp("lo"),
            lambda: coll.programs["raw_tracepoint_prog"].attach(),
            lambda: coll.programs["tracepoint_prog"].attach(),
            lambda: coll.programs["tp_btf_prog"].attach(),
            lambda: coll.programs["socket_prog"].attach_socket(0),
            lambda: coll.programs["cgroup_skb_prog"].attach_cgroup("/"),
        )
        for attach in attaches:
            with pytest.raises(NotSupportedError, match=r"_prog.*MemoryBackend cannot attach"):
                attach()
