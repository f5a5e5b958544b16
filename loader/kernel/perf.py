"""Perf events for attaching BPF programs: ``perf_event_open(2)`` and its ioctls through ``ctypes``.

Tracepoints, kprobes and uprobes reach a BPF program through a perf event: the event is
opened here, then either linked to the program (``BPF_LINK_CREATE`` with
``BPF_PERF_EVENT``, 5.15+) or given it with the ``PERF_EVENT_IOC_SET_BPF`` ioctl and
enabled with ``PERF_EVENT_IOC_ENABLE`` (the older path, which works everywhere).

- a tracepoint event is ``PERF_TYPE_TRACEPOINT`` with the event's id read from tracefs
  (``<tracefs>/events/<category>/<name>/id``); tracefs is looked for in
  :data:`TRACEFS_ROOTS`, in order;
- kprobes and uprobes use the ``kprobe``/``uprobe`` PMUs of
  ``/sys/bus/event_source/devices`` (4.17+): the PMU's ``type`` file gives the event
  type, its ``format/retprobe`` file the config bit that turns a probe into a return probe.

Every event is opened with ``PERF_FLAG_FD_CLOEXEC``. Failures are ``OSError`` with the
kernel's errno and a message naming the event (or the file that was missing).

``struct perf_event_attr`` is laid out as in ``include/uapi/linux/perf_event.h`` up to
``config3`` (``PERF_ATTR_SIZE_VER8``, 136 bytes); the bit-field word after
``read_format`` is a plain ``u64`` here with the bits named in :class:`AttrFlag`.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import fcntl
import os
import re
from enum import IntFlag
from typing import Final

from loader.kernel import syscall as _sc

__all__ = [
    "EVENT_SOURCE_DEVICES", "PERF_COUNT_SW_BPF_OUTPUT", "PERF_FLAG_FD_CLOEXEC", "PERF_SAMPLE_RAW",
    "PERF_TYPE_SOFTWARE", "PERF_TYPE_TRACEPOINT", "TRACEFS_ROOTS", "AttrFlag", "PerfEventAttr", "disable",
    "enable", "open_bpf_output", "open_kprobe", "open_tracepoint", "open_uprobe", "perf_event_open",
    "perf_event_open_number", "pmu_config_shift", "pmu_type", "set_bpf", "tracefs_root", "tracepoint_id",
]

u32 = ctypes.c_uint32
s32 = ctypes.c_int32
u16 = ctypes.c_uint16
u64 = ctypes.c_uint64

#: ``__NR_perf_event_open`` by ``platform.machine()`` (the generic table: 241).
_PERF_EVENT_OPEN_NUMBERS: Final[dict[str, int]] = {
    "x86_64": 298,
    "amd64": 298,
    "i386": 336,
    "i486": 336,
    "i586": 336,
    "i686": 336,
    "aarch64": 241,
    "arm64": 241,
    "armv6l": 364,
    "armv7l": 364,
    "armv8l": 364,
    "riscv64": 241,
    "loongarch64": 241,
    "ppc64": 319,
    "ppc64le": 319,
    "s390x": 331,
}

#: ``PERF_TYPE_TRACEPOINT``: ``config`` is a tracepoint id from tracefs.
PERF_TYPE_TRACEPOINT: Final = 2
#: ``PERF_FLAG_FD_CLOEXEC``: the new fd is close-on-exec.
PERF_FLAG_FD_CLOEXEC: Final = 1 << 3

#: Where tracefs is looked for, in order (the second is debugfs's automount of it).
TRACEFS_ROOTS: tuple[str, ...] = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
#: Where the dynamic PMUs (``kprobe``, ``uprobe``) describe themselves.
EVENT_SOURCE_DEVICES: str = "/sys/bus/event_source/devices"

# ioctl numbers: _IO('$', 0), _IO('$', 1) and _IOW('$', 8, __u32). The direction bits of
# _IOW differ on the architectures with their own ioctl encoding (powerpc, mips, sparc, alpha).
_IOC_WRITE_BITS: Final = 0x80000000 if _sc.MACHINE.lower().startswith(("ppc", "powerpc", "mips", "sparc",
                                                                      "alpha")) else 0x40000000
PERF_EVENT_IOC_ENABLE: Final = 0x2400
PERF_EVENT_IOC_DISABLE: Final = 0x2401
PERF_EVENT_IOC_SET_BPF: Final = _IOC_WRITE_BITS | (4 << 16) | (ord("$") << 8) | 8

#: ``PERF_ATTR_SIZE_VER8``: the size of :class:`PerfEventAttr`.
PERF_ATTR_SIZE: Final = 136


class AttrFlag(IntFlag):
    """Bits of ``perf_event_attr``'s bit-field word (offset 40) that this module uses."""

    DISABLED = 1 << 0
    INHERIT = 1 << 1
    EXCLUDE_USER = 1 << 4
    EXCLUDE_KERNEL = 1 << 5


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``config3`` (136 bytes).

    Unions are represented by one of their names: ``sample_period`` (``sample_freq``),
    ``wakeup_events`` (``wakeup_watermark``), ``config1`` (``bp_addr``, ``kprobe_func``,
    ``uprobe_path``) and ``config2`` (``bp_len``, ``kprobe_addr``, ``probe_offset``).
    """

    _fields_ = (
        ("type", u32),                # 0
        ("size", u32),                # 4
        ("config", u64),              # 8
        ("sample_period", u64),       # 16
        ("sample_type", u64),         # 24
        ("read_format", u64),         # 32
        ("flags", u64),               # 40: disabled:1, inherit:1, ... (AttrFlag)
        ("wakeup_events", u32),       # 48
        ("bp_type", u32),             # 52
        ("config1", u64),             # 56: kprobe_func / uprobe_path
        ("config2", u64),             # 64: kprobe_addr / probe_offset
        ("branch_sample_type", u64),  # 72
        ("sample_regs_user", u64),    # 80
        ("sample_stack_user", u32),   # 88
        ("clockid", s32),             # 92
        ("sample_regs_intr", u64),    # 96
        ("aux_watermark", u32),       # 104
        ("sample_max_stack", u16),    # 108
        ("_reserved_2", u16),         # 110
        ("aux_sample_size", u32),     # 112
        ("aux_action", u32),          # 116
        ("sig_data", u64),            # 120
        ("config3", u64),             # 128
    )


def perf_event_open_number() -> int:
    """``__NR_perf_event_open`` of this machine; ``OSError(ENOSYS)`` where it is not known."""
    nr = _PERF_EVENT_OPEN_NUMBERS.get(_sc.MACHINE.lower())
    if nr is None:
        raise OSError(errno_codes.ENOSYS, f"perf_event_open: unknown syscall number on {_sc.MACHINE!r}")
    return nr


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, *, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC, what: str = "") -> int:
    """``perf_event_open(&attr, pid, cpu, group_fd, flags)``: the new event's fd.

    ``attr.size`` is set here. ``pid == -1`` and ``cpu == -1`` together are refused by
    the kernel (EINVAL): an event is per task, per CPU or both. ``what`` names the event
    in the ``OSError`` on failure.
    """
    nr = perf_event_open_number()
    attr.size = PERF_ATTR_SIZE
    # Explicit C types: syscall() reads every variadic argument as a long.
    ret: int = _sc.raw_syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_long(pid), ctypes.c_long(cpu),
                               ctypes.c_long(group_fd), ctypes.c_ulong(flags))
    if ret < 0:
        code = ctypes.get_errno() or errno_codes.EIO
        raise OSError(code, f"{_sc.strerror(code)}: perf_event_open({what or f'type {attr.type}'})")
    return ret


def _check_component(kind: str, value: str) -> None:
    if not value or "/" in value or value in (".", "..") or "\0" in value:
        raise ValueError(f"invalid tracepoint {kind} {value!r}")


def tracefs_root() -> str:
    """The first of :data:`TRACEFS_ROOTS` that holds tracefs's ``events`` directory.

    ``FileNotFoundError`` naming the places looked at when tracefs is not mounted.
    """
    for root in TRACEFS_ROOTS:
        if os.path.isdir(os.path.join(root, "events")):
            return root
    looked = " or ".join(os.path.join(root, "events") for root in TRACEFS_ROOTS)
    first = TRACEFS_ROOTS[0] if TRACEFS_ROOTS else "/sys/kernel/tracing"
    raise FileNotFoundError(
        errno_codes.ENOENT,
        f"tracefs is not mounted: no {looked} (mount it with: mount -t tracefs tracefs {first})", first)


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint ``category/name``: ``<tracefs>/events/<category>/<name>/id``.

    ``FileNotFoundError`` naming the path when tracefs is not mounted or there is no
    such tracepoint; ``ValueError`` for names that are not one path component each.
    """
    _check_component("category", category)
    _check_component("name", name)
    path = os.path.join(tracefs_root(), "events", category, name, "id")
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno_codes.ENOENT, f"no tracepoint {category}/{name}: {path} does not exist",
                                path) from None
    try:
        return int(text.strip())
    except ValueError:
        raise OSError(errno_codes.EINVAL, f"{path}: not a tracepoint id: {text.strip()!r}", path) from None


def _pmu_file(pmu: str, *parts: str) -> str:
    path = os.path.join(EVENT_SOURCE_DEVICES, pmu, *parts)
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        raise OSError(errno_codes.EOPNOTSUPP,
                      f"the kernel has no {pmu} PMU: {path} does not exist"
                      + (" (a kernel without CONFIG_KPROBES?)" if pmu == "kprobe" else
                         " (a kernel without CONFIG_UPROBE_EVENTS?)" if pmu == "uprobe" else ""),
                      path) from None


def pmu_type(pmu: str) -> int:
    """The ``perf_event_attr.type`` of dynamic PMU ``pmu`` (``kprobe``, ``uprobe``).

    ``OSError(EOPNOTSUPP)`` naming the file when the kernel has no such PMU.
    """
    text = _pmu_file(pmu, "type")
    try:
        return int(text)
    except ValueError:
        raise OSError(errno_codes.EINVAL, f"{pmu} PMU type is not a number: {text!r}") from None


_FORMAT = re.compile(r"config:(\d+)(?:-(\d+))?")


def pmu_config_shift(pmu: str, field: str) -> int:
    """The first ``config`` bit of format field ``field`` of PMU ``pmu``.

    ``config:0`` gives 0, ``config:32-63`` 32.
    """
    text = _pmu_file(pmu, "format", field)
    m = _FORMAT.fullmatch(text)
    if m is None:
        raise OSError(errno_codes.EINVAL, f"{pmu} PMU format {field!r} is not config:N[-M]: {text!r}")
    return int(m.group(1))


def open_tracepoint(category: str, name: str, *, pid: int = -1, cpu: int = 0) -> int:
    """A ``PERF_TYPE_TRACEPOINT`` event for tracepoint ``category/name``."""
    tp_id = tracepoint_id(category, name)
    attr = PerfEventAttr()
    attr.type = PERF_TYPE_TRACEPOINT
    attr.config = tp_id
    attr.sample_period = 1
    attr.wakeup_events = 1
    return perf_event_open(attr, pid, cpu, what=f"tracepoint {category}/{name}")


def open_kprobe(func: str, *, retprobe: bool = False, offset: int = 0, pid: int = -1, cpu: int = 0) -> int:
    """A ``kprobe`` PMU event on kernel function ``func`` (+ ``offset``), a kretprobe with ``retprobe``."""
    if not func or "\0" in func:
        raise ValueError(f"invalid kernel function name {func!r}")
    if offset < 0:
        raise ValueError(f"kprobe offset must not be negative, not {offset}")
    attr = PerfEventAttr()
    attr.type = pmu_type("kprobe")
    if retprobe:
        attr.config = 1 << pmu_config_shift("kprobe", "retprobe")
    symbol = ctypes.create_string_buffer(func.encode())  # NUL-terminated; alive until the call returns
    attr.config1 = ctypes.addressof(symbol)
    attr.config2 = offset
    kind = "kretprobe" if retprobe else "kprobe"
    return perf_event_open(attr, pid, cpu, what=f"{kind} {func}+{offset:#x}")


def open_uprobe(path: str, offset: int, *, retprobe: bool = False, pid: int = -1, cpu: int | None = None,
                ref_ctr_offset: int = 0) -> int:
    """A ``uprobe`` PMU event at file offset ``offset`` of the executable or library ``path``.

    ``pid`` -1 probes every process (on ``cpu`` 0 by default, which still fires on all
    CPUs for a BPF program); a pid probes that process only (on any CPU by default).
    ``ref_ctr_offset`` is the file offset of a USDT semaphore (4.20+).
    """
    raw = os.fsencode(path)
    if not raw or b"\0" in raw:
        raise ValueError(f"invalid uprobe path {path!r}")
    if offset < 0 or ref_ctr_offset < 0:
        raise ValueError(f"uprobe offsets must not be negative ({offset}, {ref_ctr_offset})")
    attr = PerfEventAttr()
    attr.type = pmu_type("uprobe")
    config = 0
    if retprobe:
        config |= 1 << pmu_config_shift("uprobe", "retprobe")
    if ref_ctr_offset:
        config |= ref_ctr_offset << pmu_config_shift("uprobe", "ref_ctr_offset")
    attr.config = config
    buf = ctypes.create_string_buffer(raw)  # NUL-terminated; alive until the call returns
    attr.config1 = ctypes.addressof(buf)
    attr.config2 = offset
    if cpu is None:
        cpu = 0 if pid == -1 else -1
    kind = "uretprobe" if retprobe else "uprobe"
    return perf_event_open(attr, pid, cpu, what=f"{kind} {path}:{offset:#x}")


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as err:
        code = err.errno or errno_codes.EIO
        raise OSError(code, f"{_sc.strerror(code)}: {what}") from None


def set_bpf(perf_fd: int, prog_fd: int) -> None:
    """``ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd)``: run the program when the event fires."""
    _ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd, f"PERF_EVENT_IOC_SET_BPF (perf event {perf_fd}, "
                                                      f"program {prog_fd})")


def enable(perf_fd: int) -> None:
    """``ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0)``."""
    _ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0, f"PERF_EVENT_IOC_ENABLE (perf event {perf_fd})")


def disable(perf_fd: int) -> None:
    """``ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0)``."""
    _ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0, f"PERF_EVENT_IOC_DISABLE (perf event {perf_fd})")


#: ``PERF_TYPE_SOFTWARE``: ``config`` is a ``perf_sw_ids`` value.
PERF_TYPE_SOFTWARE: Final = 1
#: ``PERF_COUNT_SW_BPF_OUTPUT``: the event ``bpf_perf_event_output`` writes samples to (4.4+).
PERF_COUNT_SW_BPF_OUTPUT: Final = 10
#: ``PERF_SAMPLE_RAW``: samples carry the raw data (``u32 size`` + bytes) a BPF program gave.
PERF_SAMPLE_RAW: Final = 1 << 10


def open_bpf_output(cpu: int, *, wakeup_events: int = 1) -> int:
    """A ``PERF_COUNT_SW_BPF_OUTPUT`` software event on ``cpu`` (every process): a perf ring's source.

    Stored in a ``PERF_EVENT_ARRAY`` at index ``cpu``, it receives what
    ``bpf_perf_event_output`` emits on that CPU as ``PERF_RECORD_SAMPLE`` records with
    ``PERF_SAMPLE_RAW`` data, in the ring buffer mmapped from the returned fd. A reader
    polling the fd is woken every ``wakeup_events`` samples. ``ENODEV`` for an offline CPU.
    """
    if cpu < 0:
        raise ValueError(f"a BPF output event needs a CPU, not {cpu}")
    if wakeup_events < 1:
        raise ValueError(f"wakeup_events must be at least 1, not {wakeup_events}")
    attr = PerfEventAttr()
    attr.type = PERF_TYPE_SOFTWARE
    attr.config = PERF_COUNT_SW_BPF_OUTPUT
    attr.sample_period = 1
    attr.sample_type = PERF_SAMPLE_RAW
    attr.wakeup_events = wakeup_events
    return perf_event_open(attr, -1, cpu, what=f"BPF output event on CPU {cpu}")
