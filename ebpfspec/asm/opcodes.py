"""The structure of a BPF opcode, as the kernel's instruction-set document describes it.

An instruction's 8-bit opcode is split into fields whose meaning depends on the
instruction *class* (the low three bits):

* arithmetic and jump classes (``ALU``, ``ALU64``, ``JMP``, ``JMP32``)::

      +--------+--------+-------+
      | 4 bits | 1 bit  | 3 bits|
      |  op    | source | class |
      +--------+--------+-------+

* load and store classes (``LD``, ``LDX``, ``ST``, ``STX``)::

      +--------+--------+-------+
      | 3 bits | 2 bits | 3 bits|
      |  mode  |  size  | class |
      +--------+--------+-------+

Every field is an :class:`enum.IntEnum` whose values are already shifted into place, so
an opcode is the bitwise OR of its parts: ``Class.ALU64 | ALUOp.MOV | Source.X == 0xbf``.
The helper functions (:func:`class_of`, :func:`alu_op_of`, ...) take an opcode apart.

Some operations are selected by fields other than the opcode:

* ``ALU``/``ALU64`` ``MOV`` with source ``X`` and ``offset`` 8, 16 or 32 is *MOVSX*
  (sign-extending move); ``DIV``/``MOD`` with ``offset`` 1 are *SDIV*/*SMOD*.
* ``ALU`` ``END`` converts to little (:attr:`Endianness.TO_LE`) or big
  (:attr:`Endianness.TO_BE`) endian; ``ALU64`` ``END`` (with ``TO_LE``) is an unconditional
  byte swap. The width (16, 32, 64) is the instruction's constant.
* ``STX`` ``ATOMIC`` instructions select their operation with the constant
  (:class:`AtomicOp`).
* ``JMP32`` ``JA`` ("gotol") takes its 32-bit jump offset from the constant.
* The 16-byte ``LD IMM DW`` (:data:`LD_IMM64`) and ``JMP CALL`` select what their constant
  means with the source register (:class:`PseudoLoad`, :class:`PseudoCall`).
"""

from __future__ import annotations

import enum

__all__ = [
    "CLASS_MASK",
    "LD_IMM64",
    "MODE_MASK",
    "OP_MASK",
    "PSEUDO_BTF_ID",
    "PSEUDO_CALL",
    "PSEUDO_FUNC",
    "PSEUDO_KFUNC_CALL",
    "PSEUDO_MAP_FD",
    "PSEUDO_MAP_IDX",
    "PSEUDO_MAP_IDX_VALUE",
    "PSEUDO_MAP_VALUE",
    "SIZE_MASK",
    "SOURCE_MASK",
    "ALUOp",
    "AtomicOp",
    "Class",
    "Endianness",
    "JumpOp",
    "Mode",
    "PseudoCall",
    "PseudoLoad",
    "Size",
    "Source",
    "alu_op_of",
    "class_of",
    "jump_op_of",
    "mode_of",
    "size_of",
    "source_of",
]

CLASS_MASK = 0x07
"""Bits of the opcode holding the instruction class."""
SOURCE_MASK = 0x08
"""Bit of an arithmetic or jump opcode selecting the source operand."""
OP_MASK = 0xF0
"""Bits of an arithmetic or jump opcode holding the operation."""
SIZE_MASK = 0x18
"""Bits of a load or store opcode holding the access size."""
MODE_MASK = 0xE0
"""Bits of a load or store opcode holding the addressing mode."""


class Class(enum.IntEnum):
    """The instruction class: the low three bits of every opcode."""

    LD = 0x00
    """Non-standard loads: the 64-bit immediate load and the legacy packet accesses."""
    LDX = 0x01
    """Load from memory into a register."""
    ST = 0x02
    """Store an immediate into memory."""
    STX = 0x03
    """Store a register into memory, and atomic operations."""
    ALU = 0x04
    """32-bit arithmetic."""
    JMP = 0x05
    """64-bit jumps, calls and exit."""
    JMP32 = 0x06
    """32-bit jumps."""
    ALU64 = 0x07
    """64-bit arithmetic."""

    @property
    def is_load_or_store(self) -> bool:
        """Whether opcodes of this class use the mode/size layout."""
        return self <= Class.STX

    @property
    def is_alu(self) -> bool:
        """Whether this is ``ALU`` or ``ALU64``."""
        return self in (Class.ALU, Class.ALU64)

    @property
    def is_jump(self) -> bool:
        """Whether this is ``JMP`` or ``JMP32``."""
        return self in (Class.JMP, Class.JMP32)


class Source(enum.IntEnum):
    """Where the second operand of an arithmetic or jump instruction comes from."""

    K = 0x00
    """The 32-bit constant (immediate)."""
    X = 0x08
    """The source register."""


class Endianness(enum.IntEnum):
    """The source bit of ``END`` (byte swap) instructions."""

    TO_LE = 0x00
    """Convert to little endian (``le16``/``le32``/``le64``); with ``ALU64``: unconditional swap."""
    TO_BE = 0x08
    """Convert to big endian (``be16``/``be32``/``be64``)."""


class ALUOp(enum.IntEnum):
    """The operation of an ``ALU`` / ``ALU64`` instruction (bits 4-7 of the opcode).

    ``DIV`` and ``MOD`` with ``offset == 1`` are signed (SDIV, SMOD); ``MOV`` from a
    register with ``offset`` 8/16/32 sign-extends that many low bits (MOVSX).
    """

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JumpOp(enum.IntEnum):
    """The operation of a ``JMP`` / ``JMP32`` instruction (bits 4-7 of the opcode).

    ``CALL`` and ``EXIT`` exist only in class ``JMP``; ``JA`` in class ``JMP32`` is
    "gotol", whose offset is the 32-bit constant.
    """

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0


class Size(enum.IntEnum):
    """The access size of a load or store (bits 3-4 of the opcode)."""

    W = 0x00
    """4 bytes."""
    H = 0x08
    """2 bytes."""
    B = 0x10
    """1 byte."""
    DW = 0x18
    """8 bytes."""

    @property
    def bytes(self) -> int:
        """The size in bytes."""
        return _SIZE_BYTES[self]

    @property
    def bits(self) -> int:
        """The size in bits."""
        return _SIZE_BYTES[self] * 8


_SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class Mode(enum.IntEnum):
    """The addressing mode of a load or store (bits 5-7 of the opcode)."""

    IMM = 0x00
    """64-bit immediate (only ``LD | DW``: the 16-byte instruction)."""
    ABS = 0x20
    """Legacy packet access at a constant offset (``r0 = skb[imm]``)."""
    IND = 0x40
    """Legacy packet access at a register plus constant offset."""
    MEM = 0x60
    """Regular memory access ``*(size *)(reg + offset)``."""
    MEMSX = 0x80
    """Sign-extending load (``LDX`` only)."""
    ATOMIC = 0xC0
    """Atomic operation (``STX`` only); the constant is an :class:`AtomicOp`."""


class AtomicOp(enum.IntEnum):
    """The constant of an ``STX | ATOMIC`` instruction.

    ``ADD``, ``OR``, ``AND`` and ``XOR`` may be combined with ``FETCH`` (the old value is
    written back to the source register). ``XCHG`` and ``CMPXCHG`` always fetch. ``LOAD_ACQ``
    and ``STORE_REL`` (Linux 6.15) are load-acquire and store-release.
    """

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH = 0x01
    XCHG = 0xE0 | 0x01
    CMPXCHG = 0xF0 | 0x01
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


class PseudoLoad(enum.IntEnum):
    """The source register of a 64-bit immediate load: what its constant means.

    With ``MAP_VALUE`` and ``MAP_IDX_VALUE`` the first slot's constant is the map (fd or
    index) and the second slot's constant is an offset into the map's value.
    """

    IMM = 0
    """A plain 64-bit constant."""
    MAP_FD = 1
    """The constant is a map file descriptor: loads a map pointer."""
    MAP_VALUE = 2
    """Low half: a map file descriptor; high half: an offset into its (array) value."""
    BTF_ID = 3
    """The constant is a kernel BTF ID of a variable (ksym)."""
    FUNC = 4
    """The constant is an instruction offset: loads a pointer to a BPF function."""
    MAP_IDX = 5
    """Like ``MAP_FD`` with an index into ``fd_array``."""
    MAP_IDX_VALUE = 6
    """Like ``MAP_VALUE`` with an index into ``fd_array``."""


class PseudoCall(enum.IntEnum):
    """The source register of a ``JMP | CALL`` instruction: what its constant means."""

    HELPER = 0
    """A helper function ID (:class:`ebpfspec.asm.BuiltinFunc`)."""
    CALL = 1
    """A BPF-to-BPF call; the constant is the offset to the callee, in instructions."""
    KFUNC_CALL = 2
    """A kernel function; the constant is its BTF ID (``offset``: index into ``fd_array``)."""


PSEUDO_MAP_FD = PseudoLoad.MAP_FD
"""``BPF_PSEUDO_MAP_FD``: source register of a map-pointer load."""
PSEUDO_MAP_VALUE = PseudoLoad.MAP_VALUE
"""``BPF_PSEUDO_MAP_VALUE``: source register of a map-value-pointer load."""
PSEUDO_BTF_ID = PseudoLoad.BTF_ID
"""``BPF_PSEUDO_BTF_ID``: source register of a ksym load."""
PSEUDO_FUNC = PseudoLoad.FUNC
"""``BPF_PSEUDO_FUNC``: source register of a function-pointer load."""
PSEUDO_MAP_IDX = PseudoLoad.MAP_IDX
"""``BPF_PSEUDO_MAP_IDX``: source register of a map-pointer load by ``fd_array`` index."""
PSEUDO_MAP_IDX_VALUE = PseudoLoad.MAP_IDX_VALUE
"""``BPF_PSEUDO_MAP_IDX_VALUE``: source register of a map-value load by ``fd_array`` index."""
PSEUDO_CALL = PseudoCall.CALL
"""``BPF_PSEUDO_CALL``: source register of a BPF-to-BPF call."""
PSEUDO_KFUNC_CALL = PseudoCall.KFUNC_CALL
"""``BPF_PSEUDO_KFUNC_CALL``: source register of a kernel function call."""

LD_IMM64 = Class.LD | Mode.IMM | Size.DW
"""``0x18``: the 16-byte 64-bit immediate load, the only two-slot instruction."""


def class_of(opcode: int) -> Class:
    """The class of ``opcode``."""
    return Class(opcode & CLASS_MASK)


def source_of(opcode: int) -> Source:
    """The source bit of an arithmetic or jump ``opcode``."""
    return Source(opcode & SOURCE_MASK)


def alu_op_of(opcode: int) -> ALUOp | None:
    """The operation of an ``ALU``/``ALU64`` ``opcode`` (None for the unassigned 0xe0, 0xf0)."""
    try:
        return ALUOp(opcode & OP_MASK)
    except ValueError:
        return None


def jump_op_of(opcode: int) -> JumpOp | None:
    """The operation of a ``JMP``/``JMP32`` ``opcode`` (None for the unassigned 0xe0, 0xf0)."""
    try:
        return JumpOp(opcode & OP_MASK)
    except ValueError:
        return None


def size_of(opcode: int) -> Size:
    """The access size of a load or store ``opcode``."""
    return Size(opcode & SIZE_MASK)


def mode_of(opcode: int) -> Mode | None:
    """The mode of a load or store ``opcode`` (None for the unassigned 0xa0, 0xe0)."""
    try:
        return Mode(opcode & MODE_MASK)
    except ValueError:
        return None
