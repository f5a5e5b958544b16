"""The one error type of the ``ebpfspec`` package."""

from __future__ import annotations


class SpecError(ValueError):
    """An object file (or a spec change) that cannot be turned into valid specs.

    ``section``, ``symbol`` and ``offset`` name the place at fault when known; the
    message always includes them.
    """

    def __init__(
        self,
        message: str,
        *,
        section: str | None = None,
        symbol: str | None = None,
        offset: int | None = None,
    ):
        where = []
        if section is not None:
            where.append(f"section {section!r}")
        if symbol is not None:
            where.append(f"symbol {symbol!r}")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.section = section
        self.symbol = symbol
        self.offset = offset
