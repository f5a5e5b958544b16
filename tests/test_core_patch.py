"""CO-RE patching of instructions against a hand-made target BTF where fields moved (loader.core_patch)."""

from __future__ import annotations

import pytest

import btf
from btf.core import POISON_IMM
from btf.ext import CORERelocation, CORERelocKind
from ebpfspec.asm import Instruction
from loader.core_patch import patch_core
from loader.errors import ProgramError

LDX_W = 0x61  # r_dst = *(u32 *)(r_src + off)
LDX_DW = 0x79
MOV64_K = 0xB7  # r_dst = imm
CALL = 0x85

# local: struct task { unsigned int pid; unsigned int flags; };
LOCAL = btf.Spec.from_types([
    btf.Int(1, "unsigned int", 4),
    btf.Struct(2, "task", 8, (btf.Member("pid", 1, 0), btf.Member("flags", 1, 32))),
])
# target: struct task { long long unsigned int start; unsigned int pad; long long unsigned int flags;
#                       unsigned int pid; } -- pid moved to 24, flags moved to 16 and widened to 8 bytes
TARGET = btf.Spec.from_types([
    btf.Int(1, "long long unsigned int", 8),
    btf.Int(2, "unsigned int", 4),
    btf.Struct(3, "task", 32, (
        btf.Member("start", 1, 0), btf.Member("pad", 2, 64), btf.Member("flags", 1, 128),
        btf.Member("pid", 2, 192),
    )),
])
# a target without the type at all
EMPTY = btf.Spec.from_types([btf.Int(1, "int", 4, btf.IntEncoding.SIGNED)])


def relo(accessor: str, kind: CORERelocKind) -> CORERelocation:
    return CORERelocation(insn_off=0, type_id=2, accessor=accessor, kind=kind)


def load(offset: int, accessor: str, opcode: int = LDX_W) -> Instruction:
    return Instruction(opcode=opcode, dst=1, src=2, offset=offset, constant=0,
                       core_relo=relo(accessor, CORERelocKind.FIELD_BYTE_OFFSET))


def test_moved_field_gets_its_new_offset() -> None:
    insns = [load(0, "0:0"), Instruction(opcode=0x95, dst=0, src=0, offset=0, constant=0)]
    patch_core("prog", insns, LOCAL, TARGET)
    assert (insns[0].opcode, insns[0].offset) == (LDX_W, 24)
    assert insns[1].opcode == 0x95  # untouched


def test_widened_field_changes_the_load_size() -> None:
    insns = [load(4, "0:1")]
    patch_core("prog", insns, LOCAL, TARGET)
    assert (insns[0].opcode, insns[0].offset) == (LDX_DW, 16)  # u32 -> u64: an 8-byte load


def test_immediate_relocations() -> None:
    insns = [
        Instruction(opcode=MOV64_K, dst=1, src=0, offset=0, constant=4,
                    core_relo=relo("0:1", CORERelocKind.FIELD_BYTE_OFFSET)),
        Instruction(opcode=MOV64_K, dst=2, src=0, offset=0, constant=8,
                    core_relo=relo("0", CORERelocKind.TYPE_SIZE)),
        Instruction(opcode=MOV64_K, dst=3, src=0, offset=0, constant=1,
                    core_relo=relo("0:1", CORERelocKind.FIELD_EXISTS)),
    ]
    patch_core("prog", insns, LOCAL, TARGET)
    assert [i.constant for i in insns] == [16, 32, 1]


def test_missing_type_poisons_loads_and_zeroes_existence() -> None:
    insns = [
        load(0, "0:0"),
        Instruction(opcode=MOV64_K, dst=3, src=0, offset=0, constant=1,
                    core_relo=relo("0", CORERelocKind.TYPE_EXISTS)),
    ]
    patch_core("prog", insns, LOCAL, EMPTY)
    assert (insns[0].opcode, insns[0].constant) == (CALL, POISON_IMM)  # the verifier reports it if reached
    assert insns[1].constant == 0


def test_poisoned_wide_load_keeps_the_slot_count() -> None:
    wide = Instruction(opcode=0x18, dst=1, src=0, offset=0, constant=4,
                       core_relo=relo("0:0", CORERelocKind.FIELD_BYTE_OFFSET))
    insns = [wide]
    patch_core("prog", insns, LOCAL, EMPTY)
    assert [(i.opcode, i.constant) for i in insns] == [(CALL, POISON_IMM)] * 2
    assert sum(i.width for i in insns) == wide.width


def test_instruction_disagreeing_with_local_btf_is_an_error() -> None:
    insns = [load(12, "0:1")]  # the compiler would have put 4 here
    with pytest.raises(ProgramError, match=r"'prog'.*offset is 12, expected 4"):
        patch_core("prog", insns, LOCAL, TARGET)
