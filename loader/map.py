"""``loader.Map``: a live BPF map.

Keys and values are bytes-like in and ``bytes`` out; every size is checked before any
backend call, so a wrongly sized key or value raises ``ValueError`` and the kernel is
never handed a buffer smaller than it will read or write. Per-CPU maps take and return
one value per *possible* CPU (the kernel's slot of ``round_up(value_size, 8)`` bytes is
handled here). Program arrays and maps of maps take a ``Map`` (or fd) as value and
return the stored object's id.

Thread-safety: a ``Map`` may be used from many threads at once. ``close()`` waits for
running operations and makes later ones raise :class:`~loader.errors.MapClosedError`,
so no thread ever operates on a recycled descriptor (see :mod:`loader.handle`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ebpfspec import MapSpec, MapType, UpdateFlags
from loader.backend import Backend, MapAttrs, MapInfo
from loader.errors import BatchCursorError, LoaderError, MapClosedError, MapError, map_error
from loader.handle import Handle, HandleClosed
from loader.live import LiveObject

if TYPE_CHECKING:
    from loader.typed import TypedMap

#: Kernel map names keep at most this many characters.
MAP_NAME_LEN = 15
#: Value of a map-in-map / prog-array entry given to the kernel: a u32 fd.
_FD_VALUE = struct.Struct("=I")
_ID_VALUE = struct.Struct("=I")
#: The default update flags (compared by identity on the hot path).
_ANY = UpdateFlags.ANY
#: Largest batch the library asks for when growing a batch after ENOSPC.
MAX_BATCH = 1 << 20

KeyLike = bytes | bytearray | memoryview
ValueLike = bytes | bytearray | memoryview


def default_backend() -> Backend:
    """The backend used when none is given: a process-wide :class:`~loader.KernelBackend`."""
    from loader.kernel import KernelBackend

    global _default
    if _default is None:
        _default = KernelBackend()
    return _default


_default: Backend | None = None


class BatchCursor:
    """Where a batch operation continues. A fresh cursor starts at the beginning of the map.

    A cursor belongs to the first map it is used with; using it on another map raises
    :class:`~loader.errors.BatchCursorError`. Not thread-safe: one cursor per iteration.
    """

    __slots__ = ("_done", "_map", "_token")

    def __init__(self) -> None:
        self._map: Map | None = None
        self._token: bytes | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """True once the map has no entries after the cursor."""
        return self._done

    def _bind(self, m: Map) -> None:
        if self._map is None:
            self._map = m
        elif self._map is not m:
            raise BatchCursorError(
                f"this cursor belongs to map {self._map.name!r}, not {m.name!r}; use a new BatchCursor"
            )


class Map(LiveObject):
    """A live BPF map. Create with :meth:`create`, :meth:`load_pinned`, :meth:`from_fd`, :meth:`from_id`."""

    def __init__(
        self,
        fd: int,
        backend: Backend,
        *,
        name: str,
        type: MapType,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int,
        spec: MapSpec | None = None,
        btf_fallback: str = "",
    ):
        """Wrap ``fd`` (ownership passes to the Map). Prefer the class methods."""
        self._setup(fd, backend, name, type, key_size, value_size, max_entries, flags, spec, btf_fallback)

    @classmethod
    def _wrap(cls, fd: int, backend: Backend, name: str, type: MapType, key_size: int, value_size: int,
              max_entries: int, flags: int, spec: MapSpec | None, btf_fallback: str) -> Map:
        """``Map(fd, backend, name=..., ...)`` with positional arguments (much cheaper to call),
        for the loader's own creations."""
        m = cls.__new__(cls)
        m._setup(fd, backend, name, type, key_size, value_size, max_entries, flags, spec, btf_fallback)
        return m

    def _setup(self, fd: int, backend: Backend, name: str, type: MapType, key_size: int, value_size: int,
               max_entries: int, flags: int, spec: MapSpec | None, btf_fallback: str) -> None:
        self._backend = backend
        self._handle = Handle(fd, backend.close)
        self._lookup = backend.map_lookup  # (bound once for the hot paths)
        self._update = backend.map_update
        self.name = name
        map_type = type if type.__class__ is MapType else MapType(type)
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.spec = spec
        self._btf_fallback = btf_fallback
        self._pinned_path: str | None = None
        per_cpu, stores_objects, has_key = _traits(map_type)
        self._per_cpu = per_cpu
        self._cpus = backend.possible_cpus() if per_cpu else 1
        self._slot = (value_size + 7) & ~7
        #: bytes the kernel reads/writes for one value (all CPUs' slots for per-CPU maps)
        self._value_len = self._slot * self._cpus if per_cpu else value_size
        self._stores_objects = stores_objects
        self._has_key = has_key
        # The hot paths take a key / value as it is when it is a ``bytes`` of exactly this
        # length (-1: never; such keys/values go through _key/_encode_value, which check them).
        self._exact_key = key_size if has_key else -1
        self._exact_value = value_size if not per_cpu and not stores_objects else -1
        #: values come back from the backend as they are (no per-CPU split, no object id)
        self._raw_values = not per_cpu and not stores_objects

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def create(cls, spec: MapSpec, backend: Backend | None = None) -> Map:
        """Create a map from ``spec`` (and fill it with ``spec.contents``, freezing if asked).

        Maps of maps get a temporary inner map from ``spec.inner_map`` as their
        template. With BTF key/value types the map is created with its BTF; if the
        kernel refuses that BTF the map is created without it and :meth:`info` says so.
        ``contents`` naming programs or maps need :func:`loader.load_collection`.
        """
        return (_create_map or _import_create_map())(spec, backend or default_backend())

    @classmethod
    def from_fd(cls, fd: int, backend: Backend | None = None, *, name: str | None = None) -> Map:
        """A ``Map`` for an existing map descriptor; takes ownership of ``fd``."""
        backend = backend or default_backend()
        try:
            info = backend.map_info(fd)
        except OSError as err:
            raise MapError(err.errno or errno.EIO, "info", name or f"fd {fd}") from err
        return cls(fd, backend, name=name or info.name, type=MapType(info.type), key_size=info.key_size,
                   value_size=info.value_size, max_entries=info.max_entries, flags=info.map_flags)

    @classmethod
    def from_id(cls, map_id: int, backend: Backend | None = None) -> Map:
        """A ``Map`` for the map with kernel id ``map_id`` (needs root)."""
        backend = backend or default_backend()
        try:
            fd = backend.map_fd_by_id(map_id)
        except OSError as err:
            raise MapError(err.errno or errno.EIO, "get fd by id", f"id {map_id}") from err
        return _owning(fd, backend, lambda: cls.from_fd(fd, backend))

    @classmethod
    def load_pinned(cls, path: str, backend: Backend | None = None) -> Map:
        """A ``Map`` for the map pinned at ``path`` on bpffs."""
        backend = backend or default_backend()
        try:
            fd = backend.obj_get(path)
        except OSError as err:
            raise MapError(err.errno or errno.EIO, "load pinned", path) from err
        m = _owning(fd, backend, lambda: cls.from_fd(fd, backend))
        m._pinned_path = path
        return m

    def clone(self) -> Map:
        """A second, independent ``Map`` on the same kernel map (a duplicated descriptor)."""
        fd = self._call("clone", self._backend.dup)
        clone = _owning(fd, self._backend, lambda: Map(
            fd, self._backend, name=self.name, type=self.type, key_size=self.key_size,
            value_size=self.value_size, max_entries=self.max_entries, flags=self.flags, spec=self.spec,
            btf_fallback=self._btf_fallback))
        return clone

    # -- lifetime ---------------------------------------------------------------------------------

    # -- kernel-side metadata --------------------------------------------------------------------

    def info(self) -> MapInfo:
        """What the kernel reports about the map (``BPF_OBJ_GET_INFO_BY_FD``).

        ``btf_fallback`` is non-empty when the map was created without its BTF because
        the kernel refused it, and says why.
        """
        info: MapInfo = self._call("info", self._backend.map_info)
        return attrs.evolve(info, btf_fallback=self._btf_fallback)

    def freeze(self) -> None:
        """Make the map read-only for user space (``BPF_MAP_FREEZE``)."""
        self._call("freeze", self._backend.map_freeze)

    # -- single elements -----------------------------------------------------------------------------

    def lookup(self, key: KeyLike | None = None, flags: int = 0) -> Any:
        """The value stored under ``key``: bytes; a list of bytes per CPU for per-CPU maps;
        the stored object's id (int) for program arrays and maps of maps.

        Queue/stack: the head without removing it (no key). ``KeyNotFoundError`` if absent.
        ``flags``: ``UpdateFlags.LOCK`` (``BPF_F_LOCK``) copies the value out while holding
        its ``struct bpf_spin_lock`` (``MapError`` EINVAL if the value has none). With or
        without it, the lock's bytes read as zeros.
        """
        if key.__class__ is not bytes or len(key) != self._exact_key:
            key = self._key(key)
        # Handle.acquire()/release() inlined (the same protocol: see loader.handle), without
        # acquire's early check of the closed flag: the check after taking the use decides.
        handle = self._handle
        users = handle._users
        users.append(None)
        try:
            if handle._closed:
                raise MapClosedError("lookup", self.name) from None
            raw = self._lookup(handle._fd, key, self._value_len, flags)
        except OSError as err:
            if isinstance(err, LoaderError):
                raise
            raise map_error(err, "lookup", self.name) from None
        finally:
            users.pop()
            if handle._closed:
                handle._wake()
        if self._raw_values:
            return raw
        return self._decode_value(raw)

    def update(self, key: KeyLike | None, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Store ``value`` under ``key`` (``flags``: ``UpdateFlags.ANY/NOEXIST/EXIST/LOCK``).

        Per-CPU maps take a list of per-CPU values (shorter lists are zero-filled) or one
        value for every CPU. ``KeyExistsError`` for ``NOEXIST`` on an existing key.
        Queue/stack/bloom filter: ``key`` is None (a push).
        """
        if key.__class__ is not bytes or len(key) != self._exact_key:
            key = self._key(key)
        if self._stores_objects:
            with _object_fds([value], self.name) as fds:  # the inner map's fd stays valid meanwhile
                self._call("update", self._backend.map_update, key, _FD_VALUE.pack(fds[0]), int(flags))
            return
        if value.__class__ is not bytes or len(value) != self._exact_value:
            value = self._encode_value(value)
        if flags is _ANY:
            flags = 0
        elif flags.__class__ is not int:
            flags = int(flags)
        # Handle.acquire()/release() inlined (the same protocol: see loader.handle).
        handle = self._handle
        if handle._closed:
            raise MapClosedError("update", self.name) from None
        users = handle._users
        users.append(None)
        try:
            if handle._closed:
                raise MapClosedError("update", self.name) from None
            self._update(handle._fd, key, value, flags)
        except OSError as err:
            if isinstance(err, LoaderError):
                raise
            raise map_error(err, "update", self.name) from None
        finally:
            users.pop()
            if handle._closed:
                handle._wake()

    def delete(self, key: KeyLike) -> None:
        """Remove ``key``; ``KeyNotFoundError`` if absent."""
        if key.__class__ is not bytes or len(key) != self._exact_key:
            key = self._key(key)
        self._call("delete", self._backend.map_delete, key)

    def lookup_and_delete(self, key: KeyLike | None = None, flags: int = 0) -> Any:
        """Remove and return the value under ``key`` (queue/stack: pop, no key).

        ``flags``: ``UpdateFlags.LOCK`` as for :meth:`lookup` (hash maps only).
        """
        raw = self._call("lookup_and_delete", self._backend.map_lookup_and_delete, self._key(key),
                         self._value_len, int(flags))
        return self._decode_value(raw)

    def __getitem__(self, key: KeyLike) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: KeyLike, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: KeyLike) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        """``key in m``. For a bloom filter, ``value in m``: False if surely absent, True if maybe present."""
        if not isinstance(key, (bytes, bytearray, memoryview)):
            return False
        try:
            if self.type == MapType.BLOOM_FILTER:
                # The kernel reads the value to test from the value buffer of a NULL-key lookup.
                self._call("lookup", self._backend.map_lookup, b"", self._value_len, 0,
                           value=self._encode_value(key))
            else:
                self.lookup(key)
        except KeyError:
            return False
        return True

    # -- iteration ----------------------------------------------------------------------------------

    def keys(self) -> Iterator[bytes]:
        """Every key, via ``BPF_MAP_GET_NEXT_KEY``.

        Safe while the map changes: the key after the current one is fetched before the
        current one is handed out, so deleting it does not restart the walk; if the kernel
        restarts anyway (the next key was deleted too) keys already seen are skipped, never
        repeated. The walk always ends: after ``2 * max_entries`` distinct keys, or after
        ``max_entries`` keys in a row that were seen already.
        """
        if not self._has_key:
            raise MapError(errno.EINVAL, "iterate", self.name, f"{self.type} maps have no keys")
        limit = max(self.max_entries, 1)
        seen: set[bytes] = set()
        key = self._next_key(None)
        stale = 0  # keys walked since the last new one
        while key is not None:
            # Find the next key before handing this one out: the caller may delete it, and
            # the kernel restarts from the first key after a key that is gone.
            following = self._next_key(key)
            if key not in seen:
                seen.add(key)
                stale = 0
                yield key
                if len(seen) >= 2 * limit:
                    return  # the map keeps changing under the walk; stop rather than run forever
            else:
                # Back at a key given out already (a restart): walk on to the ones not seen.
                stale += 1
                if stale > limit:
                    return
            key = following

    def _next_key(self, key: bytes | None) -> bytes | None:
        """The key after ``key`` (the first if None); None at the end."""
        try:
            following: bytes = self._call("get_next_key", self._backend.map_get_next_key, key, self.key_size)
        except MapError as err:
            if err.errno == errno.ENOENT:
                return None
            raise
        return following

    __iter__ = keys

    def items(self) -> Iterator[tuple[bytes, Any]]:
        """``(key, value)`` pairs; entries deleted during the walk are skipped."""
        for key in self.keys():
            try:
                yield key, self.lookup(key)
            except KeyError:
                continue

    def values(self) -> Iterator[Any]:
        """The values, in key order."""
        for _, value in self.items():
            yield value

    # -- batches ------------------------------------------------------------------------------------

    def batch_lookup(
        self, cursor: BatchCursor, count: int = 4096, flags: int = 0
    ) -> tuple[list[bytes], list[Any]]:
        """Up to ``count`` entries after ``cursor`` (more if one hash bucket holds more); ``[]`` when done.

        ``flags`` are the batch's ``elem_flags``: only ``UpdateFlags.LOCK``, for values with a
        ``struct bpf_spin_lock`` (each value is copied out holding it).
        """
        return self._batch(cursor, count, delete=False, flags=flags)

    def batch_lookup_and_delete(
        self, cursor: BatchCursor, count: int = 4096, flags: int = 0
    ) -> tuple[list[bytes], list[Any]]:
        """Like :meth:`batch_lookup`, removing what it returns."""
        return self._batch(cursor, count, delete=True, flags=flags)

    def batch_update(
        self, keys: Sequence[KeyLike], values: Sequence[Any], flags: int = UpdateFlags.ANY
    ) -> int:
        """Store ``values[i]`` under ``keys[i]``; returns how many were written.

        ``flags`` are the batch's ``elem_flags``: the kernel takes only ``UpdateFlags.LOCK``
        there (for values with a ``struct bpf_spin_lock``), not ``NOEXIST``/``EXIST``.
        """
        if len(keys) != len(values):
            raise ValueError(f"map {self.name!r}: {len(keys)} keys but {len(values)} values")
        if not keys:
            return 0
        packed_keys = self._pack_keys(keys)
        if self._stores_objects:
            with _object_fds(values, self.name) as fds:
                packed_fds = b"".join(_FD_VALUE.pack(fd) for fd in fds)
                n: int = self._call("batch_update", self._backend.map_update_batch, packed_keys, packed_fds,
                                    len(keys), elem_flags=int(flags))
            return n
        if _all_exact(values, self._exact_value):
            packed_values = b"".join(values)
        else:
            packed_values = b"".join([self._encode_value(v) for v in values])
        n = self._call("batch_update", self._backend.map_update_batch, packed_keys, packed_values,
                       len(keys), elem_flags=int(flags))
        return n

    def batch_delete(self, keys: Sequence[KeyLike], flags: int = 0) -> int:
        """Remove ``keys``; returns how many were deleted (``flags``: ``elem_flags``, as for
        :meth:`batch_lookup`)."""
        if not keys:
            return 0
        packed = self._pack_keys(keys)
        n: int = self._call("batch_delete", self._backend.map_delete_batch, packed, len(keys),
                            elem_flags=int(flags))
        return n

    def iter_batches(
        self, count: int = 4096, *, delete: bool = False, flags: int = 0
    ) -> Iterator[tuple[list[bytes], list[Any]]]:
        """Every entry, ``count`` at a time (removing them if ``delete``; ``flags`` as for
        :meth:`batch_lookup`)."""
        cursor = BatchCursor()
        while not cursor.done:
            keys, values = self._batch(cursor, count, delete=delete, flags=flags)
            if keys:
                yield keys, values

    def _batch(self, cursor: BatchCursor, count: int, *, delete: bool,
               flags: int = 0) -> tuple[list[bytes], list[Any]]:
        if count < 1:
            raise ValueError(f"map {self.name!r}: batch count must be at least 1, got {count}")
        cursor._bind(self)
        if cursor._done:
            return [], []
        op = "batch_lookup_and_delete" if delete else "batch_lookup"
        token_size = max(self.key_size, 4)  # hash maps write a u32 bucket, arrays a key
        while True:
            try:
                result = self._call(op, self._backend.map_lookup_batch, cursor._token, token_size,
                                    self.key_size, self._value_len, count, delete=delete,
                                    elem_flags=int(flags))
                break
            except MapError as err:
                if err.errno != errno.ENOSPC or count >= MAX_BATCH:
                    raise
                count = min(count * 2, MAX_BATCH)  # a hash bucket holds more than count entries
        cursor._token = result.next_batch
        cursor._done = result.done
        n = result.count
        keys = _split(result.keys, self.key_size, n)
        raw_values = _split(result.values, self._value_len, n)
        if self._raw_values:
            return keys, raw_values
        return keys, [self._decode_value(v) for v in raw_values]

    # -- typed values --------------------------------------------------------------------------------

    def typed(self) -> TypedMap:
        """A view that encodes keys and values from Python values by the map's BTF types."""
        from loader.typed import TypedMap

        return TypedMap(self)

    # -- internals -----------------------------------------------------------------------------------

    KIND = "map"

    def _error(self, code: int, op: str, detail: str = "") -> LoaderError:
        if code == errno.EBADF and op == "fileno":
            return MapClosedError(op, self.name)
        return MapError(code, op, self.name, detail)

    def _call(self, op: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a backend operation on the descriptor, turning errors into the library's."""
        handle = self._handle
        try:
            fd = handle.acquire()
        except HandleClosed:
            raise MapClosedError(op, self.name) from None
        try:
            return fn(fd, *args, **kwargs)
        except OSError as err:
            if isinstance(err, LoaderError):
                raise
            raise map_error(err, op, self.name) from None
        finally:
            handle.release()

    def _key(self, key: KeyLike | None) -> bytes:
        if not self._has_key:
            if key is not None and len(key) != 0:
                raise ValueError(f"map {self.name!r}: {self.type} maps take no key")
            return b""
        if key is None:
            raise ValueError(f"map {self.name!r}: a key of {self.key_size} bytes is required")
        raw = bytes(key)
        if len(raw) != self.key_size:
            raise ValueError(
                f"map {self.name!r}: key is {len(raw)} bytes, the map's keys are {self.key_size}")
        return raw

    def _pack_keys(self, keys: Sequence[KeyLike]) -> bytes:
        """``keys`` checked (as :meth:`_key` does) and packed end to end."""
        if _all_exact(keys, self._exact_key):
            return b"".join(keys)  # all bytes (checked)
        return b"".join([self._key(k) for k in keys])

    def _encode_value(self, value: Any) -> bytes:
        if self._per_cpu:
            return self._encode_per_cpu(value)
        raw = bytes(value)
        if len(raw) != self.value_size:
            raise ValueError(
                f"map {self.name!r}: value is {len(raw)} bytes, the map's values are {self.value_size}")
        return raw

    def _encode_per_cpu(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            values: list[Any] = [value] * self._cpus  # one value for every CPU
        else:
            values = list(value)
            if len(values) > self._cpus:
                raise ValueError(
                    f"map {self.name!r}: {len(values)} per-CPU values for {self._cpus} possible CPUs")
        padding = b"\0" * (self._slot - self.value_size)
        slots = []
        for cpu, v in enumerate(values):
            raw = bytes(v)
            if len(raw) != self.value_size:
                raise ValueError(f"map {self.name!r}: value for CPU {cpu} is {len(raw)} bytes, "
                                 f"the map's values are {self.value_size}")
            slots.append(raw + padding)
        slots.append(b"\0" * (self._slot * (self._cpus - len(values))))
        return b"".join(slots)

    def _decode_value(self, raw: bytes) -> Any:
        if self._stores_objects:
            return _ID_VALUE.unpack_from(raw)[0]
        if self._per_cpu:
            slot, size = self._slot, self.value_size
            return [raw[cpu * slot:cpu * slot + size] for cpu in range(self._cpus)]
        return raw


@contextlib.contextmanager
def _object_fds(values: Sequence[Any], map_name: str) -> Iterator[list[int]]:
    """The fds to store for map-in-map / prog-array values: Maps, Programs, or int fds.

    A value that owns a :class:`~loader.handle.Handle` (a ``Map``, a ``Program``) is held
    in use until the block ends, so another thread closing it cannot let its fd number be
    reused for something else while the kernel is being handed that number.
    """
    fds: list[int] = []
    held: list[Handle] = []
    try:
        for value in values:
            handle = getattr(value, "_handle", None)
            if isinstance(handle, Handle):
                try:
                    fds.append(handle.acquire())
                except HandleClosed:
                    raise MapClosedError("update", getattr(value, "name", map_name)) from None
                held.append(handle)
            elif isinstance(value, int) and not isinstance(value, bool):
                fds.append(value)
            elif callable(getattr(value, "fileno", None)):
                fds.append(value.fileno())
            else:
                raise ValueError(f"map {map_name!r} stores maps or programs: give a Map, a Program or a "
                                 f"file descriptor, not {type(value).__name__}")
        yield fds
    finally:
        for handle in held:
            handle.release()


def _owning(fd: int, backend: Backend, make: Any) -> Map:
    """``make()``, closing ``fd`` if it fails."""
    try:
        m: Map = make()
    except BaseException:
        backend.close(fd)
        raise
    return m


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.]")


def map_attrs_name(name: str) -> str:
    """``name`` as the kernel will take it: at most 15 characters of ``[A-Za-z0-9_.]``.

    Every other character (one code point each) becomes ``_``.
    """
    name = name[:MAP_NAME_LEN]
    if _NAME_CHARS.issuperset(name):
        return name
    return _NOT_NAME_CHAR.sub("_", name)


#: ``(has_per_cpu_value, can_store_map_or_program, has_key)`` per map type, filled in as met.
_TRAITS: dict[int, tuple[bool, bool, bool]] = {}


def _traits(map_type: MapType) -> tuple[bool, bool, bool]:
    traits = _TRAITS.get(map_type)
    if traits is None:
        traits = _TRAITS[map_type] = (
            map_type.has_per_cpu_value, map_type.can_store_map_or_program, map_type.has_key)
    return traits


def _all_exact(items: Sequence[Any], size: int) -> bool:
    """True if every item is a ``bytes`` (not a subclass) of exactly ``size`` bytes (``size`` -1: False)."""
    n = len(items)
    return (size >= 0 and list(map(type, items)).count(bytes) == n
            and list(map(len, items)).count(size) == n)


#: Batches up to this many entries are split with a cached ``struct.Struct`` per (size, count).
_SPLIT_CACHED = 1 << 14


@functools.lru_cache(maxsize=32)
def _splitter(size: int, count: int) -> struct.Struct:
    return struct.Struct(f"{size}s" * count)


def _split(packed: bytes, size: int, count: int) -> list[bytes]:
    """The ``count`` consecutive ``size``-byte items at the start of ``packed``."""
    if size == 0 or len(packed) < size * count:  # (too short a buffer: short items, as slicing gives)
        return [packed[i * size:(i + 1) * size] for i in range(count)]
    splitter = _splitter(size, count) if count <= _SPLIT_CACHED else struct.Struct(f"{size}s" * count)
    return list(splitter.unpack_from(packed))


_create_map: Callable[[MapSpec, Backend], Map] | None = None


def _import_create_map() -> Callable[[MapSpec, Backend], Map]:
    """:func:`loader.create.create_map` (imported on first use: that module imports this one)."""
    global _create_map
    from loader.create import create_map

    _create_map = create_map
    return create_map


__all__ = ["BatchCursor", "Map", "MapAttrs", "default_backend", "map_attrs_name"]

