"""How rows measure: fresh Python child processes timed from inside, and peer commands timed from outside.

* :func:`python_child` runs a script in a new interpreter (so nothing is cached or
  imported yet: "cold") and returns the laps the script recorded with ``lap(name)``:
  the time since the previous lap (or since the script started, before any import).
  Interpreter start-up and exit are thus left out of the laps, but the whole process's
  wall time is recorded too (``ChildRun.wall``).
* :func:`run_command` times a peer program end to end, its output read through a pipe
  into this process (``subprocess.run(capture_output=True)``).
* :func:`alternate` runs ours and the peer's measurement turn about, so drift in the
  machine's speed (frequency scaling, a noisy neighbour) hits both sides alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.core import ROOT

T = TypeVar("T")
U = TypeVar("U")

_MARKER = "@@bench-result@@ "

# Runs before the row's script; defines lap() and info(). Its own imports (json, sys,
# time: all already loaded by the interpreter's start-up or cheap) happen before the first
# lap's clock starts.
_PRELUDE = """\
import json as _bench_json, sys as _bench_sys, time as _bench_time
_bench_laps = {}
_bench_info = {}
def lap(name):
    now = _bench_time.perf_counter()
    _bench_laps[name] = _bench_laps.get(name, 0.0) + (now - _bench_last[0])
    _bench_last[0] = _bench_time.perf_counter()
def info(key, value):
    _bench_info[key] = value
_bench_last = [_bench_time.perf_counter()]
"""

_EPILOGUE = f"""
_bench_sys.stdout.write("\\n" + {_MARKER!r} + _bench_json.dumps({{"laps": _bench_laps, "info": _bench_info}}))
_bench_sys.stdout.write("\\n")
_bench_sys.stdout.flush()
"""


class MeasureError(RuntimeError):
    """A measured process failed; the message carries the end of its stderr."""


@dataclass(frozen=True)
class ChildRun:
    """One run of a Python child: its laps (seconds), what it reported with info(), its wall time."""

    laps: dict[str, float]
    info: dict[str, object]
    wall: float

    def total(self, *names: str) -> float:
        """The sum of the named laps; ``MeasureError`` if the script did not record one."""
        missing = [n for n in names if n not in self.laps]
        if missing:
            raise MeasureError(f"the script recorded no lap {missing} (it has {sorted(self.laps)})")
        return sum(self.laps[n] for n in names)


def child_env(root: Path = ROOT) -> dict[str, str]:
    """This process's environment with the project root first on ``PYTHONPATH``."""
    env = dict(os.environ)
    paths = [str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def python_child(
    script: str, args: Sequence[str] = (), *, root: Path = ROOT, timeout: float = 300
) -> ChildRun:
    """Run ``script`` in a fresh ``python -c`` with ``args`` in ``sys.argv[1:]``; return its laps.

    The script calls ``lap("name")`` after each phase it wants timed and ``info(key, value)``
    for anything the row wants to report (counts, sizes, hashes: JSON values only).
    """
    code = _PRELUDE + script + _EPILOGUE
    argv = [sys.executable, "-c", code, *args]
    start = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=root, env=child_env(root), timeout=timeout
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise MeasureError(f"python child exited with status {proc.returncode}: {_tail(proc.stderr)}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            report = json.loads(line[len(_MARKER):])
            return ChildRun(laps=dict(report["laps"]), info=dict(report["info"]), wall=wall)
    raise MeasureError(f"python child printed no result: {_tail(proc.stdout + proc.stderr)}")


@dataclass(frozen=True)
class CommandRun:
    """One run of a peer command: its wall time (seconds) and what it wrote to stdout."""

    wall: float
    stdout: bytes


def run_command(argv: Sequence[str], *, timeout: float = 300) -> CommandRun:
    """Run ``argv`` with stdout and stderr captured through pipes; time it from start to exit.

    ``MeasureError`` if it exits with a non-zero status (or cannot be started).
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), capture_output=True, timeout=timeout)
    except OSError as err:
        raise MeasureError(f"cannot run {argv[0]}: {err.strerror or err}") from err
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise MeasureError(f"{' '.join(argv)} exited with status {proc.returncode}: {_tail(stderr)}")
    return CommandRun(wall=wall, stdout=proc.stdout)


def alternate(
    repeat: int, ours: Callable[[], T], peer: Callable[[], U] | None = None
) -> tuple[list[T], list[U]]:
    """Call ``ours`` and ``peer`` in turn, ``repeat`` times each (ours first each time)."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    mine: list[T] = []
    theirs: list[U] = []
    for _ in range(repeat):
        mine.append(ours())
        if peer is not None:
            theirs.append(peer())
    return mine, theirs


def repeat_in_process(repeat: int, func: Callable[[], object]) -> tuple[float, ...]:
    """Time ``func()`` ``repeat`` times in this process (for rows where "cold" does not matter)."""
    samples: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return tuple(samples)


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"
