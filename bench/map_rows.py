"""Map rows: ``loader.Map`` operations on the real ``bpf(2)``, against libbpf.

Each group of rows is measured in one fresh ``python -c`` (so one group's 1M-entry maps
and key lists do not sit in the next one's process) which runs three sides turn about,
round by round:

* **ours**: ``loader.Map`` (``KernelBackend``) called from a Python loop;
* **libbpf via ctypes**: Debian's ``libbpf.so.1`` (libbpf1) called through ``ctypes``
  from the same kind of Python loop over the same Python objects, so both Python sides
  start from and end with Python ``bytes``;
* **libbpf C**: :data:`PEER_C`, written to a temporary directory and compiled with
  ``gcc -O2 -pthread ... -lbpf`` when the bench runs (once per bench process), started
  by the child as a server that runs one timed round per line on its stdin and prints
  its own figures (``CLOCK_MONOTONIC`` around the C loop: no Python anywhere).

Every side works on its own, identically created map. Each row compares ours with one
peer, so the ctypes and the C figure of an operation are two rows. The C peer is also
used by :mod:`bench.load_rows` (its ``parallel`` mode).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.core import Context, Result, Target, Timing, Unit, at_most_times, row, skip
from bench.measure import ChildRun, MeasureError, python_child

#: Entries of the big maps (the issue's "1M keys").
N_KEYS = 1_000_000
#: Entries per batch call.
BATCH = 4096
#: Map creations (+ closes) per timed sample.
N_CREATE = 1000
#: Untimed pauses (seconds) in the create rows: at the start, for the kernel to finish freeing
#: the big maps of the rows before (it frees closed maps later, in a work queue), and before
#: each sample, for the frees of the sample before, so one side's frees do not land in the
#: other side's figure.
START_SETTLE = 1.0
SETTLE = 0.1
#: Fewest rounds of the create rows: the kernel's share of a creation (allocation, the
#: deferred frees of earlier maps) varies by 2x from one sample to the next on either side,
#: so the best of a few samples is not yet each side's steady figure.
MIN_CREATE_ROUNDS = 15
#: At most this many timed rounds for the 1M-entry groups (each pass takes seconds).
MAX_BIG_ROUNDS = 3

ELEM_TARGET = at_most_times(2.5)
BATCH_TARGET = at_most_times(1.5)
CREATE_TARGET = at_most_times(1.5)

CTYPES = "libbpf ctypes"
C_LOOP = "libbpf C"

# -- the C peer ------------------------------------------------------------------------------

#: The C peer: one program, four modes. Each mode sets up, prints ``ready <libbpf version>``,
#: then runs one timed round per line read on stdin and prints that round's figures on one
#: line (times in seconds), so a Python process can take turns with it.
PEER_C = r"""
/* ebpfspec bench peer: libbpf loops in C, timed inside with CLOCK_MONOTONIC. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "%s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

static void ready(void)
{
    printf("ready %s\n", libbpf_version_string());
    fflush(stdout);
}

static int next_round(void)
{
    char line[64];

    return fgets(line, sizeof(line), stdin) != NULL;
}

/* elem TYPE N: a TYPE map (u32 -> u64, N entries) filled untimed; per round one update
 * pass (BPF_ANY, every key present) and one lookup pass over keys 0..N-1. */
static void elem(int type, uint32_t n)
{
    uint32_t *keys = malloc(n * sizeof(*keys));
    uint64_t *vals = malloc(n * sizeof(*vals));
    uint64_t out, sum;
    int fd, err;

    if (!keys || !vals)
        die("malloc", ENOMEM);
    for (uint32_t i = 0; i < n; i++) {
        keys[i] = i;
        vals[i] = (uint64_t)i * 3;
    }
    fd = bpf_map_create(type, "bench_c", 4, 8, n, NULL);
    if (fd < 0)
        die("bpf_map_create", fd);
    for (uint32_t i = 0; i < n; i++)
        if ((err = bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY)))
            die("fill", err);
    ready();
    while (next_round()) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < n; i++)
            if ((err = bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY)))
                die("bpf_map_update_elem", err);
        double t1 = now_ns();
        sum = 0;
        for (uint32_t i = 0; i < n; i++) {
            if ((err = bpf_map_lookup_elem(fd, &keys[i], &out)))
                die("bpf_map_lookup_elem", err);
            sum += out;
        }
        double t2 = now_ns();
        printf("%.9f %.9f %llu\n", (t1 - t0) / 1e9, (t2 - t1) / 1e9, (unsigned long long)sum);
        fflush(stdout);
    }
    close(fd);
    free(keys);
    free(vals);
}

/* Every entry of fd in batches of `batch` (deleting them if del); returns the count. */
static uint64_t read_all(int fd, uint32_t batch, int del, uint32_t *kbuf, uint64_t *vbuf,
             uint64_t *sum)
{
    uint32_t in_tok = 0, out_tok = 0, count;
    uint64_t total = 0;
    int first = 1, err;

    for (;;) {
        count = batch;
        if (del)
            err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &in_tok, &out_tok,
                                  kbuf, vbuf, &count, NULL);
        else
            err = bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, kbuf, vbuf,
                           &count, NULL);
        if (err && errno != ENOENT)
            die(del ? "bpf_map_lookup_and_delete_batch" : "bpf_map_lookup_batch", errno);
        for (uint32_t i = 0; i < count; i++)
            *sum += vbuf[i];
        total += count;
        if (err)
            return total;
        in_tok = out_tok;
        first = 0;
    }
}

/* batch N B: an empty HASH map (u32 -> u64, N entries); per round: update all N entries
 * in batches of B (into the empty map), look them all up, look up and delete them all. */
static void batch(uint32_t n, uint32_t b)
{
    uint32_t *keys = malloc(n * sizeof(*keys)), *kbuf = malloc(b * sizeof(*kbuf));
    uint64_t *vals = malloc(n * sizeof(*vals)), *vbuf = malloc(b * sizeof(*vbuf));
    uint64_t got, gone, sum, sum2;
    int fd, err;

    if (!keys || !vals || !kbuf || !vbuf)
        die("malloc", ENOMEM);
    for (uint32_t i = 0; i < n; i++) {
        keys[i] = i;
        vals[i] = (uint64_t)i * 3;
    }
    fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c_batch", 4, 8, n, NULL);
    if (fd < 0)
        die("bpf_map_create", fd);
    ready();
    while (next_round()) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < n; i += b) {
            uint32_t count = n - i < b ? n - i : b;

            if ((err = bpf_map_update_batch(fd, &keys[i], &vals[i], &count, NULL)))
                die("bpf_map_update_batch", err);
        }
        double t1 = now_ns();
        sum = 0;
        got = read_all(fd, b, 0, kbuf, vbuf, &sum);
        double t2 = now_ns();
        sum2 = 0;
        gone = read_all(fd, b, 1, kbuf, vbuf, &sum2);
        double t3 = now_ns();
        printf("%.9f %.9f %.9f %llu %llu %llu %llu\n", (t1 - t0) / 1e9, (t2 - t1) / 1e9,
               (t3 - t2) / 1e9, (unsigned long long)got, (unsigned long long)sum,
               (unsigned long long)gone, (unsigned long long)sum2);
        fflush(stdout);
    }
    close(fd);
    free(keys);
    free(vals);
    free(kbuf);
    free(vbuf);
}

/* create K: per round, K times bpf_map_create(HASH, "bench_create", 4, 8, 1024) + close. */
static void create(uint32_t k)
{
    ready();
    while (next_round()) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < k; i++) {
            int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_create", 4, 8, 1024, NULL);

            if (fd < 0)
                die("bpf_map_create", fd);
            close(fd);
        }
        printf("%.9f\n", (now_ns() - t0) / 1e9);
        fflush(stdout);
    }
}

/* parallel: reads "COUNT" then COUNT lines "type key_size value_size max_entries flags name"
 * on stdin; per round line "THREADS": creates every map with THREADS threads, each taking
 * the next map in order (like a thread pool), prints the wall time (thread start to the
 * last join), then one line per map with what the kernel says about it
 * (bpf_obj_get_info_by_fd), then closes them all (untimed). */
struct map_def {
    int type;
    unsigned int key_size, value_size, max_entries, flags;
    char name[16];
};

static struct map_def *defs;
static int *fds;
static int ndefs;
static atomic_int next_def;

static void *creator(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&next_def, 1);

        if (i >= ndefs)
            return NULL;
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = defs[i].flags);
        fds[i] = bpf_map_create(defs[i].type, defs[i].name, defs[i].key_size,
                    defs[i].value_size, defs[i].max_entries, &opts);
        if (fds[i] < 0)
            die("bpf_map_create", fds[i]);
    }
}

static void parallel(void)
{
    char line[128];
    pthread_t tids[64];

    if (!fgets(line, sizeof(line), stdin) || sscanf(line, "%d", &ndefs) != 1 || ndefs < 1)
        die("map count", EINVAL);
    defs = calloc(ndefs, sizeof(*defs));
    fds = calloc(ndefs, sizeof(*fds));
    if (!defs || !fds)
        die("calloc", ENOMEM);
    for (int i = 0; i < ndefs; i++) {
        struct map_def *d = &defs[i];

        if (!fgets(line, sizeof(line), stdin) ||
            sscanf(line, "%d %u %u %u %u %15s", &d->type, &d->key_size, &d->value_size,
               &d->max_entries, &d->flags, d->name) != 6)
            die("map line", EINVAL);
    }
    ready();
    while (fgets(line, sizeof(line), stdin)) {
        int threads = atoi(line);

        if (threads < 1 || threads > 64)
            die("threads", EINVAL);
        atomic_store(&next_def, 0);
        double t0 = now_ns();
        for (int t = 0; t < threads; t++)
            if ((errno = pthread_create(&tids[t], NULL, creator, NULL)))
                die("pthread_create", errno);
        for (int t = 0; t < threads; t++)
            pthread_join(tids[t], NULL);
        double t1 = now_ns();
        printf("%.9f\n", (t1 - t0) / 1e9);
        for (int i = 0; i < ndefs; i++) {
            struct bpf_map_info info;
            __u32 len = sizeof(info);
            int err;

            memset(&info, 0, sizeof(info));
            if ((err = bpf_obj_get_info_by_fd(fds[i], &info, &len)))
                die("bpf_obj_get_info_by_fd", err);
            printf("%s %u %u %u %u %u %u\n", info.name, info.type, info.key_size,
                   info.value_size, info.max_entries, info.map_flags, info.btf_id ? 1 : 0);
            close(fds[i]);
        }
        fflush(stdout);
    }
    free(defs);
    free(fds);
}

int main(int argc, char **argv)
{
    libbpf_set_print(NULL);
    if (argc == 4 && !strcmp(argv[1], "elem"))
        elem(atoi(argv[2]), strtoul(argv[3], NULL, 10));
    else if (argc == 4 && !strcmp(argv[1], "batch"))
        batch(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10));
    else if (argc == 3 && !strcmp(argv[1], "create"))
        create(strtoul(argv[2], NULL, 10));
    else if (argc == 2 && !strcmp(argv[1], "parallel"))
        parallel();
    else {
        fprintf(stderr, "usage: %s elem TYPE N | batch N B | create K | parallel\n", argv[0]);
        return 2;
    }
    return 0;
}
"""

_CFLAGS = ("-O2", "-Wall", "-pthread")


@dataclass(frozen=True)
class CPeer:
    """The compiled C peer (``path``), or why there is none (``missing``)."""

    path: str | None
    missing: str | None
    compiler: str = ""

    @property
    def argv0(self) -> str:
        """What a child script gets for it: the path, or ``""`` when there is none."""
        return self.path or ""

    def how(self) -> str:
        """How it was built, for the notes."""
        return f"`{self.compiler} {' '.join(_CFLAGS)} peer.c -lbpf`"


_C_PEER: list[CPeer] = []


def c_peer() -> CPeer:
    """:data:`PEER_C` compiled into a temporary directory (once per process; removed at exit)."""
    if _C_PEER:
        return _C_PEER[0]
    peer = _build_c_peer()
    _C_PEER.append(peer)
    return peer


def _build_c_peer() -> CPeer:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        return CPeer(None, "no C peer figure: no C compiler (gcc, cc) on PATH")
    tmp = tempfile.mkdtemp(prefix="ebpfspec-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    source = os.path.join(tmp, "peer.c")
    exe = os.path.join(tmp, "peer")
    Path(source).write_text(PEER_C)
    argv = [compiler, *_CFLAGS, "-o", exe, source, "-lbpf"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return CPeer(None, f"no C peer figure: {os.path.basename(compiler)} failed to run: {err}")
    name = os.path.basename(compiler)
    if proc.returncode != 0:
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-3:])
        return CPeer(
            None,
            f"no C peer figure: {name} could not build the libbpf C peer "
            f"(needs libbpf's headers and libbpf.so: Debian libbpf-dev): {tail}",
        )
    return CPeer(exe, None, name)


# -- can bpf(2) be used here? ---------------------------------------------------------------------

_BPF_PROBE: list[str | None] = []


def bpf_unusable() -> str | None:
    """Why maps cannot be created in this process (None when they can). Probed once."""
    if not _BPF_PROBE:
        _BPF_PROBE.append(_probe_bpf())
    return _BPF_PROBE[0]


def _probe_bpf() -> str | None:
    try:
        from loader.backend import MapAttrs
        from loader.kernel import KernelBackend

        backend = KernelBackend()
        fd = backend.map_create(MapAttrs(map_type=2, key_size=4, value_size=4, max_entries=1,
                                         name="bench_probe"))
    except Exception as err:  # NotSupportedError, PermissionError, ...: all mean "cannot run here"
        return f"cannot create a BPF map here ({type(err).__name__}: {err}); needs bpf(2) and CAP_BPF"
    os.close(fd)
    return None


# -- what the child scripts share ----------------------------------------------------------------

#: Prepended to every child script of the map and load rows: libbpf through ctypes and the
#: C peer server. ``info("ctypes_missing" | "c_missing", why)`` when a peer cannot be used.
CHILD_COMMON = r'''
import ctypes, errno, os, struct, subprocess, sys, time
clock = time.perf_counter

def load_libbpf():
    try:
        lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        lib.libbpf_set_print.restype = ctypes.c_void_p
        lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
        lib.libbpf_version_string.restype = ctypes.c_char_p
        lib.libbpf_version_string.argtypes = []
        lib.libbpf_set_print(None)
        info("libbpf_version", lib.libbpf_version_string().decode())
        return lib
    except (OSError, AttributeError) as err:
        info("ctypes_missing",
             f"no ctypes peer figure: libbpf.so.1 (Debian: libbpf1) cannot be used ({err})")
        return None

class CPeer:
    """The compiled C peer as a server: one timed round per line written to its stdin."""
    def __init__(self, argv, setup=""):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        try:
            self.proc.stdin.write(setup)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        words = self.proc.stdout.readline().split()
        if not words or words[0] != "ready":
            self.fail()
        info("c_libbpf_version", words[1] if len(words) > 1 else "?")
    def round(self, command=""):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.fail()
        return self.line()
    def line(self):
        text = self.proc.stdout.readline()
        if not text:
            self.fail()
        return text.split()
    def fail(self):
        self.proc.kill()
        err = self.proc.stderr.read().strip()
        self.proc.wait()
        self._close_pipes()
        raise RuntimeError(f"the C peer failed: {err or 'exit status %s' % self.proc.returncode}")
    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=120)
        self._close_pipes()
    def _close_pipes(self):
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not pipe.closed:
                pipe.close()

def start_c(argv, setup=""):
    """The C peer server, or None (and a c_missing note) when it cannot start."""
    if not argv[0]:
        return None
    try:
        return CPeer(argv, setup)
    except (OSError, RuntimeError) as err:
        info("c_missing", f"no C peer figure: {err}")
        return None
'''

# -- per-element update / lookup -----------------------------------------------------------------

_ELEM = CHILD_COMMON + r'''
from ebpfspec import MapSpec, MapType
from loader import Map
kind, n, rounds, exe = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mtype = MapType.HASH if kind == "hash" else MapType.ARRAY
keys = [struct.pack("=I", i) for i in range(n)]
values = [struct.pack("=Q", 3 * i) for i in range(n)]
probe = keys[:: max(1, n // 4096)]
info("expected_probe", sum(3 * int.from_bytes(k, "little") for k in probe))
info("expected_sum", 3 * n * (n - 1) // 2)
samples = {name: [] for name in
           ("ours_update", "ours_lookup", "ctypes_update", "ctypes_lookup", "c_update", "c_lookup")}

ours_map = Map.create(MapSpec("bench_ours", mtype, 4, 8, n))

def ours_update():
    update = ours_map.update
    start = clock()
    for k, v in zip(keys, values):
        update(k, v)
    return clock() - start

def ours_lookup():
    lookup = ours_map.lookup
    start = clock()
    for k in keys:
        lookup(k)
    return clock() - start

info("ours_fill", ours_update())
info("ours_probe", sum(int.from_bytes(ours_map.lookup(k), "little") for k in probe))

lib = load_libbpf()
peer_fd = -1
if lib is not None:
    peer_fd = lib.bpf_map_create(int(mtype), b"bench_peer", 4, 8, n, None)
    if peer_fd < 0:
        info("ctypes_missing", f"no ctypes peer figure: bpf_map_create failed: {os.strerror(-peer_fd)}")
        lib = None
if lib is not None:
    # The cheapest ctypes calls: no argtypes (bytes go as char *), a prebuilt u64 flags.
    U, L = lib.bpf_map_update_elem, lib.bpf_map_lookup_elem
    ANY = ctypes.c_uint64(0)
    out = ctypes.create_string_buffer(8)

    def ctypes_update():
        start = clock()
        for k, v in zip(keys, values):
            if U(peer_fd, k, v, ANY):
                raise OSError(ctypes.get_errno(), "bpf_map_update_elem")
        return clock() - start

    def ctypes_lookup():
        start = clock()
        for k in keys:
            if L(peer_fd, k, out):
                raise OSError(ctypes.get_errno(), "bpf_map_lookup_elem")
            out.raw
        return clock() - start

    info("ctypes_fill", ctypes_update())
    got = 0
    for k in probe:
        if L(peer_fd, k, out):
            raise OSError(ctypes.get_errno(), "bpf_map_lookup_elem")
        got += int.from_bytes(out.raw, "little")
    info("ctypes_probe", got)

c = start_c([exe, "elem", str(int(mtype)), str(n)])
c_sums = []
for _ in range(rounds):
    samples["ours_update"].append(ours_update())
    if lib is not None:
        samples["ctypes_update"].append(ctypes_update())
    samples["ours_lookup"].append(ours_lookup())
    if lib is not None:
        samples["ctypes_lookup"].append(ctypes_lookup())
    if c is not None:
        up, look, total = c.round()
        samples["c_update"].append(float(up))
        samples["c_lookup"].append(float(look))
        c_sums.append(int(total))
if c is not None:
    c.close()
    info("c_sums", c_sums)
ours_map.close()
if peer_fd >= 0:
    os.close(peer_fd)
info("samples", samples)
'''


@dataclass(frozen=True)
class _Elem:
    kind: str  # "hash" | "array"
    label: str  # "HASH" | "ARRAY"


_HASH = _Elem("hash", "HASH")
_ARRAY = _Elem("array", "ARRAY")


def _rounds(ctx: Context) -> int:
    return min(ctx.repeat, MAX_BIG_ROUNDS)


def _elem_run(ctx: Context, m: _Elem) -> ChildRun:
    return _cached(ctx, f"elem_{m.kind}", lambda peer: python_child(
        _ELEM, [m.kind, str(N_KEYS), str(_rounds(ctx)), peer.argv0], root=ctx.root, timeout=600))


def _elem_row(m: _Elem, op: str, peer: str, target: Target) -> None:
    side = "ctypes" if peer == CTYPES else "c"
    how = "via ctypes" if peer == CTYPES else "C loop"

    @row(f"map.{op}_{m.kind}_{side}", f"{m.label} 1M: {op}, per op (vs libbpf {how})")
    def measure(ctx: Context) -> Result:
        if (reason := bpf_unusable()) is not None:
            return skip(reason, target=target, unit="µs")
        run = _elem_run(ctx, m)
        return _result(
            run, f"ours_{op}", f"{side}_{op}", peer, N_KEYS, "µs", target,
            [_elem_method(ctx), _elem_ours(m, op), _elem_peer(m, op, peer), _elem_checks(run)],
        )


def _elem_method(ctx: Context) -> str:
    return (
        f"per-element rows: one fresh `python -c` per map type runs ours, libbpf via ctypes and the "
        f"libbpf C loop turn about for {_rounds(ctx)} rounds (best shown; a sample is one timed pass "
        f"over all {N_KEYS:,} keys, divided by {N_KEYS:,}); each side has its own identically created "
        "map (key 4 bytes, value 8, max_entries 1M), filled by one untimed update pass first, so every "
        "timed update overwrites a present key (BPF_ANY) and every lookup finds one"
    )


def _elem_ours(m: _Elem, op: str) -> str:
    call = "Map.update(k, v)" if op == "update" else "Map.lookup(k) (result dropped)"
    return (
        f"ours ({m.label}) = {call} on a KernelBackend map made by Map.create, in a Python for-loop "
        "over prebuilt lists of 4-byte keys / 8-byte values (bound method hoisted out of the loop)"
    )


def _elem_peer(m: _Elem, op: str, peer: str) -> str:
    if peer == CTYPES:
        call = ("bpf_map_update_elem(fd, k, v, flags)" if op == "update"
                else "bpf_map_lookup_elem(fd, k, buf) then buf.raw (an 8-byte bytes, as ours returns)")
        return (
            f"peer ({m.label}) = libbpf.so.1's {call} through ctypes, from the same kind of Python loop "
            "over the same bytes objects, return value checked per call; the cheapest ctypes binding "
            "(no argtypes: bytes pass as char *; prebuilt c_uint64 flags; one reused value buffer)"
        )
    fn = "bpf_map_update_elem" if op == "update" else "bpf_map_lookup_elem"
    return (
        f"peer ({m.label}) = the C peer's `elem` mode: {fn} in a C for-loop over u32 keys/u64 values in "
        "arrays, return checked, timed inside with CLOCK_MONOTONIC (no Python at all), its own map "
        "(libbpf bpf_map_create)"
    )


def _elem_checks(run: ChildRun) -> str:
    info = run.info
    parts = []
    expected = info.get("expected_probe")
    for side in ("ours", "ctypes"):
        if f"{side}_probe" in info:
            ok = "match" if info[f"{side}_probe"] == expected else "DO NOT MATCH"
            parts.append(f"{side}: values of 4,096 sampled keys {ok} what was stored")
    sums = info.get("c_sums")
    if isinstance(sums, list) and sums:
        ok = "=" if all(s == info.get("expected_sum") for s in sums) else "≠ (WRONG)"
        parts.append(f"C: sum of all looked-up values {ok} the sum stored")
    fills = [f"{side} {_secs(info[f'{side}_fill'])}" for side in ("ours", "ctypes") if f"{side}_fill" in info]
    if fills:
        parts.append(f"untimed fill passes: {', '.join(fills)}")
    return "checks: " + "; ".join(parts)


for _m in (_HASH, _ARRAY):
    for _op in ("update", "lookup"):
        for _peer in (CTYPES, C_LOOP):
            # ARRAY is an extra, cheap variant: the figures are for HASH, so informational.
            _elem_row(_m, _op, _peer, ELEM_TARGET if _m is _HASH else at_most_times(2.5, informational=True))


# -- batches ------------------------------------------------------------------------------------

_BATCH = CHILD_COMMON + r'''
from ebpfspec import MapSpec, MapType
from loader import BatchCursor, Map
n, B, rounds, exe = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keys = [struct.pack("=I", i) for i in range(n)]
values = [struct.pack("=Q", 3 * i) for i in range(n)]
expected = 3 * n * (n - 1) // 2
info("expected_sum", expected)
ops = ("update", "lookup", "lookup_delete")
samples = {f"{side}_{op}": [] for side in ("ours", "ctypes", "c") for op in ops}
checks = {}

def value_sum(vs):
    return sum(int.from_bytes(v, "little") for v in vs)

ours_map = Map.create(MapSpec("bench_ours_b", MapType.HASH, 4, 8, n))

def ours_round(check):
    update = ours_map.batch_update
    start = clock()
    for i in range(0, n, B):
        update(keys[i:i + B], values[i:i + B])
    t1 = clock()
    lookup, cursor, got, total = ours_map.batch_lookup, BatchCursor(), 0, 0
    while not cursor.done:
        ks, vs = lookup(cursor, B)
        got += len(ks)
        if check:
            total += value_sum(vs)
    t2 = clock()
    take, cursor, gone, total2 = ours_map.batch_lookup_and_delete, BatchCursor(), 0, 0
    while not cursor.done:
        ks, vs = take(cursor, B)
        gone += len(ks)
        if check:
            total2 += value_sum(vs)
    t3 = clock()
    if check:
        checks["ours"] = [got, total, gone, total2]
    return t1 - start, t2 - t1, t3 - t2

lib = load_libbpf()
peer_fd = -1
if lib is not None:
    peer_fd = lib.bpf_map_create(int(MapType.HASH), b"bench_peer_b", 4, 8, n, None)
    if peer_fd < 0:
        info("ctypes_missing", f"no ctypes peer figure: bpf_map_create failed: {os.strerror(-peer_fd)}")
        lib = None
if lib is not None:
    UB, LB = lib.bpf_map_update_batch, lib.bpf_map_lookup_batch
    LDB = lib.bpf_map_lookup_and_delete_batch
    count = ctypes.c_uint32()
    pcount = ctypes.byref(count)
    kbuf = ctypes.create_string_buffer(B * 4)
    vbuf = ctypes.create_string_buffer(B * 8)
    tok_in, tok_out = ctypes.c_uint32(), ctypes.c_uint32()
    ptok_in, ptok_out = ctypes.byref(tok_in), ctypes.byref(tok_out)
    # Preallocated buffers in, one bytes object per element out via one struct unpack per
    # batch (the cheapest conversion: ~6x faster than slicing, measured when this was written).
    unpackers = {}

    def unpack(c):
        u = unpackers.get(c)
        if u is None:
            u = unpackers[c] = (struct.Struct("4s" * c).unpack_from, struct.Struct("8s" * c).unpack_from)
        return u

    def read_all(fn, check):
        first, got, total = True, 0, 0
        while True:
            count.value = B
            err = fn(peer_fd, None if first else ptok_in, ptok_out, kbuf, vbuf, pcount, None)
            c = count.value
            if c:
                uk, uv = unpack(c)
                ks, vs = uk(kbuf), uv(vbuf)
                got += c
                if check:
                    total += value_sum(vs)
            if err:
                if err != -errno.ENOENT:
                    raise OSError(-err, os.strerror(-err))
                return got, total
            tok_in.value = tok_out.value
            first = False

    def ctypes_round(check):
        start = clock()
        for i in range(0, n, B):
            ks = keys[i:i + B]
            count.value = len(ks)
            err = UB(peer_fd, b"".join(ks), b"".join(values[i:i + B]), pcount, None)
            if err:
                raise OSError(-err, os.strerror(-err))
        t1 = clock()
        got, total = read_all(LB, check)
        t2 = clock()
        gone, total2 = read_all(LDB, check)
        t3 = clock()
        if check:
            checks["ctypes"] = [got, total, gone, total2]
        return t1 - start, t2 - t1, t3 - t2

c = start_c([exe, "batch", str(n), str(B)])
# One untimed warm-up round per side, with the content checks.
ours_round(True)
if lib is not None:
    ctypes_round(True)
if c is not None:
    words = c.round()
    checks["c"] = [int(w) for w in words[3:]]
for _ in range(rounds):
    for op, t in zip(ops, ours_round(False)):
        samples[f"ours_{op}"].append(t)
    if lib is not None:
        for op, t in zip(ops, ctypes_round(False)):
            samples[f"ctypes_{op}"].append(t)
    if c is not None:
        words = c.round()
        for op, t in zip(ops, words[:3]):
            samples[f"c_{op}"].append(float(t))
if c is not None:
    c.close()
ours_map.close()
if peer_fd >= 0:
    os.close(peer_fd)
info("checks", checks)
info("samples", samples)
'''

_BATCH_OPS = {
    "update": ("batch update", "Map.batch_update(keys[i:i+B], values[i:i+B])",
               "bpf_map_update_batch(fd, b''.join(keys[i:i+B]), b''.join(values[i:i+B]), &count, NULL)",
               "bpf_map_update_batch over the u32/u64 arrays"),
    "lookup": ("batch lookup", "Map.batch_lookup(cursor, B) until cursor.done",
               "bpf_map_lookup_batch(fd, in, out, kbuf, vbuf, &count, NULL) into preallocated buffers, "
               "then one bytes object per key and per value (struct.Struct('4s' * count).unpack_from)",
               "bpf_map_lookup_batch into preallocated arrays (values summed)"),
    "lookup_delete": ("batch lookup_and_delete", "Map.batch_lookup_and_delete(cursor, B) until cursor.done",
                      "bpf_map_lookup_and_delete_batch, otherwise as its lookup",
                      "bpf_map_lookup_and_delete_batch into preallocated arrays (values summed)"),
}


def _batch_run(ctx: Context) -> ChildRun:
    return _cached(ctx, "batch", lambda peer: python_child(
        _BATCH, [str(N_KEYS), str(BATCH), str(_rounds(ctx)), peer.argv0], root=ctx.root, timeout=600))


def _batch_row(op: str, peer: str) -> None:
    side = "ctypes" if peer == CTYPES else "c"
    how = "via ctypes" if peer == CTYPES else "C loop"
    title, ours_call, ctypes_call, c_call = _BATCH_OPS[op]

    @row(f"map.batch_{op}_{side}", f"HASH 1M: {title}, per element (vs libbpf {how})")
    def measure(ctx: Context) -> Result:
        if (reason := bpf_unusable()) is not None:
            return skip(reason, target=BATCH_TARGET, unit="ns")
        run = _batch_run(ctx)
        peer_note = (
            f"peer = libbpf.so.1 through ctypes from a Python loop: {ctypes_call}; no argtypes, return "
            "value checked per call"
            if peer == CTYPES
            else f"peer = the C peer's `batch` mode: {c_call}, timed inside with CLOCK_MONOTONIC"
        )
        return _result(
            run, f"ours_{op}", f"{side}_{op}", peer, N_KEYS, "ns", BATCH_TARGET,
            [_batch_method(ctx), f"ours = {ours_call}, B = {BATCH:,}", peer_note, _batch_checks(run)],
        )


def _batch_method(ctx: Context) -> str:
    return (
        f"batch rows: one fresh `python -c` runs ours, libbpf via ctypes and the libbpf C loop turn about "
        f"for {_rounds(ctx)} rounds after one untimed warm-up round each; a round on each side's own "
        f"empty HASH map (key 4, value 8, max_entries 1M): batch update of all {N_KEYS:,} entries "
        f"(inserts), batch lookup of all, batch lookup_and_delete of all (the map is empty again), "
        f"batches of {BATCH:,}; figures are per element (pass time / {N_KEYS:,}); both Python sides start "
        "from the same lists of 4/8-byte bytes and end with one bytes object per key and per value"
    )


def _batch_checks(run: ChildRun) -> str:
    checks = run.info.get("checks")
    expected = run.info.get("expected_sum")
    if not isinstance(checks, dict):
        return "checks: none reported"
    parts = []
    for side, got in checks.items():
        ok = isinstance(got, list) and got == [N_KEYS, expected, N_KEYS, expected]
        parts.append(f"{side} {'OK' if ok else f'WRONG {got}'}")
    return (f"checks (warm-up round): lookup and lookup_and_delete each return all {N_KEYS:,} entries "
            f"with the stored values: {', '.join(parts)}")


for _op in _BATCH_OPS:
    for _peer in (CTYPES, C_LOOP):
        _batch_row(_op, _peer)


# -- create + close -------------------------------------------------------------------------------

_CREATE = CHILD_COMMON + r'''
from ebpfspec import MapSpec, MapType
from loader import Map
k, rounds, exe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
START_SETTLE, SETTLE = float(sys.argv[4]), float(sys.argv[5])
spec = MapSpec("bench_create", MapType.HASH, 4, 8, 1024)
samples = {"ours": [], "ctypes": [], "c": []}

def ours():
    create = Map.create
    start = clock()
    for _ in range(k):
        create(spec).close()
    return clock() - start

lib = load_libbpf()
if lib is not None:
    create_fn, close, name, HASH = lib.bpf_map_create, os.close, b"bench_create", int(MapType.HASH)

    def peer():
        start = clock()
        for _ in range(k):
            fd = create_fn(HASH, name, 4, 8, 1024, None)
            if fd < 0:
                raise OSError(-fd, os.strerror(-fd))
            close(fd)
        return clock() - start

m = Map.create(spec)
kinfo = m.info()
info("ours_map", [kinfo.type, kinfo.key_size, kinfo.value_size, kinfo.max_entries, kinfo.map_flags,
                  kinfo.name])
m.close()
c = start_c([exe, "create", str(k)])
time.sleep(START_SETTLE)
ours()
if lib is not None:
    peer()
for _ in range(rounds):
    time.sleep(SETTLE)
    samples["ours"].append(ours())
    time.sleep(SETTLE)
    if lib is not None:
        samples["ctypes"].append(peer())
        time.sleep(SETTLE)
    if c is not None:
        samples["c"].append(float(c.round()[0]))
if c is not None:
    c.close()
info("samples", samples)
'''


def _create_row(peer: str) -> None:
    side = "ctypes" if peer == CTYPES else "c"
    how = "via ctypes" if peer == CTYPES else "C loop"

    @row(f"map.create_close_{side}", f"HASH 1024: create + close (vs libbpf {how})")
    def measure(ctx: Context) -> Result:
        if (reason := bpf_unusable()) is not None:
            return skip(reason, target=CREATE_TARGET, unit="µs")
        rounds = max(ctx.repeat, MIN_CREATE_ROUNDS)
        run = _cached(ctx, "create", lambda p: python_child(
            _CREATE, [str(N_CREATE), str(rounds), p.argv0, str(START_SETTLE), str(SETTLE)],
            root=ctx.root))
        peer_note = (
            "peer = libbpf.so.1's bpf_map_create(BPF_MAP_TYPE_HASH, \"bench_create\", 4, 8, 1024, NULL) "
            "through ctypes (no argtypes) + os.close, from the same kind of Python loop, fd checked"
            if peer == CTYPES
            else "peer = the C peer's `create` mode: the same bpf_map_create + close(2) in a C loop, "
                 "timed inside with CLOCK_MONOTONIC"
        )
        kinfo = run.info.get("ours_map")
        return _result(
            run, "ours", side, peer, N_CREATE, "µs", CREATE_TARGET,
            [
                f"create rows: one fresh `python -c` runs ours, libbpf via ctypes and the libbpf C loop turn "
                f"about for {rounds} rounds (at least {MIN_CREATE_ROUNDS}: the kernel's share varies "
                f"by 2x between samples) after one untimed warm-up round each; a sample is "
                f"{N_CREATE:,} creations + closes, divided by {N_CREATE:,}; the kernel frees a closed map "
                f"later, in a work queue: an untimed {START_SETTLE:g} s pause at the start (for the maps "
                f"of earlier rows) and {SETTLE * 1e3:.0f} ms before each sample let those frees finish",
                "ours = Map.create(spec) + Map.close() with spec = MapSpec('bench_create', HASH, 4, 8, 1024) "
                "built once outside the loop (no BTF: one BPF_MAP_CREATE per map, as the peer); "
                f"the kernel's view of our map (type, key, value, max_entries, flags, name): {kinfo}",
                peer_note,
            ],
        )


for _peer in (CTYPES, C_LOOP):
    _create_row(_peer)


# -- shared machinery ----------------------------------------------------------------------------

_RUNS: dict[tuple[Path, int, str], ChildRun] = {}


def _cached(ctx: Context, group: str, run: Callable[[CPeer], ChildRun]) -> ChildRun:
    """One child run per (root, repeat, group): every row of the group reads the same run."""
    key = (ctx.root, ctx.repeat, group)
    if key not in _RUNS:
        _RUNS[key] = run(c_peer())
    return _RUNS[key]


def samples_of(run: ChildRun, key: str) -> tuple[float, ...]:
    """The samples a child reported under ``samples[key]`` (empty when that side did not run)."""
    samples = run.info.get("samples")
    if not isinstance(samples, dict):
        raise MeasureError("the child reported no samples")
    value = samples.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        raise MeasureError(f"the child reported samples[{key}]={value!r}, not a list of times")
    return tuple(float(v) for v in value)


def peer_missing(run: ChildRun, peer: str) -> str:
    """Why ``peer`` has no figure: what the child said, or the C peer's build failure."""
    if peer == CTYPES:
        return str(run.info.get("ctypes_missing", "no ctypes peer figure"))
    built = c_peer()
    if built.missing is not None:
        return built.missing
    return str(run.info.get("c_missing", "no C peer figure"))


def peer_version(run: ChildRun, peer: str) -> str:
    """``"libbpf v1.1"``-style version of the library the peer used, for the notes."""
    key = "libbpf_version" if peer == CTYPES else "c_libbpf_version"
    version = run.info.get(key)
    if not version:
        return ""
    if peer == CTYPES:
        return f"ctypes peer: libbpf.so.1 reports {version}"
    return f"C peer: {c_peer().how()} (at bench time, in a temporary directory), libbpf {version}"


def _result(
    run: ChildRun,
    ours_key: str,
    peer_key: str,
    peer: str,
    ops: int,
    unit: Unit,
    target: Target,
    notes: Sequence[str],
) -> Result:
    theirs = samples_of(run, peer_key)
    all_notes = [*notes]
    if theirs and (version := peer_version(run, peer)):
        all_notes.append(version)
    return Result(
        ours=Timing(samples_of(run, ours_key), ops=ops),
        peer=Timing(theirs, ops=ops) if theirs else None,
        peer_label=peer if theirs else "",
        unit=unit,
        target=target,
        notes=tuple(all_notes),
        peer_missing=None if theirs else peer_missing(run, peer),
    )


def _secs(value: object) -> str:
    return f"{float(value):.2f} s" if isinstance(value, (int, float)) else "?"
