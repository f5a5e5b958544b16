"""``VariableSpec``: a global variable in a data section (``.data``, ``.rodata``, ``.bss``, ...).

Thread-safety: immutable; share freely.
"""

from __future__ import annotations

from typing import Any

import attrs

import btf
from ebpfspec.mapspec import rebind_type


@attrs.frozen
class VariableSpec:
    """A global variable: where it lives and its initial ``value``.

    ``type`` is the variable's BTF ``VAR`` (``type.type`` is its C type) when the object
    has BTF. ``constant`` is True for variables in ``.rodata*`` (frozen after loading).
    Change initial values with :meth:`ebpfspec.CollectionSpec.with_variables`.
    """

    name: str
    section_name: str
    offset: int
    size: int
    value: bytes = attrs.field(converter=bytes)
    type: btf.Type | None = None
    constant: bool = False

    def replace(self, **changes: Any) -> VariableSpec:
        """A new spec with ``changes`` applied (``attrs.evolve`` semantics)."""
        return attrs.evolve(self, **changes)

    def copy(self) -> VariableSpec:
        """A deep copy: equal, sharing no mutable object (BTF included) with this one."""
        if self.type is None or self.type.spec is None:
            return attrs.evolve(self)
        return self._rebound({id(self.type.spec): self.type.spec.copy()})

    def _rebound(self, specs: dict[int, btf.Spec]) -> VariableSpec:
        return attrs.evolve(self, type=rebind_type(self.type, specs))
