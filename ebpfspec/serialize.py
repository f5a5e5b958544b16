"""Specs to JSON-safe dicts and back, through cattrs.

The stable JSON form:

- bytes are lowercase hex strings;
- enums are their printed names (``MapType.PERCPU_HASH`` → ``"PerCPUHash"``);
- the collection's BTF is its wire format in hex (``"btf"``), and every BTF type a spec
  refers to is ``{"id": N, "kind": "STRUCT", "name": "..."}`` — an ID in that BTF;
- a map entry is ``{"key": hex, "value": hex}``, or ``{"key": hex, "name": "prog"}`` when
  the value is the name of a program or map;
- an instruction is its raw fields plus whichever metadata it carries.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs

import btf
from btf.ext import CORERelocation, CORERelocKind, LineInfo
from ebpfspec.asm import Instruction, Instructions
from ebpfspec.collectionspec import CollectionSpec, ExternKind, ExternSpec
from ebpfspec.enums import AttachType, MapType, PinType, ProgramType
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapKV, MapSpec
from ebpfspec.programspec import ProgramSpec
from ebpfspec.variablespec import VariableSpec

TypeResolver = Callable[[Mapping[str, Any]], btf.Type]

# The spec modules use postponed annotations; cattrs needs the real types.
for _cls in (MapKV, MapSpec, ProgramSpec, VariableSpec, ExternSpec):
    attrs.resolve_types(_cls)


def _is_btf_type(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, btf.Type)


def _enum_from_str(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    from_str = getattr(cls, "from_str", None)
    if from_str is not None and isinstance(value, str):
        member: enum.Enum = from_str(value)
        return member
    return cls(value)


def _type_ref(t: btf.Type) -> dict[str, Any]:
    return {"id": t.id, "kind": str(t.kind), "name": t.name}


def _map_kv_to_dict(kv: MapKV) -> dict[str, str]:
    if isinstance(kv.value, str):
        return {"key": kv.key.hex(), "name": kv.value}
    return {"key": kv.key.hex(), "value": kv.value.hex()}


def _map_kv_from_dict(data: Mapping[str, Any]) -> MapKV:
    key = bytes.fromhex(data["key"])
    if "name" in data:
        return MapKV(key, str(data["name"]))
    return MapKV(key, bytes.fromhex(data["value"]))


def _instruction_to_dict(insn: Instruction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "opcode": insn.opcode, "dst": int(insn.dst), "src": int(insn.src),
        "offset": insn.offset, "constant": insn.constant,
    }
    if insn.symbol is not None:
        out["symbol"] = insn.symbol
    if insn.reference is not None:
        out["reference"] = insn.reference
    if insn.func_info is not None:
        out["func_info"] = _type_ref(insn.func_info)
    if insn.line_info is not None:
        li = insn.line_info
        out["line_info"] = {"insn_off": li.insn_off, "file_name": li.file_name, "line": li.line,
                            "line_number": li.line_number, "column": li.column}
    if insn.core_relo is not None:
        cr = insn.core_relo
        out["core_relo"] = {"insn_off": cr.insn_off, "type_id": cr.type_id,
                            "accessor": cr.accessor, "kind": cr.kind.name}
    return out


def _instruction_from_dict(data: Mapping[str, Any], resolve: TypeResolver) -> Instruction:
    line = data.get("line_info")
    core = data.get("core_relo")
    return Instruction(
        opcode=data["opcode"], dst=data["dst"], src=data["src"], offset=data["offset"],
        constant=data["constant"], symbol=data.get("symbol"), reference=data.get("reference"),
        func_info=resolve(data["func_info"]) if "func_info" in data else None,
        line_info=LineInfo(**line) if line is not None else None,
        core_relo=CORERelocation(core["insn_off"], core["type_id"], core["accessor"],
                                 CORERelocKind[core["kind"]]) if core is not None else None,
    )


def make_converter(resolve: TypeResolver | None = None) -> cattrs.Converter:
    """A converter for specs; ``resolve`` turns a type reference back into a ``btf.Type``."""
    conv = cattrs.Converter()
    conv.register_unstructure_hook(bytes, bytes.hex)
    conv.register_structure_hook(bytes, lambda v, _: bytes.fromhex(v))
    for enum_cls in (MapType, PinType, ProgramType, AttachType, ExternKind):
        conv.register_unstructure_hook(enum_cls, str)
        conv.register_structure_hook(enum_cls, _enum_from_str)
    conv.register_unstructure_hook_func(_is_btf_type, _type_ref)

    def structure_type(value: Any, _: Any) -> btf.Type:
        if resolve is None:
            raise SpecError("a BTF type reference needs the collection's BTF to be resolved")
        return resolve(value)

    conv.register_structure_hook_func(_is_btf_type, structure_type)
    conv.register_unstructure_hook(MapKV, _map_kv_to_dict)
    conv.register_structure_hook(MapKV, lambda v, _: _map_kv_from_dict(v))
    conv.register_unstructure_hook(Instructions, lambda insns: [_instruction_to_dict(i) for i in insns])
    conv.register_structure_hook(
        Instructions,
        lambda v, _: Instructions(_instruction_from_dict(i, structure_type_ref) for i in v),
    )

    def structure_type_ref(value: Mapping[str, Any]) -> btf.Type:
        return structure_type(value, None)

    return conv


def unstructure_collection(spec: CollectionSpec) -> dict[str, Any]:
    """``CollectionSpec.to_dict``."""
    conv = make_converter()
    return {
        "byte_order": spec.byte_order,
        "btf": spec.types.to_bytes().hex() if spec.types is not None else None,
        "maps": {name: conv.unstructure(m, MapSpec) for name, m in spec.maps.items()},
        "programs": {name: conv.unstructure(p, ProgramSpec) for name, p in spec.programs.items()},
        "variables": {name: conv.unstructure(v, VariableSpec) for name, v in spec.variables.items()},
        "externs": {name: conv.unstructure(x, ExternSpec) for name, x in spec.externs.items()},
    }


def structure_collection(data: Mapping[str, Any]) -> CollectionSpec:
    """``CollectionSpec.from_dict``."""
    try:
        raw_btf = data.get("btf")
        types = btf.load_spec(bytes.fromhex(raw_btf)) if raw_btf is not None else None
        conv = make_converter(_resolver(types))
        return CollectionSpec(
            maps={k: conv.structure(v, MapSpec) for k, v in data.get("maps", {}).items()},
            programs={k: conv.structure(v, ProgramSpec) for k, v in data.get("programs", {}).items()},
            variables={k: conv.structure(v, VariableSpec) for k, v in data.get("variables", {}).items()},
            externs={k: conv.structure(v, ExternSpec) for k, v in data.get("externs", {}).items()},
            types=types,
            byte_order=data.get("byte_order", "little"),
        )
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError(f"not a valid serialised CollectionSpec: {err}") from err


def _resolver(types: btf.Spec | None) -> TypeResolver:
    def resolve(ref: Mapping[str, Any]) -> btf.Type:
        if types is None:
            raise SpecError("a BTF type reference, but the serialised spec has no BTF")
        t = types.type_by_id(int(ref["id"]))
        if t.name != ref.get("name", t.name) or str(t.kind) != ref.get("kind", str(t.kind)):
            raise SpecError(f"type reference {dict(ref)} does not match BTF type {t}")
        return t

    return resolve


__all__ = ["ExternKind", "make_converter", "structure_collection", "unstructure_collection"]
