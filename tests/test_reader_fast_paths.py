"""The reader's fast paths give exactly what the plain ones gave.

* ``btf.Spec.with_datasec_layout`` (DATASEC sizes/offsets patched in the raw records) against
  marshaling the fixed types and parsing them back (what ``fix_datasecs`` used to do);
  ``Spec.types_by_kind`` and ``Spec.name_of`` against decoding every type.
* ``read_types`` (one decode of the fixed spec) against the plain order ``read_btf`` ->
  ``read_ext`` -> ``fix_datasecs``.
* ``Instruction.with_metadata`` and ``Instruction.replace`` against ``attrs.evolve``.
* The ELF header, parsed with cached pyelftools structs, against ``ELFFile``.
* Reading a path: size checked with fstat first, still bounded.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

import btf
import ebpfspec
from btf.ext import CORERelocation, CORERelocKind, LineInfo
from ebpfspec import reader
from ebpfspec.asm import Instruction
from ebpfspec.asm.opcodes import LD_IMM64, PSEUDO_MAP_VALUE
from ebpfspec.elf import ObjectFile, _parse_elf_header
from ebpfspec.errors import SpecError
from ebpfspec.reader.data_sections import datasec_layout, fix_datasecs
from tests.conftest import TESTDATA

OBJECTS = sorted(TESTDATA.glob("*.o"))


def _obj(path: Path) -> ObjectFile:
    return ObjectFile(path.read_bytes(), name=str(path))


def _marshaled_fix(obj: ObjectFile, types: btf.Spec) -> btf.Spec:
    """The fixed spec as fix_datasecs made it before: the fixed types marshaled and parsed back."""
    layout = datasec_layout(obj, types)
    fixed: list[btf.Type] = []
    for t in types.own_types():
        if t.id in layout:
            assert isinstance(t, btf.Datasec)
            size, offsets = layout[t.id]
            t = btf.Datasec(t.id, t.name, size, tuple(
                btf.VarSecinfo(v.type_id, offset, v.size) for v, offset in zip(t.vars, offsets, strict=True)
            ))
        fixed.append(t)
    return btf.Spec.from_types(fixed, byte_order=types.byte_order)


# -- btf.Spec ------------------------------------------------------------------------------------


def _datasec_spec(byte_order: btf.wire.ByteOrder = "little") -> btf.Spec:
    return btf.Spec.from_types([
        btf.Int(1, "int", 4, btf.IntEncoding.SIGNED),
        btf.Var(2, "a", 1, btf.VarLinkage.GLOBAL),
        btf.Var(3, "b", 1, btf.VarLinkage.GLOBAL),
        btf.Datasec(4, ".data", 0, (btf.VarSecinfo(2, 0, 4), btf.VarSecinfo(3, 0, 4))),
        btf.Datasec(5, ".bss", 0, ()),
    ], byte_order=byte_order)


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_with_datasec_layout_patches_only_those_fields(byte_order: btf.wire.ByteOrder) -> None:
    spec = _datasec_spec(byte_order)
    before = list(spec)
    fixed = spec.with_datasec_layout({4: (8, (4, 0)), 5: (16, ())})
    secinfos = (btf.VarSecinfo(2, 4, 4), btf.VarSecinfo(3, 0, 4))
    assert fixed.type_by_id(4) == btf.Datasec(4, ".data", 8, secinfos)
    assert fixed.type_by_id(5) == btf.Datasec(5, ".bss", 16, ())
    assert [t for t in fixed if t.id not in (4, 5)] == [t for t in before if t.id not in (4, 5)]
    assert all(t.spec is fixed for t in fixed.own_types())
    assert list(spec) == before  # the original is unchanged
    assert fixed.byte_order == byte_order
    # the same wire bytes as marshaling the fixed types
    assert fixed.to_bytes() == btf.Spec.from_types(list(fixed.own_types()), byte_order=byte_order).to_bytes()
    # and a patched spec parses back to itself from its own bytes
    assert btf.load_spec(fixed.to_bytes()) == fixed
    # an empty layout: an equal spec
    assert spec.with_datasec_layout({}) == spec


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({1: (4, ())}, "is INT, not DATASEC"),
        ({9: (4, ())}, "type ID 9 is not one of this spec's own types"),
        ({0: (4, ())}, "type ID 0 is not one of this spec's own types"),
        ({4: (8, (0,))}, "1 offsets given for a DATASEC of 2 variables"),
        ({4: (1 << 32, (0, 0))}, "does not fit in a u32"),
        ({4: (8, (0, -1))}, "does not fit in a u32"),
    ],
)
def test_with_datasec_layout_rejects(layout: dict[int, tuple[int, tuple[int, ...]]], message: str) -> None:
    with pytest.raises(btf.BTFError, match=message):
        _datasec_spec().with_datasec_layout(layout)


def test_types_by_kind_and_name_of_agree_with_decoding() -> None:
    for path in OBJECTS:
        obj = _obj(path)
        section = obj.section(".BTF")
        if section is None:
            continue
        spec = btf.load_spec(obj.contents(section))
        names = [spec.name_of(i) for i in range(len(spec))]  # before anything is decoded
        for kind in btf.Kind:
            assert spec.types_by_kind(kind) == tuple(t for t in spec if t.kind == kind), (path, kind)
        assert names == [t.name for t in spec]
        with pytest.raises(btf.BTFError, match="out of range"):
            spec.name_of(len(spec))


def test_types_by_kind_and_name_of_on_split_btf() -> None:
    base = btf.Spec.from_types([btf.Int(1, "int", 4), btf.Pointer(2, "", 1)])
    split = btf.Spec.from_types([btf.Typedef(3, "myint", 1), btf.Pointer(4, "", 3)], base=base)
    assert split.types_by_kind(btf.Kind.PTR) == (base.type_by_id(2), split.type_by_id(4))
    assert split.types_by_kind(btf.Kind.UNKNOWN) == (base.type_by_id(0),)
    assert [split.name_of(i) for i in range(5)] == ["", "int", "", "myint", ""]


# -- the reader's BTF ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.name)
def test_fixed_btf_equals_the_marshaled_one(path: Path) -> None:
    obj = _obj(path)
    stored = reader.read_btf(obj)
    if stored is None:
        pytest.skip("no .BTF")
    fixed, ext = reader.read_types(obj)
    assert fixed is not None
    assert list(fixed) == list(_marshaled_fix(obj, stored))
    assert list(fix_datasecs(obj, stored)) == list(fixed)
    assert ext == reader.read_ext(obj, stored)
    assert fixed.strings is not None and len(fixed.strings) == len(stored.strings)
    assert None not in fixed._cache  # decoded (and so checked) once, while reading


def test_read_types_errors_are_the_plain_orders() -> None:
    """A symbol outside its data section: the fast path hands over to the plain order."""
    data = bytearray((TESTDATA / "globals-el.o").read_bytes())
    obj = ObjectFile(bytes(data))
    section = obj.section(".data")
    assert section is not None
    symbol = next(s for s in obj.symbols_in(section) if s.name)
    symtab = next(s for s in obj.sections if s.name == ".symtab")
    at = symtab.offset + 24 * symbol.index + 8  # st_value
    data[at : at + 8] = (section.size + 8).to_bytes(8, "little")
    with pytest.raises(SpecError, match="lies outside the section") as err:
        reader.read_types(ObjectFile(bytes(data)))
    with pytest.raises(SpecError) as plain:
        bad = ObjectFile(bytes(data))
        stored = reader.read_btf(bad)
        assert stored is not None
        reader.read_ext(bad, stored)
        fix_datasecs(bad, stored)
    assert str(err.value) == str(plain.value)


# -- Instruction ---------------------------------------------------------------------------------

_META: dict[str, Any] = {
    "symbol": "f",
    "reference": "m",
    "func_info": btf.Func(1, "f", 2, btf.FuncLinkage.GLOBAL),
    "line_info": LineInfo(0, "a.c", "int x;", 3, 4),
    "core_relo": CORERelocation(0, 1, "0:1", CORERelocKind.FIELD_BYTE_OFFSET),
}


@pytest.mark.parametrize("fields", [("symbol",), ("reference", "line_info"), tuple(_META)])
def test_with_metadata_is_evolve(fields: tuple[str, ...]) -> None:
    insn = Instruction(LD_IMM64, 1, PSEUDO_MAP_VALUE, 0, 8 << 32, reference="x", symbol="s")
    changes = {f: _META[f] for f in fields}
    fast = insn.with_metadata(**changes)
    assert fast == attrs.evolve(insn, **changes)
    assert insn.replace(**changes) == fast
    assert type(fast) is Instruction
    for name in ("opcode", "dst", "src", "offset", "constant"):
        assert getattr(fast, name) is getattr(insn, name)
    none = insn.with_metadata(symbol=None, reference=None)
    assert none.symbol is None and none.reference is None


def test_with_metadata_on_a_subclass_keeps_its_fields() -> None:
    @attrs.frozen
    class Tagged(Instruction):
        tag: str = attrs.field(default="", kw_only=True)

    insn = Tagged(0x95, tag="t")
    changed = insn.with_metadata(symbol="f")
    assert type(changed) is Tagged and changed.tag == "t" and changed.symbol == "f"
    assert insn.replace(constant=1) == attrs.evolve(insn, constant=1)


@pytest.mark.parametrize(
    "changes",
    [
        {"constant": 5},
        {"src": 1, "constant": 0, "reference": "m"},
        {"dst": 3, "offset": -2},
        {"opcode": 0xB7, "constant": -1},
        {"constant": 1 << 40},
        {"src": 11},
        {"dst": 11},
        {"offset": 1 << 20},
        {"opcode": "x"},
        {"nonsense": 1},
    ],
)
def test_replace_is_evolve(changes: dict[str, Any]) -> None:
    def outcome(insn: Instruction, evolve: bool) -> tuple[str, object]:
        try:
            return "ok", attrs.evolve(insn, **changes) if evolve else insn.replace(**changes)
        except (TypeError, ValueError) as err:
            return type(err).__name__, str(err)

    for insn in (Instruction(0xB7, 1, 0, 0, 7, symbol="f"), Instruction(LD_IMM64, 1, 0, 0, 5)):
        assert outcome(insn, evolve=False) == outcome(insn, evolve=True), changes


# -- the ELF header ------------------------------------------------------------------------------


def _elffile_outcome(data: bytes) -> tuple[str, Any]:
    try:
        elf = ELFFile(io.BytesIO(data))
        return "ok", (dict(elf.header), elf.little_endian, elf.elfclass)
    except ELFError as err:
        return type(err).__name__, str(err)


def _ours(data: bytes) -> tuple[str, Any]:
    try:
        header, little_endian, elfclass = _parse_elf_header(data)
        return "ok", (dict(header), little_endian, elfclass)
    except ELFError as err:
        return type(err).__name__, str(err)


def test_elf_header_as_elffile_parses_it() -> None:
    good = (TESTDATA / "maps-el.o").read_bytes()
    big = (TESTDATA / "maps-eb.o").read_bytes()
    cases = [good, big, b"", b"\x7fEL", b"\x7fELF", b"\x7fELF\x02", good[:40], big[:63], good[:64]]
    for at, value in [(4, 1), (4, 0), (4, 9), (5, 0), (5, 2), (5, 7), (0, 0x7E), (18, 0xF7)]:
        mutated = bytearray(good)
        mutated[at] = value
        cases.append(bytes(mutated))
        cases.append(bytes(mutated[:50]))
    for data in cases:
        assert _ours(data) == _elffile_outcome(data), data[:8]


# -- reading a path ------------------------------------------------------------------------------


def test_path_read_is_bounded_by_fstat_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.o"
    path.write_bytes((TESTDATA / "xdp_test-el.o").read_bytes())
    monkeypatch.setattr(reader, "MAX_OBJECT_SIZE", path.stat().st_size - 1)
    with pytest.raises(SpecError, match="larger than"):
        ebpfspec.load_collection_spec(path)
    monkeypatch.setattr(reader, "MAX_OBJECT_SIZE", path.stat().st_size)
    assert "xdp_len_filter" in ebpfspec.load_collection_spec(path).programs


def test_path_read_notices_a_file_that_grew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fstat said less than there is: the read goes on (bounded), as it always did."""
    data = (TESTDATA / "xdp_test-el.o").read_bytes()
    path = tmp_path / "grew.o"
    path.write_bytes(data)
    real_fstat = os.fstat

    class Shrunk:
        def __init__(self, st: os.stat_result) -> None:
            self.st_mode, self.st_size = st.st_mode, 10

    monkeypatch.setattr(os, "fstat", lambda fd: Shrunk(real_fstat(fd)))
    with path.open("rb") as f:
        assert reader._read_opened(f, str(path)) == data
    monkeypatch.setattr(reader, "MAX_OBJECT_SIZE", len(data) - 1)
    with path.open("rb") as f, pytest.raises(SpecError, match="larger than"):
        reader._read_opened(f, str(path))


def test_path_that_is_a_fifo_is_read_bounded(tmp_path: Path) -> None:
    data = (TESTDATA / "xdp_test-el.o").read_bytes()
    fifo = tmp_path / "obj.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("wb") as f:
            f.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        spec = ebpfspec.load_collection_spec(fifo)
    finally:
        writer.join()
    assert spec.programs.keys() == ebpfspec.load_collection_spec(data).programs.keys()
