"""ebpfspec: read BPF ELF objects and their BTF into immutable specs.

``load_collection_spec("prog.o")`` gives a :class:`CollectionSpec` of :class:`MapSpec`,
:class:`ProgramSpec` and :class:`VariableSpec`. Everything here is inert: no syscalls
(loading specs into the kernel is the ``loader`` package's job). Every spec is immutable
and safe to share between threads; changes make new objects.
"""

from ebpfspec.collectionspec import CollectionSpec, ExternKind, ExternSpec
from ebpfspec.enums import AttachType, MapFlags, MapType, PinType, ProgramFlags, ProgramType, UpdateFlags
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapKV, MapSpec
from ebpfspec.programspec import ProgramSpec
from ebpfspec.reader import load_collection_spec
from ebpfspec.variablespec import VariableSpec

__all__ = [
    "AttachType", "CollectionSpec", "ExternKind", "ExternSpec", "MapFlags", "MapKV", "MapSpec",
    "MapType", "PinType", "ProgramFlags", "ProgramSpec", "ProgramType", "SpecError", "UpdateFlags",
    "VariableSpec", "load_collection_spec",
]
