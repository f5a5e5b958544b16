"""Kernel BPF enumerations with the kernel's numeric values and cilium/ebpf's names.

Every enum here is an :class:`enum.IntEnum` or :class:`enum.IntFlag` whose values are
those of ``include/uapi/linux/bpf.h`` as of **Linux 6.18** (``MapType.PERCPU_HASH == 5``),
so a member can be handed to the kernel as it is.

Printed form (the stable JSON form)
-----------------------------------
``str(member)`` (and ``format(member)``/f-strings without a format spec) is the name
cilium/ebpf's Go ``String()`` method prints:

* :class:`MapType`: ``"Hash"``, ``"PerCPUHash"``, ``"LRUCPUHash"``, ...
* :class:`ProgramType`: ``"SocketFilter"``, ``"XDP"``, ``"Tracing"``, ...
* :class:`AttachType`: cilium's stringer trims the ``Attach`` prefix of the Go
  constants, so ``AttachType.XDP`` prints ``"XDP"`` and ``AttachType.TRACE_FENTRY``
  prints ``"TraceFEntry"``; value 0 prints ``"None"`` (see :class:`AttachType`).
* :class:`PinType`: ``"PinNone"``, ``"PinByName"``.
* :class:`UpdateFlags`: cilium's ``MapUpdateFlags`` constants (``"UpdateNoExist"``).
* :class:`MapFlags`, :class:`ProgramFlags`: the kernel macro names, which is also how
  cilium spells them (``"BPF_F_NO_PREALLOC"``); combinations are joined with ``|``.

Members cilium does not have (``AttachType.TRACE_UPROBE_SESSION``) get a name in the
same style (``"TraceUprobeSession"``).

``cls.from_str(text)`` is the inverse.  It accepts, in this order of preference:

1. the printed name exactly (case-sensitive);
2. the Python member name, the kernel name (``BPF_MAP_TYPE_HASH``) or the Go identifier
   (``AttachXDP``), exactly;
3. any of the above case-insensitively (so libbpf/bpftool spellings such as
   ``"percpu_hash"`` or ``"sched_cls"`` work too) -- unless that is ambiguous.  The only
   ambiguity in Linux 6.18 is cilium's own pair ``"CGroupStorage"`` (19,
   ``BPF_MAP_TYPE_CGROUP_STORAGE``) vs ``"CgroupStorage"`` (32, ``BPF_MAP_TYPE_CGRP_STORAGE``):
   those two must be given with their exact case (or by Python/kernel name);
4. the unknown-value forms ``"MapType(34)"`` / ``"UNKNOWN_34"`` or a bare integer
   (``"34"``, ``"0x22"``).

Anything else raises :class:`ValueError` naming the valid names.

Values newer than this table
----------------------------
:class:`MapType`, :class:`ProgramType` and :class:`AttachType` accept any ``uint32``:
``MapType(34)`` returns a cached pseudo-member (``name == "UNKNOWN_34"``) that prints
``"MapType(34)"`` like cilium does, so objects built for newer kernels can still be
read and loaded.  Values outside ``0 <= v < 2**32`` raise :class:`ValueError`.
The flag types keep unknown bits and print them in hex (``"BPF_F_MMAPABLE|0x80000"``).

Each member also knows the first kernel release that has it (``min_kernel``, a
``(major, minor)`` tuple, ``None`` for UNSPEC/NONE and unknown values); the versions
are those cilium/ebpf's feature probes and the kernel history give.
"""

from __future__ import annotations

import re
from enum import IntEnum, IntFlag
from typing import Self

__all__ = [
    "IPROUTE2_PIN_GLOBAL_NS",
    "IPROUTE2_PIN_NONE",
    "IPROUTE2_PIN_OBJECT_NS",
    "AttachType",
    "KernelVersion",
    "MapFlags",
    "MapType",
    "PinType",
    "ProgramFlags",
    "ProgramType",
    "UpdateFlags",
]

KernelVersion = tuple[int, int]
"""A kernel release as ``(major, minor)``, e.g. ``(5, 8)`` for Linux 5.8."""

_U32_LIMIT = 1 << 32
_UNKNOWN_RE = re.compile(r"^\s*([A-Za-z]+)\((0[xX][0-9a-fA-F]+|\d+)\)\s*$")
_UNKNOWN_NAME_RE = re.compile(r"^UNKNOWN_(\d+)$", re.IGNORECASE)


def _parse_int(text: str) -> int | None:
    """Parse a decimal or ``0x`` hexadecimal non-negative integer, or return None."""
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t, 10)
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", t):
        return int(t, 16)
    return None


class _NameIndex:
    """Name -> value lookup tables for one enum class (built once, read-only after)."""

    __slots__ = ("exact", "folded", "primary", "type_name")

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        # exact spelling -> value; first registration wins (printed names come first)
        self.exact: dict[str, int] = {}
        # casefolded spelling -> set of values it may denote
        self.folded: dict[str, set[int]] = {}
        # printed names of canonical members, in value order, for error messages
        self.primary: list[str] = []

    def add(self, spelling: str, value: int) -> None:
        self.exact.setdefault(spelling, value)
        self.folded.setdefault(spelling.casefold(), set()).add(value)

    def resolve(self, text: str) -> int:
        """Return the value *text* names, or raise ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"{self.type_name}.from_str() needs a str, not {type(text).__name__}")
        t = text.strip()
        if t in self.exact:
            return self.exact[t]
        candidates = self.folded.get(t.casefold())
        if candidates is not None:
            if len(candidates) == 1:
                return next(iter(candidates))
            folded = t.casefold()
            names = sorted(n for n, v in self.exact.items() if v in candidates and n.casefold() == folded)
            raise ValueError(
                f"ambiguous {self.type_name} name {text!r}: matches {', '.join(names)} "
                "when case is ignored; spell it with its exact case"
            )
        m = _UNKNOWN_RE.match(t)
        u = _UNKNOWN_NAME_RE.match(t)
        if m is not None and m.group(1) == self.type_name:
            number: int | None = int(m.group(2), 0)
        elif u is not None:
            number = int(u.group(1))
        else:
            number = _parse_int(t)
        if number is not None:
            return number
        raise ValueError(
            f"unknown {self.type_name} name {text!r}; valid names are: {', '.join(self.primary)}"
        )


_INDEXES: dict[type, _NameIndex] = {}


class _KernelEnum(IntEnum):
    """Base of the kernel enums: a member is declared as ``NAME = value, "GoName", (major, minor)``."""

    _go_name: str
    _min_kernel: KernelVersion | None

    def __new__(cls, value: int, go_name: str = "", min_kernel: KernelVersion | None = None) -> Self:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj._go_name = go_name
        obj._min_kernel = min_kernel
        return obj

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        # Accept any uint32 the kernel might hand back (types newer than this table)
        # as a cached pseudo-member, like cilium's plain uint32 types do.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _U32_LIMIT:
            obj = int.__new__(cls, value)
            obj._value_ = value
            obj._name_ = f"UNKNOWN_{value}"
            obj._go_name = f"{cls.__name__}({value})"
            obj._min_kernel = None
            member = cls._value2member_map_.setdefault(value, obj)
            assert isinstance(member, cls)
            return member
        return None

    def __str__(self) -> str:
        return self._go_name

    def __format__(self, format_spec: str) -> str:
        if not format_spec:
            return str(self)
        return format(int(self), format_spec)

    @property
    def min_kernel(self) -> KernelVersion | None:
        """First Linux release with this value as ``(major, minor)``; None if not applicable/unknown."""
        return self._min_kernel

    @property
    def is_known(self) -> bool:
        """False for pseudo-members made for values newer than this table (e.g. ``MapType(34)``)."""
        return self._name_ in type(self).__members__

    @classmethod
    def from_str(cls, name: str) -> Self:
        """Parse a printed name, Python member name, kernel name, Go name or number (see module doc).

        Raises ValueError (naming the valid names) if *name* is none of those.
        """
        return cls(_INDEXES[cls].resolve(name))


def _register_enum(cls: type[_KernelEnum], kernel_prefix: str, extra: dict[str, int] | None = None) -> None:
    """Build the from_str() name index of *cls*."""
    index = _NameIndex(cls.__name__)
    for member in cls:  # canonical members: printed names first
        index.add(str(member), int(member))
        index.primary.append(str(member))
    for py_name, member in cls.__members__.items():  # includes aliases
        index.add(py_name, int(member))
        index.add(kernel_prefix + py_name, int(member))
    for spelling, value in (extra or {}).items():
        index.add(spelling, value)
    _INDEXES[cls] = index


class MapType(_KernelEnum):
    """``enum bpf_map_type`` (Linux 6.18 ends at ``ARENA``; ``INSN_ARRAY`` is 6.19+ and not listed).

    Each member's first kernel release is its ``min_kernel`` (``MapType.RINGBUF.min_kernel
    == (5, 8)``).  ``CGROUP_STORAGE_DEPRECATED`` / ``PERCPU_CGROUP_STORAGE_DEPRECATED`` are the kernel's
    newer spellings of values 19 and 21 and are aliases here.  Note cilium's printed
    names ``"CGroupStorage"`` (19) and ``"CgroupStorage"`` (32, ``CGRP_STORAGE``) differ
    only in case; ``from_str`` needs their exact case.
    """

    UNSPEC = 0, "UnspecifiedMap", None
    HASH = 1, "Hash", (3, 19)
    ARRAY = 2, "Array", (3, 19)
    PROG_ARRAY = 3, "ProgramArray", (4, 2)
    PERF_EVENT_ARRAY = 4, "PerfEventArray", (4, 3)
    PERCPU_HASH = 5, "PerCPUHash", (4, 6)
    PERCPU_ARRAY = 6, "PerCPUArray", (4, 6)
    STACK_TRACE = 7, "StackTrace", (4, 6)
    CGROUP_ARRAY = 8, "CGroupArray", (4, 8)
    LRU_HASH = 9, "LRUHash", (4, 10)
    LRU_PERCPU_HASH = 10, "LRUCPUHash", (4, 10)
    LPM_TRIE = 11, "LPMTrie", (4, 11)
    ARRAY_OF_MAPS = 12, "ArrayOfMaps", (4, 12)
    HASH_OF_MAPS = 13, "HashOfMaps", (4, 12)
    DEVMAP = 14, "DevMap", (4, 14)
    SOCKMAP = 15, "SockMap", (4, 14)
    CPUMAP = 16, "CPUMap", (4, 15)
    XSKMAP = 17, "XSKMap", (4, 18)
    SOCKHASH = 18, "SockHash", (4, 18)
    CGROUP_STORAGE = 19, "CGroupStorage", (4, 19)
    REUSEPORT_SOCKARRAY = 20, "ReusePortSockArray", (4, 19)
    PERCPU_CGROUP_STORAGE = 21, "PerCPUCGroupStorage", (4, 20)
    QUEUE = 22, "Queue", (4, 20)
    STACK = 23, "Stack", (4, 20)
    SK_STORAGE = 24, "SkStorage", (5, 2)
    DEVMAP_HASH = 25, "DevMapHash", (5, 4)
    STRUCT_OPS = 26, "StructOpsMap", (5, 6)
    RINGBUF = 27, "RingBuf", (5, 8)
    INODE_STORAGE = 28, "InodeStorage", (5, 10)
    TASK_STORAGE = 29, "TaskStorage", (5, 11)
    BLOOM_FILTER = 30, "BloomFilter", (5, 16)
    USER_RINGBUF = 31, "UserRingbuf", (6, 1)
    CGRP_STORAGE = 32, "CgroupStorage", (6, 2)
    ARENA = 33, "Arena", (6, 9)
    # Aliases (the kernel's current spellings of 19 and 21).
    CGROUP_STORAGE_DEPRECATED = 19, "CGroupStorage", (4, 19)
    PERCPU_CGROUP_STORAGE_DEPRECATED = 21, "PerCPUCGroupStorage", (4, 20)

    @property
    def kernel_name(self) -> str:
        """The ``BPF_MAP_TYPE_*`` name of this value (``"BPF_MAP_TYPE_UNKNOWN_34"`` for unknown ones)."""
        return "BPF_MAP_TYPE_" + self._name_

    @property
    def has_per_cpu_value(self) -> bool:
        """True if user space sees one value slot per possible CPU (``round_up(value_size, 8)`` each).

        PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH and PERCPU_CGROUP_STORAGE.
        """
        return self in _PER_CPU_TYPES

    @property
    def can_store_map(self) -> bool:
        """True if values are map fds on update and map ids on lookup (ARRAY_OF_MAPS, HASH_OF_MAPS)."""
        return self in _MAP_IN_MAP_TYPES

    @property
    def can_store_program(self) -> bool:
        """True if values are program fds on update and program ids on lookup (PROG_ARRAY)."""
        return self is MapType.PROG_ARRAY

    @property
    def can_store_map_or_program(self) -> bool:
        """True for PROG_ARRAY, ARRAY_OF_MAPS and HASH_OF_MAPS: ELF contents name programs/maps.

        Unlike cilium's ``canStoreMapOrProgram`` this excludes STRUCT_OPS, whose value is a
        kernel struct filled in by the struct_ops machinery, not a ``MapKV`` of names.
        """
        return self.can_store_map or self.can_store_program

    @property
    def is_map_in_map(self) -> bool:
        """True for ARRAY_OF_MAPS and HASH_OF_MAPS (Linux 4.12), which need an inner map template."""
        return self in _MAP_IN_MAP_TYPES

    @property
    def has_key(self) -> bool:
        """False for maps created with ``key_size == 0`` and never given a key.

        QUEUE, STACK, BLOOM_FILTER, RINGBUF, USER_RINGBUF -- and ARENA, which the kernel
        also requires to have ``key_size == 0`` (and ``value_size == 0``).
        """
        return self not in _KEYLESS_TYPES

    @property
    def allows_delete(self) -> bool:
        """False where ``BPF_MAP_DELETE_ELEM`` always fails.

        ARRAY and PERCPU_ARRAY (EINVAL: array slots always exist), CGROUP_STORAGE and
        PERCPU_CGROUP_STORAGE (EINVAL), QUEUE and STACK (EINVAL, use pop), BLOOM_FILTER,
        RINGBUF, USER_RINGBUF and ARENA (not supported).  The fd arrays (PROG_ARRAY,
        PERF_EVENT_ARRAY, CGROUP_ARRAY, ARRAY_OF_MAPS) do allow deleting a slot.
        """
        return self not in _NO_DELETE_TYPES


_PER_CPU_TYPES = frozenset(
    {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE}
)
_MAP_IN_MAP_TYPES = frozenset({MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})
_KEYLESS_TYPES = frozenset(
    {MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF, MapType.USER_RINGBUF, MapType.ARENA}
)
_NO_DELETE_TYPES = frozenset(
    {
        MapType.ARRAY,
        MapType.PERCPU_ARRAY,
        MapType.CGROUP_STORAGE,
        MapType.PERCPU_CGROUP_STORAGE,
        MapType.QUEUE,
        MapType.STACK,
        MapType.BLOOM_FILTER,
        MapType.RINGBUF,
        MapType.USER_RINGBUF,
        MapType.ARENA,
    }
)
_register_enum(MapType, "BPF_MAP_TYPE_")


class ProgramType(_KernelEnum):
    """``enum bpf_prog_type`` (complete as of Linux 6.18, which ends at ``NETFILTER``).

    Each member's first kernel release is its ``min_kernel`` (``ProgramType.LSM.min_kernel
    == (5, 7)``).
    """

    UNSPEC = 0, "UnspecifiedProgram", None
    SOCKET_FILTER = 1, "SocketFilter", (3, 19)
    KPROBE = 2, "Kprobe", (4, 1)
    SCHED_CLS = 3, "SchedCLS", (4, 1)
    SCHED_ACT = 4, "SchedACT", (4, 1)
    TRACEPOINT = 5, "TracePoint", (4, 7)
    XDP = 6, "XDP", (4, 8)
    PERF_EVENT = 7, "PerfEvent", (4, 9)
    CGROUP_SKB = 8, "CGroupSKB", (4, 10)
    CGROUP_SOCK = 9, "CGroupSock", (4, 10)
    LWT_IN = 10, "LWTIn", (4, 10)
    LWT_OUT = 11, "LWTOut", (4, 10)
    LWT_XMIT = 12, "LWTXmit", (4, 10)
    SOCK_OPS = 13, "SockOps", (4, 13)
    SK_SKB = 14, "SkSKB", (4, 14)
    CGROUP_DEVICE = 15, "CGroupDevice", (4, 15)
    SK_MSG = 16, "SkMsg", (4, 17)
    RAW_TRACEPOINT = 17, "RawTracepoint", (4, 17)
    CGROUP_SOCK_ADDR = 18, "CGroupSockAddr", (4, 17)
    LWT_SEG6LOCAL = 19, "LWTSeg6Local", (4, 18)
    LIRC_MODE2 = 20, "LircMode2", (4, 18)
    SK_REUSEPORT = 21, "SkReuseport", (4, 19)
    FLOW_DISSECTOR = 22, "FlowDissector", (4, 20)
    CGROUP_SYSCTL = 23, "CGroupSysctl", (5, 2)
    RAW_TRACEPOINT_WRITABLE = 24, "RawTracepointWritable", (5, 2)
    CGROUP_SOCKOPT = 25, "CGroupSockopt", (5, 3)
    TRACING = 26, "Tracing", (5, 5)
    STRUCT_OPS = 27, "StructOps", (5, 6)
    EXT = 28, "Extension", (5, 6)
    LSM = 29, "LSM", (5, 7)
    SK_LOOKUP = 30, "SkLookup", (5, 9)
    SYSCALL = 31, "Syscall", (5, 14)
    NETFILTER = 32, "Netfilter", (6, 4)

    @property
    def kernel_name(self) -> str:
        """The ``BPF_PROG_TYPE_*`` name of this value."""
        return "BPF_PROG_TYPE_" + self._name_


_register_enum(ProgramType, "BPF_PROG_TYPE_")


class AttachType(_KernelEnum):
    """``enum bpf_attach_type`` (Linux 6.18 ends at ``TRACE_UPROBE_SESSION``), plus ``NONE``.

    Each member's first kernel release is its ``min_kernel`` (``AttachType.TCX_INGRESS.min_kernel
    == (6, 6)``; None for NONE, whose alias CGROUP_INET_INGRESS dates from 4.10).

    Aliasing of value 0: the kernel's value 0 is ``BPF_CGROUP_INET_INGRESS``, but 0 is
    also what every program without an expected attach type carries.  As in cilium
    (``AttachNone = 0``), ``NONE`` is the canonical member for 0 and
    ``CGROUP_INET_INGRESS`` is an alias of it: ``AttachType.CGROUP_INET_INGRESS is
    AttachType.NONE``, ``AttachType(0) is AttachType.NONE`` and both print ``"None"``
    (cilium prints ``None`` for ``AttachCGroupInetIngress`` as well).  Whether 0 means
    "ingress" follows from the program type (CGROUP_SKB), not from the attach type.
    ``from_str`` accepts ``"None"``, ``"CGroupInetIngress"``, ``"AttachCGroupInetIngress"``
    and ``"BPF_CGROUP_INET_INGRESS"`` for it; ``kernel_name`` is ``BPF_CGROUP_INET_INGRESS``.
    BPF_TRACE_FSESSION and the tracing-multi types are 7.0+ and not listed.
    """

    NONE = 0, "None", None
    CGROUP_INET_INGRESS = 0, "None", (4, 10)  # alias of NONE, see class docstring
    CGROUP_INET_EGRESS = 1, "CGroupInetEgress", (4, 10)
    CGROUP_INET_SOCK_CREATE = 2, "CGroupInetSockCreate", (4, 10)
    CGROUP_SOCK_OPS = 3, "CGroupSockOps", (4, 13)
    SK_SKB_STREAM_PARSER = 4, "SkSKBStreamParser", (4, 14)
    SK_SKB_STREAM_VERDICT = 5, "SkSKBStreamVerdict", (4, 14)
    CGROUP_DEVICE = 6, "CGroupDevice", (4, 15)
    SK_MSG_VERDICT = 7, "SkMsgVerdict", (4, 17)
    CGROUP_INET4_BIND = 8, "CGroupInet4Bind", (4, 17)
    CGROUP_INET6_BIND = 9, "CGroupInet6Bind", (4, 17)
    CGROUP_INET4_CONNECT = 10, "CGroupInet4Connect", (4, 17)
    CGROUP_INET6_CONNECT = 11, "CGroupInet6Connect", (4, 17)
    CGROUP_INET4_POST_BIND = 12, "CGroupInet4PostBind", (4, 17)
    CGROUP_INET6_POST_BIND = 13, "CGroupInet6PostBind", (4, 17)
    CGROUP_UDP4_SENDMSG = 14, "CGroupUDP4Sendmsg", (4, 18)
    CGROUP_UDP6_SENDMSG = 15, "CGroupUDP6Sendmsg", (4, 18)
    LIRC_MODE2 = 16, "LircMode2", (4, 18)
    FLOW_DISSECTOR = 17, "FlowDissector", (4, 20)
    CGROUP_SYSCTL = 18, "CGroupSysctl", (5, 2)
    CGROUP_UDP4_RECVMSG = 19, "CGroupUDP4Recvmsg", (5, 2)
    CGROUP_UDP6_RECVMSG = 20, "CGroupUDP6Recvmsg", (5, 2)
    CGROUP_GETSOCKOPT = 21, "CGroupGetsockopt", (5, 3)
    CGROUP_SETSOCKOPT = 22, "CGroupSetsockopt", (5, 3)
    TRACE_RAW_TP = 23, "TraceRawTp", (5, 5)
    TRACE_FENTRY = 24, "TraceFEntry", (5, 5)
    TRACE_FEXIT = 25, "TraceFExit", (5, 5)
    MODIFY_RETURN = 26, "ModifyReturn", (5, 7)
    LSM_MAC = 27, "LSMMac", (5, 7)
    TRACE_ITER = 28, "TraceIter", (5, 8)
    CGROUP_INET4_GETPEERNAME = 29, "CgroupInet4GetPeername", (5, 8)
    CGROUP_INET6_GETPEERNAME = 30, "CgroupInet6GetPeername", (5, 8)
    CGROUP_INET4_GETSOCKNAME = 31, "CgroupInet4GetSockname", (5, 8)
    CGROUP_INET6_GETSOCKNAME = 32, "CgroupInet6GetSockname", (5, 8)
    XDP_DEVMAP = 33, "XDPDevMap", (5, 8)
    CGROUP_INET_SOCK_RELEASE = 34, "CgroupInetSockRelease", (5, 9)
    XDP_CPUMAP = 35, "XDPCPUMap", (5, 9)
    SK_LOOKUP = 36, "SkLookup", (5, 9)
    XDP = 37, "XDP", (5, 9)
    SK_SKB_VERDICT = 38, "SkSKBVerdict", (5, 13)
    SK_REUSEPORT_SELECT = 39, "SkReuseportSelect", (5, 14)
    SK_REUSEPORT_SELECT_OR_MIGRATE = 40, "SkReuseportSelectOrMigrate", (5, 14)
    PERF_EVENT = 41, "PerfEvent", (5, 15)
    TRACE_KPROBE_MULTI = 42, "TraceKprobeMulti", (5, 18)
    LSM_CGROUP = 43, "LSMCgroup", (6, 0)
    STRUCT_OPS = 44, "StructOps", (6, 4)
    NETFILTER = 45, "Netfilter", (6, 4)
    TCX_INGRESS = 46, "TCXIngress", (6, 6)
    TCX_EGRESS = 47, "TCXEgress", (6, 6)
    TRACE_UPROBE_MULTI = 48, "TraceUprobeMulti", (6, 6)
    CGROUP_UNIX_CONNECT = 49, "CgroupUnixConnect", (6, 7)
    CGROUP_UNIX_SENDMSG = 50, "CgroupUnixSendmsg", (6, 7)
    CGROUP_UNIX_RECVMSG = 51, "CgroupUnixRecvmsg", (6, 7)
    CGROUP_UNIX_GETPEERNAME = 52, "CgroupUnixGetpeername", (6, 7)
    CGROUP_UNIX_GETSOCKNAME = 53, "CgroupUnixGetsockname", (6, 7)
    NETKIT_PRIMARY = 54, "NetkitPrimary", (6, 7)
    NETKIT_PEER = 55, "NetkitPeer", (6, 7)
    TRACE_KPROBE_SESSION = 56, "TraceKprobeSession", (6, 10)
    TRACE_UPROBE_SESSION = 57, "TraceUprobeSession", (6, 13)  # not in cilium; same style

    @property
    def kernel_name(self) -> str:
        """The ``BPF_*`` name of this value (``BPF_CGROUP_INET_INGRESS`` for 0)."""
        if self._value_ == 0:
            return "BPF_CGROUP_INET_INGRESS"
        return "BPF_" + self._name_


_register_enum(
    AttachType,
    "BPF_",
    extra={
        # Go identifiers: cilium's constants are the printed names with an "Attach" prefix.
        **{"Attach" + str(m): int(m) for m in AttachType},
        "CGroupInetIngress": 0,
        "AttachCGroupInetIngress": 0,
    },
)
# "BPF_NONE" is not a kernel name; keep the index honest.
_INDEXES[AttachType].exact.pop("BPF_NONE", None)
_INDEXES[AttachType].folded.pop("bpf_none", None)


class PinType(_KernelEnum):
    """How a map is pinned in bpffs; libbpf's ``enum libbpf_pin_type`` numbering (Linux-independent).

    This is the value of a BTF map definition's ``__uint(pinning, ...)``:
    ``NONE = 0`` (``LIBBPF_PIN_NONE``) and ``BY_NAME = 1`` (``LIBBPF_PIN_BY_NAME``: pin at
    ``<pin_path>/<map name>`` and reuse an existing compatible pin).

    iproute2's legacy ``struct bpf_elf_map.pinning`` uses a different numbering:
    ``PIN_NONE = 0``, ``PIN_OBJECT_NS = 1`` (pin in a per-object directory
    ``<bpffs>/tc/<object hash>/``), ``PIN_GLOBAL_NS = 2`` (pin in ``<bpffs>/tc/globals/``);
    values above 2 name custom sub-directories from ``/etc/iproute2/bpf_pinning``.
    Note that iproute2's 1 is *not* libbpf's 1.  :meth:`from_iproute2` converts: 0 -> NONE,
    1 and 2 -> BY_NAME (the directory, which a PinType cannot express, is the loader's
    ``pin_path``); other values raise ValueError.
    """

    NONE = 0, "PinNone", None
    BY_NAME = 1, "PinByName", None

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        # Pinning values are validated: libbpf rejects anything but NONE and BY_NAME.
        return None

    @classmethod
    def from_iproute2(cls, value: int) -> PinType:
        """Convert an iproute2 ``PIN_*`` value (see class docstring) to a PinType."""
        if value == IPROUTE2_PIN_NONE:
            return cls.NONE
        if value in (IPROUTE2_PIN_OBJECT_NS, IPROUTE2_PIN_GLOBAL_NS):
            return cls.BY_NAME
        raise ValueError(
            f"unsupported iproute2 pinning value {value}: only PIN_NONE (0), PIN_OBJECT_NS (1) "
            "and PIN_GLOBAL_NS (2) are understood"
        )


IPROUTE2_PIN_NONE = 0
"""iproute2's ``PIN_NONE``: the map is not pinned."""
IPROUTE2_PIN_OBJECT_NS = 1
"""iproute2's ``PIN_OBJECT_NS``: pinned in a per-object directory (differs from libbpf's 1)."""
IPROUTE2_PIN_GLOBAL_NS = 2
"""iproute2's ``PIN_GLOBAL_NS``: pinned in the global ``tc/globals`` directory."""

_register_enum(PinType, "LIBBPF_PIN_")


# --------------------------------------------------------------------------- flags


class _FlagInfo:
    """Printed names, accepted spellings and kernel versions of one flag class."""

    __slots__ = ("index", "min_kernel", "names", "zero_name")

    def __init__(
        self, index: _NameIndex, names: dict[int, str], zero_name: str, min_kernel: dict[int, KernelVersion]
    ) -> None:
        self.index = index
        self.names = names  # single bit -> printed name, ascending
        self.zero_name = zero_name
        self.min_kernel = min_kernel


_FLAG_INFO: dict[type, _FlagInfo] = {}


class _KernelFlag(IntFlag):
    """Base of the flag types: printed as ``NAME|NAME|0xUNKNOWN`` and parsed back by from_str()."""

    def __str__(self) -> str:
        info = _FLAG_INFO[type(self)]
        value = int(self)
        if value == 0:
            return info.zero_name
        parts: list[str] = []
        rest = value
        for bit, name in info.names.items():
            if value & bit:
                parts.append(name)
                rest &= ~bit
        if rest:
            parts.append(hex(rest))
        return "|".join(parts)

    def __format__(self, format_spec: str) -> str:
        if not format_spec:
            return str(self)
        return format(int(self), format_spec)

    @property
    def min_kernel(self) -> KernelVersion | None:
        """Newest first-release among the set bits as ``(major, minor)``; None if any bit is unknown.

        For a zero value this is the version of the zero member where there is one
        (``UpdateFlags.ANY``), else None.
        """
        info = _FLAG_INFO[type(self)]
        value = int(self)
        if value == 0:
            return info.min_kernel.get(0)
        versions: list[KernelVersion] = []
        for bit in range(value.bit_length()):
            mask = 1 << bit
            if value & mask:
                version = info.min_kernel.get(mask)
                if version is None:
                    return None
                versions.append(version)
        return max(versions)

    @classmethod
    def from_str(cls, text: str) -> Self:
        """Parse ``"NAME|NAME|0x10"`` (printed names, Python/kernel names, numbers; any case).

        Raises ValueError naming the valid names for an unknown part.
        """
        info = _FLAG_INFO[cls]
        if not isinstance(text, str):
            raise TypeError(f"{cls.__name__}.from_str() needs a str, not {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"empty {cls.__name__} string")
        value = 0
        for part in text.split("|"):
            value |= info.index.resolve(part)
        return cls(value)


def _register_flag(
    cls: type[_KernelFlag],
    printed: dict[str, str],
    kernel: dict[str, str],
    zero_name: str,
    versions: dict[str, KernelVersion],
) -> None:
    """Build the printed-name table and from_str() index of a flag class.

    *printed* and *kernel* map Python member names to their printed and kernel names;
    *versions* maps Python member names to their first kernel release.
    """
    index = _NameIndex(cls.__name__)
    names: dict[int, str] = {}
    min_kernel: dict[int, KernelVersion] = {}
    members = sorted(cls.__members__.items(), key=lambda kv: int(kv[1]))
    for py_name, member in members:
        value = int(member)
        if value != 0 and value & (value - 1) == 0:
            names.setdefault(value, printed[py_name])
        if py_name in versions:
            min_kernel.setdefault(value, versions[py_name])
    index.add(zero_name, 0)
    index.primary.append(zero_name)
    for py_name, member in members:
        index.add(printed[py_name], int(member))
        if int(member) != 0:
            index.primary.append(printed[py_name])
    for py_name, member in members:
        index.add(py_name, int(member))
        index.add(kernel[py_name], int(member))
    _FLAG_INFO[cls] = _FlagInfo(index, names, zero_name, min_kernel)


class UpdateFlags(_KernelFlag):
    """``flags`` of ``BPF_MAP_UPDATE_ELEM`` (and lookup for LOCK); printed like cilium's MapUpdateFlags.

    ``ANY`` (0) creates or updates, ``NOEXIST`` only creates (EEXIST if present),
    ``EXIST`` only updates (ENOENT if absent); ``LOCK`` (Linux 5.1) copies the value
    under its ``bpf_spin_lock``.  NOEXIST and EXIST are mutually exclusive for the kernel.
    (``BPF_F_CPU``/``BPF_F_ALL_CPUS`` are 7.0+ and not listed.)
    """

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    LOCK = 4


_register_flag(
    UpdateFlags,
    printed={"ANY": "UpdateAny", "NOEXIST": "UpdateNoExist", "EXIST": "UpdateExist", "LOCK": "UpdateLock"},
    kernel={"ANY": "BPF_ANY", "NOEXIST": "BPF_NOEXIST", "EXIST": "BPF_EXIST", "LOCK": "BPF_F_LOCK"},
    zero_name="UpdateAny",
    versions={"ANY": (3, 19), "NOEXIST": (3, 19), "EXIST": (3, 19), "LOCK": (5, 1)},
)


def _register_bpf_f_flag(cls: type[_KernelFlag], versions: dict[str, KernelVersion]) -> None:
    """:func:`_register_flag` for a ``BPF_F_*`` flag class: each member is printed (and known
    to the kernel) as ``BPF_F_<member>``, and 0 as ``"0"``."""
    bpf_f_names = {name: "BPF_F_" + name for name in cls.__members__}
    _register_flag(cls, printed=bpf_f_names, kernel=bpf_f_names, zero_name="0", versions=versions)


class MapFlags(_KernelFlag):
    """``map_flags`` of ``BPF_MAP_CREATE`` (Linux 6.18); printed as the ``BPF_F_*`` names, 0 as ``"0"``.

    First kernels: NO_PREALLOC 4.6, NO_COMMON_LRU 4.10, NUMA_NODE 4.14, RDONLY/WRONLY 4.15,
    STACK_BUILD_ID 4.17, ZERO_SEED 5.0, RDONLY_PROG/WRONLY_PROG 5.2, CLONE 5.4,
    MMAPABLE 5.5, PRESERVE_ELEMS 5.10, INNER_MAP 5.10, LINK 6.4, PATH_FD 6.5,
    VTYPE_BTF_OBJ_FD 6.9, TOKEN_FD 6.9, SEGV_ON_FAULT 6.9, NO_USER_CONV 6.9.
    RDONLY/WRONLY/PATH_FD are also ``file_flags`` of ``BPF_OBJ_GET``/``BPF_OBJ_PIN``.
    (``BPF_F_RB_OVERWRITE``, 1 << 19, is 6.19+ and kept only as an unknown bit.)
    """

    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12
    LINK = 1 << 13
    PATH_FD = 1 << 14
    VTYPE_BTF_OBJ_FD = 1 << 15
    TOKEN_FD = 1 << 16
    SEGV_ON_FAULT = 1 << 17
    NO_USER_CONV = 1 << 18


_register_bpf_f_flag(
    MapFlags,
    versions={
        "NO_PREALLOC": (4, 6),
        "NO_COMMON_LRU": (4, 10),
        "NUMA_NODE": (4, 14),
        "RDONLY": (4, 15),
        "WRONLY": (4, 15),
        "STACK_BUILD_ID": (4, 17),
        "ZERO_SEED": (5, 0),
        "RDONLY_PROG": (5, 2),
        "WRONLY_PROG": (5, 2),
        "CLONE": (5, 4),
        "MMAPABLE": (5, 5),
        "PRESERVE_ELEMS": (5, 10),
        "INNER_MAP": (5, 10),
        "LINK": (6, 4),
        "PATH_FD": (6, 5),
        "VTYPE_BTF_OBJ_FD": (6, 9),
        "TOKEN_FD": (6, 9),
        "SEGV_ON_FAULT": (6, 9),
        "NO_USER_CONV": (6, 9),
    },
)


class ProgramFlags(_KernelFlag):
    """``prog_flags`` of ``BPF_PROG_LOAD`` (Linux 6.18); printed as the ``BPF_F_*`` names, 0 as ``"0"``.

    First kernels: STRICT_ALIGNMENT 4.12, ANY_ALIGNMENT 5.0, TEST_RND_HI32 5.3,
    TEST_STATE_FREQ 5.3, SLEEPABLE 5.10, XDP_HAS_FRAGS 5.18, XDP_DEV_BOUND_ONLY 6.3,
    TEST_REG_INVARIANTS 6.7, TOKEN_FD 6.9.  TEST_* are verifier self-test flags.
    """

    STRICT_ALIGNMENT = 1 << 0
    ANY_ALIGNMENT = 1 << 1
    TEST_RND_HI32 = 1 << 2
    TEST_STATE_FREQ = 1 << 3
    SLEEPABLE = 1 << 4
    XDP_HAS_FRAGS = 1 << 5
    XDP_DEV_BOUND_ONLY = 1 << 6
    TEST_REG_INVARIANTS = 1 << 7
    TOKEN_FD = 1 << 16


_register_bpf_f_flag(
    ProgramFlags,
    versions={
        "STRICT_ALIGNMENT": (4, 12),
        "ANY_ALIGNMENT": (5, 0),
        "TEST_RND_HI32": (5, 3),
        "TEST_STATE_FREQ": (5, 3),
        "SLEEPABLE": (5, 10),
        "XDP_HAS_FRAGS": (5, 18),
        "XDP_DEV_BOUND_ONLY": (6, 3),
        "TEST_REG_INVARIANTS": (6, 7),
        "TOKEN_FD": (6, 9),
    },
)
