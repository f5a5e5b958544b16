"""BTF rows: the kernel's BTF (``/sys/kernel/btf/vmlinux``) opened, decoded, dumped and marshaled.

Our side runs in a fresh interpreter per repeat (nothing decoded or cached yet) and is
timed inside it, so interpreter start-up and ``import btf`` are left out (both are
reported in a note). The peer is ``bpftool btf dump file /sys/kernel/btf/vmlinux``: its
full raw dump, read through a pipe, timed as a whole process from here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.core import Context, Result, Target, Timing, at_most_times, row, skip, under
from bench.measure import ChildRun, CommandRun, MeasureError, alternate, python_child, run_command

VMLINUX = "/sys/kernel/btf/vmlinux"
PEER = "bpftool"

_COLD = (
    "ours runs in a fresh `python -c` per repeat, timed inside it: interpreter start-up and "
    "`import btf` are not counted"
)

# Common to every script: report whether `import btf` ran from cached bytecode.
_IMPORT_INFO = """
import importlib.util as _ilu, os as _os
info("import_compiled", not _os.path.exists(_ilu.cache_from_source(btf.__file__)))
"""


# -- the rows ------------------------------------------------------------------------------


@row("btf.open_find", "kernel BTF: open + find task_struct (cold)")
def open_and_find(ctx: Context) -> Result:
    script = """
import btf
lap("import")
spec = btf.load_spec(sys.argv[1])
found = spec.types_by_name("task_struct", kind=btf.Kind.STRUCT)
lap("measured")
info("found", [repr(t) for t in found])
"""
    return _against_bpftool(
        ctx,
        script,
        measured=("measured",),
        target=under(0.100),
        describe=lambda runs: _found_note(runs[0]),
        whole_process_note=True,
    )


@row("btf.decode_all", "kernel BTF: decode every type")
def decode_all(ctx: Context) -> Result:
    script = """
import btf
lap("import")
spec = btf.load_spec(sys.argv[1])
lap("load")
for t in spec:
    pass
lap("decode")
info("types", len(spec))
"""

    def describe(runs: Sequence[ChildRun]) -> list[str]:
        best = min(runs, key=lambda r: r.total("load", "decode"))
        return [
            f"ours = load_spec + `for t in spec: pass` ({_count(runs[0].info['types'])} types made into "
            f"objects); best run: load {_ms(best.laps['load'])} + decode {_ms(best.laps['decode'])}"
        ]

    return _against_bpftool(
        ctx, script, measured=("load", "decode"), target=at_most_times(3), describe=describe
    )


@row("btf.raw_dump", "kernel BTF: raw dump text")
def raw_dump(ctx: Context) -> Result:
    script = """
import btf, btf.format_raw, hashlib
lap("import")
spec = btf.load_spec(sys.argv[1])
lap("load")
lines = list(btf.format_raw.format_raw(spec))
lap("dump")
info("lines", len(lines))
info("sha256", hashlib.sha256(("\\n".join(lines) + "\\n").encode()).hexdigest())
"""

    def describe(runs: Sequence[ChildRun]) -> list[str]:
        best = min(runs, key=lambda r: r.total("dump"))
        return [
            f"ours = list(format_raw(spec)) on a just-loaded spec, so it includes decoding every type; "
            f"load_spec before it ({_ms(best.laps['load'])}) not counted"
        ]

    def compare(runs: Sequence[ChildRun], peer: CommandRun) -> list[str]:
        ours_hash = runs[0].info["sha256"]
        if ours_hash == hashlib.sha256(peer.stdout).hexdigest():
            return [f"our text is byte-identical to bpftool's ({_count(runs[0].info['lines'])} lines)"]
        return [
            f"our text DIFFERS from bpftool's ({_count(runs[0].info['lines'])} lines vs "
            f"{_count(_lines(peer.stdout))})"
        ]

    return _against_bpftool(
        ctx,
        script,
        measured=("dump",),
        target=at_most_times(5, informational=True),
        describe=describe,
        compare=compare,
    )


@row("btf.marshal", "kernel BTF: marshal (to_bytes)")
def marshal(ctx: Context) -> Result:
    if (reason := _no_kernel_btf()) is not None:
        return skip(reason)
    script = """
import btf
lap("import")
spec = btf.load_spec(sys.argv[1])
for t in spec:
    pass
lap("decode")
raw = spec.to_bytes()
lap("marshal")
again = btf.load_spec(raw)
info("bytes_out", len(raw))
info("types_out", len(again))
info("types_in", len(spec))
import os
info("bytes_in", os.path.getsize(sys.argv[1]))
"""
    runs, _ = alternate(ctx.repeat, lambda: python_child(_script(script), [VMLINUX], root=ctx.root))
    first = runs[0].info
    same = "the same number of types" if first["types_out"] == first["types_in"] else "A DIFFERENT NUMBER"
    return Result(
        ours=Timing(tuple(r.total("marshal") for r in runs)),
        peer_missing="no peer: bpftool dumps BTF as text or C but has no command that re-encodes it",
        target=None,
        notes=(
            _COLD,
            "ours = spec.to_bytes() on a spec whose types are all decoded already (decode not counted)",
            f"{_count(first['bytes_out'])} bytes out ({_count(first['bytes_in'])} in); "
            f"they parse back to {same}",
        ),
    )


# -- shared machinery -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Peer:
    argv: list[str] | None
    missing: str | None


def _no_kernel_btf() -> str | None:
    if not os.path.exists(VMLINUX):
        return f"{VMLINUX} does not exist (kernel without CONFIG_DEBUG_INFO_BTF?)"
    if not os.access(VMLINUX, os.R_OK):
        return f"{VMLINUX} is not readable by this user"
    return None


def _bpftool() -> _Peer:
    """The peer command, checked with one untimed run (which also warms its caches)."""
    path = shutil.which("bpftool")
    if path is None:
        return _Peer(None, "no peer figure: bpftool is not installed (not on PATH)")
    argv = [path, "btf", "dump", "file", VMLINUX]
    try:
        run_command(argv)
    except (MeasureError, OSError) as err:
        return _Peer(None, f"no peer figure: {err}")
    return _Peer(argv, None)


def _bpftool_version(argv: Sequence[str]) -> str:
    """``"bpftool v7.1.0 "`` (with a trailing space), or ``"bpftool "`` if it will not say."""
    try:
        first = run_command([argv[0], "version"]).stdout.decode(errors="replace").splitlines()
    except MeasureError:
        return "bpftool "
    words = first[0].split() if first else []  # "/usr/sbin/bpftool v7.1.0": it prints its argv[0]
    if len(words) >= 2 and os.path.basename(words[0]) == "bpftool" and words[1].startswith("v"):
        return f"bpftool {words[1]} "
    return "bpftool "


def _against_bpftool(
    ctx: Context,
    script: str,
    *,
    measured: tuple[str, ...],
    target: Target,
    describe: Callable[[Sequence[ChildRun]], list[str]],
    compare: Callable[[Sequence[ChildRun], CommandRun], list[str]] | None = None,
    whole_process_note: bool = False,
) -> Result:
    """Ours (``script`` in fresh interpreters, laps ``measured``) against bpftool's raw dump, in turn."""
    if (reason := _no_kernel_btf()) is not None:
        return skip(reason, target=target)
    peer = _bpftool()
    argv = peer.argv
    ours_runs, peer_runs = alternate(
        ctx.repeat,
        lambda: python_child(_script(script), [VMLINUX], root=ctx.root),
        (lambda: run_command(argv)) if argv is not None else None,
    )
    notes = [_COLD, *describe(ours_runs)]
    if whole_process_note:
        notes.append(_import_note(ours_runs))
        notes.append(
            f"whole `python -c` process for ours (start-up + import + run + exit), timed from outside "
            f"like the peer: {_ms(min(r.wall for r in ours_runs))}"
        )
    if peer_runs and argv is not None:
        notes.append(
            f"peer = {_bpftool_version(argv)}`btf dump file {VMLINUX}` (its full raw dump, "
            f"{_count(_lines(peer_runs[0].stdout))} lines, read through a pipe), whole process"
        )
        if compare is not None:
            notes.extend(compare(ours_runs, peer_runs[0]))
    return Result(
        ours=Timing(tuple(r.total(*measured) for r in ours_runs)),
        peer=Timing(tuple(r.wall for r in peer_runs)) if peer_runs else None,
        peer_label=PEER if peer_runs else "",
        target=target,
        notes=tuple(notes),
        peer_missing=peer.missing,
    )


def _script(body: str) -> str:
    return "import sys\n" + body + _IMPORT_INFO


def _import_note(runs: Sequence[ChildRun]) -> str:
    """How long ``import btf`` took in the fresh interpreters (best run), and from what."""
    compiled = any(bool(r.info.get("import_compiled")) for r in runs)
    how = ""
    if compiled:
        why = ", PYTHONDONTWRITEBYTECODE is set" if sys.flags.dont_write_bytecode else ""
        how = f" (compiled from source: no cached bytecode{why})"
    best = min(r.laps["import"] for r in runs)
    return f"`import btf` in a fresh interpreter, not counted in any row: {_ms(best)}{how}"


def _found_note(run: ChildRun) -> list[str]:
    found = run.info.get("found")
    shown = ", ".join(str(f) for f in found) if isinstance(found, list) and found else "NOTHING"
    return [f"ours = load_spec(path) + types_by_name('task_struct', kind=STRUCT) -> {shown}"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _lines(text: bytes) -> int:
    return text.count(b"\n")


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
