"""``KernelBackend``: the :class:`loader.backend.Backend` protocol on the real ``bpf(2)``.

Hot paths (``map_lookup``, ``map_update``, ``map_delete``, ``map_get_next_key``,
``map_lookup_and_delete``) build nothing per call: each thread owns preallocated attrs
whose key/value pointers already point at that thread's scratch buffers (grown when a
larger key or value comes along), so a call writes the map fd (and flags), copies the
key (and value) in through a ``memoryview`` slice, makes the system call, and copies the
value out. The scratch sets sit in a per-thread pool that a call takes one from and
gives back, so a signal handler or finaliser that runs a map operation in the middle of
another on the same thread gets a set of its own instead of clobbering the first's.

Everything else (create, batch, pin, info, BTF) is cold and builds its attr per call.

Buffers the kernel writes into are at least as large as the caller said the output
is: ``value_size`` for lookups, ``key_size`` for ``get_next_key``, ``count`` entries for
batches. Checking those sizes against the map is :class:`loader.Map`'s job.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import fcntl
import os
import threading
from typing import Final

from loader.backend import BatchResult, MapAttrs, MapInfo
from loader.cpus import possible_cpus
from loader.kernel import syscall as _sc
from loader.kernel.attr import (
    BTF_LOAD_SIZE,
    GET_ID_SIZE,
    INFO_SIZE,
    MAP_BATCH_SIZE,
    MAP_CREATE_SIZE,
    MAP_ELEM_SIZE,
    MAP_INFO_SIZE,
    OBJ_NAME_LEN,
    OBJ_SIZE,
    BpfMapInfo,
    BtfLoadAttr,
    Cmd,
    GetIdAttr,
    InfoAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    ObjAttr,
)

# Hot-path constants as plain module globals (no enum attribute lookups per call).
_NR: Final = _sc.NR
_SYSCALL: Final = _sc.raw_syscall
_LOOKUP: Final = int(Cmd.MAP_LOOKUP_ELEM)
_UPDATE: Final = int(Cmd.MAP_UPDATE_ELEM)
_DELETE: Final = int(Cmd.MAP_DELETE_ELEM)
_NEXT_KEY: Final = int(Cmd.MAP_GET_NEXT_KEY)
_LOOKUP_AND_DELETE: Final = int(Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
_raise_errno: Final = _sc.raise_errno

#: Smallest scratch buffer; they grow to the next power of two above a larger request.
_MIN_SCRATCH: Final = 256

#: First BTF verifier log buffer when a load fails (grown to what the kernel says it needs).
_BTF_LOG_SIZE: Final = 64 * 1024
#: Largest BTF log this backend asks for (the kernel's own limit is ``UINT_MAX >> 2``).
_BTF_LOG_MAX: Final = 16 * 1024 * 1024


def _capacity(n: int) -> int:
    """Scratch capacity for a request of ``n`` bytes: a power of two, at least ``_MIN_SCRATCH``."""
    cap = _MIN_SCRATCH
    while cap < n:
        cap <<= 1
    return cap


class _Scratch:
    """One thread's preallocated attrs and key/value buffers for the hot paths.

    ``elem`` (key, value, flags) serves lookup, update and lookup-and-delete;
    ``elem_nokey`` the same with a NULL key (queue, stack, bloom filter: the kernel wants
    NULL when the key size is 0); ``delete`` (key only) and ``next``/``first``
    (key or NULL, next key into the value buffer) keep the fields their commands must
    see as zero at zero. Only the map fd and the flags change per call.
    """

    __slots__ = (
        "delete", "delete_ptr", "elem", "elem_nokey", "elem_nokey_ptr", "elem_ptr", "first",
        "first_ptr", "key_addr", "key_buf", "key_cap", "key_mv", "next", "next_ptr",
        "val_addr", "val_buf", "val_cap", "val_mv",
    )

    def __init__(self) -> None:
        self.elem = MapElemAttr()
        self.elem_nokey = MapElemAttr()
        self.delete = MapElemAttr()
        self.next = MapElemAttr()
        self.first = MapElemAttr()
        # c_void_p objects pass the attr's address to the variadic syscall() cheaply.
        self.elem_ptr = ctypes.c_void_p(ctypes.addressof(self.elem))
        self.elem_nokey_ptr = ctypes.c_void_p(ctypes.addressof(self.elem_nokey))
        self.delete_ptr = ctypes.c_void_p(ctypes.addressof(self.delete))
        self.next_ptr = ctypes.c_void_p(ctypes.addressof(self.next))
        self.first_ptr = ctypes.c_void_p(ctypes.addressof(self.first))
        self.key_cap = 0
        self.val_cap = 0
        self.grow_key(_MIN_SCRATCH)
        self.grow_value(_MIN_SCRATCH)

    def grow_key(self, n: int) -> None:
        """Make the key buffer at least ``n`` bytes and point the attrs at it."""
        cap = _capacity(n)
        buf = ctypes.create_string_buffer(cap)
        if ctypes.sizeof(buf) < n:  # the promise the kernel's reads and writes rely on
            raise ValueError(f"key scratch buffer of {ctypes.sizeof(buf)} bytes is smaller than {n}")
        self.key_buf = buf
        self.key_mv = memoryview(buf).cast("B")
        self.key_addr = ctypes.addressof(buf)
        self.key_cap = cap
        self.elem.key = self.key_addr
        self.delete.key = self.key_addr
        self.next.key = self.key_addr

    def grow_value(self, n: int) -> None:
        """Make the value buffer at least ``n`` bytes and point the attrs at it."""
        cap = _capacity(n)
        buf = ctypes.create_string_buffer(cap)
        if ctypes.sizeof(buf) < n:  # the kernel writes up to n bytes here
            raise ValueError(f"value scratch buffer of {ctypes.sizeof(buf)} bytes is smaller than {n}")
        self.val_buf = buf
        self.val_mv = memoryview(buf).cast("B")
        self.val_addr = ctypes.addressof(buf)
        self.val_cap = cap
        self.elem.value = self.val_addr
        self.elem_nokey.value = self.val_addr
        self.next.next_key = self.val_addr
        self.first.next_key = self.val_addr


class _ScratchPool(threading.local):
    """Per thread: the scratch sets not in use right now."""

    def __init__(self) -> None:
        self.free: list[_Scratch] = []


_POOL: Final = _ScratchPool()


def _check_size(what: str, size: int) -> None:
    if size < 0:
        raise ValueError(f"{what} must not be negative, not {size}")


def _set_count(err: OSError, attr_count: int, requested: int) -> OSError:
    """Attach ``count`` (entries processed before the error) to a batch error.

    The kernel writes the count back only once it has started on the elements; when
    it fails before that (bad fd, frozen map, bad flags) ``count`` still holds the
    request, which it can never equal after a failure on an element.
    """
    err.count = attr_count if attr_count < requested else 0  # type: ignore[attr-defined]
    return err


class KernelBackend:
    """:class:`loader.backend.Backend` on the running kernel's ``bpf(2)``.

    Stateless apart from per-thread scratch buffers: any number of threads may use one
    instance (or several instances) at once. Handles are file descriptors; all the
    kernel returns for BPF objects are ``O_CLOEXEC``.
    """

    name = "kernel"

    def __init__(self) -> None:
        _sc.syscall_number()  # NotSupportedError on an architecture we cannot call bpf() on

    def __repr__(self) -> str:
        return "KernelBackend()"

    def possible_cpus(self) -> int:
        """Number of possible CPUs (``/sys/devices/system/cpu/possible``)."""
        return possible_cpus()

    # -- maps: create ------------------------------------------------------------------

    def map_create(self, attrs: MapAttrs) -> int:
        """``BPF_MAP_CREATE``; returns the new map's fd."""
        name = attrs.name.encode()
        if len(name) >= OBJ_NAME_LEN:
            raise ValueError(f"map name {attrs.name!r} is longer than {OBJ_NAME_LEN - 1} bytes")
        if b"\0" in name:
            raise ValueError(f"map name {attrs.name!r} contains a NUL byte")
        a = MapCreateAttr()
        a.map_type = attrs.map_type
        a.key_size = attrs.key_size
        a.value_size = attrs.value_size
        a.max_entries = attrs.max_entries
        a.map_flags = attrs.map_flags
        a.inner_map_fd = attrs.inner_map_fd if attrs.inner_map_fd >= 0 else 0
        a.numa_node = attrs.numa_node
        a.map_name = name
        a.map_ifindex = attrs.map_ifindex
        a.btf_fd = attrs.btf_fd if attrs.btf_fd >= 0 else 0
        a.btf_key_type_id = attrs.btf_key_type_id
        a.btf_value_type_id = attrs.btf_value_type_id
        a.btf_vmlinux_value_type_id = attrs.btf_vmlinux_value_type_id
        a.map_extra = attrs.map_extra
        return _sc.bpf(Cmd.MAP_CREATE, a, MAP_CREATE_SIZE)

    # -- maps: hot paths ---------------------------------------------------------------

    def map_lookup(
        self, fd: int, key: bytes, value_size: int, flags: int = 0, *, value: bytes | None = None
    ) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: ``value_size`` bytes.

        ``value`` is what the kernel finds in the value buffer before the call: only a
        bloom filter reads it (the value to test for; the answer is 0 or ENOENT). With
        an empty ``key`` and no ``value`` the buffer is zeroed first.
        """
        free = _POOL.free
        st = free.pop() if free else _Scratch()
        try:
            if not 0 <= value_size <= st.val_cap:  # the kernel writes value_size bytes there
                _check_size("value_size", value_size)
                st.grow_value(value_size)
            n = len(key)
            if n:
                if n > st.key_cap:
                    st.grow_key(n)
                st.key_mv[:n] = key
                a = st.elem
                a.map_fd = fd
                a.flags = flags
                ptr = st.elem_ptr
            else:
                if value is None:
                    st.val_mv[:value_size] = bytes(value_size)
                a = st.elem_nokey
                a.map_fd = fd
                a.flags = flags
                ptr = st.elem_nokey_ptr
            if value is not None:
                if len(value) > st.val_cap:
                    st.grow_value(len(value))
                st.val_mv[: len(value)] = value
            if _SYSCALL(_NR, _LOOKUP, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
            return st.val_mv[:value_size].tobytes()
        finally:
            free.append(st)

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        """``BPF_MAP_UPDATE_ELEM``. For queue/stack/bloom maps ``key`` is ``b""`` (NULL)."""
        free = _POOL.free
        st = free.pop() if free else _Scratch()
        try:
            m = len(value)
            if m > st.val_cap:
                st.grow_value(m)
            st.val_mv[:m] = value
            n = len(key)
            if n:
                if n > st.key_cap:
                    st.grow_key(n)
                st.key_mv[:n] = key
                a = st.elem
                a.map_fd = fd
                a.flags = flags
                ptr = st.elem_ptr
            else:
                a = st.elem_nokey
                a.map_fd = fd
                a.flags = flags
                ptr = st.elem_nokey_ptr
            if _SYSCALL(_NR, _UPDATE, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
        finally:
            free.append(st)

    def map_delete(self, fd: int, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM``."""
        n = len(key)
        if not n:  # a NULL key: the kernel's answer for key-less maps
            a = MapElemAttr()
            a.map_fd = fd
            _sc.bpf(Cmd.MAP_DELETE_ELEM, a, MAP_ELEM_SIZE)
            return
        free = _POOL.free
        st = free.pop() if free else _Scratch()
        try:
            if n > st.key_cap:
                st.grow_key(n)
            st.key_mv[:n] = key
            st.delete.map_fd = fd
            if _SYSCALL(_NR, _DELETE, st.delete_ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
        finally:
            free.append(st)

    def map_lookup_and_delete(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM``: pop from a queue/stack (``key=b""``) or take from a hash."""
        free = _POOL.free
        st = free.pop() if free else _Scratch()
        try:
            if not 0 <= value_size <= st.val_cap:  # the kernel writes value_size bytes there
                _check_size("value_size", value_size)
                st.grow_value(value_size)
            n = len(key)
            if n:
                if n > st.key_cap:
                    st.grow_key(n)
                st.key_mv[:n] = key
                a = st.elem
                ptr = st.elem_ptr
            else:
                a = st.elem_nokey
                ptr = st.elem_nokey_ptr
            a.map_fd = fd
            a.flags = flags
            if _SYSCALL(_NR, _LOOKUP_AND_DELETE, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
            return st.val_mv[:value_size].tobytes()
        finally:
            free.append(st)

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``: the key after ``key`` (the first with None); ENOENT at the end."""
        free = _POOL.free
        st = free.pop() if free else _Scratch()
        try:
            if not 0 <= key_size <= st.val_cap:  # the kernel writes key_size bytes there
                _check_size("key_size", key_size)
                st.grow_value(key_size)
            if key is None:
                st.first.map_fd = fd
                ptr = st.first_ptr
            else:
                n = len(key)
                if n > st.key_cap:
                    st.grow_key(n)
                st.key_mv[:n] = key
                st.next.map_fd = fd
                ptr = st.next_ptr
            if _SYSCALL(_NR, _NEXT_KEY, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
            return st.val_mv[:key_size].tobytes()
        finally:
            free.append(st)

    # -- maps: batches -----------------------------------------------------------------

    def map_lookup_batch(
        self, fd: int, in_batch: bytes | None, batch_size: int, key_size: int, value_size: int,
        count: int, *, delete: bool = False, elem_flags: int = 0,
    ) -> BatchResult:
        """``BPF_MAP_LOOKUP_BATCH`` / ``BPF_MAP_LOOKUP_AND_DELETE_BATCH`` of up to ``count`` entries.

        ``in_batch`` None starts at the beginning (a NULL ``in_batch``). ``ENOENT`` (no
        entries after these) returns the partial batch with ``done=True``; any other
        errno (``ENOSPC``: a bucket holds more than ``count`` entries) raises.
        """
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        _check_size("key_size", key_size)
        _check_size("value_size", value_size)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if in_batch is not None and len(in_batch) != batch_size:
            raise ValueError(f"in_batch is {len(in_batch)} bytes, not batch_size={batch_size}")
        keys_len = count * key_size
        values_len = count * value_size
        keys = ctypes.create_string_buffer(keys_len)
        values = ctypes.create_string_buffer(values_len)
        out_batch = ctypes.create_string_buffer(batch_size)
        # The kernel writes up to count keys/values and one batch_size cursor.
        if (ctypes.sizeof(keys) < keys_len or ctypes.sizeof(values) < values_len
                or ctypes.sizeof(out_batch) < batch_size):
            raise ValueError("batch buffers smaller than the batch")
        a = MapBatchAttr()
        in_buf = None
        if in_batch is not None:
            in_buf = ctypes.create_string_buffer(bytes(in_batch), batch_size)
            a.in_batch = ctypes.addressof(in_buf)
        a.out_batch = ctypes.addressof(out_batch)
        a.keys = ctypes.addressof(keys)
        a.values = ctypes.addressof(values)
        a.count = count
        a.map_fd = fd
        a.elem_flags = elem_flags
        cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
        done = False
        try:
            _sc.bpf(cmd, a, MAP_BATCH_SIZE)
        except OSError as err:
            if err.errno != errno_codes.ENOENT:
                raise
            done = True
        n = a.count
        if n > count:
            raise OSError(errno_codes.EIO, f"bpf(2) batch returned {n} entries for a batch of {count}")
        return BatchResult(
            n,
            ctypes.string_at(keys, n * key_size),
            ctypes.string_at(values, n * value_size),
            out_batch.raw,
            done,
        )

    def _write_batch(self, cmd: Cmd, fd: int, keys: bytes, values: bytes | None, count: int,
                     elem_flags: int) -> int:
        """``BPF_MAP_UPDATE_BATCH`` / ``BPF_MAP_DELETE_BATCH``: the kernel only reads the buffers."""
        if count <= 0:
            raise ValueError(f"batch count must be positive, not {count}")
        if len(keys) % count:
            raise ValueError(f"{len(keys)} bytes of keys do not divide into {count} keys")
        a = MapBatchAttr()
        key_buf = ctypes.create_string_buffer(bytes(keys), len(keys))
        a.keys = ctypes.addressof(key_buf)
        value_buf = None
        if values is not None:
            if len(values) % count:
                raise ValueError(f"{len(values)} bytes of values do not divide into {count} values")
            value_buf = ctypes.create_string_buffer(bytes(values), len(values))
            a.values = ctypes.addressof(value_buf)
        a.count = count
        a.map_fd = fd
        a.elem_flags = elem_flags
        try:
            _sc.bpf(cmd, a, MAP_BATCH_SIZE)
        except OSError as err:
            raise _set_count(err, a.count, count) from None
        done: int = a.count
        return done

    def map_update_batch(
        self, fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
    ) -> int:
        """``BPF_MAP_UPDATE_BATCH``; returns how many entries were written.

        On failure the ``OSError`` has ``count``: the entries written before it.
        """
        return self._write_batch(Cmd.MAP_UPDATE_BATCH, fd, keys, values, count, elem_flags)

    def map_delete_batch(self, fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
        """``BPF_MAP_DELETE_BATCH``; returns how many entries were deleted.

        On failure the ``OSError`` has ``count``: the entries deleted before it.
        """
        return self._write_batch(Cmd.MAP_DELETE_BATCH, fd, keys, None, count, elem_flags)

    # -- maps: the rest ------------------------------------------------------------------

    def map_freeze(self, fd: int) -> None:
        """``BPF_MAP_FREEZE``: user space may no longer write the map."""
        a = MapElemAttr()
        a.map_fd = fd
        _sc.bpf(Cmd.MAP_FREEZE, a, MAP_ELEM_SIZE)

    def map_info(self, fd: int) -> MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a map."""
        info = BpfMapInfo()
        a = InfoAttr()
        a.bpf_fd = fd
        a.info_len = MAP_INFO_SIZE  # the kernel writes at most this much into info
        a.info = ctypes.addressof(info)
        _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, a, INFO_SIZE)
        return MapInfo(
            type=info.type,
            id=info.id,
            key_size=info.key_size,
            value_size=info.value_size,
            max_entries=info.max_entries,
            map_flags=info.map_flags,
            name=info.name.decode("utf-8", "replace"),
            btf_id=info.btf_id,
            btf_key_type_id=info.btf_key_type_id,
            btf_value_type_id=info.btf_value_type_id,
            map_extra=info.map_extra,
        )

    def map_fd_by_id(self, map_id: int) -> int:
        """``BPF_MAP_GET_FD_BY_ID``: a new fd for the map with this id (ENOENT if none)."""
        a = GetIdAttr()
        a.id = map_id
        return _sc.bpf(Cmd.MAP_GET_FD_BY_ID, a, GET_ID_SIZE)

    # -- objects -------------------------------------------------------------------------

    @staticmethod
    def _path(path: str) -> ctypes.Array[ctypes.c_char]:
        raw = os.fsencode(path)
        if b"\0" in raw:
            raise ValueError(f"path {path!r} contains a NUL byte")
        return ctypes.create_string_buffer(raw)  # NUL-terminated

    def obj_pin(self, fd: int, path: str) -> None:
        """``BPF_OBJ_PIN``: pin the object at ``path`` (on bpffs)."""
        buf = self._path(path)
        a = ObjAttr()
        a.pathname = ctypes.addressof(buf)
        a.bpf_fd = fd
        _sc.bpf(Cmd.OBJ_PIN, a, OBJ_SIZE)

    def obj_get(self, path: str, flags: int = 0) -> int:
        """``BPF_OBJ_GET``: a new fd for the object pinned at ``path``.

        ``flags`` are ``file_flags``: ``BPF_F_RDONLY`` (1 << 3) or ``BPF_F_WRONLY`` (1 << 4).
        """
        buf = self._path(path)
        a = ObjAttr()
        a.pathname = ctypes.addressof(buf)
        a.file_flags = flags
        return _sc.bpf(Cmd.OBJ_GET, a, OBJ_SIZE)

    def obj_unpin(self, path: str) -> None:
        """Remove the pin at ``path``: ``unlink`` on bpffs (``FileNotFoundError`` if there is none)."""
        os.unlink(path)

    def dup(self, fd: int) -> int:
        """A second fd for the same object (``F_DUPFD_CLOEXEC``), closed separately."""
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)

    def close(self, fd: int) -> None:
        """``close(fd)``."""
        os.close(fd)

    # -- BTF -------------------------------------------------------------------------------

    def btf_load(self, raw: bytes) -> int:
        """``BPF_BTF_LOAD`` of a raw BTF blob; returns its fd.

        The first attempt asks for no log. If the kernel rejects the blob, it is loaded
        again with the verifier log on, and the ``OSError`` (the kernel's errno) ends
        with the log's last lines.
        """
        blob = ctypes.create_string_buffer(bytes(raw), len(raw))
        a = BtfLoadAttr()
        a.btf = ctypes.addressof(blob)
        a.btf_size = len(raw)
        try:
            return _sc.bpf(Cmd.BTF_LOAD, a, BTF_LOAD_SIZE)
        except OSError as err:
            if err.errno in (errno_codes.EPERM, errno_codes.EBADF, errno_codes.EFAULT):
                raise
            log = self._btf_log(blob, len(raw))
            if not log:
                raise
            tail = "; ".join(log.splitlines()[-4:])
            raise OSError(err.errno, f"{err.strerror}: BTF rejected: {tail}") from None

    @staticmethod
    def _btf_log(blob: ctypes.Array[ctypes.c_char], size: int) -> str:
        """The kernel's log for a BTF blob it rejects ("" if it loads after all)."""
        log_size = _BTF_LOG_SIZE
        while True:
            log = ctypes.create_string_buffer(log_size)
            a = BtfLoadAttr()
            a.btf = ctypes.addressof(blob)
            a.btf_size = size
            a.btf_log_buf = ctypes.addressof(log)
            a.btf_log_size = ctypes.sizeof(log)  # the kernel writes at most this much
            a.btf_log_level = 1
            try:
                os.close(_sc.bpf(Cmd.BTF_LOAD, a, BTF_LOAD_SIZE))
                return ""
            except OSError as err:
                needed = a.btf_log_true_size
                if err.errno == errno_codes.ENOSPC and log_size < needed <= _BTF_LOG_MAX:
                    log_size = needed
                    continue
                return log.value.decode("utf-8", "replace")
