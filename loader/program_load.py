"""Loading one program: a ``ProgramSpec`` → relocated instructions → ``BPF_PROG_LOAD``.

The steps, each a small function below:

1. :func:`relocate_maps` — map and data-section references become descriptors (and
   offsets into the data section's value).
2. :func:`resolve_externs` — kfunc calls get the kernel's BTF id of the function, typed
   ``__ksym`` variables its BTF id (``BPF_PSEUDO_BTF_ID``), untyped ones their kallsyms
   address (all in vmlinux: kernel modules' BTF is not searched, so a module's kfunc is a
   clear ``NotSupportedError``); ``.kconfig`` values from the ``.kconfig`` map
   (:mod:`loader.kconfig`).
3. :func:`apply_core` — CO-RE relocations resolved against the kernel's BTF (or the
   ``kernel_types`` given) by :mod:`btf.core`, and patched into the instructions.
4. :func:`ext_info_records` — BTF func_info / line_info in the kernel's record layout.
5. :func:`attach_btf_target` — ``attach_btf_id`` for tp_btf/fentry/fexit/fmod_ret/lsm/iter
   (in the kernel's BTF), and for freplace (and fentry/fexit on a BPF program) in the BTF
   of the :class:`TargetProgram` the program is loaded against.
6. :func:`load_program` — ``BPF_PROG_LOAD``, growing the verifier log on ``ENOSPC``;
   a rejection becomes :class:`~loader.errors.VerifierError` with the whole log.

Nothing here changes the ``ProgramSpec``: every step works on a list of new instructions.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import btf
from btf.marshal import marshal_with_strings
from ebpfspec import AttachType, ExternKind, ExternSpec, ProgramSpec, ProgramType
from ebpfspec.asm import Instruction, Instructions
from ebpfspec.asm.opcodes import PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE
from loader.backend import Backend, ProgLoadError, ProgramAttrs
from loader.errors import NotSupportedError, ProgramError, VerifierError

if TYPE_CHECKING:
    from loader.map import Map

#: First verifier log buffer when one is needed; doubled on ENOSPC up to MAX_LOG_SIZE.
LOG_SIZE = 1 << 20
#: The largest verifier log the loader asks for (the kernel's limit is UINT_MAX >> 2).
MAX_LOG_SIZE = 1 << 28

_FUNC_INFO = struct.Struct("=II")
_LINE_INFO = struct.Struct("=IIII")


@dataclass(frozen=True, slots=True)
class KconfigValues:
    """The loaded ``.kconfig`` map and each extern's offset in its value."""

    map: Map
    offsets: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class ProgramBTF:
    """The collection's BTF loaded once for all its programs: its handle and string offsets."""

    fd: int
    string_offsets: Mapping[str, int]


def load_program_btf(
    types: btf.Spec | None, programs: Sequence[ProgramSpec], backend: Backend
) -> ProgramBTF | None:
    """Load ``types`` with every line-info string the programs need; None if there is no BTF or the
    kernel refuses it (programs then load without func/line info, as libbpf does)."""
    if types is None:
        return None
    raw, offsets = marshal_with_strings(list(types.own_types()), line_info_strings(programs),
                                        byte_order=_native_order())
    try:
        fd = backend.btf_load(raw)
    except OSError:
        return None
    return ProgramBTF(fd, offsets)


def line_info_strings(programs: Sequence[ProgramSpec]) -> tuple[str, ...]:
    """Every file name and source line the programs' line info refers to, each once, in order
    of first use: the strings a loaded BTF must hold for that line info."""
    needed: dict[str, None] = {}
    for program in programs:
        for insn in program.instructions:
            if insn.line_info is not None:
                needed.setdefault(insn.line_info.file_name)
                needed.setdefault(insn.line_info.line)
    return tuple(needed)


# -- step 1 -----------------------------------------------------------------------------------


def relocate_maps(program: ProgramSpec, insns: list[Instruction], maps: Mapping[str, Map]) -> None:
    """Map loads get the map's descriptor; data loads its descriptor and offset."""
    for i, insn in enumerate(insns):
        if insn.reference is None or not insn.is_load_from_map:
            continue
        target = maps.get(insn.reference)
        if target is None:
            raise ProgramError(
                errno.ENOENT,
                "relocate",
                program.name,
                f"it uses map {insn.reference!r}, which was not loaded",
            )
        fd = target.fileno()
        if insn.src == PSEUDO_MAP_VALUE:
            offset = insn.constant >> 32
            insns[i] = insn.replace(constant=(offset << 32) | fd)
        else:
            insns[i] = insn.replace(src=PSEUDO_MAP_FD, constant=fd)


# -- step 2 -----------------------------------------------------------------------------------


def resolve_externs(
    program: ProgramSpec,
    insns: list[Instruction],
    externs: Mapping[str, ExternSpec],
    kernel: Callable[[], btf.Spec],
    kconfig: KconfigValues | None = None,
) -> None:
    """kfuncs and ``__ksym`` variables from kernel BTF and kallsyms; ``.kconfig`` values from
    the ``kconfig`` map (see :mod:`loader.kconfig`)."""
    for i, insn in enumerate(insns):
        name = insn.reference
        if (
            name is None
            or insn.is_load_from_map
            or insn.is_bpf_to_bpf_call
            or insn.is_load_of_function_pointer
        ):
            continue
        extern = externs.get(name)
        kind = extern.kind if extern is not None else None
        if insn.is_call and insn.src == PSEUDO_KFUNC_CALL:
            funcs = kernel().types_by_name(name, btf.Kind.FUNC)
            if not funcs:
                raise NotSupportedError(
                    f"program {program.name!r}: the kernel has no kfunc {name!r} "
                    "(searched in vmlinux's BTF; kernel modules' kfuncs are not supported)")
            insns[i] = insn.replace(constant=funcs[0].id, offset=0)
        elif kind == ExternKind.KSYM and extern is not None and is_typed_ksym(extern):
            variables = kernel().types_by_name(name, btf.Kind.VAR)
            if not variables:
                raise NotSupportedError(
                    f"program {program.name!r}: the kernel's BTF has no variable {name!r}"
                )
            insns[i] = insn.replace(src=PSEUDO_BTF_ID, constant=variables[0].id)
        elif kind == ExternKind.KSYM:
            weak = extern is not None and extern.weak
            insns[i] = insn.replace(constant=kallsyms_address(name, program.name, missing_ok=weak))
        elif kind == ExternKind.KCONFIG and kconfig is not None and name in kconfig.offsets:
            offset = kconfig.offsets[name] + (insn.constant & 0xFFFFFFFF)
            insns[i] = insn.replace(src=PSEUDO_MAP_VALUE, constant=(offset << 32) | kconfig.map.fileno())
        else:
            raise NotSupportedError(
                f"program {program.name!r}: extern {name!r} ({kind or 'unknown'}) cannot be resolved"
                + (" (its .kconfig values were not loaded)" if kind == ExternKind.KCONFIG else "")
            )


def is_typed_ksym(extern: ExternSpec) -> bool:
    """A ``__ksym`` variable with a real type (resolved by BTF id); ``void`` ones use kallsyms."""
    t = extern.type
    if isinstance(t, btf.Var):
        t = btf.skip_qualifiers(t.type)
    return t is not None and not isinstance(t, btf.Void)


def kallsyms_address(name: str, program: str, *, missing_ok: bool = False) -> int:
    """The address of kernel symbol ``name`` from ``/proc/kallsyms`` (0 if absent and ``missing_ok``,
    as libbpf resolves a ``__weak`` ksym the kernel lacks)."""
    try:
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] == name:
                    return int(fields[0], 16)
    except OSError as err:
        raise NotSupportedError(f"program {program!r}: cannot read /proc/kallsyms: {err}") from err
    if missing_ok:
        return 0
    raise NotSupportedError(f"program {program!r}: kernel symbol {name!r} is not in /proc/kallsyms")


# -- step 3 -----------------------------------------------------------------------------------


def apply_core(
    program: ProgramSpec, insns: list[Instruction], local: btf.Spec | None, target: Callable[[], btf.Spec]
) -> None:
    """Resolve and patch every CO-RE relocation (see :mod:`loader.core_patch`)."""
    if not any(insn.core_relo is not None for insn in insns):
        return
    if local is None:
        raise ProgramError(errno.EINVAL, "CO-RE", program.name, "relocations but no BTF in the object")
    from loader.core_patch import patch_core

    patch_core(program.name, insns, local, target())


# -- step 4 -----------------------------------------------------------------------------------


def ext_info_records(insns: Sequence[Instruction], program_btf: ProgramBTF) -> tuple[bytes, bytes]:
    """Packed func_info and line_info records (instruction offsets in 8-byte slots)."""
    func_info = []
    line_info = []
    slot = 0
    for insn in insns:
        if insn.func_info is not None:
            func_info.append(_FUNC_INFO.pack(slot, insn.func_info.id))
        li = insn.line_info
        if li is not None:
            strings = program_btf.string_offsets
            line_info.append(
                _LINE_INFO.pack(
                    slot, strings[li.file_name], strings[li.line], li.line_number << 10 | li.column
                )
            )
        slot += insn.width
    return b"".join(func_info), b"".join(line_info)


# -- step 5 -----------------------------------------------------------------------------------

#: Where the kernel's BTF names a tracing program's attach target, by expected attach type.
_BTF_TARGETS: dict[AttachType, tuple[str, btf.Kind]] = {
    AttachType.TRACE_RAW_TP: ("btf_trace_{}", btf.Kind.TYPEDEF),
    AttachType.TRACE_FENTRY: ("{}", btf.Kind.FUNC),
    AttachType.TRACE_FEXIT: ("{}", btf.Kind.FUNC),
    AttachType.MODIFY_RETURN: ("{}", btf.Kind.FUNC),
    AttachType.LSM_MAC: ("bpf_lsm_{}", btf.Kind.FUNC),
    AttachType.TRACE_ITER: ("bpf_iter_{}", btf.Kind.FUNC),
}


@dataclass(frozen=True, slots=True)
class TargetProgram:
    """A loaded program that another is loaded against (freplace; fentry/fexit on a BPF program).

    ``fd`` is its descriptor, held in use by the caller while the load runs; ``name`` is
    for messages; ``types`` is its BTF as the kernel keeps it (where its functions are
    named).
    """

    fd: int
    name: str
    types: btf.Spec


#: Attach types of tracing programs that may be loaded against a BPF program instead of the kernel.
_PROGRAM_TARGETED = frozenset({AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT})


def attach_btf_target(
    program: ProgramSpec, kernel: Callable[[], btf.Spec], target: TargetProgram | None = None
) -> int:
    """``attach_btf_id`` of ``program`` (0 when it needs none).

    With a ``target`` program: the id of the function ``program.attach_to`` (the part of
    the section after ``freplace/``, ``fentry/``, ``fexit/``) in the target's BTF. An
    extension (freplace) program without a target is ``ProgramError(EINVAL)`` saying how
    to give one, as the kernel refuses it.
    """
    if target is not None:
        return target_function_id(program, target)
    if program.type == ProgramType.EXT:
        raise ProgramError(
            errno.EINVAL,
            "load",
            program.name,
            f"an extension (freplace) program is loaded against a target program, whose function "
            f"{program.attach_to!r} it replaces: load it with Program.load(spec, target=target_program) "
            f"or load_collection(..., program_targets={{{program.name!r}: target_program}})",
        )
    if program.type not in (ProgramType.TRACING, ProgramType.LSM):
        return 0
    pattern = _BTF_TARGETS.get(program.attach_type)
    if pattern is None:
        return 0
    name = pattern[0].format(program.attach_to)
    found = kernel().types_by_name(name, pattern[1])
    if not found:
        raise NotSupportedError(
            f"program {program.name!r}: the kernel's BTF has no {pattern[1]} {name!r} to attach to"
        )
    return found[0].id


def target_function_id(program: ProgramSpec, target: TargetProgram) -> int:
    """The BTF id of function ``program.attach_to`` in ``target``'s BTF (``ProgramError`` if none).

    Only extension programs and fentry/fexit programs are loaded against a program.
    """
    if not (
        program.type == ProgramType.EXT
        or (program.type == ProgramType.TRACING and program.attach_type in _PROGRAM_TARGETED)
    ):
        raise ProgramError(
            errno.EINVAL,
            "load",
            program.name,
            f"{program.type} programs (section {program.section_name!r}) are not loaded against a target "
            f"program like {target.name!r}: only freplace and fentry/fexit programs are",
        )
    name = program.attach_to
    if not name:
        raise ProgramError(
            errno.EINVAL,
            "load",
            program.name,
            f"section {program.section_name!r} names no function of target program {target.name!r} "
            f"(give it as 'freplace/FUNC', or with spec.replace(attach_to='FUNC'))",
        )
    return find_target_function(target, name, program.name, "load")


def find_target_function(target: TargetProgram, name: str, program: str, op: str) -> int:
    """The BTF id of function ``name`` in ``target``'s BTF; ``ProgramError`` ENOENT (for ``program``'s
    ``op``) naming both when it has none."""
    found = target.types.types_by_name(name, btf.Kind.FUNC)
    if not found:
        raise ProgramError(
            errno.ENOENT, op, program, f"target program {target.name!r} has no function {name!r} in its BTF"
        )
    return found[0].id


# -- step 6 -----------------------------------------------------------------------------------


def load_program(
    attrs: ProgramAttrs, program: str, backend: Backend, *, log_level: int = 0
) -> tuple[int, str]:
    """``BPF_PROG_LOAD``: ``(handle, verifier log)``; the log buffer grows until the log fits."""
    log_size = LOG_SIZE if log_level else 0
    while True:
        try:
            return backend.prog_load(attrs, log_level=log_level, log_size=log_size)
        except ProgLoadError as err:
            if err.errno == errno.ENOSPC and (log_size or LOG_SIZE) < MAX_LOG_SIZE:
                log_size = min(max(log_size, LOG_SIZE) * 4, MAX_LOG_SIZE)
                log_level = log_level or 1
                continue
            log = err.log.splitlines()
            if log:
                raise VerifierError(
                    program, err.errno or errno.EINVAL, log, truncated=err.errno == errno.ENOSPC
                ) from err
            hint = (
                "tracing/LSM/extension programs need privileges this kernel withholds"
                if err.errno == errno.EPERM and attrs.prog_type in _PRIVILEGED_TYPES
                else ""
            )
            said = str(err.strerror or "").removeprefix(os.strerror(err.errno or errno.EINVAL)).lstrip(": ")
            detail = "; ".join(part for part in (hint, said) if part)
            raise ProgramError(err.errno or errno.EINVAL, "load", program, detail) from err
        except OSError as err:
            raise ProgramError(err.errno or errno.EIO, "load", program) from err


#: Program types whose loads this kind of kernel refuses with EPERM (no verifier log) when it
#: withholds tracing: the loader's hint then says so.
_PRIVILEGED_TYPES = frozenset({int(ProgramType.TRACING), int(ProgramType.LSM), int(ProgramType.EXT)})


def program_attrs(
    program: ProgramSpec,
    insns: Sequence[Instruction],
    *,
    program_btf: ProgramBTF | None,
    attach_btf_id: int,
    attach_prog_fd: int = -1,
) -> ProgramAttrs:
    """The ``BPF_PROG_LOAD`` attributes of a relocated program (``attach_prog_fd``: a target program)."""
    func_info = line_info = b""
    if program_btf is not None:
        func_info, line_info = ext_info_records(insns, program_btf)
    return ProgramAttrs(
        prog_type=int(program.type),
        insns=Instructions(insns).encode(_native_order()),
        license=program.license,
        kern_version=program.kernel_version,
        prog_flags=program.flags,
        name=program_name(program.name),
        expected_attach_type=int(program.attach_type),
        prog_btf_fd=program_btf.fd if program_btf is not None else -1,
        func_info=func_info,
        line_info=line_info,
        attach_btf_id=attach_btf_id,
        attach_prog_fd=attach_prog_fd,
    )


def program_name(name: str) -> str:
    """``name`` as the kernel takes it: at most 15 characters of ``[A-Za-z0-9_.]``."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)[:15]


def check_byte_order(program: ProgramSpec) -> None:
    """Programs run in the machine's byte order."""
    if program.byte_order != _native_order():
        raise NotSupportedError(
            f"program {program.name!r} is {program.byte_order}-endian; this machine is "
            f"{_native_order()}-endian"
        )


def _native_order() -> btf.wire.ByteOrder:
    return "little" if sys.byteorder == "little" else "big"
