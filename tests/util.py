"""Helpers shared by several test modules."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile


def elf_section(path: Path, name: str) -> bytes | None:
    """Raw contents of section ``name`` of the ELF file at ``path`` (None if absent)."""
    with path.open("rb") as f:
        section = ELFFile(f).get_section_by_name(name)
        return None if section is None else bytes(section.data())
