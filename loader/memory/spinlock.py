"""Where a map value's ``struct bpf_spin_lock`` fields are, found by Linux 6.18's rules.

The kernel looks for special fields in BTF twice (``btf_parse_fields`` in
``kernel/bpf/btf.c``): when BTF is loaded, every struct with a member of the type
``struct bpf_spin_lock`` is searched (``btf_parse_struct_metas``), and a search that
fails, or finds nothing, refuses the BTF; when a map is created with BTF, its value type
is searched (``map_check_btf``), and a search that fails leaves the map without special
fields. :class:`~loader.memory.MemoryBackend` models the spin locks of both searches;
other special fields (timers, kptrs, list heads, ...) are not recognised. Each rule
below was checked against Linux 6.18:

- the value type is resolved through typedefs and qualifiers, then must be a struct
  (its members searched) or a DATASEC (its variables, whose sizes must match their
  types); anything else (a union, an int) has no special fields;
- a member's own type is used, arrays walked through (``nelems`` multiplied; no
  elements: skipped); typedefs and qualifiers are *not* skipped there, so a member of a
  ``typedef struct bpf_spin_lock lock_t`` is no lock;
- a type *named* ``bpf_spin_lock`` (of any kind) counts once per struct: a second one in
  the same struct fails the search (E2BIG); it is a lock only if it is a struct of 4
  bytes at a 4-byte aligned offset (else ignored), and not in an array of more than one
  element (EINVAL);
- another struct member (not a union) is searched in turn, its offsets relative to it
  (so a lock there may end up unaligned in the value), with a count of names of its
  own: locks in two nested structs are two locks, both special. A nested struct that
  holds a lock cannot be repeated in an array (EINVAL);
- a member at a bit offset that is not a whole byte fails the search (EINVAL); more than
  11 fields (``BTF_FIELDS_MAX``) E2BIG; 32 levels of arrays or nesting E2BIG.

A lock's 4 bytes are never written from user space and read back as zeros.
"""

from __future__ import annotations

import errno

import btf
from loader.memory.objects import oserror

__all__ = [
    "SPIN_LOCK_SIZE", "check_struct_spin_locks", "spin_lock_offsets", "value_spin_locks", "without_locks",
]

#: ``sizeof(struct bpf_spin_lock)`` (also its alignment).
SPIN_LOCK_SIZE = 4
#: The name that makes a type a spin lock.
_LOCK_NAME = "bpf_spin_lock"
#: ``BTF_FIELDS_MAX``: the most special fields one value may have.
_FIELDS_MAX = 11
#: ``MAX_RESOLVE_DEPTH``: levels of arrays, or of nested structs, searched at most.
_MAX_DEPTH = 32


def spin_lock_offsets(t: btf.Type) -> tuple[int, ...]:
    """``btf_find_field`` for spin locks: the offsets of the locks in a value of type ``t``.

    ``t`` is already resolved (no typedef or qualifier on top). ``OSError`` (EINVAL,
    E2BIG) where the kernel's search fails.
    """
    found: list[int] = []
    if isinstance(t, btf.Struct):
        _struct(t, 0, found, 0)
    elif isinstance(t, btf.Datasec):
        seen = [False]
        for v in t.vars:
            var = v.type
            if isinstance(var, btf.Var):
                _field(var.type, v.offset, v.size, seen, found, 0)
    else:
        raise oserror(errno.EINVAL, f"a {t.kind.name.lower()} value has no fields")
    return tuple(found)


def value_spin_locks(value: btf.Type) -> tuple[int, ...]:
    """The spin locks of a map whose BTF value type is ``value`` (resolved), as ``map_check_btf``
    records them: a failed search leaves the map without any."""
    try:
        return spin_lock_offsets(value)
    except OSError:
        return ()


def check_struct_spin_locks(spec: btf.Spec) -> None:
    """``btf_parse_struct_metas`` for spin locks, at ``BPF_BTF_LOAD``.

    The first struct named ``bpf_spin_lock`` is the lock type; each struct with a member
    of exactly that type (by id) is searched: the search's error, or EFAULT if it finds
    no lock (the member being unaligned or of the wrong size), refuses the BTF.
    """
    candidates = spec.types_by_name(_LOCK_NAME, btf.Kind.STRUCT)  # in id order
    if not candidates:
        return
    lock_id = candidates[0].id
    for t in spec:
        if isinstance(t, btf.Struct) and any(m.type_id == lock_id for m in t.members):
            try:
                found = spin_lock_offsets(t)
            except OSError as err:
                raise oserror(err.errno or errno.EINVAL, f"struct {t.name!r} (BTF id {t.id}): "
                                                         f"{err.strerror}") from None
            if not found:
                raise oserror(errno.EFAULT, f"struct {t.name!r} (BTF id {t.id}): its bpf_spin_lock "
                                            "member is unaligned or not 4 bytes")


def without_locks(value: bytes, offsets: tuple[int, ...]) -> bytes:
    """``value`` with the bytes of the locks at ``offsets`` zeroed."""
    out = bytearray(value)
    for off in offsets:
        out[off:off + SPIN_LOCK_SIZE] = bytes(SPIN_LOCK_SIZE)
    return bytes(out)


def _struct(t: btf.Struct, base: int, found: list[int], level: int) -> None:
    """``btf_find_struct_field``: the locks among ``t``'s members, ``t`` being at offset ``base``."""
    seen = [False]  # a name count of this struct's own
    for m in t.members:
        if m.offset % 8:
            raise oserror(errno.EINVAL, f"member {m.name!r} of {t.name!r} is not at a whole byte")
        _field(m.type, m.offset // 8, 0, seen, found, level, base)


def _field(t: btf.Type, off: int, expected_size: int, seen: list[bool], found: list[int], level: int,
           base: int = 0) -> None:
    """``btf_find_field_one``: a member (or variable) of type ``t`` at ``off`` within its container
    (at ``base`` in the value); ``expected_size`` is a DATASEC variable's size (0: any)."""
    nelems = 1
    depth = 0
    while depth < _MAX_DEPTH and isinstance(t, btf.Array):
        nelems *= t.nelems
        t = t.type
        depth += 1
    if depth == _MAX_DEPTH:
        raise oserror(errno.E2BIG, "arrays nested too deep")
    if nelems == 0:
        return
    if t.name != _LOCK_NAME:
        if not isinstance(t, btf.Struct):
            return
        if expected_size and expected_size != t.size * nelems:
            return
        # btf_find_nested_struct
        if level + 1 >= _MAX_DEPTH:
            raise oserror(errno.E2BIG, "structs nested too deep")
        before = len(found)
        _struct(t, base + off, found, level + 1)
        if len(found) > before and nelems > 1:
            raise oserror(errno.EINVAL, f"struct {t.name!r} with a bpf_spin_lock in an array")
        return
    if seen[0]:
        raise oserror(errno.E2BIG, "two bpf_spin_lock in one struct")
    seen[0] = True
    if expected_size and expected_size != SPIN_LOCK_SIZE * nelems:
        return
    if off % SPIN_LOCK_SIZE or not isinstance(t, btf.Struct) or t.size != SPIN_LOCK_SIZE:
        return  # unaligned, or not the kernel's struct: no lock
    if len(found) >= _FIELDS_MAX:
        raise oserror(errno.E2BIG, f"more than {_FIELDS_MAX} special fields")
    if nelems > 1:
        raise oserror(errno.EINVAL, "an array of bpf_spin_lock")
    found.append(base + off)
