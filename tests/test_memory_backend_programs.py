"""Programs on :class:`loader.memory.MemoryBackend`: accepted, inspectable, never run.

Like ``test_memory_backend.py``, the behaviour tests take the ``backend`` fixture and run
on the model and on the real kernel (``KernelBackend``), asserting the same results and
errnos: what ``BPF_PROG_LOAD`` checks before its verifier, program ids and tags, the maps
a program holds, program arrays, pins, lifetimes. Tests of what only the model does
(test runs and attachment refused, object accounting) take ``mem``.

The kernel cases need root and a usable ``bpf(2)``; they skip otherwise (and fail under
``EBPFSPEC_REQUIRE_KERNEL=1``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import btf
from ebpfspec.asm import LD_IMM64, ALUOp, Class, Instruction, Instructions, JumpOp, Register, Source
from ebpfspec.enums import AttachType, MapType, ProgramType
from loader.backend import Backend, MapAttrs, ProgLoadError, ProgramAttrs
from loader.memory import MemoryBackend
from loader.memory.objects import ENOTSUPP

R0, R1 = Register.R0, Register.R1
XDP, SOCKET_FILTER, KPROBE = ProgramType.XDP, ProgramType.SOCKET_FILTER, ProgramType.KPROBE
BYTE_ORDER: Any = sys.byteorder


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def unu32(raw: bytes) -> int:
    value: int = struct.unpack("=I", raw)[0]
    return value


def mov(dst: Register, imm: int) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.MOV | Source.K, dst, constant=imm)


EXIT = Instruction(Class.JMP | JumpOp.EXIT)


def ld_map(fd: int, *, src: int = 1, offset: int = 0) -> Instruction:
    """``r1 = map`` by fd (``src`` 1), by fd with value ``offset`` (2), by ``fd_array`` index (5, 6)."""
    return Instruction(LD_IMM64, R1, src, constant=(offset << 32) | fd)


def encode(*insns: Instruction) -> bytes:
    return Instructions(insns).encode(BYTE_ORDER)


def returning(value: int) -> bytes:
    return encode(mov(R0, value), EXIT)


def with_maps(*loads: Instruction, ret: int = 0) -> bytes:
    """The 64-bit loads ``loads`` (results unused), then ``return ret``."""
    return encode(*loads, mov(R0, ret), EXIT)


def eno(fn: Callable[..., object], *args: Any, **kwargs: Any) -> int | None:
    """The errno ``fn(*args, **kwargs)`` fails with, or None if it succeeds."""
    try:
        fn(*args, **kwargs)
    except OSError as err:
        return err.errno
    return None


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether ``condition()`` holds within ``timeout`` s (the kernel frees objects after RCU)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Session:
    """A backend and the handles a test opened on it (closed at teardown)."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.fds: list[int] = []

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self.b.close(fd)

    def map(self, map_type: MapType, key_size: int = 4, value_size: int = 8, max_entries: int = 1,
            **kw: Any) -> int:
        return self.keep(self.b.map_create(MapAttrs(int(map_type), key_size, value_size, max_entries, **kw)))

    def prog(self, prog_type: int, insns: bytes, **kw: Any) -> int:
        fd, _ = self.b.prog_load(ProgramAttrs(int(prog_type), insns, kw.pop("license", "GPL"), **kw))
        return self.keep(fd)

    def load_errno(self, prog_type: int, insns: bytes, **kw: Any) -> int | None:
        """The errno loading fails with (a ProgLoadError), or None (the program is then kept)."""
        try:
            self.prog(prog_type, insns, **kw)
        except ProgLoadError as err:
            return err.errno
        return None

    def btf(self, *types: btf.Type) -> int:
        return self.keep(self.b.btf_load(btf.marshal_types(list(types))))

    def alive(self, prog_id: int) -> bool:
        """Whether a program with this id still exists."""
        try:
            fd = self.b.prog_fd_by_id(prog_id)
        except FileNotFoundError:
            return False
        self.b.close(fd)
        return True

    def map_alive(self, map_id: int) -> bool:
        try:
            fd = self.b.map_fd_by_id(map_id)
        except FileNotFoundError:
            return False
        self.b.close(fd)
        return True

    def close_all(self) -> None:
        while self.fds:
            with contextlib.suppress(OSError):
                self.b.close(self.fds.pop())


def kernel_unavailable() -> str:
    """Why the kernel cases cannot run ("" if they can)."""
    if os.geteuid() != 0:
        return "the kernel cases need root"
    try:
        from loader.kernel import KernelBackend

        kb = KernelBackend()
        kb.close(kb.map_create(MapAttrs(int(MapType.ARRAY), 4, 4, 1)))
    except Exception as err:
        return f"bpf(2) is not usable here: {err}"
    return ""


def kernel_backend() -> Backend:
    reason = kernel_unavailable()
    if reason:
        pytest.skip(reason)
    from loader.kernel import KernelBackend

    return KernelBackend()


@pytest.fixture(params=["memory", pytest.param("kernel", marks=pytest.mark.kernel)])
def backend(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The model and the kernel: the same tests on both."""
    s = Session(MemoryBackend() if request.param == "memory" else kernel_backend())
    yield s
    s.close_all()


@pytest.fixture
def mem() -> Iterator[Session]:
    s = Session(MemoryBackend(possible_cpus=2))
    yield s
    s.close_all()


@pytest.fixture
def pin_dir(backend: Session, tmp_path: Path) -> Iterator[Path]:
    """A directory to pin in: a private bpffs for the kernel, any directory for the model."""
    if backend.b.name != "kernel":
        yield tmp_path
        return
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ===================================================================================== loading


def test_is_a_backend() -> None:
    assert isinstance(MemoryBackend(), Backend)


def test_load_and_info(backend: Session) -> None:
    insns = returning(2)
    fd = backend.prog(XDP, insns, name="xdp_pass")
    info = backend.b.prog_info(fd)
    assert (info.type, info.name, info.map_ids, info.btf_id) == (XDP, "xdp_pass", (), 0)
    assert info.id > 0
    assert info.xlated_prog_len == len(insns)
    assert info.tag == hashlib.sha256(insns).digest()[:8]  # Linux 6.18's tag
    second = backend.prog(XDP, insns)
    assert backend.b.prog_info(second).id != info.id
    assert backend.b.prog_info(second).tag == info.tag


def test_fd_by_id(backend: Session) -> None:
    fd = backend.prog(SOCKET_FILTER, returning(0), name="by_id")
    prog_id = backend.b.prog_info(fd).id
    again = backend.keep(backend.b.prog_fd_by_id(prog_id))
    assert again != fd
    assert backend.b.prog_info(again) == backend.b.prog_info(fd)
    assert eno(backend.b.prog_fd_by_id, 0x7FFFFFFF) == errno.ENOENT
    backend.close(fd)
    backend.close(again)
    assert eventually(lambda: not backend.alive(prog_id))


def test_info_of_the_wrong_object(backend: Session) -> None:
    prog = backend.prog(XDP, returning(2))
    m = backend.map(MapType.ARRAY)
    assert eno(backend.b.prog_info, m) == errno.EINVAL
    assert eno(backend.b.map_info, prog) == errno.EINVAL


#: Makes a program's instructions and extra ProgramAttrs from the test's fds by name.
Make = Callable[[dict[str, int]], tuple[bytes, dict[str, Any]]]

_LOAD_ERRORS: list[tuple[str, int, Make, int | None]] = [
    ("ok", XDP, lambda m: (returning(2), {}), None),
    ("no instructions", XDP, lambda m: (b"", {}), errno.E2BIG),
    ("program type 0", 0, lambda m: (returning(2), {}), errno.EINVAL),
    ("program type 33", 33, lambda m: (returning(2), {}), errno.EINVAL),
    ("unknown prog_flags bit", XDP, lambda m: (returning(2), {"prog_flags": 1 << 12}), errno.EINVAL),
    ("name with '-'", XDP, lambda m: (returning(2), {"name": "a-b"}), errno.EINVAL),
    ("name with letters, digits, _ and .", XDP, lambda m: (returning(2), {"name": "a.B_9"}), None),
    ("func_info without BTF", XDP, lambda m: (returning(2), {"func_info": bytes(8)}), errno.EINVAL),
    ("load of a map", XDP, lambda m: (with_maps(ld_map(m["array"])), {}), None),
    ("load of a closed fd", XDP, lambda m: (with_maps(ld_map(m["closed"])), {}), errno.EBADF),
    ("load of a program fd as a map", XDP, lambda m: (with_maps(ld_map(m["prog"])), {}), errno.EINVAL),
    ("fd_array index without fd_array", XDP, lambda m: (with_maps(ld_map(0, src=5)), {}), errno.EPROTO),
    ("fd_array index", XDP, lambda m: (with_maps(ld_map(1, src=5)), {"fd_array": (m["hash"], m["array"])}),
     None),
    ("fd_array value index", XDP,
     lambda m: (with_maps(ld_map(0, src=6, offset=4)), {"fd_array": (m["array"],)}), None),
    ("direct value of an array", XDP, lambda m: (with_maps(ld_map(m["array"], src=2, offset=7)), {}), None),
    ("direct value beyond the value", XDP, lambda m: (with_maps(ld_map(m["array"], src=2, offset=8)), {}),
     errno.EINVAL),
    ("direct value of a hash", XDP, lambda m: (with_maps(ld_map(m["hash"], src=2)), {}), errno.EINVAL),
    ("direct value of a 2-element array", XDP, lambda m: (with_maps(ld_map(m["array2"], src=2)), {}),
     ENOTSUPP),
    ("cgroup skb, egress", ProgramType.CGROUP_SKB,
     lambda m: (returning(1), {"expected_attach_type": AttachType.CGROUP_INET_EGRESS}), None),
    ("cgroup skb, ingress (0)", ProgramType.CGROUP_SKB, lambda m: (returning(1), {}), None),
    ("cgroup skb, XDP attach type", ProgramType.CGROUP_SKB,
     lambda m: (returning(1), {"expected_attach_type": AttachType.XDP}), errno.EINVAL),
    ("cgroup sock, 0 fixed up to sock_create", ProgramType.CGROUP_SOCK, lambda m: (returning(1), {}), None),
    ("cgroup sock addr without attach type", ProgramType.CGROUP_SOCK_ADDR, lambda m: (returning(1), {}),
     errno.EINVAL),
    ("cgroup sock addr, connect4", ProgramType.CGROUP_SOCK_ADDR,
     lambda m: (returning(1), {"expected_attach_type": AttachType.CGROUP_INET4_CONNECT}), None),
    ("syscall program with an attach type", ProgramType.SYSCALL,
     lambda m: (returning(0), {"expected_attach_type": AttachType.XDP}), errno.EINVAL),
    ("XDP with attach_btf_id", XDP, lambda m: (returning(2), {"attach_btf_id": 1}), errno.EINVAL),
    ("attach BTF of a program", XDP, lambda m: (returning(2), {"attach_btf_obj_fd": m["btf"]}), ENOTSUPP),
    ("attach program for XDP", XDP, lambda m: (returning(2), {"attach_prog_fd": m["prog"]}), errno.EINVAL),
    ("attach target that is a map", XDP, lambda m: (returning(2), {"attach_prog_fd": m["array"]}),
     errno.EINVAL),
    ("64-bit load cut in half", XDP, lambda m: (returning(2) + with_maps(ld_map(m["array"]))[:8], {}),
     errno.EINVAL),
]


@pytest.mark.parametrize(("case", "prog_type", "make", "expected"), _LOAD_ERRORS,
                         ids=[c[0] for c in _LOAD_ERRORS])
def test_load_errors(backend: Session, case: str, prog_type: int, make: Make, expected: int | None) -> None:
    """What BPF_PROG_LOAD refuses before (and around) the verifier, errno for errno."""
    closed = backend.b.map_create(MapAttrs(int(MapType.ARRAY), 4, 8, 1))
    backend.b.close(closed)
    fds = {
        "array": backend.map(MapType.ARRAY), "array2": backend.map(MapType.ARRAY, max_entries=2),
        "hash": backend.map(MapType.HASH, max_entries=4), "prog": backend.prog(SOCKET_FILTER, returning(0)),
        "closed": 0x7FFF if backend.b.name == "kernel" else closed,
        "btf": backend.btf(btf.Int(1, "int", 4, btf.IntEncoding.SIGNED)),
    }
    insns, kw = make(fds)
    assert backend.load_errno(prog_type, insns, **kw) == expected


def test_caller_mistakes_are_value_errors(backend: Session) -> None:
    with pytest.raises(ValueError, match="8-byte"):
        backend.prog(XDP, returning(2)[:12])
    with pytest.raises(ValueError, match="longer than 15"):
        backend.prog(XDP, returning(2), name="n" * 16)
    with pytest.raises(ValueError, match="NUL"):
        backend.prog(XDP, returning(2), license="GPL\0")
    with pytest.raises(ValueError, match="func_info"):
        backend.prog(XDP, returning(2), func_info=bytes(5))
    with pytest.raises(ValueError, match="one field"):
        backend.prog(XDP, returning(2), attach_prog_fd=3, attach_btf_obj_fd=4)


def test_func_info(backend: Session) -> None:
    """One BTF FUNC per subprogram, at its first instruction; the program then has a BTF id."""
    types = [btf.Int(1, "int", 4, btf.IntEncoding.SIGNED), btf.FuncProto(2, "", 1),
             btf.Func(3, "prog", 2, btf.FuncLinkage.STATIC)]
    btf_fd = backend.btf(*types)
    record = struct.pack("=II", 0, 3)
    fd = backend.prog(XDP, returning(2), prog_btf_fd=btf_fd, func_info=record)
    assert backend.b.prog_info(fd).btf_id > 0
    assert backend.load_errno(XDP, returning(2), prog_btf_fd=btf_fd, func_info=struct.pack("=II", 0, 1)) == \
        errno.EINVAL  # an INT, not a FUNC
    assert backend.load_errno(XDP, returning(2), prog_btf_fd=btf_fd, func_info=struct.pack("=II", 1, 3)) == \
        errno.EINVAL  # not at the first instruction
    assert backend.load_errno(XDP, returning(2), prog_btf_fd=btf_fd, func_info=record * 2) == errno.EINVAL
    # without func/line info the kernel does not look at prog_btf_fd
    plain = backend.prog(XDP, returning(2), prog_btf_fd=btf_fd)
    assert backend.b.prog_info(plain).btf_id == 0


def test_map_ids_in_first_use_order(backend: Session) -> None:
    a = backend.map(MapType.ARRAY)
    h = backend.map(MapType.HASH, max_entries=4)
    fd = backend.prog(XDP, with_maps(ld_map(h), ld_map(a), ld_map(h), ret=2))
    ids = backend.b.prog_info(fd).map_ids
    assert ids == (backend.b.map_info(h).id, backend.b.map_info(a).id)


def test_tag_ignores_map_fds(backend: Session) -> None:
    """The tag is the same whatever fd the map had; PSEUDO_MAP_VALUE offsets are cleared too."""
    a = backend.map(MapType.ARRAY)
    b = backend.map(MapType.ARRAY)
    tags = [backend.b.prog_info(backend.prog(XDP, with_maps(ld_map(fd), ret=2))).tag for fd in (a, b)]
    assert tags[0] == tags[1]
    values = [backend.b.prog_info(backend.prog(XDP, with_maps(ld_map(a, src=2, offset=off), ret=2))).tag
              for off in (0, 4)]
    assert values[0] == values[1] != tags[0]


@pytest.mark.kernel
def test_tags_are_the_kernels() -> None:
    """The model's tags, byte for byte the running kernel's (SHA-256 since 6.18)."""
    kernel = Session(kernel_backend())
    model = Session(MemoryBackend())
    try:
        # (instructions, fd_array) of programs made on each backend
        programs: list[Callable[[Session], tuple[bytes, tuple[int, ...]]]] = [
            lambda s: (returning(2), ()),
            lambda s: (with_maps(ld_map(s.map(MapType.ARRAY)), ret=1), ()),
            lambda s: (with_maps(ld_map(s.map(MapType.ARRAY), src=2, offset=4), ret=1), ()),
            lambda s: (with_maps(ld_map(0, src=5), ret=1), (s.map(MapType.HASH, max_entries=2),)),
        ]
        release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
        for make in programs:
            tags = []
            for s in (kernel, model):
                insns, fd_array = make(s)
                tags.append(s.b.prog_info(s.prog(XDP, insns, fd_array=fd_array)).tag)
            kernel_tag, model_tag = tags
            assert len(kernel_tag) == len(model_tag) == 8
            if release >= (6, 18):  # earlier kernels hash with SHA-1
                assert kernel_tag == model_tag
    finally:
        kernel.close_all()
        model.close_all()


# ================================================================================= program arrays


def test_program_array_holds_programs(backend: Session) -> None:
    array = backend.map(MapType.PROG_ARRAY, 4, 4, 4)
    xdp = backend.prog(XDP, returning(2))
    xdp2 = backend.prog(XDP, returning(1))
    sock = backend.prog(SOCKET_FILTER, returning(0))
    backend.b.map_update(array, u32(0), u32(xdp))
    backend.b.map_update(array, u32(1), u32(xdp2))
    assert unu32(backend.b.map_lookup(array, u32(0), 4)) == backend.b.prog_info(xdp).id
    assert unu32(backend.b.map_lookup(array, u32(1), 4)) == backend.b.prog_info(xdp2).id
    assert eno(backend.b.map_update, array, u32(2), u32(sock)) == errno.EINVAL  # the array is XDP's
    backend.b.map_delete(array, u32(1))
    assert eno(backend.b.map_lookup, array, u32(1), 4) == errno.ENOENT


def test_a_program_using_a_program_array_claims_it(backend: Session) -> None:
    array = backend.map(MapType.PROG_ARRAY, 4, 4, 4)
    backend.prog(SOCKET_FILTER, with_maps(ld_map(array)))
    xdp = backend.prog(XDP, returning(2))
    assert eno(backend.b.map_update, array, u32(0), u32(xdp)) == errno.EINVAL
    assert backend.load_errno(XDP, with_maps(ld_map(array), ret=2)) == errno.EINVAL
    sock = backend.prog(SOCKET_FILTER, returning(0))
    backend.b.map_update(array, u32(0), u32(sock))


def test_a_program_keeps_its_maps(backend: Session) -> None:
    m = backend.map(MapType.HASH, max_entries=4)
    map_id = backend.b.map_info(m).id
    prog = backend.prog(XDP, with_maps(ld_map(m), ret=2))
    backend.close(m)
    assert backend.map_alive(map_id)
    backend.close(prog)
    assert eventually(lambda: not backend.map_alive(map_id))


def test_program_array_cycle_is_broken_when_user_space_lets_go(backend: Session) -> None:
    """A program in the program array it tail-calls through: freed when the last handle closes."""
    array = backend.map(MapType.PROG_ARRAY, 4, 4, 1)
    array_id = backend.b.map_info(array).id
    prog = backend.prog(XDP, with_maps(ld_map(array), ret=2))
    prog_id = backend.b.prog_info(prog).id
    backend.b.map_update(array, u32(0), u32(prog))
    backend.close(prog)
    assert backend.alive(prog_id)  # held by the array
    backend.close(array)
    assert eventually(lambda: not backend.alive(prog_id) and not backend.map_alive(array_id))


def test_a_pinned_program_array_keeps_its_programs(backend: Session, pin_dir: Path) -> None:
    array = backend.map(MapType.PROG_ARRAY, 4, 4, 1)
    prog = backend.prog(XDP, returning(2))
    prog_id = backend.b.prog_info(prog).id
    backend.b.map_update(array, u32(0), u32(prog))
    backend.b.obj_pin(array, str(pin_dir / "jmp"))
    backend.close(prog)
    backend.close(array)
    again = backend.keep(backend.b.obj_get(str(pin_dir / "jmp")))
    assert unu32(backend.b.map_lookup(again, u32(0), 4)) == prog_id
    backend.close(again)
    assert backend.alive(prog_id)
    backend.b.obj_unpin(str(pin_dir / "jmp"))
    assert eventually(lambda: not backend.alive(prog_id))


# ========================================================================================= pins


def test_pinned_program(backend: Session, pin_dir: Path) -> None:
    fd = backend.prog(SOCKET_FILTER, returning(0), name="pinned")
    prog_id = backend.b.prog_info(fd).id
    path = str(pin_dir / "prog")
    backend.b.obj_pin(fd, path)
    assert eno(backend.b.obj_pin, fd, path) == errno.EEXIST
    backend.close(fd)
    got = backend.keep(backend.b.obj_get(path))
    assert backend.b.prog_info(got).id == prog_id
    read_only = backend.keep(backend.b.obj_get(path, 1 << 3))  # BPF_F_RDONLY: taken, and ignored
    assert backend.b.prog_info(read_only).id == prog_id
    backend.b.obj_unpin(path)
    assert eno(backend.b.obj_get, path) == errno.ENOENT
    assert backend.alive(prog_id)


# ====================================================================== what only the model says


def test_test_run_is_enotsupp(mem: Session) -> None:
    """ENOTSUPP (524): the kernel's answer for a program type without a test run."""
    fd = mem.prog(XDP, returning(2))
    with pytest.raises(OSError) as info:
        mem.b.prog_test_run(fd, data=bytes(64), data_out_size=64)
    assert info.value.errno == ENOTSUPP == 524
    assert "cannot run" in str(info.value)
    m = mem.map(MapType.ARRAY)
    assert eno(mem.b.prog_test_run, m) == errno.EINVAL
    assert eno(mem.b.prog_test_run, 0x7FFF) == errno.EBADF


def test_attaching_is_eopnotsupp(mem: Session) -> None:
    b = mem.b
    prog = mem.prog(XDP, returning(2))
    attempts: list[Callable[[], object]] = [
        lambda: b.link_create(prog, 1, int(AttachType.XDP)),
        lambda: b.raw_tracepoint_open("sys_enter", prog),
        lambda: b.prog_attach(prog, 3, int(AttachType.CGROUP_INET_EGRESS)),
        lambda: b.prog_detach(prog, 3, int(AttachType.CGROUP_INET_EGRESS)),
        lambda: b.perf_event_open_tracepoint("syscalls", "sys_enter_getpid"),
        lambda: b.perf_event_open_kprobe("do_sys_openat2"),
        lambda: b.perf_event_open_uprobe("/bin/true", 0),
        lambda: b.perf_event_set_bpf(5, prog),
        lambda: b.perf_event_enable(5),
        lambda: b.socket_attach_filter(0, prog),
        lambda: b.socket_detach_filter(0),
    ]
    for attempt in attempts:
        assert eno(attempt) == errno.EOPNOTSUPP
    # no handle is a link: EINVAL, EBADF for no handle at all
    assert eno(b.link_info, prog) == errno.EINVAL
    assert eno(b.link_detach, prog) == errno.EINVAL
    assert eno(b.link_info, 0x7FFF) == errno.EBADF


def test_log_is_a_note(mem: Session) -> None:
    fd, log = mem.b.prog_load(ProgramAttrs(int(XDP), returning(2), "GPL"))
    mem.keep(fd)
    assert log == ""
    fd, log = mem.b.prog_load(ProgramAttrs(int(XDP), returning(2), "GPL"), log_level=1)
    mem.keep(fd)
    assert "without verification" in log


def test_load_errors_carry_an_empty_log(mem: Session) -> None:
    with pytest.raises(ProgLoadError) as info:
        mem.b.prog_load(ProgramAttrs(33, returning(2), "GPL"))
    assert info.value.log == ""
    assert info.value.log_true_size == 0
    assert "program type 33" in str(info.value)


def test_accounting() -> None:
    b = MemoryBackend(possible_cpus=1)
    array = b.map_create(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 2))
    m = b.map_create(MapAttrs(int(MapType.HASH), 4, 8, 2))
    prog, _ = b.prog_load(ProgramAttrs(int(XDP), with_maps(ld_map(array), ld_map(m), ret=2), "GPL"))
    b.map_update(array, u32(0), u32(prog))
    assert b.live_objects() == 3
    for fd in (m, prog, array):
        b.close(fd)
    assert (b.live_objects(), b.open_handles()) == (0, 0)


def test_failed_loads_keep_nothing() -> None:
    b = MemoryBackend(possible_cpus=1)
    m = b.map_create(MapAttrs(int(MapType.HASH), 4, 8, 2))
    for insns in (with_maps(ld_map(m), ld_map(0x7FFF)), with_maps(ld_map(m), ld_map(m, src=2))):
        with pytest.raises(ProgLoadError):
            b.prog_load(ProgramAttrs(int(XDP), insns, "GPL"))
    b.close(m)
    assert (b.live_objects(), b.open_handles()) == (0, 0)


def test_btf_targeted_programs_need_a_target(mem: Session) -> None:
    """Tracing, LSM, struct_ops and extension programs without attach_btf_id: the verifier's EINVAL.

    (Not compared with the kernel: on the kernel these tests run on, every tracing load
    fails with EPERM before that check.)
    """
    for prog_type in (ProgramType.TRACING, ProgramType.LSM, ProgramType.STRUCT_OPS, ProgramType.EXT):
        assert mem.load_errno(prog_type, returning(0)) == errno.EINVAL
    assert mem.load_errno(ProgramType.TRACING, returning(0), attach_btf_id=100,
                          expected_attach_type=AttachType.TRACE_FENTRY) is None


def test_kprobe_programs_load_too(mem: Session) -> None:
    fd = mem.prog(KPROBE, returning(0), name="kp")
    assert mem.b.prog_info(fd).type == KPROBE
