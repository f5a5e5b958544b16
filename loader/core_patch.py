"""Patching CO-RE relocations into a program's instructions (libbpf's ``bpf_core_patch_insn``).

:func:`btf.core.resolve` says what each relocated instruction held and must hold on the
target kernel; this module changes the instruction accordingly, or poisons it (a call
to an invalid helper that the verifier reports if it is reachable, and removes if not).
The rules are in :class:`btf.core.CoreResult`'s docstring.
"""

from __future__ import annotations

import errno

import btf
from btf.core import POISON_IMM, CoreResult, resolve
from ebpfspec.asm import Instruction
from loader.errors import ProgramError

_CLASS_MASK = 0x07
_LD, _LDX, _ST, _STX, _ALU, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x07
_SOURCE_X = 0x08
_SIZE_MASK = 0x18
_SIZE_CODES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}  # BPF_B, BPF_H, BPF_W, BPF_DW
_LD_IMM64 = 0x18
_CALL = 0x85
_MASK64 = (1 << 64) - 1


def patch_core(program: str, insns: list[Instruction], local: btf.Spec, target: btf.Spec) -> None:
    """Resolve every CO-RE relocation of ``insns`` against ``target`` and patch it in place."""
    patched: list[Instruction] = []
    for insn in insns:
        relo = insn.core_relo
        if relo is None:
            patched.append(insn)
            continue
        try:
            result = resolve(relo, local, target)
        except btf.BTFError as err:
            raise ProgramError(
                errno.EINVAL, "CO-RE", program, f"relocation {relo.kind} {relo.accessor!r}: {err}"
            ) from err
        patched.extend(patch_instruction(program, insn, result))
    insns[:] = patched


def patch_instruction(program: str, insn: Instruction, result: CoreResult) -> list[Instruction]:
    """``insn`` as ``result`` says it must be (two instructions for a poisoned ld_imm64)."""
    if result.poison:
        return poisoned(insn)
    cls = insn.opcode & _CLASS_MASK
    if cls in (_ALU, _ALU64) and not insn.opcode & _SOURCE_X:
        _check(program, result, insn.constant & 0xFFFFFFFF, result.local_value & 0xFFFFFFFF, "immediate")
        return [insn.replace(constant=_s32(result.target_value))]
    if cls in (_LDX, _ST, _STX):
        return _patch_memory_access(program, insn, result)
    if insn.opcode == _LD_IMM64 and insn.src == 0:
        _check(program, result, insn.constant & _MASK64, result.local_value & _MASK64, "64-bit immediate")
        return [insn.replace(constant=result.target_value & _MASK64)]
    raise ProgramError(
        errno.EINVAL,
        "CO-RE",
        program,
        f"{result.description}: instruction {insn.opcode:#04x} cannot carry a relocation",
    )


def _patch_memory_access(program: str, insn: Instruction, result: CoreResult) -> list[Instruction]:
    _check(program, result, insn.offset, result.local_value, "offset")
    if result.target_value > 0x7FFF:
        raise ProgramError(
            errno.EINVAL,
            "CO-RE",
            program,
            f"{result.target_description}: offset {result.target_value} does not fit an instruction",
        )
    if result.mem_size_change_unsafe:
        return poisoned(insn)
    opcode = insn.opcode
    if result.target_mem_size != result.local_mem_size:
        if _SIZE_CODES.get(result.local_mem_size) != opcode & _SIZE_MASK:
            raise ProgramError(
                errno.EINVAL,
                "CO-RE",
                program,
                f"{result.description}: the access is not {result.local_mem_size} bytes wide",
            )
        new_size = _SIZE_CODES.get(result.target_mem_size)
        if new_size is None:
            raise ProgramError(
                errno.EINVAL,
                "CO-RE",
                program,
                f"{result.target_description}: cannot access {result.target_mem_size} bytes",
            )
        opcode = (opcode & ~_SIZE_MASK) | new_size
    return [insn.replace(opcode=opcode, offset=result.target_value)]


def poisoned(insn: Instruction) -> list[Instruction]:
    """``call POISON_IMM`` in place of ``insn`` (once per 8-byte slot), keeping its metadata."""
    first = Instruction(
        opcode=_CALL,
        dst=0,
        src=0,
        offset=0,
        constant=POISON_IMM,
        symbol=insn.symbol,
        func_info=insn.func_info,
        line_info=insn.line_info,
    )
    if insn.width == 1:
        return [first]
    return [first, Instruction(opcode=_CALL, dst=0, src=0, offset=0, constant=POISON_IMM)]


def _check(program: str, result: CoreResult, actual: int, expected: int, what: str) -> None:
    if result.validate and actual != expected:
        raise ProgramError(
            errno.EINVAL,
            "CO-RE",
            program,
            f"{result.description}: the instruction's {what} is {actual}, expected {expected}",
        )


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value
