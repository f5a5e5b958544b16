"""Creating one map from a ``MapSpec``: the small steps behind :meth:`loader.Map.create`.

1. :func:`fixup_map_attrs` — derived values, never written back into the spec
   (perf event arrays get one slot per possible CPU, maps of maps a 4-byte value).
2. :func:`create_inner_template` — maps of maps need a temporary inner map whose fd
   is the template (closed again once the outer map exists).
3. :func:`load_map_btf` — the key/value types, marshaled on their own and loaded; or,
   within :func:`loader.load_collection`, the collection's BTF loaded once for all its
   maps (:class:`SharedBTF`).
4. :func:`create_with_btf_fallback` — ``BPF_MAP_CREATE``; if the kernel refuses the
   BTF, again without it (as cilium does), remembering why. A map the kernel refuses
   with the collection's shared BTF goes the per-map way (its own types, then none).
5. :func:`fill_and_freeze` — initial contents, then ``BPF_MAP_FREEZE`` if asked.

On any failure everything created so far is closed.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

import attrs as attrs_lib

import btf
from btf.marshal import marshal_with_strings
from btf.wire import ByteOrder
from ebpfspec import MapSpec, MapType
from loader.backend import Backend, MapAttrs
from loader.errors import LoaderError, MapError
from loader.map import Map, map_attrs_name

_PERF_EVENT_ARRAY = MapType.PERF_EVENT_ARRAY
_NATIVE_ORDER: ByteOrder = "little" if sys.byteorder == "little" else "big"


class SharedBTF:
    """A collection's BTF (``types``) loaded once, for every map whose key/value types are in it.

    ``fd`` stays owned by the caller (closed once every map exists). The marshaled blob
    holds ``types``' own types in ID order, so a type's ID in the kernel is its ID in
    ``types``. Only for BTF that is not split (no base).
    """

    __slots__ = ("fd", "types")

    def __init__(self, fd: int, types: btf.Spec):
        self.fd = fd
        self.types = types

    def type_ids(self, spec: MapSpec) -> tuple[int, int] | None:
        """``(key_type_id, value_type_id)`` of ``spec`` in this BTF; None if a type belongs elsewhere."""
        key, value = spec.key, spec.value
        types = self.types
        if key is not None and (key.spec is not types or key.id <= 0):
            return None
        if value is not None and (value.spec is not types or value.id <= 0):
            return None
        return (key.id if key is not None else 0), (value.id if value is not None else 0)


def marshal_shared_btf(types: btf.Spec, strings: tuple[str, ...] = ()) -> tuple[bytes, dict[str, int]]:
    """``types``' own types as one raw BTF blob in the machine's byte order, IDs unchanged,
    with ``strings`` (programs' line-info file names and source lines) added to its string
    table; also each of those strings' offset in it.

    ``BTFError`` for split BTF (IDs would start after a base the kernel is not given).
    Remembered per spec object while it lives (a ``btf.Spec`` does not change) and per
    ``strings``, so loading the same collection again does not marshal it again.
    """
    entry = _MARSHALED.get(id(types))
    if entry is not None and entry[0]() is types and entry[1] == strings:
        return entry[2], dict(entry[3])
    if types.base is not None:
        raise btf.BTFError("split BTF cannot be loaded as a collection's BTF on its own")
    raw, offsets = marshal_with_strings(list(types.own_types()), strings, byte_order=_NATIVE_ORDER)
    _remember(_MARSHALED, _MARSHALED_SIZE, types, (strings, raw, dict(offsets)))
    return raw, offsets


#: :func:`marshal_shared_btf`'s blobs by ``id`` of the spec, with a weak reference to it (an
#: entry counts only while the reference gives the very spec asked about); cleared when full.
_MARSHALED: dict[int, tuple[Any, ...]] = {}  # (weakref.ref[btf.Spec], strings, bytes, offsets)
_MARSHALED_SIZE = 16


#: Map types the kernel creates with no key/value BTF (their ``map_check_btf`` refuses any):
#: their types are never sent, as libbpf does, instead of a refused attempt and a fallback.
TYPES_WITHOUT_BTF = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
    MapType.SOCKMAP, MapType.SOCKHASH, MapType.QUEUE, MapType.STACK,
})


def create_map(spec: MapSpec, backend: Backend, shared_btf: SharedBTF | None = None) -> Map:
    """A live map for ``spec`` (see the module docstring for the steps).

    ``shared_btf``: a collection's BTF already loaded, used when ``spec``'s key/value
    types belong to it (else, or if the kernel refuses the map with it, the map's own
    types are loaded for it, as without ``shared_btf``).
    """
    fields, plain = _checked(spec, backend)  # plain: None for a map of maps (it needs its template's fd)
    inner = create_inner_template(spec, backend, shared_btf) if plain is None else None
    try:
        if inner is not None:
            inner_fd = inner.fileno()
            attrs = _map_attrs(fields, inner_fd)
        else:
            assert plain is not None
            inner_fd = -1
            attrs = plain
        if (spec.key is None and spec.value is None) or spec.type in TYPES_WITHOUT_BTF:
            fd, fallback = _create(spec, attrs, backend), ""
        else:
            fd, fallback = create_with_btf_fallback(
                spec, attrs, backend, shared_btf, btf_attrs=functools.partial(_map_attrs, fields, inner_fd))
    finally:
        if inner is not None:
            inner.close()
    _, key_size, value_size, max_entries, flags, *_ = fields
    m = Map._wrap(fd, backend, spec.name, spec.type, key_size, value_size, max_entries, flags, spec, fallback)
    if spec.contents or spec.freeze:
        try:
            fill_and_freeze(m, spec)
        except BaseException:
            m.close()
            raise
    return m


def check_map_spec(spec: MapSpec) -> None:
    """What :func:`create_map` refuses before creating anything: ``MapError(EINVAL)`` for a spec
    that contradicts itself, ``LoaderError`` for non-zero unknown trailing bytes or contents
    that name programs/maps."""
    try:
        spec.check()
    except ValueError as err:
        raise MapError(errno.EINVAL, "create", spec.name, str(err)) from None
    extra = spec.extra
    if extra and any(extra):
        raise LoaderError(
            f"map {spec.name!r}: its definition has {len(extra)} trailing bytes that are not all zero "
            f"({extra.hex()}); their meaning (e.g. iproute2's id/pinning) is not understood. "
            "Use spec.replace(extra=None) to create the map from its standard fields only")
    contents = spec.contents
    if contents:
        named = [kv.value for kv in contents if isinstance(kv.value, str)]
        if named:
            raise LoaderError(f"map {spec.name!r}: contents name {named[:3]}; maps whose contents refer to "
                              "programs or maps by name are filled by loader.load_collection")


#: What :func:`_fields` gives: map_type, key_size, value_size, max_entries, map_flags,
#: numa_node, name, map_extra (as ``MapAttrs`` takes them).
_Fields = tuple[int, int, int, int, int, int, str, int]


#: Specs already checked, by ``id``: ``(weak reference, fields, attrs without BTF or None for
#: maps of maps)``. A ``MapSpec`` is immutable, so what :func:`check_map_spec` and
#: :func:`_fields` make of one never changes; an entry counts only while its reference still
#: gives the very spec asked about. Not kept when a fixup depends on the backend; cleared when full.
_CHECKED: dict[int, tuple[Any, ...]] = {}  # (weakref.ref[MapSpec], _Fields, MapAttrs | None)
_CHECKED_SIZE = 1024


def _checked(spec: MapSpec, backend: Backend) -> tuple[_Fields, MapAttrs | None]:
    """``spec`` checked (:func:`check_map_spec`): its fields, and its attributes without BTF
    (None for a map of maps, whose attributes need its inner template)."""
    entry = _CHECKED.get(id(spec))
    if entry is not None and entry[0]() is spec:
        return entry[1], entry[2]
    check_map_spec(spec)
    fields = _fields(spec, backend)
    plain = None if spec.type.is_map_in_map else _build_attrs(fields)
    if not (spec.max_entries == 0 and spec.type is _PERF_EVENT_ARRAY):  # (the possible CPUs: per backend)
        _remember(_CHECKED, _CHECKED_SIZE, spec, (fields, plain))
    return fields, plain


def _remember(memo: dict[int, tuple[Any, ...]], size: int, obj: Any, value: tuple[Any, ...]) -> None:
    """``memo[id(obj)] = (weak reference to obj, *value)`` (nothing for an object without weak references)."""
    try:
        ref = weakref.ref(obj)
    except TypeError:
        return
    if len(memo) >= size:
        memo.clear()
    memo[id(obj)] = (ref, *value)


def fixup_map_attrs(spec: MapSpec, backend: Backend) -> MapAttrs:
    """``BPF_MAP_CREATE`` attributes for ``spec``, with the loader's fixups applied."""
    return _build_attrs(_fields(spec, backend))


def _fields(spec: MapSpec, backend: Backend) -> _Fields:
    """The fields of :func:`fixup_map_attrs`' ``MapAttrs``, fixups applied."""
    map_type = spec.type
    max_entries = spec.max_entries
    if max_entries == 0 and map_type is _PERF_EVENT_ARRAY:
        max_entries = backend.possible_cpus()
    value_size = 4 if map_type.is_map_in_map else spec.value_size
    return (int(map_type), spec.key_size, value_size, max_entries, spec.flags, spec.numa_node,
            map_attrs_name(spec.name), spec.map_extra)


def _map_attrs(fields: _Fields, inner_map_fd: int = -1, btf_fd: int = -1, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0) -> MapAttrs:
    """``MapAttrs`` of ``fields`` and the given descriptors/type ids (the others at their defaults).

    Remembered per ``fields`` object (one per checked spec) and the four numbers: building
    a ``MapAttrs`` costs as much as a third of the rest of a creation, and loading the same
    collection again usually meets the same descriptor numbers.
    """
    key = (id(fields), inner_map_fd, btf_fd, btf_key_type_id, btf_value_type_id)
    entry = _ATTRS.get(key)
    if entry is not None and entry[0] is fields:
        return entry[1]
    attrs = _build_attrs(fields, inner_map_fd, btf_fd, btf_key_type_id, btf_value_type_id)
    if len(_ATTRS) >= _ATTRS_SIZE:
        _ATTRS.clear()
    _ATTRS[key] = (fields, attrs)  # (the entry keeps ``fields`` alive: its id is not reused meanwhile)
    return attrs


def _build_attrs(fields: _Fields, inner_map_fd: int = -1, btf_fd: int = -1, btf_key_type_id: int = 0,
                 btf_value_type_id: int = 0) -> MapAttrs:
    map_type, key_size, value_size, max_entries, map_flags, numa_node, name, map_extra = fields
    return MapAttrs(
        map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
        map_flags=map_flags, numa_node=numa_node, name=name, map_extra=map_extra,
        inner_map_fd=inner_map_fd, btf_fd=btf_fd, btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
    )


#: :func:`_map_attrs`' results: ``(id(fields), inner_map_fd, btf_fd, key id, value id) -> (fields, attrs)``.
_ATTRS: dict[tuple[int, int, int, int, int], tuple[_Fields, MapAttrs]] = {}
_ATTRS_SIZE = 2048


def create_inner_template(spec: MapSpec, backend: Backend, shared_btf: SharedBTF | None = None) -> Map | None:
    """The temporary inner map a map of maps is created against (None for other maps)."""
    if not spec.type.is_map_in_map:
        return None
    assert spec.inner_map is not None  # spec.check() ensures it
    template = spec.inner_map.replace(contents=(), freeze=False, pinning=0)
    try:
        return create_map(template, backend, shared_btf)
    except LoaderError as err:
        raise LoaderError(f"map {spec.name!r}: creating its inner map template failed: {err}") from err


#: Errnos with which ``BPF_MAP_CREATE`` refuses a map's BTF (a mismatch, or no support for it);
#: other errors are not retried without BTF. 524 is the kernel's ENOTSUPP.
BTF_REFUSED = frozenset({errno.EINVAL, errno.EOPNOTSUPP, 524})


def load_map_btf(spec: MapSpec, backend: Backend) -> tuple[int, int, int]:
    """Load the key/value types: ``(btf_fd, key_type_id, value_type_id)``; raises OSError/BTFError."""
    roots = [t for t in (spec.key, spec.value) if t is not None]
    raw, ids = btf.marshal_subset(roots, byte_order=_NATIVE_ORDER)
    fd = backend.btf_load(raw)
    key_id = ids[spec.key.id] if spec.key is not None else 0
    value_id = ids[spec.value.id] if spec.value is not None else 0
    return fd, key_id, value_id


def create_with_btf_fallback(
    spec: MapSpec, attrs: MapAttrs, backend: Backend, shared_btf: SharedBTF | None = None, *,
    btf_attrs: Callable[[int, int, int], MapAttrs] | None = None,
) -> tuple[int, str]:
    """Create the map, with its BTF if it has any and the kernel takes it: ``(fd, fallback reason)``.

    ``attrs`` are the attributes without BTF; ``btf_attrs(btf_fd, key_type_id, value_type_id)``
    the same with BTF (default: ``attrs`` with those three fields replaced). With
    ``shared_btf`` holding the map's types that BTF is tried first; if the kernel refuses
    the map with it, the map's own types are loaded and tried, then no BTF at all.
    """
    if spec.key is None and spec.value is None:
        return _create(spec, attrs, backend), ""
    if btf_attrs is None:
        btf_attrs = functools.partial(_with_btf, attrs)
    if shared_btf is not None:
        ids = shared_btf.type_ids(spec)
        if ids is not None:
            try:
                return _create(spec, btf_attrs(shared_btf.fd, *ids), backend), ""
            except MapError as err:
                if err.errno not in BTF_REFUSED:
                    raise
                # Refused with the collection's BTF: the map's own types, then none (as without it).
    try:
        btf_fd, key_id, value_id = load_map_btf(spec, backend)
    except (OSError, btf.BTFError) as err:
        return _create(spec, attrs, backend), f"the kernel refused the map's BTF: {_reason(err)}"
    try:
        try:
            return _create(spec, btf_attrs(btf_fd, key_id, value_id), backend), ""
        except MapError as err:
            if err.errno not in BTF_REFUSED:
                raise
            fd = _create(spec, attrs, backend)  # a second failure here is not about BTF: raise it
            return fd, f"the kernel refused the map with its BTF: {_reason(err)}"
    finally:
        backend.close(btf_fd)


def _with_btf(attrs: MapAttrs, btf_fd: int, key_id: int, value_id: int) -> MapAttrs:
    return attrs_lib.evolve(attrs, btf_fd=btf_fd, btf_key_type_id=key_id, btf_value_type_id=value_id)


def fill_and_freeze(m: Map, spec: MapSpec) -> None:
    """Write ``spec.contents`` into ``m``, then freeze it if ``spec.freeze``."""
    for kv in spec.contents:
        m.update(kv.key or None, kv.value)
    if spec.freeze:
        m.freeze()


def _create(spec: MapSpec, attrs: MapAttrs, backend: Backend) -> int:
    try:
        return backend.map_create(attrs)
    except OSError as err:
        raise MapError(err.errno or errno.EIO, "create", spec.name) from None


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return str(err)
