"""Sizes, alignment and the helpers that look through qualifiers and typedefs."""

from __future__ import annotations

from btf.errors import BTFError
from btf.types import (
    Array,
    Const,
    Datasec,
    Enum,
    Enum64,
    Float,
    Int,
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

#: The size of a pointer on BPF.
POINTER_SIZE = 8

#: How many qualifiers/typedefs/arrays may be followed before BTF is declared cyclic
#: (the kernel's MAX_RESOLVE_DEPTH).
MAX_RESOLVE_DEPTH = 32

#: The largest size a type may have: sizes are u32 on the wire, and the kernel rejects
#: arrays whose total size overflows one.
MAX_SIZE = 0xFFFFFFFF

#: How deeply structs/unions may contain each other by value (the kernel's own types
#: nest 18 deep); bounds the recursion of :func:`alignof`.
MAX_NESTING_DEPTH = 64

_QUALIFIERS = (Const, Volatile, Restrict, TypeTag)


def skip_qualifiers(t: Type) -> Type:
    """``t`` without const/volatile/restrict/type-tag layers."""
    for _ in range(MAX_RESOLVE_DEPTH):
        if not isinstance(t, _QUALIFIERS):
            return t
        t = t.type
    raise BTFError("qualifier chain too long or cyclic", type_id=t.id)


def skip_qualifiers_and_typedefs(t: Type) -> Type:
    """``t`` without qualifier and typedef layers: the type a value really has."""
    for _ in range(MAX_RESOLVE_DEPTH):
        if not isinstance(t, (*_QUALIFIERS, Typedef)):
            return t
        t = t.type
    raise BTFError("typedef/qualifier chain too long or cyclic", type_id=t.id)


def sizeof(t: Type) -> int:
    """The size in bytes of a value of type ``t``.

    ``BTFError`` for types without a size (void, functions, forward declarations), for
    cyclic or absurdly deep types, and for sizes over :data:`MAX_SIZE`.
    """
    start, multiplier = t, 1
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(t, (Int, Struct, Union, Enum, Enum64, Float, Datasec)):
            return _checked_size(start, multiplier * t.size)
        if isinstance(t, Pointer):
            return _checked_size(start, multiplier * POINTER_SIZE)
        if isinstance(t, Array):
            multiplier *= t.nelems
            t = t.type
        elif isinstance(t, (*_QUALIFIERS, Typedef, Var)):
            t = t.type
        else:
            raise BTFError(f"{t} has no size", type_id=t.id)
    raise BTFError("type chain too long or cyclic while computing its size", type_id=t.id)


def _checked_size(t: Type, size: int) -> int:
    """``size``, the size of ``t``, if BTF can express it (the kernel rejects larger arrays);
    callers allocate by it, so an array of arrays of 2**32 - 1 elements must not get through."""
    if size > MAX_SIZE:
        raise BTFError(f"{t} is {size} bytes, more than a BTF size can be ({MAX_SIZE})", type_id=t.id)
    return size


def alignof(t: Type) -> int:
    """The alignment in bytes of type ``t`` (1 for packed structs), like libbpf's ``btf__align_of``.

    ``BTFError`` for types without an alignment, for a struct/union that contains itself
    by value, and for structs/unions nested more than :data:`MAX_NESTING_DEPTH` deep.
    """
    return _alignof(t, {}, 0)


def _alignof(t: Type, memo: dict[int, int], depth: int) -> int:
    """:func:`alignof`, sharing ``memo`` (see :func:`_composite_alignment`) along one walk."""
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(t, (Int, Enum, Enum64, Float)):
            return min(t.size, POINTER_SIZE) or 1
        if isinstance(t, Pointer):
            return POINTER_SIZE
        if isinstance(t, (Array, *_QUALIFIERS, Typedef, Var)):
            t = t.type
        elif isinstance(t, (Struct, Union)):
            return _composite_alignment(t, memo, depth)
        else:
            raise BTFError(f"{t} has no alignment", type_id=t.id)
    raise BTFError("type chain too long or cyclic while computing its alignment", type_id=t.id)


#: ``memo`` value of a struct/union whose alignment is being computed: meeting it again
#: while walking its members means it contains itself.
_IN_PROGRESS = 0


def _composite_alignment(t: Struct | Union, memo: dict[int, int], depth: int) -> int:
    """The alignment of ``t``, ``depth`` structs/unions deep in the walk.

    ``memo`` maps the IDs of the structs/unions met so far in this walk to their alignment
    (``_IN_PROGRESS`` while their members are being walked). It makes a walk linear in the
    number of types (a struct of two copies of a struct of two copies of ... would
    otherwise take exponential time) and turns containment cycles into ``BTFError``.
    """
    known = memo.get(t.id)
    if known is not None:
        if known == _IN_PROGRESS:
            raise BTFError(f"{t} contains itself by value", type_id=t.id)
        return known
    if depth >= MAX_NESTING_DEPTH:
        raise BTFError(f"structs/unions nested more than {MAX_NESTING_DEPTH} deep", type_id=t.id)
    memo[t.id] = _IN_PROGRESS
    align = 1
    for m in t.members:
        member_align = _alignof(m.type, memo, depth + 1)
        if m.bitfield_size == 0 and m.offset % (8 * member_align):
            align = 1  # a member is misaligned: the struct is packed
            break
        align = max(align, member_align)
    else:
        if t.size % align:
            align = 1  # the size is not a multiple of the alignment: packed
    memo[t.id] = align
    return align


def is_packed(t: Struct | Union) -> bool:
    """True if ``t`` can only be laid out with ``__attribute__((packed))``."""
    memo: dict[int, int] = {}
    natural = 1
    for m in t.members:
        natural = max(natural, _alignof(m.type, memo, 1))
    return _composite_alignment(t, memo, 0) == 1 and natural > 1
