"""``ProgramSpec``: a BPF program's instructions and load attributes, nothing live.

Thread-safety: immutable; share freely. :meth:`ProgramSpec.copy` is deep (the BTF
types carried on instructions move to a copy of their spec).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

import btf
from ebpfspec.asm import Instruction, Instructions
from ebpfspec.enums import AttachType, ProgramType
from ebpfspec.mapspec import rebind_type


def _instructions(value: Any) -> Instructions:
    return value if isinstance(value, Instructions) else Instructions(value)


@attrs.frozen
class ProgramSpec:
    """A BPF program as the ELF reader found it.

    - ``name``: the function's symbol name; ``section_name``: its ELF section.
    - ``type``, ``attach_type``, ``attach_to``: from the section name by libbpf's
      conventions (``attach_to`` is e.g. the kprobe's function or the tracepoint).
    - ``instructions``: the program followed by every subprogram it calls, with
      bpf-to-bpf call offsets already linked; map and data references are symbolic
      (``Instruction.reference``) until a loader replaces them with file descriptors.
      BTF func/line info and CO-RE records ride on the instructions.
    - ``license``, ``kernel_version``: from the ``license``/``version`` sections.
    - ``flags``: ``BPF_F_*`` program flags (``BPF_F_SLEEPABLE``, ``BPF_F_XDP_HAS_FRAGS``).
    """

    name: str
    type: ProgramType = attrs.field(converter=ProgramType)
    attach_type: AttachType = attrs.field(default=AttachType.NONE, converter=AttachType)
    attach_to: str = ""
    section_name: str = ""
    instructions: Instructions = attrs.field(factory=Instructions, converter=_instructions)
    license: str = ""
    kernel_version: int = 0
    flags: int = 0
    byte_order: Literal["little", "big"] = "little"

    def replace(self, **changes: Any) -> ProgramSpec:
        """A new spec with ``changes`` applied (``attrs.evolve`` semantics)."""
        return attrs.evolve(self, **changes)

    def copy(self) -> ProgramSpec:
        """A deep copy: equal, sharing no mutable object (BTF included) with this one."""
        specs = {}
        for insn in self.instructions:
            for t in _btf_types_of(insn):
                if t.spec is not None and id(t.spec) not in specs:
                    specs[id(t.spec)] = t.spec.copy()
        return self._rebound(specs)

    def _rebound(self, specs: dict[int, btf.Spec]) -> ProgramSpec:
        if not specs:
            return attrs.evolve(self)
        instructions = Instructions(
            insn if insn.func_info is None else insn.replace(func_info=rebind_type(insn.func_info, specs))
            for insn in self.instructions
        )
        return attrs.evolve(self, instructions=instructions)

    @property
    def maps_used(self) -> tuple[str, ...]:
        """Names of the maps and data sections the instructions refer to, in first-use order."""
        seen: dict[str, None] = {}
        for insn in self.instructions:
            if insn.reference is not None and insn.is_load_from_map:
                seen.setdefault(insn.reference)
        return tuple(seen)

    @property
    def subprograms(self) -> tuple[str, ...]:
        """Names of the functions linked in after the program itself."""
        return tuple(
            insn.symbol for insn in self.instructions[1:] if insn.symbol is not None
        )


def _btf_types_of(insn: Instruction) -> tuple[btf.Type, ...]:
    return (insn.func_info,) if insn.func_info is not None else ()
