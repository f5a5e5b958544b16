"""Human-readable tables of a ``CollectionSpec``, for ``ebpfspec inspect``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import btf
from ebpfspec.collectionspec import CollectionSpec
from ebpfspec.mapspec import MapSpec

_VALUE_PREVIEW = 16  # bytes of a variable's value shown before "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    """Left-aligned columns separated by two spaces, with a header line."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        yield "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()


#: Longest chain of arrays, pointers and qualifiers :func:`type_name` follows (malformed BTF
#: can make one cyclic: a ``const`` of itself); what lies beyond is shown as ``...``.
_MAX_CHAIN = 32


def type_name(t: btf.Type | None, _depth: int = 0) -> str:
    """A C-like name for ``t``: ``struct flow_stats``, ``__u32``, ``char[16]``, ``u64 *``."""
    if t is None:
        return "-"
    if _depth >= _MAX_CHAIN:
        return "..."
    if isinstance(t, (btf.Struct, btf.Union, btf.Enum, btf.Enum64, btf.Fwd)):
        keyword = {
            btf.Kind.STRUCT: "struct",
            btf.Kind.UNION: "union",
            btf.Kind.FWD: "struct",
            btf.Kind.ENUM: "enum",
            btf.Kind.ENUM64: "enum",
        }[t.kind]
        return f"{keyword} {t.name or '(anon)'}"
    if isinstance(t, btf.Array):
        return f"{type_name(t.type, _depth + 1)}[{t.nelems}]"
    if isinstance(t, btf.Pointer):
        return f"{type_name(t.type, _depth + 1)} *"
    if isinstance(t, (btf.Const, btf.Volatile, btf.Restrict)):
        return f"{t.kind.name.lower()} {type_name(t.type, _depth + 1)}"
    if isinstance(t, btf.Var):
        return type_name(t.type, _depth + 1)
    return t.name or str(t.kind)


def _sized(size: int, t: btf.Type | None) -> str:
    return f"{size} ({type_name(t)})" if t is not None else str(size)


def _inner(m: MapSpec) -> str:
    inner = m.inner_map
    if inner is None:
        return "-"
    return f"{inner.type} k{inner.key_size}/v{inner.value_size}/{inner.max_entries}"


def map_rows(spec: CollectionSpec) -> Iterator[str]:
    """The maps table."""
    rows = [
        [
            name,
            str(m.type),
            _sized(m.key_size, m.key),
            _sized(m.value_size, m.value),
            str(m.max_entries),
            f"{m.flags:#x}",
            str(m.pinning),
            _inner(m),
            str(len(m.contents)),
            "yes" if m.freeze else "",
            m.extra.hex() if m.extra else "",
        ]
        for name, m in spec.maps.items()
    ]
    return table(
        [
            "MAP",
            "TYPE",
            "KEY",
            "VALUE",
            "MAX_ENTRIES",
            "FLAGS",
            "PINNING",
            "INNER",
            "CONTENTS",
            "FROZEN",
            "EXTRA",
        ],
        rows,
    )


def program_rows(spec: CollectionSpec) -> Iterator[str]:
    """The programs table."""
    rows = [
        [
            name,
            p.section_name,
            str(p.type),
            str(p.attach_type),
            p.attach_to or "-",
            str(len(p.instructions)),
            ",".join(p.maps_used) or "-",
            ",".join(p.subprograms) or "-",
        ]
        for name, p in spec.programs.items()
    ]
    return table(
        ["PROGRAM", "SECTION", "TYPE", "ATTACH_TYPE", "ATTACH_TO", "INSNS", "MAPS", "SUBPROGRAMS"], rows
    )


def variable_rows(spec: CollectionSpec) -> Iterator[str]:
    """The variables table; values in hex, long ones cut short."""
    rows = []
    for name, v in spec.variables.items():
        value = v.value[:_VALUE_PREVIEW].hex() + ("..." if len(v.value) > _VALUE_PREVIEW else "")
        rows.append(
            [
                name,
                v.section_name,
                str(v.offset),
                str(v.size),
                type_name(v.type),
                "yes" if v.constant else "",
                value,
            ]
        )
    return table(["VARIABLE", "SECTION", "OFFSET", "SIZE", "TYPE", "CONST", "VALUE"], rows)


def extern_rows(spec: CollectionSpec) -> Iterator[str]:
    """The externs table."""
    rows = [
        [name, str(x.kind), type_name(x.type), "yes" if x.weak else ""] for name, x in spec.externs.items()
    ]
    return table(["EXTERN", "KIND", "TYPE", "WEAK"], rows)
