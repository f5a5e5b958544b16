"""The ELF layer of the reader: sections, symbols and relocations of a BPF object.

pyelftools reads the ELF header (with its ``Elf_Ehdr`` struct, see :func:`_parse_elf_header`);
the section header table and the bulk tables (symbols, relocations) are decoded here with
``struct.iter_unpack`` over the raw bytes, which is many times faster than iterating
pyelftools' per-entry objects. Every offset and size is checked against the file's real
size before it is used. No syscalls.
"""

from __future__ import annotations

import io
import operator
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.elf.structs import ELFStructs

from ebpfspec.errors import SpecError

EM_BPF = 247
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_REL = 9
SHT_NOBITS = 8
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_XINDEX = 0xFFFF

STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3

_SYM_SIZE = 24
_VALUE = operator.attrgetter("value")
_REL_SIZE = 16


@dataclass(frozen=True, slots=True)
class Section:
    """One section header, with its index and name."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


@dataclass(frozen=True, slots=True)
class Symbol:
    """One ``Elf64_Sym``."""

    index: int
    name: str
    bind: int
    type: int
    visibility: int
    section_index: int
    value: int
    size: int


@dataclass(frozen=True, slots=True)
class Relocation:
    """One ``Elf64_Rel``: at ``offset`` in the target section, refer to ``symbol``."""

    offset: int
    symbol: Symbol
    type: int


# The reader makes one Section, Symbol and Relocation per entry of the file's tables; these
# build them without the dataclasses' __init__, which sets each field through
# object.__setattr__ (what frozen=True costs): the slot descriptors are set directly, at
# about half the cost. Arguments in field order, exactly as for the class itself.
_new = object.__new__
_SECTION_SET = tuple(Section.__dict__[f].__set__ for f in Section.__slots__)
_SYMBOL_SET = tuple(Symbol.__dict__[f].__set__ for f in Symbol.__slots__)
_RELOCATION_SET = tuple(Relocation.__dict__[f].__set__ for f in Relocation.__slots__)


def _section(index: int, name: str, type: int, flags: int, offset: int, size: int, link: int,
             info: int, entsize: int) -> Section:
    section: Section = _new(Section)
    s_index, s_name, s_type, s_flags, s_offset, s_size, s_link, s_info, s_entsize = _SECTION_SET
    s_index(section, index)
    s_name(section, name)
    s_type(section, type)
    s_flags(section, flags)
    s_offset(section, offset)
    s_size(section, size)
    s_link(section, link)
    s_info(section, info)
    s_entsize(section, entsize)
    return section


def _symbol(index: int, name: str, bind: int, type: int, visibility: int, section_index: int,
            value: int, size: int) -> Symbol:
    symbol: Symbol = _new(Symbol)
    s_index, s_name, s_bind, s_type, s_visibility, s_section_index, s_value, s_size = _SYMBOL_SET
    s_index(symbol, index)
    s_name(symbol, name)
    s_bind(symbol, bind)
    s_type(symbol, type)
    s_visibility(symbol, visibility)
    s_section_index(symbol, section_index)
    s_value(symbol, value)
    s_size(symbol, size)
    return symbol


def _relocation(offset: int, symbol: Symbol, type: int) -> Relocation:
    relocation: Relocation = _new(Relocation)
    s_offset, s_symbol, s_type = _RELOCATION_SET
    s_offset(relocation, offset)
    s_symbol(relocation, symbol)
    s_type(relocation, type)
    return relocation


class ObjectFile:
    """A BPF ELF object held in memory: section headers, contents, symbols, relocations."""

    def __init__(self, data: bytes, *, name: str = "<bytes>"):
        self.data = bytes(data)
        self.name = name
        try:
            header, little_endian, elfclass = _parse_elf_header(self.data)
            self.byte_order: Literal["little", "big"] = "little" if little_endian else "big"
            if elfclass != 64:
                raise SpecError(f"{name}: not a 64-bit ELF object (ELFCLASS{elfclass})")
            machine = header["e_machine"]
            if machine not in ("EM_BPF", EM_BPF):
                raise SpecError(f"{name}: not a BPF object (e_machine {machine})")
            self.sections = tuple(self._read_sections(header))
        except ELFError as err:
            raise SpecError(f"{name}: malformed ELF: {err}") from None
        except (struct.error, ValueError, KeyError, IndexError, UnicodeDecodeError) as err:
            if isinstance(err, SpecError):
                raise
            raise SpecError(f"{name}: malformed ELF: {err}") from None
        self._e = "<" if self.byte_order == "little" else ">"
        self._by_name = {s.name: s for s in self.sections}
        self.symbols = self._read_symbols()
        # indexes built once: per-section lookups must not rescan every symbol/section
        self._symbols_by_section: dict[int, list[Symbol]] = {}
        self._symbols_at: dict[tuple[int, int], list[Symbol]] = {}
        by_section, at = self._symbols_by_section, self._symbols_at
        for sym in sorted(self.symbols, key=_VALUE):
            section_index = sym.section_index
            if section_index in by_section:
                by_section[section_index].append(sym)
            else:
                by_section[section_index] = [sym]
            key = (section_index, sym.value)
            if key in at:
                at[key].append(sym)
            else:
                at[key] = [sym]
        self._rel_sections: dict[int, list[Section]] = {}
        for rel in self.sections:
            if rel.type == SHT_REL:
                self._rel_sections.setdefault(rel.info, []).append(rel)

    # -- sections ---------------------------------------------------------------------

    def _read_sections(self, header: Any) -> Iterator[Section]:
        # The section header table is decoded here, not by pyelftools: its section objects
        # read names, linked sections and contents before anything is checked against the
        # file's size (huge offsets, self-linked sections, string tables past the end).
        e = "<" if self.byte_order == "little" else ">"
        shoff, shentsize, shnum, shstrndx = (header[k] for k in ("e_shoff", "e_shentsize",
                                                                  "e_shnum", "e_shstrndx"))
        if shoff == 0:
            return
        if shentsize != _SHDR_SIZE:
            raise SpecError(f"{self.name}: e_shentsize is {shentsize}, expected {_SHDR_SIZE}")
        if shoff + _SHDR_SIZE > len(self.data):
            raise SpecError(f"{self.name}: section header table at {shoff:#x} lies past the end of "
                            f"the file ({len(self.data):#x} bytes)")
        first = _SHDR[e].unpack_from(self.data, shoff)
        count = shnum or first[5]  # e_shnum 0: the real count is section 0's sh_size
        if shoff + count * _SHDR_SIZE > len(self.data):
            raise SpecError(f"{self.name}: section header table ({count} entries at {shoff:#x}) runs "
                            f"past the end of the file ({len(self.data):#x} bytes)")
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]
        headers = list(_SHDR[e].iter_unpack(self.data[shoff : shoff + count * _SHDR_SIZE]))
        if not 0 < shstrndx < count:
            raise SpecError(f"{self.name}: section header string table index {shstrndx} is out of "
                            f"range ({count} sections)")
        strtab = headers[shstrndx]
        if strtab[1] == SHT_NOBITS or strtab[4] + strtab[5] > len(self.data):
            raise SpecError(f"{self.name}: section header string table (section {shstrndx}): contents "
                            f"[{strtab[4]:#x}, +{strtab[5]:#x}) are not in the file "
                            f"({len(self.data):#x} bytes)")
        names = self.data[strtab[4] : strtab[4] + strtab[5]]
        find, names_size, file_size = names.find, len(names), len(self.data)
        for index, (sh_name, sh_type, flags, _addr, offset, size, link, info, _align, entsize) in (
            enumerate(headers)
        ):
            end = find(b"\0", sh_name) if index and sh_name < names_size else -1
            if end >= 0:  # what _string does for a good offset, inlined
                name = names[sh_name:end].decode("utf-8", "surrogateescape")
            elif index:  # "" or its error
                name = _string(names, sh_name, f"section header string table (entry {index})")
            else:
                name = ""
            if sh_type != SHT_NOBITS and offset + size > file_size:
                raise SpecError(f"contents [{offset:#x}, +{size:#x}) run past the end of the file "
                                f"({len(self.data):#x} bytes)", section=name or f"#{index}")
            yield _section(index, name, sh_type, flags, offset, size, link, info, entsize)

    def section(self, name: str) -> Section | None:
        """The section called ``name``, if any."""
        return self._by_name.get(name)

    def section_at(self, index: int, *, referrer: str) -> Section:
        """Section number ``index``; ``SpecError`` naming ``referrer`` if it does not exist."""
        if not 0 <= index < len(self.sections):
            raise SpecError(f"{referrer} refers to section index {index}, which does not exist")
        return self.sections[index]

    def contents(self, section: Section) -> bytes:
        """The bytes of ``section`` (empty for ``SHT_NOBITS`` such as ``.bss``)."""
        if section.type == SHT_NOBITS:
            return b""
        return self.data[section.offset : section.offset + section.size]

    # -- symbols -----------------------------------------------------------------------

    def _read_symbols(self) -> tuple[Symbol, ...]:
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is None:
            return ()
        if symtab.size % _SYM_SIZE:
            raise SpecError(f"size {symtab.size} is not a multiple of {_SYM_SIZE}", section=symtab.name)
        strtab = self.contents(self.section_at(symtab.link, referrer=f"section {symtab.name!r}"))
        symbols: list[Symbol] = []
        append, find, table_size = symbols.append, strtab.find, len(strtab)
        for index, (name_off, info, other, shndx, value, size) in enumerate(
            struct.iter_unpack(self._e + "IBBHQQ", self.contents(symtab))
        ):
            end = find(b"\0", name_off) if name_off < table_size else -1
            if end >= 0:  # what _string does for a good offset, inlined
                name = strtab[name_off:end].decode("utf-8", "surrogateescape")
            else:  # "" or its error
                name = _string(strtab, name_off, symtab.name)
            append(_symbol(index, name, info >> 4, info & 0xF, other & 0x3, shndx, value, size))
        return tuple(symbols)

    def symbols_in(self, section: Section) -> list[Symbol]:
        """The symbols defined in ``section``, by address."""
        return list(self._symbols_by_section.get(section.index, ()))

    def symbols_at(self, section: Section, offset: int) -> list[Symbol]:
        """The symbols defined at ``offset`` in ``section``, in symbol table order."""
        return list(self._symbols_at.get((section.index, offset), ()))

    # -- relocations ---------------------------------------------------------------------

    def relocations_for(self, section: Section) -> tuple[Relocation, ...]:
        """The relocations applying to ``section`` (from every ``SHT_REL`` section targeting it)."""
        found: list[Relocation] = []
        for rel in self._rel_sections.get(section.index, ()):
            if rel.size % _REL_SIZE:
                raise SpecError(f"size {rel.size} is not a multiple of {_REL_SIZE}", section=rel.name)
            for offset, info in struct.iter_unpack(self._e + "QQ", self.contents(rel)):
                sym_index = info >> 32
                if sym_index >= len(self.symbols):
                    raise SpecError(
                        f"relocation refers to symbol {sym_index}, beyond the symbol table "
                        f"({len(self.symbols)} symbols)", section=rel.name, offset=offset)
                if offset >= max(section.size, 1):
                    raise SpecError(f"relocation offset is outside {section.name!r} ({section.size} bytes)",
                                    section=rel.name, offset=offset)
                found.append(_relocation(offset, self.symbols[sym_index], info & 0xFFFFFFFF))
        return tuple(found)


# -- the ELF header ------------------------------------------------------------------------

# pyelftools' ELFFile builds all its construct structs for every file it opens
# (create_basic_structs + create_advanced_structs, ~0.3 ms), which is most of the cost of
# reading a small BPF object, though only the header is read with them here. The structs
# depend only on the byte order and class and are not changed by parsing, so one
# ELFStructs per (little_endian, elfclass) is built once (basic structs only: Elf_Ehdr is
# one of them) and shared. Filled idempotently (a race builds an equal spare), so it is
# safe between threads.
_ELF_STRUCTS: dict[tuple[bool, int], Any] = {}


def _elf_structs(little_endian: bool, elfclass: int) -> Any:
    structs = _ELF_STRUCTS.get((little_endian, elfclass))
    if structs is None:
        structs = ELFStructs(little_endian=little_endian, elfclass=elfclass)
        structs.create_basic_structs()
        structs = _ELF_STRUCTS.setdefault((little_endian, elfclass), structs)
    return structs


def _parse_elf_header(data: bytes) -> tuple[Any, bool, int]:
    """The ELF header as pyelftools parses it (its ``Elf_Ehdr`` container), the byte order
    (True: little-endian) and the class (32 or 64).

    Identification first, with ELFFile's own checks and messages (``e_ident`` is the same for
    every class and byte order), then the header with the cached structs for that class and
    byte order. Raises :class:`ELFError` (``ELFParseError`` if the header is cut off), as
    ``ELFFile`` would.
    """
    if data[:4] != b"\x7fELF":
        raise ELFError("Magic number does not match")
    ei_class = data[4:5]
    if ei_class == b"\x01":
        elfclass = 32
    elif ei_class == b"\x02":
        elfclass = 64
    else:
        raise ELFError(f"Invalid EI_CLASS {ei_class!r}")
    ei_data = data[5:6]
    if ei_data == b"\x01":
        little_endian = True
    elif ei_data == b"\x02":
        little_endian = False
    else:
        raise ELFError(f"Invalid EI_DATA {ei_data!r}")
    header = struct_parse(_elf_structs(little_endian, elfclass).Elf_Ehdr, io.BytesIO(data), stream_pos=0)
    return header, little_endian, elfclass


# -- the section header table --------------------------------------------------------------

_SHDR_SIZE = 64
_SHDR = {e: struct.Struct(e + "IIQQQQIIQQ") for e in "<>"}  # Elf64_Shdr


def _string(table: bytes, offset: int, section: str) -> str:
    if offset >= len(table):
        if offset == 0:
            return ""
        raise SpecError(f"string offset {offset} is outside the string table", section=section)
    end = table.find(b"\0", offset)
    if end < 0:
        raise SpecError(f"string at offset {offset} is not NUL-terminated", section=section)
    return table[offset:end].decode("utf-8", "surrogateescape")
