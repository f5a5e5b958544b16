"""The ELF layer of the reader: sections, symbols and relocations of a BPF object.

pyelftools reads the ELF header; the section header table and the bulk tables (symbols,
relocations) are decoded here with ``struct.iter_unpack`` over the raw bytes, which is many times
faster than iterating pyelftools' per-entry objects. Every offset and size is checked
against the file's real size before it is used. No syscalls.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

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


class ObjectFile:
    """A BPF ELF object held in memory: section headers, contents, symbols, relocations."""

    def __init__(self, data: bytes, *, name: str = "<bytes>"):
        self.data = bytes(data)
        self.name = name
        try:
            elf = ELFFile(io.BytesIO(self.data))
            header = elf.header
            self.byte_order: Literal["little", "big"] = "little" if elf.little_endian else "big"
            if elf.elfclass != 64:
                raise SpecError(f"{name}: not a 64-bit ELF object (ELFCLASS{elf.elfclass})")
            machine = header["e_machine"]
            if machine not in ("EM_BPF", EM_BPF):
                raise SpecError(f"{name}: not a BPF object (e_machine {machine})")
            self.sections = tuple(self._read_sections(elf))
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
        for sym in sorted(self.symbols, key=lambda s: s.value):
            self._symbols_by_section.setdefault(sym.section_index, []).append(sym)
            self._symbols_at.setdefault((sym.section_index, sym.value), []).append(sym)
        self._rel_sections: dict[int, list[Section]] = {}
        for rel in self.sections:
            if rel.type == SHT_REL:
                self._rel_sections.setdefault(rel.info, []).append(rel)

    # -- sections ---------------------------------------------------------------------

    def _read_sections(self, elf: ELFFile) -> Iterator[Section]:
        # The section header table is decoded here, not by pyelftools: its section objects
        # read names, linked sections and contents before anything is checked against the
        # file's size (huge offsets, self-linked sections, string tables past the end).
        e = "<" if elf.little_endian else ">"
        shoff, shentsize, shnum, shstrndx = (elf.header[k] for k in ("e_shoff", "e_shentsize",
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
        for index, (sh_name, sh_type, flags, _addr, offset, size, link, info, _align, entsize) in (
            enumerate(headers)
        ):
            name = _string(names, sh_name, f"section header string table (entry {index})") if index else ""
            if sh_type != SHT_NOBITS and offset + size > len(self.data):
                raise SpecError(f"contents [{offset:#x}, +{size:#x}) run past the end of the file "
                                f"({len(self.data):#x} bytes)", section=name or f"#{index}")
            yield Section(index, name, sh_type, flags, offset, size, link, info, entsize)

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
        symbols = []
        for index, (name_off, info, other, shndx, value, size) in enumerate(
            struct.iter_unpack(self._e + "IBBHQQ", self.contents(symtab))
        ):
            symbols.append(Symbol(
                index, _string(strtab, name_off, symtab.name), info >> 4, info & 0xF, other & 0x3,
                shndx, value, size,
            ))
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
                found.append(Relocation(offset, self.symbols[sym_index], info & 0xFFFFFFFF))
        return tuple(found)


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
