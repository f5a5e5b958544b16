"""``.BTF.ext``: per-section function info, line info and CO-RE relocation records.

The section starts with a header (magic, version, flags, hdr_len, then offset/length
pairs for func_info, line_info and — when hdr_len allows — core_relo). Each of the
three parts is ``u32 rec_size`` followed by blocks of ``{u32 sec_name_off; u32 num_info;
rec_size * num_info bytes}``. Names and file/line text are offsets into the string
table of the matching ``.BTF``. Instruction offsets are in bytes from the start of the
ELF section named by the block.

Parsing makes no syscalls and checks every count against the bytes really present
before reading records.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from btf.errors import BTFError
from btf.strings import StringTable
from btf.wire import MAGIC, VERSION, ByteOrder, byte_order_prefix

_HEADER_MIN = 24  # up to line_info_len
_HEADER_CORE = 32  # with core_relo_off/len
_INSN_SIZE = 8


class CORERelocKind(enum.IntEnum):
    """What a CO-RE relocation asks for (``enum bpf_core_relo_kind``)."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """``struct bpf_func_info``: the function starting at ``insn_off`` (bytes) has BTF ``type_id``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineInfo:
    """``struct bpf_line_info``: the source line of the instruction at ``insn_off`` (bytes)."""

    insn_off: int
    file_name: str
    line: str
    line_number: int
    column: int


@dataclass(frozen=True, slots=True)
class CORERelocation:
    """``struct bpf_core_relo``: instruction ``insn_off`` (bytes) needs ``kind`` of ``type_id``.

    ``accessor`` is the access string, e.g. ``"0:1:2"`` (member path from the root type).
    """

    insn_off: int
    type_id: int
    accessor: str
    kind: CORERelocKind


_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class ExtInfos:
    """Everything in one ``.BTF.ext``: per ELF section name, records in file order."""

    func_infos: tuple[tuple[str, tuple[FuncInfo, ...]], ...] = ()
    line_infos: tuple[tuple[str, tuple[LineInfo, ...]], ...] = ()
    core_relos: tuple[tuple[str, tuple[CORERelocation, ...]], ...] = ()

    def for_section(
        self, name: str
    ) -> tuple[tuple[FuncInfo, ...], tuple[LineInfo, ...], tuple[CORERelocation, ...]]:
        """The func infos, line infos and CO-RE relocations of ELF section ``name``."""
        return (
            _records_of(self.func_infos, name),
            _records_of(self.line_infos, name),
            _records_of(self.core_relos, name),
        )


def _records_of(parts: tuple[tuple[str, tuple[_R, ...]], ...], name: str) -> tuple[_R, ...]:
    found: list[_R] = []
    for section, records in parts:
        if section == name:
            found.extend(records)
    return tuple(found)


def load_ext(data: bytes, strings: StringTable, byte_order: ByteOrder) -> ExtInfos:
    """Parse a ``.BTF.ext`` section whose strings live in ``strings`` (the ``.BTF`` table)."""
    data = bytes(data)
    e = byte_order_prefix(byte_order)
    if len(data) < _HEADER_MIN:
        raise BTFError(f".BTF.ext: {len(data)} bytes is too short for its header")
    magic, version, _flags, hdr_len = struct.unpack_from(e + "HBBI", data)
    if magic != MAGIC:
        raise BTFError(f".BTF.ext: bad magic {data[:2].hex()} for {byte_order}-endian", offset=0)
    if version != VERSION:
        raise BTFError(f".BTF.ext: unsupported version {version}", offset=2)
    if hdr_len < _HEADER_MIN or hdr_len > len(data):
        raise BTFError(f".BTF.ext: header length {hdr_len} invalid for {len(data)} bytes", offset=4)
    func_off, func_len, line_off, line_len = struct.unpack_from(e + "IIII", data, 8)
    core_off = core_len = 0
    if hdr_len >= _HEADER_CORE:
        core_off, core_len = struct.unpack_from(e + "II", data, 24)
    reader = _PartReader(data, hdr_len, e, strings)
    return ExtInfos(
        func_infos=reader.part("func_info", func_off, func_len, 8, reader.func_info),
        line_infos=reader.part("line_info", line_off, line_len, 16, reader.line_info),
        core_relos=reader.part("core_relo", core_off, core_len, 16, reader.core_relo),
    )


class _PartReader:
    def __init__(self, data: bytes, hdr_len: int, e: str, strings: StringTable):
        self._data = data
        self._hdr_len = hdr_len
        self._u32 = struct.Struct(e + "I")
        self._pair = struct.Struct(e + "II")
        self._quad = struct.Struct(e + "IIII")
        self._strings = strings

    def part(
        self, what: str, off: int, length: int, min_rec: int, decode: Callable[[int], _R]
    ) -> tuple[tuple[str, tuple[_R, ...]], ...]:
        """All blocks of one part; ``decode(pos)`` turns the record at ``pos`` into an object."""
        if length == 0:
            return ()
        start = self._hdr_len + off
        end = start + length
        if end > len(self._data) or length < 4:
            raise BTFError(f".BTF.ext {what}: [{off}, +{length}) runs past the section end", offset=start)
        (rec_size,) = self._u32.unpack_from(self._data, start)
        if rec_size < min_rec or rec_size % 4:
            raise BTFError(f".BTF.ext {what}: invalid record size {rec_size}", offset=start)
        return tuple(self._blocks(what, start + 4, end, rec_size, decode))

    def _blocks(
        self, what: str, pos: int, end: int, rec_size: int, decode: Callable[[int], _R]
    ) -> Iterator[tuple[str, tuple[_R, ...]]]:
        while pos < end:
            if pos + 8 > end:
                raise BTFError(f".BTF.ext {what}: truncated block header", offset=pos)
            name_off, count = self._pair.unpack_from(self._data, pos)
            section = self._string(what, name_off, pos)
            pos += 8
            if count == 0 or count * rec_size > end - pos:
                raise BTFError(
                    f".BTF.ext {what}: section '{section}' claims {count} records of "
                    f"{rec_size} bytes, {end - pos} bytes are left",
                    offset=pos - 4,
                )
            records = tuple(decode(pos + i * rec_size) for i in range(count))
            pos += count * rec_size
            yield section, records

    def _string(self, what: str, offset: int, pos: int) -> str:
        try:
            return self._strings.lookup(offset)
        except BTFError:
            raise BTFError(f".BTF.ext {what}: string offset {offset} is out of range", offset=pos) from None

    def func_info(self, pos: int) -> FuncInfo:
        insn_off, type_id = self._pair.unpack_from(self._data, pos)
        _check_insn_off("func_info", insn_off, pos)
        return FuncInfo(insn_off, type_id)

    def line_info(self, pos: int) -> LineInfo:
        insn_off, file_off, line_off, line_col = self._quad.unpack_from(self._data, pos)
        _check_insn_off("line_info", insn_off, pos)
        return LineInfo(
            insn_off,
            self._string("line_info", file_off, pos + 4),
            self._string("line_info", line_off, pos + 8),
            line_col >> 10,
            line_col & 0x3FF,
        )

    def core_relo(self, pos: int) -> CORERelocation:
        insn_off, type_id, access_off, kind = self._quad.unpack_from(self._data, pos)
        _check_insn_off("core_relo", insn_off, pos)
        try:
            relo_kind = CORERelocKind(kind)
        except ValueError:
            raise BTFError(f".BTF.ext core_relo: unknown relocation kind {kind}", offset=pos + 12) from None
        return CORERelocation(insn_off, type_id, self._string("core_relo", access_off, pos + 8), relo_kind)


def _check_insn_off(what: str, insn_off: int, pos: int) -> None:
    if insn_off % _INSN_SIZE:
        raise BTFError(f".BTF.ext {what}: instruction offset {insn_off} is not a multiple of 8", offset=pos)
