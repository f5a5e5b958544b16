"""The ``ebpfspec`` command line: look inside BPF objects and kernel BTF.

Exit status: 0 on success, 1 on a clean error (one line on stderr, no traceback),
2 on a usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import btf
from btf.format_raw import format_raw
from ebpfspec import report
from ebpfspec.elf import ObjectFile
from ebpfspec.errors import SpecError
from ebpfspec.reader import load_collection_spec, read_object_file

Command = Callable[[argparse.Namespace], Iterable[str]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        for line in command(args):
            sys.stdout.write(line + "\n")
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    except (SpecError, btf.BTFError, OSError, ValueError, KeyError, _loader_error()) as err:
        print(f"ebpfspec: error: {_describe(err)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ebpfspec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    inspect = commands.add_parser("inspect", help="what is in a BPF object: maps, programs, variables")
    inspect.add_argument("object", type=Path, help="BPF ELF object file")
    inspect.add_argument("--json", action="store_true", help="print the spec's to_dict() as JSON")
    only = inspect.add_mutually_exclusive_group()
    for part in ("maps", "programs", "variables", "btf"):
        only.add_argument(f"--{part}", action="store_const", const=part, dest="part",
                          help=f"only the {part}")
    only.add_argument("--disasm", metavar="PROG", help="disassemble program PROG")
    inspect.set_defaults(command=inspect_object, part=None)

    btf_cmd = commands.add_parser("btf", help="BPF Type Format")
    btf_sub = btf_cmd.add_subparsers(required=True, metavar="ACTION")
    dump = btf_sub.add_parser("dump", help="print the types of an object's BTF or of the kernel's")
    source = dump.add_mutually_exclusive_group(required=True)
    source.add_argument("object", nargs="?", type=Path, help="BPF ELF object file")
    source.add_argument("--kernel", action="store_true", help="the running kernel's BTF")
    dump.add_argument("--format", choices=("raw", "c"), default="raw",
                      help="raw: one record per type like bpftool (default); c: a C header")
    dump.set_defaults(command=btf_dump)
    register_loader_commands(commands)
    return parser


def register_loader_commands(commands: Any) -> None:
    """Add ``load`` and ``map dump``, which live in the ``loader`` package (when it is installed).

    Imported here, at run time, so that ``ebpfspec`` never depends on ``loader`` at import.
    """
    try:
        from loader.cli_commands import register
    except ImportError:
        return
    register(commands)


def inspect_object(args: argparse.Namespace) -> Iterable[str]:
    """``ebpfspec inspect``."""
    spec = load_collection_spec(args.object)
    if args.disasm is not None:
        program = spec.programs.get(args.disasm)
        if program is None:
            raise SpecError(f"{args.object}: no program {args.disasm!r} (have: {', '.join(spec.programs)})")
        return program.instructions.disassemble().splitlines()
    if args.json:
        data = spec.to_dict()
        if args.part is not None:
            data = {"btf": data["btf"]} if args.part == "btf" else {args.part: data[args.part]}
        return [json.dumps(data, indent=2)]
    if args.part == "btf":
        return format_raw(spec.types) if spec.types is not None else ["(no BTF)"]
    sections = {
        "maps": report.map_rows, "programs": report.program_rows, "variables": report.variable_rows,
    }
    chosen = [args.part] if args.part else ["maps", "programs", "variables"]
    lines: list[str] = []
    for part in chosen:
        if lines:
            lines.append("")
        lines.extend(sections[part](spec))
    if args.part is None and spec.externs:
        lines.append("")
        lines.extend(report.extern_rows(spec))
    return lines


def btf_dump(args: argparse.Namespace) -> Iterable[str]:
    """``ebpfspec btf dump``."""
    spec = btf.load_kernel_spec() if args.kernel else object_btf(args.object)
    if args.format == "c":
        from btf.format_c import format_c

        return [format_c(spec).rstrip("\n")]
    return format_raw(spec)


def object_btf(path: Path) -> btf.Spec:
    """The ``.BTF`` of the object file at ``path``, exactly as stored (like bpftool shows it)."""
    obj = ObjectFile(read_object_file(path), name=str(path))
    section = obj.section(".BTF")
    if section is None:
        raise SpecError(f"{path}: the object has no .BTF section")
    return btf.load_spec(obj.contents(section))


def _loader_error() -> type[Exception]:
    """``loader.LoaderError`` if the loader is installed (caught as a clean error)."""
    try:
        from loader.errors import LoaderError
    except ImportError:
        return SpecError
    return LoaderError


def _describe(err: Exception) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return str(err)
