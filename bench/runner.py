"""Run rows, each isolated: a row that raises becomes an ERROR row, the others still run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.core import Context, Result, Row, Verdict


@dataclass(frozen=True)
class Outcome:
    """A row and what came of running it: its result, or the error it raised."""

    row: Row
    result: Result | None
    error: str | None
    elapsed: float

    @property
    def verdict(self) -> Verdict:
        if self.result is None:
            return "ERROR"
        return self.result.verdict

    @property
    def fails(self) -> bool:
        """Whether ``--strict`` counts this row as a failure (an ERROR, or a MISS on a firm target)."""
        if self.verdict == "ERROR":
            return True
        target = self.result.target if self.result is not None else None
        return self.verdict == "MISS" and target is not None and not target.informational


def run_rows(
    rows: Iterable[Row], ctx: Context, progress: Callable[[str], None] | None = None
) -> list[Outcome]:
    """Run each row with ``ctx``; ``progress`` is told the title of each row as it starts."""
    outcomes: list[Outcome] = []
    for row in rows:
        if progress is not None:
            progress(row.title)
        start = time.perf_counter()
        try:
            result: Result | None = row.func(ctx)
            error = None
        except Exception as err:  # one broken row must not sink the table
            result, error = None, f"{type(err).__name__}: {err}"
        outcomes.append(Outcome(row, result, error, time.perf_counter() - start))
    return outcomes
