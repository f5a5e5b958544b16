"""``python -m bench [--only PATTERN] [--repeat N] [--json] [--list] [--strict]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bench.core import Context
from bench.registry import all_rows
from bench.report import environment, render_table, to_json
from bench.runner import run_rows


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time ebpfspec against its peers (bpftool, ...) and print one table.",
    )
    parser.add_argument(
        "--only", metavar="PATTERN", action="append", default=[],
        help="run only rows whose id or title contains PATTERN (case-insensitive; globs *?[] allowed); "
             "may be given more than once",
    )
    parser.add_argument("--repeat", metavar="N", type=_positive, default=5,
                        help="runs per side; the table shows the best (default 5)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (times in seconds) instead of the table")
    parser.add_argument("--list", action="store_true", help="list the rows (id and title) and exit")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if a row errors or misses a target that is not informational")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows = all_rows()
    if args.only:
        rows = tuple(r for r in rows if any(r.matches(p) for p in args.only))
        if not rows:
            print(f"python -m bench: no row matches {' or '.join(map(repr, args.only))} "
                  "(see --list)", file=sys.stderr)
            return 2
    if args.list:
        width = max(len(r.id) for r in rows)
        for r in rows:
            print(f"{r.id.ljust(width)}  {r.title}")
        return 0

    ctx = Context(repeat=args.repeat)
    show_progress = sys.stderr.isatty()

    def progress(title: str) -> None:
        if show_progress:
            print(f"running: {title} ...", file=sys.stderr, flush=True)

    outcomes = run_rows(rows, ctx, progress)
    env = environment(ctx)
    if args.json:
        print(json.dumps(to_json(outcomes, env), indent=2, ensure_ascii=False))
    else:
        print(render_table(outcomes, env))
    if args.strict and any(o.fails for o in outcomes):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
