"""BTF string tables: reading one (possibly on top of a base table) and building one."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from btf.errors import BTFError

# Names are bytes on the wire; undecodable bytes survive a round trip through str.
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


class StringTable:
    """The NUL-separated strings of a ``.BTF`` string section.

    A split table (module BTF) continues its base's offsets: offset ``len(base)`` is
    the split table's first byte. Lookups are cached; the cache is filled atomically
    so concurrent readers are safe.
    """

    __slots__ = ("_base", "_cache", "_data", "_first", "cached")

    def __init__(self, data: bytes, base: StringTable | None = None):
        if base is None and (not data or data[0] != 0):
            raise BTFError("string table must start with the empty string (a NUL byte)")
        if data and data[-1] != 0:
            raise BTFError("string table is not NUL-terminated", offset=len(data) - 1)
        self._data = bytes(data)
        self._base = base
        self._first = len(base) if base is not None else 0
        self._cache: dict[int, str] = {}
        #: ``cached(offset)``: the string at ``offset`` if already decoded, else ``None``.
        #: The dict's own ``get``, so the decoder's hot path makes no Python-level call.
        self.cached: Callable[[int], str | None] = self._cache.get

    def __len__(self) -> int:
        return self._first + len(self._data)

    def copy(self) -> StringTable:
        """An independent table over the same (immutable) bytes, with its own cache."""
        base = self._base.copy() if self._base is not None else None
        return StringTable(self._data, base)

    def preload(self) -> None:
        """Decode every string at once (C-speed split), for callers about to decode all types.

        Offsets pointing into the middle of a string still work through :meth:`lookup`.
        """
        if self._base is not None:
            self._base.preload()
        # NUL is one byte in UTF-8 and never inside a multi-byte sequence, and
        # surrogateescape turns each bad byte into one code point, so splitting the
        # bytes and the decoded text on NUL gives matching pieces.
        raw_pieces = self._data.split(b"\0")[:-1]  # the table ends with NUL
        decoded = self._data.decode(_ENCODING, _ERRORS).split("\0")[:-1]
        lengths_with_nul = map((1).__add__, map(len, raw_pieces))
        offsets = itertools.accumulate(lengths_with_nul, initial=self._first)
        self._cache.update(zip(offsets, decoded, strict=False))  # offsets has one extra

    def lookup(self, offset: int) -> str:
        """The string starting at ``offset``; ``BTFError`` if it is out of range."""
        known = self._cache.get(offset)
        if known is not None:
            return known
        if offset < self._first:
            assert self._base is not None
            return self._base.lookup(offset)
        local = offset - self._first
        if not 0 <= local < len(self._data):
            raise BTFError(f"string offset {offset} is outside the string table ({len(self)} bytes)")
        end = self._data.index(b"\0", local)  # the table is NUL-terminated
        text = self._data[local:end].decode(_ENCODING, _ERRORS)
        self._cache[offset] = text
        return text

    def offsets_of(self, text: str) -> list[int]:
        """Every offset whose string is ``text`` (in this table and its base).

        Any position where ``text`` followed by NUL begins is such an offset, including
        the tail of a longer string (tables may share suffixes).
        """
        found = self._base.offsets_of(text) if self._base is not None else []
        try:
            needle = text.encode(_ENCODING, _ERRORS) + b"\0"
        except UnicodeEncodeError:  # a lone surrogate: no table holds it
            return found
        if needle.index(b"\0") < len(needle) - 1:  # "a\0b" would match the table's "a", "b"
            return found
        start = self._data.find(needle)
        while start >= 0:
            found.append(self._first + start)
            start = self._data.find(needle, start + 1)
        return found


class StringTableBuilder:
    """Collects strings for marshaling; equal strings share one offset.

    For split BTF, ``first`` is the length of the base's table: new strings get offsets
    from there on, and the empty name keeps offset 0 (the base's empty string).
    """

    __slots__ = ("_chunks", "_length", "_offsets")

    def __init__(self, first: int = 0) -> None:
        self._offsets: dict[str, int] = {"": 0}
        self._chunks: list[bytes] = [] if first else [b"\0"]
        self._length = first if first else 1

    def add(self, text: str) -> int:
        """The offset of ``text`` in the table being built, adding it if new."""
        offset = self._offsets.get(text)
        if offset is None:
            try:
                raw = text.encode(_ENCODING, _ERRORS)
            except UnicodeEncodeError as err:
                raise BTFError(f"name {text!r} cannot be encoded: {err.reason}") from None
            if b"\0" in raw:
                raise BTFError(f"name {text!r} contains a NUL byte")
            offset = self._length
            self._offsets[text] = offset
            self._chunks.append(raw + b"\0")
            self._length += len(raw) + 1
        return offset

    def to_bytes(self) -> bytes:
        """The table as it goes on the wire (without the base's part)."""
        return b"".join(self._chunks)
