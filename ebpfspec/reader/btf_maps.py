"""BTF-defined maps: the ``.maps`` section, read through its ``DATASEC``.

Each variable in ``.maps`` is an anonymous struct whose members encode the map:
``__uint(name, N)`` is a pointer to an array of N elements, ``__type(name, T)`` a
pointer to T, ``__array(values, ...)`` a zero-length array of pointers to an inner map
definition (maps of maps) or to a function prototype (program arrays). Initial
``values`` are relocations in ``.rel.maps``: slot *i* is 8*i bytes into the array.
"""

from __future__ import annotations

from collections.abc import Iterator

import btf
from ebpfspec.elf import STB_LOCAL, ObjectFile, Relocation, Symbol
from ebpfspec.enums import MapType, PinType
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapKV, MapSpec

SECTION = ".maps"

_UINT_FIELDS = {"type", "max_entries", "map_flags", "numa_node", "pinning", "map_extra",
                "key_size", "value_size"}

# Known values -> members: a dict lookup is several times cheaper than calling the enum.
# Values not here go through the enum call, which accepts or rejects them as always.
_MAP_TYPES: dict[int, MapType] = {int(m): m for m in MapType}
_PIN_TYPES: dict[int, PinType] = {int(p): p for p in PinType}


def read_btf_maps(obj: ObjectFile, types: btf.Spec | None) -> Iterator[MapSpec]:
    """Every map defined in ``.maps``, in the order of its variables."""
    section = obj.section(SECTION)
    if section is None:
        return
    if types is None:
        raise SpecError("BTF-defined maps need the object's .BTF, which is missing", section=SECTION)
    contents = obj.contents(section)
    if contents.count(0) != len(contents):  # any non-zero byte (at C speed)
        raise SpecError("map definitions hold initial data other than relocations ('.values'); "
                        "only '.values = {...}' initialisers are supported", section=SECTION)
    datasec = _datasec(types)
    symbols = {s.name: s for s in obj.symbols_in(section) if s.name}
    relocations = obj.relocations_for(section)
    sizes: dict[int, int] = {}  # type ID -> btf.sizeof: maps share their key and value types
    for var_info in datasec.vars:
        var = var_info.type
        if not isinstance(var, btf.Var):
            raise SpecError(f"DATASEC entry [{var.id}] is {var.kind}, not a VAR", section=SECTION)
        symbol = symbols.get(var.name)
        if symbol is None:
            raise SpecError("map has no ELF symbol in .maps", section=SECTION, symbol=var.name)
        if symbol.bind == STB_LOCAL:
            raise SpecError("static maps are not supported", section=SECTION, symbol=var.name)
        if symbol.value + symbol.size > section.size:
            raise SpecError(f"map definition [{symbol.value:#x}, +{symbol.size:#x}) lies outside the "
                            f"section ({section.size} bytes)", section=SECTION, symbol=var.name,
                            offset=symbol.value)
        definition = var.type
        if type(definition) is not btf.Struct:
            definition = btf.skip_qualifiers_and_typedefs(definition)
        if not isinstance(definition, btf.Struct):
            raise SpecError(f"map definition is a {definition.kind}, not a struct",
                            section=SECTION, symbol=var.name)
        yield _map_from_struct(var.name, definition, symbol, relocations, obj, sizes)


def _datasec(types: btf.Spec) -> btf.Datasec:
    found = types.types_by_name(SECTION, btf.Kind.DATASEC)
    if len(found) != 1:
        raise SpecError(f"expected one DATASEC '.maps' in BTF, found {len(found)}", section=SECTION)
    datasec = found[0]
    assert isinstance(datasec, btf.Datasec)
    return datasec


def _map_from_struct(
    name: str,
    definition: btf.Struct,
    symbol: Symbol | None,
    relocations: tuple[Relocation, ...],
    obj: ObjectFile,
    sizes: dict[int, int],
) -> MapSpec:
    """Decode one map definition struct (``symbol`` is None for inner map templates)."""
    uints: dict[str, int] = {}
    key: btf.Type | None = None
    value: btf.Type | None = None
    values_member: btf.Member | None = None
    for member in definition.members:
        field = member.name
        if field in _UINT_FIELDS:
            uints[field] = _uint(name, member)
        elif field == "key":
            key = _pointee(name, member)
        elif field == "value":
            value = _pointee(name, member)
        elif field == "values":
            values_member = member
        else:
            raise SpecError(f"unknown map definition field {field!r}",
                            section=SECTION, symbol=name)
    if "type" not in uints:
        raise SpecError("map definition has no 'type'", section=SECTION, symbol=name)
    map_type = _MAP_TYPES.get(uints["type"])
    if map_type is None:
        try:
            map_type = MapType(uints["type"])
        except ValueError:
            raise SpecError(f"unknown map type {uints['type']}", section=SECTION, symbol=name) from None
    pinning = _PIN_TYPES.get(uints.get("pinning", 0))
    if pinning is None:
        try:
            pinning = PinType(uints.get("pinning", 0))
        except ValueError:
            raise SpecError(f"unknown pinning {uints['pinning']}", section=SECTION, symbol=name) from None
    key_size = _size(name, "key", key, uints.get("key_size"), sizes)
    value_size = _size(name, "value", value, uints.get("value_size"), sizes)

    inner_map: MapSpec | None = None
    contents: tuple[MapKV, ...] = ()
    if values_member is not None:
        inner_map = _values_target(name, map_type, values_member, obj, relocations, sizes)
        if value_size == 0:
            value_size = 4  # fds / program ids
        if symbol is not None:
            contents = _initial_values(name, symbol, values_member, relocations, obj)
    return MapSpec(
        name=name,
        type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=uints.get("max_entries", 0),
        flags=uints.get("map_flags", 0),
        pinning=pinning,
        numa_node=uints.get("numa_node", 0),
        map_extra=uints.get("map_extra", 0),
        contents=contents,
        inner_map=inner_map,
        key=key,
        value=value,
    )


def _member_type(member: btf.Member) -> btf.Type:
    """``member.type``, without the error text that property formats on every call."""
    spec = member.spec
    return spec.type_by_id(member.type_id) if spec is not None else member.type


def _uint(map_name: str, member: btf.Member) -> int:
    """The N of ``__uint(name, N)``: ``int (*name)[N]``."""
    # skip_qualifiers only where there is something to skip: the usual case is a plain
    # pointer to a plain array.
    pointer = _member_type(member)
    if type(pointer) is not btf.Pointer:
        pointer = btf.skip_qualifiers(pointer)
    array: btf.Type | None = None
    if isinstance(pointer, btf.Pointer):
        array = pointer.type
        if type(array) is not btf.Array:
            array = btf.skip_qualifiers(array)
    if not isinstance(array, btf.Array):
        raise SpecError(f"field {member.name!r} is not declared with __uint()",
                        section=SECTION, symbol=map_name)
    return array.nelems


def _pointee(map_name: str, member: btf.Member) -> btf.Type:
    """The T of ``__type(name, T)``: ``T *name``."""
    pointer = _member_type(member)
    if type(pointer) is not btf.Pointer:
        pointer = btf.skip_qualifiers(pointer)
    if not isinstance(pointer, btf.Pointer):
        raise SpecError(f"field {member.name!r} is not declared with __type()",
                        section=SECTION, symbol=map_name)
    return pointer.type


def _size(map_name: str, what: str, t: btf.Type | None, declared: int | None,
          sizes: dict[int, int]) -> int:
    """The size of the key or value type ``t`` (``sizes`` memoizes by ID: one spec's types)."""
    if t is None:
        return declared or 0
    size = sizes.get(t.id)
    if size is None:
        try:
            size = sizes[t.id] = btf.sizeof(t)
        except btf.BTFError as err:
            raise SpecError(f"{what} type: {err}", section=SECTION, symbol=map_name) from None
    if declared is not None and declared != size:
        raise SpecError(f"{what}_size {declared} contradicts the {what} type's size {size}",
                        section=SECTION, symbol=map_name)
    return size


def _values_target(
    name: str, map_type: MapType, member: btf.Member, obj: ObjectFile,
    relocations: tuple[Relocation, ...], sizes: dict[int, int],
) -> MapSpec | None:
    """The inner map template of a map of maps (None for a program array)."""
    array = btf.skip_qualifiers(member.type)
    pointer = btf.skip_qualifiers(array.type) if isinstance(array, btf.Array) else None
    if not isinstance(pointer, btf.Pointer):
        raise SpecError("'values' must be declared with __array()", section=SECTION, symbol=name)
    target = btf.skip_qualifiers_and_typedefs(pointer.type)
    if map_type == MapType.PROG_ARRAY:
        if not isinstance(target, btf.FuncProto):
            raise SpecError("'values' of a program array must point to functions",
                            section=SECTION, symbol=name)
        return None
    if map_type not in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        raise SpecError(f"'values' is only allowed on program arrays and maps of maps, not {map_type}",
                        section=SECTION, symbol=name)
    if not isinstance(target, btf.Struct):
        raise SpecError("'values' of a map of maps must point to a map definition",
                        section=SECTION, symbol=name)
    return _map_from_struct(f"{name}_inner", target, None, relocations, obj, sizes)


def _initial_values(
    name: str, symbol: Symbol, member: btf.Member, relocations: tuple[Relocation, ...],
    obj: ObjectFile,
) -> tuple[MapKV, ...]:
    """``.values = {[i] = &x}``: each relocation inside the array names slot i's target."""
    start = symbol.value + member.offset // 8
    end = symbol.value + symbol.size  # the variable grows to hold its initialised slots
    contents: dict[int, str] = {}
    for rel in relocations:
        if not start <= rel.offset < end:
            continue
        if (rel.offset - start) % 8:
            raise SpecError("relocation inside 'values' is not 8-byte aligned",
                            section=SECTION, symbol=name, offset=rel.offset)
        slot = (rel.offset - start) // 8
        target = rel.symbol.name
        if not target:
            raise SpecError("'values' entry refers to an unnamed symbol",
                            section=SECTION, symbol=name, offset=rel.offset)
        contents[slot] = target
    return tuple(
        MapKV(slot.to_bytes(4, obj.byte_order), target) for slot, target in sorted(contents.items())
    )
