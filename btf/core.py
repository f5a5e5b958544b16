"""CO-RE ("compile once, run everywhere") relocation resolution, with libbpf's semantics.

A CO-RE relocation (a ``.BTF.ext`` ``core_relo`` record, :class:`btf.ext.CORERelocation`)
says: the instruction at ``insn_off`` holds some property (``kind``) of a type of the
program's own BTF (the *local* spec), reached from the type ``type_id`` by the access
string ``accessor``. Resolving it finds the same property in the *target* spec (normally
the running kernel's BTF) so that a loader can patch the instruction. Nothing here makes a
syscall or touches an instruction: :func:`resolve` returns a :class:`CoreResult` that says
what the instruction held, what it must hold now, and whether it must be poisoned.

The rules are those of libbpf's ``relo_core.c``:

* **Access strings.** ``"0:1:2"``: the first index is an array index into the root type
  (pointer arithmetic, ``p[0]``), the others are member indices of structs/unions or
  indices into arrays. Type relocations use ``"0"``; enum value relocations use the
  enumerator's index.
* **Candidates.** The target types whose *essential name* (:func:`essential_name`: the
  name without a ``___flavor`` suffix) equals the local type's, and whose kind is the
  local root's kind (any two enums — ``ENUM``/``ENUM64`` — count as the same kind).
  Anonymous local types have no candidates (only ``TYPE_ID_LOCAL`` works for them).
* **Matching.** Field relocations walk the local access path through each candidate:
  members are found by exact name (anonymous struct/union members are searched
  recursively), must have compatible types (``bpf_core_fields_are_compat``), array
  indices must be in bounds (a flexible array member at the end of a struct takes any
  index). Type relocations require ``bpf_core_types_are_compat`` (``TYPE_MATCHES``: the
  stricter ``bpf_core_types_match``). Enum value relocations need an enumerator with the
  same essential name.
* **Agreement.** If several candidates match, they must agree on the field's bit offset,
  the value and whether to poison; otherwise the relocation is ambiguous and resolution
  raises :class:`~btf.errors.BTFError`. (libbpf also narrows its cached candidate list
  to the ones that matched, which makes later relocations depend on earlier ones; this
  module resolves each relocation against all candidates, which gives the same results
  whenever libbpf's are order-independent.)
* **No match.** ``FIELD_EXISTS``, ``ENUMVAL_EXISTS`` and all type-based kinds
  (``TYPE_EXISTS``, ``TYPE_MATCHES``, ``TYPE_SIZE``, ``TYPE_ID_TARGET``) resolve to 0;
  the other field kinds and ``ENUMVAL_VALUE`` poison the instruction.

Bitfields are understood in both BTF encodings: ``kind_flag`` structs (the member's
``bitfield_size``) and the legacy one (no ``kind_flag``; the member's ``INT`` type has
fewer ``bits`` than its size). libbpf only knows the first; with the second it would
treat the field as a whole integer. ``FIELD_LSHIFT_U64`` depends on the byte order of the
spec a value is computed for: the local value uses the local spec's, the target value
the target's.

Speed: finding candidates is the costly part (a name lookup in the kernel's ~126k
types). A :class:`CoreCache` remembers them per essential name; :func:`resolve` uses one
shared cache per target spec, so resolving every relocation of a program costs one
lookup per distinct local type name.

Thread-safety: everything here is immutable or filled idempotently; share freely.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from btf.errors import BTFError
from btf.ext import CORERelocation, CORERelocKind
from btf.kinds import IntEncoding, Kind
from btf.layout import MAX_RESOLVE_DEPTH, sizeof, skip_qualifiers_and_typedefs
from btf.spec import Spec
from btf.strings import StringTable
from btf.types import (
    Array,
    Enum,
    Enum64,
    FuncProto,
    Fwd,
    Int,
    Member,
    Pointer,
    Struct,
    Type,
    Union,
)
from btf.wire import ByteOrder

__all__ = [
    "MAX_SPEC_LEN",
    "POISON_IMM",
    "CoreCache",
    "CoreResult",
    "cache_for",
    "candidates",
    "essential_name",
    "resolve",
]

#: The immediate of the ``call`` that replaces a poisoned instruction (libbpf's
#: ``0xbad2310``, "bad relo"). If the verifier reaches it, it reports
#: ``invalid func unknown#195896080``; if the code is dead, it is removed.
POISON_IMM: Final = 0xBAD2310

#: The longest access path libbpf accepts (``BPF_CORE_SPEC_MAX_LEN``).
MAX_SPEC_LEN: Final = 64

_MASK64: Final = (1 << 64) - 1
_ENUM_KINDS: Final = frozenset((Kind.ENUM, Kind.ENUM64))
_COMPOSITE_KINDS: Final = frozenset((Kind.STRUCT, Kind.UNION))
_FIELD_KINDS: Final = frozenset((
    CORERelocKind.FIELD_BYTE_OFFSET, CORERelocKind.FIELD_BYTE_SIZE, CORERelocKind.FIELD_EXISTS,
    CORERelocKind.FIELD_SIGNED, CORERelocKind.FIELD_LSHIFT_U64, CORERelocKind.FIELD_RSHIFT_U64,
))
_TYPE_KINDS: Final = frozenset((
    CORERelocKind.TYPE_ID_LOCAL, CORERelocKind.TYPE_ID_TARGET, CORERelocKind.TYPE_EXISTS,
    CORERelocKind.TYPE_SIZE, CORERelocKind.TYPE_MATCHES,
))
_ENUMVAL_KINDS: Final = frozenset((CORERelocKind.ENUMVAL_EXISTS, CORERelocKind.ENUMVAL_VALUE))
_ENCODING: Final = "utf-8"
_ERRORS: Final = "surrogateescape"


@dataclass(frozen=True, slots=True)
class CoreResult:
    """What one CO-RE relocation resolved to, and so what its instruction must become.

    ``local_value`` is the value the compiler put in the instruction (computed from the
    local spec); ``target_value`` the value it must hold on the target. Values are
    Python ints: offsets, sizes, shifts, 0/1 flags and type IDs are non-negative
    (``FIELD_RSHIFT_U64`` of a field wider than 8 bytes is negative, libbpf's u64
    wrap-around); ``ENUMVAL_VALUE`` of an ``ENUM`` is its value as a signed 32-bit
    integer and of an ``ENUM64`` as an unsigned 64-bit one, so that ``value & (2**64 - 1)``
    is exactly libbpf's u64.

    How a loader patches the instruction (libbpf's ``bpf_core_patch_insn``):

    1. ``poison``: replace the instruction by ``call POISON_IMM`` (opcode
       ``BPF_JMP | BPF_CALL`` = 0x85, dst = src = offset = 0, constant
       :data:`POISON_IMM`); for a 64-bit immediate load both of its slots become that call.
       Nothing else is checked.
    2. Otherwise, by instruction class:

       * ``ALU``/``ALU64`` with an immediate (``BPF_K``) — e.g. ``r1 = 12``: if
         ``validate``, the constant must equal ``local_value`` (compared as 32-bit
         values), else it is an error; then ``constant := target_value`` truncated to a
         signed 32-bit integer.
       * ``LDX``/``ST``/``STX`` — e.g. ``r1 = *(u32 *)(r2 + 12)``: if ``validate``, the
         offset must equal ``local_value``; ``target_value`` above 0x7fff is an error
         (it does not fit the offset); if ``mem_size_change_unsafe``, poison the
         instruction (as in 1) instead; otherwise ``offset := target_value``, and if
         ``target_mem_size != local_mem_size`` the access size must currently be
         ``local_mem_size`` bytes (else error) and becomes ``target_mem_size`` (1, 2, 4
         or 8 bytes — ``BPF_B``/``BPF_H``/``BPF_W``/``BPF_DW``; anything else is an
         error).
       * 64-bit immediate load (``LD | IMM | DW`` with ``src`` 0 and offset 0): if
         ``validate``, the 64-bit constant must equal ``local_value & (2**64 - 1)``; then
         ``constant := target_value & (2**64 - 1)``.
       * Any other instruction carrying a CO-RE relocation is an error.

    ``validate`` is False where the compiler's value may legitimately differ from
    libbpf's own computation: ``TYPE_ID_LOCAL`` (IDs change when objects are linked)
    and bitfield offsets, sizes and left shifts (the compiler may pick another load).

    Fields:

    ``relocation``
        the relocation resolved.
    ``description``
        the relocation in words, for messages: kind, local root type and access path,
        e.g. ``<field_byte_offset> [5] struct task_struct.pid (0:3 @ offset 12)``.
    ``local_value``, ``target_value``, ``poison``, ``validate``
        as above (``target_value`` is 0 when ``poison``).
    ``target_type_id``
        the ID, in the target spec, of the candidate type that matched (the root type;
        for ``TYPE_ID_TARGET`` equal to ``target_value``); ``None`` if none matched
        (and for ``TYPE_ID_LOCAL``, which has no target).
    ``target_description``
        the matched target access path, e.g. ``[113] struct task_struct.pid (0:57 @
        offset 2456)``; ``None`` if nothing matched.
    ``local_mem_size``, ``target_mem_size``
        for ``FIELD_BYTE_OFFSET`` of a non-bitfield field (or array element): the field's
        size in bytes in each spec, i.e. the access size of a load/store of it. 0 when
        not applicable (other kinds, bitfields; ``target_mem_size`` also without a match).
    ``mem_size_change_unsafe``
        those sizes differ and the field is not a pointer in both specs nor an unsigned
        integer in both: a load/store of it cannot be resized and must be poisoned
        (libbpf's ``fail_memsz_adjust``). Only meaningful for ``LDX``/``ST``/``STX``.
    ``target_field_size``, ``target_field_signed``
        for field relocations that matched a target field: its size in bytes (for a
        bitfield, the size of the load that reads it: ``FIELD_BYTE_SIZE``) and whether it
        is signed (``FIELD_SIGNED``); ``None`` otherwise.
    """

    relocation: CORERelocation
    description: str
    local_value: int
    target_value: int
    poison: bool = False
    validate: bool = True
    target_type_id: int | None = None
    target_description: str | None = None
    local_mem_size: int = 0
    target_mem_size: int = 0
    mem_size_change_unsafe: bool = False
    target_field_size: int | None = None
    target_field_signed: bool | None = None

    @property
    def kind(self) -> CORERelocKind:
        """The relocation's kind."""
        return self.relocation.kind

    @property
    def local_type_id(self) -> int:
        """The ID of the relocation's root type in the local spec."""
        return self.relocation.type_id

    def __str__(self) -> str:
        if self.poison:
            outcome = "poison (no matching target)"
        else:
            outcome = f"{self.local_value} -> {self.target_value}"
        target = f" => {self.target_description}" if self.target_description else ""
        return f"{self.description}{target}: {outcome}"


# -- names -------------------------------------------------------------------------------


def essential_name(name: str) -> str:
    """``name`` without its ``___flavor`` suffix: ``task_struct___old`` -> ``task_struct``.

    As libbpf: the suffix starts at the *last* ``X___Y`` where neither ``X`` nor ``Y`` is
    an underscore; a name without one is its own essential name.
    """
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1] == "_" and name[i + 2] == "_" and name[i + 3] == "_" \
                and name[i + 4] != "_":
            return name[: i + 1]
    return name


def _names_match(local: str, target: str) -> bool:
    """libbpf's ``bpf_core_names_match``: equal essential names, or both anonymous."""
    if not target:
        return not local
    return essential_name(local) == essential_name(target)


# -- candidates ----------------------------------------------------------------------------


class _Store:
    """The candidate IDs of one target spec per essential name.

    Holds IDs, not types (a type refers to its spec), so that the shared store of a spec
    does not keep the spec alive.
    """

    __slots__ = ("flavored", "lock", "named")

    def __init__(self) -> None:
        self.named: dict[str, tuple[int, ...]] = {}
        self.flavored: dict[str, list[int]] | None = None  # fallback index, see _flavored_ids
        self.lock = threading.Lock()


class CoreCache:
    """Candidate types of one target spec, remembered per essential name.

    ``CoreCache(kernel).resolve(relo, local)`` is :func:`resolve`; keep one cache per
    target and reuse it for every relocation of every program loaded against it.
    :func:`resolve` does that on its own: it uses :func:`cache_for`, whose caches share
    one store per target spec for as long as the spec lives.
    """

    def __init__(self, target: Spec) -> None:
        self.target = target
        self._store = _Store()

    def named(self, essential: str) -> tuple[Type, ...]:
        """Every target type whose essential name is ``essential``, in ID order (any kind)."""
        ids = self._store.named.get(essential)
        if ids is None:
            ids = self._store.named[essential] = self._lookup(essential)
        type_by_id = self.target.type_by_id
        return tuple(type_by_id(i) for i in ids)

    def candidates(self, local_type: Type) -> tuple[Type, ...]:
        """The target types ``local_type`` may relocate against: same essential name and kind.

        Raises :class:`BTFError` for an anonymous type (libbpf does not search for them).
        """
        if not local_type.name:
            raise BTFError(f"{local_type}: CO-RE relocations against anonymous types are not supported")
        return tuple(t for t in self.named(essential_name(local_type.name)) if _kinds_compat(t, local_type))

    def resolve(self, relo: CORERelocation, local: Spec) -> CoreResult:
        """Resolve ``relo`` (whose type IDs are ``local``'s) against this cache's target."""
        return _resolve(relo, local, self)

    def resolve_all(self, relos: Iterable[CORERelocation], local: Spec) -> list[CoreResult]:
        """:meth:`resolve` each of ``relos``, in order."""
        return [_resolve(relo, local, self) for relo in relos]

    def _lookup(self, essential: str) -> tuple[int, ...]:
        target = self.target
        found = {t.id for t in target.types_by_name(essential)}
        for name in self._flavored_names(essential):
            found.update(t.id for t in target.types_by_name(name))
        return tuple(sorted(found))

    def _flavored_names(self, essential: str) -> set[str]:
        """The names ``essential___flavor`` that occur in the target's string table."""
        parts = _string_parts(self.target.strings)
        if parts is None:
            return self._flavored_names_by_scan(essential)
        names: set[str] = set()
        try:
            needle = essential.encode(_ENCODING, _ERRORS) + b"___"
        except UnicodeEncodeError:
            return names
        for data in parts:
            pos = data.find(needle)
            while pos >= 0:
                end = data.find(b"\0", pos)
                if end < 0:
                    break
                name = data[pos:end].decode(_ENCODING, _ERRORS)
                if essential_name(name) == essential:
                    names.add(name)
                pos = data.find(needle, pos + 1)
        return names

    def _flavored_names_by_scan(self, essential: str) -> set[str]:
        """Fallback for string tables whose raw bytes are not reachable: scan every name once."""
        store, target = self._store, self.target
        with store.lock:
            if store.flavored is None:
                index: dict[str, list[int]] = {}
                for type_id in range(1, len(target)):
                    name = target.name_of(type_id)
                    if "___" in name:
                        index.setdefault(essential_name(name), []).append(type_id)
                store.flavored = index
        return {target.name_of(i) for i in store.flavored.get(essential, ())}


def _string_parts(table: StringTable) -> list[bytes] | None:
    """The raw bytes of ``table`` and of its bases (None if they are not reachable).

    Reads the table's internals: they are part of this package and the cheapest way to
    find names by prefix (one ``bytes.find`` over the kernel's ~2 MB of strings).
    """
    parts: list[bytes] = []
    current: StringTable | None = table
    while current is not None:
        data = getattr(current, "_data", None)
        if not isinstance(data, bytes):
            return None
        parts.append(data)
        current = getattr(current, "_base", None)
    return parts


_stores: dict[int, _Store] = {}
_stores_lock = threading.Lock()


def cache_for(target: Spec) -> CoreCache:
    """A :class:`CoreCache` of ``target`` sharing the one store of that spec.

    The store is made on first use and dropped when the spec is garbage-collected.
    """
    cache = CoreCache(target)
    key = id(target)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _Store()
            weakref.finalize(target, _drop_store, key, store)
    cache._store = store
    return cache


def _drop_store(key: int, store: _Store) -> None:
    with _stores_lock:
        if _stores.get(key) is store:
            del _stores[key]


def candidates(local_type: Type, target: Spec) -> tuple[Type, ...]:
    """The candidate target types of ``local_type`` (see :meth:`CoreCache.candidates`), cached."""
    return cache_for(target).candidates(local_type)


def resolve(relo: CORERelocation, local: Spec, target: Spec) -> CoreResult:
    """Resolve the CO-RE relocation ``relo`` of a program whose BTF is ``local`` against ``target``.

    Returns a :class:`CoreResult` (what the instruction must become). Raises
    :class:`BTFError`, naming the relocation, when it cannot be resolved: a malformed
    access string or type ID, an anonymous root type, candidates that disagree
    (ambiguity), a bitfield no 64-bit load can read, a kind that does not apply to its
    access path.
    """
    return _resolve(relo, local, cache_for(target))


# -- access specs --------------------------------------------------------------------------


@dataclass(slots=True)
class _Accessor:
    """One step of an access path: member ``idx`` (named ``name``) of composite ``type_id``,
    or (``name`` None) element ``idx`` of an array whose element type is ``type_id``."""

    type_id: int
    idx: int
    name: str | None


@dataclass(slots=True)
class _AccessSpec:
    """libbpf's ``bpf_core_spec``: an access path resolved in one spec."""

    spec: Spec
    root_type_id: int
    accessors: list[_Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0


class _Fail(Exception):
    """Resolution is impossible; turned into a BTFError naming the relocation."""


def _skip(t: Type) -> Type:
    return skip_qualifiers_and_typedefs(t)


def _kinds_compat(a: Type, b: Type) -> bool:
    return a.kind == b.kind or (a.kind in _ENUM_KINDS and b.kind in _ENUM_KINDS)


def _sizeof(t: Type) -> int:
    try:
        return sizeof(t)
    except BTFError as err:
        raise _Fail(str(err)) from None


def _parse_indices(accessor: str) -> list[int]:
    if not accessor:
        raise _Fail("empty access string")
    parts = accessor.split(":")
    if len(parts) > MAX_SPEC_LEN:
        raise _Fail(f"access string has more than {MAX_SPEC_LEN} indices")
    indices = []
    for part in parts:
        if not part.isascii() or not part.isdigit():
            raise _Fail(f"invalid access string {accessor!r}")
        indices.append(int(part))
    return indices


def _is_flex_array(spec: Spec, previous: _Accessor | None, array: Array) -> bool:
    """An array of no elements that is the last member of the struct it is a member of."""
    if previous is None or previous.name is None or array.nelems > 0:
        return False
    parent = spec.type_by_id(previous.type_id)
    return isinstance(parent, (Struct, Union)) and previous.idx == len(parent.members) - 1


def _parse_spec(local: Spec, relo: CORERelocation) -> _AccessSpec:
    """libbpf's ``bpf_core_parse_spec``: the local access path of ``relo``."""
    kind = relo.kind
    root = local.type_by_id(relo.type_id)
    parsed = _AccessSpec(local, relo.type_id)
    if kind in _TYPE_KINDS:
        if relo.accessor != "0":
            raise _Fail(f"type relocations use the access string '0', not {relo.accessor!r}")
        parsed.raw = [0]
        return parsed
    indices = _parse_indices(relo.accessor)
    parsed.raw = indices
    t = _skip(root)
    first = indices[0]
    if kind in _ENUMVAL_KINDS:
        if not isinstance(t, (Enum, Enum64)):
            raise _Fail(f"enum value relocation of {t}, which is not an enum")
        if len(indices) > 1 or first >= len(t.values):
            raise _Fail(f"access string {relo.accessor!r} is not an enumerator index of {t}")
        parsed.accessors.append(_Accessor(t.id, first, t.values[first].name))
        return parsed
    parsed.accessors.append(_Accessor(t.id, first, None))
    parsed.bit_offset = first * _sizeof(t) * 8
    type_id = t.id
    for idx in indices[1:]:
        t = _skip(local.type_by_id(type_id))
        if isinstance(t, (Struct, Union)):
            if idx >= len(t.members):
                raise _Fail(f"member index {idx} is out of range for {t} ({len(t.members)} members)")
            member = t.members[idx]
            parsed.bit_offset += member.offset
            if member.name:
                parsed.accessors.append(_Accessor(t.id, idx, member.name))
            type_id = member.type_id
        elif isinstance(t, Array):
            element = _skip(t.type)
            if not _is_flex_array(local, parsed.accessors[-1], t) and idx >= t.nelems:
                raise _Fail(f"array index {idx} is out of range for {t} ({t.nelems} elements)")
            parsed.accessors.append(_Accessor(element.id, idx, None))
            parsed.bit_offset += idx * _sizeof(element) * 8
            type_id = element.id
        else:
            raise _Fail(f"access string {relo.accessor!r} steps into {t}, which is neither "
                        f"a struct, a union nor an array")
    return parsed


def _format_spec(s: _AccessSpec, kind: CORERelocKind) -> str:
    """libbpf's ``bpf_core_format_spec``: ``[5] struct task_struct.pid (0:3 @ offset 12)``."""
    root = s.spec.type_by_id(s.root_type_id)
    text = f"[{s.root_type_id}] {str(root.kind).lower()} {root.name or '<anon>'}"
    if kind in _TYPE_KINDS:
        return text
    if kind in _ENUMVAL_KINDS:
        if not s.accessors:
            return text
        acc = s.accessors[0]
        enum = s.spec.type_by_id(acc.type_id)
        assert isinstance(enum, (Enum, Enum64))
        return f"{text}::{acc.name} = {_enum_value(enum, acc.idx)}"
    path = []
    for i, acc in enumerate(s.accessors):
        if acc.name is not None:
            path.append(f".{acc.name}")
        elif i > 0 or acc.idx > 0:
            path.append(f"[{acc.idx}]")
    raw = ":".join(map(str, s.raw))
    bits = f".{s.bit_offset % 8}" if s.bit_offset % 8 else ""
    return f"{text}{''.join(path)} ({raw} @ offset {s.bit_offset // 8}{bits})"


def _enum_value(enum: Enum | Enum64, idx: int) -> int:
    """libbpf's value of enumerator ``idx``: ENUM as s32, ENUM64 as u64."""
    value = enum.values[idx].value
    if isinstance(enum, Enum):
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value >= 1 << 31 else value
    return value & _MASK64


# -- compatibility -------------------------------------------------------------------------


def _fields_compat(local_t: Type, targ_t: Type) -> bool:
    """libbpf's ``bpf_core_fields_are_compat``: may a field of ``local_t`` be relocated to ``targ_t``?"""
    for _ in range(MAX_RESOLVE_DEPTH):
        local_t, targ_t = _skip(local_t), _skip(targ_t)
        if local_t.kind in _COMPOSITE_KINDS and targ_t.kind in _COMPOSITE_KINDS:
            return True
        if not _kinds_compat(local_t, targ_t):
            return False
        kind = local_t.kind
        if kind in (Kind.PTR, Kind.FLOAT):
            return True
        if kind in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
            local_name, targ_name = essential_name(local_t.name), essential_name(targ_t.name)
            return not local_name or not targ_name or local_name == targ_name
        if isinstance(local_t, Int) and isinstance(targ_t, Int):
            return local_t.bit_offset == 0 and targ_t.bit_offset == 0
        if isinstance(local_t, Array) and isinstance(targ_t, Array):
            local_t, targ_t = local_t.type, targ_t.type
            continue
        return False
    raise _Fail("array nesting too deep while comparing field types")


def _types_compat(local_t: Type, targ_t: Type, level: int = MAX_RESOLVE_DEPTH) -> bool:
    """libbpf's ``bpf_core_types_are_compat`` (root names already matched)."""
    if not _kinds_compat(local_t, targ_t):
        return False
    for _ in range(MAX_RESOLVE_DEPTH):
        local_t, targ_t = _skip(local_t), _skip(targ_t)
        if not _kinds_compat(local_t, targ_t):
            return False
        kind = local_t.kind
        if kind in (Kind.UNKNOWN, Kind.STRUCT, Kind.UNION, Kind.FWD, Kind.ENUM, Kind.ENUM64):
            return True
        if isinstance(local_t, Int) and isinstance(targ_t, Int):
            return local_t.bit_offset == 0 and targ_t.bit_offset == 0
        if isinstance(local_t, (Pointer, Array)) and isinstance(targ_t, (Pointer, Array)):
            local_t, targ_t = local_t.type, targ_t.type
        elif isinstance(local_t, FuncProto) and isinstance(targ_t, FuncProto):
            if len(local_t.params) != len(targ_t.params):
                return False
            for local_p, targ_p in zip(local_t.params, targ_t.params, strict=True):
                if level <= 0:
                    raise _Fail("function prototypes nested too deeply")
                if not _types_compat(_skip(local_p.type), _skip(targ_p.type), level - 1):
                    return False
            local_t, targ_t = local_t.return_type, targ_t.return_type
        else:
            return False
    raise _Fail("type chain too deep while comparing types")


def _types_match(local_t: Type, targ_t: Type, behind_ptr: bool = False,
                 level: int = MAX_RESOLVE_DEPTH) -> bool:
    """libbpf's ``bpf_core_types_match`` (``TYPE_MATCHES``): a stricter, layout-aware check."""
    if level <= 0:
        raise _Fail("types nested too deeply while matching")
    for _ in range(MAX_RESOLVE_DEPTH):
        local_t, targ_t = _skip(local_t), _skip(targ_t)
        if not _names_match(local_t.name, targ_t.name):
            return False
        local_k, targ_k = local_t.kind, targ_t.kind
        if local_k == Kind.UNKNOWN:
            return targ_k == Kind.UNKNOWN
        if isinstance(local_t, Fwd):
            if behind_ptr:
                if isinstance(targ_t, Fwd):
                    return local_t.union == targ_t.union
                # a forward declaration's kind_flag says struct (0) or union (1)
                return targ_k == (Kind.UNION if local_t.union else Kind.STRUCT)
            return isinstance(targ_t, Fwd) and local_t.union == targ_t.union
        if isinstance(local_t, (Enum, Enum64)):
            return isinstance(targ_t, (Enum, Enum64)) and _enums_match(local_t, targ_t)
        if isinstance(local_t, (Struct, Union)):
            if behind_ptr:
                if local_k == targ_k:
                    return True
                return isinstance(targ_t, Fwd) and targ_t.union == (local_k == Kind.UNION)
            if local_k != targ_k:
                return False
            assert isinstance(targ_t, (Struct, Union))
            return _composites_match(local_t, targ_t, behind_ptr, level)
        if isinstance(local_t, Int):
            if not isinstance(targ_t, Int):
                return False
            local_signed = bool(local_t.encoding & IntEncoding.SIGNED)
            targ_signed = bool(targ_t.encoding & IntEncoding.SIGNED)
            return local_t.size == targ_t.size and local_signed == targ_signed
        if isinstance(local_t, Pointer):
            if not isinstance(targ_t, Pointer):
                return False
            behind_ptr = True
            local_t, targ_t = local_t.type, targ_t.type
        elif isinstance(local_t, Array):
            if not isinstance(targ_t, Array) or local_t.nelems != targ_t.nelems:
                return False
            local_t, targ_t = local_t.type, targ_t.type
        elif isinstance(local_t, FuncProto):
            if not isinstance(targ_t, FuncProto) or len(local_t.params) != len(targ_t.params):
                return False
            for local_p, targ_p in zip(local_t.params, targ_t.params, strict=True):
                if not _types_match(local_p.type, targ_p.type, behind_ptr, level - 1):
                    return False
            local_t, targ_t = local_t.return_type, targ_t.return_type
        else:
            return False
    raise _Fail("type chain too deep while matching types")


def _enums_match(local_t: Enum | Enum64, targ_t: Enum | Enum64) -> bool:
    """Same size, and every local enumerator has a namesake (modulo flavor) in the target."""
    if local_t.size != targ_t.size or len(local_t.values) > len(targ_t.values):
        return False
    return all(any(_names_match(lv.name, tv.name) for tv in targ_t.values) for lv in local_t.values)


def _composites_match(local_t: Struct | Union, targ_t: Struct | Union, behind_ptr: bool, level: int) -> bool:
    """Every local member has a namesake (modulo flavor) in the target whose type matches."""
    if len(local_t.members) > len(targ_t.members):
        return False
    for local_m in local_t.members:
        if not any(
            _names_match(local_m.name, targ_m.name)
            and _types_match(local_m.type, targ_m.type, behind_ptr, level - 1)
            for targ_m in targ_t.members
        ):
            return False
    return True


# -- matching a candidate --------------------------------------------------------------------


def _match_member(local: Spec, local_acc: _Accessor, target: Spec, targ_id: int,
                  spec: _AccessSpec) -> int | None:
    """libbpf's ``bpf_core_match_member``: find the local member in target type ``targ_id``.

    On success the member's path is appended to ``spec`` and its type ID returned.
    Anonymous members are searched recursively; a namesake of incompatible type ends the
    search at its level.
    """
    targ_t = _skip(target.type_by_id(targ_id))
    if not isinstance(targ_t, (Struct, Union)):
        return None
    local_parent = local.type_by_id(local_acc.type_id)
    assert isinstance(local_parent, (Struct, Union))
    local_member = local_parent.members[local_acc.idx]
    for i, m in enumerate(targ_t.members):
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise _Fail(f"target access path longer than {MAX_SPEC_LEN}")
        spec.bit_offset += m.offset
        spec.raw.append(i)
        if not m.name:
            found = _match_member(local, local_acc, target, m.type_id, spec)
            if found is not None:
                return found
        elif m.name == local_member.name:
            if _fields_compat(local_member.type, m.type):
                spec.accessors.append(_Accessor(targ_t.id, i, m.name))
                return m.type_id
            spec.bit_offset -= m.offset
            spec.raw.pop()
            return None
        spec.bit_offset -= m.offset
        spec.raw.pop()
    return None


def _match_spec(local_spec: _AccessSpec, kind: CORERelocKind, target: Spec,
                targ_id: int) -> _AccessSpec | None:
    """libbpf's ``bpf_core_spec_match``: the target access path in candidate ``targ_id``, if any."""
    spec = _AccessSpec(target, targ_id)
    if kind in _TYPE_KINDS:
        local_t, targ_t = local_spec.spec.type_by_id(local_spec.root_type_id), target.type_by_id(targ_id)
        matched = _types_match(local_t, targ_t) if kind == CORERelocKind.TYPE_MATCHES \
            else _types_compat(local_t, targ_t)
        if matched:
            spec.raw = [0]
        return spec if matched else None
    if kind in _ENUMVAL_KINDS:
        targ_t = _skip(target.type_by_id(targ_id))
        if not isinstance(targ_t, (Enum, Enum64)):
            return None
        wanted = essential_name(local_spec.accessors[0].name or "")
        for i, value in enumerate(targ_t.values):
            if essential_name(value.name) == wanted:
                spec.accessors.append(_Accessor(targ_t.id, i, value.name))
                spec.raw.append(i)
                return spec
        return None
    local = local_spec.spec
    for i, local_acc in enumerate(local_spec.accessors):
        targ_t = _skip(target.type_by_id(targ_id))
        targ_id = targ_t.id
        if local_acc.name is not None:
            found = _match_member(local, local_acc, target, targ_id, spec)
            if found is None:
                return None
            targ_id = found
            continue
        if i > 0:  # for i == 0 the root itself is the "element"
            if not isinstance(targ_t, Array):
                return None
            flex = _is_flex_array(target, spec.accessors[-1] if spec.accessors else None, targ_t)
            if not flex and local_acc.idx >= targ_t.nelems:
                return None
            targ_id = _skip(targ_t.type).id
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise _Fail(f"target access path longer than {MAX_SPEC_LEN}")
        spec.accessors.append(_Accessor(targ_id, local_acc.idx, None))
        spec.raw.append(local_acc.idx)
        spec.bit_offset += local_acc.idx * _sizeof(target.type_by_id(targ_id)) * 8
    return spec


# -- values ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Value:
    """One side's value of a relocation (libbpf's ``bpf_core_calc_*_relo`` outputs)."""

    value: int
    validate: bool = True
    mem_size: int = 0  # access size for LDX/ST/STX resizing (FIELD_BYTE_OFFSET, not bitfield)
    mem_type_id: int = 0
    field_size: int | None = None
    field_signed: bool | None = None


def _field_value(kind: CORERelocKind, s: _AccessSpec | None, byte_order: ByteOrder) -> _Value | None:
    """libbpf's ``bpf_core_calc_field_relo``; None means "poison"."""
    if kind == CORERelocKind.FIELD_EXISTS:
        return _Value(1 if s is not None else 0)
    if s is None:
        return None
    spec = s.spec
    acc = s.accessors[-1]
    if acc.name is None:  # an array element (or the root itself): no bitfields, no shifts
        element = spec.type_by_id(acc.type_id)
        size = _sizeof(element)
        signed = _is_signed(_skip(element))
        if kind == CORERelocKind.FIELD_BYTE_OFFSET:
            return _Value(s.bit_offset // 8, mem_size=size, mem_type_id=acc.type_id,
                          field_size=size, field_signed=signed)
        if kind == CORERelocKind.FIELD_BYTE_SIZE:
            return _Value(size, field_size=size, field_signed=signed)
        raise _Fail(f"{kind} cannot be applied to an array element access")
    parent = spec.type_by_id(acc.type_id)
    assert isinstance(parent, (Struct, Union))
    member: Member = parent.members[acc.idx]
    mt = _skip(member.type)
    bit_off, bit_sz = s.bit_offset, member.bitfield_size
    if bit_sz == 0 and isinstance(mt, Int) and (mt.bit_offset or mt.bits != mt.size * 8):
        # legacy bitfield encoding (no kind_flag): the INT type carries offset and width
        bit_off += mt.bit_offset
        bit_sz = mt.bits
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if not isinstance(byte_sz, int) or byte_sz <= 0:
            raise _Fail(f"bitfield member '{member.name}' has type {mt}, which has no size")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # the smallest load of at least the field's type size that covers every bit
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise _Fail(f"bitfield '{member.name}' cannot be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _sizeof(mt)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    signed = _is_signed(mt)
    out = _Value(0, validate=not bitfield, field_size=byte_sz, field_signed=signed)
    if kind == CORERelocKind.FIELD_BYTE_OFFSET:
        out.value = byte_off
        if not bitfield:
            out.mem_size, out.mem_type_id = byte_sz, mt.id
    elif kind == CORERelocKind.FIELD_BYTE_SIZE:
        out.value = byte_sz
    elif kind == CORERelocKind.FIELD_SIGNED:
        out.value = int(signed)
        out.validate = True  # signedness is never ambiguous
    elif kind == CORERelocKind.FIELD_LSHIFT_U64:
        if byte_order == "little":
            out.value = 64 - (bit_off + bit_sz - byte_off * 8)
        else:
            out.value = (8 - byte_sz) * 8 + (bit_off - byte_off * 8)
    elif kind == CORERelocKind.FIELD_RSHIFT_U64:
        out.value = 64 - bit_sz
        out.validate = True  # the right shift is never ambiguous
    else:  # pragma: no cover - callers only pass field kinds
        raise _Fail(f"{kind} is not a field relocation")
    return out


def _is_signed(t: Type) -> bool:
    if isinstance(t, (Enum, Enum64)):
        return t.signed
    return isinstance(t, Int) and bool(t.encoding & IntEncoding.SIGNED)


def _type_value(kind: CORERelocKind, s: _AccessSpec | None) -> _Value:
    """libbpf's ``bpf_core_calc_type_relo``: type relocations give 0 without a target."""
    if s is None:
        return _Value(0)
    if kind == CORERelocKind.TYPE_ID_TARGET:
        return _Value(s.root_type_id)
    if kind in (CORERelocKind.TYPE_EXISTS, CORERelocKind.TYPE_MATCHES):
        return _Value(1)
    if kind == CORERelocKind.TYPE_SIZE:
        return _Value(_sizeof(s.spec.type_by_id(s.root_type_id)))
    raise _Fail(f"{kind} is not a type relocation")  # pragma: no cover


def _enumval_value(kind: CORERelocKind, s: _AccessSpec | None) -> _Value | None:
    """libbpf's ``bpf_core_calc_enumval_relo``; None means "poison"."""
    if kind == CORERelocKind.ENUMVAL_EXISTS:
        return _Value(1 if s is not None else 0)
    if s is None:
        return None
    acc = s.accessors[0]
    enum = s.spec.type_by_id(acc.type_id)
    assert isinstance(enum, (Enum, Enum64))
    return _Value(_enum_value(enum, acc.idx))


@dataclass(slots=True)
class _Outcome:
    """libbpf's ``bpf_core_relo_res`` for one candidate (or for none)."""

    local: _Value
    target: _Value | None  # None: poison

    @property
    def poison(self) -> bool:
        return self.target is None

    @property
    def target_value(self) -> int:
        return self.target.value if self.target is not None else 0


def _calc(kind: CORERelocKind, local: _AccessSpec, target: _AccessSpec | None,
          target_order: ByteOrder) -> _Outcome:
    """libbpf's ``bpf_core_calc_relo``: local and target values of one relocation."""
    if kind in _FIELD_KINDS:
        local_value = _field_value(kind, local, local.spec.byte_order)
        assert local_value is not None
        return _Outcome(local_value, _field_value(kind, target, target_order))
    if kind in _TYPE_KINDS:
        return _Outcome(_type_value(kind, local), _type_value(kind, target))
    local_value = _enumval_value(kind, local)
    assert local_value is not None
    return _Outcome(local_value, _enumval_value(kind, target))


def _mem_size_change_unsafe(local: Spec, target: Spec, outcome: _Outcome) -> bool:
    """libbpf's ``fail_memsz_adjust``: a load/store of this field cannot change size."""
    tv = outcome.target
    if tv is None or outcome.local.mem_size == tv.mem_size:
        return False
    local_t = local.type_by_id(outcome.local.mem_type_id)
    targ_t = target.type_by_id(tv.mem_type_id)
    if isinstance(local_t, Pointer) and isinstance(targ_t, Pointer):
        return False  # e.g. a 32-bit kernel pointer read into a 64-bit register
    # unsigned integers are zero-extended: their value survives a change of size
    unsigned = (isinstance(local_t, Int) and isinstance(targ_t, Int)
                and local_t.encoding != IntEncoding.SIGNED and targ_t.encoding != IntEncoding.SIGNED)
    return not unsigned


# -- resolution -------------------------------------------------------------------------------


def _basic_description(relo: CORERelocation, local: Spec) -> str:
    try:
        root = local.type_by_id(relo.type_id)
        what = f"{str(root.kind).lower()} {root.name or '<anon>'}"
    except BTFError:
        what = "<invalid type>"
    return f"<{relo.kind}> [{relo.type_id}] {what} ({relo.accessor})"


def _resolve(relo: CORERelocation, local: Spec, cache: CoreCache) -> CoreResult:
    kind = relo.kind
    target = cache.target
    description = _basic_description(relo, local)
    try:
        local_spec = _parse_spec(local, relo)
        description = f"<{kind}> {_format_spec(local_spec, kind)}"
        if kind == CORERelocKind.TYPE_ID_LOCAL:
            # IDs may legitimately change while objects are linked: never validated
            return CoreResult(relo, description, relo.type_id, relo.type_id, validate=False)
        local_type = local.type_by_id(relo.type_id)
        if not local_type.name:
            raise _Fail("relocations against anonymous types are not supported (only type_id_local)")
        chosen: tuple[_AccessSpec, _Outcome] | None = None
        for candidate in cache.candidates(local_type):
            targ_spec = _match_spec(local_spec, kind, target, candidate.id)
            if targ_spec is None:
                continue
            outcome = _calc(kind, local_spec, targ_spec, target.byte_order)
            if chosen is None:
                chosen = (targ_spec, outcome)
                continue
            first_spec, first = chosen
            if targ_spec.bit_offset != first_spec.bit_offset:
                raise _Fail(
                    f"ambiguous: candidates {_format_spec(first_spec, kind)} and "
                    f"{_format_spec(targ_spec, kind)} give different field offsets "
                    f"({first_spec.bit_offset} != {targ_spec.bit_offset} bits)")
            if outcome.poison != first.poison or outcome.target_value != first.target_value:
                raise _Fail(
                    f"ambiguous: candidates {_format_spec(first_spec, kind)} and "
                    f"{_format_spec(targ_spec, kind)} give different values "
                    f"({first.target_value} != {outcome.target_value})")
        if chosen is None:
            outcome = _calc(kind, local_spec, None, target.byte_order)
            return CoreResult(relo, description, outcome.local.value, outcome.target_value,
                              poison=outcome.poison, validate=outcome.local.validate,
                              local_mem_size=outcome.local.mem_size)
        targ_spec, outcome = chosen
        tv = outcome.target
        return CoreResult(
            relo, description, outcome.local.value, outcome.target_value,
            poison=outcome.poison,
            validate=outcome.local.validate,
            target_type_id=targ_spec.root_type_id,
            target_description=_format_spec(targ_spec, kind),
            local_mem_size=outcome.local.mem_size,
            target_mem_size=tv.mem_size if tv is not None else 0,
            mem_size_change_unsafe=_mem_size_change_unsafe(local, target, outcome),
            target_field_size=tv.field_size if tv is not None else None,
            target_field_signed=tv.field_signed if tv is not None else None,
        )
    except _Fail as err:
        raise BTFError(f"CO-RE relocation {description} at instruction offset {relo.insn_off}: {err}") \
            from None
    except BTFError as err:
        raise BTFError(f"CO-RE relocation {description} at instruction offset {relo.insn_off}: {err}") \
            from err
