"""Which modules hold rows, and in what order the table lists them."""

from __future__ import annotations

import importlib
import pkgutil

from bench.core import Row, registered_rows

#: Topic modules, in table order. A new topic adds its ``bench/<topic>_rows.py`` here.
#: (A ``*_rows`` module left out of this list still runs, after these, in name order.)
ROW_MODULES: tuple[str, ...] = ("bench.btf_rows", "bench.spec_rows", "bench.map_rows", "bench.load_rows",
                               "bench.program_rows")


def all_rows() -> tuple[Row, ...]:
    """Import every row module and return all registered rows in table order."""
    import bench

    names = list(ROW_MODULES)
    for module in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        full = f"bench.{module.name}"
        if module.name.endswith("_rows") and full not in names:
            names.append(full)
    for name in names:
        importlib.import_module(name)
    order = {name: i for i, name in enumerate(names)}
    rows = registered_rows()
    # Registration order within a module is source order; sort stably by module.
    return tuple(sorted(rows, key=lambda r: order.get(r.module, len(order))))
