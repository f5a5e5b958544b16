"""Disassembly in llvm-objdump's BPF syntax.

:func:`instruction_text` prints what ``llvm-objdump -d --no-show-raw-insn`` (LLVM 14)
prints for an instruction: ``r0 = 0``, ``r1 = *(u32 *)(r1 + 0)``,
``*(u64 *)(r10 - 8) = r1``, ``if r1 > 60 goto +5``, ``r1 = 0 ll``, ``call 1``, ``exit``,
``lock *(u64 *)(r1 + 0) += r2``, ``w0 = w1``, ``r0 = be16 r0``. Immediates are decimal
and signed, jump offsets carry their sign (``goto +0``, ``goto -3``); 32-bit ALU and
JMP32 operands are ``w`` registers.

Where LLVM 14 prints ``<unknown>`` — instructions newer than it (ISA v4) or that clang
never emits — this module follows later LLVM releases: ``r1 %= r2``, ``r1 s/= r2``,
``r1 = (s8)r2``, ``r1 = *(s16 *)(r2 + 0)``, ``r1 = bswap16 r1``, ``gotol +5``,
``if r1 & r2 goto +1``, ``*(u32 *)(r10 - 4) = 7``, ``r0 = *(u64 *)skb[4]``,
``w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)``, ``w0 = cmpxchg32_32(r1 + 0, w0, w2)``,
``r0 = load_acquire((u64 *)(r1 + 0))``, ``store_release((u64 *)(r1 + 0), r2)``.
``callx`` names its register from ``dst`` (as LLVM 19 does; LLVM 14 read the
constant, which this falls back to when ``dst`` is r0). A legacy indirect packet load
with a non-zero constant shows it: ``skb[r2 + 4]`` (LLVM prints ``skb[r2]``).
An opcode with no meaning prints ``<unknown opcode 0x..>``; nothing here raises for an
instruction that :class:`~ebpfspec.asm.Instruction` accepts.

:func:`format_instruction` may add an annotation after ``" ; "`` (a reference, the helper
name of a helper call, the meaning of a pseudo 64-bit load, a CO-RE relocation), which
LLVM does not print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from ebpfspec.asm.helpers import BuiltinFunc
from ebpfspec.asm.opcodes import (
    LD_IMM64,
    ALUOp,
    AtomicOp,
    Class,
    JumpOp,
    Mode,
    PseudoCall,
    PseudoLoad,
    Size,
)

if TYPE_CHECKING:
    from ebpfspec.asm.instruction import Instruction

__all__ = ["annotation", "format_instruction", "format_listing", "instruction_text"]

Formatter = Callable[["Instruction"], str]
"""A function printing one instruction."""

_MASK32: Final = 0xFFFF_FFFF

_ALU_SYMBOLS: Final = {
    ALUOp.ADD: "+=", ALUOp.SUB: "-=", ALUOp.MUL: "*=", ALUOp.DIV: "/=", ALUOp.OR: "|=",
    ALUOp.AND: "&=", ALUOp.LSH: "<<=", ALUOp.RSH: ">>=", ALUOp.MOD: "%=", ALUOp.XOR: "^=",
    ALUOp.ARSH: "s>>=",
}
_SIGNED_ALU_SYMBOLS: Final = {ALUOp.DIV: "s/=", ALUOp.MOD: "s%="}
_JUMP_SYMBOLS: Final = {
    JumpOp.JEQ: "==", JumpOp.JGT: ">", JumpOp.JGE: ">=", JumpOp.JSET: "&", JumpOp.JNE: "!=",
    JumpOp.JSGT: "s>", JumpOp.JSGE: "s>=", JumpOp.JLT: "<", JumpOp.JLE: "<=", JumpOp.JSLT: "s<",
    JumpOp.JSLE: "s<=",
}
_LOCK_OPS: Final = {AtomicOp.ADD: ("+", "add"), AtomicOp.OR: ("|", "or"), AtomicOp.AND: ("&", "and"),
                    AtomicOp.XOR: ("^", "xor")}
_SIZE_BITS: Final = {Size.W: 32, Size.H: 16, Size.B: 8, Size.DW: 64}


def _unknown(insn: Instruction) -> str:
    return f"<unknown opcode {insn.opcode:#04x}>"


def _address(base: int, offset: int) -> str:
    """``r1 + 8`` / ``r10 - 8`` (llvm's memory operand)."""
    return f"r{base} + {offset}" if offset >= 0 else f"r{base} - {-offset}"


# ALU / ALU64 -----------------------------------------------------------------------------


def _alu_binary(prefix: str, symbol: str, signed: str, from_register: bool) -> Formatter:
    if from_register:
        def binary_x(insn: Instruction) -> str:
            op = signed if insn.offset == 1 else symbol
            return f"{prefix}{int(insn.dst)} {op} {prefix}{int(insn.src)}"
        return binary_x

    def binary_k(insn: Instruction) -> str:
        op = signed if insn.offset == 1 else symbol
        return f"{prefix}{int(insn.dst)} {op} {insn.constant}"
    return binary_k


def _alu_mov(prefix: str, from_register: bool) -> Formatter:
    if from_register:
        def mov_x(insn: Instruction) -> str:
            if insn.offset in (8, 16, 32):  # MOVSX
                return f"{prefix}{int(insn.dst)} = (s{insn.offset}){prefix}{int(insn.src)}"
            return f"{prefix}{int(insn.dst)} = {prefix}{int(insn.src)}"
        return mov_x

    def mov_k(insn: Instruction) -> str:
        return f"{prefix}{int(insn.dst)} = {insn.constant}"
    return mov_k


def _alu_neg(prefix: str) -> Formatter:
    def neg(insn: Instruction) -> str:
        return f"{prefix}{int(insn.dst)} = -{prefix}{int(insn.dst)}"
    return neg


def _byte_swap(name: str) -> Formatter:
    def swap(insn: Instruction) -> str:
        return f"r{int(insn.dst)} = {name}{insn.constant} r{int(insn.dst)}"
    return swap


def _alu(opcode: int) -> Formatter:
    cls = opcode & 0x07
    op = opcode & 0xF0
    from_register = bool(opcode & 0x08)
    prefix = "r" if cls == Class.ALU64 else "w"
    if op in _ALU_SYMBOLS:
        symbol = _ALU_SYMBOLS[ALUOp(op)]
        return _alu_binary(prefix, symbol, _SIGNED_ALU_SYMBOLS.get(ALUOp(op), symbol), from_register)
    if op == ALUOp.MOV:
        return _alu_mov(prefix, from_register)
    if op == ALUOp.NEG:
        return _alu_neg(prefix)
    if op == ALUOp.END:
        if cls == Class.ALU:
            return _byte_swap("be" if from_register else "le")
        if not from_register:
            return _byte_swap("bswap")
    return _unknown


# JMP / JMP32 -----------------------------------------------------------------------------


def _goto(insn: Instruction) -> str:
    return f"goto {insn.offset:+d}"


def _gotol(insn: Instruction) -> str:
    return f"gotol {insn.constant:+d}"


def _call(insn: Instruction) -> str:
    return f"call {insn.constant}"


def _callx(insn: Instruction) -> str:
    register = int(insn.dst) or insn.constant
    return f"callx r{register}"


def _exit(insn: Instruction) -> str:
    return "exit"


def _conditional(prefix: str, symbol: str, from_register: bool) -> Formatter:
    if from_register:
        def jump_x(insn: Instruction) -> str:
            return f"if {prefix}{int(insn.dst)} {symbol} {prefix}{int(insn.src)} goto {insn.offset:+d}"
        return jump_x

    def jump_k(insn: Instruction) -> str:
        return f"if {prefix}{int(insn.dst)} {symbol} {insn.constant} goto {insn.offset:+d}"
    return jump_k


def _jump(opcode: int) -> Formatter:
    is_jmp32 = opcode & 0x07 == Class.JMP32
    op = opcode & 0xF0
    from_register = bool(opcode & 0x08)
    if op in _JUMP_SYMBOLS:
        return _conditional("w" if is_jmp32 else "r", _JUMP_SYMBOLS[JumpOp(op)], from_register)
    if op == JumpOp.JA and not from_register:
        return _gotol if is_jmp32 else _goto
    if op == JumpOp.CALL and not is_jmp32:
        return _callx if from_register else _call
    if op == JumpOp.EXIT and not is_jmp32 and not from_register:
        return _exit
    return _unknown


# Loads and stores ------------------------------------------------------------------------


def _ld_imm64(insn: Instruction) -> str:
    if insn.src == 0:
        value = insn.constant
        if value >> 63:
            value -= 1 << 64
        return f"r{int(insn.dst)} = {value} ll"
    return f"ld_pseudo\tr{int(insn.dst)}, {int(insn.src)}, {insn.constant & _MASK32}"


def _packet_abs(bits: int) -> Formatter:
    def load_abs(insn: Instruction) -> str:
        return f"r0 = *(u{bits} *)skb[{insn.constant}]"
    return load_abs


def _packet_ind(bits: int) -> Formatter:
    def load_ind(insn: Instruction) -> str:
        if insn.constant == 0:
            return f"r0 = *(u{bits} *)skb[r{int(insn.src)}]"
        return f"r0 = *(u{bits} *)skb[{_address(int(insn.src), insn.constant)}]"
    return load_ind


def _load(kind: str) -> Formatter:
    def load(insn: Instruction) -> str:
        return f"r{int(insn.dst)} = *({kind} *)({_address(int(insn.src), insn.offset)})"
    return load


def _store_imm(bits: int) -> Formatter:
    def store_imm(insn: Instruction) -> str:
        return f"*(u{bits} *)({_address(int(insn.dst), insn.offset)}) = {insn.constant}"
    return store_imm


def _store_reg(bits: int) -> Formatter:
    def store_reg(insn: Instruction) -> str:
        return f"*(u{bits} *)({_address(int(insn.dst), insn.offset)}) = r{int(insn.src)}"
    return store_reg


def _atomic(bits: int) -> Formatter:
    v = "r" if bits == 64 else "w"
    suffix = f"_{bits}" if bits == 64 else f"32_{bits}"  # xchg_64 / xchg32_32

    def atomic(insn: Instruction) -> str:
        op = insn.constant
        dst, src = int(insn.dst), int(insn.src)
        address = _address(dst, insn.offset)
        if op in _LOCK_OPS:
            return f"lock *(u{bits} *)({address}) {_LOCK_OPS[AtomicOp(op)][0]}= r{src}"
        if op & AtomicOp.FETCH and op & ~AtomicOp.FETCH in _LOCK_OPS:
            name = _LOCK_OPS[AtomicOp(op & ~AtomicOp.FETCH)][1]
            return f"{v}{src} = atomic_fetch_{name}((u{bits} *)({address}), {v}{src})"
        if op == AtomicOp.XCHG:
            return f"{v}{src} = xchg{suffix}({address}, {v}{src})"
        if op == AtomicOp.CMPXCHG:
            return f"{v}0 = cmpxchg{suffix}({address}, {v}0, {v}{src})"
        if op == AtomicOp.LOAD_ACQ:
            return f"{v}{dst} = load_acquire((u{bits} *)({_address(src, insn.offset)}))"
        if op == AtomicOp.STORE_REL:
            return f"store_release((u{bits} *)({address}), {v}{src})"
        return f"<unknown atomic operation {op:#x} (opcode {insn.opcode:#04x})>"
    return atomic


def _load_store(opcode: int) -> Formatter:
    cls = opcode & 0x07
    mode = opcode & 0xE0
    bits = _SIZE_BITS[Size(opcode & 0x18)]
    if cls == Class.LD:
        if opcode == LD_IMM64:
            return _ld_imm64
        if mode == Mode.ABS:
            return _packet_abs(bits)
        if mode == Mode.IND:
            return _packet_ind(bits)
    elif cls == Class.LDX:
        if mode == Mode.MEM:
            return _load(f"u{bits}")
        if mode == Mode.MEMSX and bits != 64:
            return _load(f"s{bits}")
    elif cls == Class.ST:
        if mode == Mode.MEM:
            return _store_imm(bits)
    elif mode == Mode.MEM:  # STX
        return _store_reg(bits)
    elif mode == Mode.ATOMIC:
        return _atomic(bits)
    return _unknown


def _formatter(opcode: int) -> Formatter:
    cls = opcode & 0x07
    if cls in (Class.ALU, Class.ALU64):
        return _alu(opcode)
    if cls in (Class.JMP, Class.JMP32):
        return _jump(opcode)
    return _load_store(opcode)


_FORMATTERS: Final[tuple[Formatter, ...]] = tuple(_formatter(opcode) for opcode in range(256))


# Public API ------------------------------------------------------------------------------


def instruction_text(insn: Instruction) -> str:
    """The instruction as llvm-objdump prints it, without annotation."""
    return _FORMATTERS[insn.opcode](insn)


def _pseudo_load_note(insn: Instruction) -> str:
    low = insn.constant & _MASK32
    high = insn.constant >> 32
    src = int(insn.src)
    if src == PseudoLoad.MAP_FD:
        return f"map fd {low}"
    if src == PseudoLoad.MAP_VALUE:
        return f"map fd {low} value + {high}"
    if src == PseudoLoad.BTF_ID:
        return f"ksym btf id {low}"
    if src == PseudoLoad.FUNC:
        return f"function at {low - (1 << 32) if low >> 31 else low:+d}"
    if src == PseudoLoad.MAP_IDX:
        return f"map index {low}"
    if src == PseudoLoad.MAP_IDX_VALUE:
        return f"map index {low} value + {high}"
    return f"unknown pseudo source {src}"


def annotation(insn: Instruction) -> str:
    """What :func:`format_instruction` adds after ``" ; "`` (``""`` for nothing).

    The reference; for helper calls the helper's name; for kfunc calls without a
    reference the BTF ID; for 64-bit loads with a pseudo source what the constant means;
    for instructions with a CO-RE relocation its kind, type ID and accessor.
    """
    parts: list[str] = []
    reference = insn.reference
    if reference is not None:
        parts.append(reference)
    if insn.opcode == 0x85:  # call
        if insn.src == PseudoCall.HELPER:
            name = BuiltinFunc.name_of(insn.constant)
            if name is not None and name != reference:
                parts.append(name)
        elif insn.src == PseudoCall.KFUNC_CALL and reference is None:
            parts.append(f"kfunc btf id {insn.constant}")
    elif insn.opcode == LD_IMM64 and insn.src != 0:
        parts.append(_pseudo_load_note(insn))
    relo = insn.core_relo
    if relo is not None:
        parts.append(f"CO-RE {relo.kind} type {relo.type_id} access {relo.accessor}")
    return ", ".join(parts)


def format_instruction(insn: Instruction, *, annotate: bool = True) -> str:
    """The instruction as llvm-objdump prints it, plus ``" ; annotation"`` if ``annotate``."""
    text = _FORMATTERS[insn.opcode](insn)
    if annotate:
        note = annotation(insn)
        if note:
            return f"{text} ; {note}"
    return text


def format_listing(instructions: Sequence[Instruction], raw_offsets: Sequence[int], *,
                   with_raw_offsets: bool = True, with_source: bool = True) -> str:
    """A listing of ``instructions`` (see :meth:`ebpfspec.asm.Instructions.disassemble`).

    A source line is shown once, before the first of consecutive instructions it covers.
    """
    lines: list[str] = []
    indent = " " * 9 + "\t" if with_raw_offsets else "\t"
    last_source = ""
    for insn, raw in zip(instructions, raw_offsets, strict=True):
        if insn.symbol is not None:
            if lines:
                lines.append("")
            lines.append(f"{insn.symbol}:")
            last_source = ""
        if with_source and insn.line_info is not None:
            source = insn.line_info.line.strip()
            if source and source != last_source:  # a line repeated for the next column: once
                lines.append(f"{indent}; {source}")
                last_source = source
        text = format_instruction(insn)
        lines.append(f"{raw:>8}:\t{text}" if with_raw_offsets else f"\t{text}")
    return "\n".join(lines)
