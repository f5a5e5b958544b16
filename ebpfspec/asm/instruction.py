"""The instruction model: :class:`Instruction` and the :class:`Instructions` sequence.

An :class:`Instruction` is one decoded eBPF instruction — normally one 8-byte *raw slot*,
the 64-bit immediate load (``LD | IMM | DW``, opcode ``0x18``) two — plus symbolic
metadata that the wire format does not carry: the function it starts (``symbol``), the
map/function/extern it refers to (``reference``) and the BTF func/line/CO-RE records
attached to it. A loader resolves references and drops the metadata when it encodes.

Both classes are immutable: ``Instruction`` is an attrs frozen class and ``Instructions``
a ``tuple``; changes make new objects (:meth:`Instruction.replace`,
:meth:`Instruction.with_reference`, ...). Share them freely between threads.

Wire layout of a slot (``struct bpf_insn``)::

    u8 opcode; u8 dst_reg:4, src_reg:4; s16 off; s32 imm;

The register byte depends on the byte order: little-endian objects keep ``dst`` in the
low nibble, big-endian objects in the high nibble (the C bitfields are allocated from
the other end).
"""

from __future__ import annotations

import enum
import operator
import struct
from collections.abc import Iterable
from typing import Any, Final, Literal, Self, SupportsIndex, TypedDict, overload

import attrs

from btf.ext import CORERelocation, LineInfo
from btf.types import Type
from ebpfspec.asm import disasm
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
    Class,
    JumpOp,
)
from ebpfspec.asm.register import Register
from ebpfspec.errors import SpecError

__all__ = ["INSTRUCTION_SIZE", "ByteOrder", "Instruction", "Instructions", "Metadata"]

ByteOrder = Literal["little", "big"]
"""The byte order of an object file and of the instructions in it."""

INSTRUCTION_SIZE: Final = 8
"""Bytes per raw instruction slot."""

_MASK32: Final = 0xFFFF_FFFF
_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_OP_CALL: Final = Class.JMP | JumpOp.CALL  # 0x85; | Source.X is callx
_OP_EXIT: Final = Class.JMP | JumpOp.EXIT  # 0x95
_OP_GOTOL: Final = Class.JMP32 | JumpOp.JA  # 0x06
_METADATA: Final = frozenset(("symbol", "reference", "func_info", "line_info", "core_relo"))
_FIELDS: Final = frozenset(("opcode", "dst", "src", "offset", "constant")) | _METADATA
_PSEUDO_SRC_OPCODES: Final = frozenset((LD_IMM64, _OP_CALL))
_MAP_LOADS: Final = frozenset((PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE))
_MAP_VALUE_LOADS: Final = frozenset((PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE))
# JMP/JMP32 opcodes (class bits 5 or 6) whose operation is a jump: JA..JSLE minus CALL, EXIT.
_JUMP_OPCODES: Final = frozenset(
    cls | op | src
    for cls in (Class.JMP, Class.JMP32)
    for op in JumpOp
    for src in (0x00, 0x08)
    if op not in (JumpOp.CALL, JumpOp.EXIT) and not (op == JumpOp.JA and src)  # JA|X is reserved
)

_SLOT: Final = {"little": struct.Struct("<BBhi"), "big": struct.Struct(">BBhi")}
_WIDE: Final = {"little": struct.Struct("<BBhIBBhI"), "big": struct.Struct(">BBhIBBhI")}

# Register byte -> dst (None where not r0..r10) and -> src nibble, for each byte order.
_REGISTERS: Final = tuple(Register(n) for n in range(11))
_REGS: Final[tuple[Register | int, ...]] = (*_REGISTERS, 11, 12, 13, 14, 15)
_DST: Final = {
    "little": tuple(_REGISTERS[b & 0xF] if b & 0xF <= 10 else None for b in range(256)),
    "big": tuple(_REGISTERS[b >> 4] if b >> 4 <= 10 else None for b in range(256)),
}
_SRC: Final = {
    "little": tuple(_REGS[b >> 4] for b in range(256)),
    "big": tuple(_REGS[b & 0xF] for b in range(256)),
}


class _Keep(enum.Enum):
    """The default of :meth:`Instruction.with_metadata`'s arguments: keep the field as it is."""

    KEEP = "keep"


_KEEP: Final = _Keep.KEEP


class Metadata(TypedDict, total=False):
    """The metadata fields of an :class:`Instruction` (never encoded), as keyword arguments
    for :meth:`~Instruction.with_metadata`."""

    symbol: str | None
    reference: str | None
    func_info: Type | None
    line_info: LineInfo | None
    core_relo: CORERelocation | None


def _as_register(value: int) -> Register:
    """attrs converter for ``dst``: 0..10 become :class:`Register` members.

    Other values pass through unchanged for ``__attrs_post_init__`` to reject with a
    message naming the whole instruction.
    """
    if type(value) is Register:
        return value
    if isinstance(value, int) and 0 <= value <= 10:
        return _REGISTERS[value]
    return value  # type: ignore[return-value]  # rejected by validation


def _as_source(value: int) -> Register | int:
    """attrs converter for ``src``: 0..10 become :class:`Register` members, the rest stays."""
    if isinstance(value, int) and 0 <= value <= 10:
        return _REGISTERS[value]
    return value


def _check_byte_order(byte_order: str) -> ByteOrder:
    if byte_order == "little":
        return "little"
    if byte_order == "big":
        return "big"
    raise ValueError(f"byte order must be 'little' or 'big', not {byte_order!r}")


@attrs.frozen(repr=False)
class Instruction:
    """One eBPF instruction, with symbolic metadata.

    Encoded fields:

    ``opcode``
        the raw opcode byte (build it from :mod:`ebpfspec.asm.opcodes`:
        ``Class.ALU64 | ALUOp.MOV | Source.X``).
    ``dst``
        the destination register, ``R0``..``R10`` (plain ints are converted).
    ``src``
        the source register, ``R0``..``R10`` (plain ints are converted). For the 64-bit
        immediate load and for ``call`` it is not a register but a selector
        (:class:`~ebpfspec.asm.PseudoLoad`, :class:`~ebpfspec.asm.PseudoCall`) and may be
        any nibble 0..15; values 0..10 are still stored as :class:`Register` members
        (``src == PSEUDO_MAP_FD`` compares by value), 11..15 as plain ints.
    ``offset``
        the signed 16-bit offset.
    ``constant``
        the signed 32-bit immediate. For the 16-byte 64-bit immediate load (opcode
        ``0x18``) it is the whole unsigned 64-bit value: low 32 bits from the first slot's
        immediate, high 32 bits from the second's. With ``src`` ``PSEUDO_MAP_VALUE`` (or
        ``PSEUDO_MAP_IDX_VALUE``) the low half is the map and the high half the *offset
        into the map value* (:attr:`map_value_offset`). Negative values given for a 64-bit
        load are stored as their unsigned two's complement.

    Metadata, never encoded:

    ``symbol``
        this instruction starts the function ``symbol``.
    ``reference``
        this instruction refers to the map, function, variable or extern ``reference``;
        a loader resolves it (map fd, call offset, BTF ID, ...).
    ``func_info``
        the BTF ``FUNC`` of the function this instruction starts.
    ``line_info``
        the source line of this instruction.
    ``core_relo``
        the CO-RE relocation to apply to this instruction.

    Construction validates every encoded field and raises :class:`ValueError` naming the
    instruction. ``str()`` is the llvm-objdump style disassembly (with annotation).
    """

    opcode: int
    dst: Register = attrs.field(default=Register.R0, converter=_as_register)
    src: Register | int = attrs.field(default=Register.R0, converter=_as_source)
    offset: int = 0
    constant: int = 0
    symbol: str | None = attrs.field(default=None, kw_only=True)
    reference: str | None = attrs.field(default=None, kw_only=True)
    func_info: Type | None = attrs.field(default=None, kw_only=True)
    line_info: LineInfo | None = attrs.field(default=None, kw_only=True)
    core_relo: CORERelocation | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        try:
            opcode = operator.index(self.opcode)
            dst = operator.index(self.dst)
            src = operator.index(self.src)
            offset = operator.index(self.offset)
            constant = operator.index(self.constant)
        except TypeError:
            raise TypeError(f"{self._describe()}: opcode, dst, src, offset and constant must be integers") \
                from None
        if not 0 <= opcode <= 0xFF:
            raise self._invalid(f"opcode {opcode} does not fit in a byte")
        if not 0 <= dst <= 10:
            raise self._invalid(f"destination register {dst} is not one of r0..r10")
        if opcode in _PSEUDO_SRC_OPCODES:
            if not 0 <= src <= 0xF:
                raise self._invalid(f"source (pseudo) value {src} does not fit in 4 bits")
        elif not 0 <= src <= 10:
            raise self._invalid(f"source register {src} is not one of r0..r10")
        if not -0x8000 <= offset <= 0x7FFF:
            raise self._invalid(f"offset {offset} does not fit in a signed 16-bit integer")
        if opcode == LD_IMM64:
            if not -(1 << 63) <= constant <= _MASK64:
                raise self._invalid(f"constant {constant} does not fit in 64 bits")
            constant &= _MASK64
        elif not -(1 << 31) <= constant < (1 << 31):
            raise self._invalid(f"constant {constant} does not fit in a signed 32-bit integer")
        setattr_ = object.__setattr__
        setattr_(self, "opcode", opcode)
        setattr_(self, "dst", _REGS[dst])
        setattr_(self, "src", _REGS[src])
        setattr_(self, "offset", offset)
        setattr_(self, "constant", constant)

    def _describe(self) -> str:
        return (f"instruction (opcode={self.opcode!r}, dst={self.dst!r}, src={self.src!r}, "
                f"offset={self.offset!r}, constant={self.constant!r})")

    def _invalid(self, problem: str) -> ValueError:
        opcode = f"{self.opcode:#04x}" if isinstance(self.opcode, int) else repr(self.opcode)
        return ValueError(f"invalid instruction (opcode {opcode}, dst {int(self.dst)}, src {int(self.src)}, "
                          f"offset {self.offset}, constant {self.constant}): {problem}")

    def __repr__(self) -> str:
        meta = "".join(
            f", {name}={value!r}"
            for name in ("symbol", "reference", "func_info", "line_info", "core_relo")
            if (value := getattr(self, name)) is not None
        )
        return (f"Instruction(opcode={self.opcode:#04x}, dst={self.dst}, src={int(self.src)}, "
                f"offset={self.offset}, constant={self.constant}{meta})  # {disasm.instruction_text(self)}")

    def __str__(self) -> str:
        return disasm.format_instruction(self)

    def disassemble(self, *, annotate: bool = True) -> str:
        """This instruction in llvm-objdump's syntax (``r1 = *(u32 *)(r2 + 8)``).

        With ``annotate``, an annotation follows after ``" ; "`` when there is one: the
        reference, the helper's name for helper calls, the meaning of a pseudo load, the
        CO-RE relocation.
        """
        return disasm.format_instruction(self, annotate=annotate)

    # Classification -------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Raw 8-byte slots this instruction takes: 2 for the 64-bit immediate load, else 1."""
        return 2 if self.opcode == LD_IMM64 else 1

    @property
    def is_ld_imm64(self) -> bool:
        """Whether this is the 16-byte 64-bit immediate load (opcode ``0x18``)."""
        return self.opcode == LD_IMM64

    @property
    def is_call(self) -> bool:
        """Whether this is a ``call`` of any kind (helper, BPF-to-BPF, kfunc, ``callx``)."""
        return self.opcode & 0xF7 == _OP_CALL

    @property
    def is_builtin_call(self) -> bool:
        """Whether this calls a helper function by ID (``call 1``: :class:`BuiltinFunc`)."""
        return self.opcode == _OP_CALL and self.src == 0

    @property
    def is_bpf_to_bpf_call(self) -> bool:
        """Whether this calls a BPF function (source ``PSEUDO_CALL``; constant: offset)."""
        return self.opcode == _OP_CALL and self.src == PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """Whether this calls a kernel function (source ``PSEUDO_KFUNC_CALL``; constant: BTF ID)."""
        return self.opcode == _OP_CALL and self.src == PSEUDO_KFUNC_CALL

    @property
    def is_exit(self) -> bool:
        """Whether this is ``exit``."""
        return self.opcode == _OP_EXIT

    @property
    def is_jump(self) -> bool:
        """Whether this is a jump, unconditional (``goto``, ``gotol``) or conditional."""
        return self.opcode in _JUMP_OPCODES

    @property
    def is_conditional_jump(self) -> bool:
        """Whether this is a conditional jump (``if r1 > r2 goto +3``)."""
        return self.opcode in _JUMP_OPCODES and self.opcode & 0xF0 != JumpOp.JA

    @property
    def is_load_from_map(self) -> bool:
        """Whether this loads a map or map-value pointer (64-bit load with src
        ``PSEUDO_MAP_FD``, ``PSEUDO_MAP_VALUE``, ``PSEUDO_MAP_IDX`` or ``PSEUDO_MAP_IDX_VALUE``)."""
        return self.opcode == LD_IMM64 and self.src in _MAP_LOADS

    @property
    def is_load_of_function_pointer(self) -> bool:
        """Whether this loads a pointer to a BPF function (64-bit load with src ``PSEUDO_FUNC``)."""
        return self.opcode == LD_IMM64 and self.src == PSEUDO_FUNC

    @property
    def is_load_of_kernel_symbol(self) -> bool:
        """Whether this loads the address of a kernel variable (64-bit load with src ``PSEUDO_BTF_ID``)."""
        return self.opcode == LD_IMM64 and self.src == PSEUDO_BTF_ID

    @property
    def map_value_offset(self) -> int | None:
        """For a map-value load (``PSEUDO_MAP_VALUE``/``PSEUDO_MAP_IDX_VALUE``): the offset into
        the value, i.e. the high half of :attr:`constant`; else None."""
        if self.opcode == LD_IMM64 and self.src in _MAP_VALUE_LOADS:
            return self.constant >> 32
        return None

    @property
    def branch_offset(self) -> int | None:
        """The PC-relative target, in raw slots after this instruction, of a jump (the offset;
        the constant for ``gotol``), a BPF-to-BPF call or a function-pointer load; else None."""
        opcode = self.opcode
        if opcode in _JUMP_OPCODES:
            return self.constant if opcode == _OP_GOTOL else self.offset
        if opcode == _OP_CALL and self.src == PSEUDO_CALL:
            return self.constant
        if opcode == LD_IMM64 and self.src == PSEUDO_FUNC:
            low = self.constant & _MASK32
            return low - (1 << 32) if low & 0x8000_0000 else low
        return None

    # Changes --------------------------------------------------------------------------

    def replace(self, **changes: Any) -> Instruction:
        """A copy with ``changes`` applied (``attrs.evolve``), validated again.

        When only metadata changes (``symbol``, ``reference``, ``func_info``, ``line_info``,
        ``core_relo``) this is :meth:`with_metadata`: the same result, without running the
        converters and checks again on encoded fields that do not change. Otherwise every
        converter and check runs, as in ``attrs.evolve``.
        """
        keys = changes.keys()
        if keys <= _METADATA:
            return self.with_metadata(**changes)
        if type(self) is not Instruction or not keys <= _FIELDS:
            return attrs.evolve(self, **changes)  # a subclass, or a bad name: evolve's TypeError
        # What attrs.evolve does — the generated __init__ on every field, the changed ones
        # from ``changes`` — without its per-call introspection of the class.
        get = changes.get
        copy: Instruction = _new_instruction(Instruction)
        s_op, s_dst, s_src, s_off, s_imm, s_sym, s_ref, s_func, s_line, s_core = _SETTERS
        s_op(copy, get("opcode", self.opcode))
        s_dst(copy, _as_register(get("dst", self.dst)))
        s_src(copy, _as_source(get("src", self.src)))
        s_off(copy, get("offset", self.offset))
        s_imm(copy, get("constant", self.constant))
        s_sym(copy, get("symbol", self.symbol))
        s_ref(copy, get("reference", self.reference))
        s_func(copy, get("func_info", self.func_info))
        s_line(copy, get("line_info", self.line_info))
        s_core(copy, get("core_relo", self.core_relo))
        copy.__attrs_post_init__()
        return copy

    def with_metadata(
        self,
        *,
        symbol: str | _Keep | None = _KEEP,
        reference: str | _Keep | None = _KEEP,
        func_info: Type | _Keep | None = _KEEP,
        line_info: LineInfo | _Keep | None = _KEEP,
        core_relo: CORERelocation | _Keep | None = _KEEP,
    ) -> Instruction:
        """A copy with the metadata fields given changed (those not given are kept).

        The fast path for the changes a reader or linker makes several times per instruction
        (symbols, references, BTF func/line/CO-RE records). Metadata fields have no
        converters or checks, and the encoded fields are copied as they are — they were
        checked when this instruction was made and do not change — so the re-run of every
        converter and of the checks that ``attrs.evolve`` does (several times the cost) is
        skipped. The result equals ``attrs.evolve(self, **changes)``.
        """
        if type(self) is not Instruction:  # a subclass may have fields of its own
            changes: dict[str, Any] = {name: value for name, value in (
                ("symbol", symbol), ("reference", reference), ("func_info", func_info),
                ("line_info", line_info), ("core_relo", core_relo)) if value is not _KEEP}
            return attrs.evolve(self, **changes)
        copy: Instruction = _new_instruction(Instruction)
        s_op, s_dst, s_src, s_off, s_imm, s_sym, s_ref, s_func, s_line, s_core = _SETTERS
        s_op(copy, self.opcode)
        s_dst(copy, self.dst)
        s_src(copy, self.src)
        s_off(copy, self.offset)
        s_imm(copy, self.constant)
        s_sym(copy, self.symbol if symbol is _KEEP else symbol)
        s_ref(copy, self.reference if reference is _KEEP else reference)
        s_func(copy, self.func_info if func_info is _KEEP else func_info)
        s_line(copy, self.line_info if line_info is _KEEP else line_info)
        s_core(copy, self.core_relo if core_relo is _KEEP else core_relo)
        return copy

    def with_reference(self, name: str | None) -> Instruction:
        """A copy that refers to ``name`` (None: refers to nothing)."""
        return self.with_metadata(reference=name)

    def with_symbol(self, name: str | None) -> Instruction:
        """A copy that starts function ``name`` (None: starts nothing)."""
        return self.with_metadata(symbol=name)

    # Wire format ----------------------------------------------------------------------

    def encode(self, byte_order: ByteOrder) -> bytes:
        """The raw bytes: 8, or 16 for the 64-bit immediate load. Metadata is not encoded."""
        order = _check_byte_order(byte_order)
        dst, src = int(self.dst), int(self.src)
        regs = (src << 4 | dst) if order == "little" else (dst << 4 | src)
        if self.opcode == LD_IMM64:
            constant = self.constant
            return _WIDE[order].pack(LD_IMM64, regs, self.offset, constant & _MASK32, 0, 0, 0, constant >> 32)
        return _SLOT[order].pack(self.opcode, regs, self.offset, self.constant)


# Decoding builds instructions without running __attrs_post_init__: struct already gives
# in-range offsets and constants, and decode checks the registers itself.
_SETTERS: Final = tuple(Instruction.__dict__[field.name].__set__ for field in attrs.fields(Instruction))
_new_instruction = object.__new__


def _raw_instruction(
    opcode: int, dst: Register, src: Register | int, offset: int, constant: int
) -> Instruction:
    insn: Instruction = _new_instruction(Instruction)
    s_op, s_dst, s_src, s_off, s_imm, s_sym, s_ref, s_func, s_line, s_core = _SETTERS
    s_op(insn, opcode)
    s_dst(insn, dst)
    s_src(insn, src)
    s_off(insn, offset)
    s_imm(insn, constant)
    s_sym(insn, None)
    s_ref(insn, None)
    s_func(insn, None)
    s_line(insn, None)
    s_core(insn, None)
    return insn


class Instructions(tuple[Instruction, ...]):
    """An immutable sequence of :class:`Instruction` — a ``tuple``.

    Indexes are *instruction* indexes; a 64-bit immediate load takes two *raw slots*, so
    the raw slot (8-byte offset / 8) of instruction ``i`` is ``raw_offsets()[i]``.
    Slicing and ``+`` give ``Instructions`` again; ``str()`` is the disassembly.

    Build one from instructions (``Instructions([insn, ...])``) or from raw bytes
    (:meth:`decode`).
    """

    # No __slots__: a tuple subclass cannot have non-empty ones, and the instance dict
    # caches the raw offsets. Attributes cannot be set from outside (see __setattr__).

    def __new__(cls, instructions: Iterable[Instruction] = ()) -> Self:
        """The instructions of ``instructions``, in order. Anything else raises TypeError."""
        self = super().__new__(cls, instructions)
        for index, insn in enumerate(self):
            if not isinstance(insn, Instruction):
                raise TypeError(f"Instructions holds only Instruction objects, item {index} is {insn!r}")
        return self

    @classmethod
    def _of_list(cls, instructions: list[Instruction]) -> Self:
        """Wrap already-checked instructions without checking them again."""
        return tuple.__new__(cls, instructions)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Instructions is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Instructions is immutable; cannot delete {name!r}")

    @overload
    def __getitem__(self, index: SupportsIndex) -> Instruction: ...

    @overload
    def __getitem__(self, index: slice) -> Instructions: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Instruction | Instructions:
        """One instruction, or a slice as ``Instructions``."""
        if isinstance(index, slice):
            return Instructions._of_list(list(tuple.__getitem__(self, index)))
        return tuple.__getitem__(self, index)

    def __add__(self, other: tuple[Any, ...]) -> Instructions:
        """Concatenation; the result is ``Instructions`` (every item must be an Instruction)."""
        if not isinstance(other, tuple):
            return NotImplemented
        if isinstance(other, Instructions):
            return Instructions._of_list([*self, *other])
        return Instructions([*self, *other])

    def __repr__(self) -> str:
        slots = self._offsets()[-1]
        names = ", ".join(insn.symbol for insn in self if insn.symbol is not None)
        return (f"<Instructions: {len(self)} instructions, {slots} raw slots"
                f"{', functions ' + names if names else ''}>")

    def __str__(self) -> str:
        return self.disassemble()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy as the plain instruction list; the cache is rebuilt on demand.
        return (Instructions._of_list, (list(self),))

    # Raw offsets ----------------------------------------------------------------------

    def _offsets(self) -> tuple[int, ...]:
        """Raw slot of every instruction, plus the total slot count at the end (cached)."""
        cached: tuple[int, ...] | None = self.__dict__.get("_raw_offsets")
        if cached is None:
            offsets = [0] * (len(self) + 1)
            slot = 0
            for index, insn in enumerate(self):
                offsets[index] = slot
                slot += 2 if insn.opcode == LD_IMM64 else 1
            offsets[-1] = slot
            cached = tuple(offsets)
            self.__dict__["_raw_offsets"] = cached
        return cached

    def raw_offsets(self) -> tuple[int, ...]:
        """The raw slot index of each instruction (its byte offset / 8)."""
        return self._offsets()[:-1]

    @property
    def raw_length(self) -> int:
        """The number of raw 8-byte slots these instructions take when encoded."""
        return self._offsets()[-1]

    def index_of_raw_offset(self, slot: int) -> int:
        """The index of the instruction starting at raw slot ``slot``.

        Raises :class:`ValueError` when ``slot`` is out of range or falls on the second
        half of a 64-bit immediate load.
        """
        index = self.__dict__.get("_slot_index")
        if index is None:
            index = {slot: i for i, slot in enumerate(self.raw_offsets())}
            self.__dict__["_slot_index"] = index
        try:
            return int(index[slot])
        except (KeyError, TypeError):
            raise ValueError(f"raw offset {slot!r} is not the start of an instruction "
                             f"(there are {self.raw_length} raw slots)") from None

    # Symbols and references ------------------------------------------------------------

    def symbols(self) -> dict[str, int]:
        """Each function symbol → the index of the instruction that starts it.

        Raises :class:`ValueError` if a symbol starts two instructions.
        """
        found: dict[str, int] = {}
        for index, insn in enumerate(self):
            name = insn.symbol
            if name is not None:
                if name in found:
                    raise ValueError(f"symbol {name!r} starts instructions {found[name]} and {index}")
                found[name] = index
        return found

    def references(self) -> frozenset[str]:
        """The names the instructions refer to (maps, functions, externs)."""
        return frozenset(insn.reference for insn in self if insn.reference is not None)

    # Wire format ----------------------------------------------------------------------

    @classmethod
    def decode(cls, raw: bytes | bytearray | memoryview, byte_order: ByteOrder, *, section: str = "") -> Self:
        """Decode raw instruction bytes (e.g. an executable ELF section) in ``byte_order``.

        Raises :class:`~ebpfspec.SpecError` naming ``section`` and the byte offset when the
        length is not a multiple of 8, a 64-bit immediate load is cut off or has a second
        slot with a non-zero opcode, registers or offset, or a register is not r0..r10.
        Unknown opcodes are kept (disassembly shows them as unknown).
        """
        order = _check_byte_order(byte_order)
        length = len(raw) if not isinstance(raw, memoryview) else raw.nbytes
        if length % INSTRUCTION_SIZE:
            raise SpecError(f"{length} bytes of instructions is not a multiple of {INSTRUCTION_SIZE}",
                            section=section, offset=length - length % INSTRUCTION_SIZE)
        dst_of, src_of = _DST[order], _SRC[order]
        made: dict[tuple[int, ...], Instruction] = {}  # identical slots share one (immutable) object
        out: list[Instruction] = []
        append = out.append
        wide = 0  # 64-bit loads so far: the slot of len(out) is len(out) + wide
        slots = _SLOT[order].iter_unpack(raw)
        for slot in slots:
            insn = made.get(slot)
            if insn is None:
                opcode, regs, offset, imm = slot
                dst = dst_of[regs]
                src = src_of[regs]
                if dst is None:
                    nibble = regs & 0xF if order == "little" else regs >> 4
                    raise SpecError(f"instruction {opcode:#04x} has invalid destination register r{nibble}",
                                    section=section, offset=(len(out) + wide) * INSTRUCTION_SIZE)
                if opcode == LD_IMM64:
                    where = (len(out) + wide) * INSTRUCTION_SIZE
                    second = next(slots, None)
                    if second is None:
                        raise SpecError("64-bit immediate load is cut off: its second half is missing",
                                        section=section, offset=where)
                    if second[0] or second[1] or second[2]:
                        raise SpecError(f"second half of 64-bit immediate load must have zero opcode, "
                                        f"registers and offset, has {second[0]:#04x}, {second[1]:#04x}, "
                                        f"{second[2]}", section=section, offset=where + INSTRUCTION_SIZE)
                    wide += 1
                    key = (*slot, second[3])
                    insn = made.get(key)
                    if insn is None:
                        constant = (imm & _MASK32) | (second[3] & _MASK32) << 32
                        insn = made[key] = _raw_instruction(opcode, dst, src, offset, constant)
                    append(insn)
                    continue
                if src > 10 and opcode != _OP_CALL:
                    raise SpecError(f"instruction {opcode:#04x} has invalid source register r{src}",
                                    section=section, offset=(len(out) + wide) * INSTRUCTION_SIZE)
                insn = made[slot] = _raw_instruction(opcode, dst, src, offset, imm)
            append(insn)
        return cls._of_list(out)

    def encode(self, byte_order: ByteOrder) -> bytes:
        """The raw bytes of all instructions (metadata is not encoded)."""
        order = _check_byte_order(byte_order)
        little = order == "little"
        slot = _SLOT[order].pack
        wide = _WIDE[order].pack
        parts: list[bytes] = []
        append = parts.append
        for insn in self:
            dst, src = int(insn.dst), int(insn.src)
            regs = (src << 4 | dst) if little else (dst << 4 | src)
            if insn.opcode == LD_IMM64:
                constant = insn.constant
                append(wide(LD_IMM64, regs, insn.offset, constant & _MASK32, 0, 0, 0, constant >> 32))
            else:
                append(slot(insn.opcode, regs, insn.offset, insn.constant))
        return b"".join(parts)

    # Text -----------------------------------------------------------------------------

    def disassemble(self, *, with_raw_offsets: bool = True, with_source: bool = True) -> str:
        """The listing, one instruction per line in llvm-objdump's syntax with annotations.

        A function's symbol precedes its first instruction as ``name:``. With
        ``with_raw_offsets`` each line starts with the instruction's raw slot, right-aligned
        like llvm-objdump (``      12:\\t``); otherwise with a tab. With ``with_source`` the
        source line of instructions that carry line info precedes them as ``; text`` (once
        for consecutive instructions of the same line).
        """
        return disasm.format_listing(self, self.raw_offsets(), with_raw_offsets=with_raw_offsets,
                                     with_source=with_source)
