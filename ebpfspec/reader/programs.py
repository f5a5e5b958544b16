"""Programs: executable sections → functions → linked, symbolic ``ProgramSpec`` instructions.

The steps, each a small function below:

1. :func:`decode_section` — decode a section's instructions and index them by byte offset.
2. :func:`symbolize` — turn each relocation into a symbolic reference on its instruction
   (map loads, data-section loads with their offset, bpf-to-bpf calls, function pointers
   as ``BPF_PSEUDO_FUNC``, kfunc calls and extern variables), plus unrelocated calls
   inside the section.
3. :func:`attach_ext_infos` — put ``.BTF.ext`` func info, line info and CO-RE records on
   the instructions they belong to.
4. :func:`split_functions` — cut the section into functions at its function symbols.
5. :func:`link_program` — append every subprogram a program reaches (each once) and
   patch call/function-pointer immediates to the final layout.

Functions in ``.text`` are subprograms; functions in any other executable section are
programs, typed by their section name (:mod:`ebpfspec.sections`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import btf
from btf.ext import ExtInfos
from ebpfspec.asm import Instruction, Instructions
from ebpfspec.asm.instruction import Metadata
from ebpfspec.asm.opcodes import (
    LD_IMM64,
    PSEUDO_FUNC,
    PSEUDO_KFUNC_CALL,
    PSEUDO_MAP_FD,
    PSEUDO_MAP_VALUE,
    Class,
    JumpOp,
)
from ebpfspec.elf import (
    SHF_EXECINSTR,
    SHN_UNDEF,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
    ObjectFile,
    Relocation,
    Section,
    Symbol,
)
from ebpfspec.enums import AttachType, ProgramType
from ebpfspec.errors import SpecError
from ebpfspec.programspec import ProgramSpec
from ebpfspec.reader.data_sections import is_data_section
from ebpfspec.sections import SectionInfo, classify_section

TEXT = ".text"
_LABEL = re.compile(r"^(\.L|LBB\d+_\d+$)")
_INSN = 8
_OP_CALL = Class.JMP | JumpOp.CALL  # 0x85: every BPF-to-BPF call has this opcode


@dataclass(frozen=True, slots=True)
class Function:
    """One function cut out of an executable section."""

    name: str
    section: str
    instructions: tuple[Instruction, ...]


@dataclass(slots=True)
class _DecodedSection:
    section: Section
    instructions: list[Instruction]
    offsets: list[int]  # byte offset of each instruction
    index_of_offset: dict[int, int]  # byte offset of an instruction -> its index


def is_function_symbol(symbol: Symbol) -> bool:
    """A symbol naming a function: ``STT_FUNC``, or ``STT_NOTYPE`` other than a compiler label.

    clang before 9 emitted functions as ``STT_NOTYPE``; its branch labels (``LBB0_2``,
    ``.L...``) are ``STT_NOTYPE`` too and are not functions.
    """
    if not symbol.name:
        return False
    if symbol.type == STT_FUNC:
        return True
    return symbol.type == STT_NOTYPE and _LABEL.match(symbol.name) is None


def executable_sections(obj: ObjectFile) -> list[Section]:
    """Sections holding code, in section order."""
    return [s for s in obj.sections if s.flags & SHF_EXECINSTR and s.size > 0]


def read_programs(
    obj: ObjectFile,
    types: btf.Spec | None,
    ext: ExtInfos | None,
    *,
    map_sections: Iterable[str],
    license: str,
    kernel_version: int,
) -> list[ProgramSpec]:
    """Every program of the object, each linked with the subprograms it calls."""
    map_section_names = set(map_sections)
    functions: dict[str, Function] = {}
    program_names: list[str] = []
    for section in executable_sections(obj):
        decoded = decode_section(obj, section)
        symbolize(obj, decoded, map_section_names)
        if ext is not None and types is not None:
            attach_ext_infos(decoded, ext, types)
        for function in split_functions(obj, decoded):
            if function.name in functions:
                raise SpecError("function is defined twice", section=section.name, symbol=function.name)
            functions[function.name] = function
            if section.name != TEXT:
                program_names.append(function.name)
    return [_program_spec(name, functions, obj, license, kernel_version) for name in program_names]


def decode_section(obj: ObjectFile, section: Section) -> _DecodedSection:
    """Step 1: the section's instructions, indexed by byte offset."""
    instructions = list(Instructions.decode(obj.contents(section), obj.byte_order, section=section.name))
    offsets: list[int] = []
    append = offsets.append
    offset = 0
    for insn in instructions:
        append(offset)
        offset += 16 if insn.opcode == LD_IMM64 else _INSN  # insn.width slots of 8 bytes
    return _DecodedSection(section, instructions, offsets, {off: i for i, off in enumerate(offsets)})


def symbolize(obj: ObjectFile, decoded: _DecodedSection, map_sections: set[str]) -> None:
    """Step 2: relocations (and in-section calls) become symbolic references."""
    name = decoded.section.name
    relocated = set()
    for rel in obj.relocations_for(decoded.section):
        index = decoded.index_of_offset.get(rel.offset)
        if index is None:
            raise SpecError(
                "relocation does not point at the start of an instruction", section=name, offset=rel.offset
            )
        decoded.instructions[index] = _relocated(obj, decoded.instructions[index], rel, name, map_sections)
        relocated.add(index)
    for index, insn in enumerate(decoded.instructions):
        if insn.opcode != _OP_CALL or index in relocated or not insn.is_bpf_to_bpf_call:
            continue
        # a call to a function in the same section carries no relocation
        at = decoded.offsets[index]
        target = at + (insn.constant + 1) * _INSN
        decoded.instructions[index] = insn.with_metadata(
            reference=_function_at(obj, decoded.section, target, name, at)
        )


def _relocated(
    obj: ObjectFile, insn: Instruction, rel: Relocation, section: str, map_sections: set[str]
) -> Instruction:
    symbol = rel.symbol

    def error(message: str) -> SpecError:
        return SpecError(message, section=section, offset=rel.offset)

    if symbol.section_index == SHN_UNDEF:
        return _extern_reference(insn, symbol.name, section, rel.offset)
    target = obj.section_at(symbol.section_index, referrer=f"symbol {symbol.name!r}")
    if target.name in map_sections:
        if not insn.is_ld_imm64:
            raise error(f"map {symbol.name!r} is referenced by a non-ld_imm64 instruction")
        map_name = symbol.name
        if symbol.type == STT_SECTION:  # old-style reference through the section symbol
            map_name = _symbol_at(
                obj, target, symbol.value + (insn.constant & 0xFFFFFFFF), section, rel.offset
            )
        return insn.replace(src=PSEUDO_MAP_FD, constant=0, reference=map_name)
    if is_data_section(target):
        if not insn.is_ld_imm64:
            raise error(f"data in {target.name!r} is referenced by a non-ld_imm64 instruction")
        offset = symbol.value + (insn.constant & 0xFFFFFFFF)
        if offset > target.size:
            raise error(f"reference to offset {offset} beyond {target.name!r} ({target.size} bytes)")
        return insn.replace(src=PSEUDO_MAP_VALUE, constant=offset << 32, reference=target.name)
    if target.flags & SHF_EXECINSTR:
        if insn.is_call:
            if symbol.type == STT_FUNC:
                return insn.with_metadata(reference=symbol.name)
            callee = symbol.value + (insn.constant + 1) * _INSN
            return insn.with_metadata(reference=_function_at(obj, target, callee, section, rel.offset))
        if insn.is_ld_imm64:  # a function pointer (bpf_loop callback, ...)
            callee = symbol.value + (insn.constant & 0xFFFFFFFF)
            if symbol.type == STT_FUNC:
                callee = symbol.value
            name = _function_at(obj, target, callee, section, rel.offset)
            return insn.replace(src=PSEUDO_FUNC, constant=0, reference=name)
        raise error(f"code symbol {symbol.name!r} is referenced by an unsupported instruction")
    raise error(f"relocation against {symbol.name or target.name!r} in unsupported section {target.name!r}")


def _extern_reference(insn: Instruction, name: str, section: str, offset: int) -> Instruction:
    if not name:
        raise SpecError("relocation against an unnamed undefined symbol", section=section, offset=offset)
    if insn.is_call:
        return insn.replace(src=PSEUDO_KFUNC_CALL, constant=0, reference=name)
    if insn.is_ld_imm64:
        return insn.with_metadata(reference=name)
    raise SpecError(
        f"extern {name!r} is referenced by an unsupported instruction", section=section, offset=offset
    )


def _function_at(obj: ObjectFile, section: Section, offset: int, referrer: str, at: int) -> str:
    for symbol in obj.symbols_at(section, offset):
        if is_function_symbol(symbol) and symbol.value == offset:
            return symbol.name
    raise SpecError(f"no function starts at offset {offset} of {section.name!r}", section=referrer, offset=at)


def _symbol_at(obj: ObjectFile, section: Section, offset: int, referrer: str, at: int) -> str:
    for symbol in obj.symbols_at(section, offset):
        if symbol.value == offset and symbol.name and symbol.type != STT_SECTION:
            return symbol.name
    raise SpecError(f"no symbol at offset {offset} of {section.name!r}", section=referrer, offset=at)


def attach_ext_infos(decoded: _DecodedSection, ext: ExtInfos, types: btf.Spec) -> None:
    """Step 3: BTF func info, line info and CO-RE records onto their instructions."""
    name = decoded.section.name
    func_infos, line_infos, core_relos = ext.for_section(name)
    insns = decoded.instructions

    def index_of(insn_off: int, what: str) -> int:
        index = decoded.index_of_offset.get(insn_off)
        if index is None:
            raise SpecError(
                f"{what} refers to offset {insn_off}, which starts no instruction",
                section=name,
                offset=insn_off,
            )
        return index

    # Everything is checked first, then each instruction gets all its records in one copy.
    # A later record for the same instruction replaces an earlier one, as it always did.
    metadata: dict[int, Metadata] = {}
    for info in func_infos:
        i = index_of(info.insn_off, "func_info")
        try:
            func = types.type_by_id(info.type_id)
        except btf.BTFError as err:
            raise SpecError(f"func_info: {err}", section=name, offset=info.insn_off) from None
        if not isinstance(func, btf.Func):
            raise SpecError(f"func_info names {func}, not a FUNC", section=name, offset=info.insn_off)
        metadata[i] = {"func_info": func}
    for line in line_infos:
        i = index_of(line.insn_off, "line_info")
        if i in metadata:
            metadata[i]["line_info"] = line
        else:
            metadata[i] = {"line_info": line}
    for relo in core_relos:
        i = index_of(relo.insn_off, "CO-RE relocation")
        if i in metadata:
            metadata[i]["core_relo"] = relo
        else:
            metadata[i] = {"core_relo": relo}
    for i, changes in metadata.items():
        insns[i] = insns[i].with_metadata(**changes)


def split_functions(obj: ObjectFile, decoded: _DecodedSection) -> list[Function]:
    """Step 4: the section cut into functions at its function symbols."""
    section = decoded.section
    starts = sorted({s.value: s for s in obj.symbols_in(section) if is_function_symbol(s)}.items())
    for offset, symbol in starts:
        if offset + symbol.size > section.size:
            raise SpecError(f"function [{offset:#x}, +{symbol.size:#x}) lies outside the section "
                            f"({section.size} bytes)", section=section.name, symbol=symbol.name,
                            offset=offset)
    if not starts:
        raise SpecError("executable section has no function symbols", section=section.name)
    if starts[0][0] != 0:
        raise SpecError("code before the first function", section=section.name, offset=0)
    functions = []
    for n, (offset, symbol) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else section.size
        if symbol.size and offset + symbol.size != end and n + 1 < len(starts):
            raise SpecError(
                f"function ends at {offset + symbol.size:#x} but the next starts at {end:#x}",
                section=section.name,
                symbol=symbol.name,
            )
        first = decoded.index_of_offset.get(offset)
        last = (
            decoded.index_of_offset.get(end, len(decoded.instructions))
            if end < section.size
            else len(decoded.instructions)
        )
        if first is None:
            raise SpecError(
                "function does not start at an instruction",
                section=section.name,
                symbol=symbol.name,
                offset=offset,
            )
        body = decoded.instructions[first:last]
        body[0] = body[0].with_metadata(symbol=symbol.name)
        functions.append(Function(symbol.name, section.name, tuple(body)))
    return functions


def link_program(name: str, functions: dict[str, Function]) -> Instructions:
    """Step 5: the program followed by every function it reaches, immediates patched."""
    order = [name]
    queued = {name}
    position = 0
    while position < len(order):
        for insn in functions[order[position]].instructions:
            callee = insn.reference
            if callee is None or callee in queued:
                continue
            if insn.is_bpf_to_bpf_call or insn.is_load_of_function_pointer:
                if callee not in functions:
                    raise SpecError(f"calls unknown function {callee!r}", symbol=order[position])
                queued.add(callee)
                order.append(callee)
        position += 1
    linked: list[Instruction] = []
    for function_name in order:
        linked.extend(functions[function_name].instructions)
    return Instructions._of_list(_patch_calls(linked))  # every item is an Instruction already


def _patch_calls(instructions: Sequence[Instruction]) -> list[Instruction]:
    starts: dict[str, int] = {}
    referring: list[tuple[int, int, str]] = []  # (index, raw slot, reference) of instructions with one
    slot = 0
    for index, insn in enumerate(instructions):
        if insn.symbol is not None:
            starts.setdefault(insn.symbol, slot)
        if insn.reference is not None:
            referring.append((index, slot, insn.reference))
        slot += 2 if insn.opcode == LD_IMM64 else 1  # insn.width
    patched = list(instructions)
    for index, at, reference in referring:
        insn = instructions[index]
        if insn.is_bpf_to_bpf_call or insn.is_load_of_function_pointer:
            patched[index] = insn.replace(constant=starts[reference] - at - 1)
    return patched


def _program_flags(info: SectionInfo | None) -> int:
    return 0 if info is None else int(info.program_flags)


def _program_spec(
    name: str, functions: dict[str, Function], obj: ObjectFile, license: str, kernel_version: int
) -> ProgramSpec:
    section = functions[name].section
    info = classify_section(section)
    return ProgramSpec(
        name=name,
        type=info.program_type if info is not None else ProgramType.UNSPEC,
        attach_type=info.attach_type if info is not None else AttachType.NONE,
        attach_to=info.attach_to if info is not None else "",
        section_name=section,
        instructions=link_program(name, functions),
        license=license,
        kernel_version=kernel_version,
        flags=_program_flags(info),
        byte_order=obj.byte_order,
    )
