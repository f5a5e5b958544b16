"""ebpfspec's benchmark runner: ``python -m bench`` (see ``bench/README.md``).

Rows live in per-topic modules (``bench/btf_rows.py``, ...), each a function registered
with :func:`row` that returns a :class:`Result`.
"""

from bench.core import (
    ROOT,
    Context,
    Result,
    Row,
    Target,
    Timing,
    at_most_times,
    registered_rows,
    row,
    skip,
    under,
)

__all__ = [
    "ROOT", "Context", "Result", "Row", "Target", "Timing", "at_most_times", "registered_rows",
    "row", "skip", "under",
]
