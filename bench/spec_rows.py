"""Spec rows: each ``testdata/*-el.o`` read into a CollectionSpec, against libbpf opening it.

One fresh ``python -c`` per object (so nothing one object decoded or cached carries over to
the next) runs both sides in the same process, turn about: ours is
``ebpfspec.load_collection_spec(path)``, the peer is libbpf's
``bpf_object__open_file(path, NULL)`` + ``bpf_object__close(obj)`` through ctypes
(``libbpf.so.1``, Debian's libbpf1). Each side has one untimed warm-up call first, then
``ctx.repeat`` timed calls; the table shows the best. The per-object measurements are
kept, so the summary row sums the same figures the object rows show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench.core import ROOT, Context, Result, Timing, at_most_times, row, skip
from bench.measure import ChildRun, MeasureError, python_child

PEER = "libbpf"
TARGET = at_most_times(10)
OBJECTS: tuple[str, ...] = tuple(sorted(p.name for p in (ROOT / "testdata").glob("*-el.o")))

_METHOD = (
    "one fresh `python -c` per object, both sides in it, turn about, each after one untimed "
    "warm-up call: ours = ebpfspec.load_collection_spec(path) (from the path, like libbpf; the "
    "result dropped inside the timed window, as libbpf's close frees its object); peer = libbpf's "
    "bpf_object__open_file(path, NULL) + bpf_object__close through ctypes (its three ctypes calls "
    "add under 1 µs, counted against it); libbpf's log silenced with libbpf_set_print(NULL)"
)

# Runs in the child: argv = [path, repeat]. Reports samples (seconds) and sanity facts with info().
_SCRIPT = r'''
import ctypes, errno, os, sys, time
lap("stdlib")
import ebpfspec
lap("import")
path, repeat = sys.argv[1], int(sys.argv[2])
clock = time.perf_counter

def ours():
    start = clock()
    ebpfspec.load_collection_spec(path)
    return clock() - start

def libbpf():
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        V = ctypes.c_void_p
        for fn, res, args in [
            ("bpf_object__open_file", V, [ctypes.c_char_p, V]), ("bpf_object__close", None, [V]),
            ("libbpf_get_error", ctypes.c_long, [V]), ("libbpf_set_print", V, [V]),
            ("bpf_object__next_program", V, [V, V]), ("bpf_program__name", ctypes.c_char_p, [V]),
            ("bpf_object__next_map", V, [V, V]), ("bpf_map__name", ctypes.c_char_p, [V]),
            ("libbpf_version_string", ctypes.c_char_p, []),
        ]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
    except (OSError, AttributeError) as err:
        info("peer_missing", f"no peer figure: libbpf.so.1 (Debian: libbpf1) cannot be used ({err})")
        return None
    lib.libbpf_set_print(None)
    info("libbpf_version", lib.libbpf_version_string().decode())
    return lib

def names(lib, obj, step, name):
    out, item = [], None
    while (item := step(obj, item)):
        out.append(name(item).decode())
    return sorted(out)

start = clock()
spec = ebpfspec.load_collection_spec(path)
info("first_ours", clock() - start)
info("ours_programs", sorted(spec.programs))
info("ours_maps", sorted(spec.maps))
del spec

lib = libbpf()
peer = None
if lib is not None:
    bpath = os.fsencode(path)
    def peer():
        start = clock()
        obj = lib.bpf_object__open_file(bpath, None)
        if not obj or lib.libbpf_get_error(obj):
            raise OSError(ctypes.get_errno(), "bpf_object__open_file failed")
        lib.bpf_object__close(obj)
        return clock() - start
    ctypes.set_errno(0)
    start = clock()
    obj = lib.bpf_object__open_file(bpath, None)
    info("first_peer", clock() - start)
    if not obj or lib.libbpf_get_error(obj):
        code = ctypes.get_errno() or -lib.libbpf_get_error(obj)
        with open(path, "rb") as f:
            from elftools.elf.elffile import ELFFile
            legacy = ELFFile(f).get_section_by_name("maps") is not None
        name = "EOPNOTSUPP" if code == errno.EOPNOTSUPP else errno.errorcode.get(code, str(code))
        info("refused", [code, name, legacy])
        peer = None
    else:
        info("peer_programs", names(lib, obj, lib.bpf_object__next_program, lib.bpf_program__name))
        info("peer_maps", names(lib, obj, lib.bpf_object__next_map, lib.bpf_map__name))
        lib.bpf_object__close(obj)

ours_samples, peer_samples = [], []
for _ in range(repeat):
    ours_samples.append(ours())
    if peer is not None:
        peer_samples.append(peer())
info("ours", ours_samples)
info("peer", peer_samples)
'''


# -- the rows ------------------------------------------------------------------------------


def _ident(name: str) -> str:
    """The row id part for ``core-el.o``: ``core``."""
    return re.sub(r"[^a-z0-9_]+", "_", name.removesuffix("-el.o").lower())


def _object_row(name: str) -> None:
    @row(f"spec.parse_{_ident(name)}", f"parse {name}")
    def parse(ctx: Context) -> Result:
        return _object_result(name, _measure(ctx, name))


for _name in OBJECTS:
    _object_row(_name)


@row("spec.parse_all", "parse all testdata objects")
def parse_all(ctx: Context) -> Result:
    if not OBJECTS:
        return skip(f"no testdata/*-el.o objects under {ROOT}", target=TARGET, unit="ms")
    runs = {name: _measure(ctx, name) for name in OBJECTS}
    opened = [name for name, run in runs.items() if _samples(run, "peer")]
    ours_all = _summed([_samples(run, "ours") for run in runs.values()])
    notes = [_METHOD, _SUM, _import_note(runs.values())]
    if not opened:
        first = next(iter(runs.values()))
        return Result(ours=Timing(ours_all), unit="ms", target=TARGET, notes=tuple(notes),
                      peer_missing=_peer_missing(first))
    left_out = [name for name in OBJECTS if name not in opened]
    if left_out:
        notes.append(
            f"sum over the {len(opened)} objects libbpf opens; left out of both sides: "
            f"{', '.join(left_out)} (refused by libbpf); ours over all {len(OBJECTS)} objects: "
            f"{_ms(min(ours_all))}"
        )
    return Result(
        ours=Timing(_summed([_samples(runs[n], "ours") for n in opened])),
        peer=Timing(_summed([_samples(runs[n], "peer") for n in opened])),
        peer_label=PEER,
        unit="ms",
        target=TARGET,
        notes=tuple(notes),
    )


# -- shared machinery -----------------------------------------------------------------------

_SUM = (
    "each side's figure is the sum over the objects of its best run (in the JSON, sample k is "
    "the sum of every object's k-th best run)"
)

# One child per (root, object, repeat): the object row and the summary row share it.
_RUNS: dict[tuple[Path, str, int], ChildRun] = {}


def _measure(ctx: Context, name: str) -> ChildRun:
    key = (ctx.root, name, ctx.repeat)
    if key not in _RUNS:
        path = str(ctx.root / "testdata" / name)
        _RUNS[key] = python_child(_SCRIPT, [path, str(ctx.repeat)], root=ctx.root)
    return _RUNS[key]


def _object_result(name: str, run: ChildRun) -> Result:
    peer = _samples(run, "peer")
    return Result(
        ours=Timing(_samples(run, "ours")),
        peer=Timing(peer) if peer else None,
        peer_label=PEER if peer else "",
        unit="µs",
        target=TARGET,
        notes=(_METHOD, _object_note(name, run)),
        peer_missing=None if peer else _peer_missing(run),
    )


def _object_note(name: str, run: ChildRun) -> str:
    """What each side found in the object, and the untimed warm-up calls."""
    info = run.info
    programs, maps = _strings(info, "ours_programs"), _strings(info, "ours_maps")
    text = f"{name}: ours finds {_n(len(programs), 'program')}, {_n(len(maps), 'map')}"
    if "peer_programs" in info:
        theirs = sorted(_internal(m) for m in _strings(info, "peer_maps"))
        diffs = [
            *_diff("programs", programs, _strings(info, "peer_programs")),
            *_diff("maps", maps, theirs),
        ]
        text += "; libbpf: " + ("the same names" if not diffs else "; ".join(diffs))
    text += f"; warm-up call (not counted): ours {_ms(_number(info, 'first_ours'))}"
    if "peer_programs" in info:
        text += f", libbpf {_us(_number(info, 'first_peer'))}"
    return text


def _peer_missing(run: ChildRun) -> str:
    info = run.info
    if "peer_missing" in info:
        return str(info["peer_missing"])
    refused = info.get("refused")
    if isinstance(refused, list) and len(refused) == 3:
        why = " (legacy SEC(\"maps\") map definitions, dropped in libbpf 1.0)" if refused[2] else ""
        return (
            f"peer refused: libbpf {info.get('libbpf_version', '')} bpf_object__open_file fails "
            f"with -{refused[1]}{why}"
        )
    return "no peer figure"


def _diff(what: str, ours: Sequence[str], theirs: Sequence[str]) -> list[str]:
    out: list[str] = []
    if only := sorted(set(ours) - set(theirs)):
        out.append(f"{what} only ours has: {', '.join(only)}")
    if only := sorted(set(theirs) - set(ours)):
        out.append(f"{what} only libbpf has: {', '.join(only)}")
    return out


def _internal(name: str) -> str:
    """libbpf names internal maps ``<object prefix>.bss``; ours (like cilium/ebpf) ``.bss``."""
    dot = name.find(".", 1)
    return name[dot:] if dot > 0 and not name.startswith(".") else name


def _summed(samples: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Sample k = the sum of every object's k-th best run (so the best is the sum of the bests)."""
    ordered = [sorted(s) for s in samples]
    return tuple(sum(s[k] for s in ordered) for k in range(min(len(s) for s in ordered)))


def _import_note(runs: Iterable[ChildRun]) -> str:
    best = min(r.laps["import"] for r in runs)
    return f"`import ebpfspec` in the fresh processes, not counted: best {_ms(best)}"


def _samples(run: ChildRun, key: str) -> tuple[float, ...]:
    value = run.info.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        raise MeasureError(f"the child reported {key}={value!r}, not a list of times")
    return tuple(float(v) for v in value)


def _strings(info: dict[str, object], key: str) -> list[str]:
    value = info.get(key, [])
    return [str(v) for v in value] if isinstance(value, list) else []


def _number(info: dict[str, object], key: str) -> float:
    value = info.get(key)
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"
