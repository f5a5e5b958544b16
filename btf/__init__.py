"""BTF, the BPF Type Format: parse, inspect, marshal and format it as C.

Stdlib only; no syscalls. Start with :func:`load_spec` (raw BTF) or
:func:`load_kernel_spec` (the running kernel's types).
"""

from btf.codec import Codec, decode_value, encode_value
from btf.core import CoreCache, CoreResult
from btf.errors import BTFError
from btf.format_c import format_c
from btf.kernel import load_kernel_spec, load_module_spec
from btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage
from btf.layout import alignof, is_packed, sizeof, skip_qualifiers, skip_qualifiers_and_typedefs
from btf.marshal import marshal_subset, marshal_types
from btf.spec import Spec, load_spec
from btf.types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Pointer,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Void,
    Volatile,
)

__all__ = [
    "Array", "BTFError", "Codec", "Const", "CoreCache", "CoreResult", "Datasec", "DeclTag",
    "Enum", "Enum64", "EnumValue",
    "Float", "Func", "FuncLinkage", "FuncProto", "Fwd", "Int", "IntEncoding", "Kind",
    "Member", "Param", "Pointer", "Restrict", "Spec", "Struct", "Type", "TypeTag", "Typedef",
    "Union", "Var", "VarLinkage", "VarSecinfo", "Void", "Volatile", "alignof",
    "decode_value", "encode_value", "format_c", "is_packed",
    "load_kernel_spec", "load_module_spec", "load_spec", "marshal_subset", "marshal_types",
    "sizeof", "skip_qualifiers", "skip_qualifiers_and_typedefs",
]
