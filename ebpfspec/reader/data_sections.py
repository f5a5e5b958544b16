"""Global data: ``.data``, ``.rodata``, ``.bss``, ``.data.*``, ``.rodata.*`` sections.

Each section becomes a single-entry ``ARRAY`` map holding the whole section (``.rodata*``
read-only for programs and frozen after loading), and each variable in it a
``VariableSpec``. clang leaves every ``DATASEC`` in ``.BTF`` with size 0 and offsets 0;
:func:`fix_datasecs` takes the real ones from the ELF section headers and symbols, as
libbpf does.
"""

from __future__ import annotations

from collections.abc import Iterator

import btf
from ebpfspec.elf import SHF_EXECINSTR, SHT_NOBITS, SHT_PROGBITS, STT_OBJECT, ObjectFile, Section
from ebpfspec.enums import MapType
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapKV, MapSpec
from ebpfspec.variablespec import VariableSpec

#: ``BPF_F_RDONLY_PROG``: programs may only read the map.
BPF_F_RDONLY_PROG = 1 << 7

#: Largest data section accepted. ``.bss`` has no bytes in the file, so its size is
#: bounded here rather than by the file's real size.
MAX_DATA_SECTION_SIZE = 64 << 20

_U32_MAX = 0xFFFFFFFF


def is_data_section(section: Section) -> bool:
    """True for sections that hold global variables."""
    if section.type not in (SHT_PROGBITS, SHT_NOBITS) or section.flags & SHF_EXECINSTR:
        return False
    name = section.name
    return name in (".data", ".rodata", ".bss") or name.startswith((".data.", ".rodata.", ".bss."))


def is_read_only(name: str) -> bool:
    """True for ``.rodata`` and ``.rodata.*``."""
    return name == ".rodata" or name.startswith(".rodata.")


def data_sections(obj: ObjectFile) -> list[Section]:
    """The object's data sections, checked for size, in section order."""
    sections = [s for s in obj.sections if is_data_section(s) and s.size > 0]
    for s in sections:
        if s.size > MAX_DATA_SECTION_SIZE:
            raise SpecError(f"{s.size} bytes is larger than the {MAX_DATA_SECTION_SIZE} bytes "
                            "allowed for a data section", section=s.name)
    return sections


def fix_datasecs(obj: ObjectFile, types: btf.Spec) -> btf.Spec:
    """``types`` with each DATASEC's size and variable offsets taken from the ELF."""
    replacements: dict[int, btf.Type] = {}
    for t in types.own_types():
        if not isinstance(t, btf.Datasec):
            continue
        section = obj.section(t.name)
        if section is None:  # .kconfig / .ksyms: no ELF section, offsets are the loader's
            continue
        if section.size > _U32_MAX:
            raise SpecError(f"{section.size} bytes does not fit a BTF DATASEC", section=section.name)
        offsets: dict[str, int] = {}
        for sym in obj.symbols_in(section):
            if sym.name and sym.value > section.size:
                raise SpecError(f"symbol at {sym.value:#x} lies outside the section ({section.size} bytes)",
                                section=section.name, symbol=sym.name, offset=sym.value)
            if sym.name:
                offsets[sym.name] = sym.value
        secinfos = tuple(
            btf.VarSecinfo(v.type_id, offsets.get(v.type.name, v.offset), v.size) for v in t.vars
        )
        fixed = btf.Datasec(t.id, t.name, section.size, secinfos)
        if fixed != t:
            replacements[t.id] = fixed
    if not replacements:
        return types
    return btf.Spec.from_types(
        [replacements.get(t.id, t) for t in types.own_types()], byte_order=types.byte_order
    )


def read_data_maps(obj: ObjectFile, types: btf.Spec | None) -> Iterator[MapSpec]:
    """One single-entry array map per data section."""
    for section in data_sections(obj):
        read_only = is_read_only(section.name)
        contents: tuple[MapKV, ...] = ()
        if section.type != SHT_NOBITS:
            contents = (MapKV(b"\0\0\0\0", obj.contents(section)),)
        yield MapSpec(
            name=section.name,
            type=MapType.ARRAY,
            key_size=4,
            value_size=section.size,
            max_entries=1,
            flags=BPF_F_RDONLY_PROG if read_only else 0,
            contents=contents,
            freeze=read_only,
            value=_datasec_type(types, section.name),
        )


def read_variables(obj: ObjectFile, types: btf.Spec | None) -> Iterator[VariableSpec]:
    """One ``VariableSpec`` per named object symbol in a data section."""
    for section in data_sections(obj):
        data = obj.contents(section)
        btf_vars = _btf_vars(types, section.name)
        claimed = 0  # overlapping variables would each get a copy: bound the total by the section
        for symbol in obj.symbols_in(section):
            if symbol.type != STT_OBJECT or not symbol.name:
                continue
            if symbol.value + symbol.size > section.size:
                raise SpecError(f"variable [{symbol.value}, +{symbol.size}) lies outside the section "
                                f"({section.size} bytes)", section=section.name, symbol=symbol.name)
            claimed += symbol.size
            if claimed > section.size:
                raise SpecError(f"variables overlap: together they claim more than the section's "
                                f"{section.size} bytes", section=section.name, symbol=symbol.name,
                                offset=symbol.value)
            if section.type == SHT_NOBITS:
                value = bytes(symbol.size)
            else:
                value = data[symbol.value : symbol.value + symbol.size]
            yield VariableSpec(
                name=symbol.name,
                section_name=section.name,
                offset=symbol.value,
                size=symbol.size,
                value=value,
                type=btf_vars.get(symbol.name),
                constant=is_read_only(section.name),
            )


def _datasec_type(types: btf.Spec | None, name: str) -> btf.Type | None:
    if types is None:
        return None
    found = types.types_by_name(name, btf.Kind.DATASEC)
    return found[0] if len(found) == 1 else None


def _btf_vars(types: btf.Spec | None, section_name: str) -> dict[str, btf.Type]:
    datasec = _datasec_type(types, section_name)
    if not isinstance(datasec, btf.Datasec):
        return {}
    return {v.type.name: v.type for v in datasec.vars}
