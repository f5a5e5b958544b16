"""Tests for ebpfspec.sections: libbpf's section-name table and matching rules.

Every row of the table is exercised by a concrete section name whose expected
classification is written out here (from libbpf v1.6's section_defs), not read back
from the module's table.
"""

from __future__ import annotations

import attrs
import pytest

from ebpfspec.enums import AttachType as A
from ebpfspec.enums import ProgramFlags
from ebpfspec.enums import ProgramType as P
from ebpfspec.sections import SECTION_DEFS, SectionDef, SectionInfo, classify_section, pattern_matches

S = int(ProgramFlags.SLEEPABLE)  # 16
F = int(ProgramFlags.XDP_HAS_FRAGS)  # 32

# (section name, program type, attach type, attach_to, sleepable, prog flags, needs BTF target, pattern)
ROWS: list[tuple[str, P, A, str, bool, int, bool, str]] = [
    ("socket", P.SOCKET_FILTER, A.NONE, "", False, 0, False, "socket"),
    (
        "sk_reuseport/migrate",
        P.SK_REUSEPORT,
        A.SK_REUSEPORT_SELECT_OR_MIGRATE,
        "",
        False,
        0,
        False,
        "sk_reuseport/migrate",
    ),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, "", False, 0, False, "sk_reuseport"),
    ("kprobe/do_unlinkat", P.KPROBE, A.NONE, "do_unlinkat", False, 0, False, "kprobe+"),
    ("uprobe//usr/bin/bash:readline", P.KPROBE, A.NONE, "/usr/bin/bash:readline", False, 0, False, "uprobe+"),
    ("uprobe.s/libc.so.6:malloc", P.KPROBE, A.NONE, "libc.so.6:malloc", True, S, False, "uprobe.s+"),
    ("kretprobe/do_unlinkat", P.KPROBE, A.NONE, "do_unlinkat", False, 0, False, "kretprobe+"),
    ("uretprobe//bin/bash:readline", P.KPROBE, A.NONE, "/bin/bash:readline", False, 0, False, "uretprobe+"),
    ("uretprobe.s/libc.so.6:free", P.KPROBE, A.NONE, "libc.so.6:free", True, S, False, "uretprobe.s+"),
    ("kprobe.multi/tcp_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "tcp_*", False, 0, False, "kprobe.multi+"),
    ("kretprobe.multi/vfs_*", P.KPROBE, A.TRACE_KPROBE_MULTI, "vfs_*", False, 0, False, "kretprobe.multi+"),
    (
        "kprobe.session/bpf_fentry_test*",
        P.KPROBE,
        A.TRACE_KPROBE_SESSION,
        "bpf_fentry_test*",
        False,
        0,
        False,
        "kprobe.session+",
    ),
    (
        "uprobe.multi//bin/bash:read*",
        P.KPROBE,
        A.TRACE_UPROBE_MULTI,
        "/bin/bash:read*",
        False,
        0,
        False,
        "uprobe.multi+",
    ),
    (
        "uretprobe.multi/libc:f*",
        P.KPROBE,
        A.TRACE_UPROBE_MULTI,
        "libc:f*",
        False,
        0,
        False,
        "uretprobe.multi+",
    ),
    (
        "uprobe.session/libc:g*",
        P.KPROBE,
        A.TRACE_UPROBE_SESSION,
        "libc:g*",
        False,
        0,
        False,
        "uprobe.session+",
    ),
    ("uprobe.multi.s/libc:h*", P.KPROBE, A.TRACE_UPROBE_MULTI, "libc:h*", True, S, False, "uprobe.multi.s+"),
    (
        "uretprobe.multi.s/libc:i*",
        P.KPROBE,
        A.TRACE_UPROBE_MULTI,
        "libc:i*",
        True,
        S,
        False,
        "uretprobe.multi.s+",
    ),
    (
        "uprobe.session.s/libc:j*",
        P.KPROBE,
        A.TRACE_UPROBE_SESSION,
        "libc:j*",
        True,
        S,
        False,
        "uprobe.session.s+",
    ),
    ("ksyscall/openat", P.KPROBE, A.NONE, "openat", False, 0, False, "ksyscall+"),
    ("kretsyscall/openat", P.KPROBE, A.NONE, "openat", False, 0, False, "kretsyscall+"),
    ("usdt/./bin:provider:probe", P.KPROBE, A.NONE, "./bin:provider:probe", False, 0, False, "usdt+"),
    ("usdt.s/libc:prov:name", P.KPROBE, A.NONE, "libc:prov:name", True, S, False, "usdt.s+"),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", False, 0, False, "tc/ingress"),
    ("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, "", False, 0, False, "tc/egress"),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", False, 0, False, "tcx/ingress"),
    ("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, "", False, 0, False, "tcx/egress"),
    ("tc", P.SCHED_CLS, A.NONE, "", False, 0, False, "tc"),
    ("classifier", P.SCHED_CLS, A.NONE, "", False, 0, False, "classifier"),
    ("action", P.SCHED_ACT, A.NONE, "", False, 0, False, "action"),
    ("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY, "", False, 0, False, "netkit/primary"),
    ("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER, "", False, 0, False, "netkit/peer"),
    (
        "tracepoint/syscalls/sys_enter_getpid",
        P.TRACEPOINT,
        A.NONE,
        "syscalls/sys_enter_getpid",
        False,
        0,
        False,
        "tracepoint+",
    ),
    ("tp/sched/sched_switch", P.TRACEPOINT, A.NONE, "sched/sched_switch", False, 0, False, "tp+"),
    (
        "raw_tracepoint/sched_switch",
        P.RAW_TRACEPOINT,
        A.NONE,
        "sched_switch",
        False,
        0,
        False,
        "raw_tracepoint+",
    ),
    ("raw_tp/sys_enter", P.RAW_TRACEPOINT, A.NONE, "sys_enter", False, 0, False, "raw_tp+"),
    (
        "raw_tracepoint.w/bpf_test_finish",
        P.RAW_TRACEPOINT_WRITABLE,
        A.NONE,
        "bpf_test_finish",
        False,
        0,
        False,
        "raw_tracepoint.w+",
    ),
    (
        "raw_tp.w/bpf_test_finish",
        P.RAW_TRACEPOINT_WRITABLE,
        A.NONE,
        "bpf_test_finish",
        False,
        0,
        False,
        "raw_tp.w+",
    ),
    ("tp_btf/sched_switch", P.TRACING, A.TRACE_RAW_TP, "sched_switch", False, 0, True, "tp_btf+"),
    ("fentry/do_unlinkat", P.TRACING, A.TRACE_FENTRY, "do_unlinkat", False, 0, True, "fentry+"),
    (
        "fmod_ret/bpf_modify_return_test",
        P.TRACING,
        A.MODIFY_RETURN,
        "bpf_modify_return_test",
        False,
        0,
        True,
        "fmod_ret+",
    ),
    ("fexit/do_unlinkat", P.TRACING, A.TRACE_FEXIT, "do_unlinkat", False, 0, True, "fexit+"),
    ("fentry.s/__x64_sys_open", P.TRACING, A.TRACE_FENTRY, "__x64_sys_open", True, S, True, "fentry.s+"),
    (
        "fmod_ret.s/bpf_fentry_test1",
        P.TRACING,
        A.MODIFY_RETURN,
        "bpf_fentry_test1",
        True,
        S,
        True,
        "fmod_ret.s+",
    ),
    ("fexit.s/__x64_sys_close", P.TRACING, A.TRACE_FEXIT, "__x64_sys_close", True, S, True, "fexit.s+"),
    ("freplace/xdp_dummy_prog", P.EXT, A.NONE, "xdp_dummy_prog", False, 0, True, "freplace+"),
    ("lsm/file_open", P.LSM, A.LSM_MAC, "file_open", False, 0, True, "lsm+"),
    ("lsm.s/bprm_committed_creds", P.LSM, A.LSM_MAC, "bprm_committed_creds", True, S, True, "lsm.s+"),
    ("lsm_cgroup/socket_bind", P.LSM, A.LSM_CGROUP, "socket_bind", False, 0, True, "lsm_cgroup+"),
    ("iter/task", P.TRACING, A.TRACE_ITER, "task", False, 0, True, "iter+"),
    ("iter.s/task_vma", P.TRACING, A.TRACE_ITER, "task_vma", True, S, True, "iter.s+"),
    ("syscall", P.SYSCALL, A.NONE, "", True, S, False, "syscall"),
    ("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, "", False, F, False, "xdp.frags/devmap"),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, "", False, 0, False, "xdp/devmap"),
    ("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "", False, F, False, "xdp.frags/cpumap"),
    ("xdp/cpumap", P.XDP, A.XDP_CPUMAP, "", False, 0, False, "xdp/cpumap"),
    ("xdp.frags", P.XDP, A.XDP, "", False, F, False, "xdp.frags"),
    ("xdp", P.XDP, A.XDP, "", False, 0, False, "xdp"),
    ("perf_event", P.PERF_EVENT, A.NONE, "", False, 0, False, "perf_event"),
    ("lwt_in", P.LWT_IN, A.NONE, "", False, 0, False, "lwt_in"),
    ("lwt_out", P.LWT_OUT, A.NONE, "", False, 0, False, "lwt_out"),
    ("lwt_xmit", P.LWT_XMIT, A.NONE, "", False, 0, False, "lwt_xmit"),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, A.NONE, "", False, 0, False, "lwt_seg6local"),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "", False, 0, False, "sockops"),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, "", False, 0, False, "sk_skb/stream_parser"),
    (
        "sk_skb/stream_verdict",
        P.SK_SKB,
        A.SK_SKB_STREAM_VERDICT,
        "",
        False,
        0,
        False,
        "sk_skb/stream_verdict",
    ),
    ("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, "", False, 0, False, "sk_skb/verdict"),
    ("sk_skb", P.SK_SKB, A.NONE, "", False, 0, False, "sk_skb"),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, "", False, 0, False, "sk_msg"),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, "", False, 0, False, "lirc_mode2"),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, "", False, 0, False, "flow_dissector"),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "", False, 0, False, "cgroup_skb/ingress"),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "", False, 0, False, "cgroup_skb/egress"),
    ("cgroup/skb", P.CGROUP_SKB, A.NONE, "", False, 0, False, "cgroup/skb"),
    (
        "cgroup/sock_create",
        P.CGROUP_SOCK,
        A.CGROUP_INET_SOCK_CREATE,
        "",
        False,
        0,
        False,
        "cgroup/sock_create",
    ),
    (
        "cgroup/sock_release",
        P.CGROUP_SOCK,
        A.CGROUP_INET_SOCK_RELEASE,
        "",
        False,
        0,
        False,
        "cgroup/sock_release",
    ),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "", False, 0, False, "cgroup/sock"),
    ("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, "", False, 0, False, "cgroup/post_bind4"),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, "", False, 0, False, "cgroup/post_bind6"),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, "", False, 0, False, "cgroup/bind4"),
    ("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, "", False, 0, False, "cgroup/bind6"),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "", False, 0, False, "cgroup/connect4"),
    ("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, "", False, 0, False, "cgroup/connect6"),
    (
        "cgroup/connect_unix",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_UNIX_CONNECT,
        "",
        False,
        0,
        False,
        "cgroup/connect_unix",
    ),
    ("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, "", False, 0, False, "cgroup/sendmsg4"),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, "", False, 0, False, "cgroup/sendmsg6"),
    (
        "cgroup/sendmsg_unix",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_UNIX_SENDMSG,
        "",
        False,
        0,
        False,
        "cgroup/sendmsg_unix",
    ),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, "", False, 0, False, "cgroup/recvmsg4"),
    ("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, "", False, 0, False, "cgroup/recvmsg6"),
    (
        "cgroup/recvmsg_unix",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_UNIX_RECVMSG,
        "",
        False,
        0,
        False,
        "cgroup/recvmsg_unix",
    ),
    (
        "cgroup/getpeername4",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_INET4_GETPEERNAME,
        "",
        False,
        0,
        False,
        "cgroup/getpeername4",
    ),
    (
        "cgroup/getpeername6",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_INET6_GETPEERNAME,
        "",
        False,
        0,
        False,
        "cgroup/getpeername6",
    ),
    (
        "cgroup/getpeername_unix",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_UNIX_GETPEERNAME,
        "",
        False,
        0,
        False,
        "cgroup/getpeername_unix",
    ),
    (
        "cgroup/getsockname4",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_INET4_GETSOCKNAME,
        "",
        False,
        0,
        False,
        "cgroup/getsockname4",
    ),
    (
        "cgroup/getsockname6",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_INET6_GETSOCKNAME,
        "",
        False,
        0,
        False,
        "cgroup/getsockname6",
    ),
    (
        "cgroup/getsockname_unix",
        P.CGROUP_SOCK_ADDR,
        A.CGROUP_UNIX_GETSOCKNAME,
        "",
        False,
        0,
        False,
        "cgroup/getsockname_unix",
    ),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, "", False, 0, False, "cgroup/sysctl"),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, "", False, 0, False, "cgroup/getsockopt"),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, "", False, 0, False, "cgroup/setsockopt"),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "", False, 0, False, "cgroup/dev"),
    ("struct_ops/test_1", P.STRUCT_OPS, A.NONE, "", False, 0, False, "struct_ops+"),
    ("struct_ops.s/test_2", P.STRUCT_OPS, A.NONE, "", True, S, False, "struct_ops.s+"),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, "", False, 0, False, "sk_lookup"),
    ("netfilter", P.NETFILTER, A.NETFILTER, "", False, 0, False, "netfilter"),
]

# libbpf's SEC_EXP_ATTACH_OPT entries (SEC_ATTACHABLE_OPT in libbpf.c).
ATTACH_TYPE_OPTIONAL = {
    "xdp",
    "sockops",
    "sk_skb/stream_parser",
    "sk_skb/stream_verdict",
    "sk_skb/verdict",
    "sk_msg",
    "lirc_mode2",
    "flow_dissector",
    "cgroup_skb/ingress",
    "cgroup_skb/egress",
    "cgroup/sock",
    "cgroup/dev",
}
USDT = {"usdt+", "usdt.s+"}

# libbpf v1.6 section_defs order (first match wins).
EXPECTED_ORDER = [
    "socket",
    "sk_reuseport/migrate",
    "sk_reuseport",
    "kprobe+",
    "uprobe+",
    "uprobe.s+",
    "kretprobe+",
    "uretprobe+",
    "uretprobe.s+",
    "kprobe.multi+",
    "kretprobe.multi+",
    "kprobe.session+",
    "uprobe.multi+",
    "uretprobe.multi+",
    "uprobe.session+",
    "uprobe.multi.s+",
    "uretprobe.multi.s+",
    "uprobe.session.s+",
    "ksyscall+",
    "kretsyscall+",
    "usdt+",
    "usdt.s+",
    "tc/ingress",
    "tc/egress",
    "tcx/ingress",
    "tcx/egress",
    "tc",
    "classifier",
    "action",
    "netkit/primary",
    "netkit/peer",
    "tracepoint+",
    "tp+",
    "raw_tracepoint+",
    "raw_tp+",
    "raw_tracepoint.w+",
    "raw_tp.w+",
    "tp_btf+",
    "fentry+",
    "fmod_ret+",
    "fexit+",
    "fentry.s+",
    "fmod_ret.s+",
    "fexit.s+",
    "freplace+",
    "lsm+",
    "lsm.s+",
    "lsm_cgroup+",
    "iter+",
    "iter.s+",
    "syscall",
    "xdp.frags/devmap",
    "xdp/devmap",
    "xdp.frags/cpumap",
    "xdp/cpumap",
    "xdp.frags",
    "xdp",
    "perf_event",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "lwt_seg6local",
    "sockops",
    "sk_skb/stream_parser",
    "sk_skb/stream_verdict",
    "sk_skb/verdict",
    "sk_skb",
    "sk_msg",
    "lirc_mode2",
    "flow_dissector",
    "cgroup_skb/ingress",
    "cgroup_skb/egress",
    "cgroup/skb",
    "cgroup/sock_create",
    "cgroup/sock_release",
    "cgroup/sock",
    "cgroup/post_bind4",
    "cgroup/post_bind6",
    "cgroup/bind4",
    "cgroup/bind6",
    "cgroup/connect4",
    "cgroup/connect6",
    "cgroup/connect_unix",
    "cgroup/sendmsg4",
    "cgroup/sendmsg6",
    "cgroup/sendmsg_unix",
    "cgroup/recvmsg4",
    "cgroup/recvmsg6",
    "cgroup/recvmsg_unix",
    "cgroup/getpeername4",
    "cgroup/getpeername6",
    "cgroup/getpeername_unix",
    "cgroup/getsockname4",
    "cgroup/getsockname6",
    "cgroup/getsockname_unix",
    "cgroup/sysctl",
    "cgroup/getsockopt",
    "cgroup/setsockopt",
    "cgroup/dev",
    "struct_ops+",
    "struct_ops.s+",
    "sk_lookup",
    "netfilter",
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_table_row(row: tuple[str, P, A, str, bool, int, bool, str]) -> None:
    name, prog_type, attach_type, attach_to, sleepable, flags, btf, pattern = row
    for strict in (False, True):
        info = classify_section(name, strict=strict)
        assert info is not None
        assert info.program_type is prog_type
        assert int(info.attach_type) == int(attach_type)
        assert info.attach_to == attach_to
        assert info.sleepable is sleepable
        assert int(info.program_flags) == flags
        assert isinstance(info.program_flags, ProgramFlags)
        assert info.needs_btf_attach_target is btf
        assert info.pattern == pattern
        assert info.attach_type_optional is (pattern in ATTACH_TYPE_OPTIONAL)
        assert info.usdt is (pattern in USDT)
        assert info.autoload is True
        assert info.legacy is False


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_question_mark_prefix_disables_autoload(row: tuple[str, P, A, str, bool, int, bool, str]) -> None:
    name, prog_type, attach_type, attach_to, *_ = row
    info = classify_section("?" + name)
    assert info is not None
    assert info.autoload is False
    assert info.program_type is prog_type
    assert int(info.attach_type) == int(attach_type)
    assert info.attach_to == attach_to


def test_every_table_entry_is_covered() -> None:
    assert [d.pattern for d in SECTION_DEFS] == EXPECTED_ORDER
    covered = {row[7] for row in ROWS}
    assert covered == set(EXPECTED_ORDER)
    assert len(ROWS) == len(SECTION_DEFS)


def test_plus_patterns_match_bare_names() -> None:
    for pattern in EXPECTED_ORDER:
        if not pattern.endswith("+"):
            continue
        base = pattern[:-1]
        for name in (base, base + "/"):
            info = classify_section(name, strict=True)
            assert info is not None, name
            assert info.pattern == pattern
            assert info.attach_to == ""


@pytest.mark.parametrize(
    "name",
    [
        "",
        "?",
        "??xdp",
        ".text",
        ".data",
        ".rodata",
        ".bss",
        ".maps",
        "maps",
        "license",
        "version",
        ".BTF",
        "foo",
        "foo/bar",
        "XDP",
        "Kprobe/foo",
        "kprobe_foo",
        "kprobes/foo",
        "kprobe.s/foo",  # not a libbpf section (uprobe.s is)
        "kprobe.multi.s/foo",
        "tp_btfx/foo",
        "tpx/foo",
        "fentry_foo",
        "lsm.x/foo",
        "iter_task",
        # libbpf > 1.6 / kernel > 6.18 only:
        "tp.s/sched/sched_switch",
        "tracepoint.s/syscalls/sys_enter_openat",
        "raw_tp.s/sys_enter",
        "raw_tracepoint.s/sys_enter",
        "tp_btf.s/sched_switch",
        "fsession/do_unlinkat",
        "fsession.s/do_unlinkat",
        "fentry.multi/bpf_fentry_test*",
        "fexit.multi.s/bpf_fentry_test*",
    ],
)
def test_unknown_sections(name: str) -> None:
    assert classify_section(name) is None
    assert classify_section(name, strict=True) is None


# --------------------------------------------------------------------- edge cases


def test_xdp_frags_vs_xdp() -> None:
    frags = classify_section("xdp.frags")
    plain = classify_section("xdp")
    assert frags is not None and plain is not None
    assert frags.program_type is plain.program_type is P.XDP
    assert frags.attach_type is plain.attach_type is A.XDP
    assert frags.program_flags == ProgramFlags.XDP_HAS_FRAGS
    assert plain.program_flags == ProgramFlags(0)
    assert plain.attach_type_optional and not frags.attach_type_optional
    # xdp.frags is an exact pattern: "xdp.frags/foo" only matches by legacy prefix.
    assert classify_section("xdp.frags/foo", strict=True) is None
    legacy = classify_section("xdp.frags/foo")
    assert legacy is not None and legacy.legacy
    assert legacy.pattern == "xdp.frags"  # earlier in the table than "xdp"
    assert legacy.program_flags == ProgramFlags.XDP_HAS_FRAGS
    # devmap/cpumap variants
    dev = classify_section("xdp.frags/devmap")
    assert (
        dev is not None
        and dev.attach_type is A.XDP_DEVMAP
        and dev.program_flags == ProgramFlags.XDP_HAS_FRAGS
    )


def test_tp_vs_tp_btf() -> None:
    tp = classify_section("tp/sched/sched_switch")
    btf = classify_section("tp_btf/sched_switch")
    assert tp is not None and btf is not None
    assert (tp.program_type, tp.attach_type, tp.attach_to) == (P.TRACEPOINT, A.NONE, "sched/sched_switch")
    assert not tp.needs_btf_attach_target
    assert (btf.program_type, btf.attach_type, btf.attach_to) == (P.TRACING, A.TRACE_RAW_TP, "sched_switch")
    assert btf.needs_btf_attach_target
    bare = classify_section("tp")
    assert bare is not None and bare.program_type is P.TRACEPOINT and bare.attach_to == ""
    bare_btf = classify_section("tp_btf")
    assert bare_btf is not None and bare_btf.program_type is P.TRACING and bare_btf.attach_to == ""


def test_cgroup_skb_forms() -> None:
    info = classify_section("cgroup/skb")
    assert info is not None
    assert info.program_type is P.CGROUP_SKB
    assert info.attach_type is A.NONE
    ingress = classify_section("cgroup_skb/ingress")
    assert ingress is not None
    assert ingress.program_type is P.CGROUP_SKB
    assert int(ingress.attach_type) == 0  # BPF_CGROUP_INET_INGRESS, printed "None"
    egress = classify_section("cgroup_skb/egress")
    assert egress is not None and egress.attach_type is A.CGROUP_INET_EGRESS
    assert classify_section("cgroup_skb") is None
    assert classify_section("cgroup_skb/foo") is None


def test_kprobe_without_slash() -> None:
    info = classify_section("kprobe")
    assert info is not None
    assert info.program_type is P.KPROBE
    assert info.attach_to == ""
    assert info.pattern == "kprobe+"
    assert classify_section("kprobe_foo") is None
    multi = classify_section("kprobe.multi")
    assert multi is not None and multi.attach_type is A.TRACE_KPROBE_MULTI and multi.attach_to == ""
    # attach_to keeps everything after the first "/", including further slashes.
    deep = classify_section("kprobe//")
    assert deep is not None and deep.attach_to == "/"


def test_socket_legacy_prefix() -> None:
    exact = classify_section("socket")
    assert exact is not None and exact.program_type is P.SOCKET_FILTER and not exact.legacy
    for name in ("socket/foo", "socket1", "socket_filter", "socket/0"):
        assert classify_section(name, strict=True) is None, name
        info = classify_section(name)
        assert info is not None, name
        assert info.program_type is P.SOCKET_FILTER
        assert info.attach_type is A.NONE
        assert info.attach_to == ""
        assert info.legacy
        assert info.pattern == "socket"
    # "sockops" is its own exact entry, not a legacy socket filter.
    sockops = classify_section("sockops")
    assert sockops is not None and sockops.program_type is P.SOCK_OPS and not sockops.legacy


def test_legacy_prefix_first_in_table_order_wins() -> None:
    info = classify_section("cgroup/sock_create_v2")
    assert info is not None and info.legacy
    assert info.pattern == "cgroup/sock_create"  # before "cgroup/sock" in the table
    assert info.attach_type is A.CGROUP_INET_SOCK_CREATE
    info = classify_section("cgroup/sockaddr")
    assert info is not None and info.pattern == "cgroup/sock"
    info = classify_section("sk_skb/foo")
    assert info is not None and info.pattern == "sk_skb" and info.attach_type is A.NONE
    info = classify_section("sk_reuseport/migrate_v2")
    assert info is not None and info.pattern == "sk_reuseport/migrate"
    info = classify_section("classifier/ingress")
    assert info is not None and info.program_type is P.SCHED_CLS and info.attach_to == ""
    info = classify_section("xdp_prog")
    assert info is not None and info.program_type is P.XDP and info.legacy
    info = classify_section("action/drop")
    assert info is not None and info.program_type is P.SCHED_ACT


def test_legacy_never_applies_to_plus_patterns() -> None:
    # "+" patterns are only ever matched strictly, in cilium as in libbpf.
    for name in ("kprobe_sys_open", "tracepointx", "fentryfoo", "struct_opsx", "lsm_foo/bar"):
        assert classify_section(name) is None, name


def test_uprobe_s_is_sleepable() -> None:
    info = classify_section("uprobe.s//usr/lib/libc.so.6:malloc")
    assert info is not None
    assert info.sleepable
    assert info.program_flags == ProgramFlags.SLEEPABLE
    assert info.attach_to == "/usr/lib/libc.so.6:malloc"
    plain = classify_section("uprobe//usr/lib/libc.so.6:malloc")
    assert plain is not None and not plain.sleepable and plain.program_flags == ProgramFlags(0)


def test_tc_aliases() -> None:
    tc = classify_section("tc/ingress")
    tcx = classify_section("tcx/ingress")
    assert tc is not None and tcx is not None
    assert (
        (tc.program_type, tc.attach_type)
        == (tcx.program_type, tcx.attach_type)
        == (P.SCHED_CLS, A.TCX_INGRESS)
    )
    legacy_tc = classify_section("tc")
    assert legacy_tc is not None and legacy_tc.attach_type is A.NONE


def test_lsm_vs_lsm_cgroup() -> None:
    lsm = classify_section("lsm/socket_bind")
    cg = classify_section("lsm_cgroup/socket_bind")
    assert lsm is not None and cg is not None
    assert lsm.attach_type is A.LSM_MAC and cg.attach_type is A.LSM_CGROUP
    assert lsm.program_type is cg.program_type is P.LSM


def test_struct_ops_name_ignored() -> None:
    for name in ("struct_ops", "struct_ops/", "struct_ops/dctcp_init", "struct_ops.s/x"):
        info = classify_section(name)
        assert info is not None and info.program_type is P.STRUCT_OPS
        assert info.attach_to == ""
        assert not info.needs_btf_attach_target


def test_usdt_flag() -> None:
    info = classify_section("usdt/libc.so.6:libc:setjmp")
    assert info is not None and info.usdt and info.attach_type is A.NONE
    assert info.attach_to == "libc.so.6:libc:setjmp"
    other = classify_section("uprobe/libc.so.6:setjmp")
    assert other is not None and not other.usdt


def test_btf_target_sections() -> None:
    needs = {
        "tp_btf/a",
        "fentry/a",
        "fmod_ret/a",
        "fexit/a",
        "fentry.s/a",
        "fmod_ret.s/a",
        "fexit.s/a",
        "freplace/a",
        "lsm/a",
        "lsm.s/a",
        "lsm_cgroup/a",
        "iter/a",
        "iter.s/a",
    }
    for name in needs:
        info = classify_section(name)
        assert info is not None and info.needs_btf_attach_target, name
    for name in ("kprobe/a", "tracepoint/a/b", "raw_tp/a", "struct_ops/a", "xdp", "syscall"):
        info = classify_section(name)
        assert info is not None and not info.needs_btf_attach_target, name


# --------------------------------------------------------------------- API shape


def test_section_info_is_frozen_and_hashable() -> None:
    info = classify_section("xdp")
    assert info is not None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.attach_to = "x"  # type: ignore[misc]
    assert hash(info) == hash(classify_section("xdp"))
    assert info == SectionInfo(
        program_type=P.XDP,
        attach_type=A.XDP,
        attach_to="",
        sleepable=False,
        program_flags=ProgramFlags(0),
        needs_btf_attach_target=False,
        attach_type_optional=True,
        pattern="xdp",
    )
    assert attrs.evolve(info, autoload=False).autoload is False


def test_section_defs_are_frozen() -> None:
    d = SECTION_DEFS[0]
    assert isinstance(d, SectionDef)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        d.pattern = "x"  # type: ignore[misc]
    assert isinstance(SECTION_DEFS, tuple)


def test_section_def_program_flags() -> None:
    assert SectionDef("a", P.XDP, A.XDP, xdp_frags=True).program_flags == ProgramFlags.XDP_HAS_FRAGS
    # libbpf only applies SEC_XDP_FRAGS to XDP programs.
    assert SectionDef("a", P.SCHED_CLS, A.NONE, xdp_frags=True).program_flags == ProgramFlags(0)
    both = SectionDef("a", P.XDP, A.XDP, xdp_frags=True, sleepable=True).program_flags
    assert both == ProgramFlags.XDP_HAS_FRAGS | ProgramFlags.SLEEPABLE


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("kprobe+", "kprobe", True),
        ("kprobe+", "kprobe/", True),
        ("kprobe+", "kprobe/foo/bar", True),
        ("kprobe+", "kprobe_foo", False),
        ("kprobe+", "kprob", False),
        ("kprobe+", "kprobe.multi/foo", False),
        ("kprobe/", "kprobe/foo", True),
        ("kprobe/", "kprobe/", True),
        ("kprobe/", "kprobe", False),
        ("kprobe/", "kprobes/foo", False),
        ("xdp", "xdp", True),
        ("xdp", "xdp/foo", False),
        ("xdp", "xdp_prog", False),
        ("xdp", "xd", False),
    ],
)
def test_pattern_matches(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected


def test_table_agrees_with_pattern_matches() -> None:
    # The fast lookup must agree with a linear first-match scan using pattern_matches.
    names = [row[0] for row in ROWS] + ["kprobe", "tp", "socket/1", "xdp.frags/x", "cgroup/sockx", "nope"]
    for name in names:
        linear = next((d for d in SECTION_DEFS if pattern_matches(d.pattern, name)), None)
        info = classify_section(name, strict=True)
        if linear is None:
            assert info is None, name
        else:
            assert info is not None and info.pattern == linear.pattern, name
