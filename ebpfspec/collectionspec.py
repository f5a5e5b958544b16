"""``CollectionSpec``: everything in one BPF object, as inert immutable specs.

Thread-safety: immutable (attrs frozen, read-only mappings, tuples, bytes); any number
of threads may read, copy, serialise and derive new specs from one ``CollectionSpec``
at once. Derived specs (``with_maps``, ``with_variables``, ``copy``) are new objects;
the original never changes.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, Any, Literal

import attrs

import btf
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapKV, MapSpec, rebind_type
from ebpfspec.programspec import ProgramSpec
from ebpfspec.variablespec import VariableSpec


class ExternKind(enum.Enum):
    """What an ``extern`` in a BPF object is resolved against at load time."""

    KCONFIG = "kconfig"  # extern ... __kconfig: a kernel config value or LINUX_KERNEL_VERSION
    KSYM = "ksym"  # extern ... __ksym variable: a kernel symbol's address / BTF id
    KFUNC = "kfunc"  # extern function __ksym: a kernel function callable from BPF

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class ExternSpec:
    """An unresolved ``extern`` of the object: ``name``, ``kind``, its BTF (VAR or FUNC), ``weak``."""

    name: str
    kind: ExternKind = attrs.field(converter=ExternKind)
    type: btf.Type | None = None
    weak: bool = False


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(hash=False)
class CollectionSpec:
    """The maps, programs, global variables and externs of one BPF ELF object.

    ``maps`` are keyed by ELF name (data sections by section name, e.g. ``".rodata"``),
    ``programs`` by function name, ``variables`` by symbol name. ``types`` is the
    object's BTF (with data-section sizes and offsets fixed up), or None without BTF.
    """

    maps: Mapping[str, MapSpec] = attrs.field(factory=dict, converter=_read_only)
    programs: Mapping[str, ProgramSpec] = attrs.field(factory=dict, converter=_read_only)
    variables: Mapping[str, VariableSpec] = attrs.field(factory=dict, converter=_read_only)
    externs: Mapping[str, ExternSpec] = attrs.field(factory=dict, converter=_read_only)
    types: btf.Spec | None = None
    byte_order: Literal["little", "big"] = "little"

    # -- reading ----------------------------------------------------------------------

    @classmethod
    def from_file(cls, source: str | os.PathLike[str] | bytes | IO[bytes]) -> CollectionSpec:
        """Read a BPF ELF object: a path, its bytes, or a binary file object."""
        from ebpfspec.reader import load_collection_spec

        return load_collection_spec(source)

    # -- deriving ----------------------------------------------------------------------

    def with_maps(self, maps: Mapping[str, MapSpec] | None = None, /, **by_name: MapSpec) -> CollectionSpec:
        """A new spec with maps replaced or added (names that are not identifiers go in ``maps``)."""
        changes = {**(maps or {}), **by_name}
        for name, spec in changes.items():
            if not isinstance(spec, MapSpec):
                raise TypeError(f"map {name!r}: expected a MapSpec, got {type(spec).__name__}")
        return attrs.evolve(self, maps={**self.maps, **changes})

    def with_programs(
        self, programs: Mapping[str, ProgramSpec] | None = None, /, **by_name: ProgramSpec
    ) -> CollectionSpec:
        """A new spec with programs replaced or added."""
        return attrs.evolve(self, programs={**self.programs, **(programs or {}), **by_name})

    def with_variables(
        self, values: Mapping[str, object] | None = None, /, **by_name: object
    ) -> CollectionSpec:
        """A new spec whose global variables start with the given values.

        A value is bytes of the variable's exact size, or a Python value encoded by the
        variable's BTF type (int, bool, float, dict for structs, list for arrays).
        Wrong sizes, unknown names and values the type cannot hold raise ``ValueError``
        (``KeyError`` for an unknown name). The data-section map holding the variable
        gets the new bytes too.
        """
        changes = {**(values or {}), **by_name}
        variables = dict(self.variables)
        sections: dict[str, bytearray] = {}
        for name, value in changes.items():
            var = variables.get(name)
            if var is None:
                raise KeyError(f"no global variable {name!r} (have: {sorted(self.variables)})")
            raw = _encode_variable(var, value, self.byte_order)
            variables[name] = var.replace(value=raw)
            if var.section_name not in sections:
                sections[var.section_name] = self._section_bytes(var.section_name)
            sections[var.section_name][var.offset : var.offset + var.size] = raw
        maps = dict(self.maps)
        for section, data in sections.items():
            maps[section] = maps[section].replace(contents=(MapKV(b"\0\0\0\0", bytes(data)),))
        return attrs.evolve(self, variables=variables, maps=maps)

    def _section_bytes(self, section: str) -> bytearray:
        data_map = self.maps.get(section)
        if data_map is None:
            raise SpecError(f"variable's data section {section!r} has no map", section=section)
        if data_map.contents:
            value = data_map.contents[0].value
            assert isinstance(value, bytes)
            return bytearray(value)
        return bytearray(data_map.value_size)  # .bss: zero-filled

    def copy(self) -> CollectionSpec:
        """A deep copy: equal to this spec, sharing no mutable object with it (BTF included)."""
        specs = {id(s): s.copy() for s in self._btf_specs()}
        return attrs.evolve(
            self,
            maps={k: m._rebound(specs) for k, m in self.maps.items()},
            programs={k: p._rebound(specs) for k, p in self.programs.items()},
            variables={k: v._rebound(specs) for k, v in self.variables.items()},
            externs={k: attrs.evolve(x, type=rebind_type(x.type, specs)) for k, x in self.externs.items()},
            types=specs[id(self.types)] if self.types is not None else None,
        )

    def _btf_specs(self) -> list[btf.Spec]:
        found: dict[int, btf.Spec] = {}

        def add(t: btf.Type | None) -> None:
            if t is not None and t.spec is not None:
                found.setdefault(id(t.spec), t.spec)

        if self.types is not None:
            found[id(self.types)] = self.types
        for m in self.maps.values():
            current: MapSpec | None = m
            while current is not None:
                add(current.key)
                add(current.value)
                current = current.inner_map
        for p in self.programs.values():
            for insn in p.instructions:
                add(insn.func_info)
        for v in self.variables.values():
            add(v.type)
        for x in self.externs.values():
            add(x.type)
        return list(found.values())

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (bytes as hex, enums by name, BTF as its wire bytes in hex)."""
        from ebpfspec.serialize import unstructure_collection

        return unstructure_collection(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionSpec:
        """The inverse of :meth:`to_dict`."""
        from ebpfspec.serialize import structure_collection

        return structure_collection(data)


def _encode_variable(var: VariableSpec, value: object, byte_order: Literal["little", "big"]) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        if var.type is None:
            raise ValueError(f"variable {var.name!r} has no BTF type: give its value as {var.size} bytes")
        var_type = var.type.type if isinstance(var.type, btf.Var) else var.type
        try:
            raw = btf.encode_value(var_type, value, byte_order=byte_order)
        except btf.BTFError as err:
            raise ValueError(f"variable {var.name!r}: {err}") from None
    if len(raw) != var.size:
        raise ValueError(f"variable {var.name!r} is {var.size} bytes, the new value is {len(raw)}")
    return raw
