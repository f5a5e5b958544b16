"""The one table (text) or the same facts as JSON."""

from __future__ import annotations

import os
import platform
import textwrap
from collections.abc import Sequence
from typing import Any

from bench.core import UNITS, Context, Timing, Unit
from bench.runner import Outcome

COLUMNS = ("what", "ours", "peer", "ours/peer", "target", "result", "notes")
_RIGHT = {"ours", "peer", "ours/peer"}
_WIDTH = 110
DASH = "—"


def environment(ctx: Context) -> dict[str, Any]:
    """Facts about this run that the figures depend on."""
    uname = os.uname()
    return {
        "repeat": ctx.repeat,
        "statistic": "min wall time (time.perf_counter) over repeats, each side",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "cpus": os.cpu_count(),
    }


def render_table(outcomes: Sequence[Outcome], env: dict[str, Any]) -> str:
    """The table, a header line above it and numbered notes below it."""
    notes: list[str] = []
    body: list[tuple[str, ...]] = []
    for outcome in outcomes:
        refs = sorted({_note_number(notes, text) for text in _notes_of(outcome)})
        body.append((*_cells(outcome), ",".join(str(n) for n in refs)))

    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in body)) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if name in _RIGHT else cell.ljust(w)
            for name, cell, w in zip(COLUMNS, cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [
        f"ebpfspec bench: best of {env['repeat']} run{'s' if env['repeat'] != 1 else ''} each side "
        "(min wall time); "
        f"{env['python']}; {env['kernel']}; {env['cpus']} CPUs",
        "",
        line(COLUMNS),
        line(["─" * w for w in widths]),
    ]
    out.extend(line(r) for r in body)
    if notes:
        out.append("")
        for i, text in enumerate(notes, 1):
            prefix = f"[{i}] "
            out.extend(
                textwrap.wrap(text, _WIDTH, initial_indent=prefix, subsequent_indent=" " * len(prefix),
                              break_on_hyphens=False)
            )
    return "\n".join(out)


def to_json(outcomes: Sequence[Outcome], env: dict[str, Any]) -> dict[str, Any]:
    """Everything the table shows, plus every sample; times in seconds."""
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        r = o.result
        target = r.target if r is not None else None
        rows.append({
            "id": o.row.id,
            "title": o.row.title,
            "result": o.verdict,
            "unit": r.unit if r is not None else None,
            "ours": _timing_json(r.ours) if r is not None else None,
            "peer": _timing_json(r.peer) if r is not None else None,
            "peer_label": r.peer_label if r is not None else "",
            "ratio": r.ratio if r is not None else None,
            "target": None if target is None else {
                "label": target.label(r.unit if r is not None else "ms"),
                "kind": target.kind,
                "limit": target.limit,
                "informational": target.informational,
            },
            "notes": _notes_of(o),
            "skipped": r.skipped if r is not None else None,
            "error": o.error,
            "elapsed": o.elapsed,
        })
    return {"environment": env, "rows": rows}


def format_time(seconds: float, unit: Unit) -> str:
    """``seconds`` in ``unit`` with about three significant figures."""
    value = seconds * UNITS[unit]
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def _cells(o: Outcome) -> tuple[str, ...]:
    r = o.result
    if r is None:
        return (o.row.title, DASH, DASH, DASH, DASH, o.verdict)
    ours = format_time(r.ours.best, r.unit) if r.ours is not None else DASH
    if r.peer is not None:
        peer = format_time(r.peer.best, r.unit) + (f" ({r.peer_label})" if r.peer_label else "")
    else:
        peer = DASH
    ratio = f"{r.ratio:.2f}×" if r.ratio is not None else DASH
    target = r.target.label(r.unit) if r.target is not None else DASH
    return (o.row.title, ours, peer, ratio, target, o.verdict)


def _notes_of(o: Outcome) -> list[str]:
    texts: list[str] = []
    if o.error is not None:
        texts.append(f"{o.row.id} failed: {o.error}")
    r = o.result
    if r is not None:
        if r.skipped is not None:
            texts.append(f"skipped: {r.skipped}")
        if r.peer is None and r.peer_missing is not None:
            texts.append(r.peer_missing)
        texts.extend(r.notes)
    return texts


def _note_number(notes: list[str], text: str) -> int:
    """The 1-based number of ``text`` among the notes; the same text on two rows is one note."""
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def _timing_json(t: Timing | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"best": t.best, "median": t.median, "samples": list(t.samples), "ops": t.ops}
