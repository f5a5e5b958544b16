"""The ``ebpfspec`` command line: look inside BPF objects and kernel BTF.

Exit status: 0 on success, 1 on a clean error (one line on stderr, no traceback),
2 on a usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import btf
from btf.format_raw import format_raw
from ebpfspec.elf import ObjectFile
from ebpfspec.errors import SpecError

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
    except (SpecError, btf.BTFError, OSError) as err:
        print(f"ebpfspec: error: {_describe(err)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ebpfspec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    btf_cmd = commands.add_parser("btf", help="BPF Type Format")
    btf_sub = btf_cmd.add_subparsers(required=True, metavar="ACTION")
    dump = btf_sub.add_parser("dump", help="print the types of an object's BTF or of the kernel's")
    source = dump.add_mutually_exclusive_group(required=True)
    source.add_argument("object", nargs="?", type=Path, help="BPF ELF object file")
    source.add_argument("--kernel", action="store_true", help="the running kernel's BTF")
    dump.add_argument("--format", choices=("raw", "c"), default="raw",
                      help="raw: one record per type like bpftool (default); c: a C header")
    dump.set_defaults(command=btf_dump)
    return parser


def btf_dump(args: argparse.Namespace) -> Iterable[str]:
    """``ebpfspec btf dump``."""
    spec = btf.load_kernel_spec() if args.kernel else object_btf(args.object)
    if args.format == "c":
        from btf.format_c import format_c

        return [format_c(spec).rstrip("\n")]
    return format_raw(spec)


def object_btf(path: Path) -> btf.Spec:
    """The ``.BTF`` of the object file at ``path``."""
    obj = ObjectFile(path.read_bytes(), name=str(path))
    section = obj.section(".BTF")
    if section is None:
        raise SpecError(f"{path}: the object has no .BTF section")
    return btf.load_spec(obj.contents(section))


def _describe(err: Exception) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return str(err)
