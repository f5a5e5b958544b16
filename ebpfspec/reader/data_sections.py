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
    """``types`` with each DATASEC's size and variable offsets taken from the ELF.

    The fixed spec is ``types``' raw type section with those words patched
    (:meth:`btf.Spec.with_datasec_layout`): the records keep their lengths, so nothing is
    marshaled and parsed again. ``types`` itself when nothing changes.
    """
    layout = datasec_layout(obj, types)
    return types.with_datasec_layout(layout) if layout else types


def datasec_layout(obj: ObjectFile, types: btf.Spec) -> dict[int, tuple[int, tuple[int, ...]]]:
    """The ID of each DATASEC the ELF changes → ``(size, variable offsets)`` from the ELF.

    A DATASEC with an ELF section of its name gets that section's size and, for each
    variable with a symbol in it, the symbol's value; DATASECs without a section
    (``.kconfig``, ``.ksyms``) and those already right are left out. Decodes only the
    DATASECs (variables are matched by name, :meth:`btf.Spec.name_of`, not decoded).
    Raises :class:`SpecError` for a section too large for BTF or a symbol outside its
    section; ``BTFError`` if a DATASEC is malformed or names a type ID that does not exist.
    """
    layout: dict[int, tuple[int, tuple[int, ...]]] = {}
    first_own = len(types.base) if types.base is not None else 0
    for t in types.types_by_kind(btf.Kind.DATASEC):
        assert isinstance(t, btf.Datasec)
        if t.id < first_own:  # split BTF: only this spec's own types
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
        stored = tuple(v.offset for v in t.vars)
        name_of = types.name_of  # the variable's name, without decoding the variable
        fixed = tuple(offsets.get(name_of(v.type_id), v.offset) for v in t.vars)
        if section.size != t.size or fixed != stored:
            layout[t.id] = (section.size, fixed)
    return layout


def read_data_maps(obj: ObjectFile, types: btf.Spec | None) -> Iterator[MapSpec]:
    """One single-entry array map per data section."""
    datasecs = _datasecs(types)
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
            value=datasecs.get(section.name),
        )


def read_variables(obj: ObjectFile, types: btf.Spec | None) -> Iterator[VariableSpec]:
    """One ``VariableSpec`` per named object symbol in a data section."""
    datasecs = _datasecs(types)
    for section in data_sections(obj):
        data = obj.contents(section)
        btf_vars = _btf_vars(datasecs.get(section.name))
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


def _datasecs(types: btf.Spec | None) -> dict[str, btf.Datasec | None]:
    """Each DATASEC by name, None for a name several have: one pass for all the sections."""
    found: dict[str, btf.Datasec | None] = {}
    if types is None:
        return found
    for datasec in types.types_by_kind(btf.Kind.DATASEC):
        assert isinstance(datasec, btf.Datasec)
        found[datasec.name] = None if datasec.name in found else datasec
    return found


def _btf_vars(datasec: btf.Datasec | None) -> dict[str, btf.Type]:
    if datasec is None:
        return {}
    found: dict[str, btf.Type] = {}
    for v in datasec.vars:
        var = v.type
        found[var.name] = var
    return found
