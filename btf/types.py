"""The BTF type classes: one immutable class per kind.

A type refers to other types by ID (``type_id``, ``Member.type_id``, ...), exactly as the
wire format does, and resolves those IDs through the :class:`~btf.spec.Spec` it belongs to
(``t.type``, ``member.type``). Holding IDs rather than objects keeps every type immutable —
a ``struct list_head`` may point at itself — and lets a spec decode types lazily.

Types are tuples underneath: a tuple is immutable and about five times cheaper to build
than a frozen dataclass, which matters when a spec decodes the kernel's ~126k types and
~170k members. Read them through their named properties (``t.name``, ``t.size``,
``t.members``), never by index; the last element is always the owning spec. The
decoder builds them with ``tuple.__new__(cls, values)`` in ``cls.FIELDS`` order; everyone
else uses the keyword constructors.

Equality compares a type's own fields, including its ID and the IDs it refers to, but not
the spec it belongs to: the same type in a spec and in that spec's copy compare equal.

Thread-safety: types are immutable; share them freely.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self

from btf.errors import BTFError
from btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage

if TYPE_CHECKING:
    from btf.spec import Spec

__all__ = [
    "Array", "Const", "Datasec", "DeclTag", "Enum", "Enum64", "EnumValue", "Float", "Func",
    "FuncProto", "Fwd", "Int", "Member", "Param", "Pointer", "Restrict", "Struct", "Type",
    "TypeTag", "Typedef", "Union", "Var", "VarSecinfo", "Void", "Volatile",
]

_new = tuple.__new__


def _field(index: int, doc: str) -> Any:
    """A read-only property returning element ``index`` of the tuple."""
    return property(itemgetter(index), doc=doc)


def _resolve(spec: Spec | None, type_id: int, owner: object) -> Type:
    if spec is None:
        raise BTFError(f"{owner} is not part of a btf.Spec, so type ID {type_id} cannot be resolved")
    return spec.type_by_id(type_id)


class _Record(tuple):  # type: ignore[type-arg]
    """An immutable record whose last element is the owning spec (left out of equality)."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("spec",)

    spec: Spec | None = _field(-1, "The spec this belongs to (None for a free-standing value).")

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented if not isinstance(other, _Record) else False
        return self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((type(self).__name__, self[:-1]))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={v!r}" for f, v in zip(self.FIELDS[:-1], self, strict=False))
        return f"{type(self).__name__}({shown})"

    def _replace(self, **changes: Any) -> Self:
        values = [changes.pop(f, v) for f, v in zip(self.FIELDS, self, strict=True)]
        if changes:
            raise TypeError(f"{type(self).__name__} has no fields {sorted(changes)}")
        return _new(type(self), values)

    def __copy__(self) -> Self:
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling goes through tuple.__new__
        return (tuple(self),)


class Member(_Record):
    """A member of a struct or union; ``offset`` is in bits, ``bitfield_size`` 0 unless a bitfield."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("name", "type_id", "offset", "bitfield_size", "spec")

    name: str = _field(0, "Member name ('' if anonymous).")
    type_id: int = _field(1, "ID of the member's type.")
    offset: int = _field(2, "Offset from the start of the struct, in bits.")
    bitfield_size: int = _field(3, "Width in bits if a bitfield, else 0.")

    def __new__(cls, name: str, type_id: int, offset: int, bitfield_size: int = 0,
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (name, type_id, offset, bitfield_size, spec))

    @property
    def type(self) -> Type:
        """The member's type."""
        return _resolve(self.spec, self.type_id, f"member '{self.name}'")


class Param(_Record):
    """A parameter of a function prototype; a ``void`` type as last parameter means ``...``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("name", "type_id", "spec")

    name: str = _field(0, "Parameter name ('' if unnamed).")
    type_id: int = _field(1, "ID of the parameter's type.")

    def __new__(cls, name: str, type_id: int, *, spec: Spec | None = None) -> Self:
        return _new(cls, (name, type_id, spec))

    @property
    def type(self) -> Type:
        """The parameter's type."""
        return _resolve(self.spec, self.type_id, f"parameter '{self.name}'")


class VarSecinfo(_Record):
    """A variable's place in a :class:`Datasec`: ``offset`` and ``size`` in bytes."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("type_id", "offset", "size", "spec")

    type_id: int = _field(0, "ID of the variable (a Var, or a Func in .ksyms).")
    offset: int = _field(1, "Offset in the section, in bytes.")
    size: int = _field(2, "Size in bytes.")

    def __new__(cls, type_id: int, offset: int, size: int, *, spec: Spec | None = None) -> Self:
        return _new(cls, (type_id, offset, size, spec))

    @property
    def type(self) -> Type:
        """The variable."""
        return _resolve(self.spec, self.type_id, "datasec variable")


class EnumValue(NamedTuple):
    """One enumerator: ``name`` = ``value``."""

    name: str
    value: int


class Type(_Record):
    """Base of every BTF type: ``id`` in its spec, ``name`` (``""`` when anonymous), ``kind``."""

    __slots__ = ()
    kind: ClassVar[Kind] = Kind.UNKNOWN
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "spec")

    id: int = _field(0, "The type's ID in its spec.")
    name: str = _field(1, "The type's name, '' if anonymous.")

    def refs(self) -> tuple[int, ...]:
        """IDs of the types this type refers to, in wire order."""
        return ()

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        """A copy with ID ``new_id``, every referenced ID passed through ``remap``, and no spec."""
        return self._replace(id=new_id, spec=None)

    def bound(self, spec: Spec) -> Self:
        """The same type, belonging to ``spec``."""
        return self._replace(spec=spec)

    def __str__(self) -> str:
        return f"{self.kind} '{self.name or '(anon)'}' [{self.id}]"


class Void(Type):
    """ID 0: ``void``. It has no wire record."""

    __slots__ = ()

    def __new__(cls, id: int = 0, name: str = "", *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, spec))


class Int(Type):
    """``BTF_KIND_INT``: an integer of ``size`` bytes; ``bits`` wide at ``bit_offset`` inside it."""

    __slots__ = ()
    kind = Kind.INT
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "size", "encoding", "bit_offset", "bits", "spec")

    size: int = _field(2, "Size in bytes.")
    encoding: IntEncoding = _field(3, "SIGNED / CHAR / BOOL bits.")
    bit_offset: int = _field(4, "Offset of the value inside the storage, in bits (normally 0).")
    bits: int = _field(5, "Width of the value in bits.")

    def __new__(cls, id: int, name: str, size: int, encoding: IntEncoding = IntEncoding.NONE,
                bit_offset: int = 0, bits: int | None = None, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, size, encoding, bit_offset,
                          size * 8 if bits is None else bits, spec))

    @property
    def signed(self) -> bool:
        """True for signed integers."""
        return bool(self.encoding & IntEncoding.SIGNED)


class _RefType(Type):
    """A kind that refers to one other type through ``type_id``."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "spec")

    type_id: int = _field(2, "ID of the referenced type.")

    def __new__(cls, id: int, name: str, type_id: int, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, spec))

    @property
    def type(self) -> Type:
        """The referenced type."""
        return _resolve(self.spec, self.type_id, self)

    def refs(self) -> tuple[int, ...]:
        return (self.type_id,)

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        return self._replace(id=new_id, type_id=remap(self.type_id), spec=None)


class Pointer(_RefType):
    """``BTF_KIND_PTR``: a pointer to ``type`` (8 bytes on BPF)."""

    __slots__ = ()
    kind = Kind.PTR


class Typedef(_RefType):
    """``BTF_KIND_TYPEDEF``: ``name`` is another name for ``type``."""

    __slots__ = ()
    kind = Kind.TYPEDEF


class Volatile(_RefType):
    """``BTF_KIND_VOLATILE`` qualifier."""

    __slots__ = ()
    kind = Kind.VOLATILE


class Const(_RefType):
    """``BTF_KIND_CONST`` qualifier."""

    __slots__ = ()
    kind = Kind.CONST


class Restrict(_RefType):
    """``BTF_KIND_RESTRICT`` qualifier."""

    __slots__ = ()
    kind = Kind.RESTRICT


class TypeTag(_RefType):
    """``BTF_KIND_TYPE_TAG``: ``__attribute__((btf_type_tag(name)))`` on ``type``.

    ``attribute`` is the record's kind_flag: the tag is a plain ``__attribute__`` (6.13+).
    """

    __slots__ = ()
    kind = Kind.TYPE_TAG
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "attribute", "spec")

    attribute: bool = _field(3, "The record's kind_flag.")

    def __new__(cls, id: int, name: str, type_id: int, attribute: bool = False,
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, attribute, spec))


class Func(_RefType):
    """``BTF_KIND_FUNC``: a function; ``type`` is its :class:`FuncProto`."""

    __slots__ = ()
    kind = Kind.FUNC
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "linkage", "spec")

    linkage: FuncLinkage = _field(3, "static, global or extern.")

    def __new__(cls, id: int, name: str, type_id: int, linkage: FuncLinkage = FuncLinkage.STATIC,
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, linkage, spec))


class Var(_RefType):
    """``BTF_KIND_VAR``: a global variable of ``type``."""

    __slots__ = ()
    kind = Kind.VAR
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "linkage", "spec")

    linkage: VarLinkage = _field(3, "static, global or extern.")

    def __new__(cls, id: int, name: str, type_id: int, linkage: VarLinkage = VarLinkage.STATIC,
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, linkage, spec))


class DeclTag(_RefType):
    """``BTF_KIND_DECL_TAG``: a tag on ``type``, or on its member/param ``component_idx`` (-1: none)."""

    __slots__ = ()
    kind = Kind.DECL_TAG
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "component_idx", "attribute", "spec")

    component_idx: int = _field(3, "Index of the tagged member or parameter, -1 for the type.")
    attribute: bool = _field(4, "The record's kind_flag.")

    def __new__(cls, id: int, name: str, type_id: int, component_idx: int = -1,
                attribute: bool = False, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, component_idx, attribute, spec))


class Array(Type):
    """``BTF_KIND_ARRAY``: ``nelems`` elements of ``type``, indexed by ``index_type``."""

    __slots__ = ()
    kind = Kind.ARRAY
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "type_id", "index_type_id", "nelems", "spec")

    type_id: int = _field(2, "ID of the element type.")
    index_type_id: int = _field(3, "ID of the index type.")
    nelems: int = _field(4, "Number of elements.")

    def __new__(cls, id: int, name: str, type_id: int, index_type_id: int, nelems: int,
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, type_id, index_type_id, nelems, spec))

    @property
    def type(self) -> Type:
        """The element type."""
        return _resolve(self.spec, self.type_id, self)

    @property
    def index_type(self) -> Type:
        """The index type."""
        return _resolve(self.spec, self.index_type_id, self)

    def refs(self) -> tuple[int, ...]:
        return (self.type_id, self.index_type_id)

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        return self._replace(id=new_id, type_id=remap(self.type_id),
                             index_type_id=remap(self.index_type_id), spec=None)


class _Composite(Type):
    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "size", "members", "spec")

    size: int = _field(2, "Size in bytes.")
    members: tuple[Member, ...] = _field(3, "The members, in declaration order.")

    def __new__(cls, id: int, name: str, size: int, members: tuple[Member, ...] = (),
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, size, tuple(members), spec))

    def refs(self) -> tuple[int, ...]:
        return tuple(m.type_id for m in self.members)

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        members = tuple(
            Member(m.name, remap(m.type_id), m.offset, m.bitfield_size) for m in self.members
        )
        return self._replace(id=new_id, members=members, spec=None)

    def bound(self, spec: Spec) -> Self:
        members = tuple(m._replace(spec=spec) for m in self.members)
        return self._replace(members=members, spec=spec)

    def member(self, name: str) -> Member:
        """The member called ``name``; ``KeyError`` if there is none."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"{self} has no member {name!r}")

    def __repr__(self) -> str:
        cls = type(self).__name__
        return f"{cls}(id={self.id}, name={self.name!r}, size={self.size}, members=<{len(self.members)}>)"


class Struct(_Composite):
    """``BTF_KIND_STRUCT`` of ``size`` bytes."""

    __slots__ = ()
    kind = Kind.STRUCT


class Union(_Composite):
    """``BTF_KIND_UNION`` of ``size`` bytes."""

    __slots__ = ()
    kind = Kind.UNION


class _EnumBase(Type):
    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "size", "values", "signed", "spec")

    size: int = _field(2, "Size in bytes.")
    values: tuple[EnumValue, ...] = _field(3, "The enumerators, in declaration order.")
    signed: bool = _field(4, "True if the values are signed (the record's kind_flag).")

    def __new__(cls, id: int, name: str, size: int, values: tuple[EnumValue, ...] = (),
                signed: bool = False, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, size, tuple(values), signed, spec))

    def value_of(self, name: str) -> int:
        """The value of enumerator ``name``; ``KeyError`` if there is none."""
        for v in self.values:
            if v.name == name:
                return v.value
        raise KeyError(f"{self} has no enumerator {name!r}")

    def __repr__(self) -> str:
        cls = type(self).__name__
        return f"{cls}(id={self.id}, name={self.name!r}, size={self.size}, values=<{len(self.values)}>)"


class Enum(_EnumBase):
    """``BTF_KIND_ENUM``: enumerators of up to 32 bits."""

    __slots__ = ()
    kind = Kind.ENUM


class Enum64(_EnumBase):
    """``BTF_KIND_ENUM64``: 64-bit enumerators."""

    __slots__ = ()
    kind = Kind.ENUM64


class Fwd(Type):
    """``BTF_KIND_FWD``: a forward declaration of a struct (or of a union if ``union``)."""

    __slots__ = ()
    kind = Kind.FWD
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "union", "spec")

    union: bool = _field(2, "True for 'union name;', False for 'struct name;'.")

    def __new__(cls, id: int, name: str, union: bool = False, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, union, spec))


class FuncProto(Type):
    """``BTF_KIND_FUNC_PROTO``: a function signature."""

    __slots__ = ()
    kind = Kind.FUNC_PROTO
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "return_type_id", "params", "spec")

    return_type_id: int = _field(2, "ID of the return type (0 for void).")
    params: tuple[Param, ...] = _field(3, "The parameters.")

    def __new__(cls, id: int, name: str, return_type_id: int, params: tuple[Param, ...] = (),
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, return_type_id, tuple(params), spec))

    @property
    def return_type(self) -> Type:
        """The return type (``Void`` for ``void``)."""
        return _resolve(self.spec, self.return_type_id, self)

    def refs(self) -> tuple[int, ...]:
        return (self.return_type_id, *(p.type_id for p in self.params))

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        params = tuple(Param(p.name, remap(p.type_id)) for p in self.params)
        return self._replace(id=new_id, return_type_id=remap(self.return_type_id),
                             params=params, spec=None)

    def bound(self, spec: Spec) -> Self:
        params = tuple(p._replace(spec=spec) for p in self.params)
        return self._replace(params=params, spec=spec)


class Datasec(Type):
    """``BTF_KIND_DATASEC``: the variables of an ELF data section such as ``.data``."""

    __slots__ = ()
    kind = Kind.DATASEC
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "size", "vars", "spec")

    size: int = _field(2, "Size of the section in bytes.")
    vars: tuple[VarSecinfo, ...] = _field(3, "The variables, by offset.")

    def __new__(cls, id: int, name: str, size: int, vars: tuple[VarSecinfo, ...] = (),
                *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, size, tuple(vars), spec))

    def refs(self) -> tuple[int, ...]:
        return tuple(v.type_id for v in self.vars)

    def with_refs(self, remap: Callable[[int], int], *, new_id: int) -> Self:
        secinfos = tuple(VarSecinfo(remap(v.type_id), v.offset, v.size) for v in self.vars)
        return self._replace(id=new_id, vars=secinfos, spec=None)

    def bound(self, spec: Spec) -> Self:
        secinfos = tuple(v._replace(spec=spec) for v in self.vars)
        return self._replace(vars=secinfos, spec=spec)


class Float(Type):
    """``BTF_KIND_FLOAT`` of ``size`` bytes."""

    __slots__ = ()
    kind = Kind.FLOAT
    FIELDS: ClassVar[tuple[str, ...]] = ("id", "name", "size", "spec")

    size: int = _field(2, "Size in bytes.")

    def __new__(cls, id: int, name: str, size: int, *, spec: Spec | None = None) -> Self:
        return _new(cls, (id, name, size, spec))
