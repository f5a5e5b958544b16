"""Format BTF as a C header, like ``bpftool btf dump file X format c``.

:func:`format_c` writes every named struct, union, enum and typedef of a spec (or only
the ones asked for, plus what they need) as C that clang accepts, so the result can
serve as a ``vmlinux.h`` for CO-RE programs.

How it works, in three steps:

1. **Order.** Every definition is a node of a dependency graph. A struct that embeds
   another by value (directly, in an array, through a typedef) needs that one's full
   definition first; one that only points at it needs a forward declaration
   (``struct foo;``); a typedef needs its name declared before use, and its target
   completed before it is used by value. An iterative depth-first search over that
   graph, started from the types in ID order, gives an order C compilers accept.
   Anonymous types are not nodes: they are written inline where they are used.
2. **Lay out.** Every struct and union is laid out the way clang lays out C for BPF
   (natural alignment, bitfields that do not straddle their type's storage unit). Where
   that differs from the BTF offsets, unnamed bitfields (``long: 64;``) pad the gaps;
   where no padding can help (a misaligned member, a size that is not a multiple of the
   alignment), the record becomes ``__attribute__((packed))``. Enums whose size differs
   from what their values imply get ``__attribute__((mode(..)))``.
3. **Write.** Declarators are built inside out (``int (*fn[4])(struct sk_buff *)``).
   Names are given out in output order: a later, different type with the name of an
   earlier one gets a ``___2`` suffix (``___3``, ...), as bpftool does; that applies to
   tags, typedefs and enumerators alike.

FUNC, VAR, DATASEC and DECL_TAG types are not written; ``btf_type_tag``\\ s are dropped.
No step recurses along the type graph: the graph's depth cannot exhaust the stack. Only
the inline nesting of anonymous types and function prototypes, and the layout of structs
embedded by value (their alignment needs their layout), recurse, and both are capped at
:data:`MAX_NESTING` (a struct that contains itself by value is an error).

The text written is bounded by the size of the spec: every member, padding bitfield,
enumerator and parameter written (anonymous types and prototypes written inline count
each time they are written) draws on a budget of :data:`MAX_ITEMS_BASE` +
:data:`MAX_ITEMS_PER_TYPE` per type, so BTF of a few bytes cannot ask for gigabytes of
padding (a struct of 4 GiB) or an exponential blow-up (anonymous types nested inline).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from btf.errors import BTFError
from btf.kinds import IntEncoding, Kind
from btf.layout import is_packed, sizeof
from btf.spec import Spec
from btf.types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Pointer,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
)

__all__ = ["MAX_NESTING", "format_c"]

#: How deeply anonymous types and function prototypes may nest inside one definition.
MAX_NESTING = 64

#: Items (members, padding bitfields, enumerators, parameters) one call may write: this
#: many, plus :data:`MAX_ITEMS_PER_TYPE` per type of the spec. The kernel's vmlinux
#: (6.18, ~127k types) needs 0.9 per type; the largest padding gap it has is 4 KiB.
MAX_ITEMS_BASE = 1 << 13
MAX_ITEMS_PER_TYPE = 16

#: Words a BTF INT or FLOAT name may consist of to be usable in C as it is.
_C_TYPE_WORDS = frozenset(
    {"void", "char", "short", "int", "long", "signed", "unsigned", "_Bool", "__int128", "float", "double"}
)

#: Typedefs that name compiler built-ins: referred to, never defined.
_BUILTIN_TYPEDEFS = frozenset({"__builtin_va_list"})

_QUALIFIER_WORDS = {Kind.CONST: "const", Kind.VOLATILE: "volatile", Kind.RESTRICT: "restrict"}
_ENUM_MODES = {1: "QI", 2: "HI", 4: "SI", 8: "DI"}
_POINTER_BITS = 64

# Padding types, widest first: (C type, bits).
_PAD_TYPES = (("long", 64), ("int", 32), ("short", 16), ("char", 8))

# Kinds whose references put a type into the header (FUNC, VAR, DATASEC, DECL_TAG do not).
_EMITTED_REFERRERS = frozenset({
    Kind.PTR, Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST,
    Kind.RESTRICT, Kind.FUNC_PROTO, Kind.TYPE_TAG,
})

# Graph nodes are ``type_id << 2 | op``.
_DEF = 0  # the type's definition (struct/union/enum body, typedef, INT alias)
_COMPLETE = 1  # a typedef usable by value: a complete target, then the typedef
_NEED = 2  # whatever a non-definition type (pointer, FUNC, VAR, ...) asked for needs
_FWD = 3  # a forward declaration asked for on its own (a BTF FWD)


def format_c(spec: Spec, types: Iterable[Type] | None = None, *, guard: str = "__VMLINUX_H__") -> str:
    """The types of ``spec`` as a self-contained C header (``bpftool btf dump ... format c``).

    With ``types=None`` every named struct, union, enum and typedef is written (with the
    anonymous types they use inline, and anonymous enums that nothing uses on their
    own); otherwise only ``types`` and what they need: full definitions of what they
    embed, forward declarations of what they only point to. A FUNC, VAR, DATASEC or
    pointer among ``types`` stands for the types it refers to.

    The definitions are wrapped in ``#pragma clang attribute push
    (__attribute__((preserve_access_index)), apply_to = record)`` (unless
    ``BPF_NO_PRESERVE_ACCESS_INDEX`` is defined) so CO-RE relocates accesses through
    them, and in an include guard named ``guard`` (none if ``guard`` is empty).

    Raises :class:`BTFError` if a type is not part of ``spec``, or if the BTF cannot be
    written as C (a struct that contains itself, members that overlap, ...).
    """
    forwards = _Forwards(spec)
    roots = _all_roots(spec, forwards) if types is None else _requested_roots(spec, types, forwards)
    items = _Order(spec, forwards).run(roots)
    writer = _Writer(spec, forwards)
    body = writer.write(items)
    return _wrap(body, guard, core=writer.records > 0)


# -- what to write -------------------------------------------------------------------------


def _all_roots(spec: Spec, forwards: _Forwards) -> list[int]:
    """Nodes for every named definition, in ID order, plus the free-standing anonymous enums."""
    roots: list[int] = []
    referenced: set[int] = set()
    anonymous_enums: list[int] = []
    for t in spec:
        kind = t.kind
        if kind in _EMITTED_REFERRERS:
            referenced.update(t.refs())
        if isinstance(t, (Struct, Union)) and t.name:
            roots.append(t.id << 2 | _DEF)
        elif isinstance(t, (Enum, Enum64)):
            if t.name:
                roots.append(t.id << 2 | _DEF)
            elif t.values:
                anonymous_enums.append(t.id)
                roots.append(t.id << 2 | _DEF)
        elif isinstance(t, Typedef):
            roots.append(t.id << 2 | _COMPLETE)
        elif isinstance(t, Fwd) and forwards.target(t) == t.id:
            roots.append(t.id << 2 | _FWD)
    inlined = {tid << 2 | _DEF for tid in anonymous_enums if tid in referenced}
    return [node for node in roots if node not in inlined]


def _requested_roots(spec: Spec, types: Iterable[Type], forwards: _Forwards) -> list[int]:
    """Nodes for the types a caller asked for."""
    roots: list[int] = []
    for t in types:
        t = spec.type_by_id(spec.type_id(t))
        if isinstance(t, Fwd):
            roots.append(forwards.target(t) << 2 | _FWD)
        elif isinstance(t, Typedef):
            roots.append(t.id << 2 | _COMPLETE)
        elif _has_definition(t):
            roots.append(t.id << 2 | _DEF)
        else:  # anonymous struct, pointer, FUNC, VAR, ...: write what it uses
            roots.append(t.id << 2 | _NEED)
    return roots


def _has_definition(t: Type) -> bool:
    """True for a named struct/union/enum, and for an anonymous enum with enumerators."""
    if isinstance(t, (Enum, Enum64)):
        return bool(t.name or t.values)
    return isinstance(t, (Struct, Union)) and bool(t.name)


class _Forwards:
    """Which struct or union each FWD declares (cached: a name lookup scans the spec)."""

    def __init__(self, spec: Spec):
        self._spec = spec
        self._targets: dict[int, int] = {}

    def target(self, fwd: Fwd) -> int:
        """The first struct/union named like ``fwd`` (of its kind), or ``fwd`` itself if none."""
        found = self._targets.get(fwd.id)
        if found is None:
            kind = Kind.UNION if fwd.union else Kind.STRUCT
            defined = self._spec.types_by_name(fwd.name, kind)
            found = self._targets[fwd.id] = defined[0].id if defined else fwd.id
        return found


def _needs_alias(t: Int | Float) -> bool:
    """True if the name of INT or FLOAT ``t`` is no C spelling (``ssizetype``), so needs a typedef."""
    return bool(t.name) and not all(word in _C_TYPE_WORDS for word in t.name.split())


# -- step 1: order ---------------------------------------------------------------------------


class _Deps(NamedTuple):
    """What one node needs: nodes written before it, and types declared before it."""

    prereqs: tuple[int, ...]
    decls: tuple[int, ...]


_NO_DEPS = _Deps((), ())


class _Order:
    """Puts definitions into an order C accepts: an iterative depth-first search."""

    def __init__(self, spec: Spec, forwards: _Forwards):
        self._spec = spec
        self._forwards = forwards
        self._items: list[tuple[int, int]] = []  # (_DEF or _FWD, type ID)
        self._defined: set[int] = set()
        self._declared: set[int] = set()

    def run(self, roots: list[int]) -> list[tuple[int, int]]:
        """``(op, type ID)`` pairs: ``_DEF`` to write a definition, ``_FWD`` a forward declaration."""
        state: dict[int, bool] = {}  # node -> finished?
        for root in roots:
            if root not in state:
                self._visit(root, state)
        return self._items

    def _visit(self, root: int, state: dict[int, bool]) -> None:
        state[root] = False
        deps = self._deps(root)
        stack: list[tuple[int, _Deps, Iterator[int]]] = [(root, deps, iter(deps.prereqs))]
        while stack:
            node, deps, pending = stack[-1]
            for dep in pending:
                finished = state.get(dep)
                if finished is None:
                    state[dep] = False
                    dep_deps = self._deps(dep)
                    stack.append((dep, dep_deps, iter(dep_deps.prereqs)))
                    break
                if not finished:
                    raise BTFError("type cycle that C cannot express (a type contains itself)",
                                   type_id=dep >> 2)
            else:
                stack.pop()
                state[node] = True
                self._finish(node, deps)

    def _finish(self, node: int, deps: _Deps) -> None:
        tid, op = node >> 2, node & 3
        if op == _COMPLETE:
            return
        for decl in deps.decls:
            if decl != tid:
                self._declare(decl)
        if op == _FWD:
            self._declare(tid)
        elif op == _DEF and not self._is_builtin(tid):
            self._items.append((_DEF, tid))
            self._defined.add(tid)

    def _declare(self, tid: int) -> None:
        if tid not in self._defined and tid not in self._declared:
            self._declared.add(tid)
            self._items.append((_FWD, tid))

    def _is_builtin(self, tid: int) -> bool:
        t = self._spec.type_by_id(tid)
        return isinstance(t, Typedef) and t.name in _BUILTIN_TYPEDEFS

    def _deps(self, node: int) -> _Deps:
        tid, op = node >> 2, node & 3
        t = self._spec.type_by_id(tid)
        if op == _NEED:
            return self._walk([(tid, True)])
        if op == _FWD:
            return _NO_DEPS
        if isinstance(t, Typedef):
            if t.name in _BUILTIN_TYPEDEFS:
                return _NO_DEPS
            if op == _COMPLETE:
                target = self._walk([(t.type_id, True)])
                return _Deps((*target.prereqs, tid << 2 | _DEF), ())
            return self._walk([(t.type_id, False)])
        if isinstance(t, (Struct, Union)):
            return self._walk([(m.type_id, True) for m in t.members])
        return _NO_DEPS

    def _walk(self, starts: list[tuple[int, bool]]) -> _Deps:
        """The nodes and declarations needed to write the types ``starts`` (``(id, by_value)``).

        Follows pointers, qualifiers, arrays, function prototypes and anonymous types;
        stops at every named definition. ``by_value`` is False once a pointer is passed
        (and at the top of a typedef): then a named struct only needs declaring.
        """
        prereqs: list[int] = []
        decls: list[int] = []
        seen: set[tuple[int, bool]] = set()
        stack = starts[::-1]
        while stack:
            item = stack.pop()
            if item in seen:
                continue
            seen.add(item)
            tid, by_value = item
            t = self._spec.type_by_id(tid)
            nxt = self._step(t, by_value, prereqs, decls)
            stack.extend(reversed(nxt))
        return _Deps(tuple(prereqs), tuple(decls))

    def _step(self, t: Type, by_value: bool, prereqs: list[int], decls: list[int]) -> list[tuple[int, bool]]:
        """Record what ``t`` itself needs; return the types to look at next."""
        if isinstance(t, Pointer):
            return [(t.type_id, False)]
        if isinstance(t, (Const, Volatile, Restrict, TypeTag)):
            return [(t.type_id, by_value)]
        if isinstance(t, (Array, Var, DeclTag)):
            return [(t.type_id, True)]
        if isinstance(t, (FuncProto, Func)):
            return [(ref, False) for ref in t.refs()]
        if isinstance(t, Datasec):
            return [(v.type_id, True) for v in t.vars]
        if isinstance(t, (Struct, Union)):
            if not t.name:
                return [(m.type_id, True) for m in t.members]
            if by_value:
                prereqs.append(t.id << 2 | _DEF)
            else:
                decls.append(t.id)
        elif isinstance(t, Typedef):
            prereqs.append(t.id << 2 | (_COMPLETE if by_value else _DEF))
        elif isinstance(t, (Enum, Enum64)):
            if t.name:
                prereqs.append(t.id << 2 | _DEF)
        elif isinstance(t, Fwd):
            decls.append(self._forwards.target(t))
        elif isinstance(t, (Int, Float)) and _needs_alias(t):
            prereqs.append(t.id << 2 | _DEF)
        return []


# -- step 2: lay out -------------------------------------------------------------------------


class _Line(NamedTuple):
    """One line of a struct/union body: a member, or padding (``member`` None)."""

    member: Member | None
    bits: int  # bitfield width, or the padding's width; 0 for a plain member
    pad_type: str = ""  # "long", "int", ...; "struct" for a union's padding block


class _Plan(NamedTuple):
    """How to write a struct or union so clang lays it out as BTF says."""

    lines: tuple[_Line, ...]
    attributes: str
    align: int  # alignment in bytes of the record as written
    padded: bool  # has padding lines


def _roundup(value: int, to: int) -> int:
    return -(-value // to) * to


def _member_bits(m: Member) -> tuple[int, int]:
    """``(bit offset, bitfield width)``, also for old BTF that puts bitfields into the INT."""
    if m.bitfield_size:
        return m.offset, m.bitfield_size
    t = m.type
    if isinstance(t, Int) and (t.bit_offset or t.bits != 8 * t.size):
        return m.offset + t.bit_offset, t.bits
    return m.offset, 0


def _placement(cur: int, width: int, size: int, align: int, packed: bool) -> int:
    """Where clang puts the next member (all in bits) if the previous one ended at ``cur``.

    A plain member goes to the next multiple of its alignment; a bitfield stays at
    ``cur`` unless it would cross its type's storage unit (never moves when packed).
    """
    if not width:
        return _roundup(cur, align)
    if packed or cur % align + width <= size:
        return cur
    return _roundup(cur, align)


def _padding_lines(cur: int, end: int) -> int:
    """How many lines :func:`_padding` gives for bits ``[cur, end)`` (at most)."""
    return max(end - cur, 0) // _POINTER_BITS + 2


def _padding(cur: int, end: int) -> Iterator[_Line]:
    """Unnamed bitfields that fill bits ``[cur, end)`` exactly, none crossing its storage unit."""
    while cur < end:
        for pad_type, bits in reversed(_PAD_TYPES):
            unit_end = (cur // bits + 1) * bits
            if unit_end >= end:
                yield _Line(None, end - cur, pad_type)
                return
        width = (cur // _POINTER_BITS + 1) * _POINTER_BITS - cur
        yield _Line(None, width, "long")
        cur += width


class _Budget:
    """What is left of the items one :func:`format_c` call may write (see :data:`MAX_ITEMS_BASE`)."""

    def __init__(self, spec: Spec):
        self.left = MAX_ITEMS_BASE + MAX_ITEMS_PER_TYPE * len(spec)

    def spend(self, items: int, t: Type) -> None:
        """Take ``items`` for writing ``t``; ``BTFError`` naming ``t`` when there are not enough."""
        self.left -= items
        if self.left < 0:
            raise BTFError(f"{t}: the C text would be out of proportion to the BTF (too many members, "
                           "padding bitfields, enumerators or parameters)", type_id=t.id)


class _Layouts:
    """Plans for the structs and unions of one spec, and alignments as clang sees them."""

    def __init__(self, spec: Spec, budget: _Budget):
        self._spec = spec
        self._plans: dict[int, _Plan] = {}
        # structs/unions being planned: an embedded one's alignment needs its plan (cycle guard)
        self._planning: list[int] = []
        self.budget = budget

    def plan(self, t: Struct | Union) -> _Plan:
        """The (cached) plan for ``t``."""
        plan = self._plans.get(t.id)
        if plan is None:
            if t.id in self._planning:
                raise BTFError(f"{t} contains itself by value", type_id=t.id)
            if len(self._planning) >= MAX_NESTING:
                raise BTFError(f"structs/unions nested by value more than {MAX_NESTING} levels deep",
                               type_id=t.id)
            self._planning.append(t.id)
            try:
                plan = self._union(t) if isinstance(t, Union) else self._struct(t)
            finally:
                self._planning.pop()
            self._plans[t.id] = plan
        return plan

    def padding(self, cur: int, end: int, t: Type) -> Iterator[_Line]:
        """:func:`_padding` for bits ``[cur, end)`` of ``t``, paid for from the budget first."""
        self.budget.spend(_padding_lines(cur, end), t)
        return _padding(cur, end)

    def size(self, t: Type) -> int:
        """Size in bytes of ``t`` as written: its BTF size, except for compiler built-ins.

        ``__builtin_va_list`` is a ``void *`` for clang's BPF target, whatever the kernel's
        architecture made of it (24 bytes on x86-64): padding makes up the difference.
        """
        count = 1
        for _ in range(len(self._spec) + 1):
            if isinstance(t, Typedef) and t.name in _BUILTIN_TYPEDEFS:
                return count * _POINTER_BITS // 8
            if isinstance(t, Array):
                count *= t.nelems
            elif not isinstance(t, (Typedef, Const, Volatile, Restrict, TypeTag)):
                return count * sizeof(t)
            t = t.type
        raise BTFError("type chain too long or cyclic", type_id=t.id)

    def align(self, t: Type) -> int:
        """Alignment in bytes of ``t`` as written (clang's BPF rules: ``__int128`` is 16)."""
        for _ in range(len(self._spec) + 1):
            if isinstance(t, (Int, Float, Enum, Enum64)):
                return max(t.size, 1)
            if isinstance(t, Pointer) or (isinstance(t, Typedef) and t.name in _BUILTIN_TYPEDEFS):
                return _POINTER_BITS // 8
            if isinstance(t, (Struct, Union)):
                return self.plan(t).align
            if not isinstance(t, (Array, Typedef, Const, Volatile, Restrict, TypeTag)):
                raise BTFError(f"{t} cannot be a member of a struct or union", type_id=t.id)
            t = t.type
        raise BTFError("type chain too long or cyclic", type_id=t.id)

    def _struct(self, t: Struct) -> _Plan:
        """Natural layout (with padding) if it fits, else ``packed``.

        ``packed`` also when :func:`btf.layout.is_packed` says so. That is only asked
        when the natural layout needed padding: if clang's natural layout already gives
        every BTF offset and the size, no member is misaligned, so ``is_packed`` is False.
        """
        plan = self._struct_plan(t, packed=False)
        if plan is None or (plan.padded and _btf_says_packed(t)):
            plan = self._struct_plan(t, packed=True)
        if plan is None:
            raise BTFError(f"{t}: members overlap or run past its size {t.size}", type_id=t.id)
        return plan

    def _struct_plan(self, t: Struct, *, packed: bool) -> _Plan | None:
        """Members with the padding clang needs to put them at their BTF offsets, or None."""
        lines: list[_Line] = []
        cur, align = 0, 8
        for m in t.members:
            offset, width = _member_bits(m)
            size = 8 * self.size(m.type)
            m_align = 8 if packed else 8 * self.align(m.type)
            if _placement(cur, width, size, m_align, packed) != offset:
                if offset < cur or _placement(offset, width, size, m_align, packed) != offset:
                    return None
                lines.extend(self.padding(cur, offset, t))
            lines.append(_Line(m, width))
            cur = offset + (width or size)
            align = max(align, m_align)
        end = 8 * t.size
        if cur > end or end % align:
            return None
        if _roundup(cur, align) < end:
            lines.extend(self.padding(cur, end, t))
        return _plan(lines, packed, align)

    def _union(self, t: Union) -> _Plan:
        """Like :meth:`_struct`, for a union."""
        plan = self._union_plan(t, packed=False)
        if plan is None or (plan.padded and _btf_says_packed(t)):
            plan = self._union_plan(t, packed=True)
        if plan is None:
            raise BTFError(f"{t}: a member is larger than the union ({t.size} bytes)", type_id=t.id)
        return plan

    def _union_plan(self, t: Union, *, packed: bool) -> _Plan | None:
        """Members, plus a padding member if the union is larger than its largest member."""
        lines: list[_Line] = []
        largest, align = 0, 8
        for m in t.members:
            _, width = _member_bits(m)
            largest = max(largest, _roundup(width, 8) if width else 8 * self.size(m.type))
            if not packed:
                align = max(align, 8 * self.align(m.type))
            lines.append(_Line(m, width))
        end = 8 * t.size
        if largest > end or end % align:
            return None
        if _roundup(largest, align) < end:
            lines.append(_union_padding(end))
        return _plan(lines, packed, align)


def _btf_says_packed(t: Struct | Union) -> bool:
    """:func:`btf.layout.is_packed`, False where it gives up.

    ``is_packed`` refuses structs nested more than ``MAX_NESTING_DEPTH`` deep by value,
    which C allows. The plan is exact either way: ``is_packed`` only decides between two
    layouts that both put every member where BTF says.
    """
    try:
        return is_packed(t)
    except BTFError:
        return False


def _plan(lines: list[_Line], packed: bool, align_bits: int) -> _Plan:
    padded = any(line.member is None for line in lines)
    return _Plan(tuple(lines), " __attribute__((packed))" if packed else "", align_bits // 8, padded)


def _union_padding(end: int) -> _Line:
    """A member that makes a union ``end`` bits large without changing its alignment."""
    for pad_type, bits in reversed(_PAD_TYPES):
        if end <= bits:
            return _Line(None, end, pad_type)
    return _Line(None, end, "struct")


# -- step 3: write ---------------------------------------------------------------------------


class _Names:
    """C names in output order: repeated names get ``___2``, ``___3``, ... like bpftool."""

    def __init__(self) -> None:
        self._given: dict[tuple[bool, int], str] = {}
        self._used: tuple[set[str], set[str]] = (set(), set())  # tags, ordinary identifiers
        self._counts: tuple[dict[str, int], dict[str, int]] = ({}, {})

    def tag(self, t: Type) -> str:
        """The tag of struct/union/enum ``t`` (tags share one C namespace)."""
        return self._name_of(t, ordinary=False)

    def ident(self, t: Type) -> str:
        """The name of typedef (or aliased INT) ``t``."""
        return self._name_of(t, ordinary=True)

    def enumerator(self, name: str) -> str:
        """A fresh name for enumerator ``name``: every written enumerator is a new identifier."""
        return self._fresh(name, ordinary=True)

    def _name_of(self, t: Type, *, ordinary: bool) -> str:
        key = (ordinary, t.id)
        name = self._given.get(key)
        if name is None:
            name = self._given[key] = self._fresh(t.name, ordinary=ordinary)
        return name

    def _fresh(self, base: str, *, ordinary: bool) -> str:
        used, counts = self._used[ordinary], self._counts[ordinary]
        n = counts.get(base, 0)
        while True:
            n += 1
            name = base if n == 1 else f"{base}___{n}"
            if name not in used:
                break
        counts[base] = n
        used.add(name)
        return name


class _Writer:
    """Writes definitions and declarations as C text."""

    def __init__(self, spec: Spec, forwards: _Forwards):
        self._spec = spec
        self._forwards = forwards
        self._names = _Names()
        self._budget = _Budget(spec)
        self._layouts = _Layouts(spec, self._budget)
        self._open: set[int] = set()  # anonymous types and prototypes being written (cycle guard)
        self.records = 0  # structs and unions written, inline ones included
        self._type_names: set[str] | None = None  # typedef and INT alias names, once needed

    def write(self, items: list[tuple[int, int]]) -> str:
        """The text of ``items`` from :meth:`_Order.run`, one blank line after each."""
        out: list[str] = []
        for op, tid in items:
            t = self._spec.type_by_id(tid)
            out.append(self._forward(t) if op == _FWD else self._definition(t))
            out.append(";\n\n")
        return "".join(out)

    def _forward(self, t: Type) -> str:
        union = isinstance(t, Union) or (isinstance(t, Fwd) and t.union)
        return f"{'union' if union else 'struct'} {self._names.tag(t)}"

    def _definition(self, t: Type) -> str:
        if isinstance(t, (Struct, Union)):
            return self._composite(t, 0)
        if isinstance(t, (Enum, Enum64)):
            return self._enum(t, 0)
        if isinstance(t, Typedef):
            return "typedef " + self._declaration(t.type_id, self._names.ident(t), 0)
        if isinstance(t, (Int, Float)):
            return f"typedef {_c_spelling(t)} {self._names.ident(t)}"
        raise BTFError(f"{t} has no C definition", type_id=t.id)

    # -- declarations ------------------------------------------------------------------

    def _declaration(self, tid: int, declarator: str, indent: int) -> str:
        """``<specifier> <declarator>`` for an object called ``declarator`` of type ``tid``.

        Walks from the outside in: pointers prefix the declarator, arrays and parameter
        lists suffix it (parenthesised after a pointer), qualifiers wait for the pointer
        or base type they belong to.
        """
        qualifiers: list[str] = []
        after_pointer = False
        seen: set[int] = set()
        while tid not in seen:
            seen.add(tid)
            t = self._spec.type_by_id(tid)
            if isinstance(t, (Const, Volatile, Restrict)):
                qualifiers.append(_QUALIFIER_WORDS[t.kind])
                tid = t.type_id
            elif isinstance(t, TypeTag):
                tid = t.type_id
            elif isinstance(t, Pointer):
                declarator = "*" + " ".join([*dict.fromkeys(qualifiers), declarator]).rstrip()
                qualifiers.clear()
                after_pointer = True
                tid = t.type_id
            elif isinstance(t, (Array, FuncProto)):
                if after_pointer:
                    declarator = f"({declarator})"
                    after_pointer = False
                if isinstance(t, Array):
                    declarator += f"[{t.nelems}]"
                    tid = t.type_id
                else:
                    qualifiers.clear()  # a qualified function type means nothing
                    declarator += f"({self._parameters(t, indent)})"
                    tid = t.return_type_id
            else:
                specifier = " ".join([*dict.fromkeys(qualifiers), self._specifier(t, indent)])
                return f"{specifier} {declarator}" if declarator else specifier
        raise BTFError("cyclic chain of pointers, qualifiers and arrays", type_id=tid)

    def _specifier(self, t: Type, indent: int) -> str:
        """The type specifier of a base type: a name, or an anonymous type's whole body."""
        if isinstance(t, (Struct, Union)):
            return self._composite(t, indent) if not t.name else self._forward(t)
        if isinstance(t, (Enum, Enum64)):
            return self._enum(t, indent) if not t.name else f"enum {self._names.tag(t)}"
        if isinstance(t, Typedef):
            return t.name if t.name in _BUILTIN_TYPEDEFS else self._names.ident(t)
        if isinstance(t, (Int, Float)):
            return self._names.ident(t) if _needs_alias(t) else (t.name or _c_spelling(t))
        if isinstance(t, Fwd):
            return self._forward(self._spec.type_by_id(self._forwards.target(t)))
        if t.id == 0:
            return "void"
        raise BTFError(f"{t} cannot be used as a C type", type_id=t.id)

    def _parameters(self, proto: FuncProto, indent: int) -> str:
        if not proto.params:
            return "void"
        self._budget.spend(len(proto.params), proto)
        with self._nested(proto):
            parts = []
            for i, p in enumerate(proto.params):
                if p.type_id == 0 and i == len(proto.params) - 1:
                    parts.append("...")
                else:
                    parts.append(self._declaration(p.type_id, self._parameter_name(p.name), indent))
        return ", ".join(parts)

    def _parameter_name(self, name: str) -> str:
        """``name``, unless it also names a type: then a later parameter could not use that type."""
        if self._type_names is None:
            self._type_names = {
                t.name for t in self._spec
                if isinstance(t, Typedef) or (isinstance(t, (Int, Float)) and _needs_alias(t))
            }
        return "" if name in self._type_names else name

    # -- bodies ------------------------------------------------------------------------

    def _composite(self, t: Struct | Union, indent: int) -> str:
        self.records += 1
        keyword = "union" if isinstance(t, Union) else "struct"
        head = f"{keyword} {self._names.tag(t)}" if t.name else keyword
        plan = self._layouts.plan(t)
        if not plan.lines:
            return f"{head} {{}}{plan.attributes}"
        self._budget.spend(len(plan.lines), t)
        with self._nested(t):
            body = [self._line(line, indent + 1, t) for line in plan.lines]
        return "\n".join([f"{head} {{", *body, "\t" * indent + "}" + plan.attributes])

    def _line(self, line: _Line, indent: int, owner: Struct | Union) -> str:
        prefix = "\t" * indent
        if line.member is None:
            if line.pad_type == "struct":
                padding = self._layouts.padding(0, line.bits, owner)
                pads = [f"{prefix}\t{p.pad_type}: {p.bits};" for p in padding]
                return "\n".join([f"{prefix}struct {{", *pads, f"{prefix}}};"])
            return f"{prefix}{line.pad_type}: {line.bits};"
        m = line.member
        text = self._declaration(m.type_id, m.name, indent)
        return f"{prefix}{text}: {line.bits};" if line.bits else f"{prefix}{text};"

    def _enum(self, t: Enum | Enum64, indent: int) -> str:
        if not t.values:
            return f"enum {self._names.tag(t)}" if t.name else _enum_int_spelling(t)
        head = f"enum {self._names.tag(t)}" if t.name else "enum"
        self._budget.spend(len(t.values), t)
        prefix = "\t" * (indent + 1)
        body = [f"{prefix}{self._names.enumerator(v.name)} = {_enum_value(t, v.value)}," for v in t.values]
        return "\n".join([f"{head} {{", *body, "\t" * indent + "}" + _enum_attributes(t)])

    @contextmanager
    def _nested(self, t: Type) -> Iterator[None]:
        """Marks inline type ``t`` as being written: catches cycles and absurd nesting."""
        if t.id in self._open:
            raise BTFError(f"{t} contains itself", type_id=t.id)
        if len(self._open) >= MAX_NESTING:
            raise BTFError(f"types nest more than {MAX_NESTING} levels deep", type_id=t.id)
        self._open.add(t.id)
        try:
            yield
        finally:
            self._open.discard(t.id)


# -- enums and integers -------------------------------------------------------------------------


def _enum_value(t: Enum | Enum64, value: int) -> str:
    """An enumerator's value as a C constant; 64-bit ones outside ``int`` get ``LL``/``ULL``."""
    if isinstance(t, Enum) or -(1 << 31) <= value < 1 << 31:
        return str(value)
    if value == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{value}LL" if value < 0 or t.signed else f"{value}ULL"


def _enum_attributes(t: Enum | Enum64) -> str:
    """``__attribute__((mode(..)))`` if the values alone would give the enum another size."""
    low = min(v.value for v in t.values)
    high = max(v.value for v in t.values)
    fits_32 = (low >= -(1 << 31) and high < 1 << 31) or (low >= 0 and high < 1 << 32)
    natural = 4 if fits_32 else 8
    if t.size == natural or t.size not in _ENUM_MODES:
        return ""
    return f" __attribute__((mode({_ENUM_MODES[t.size]})))"


def _enum_int_spelling(t: Enum | Enum64) -> str:
    """An integer type of the same size, for an anonymous enum without enumerators."""
    return _c_spelling(Int(t.id, "", t.size, IntEncoding.SIGNED if t.signed else IntEncoding.NONE))


def _c_spelling(t: Int | Float) -> str:
    """The C keywords for an INT or FLOAT of ``t``'s size and encoding."""
    if isinstance(t, Float):
        spelled = {4: "float", 8: "double", 16: "long double"}.get(t.size)
    elif t.encoding & IntEncoding.BOOL:
        spelled = "_Bool"
    elif t.size == 1:
        spelled = "signed char" if t.signed else "unsigned char"
        if t.encoding & IntEncoding.CHAR:
            spelled = "char"
    else:
        base = {2: "short", 4: "int", 8: "long long", 16: "__int128"}.get(t.size)
        spelled = base if base is None or t.signed else f"unsigned {base}"
    if spelled is None:
        raise BTFError(f"{t} has a size ({t.size}) that no C type has", type_id=t.id)
    return spelled


# -- the header around it -------------------------------------------------------------------------


def _wrap(body: str, guard: str, *, core: bool) -> str:
    """``body`` inside the generated-file comment, the include guard and (``core``) the CO-RE pragma.

    clang warns about a ``preserve_access_index`` region without records, so a header
    without structs and unions goes without.
    """
    sections = ["/* Generated by ebpfspec (btf.format_c) from BTF. Do not edit. */\n"]
    if guard:
        sections.append(f"#ifndef {guard}\n#define {guard}\n")
    if core:
        sections.append(
            "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
            "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
            "#endif\n"
        )
    if body:
        sections.append(body.removesuffix("\n"))
    if core:
        sections.append("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n")
    if guard:
        sections.append(f"#endif /* {guard} */\n")
    return "\n".join(sections)
