"""Legacy map definitions: ``struct bpf_map_def`` in ``SEC("maps")``.

Each symbol in the section is one definition: five u32 fields (type, key_size,
value_size, max_entries, map_flags) in the object's byte order. Definitions may be
longer (iproute2 adds id, pinning, inner_id, inner_idx); the bytes after the five
fields are kept verbatim as ``MapSpec.extra``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ebpfspec.elf import STB_LOCAL, STT_NOTYPE, STT_OBJECT, ObjectFile
from ebpfspec.enums import MapType
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapSpec

SECTION = "maps"
_FIELDS_SIZE = 20


def read_legacy_maps(obj: ObjectFile) -> Iterator[MapSpec]:
    """Every map defined in the ``maps`` section, by offset."""
    section = obj.section(SECTION)
    if section is None:
        return
    data = obj.contents(section)
    symbols = [s for s in obj.symbols_in(section) if s.name and s.type in (STT_OBJECT, STT_NOTYPE)]
    if not symbols:
        return
    size_if_unsized = len(data) // len(symbols)
    e = "<" if obj.byte_order == "little" else ">"
    for symbol in symbols:
        if symbol.bind == STB_LOCAL:
            raise SpecError("static maps are not supported", section=SECTION, symbol=symbol.name)
        size = symbol.size or size_if_unsized
        if size < _FIELDS_SIZE:
            raise SpecError(f"map definition is {size} bytes, smaller than struct bpf_map_def "
                            f"({_FIELDS_SIZE})", section=SECTION, symbol=symbol.name, offset=symbol.value)
        if symbol.value + size > len(data):
            raise SpecError(f"map definition [{symbol.value}, +{size}) runs past the section "
                            f"({len(data)} bytes)", section=SECTION, symbol=symbol.name,
                            offset=symbol.value)
        raw = data[symbol.value : symbol.value + size]
        map_type, key_size, value_size, max_entries, flags = struct.unpack_from(e + "5I", raw)
        try:
            kind = MapType(map_type)
        except ValueError:
            raise SpecError(f"unknown map type {map_type}", section=SECTION, symbol=symbol.name) from None
        yield MapSpec(
            name=symbol.name,
            type=kind,
            key_size=key_size,
            value_size=value_size,
            max_entries=max_entries,
            flags=flags,
            extra=raw[_FIELDS_SIZE:] or None,
        )
