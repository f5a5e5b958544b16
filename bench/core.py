"""The pieces a benchmark row is made of: timings, targets, results, and the row registry.

A row is a function ``(Context) -> Result`` registered with :func:`row`. It measures our
side and, where there is one, the peer's side, and says what it is aiming for with a
:class:`Target`. The runner (:mod:`bench.runner`) turns results into verdicts and the
report (:mod:`bench.report`) prints them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: The project's root: the directory holding ``btf/``, ``ebpfspec/``, ``loader/`` and ``bench/``.
ROOT = Path(__file__).resolve().parent.parent

#: Display units and how many of them make a second. Every figure is a time: lower is better.
UNITS: dict[str, float] = {"s": 1.0, "ms": 1e3, "µs": 1e6, "ns": 1e9}

Unit = Literal["s", "ms", "µs", "ns"]
Verdict = Literal["PASS", "MISS", "n/a", "—", "SKIP", "ERROR"]


@dataclass(frozen=True)
class Timing:
    """The wall times of ``len(samples)`` repeats of one measurement, in seconds.

    ``ops`` is how many operations each sample timed; figures are per operation, so a row
    that times 10,000 map lookups in one sample reports the time of one lookup.
    """

    samples: tuple[float, ...]
    ops: int = 1

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Timing needs at least one sample")
        if self.ops < 1:
            raise ValueError(f"ops must be positive, not {self.ops}")

    @property
    def best(self) -> float:
        """The best (minimum) sample per operation, in seconds: the figure the table shows."""
        return min(self.samples) / self.ops

    @property
    def median(self) -> float:
        """The median sample per operation, in seconds (in the JSON, to show the spread)."""
        ordered = sorted(self.samples)
        mid = len(ordered) // 2
        value = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return value / self.ops


@dataclass(frozen=True)
class Target:
    """What a row aims for: ours/peer at most ``limit`` (``ratio``) or ours under ``limit`` seconds.

    An ``informational`` target is judged and shown, but never fails ``--strict``.
    """

    kind: Literal["ratio", "absolute"]
    limit: float
    informational: bool = False

    def label(self, unit: Unit) -> str:
        """How the target column shows it, e.g. ``≤ 3×`` or ``< 100 ms``."""
        if self.kind == "ratio":
            text = f"≤ {_number(self.limit)}×"
        else:
            text = f"< {_number(self.limit * UNITS[unit])} {unit}"
        return f"{text} (info)" if self.informational else text

    def verdict(self, ours: float | None, peer: float | None) -> Verdict:
        """``PASS``/``MISS``, or ``n/a`` when a figure it needs is missing."""
        if ours is None:
            return "n/a"
        if self.kind == "absolute":
            return "PASS" if ours < self.limit else "MISS"
        if peer is None or peer <= 0:
            return "n/a"
        return "PASS" if ours / peer <= self.limit else "MISS"


def at_most_times(limit: float, *, informational: bool = False) -> Target:
    """Target: ours/peer ≤ ``limit``."""
    return Target("ratio", limit, informational)


def under(seconds: float, *, informational: bool = False) -> Target:
    """Target: our figure < ``seconds`` (per operation), whatever the peer does."""
    return Target("absolute", seconds, informational)


@dataclass(frozen=True)
class Result:
    """What a row function returns.

    ``ours``/``peer`` are ``None`` when that side was not measured; then ``ours_missing``
    or ``peer_missing`` says why (shown as a note). ``peer_label`` names the peer
    (``"bpftool btf dump file … (raw)"``); leave it empty when there is no peer at all.
    ``skipped`` set means the row could not run at all (say why).
    """

    ours: Timing | None = None
    peer: Timing | None = None
    peer_label: str = ""
    unit: Unit = "ms"
    target: Target | None = None
    notes: tuple[str, ...] = ()
    peer_missing: str | None = None
    skipped: str | None = None

    @property
    def ratio(self) -> float | None:
        """ours/peer on the best figures, or ``None`` if either is missing."""
        if self.ours is None or self.peer is None or self.peer.best <= 0:
            return None
        return self.ours.best / self.peer.best

    @property
    def verdict(self) -> Verdict:
        if self.skipped is not None:
            return "SKIP"
        if self.target is None:
            return "—"
        return self.target.verdict(
            self.ours.best if self.ours else None, self.peer.best if self.peer else None
        )


def skip(reason: str, *, target: Target | None = None, unit: Unit = "ms") -> Result:
    """A result for a row that cannot run here (``target``: what it would have been judged by)."""
    return Result(skipped=reason, target=target, unit=unit)


@dataclass(frozen=True)
class Context:
    """What every row is given: how many repeats to take the best of, and the project root."""

    repeat: int = 5
    root: Path = ROOT


RowFunc = Callable[[Context], Result]


@dataclass(frozen=True)
class Row:
    """A registered row: a stable ``id`` (for ``--only`` and JSON), its title, its function."""

    id: str
    title: str
    func: RowFunc = field(repr=False)
    module: str = ""

    def matches(self, pattern: str) -> bool:
        """``pattern`` (case-insensitive) is a substring of, or a glob matching, the id or title."""
        from fnmatch import fnmatchcase

        p = pattern.lower()
        names = (self.id.lower(), self.title.lower())
        if any(ch in p for ch in "*?["):
            return any(fnmatchcase(n, p) for n in names)
        return any(p in n for n in names)


_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
_REGISTRY: dict[str, Row] = {}


def row(id: str, title: str) -> Callable[[RowFunc], RowFunc]:
    """Register a row function under ``id`` (``topic.name``) with the table title ``title``.

    Rows appear in the order they are registered: module by module, then in source order.
    """
    if not _ID.match(id):
        raise ValueError(f"row id {id!r} must look like 'topic.name' (lower case, digits, '_')")

    def register(func: RowFunc) -> RowFunc:
        if id in _REGISTRY:
            raise ValueError(f"two benchmark rows are called {id!r}")
        _REGISTRY[id] = Row(id, title, func, func.__module__)
        return func

    return register


def registered_rows() -> tuple[Row, ...]:
    """Every row registered so far, in registration order (see :func:`bench.registry.all_rows`)."""
    return tuple(_REGISTRY.values())


def _number(value: float) -> str:
    return f"{value:g}"
