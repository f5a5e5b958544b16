"""BPF iterators: ``Program.attach_iter`` and ``IterLink.open`` against the running kernel.

The programs are ``testdata/iter.c``'s (see testdata/README.md): ``dump_task`` prints
``"tgid pid comm"`` per task, ``dump_bpf_map`` ``"id max_entries name"`` per map and
``dump_map_elem`` ``"key value"`` per element of the map it is attached with. What they
print is checked against what this process knows independently: its pid, its threads'
native ids and ``/proc/self/task/*/comm``, and the ids the kernel gave maps the tests create.

Kernel tests are marked ``kernel`` (root, bpf(2), kernel BTF); the bpffs they pin to is
private to the test. The memory backend's answers (it cannot attach anything) are checked
to be the kernel's errnos for the same calls.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import btf
import ebpfspec
import loader
from ebpfspec import AttachType, MapSpec, MapType, ProgramType
from loader import IterLink, Link, MemoryBackend, NotSupportedError
from loader.errors import ProgramError
from loader.link import ITER_LINK_INFO_SIZE, LINK_TYPE_ITER, iter_link_info
from loader.program_load import attach_btf_target
from tests.conftest import TESTDATA
from tests.test_links import mounted, need_root

ORDER = "el" if sys.byteorder == "little" else "eb"
ITER = TESTDATA / f"iter-{ORDER}.o"
PROGRAMS = TESTDATA / f"programs-{ORDER}.o"

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


# -- fixtures and helpers -----------------------------------------------------------------------------


def need_kernel_btf() -> None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF (iterators resolve their target and CO-RE against it)")


@pytest.fixture
def iters() -> Iterator[loader.Collection]:
    """iter.c loaded into the kernel."""
    need_root()
    need_kernel_btf()
    with loader.load_collection(ebpfspec.load_collection_spec(ITER)) as coll:
        yield coll


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs mount."""
    need_root()
    with mounted("bpf", tmp_path / "bpffs") as mnt:
        yield mnt


def read_all(link: Link) -> str:
    """One whole iteration of ``link`` (an :class:`IterLink`)."""
    assert isinstance(link, IterLink)
    with link.open() as f:
        return f.read().decode()


def task_lines(text: str) -> list[tuple[int, int, str]]:
    """``dump_task``'s lines as (tgid, pid, comm); every line must have that shape."""
    out = []
    for line in text.splitlines():
        tgid, pid, comm = line.split(" ", 2)
        out.append((int(tgid), int(pid), comm))
    return out


def comm_of(tid: int) -> str:
    return Path(f"/proc/self/task/{tid}/comm").read_text().rstrip("\n")


def parent_comm() -> str:
    return Path(f"/proc/{os.getppid()}/comm").read_text().rstrip("\n")


@pytest.fixture
def parked_thread() -> Iterator[int]:
    """A thread of this process (comm ``ebpfspec-iter``) waiting until the test ends: its native id."""
    started, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def park() -> None:
        tid.append(threading.get_native_id())
        Path(f"/proc/self/task/{tid[0]}/comm").write_text("ebpfspec-iter")  # the kernel's name of the thread
        started.set()
        done.wait(30)

    thread = threading.Thread(target=park, name="ebpfspec-iter")
    thread.start()
    started.wait(10)
    try:
        yield tid[0]
    finally:
        done.set()
        thread.join()


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def u64(n: int) -> bytes:
    return struct.pack("=Q", n)


# -- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["el", "eb"])
def test_iter_sections_are_tracing_iterators(order: str) -> None:
    spec = ebpfspec.load_collection_spec(TESTDATA / f"iter-{order}.o")
    got = {name: (p.type, p.attach_type, p.attach_to, p.section_name) for name, p in spec.programs.items()}
    assert got == {
        "dump_task": (ProgramType.TRACING, AttachType.TRACE_ITER, "task", "iter/task"),
        "dump_bpf_map": (ProgramType.TRACING, AttachType.TRACE_ITER, "bpf_map", "iter/bpf_map"),
        "dump_map_elem": (ProgramType.TRACING, AttachType.TRACE_ITER, "bpf_map_elem", "iter/bpf_map_elem"),
    }
    assert list(spec.maps) == [".rodata"]
    assert spec.maps[".rodata"].contents[0].value == b"%d %d %s\n\0%u %u %s\n\0%u %llu\n\0"


@pytest.mark.kernel
def test_iterators_load_against_bpf_iter_funcs_of_the_kernel() -> None:
    """The attach target is the kernel's ``bpf_iter_<name>`` FUNC; a kernel without it is a clear error."""
    need_kernel_btf()
    kernel = btf.load_kernel_spec()
    spec = ebpfspec.load_collection_spec(ITER)
    for name, target in (("dump_task", "bpf_iter_task"), ("dump_bpf_map", "bpf_iter_bpf_map"),
                         ("dump_map_elem", "bpf_iter_bpf_map_elem")):
        (func,) = kernel.types_by_name(target, btf.Kind.FUNC)
        assert attach_btf_target(spec.programs[name], lambda: kernel) == func.id
    elsewhere = ebpfspec.load_collection_spec(PROGRAMS).types  # BTF without any bpf_iter_ function
    assert elsewhere is not None
    with pytest.raises(NotSupportedError, match=r"dump_task.*'bpf_iter_task' to attach to"):
        attach_btf_target(spec.programs["dump_task"], lambda: elsewhere)


def test_iter_link_info_is_the_kernels_union() -> None:
    assert iter_link_info() == b""
    assert iter_link_info(map_fd=7) == u32(7) + bytes(12)
    assert iter_link_info(pid=42) == u32(0) + u32(42) + bytes(8)
    assert iter_link_info(tid=9) == u32(9) + bytes(12)
    assert iter_link_info(pid_fd=5) == bytes(8) + u32(5) + bytes(4)
    for what in ("map_fd", "tid", "pid", "pid_fd"):
        assert len(iter_link_info(**{what: 3})) == ITER_LINK_INFO_SIZE
    with pytest.raises(ValueError, match="map and pid"):
        iter_link_info(map_fd=3, pid=1)
    with pytest.raises(ValueError, match="u32"):
        iter_link_info(pid=-1)


@pytest.mark.kernel
def test_iter_link_info_layout_matches_the_running_kernels_btf() -> None:
    need_kernel_btf()
    kernel = btf.load_kernel_spec()
    (union,) = kernel.types_by_name("bpf_iter_link_info", kind=btf.Kind.UNION)
    assert btf.sizeof(union) == ITER_LINK_INFO_SIZE
    parts = {m.name: btf.skip_qualifiers_and_typedefs(m.type) for m in union.members}  # type: ignore[attr-defined]
    fields = {(part, m.name): (m.offset // 8, btf.sizeof(m.type))
              for part, t in parts.items() for m in t.members}  # type: ignore[attr-defined]
    assert fields[("map", "map_fd")] == (0, 4)
    assert fields[("task", "tid")] == (0, 4)
    assert fields[("task", "pid")] == (4, 4)
    assert fields[("task", "pid_fd")] == (8, 4)


# -- task iterator ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_task_iterator_lists_this_process_and_its_threads(iters: loader.Collection,
                                                          parked_thread: int) -> None:
    me = os.getpid()
    with iters.programs["dump_task"].attach() as link:  # auto-attach by section: iter/task
        assert isinstance(link, IterLink)
        assert link.target == "iterator task"
        info = link.info()
        assert info.type == LINK_TYPE_ITER
        assert info.prog_id == iters.programs["dump_task"].info().id
        tasks = task_lines(read_all(link))
    assert (me, me, comm_of(me)) in tasks
    assert (me, parked_thread, comm_of(parked_thread)) in tasks
    assert comm_of(parked_thread) == "ebpfspec-iter"
    # every task of this process the kernel listed is one of its threads; other processes are there
    assert {pid for tgid, pid, _ in tasks if tgid == me} <= {int(t) for t in os.listdir("/proc/self/task")}
    assert (os.getppid(), os.getppid(), parent_comm()) in tasks


@pytest.mark.kernel
def test_each_open_is_a_fresh_full_iteration(iters: loader.Collection, parked_thread: int) -> None:
    me = os.getpid()
    with iters.programs["dump_task"].attach_iter() as link:
        first, second = link.open(), link.open()
        with first, second:
            head = first.read(16)  # the first is started, then left alone
            whole_second = second.read().decode()
            whole_first = (head + first.read()).decode()
        third = read_all(link)
    for text in (whole_first, whole_second, third):
        tasks = task_lines(text)
        assert (me, me, comm_of(me)) in tasks
        assert (me, parked_thread, "ebpfspec-iter") in tasks
        assert (os.getppid(), os.getppid(), parent_comm()) in tasks


@pytest.mark.kernel
def test_task_iterator_for_one_process_or_thread(iters: loader.Collection, parked_thread: int) -> None:
    me = os.getpid()
    prog = iters.programs["dump_task"]
    with prog.attach_iter(pid=me) as link:
        assert link.target == f"iterator task of process {me}"
        tasks = task_lines(read_all(link))
    assert {tgid for tgid, _, _ in tasks} == {me}
    assert {(me, me), (me, parked_thread)} <= {(tgid, pid) for tgid, pid, _ in tasks}
    with prog.attach_iter(tid=parked_thread) as link:
        assert task_lines(read_all(link)) == [(me, parked_thread, "ebpfspec-iter")]
    pidfd = os.pidfd_open(me)
    try:
        with prog.attach_iter(pid_fd=pidfd) as link:
            assert {tgid for tgid, _, _ in task_lines(read_all(link))} == {me}
    finally:
        os.close(pidfd)


# -- map iterators ------------------------------------------------------------------------------------


def elements(text: str) -> dict[int, int]:
    """``dump_map_elem``'s lines as {key: value}."""
    out = {}
    for line in text.splitlines():
        key, value = line.split()
        out[int(key)] = int(value)
    return out


def hash_map(name: str, *, value_size: int = 8, max_entries: int = 16) -> loader.Map:
    return loader.Map.create(MapSpec(name=name, type=MapType.HASH, key_size=4, value_size=value_size,
                                     max_entries=max_entries))


@pytest.mark.kernel
def test_bpf_map_iterator_lists_a_map_this_test_created(iters: loader.Collection) -> None:
    with hash_map("iter_probe", max_entries=7) as m, iters.programs["dump_bpf_map"].attach() as link:
        map_id = m.info().id
        lines = read_all(link).splitlines()
        assert f"{map_id} 7 iter_probe" in lines
        # the collection's own .rodata is a map too (the kernel keeps 15 characters of names)
        rodata = iters.maps[".rodata"].info()
        assert f"{rodata.id} 1 {rodata.name}" in lines
    with iters.programs["dump_bpf_map"].attach() as link:
        assert not any(line.startswith(f"{map_id} ") for line in read_all(link).splitlines())


@pytest.mark.kernel
def test_map_elem_iterator_walks_the_map_it_is_given(iters: loader.Collection) -> None:
    prog = iters.programs["dump_map_elem"]
    entries = {k: k * 1000 + 7 for k in (1, 5, 9, 300)}
    with hash_map("iter_elems") as m:
        for k, v in entries.items():
            m.update(u32(k), u64(v))
        with prog.attach_iter(map=m) as link:
            assert link.target == "iterator bpf_map_elem over map 'iter_elems'"
            assert elements(read_all(link)) == entries
            m.delete(u32(9))
            del entries[9]
            assert elements(read_all(link)) == entries  # each open walks the map as it is now
    # a map iterator without its map: the kernel's EBADF, with what to do
    with pytest.raises(ProgramError, match=r"dump_map_elem.*attach_iter\(map=\.\.\.\)") as info:
        prog.attach()
    assert info.value.errno == errno.EBADF
    # values smaller than the program reads: the kernel refuses the map
    with hash_map("iter_small", value_size=4) as small, pytest.raises(ProgramError) as info:
        prog.attach_iter(map=small)
    assert info.value.errno == errno.EACCES
    assert info.value.program == "dump_map_elem"
    closed = hash_map("iter_closed")
    closed.close()
    with pytest.raises(ProgramError, match="map 'iter_closed' is closed") as info:
        prog.attach_iter(map=closed)
    assert info.value.errno == errno.EBADF


@pytest.mark.kernel
def test_attach_iter_refuses_what_is_not_an_iterator(iters: loader.Collection) -> None:
    prog = iters.programs["dump_task"]
    with pytest.raises(ValueError, match=r"dump_task.*one of map, tid, pid and pid_fd"):
        prog.attach_iter(pid=1, tid=1)
    with pytest.raises(ProgramError, match="iterator links take no cookie") as info:
        prog.attach_tracing(cookie=1)
    assert info.value.errno == errno.EINVAL
    with prog.attach_tracing() as link:  # an iterator's load-time target is its iterator
        assert isinstance(link, IterLink)
    spec = ebpfspec.load_collection_spec(PROGRAMS)
    with loader.load_collection(spec, only=["tp_btf_prog", "xdp_prog"]) as coll:
        with pytest.raises(ProgramError, match=r"tp_btf_prog.*'tp_btf/sched_switch' is not an iter") as info:
            coll.programs["tp_btf_prog"].attach_iter()
        assert info.value.errno == errno.EINVAL
        with pytest.raises(ProgramError, match=r"xdp_prog.*section 'xdp' is not an iterator"):
            coll.programs["xdp_prog"].attach_iter()
        # without a spec, the program's type says
        with loader.Program.from_id(coll.programs["xdp_prog"].info().id) as bare, \
                pytest.raises(ProgramError, match="XDP programs cannot attach to iterator"):
            bare.attach_iter()


# -- the link: closing, pinning, threads ------------------------------------------------------------------


@pytest.mark.kernel
def test_closed_link_cannot_open_but_files_opened_before_stay_readable(iters: loader.Collection) -> None:
    me = os.getpid()
    link = iters.programs["dump_task"].attach_iter()
    early = link.open()
    link.close()
    assert link.closed
    with pytest.raises(ProgramError, match=r"'dump_task': open iterator: .*the link is closed") as info:
        link.open()
    assert info.value.errno == errno.EBADF
    with early:
        assert (me, me, comm_of(me)) in task_lines(early.read().decode())


@pytest.mark.kernel
def test_pinned_iterator_link_reads_from_bpffs(iters: loader.Collection, bpffs: Path) -> None:
    me = os.getpid()
    pin = str(bpffs / "tasks")
    link = iters.programs["dump_task"].attach_iter()
    link_id = link.info().id
    link.pin(pin)
    link.close()
    # the pin keeps the iterator; reading the pinned file runs it (one iteration per open)
    assert (me, me, comm_of(me)) in task_lines(Path(pin).read_text())
    again = Link.load_pinned(pin)
    try:
        assert isinstance(again, IterLink)
        assert again.info().id == link_id
        assert again.program == "dump_task"
        assert (me, me, comm_of(me)) in task_lines(read_all(again))
        again.unpin()
        assert not os.path.exists(pin)
        assert (me, me, comm_of(me)) in task_lines(read_all(again))  # still held by this descriptor
    finally:
        again.close()
    # IterLink.load_pinned refuses other links
    spec = ebpfspec.load_collection_spec(PROGRAMS)
    with loader.load_collection(spec, only=["raw_tracepoint_prog"]) as coll, \
            coll.programs["raw_tracepoint_prog"].attach_raw_tracepoint("sys_enter") as raw:
        raw.pin(str(bpffs / "raw"))
        with pytest.raises(ProgramError, match="not an iterator link") as info:
            IterLink.load_pinned(str(bpffs / "raw"))
        assert info.value.errno == errno.EINVAL
        plain = Link.load_pinned(str(bpffs / "raw"))
        assert type(plain) is Link
        plain.unpin()
        plain.close()


@pytest.mark.kernel
def test_opens_from_many_threads_while_another_closes(iters: loader.Collection) -> None:
    """Threads read the iterator over and over while another closes the link once some reads are
    done: every open gives a whole iteration or EBADF naming the link, nothing else; nothing leaks."""
    me = os.getpid()
    wanted = f"{me} {me} {comm_of(me)}"
    for _ in range(3):
        link = iters.programs["dump_task"].attach_iter()
        some_read = threading.Event()
        outcomes: list[str] = []
        lock = threading.Lock()

        def reader(link: IterLink = link, some_read: threading.Event = some_read,
                   outcomes: list[str] = outcomes, lock: threading.Lock = lock) -> None:
            for _ in range(200):
                try:
                    text = read_all(link)
                except ProgramError as err:
                    with lock:
                        outcomes.append("closed" if err.errno == errno.EBADF and "dump_task" in str(err)
                                        else repr(err))
                    return
                with lock:
                    outcomes.append("read" if wanted in text.splitlines() else f"incomplete: {text[:80]!r}")
                    if outcomes.count("read") >= 8:
                        some_read.set()
            some_read.set()

        def closer(link: IterLink = link, some_read: threading.Event = some_read) -> None:
            some_read.wait(30)
            link.close()

        threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=closer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert link.closed
        assert set(outcomes) == {"read", "closed"}, outcomes
        assert outcomes.count("closed") == 4  # every reader ended on the closed link


# -- the memory backend -------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_memory_backend_cannot_iterate_and_says_what_the_kernel_says(iters: loader.Collection) -> None:
    """MemoryBackend loads iterators but cannot attach them; ``iter_create`` gives the kernel's errnos."""
    mem = MemoryBackend(possible_cpus=2)
    with loader.load_collection(ebpfspec.load_collection_spec(ITER), backend=mem) as coll:
        prog = coll.programs["dump_task"]
        assert prog.info().type == ProgramType.TRACING
        for attach in (prog.attach, prog.attach_iter, lambda: prog.attach_iter(pid=1)):
            with pytest.raises(NotSupportedError, match=r"dump_task.*MemoryBackend cannot attach"):
                attach()
        mem_prog = prog.fileno()
        kernel_prog = iters.programs["dump_task"].fileno()
        kb = loader.KernelBackend()
        # a program is not an iterator link: EINVAL from both
        for backend, fd in ((mem, mem_prog), (kb, kernel_prog)):
            with pytest.raises(OSError) as info:
                backend.iter_create(fd)
            assert info.value.errno == errno.EINVAL, backend.name
        # a descriptor/handle that is not open: EBADF from both
        free = os.open("/dev/null", os.O_RDONLY)
        os.close(free)
        for backend, fd in ((mem, 123), (kb, free)):
            with pytest.raises(OSError) as info:
                backend.iter_create(fd)
            assert info.value.errno == errno.EBADF, backend.name
    assert mem.open_handles() == 0 and mem.live_objects() == 0
    # a link that is not an iterator: EINVAL from the kernel (the model has no links at all)
    spec = ebpfspec.load_collection_spec(PROGRAMS)
    with loader.load_collection(spec, only=["raw_tracepoint_prog"]) as coll, \
            coll.programs["raw_tracepoint_prog"].attach_raw_tracepoint("sys_enter") as raw, \
            pytest.raises(OSError) as info:
        kb.iter_create(raw.fileno())
    assert info.value.errno == errno.EINVAL
