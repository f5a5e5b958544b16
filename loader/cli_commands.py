"""The CLI commands that need live objects: ``ebpfspec load`` and ``ebpfspec map dump``.

They live here so that ``ebpfspec`` never imports ``loader`` at module level; the CLI
registers them through :func:`register` when ``loader`` is importable.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ebpfspec import load_collection_spec
from ebpfspec.report import table
from loader.backend import Backend
from loader.collection import load_collection
from loader.map import Map


def register(commands: Any) -> None:
    """Add ``load`` and ``map dump`` to the CLI's subparsers."""
    load = commands.add_parser("load", help="load an object into the kernel and print what was created")
    load.add_argument("object", type=Path, help="BPF ELF object file")
    load.add_argument("--pin", metavar="DIR", help="bpffs directory for maps pinned by name")
    load.add_argument("--backend", choices=("kernel", "memory"), default="kernel")
    load.add_argument("--json", action="store_true", help="print JSON")
    load.set_defaults(command=load_command)

    map_cmd = commands.add_parser("map", help="operate pinned maps")
    map_sub = map_cmd.add_subparsers(required=True, metavar="ACTION")
    dump = map_sub.add_parser("dump", help="print the contents of a pinned map")
    dump.add_argument("path", help="where the map is pinned (on bpffs)")
    dump.add_argument("--json", action="store_true", help="print JSON")
    dump.set_defaults(command=map_dump_command)


def make_backend(name: str) -> Backend:
    """The backend called ``name``."""
    if name == "memory":
        from loader.memory import MemoryBackend

        return MemoryBackend()
    from loader.kernel import KernelBackend

    return KernelBackend()


def load_command(args: argparse.Namespace) -> Iterable[str]:
    """``ebpfspec load``: everything is closed when the command ends, except pins."""
    spec = load_collection_spec(args.object)
    with load_collection(spec, backend=make_backend(args.backend), pin_path=args.pin) as coll:
        maps = [_map_row(name, m) for name, m in coll.maps.items()]
        programs: list[dict[str, Any]] = [
            {"name": name, "type": str(p.type), "id": p.info().id} for name, p in coll.programs.items()
        ]
    if args.json:
        return [json.dumps({"maps": maps, "programs": programs}, indent=2)]
    map_lines = table(
        ["MAP", "TYPE", "ID", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS", "PINNED"],
        [
            [
                r["name"],
                r["type"],
                str(r["id"]),
                str(r["key_size"]),
                str(r["value_size"]),
                str(r["max_entries"]),
                f"{r['flags']:#x}",
                r["pinned"] or "-",
            ]
            for r in maps
        ],
    )
    program_lines = table(["PROGRAM", "TYPE", "ID"], [[p["name"], p["type"], str(p["id"])] for p in programs])
    return [*map_lines, "", *program_lines] if programs else list(map_lines)


def _map_row(name: str, m: Map) -> dict[str, Any]:
    info = m.info()
    return {
        "name": name,
        "type": str(m.type),
        "id": info.id,
        "key_size": m.key_size,
        "value_size": m.value_size,
        "max_entries": m.max_entries,
        "flags": m.flags,
        "pinned": m.pinned_path or "",
        "btf_fallback": info.btf_fallback,
    }


def _hex(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_hex(v) for v in value]
    return value


def map_dump_command(args: argparse.Namespace) -> Iterable[str]:
    """``ebpfspec map dump``: one line per entry (key and value in hex), or JSON."""
    with Map.load_pinned(args.path) as m:
        if not m.type.has_key:
            raise ValueError(f"{args.path}: {m.type} maps have no keys to dump")
        entries = [{"key": k.hex(), "value": _hex(v)} for k, v in m.items()]
    if args.json:
        return [json.dumps(entries, indent=2)]
    lines = []
    for e in entries:
        value = e["value"]
        shown = " ".join(value) if isinstance(value, list) else str(value)
        lines.append(f"key: {e['key']}  value: {shown}")
    return [*lines, f"Found {len(entries)} elements"]
