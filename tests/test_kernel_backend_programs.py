"""``KernelBackend`` programs and attachment against the running kernel.

Programs are assembled by hand from :class:`ebpfspec.asm.Instruction` (no compiler), loaded
with ``prog_load``, run with ``prog_test_run`` and attached every way the backend knows:
raw tracepoints, tracepoint/kprobe/uprobe perf events (by link and by ioctl), XDP on
``lo``, cgroup skb programs and socket filters. Attached programs count their runs in an
array map, so each test sees them fire; ``bpftool`` and ``ip`` are the independent
witnesses of what is attached.

Tests that make ``bpf(2)`` calls are marked ``kernel`` and skip when not root or when the
kernel refuses BPF (failing under ``EBPFSPEC_REQUIRE_KERNEL=1``). Mounts (bpffs, tracefs)
are private to the test that needs them; cgroups are created and removed by the test.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

import btf
from ebpfspec.asm import (
    LD_IMM64,
    PSEUDO_MAP_FD,
    ALUOp,
    AtomicOp,
    BuiltinFunc,
    Class,
    Instruction,
    Instructions,
    JumpOp,
    Mode,
    Register,
    Size,
    Source,
)
from ebpfspec.enums import AttachType, MapType, ProgramType
from loader.backend import Backend, LinkInfo, MapAttrs, ProgLoadError, ProgramAttrs
from loader.kernel import KernelBackend
from loader.kernel import perf as kernel_perf
from loader.kernel import syscall as kernel_syscall
from loader.kernel.attr import (
    BpfBtfInfo,
    BpfLinkInfo,
    BpfProgInfo,
    Cmd,
    IterCreateAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    ProgAttachAttr,
    ProgLoadAttr,
    RawTracepointAttr,
    TestRunAttr,
)
from tests.test_kernel_backend import field_layout

R0, R1, R2, R6, R7, R10 = Register.R0, Register.R1, Register.R2, Register.R6, Register.R7, Register.R10
XDP_PASS = 2
# enum bpf_link_type
LINK_RAW_TRACEPOINT, LINK_CGROUP, LINK_XDP, LINK_PERF_EVENT = 1, 3, 6, 7
COUNTER_VALUE_SIZE = 16  # u64 runs, u64 last attach cookie


# -- hand-made programs ---------------------------------------------------------------------------


def mov(dst: Register, imm: int) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.MOV | Source.K, dst, constant=imm)


def mov_reg(dst: Register, src: Register) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.MOV | Source.X, dst, src)


def add(dst: Register, imm: int) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.ADD | Source.K, dst, constant=imm)


def call(helper: BuiltinFunc) -> Instruction:
    return Instruction(Class.JMP | JumpOp.CALL, constant=int(helper))


def jeq(dst: Register, imm: int, skip: int) -> Instruction:
    return Instruction(Class.JMP | JumpOp.JEQ | Source.K, dst, offset=skip, constant=imm)


def ld_map_fd(dst: Register, fd: int) -> Instruction:
    """``r = map`` (``BPF_LD | BPF_IMM | BPF_DW`` with ``src_reg = BPF_PSEUDO_MAP_FD``)."""
    return Instruction(LD_IMM64, dst, PSEUDO_MAP_FD, constant=fd)


def atomic_add(dst: Register, src: Register) -> Instruction:
    """``lock *(u64 *)(dst + 0) += src``."""
    return Instruction(Class.STX | Size.DW | Mode.ATOMIC, dst, src, constant=int(AtomicOp.ADD))


EXIT = Instruction(Class.JMP | JumpOp.EXIT)


def encode(*insns: Instruction) -> bytes:
    return Instructions(insns).encode("little" if sys.byteorder == "little" else "big")


def returning(value: int) -> bytes:
    """``r0 = value; exit``."""
    return encode(mov(R0, value), EXIT)


def counter(map_fd: int, ret: int, *, cookie: bool = False) -> bytes:
    """Add 1 to the u64 at offset 0 of element 0 of array ``map_fd`` and return ``ret``.

    With ``cookie`` the program also stores ``bpf_get_attach_cookie(ctx)`` at offset 8.
    """
    if cookie:
        body = [
            mov_reg(R7, R0),
            mov(R1, 1),
            atomic_add(R7, R1),
            mov_reg(R1, R6),
            call(BuiltinFunc.get_attach_cookie),
            Instruction(Class.STX | Size.DW | Mode.MEM, R7, R0, offset=8),
        ]
    else:
        body = [mov(R1, 1), atomic_add(R0, R1)]
    return encode(
        mov_reg(R6, R1),  # the context
        Instruction(Class.ST | Size.W | Mode.MEM, R10, offset=-4, constant=0),  # key = 0
        mov_reg(R2, R10),
        add(R2, -4),
        ld_map_fd(R1, map_fd),
        call(BuiltinFunc.map_lookup_elem),
        jeq(R0, 0, len(body)),
        *body,
        mov(R0, ret),
        EXIT,
    )


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kb() -> KernelBackend:
    """A KernelBackend, or a skip where this process may not use BPF."""
    if os.geteuid() != 0:
        pytest.skip("KernelBackend program tests need root")
    backend = KernelBackend()
    try:
        fd = backend.map_create(MapAttrs(int(MapType.ARRAY), key_size=4, value_size=4, max_entries=1))
    except OSError as err:
        if err.errno == errno.EPERM:
            pytest.skip(f"the kernel refuses bpf(): {err}")
        raise
    backend.close(fd)
    return backend


class Fds:
    """Descriptors a test opened (programs, maps, links, perf events): closed at teardown, newest first."""

    def __init__(self, kb: KernelBackend) -> None:
        self.kb = kb
        self.fds: list[int] = []

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)

    def prog(self, prog_type: ProgramType, insns: bytes, *, name: str = "", **kw: Any) -> int:
        fd, _ = self.kb.prog_load(ProgramAttrs(int(prog_type), insns, "GPL", name=name, **kw))
        return self.keep(fd)

    def counter_map(self) -> int:
        attrs = MapAttrs(int(MapType.ARRAY), 4, COUNTER_VALUE_SIZE, 1, name="runs")
        return self.keep(self.kb.map_create(attrs))

    def runs(self, map_fd: int) -> tuple[int, int]:
        """``(runs, cookie)`` of a counter map."""
        value = self.kb.map_lookup(map_fd, u32(0), COUNTER_VALUE_SIZE)
        runs, cookie = struct.unpack("=QQ", value)
        return runs, cookie

    def close_all(self) -> None:
        while self.fds:
            with contextlib.suppress(OSError):
                os.close(self.fds.pop())


@pytest.fixture
def fds(kb: KernelBackend) -> Iterator[Fds]:
    made = Fds(kb)
    yield made
    made.close_all()


@pytest.fixture
def tracefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private tracefs mount, made the only place :mod:`loader.kernel.perf` looks for tracepoint ids."""
    mnt = tmp_path / "tracefs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tracefs", "tracefs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tracefs: {done.stderr.strip()}")
    monkeypatch.setattr(kernel_perf, "TRACEFS_ROOTS", (str(mnt),))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs mount."""
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (None if it is not)."""
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A new, empty cgroup v2 directory, removed afterwards."""
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy is mounted")
    path = Path(root) / f"ebpfspec-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(100):  # a process that just left may still be on its way out
            try:
                path.rmdir()
                break
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)
        else:
            path.rmdir()


def run_json(*argv: str) -> Any:
    """``argv`` (bpftool, ip) run with JSON output; skip if the tool is not installed."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else None


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Whether ``condition()`` becomes true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def errno_of(call: Callable[[], object]) -> int | None:
    try:
        call()
    except OSError as err:
        return err.errno
    return None


def cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


LIBC: Any = ctypes.CDLL(None, use_errno=True)


def libc_getpid_offset() -> tuple[str, int]:
    """The C library this process maps and the file offset of its ``getpid``."""
    with open("/proc/self/maps", encoding="utf-8") as f:
        paths = [line.split()[-1] for line in f if "/libc.so" in line or "/libc-" in line]
    if not paths:
        pytest.skip("this process maps no libc.so")
    path = paths[0]
    with open(path, "rb") as f:
        elf = ELFFile(f)
        dynsym: Any = elf.get_section_by_name(".dynsym")
        symbols = dynsym.get_symbol_by_name("getpid") if dynsym is not None else None
        if not symbols:
            pytest.skip(f"{path} has no dynamic symbol getpid")
        vaddr = symbols[0]["st_value"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
                return path, vaddr - seg["p_vaddr"] + seg["p_offset"]
    pytest.skip(f"getpid of {path} is in no loadable segment")


# -- layouts --------------------------------------------------------------------------------------

LAYOUTS: dict[type[ctypes.Structure], tuple[int, dict[str, int]]] = {
    ProgLoadAttr: (168, {
        "prog_type": 0, "insn_cnt": 4, "insns": 8, "license": 16, "log_level": 24, "log_size": 28,
        "log_buf": 32, "kern_version": 40, "prog_flags": 44, "prog_name": 48, "prog_ifindex": 64,
        "expected_attach_type": 68, "prog_btf_fd": 72, "func_info_rec_size": 76, "func_info": 80,
        "func_info_cnt": 88, "line_info_rec_size": 92, "line_info": 96, "line_info_cnt": 104,
        "attach_btf_id": 108, "attach_prog_fd": 112, "core_relo_cnt": 116, "fd_array": 120,
        "core_relos": 128, "core_relo_rec_size": 136, "log_true_size": 140, "prog_token_fd": 144,
        "fd_array_cnt": 148, "signature": 152, "signature_size": 160, "keyring_id": 164,
    }),
    TestRunAttr: (80, {
        "prog_fd": 0, "retval": 4, "data_size_in": 8, "data_size_out": 12, "data_in": 16, "data_out": 24,
        "repeat": 32, "duration": 36, "ctx_size_in": 40, "ctx_size_out": 44, "ctx_in": 48, "ctx_out": 56,
        "flags": 64, "cpu": 68, "batch_size": 72,
    }),
    ProgAttachAttr: (32, {
        "target_fd": 0, "attach_bpf_fd": 4, "attach_type": 8, "attach_flags": 12, "replace_bpf_fd": 16,
        "relative_fd": 20, "expected_revision": 24,
    }),
    RawTracepointAttr: (24, {"name": 0, "prog_fd": 8, "cookie": 16}),
    LinkCreateAttr: (32, {
        "prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12, "target_btf_id": 16,
        "perf_event_cookie": 16, "tracing_cookie": 24, "iter_info": 16, "iter_info_len": 24,
    }),
    LinkDetachAttr: (8, {"link_fd": 0}),
    IterCreateAttr: (8, {"link_fd": 0, "flags": 4}),
    BpfBtfInfo: (32, {"btf": 0, "btf_size": 8, "id": 12, "name": 16, "name_len": 24, "kernel_btf": 28}),
    BpfProgInfo: (232, {
        "type": 0, "id": 4, "tag": 8, "jited_prog_len": 16, "xlated_prog_len": 20, "jited_prog_insns": 24,
        "xlated_prog_insns": 32, "load_time": 40, "created_by_uid": 48, "nr_map_ids": 52, "map_ids": 56,
        "name": 64, "ifindex": 80, "gpl_compatible": 84, "netns_dev": 88, "netns_ino": 96,
        "nr_jited_ksyms": 104, "nr_jited_func_lens": 108, "jited_ksyms": 112, "jited_func_lens": 120,
        "btf_id": 128, "func_info_rec_size": 132, "func_info": 136, "nr_func_info": 144,
        "nr_line_info": 148, "line_info": 152, "jited_line_info": 160, "nr_jited_line_info": 168,
        "line_info_rec_size": 172, "jited_line_info_rec_size": 176, "nr_prog_tags": 180, "prog_tags": 184,
        "run_time_ns": 192, "run_cnt": 200, "recursion_misses": 208, "verified_insns": 216,
        "attach_btf_obj_id": 220, "attach_btf_id": 224,
    }),
    BpfLinkInfo: (64, {"type": 0, "id": 4, "prog_id": 8}),
    kernel_perf.PerfEventAttr: (136, {
        "type": 0, "size": 4, "config": 8, "sample_period": 16, "sample_type": 24, "read_format": 32,
        "wakeup_events": 48, "bp_type": 52, "config1": 56, "config2": 64, "branch_sample_type": 72,
        "sample_regs_user": 80, "sample_stack_user": 88, "clockid": 92, "sample_regs_intr": 96,
        "aux_watermark": 104, "sample_max_stack": 108, "aux_sample_size": 112, "aux_action": 116,
        "sig_data": 120, "config3": 128,
    }),
}

@pytest.mark.parametrize("cls", list(LAYOUTS), ids=lambda c: c.__name__)
def test_layout(cls: type[ctypes.Structure]) -> None:
    """Sizes and offsets as in include/uapi/linux/bpf.h and perf_event.h (every u64 8-aligned)."""
    size, offsets = LAYOUTS[cls]
    assert ctypes.sizeof(cls) == size
    assert {name: field_layout(cls, name)[0] for name in offsets} == offsets


#: Where each structure is in the kernel's BTF: a struct, or the part of ``union bpf_attr``
#: holding a given member; and our names for fields the kernel reaches by another path.
KERNEL_HOME: dict[type[ctypes.Structure], tuple[str, str]] = {
    ProgLoadAttr: ("bpf_attr", "prog_type"),
    TestRunAttr: ("bpf_attr", "data_size_in"),
    ProgAttachAttr: ("bpf_attr", "attach_bpf_fd"),
    RawTracepointAttr: ("bpf_attr", "name"),
    LinkCreateAttr: ("bpf_attr", "target_btf_id"),
    LinkDetachAttr: ("bpf_attr", "link_fd"),
    IterCreateAttr: ("bpf_attr", "link_fd"),
    BpfBtfInfo: ("bpf_btf_info", ""),
    BpfProgInfo: ("bpf_prog_info", ""),
    BpfLinkInfo: ("bpf_link_info", ""),
    kernel_perf.PerfEventAttr: ("perf_event_attr", ""),
}
#: The named part of ``union bpf_attr`` where a member name is in several parts.
KERNEL_PART: dict[type[ctypes.Structure], str] = {
    LinkDetachAttr: "link_detach", IterCreateAttr: "iter_create",
}
KERNEL_PATHS: dict[type[ctypes.Structure], dict[str, tuple[str, ...]]] = {
    LinkCreateAttr: {"perf_event_cookie": ("perf_event", "bpf_cookie"),
                     "tracing_cookie": ("tracing", "cookie")},
    LinkDetachAttr: {"link_fd": ("link_fd",)},
}


def kernel_members(t: btf.Type, base: int = 0) -> dict[str, tuple[int, btf.Type]]:
    """Named members of a BTF struct/union -> (byte offset, type), anonymous members inlined."""
    out: dict[str, tuple[int, btf.Type]] = {}
    for m in getattr(btf.skip_qualifiers_and_typedefs(t), "members", ()):
        if m.name:
            out[m.name] = (base + m.offset // 8, m.type)
        else:
            out.update(kernel_members(m.type, base + m.offset // 8))
    return out


def kernel_field(t: btf.Type, path: tuple[str, ...]) -> tuple[int, int]:
    """``(offset, size)`` of the member at ``path`` (names through nested structs) in ``t``."""
    offset, current = 0, t
    for name in path:
        at, current = kernel_members(current)[name]
        offset += at
    return offset, btf.sizeof(current)


@pytest.mark.kernel
def test_layouts_match_the_running_kernels_btf() -> None:
    """Every field at the offset and with the size the running kernel's BTF gives it."""
    try:
        kernel = btf.load_kernel_spec()
    except OSError as err:
        pytest.skip(f"no kernel BTF: {err}")
    for cls, (_size, offsets) in LAYOUTS.items():
        name, member = KERNEL_HOME[cls]
        kind = btf.Kind.UNION if name == "bpf_attr" else btf.Kind.STRUCT
        (home,) = kernel.types_by_name(name, kind=kind)
        if member:  # the part of union bpf_attr that has this member (link_fd: the named part's)
            part = KERNEL_PART.get(cls)
            home = next(m.type for m in getattr(home, "members", ()) if member in kernel_members(m.type)
                        and (part is None or m.name == part))
        for ours in offsets:
            path = KERNEL_PATHS.get(cls, {}).get(ours, (ours,))
            assert field_layout(cls, ours) == kernel_field(home, path), f"{cls.__name__}.{ours}"


# -- loading and test runs ------------------------------------------------------------------------


@pytest.mark.kernel
def test_is_a_backend_with_the_program_methods(kb: KernelBackend) -> None:
    assert isinstance(kb, Backend)
    for method in ("prog_load", "prog_test_run", "prog_info", "prog_fd_by_id", "link_create",
                   "raw_tracepoint_open", "prog_attach", "prog_detach", "link_info", "link_detach",
                   "iter_create", "btf_fd_by_id", "btf_raw",
                   "perf_event_open_tracepoint", "perf_event_open_kprobe", "perf_event_open_uprobe",
                   "perf_event_set_bpf", "perf_event_enable", "socket_attach_filter", "socket_detach_filter"):
        assert callable(getattr(kb, method)), method


@pytest.mark.kernel
def test_xdp_test_run(kb: KernelBackend, fds: Fds) -> None:
    fd = fds.prog(ProgramType.XDP, returning(XDP_PASS), name="xdp_pass")
    assert cloexec(fd)
    packet = bytes(range(64))
    result = kb.prog_test_run(fd, data=packet, data_out_size=64)
    assert (result.retval, result.data, result.ctx) == (XDP_PASS, packet, b"")
    assert result.duration_ns >= 0
    # a larger buffer: the data comes back trimmed to what the kernel reports
    assert kb.prog_test_run(fd, data=packet, data_out_size=4096).data == packet
    assert kb.prog_test_run(fd, data=packet, repeat=1000).retval == XDP_PASS
    assert kb.prog_test_run(fd, data=packet).data == b""  # no output buffer, no output
    with pytest.raises(OSError) as small:
        kb.prog_test_run(fd, data=packet, data_out_size=10)
    assert small.value.errno == errno.ENOSPC
    assert small.value.data_size_out == 64  # type: ignore[attr-defined]
    assert "64 bytes" in str(small.value)
    # shorter than an Ethernet header
    assert errno_of(lambda: kb.prog_test_run(fd, data=bytes(8), data_out_size=64)) == errno.EINVAL
    with pytest.raises(ValueError, match="u32"):
        kb.prog_test_run(fd, data=packet, data_out_size=-1)


@pytest.mark.kernel
def test_socket_filter_test_run(kb: KernelBackend, fds: Fds) -> None:
    fd = fds.prog(ProgramType.SOCKET_FILTER, returning(42), name="sk42")
    result = kb.prog_test_run(fd, data=bytes(100), data_out_size=100)
    assert result.retval == 42
    assert result.data == bytes(100)
    # a context in and out: struct __sk_buff (192 bytes) with its mark (offset 8) set
    skb = bytearray(192)
    struct.pack_into("=I", skb, 8, 7)
    with_ctx = kb.prog_test_run(fd, data=bytes(100), ctx=bytes(skb), ctx_out_size=192)
    assert (with_ctx.retval, with_ctx.data, len(with_ctx.ctx)) == (42, b"", 192)
    assert struct.unpack_from("=I", with_ctx.ctx, 8) == (7,)
    with pytest.raises(OSError) as small:
        kb.prog_test_run(fd, data=bytes(100), ctx=bytes(skb), ctx_out_size=8)
    assert small.value.errno == errno.ENOSPC
    assert small.value.ctx_size_out == 192  # type: ignore[attr-defined]


@pytest.mark.kernel
def test_test_run_of_a_program_type_without_one(kb: KernelBackend, fds: Fds) -> None:
    """The kernel's own ENOTSUPP (524), which MemoryBackend gives for every program."""
    fd = fds.prog(ProgramType.KPROBE, returning(0))
    assert errno_of(lambda: kb.prog_test_run(fd)) == kernel_syscall.ENOTSUPP


@pytest.mark.kernel
def test_verifier_rejection_carries_the_log(kb: KernelBackend) -> None:
    # exit without setting r0
    with pytest.raises(ProgLoadError) as unset:
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), encode(EXIT), "GPL", name="no_r0"))
    assert unset.value.errno == errno.EACCES
    assert "R0 !read_ok" in unset.value.log
    assert "R0 !read_ok" in str(unset.value)  # the verifier's last word, not its statistics
    # a write beyond the stack frame, asked with a log from the start
    oob = encode(Instruction(Class.ST | Size.DW | Mode.MEM, R10, offset=8, constant=0), mov(R0, 0), EXIT)
    with pytest.raises(ProgLoadError) as stack:
        kb.prog_load(ProgramAttrs(int(ProgramType.SOCKET_FILTER), oob, "GPL"), log_level=1)
    assert stack.value.errno == errno.EACCES
    assert "invalid write to stack" in stack.value.log or "invalid stack" in stack.value.log
    # a jump out of the program: EINVAL
    with pytest.raises(ProgLoadError) as jump:
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), encode(jeq(R1, 0, 5), mov(R0, 0), EXIT), "GPL"))
    assert jump.value.errno == errno.EINVAL
    assert "jump out of range" in jump.value.log


@pytest.mark.kernel
def test_log_on_success_and_enospc(kb: KernelBackend) -> None:
    attrs = ProgramAttrs(int(ProgramType.XDP), returning(XDP_PASS), "GPL")
    fd, log = kb.prog_load(attrs)
    os.close(fd)
    assert log == ""
    fd, log = kb.prog_load(attrs, log_level=2)
    os.close(fd)
    assert "processed 2 insns" in log
    with pytest.raises(ProgLoadError) as small:
        kb.prog_load(attrs, log_level=2, log_size=128)
    err = small.value
    assert err.errno == errno.ENOSPC
    true_size: int = err.log_true_size
    assert true_size == len(log) + 1  # the NUL included (6.4+)
    assert 0 < len(err.log) < 128
    fd, exact = kb.prog_load(attrs, log_level=2, log_size=true_size)
    os.close(fd)
    assert exact == log
    # a failure's log too small: ENOSPC, with the size it needs
    with pytest.raises(ProgLoadError) as failing:
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), encode(EXIT), "GPL"), log_size=128)
    assert failing.value.errno == errno.ENOSPC
    assert failing.value.log_true_size > 128


@pytest.mark.kernel
def test_eagain_is_retried(kb: KernelBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier may give up with EAGAIN under signals; the load is simply tried again."""
    real = kernel_syscall.raw_syscall
    failures = [2]

    def flaky(nr: int, cmd: int, *args: Any) -> int:
        if cmd == int(Cmd.PROG_LOAD) and failures[0]:
            failures[0] -= 1
            ctypes.set_errno(errno.EAGAIN)
            return -1
        ret: int = real(nr, cmd, *args)
        return ret

    monkeypatch.setattr(kernel_syscall, "raw_syscall", flaky)
    fd, _ = kb.prog_load(ProgramAttrs(int(ProgramType.XDP), returning(XDP_PASS), "GPL"))
    os.close(fd)
    assert failures == [0]


@pytest.mark.kernel
def test_program_names(kb: KernelBackend, fds: Fds) -> None:
    fd = fds.prog(ProgramType.XDP, returning(XDP_PASS), name="a.name_of_15ch")
    assert kb.prog_info(fd).name == "a.name_of_15ch"
    with pytest.raises(ValueError, match="longer than 15"):
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), returning(XDP_PASS), "GPL", name="x" * 16))
    with pytest.raises(ProgLoadError) as bad:
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), returning(XDP_PASS), "GPL", name="a-b"))
    assert bad.value.errno == errno.EINVAL
    with pytest.raises(ValueError, match="8-byte"):
        kb.prog_load(ProgramAttrs(int(ProgramType.XDP), returning(XDP_PASS)[:12], "GPL"))


@pytest.mark.kernel
def test_prog_info_and_fd_by_id_witnessed_by_bpftool(kb: KernelBackend, fds: Fds) -> None:
    runs = fds.counter_map()
    fd = fds.prog(ProgramType.XDP, counter(runs, XDP_PASS), name="xdp_count")
    info = kb.prog_info(fd)
    assert info.type == ProgramType.XDP
    assert info.name == "xdp_count"
    assert info.map_ids == (kb.map_info(runs).id,)
    assert info.xlated_prog_len > 0 and info.jited_prog_len > 0
    assert len(info.tag) == 8
    shown = run_json("bpftool", "prog", "show", "id", str(info.id), "-j")
    assert (shown["id"], shown["type"], shown["name"], shown["tag"]) == (info.id, "xdp", "xdp_count",
                                                                          info.tag.hex())
    assert shown["map_ids"] == list(info.map_ids)
    assert shown["bytes_xlated"] == info.xlated_prog_len
    again = fds.keep(kb.prog_fd_by_id(info.id))
    assert again != fd and kb.prog_info(again) == info
    assert cloexec(again)
    assert errno_of(lambda: kb.prog_fd_by_id(0x7FFFFFFF)) == errno.ENOENT
    assert errno_of(lambda: kb.prog_info(runs)) == errno.EINVAL  # a map, not a program
    assert errno_of(lambda: kb.map_info(fd)) == errno.EINVAL  # and the other way round
    assert errno_of(lambda: kb.link_info(fd)) == errno.EINVAL


@pytest.mark.kernel
def test_pinned_program(kb: KernelBackend, fds: Fds, bpffs: Path) -> None:
    fd = fds.prog(ProgramType.XDP, returning(XDP_PASS), name="pinned")
    kb.obj_pin(fd, str(bpffs / "prog"))
    got = fds.keep(kb.obj_get(str(bpffs / "prog")))
    assert kb.prog_info(got).id == kb.prog_info(fd).id
    assert kb.prog_test_run(got, data=bytes(64)).retval == XDP_PASS
    kb.obj_unpin(str(bpffs / "prog"))


@pytest.mark.kernel
def test_program_array_holds_programs(kb: KernelBackend, fds: Fds) -> None:
    array = fds.keep(kb.map_create(MapAttrs(int(MapType.PROG_ARRAY), 4, 4, 2)))
    xdp = fds.prog(ProgramType.XDP, returning(XDP_PASS))
    sock = fds.prog(ProgramType.SOCKET_FILTER, returning(0))
    kb.map_update(array, u32(0), u32(xdp))
    assert kb.map_lookup(array, u32(0), 4) == u32(kb.prog_info(xdp).id)
    assert errno_of(lambda: kb.map_update(array, u32(1), u32(sock))) == errno.EINVAL  # another type


# -- attaching -------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_raw_tracepoint(kb: KernelBackend, fds: Fds) -> None:
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.RAW_TRACEPOINT, counter(runs, 0), name="raw_sys_enter")
    link = fds.keep(kb.raw_tracepoint_open("sys_enter", prog))
    assert cloexec(link)
    for _ in range(10):
        os.getppid()
    assert fds.runs(runs)[0] >= 10
    info = kb.link_info(link)
    assert info == LinkInfo(type=LINK_RAW_TRACEPOINT, id=info.id, prog_id=kb.prog_info(prog).id)
    shown = run_json("bpftool", "link", "show", "id", str(info.id), "-j")
    assert (shown["type"], shown["prog_id"]) == ("raw_tracepoint", info.prog_id)
    assert shown["tp_name"] == "sys_enter"
    fds.close(link)
    time.sleep(0.05)  # let calls already inside the program on other CPUs finish
    before = fds.runs(runs)[0]
    for _ in range(10):
        os.getppid()
    assert fds.runs(runs)[0] == before
    assert errno_of(lambda: kb.raw_tracepoint_open("no_such_tracepoint_here", prog)) == errno.ENOENT


@pytest.mark.kernel
def test_tracepoint_through_a_perf_event_link(kb: KernelBackend, fds: Fds, tracefs: Path) -> None:
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.TRACEPOINT, counter(runs, 0, cookie=True), name="tp_getpid")
    event = fds.keep(kb.perf_event_open_tracepoint("syscalls", "sys_enter_getpid"))
    assert cloexec(event)
    link = fds.keep(kb.link_create(prog, event, int(AttachType.PERF_EVENT), cookie=0xC0FFEE))
    for _ in range(10):
        os.getpid()
    count, cookie = fds.runs(runs)
    assert count >= 10
    assert cookie == 0xC0FFEE
    info = kb.link_info(link)
    assert (info.type, info.prog_id) == (LINK_PERF_EVENT, kb.prog_info(prog).id)
    shown = run_json("bpftool", "link", "show", "id", str(info.id), "-j")
    assert shown["type"] == "perf_event"
    fds.close(link)
    time.sleep(0.05)
    before = fds.runs(runs)[0]
    os.getpid()
    assert fds.runs(runs)[0] == before


@pytest.mark.kernel
def test_tracepoint_through_the_ioctls(kb: KernelBackend, fds: Fds, tracefs: Path) -> None:
    """The pre-5.15 way: PERF_EVENT_IOC_SET_BPF and PERF_EVENT_IOC_ENABLE on the event itself."""
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.TRACEPOINT, counter(runs, 0), name="tp_ioctl")
    event = fds.keep(kb.perf_event_open_tracepoint("syscalls", "sys_enter_getpid"))
    kb.perf_event_set_bpf(event, prog)
    kb.perf_event_enable(event)
    for _ in range(10):
        os.getpid()
    assert fds.runs(runs)[0] >= 10
    other = fds.prog(ProgramType.TRACEPOINT, returning(0))
    assert errno_of(lambda: kb.perf_event_set_bpf(event, other)) == errno.EEXIST  # one program per event
    fds.close(event)
    time.sleep(0.05)
    before = fds.runs(runs)[0]
    os.getpid()
    assert fds.runs(runs)[0] == before


def test_tracepoint_without_tracefs_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "not-tracefs"
    monkeypatch.setattr(kernel_perf, "TRACEFS_ROOTS", (str(missing),))
    with pytest.raises(FileNotFoundError) as info:
        KernelBackend().perf_event_open_tracepoint("syscalls", "sys_enter_getpid")
    assert info.value.errno == errno.ENOENT
    assert str(missing / "events") in str(info.value)
    assert "mount -t tracefs" in str(info.value)
    with pytest.raises(ValueError, match="category"):
        KernelBackend().perf_event_open_tracepoint("../etc", "x")


@pytest.mark.kernel
def test_missing_tracepoint_names_the_path(kb: KernelBackend, tracefs: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        kb.perf_event_open_tracepoint("syscalls", "sys_enter_no_such_call")
    assert str(tracefs / "events" / "syscalls" / "sys_enter_no_such_call" / "id") in str(info.value)


def getpid_kernel_function() -> str:
    """The kernel function behind getpid(2) on this architecture."""
    machine = os.uname().machine
    return {"x86_64": "__x64_sys_getpid", "aarch64": "__arm64_sys_getpid"}.get(machine, "__sys_getpid")


@pytest.mark.kernel
def test_kprobe_fires_or_its_absence_is_reported(kb: KernelBackend, fds: Fds) -> None:
    """Through the kprobe PMU and a BPF_PERF_EVENT link; without kprobes, an error naming the missing file."""
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.KPROBE, counter(runs, 0), name="kp_getpid")
    pmu = Path(kernel_perf.EVENT_SOURCE_DEVICES) / "kprobe" / "type"
    if not pmu.exists():  # CONFIG_KPROBES=n: a clear error, no crash
        with pytest.raises(OSError) as info:
            kb.perf_event_open_kprobe(getpid_kernel_function())
        assert info.value.errno == errno.EOPNOTSUPP
        assert str(pmu) in str(info.value)
        return
    event = fds.keep(kb.perf_event_open_kprobe(getpid_kernel_function()))
    link = fds.keep(kb.link_create(prog, event, int(AttachType.PERF_EVENT)))
    for _ in range(10):
        os.getpid()
    assert fds.runs(runs)[0] >= 10
    assert kb.link_info(link).type == LINK_PERF_EVENT
    ret_event = fds.keep(kb.perf_event_open_kprobe(getpid_kernel_function(), retprobe=True))
    assert cloexec(ret_event)
    assert errno_of(lambda: kb.perf_event_open_kprobe("no_such_kernel_function_here")) in (errno.ENOENT,
                                                                                          errno.EINVAL)


@pytest.mark.kernel
def test_uprobe_link_with_cookie(kb: KernelBackend, fds: Fds) -> None:
    """A kprobe-type program on libc's getpid, through the uprobe PMU and a BPF_PERF_EVENT link."""
    path, offset = libc_getpid_offset()
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.KPROBE, counter(runs, 0, cookie=True), name="up_getpid")
    event = fds.keep(kb.perf_event_open_uprobe(path, offset, pid=os.getpid()))
    link = fds.keep(kb.link_create(prog, event, int(AttachType.PERF_EVENT), cookie=7))
    for _ in range(10):
        LIBC.getpid()
    count, cookie = fds.runs(runs)
    assert count >= 10
    assert cookie == 7
    fds.close(link)
    before = fds.runs(runs)[0]
    LIBC.getpid()
    assert fds.runs(runs)[0] == before
    # and the return probe, through the ioctls this time
    ret_event = fds.keep(kb.perf_event_open_uprobe(path, offset, retprobe=True, pid=os.getpid()))
    kb.perf_event_set_bpf(ret_event, prog)
    kb.perf_event_enable(ret_event)
    LIBC.getpid()
    assert fds.runs(runs)[0] >= before + 1


def xdp_prog_id_on_lo() -> int | None:
    """The id of the XDP program ``ip`` sees on ``lo`` (None if there is none)."""
    (link,) = run_json("ip", "-j", "-d", "link", "show", "lo")
    xdp = link.get("xdp")
    if not xdp:
        return None
    prog = xdp.get("prog") or {}
    return int(prog["id"]) if "id" in prog else None


def send_udp_over_lo(count: int = 1) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(count):
            tx.sendto(b"ping", rx.getsockname())


@pytest.mark.kernel
def test_xdp_link_on_lo(kb: KernelBackend, fds: Fds) -> None:
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.XDP, counter(runs, XDP_PASS), name="xdp_lo")
    link = fds.keep(kb.link_create(prog, socket.if_nametoindex("lo"), int(AttachType.XDP)))
    prog_id = kb.prog_info(prog).id
    assert xdp_prog_id_on_lo() == prog_id
    info = kb.link_info(link)
    assert (info.type, info.prog_id) == (LINK_XDP, prog_id)
    send_udp_over_lo(5)
    assert eventually(lambda: fds.runs(runs)[0] >= 5)
    # a second XDP link on the same device is refused while the first holds it
    other = fds.prog(ProgramType.XDP, returning(XDP_PASS))
    assert errno_of(lambda: kb.link_create(other, socket.if_nametoindex("lo"), int(AttachType.XDP))) == \
        errno.EBUSY
    fds.close(link)
    assert xdp_prog_id_on_lo() is None


@pytest.mark.kernel
def test_link_detach_leaves_a_defunct_link(kb: KernelBackend, fds: Fds) -> None:
    prog = fds.prog(ProgramType.XDP, returning(XDP_PASS), name="xdp_detach")
    link = fds.keep(kb.link_create(prog, socket.if_nametoindex("lo"), int(AttachType.XDP)))
    assert xdp_prog_id_on_lo() == kb.prog_info(prog).id
    kb.link_detach(link)
    assert xdp_prog_id_on_lo() is None
    assert kb.link_info(link).type == LINK_XDP  # still open, still a link
    fds.close(link)


@pytest.mark.kernel
def test_cgroup_skb_attach_and_detach(kb: KernelBackend, fds: Fds, cgroup: Path) -> None:
    runs = fds.counter_map()
    prog = fds.prog(ProgramType.CGROUP_SKB, counter(runs, 1), name="cg_egress",
                    expected_attach_type=int(AttachType.CGROUP_INET_EGRESS))
    cg = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        kb.prog_attach(prog, cg, int(AttachType.CGROUP_INET_EGRESS))
        prog_id = kb.prog_info(prog).id
        shown = run_json("bpftool", "cgroup", "show", str(cgroup), "-j")
        assert [p["id"] for p in shown] == [prog_id]
        # a process in the cgroup sends one datagram: the program sees it leave
        script = (f"import os, socket; open({str(cgroup / 'cgroup.procs')!r}, 'w').write(str(os.getpid())); "
                  "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', 9))")
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert fds.runs(runs)[0] >= 1
        kb.prog_detach(prog, cg, int(AttachType.CGROUP_INET_EGRESS))
        assert not run_json("bpftool", "cgroup", "show", str(cgroup), "-j")
        assert errno_of(lambda: kb.prog_detach(prog, cg, int(AttachType.CGROUP_INET_EGRESS))) == errno.ENOENT
        # the same through a link
        link = fds.keep(kb.link_create(prog, cg, int(AttachType.CGROUP_INET_EGRESS)))
        assert kb.link_info(link).type == LINK_CGROUP
        assert [p["id"] for p in run_json("bpftool", "cgroup", "show", str(cgroup), "-j")] == [prog_id]
        fds.close(link)
        assert not run_json("bpftool", "cgroup", "show", str(cgroup), "-j")
    finally:
        os.close(cg)


@pytest.mark.kernel
def test_socket_filter_attach(kb: KernelBackend, fds: Fds) -> None:
    drop = fds.prog(ProgramType.SOCKET_FILTER, returning(0), name="drop_all")
    keep = fds.prog(ProgramType.SOCKET_FILTER, returning(-1), name="keep_all")  # 0xffffffff bytes
    xdp = fds.prog(ProgramType.XDP, returning(XDP_PASS))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        kb.socket_attach_filter(rx.fileno(), drop)
        tx.sendto(b"dropped", rx.getsockname())
        with pytest.raises(TimeoutError):
            rx.recv(100)
        kb.socket_detach_filter(rx.fileno())
        tx.sendto(b"received", rx.getsockname())
        assert rx.recv(100) == b"received"
        assert errno_of(lambda: kb.socket_detach_filter(rx.fileno())) == errno.ENOENT
        kb.socket_attach_filter(rx.fileno(), keep)
        tx.sendto(b"kept", rx.getsockname())
        assert rx.recv(100) == b"kept"
        assert errno_of(lambda: kb.socket_attach_filter(rx.fileno(), xdp)) == errno.EINVAL
    assert errno_of(lambda: kb.socket_attach_filter(0x7FFF, drop)) == errno.EBADF


@pytest.mark.kernel
def test_link_create_rejects_misplaced_arguments(kb: KernelBackend) -> None:
    with pytest.raises(ValueError, match="cookie"):
        kb.link_create(0, 1, int(AttachType.XDP), cookie=1)
    with pytest.raises(ValueError, match="target_btf_id"):
        kb.link_create(0, 1, int(AttachType.PERF_EVENT), target_btf_id=5)
    assert errno_of(lambda: kb.link_create(0x7FFF, 1, int(AttachType.XDP))) == errno.EBADF
