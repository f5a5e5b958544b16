"""Program rows: program-heavy objects loaded (verifier included), against libbpf.

``program.load_<object>``: ours = ``ebpfspec.load_collection_spec(path)`` +
``loader.load_collection(spec)`` + ``Collection.close()``; the peer = libbpf's
``bpf_object__open_file(path, NULL)`` + ``bpf_object__load`` + ``bpf_object__close``
through ctypes. One fresh ``python -c`` per object runs both sides turn about.
"""

from __future__ import annotations

from pathlib import Path

from bench.core import Context, Result, Target, Timing, at_most_times, row, skip
from bench.load_rows import SETTLE
from bench.map_rows import CHILD_COMMON, bpf_unusable, samples_of
from bench.measure import ChildRun, python_child

TARGET = at_most_times(1.5)
#: Small objects (a few programs of tens of instructions): the verifier does not dominate,
#: so the row shows the fixed Python cost of parse + load; judged, but informational.
SMALL_TARGET = at_most_times(1.5, informational=True)

_CHILD = CHILD_COMMON + r'''
import ebpfspec
import loader
path, rounds, SETTLE = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def ours(record=False):
    start = clock()
    spec = ebpfspec.load_collection_spec(path)
    t1 = clock()
    coll = loader.load_collection(spec)
    if record:
        info("ours_programs", sorted(n for n, p in coll.programs.items() if p.fileno() >= 0))
    coll.close()
    del spec
    t2 = clock()
    time.sleep(SETTLE)
    return t1 - start, t2 - t1

lib = load_libbpf()
if lib is not None:
    V = ctypes.c_void_p
    for fn, res, args in [
        ("bpf_object__open_file", V, [ctypes.c_char_p, V]), ("bpf_object__load", ctypes.c_int, [V]),
        ("bpf_object__close", None, [V]), ("libbpf_get_error", ctypes.c_long, [V]),
        ("bpf_object__next_program", V, [V, V]), ("bpf_program__name", ctypes.c_char_p, [V]),
        ("bpf_program__fd", ctypes.c_int, [V]),
    ]:
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    bpath = os.fsencode(path)

    def peer(record=False):
        start = clock()
        obj = lib.bpf_object__open_file(bpath, None)
        if not obj or lib.libbpf_get_error(obj):
            raise OSError(ctypes.get_errno(), "bpf_object__open_file failed")
        t1 = clock()
        err = lib.bpf_object__load(obj)
        if err:
            lib.bpf_object__close(obj)
            raise OSError(-err, f"bpf_object__load failed: {os.strerror(-err)}")
        if record:
            names, p = [], None
            while (p := lib.bpf_object__next_program(obj, p)):
                if lib.bpf_program__fd(p) >= 0:  # only programs libbpf really loaded
                    names.append(lib.bpf_program__name(p).decode())
            info("peer_programs", sorted(names))
        lib.bpf_object__close(obj)
        t2 = clock()
        time.sleep(SETTLE)
        return t1 - start, t2 - t1

    try:
        peer(record=True)
    except OSError as err:
        info("ctypes_missing", f"no peer figure: libbpf {err}")
        lib = None

ours(record=True)
samples = {f"{side}_{part}": [] for side in ("ours", "peer") for part in ("parse", "load")}
for _ in range(rounds):
    for part, t in zip(("parse", "load"), ours()):
        samples[f"ours_{part}"].append(t)
    if lib is not None:
        for part, t in zip(("parse", "load"), peer()):
            samples[f"peer_{part}"].append(t)
info("samples", samples)
'''


def _program_row(ctx: Context, obj: str, target: Target = TARGET, extra: str = "") -> Result:
    path = ctx.root / "testdata" / obj
    if not path.exists():
        return skip(f"testdata/{obj} is missing", target=target)
    if (reason := bpf_unusable()) is not None:
        return skip(reason, target=target)
    run = _run(ctx, path)
    ours = _total(run, "ours")
    peer = _total(run, "peer")
    notes = [
        f"one fresh `python -c` per object runs both sides turn about, {ctx.repeat} rounds, after one "
        "untimed warm-up call each (which also records the loaded program names); libbpf through "
        f"ctypes (libbpf.so.1), log silenced (libbpf_set_print(NULL)); an untimed {SETTLE * 1e3:.0f} ms "
        "pause after each side's close",
        "ours = ebpfspec.load_collection_spec(path) + loader.load_collection(spec) + Collection.close(); "
        "peer = bpf_object__open_file(path, NULL) + bpf_object__load + bpf_object__close: like with like, "
        "parse/open included on both sides",
        _split(run),
        _same_programs(run),
    ]
    if extra:
        notes.append(extra)
    version = run.info.get("libbpf_version")
    if peer and version:
        notes.append(f"peer: libbpf.so.1 reports {version}")
    return Result(
        ours=Timing(ours),
        peer=Timing(peer) if peer else None,
        peer_label="libbpf" if peer else "",
        unit="ms",
        target=target,
        notes=tuple(notes),
        peer_missing=None if peer else str(run.info.get("ctypes_missing", "no peer figure")),
    )


@row("program.load_programs", "load programs: programs-el.o")
def load_programs(ctx: Context) -> Result:
    return _program_row(ctx, "programs-el.o")


@row("program.load_xdp_test", "load programs: xdp_test-el.o")
def load_xdp_test(ctx: Context) -> Result:
    return _program_row(
        ctx, "xdp_test-el.o", SMALL_TARGET,
        "informational: 4 programs of 2-25 instructions, so the verifier takes little and the "
        "row measures our fixed cost of parsing and loading in Python (libbpf's is C); the "
        "target is judged on the program-heavy object above",
    )


def _run(ctx: Context, path: Path) -> ChildRun:
    return python_child(_CHILD, [str(path), str(ctx.repeat), str(SETTLE)], root=ctx.root)


def _total(run: ChildRun, side: str) -> tuple[float, ...]:
    parse, load = samples_of(run, f"{side}_parse"), samples_of(run, f"{side}_load")
    return tuple(a + b for a, b in zip(parse, load, strict=True))


def _split(run: ChildRun) -> str:
    out = []
    for side, steps in (("ours", ("parse", "load_collection + close")),
                        ("peer", ("open_file", "load + close"))):
        totals = _total(run, side)
        if not totals:
            continue
        best = totals.index(min(totals))
        parts = (samples_of(run, f"{side}_parse")[best], samples_of(run, f"{side}_load")[best])
        shown = (f"{s} {t * 1e3:.2f} ms" for s, t in zip(steps, parts, strict=True))
        out.append(f"{side} " + " + ".join(shown))
    return "best round, step by step: " + "; ".join(out)


def _same_programs(run: ChildRun) -> str:
    ours, theirs = run.info.get("ours_programs"), run.info.get("peer_programs")
    if not isinstance(ours, list):
        return "programs: ours reported none"
    if not isinstance(theirs, list):
        return f"programs: ours loaded {len(ours)}; no libbpf programs to compare"
    if ours == theirs:
        return f"same programs: ours and libbpf loaded (fd ≥ 0) the same {len(ours)} program names"
    diff = sorted({str(n) for n in ours} ^ {str(n) for n in theirs})
    return f"programs DIFFER between ours ({len(ours)}) and libbpf ({len(theirs)}): {', '.join(diff[:5])}"
