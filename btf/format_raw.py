"""One text record per type, in the shape of ``bpftool btf dump ... format raw``."""

from __future__ import annotations

from collections.abc import Iterator

from btf.spec import Spec
from btf.types import (
    Array,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Struct,
    Type,
    TypeTag,
    Union,
    Var,
    Void,
)


def format_raw(spec: Spec, *, include_base: bool = False) -> Iterator[str]:
    """Lines like bpftool's raw dump: ``[ID] KIND 'name' fields`` then one tab-indented line per entry.

    For split BTF only the spec's own types are listed unless ``include_base``.
    """
    types = iter(spec) if include_base or spec.base is None else spec.own_types()
    for t in types:
        if not isinstance(t, Void):
            yield from _describe(spec, t)


def _quoted(name: str) -> str:
    return f"'{name or '(anon)'}'"


def _describe(spec: Spec, t: Type) -> Iterator[str]:
    head = f"[{t.id}] {t.kind} {_quoted(t.name)}"
    if isinstance(t, Int):
        yield (f"{head} size={t.size} bits_offset={t.bit_offset} nr_bits={t.bits} "
               f"encoding={t.encoding}")
    elif isinstance(t, Array):
        yield f"{head} type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"
    elif isinstance(t, (Struct, Union)):
        yield f"{head} size={t.size} vlen={len(t.members)}"
        for m in t.members:
            bitfield = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            yield f"\t{_quoted(m.name)} type_id={m.type_id} bits_offset={m.offset}{bitfield}"
    elif isinstance(t, (Enum, Enum64)):
        signedness = "SIGNED" if t.signed else "UNSIGNED"
        yield f"{head} encoding={signedness} size={t.size} vlen={len(t.values)}"
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        for v in t.values:
            yield f"\t{_quoted(v.name)} val={v.value}{suffix}"
    elif isinstance(t, Fwd):
        yield f"{head} fwd_kind={'union' if t.union else 'struct'}"
    elif isinstance(t, Func):
        yield f"{head} type_id={t.type_id} linkage={t.linkage}"
    elif isinstance(t, FuncProto):
        yield f"{head} ret_type_id={t.return_type_id} vlen={len(t.params)}"
        for p in t.params:
            yield f"\t{_quoted(p.name)} type_id={p.type_id}"
    elif isinstance(t, Var):
        yield f"{head} type_id={t.type_id}, linkage={t.linkage}"
    elif isinstance(t, Datasec):
        yield f"{head} size={t.size} vlen={len(t.vars)}"
        for secinfo in t.vars:
            target = spec.type_by_id(secinfo.type_id)
            yield (f"\ttype_id={secinfo.type_id} offset={secinfo.offset} size={secinfo.size} "
                   f"({target.kind} {_quoted(target.name)})")
    elif isinstance(t, Float):
        yield f"{head} size={t.size}"
    elif isinstance(t, DeclTag):
        yield f"{head} type_id={t.type_id} component_idx={t.component_idx}"
    elif isinstance(t, TypeTag):
        yield f"{head} type_id={t.type_id}"
    else:  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT
        yield f"{head} type_id={t.refs()[0]}"
