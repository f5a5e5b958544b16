"""``MapSpec``: everything needed to create a BPF map, and nothing live.

Thread-safety: a ``MapSpec`` is immutable (attrs frozen, tuples, bytes); share it freely.
Changes make new objects (:meth:`MapSpec.replace`). :meth:`MapSpec.copy` is deep: the
copy shares no mutable object with the original — not even the BTF spec its key and
value types belong to.
"""

from __future__ import annotations

from typing import Any

import attrs

import btf
from ebpfspec.enums import MapType, PinType
from ebpfspec.errors import SpecError

#: Longest map name the kernel keeps (BPF_OBJ_NAME_LEN - 1); longer names are truncated.
MAX_NAME_LEN = 15


def _contents(value: Any) -> tuple[MapKV, ...]:
    entries = tuple(value)
    for entry in entries:
        if not isinstance(entry, MapKV):
            raise TypeError(f"map contents must be MapKV, got {type(entry).__name__}")
    return entries


def _bytes_or_name(value: Any) -> bytes | str:
    return value if isinstance(value, str) else bytes(value)


def _optional_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


@attrs.frozen
class MapKV:
    """One initial entry of a map: ``key`` bytes and a ``value``.

    ``value`` is bytes, or — for program arrays and maps of maps — the *name* of the
    program or map to store there (resolved to a file descriptor when loading).
    """

    key: bytes = attrs.field(converter=bytes)
    value: bytes | str = attrs.field(converter=_bytes_or_name)


@attrs.frozen
class MapSpec:
    """The definition of a BPF map (``bpf_attr`` for ``BPF_MAP_CREATE`` plus what goes in it).

    - ``name``: the ELF name (the kernel keeps the first 15 characters).
    - ``type``, ``key_size``, ``value_size``, ``max_entries``, ``flags`` (``BPF_F_*``),
      ``numa_node``, ``map_extra`` (bloom filter hashes, arena address): as the kernel
      takes them. A ``max_entries`` of 0 for a ``PERF_EVENT_ARRAY`` means "one per
      possible CPU", filled in at load time.
    - ``pinning``: ``PinType.BY_NAME`` makes the loader reuse or create a pin.
    - ``contents``: initial entries; ``freeze``: make the map read-only for user space
      after filling it (``.rodata``).
    - ``inner_map``: template of the maps stored in an ``ARRAY_OF_MAPS``/``HASH_OF_MAPS``.
    - ``extra``: bytes after the standard fields of a legacy map definition
      (e.g. iproute2's ``id, pinning, inner_id, inner_idx``), kept verbatim.
    - ``key``/``value``: BTF types when the object has them.
    """

    name: str
    type: MapType = attrs.field(converter=MapType)
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    pinning: PinType = attrs.field(default=PinType.NONE, converter=PinType)
    numa_node: int = 0
    map_extra: int = 0
    contents: tuple[MapKV, ...] = attrs.field(default=(), converter=_contents)
    freeze: bool = False
    inner_map: MapSpec | None = None
    extra: bytes | None = attrs.field(default=None, converter=_optional_bytes)
    key: btf.Type | None = None
    value: btf.Type | None = None

    def replace(self, **changes: Any) -> MapSpec:
        """A new spec with ``changes`` applied (``attrs.evolve`` semantics)."""
        return attrs.evolve(self, **changes)

    def copy(self) -> MapSpec:
        """A deep copy: equal, sharing no mutable object (BTF included) with this one."""
        specs = _copied_btf_specs(self)
        return self._rebound(specs)

    def _rebound(self, specs: dict[int, btf.Spec]) -> MapSpec:
        """This spec with its BTF types moved to the specs in ``specs`` (old spec id -> new)."""
        inner = self.inner_map._rebound(specs) if self.inner_map is not None else None
        return attrs.evolve(
            self,
            key=rebind_type(self.key, specs),
            value=rebind_type(self.value, specs),
            inner_map=inner,
        )

    def check(self) -> None:
        """Raise ``SpecError`` if the fields contradict each other in ways the kernel would reject."""
        for field_name in ("key_size", "value_size", "max_entries", "flags", "numa_node"):
            value = getattr(self, field_name)
            if not 0 <= value < 1 << 32:
                raise SpecError(f"map {self.name!r}: {field_name} {value} is not a u32")
        if not 0 <= self.map_extra < 1 << 64:
            raise SpecError(f"map {self.name!r}: map_extra {self.map_extra} is not a u64")
        if self.type.is_map_in_map and self.inner_map is None:
            raise SpecError(f"map {self.name!r}: {self.type} needs an inner map")


def rebind_type(t: btf.Type | None, specs: dict[int, btf.Spec]) -> btf.Type | None:
    """``t`` as a type of the spec that replaces its own in ``specs`` (unchanged if none)."""
    if t is None or t.spec is None:
        return t
    replacement = specs.get(id(t.spec))
    return t if replacement is None else replacement.type_by_id(t.id)


def _copied_btf_specs(spec: MapSpec) -> dict[int, btf.Spec]:
    """A fresh copy of every BTF spec ``spec`` (and its inner maps) refers to."""
    copies: dict[int, btf.Spec] = {}
    current: MapSpec | None = spec
    while current is not None:
        for t in (current.key, current.value):
            if t is not None and t.spec is not None and id(t.spec) not in copies:
                copies[id(t.spec)] = t.spec.copy()
        current = current.inner_map
    return copies
