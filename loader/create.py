"""Creating one map from a ``MapSpec``: the small steps behind :meth:`loader.Map.create`.

1. :func:`fixup_map_attrs` — derived values, never written back into the spec
   (perf event arrays get one slot per possible CPU, maps of maps a 4-byte value).
2. :func:`create_inner_template` — maps of maps need a temporary inner map whose fd
   is the template (closed again once the outer map exists).
3. :func:`load_map_btf` — the key/value types, marshaled on their own and loaded.
4. :func:`create_with_btf_fallback` — ``BPF_MAP_CREATE``; if the kernel refuses the
   BTF, again without it (as cilium does), remembering why.
5. :func:`fill_and_freeze` — initial contents, then ``BPF_MAP_FREEZE`` if asked.

On any failure everything created so far is closed.
"""

from __future__ import annotations

import errno
import os

import attrs as attrs_lib

import btf
from ebpfspec import MapSpec, MapType
from loader.backend import Backend, MapAttrs
from loader.errors import LoaderError, MapError
from loader.map import Map, map_attrs_name


def create_map(spec: MapSpec, backend: Backend) -> Map:
    """A live map for ``spec`` (see the module docstring for the steps)."""
    try:
        spec.check()
    except ValueError as err:
        raise MapError(errno.EINVAL, "create", spec.name, str(err)) from None
    if spec.extra and any(spec.extra):
        raise LoaderError(
            f"map {spec.name!r}: its definition has {len(spec.extra)} trailing bytes that are not all zero "
            f"({spec.extra.hex()}); their meaning (e.g. iproute2's id/pinning) is not understood. "
            "Use spec.replace(extra=None) to create the map from its standard fields only")
    named = [kv.value for kv in spec.contents if isinstance(kv.value, str)]
    if named:
        raise LoaderError(f"map {spec.name!r}: contents name {named[:3]}; maps whose contents refer to "
                          "programs or maps by name are filled by loader.load_collection")
    attrs = fixup_map_attrs(spec, backend)
    inner = create_inner_template(spec, backend)
    try:
        if inner is not None:
            attrs = _with(attrs, inner_map_fd=inner.fileno())
        fd, fallback = create_with_btf_fallback(spec, attrs, backend)
    finally:
        if inner is not None:
            inner.close()
    m = Map(fd, backend, name=spec.name, type=spec.type, key_size=attrs.key_size, value_size=attrs.value_size,
            max_entries=attrs.max_entries, flags=attrs.map_flags, spec=spec, btf_fallback=fallback)
    try:
        fill_and_freeze(m, spec)
    except BaseException:
        m.close()
        raise
    return m


def fixup_map_attrs(spec: MapSpec, backend: Backend) -> MapAttrs:
    """``BPF_MAP_CREATE`` attributes for ``spec``, with the loader's fixups applied."""
    max_entries = spec.max_entries
    if spec.type == MapType.PERF_EVENT_ARRAY and max_entries == 0:
        max_entries = backend.possible_cpus()
    value_size = spec.value_size
    if spec.type.is_map_in_map:
        value_size = 4
    return MapAttrs(
        map_type=int(spec.type), key_size=spec.key_size, value_size=value_size, max_entries=max_entries,
        map_flags=spec.flags, numa_node=spec.numa_node, name=map_attrs_name(spec.name),
        map_extra=spec.map_extra,
    )


def create_inner_template(spec: MapSpec, backend: Backend) -> Map | None:
    """The temporary inner map a map of maps is created against (None for other maps)."""
    if not spec.type.is_map_in_map:
        return None
    assert spec.inner_map is not None  # spec.check() ensures it
    template = spec.inner_map.replace(contents=(), freeze=False, pinning=0)
    try:
        return create_map(template, backend)
    except LoaderError as err:
        raise LoaderError(f"map {spec.name!r}: creating its inner map template failed: {err}") from err


#: Errnos with which ``BPF_MAP_CREATE`` refuses a map's BTF (a mismatch, or no support for it);
#: other errors are not retried without BTF. 524 is the kernel's ENOTSUPP.
BTF_REFUSED = frozenset({errno.EINVAL, errno.EOPNOTSUPP, 524})


def load_map_btf(spec: MapSpec, backend: Backend) -> tuple[int, int, int]:
    """Load the key/value types: ``(btf_fd, key_type_id, value_type_id)``; raises OSError/BTFError."""
    roots = [t for t in (spec.key, spec.value) if t is not None]
    raw, ids = btf.marshal_subset(roots, byte_order="little" if _native_little() else "big")
    fd = backend.btf_load(raw)
    key_id = ids[spec.key.id] if spec.key is not None else 0
    value_id = ids[spec.value.id] if spec.value is not None else 0
    return fd, key_id, value_id


def create_with_btf_fallback(spec: MapSpec, attrs: MapAttrs, backend: Backend) -> tuple[int, str]:
    """Create the map, with its BTF if it has any and the kernel takes it: ``(fd, fallback reason)``."""
    if spec.key is None and spec.value is None:
        return _create(spec, attrs, backend), ""
    try:
        btf_fd, key_id, value_id = load_map_btf(spec, backend)
    except (OSError, btf.BTFError) as err:
        return _create(spec, attrs, backend), f"the kernel refused the map's BTF: {_reason(err)}"
    try:
        with_btf = _with(attrs, btf_fd=btf_fd, btf_key_type_id=key_id, btf_value_type_id=value_id)
        try:
            return _create(spec, with_btf, backend), ""
        except MapError as err:
            if err.errno not in BTF_REFUSED:
                raise
            fd = _create(spec, attrs, backend)  # a second failure here is not about BTF: raise it
            return fd, f"the kernel refused the map with its BTF: {_reason(err)}"
    finally:
        backend.close(btf_fd)


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


def _with(attrs: MapAttrs, **changes: int) -> MapAttrs:
    return attrs_lib.evolve(attrs, **changes)  # type: ignore[arg-type]  # all changed fields are ints


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    return str(err)


def _native_little() -> bool:
    import sys

    return sys.byteorder == "little"
