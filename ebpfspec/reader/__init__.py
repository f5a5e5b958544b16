"""The ELF reader: a BPF object's bytes → :class:`~ebpfspec.CollectionSpec`. No syscalls.

:func:`read_collection` runs the steps in order, each in its own module:
``.BTF``/``.BTF.ext`` (here), maps (:mod:`.btf_maps`, :mod:`.legacy_maps`,
:mod:`.data_sections`), variables and externs, then programs (:mod:`.programs`), and
finally checks that every symbolic reference names something that exists.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
from collections.abc import Iterable
from typing import IO, BinaryIO, TypeVar

import btf
from btf.ext import ExtInfos, load_ext
from ebpfspec.collectionspec import CollectionSpec, ExternKind, ExternSpec
from ebpfspec.elf import SHN_UNDEF, STB_WEAK, STT_SECTION, ObjectFile
from ebpfspec.errors import SpecError
from ebpfspec.mapspec import MapSpec
from ebpfspec.programspec import ProgramSpec
from ebpfspec.reader import btf_maps, legacy_maps
from ebpfspec.reader.btf_maps import read_btf_maps
from ebpfspec.reader.data_sections import datasec_layout, fix_datasecs, read_data_maps, read_variables
from ebpfspec.reader.legacy_maps import read_legacy_maps
from ebpfspec.reader.programs import read_programs

#: Files larger than this are refused before being read.
MAX_OBJECT_SIZE = 256 << 20


def load_collection_spec(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
) -> CollectionSpec:
    """Read a BPF ELF object — a path, its bytes, or a binary file object — into a spec.

    Raises :class:`~ebpfspec.SpecError` for anything malformed or unsupported, naming the
    section, symbol or offset at fault; ``OSError`` if a path cannot be read.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return read_collection(ObjectFile(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        name = str(os.fspath(source))
        return read_collection(ObjectFile(read_object_file(name), name=name))
    if isinstance(source, (io.RawIOBase, io.BufferedIOBase)) or hasattr(source, "read"):
        return read_collection(ObjectFile(_read_bounded(source, "<file>")))
    raise TypeError(f"expected a path, bytes or a binary file, got {type(source).__name__}")


def read_object_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the file at ``path``: at most :data:`MAX_OBJECT_SIZE` (checked before
    reading a regular file), without blocking on a FIFO that has no writer.

    ``SpecError`` if the file is too large; ``OSError`` (naming it) if it cannot be read.
    """
    name = str(os.fspath(path))
    with _open_object(name) as f:
        return _read_opened(f, name)


def _open_object(name: str) -> BinaryIO:
    """Open ``name`` for reading without blocking on a FIFO that has no writer.

    ``open(2)`` of a FIFO waits for a writer; with ``O_NONBLOCK`` it does not, and reads
    then see end-of-file at once (the object is empty) unless a writer has come. The
    descriptor is made blocking again, so reads from a writer wait for its data (a shell's
    ``<(cat prog.o)`` works). A directory is an ``IsADirectoryError`` naming it.
    """
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_opened(f: BinaryIO, name: str) -> bytes:
    """The whole of a file this module opened (binary, at offset 0), at most MAX_OBJECT_SIZE.

    For a regular file the size check comes first, from ``fstat``, and then the read asks for
    one byte more than the file's size (which notices a file that grew since). Asking for
    ``MAX_OBJECT_SIZE + 1`` bytes outright, as :func:`_read_bounded` must for other files,
    has the read allocate a 256 MiB buffer first, several times the cost of reading a small
    object.
    """
    st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode):  # a pipe or device: its size says nothing
        return _read_bounded(f, name)
    if st.st_size > MAX_OBJECT_SIZE:
        raise SpecError(f"{name}: larger than {MAX_OBJECT_SIZE} bytes")
    data = f.read(st.st_size + 1)
    if len(data) > st.st_size:  # it grew: read on, still bounded
        data += _read_bounded(f, name, MAX_OBJECT_SIZE + 1 - len(data))
        if len(data) > MAX_OBJECT_SIZE:
            raise SpecError(f"{name}: larger than {MAX_OBJECT_SIZE} bytes")
    return data


def _read_bounded(f: IO[bytes], name: str, limit: int = MAX_OBJECT_SIZE + 1) -> bytes:
    data = f.read(limit)
    if not isinstance(data, bytes):
        raise TypeError(f"{name}: the file object must be opened in binary mode")
    if len(data) > MAX_OBJECT_SIZE:
        raise SpecError(f"{name}: larger than {MAX_OBJECT_SIZE} bytes")
    return data


def read_collection(obj: ObjectFile) -> CollectionSpec:
    """All the specs of one parsed object file."""
    types, ext = read_types(obj)
    maps = _by_name("map", [*read_btf_maps(obj, types), *read_legacy_maps(obj), *read_data_maps(obj, types)])
    variables = {v.name: v for v in read_variables(obj, types)}
    programs = read_programs(
        obj,
        types,
        ext,
        map_sections=(btf_maps.SECTION, legacy_maps.SECTION),
        license=read_license(obj),
        kernel_version=read_kernel_version(obj),
    )
    called = {i.reference for p in programs for i in p.instructions if i.is_call and i.reference}
    externs = {x.name: x for x in read_externs(obj, types, called)}
    check_references(programs, maps.values(), externs)
    return CollectionSpec(
        maps=maps,
        programs=_by_name("program", programs),
        variables=variables,
        externs=externs,
        types=types,
        byte_order=obj.byte_order,
    )


def read_types(obj: ObjectFile) -> tuple[btf.Spec | None, ExtInfos | None]:
    """The object's ``.BTF`` with its DATASECs fixed (:func:`fix_datasecs`), every type decoded
    and checked, and its ``.BTF.ext`` (None, None without ``.BTF``).

    The plain order is :func:`read_btf` (decode every type as stored), :func:`read_ext`
    (whose string offsets point into the BTF as stored), :func:`fix_datasecs` (whose spec
    decodes every type again). Instead, the stored spec is only indexed, the DATASEC layout
    is taken from it (decoding just the DATASECs), and the every-type check is the decoding
    of the fixed spec, which is kept: each type is decoded once. The fixed spec shares the
    stored one's string table, so ``.BTF.ext`` reads the same strings. If anything is wrong
    the plain order runs instead, so errors are exactly its errors.
    """
    stored = read_btf(obj, decode=False)
    if stored is None:
        return None, None
    try:
        layout = datasec_layout(obj, stored)
        types = stored.with_datasec_layout(layout) if layout else stored
        list(types)  # decode (and so check) every type now, not at first use
    except (btf.BTFError, SpecError):
        stored = read_btf(obj)
        assert stored is not None
        ext = read_ext(obj, stored)
        return fix_datasecs(obj, stored), ext
    return types, read_ext(obj, types)


def read_btf(obj: ObjectFile, *, decode: bool = True) -> btf.Spec | None:
    """The object's ``.BTF`` as stored (None if absent), with ``decode`` every type decoded
    and checked; without, only the header, record index and string table are."""
    section = obj.section(".BTF")
    if section is None:
        return None
    try:
        types = btf.load_spec(obj.contents(section))
        if types.byte_order != obj.byte_order:
            raise SpecError(
                f"BTF is {types.byte_order}-endian in a {obj.byte_order}-endian object", section=".BTF"
            )
        if decode:
            list(types)  # decode (and so check) every type now, not at first use
        return types
    except btf.BTFError as err:
        raise _from_btf_error(err, ".BTF") from err


def read_ext(obj: ObjectFile, types: btf.Spec | None) -> ExtInfos | None:
    """The object's ``.BTF.ext`` (None if absent or if there is no ``.BTF``)."""
    section = obj.section(".BTF.ext")
    if section is None or types is None:
        return None
    try:
        return load_ext(obj.contents(section), types.strings, obj.byte_order)
    except btf.BTFError as err:
        raise _from_btf_error(err, ".BTF.ext") from err


def _from_btf_error(err: btf.BTFError, section: str) -> SpecError:
    wrapped = SpecError(str(err), section=section)  # the message already names the offset
    wrapped.offset = err.offset
    return wrapped


def read_license(obj: ObjectFile) -> str:
    """The ``license`` section's string ("" if absent)."""
    section = obj.section("license")
    if section is None:
        return ""
    raw = obj.contents(section)
    end = raw.find(b"\0")
    if end < 0:
        raise SpecError("license is not NUL-terminated", section="license")
    return raw[:end].decode("utf-8", "replace")


def read_kernel_version(obj: ObjectFile) -> int:
    """The ``version`` section's u32 (0 if absent)."""
    section = obj.section("version")
    if section is None:
        return 0
    raw = obj.contents(section)
    if len(raw) != 4:
        raise SpecError(f"{len(raw)} bytes, expected a 4-byte kernel version", section="version")
    (version,) = struct.unpack("<I" if obj.byte_order == "little" else ">I", raw)
    return int(version)


def read_externs(obj: ObjectFile, types: btf.Spec | None, called: set[str]) -> list[ExternSpec]:
    """Undefined symbols: ``__kconfig`` values, ``__ksym`` variables and kfuncs.

    ``called`` names the symbols programs call: an undefined symbol that is called is a
    function (a kfunc to resolve at load time) even when BTF does not describe it.
    """
    in_datasec = _extern_datasec_members(types)
    externs = []
    for symbol in obj.symbols:
        if symbol.section_index != SHN_UNDEF or not symbol.name or symbol.type == STT_SECTION:
            continue
        kind, t = in_datasec.get(symbol.name, (None, None))
        if kind is None:
            funcs = types.types_by_name(symbol.name, btf.Kind.FUNC) if types is not None else ()
            if funcs or symbol.name in called:
                kind, t = ExternKind.KFUNC, funcs[0] if funcs else None
            else:
                kind, t = ExternKind.KSYM, None
        externs.append(ExternSpec(symbol.name, kind, t, weak=symbol.bind == STB_WEAK))
    return externs


def _extern_datasec_members(types: btf.Spec | None) -> dict[str, tuple[ExternKind, btf.Type]]:
    found: dict[str, tuple[ExternKind, btf.Type]] = {}
    if types is None:
        return found
    for section, kind in ((".kconfig", ExternKind.KCONFIG), (".ksyms", ExternKind.KSYM)):
        for datasec in types.types_by_name(section, btf.Kind.DATASEC):
            assert isinstance(datasec, btf.Datasec)
            for v in datasec.vars:
                member = v.type
                member_kind = ExternKind.KFUNC if isinstance(member, btf.Func) else kind
                found[member.name] = (member_kind, member)
    return found


def check_references(
    programs: Iterable[ProgramSpec], maps: Iterable[MapSpec], externs: dict[str, ExternSpec]
) -> None:
    """Every map/data/extern reference of every program must name something that exists."""
    map_names = {m.name for m in maps}
    for program in programs:
        for insn in program.instructions:
            ref = insn.reference
            if ref is None or insn.is_bpf_to_bpf_call or insn.is_load_of_function_pointer:
                continue
            if insn.is_load_from_map and ref not in map_names:
                raise SpecError(
                    f"refers to map {ref!r}, which is not defined",
                    section=program.section_name,
                    symbol=program.name,
                )
            if not insn.is_load_from_map and ref not in externs:
                raise SpecError(
                    f"refers to {ref!r}, which is neither a map nor an extern",
                    section=program.section_name,
                    symbol=program.name,
                )


_Named = TypeVar("_Named", MapSpec, ProgramSpec)


def _by_name(what: str, items: list[_Named]) -> dict[str, _Named]:
    found: dict[str, _Named] = {}
    for item in items:
        if item.name in found:
            raise SpecError(f"{what} {item.name!r} is defined twice", symbol=item.name)
        found[item.name] = item
    return found
