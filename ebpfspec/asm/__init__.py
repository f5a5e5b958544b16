"""``ebpfspec.asm``: the eBPF instruction model.

* :class:`Register` — ``R0``..``R10``.
* :mod:`ebpfspec.asm.opcodes` — the opcode fields (:class:`Class`, :class:`ALUOp`,
  :class:`JumpOp`, :class:`Size`, :class:`Mode`, :class:`AtomicOp`, ...) and the pseudo
  source-register values (``PSEUDO_MAP_FD``, ``PSEUDO_CALL``, ...).
* :class:`BuiltinFunc` — the kernel's helper function IDs.
* :class:`Instruction` — one decoded instruction plus symbolic metadata (immutable).
* :class:`Instructions` — an immutable sequence of them (a ``tuple``), with
  :meth:`~Instructions.decode`, :meth:`~Instructions.encode` and
  :meth:`~Instructions.disassemble` (llvm-objdump syntax).

Example::

    from ebpfspec.asm import ALUOp, Class, Instruction, Instructions, Register, Source

    mov = Instruction(Class.ALU64 | ALUOp.MOV | Source.X, Register.R1, Register.R2)
    mov.encode("little")                      # b"\\xbf\\x21\\0\\0\\0\\0\\0\\0"
    str(mov)                                  # "r1 = r2"
    insns = Instructions.decode(raw, "little", section="xdp")
"""

from ebpfspec.asm.helpers import BuiltinFunc
from ebpfspec.asm.instruction import INSTRUCTION_SIZE, ByteOrder, Instruction, Instructions
from ebpfspec.asm.opcodes import (
    LD_IMM64,
    PSEUDO_BTF_ID,
    PSEUDO_CALL,
    PSEUDO_FUNC,
    PSEUDO_KFUNC_CALL,
    PSEUDO_MAP_FD,
    PSEUDO_MAP_IDX,
    PSEUDO_MAP_IDX_VALUE,
    PSEUDO_MAP_VALUE,
    ALUOp,
    AtomicOp,
    Class,
    Endianness,
    JumpOp,
    Mode,
    PseudoCall,
    PseudoLoad,
    Size,
    Source,
)
from ebpfspec.asm.register import Register

__all__ = [
    "INSTRUCTION_SIZE",
    "LD_IMM64",
    "PSEUDO_BTF_ID",
    "PSEUDO_CALL",
    "PSEUDO_FUNC",
    "PSEUDO_KFUNC_CALL",
    "PSEUDO_MAP_FD",
    "PSEUDO_MAP_IDX",
    "PSEUDO_MAP_IDX_VALUE",
    "PSEUDO_MAP_VALUE",
    "ALUOp",
    "AtomicOp",
    "BuiltinFunc",
    "ByteOrder",
    "Class",
    "Endianness",
    "Instruction",
    "Instructions",
    "JumpOp",
    "Mode",
    "PseudoCall",
    "PseudoLoad",
    "Register",
    "Size",
    "Source",
]
