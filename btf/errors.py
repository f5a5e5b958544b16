"""The one error type of the ``btf`` package."""

from __future__ import annotations


class BTFError(ValueError):
    """Malformed or unusable BTF.

    ``type_id`` and ``offset`` name the place at fault when it is known: the ID of
    the type being decoded and the byte offset (into the type or string section,
    as the message says) of the bad data.
    """

    def __init__(self, message: str, *, type_id: int | None = None, offset: int | None = None):
        where = []
        if type_id is not None:
            where.append(f"type [{type_id}]")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.type_id = type_id
        self.offset = offset
