"""Enumerations of the BTF wire format, with the kernel's values (``include/uapi/linux/btf.h``)."""

from __future__ import annotations

import enum


class Kind(enum.IntEnum):
    """A BTF type kind (``BTF_KIND_*``). ``str()`` gives the kernel's name, e.g. ``"STRUCT"``."""

    UNKNOWN = 0  # ID 0, Void, has no record of its own
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19

    def __str__(self) -> str:
        return self.name


class IntEncoding(enum.IntFlag):
    """The encoding bits of a ``BTF_KIND_INT`` (``BTF_INT_SIGNED`` and friends)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4

    def __str__(self) -> str:
        if self == IntEncoding.NONE:
            return "(none)"
        if self in (IntEncoding.SIGNED, IntEncoding.CHAR, IntEncoding.BOOL):
            return str(self.name)
        return "UNKN"


class FuncLinkage(enum.IntEnum):
    """Linkage of a ``BTF_KIND_FUNC`` (``BTF_FUNC_*``)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2

    def __str__(self) -> str:
        return self.name.lower()


class VarLinkage(enum.IntEnum):
    """Linkage of a ``BTF_KIND_VAR`` (``BTF_VAR_*``)."""

    STATIC = 0
    GLOBAL = 1  # BTF_VAR_GLOBAL_ALLOCATED
    EXTERN = 2  # BTF_VAR_GLOBAL_EXTERN

    def __str__(self) -> str:
        return self.name.lower()
