"""The ELF reader against malformed objects: every rejection is a ``SpecError`` naming its place.

Each case starts from a real testdata object and edits bytes at offsets computed with
pyelftools (ELF header fields, section headers, symbol table entries, relocation
entries), in the object's own byte order. The contract (DESIGN.md): everything the
reader rejects raises ``ebpfspec.SpecError`` naming the section/symbol/offset at fault;
malformed input never raises anything else, never hangs, and never allocates memory in
proportion to a size field not checked against the file's real size.
"""

from __future__ import annotations

import io
import random
import re
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from elftools.elf.elffile import ELFFile

import ebpfspec
from ebpfspec import SpecError
from tests.conftest import TESTDATA, bpf_objects

ORDERS = ["el", "eb"]

# Elf64_Ehdr, Elf64_Shdr, Elf64_Sym and Elf64_Rel fields: name -> (offset, struct code).
EHDR = {
    "e_type": (16, "H"), "e_machine": (18, "H"), "e_version": (20, "I"), "e_shoff": (40, "Q"),
    "e_shentsize": (58, "H"), "e_shnum": (60, "H"), "e_shstrndx": (62, "H"),
}
SHDR = {
    "sh_name": (0, "I"), "sh_type": (4, "I"), "sh_flags": (8, "Q"), "sh_offset": (24, "Q"),
    "sh_size": (32, "Q"), "sh_link": (40, "I"), "sh_info": (44, "I"), "sh_entsize": (56, "Q"),
}
SYM = {
    "st_name": (0, "I"), "st_info": (4, "B"), "st_shndx": (6, "H"), "st_value": (8, "Q"),
    "st_size": (16, "Q"),
}
REL = {"r_offset": (0, "Q"), "r_info": (8, "Q")}
SHDR_SIZE, SYM_SIZE, REL_SIZE = 64, 24, 16
LD_IMM64 = 0x18


class Elf:
    """A testdata object's bytes, with its layout (from pyelftools) and field patchers."""

    def __init__(self, name: str):
        self.name = name
        self.orig = (TESTDATA / name).read_bytes()
        self.data = bytearray(self.orig)
        self.elf: Any = ELFFile(io.BytesIO(self.orig))
        self.order: Literal["little", "big"] = "little" if self.elf.little_endian else "big"
        self.e = "<" if self.order == "little" else ">"

    # -- layout of the original object ---------------------------------------------------------

    def header(self, field: str) -> int:
        return int(self.elf.header[field])

    def section_index(self, name: str) -> int:
        index = self.elf.get_section_index(name)
        assert index is not None, f"{self.name} has no section {name!r}"
        return int(index)

    def shdr(self, name: str) -> Any:
        return self.elf.get_section(self.section_index(name)).header

    def shdr_offset(self, name: str) -> int:
        """File offset of section ``name``'s header."""
        return self.header("e_shoff") + self.section_index(name) * SHDR_SIZE

    def symbols(self) -> list[Any]:
        return list(self.elf.get_section_by_name(".symtab").iter_symbols())

    def symbol_index(self, name: str) -> int:
        found = [i for i, s in enumerate(self.symbols()) if s.name == name]
        assert len(found) == 1, f"{self.name}: symbol {name!r} found {len(found)} times"
        return found[0]

    def symbol(self, name: str) -> Any:
        return self.symbols()[self.symbol_index(name)]

    def sym_offset(self, name: str) -> int:
        """File offset of symbol ``name``'s ``Elf64_Sym``."""
        return int(self.shdr(".symtab")["sh_offset"]) + self.symbol_index(name) * SYM_SIZE

    def relocations(self, rel_section: str) -> list[tuple[int, int, str]]:
        """``(r_offset, symbol index, symbol name)`` of each entry of ``rel_section``."""
        symbols = self.symbols()
        return [
            (int(r["r_offset"]), int(r["r_info_sym"]), symbols[r["r_info_sym"]].name)
            for r in self.elf.get_section_by_name(rel_section).iter_relocations()
        ]

    def rel_offset(self, rel_section: str, index: int) -> int:
        """File offset of entry ``index`` of ``rel_section``."""
        return int(self.shdr(rel_section)["sh_offset"]) + index * REL_SIZE

    def contents(self, name: str) -> bytes:
        h = self.shdr(name)
        return self.orig[h["sh_offset"] : h["sh_offset"] + h["sh_size"]]

    # -- patching --------------------------------------------------------------------------------

    def put(self, offset: int, code: str, value: int) -> None:
        struct.pack_into(self.e + code, self.data, offset, value)

    def set_header(self, field: str, value: int) -> None:
        offset, code = EHDR[field]
        self.put(offset, code, value)

    def set_section(self, name: str, field: str, value: int) -> None:
        offset, code = SHDR[field]
        self.put(self.shdr_offset(name) + offset, code, value)

    def set_symbol(self, name: str, field: str, value: int) -> None:
        offset, code = SYM[field]
        self.put(self.sym_offset(name) + offset, code, value)

    def set_rel(self, rel_section: str, index: int, field: str, value: int) -> None:
        offset, code = REL[field]
        self.put(self.rel_offset(rel_section, index) + offset, code, value)

    def load(self) -> ebpfspec.CollectionSpec:
        return ebpfspec.load_collection_spec(bytes(self.data))


def obj(name: str, order: str) -> Elf:
    return Elf(f"{name}-{order}.o")


def rejects(data: bytes | bytearray | Elf, *parts: str) -> SpecError:
    """Load ``data``: it must raise ``SpecError`` whose message contains every one of ``parts``."""
    raw = bytes(data.data) if isinstance(data, Elf) else bytes(data)
    with pytest.raises(SpecError) as info:
        ebpfspec.load_collection_spec(raw)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return info.value


def section_at(name: str) -> str:
    return f"section {name!r}"


def symbol_at(name: str) -> str:
    return f"symbol {name!r}"


def offset_at(offset: int) -> str:
    return f"offset {offset:#x}"


def instruction_starts(code: bytes) -> Iterator[tuple[int, int]]:
    """``(byte offset, opcode)`` of each instruction of ``code`` (``ld_imm64`` is 16 bytes)."""
    at = 0
    while at < len(code):
        yield at, code[at]
        at += 16 if code[at] == LD_IMM64 else 8


def test_unpatched_objects_load() -> None:
    """The patchers leave an object intact when they write the values already there."""
    for order in ORDERS:
        o = obj("maps", order)
        o.set_header("e_shnum", o.header("e_shnum"))
        o.set_section(".symtab", "sh_size", o.shdr(".symtab")["sh_size"])
        o.set_symbol("hash_map", "st_value", o.symbol("hash_map")["st_value"])
        r_offset, sym, _ = o.relocations(".relxdp")[0]
        o.set_rel(".relxdp", 0, "r_offset", r_offset)
        o.set_rel(".relxdp", 0, "r_info", sym << 32 | 1)
        assert o.data == o.orig
        assert "hash_map" in o.load().maps


# -- not a BPF ELF object at all -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x7f", b"\x7fELF", b"hello, world\n" * 10, b"\0" * 64, b"\x7fELG" + bytes(60)],
    ids=["empty", "one-byte", "magic-only", "text", "zeros", "bad-magic"],
)
def test_not_an_elf(data: bytes) -> None:
    rejects(data, "malformed ELF")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("length", [4, 16, 20, 40, 63])
def test_truncated_in_elf_header(order: str, length: int) -> None:
    o = obj("maps", order)
    rejects(o.orig[:length], "malformed ELF")


@pytest.mark.parametrize("order", ORDERS)
def test_32_bit_class(order: str) -> None:
    o = obj("maps", order)
    o.data[4] = 1  # EI_CLASS = ELFCLASS32
    rejects(o, "not a 64-bit ELF object", "ELFCLASS32")


@pytest.mark.parametrize("order", ORDERS)
def test_bad_byte_order_and_class(order: str) -> None:
    o = obj("maps", order)
    o.data[5] = 7  # EI_DATA neither ELFDATA2LSB nor ELFDATA2MSB
    rejects(o, "malformed ELF")
    o = obj("maps", order)
    o.data[4] = 9  # EI_CLASS unknown
    rejects(o, "malformed ELF")


@pytest.mark.parametrize("order", ORDERS)
def test_wrong_machine(order: str) -> None:
    o = obj("maps", order)
    o.set_header("e_machine", 62)  # EM_X86_64
    rejects(o, "not a BPF object", "e_machine EM_X86_64")


# -- the section header table ----------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_truncated_in_section_header_table(order: str) -> None:
    o = obj("maps", order)
    shoff, shnum = o.header("e_shoff"), o.header("e_shnum")
    for cut in (shoff, shoff + 1, shoff + SHDR_SIZE - 1):
        rejects(o.orig[:cut], f"section header table at {shoff:#x} lies past the end of the file",
                f"({cut:#x} bytes)")
    for cut in (shoff + SHDR_SIZE, shoff + SHDR_SIZE * shnum // 2, len(o.orig) - 1):
        rejects(o.orig[:cut], f"section header table ({shnum} entries at {shoff:#x}) runs past the end",
                f"of the file ({cut:#x} bytes)")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("name", ["maps", "globals", "programs"])
def test_truncated_in_section_contents(name: str, order: str) -> None:
    """Cut the file in the middle of a section, then append the section header table
    (and the section name table it needs) again: the section cut off is named."""
    o = obj(name, order)
    shoff, shnum, shstrndx = o.header("e_shoff"), o.header("e_shnum"), o.header("e_shstrndx")
    btf = o.shdr(".BTF")
    cut = btf["sh_offset"] + btf["sh_size"] // 2
    names = o.elf.get_section(shstrndx)
    shdrs = bytearray(o.orig[shoff : shoff + shnum * SHDR_SIZE])
    struct.pack_into(o.e + "Q", shdrs, shstrndx * SHDR_SIZE + SHDR["sh_offset"][0], cut)
    data = bytearray(o.orig[:cut] + names.data() + shdrs)
    struct.pack_into(o.e + "Q", data, EHDR["e_shoff"][0], cut + names["sh_size"])
    # the first section (in header order, as the reader checks them) not wholly before the cut
    first_cut = next(
        s.name for i, s in enumerate(o.elf.iter_sections())
        if i != shstrndx and s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > cut
    )
    rejects(data, section_at(first_cut), "run past the end of the file")


@pytest.mark.parametrize("order", ORDERS)
def test_section_header_string_index_out_of_range(order: str) -> None:
    o = obj("maps", order)
    shnum = o.header("e_shnum")
    for index in (shnum, shnum + 1, 0xFEFF, 0):
        o.set_header("e_shstrndx", index)
        rejects(o, f"section header string table index {index} is out of range ({shnum} sections)")


@pytest.mark.parametrize("order", ORDERS)
def test_shoff_beyond_file(order: str) -> None:
    o = obj("maps", order)
    for shoff in (len(o.orig), len(o.orig) + 4096, 1 << 40, 2**64 - 1):
        o.set_header("e_shoff", shoff)
        rejects(o, f"section header table at {shoff:#x} lies past the end of the file")


@pytest.mark.parametrize("order", ORDERS)
def test_shentsize_not_64(order: str) -> None:
    o = obj("maps", order)
    for size in (0, 1, 40, 63, 65, 0xFFFF):
        o.set_header("e_shentsize", size)
        rejects(o, f"e_shentsize is {size}, expected 64")


def _assert_cheap(data: bytes, *parts: str, limit: int = 1 << 20) -> None:
    """``data`` is rejected quickly without allocating more than ``limit`` bytes."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        rejects(data, *parts)
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < limit, f"{peak} bytes allocated"


@pytest.mark.parametrize("order", ORDERS)
def test_shnum_huge_in_tiny_file(order: str) -> None:
    """e_shnum 65535 with a file of one ELF header and one section header: refused before
    anything is read (or allocated) per the claimed count."""
    o = obj("maps", order)
    data = bytearray(o.orig[:64] + o.orig[o.header("e_shoff") : o.header("e_shoff") + SHDR_SIZE])
    struct.pack_into(o.e + "Q", data, EHDR["e_shoff"][0], 64)
    struct.pack_into(o.e + "H", data, EHDR["e_shnum"][0], 65535)
    _assert_cheap(bytes(data), "(65535 entries at 0x40)", "runs past the end of the file (0x80 bytes)")


@pytest.mark.parametrize("order", ORDERS)
def test_extended_section_count_huge(order: str) -> None:
    """e_shnum 0 means "the count is section 0's sh_size" (ELF extended numbering)."""
    o = obj("maps", order)
    o.set_header("e_shnum", 0)
    count = 1 << 40
    o.put(o.header("e_shoff") + SHDR["sh_size"][0], "Q", count)
    _assert_cheap(bytes(o.data), f"({count} entries at {o.header('e_shoff'):#x})", "runs past the end")


@pytest.mark.parametrize("order", ORDERS)
def test_extended_section_count_valid(order: str) -> None:
    """... and a correct extended count (and extended e_shstrndx) is read as usual."""
    o = obj("maps", order)
    o.set_header("e_shnum", 0)
    o.put(o.header("e_shoff") + SHDR["sh_size"][0], "Q", o.header("e_shnum"))
    o.set_header("e_shstrndx", 0xFFFF)  # SHN_XINDEX: the index is section 0's sh_link
    o.put(o.header("e_shoff") + SHDR["sh_link"][0], "I", o.header("e_shstrndx"))
    assert o.load().maps.keys() == ebpfspec.load_collection_spec(o.orig).maps.keys()


# -- section headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("section", ["xdp", ".maps", ".BTF", ".BTF.ext", ".symtab", ".relxdp", "license"])
@pytest.mark.parametrize("field", ["sh_offset", "sh_size"])
def test_section_contents_beyond_file(section: str, field: str, order: str) -> None:
    o = obj("maps", order)
    for value in (len(o.orig) + 1, 0xFFFFFFFF, 2**64 - 1):
        o.set_section(section, field, value)
        rejects(o, section_at(section), "run past the end of the file")


@pytest.mark.parametrize("order", ORDERS)
def test_section_name_table_beyond_file(order: str) -> None:
    o = obj("maps", order)
    names = o.elf.get_section(o.header("e_shstrndx")).name
    o.set_section(names, "sh_offset", 0xFFFFFF0000000000)
    rejects(o, "section header string table (section 1)", "are not in the file")


@pytest.mark.parametrize("order", ORDERS)
def test_section_name_beyond_name_table(order: str) -> None:
    o = obj("maps", order)
    index = o.section_index(".maps")
    o.set_section(".maps", "sh_name", 0x100000)
    rejects(o, f"section header string table (entry {index})", "string offset 1048576 is outside")


@pytest.mark.parametrize("order", ORDERS)
def test_symtab_link_to_missing_section(order: str) -> None:
    o = obj("maps", order)
    for link in (o.header("e_shnum"), 0xFFFF, 0xFFFFFFFF):
        o.set_section(".symtab", "sh_link", link)
        rejects(o, "section '.symtab' refers to section index", f"{link}, which does not exist")


@pytest.mark.parametrize("order", ORDERS)
def test_symtab_size_not_multiple_of_24(order: str) -> None:
    o = obj("maps", order)
    size = o.shdr(".symtab")["sh_size"]
    for new in (size - 1, size - 12, 23):
        o.set_section(".symtab", "sh_size", new)
        rejects(o, section_at(".symtab"), f"size {new} is not a multiple of 24")


@pytest.mark.parametrize("order", ORDERS)
def test_rel_size_not_multiple_of_16(order: str) -> None:
    o = obj("maps", order)
    size = o.shdr(".relxdp")["sh_size"]
    o.set_section(".relxdp", "sh_size", size - 8)
    rejects(o, section_at(".relxdp"), f"size {size - 8} is not a multiple of 16")


# -- symbols ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_symbol_name_beyond_string_table(order: str) -> None:
    o = obj("maps", order)
    o.set_symbol("hash_map", "st_name", 0x100000)
    rejects(o, section_at(".symtab"), "string offset 1048576 is outside the string table")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("shndx", [0x3E7, 0xFF00, 0xFFF1])
def test_symbol_in_missing_section_used_by_relocation(order: str, shndx: int) -> None:
    """``table`` is referenced from ``xdp`` through a relocation against its own symbol."""
    o = obj("globals", order)
    assert "table" in [name for _, _, name in o.relocations(".relxdp")]
    o.set_symbol("table", "st_shndx", shndx)
    rejects(o, symbol_at("table"), f"refers to section index {shndx}, which does not exist")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("field", "value"), [("st_value", 768), ("st_value", 0xFFFFFFFF00000000), ("st_size", 0x10000)]
)
def test_map_symbol_outside_maps_section(order: str, field: str, value: int) -> None:
    o = obj("maps", order)
    assert o.shdr(".maps")["sh_size"] == 768
    o.set_symbol("hash_map", field, value)
    rejects(o, section_at(".maps"), symbol_at("hash_map"), "lies outside the section (768 bytes)")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("field", "value"), [("st_value", 44), ("st_value", 1 << 32), ("st_size", 1000)])
def test_variable_outside_data_section(order: str, field: str, value: int) -> None:
    o = obj("globals", order)
    o.set_symbol("table", field, value)
    rejects(o, section_at(".data"), symbol_at("table"), "lies outside the section (44 bytes)")


@pytest.mark.parametrize("order", ORDERS)
def test_variable_outside_bss(order: str) -> None:
    o = obj("globals", order)
    o.set_symbol("scratch", "st_size", 17)  # [12, +17) in the 28-byte .bss
    rejects(o, section_at(".bss"), symbol_at("scratch"), "lies outside the section (28 bytes)")


@pytest.mark.parametrize("order", ORDERS)
def test_overlapping_bss_variables_are_bounded(order: str) -> None:
    """.bss has no bytes in the file: three variables each claiming all of a 64 MiB .bss
    must not each get their own 64 MiB of zeros (a 7 KiB file asking for 192 MiB)."""
    o = obj("globals", order)
    o.set_section(".bss", "sh_size", 64 << 20)
    for name in ("hits", "last_len", "scratch"):
        o.set_symbol(name, "st_value", 0)
        o.set_symbol(name, "st_size", 64 << 20)
    _assert_cheap(bytes(o.data), section_at(".bss"), "variables overlap", limit=80 << 20)


@pytest.mark.parametrize("order", ORDERS)
def test_overlapping_data_variables(order: str) -> None:
    o = obj("globals", order)
    o.set_symbol("table", "st_value", 0)
    o.set_symbol("table", "st_size", 44)  # all of .data, over counter, settings, internal_state
    rejects(o, section_at(".data"), "variables overlap", "more than the section's 44 bytes")


@pytest.mark.parametrize("order", ORDERS)
def test_data_section_too_large_for_btf(order: str) -> None:
    o = obj("globals", order)
    o.set_section(".bss", "sh_size", 1 << 32)  # SHT_NOBITS: no bytes in the file to check it against
    rejects(o, section_at(".bss"), f"{1 << 32} bytes does not fit a BTF DATASEC")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("field", "value"), [("st_size", 0x1000), ("st_value", 0x1000), ("st_value", 2**64 - 8)]
)
def test_function_outside_code_section(order: str, field: str, value: int) -> None:
    o = obj("programs", order)
    size = o.shdr("xdp")["sh_size"]
    o.set_symbol("xdp_prog", field, value)
    rejects(o, section_at("xdp"), symbol_at("xdp_prog"), f"lies outside the section ({size} bytes)")


@pytest.mark.parametrize("order", ORDERS)
def test_last_function_of_shared_section_outside(order: str) -> None:
    """``tc`` holds three programs; the last one claims to run past the section."""
    o = obj("programs", order)
    last = max(("tc_prog", "tail_target", "tail_entry"), key=lambda n: int(o.symbol(n)["st_value"]))
    o.set_symbol(last, "st_size", o.shdr("tc")["sh_size"])
    rejects(o, section_at("tc"), symbol_at(last), "lies outside the section")


# -- relocations ----------------------------------------------------------------------------------


def _map_relocation(o: Elf) -> tuple[int, int]:
    """Index and offset of the first ``.relxdp`` entry against a map in ``.maps``."""
    maps_index = o.section_index(".maps")
    symbols = o.symbols()
    for index, (offset, sym, _) in enumerate(o.relocations(".relxdp")):
        if symbols[sym]["st_shndx"] == maps_index:
            return index, offset
    raise AssertionError("no map relocation")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("delta", [1, 4, 7, 8])
def test_relocation_not_at_instruction_start(order: str, delta: int) -> None:
    """Not a multiple of 8 (1, 4, 7), or the second half of an ``ld_imm64`` (8)."""
    o = obj("maps", order)
    index, offset = _map_relocation(o)
    assert o.contents("xdp")[offset] == LD_IMM64
    o.set_rel(".relxdp", index, "r_offset", offset + delta)
    rejects(o, section_at("xdp"), offset_at(offset + delta), "does not point at the start of an instruction")


@pytest.mark.parametrize("order", ORDERS)
def test_relocation_offset_beyond_section(order: str) -> None:
    o = obj("maps", order)
    size = o.shdr("xdp")["sh_size"]
    for offset in (size, size + 8, 2**64 - 8):
        o.set_rel(".relxdp", 0, "r_offset", offset)
        rejects(o, section_at(".relxdp"), offset_at(offset), f"is outside 'xdp' ({size} bytes)")


@pytest.mark.parametrize("order", ORDERS)
def test_relocation_symbol_beyond_symbol_table(order: str) -> None:
    o = obj("maps", order)
    count = len(o.symbols())
    offset, _, _ = o.relocations(".relxdp")[0]
    for sym in (count, count + 100, 0xFFFFFFFF):
        o.set_rel(".relxdp", 0, "r_info", sym << 32 | 1)
        rejects(o, section_at(".relxdp"), offset_at(offset),
                f"refers to symbol {sym}, beyond the symbol table")


@pytest.mark.parametrize("order", ORDERS)
def test_map_relocation_on_non_ld_imm64(order: str) -> None:
    o = obj("maps", order)
    index, offset = _map_relocation(o)
    relocated = {off for off, _, _ in o.relocations(".relxdp")}
    target = next(
        at for at, opcode in instruction_starts(o.contents("xdp"))
        if at > offset and opcode != LD_IMM64 and at not in relocated
    )
    o.set_rel(".relxdp", index, "r_offset", target)
    rejects(o, section_at("xdp"), offset_at(target), "is referenced by a non-ld_imm64 instruction")


# -- map definitions -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("size", [0x13, 12, 1])
def test_legacy_map_definition_too_small(order: str, size: int) -> None:
    o = obj("legacy_maps", order)
    o.set_symbol("legacy_hash", "st_size", size)
    rejects(o, section_at("maps"), symbol_at("legacy_hash"),
            f"map definition is {size} bytes, smaller than struct bpf_map_def (20)")


def _btf_strings(o: Elf) -> tuple[int, int]:
    """File offset and length of the string section of the object's ``.BTF``."""
    btf = o.contents(".BTF")
    hdr_len, _type_off, _type_len, str_off, str_len = struct.unpack_from(o.e + "5I", btf, 4)
    return int(o.shdr(".BTF")["sh_offset"]) + hdr_len + str_off, str_len


def _rename_btf_string(o: Elf, old: bytes, new: bytes) -> None:
    """Overwrite the BTF string ``old`` (NUL padding ``new`` to the same length)."""
    assert len(new) <= len(old)
    start, length = _btf_strings(o)
    table = o.orig[start : start + length]
    at = table.find(b"\0" + old + b"\0")
    assert at >= 0 and table.find(b"\0" + old + b"\0", at + 1) < 0
    o.data[start + at + 1 : start + at + 1 + len(old)] = new.ljust(len(old), b"\0")


@pytest.mark.parametrize("order", ORDERS)
def test_btf_map_unknown_field(order: str) -> None:
    o = obj("maps", order)
    _rename_btf_string(o, b"max_entries", b"max_entriez")
    rejects(o, section_at(".maps"), symbol_at("inner_a"), "unknown map definition field 'max_entriez'")


@pytest.mark.parametrize("order", ORDERS)
def test_btf_map_key_size_contradicts_key_type(order: str) -> None:
    """``max_entries`` renamed ``key_size``: inner_a (the first map in the DATASEC; key ``__u32``,
    16 entries) now says key_size 16."""
    o = obj("maps", order)
    _rename_btf_string(o, b"max_entries", b"key_size")
    rejects(o, section_at(".maps"), symbol_at("inner_a"), "key_size 16 contradicts the key type's size 4")


# -- .BTF and .BTF.ext -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("at", "code", "value"),
    [
        (0, "B", 0x9E),  # magic
        (1, "B", 0x00),  # magic
        (2, "B", 2),  # version
        (4, "I", 0xFFFF),  # hdr_len
        (4, "I", 8),  # hdr_len
        (8, "I", 0xFFFFFFF0),  # type_off
        (8, "I", 2),  # type_off, misaligned
        (12, "I", 0xFFFFFFFF),  # type_len
        (16, "I", 0xFFFFFFFF),  # str_off
        (20, "I", 0xFFFFFFFF),  # str_len
        (20, "I", 0),  # str_len
    ],
)
def test_corrupt_btf_header(order: str, at: int, code: str, value: int) -> None:
    o = obj("maps", order)
    o.put(int(o.shdr(".BTF")["sh_offset"]) + at, code, value)
    rejects(o, section_at(".BTF"))


@pytest.mark.parametrize("order", ORDERS)
def test_btf_bit_flips_in_header(order: str) -> None:
    o = obj("maps", order)
    base = int(o.shdr(".BTF")["sh_offset"])
    for byte in (0, 1, 2, 4, 5, 10, 14, 18, 22):
        o.data[:] = o.orig
        o.data[base + byte] ^= 0x40
        rejects(o, section_at(".BTF"))


def _ext_header(o: Elf) -> tuple[int, int, int, int]:
    """File offset of ``.BTF.ext``, its hdr_len, func_info_off and func_info_len."""
    base = int(o.shdr(".BTF.ext")["sh_offset"])
    hdr_len, func_off, func_len = struct.unpack_from(o.e + "3I", o.orig, base + 4)
    return base, hdr_len, func_off, func_len


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("count", [0xFFFFFFFF, 0x10000, 1000])
def test_btf_ext_count_too_large(order: str, count: int) -> None:
    o = obj("maps", order)
    base, hdr_len, func_off, _ = _ext_header(o)
    # func_info: u32 rec_size, then blocks of {u32 sec_name_off; u32 num_info; records}
    o.put(base + hdr_len + func_off + 8, "I", count)
    rejects(o, section_at(".BTF.ext"))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("at", "value"),
    [(8, 0xFFFFFFF0), (12, 0xFFFFFFFF), (4, 0xFFFFFFFF), (4, 4)],  # func_info_off/len, hdr_len
)
def test_btf_ext_header_out_of_range(order: str, at: int, value: int) -> None:
    o = obj("maps", order)
    o.put(int(o.shdr(".BTF.ext")["sh_offset"]) + at, "I", value)
    rejects(o, section_at(".BTF.ext"))


@pytest.mark.parametrize("order", ORDERS)
def test_btf_ext_bad_magic(order: str) -> None:
    o = obj("maps", order)
    o.data[int(o.shdr(".BTF.ext")["sh_offset"])] ^= 0xFF
    rejects(o, section_at(".BTF.ext"))


# -- license and version -------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("size", [0, 3, 5, 8])
def test_version_wrong_size(order: str, size: int) -> None:
    o = obj("license_version", order)
    o.set_section("version", "sh_size", size)
    rejects(o, section_at("version"), f"{size} bytes, expected a 4-byte kernel version")


@pytest.mark.parametrize("order", ORDERS)
def test_license_not_terminated(order: str) -> None:
    o = obj("license_version", order)
    assert o.contents("license") == b"GPL\0"
    o.set_section("license", "sh_size", 3)
    rejects(o, section_at("license"), "license is not NUL-terminated")
    o = obj("license_version", order)
    o.data[int(o.shdr("license")["sh_offset"]) + 3] = ord("!")
    rejects(o, section_at("license"), "license is not NUL-terminated")


# -- regressions: mutations that once escaped as other exceptions ----------------------------------


@pytest.mark.parametrize(
    ("name", "offset", "patch", "parts"),
    [
        # e_shoff 1: pyelftools parsed garbage section headers and overflowed seeking a name
        ("iproute2_maps-el.o", 0x28, "01000000", ("section header string table",)),
        # .strtab's sh_offset 0xffffff0000003419: OverflowError seeking to a section name
        ("many_maps-eb.o", 0x3897, "ffffffff",
         ("section header string table (section 1)", "not in the file")),
        # .maps symbol st_value 0xffffffff00000020: struct.error re-marshaling the DATASEC offsets
        ("xdp_test-el.o", 0xEF4, "ffffffff", ("section '.maps'", "symbol 'xdp_jmp'", "lies outside")),
        # .bss sh_size > 2**32 (SHT_NOBITS): struct.error re-marshaling the DATASEC size
        ("core-el.o", 0x1A4A, "ffffffff", ("section '.bss'", "does not fit a BTF DATASEC")),
        # .data symbol st_value 1 << 48: struct.error re-marshaling the DATASEC offsets
        ("globals-el.o", 0x1154, "00000100", ("section '.data'", "symbol 'counter'", "lies outside")),
    ],
)
def test_regression(name: str, offset: int, patch: str, parts: tuple[str, ...]) -> None:
    data = bytearray((TESTDATA / name).read_bytes())
    data[offset : offset + 4] = bytes.fromhex(patch)
    rejects(data, *parts)


@pytest.mark.parametrize("order", ORDERS)
def test_regression_huge_shoff(order: str) -> None:
    """e_shoff with high bits set: pyelftools' seek raised OverflowError."""
    o = obj("iproute2_maps", order)
    o.set_header("e_shoff", o.header("e_shoff") | 1 << 56)
    rejects(o, "section header table at", "lies past the end of the file")


def _many_programs(count: int) -> bytes:
    """A little-endian BPF object with ``count`` one-instruction XDP programs, each in its own
    section (all sharing the same 8 bytes of code)."""
    shdr = struct.Struct("<IIQQQQIIQQ")
    shstrtab, strtab, symtab = bytearray(b"\0.shstrtab\0.strtab\0.symtab\0"), bytearray(b"\0"), bytearray(24)
    names = []
    for i in range(count):
        names.append(len(shstrtab))
        shstrtab += f"xdp/p{i}\0".encode()
        symtab += struct.pack("<IBBHQQ", len(strtab), 1 << 4 | 2, 0, 4 + i, 0, 8)  # GLOBAL FUNC
        strtab += f"prog_{i}\0".encode()
    code = bytes([0x95]) + bytes(7)  # exit
    code_at = 64
    shstrtab_at = code_at + len(code)
    strtab_at = shstrtab_at + len(shstrtab)
    symtab_at = strtab_at + len(strtab)
    shoff = symtab_at + len(symtab)
    headers = bytearray(SHDR_SIZE)
    headers += shdr.pack(1, 3, 0, 0, shstrtab_at, len(shstrtab), 0, 0, 1, 0)
    headers += shdr.pack(11, 3, 0, 0, strtab_at, len(strtab), 0, 0, 1, 0)
    headers += shdr.pack(19, 2, 0, 0, symtab_at, len(symtab), 2, 1, 8, SYM_SIZE)
    for name in names:
        headers += shdr.pack(name, 1, 0x6, 0, code_at, len(code), 0, 0, 8, 0)  # SHF_ALLOC|SHF_EXECINSTR
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, SHDR_SIZE, 4 + count, 1
    )
    return ehdr + code + shstrtab + strtab + symtab + headers


@pytest.mark.timeout(60)
def test_many_sections_and_symbols_linear_time() -> None:
    """Per-section symbol and relocation lookups are indexed once: they used to rescan every
    symbol and every section for each section, so a 1.7 MB object of 16000 programs took
    ~10 s (and a 256 MB one effectively forever)."""
    timings = []
    for count in (2000, 16000):
        data = _many_programs(count)
        start = time.monotonic()
        spec = ebpfspec.load_collection_spec(data)
        timings.append(time.monotonic() - start)
        assert len(spec.programs) == count
        assert spec.programs[f"prog_{count - 1}"].section_name == f"xdp/p{count - 1}"
    assert timings[1] < 5.0, timings
    assert timings[1] < 8 * timings[0] + 0.5, f"not linear: {timings}"


# -- fuzz ------------------------------------------------------------------------------------------


def _structure_words(o: Elf) -> list[int]:
    """4-byte-aligned file offsets in the ELF header, section headers, symbol and relocation tables."""
    regions = [(0, 64), (o.header("e_shoff"), o.header("e_shnum") * SHDR_SIZE)]
    for s in o.elf.iter_sections():
        if s["sh_type"] in ("SHT_SYMTAB", "SHT_REL"):
            regions.append((s["sh_offset"], s["sh_size"]))
    return [at for start, size in regions for at in range(start, start + size - 3, 4)]


def _mutate(rng: random.Random, o: Elf, words: list[int]) -> tuple[bytes, str]:
    data = bytearray(o.orig)
    kind = rng.randrange(4)
    if kind == 0:
        flips = [(rng.randrange(len(data)), 1 << rng.randrange(8)) for _ in range(rng.randint(1, 4))]
        for at, bit in flips:
            data[at] ^= bit
        return bytes(data), f"flip {[(hex(a), b) for a, b in flips]}"
    if kind == 1:
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), f"truncate at {cut:#x}"
    at = rng.choice(words)
    value = rng.choice([b"\0\0\0\0", b"\xff\xff\xff\xff"])
    data[at : at + 4] = value
    return bytes(data), f"{at:#x} = {value.hex()}"


@pytest.mark.timeout(120)
def test_fuzz_only_spec_errors() -> None:
    """Seeded mutations of every testdata object: each either loads or raises ``SpecError``
    (never anything else), in well under a second."""
    rng = random.Random(0x5EED)
    objects = [Elf(p.name) for p in bpf_objects()]
    assert len(objects) >= 20
    outcomes = {"loaded": 0, "rejected": 0}
    for o in objects:
        words = _structure_words(o)
        for _ in range(16):
            data, what = _mutate(rng, o, words)
            start = time.monotonic()
            try:
                ebpfspec.load_collection_spec(data)
                outcomes["loaded"] += 1
            except SpecError as err:
                outcomes["rejected"] += 1
                assert str(err)
            except Exception as err:  # pragma: no cover - a bug: report the exact mutation
                pytest.fail(f"{o.name}: {what}: {type(err).__name__}: {err}")
            elapsed = time.monotonic() - start
            assert elapsed < 1.0, f"{o.name}: {what}: took {elapsed:.2f} s"
    assert outcomes["rejected"] > 100 and outcomes["loaded"] > 10, outcomes


def test_spec_error_is_value_error() -> None:
    assert issubclass(SpecError, ValueError)
    err = rejects(b"", "malformed ELF")
    assert re.match(r"<bytes>: malformed ELF", str(err))


def test_path_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.o"
    path.write_bytes(obj("maps", "el").orig[:40])
    with pytest.raises(SpecError, match=re.escape(str(path))):
        ebpfspec.load_collection_spec(path)
