#!/usr/bin/env python3
"""Long-run fuzzing of the readers: ``btf.load_spec`` and ``ebpfspec.load_collection_spec``.

    python tools/fuzz.py --cases 100000 --seed 1 [--target btf|elf|all] [--jobs 2]
    python tools/fuzz.py --replay elf:1234 --seed 1 [--save case.o]     # one case again

**Corpus.** Every committed object ``testdata/*.o`` (both byte orders) is an ELF seed;
the ``.BTF`` section of each, a synthetic blob with the kinds clang 14 does not emit
(``RESTRICT``, ``FLOAT``, ``DECL_TAG``, ``TYPE_TAG``, ``ENUM64``; both byte orders) and
split BTF on top of that blob are the BTF seeds.

**Mutations** (one to three per case, then sometimes one that changes the length):
bit flips and byte overwrites (biased towards the structures); for ELF, edits of ELF
header fields, section header fields (offsets, sizes, links, types, entry sizes),
string tables (terminators removed, names redirected), symbols (name, info, section
index, value, size), relocations (offset, symbol index, type), instructions (opcode,
registers, offset, immediate, broken ``ld_imm64`` pairs), the ``.BTF`` section (every
BTF mutation that keeps its length), ``.BTF.ext`` (header, record sizes, counts,
offsets), map/data/license/version contents, duplicated or swapped section headers and
symbols; for BTF, header fields, type record words (kind/vlen/kind_flag info words,
sizes, type IDs around the number of types and pointing at their own record, name
offsets around the end of the string table), string table corruption, record splices;
and for both, truncation and insertion/deletion of bytes.

**Oracle.** Each case must end in a parse or in ``SpecError`` (ELF) / ``BTFError``
(BTF) — ``btf.BTFError`` coming out of ``load_collection_spec`` is reported too, since
the reader's contract is ``SpecError`` — and a parsed input is then exercised as a user
would: ELF: ``to_dict`` (JSON) and ``from_dict`` back (equal), ``copy()`` (equal),
disassembly of every program, the CLI's tables, ``btf dump``; BTF: decode every type,
``to_bytes`` and parse back (equal), lookups, ``sizeof``/``alignof``/qualifier skipping,
``format_raw`` and ``format_c`` (these may raise ``BTFError``, nothing else). A case
fails if anything else is raised, if it takes ``--max-seconds`` (1 s) or longer (it is
interrupted after ``--hang-seconds``), or if its ``tracemalloc`` peak exceeds the memory
bound ``MEMORY_BASE + MEMORY_PER_BYTE * len(input)`` (4 MiB + 256 B per input byte: an
allocation sized by an unchecked length field breaks it). ``tracemalloc`` makes a case
some 20 times slower, so it runs on every ``--trace-every``-th case of each worker
(default 8) and those cases are not timed; the others are. Leaks: between the end of its warm-up (the
first ``WARMUP`` cases) and its last case, a worker's count of memory blocks allocated by
the interpreter (``sys.getallocatedblocks()``) may grow by at most ``BLOCK_GROWTH_LIMIT``
(50k), and — in runs without tracemalloc (``--trace-every 0``) — its resident set
(``/proc/self/statm``) by at most ``RSS_GROWTH_LIMIT`` (64 MiB). With tracemalloc
switched on and off per case the RSS creeps up (about 3 MiB per 1000 traced cases) while
the interpreter's blocks stay flat, and without tracemalloc the same cases leave the RSS
flat: that growth is tracemalloc's, so in traced runs the RSS is only reported (with
``ru_maxrss``, the high-water mark).

Every case is reproducible alone: its generator is seeded with ``(seed, target,
index)``. Failures are written to ``--crash-dir`` (input and a description), one per
distinct signature. The exit status is 0 when no case failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import random
import resource
import signal
import struct
import sys
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: import this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

import btf  # noqa: E402
import ebpfspec  # noqa: E402
from btf.format_raw import format_raw  # noqa: E402
from btf.wire import HEADER_SIZE, RECORD_FIXED, RECORD_PER_VLEN  # noqa: E402
from ebpfspec import report  # noqa: E402
from ebpfspec.errors import SpecError  # noqa: E402

TESTDATA = ROOT / "testdata"

#: Memory one case may allocate at its peak (``tracemalloc``): a fixed allowance ...
MEMORY_BASE = 4 << 20
#: ... plus this much per byte of input.
MEMORY_PER_BYTE = 256
#: Growth of a worker's RSS allowed between the end of its warm-up and its end (untraced runs).
RSS_GROWTH_LIMIT = 64 << 20
#: Growth of a worker's ``sys.getallocatedblocks()`` allowed between the end of its warm-up and its end.
BLOCK_GROWTH_LIMIT = 50_000
#: Cases a worker runs before it takes its RSS baseline (imports, caches, first-use costs).
WARMUP = 200
#: Failures kept per signature (the rest are counted).
KEEP_PER_SIGNATURE = 1

Target = Literal["btf", "elf"]
TARGETS: tuple[Target, ...] = ("elf", "btf")

# -- interesting values --------------------------------------------------------------------------

EDGE_U8 = (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF)
EDGE_U16 = (0, 1, 2, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
EDGE_U32 = (0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
            0xFFFFFFFE, 0xFFFFFFFF)
EDGE_U64 = (*EDGE_U32, 1 << 32, (1 << 32) + 1, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 8, (1 << 64) - 1)
EDGE_I32 = (0, 1, -1, 2, -2, 0x7FFFFFFF, -0x80000000, 0x1000, -0x1000)
EDGE_I16 = (0, 1, -1, 2, -2, 0x7FFF, -0x8000)


def edge(width: int) -> tuple[int, ...]:
    """Edge values of an unsigned field ``width`` bytes wide."""
    return {1: EDGE_U8, 2: EDGE_U16, 4: EDGE_U32, 8: EDGE_U64}[width]


def pick_value(rng: random.Random, width: int, near: Sequence[int] = ()) -> int:
    """A value for an unsigned ``width``-byte field: an edge value, one near ``near``, or any."""
    mask = (1 << (8 * width)) - 1
    roll = rng.random()
    if near and roll < 0.45:
        return (rng.choice(near) + rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2, 8))) & mask
    if roll < 0.85:
        return rng.choice(edge(width))
    return rng.getrandbits(8 * width)


# -- seeds ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One ELF section header of a seed, with where its header sits in the file."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    entsize: int
    header: int  # file offset of this section's Elf64_Shdr


@dataclass(frozen=True)
class ElfSeed:
    """A valid BPF object and its layout, read with ``struct`` (not with the reader under test)."""

    name: str
    data: bytes
    e: str  # struct byte-order prefix
    shoff: int
    sections: tuple[Section, ...]

    @classmethod
    def of(cls, name: str, data: bytes) -> ElfSeed:
        e = "<" if data[5] == 1 else ">"
        shoff = struct.unpack_from(e + "Q", data, 40)[0]
        shnum, shstrndx = struct.unpack_from(e + "HH", data, 60)
        raw = [struct.unpack_from(e + "IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
        names_at = raw[shstrndx][4]
        sections = []
        for i, (sh_name, sh_type, flags, _, offset, size, _, _, _, entsize) in enumerate(raw):
            end = data.index(b"\0", names_at + sh_name)
            sections.append(Section(i, data[names_at + sh_name : end].decode(), sh_type, flags, offset,
                                    size, entsize, shoff + 64 * i))
        return cls(name, data, e, shoff, tuple(sections))

    def named(self, *names: str) -> list[Section]:
        """The sections called one of ``names``."""
        return [s for s in self.sections if s.name in names]

    def of_type(self, sh_type: int) -> list[Section]:
        """The sections of type ``sh_type`` (with contents)."""
        return [s for s in self.sections if s.type == sh_type and s.size]

    def structures(self) -> list[tuple[int, int]]:
        """``(start, length)`` of the parts a parser reads as structures."""
        parts = [(0, 64), (self.shoff, 64 * len(self.sections))]
        for s in self.sections:
            if s.type in (SHT_SYMTAB, SHT_REL, SHT_STRTAB) or s.name in (".BTF", ".BTF.ext", ".maps", "maps"):
                parts.append((s.offset, s.size))
        return [(start, length) for start, length in parts if length > 0]


SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 1, 2, 3, 9, 8
SHF_EXECINSTR = 0x4


@dataclass(frozen=True)
class BtfSeed:
    """A valid raw BTF blob and where its parts are (header, types, then strings)."""

    name: str
    data: bytes
    e: str
    type_start: int
    type_len: int
    str_start: int
    str_len: int
    records: tuple[int, ...]  # offsets of the type records
    refs: tuple[tuple[int, int], ...]  # (offset, ID of its record) of each type-ID field
    types: int  # len(spec): one past the last type ID
    strings: int  # one past the last name offset (a base's strings included)
    base: btf.Spec | None = None

    @classmethod
    def of(cls, name: str, data: bytes, base: btf.Spec | None = None) -> BtfSeed:
        e = "<" if struct.unpack_from("<H", data)[0] == 0xEB9F else ">"
        hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "5I", data, 4)
        start = hdr_len + type_off
        first_id = len(base) if base is not None else 1
        records: list[int] = []
        refs: list[tuple[int, int]] = []
        pos = start
        while pos < start + type_len:
            type_id = first_id + len(records)
            records.append(pos)
            info = struct.unpack_from(e + "I", data, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            refs.extend((pos + off, type_id) for off in ref_fields(kind, vlen))
            pos += 12 + RECORD_FIXED[kind] + vlen * RECORD_PER_VLEN[kind]
        spec = btf.load_spec(data, base=base)
        return cls(name, data, e, start, type_len, hdr_len + str_off, str_len, tuple(records), tuple(refs),
                   len(spec), len(spec.strings), base)


def ref_fields(kind: int, vlen: int) -> list[int]:
    """Offsets, in a type record of ``kind`` with ``vlen`` entries, of its type-ID fields."""
    k = btf.Kind
    if kind in (k.PTR, k.TYPEDEF, k.VOLATILE, k.CONST, k.RESTRICT, k.FUNC, k.VAR, k.DECL_TAG, k.TYPE_TAG):
        return [8]
    if kind == k.ARRAY:
        return [12, 16]
    if kind in (k.STRUCT, k.UNION):
        return [12 + 12 * i + 4 for i in range(vlen)]
    if kind == k.FUNC_PROTO:
        return [8] + [12 + 8 * i + 4 for i in range(vlen)]
    if kind == k.DATASEC:
        return [12 + 12 * i for i in range(vlen)]
    return []


def synthetic_types() -> list[btf.Type]:
    """Types of every kind clang 14 does not emit for the testdata, plus others referring to them."""
    m, p, v = btf.Member, btf.Param, btf.EnumValue
    return [
        btf.Int(1, "long", 8, btf.IntEncoding.SIGNED),
        btf.Float(2, "float", 4),
        btf.Restrict(3, "", 4),
        btf.Pointer(4, "", 5),
        btf.Struct(5, "node", 24, (m("next", 4, 0), m("weight", 2, 64), m("flags", 1, 96, 5),
                                   m("tail", 1, 128))),
        btf.TypeTag(6, "percpu", 4),
        btf.DeclTag(7, "pure", 5, 1),
        btf.Enum64(8, "big", 8, (v("HUGE", 1 << 40), v("NEG", -5)), signed=True),
        btf.Union(9, "either", 8, (m("l", 1, 0), m("f", 2, 0))),
        btf.Array(10, "", 5, 1, 3),
        btf.FuncProto(11, "", 1, (p("n", 3), p("", 0))),
        btf.Func(12, "walk", 11, btf.FuncLinkage.GLOBAL),
        btf.Var(13, "nodes", 10, btf.VarLinkage.GLOBAL),
        btf.Datasec(14, ".bss", 72, (btf.VarSecinfo(13, 0, 72),)),
        btf.Fwd(15, "opaque", union=True),
        btf.Typedef(16, "node_t", 5),
        btf.Volatile(17, "", 16),
        btf.Const(18, "", 17),
        btf.Enum(19, "small", 1, (v("X", 0), v("Y", 255))),
        btf.DeclTag(20, "kfunc", 12, -1),
    ]


def split_types(base: btf.Spec) -> list[btf.Type]:
    """Split BTF on top of the synthetic spec: its IDs and name offsets continue the base's."""
    n = len(base)
    m = btf.Member
    return [
        btf.Typedef(n, "split_t", 5),
        btf.Struct(n + 1, "holder", 32, (m("t", n, 0), m("p", n + 2, 192))),
        btf.Pointer(n + 2, "", n + 1),
        btf.FuncProto(n + 3, "", 1, (btf.Param("h", n + 2),)),
        btf.Func(n + 4, "split_f", n + 3, btf.FuncLinkage.STATIC),
        btf.Array(n + 5, "", n + 1, 1, 2),
    ]


def elf_section(data: bytes, name: str) -> bytes | None:
    """The contents of section ``name`` of a valid ELF object."""
    seed = ElfSeed.of("", data)
    found = seed.named(name)
    return data[found[0].offset : found[0].offset + found[0].size] if found else None


@dataclass(frozen=True)
class Corpus:
    """Every seed, by target."""

    elf: tuple[ElfSeed, ...]
    btf: tuple[BtfSeed, ...]

    @classmethod
    def load(cls) -> Corpus:
        elf_seeds = tuple(ElfSeed.of(p.name, p.read_bytes()) for p in sorted(TESTDATA.glob("*.o")))
        btf_seeds = []
        for seed in elf_seeds:
            raw = elf_section(seed.data, ".BTF")
            if raw is not None:
                btf_seeds.append(BtfSeed.of(seed.name + ":.BTF", raw))
        order: Literal["little", "big"]
        for order in ("little", "big"):
            base = btf.load_spec(btf.marshal_types(synthetic_types(), byte_order=order))
            btf_seeds.append(BtfSeed.of(f"synthetic-{order}", base.to_bytes()))
            split = btf.marshal_types(split_types(base), byte_order=order, base=base)
            btf_seeds.append(BtfSeed.of(f"split-{order}", split, base))
        return cls(elf_seeds, tuple(btf_seeds))


# -- mutations ------------------------------------------------------------------------------------


class Mutator:
    """Applies random edits to a copy of one seed, recording what it did."""

    def __init__(self, rng: random.Random, data: bytes, e: str):
        self.rng = rng
        self.buf = bytearray(data)
        self.e = e
        self.log: list[str] = []

    def put(self, at: int, width: int, value: int, what: str = "") -> None:
        """Store an unsigned ``width``-byte ``value`` at ``at`` (if it fits in the buffer)."""
        if at >= 0 and at + width <= len(self.buf):
            code = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            struct.pack_into(self.e + code, self.buf, at, value & ((1 << (8 * width)) - 1))
            self.log.append(f"{what or 'u' + str(8 * width)}@{at:#x}={value:#x}")

    def get(self, at: int, width: int) -> int:
        code = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
        value: int = struct.unpack_from(self.e + code, self.buf, at)[0]
        return value

    def position(self, regions: Sequence[tuple[int, int]] = ()) -> int:
        """A byte position: in one of ``regions`` (start, length) half the time, else anywhere."""
        if regions and self.rng.random() < 0.5:
            start, length = self.rng.choice(regions)
            return start + self.rng.randrange(length)
        return self.rng.randrange(len(self.buf))

    def flip(self, regions: Sequence[tuple[int, int]] = ()) -> None:
        """Flip one to eight bits."""
        for _ in range(self.rng.randint(1, 8)):
            at, bit = self.position(regions), self.rng.randrange(8)
            self.buf[at] ^= 1 << bit
            self.log.append(f"flip@{at:#x}.{bit}")

    def overwrite(self, regions: Sequence[tuple[int, int]] = ()) -> None:
        """Overwrite one to eight bytes."""
        for _ in range(self.rng.randint(1, 8)):
            at = self.position(regions)
            self.buf[at] = self.rng.choice(EDGE_U8) if self.rng.random() < 0.6 else self.rng.randrange(256)
            self.log.append(f"byte@{at:#x}={self.buf[at]:#x}")

    def resize(self, boundaries: Sequence[int] = ()) -> None:
        """Truncate, insert or delete bytes (often at a structure's boundary)."""
        rng = self.rng
        at = rng.choice(boundaries) + rng.randint(-4, 4) if boundaries and rng.random() < 0.5 else \
            rng.randrange(len(self.buf) + 1)
        at = max(0, min(at, len(self.buf)))
        op = rng.choice(("truncate", "insert", "delete"))
        if op == "truncate":
            del self.buf[at:]
            self.log.append(f"truncate@{at:#x}")
        elif op == "insert":
            count = rng.choice((1, 4, 8, rng.randint(1, 64)))
            filler = bytes(count) if rng.random() < 0.3 else rng.randbytes(count)
            self.buf[at:at] = filler
            self.log.append(f"insert@{at:#x}+{count}")
        else:
            count = rng.choice((1, 4, 8, rng.randint(1, 64)))
            del self.buf[at : at + count]
            self.log.append(f"delete@{at:#x}-{count}")

    def result(self) -> tuple[bytes, str]:
        return bytes(self.buf), " ".join(self.log)


# Field layouts: name -> (offset, width).
EHDR_FIELDS = {
    "ei_class": (4, 1), "ei_data": (5, 1), "ei_version": (6, 1), "ei_osabi": (7, 1), "e_type": (16, 2),
    "e_machine": (18, 2), "e_version": (20, 4), "e_entry": (24, 8), "e_phoff": (32, 8), "e_shoff": (40, 8),
    "e_flags": (48, 4), "e_ehsize": (52, 2), "e_phentsize": (54, 2), "e_phnum": (56, 2),
    "e_shentsize": (58, 2), "e_shnum": (60, 2), "e_shstrndx": (62, 2),
}
SHDR_FIELDS = {
    "sh_name": (0, 4), "sh_type": (4, 4), "sh_flags": (8, 8), "sh_addr": (16, 8), "sh_offset": (24, 8),
    "sh_size": (32, 8), "sh_link": (40, 4), "sh_info": (44, 4), "sh_addralign": (48, 8),
    "sh_entsize": (56, 8),
}
SYM_FIELDS = {"st_name": (0, 4), "st_info": (4, 1), "st_other": (5, 1), "st_shndx": (6, 2),
              "st_value": (8, 8), "st_size": (16, 8)}
BTF_HEADER_FIELDS = {"magic": (0, 2), "version": (2, 1), "flags": (3, 1), "hdr_len": (4, 4),
                     "type_off": (8, 4), "type_len": (12, 4), "str_off": (16, 4), "str_len": (20, 4)}
#: Opcodes worth planting: ld_imm64, call, exit, ja, jmp32 ja, callx, mov64, ldxw, stxdw, atomic, jeq, none.
OPCODES = (0x18, 0x85, 0x95, 0x05, 0x06, 0x8D, 0xBF, 0x61, 0x7B, 0xDB, 0x15, 0x00)


def mutate_btf(m: Mutator, seed: BtfSeed, *, at: int = 0, resize: bool = True) -> None:
    """One BTF mutation on the blob ``seed`` stored at offset ``at`` of the mutator's buffer."""
    rng = m.rng
    types = (at + seed.type_start, max(seed.type_len, 1))
    strings = (at + seed.str_start, max(seed.str_len, 1))
    first_id = seed.types - len(seed.records)
    ops = ["flip", "bytes", "header", "record", "record", "ref", "ref", "name", "info", "strings"]
    if resize:
        ops += ["resize", "splice"]
    op = rng.choice(ops)
    if op == "flip":
        m.flip([types, types, strings, (at, HEADER_SIZE)])
    elif op == "bytes":
        m.overwrite([types, types, strings])
    elif op == "header":
        name = rng.choice(list(BTF_HEADER_FIELDS))
        off, width = BTF_HEADER_FIELDS[name]
        total = len(seed.data)
        near = (total, total - HEADER_SIZE, seed.type_len, seed.str_len, seed.type_len + seed.str_len,
                HEADER_SIZE)
        m.put(at + off, width, pick_value(rng, width, near), name)
    elif op == "record" and seed.records:
        index = rng.randrange(len(seed.records))
        word = rng.choice((0, 1, 2, rng.randint(0, 8)))
        m.put(at + seed.records[index] + 4 * word, 4,
              pick_value(rng, 4, (seed.types, first_id + index, seed.strings, 0)),
              f"type{first_id + index}.w{word}")
    elif op == "ref" and seed.refs:
        pos, own = rng.choice(seed.refs)
        value = rng.choice((own, own, rng.randrange(max(seed.types, 1)), seed.types, seed.types - 1, 0,
                            0xFFFFFFFF, 0x80000000))
        m.put(at + pos, 4, value, f"ref(type{own})")
    elif op == "name" and seed.records:
        index = rng.randrange(len(seed.records))
        m.put(at + seed.records[index], 4, pick_value(rng, 4, (seed.strings, seed.strings // 2)), "name_off")
    elif op == "info" and seed.records:
        index = rng.randrange(len(seed.records))
        kind = rng.choice((rng.randrange(32), rng.randrange(20)))
        vlen = rng.choice((0, 1, 2, 3, 0xFFFF, rng.randrange(0x10000)))
        info = rng.randrange(2) << 31 | kind << 24 | vlen
        m.put(at + seed.records[index] + 4, 4, info, f"info(type{first_id + index})")
    elif op == "strings" and seed.str_len:
        start = at + seed.str_start
        nuls = [i for i in range(start, start + seed.str_len) if m.buf[i] == 0]
        choice = rng.randrange(3)
        if choice == 0 and nuls:  # an unterminated name (the last one: the table's end)
            i = rng.choice(nuls[-2:] + nuls[:1] + [rng.choice(nuls)])
            m.buf[i] = ord("A")
            m.log.append(f"strings: NUL@{i:#x}->A")
        else:  # characters no C identifier has
            i = start + rng.randrange(seed.str_len)
            m.buf[i] = rng.choice(b"/. -\xff\x80\x01")
            m.log.append(f"strings: byte@{i:#x}={m.buf[i]:#x}")
    elif op == "splice" and seed.records:  # copies of existing records appended to the type section
        bounds = [*seed.records, seed.type_start + seed.type_len]
        chosen = [rng.randrange(len(seed.records)) for _ in range(rng.randint(1, 4))]
        extra = b"".join(seed.data[bounds[i] : bounds[i + 1]] for i in chosen)
        end = at + seed.type_start + seed.type_len
        m.buf[end:end] = extra
        m.put(at + 12, 4, seed.type_len + len(extra), "type_len")
        m.put(at + 16, 4, seed.type_len + len(extra), "str_off")
        m.log.append(f"splice {chosen}")
    else:  # resize, optionally fixing the header's lengths to match
        before = len(m.buf)
        m.resize([at + seed.type_start, at + seed.str_start, at + seed.type_start + seed.type_len])
        if rng.random() < 0.5 and len(m.buf) >= at + HEADER_SIZE:
            grown = len(m.buf) - before
            m.put(at + 20, 4, max(0, seed.str_len + grown), "str_len(fixed)")


def mutate_elf_once(m: Mutator, seed: ElfSeed) -> None:
    """One structure-aware edit of an ELF object (its length unchanged)."""
    rng = m.rng
    size = len(seed.data)
    shnum = len(seed.sections)
    op = rng.choice(("flip", "bytes", "ehdr", "shdr", "shdr", "strtab", "sym", "sym", "rel", "rel", "insn",
                     "insn", "btf", "btf", "btf_ext", "btf_ext", "contents", "dup", "swap"))
    if op == "flip":
        m.flip(seed.structures())
    elif op == "bytes":
        m.overwrite(seed.structures())
    elif op == "ehdr":
        name = rng.choice(list(EHDR_FIELDS))
        off, width = EHDR_FIELDS[name]
        m.put(off, width, pick_value(rng, width, (shnum, seed.shoff, size, 64, 0xFF00, 0xFFFF)), name)
    elif op == "shdr":
        s = rng.choice(seed.sections)
        name = rng.choice(list(SHDR_FIELDS))
        off, width = SHDR_FIELDS[name]
        peer = rng.choice(seed.sections)
        near: tuple[int, ...] = (s.offset, s.size, peer.offset, peer.size, size, size - s.offset, shnum,
                                 peer.index, 24, 16)
        m.put(s.header + off, width, pick_value(rng, width, near), f"{s.name}.{name}")
    elif op == "strtab":
        tables = seed.of_type(SHT_STRTAB)
        t = rng.choice(tables)
        if rng.random() < 0.5:  # remove a terminator (often the last one)
            nuls = [i for i in range(t.offset, t.offset + t.size) if m.buf[i] == 0]
            i = nuls[-1] if rng.random() < 0.4 else rng.choice(nuls)
            m.buf[i] = ord("x")
            m.log.append(f"{t.name}: NUL@{i:#x}->x")
        else:
            i = t.offset + rng.randrange(t.size)
            m.buf[i] = rng.choice(b"/.\xff\x80 \0")
            m.log.append(f"{t.name}: byte@{i:#x}={m.buf[i]:#x}")
    elif op == "sym":
        symtab = seed.of_type(SHT_SYMTAB)[0]
        count = symtab.size // 24
        index = rng.randrange(count)
        name = rng.choice(list(SYM_FIELDS))
        off, width = SYM_FIELDS[name]
        target = seed.sections[min(m.get(symtab.offset + 24 * index + 6, 2), shnum - 1)]
        near = (shnum, 0xFFF1, 0xFFF2, 0xFFFF, target.size, target.size - 8,
                rng.randrange(max(target.size, 1)))
        m.put(symtab.offset + 24 * index + off, width, pick_value(rng, width, near), f"sym{index}.{name}")
    elif op == "rel":
        rels = seed.of_type(SHT_REL)
        if not rels:
            m.flip(seed.structures())
            return
        r = rng.choice(rels)
        index = rng.randrange(r.size // 16)
        at = r.offset + 16 * index
        nsyms = seed.of_type(SHT_SYMTAB)[0].size // 24
        which = rng.randrange(3)
        if which == 0:
            offset = m.get(at, 8)
            near = (offset + rng.choice((1, 4, 8, 16, -8)), size)
            m.put(at, 8, pick_value(rng, 8, near), f"{r.name}[{index}].r_offset")
        elif which == 1:
            m.put(at + (4 if m.e == "<" else 0), 4, pick_value(rng, 4, (nsyms, rng.randrange(nsyms))),
                  f"{r.name}[{index}].sym")
        else:
            m.put(at + (0 if m.e == "<" else 4), 4, rng.choice((0, 1, 2, 3, 4, 10, 11, 0xFF, 0xFFFFFFFF)),
                  f"{r.name}[{index}].type")
    elif op == "insn":
        code = [s for s in seed.sections if s.flags & SHF_EXECINSTR and s.size >= 8]
        if not code:
            m.flip(seed.structures())
            return
        s = rng.choice(code)
        at = s.offset + 8 * rng.randrange(s.size // 8)
        which = rng.randrange(5)
        if which == 0:
            m.put(at, 1, rng.choice(OPCODES) if rng.random() < 0.7 else rng.randrange(256), "opcode")
        elif which == 1:
            m.put(at + 1, 1, rng.randrange(256), "regs")
        elif which == 2:
            value = rng.choice((*EDGE_I16, rng.randint(-64, 64)))
            m.put(at + 2, 2, value, "off")
        elif which == 3:
            value = rng.choice((*EDGE_I32, rng.randint(-64, 64)))
            m.put(at + 4, 4, value, "imm")
        else:  # swap with a neighbour: splits ld_imm64 pairs, moves calls and exits
            neighbour = at + 8 if at + 16 <= s.offset + s.size else at - 8
            if neighbour >= s.offset:
                m.buf[at : at + 8], m.buf[neighbour : neighbour + 8] = (m.buf[neighbour : neighbour + 8],
                                                                        m.buf[at : at + 8])
                m.log.append(f"swap insns @{at:#x},{neighbour:#x}")
    elif op == "btf":
        sections = seed.named(".BTF")
        if not sections:
            m.flip(seed.structures())
            return
        s = sections[0]
        mutate_btf(m, BtfSeed.of("", seed.data[s.offset : s.offset + s.size]), at=s.offset, resize=False)
    elif op == "btf_ext":
        sections = seed.named(".BTF.ext")
        if not sections:
            m.flip(seed.structures())
            return
        s = sections[0]
        # the header's words first (hdr_len, offsets and lengths of the parts), then anywhere
        word = rng.randrange(8) if rng.random() < 0.5 else rng.randrange(s.size // 4)
        near = (s.size, s.size - 32, 8, 16, 12, 0xFFFF, rng.randrange(64))
        m.put(s.offset + 4 * word, 4, pick_value(rng, 4, near), f".BTF.ext.w{word}")
    elif op == "contents":
        parts = [s for s in seed.sections if s.type == SHT_PROGBITS and not s.flags & SHF_EXECINSTR
                 and s.size and s.name not in (".BTF", ".BTF.ext")]
        if not parts:
            m.flip(seed.structures())
            return
        s = rng.choice(parts)
        if s.name == "license" and rng.random() < 0.5:
            m.buf[s.offset + s.size - 1] = ord("L")  # unterminated
            m.log.append("license unterminated")
        else:
            word = rng.randrange(max(s.size // 4, 1))
            m.put(s.offset + 4 * word, 4, pick_value(rng, 4, (s.size, 1 << 20)), f"{s.name}.w{word}")
    elif op == "dup":
        a, b = rng.choice(seed.sections), rng.choice(seed.sections)
        m.buf[b.header : b.header + 64] = seed.data[a.header : a.header + 64]
        m.log.append(f"shdr {b.name} := {a.name}")
    else:  # swap two symbols
        symtab = seed.of_type(SHT_SYMTAB)[0]
        count = symtab.size // 24
        i, j = rng.randrange(count), rng.randrange(count)
        ai, aj = symtab.offset + 24 * i, symtab.offset + 24 * j
        m.buf[ai : ai + 24], m.buf[aj : aj + 24] = seed.data[aj : aj + 24], seed.data[ai : ai + 24]
        m.log.append(f"swap syms {i},{j}")
    return None


@dataclass(frozen=True)
class Case:
    """One generated input."""

    target: Target
    index: int
    seed: str
    mutation: str
    data: bytes
    base: btf.Spec | None = None

    @property
    def id(self) -> str:
        return f"{self.target}:{self.index}"


def make_case(corpus: Corpus, master_seed: int, target: Target, index: int) -> Case:
    """Case ``index`` of ``target`` for ``master_seed``: the same inputs every time."""
    rng = random.Random(f"{master_seed}/{target}/{index}")
    if target == "elf":
        elf_seed = rng.choice(corpus.elf)
        m = Mutator(rng, elf_seed.data, elf_seed.e)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            mutate_elf_once(m, elf_seed)
        if rng.random() < 0.15:
            m.resize([s.offset for s in elf_seed.sections] + [elf_seed.shoff])
        data, what = m.result()
        return Case(target, index, elf_seed.name, what, data)
    btf_seed = rng.choice(corpus.btf)
    m = Mutator(rng, btf_seed.data, btf_seed.e)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        mutate_btf(m, btf_seed, resize=False)
    if rng.random() < 0.2:
        mutate_btf(m, btf_seed)
    data, what = m.result()
    return Case(target, index, btf_seed.name, what, data, btf_seed.base)


# -- the oracle -----------------------------------------------------------------------------------


class FuzzFailure(Exception):
    """An invariant of a parsed input does not hold (a bug, like an unexpected exception)."""


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past ``--hang-seconds``."""


def exercise_btf(data: bytes, base: btf.Spec | None) -> str:
    """Everything a user may do with raw BTF. Returns the outcome; raises only on a bug or BTFError."""
    spec = btf.load_spec(data, base=base)
    types = list(spec)
    if spec.to_bytes() and btf.load_spec(spec.to_bytes(), base=base) != spec:
        raise FuzzFailure("to_bytes() does not parse back to the same types")
    for t in types:
        if spec.type_by_id(t.id) is not t:
            raise FuzzFailure(f"type_by_id({t.id}) is not the type iterated")
        for ref in t.refs():
            spec.type_by_id(ref)
        if t.name and t not in spec.types_by_name(t.name, t.kind):
            raise FuzzFailure(f"types_by_name({t.name!r}) misses type {t.id}")
        str(t), repr(t), hash(t)
        for func in (btf.sizeof, btf.alignof, btf.skip_qualifiers, btf.skip_qualifiers_and_typedefs):
            with contextlib.suppress(btf.BTFError):
                func(t)
        if isinstance(t, (btf.Struct, btf.Union)):
            with contextlib.suppress(btf.BTFError):
                btf.is_packed(t)
    list(format_raw(spec))
    with contextlib.suppress(btf.BTFError):
        btf.format_c(spec)
    return "parsed"


def exercise_elf(data: bytes) -> str:
    """Everything the CLI and a user do with a parsed object. Raises only on a bug, SpecError or BTFError."""
    try:
        spec = ebpfspec.load_collection_spec(data)
    except btf.BTFError as err:
        raise FuzzFailure(f"BTFError escaped load_collection_spec (it must raise SpecError): {err}") from err
    as_dict = spec.to_dict()
    json.dumps(as_dict)
    if ebpfspec.CollectionSpec.from_dict(as_dict) != spec:
        raise FuzzFailure("from_dict(to_dict()) is not the spec")
    if spec.copy() != spec:
        raise FuzzFailure("copy() is not equal to the spec")
    for program in spec.programs.values():
        program.instructions.disassemble()
    for rows in (report.map_rows, report.program_rows, report.variable_rows, report.extern_rows):
        list(rows(spec))
    if spec.types is not None:
        list(format_raw(spec.types))
        with contextlib.suppress(btf.BTFError):
            btf.format_c(spec.types)
    return "loaded"


@dataclass
class Failure:
    """A case that broke the contract."""

    kind: str  # "crash", "slow", "hang", "memory", "leak", "rss"
    case: str
    seed: str
    mutation: str
    error: str
    where: str  # the innermost frame in the project's code
    data: bytes

    @property
    def signature(self) -> str:
        return f"{self.kind}|{self.error.split(':')[0]}|{self.where}"


@dataclass
class Stats:
    """What one worker (or all of them, merged) saw."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    timed: int = 0  # cases run without tracemalloc: their times are the cases' own
    seconds: float = 0.0  # total time of those
    traced: int = 0  # cases run under tracemalloc (memory measured)
    max_traced_seconds: float = 0.0
    max_seconds: float = 0.0
    slowest: str = ""
    max_peak: int = 0
    max_peak_case: str = ""
    max_peak_share: float = 0.0  # peak / memory bound
    rss_baseline_kib: int = 0
    rss_end_kib: int = 0
    max_rss_kib: int = 0  # ru_maxrss: the high-water mark, tracemalloc's own memory included
    max_rss_growth_kib: int = 0
    max_block_growth: int = 0  # sys.getallocatedblocks() after the last case minus after warm-up
    failures: list[Failure] = field(default_factory=list)
    failure_counts: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Stats) -> None:
        self.cases += other.cases
        self.outcomes.update(other.outcomes)
        self.timed += other.timed
        self.seconds += other.seconds
        self.traced += other.traced
        self.max_traced_seconds = max(self.max_traced_seconds, other.max_traced_seconds)
        if other.max_seconds > self.max_seconds:
            self.max_seconds, self.slowest = other.max_seconds, other.slowest
        if other.max_peak > self.max_peak:
            self.max_peak, self.max_peak_case = other.max_peak, other.max_peak_case
        self.max_peak_share = max(self.max_peak_share, other.max_peak_share)
        self.rss_baseline_kib = max(self.rss_baseline_kib, other.rss_baseline_kib)
        self.rss_end_kib = max(self.rss_end_kib, other.rss_end_kib)
        self.max_rss_kib = max(self.max_rss_kib, other.max_rss_kib)
        self.max_rss_growth_kib = max(self.max_rss_growth_kib, other.max_rss_growth_kib)
        self.max_block_growth = max(self.max_block_growth, other.max_block_growth)
        for failure in other.failures:
            self.record(failure, count=False)
        self.failure_counts.update(other.failure_counts)

    def record(self, failure: Failure, *, count: bool = True) -> None:
        if count:
            self.failure_counts[failure.signature] += 1
        if sum(f.signature == failure.signature for f in self.failures) < KEEP_PER_SIGNATURE:
            self.failures.append(failure)


def memory_bound(size: int) -> int:
    """The most a case with ``size`` bytes of input may allocate at its peak."""
    return MEMORY_BASE + MEMORY_PER_BYTE * size


def innermost_project_frame(err: BaseException) -> str:
    """``file:line function`` of the deepest traceback frame in btf/, ebpfspec/ or loader/."""
    where = "?"
    for frame in traceback.extract_tb(err.__traceback__):
        path = Path(frame.filename)
        with contextlib.suppress(ValueError):
            rel = path.resolve().relative_to(ROOT)
            if rel.parts[0] in ("btf", "ebpfspec", "loader"):
                where = f"{rel}:{frame.lineno} {frame.name}"
    return where


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CaseTimeout()


def run_case(case: Case, options: Options, stats: Stats) -> None:
    """Run one case under the oracle, recording its outcome in ``stats``."""
    # every trace_every-th case of each worker (workers take every jobs-th index)
    traced = options.trace_every > 0 and (case.index // options.jobs) % options.trace_every == 0
    if traced:
        tracemalloc.start()
    failure: tuple[str, str, str] | None = None
    rejections = (SpecError, btf.BTFError) if case.target == "elf" else (btf.BTFError,)
    signal.setitimer(signal.ITIMER_REAL, options.hang_seconds)
    start = time.perf_counter()
    try:
        try:
            outcome = exercise_elf(case.data) if case.target == "elf" else exercise_btf(case.data, case.base)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except rejections as err:
        outcome = "rejected"
        if not str(err):
            failure = ("crash", "empty error message", innermost_project_frame(err))
    except CaseTimeout as err:
        outcome = "hang"
        failure = ("hang", f"interrupted after {options.hang_seconds} s", innermost_project_frame(err))
    except Exception as err:
        outcome = "crash"
        failure = ("crash", f"{type(err).__name__}: {err}"[:500], innermost_project_frame(err))
    elapsed = time.perf_counter() - start
    stats.cases += 1
    stats.outcomes[f"{case.target}:{outcome}"] += 1
    if traced:  # tracemalloc makes the case many times slower: its time is not the case's
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        stats.traced += 1
        stats.max_traced_seconds = max(stats.max_traced_seconds, elapsed)
        if peak > stats.max_peak:
            stats.max_peak, stats.max_peak_case = peak, case.id
        share = peak / memory_bound(len(case.data))
        stats.max_peak_share = max(stats.max_peak_share, share)
        if failure is None and share > 1:
            failure = ("memory", f"peak {peak} B > bound {memory_bound(len(case.data))} B", "")
    else:
        stats.timed += 1
        stats.seconds += elapsed
        if elapsed > stats.max_seconds:
            stats.max_seconds, stats.slowest = elapsed, case.id
        if failure is None and elapsed >= options.max_seconds:
            failure = ("slow", f"took {elapsed:.3f} s", "")
    if failure is not None:
        kind, error, where = failure
        stats.record(Failure(kind, case.id, case.seed, case.mutation, error, where, case.data))


@dataclass(frozen=True)
class Options:
    """The knobs a worker needs (picklable)."""

    seed: int
    cases: int
    targets: tuple[Target, ...]
    jobs: int
    max_seconds: float = 1.0
    hang_seconds: float = 10.0
    trace_every: int = 8
    progress: bool = True


def case_plan(options: Options, worker: int) -> Iterator[tuple[Target, int]]:
    """The ``(target, index)`` pairs worker ``worker`` runs: case ``n`` of the run is target
    ``targets[n % len(targets)]``, index ``n // len(targets)``; workers take every ``jobs``-th
    index (of every target)."""
    count = len(options.targets)
    for n in range(options.cases):
        if (n // count) % options.jobs == worker:
            yield options.targets[n % count], n // count


def rss_kib() -> int:
    """This process's resident set now (KiB, from ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def max_rss_kib() -> int:
    """This process's peak resident set so far (KiB, ``getrusage`` ``ru_maxrss``)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def worker_main(options: Options, worker: int) -> Stats:
    """Run worker ``worker``'s share of the cases."""
    signal.signal(signal.SIGALRM, _alarm)
    corpus = Corpus.load()
    stats = Stats()
    blocks = 0
    started = time.monotonic()
    for done, (target, index) in enumerate(case_plan(options, worker)):
        if done == WARMUP:
            gc.collect()
            stats.rss_baseline_kib = rss_kib()
            blocks = sys.getallocatedblocks()
        run_case(make_case(corpus, options.seed, target, index), options, stats)
        if options.progress and done and done % 20_000 == 0:
            print(f"[worker {worker}] {done} cases, {time.monotonic() - started:.0f} s, "
                  f"{sum(stats.failure_counts.values())} failures", file=sys.stderr, flush=True)
    gc.collect()
    stats.rss_end_kib = rss_kib()
    stats.max_rss_kib = max_rss_kib()
    if stats.rss_baseline_kib:
        stats.max_rss_growth_kib = stats.rss_end_kib - stats.rss_baseline_kib
        stats.max_block_growth = sys.getallocatedblocks() - blocks
        if stats.max_block_growth > BLOCK_GROWTH_LIMIT:
            stats.record(Failure("leak", f"worker {worker}", "", "",
                                 f"{stats.max_block_growth} more memory blocks allocated by the interpreter "
                                 "after the run than after warm-up", "", b""))
        if options.trace_every == 0 and stats.max_rss_growth_kib * 1024 > RSS_GROWTH_LIMIT:
            stats.record(Failure("rss", f"worker {worker}", "", "",
                                 f"RSS grew by {stats.max_rss_growth_kib} KiB after warm-up", "", b""))
    return stats


def _worker_star(args: tuple[Options, int]) -> Stats:
    return worker_main(*args)


def run(options: Options) -> Stats:
    """Every case, on ``options.jobs`` processes."""
    total = Stats()
    if options.jobs == 1:
        total.merge(worker_main(options, 0))
        return total
    with multiprocessing.get_context("fork").Pool(options.jobs) as pool:
        for stats in pool.imap_unordered(_worker_star, [(options, w) for w in range(options.jobs)]):
            total.merge(stats)
    return total


def save_failures(stats: Stats, directory: Path) -> list[Path]:
    """Write each kept failure's input (``.bin``) and description (``.txt``) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for f in stats.failures:
        stem = directory / f"{f.kind}-{f.case.replace(':', '-')}"
        if f.data:
            stem.with_suffix(".bin").write_bytes(f.data)
        stem.with_suffix(".txt").write_text(
            f"case {f.case} (seed {f.seed})\nmutation: {f.mutation}\n{f.kind}: {f.error}\nat: {f.where}\n"
            f"replay: python tools/fuzz.py --replay {f.case} --seed <same --seed>\n")
        written.append(stem)
    return written


def summary(stats: Stats, options: Options, wall: float) -> dict[str, object]:
    """The run's result as a JSON-able dict."""
    return {
        "seed": options.seed,
        "cases": stats.cases,
        "targets": list(options.targets),
        "outcomes": dict(sorted(stats.outcomes.items())),
        "failures": sum(stats.failure_counts.values()),
        "failure_signatures": dict(stats.failure_counts),
        "wall_seconds": round(wall, 1),
        "timed_cases": stats.timed,
        "mean_case_ms": round(1000 * stats.seconds / max(stats.timed, 1), 3),
        "max_case_seconds": round(stats.max_seconds, 4),
        "slowest_case": stats.slowest,
        "max_case_seconds_limit": options.max_seconds,
        "traced_every": options.trace_every,
        "traced_cases": stats.traced,
        "max_traced_case_seconds": round(stats.max_traced_seconds, 4),
        "max_tracemalloc_peak_bytes": stats.max_peak,
        "max_peak_case": stats.max_peak_case,
        "max_peak_share_of_bound": round(stats.max_peak_share, 4),
        "memory_bound": f"{MEMORY_BASE} + {MEMORY_PER_BYTE} * len(input) bytes",
        "rss_after_warmup_kib": stats.rss_baseline_kib,
        "rss_end_kib": stats.rss_end_kib,
        "max_rss_growth_kib": stats.max_rss_growth_kib,
        "max_rss_high_water_kib": stats.max_rss_kib,
        "rss_growth_limit_kib": RSS_GROWTH_LIMIT // 1024 if options.trace_every == 0 else "not enforced "
                                "(tracemalloc on)",
        "max_interpreter_block_growth": stats.max_block_growth,
        "block_growth_limit": BLOCK_GROWTH_LIMIT,
    }


def replay(options: Options, case_id: str, save: Path | None) -> int:
    """Run one case in the foreground, with its traceback if it fails."""
    name, _, index = case_id.partition(":")
    target = next((t for t in TARGETS if t == name), None)
    if target is None or not index.isdigit():
        raise SystemExit(f"--replay takes TARGET:INDEX with TARGET one of {TARGETS}")
    case = make_case(Corpus.load(), options.seed, target, int(index))
    print(f"case {case.id} seed {case.seed} ({len(case.data)} bytes)\nmutation: {case.mutation}")
    if save is not None:
        save.write_bytes(case.data)
        print(f"input written to {save}")
    start = time.perf_counter()
    try:
        outcome = exercise_elf(case.data) if case.target == "elf" else exercise_btf(case.data, case.base)
    except (SpecError, btf.BTFError) as err:
        print(f"rejected: {type(err).__name__}: {err}")
    except Exception:
        traceback.print_exc()
        return 1
    else:
        print(outcome)
    print(f"{time.perf_counter() - start:.4f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000, help="number of cases (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--target", choices=("btf", "elf", "all"), default="all")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--max-seconds", type=float, default=1.0, help="time limit per case (default 1)")
    parser.add_argument("--hang-seconds", type=float, default=10.0,
                        help="interrupt a case after this long (default 10)")
    parser.add_argument("--trace-every", type=int, default=8,
                        help="measure tracemalloc peaks on every N-th case (0: never; default 8)")
    parser.add_argument("--crash-dir", type=Path, default=ROOT / "tools" / "fuzz-failures",
                        help="where failing inputs are written")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--replay", metavar="TARGET:INDEX", help="run one case again, with its traceback")
    parser.add_argument("--save", type=Path, help="with --replay: write the case's input here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    targets: tuple[Target, ...] = TARGETS if args.target == "all" else (args.target,)
    options = Options(seed=args.seed, cases=args.cases, targets=targets, jobs=max(1, args.jobs),
                      max_seconds=args.max_seconds, hang_seconds=args.hang_seconds,
                      trace_every=args.trace_every, progress=not args.quiet)
    if args.replay:
        return replay(options, args.replay, args.save)
    started = time.monotonic()
    stats = run(options)
    result = summary(stats, options, time.monotonic() - started)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    if stats.failures:
        for stem in save_failures(stats, args.crash_dir):
            print(f"failure: {stem}.txt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
