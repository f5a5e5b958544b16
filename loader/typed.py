"""``TypedMap``: a map view that speaks Python values, encoded by the map's BTF types.

Keys and values go through :class:`btf.Codec` in the machine's byte order: ints for
integers and enums (enumerator names accepted), dicts for structs and unions, lists for
arrays, bytes for char arrays. Per-CPU maps take and return a list of such values.

Thread-safety: as the underlying :class:`~loader.Map`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import btf
from ebpfspec import UpdateFlags

if TYPE_CHECKING:
    from loader.map import Map


class TypedMap:
    """A view of ``m`` that encodes and decodes with its BTF key and value types."""

    def __init__(self, m: Map):
        spec = m.spec
        if spec is None or spec.value is None or (spec.key is None and m.type.has_key):
            raise ValueError(f"map {m.name!r} has no BTF key/value types to encode values by")
        order: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"
        self.map = m
        self._key = btf.Codec(spec.key, order) if spec.key is not None else None
        self._value = btf.Codec(spec.value, order)
        self._per_cpu = m.type.has_per_cpu_value

    def _encode_key(self, key: Any) -> bytes | None:
        return self._key.encode(key) if self._key is not None else None

    def _encode_value(self, value: Any) -> Any:
        if self._per_cpu and isinstance(value, list):
            return [self._value.encode(v) for v in value]
        return self._value.encode(value)

    def _decode_value(self, raw: Any) -> Any:
        if self._per_cpu:
            return [self._value.decode(v) for v in raw]
        return self._value.decode(raw)

    def lookup(self, key: Any = None, flags: int = 0) -> Any:
        """The decoded value under ``key``; ``KeyNotFoundError`` if absent (``flags`` as for
        :meth:`Map.lookup <loader.Map.lookup>`)."""
        return self._decode_value(self.map.lookup(self._encode_key(key), flags))

    def update(self, key: Any, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Store ``value`` (encoded) under ``key`` (encoded)."""
        self.map.update(self._encode_key(key), self._encode_value(value), flags)

    def delete(self, key: Any) -> None:
        """Remove ``key``."""
        encoded = self._encode_key(key)
        assert encoded is not None
        self.map.delete(encoded)

    def keys(self) -> Iterator[Any]:
        """Decoded keys."""
        assert self._key is not None
        for raw in self.map:
            yield self._key.decode(raw)

    __iter__ = keys  # without it, ``for k in view`` would fall back to view[0], view[1], ...

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Decoded ``(key, value)`` pairs."""
        assert self._key is not None
        for raw_key, raw_value in self.map.items():
            yield self._key.decode(raw_key), self._decode_value(raw_value)

    def values(self) -> Iterator[Any]:
        """Decoded values."""
        for _, value in self.items():
            yield value

    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        try:
            self.lookup(key)
        except KeyError:
            return False
        return True
