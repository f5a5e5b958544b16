"""Tests for ebpfspec.enums: kernel values, printed names, parsing, helpers.

Expected values are written out here from include/uapi/linux/bpf.h (Linux 6.18) and
cilium/ebpf's stringer output, not derived from the module under test.
"""

from __future__ import annotations

import copy
import pickle
from enum import Enum
from typing import Any

import pytest

from ebpfspec.enums import (
    IPROUTE2_PIN_GLOBAL_NS,
    IPROUTE2_PIN_NONE,
    IPROUTE2_PIN_OBJECT_NS,
    AttachType,
    MapFlags,
    MapType,
    PinType,
    ProgramFlags,
    ProgramType,
    UpdateFlags,
)

# (python name, kernel value, printed name, first kernel)
MAP_TYPES: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("UNSPEC", 0, "UnspecifiedMap", None),
    ("HASH", 1, "Hash", (3, 19)),
    ("ARRAY", 2, "Array", (3, 19)),
    ("PROG_ARRAY", 3, "ProgramArray", (4, 2)),
    ("PERF_EVENT_ARRAY", 4, "PerfEventArray", (4, 3)),
    ("PERCPU_HASH", 5, "PerCPUHash", (4, 6)),
    ("PERCPU_ARRAY", 6, "PerCPUArray", (4, 6)),
    ("STACK_TRACE", 7, "StackTrace", (4, 6)),
    ("CGROUP_ARRAY", 8, "CGroupArray", (4, 8)),
    ("LRU_HASH", 9, "LRUHash", (4, 10)),
    ("LRU_PERCPU_HASH", 10, "LRUCPUHash", (4, 10)),
    ("LPM_TRIE", 11, "LPMTrie", (4, 11)),
    ("ARRAY_OF_MAPS", 12, "ArrayOfMaps", (4, 12)),
    ("HASH_OF_MAPS", 13, "HashOfMaps", (4, 12)),
    ("DEVMAP", 14, "DevMap", (4, 14)),
    ("SOCKMAP", 15, "SockMap", (4, 14)),
    ("CPUMAP", 16, "CPUMap", (4, 15)),
    ("XSKMAP", 17, "XSKMap", (4, 18)),
    ("SOCKHASH", 18, "SockHash", (4, 18)),
    ("CGROUP_STORAGE", 19, "CGroupStorage", (4, 19)),
    ("REUSEPORT_SOCKARRAY", 20, "ReusePortSockArray", (4, 19)),
    ("PERCPU_CGROUP_STORAGE", 21, "PerCPUCGroupStorage", (4, 20)),
    ("QUEUE", 22, "Queue", (4, 20)),
    ("STACK", 23, "Stack", (4, 20)),
    ("SK_STORAGE", 24, "SkStorage", (5, 2)),
    ("DEVMAP_HASH", 25, "DevMapHash", (5, 4)),
    ("STRUCT_OPS", 26, "StructOpsMap", (5, 6)),
    ("RINGBUF", 27, "RingBuf", (5, 8)),
    ("INODE_STORAGE", 28, "InodeStorage", (5, 10)),
    ("TASK_STORAGE", 29, "TaskStorage", (5, 11)),
    ("BLOOM_FILTER", 30, "BloomFilter", (5, 16)),
    ("USER_RINGBUF", 31, "UserRingbuf", (6, 1)),
    ("CGRP_STORAGE", 32, "CgroupStorage", (6, 2)),
    ("ARENA", 33, "Arena", (6, 9)),
]

PROGRAM_TYPES: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("UNSPEC", 0, "UnspecifiedProgram", None),
    ("SOCKET_FILTER", 1, "SocketFilter", (3, 19)),
    ("KPROBE", 2, "Kprobe", (4, 1)),
    ("SCHED_CLS", 3, "SchedCLS", (4, 1)),
    ("SCHED_ACT", 4, "SchedACT", (4, 1)),
    ("TRACEPOINT", 5, "TracePoint", (4, 7)),
    ("XDP", 6, "XDP", (4, 8)),
    ("PERF_EVENT", 7, "PerfEvent", (4, 9)),
    ("CGROUP_SKB", 8, "CGroupSKB", (4, 10)),
    ("CGROUP_SOCK", 9, "CGroupSock", (4, 10)),
    ("LWT_IN", 10, "LWTIn", (4, 10)),
    ("LWT_OUT", 11, "LWTOut", (4, 10)),
    ("LWT_XMIT", 12, "LWTXmit", (4, 10)),
    ("SOCK_OPS", 13, "SockOps", (4, 13)),
    ("SK_SKB", 14, "SkSKB", (4, 14)),
    ("CGROUP_DEVICE", 15, "CGroupDevice", (4, 15)),
    ("SK_MSG", 16, "SkMsg", (4, 17)),
    ("RAW_TRACEPOINT", 17, "RawTracepoint", (4, 17)),
    ("CGROUP_SOCK_ADDR", 18, "CGroupSockAddr", (4, 17)),
    ("LWT_SEG6LOCAL", 19, "LWTSeg6Local", (4, 18)),
    ("LIRC_MODE2", 20, "LircMode2", (4, 18)),
    ("SK_REUSEPORT", 21, "SkReuseport", (4, 19)),
    ("FLOW_DISSECTOR", 22, "FlowDissector", (4, 20)),
    ("CGROUP_SYSCTL", 23, "CGroupSysctl", (5, 2)),
    ("RAW_TRACEPOINT_WRITABLE", 24, "RawTracepointWritable", (5, 2)),
    ("CGROUP_SOCKOPT", 25, "CGroupSockopt", (5, 3)),
    ("TRACING", 26, "Tracing", (5, 5)),
    ("STRUCT_OPS", 27, "StructOps", (5, 6)),
    ("EXT", 28, "Extension", (5, 6)),
    ("LSM", 29, "LSM", (5, 7)),
    ("SK_LOOKUP", 30, "SkLookup", (5, 9)),
    ("SYSCALL", 31, "Syscall", (5, 14)),
    ("NETFILTER", 32, "Netfilter", (6, 4)),
]

# Value 0 is listed as NONE (canonical) -- CGROUP_INET_INGRESS is its alias.
ATTACH_TYPES: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("NONE", 0, "None", None),
    ("CGROUP_INET_EGRESS", 1, "CGroupInetEgress", (4, 10)),
    ("CGROUP_INET_SOCK_CREATE", 2, "CGroupInetSockCreate", (4, 10)),
    ("CGROUP_SOCK_OPS", 3, "CGroupSockOps", (4, 13)),
    ("SK_SKB_STREAM_PARSER", 4, "SkSKBStreamParser", (4, 14)),
    ("SK_SKB_STREAM_VERDICT", 5, "SkSKBStreamVerdict", (4, 14)),
    ("CGROUP_DEVICE", 6, "CGroupDevice", (4, 15)),
    ("SK_MSG_VERDICT", 7, "SkMsgVerdict", (4, 17)),
    ("CGROUP_INET4_BIND", 8, "CGroupInet4Bind", (4, 17)),
    ("CGROUP_INET6_BIND", 9, "CGroupInet6Bind", (4, 17)),
    ("CGROUP_INET4_CONNECT", 10, "CGroupInet4Connect", (4, 17)),
    ("CGROUP_INET6_CONNECT", 11, "CGroupInet6Connect", (4, 17)),
    ("CGROUP_INET4_POST_BIND", 12, "CGroupInet4PostBind", (4, 17)),
    ("CGROUP_INET6_POST_BIND", 13, "CGroupInet6PostBind", (4, 17)),
    ("CGROUP_UDP4_SENDMSG", 14, "CGroupUDP4Sendmsg", (4, 18)),
    ("CGROUP_UDP6_SENDMSG", 15, "CGroupUDP6Sendmsg", (4, 18)),
    ("LIRC_MODE2", 16, "LircMode2", (4, 18)),
    ("FLOW_DISSECTOR", 17, "FlowDissector", (4, 20)),
    ("CGROUP_SYSCTL", 18, "CGroupSysctl", (5, 2)),
    ("CGROUP_UDP4_RECVMSG", 19, "CGroupUDP4Recvmsg", (5, 2)),
    ("CGROUP_UDP6_RECVMSG", 20, "CGroupUDP6Recvmsg", (5, 2)),
    ("CGROUP_GETSOCKOPT", 21, "CGroupGetsockopt", (5, 3)),
    ("CGROUP_SETSOCKOPT", 22, "CGroupSetsockopt", (5, 3)),
    ("TRACE_RAW_TP", 23, "TraceRawTp", (5, 5)),
    ("TRACE_FENTRY", 24, "TraceFEntry", (5, 5)),
    ("TRACE_FEXIT", 25, "TraceFExit", (5, 5)),
    ("MODIFY_RETURN", 26, "ModifyReturn", (5, 7)),
    ("LSM_MAC", 27, "LSMMac", (5, 7)),
    ("TRACE_ITER", 28, "TraceIter", (5, 8)),
    ("CGROUP_INET4_GETPEERNAME", 29, "CgroupInet4GetPeername", (5, 8)),
    ("CGROUP_INET6_GETPEERNAME", 30, "CgroupInet6GetPeername", (5, 8)),
    ("CGROUP_INET4_GETSOCKNAME", 31, "CgroupInet4GetSockname", (5, 8)),
    ("CGROUP_INET6_GETSOCKNAME", 32, "CgroupInet6GetSockname", (5, 8)),
    ("XDP_DEVMAP", 33, "XDPDevMap", (5, 8)),
    ("CGROUP_INET_SOCK_RELEASE", 34, "CgroupInetSockRelease", (5, 9)),
    ("XDP_CPUMAP", 35, "XDPCPUMap", (5, 9)),
    ("SK_LOOKUP", 36, "SkLookup", (5, 9)),
    ("XDP", 37, "XDP", (5, 9)),
    ("SK_SKB_VERDICT", 38, "SkSKBVerdict", (5, 13)),
    ("SK_REUSEPORT_SELECT", 39, "SkReuseportSelect", (5, 14)),
    ("SK_REUSEPORT_SELECT_OR_MIGRATE", 40, "SkReuseportSelectOrMigrate", (5, 14)),
    ("PERF_EVENT", 41, "PerfEvent", (5, 15)),
    ("TRACE_KPROBE_MULTI", 42, "TraceKprobeMulti", (5, 18)),
    ("LSM_CGROUP", 43, "LSMCgroup", (6, 0)),
    ("STRUCT_OPS", 44, "StructOps", (6, 4)),
    ("NETFILTER", 45, "Netfilter", (6, 4)),
    ("TCX_INGRESS", 46, "TCXIngress", (6, 6)),
    ("TCX_EGRESS", 47, "TCXEgress", (6, 6)),
    ("TRACE_UPROBE_MULTI", 48, "TraceUprobeMulti", (6, 6)),
    ("CGROUP_UNIX_CONNECT", 49, "CgroupUnixConnect", (6, 7)),
    ("CGROUP_UNIX_SENDMSG", 50, "CgroupUnixSendmsg", (6, 7)),
    ("CGROUP_UNIX_RECVMSG", 51, "CgroupUnixRecvmsg", (6, 7)),
    ("CGROUP_UNIX_GETPEERNAME", 52, "CgroupUnixGetpeername", (6, 7)),
    ("CGROUP_UNIX_GETSOCKNAME", 53, "CgroupUnixGetsockname", (6, 7)),
    ("NETKIT_PRIMARY", 54, "NetkitPrimary", (6, 7)),
    ("NETKIT_PEER", 55, "NetkitPeer", (6, 7)),
    ("TRACE_KPROBE_SESSION", 56, "TraceKprobeSession", (6, 10)),
    ("TRACE_UPROBE_SESSION", 57, "TraceUprobeSession", (6, 13)),
]

PIN_TYPES: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("NONE", 0, "PinNone", None),
    ("BY_NAME", 1, "PinByName", None),
]

ENUM_TABLES: list[tuple[Any, list[tuple[str, int, str, tuple[int, int] | None]]]] = [
    (MapType, MAP_TYPES),
    (ProgramType, PROGRAM_TYPES),
    (AttachType, ATTACH_TYPES),
    (PinType, PIN_TYPES),
]

ENUM_ROWS = [(cls, *row) for cls, rows in ENUM_TABLES for row in rows]
ENUM_IDS = [f"{cls.__name__}.{row[0]}" for cls, rows in ENUM_TABLES for row in rows]

# (python name, value, printed name, first kernel)
UPDATE_FLAGS: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("ANY", 0, "UpdateAny", (3, 19)),
    ("NOEXIST", 1, "UpdateNoExist", (3, 19)),
    ("EXIST", 2, "UpdateExist", (3, 19)),
    ("LOCK", 4, "UpdateLock", (5, 1)),
]
MAP_FLAGS: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("NO_PREALLOC", 1 << 0, "BPF_F_NO_PREALLOC", (4, 6)),
    ("NO_COMMON_LRU", 1 << 1, "BPF_F_NO_COMMON_LRU", (4, 10)),
    ("NUMA_NODE", 1 << 2, "BPF_F_NUMA_NODE", (4, 14)),
    ("RDONLY", 1 << 3, "BPF_F_RDONLY", (4, 15)),
    ("WRONLY", 1 << 4, "BPF_F_WRONLY", (4, 15)),
    ("STACK_BUILD_ID", 1 << 5, "BPF_F_STACK_BUILD_ID", (4, 17)),
    ("ZERO_SEED", 1 << 6, "BPF_F_ZERO_SEED", (5, 0)),
    ("RDONLY_PROG", 1 << 7, "BPF_F_RDONLY_PROG", (5, 2)),
    ("WRONLY_PROG", 1 << 8, "BPF_F_WRONLY_PROG", (5, 2)),
    ("CLONE", 1 << 9, "BPF_F_CLONE", (5, 4)),
    ("MMAPABLE", 1 << 10, "BPF_F_MMAPABLE", (5, 5)),
    ("PRESERVE_ELEMS", 1 << 11, "BPF_F_PRESERVE_ELEMS", (5, 10)),
    ("INNER_MAP", 1 << 12, "BPF_F_INNER_MAP", (5, 10)),
    ("LINK", 1 << 13, "BPF_F_LINK", (6, 4)),
    ("PATH_FD", 1 << 14, "BPF_F_PATH_FD", (6, 5)),
    ("VTYPE_BTF_OBJ_FD", 1 << 15, "BPF_F_VTYPE_BTF_OBJ_FD", (6, 9)),
    ("TOKEN_FD", 1 << 16, "BPF_F_TOKEN_FD", (6, 9)),
    ("SEGV_ON_FAULT", 1 << 17, "BPF_F_SEGV_ON_FAULT", (6, 9)),
    ("NO_USER_CONV", 1 << 18, "BPF_F_NO_USER_CONV", (6, 9)),
]
PROGRAM_FLAGS: list[tuple[str, int, str, tuple[int, int] | None]] = [
    ("STRICT_ALIGNMENT", 1 << 0, "BPF_F_STRICT_ALIGNMENT", (4, 12)),
    ("ANY_ALIGNMENT", 1 << 1, "BPF_F_ANY_ALIGNMENT", (5, 0)),
    ("TEST_RND_HI32", 1 << 2, "BPF_F_TEST_RND_HI32", (5, 3)),
    ("TEST_STATE_FREQ", 1 << 3, "BPF_F_TEST_STATE_FREQ", (5, 3)),
    ("SLEEPABLE", 1 << 4, "BPF_F_SLEEPABLE", (5, 10)),
    ("XDP_HAS_FRAGS", 1 << 5, "BPF_F_XDP_HAS_FRAGS", (5, 18)),
    ("XDP_DEV_BOUND_ONLY", 1 << 6, "BPF_F_XDP_DEV_BOUND_ONLY", (6, 3)),
    ("TEST_REG_INVARIANTS", 1 << 7, "BPF_F_TEST_REG_INVARIANTS", (6, 7)),
    ("TOKEN_FD", 1 << 16, "BPF_F_TOKEN_FD", (6, 9)),
]
FLAG_TABLES: list[tuple[Any, list[tuple[str, int, str, tuple[int, int] | None]]]] = [
    (UpdateFlags, UPDATE_FLAGS),
    (MapFlags, MAP_FLAGS),
    (ProgramFlags, PROGRAM_FLAGS),
]
FLAG_ROWS = [(cls, *row) for cls, rows in FLAG_TABLES for row in rows]
FLAG_IDS = [f"{cls.__name__}.{row[0]}" for cls, rows in FLAG_TABLES for row in rows]


# ----------------------------------------------------------------- completeness


@pytest.mark.parametrize(("cls", "rows"), ENUM_TABLES + FLAG_TABLES, ids=lambda x: getattr(x, "__name__", ""))
def test_members_are_exactly_the_expected_ones(cls: Any, rows: list[tuple[str, int, str, Any]]) -> None:
    canonical = {name: int(member) for name, member in cls.__members__.items() if member.name == name}
    assert canonical == {name: value for name, value, _, _ in rows}


def test_aliases() -> None:
    # mypy treats aliases as distinct literals, hence the lookups by name.
    assert MapType["CGROUP_STORAGE_DEPRECATED"] is MapType.CGROUP_STORAGE
    assert MapType["PERCPU_CGROUP_STORAGE_DEPRECATED"] is MapType.PERCPU_CGROUP_STORAGE
    assert AttachType["CGROUP_INET_INGRESS"] is AttachType.NONE
    assert int(AttachType.CGROUP_INET_INGRESS) == 0
    assert AttachType(0) is AttachType.NONE
    assert str(AttachType.CGROUP_INET_INGRESS) == "None"
    assert AttachType.CGROUP_INET_INGRESS.kernel_name == "BPF_CGROUP_INET_INGRESS"
    for spelling in (
        "None",
        "none",
        "CGroupInetIngress",
        "AttachCGroupInetIngress",
        "AttachNone",
        "BPF_CGROUP_INET_INGRESS",
        "cgroup_inet_ingress",
        "CGROUP_INET_INGRESS",
    ):
        assert AttachType.from_str(spelling) is AttachType.NONE, spelling
    with pytest.raises(ValueError):
        AttachType.from_str("BPF_NONE")


def test_design_examples() -> None:
    assert int(MapType.PERCPU_HASH) == 5
    assert str(MapType.PERCPU_HASH) == "PerCPUHash"
    assert str(MapType.HASH) == "Hash"
    assert str(ProgramType.XDP) == "XDP"
    assert str(ProgramType.SOCKET_FILTER) == "SocketFilter"
    assert f"{MapType.PERCPU_HASH}" == "PerCPUHash"
    assert f"{MapType.PERCPU_HASH:d}" == "5"
    assert f"{MapType.PERCPU_HASH:>12}" == "           5"
    assert int(MapType.ARENA) == 33


# ----------------------------------------------------------------- enums, row by row


@pytest.mark.parametrize(("cls", "name", "value", "printed", "since"), ENUM_ROWS, ids=ENUM_IDS)
def test_enum_member(cls: Any, name: str, value: int, printed: str, since: tuple[int, int] | None) -> None:
    member = cls[name]
    assert int(member) == value
    assert cls(value) is member
    assert str(member) == printed
    assert format(member) == printed
    assert member.min_kernel == since
    assert member.is_known
    # round trips
    assert cls.from_str(printed) is member
    assert cls.from_str(str(member)) is member
    assert cls.from_str(name) is member
    assert cls.from_str(name.lower()) is member
    assert cls.from_str(f"  {printed}\t") is member
    assert cls.from_str(str(value)) is member
    assert cls.from_str(hex(value)) is member
    assert pickle.loads(pickle.dumps(member)) is member
    assert copy.deepcopy(member) is member


@pytest.mark.parametrize(("cls", "name", "value", "printed", "since"), ENUM_ROWS, ids=ENUM_IDS)
def test_enum_case_insensitive(cls: Any, name: str, value: int, printed: str, since: Any) -> None:
    member = cls(value)
    if cls is MapType and value in (19, 32):
        # cilium's "CGroupStorage" (19) vs "CgroupStorage" (32) differ only in case.
        with pytest.raises(ValueError, match="ambiguous"):
            cls.from_str(printed.upper())
        with pytest.raises(ValueError, match="ambiguous"):
            cls.from_str(printed.lower())
    else:
        assert cls.from_str(printed.upper()) is member
        assert cls.from_str(printed.lower()) is member


def test_kernel_names() -> None:
    assert MapType.HASH.kernel_name == "BPF_MAP_TYPE_HASH"
    assert MapType.from_str("BPF_MAP_TYPE_LRU_PERCPU_HASH") is MapType.LRU_PERCPU_HASH
    assert MapType.from_str("bpf_map_type_arena") is MapType.ARENA
    assert MapType.from_str("BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED") is MapType.CGROUP_STORAGE
    assert ProgramType.SCHED_CLS.kernel_name == "BPF_PROG_TYPE_SCHED_CLS"
    assert ProgramType.from_str("BPF_PROG_TYPE_EXT") is ProgramType.EXT
    assert ProgramType.from_str("sched_cls") is ProgramType.SCHED_CLS  # libbpf/bpftool spelling
    assert AttachType.TRACE_FENTRY.kernel_name == "BPF_TRACE_FENTRY"
    assert AttachType.from_str("BPF_XDP") is AttachType.XDP
    assert AttachType.from_str("AttachTraceFEntry") is AttachType.TRACE_FENTRY
    assert AttachType.from_str("AttachXDPCPUMap") is AttachType.XDP_CPUMAP
    assert PinType.from_str("LIBBPF_PIN_BY_NAME") is PinType.BY_NAME
    assert PinType.from_str("by_name") is PinType.BY_NAME


def test_cgroup_storage_pair_exact_case() -> None:
    assert MapType.from_str("CGroupStorage") is MapType.CGROUP_STORAGE
    assert MapType.from_str("CgroupStorage") is MapType.CGRP_STORAGE
    assert MapType.from_str("cgroup_storage") is MapType.CGROUP_STORAGE
    assert MapType.from_str("cgrp_storage") is MapType.CGRP_STORAGE
    with pytest.raises(ValueError, match="CGroupStorage, CgroupStorage"):
        MapType.from_str("cgroupstorage")


def test_no_other_case_insensitive_collisions() -> None:
    for cls, rows in ENUM_TABLES:
        seen: dict[str, int] = {}
        for name, value, printed, _ in rows:
            for spelling in (name, printed):
                key = spelling.casefold()
                if cls is MapType and key == "cgroupstorage":
                    continue
                assert seen.setdefault(key, value) == value, (cls, spelling)


@pytest.mark.parametrize("cls", [MapType, ProgramType, AttachType, PinType])
@pytest.mark.parametrize("bad", ["", "   ", "nope", "Hash2", "PerCPU Hash", "-1", "1.5", "BPF_"])
def test_from_str_rejects(cls: Any, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        cls.from_str(bad)
    if bad.strip() and bad != "-1":
        message = str(info.value)
        assert cls.__name__ in message
        assert "valid names" in message
        assert str(next(iter(cls))) in message


def test_from_str_error_lists_names() -> None:
    with pytest.raises(ValueError) as info:
        ProgramType.from_str("xdpp")
    message = str(info.value)
    for printed in ("SocketFilter", "XDP", "Tracing", "Netfilter", "UnspecifiedProgram"):
        assert printed in message


def test_from_str_needs_str() -> None:
    with pytest.raises(TypeError):
        MapType.from_str(1)  # type: ignore[arg-type]


# ----------------------------------------------------------------- unknown values


@pytest.mark.parametrize(
    ("cls", "value"),
    [(MapType, 34), (MapType, 2**32 - 1), (ProgramType, 33), (AttachType, 58), (AttachType, 0x1000_0001)],
)
def test_unknown_values_are_pseudo_members(cls: Any, value: int) -> None:
    member = cls(value)
    assert isinstance(member, cls)
    assert int(member) == value
    assert cls(value) is member  # cached
    assert str(member) == f"{cls.__name__}({value})"
    assert member.name == f"UNKNOWN_{value}"
    assert not member.is_known
    assert member.min_kernel is None
    assert cls.from_str(str(member)) is member
    assert cls.from_str(str(value)) is member
    assert cls.from_str(member.name) is member
    assert member not in list(cls)
    assert pickle.loads(pickle.dumps(member)) is member


def test_unknown_map_type_helpers_are_permissive() -> None:
    m = MapType(34)
    assert not m.has_per_cpu_value
    assert not m.can_store_map_or_program
    assert m.has_key
    assert m.allows_delete
    assert m.kernel_name == "BPF_MAP_TYPE_UNKNOWN_34"


@pytest.mark.parametrize("cls", [MapType, ProgramType, AttachType])
@pytest.mark.parametrize("value", [-1, 2**32, 2**64])
def test_out_of_range_values_rejected(cls: Any, value: int) -> None:
    with pytest.raises(ValueError):
        cls(value)
    with pytest.raises(ValueError):
        cls.from_str(str(value))


def test_other_type_name_in_unknown_form_rejected() -> None:
    with pytest.raises(ValueError):
        MapType.from_str("ProgramType(40)")


def test_call_looks_up_by_value_only() -> None:
    assert MapType(True) is MapType.HASH  # bool is an int equal to 1 -> a known value
    with pytest.raises(ValueError):
        MapType("Hash")  # type: ignore[arg-type]  # by value only; names go through from_str


def test_pin_type_is_strict() -> None:
    with pytest.raises(ValueError):
        PinType(2)
    with pytest.raises(ValueError):
        PinType.from_str("2")


def test_pin_type_iproute2() -> None:
    assert (IPROUTE2_PIN_NONE, IPROUTE2_PIN_OBJECT_NS, IPROUTE2_PIN_GLOBAL_NS) == (0, 1, 2)
    assert PinType.from_iproute2(0) is PinType.NONE
    assert PinType.from_iproute2(1) is PinType.BY_NAME
    assert PinType.from_iproute2(2) is PinType.BY_NAME
    with pytest.raises(ValueError, match="PIN_GLOBAL_NS"):
        PinType.from_iproute2(3)


def test_enums_are_int_enums() -> None:
    for cls in (MapType, ProgramType, AttachType, PinType):
        assert issubclass(cls, int)
        assert issubclass(cls, Enum)


# ----------------------------------------------------------------- MapType helpers


PER_CPU = {"PERCPU_HASH", "PERCPU_ARRAY", "LRU_PERCPU_HASH", "PERCPU_CGROUP_STORAGE"}
MAP_IN_MAP = {"ARRAY_OF_MAPS", "HASH_OF_MAPS"}
STORES_REFS = {"PROG_ARRAY", "ARRAY_OF_MAPS", "HASH_OF_MAPS"}
KEYLESS = {"QUEUE", "STACK", "BLOOM_FILTER", "RINGBUF", "USER_RINGBUF", "ARENA"}
NO_DELETE = {
    "ARRAY",
    "PERCPU_ARRAY",
    "CGROUP_STORAGE",
    "PERCPU_CGROUP_STORAGE",
    "QUEUE",
    "STACK",
    "BLOOM_FILTER",
    "RINGBUF",
    "USER_RINGBUF",
    "ARENA",
}


@pytest.mark.parametrize("name", [row[0] for row in MAP_TYPES])
def test_map_type_helpers(name: str) -> None:
    m = MapType[name]
    assert m.has_per_cpu_value == (name in PER_CPU)
    assert m.is_map_in_map == (name in MAP_IN_MAP)
    assert m.can_store_map == (name in MAP_IN_MAP)
    assert m.can_store_program == (name == "PROG_ARRAY")
    assert m.can_store_map_or_program == (name in STORES_REFS)
    assert m.has_key == (name not in KEYLESS)
    assert m.allows_delete == (name not in NO_DELETE)


def test_fd_arrays_allow_delete() -> None:
    for m in (MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS):
        assert m.allows_delete


# ----------------------------------------------------------------- flags


@pytest.mark.parametrize(("cls", "name", "value", "printed", "since"), FLAG_ROWS, ids=FLAG_IDS)
def test_flag_member(cls: Any, name: str, value: int, printed: str, since: tuple[int, int]) -> None:
    member = cls[name]
    assert int(member) == value
    assert cls(value) is member
    assert str(member) == printed
    assert f"{member}" == printed
    assert member.min_kernel == since
    assert cls.from_str(printed) is member
    assert cls.from_str(printed.lower()) is member
    assert cls.from_str(name) is member
    assert cls.from_str(name.lower()) is member
    assert cls.from_str(str(value)) is member
    assert cls.from_str(hex(value)) is member


def test_flag_kernel_names() -> None:
    assert UpdateFlags.from_str("BPF_NOEXIST") is UpdateFlags.NOEXIST
    assert UpdateFlags.from_str("BPF_ANY") is UpdateFlags.ANY
    assert UpdateFlags.from_str("BPF_EXIST") is UpdateFlags.EXIST
    assert UpdateFlags.from_str("BPF_F_LOCK") is UpdateFlags.LOCK
    assert MapFlags.from_str("BPF_F_INNER_MAP") is MapFlags.INNER_MAP
    assert ProgramFlags.from_str("bpf_f_sleepable") is ProgramFlags.SLEEPABLE


def test_flag_zero() -> None:
    assert str(UpdateFlags(0)) == "UpdateAny"
    assert UpdateFlags(0) is UpdateFlags.ANY
    assert str(MapFlags(0)) == "0"
    assert str(ProgramFlags(0)) == "0"
    assert MapFlags.from_str("0") == MapFlags(0)
    assert ProgramFlags.from_str("0") == ProgramFlags(0)
    assert UpdateFlags.from_str("0") is UpdateFlags.ANY
    assert MapFlags(0).min_kernel is None


def test_flag_combinations_round_trip() -> None:
    combo = MapFlags.MMAPABLE | MapFlags.NO_PREALLOC | MapFlags.RDONLY_PROG
    assert str(combo) == "BPF_F_NO_PREALLOC|BPF_F_RDONLY_PROG|BPF_F_MMAPABLE"
    assert MapFlags.from_str(str(combo)) == combo
    assert MapFlags.from_str("mmapable | no_prealloc|BPF_F_RDONLY_PROG") == combo
    assert combo.min_kernel == (5, 5)
    upd = UpdateFlags.NOEXIST | UpdateFlags.LOCK
    assert str(upd) == "UpdateNoExist|UpdateLock"
    assert UpdateFlags.from_str("UpdateNoExist|UpdateLock") == upd
    assert int(UpdateFlags.from_str("UpdateAny|UpdateLock")) == 4
    prog = ProgramFlags.SLEEPABLE | ProgramFlags.XDP_HAS_FRAGS | ProgramFlags.TOKEN_FD
    assert str(prog) == "BPF_F_SLEEPABLE|BPF_F_XDP_HAS_FRAGS|BPF_F_TOKEN_FD"
    assert ProgramFlags.from_str(str(prog)) == prog


def test_flag_unknown_bits_kept_and_printed() -> None:
    flags = MapFlags(MapFlags.MMAPABLE | (1 << 19) | (1 << 30))
    assert int(flags) == (1 << 10) | (1 << 19) | (1 << 30)
    assert str(flags) == "BPF_F_MMAPABLE|0x40080000"
    assert MapFlags.from_str(str(flags)) == flags
    assert flags.min_kernel is None
    assert str(ProgramFlags(1 << 8)) == "0x100"
    assert ProgramFlags.from_str("0x100") == ProgramFlags(1 << 8)
    assert str(UpdateFlags(8)) == "0x8"


@pytest.mark.parametrize("cls", [UpdateFlags, MapFlags, ProgramFlags])
@pytest.mark.parametrize("bad", ["", "nope", "BPF_F_NO_PREALLOC|", "|", "-1", "HASH"])
def test_flag_from_str_rejects(cls: Any, bad: str) -> None:
    with pytest.raises(ValueError):
        cls.from_str(bad)


def test_flag_from_str_error_names_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        MapFlags.from_str("BPF_F_MMAPABLE|BPF_F_BOGUS")
    assert "BPF_F_BOGUS" in str(info.value)
    assert "BPF_F_NO_PREALLOC" in str(info.value)


def test_flags_are_int_flags() -> None:
    assert MapFlags.NO_PREALLOC | 2 == 3
    assert isinstance(MapFlags.NO_PREALLOC | MapFlags.NO_COMMON_LRU, MapFlags)
    assert ProgramFlags.SLEEPABLE & ProgramFlags.SLEEPABLE
