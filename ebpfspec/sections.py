"""libbpf's ELF section-name conventions: which program type a ``SEC("...")`` name means.

The table is libbpf's ``section_defs`` (libbpf v1.6, the release matching Linux 6.18;
cilium/ebpf generates the same table).  Entries libbpf added for newer kernels --
sleepable tracepoints (``tp.s``, ``raw_tp.s``, ``tp_btf.s``), ``fsession`` and the
``f{entry,exit,session}.multi`` families -- need attach types newer than 6.18 and are
not listed; such names classify as unknown.

Matching (libbpf's ``sec_def_matches``), first entry in table order wins:

* a pattern ending in ``+`` (``"kprobe+"``) matches the bare name (``"kprobe"``) or the
  name followed by ``/`` and anything (``"kprobe/do_unlinkat"``) -- never ``"kprobe_x"``
  or ``"kprobe.multi/..."`` (those are other entries);
* a pattern ending in ``/`` would match any name that starts with it (libbpf keeps the
  rule; its current table has no such entry);
* any other pattern must equal the name exactly (``"xdp"``, ``"cgroup/skb"``).

A leading ``?`` (``SEC("?xdp")``) is libbpf's "don't load by default" marker: it is
stripped before matching and reported as ``autoload=False``.

Legacy prefix matching (cilium/ebpf, pre-1.0 libbpf): when no entry matches strictly
and ``strict`` is False (the default), an exact-form pattern that is a *prefix* of the
name matches, first in table order -- ``"socket/foo"`` and ``"socket1"`` are socket
filters, ``"xdp_prog"`` is XDP, ``"classifier/ingress"`` is SCHED_CLS -- with an empty
``attach_to`` and ``legacy=True``.  ``classify_section(name, strict=True)`` is libbpf
≥ 1.0 exactly and returns None for those.

Speed: exact-form patterns live in a dict keyed by the whole name, ``+`` patterns in a
dict keyed by the part before the first ``/``, and the (currently empty) ``/``-form
patterns in a list sorted by pattern; a strict lookup is two dict probes.  Legacy
matching probes the exact dict once per distinct exact-pattern length.  Results are
immutable and memoised (LRU, 4096 names).
"""

from __future__ import annotations

import functools
from enum import IntFlag

import attrs

from ebpfspec.enums import AttachType, ProgramFlags, ProgramType

__all__ = ["SECTION_DEFS", "SectionDef", "SectionInfo", "classify_section", "pattern_matches"]


@attrs.frozen
class SectionDef:
    """One row of libbpf's ``section_defs`` table.

    ``pattern`` uses libbpf's syntax (``"kprobe+"``, ``"xdp"``; see the module doc).
    ``attach_type_optional`` is libbpf's ``SEC_EXP_ATTACH_OPT``: kernels older than the
    expected-attach-type field (< 4.17) may be given 0 instead.  ``attachable`` is
    libbpf's ``SEC_ATTACHABLE`` (legacy ``BPF_PROG_ATTACH`` target, informational).
    ``attach_btf`` (``SEC_ATTACH_BTF``): the load needs ``attach_btf_id`` of the target
    named after the ``/``.  ``usdt`` (``SEC_USDT``): libbpf switches the expected attach
    type to ``TRACE_UPROBE_MULTI`` when the kernel supports uprobe-multi links (6.6).
    """

    pattern: str
    program_type: ProgramType
    attach_type: AttachType
    sleepable: bool = False
    xdp_frags: bool = False
    attach_btf: bool = False
    attach_type_optional: bool = False
    attachable: bool = False
    usdt: bool = False

    @property
    def program_flags(self) -> ProgramFlags:
        """``prog_flags`` libbpf adds at load time (``BPF_F_SLEEPABLE``, ``BPF_F_XDP_HAS_FRAGS``)."""
        flags = ProgramFlags(0)
        if self.sleepable:
            flags |= ProgramFlags.SLEEPABLE
        if self.xdp_frags and self.program_type is ProgramType.XDP:
            flags |= ProgramFlags.XDP_HAS_FRAGS
        return flags


@attrs.frozen
class SectionInfo:
    """What a section name says about the program(s) in it; from :func:`classify_section`.

    ``program_type``/``attach_type`` are what libbpf sets as ``prog_type`` and
    ``expected_attach_type`` (``AttachType.NONE`` where libbpf uses 0).
    ``attach_to`` is the text after the pattern's ``/`` for ``+`` patterns
    (``"syscalls/sys_enter_getpid"`` for ``"tracepoint/syscalls/sys_enter_getpid"``, the
    function for kprobe/fentry, ``"/bin/bash:readline"`` for ``uprobe//bin/bash:readline``),
    else ``""`` -- also for struct_ops, whose ``/name`` libbpf ignores.
    ``program_flags`` are the ``BPF_PROG_LOAD`` flags the section implies (``SLEEPABLE``
    for ``.s`` sections, ``XDP_HAS_FRAGS`` for ``xdp.frags``); ``sleepable`` mirrors the
    SLEEPABLE bit.  ``needs_btf_attach_target`` is True for tp_btf, fentry, fmod_ret,
    fexit (and their ``.s``), freplace, lsm, lsm.s, lsm_cgroup, iter and iter.s: the
    loader must resolve ``attach_to`` to a BTF id (vmlinux, a module, or -- for
    freplace -- the target program).  struct_ops programs also need an attach BTF id,
    but it comes from their struct_ops map, not from the section name.
    ``attach_type_optional``, ``usdt``: see :class:`SectionDef`.  ``autoload`` is False
    for ``SEC("?...")``.  ``pattern`` is the table entry that matched and ``legacy`` is
    True if it matched only by legacy prefix matching.
    """

    program_type: ProgramType
    attach_type: AttachType
    attach_to: str
    sleepable: bool
    program_flags: ProgramFlags
    needs_btf_attach_target: bool
    attach_type_optional: bool = False
    usdt: bool = False
    autoload: bool = True
    pattern: str = ""
    legacy: bool = False


class _Sec(IntFlag):
    """libbpf's ``enum sec_def_flags`` (internal shorthand for the table below)."""

    NONE = 0
    EXP_ATTACH_OPT = 1
    ATTACHABLE = 2
    ATTACH_BTF = 4
    SLEEPABLE = 8
    XDP_FRAGS = 16
    USDT = 32
    ATTACHABLE_OPT = 3


_P = ProgramType
_A = AttachType
_NONE = _Sec.NONE
_ATT = _Sec.ATTACHABLE
_ATT_OPT = _Sec.ATTACHABLE_OPT
_BTF = _Sec.ATTACH_BTF
_SLEEP = _Sec.SLEEPABLE

# (pattern, program type, expected attach type, libbpf flags), in libbpf's order.
_TABLE: tuple[tuple[str, ProgramType, AttachType, _Sec], ...] = (
    ("socket", _P.SOCKET_FILTER, _A.NONE, _NONE),
    ("sk_reuseport/migrate", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT_OR_MIGRATE, _ATT),
    ("sk_reuseport", _P.SK_REUSEPORT, _A.SK_REUSEPORT_SELECT, _ATT),
    ("kprobe+", _P.KPROBE, _A.NONE, _NONE),
    ("uprobe+", _P.KPROBE, _A.NONE, _NONE),
    ("uprobe.s+", _P.KPROBE, _A.NONE, _SLEEP),
    ("kretprobe+", _P.KPROBE, _A.NONE, _NONE),
    ("uretprobe+", _P.KPROBE, _A.NONE, _NONE),
    ("uretprobe.s+", _P.KPROBE, _A.NONE, _SLEEP),
    ("kprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI, _NONE),
    ("kretprobe.multi+", _P.KPROBE, _A.TRACE_KPROBE_MULTI, _NONE),
    ("kprobe.session+", _P.KPROBE, _A.TRACE_KPROBE_SESSION, _NONE),
    ("uprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _NONE),
    ("uretprobe.multi+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _NONE),
    ("uprobe.session+", _P.KPROBE, _A.TRACE_UPROBE_SESSION, _NONE),
    ("uprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _SLEEP),
    ("uretprobe.multi.s+", _P.KPROBE, _A.TRACE_UPROBE_MULTI, _SLEEP),
    ("uprobe.session.s+", _P.KPROBE, _A.TRACE_UPROBE_SESSION, _SLEEP),
    ("ksyscall+", _P.KPROBE, _A.NONE, _NONE),
    ("kretsyscall+", _P.KPROBE, _A.NONE, _NONE),
    ("usdt+", _P.KPROBE, _A.NONE, _Sec.USDT),
    ("usdt.s+", _P.KPROBE, _A.NONE, _Sec.USDT | _SLEEP),
    ("tc/ingress", _P.SCHED_CLS, _A.TCX_INGRESS, _NONE),  # alias for tcx
    ("tc/egress", _P.SCHED_CLS, _A.TCX_EGRESS, _NONE),  # alias for tcx
    ("tcx/ingress", _P.SCHED_CLS, _A.TCX_INGRESS, _NONE),
    ("tcx/egress", _P.SCHED_CLS, _A.TCX_EGRESS, _NONE),
    ("tc", _P.SCHED_CLS, _A.NONE, _NONE),  # legacy tc
    ("classifier", _P.SCHED_CLS, _A.NONE, _NONE),  # legacy tc
    ("action", _P.SCHED_ACT, _A.NONE, _NONE),  # legacy tc
    ("netkit/primary", _P.SCHED_CLS, _A.NETKIT_PRIMARY, _NONE),
    ("netkit/peer", _P.SCHED_CLS, _A.NETKIT_PEER, _NONE),
    ("tracepoint+", _P.TRACEPOINT, _A.NONE, _NONE),
    ("tp+", _P.TRACEPOINT, _A.NONE, _NONE),
    ("raw_tracepoint+", _P.RAW_TRACEPOINT, _A.NONE, _NONE),
    ("raw_tp+", _P.RAW_TRACEPOINT, _A.NONE, _NONE),
    ("raw_tracepoint.w+", _P.RAW_TRACEPOINT_WRITABLE, _A.NONE, _NONE),
    ("raw_tp.w+", _P.RAW_TRACEPOINT_WRITABLE, _A.NONE, _NONE),
    ("tp_btf+", _P.TRACING, _A.TRACE_RAW_TP, _BTF),
    ("fentry+", _P.TRACING, _A.TRACE_FENTRY, _BTF),
    ("fmod_ret+", _P.TRACING, _A.MODIFY_RETURN, _BTF),
    ("fexit+", _P.TRACING, _A.TRACE_FEXIT, _BTF),
    ("fentry.s+", _P.TRACING, _A.TRACE_FENTRY, _BTF | _SLEEP),
    ("fmod_ret.s+", _P.TRACING, _A.MODIFY_RETURN, _BTF | _SLEEP),
    ("fexit.s+", _P.TRACING, _A.TRACE_FEXIT, _BTF | _SLEEP),
    ("freplace+", _P.EXT, _A.NONE, _BTF),
    ("lsm+", _P.LSM, _A.LSM_MAC, _BTF),
    ("lsm.s+", _P.LSM, _A.LSM_MAC, _BTF | _SLEEP),
    ("lsm_cgroup+", _P.LSM, _A.LSM_CGROUP, _BTF),
    ("iter+", _P.TRACING, _A.TRACE_ITER, _BTF),
    ("iter.s+", _P.TRACING, _A.TRACE_ITER, _BTF | _SLEEP),
    ("syscall", _P.SYSCALL, _A.NONE, _SLEEP),
    ("xdp.frags/devmap", _P.XDP, _A.XDP_DEVMAP, _Sec.XDP_FRAGS),
    ("xdp/devmap", _P.XDP, _A.XDP_DEVMAP, _ATT),
    ("xdp.frags/cpumap", _P.XDP, _A.XDP_CPUMAP, _Sec.XDP_FRAGS),
    ("xdp/cpumap", _P.XDP, _A.XDP_CPUMAP, _ATT),
    ("xdp.frags", _P.XDP, _A.XDP, _Sec.XDP_FRAGS),
    ("xdp", _P.XDP, _A.XDP, _ATT_OPT),
    ("perf_event", _P.PERF_EVENT, _A.NONE, _NONE),
    ("lwt_in", _P.LWT_IN, _A.NONE, _NONE),
    ("lwt_out", _P.LWT_OUT, _A.NONE, _NONE),
    ("lwt_xmit", _P.LWT_XMIT, _A.NONE, _NONE),
    ("lwt_seg6local", _P.LWT_SEG6LOCAL, _A.NONE, _NONE),
    ("sockops", _P.SOCK_OPS, _A.CGROUP_SOCK_OPS, _ATT_OPT),
    ("sk_skb/stream_parser", _P.SK_SKB, _A.SK_SKB_STREAM_PARSER, _ATT_OPT),
    ("sk_skb/stream_verdict", _P.SK_SKB, _A.SK_SKB_STREAM_VERDICT, _ATT_OPT),
    ("sk_skb/verdict", _P.SK_SKB, _A.SK_SKB_VERDICT, _ATT_OPT),
    ("sk_skb", _P.SK_SKB, _A.NONE, _NONE),
    ("sk_msg", _P.SK_MSG, _A.SK_MSG_VERDICT, _ATT_OPT),
    ("lirc_mode2", _P.LIRC_MODE2, _A.LIRC_MODE2, _ATT_OPT),
    ("flow_dissector", _P.FLOW_DISSECTOR, _A.FLOW_DISSECTOR, _ATT_OPT),
    ("cgroup_skb/ingress", _P.CGROUP_SKB, _A.CGROUP_INET_INGRESS, _ATT_OPT),
    ("cgroup_skb/egress", _P.CGROUP_SKB, _A.CGROUP_INET_EGRESS, _ATT_OPT),
    ("cgroup/skb", _P.CGROUP_SKB, _A.NONE, _NONE),
    ("cgroup/sock_create", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE, _ATT),
    ("cgroup/sock_release", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_RELEASE, _ATT),
    ("cgroup/sock", _P.CGROUP_SOCK, _A.CGROUP_INET_SOCK_CREATE, _ATT_OPT),
    ("cgroup/post_bind4", _P.CGROUP_SOCK, _A.CGROUP_INET4_POST_BIND, _ATT),
    ("cgroup/post_bind6", _P.CGROUP_SOCK, _A.CGROUP_INET6_POST_BIND, _ATT),
    ("cgroup/bind4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_BIND, _ATT),
    ("cgroup/bind6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_BIND, _ATT),
    ("cgroup/connect4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_CONNECT, _ATT),
    ("cgroup/connect6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_CONNECT, _ATT),
    ("cgroup/connect_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_CONNECT, _ATT),
    ("cgroup/sendmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_SENDMSG, _ATT),
    ("cgroup/sendmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_SENDMSG, _ATT),
    ("cgroup/sendmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_SENDMSG, _ATT),
    ("cgroup/recvmsg4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP4_RECVMSG, _ATT),
    ("cgroup/recvmsg6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UDP6_RECVMSG, _ATT),
    ("cgroup/recvmsg_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_RECVMSG, _ATT),
    ("cgroup/getpeername4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETPEERNAME, _ATT),
    ("cgroup/getpeername6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETPEERNAME, _ATT),
    ("cgroup/getpeername_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETPEERNAME, _ATT),
    ("cgroup/getsockname4", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET4_GETSOCKNAME, _ATT),
    ("cgroup/getsockname6", _P.CGROUP_SOCK_ADDR, _A.CGROUP_INET6_GETSOCKNAME, _ATT),
    ("cgroup/getsockname_unix", _P.CGROUP_SOCK_ADDR, _A.CGROUP_UNIX_GETSOCKNAME, _ATT),
    ("cgroup/sysctl", _P.CGROUP_SYSCTL, _A.CGROUP_SYSCTL, _ATT),
    ("cgroup/getsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_GETSOCKOPT, _ATT),
    ("cgroup/setsockopt", _P.CGROUP_SOCKOPT, _A.CGROUP_SETSOCKOPT, _ATT),
    ("cgroup/dev", _P.CGROUP_DEVICE, _A.CGROUP_DEVICE, _ATT_OPT),
    ("struct_ops+", _P.STRUCT_OPS, _A.NONE, _NONE),
    ("struct_ops.s+", _P.STRUCT_OPS, _A.NONE, _SLEEP),
    ("sk_lookup", _P.SK_LOOKUP, _A.SK_LOOKUP, _ATT),
    ("netfilter", _P.NETFILTER, _A.NETFILTER, _NONE),
)

SECTION_DEFS: tuple[SectionDef, ...] = tuple(
    SectionDef(
        pattern=pattern,
        program_type=prog_type,
        attach_type=attach_type,
        sleepable=bool(flags & _Sec.SLEEPABLE),
        xdp_frags=bool(flags & _Sec.XDP_FRAGS),
        attach_btf=bool(flags & _Sec.ATTACH_BTF),
        attach_type_optional=bool(flags & _Sec.EXP_ATTACH_OPT),
        attachable=bool(flags & _Sec.ATTACHABLE),
        usdt=bool(flags & _Sec.USDT),
    )
    for pattern, prog_type, attach_type, flags in _TABLE
)
"""libbpf's section table (v1.6 / Linux 6.18) in matching order; see the module doc."""


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether section *name* matches libbpf *pattern* under libbpf's strict rules.

    ``"x+"``: *name* is ``"x"`` or starts with ``"x/"``; ``"x/"``: *name* starts with
    ``"x/"``; otherwise *name* must equal *pattern*.  (No ``?`` handling, no legacy prefixes.)
    """
    if pattern.endswith("/"):
        return name.startswith(pattern)
    if pattern.endswith("+"):
        base = pattern[:-1]
        return name == base or name.startswith(base + "/")
    return name == pattern


# Lookup structures, built once from SECTION_DEFS (index = position = precedence).
_EXACT: dict[str, int] = {}
_PLUS: dict[str, int] = {}
_SLASH: list[tuple[str, int]] = []
for _i, _d in enumerate(SECTION_DEFS):
    if _d.pattern.endswith("+"):
        _PLUS.setdefault(_d.pattern[:-1], _i)
    elif _d.pattern.endswith("/"):
        _SLASH.append((_d.pattern, _i))
    else:
        _EXACT.setdefault(_d.pattern, _i)
_SLASH.sort()
_EXACT_LENGTHS: tuple[int, ...] = tuple(sorted({len(p) for p in _EXACT}))
del _i, _d


def _strict_index(name: str) -> int | None:
    """Table position of the first entry matching *name* strictly, or None."""
    best: int | None = _EXACT.get(name)
    head = name.split("/", 1)[0]
    plus = _PLUS.get(head)
    if plus is not None and (best is None or plus < best):
        best = plus
    for pattern, index in _SLASH:
        if name.startswith(pattern) and (best is None or index < best):
            best = index
    return best


def _legacy_index(name: str) -> int | None:
    """Table position of the first exact-form pattern that is a prefix of *name*, or None."""
    best: int | None = None
    for length in _EXACT_LENGTHS:
        if length > len(name):
            break
        index = _EXACT.get(name[:length])
        if index is not None and (best is None or index < best):
            best = index
    return best


@functools.lru_cache(maxsize=4096)
def _classify(name: str, strict: bool) -> SectionInfo | None:
    autoload = True
    if name.startswith("?"):
        autoload = False
        name = name[1:]
    legacy = False
    index = _strict_index(name)
    if index is None and not strict:
        index = _legacy_index(name)
        legacy = index is not None
    if index is None:
        return None
    d = SECTION_DEFS[index]
    attach_to = ""
    if not legacy and d.program_type is not ProgramType.STRUCT_OPS:
        if d.pattern.endswith("+"):
            attach_to = name[len(d.pattern) :]  # skips the "/" that follows the base
        elif d.pattern.endswith("/"):
            attach_to = name[len(d.pattern) :]
    return SectionInfo(
        program_type=d.program_type,
        attach_type=d.attach_type,
        attach_to=attach_to,
        sleepable=d.sleepable,
        program_flags=d.program_flags,
        needs_btf_attach_target=d.attach_btf,
        attach_type_optional=d.attach_type_optional,
        usdt=d.usdt,
        autoload=autoload,
        pattern=d.pattern,
        legacy=legacy,
    )


def classify_section(name: str, *, strict: bool = False) -> SectionInfo | None:
    """Classify an ELF program section name the way libbpf (and cilium/ebpf) do.

    Returns None for a name no table entry matches: the reader then gives its programs
    ``ProgramType.UNSPEC`` (the user must set a type before loading, as with libbpf).
    With ``strict=True`` only libbpf ≥ 1.0's rules apply; by default cilium's legacy
    prefix matching is the fallback (see the module doc).
    """
    return _classify(name, strict)
