"""``KernelBackend``: the :class:`loader.backend.Backend` protocol on the real ``bpf(2)``.

Hot paths (``map_lookup``, ``map_update``, ``map_delete``, ``map_get_next_key``,
``map_lookup_and_delete``) build nothing per call: each thread owns preallocated attrs
whose key/value pointers already point at that thread's scratch buffers (grown when a
larger key or value comes along), so a call writes the map fd (and flags), copies the
key (and value) in through a ``memoryview`` slice, makes the system call, and copies the
value out. The scratch sets sit in a per-thread pool that a call takes one from and
gives back, so a signal handler or finaliser that runs a map operation in the middle of
another on the same thread gets a set of its own instead of clobbering the first's.

Everything else (create, batch, pin, info, BTF, programs, attachment) is cold and builds
its attr per call.

Programs: :meth:`KernelBackend.prog_load` asks for no verifier log unless told to, and
loads a rejected program once more with a log to say why; :meth:`KernelBackend.prog_test_run`
runs one with output buffers exactly as large as the caller says. Attaching goes through
links (``BPF_LINK_CREATE``, ``BPF_RAW_TRACEPOINT_OPEN``), ``BPF_PROG_ATTACH`` (cgroups),
perf events (:mod:`loader.kernel.perf`) and ``SO_ATTACH_BPF`` (socket filters).

Buffers the kernel writes into are at least as large as the caller said the output
is: ``value_size`` for lookups, ``key_size`` for ``get_next_key``, ``count`` entries for
batches. Checking those sizes against the map is :class:`loader.Map`'s job.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import fcntl
import os
import socket
import threading
from typing import Final

from loader.backend import (
    BatchResult,
    LinkInfo,
    MapAttrs,
    MapInfo,
    ProgLoadError,
    ProgramAttrs,
    ProgramInfo,
    TestRunResult,
)
from loader.cpus import possible_cpus
from loader.kernel import perf as _perf
from loader.kernel import syscall as _sc
from loader.kernel.attr import (
    BTF_INFO_SIZE,
    BTF_LOAD_SIZE,
    GET_ID_SIZE,
    INFO_SIZE,
    ITER_CREATE_SIZE,
    LINK_CREATE_SIZE,
    LINK_DETACH_SIZE,
    LINK_INFO_SIZE,
    MAP_BATCH_SIZE,
    MAP_CREATE_SIZE,
    MAP_ELEM_SIZE,
    MAP_INFO_SIZE,
    OBJ_NAME_LEN,
    OBJ_SIZE,
    PROG_ATTACH_SIZE,
    PROG_INFO_SIZE,
    PROG_LOAD_SIZE,
    RAW_TRACEPOINT_SIZE,
    TEST_RUN_SIZE,
    BpfBtfInfo,
    BpfLinkInfo,
    BpfMapInfo,
    BpfProgInfo,
    BtfLoadAttr,
    Cmd,
    GetIdAttr,
    InfoAttr,
    IterCreateAttr,
    LinkCreateAttr,
    LinkDetachAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    ObjAttr,
    ProgAttachAttr,
    ProgLoadAttr,
    RawTracepointAttr,
    TestRunAttr,
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

#: Verifier log buffer when ``prog_load`` is given no ``log_size``.
PROG_LOG_SIZE: Final = 1 << 20
#: ``sizeof(struct bpf_func_info)`` / ``sizeof(struct bpf_line_info)``.
_FUNC_INFO_SIZE: Final = 8
_LINE_INFO_SIZE: Final = 16
#: Characters ``bpf_obj_name_cpy`` accepts in an object name.
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
#: ``BPF_PERF_EVENT``: a link to a perf event (its cookie sits at offset 16 of the union).
_ATTACH_PERF_EVENT: Final = 41
#: ``BPF_TRACE_ITER``: an iterator link (``iter_info`` and ``iter_info_len`` in the union).
_ATTACH_TRACE_ITER: Final = 28
#: Attach types whose links read ``link_create.tracing`` (target BTF id, then the cookie at 24):
#: ``BPF_TRACE_RAW_TP``, ``BPF_TRACE_FENTRY``, ``BPF_TRACE_FEXIT``, ``BPF_MODIFY_RETURN``, ``BPF_LSM_MAC``.
_TRACING_ATTACH_TYPES: Final = frozenset({23, 24, 25, 26, 27})
#: ``SO_ATTACH_BPF`` / ``SO_DETACH_BPF`` (``asm-generic/socket.h``; x86, arm, riscv, powerpc, s390, ...).
SO_ATTACH_BPF: Final = 50
SO_DETACH_BPF: Final = 27


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
    see as zero at zero. Only the map fd and the flags change per call (``elem``'s only
    through :meth:`set_elem`).
    """

    __slots__ = (
        "delete", "delete_ptr", "elem", "elem_fd", "elem_flags", "elem_nokey", "elem_nokey_ptr", "elem_ptr",
        "first", "first_ptr", "key_addr", "key_buf", "key_cap", "key_mv", "next", "next_ptr",
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
        # What ``elem``'s map_fd and flags hold, mirrored: comparing Python ints is cheaper
        # than storing into ctypes fields on every call. Only set_elem() changes them.
        self.elem_fd = -1
        self.elem_flags = -1
        self.key_cap = 0
        self.val_cap = 0
        self.grow_key(_MIN_SCRATCH)
        self.grow_value(_MIN_SCRATCH)

    def set_elem(self, fd: int, flags: int) -> None:
        """Point ``elem`` at map ``fd`` with ``flags`` (and remember them)."""
        self.elem.map_fd = fd
        self.elem.flags = flags
        self.elem_fd = fd
        self.elem_flags = flags

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


def _prog_load_error(code: int, message: str, log: str, log_true_size: int = 0) -> ProgLoadError:
    """A :class:`ProgLoadError`, with ``log_true_size`` (the log size the verifier needed; 0 if unknown)."""
    return ProgLoadError(code, message, log, log_true_size)


#: Verifier statistics lines, which say nothing about why a program was rejected.
_STATS_PREFIXES: Final = ("processed ", "verification time", "stack depth", "max_states_per_insn")


def _last_line(log: str) -> str:
    """The verifier's last word: the last log line that is not a statistic ("" for no log)."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        if text and not text.startswith(_STATS_PREFIXES):
            return text
    return ""


def _check_program_name(name: str) -> bytes:
    """The name as the kernel takes it: at most 15 bytes of ``[A-Za-z0-9_.]``.

    ``ValueError`` for a name that does not fit the 16-byte field (a caller's bug, as for
    map names); ``ProgLoadError(EINVAL)`` for other characters, the kernel's own answer.
    """
    raw = name.encode("utf-8", "replace")
    if len(raw) >= OBJ_NAME_LEN:
        raise ValueError(f"program name {name!r} is longer than {OBJ_NAME_LEN - 1} bytes")
    if "\0" in name:
        raise ValueError(f"program name {name!r} contains a NUL byte")
    if any(c not in _NAME_CHARS for c in name):
        raise _prog_load_error(errno_codes.EINVAL, f"{_sc.strerror(errno_codes.EINVAL)}: program name "
                               f"{name!r}: only letters, digits, '_' and '.'", "")
    return raw


def _check_fd_kind(fd: int, expected: str, what: str) -> None:
    """``EINVAL`` when ``fd`` is a BPF object other than ``expected`` (its ``/proc/self/fd`` link).

    ``BPF_OBJ_GET_INFO_BY_FD`` answers for any BPF object with that object's info struct,
    which would be misread as another kind's. Where ``/proc`` cannot tell (no such fd, no
    procfs) the kernel answers.
    """
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
    # (the kernel names a link "bpf_link" when it is made, "bpf-link" when BPF_OBJ_GET reopens it)
    if target.startswith("anon_inode:") and target.replace("-", "_") != expected.replace("-", "_"):
        kind = target[len("anon_inode:"):]
        message = f"{_sc.strerror(errno_codes.EINVAL)}: fd {fd} is {kind}, not {what}"
        raise OSError(errno_codes.EINVAL, message)


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
                st.key_buf.raw = key  # copies len(key) bytes: cheaper than a memoryview slice
                if st.elem_fd != fd or st.elem_flags != flags:  # ctypes field stores cost more
                    st.set_elem(fd, flags)
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
            return st.val_buf[:value_size]  # type: ignore[return-value]  # a c_char array's slice is bytes
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
            st.val_buf.raw = value
            n = len(key)
            if n:
                if n > st.key_cap:
                    st.grow_key(n)
                st.key_buf.raw = key
                if st.elem_fd != fd or st.elem_flags != flags:
                    st.set_elem(fd, flags)
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
            st.key_buf.raw = key
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
                st.key_buf.raw = key
                if st.elem_fd != fd or st.elem_flags != flags:
                    st.set_elem(fd, flags)
                ptr = st.elem_ptr
            else:
                a = st.elem_nokey
                a.map_fd = fd
                a.flags = flags
                ptr = st.elem_nokey_ptr
            if _SYSCALL(_NR, _LOOKUP_AND_DELETE, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
            return st.val_buf[:value_size]  # type: ignore[return-value]  # bytes, as above
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
                st.key_buf.raw = key
                st.next.map_fd = fd
                ptr = st.next_ptr
            if _SYSCALL(_NR, _NEXT_KEY, ptr, MAP_ELEM_SIZE) < 0:
                _raise_errno()
            return st.val_buf[:key_size]  # type: ignore[return-value]  # bytes, as above
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
        """``BPF_OBJ_GET_INFO_BY_FD`` for a map (EINVAL for an fd of another BPF object)."""
        _check_fd_kind(fd, "anon_inode:bpf-map", "a map")
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

    def btf_fd_by_id(self, btf_id: int) -> int:
        """``BPF_BTF_GET_FD_BY_ID``: a new fd for the BTF object with this id (ENOENT if none)."""
        a = GetIdAttr()
        a.id = btf_id
        return _sc.bpf(Cmd.BTF_GET_FD_BY_ID, a, GET_ID_SIZE)

    def btf_raw(self, fd: int) -> bytes:
        """The raw blob of the BTF object ``fd`` as the kernel keeps it (``BPF_OBJ_GET_INFO_BY_FD``).

        One call learns the size, a second copies that many bytes into a buffer of that
        size (again, larger, if the kernel says it needs more). ``EINVAL`` for an fd of
        another BPF object.
        """
        _check_fd_kind(fd, "anon_inode:btf", "BTF")
        size = 0
        while True:
            blob = ctypes.create_string_buffer(size) if size else None
            info = BpfBtfInfo()
            if blob is not None:
                info.btf = ctypes.addressof(blob)
                info.btf_size = size  # the kernel copies at most this much into blob
            a = InfoAttr()
            a.bpf_fd = fd
            a.info_len = BTF_INFO_SIZE  # the kernel writes at most this much into info
            a.info = ctypes.addressof(info)
            _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, a, INFO_SIZE)
            needed = int(info.btf_size)
            if blob is not None and needed <= size:
                return blob.raw[:needed]
            if needed == 0:
                return b""
            size = needed

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

    # -- programs ------------------------------------------------------------------------------

    def prog_load(self, attrs: ProgramAttrs, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
        """``BPF_PROG_LOAD``: ``(fd, verifier log)``.

        With ``log_level`` 0 the first attempt asks for no log and success returns
        ``(fd, "")``; a failure is retried once with ``log_level`` 1 and a log buffer of
        ``log_size`` bytes (:data:`PROG_LOG_SIZE` when 0), and :class:`ProgLoadError`
        carries that log. With ``log_level`` > 0 the log is asked for at once and returned
        on success too. A log that does not fit is ``ProgLoadError(ENOSPC)`` with what did
        fit; on 6.4+ kernels its ``log_true_size`` says how large the buffer must be (0
        where the kernel does not say). ``EAGAIN`` (the verifier interrupted) is retried.

        ``ValueError`` before any system call for instructions that are not whole 8-byte
        slots, func/line info that are not whole records, or a name or license with a NUL.
        """
        insns = bytes(attrs.insns)
        if len(insns) % 8:
            raise ValueError(f"instructions of {len(insns)} bytes are not a whole number of 8-byte slots")
        if not 0 <= log_level <= 0xFFFFFFFF or not 0 <= log_size <= 0xFFFFFFFF:
            raise ValueError(f"log_level {log_level} / log_size {log_size} out of range")
        if "\0" in attrs.license:
            raise ValueError(f"license {attrs.license!r} contains a NUL byte")
        for what, blob, rec in (("func_info", attrs.func_info, _FUNC_INFO_SIZE),
                                ("line_info", attrs.line_info, _LINE_INFO_SIZE)):
            if len(blob) % rec:
                raise ValueError(f"{what} of {len(blob)} bytes is not a whole number of {rec}-byte records")
        if attrs.attach_btf_obj_fd >= 0 and attrs.attach_prog_fd >= 0:
            raise ValueError("attach_btf_obj_fd and attach_prog_fd share one field: give one of them")
        name = _check_program_name(attrs.name)

        a = ProgLoadAttr()
        a.prog_type = attrs.prog_type
        # Every buffer below stays referenced until the last attempt returns.
        insn_buf = ctypes.create_string_buffer(insns, len(insns)) if insns else None
        a.insn_cnt = len(insns) // 8
        a.insns = ctypes.addressof(insn_buf) if insn_buf is not None else 0
        license_buf = ctypes.create_string_buffer(attrs.license.encode())  # NUL-terminated
        a.license = ctypes.addressof(license_buf)
        a.kern_version = attrs.kern_version
        a.prog_flags = attrs.prog_flags
        a.prog_name = name
        a.expected_attach_type = attrs.expected_attach_type
        a.prog_btf_fd = attrs.prog_btf_fd if attrs.prog_btf_fd >= 0 else 0
        func_buf = line_buf = None
        if attrs.func_info:
            func_buf = ctypes.create_string_buffer(bytes(attrs.func_info), len(attrs.func_info))
            a.func_info_rec_size = _FUNC_INFO_SIZE
            a.func_info = ctypes.addressof(func_buf)
            a.func_info_cnt = len(attrs.func_info) // _FUNC_INFO_SIZE
        if attrs.line_info:
            line_buf = ctypes.create_string_buffer(bytes(attrs.line_info), len(attrs.line_info))
            a.line_info_rec_size = _LINE_INFO_SIZE
            a.line_info = ctypes.addressof(line_buf)
            a.line_info_cnt = len(attrs.line_info) // _LINE_INFO_SIZE
        a.attach_btf_id = attrs.attach_btf_id
        if attrs.attach_prog_fd >= 0:
            a.attach_prog_fd = attrs.attach_prog_fd
        elif attrs.attach_btf_obj_fd >= 0:
            a.attach_prog_fd = attrs.attach_btf_obj_fd  # the same u32 (attach_btf_obj_fd)
        fd_array = None
        if attrs.fd_array:
            fd_array = (ctypes.c_int32 * len(attrs.fd_array))(*attrs.fd_array)
            a.fd_array = ctypes.addressof(fd_array)

        def attempt(level: int, size: int) -> tuple[int, str]:
            log_buf = ctypes.create_string_buffer(size) if level else None
            a.log_level = level
            a.log_size = size if level else 0  # the kernel writes at most this much into log_buf
            a.log_buf = ctypes.addressof(log_buf) if log_buf is not None else 0
            a.log_true_size = 0
            try:
                fd = _sc.bpf(Cmd.PROG_LOAD, a, PROG_LOAD_SIZE, retry_eagain=True)
            except OSError as err:
                code = err.errno or errno_codes.EIO
                log = log_buf.value.decode("utf-8", "replace") if log_buf is not None else ""
                true_size = int(a.log_true_size)
                if code == errno_codes.ENOSPC and level:
                    needed = f" (the verifier needs {true_size})" if true_size > size else ""
                    message = f"{_sc.strerror(code)}: the verifier log did not fit in {size} bytes{needed}"
                else:
                    last = _last_line(log)
                    message = _sc.strerror(code) + (f": {last}" if last else "")
                raise _prog_load_error(code, message, log, true_size) from None
            log = log_buf.value.decode("utf-8", "replace") if log_buf is not None else ""
            return fd, log

        size = log_size or PROG_LOG_SIZE
        try:
            if log_level:
                return attempt(log_level, size)
            try:
                return attempt(0, 0)
            except ProgLoadError as first:
                try:
                    return attempt(1, size)
                except ProgLoadError as second:
                    if second.errno != first.errno and second.errno != errno_codes.ENOSPC and not second.log:
                        raise first from None  # the retry failed for another reason and says nothing
                    raise
        finally:
            del insn_buf, license_buf, func_buf, line_buf, fd_array  # (kept alive until here)

    def prog_test_run(
        self, fd: int, *, data: bytes = b"", data_out_size: int = 0, ctx: bytes = b"",
        ctx_out_size: int = 0, repeat: int = 1, flags: int = 0, cpu: int = 0,
    ) -> TestRunResult:
        """``BPF_PROG_TEST_RUN``: run the program ``repeat`` times on ``data`` (and ``ctx``).

        The output buffers are exactly ``data_out_size`` / ``ctx_out_size`` bytes (none when
        0: the kernel then reports the output size but copies nothing). The result's
        ``data``/``ctx`` are trimmed to what the kernel says the program produced. Output
        larger than its buffer is ``OSError(ENOSPC)`` whose ``data_size_out`` /
        ``ctx_size_out`` attributes say how large it was; the caller decides whether to
        grow. ``cpu`` needs ``BPF_F_TEST_RUN_ON_CPU`` in ``flags``.
        """
        for what, n in (("data_out_size", data_out_size), ("ctx_out_size", ctx_out_size), ("repeat", repeat),
                        ("cpu", cpu)):
            if not 0 <= n <= 0xFFFFFFFF:
                raise ValueError(f"{what} must be a u32, not {n}")
        a = TestRunAttr()
        a.prog_fd = fd
        data_in = ctypes.create_string_buffer(bytes(data), len(data)) if data else None
        data_out = ctypes.create_string_buffer(data_out_size) if data_out_size else None
        ctx_in = ctypes.create_string_buffer(bytes(ctx), len(ctx)) if ctx else None
        ctx_out = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        if data_in is not None:
            a.data_in = ctypes.addressof(data_in)
            a.data_size_in = len(data)
        if data_out is not None:  # with a size: the kernel clamps its copy to it
            a.data_out = ctypes.addressof(data_out)
            a.data_size_out = ctypes.sizeof(data_out)
        if ctx_in is not None:
            a.ctx_in = ctypes.addressof(ctx_in)
            a.ctx_size_in = len(ctx)
        if ctx_out is not None:
            a.ctx_out = ctypes.addressof(ctx_out)
            a.ctx_size_out = ctypes.sizeof(ctx_out)
        a.repeat = repeat
        a.flags = flags
        a.cpu = cpu
        try:
            _sc.bpf(Cmd.PROG_TEST_RUN, a, TEST_RUN_SIZE)
        except OSError as err:
            if err.errno != errno_codes.ENOSPC:
                raise
            parts = []
            if data_out is not None and a.data_size_out > data_out_size:
                parts.append(f"data output is {a.data_size_out} bytes, data_out_size {data_out_size}")
            if ctx_out is not None and a.ctx_size_out > ctx_out_size:
                parts.append(f"context output is {a.ctx_size_out} bytes, ctx_out_size {ctx_out_size}")
            detail = "; ".join(parts) or "output too large"
            enospc = OSError(errno_codes.ENOSPC, f"{_sc.strerror(errno_codes.ENOSPC)}: {detail}")
            enospc.data_size_out = int(a.data_size_out)  # type: ignore[attr-defined]
            enospc.ctx_size_out = int(a.ctx_size_out)  # type: ignore[attr-defined]
            raise enospc from None
        n_data = min(int(a.data_size_out), data_out_size) if data_out is not None else 0
        n_ctx = min(int(a.ctx_size_out), ctx_out_size) if ctx_out is not None else 0
        return TestRunResult(
            retval=int(a.retval),
            data=data_out.raw[:n_data] if data_out is not None else b"",
            ctx=ctx_out.raw[:n_ctx] if ctx_out is not None else b"",
            duration_ns=int(a.duration),
        )

    @staticmethod
    def _prog_info(fd: int, info: BpfProgInfo) -> None:
        a = InfoAttr()
        a.bpf_fd = fd
        a.info_len = PROG_INFO_SIZE  # the kernel writes at most this much into info
        a.info = ctypes.addressof(info)
        _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, a, INFO_SIZE)

    def prog_info(self, fd: int) -> ProgramInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a program, with the ids of the maps it uses.

        The map ids take a second call with a buffer for as many ids as the first said
        (repeated if a ``BPF_PROG_BIND_MAP`` added some in between). ``EINVAL`` for an fd
        of another BPF object.
        """
        _check_fd_kind(fd, "anon_inode:bpf-prog", "a program")
        info = BpfProgInfo()
        self._prog_info(fd, info)
        map_ids: tuple[int, ...] = ()
        want = int(info.nr_map_ids)
        while want:
            ids = (ctypes.c_uint32 * want)()
            again = BpfProgInfo()
            again.nr_map_ids = want  # the kernel writes at most this many ids
            again.map_ids = ctypes.addressof(ids)
            self._prog_info(fd, again)
            have = int(again.nr_map_ids)
            if have <= want:
                map_ids = tuple(ids[:have])
                break
            want = have
        return ProgramInfo(
            type=info.type,
            id=info.id,
            name=info.name.decode("utf-8", "replace"),
            tag=bytes(info.tag),
            xlated_prog_len=info.xlated_prog_len,
            jited_prog_len=info.jited_prog_len,
            btf_id=info.btf_id,
            map_ids=map_ids,
        )

    def prog_fd_by_id(self, prog_id: int) -> int:
        """``BPF_PROG_GET_FD_BY_ID``: a new fd for the program with this id (ENOENT if none)."""
        a = GetIdAttr()
        a.id = prog_id
        return _sc.bpf(Cmd.PROG_GET_FD_BY_ID, a, GET_ID_SIZE)

    # -- attaching programs ------------------------------------------------------------------

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                    target_btf_id: int = 0, cookie: int = 0, iter_info: bytes = b"") -> int:
        """``BPF_LINK_CREATE``: a link attaching the program to ``target_fd``; returns the link's fd.

        ``target_fd`` is an ifindex for ``BPF_XDP``, a perf event fd for
        ``BPF_PERF_EVENT``, a cgroup directory fd for cgroup attach types, a program fd for
        freplace, 0 for fentry/fexit/lsm and iterators. ``cookie`` goes to
        ``perf_event.bpf_cookie`` (``BPF_PERF_EVENT``) or ``tracing.cookie`` (the tracing
        attach types); other attach types have no cookie here (``ValueError``).
        ``iter_info`` is a packed ``union bpf_iter_link_info`` for ``BPF_TRACE_ITER`` links
        (``iter_info``/``iter_info_len``; ``b""`` passes NULL and 0); ``ValueError`` with
        any other attach type, a ``target_btf_id`` or a ``cookie``.
        """
        a = LinkCreateAttr()
        a.prog_fd = prog_fd
        a.target_fd = target_fd
        a.attach_type = attach_type
        a.flags = flags
        info_buf = None
        if iter_info:
            if attach_type != _ATTACH_TRACE_ITER:
                raise ValueError(f"iter_info is for BPF_TRACE_ITER links, not attach type {attach_type}")
            if target_btf_id or cookie:
                raise ValueError("BPF_TRACE_ITER links take no target_btf_id or cookie")
            raw = bytes(iter_info)
            info_buf = ctypes.create_string_buffer(raw, len(raw))  # the kernel reads len(raw) bytes
            a.iter_info = ctypes.addressof(info_buf)
            a.iter_info_len = len(raw)
        elif attach_type == _ATTACH_PERF_EVENT:
            if target_btf_id:
                raise ValueError("BPF_PERF_EVENT links take no target_btf_id")
            a.perf_event_cookie = cookie
        else:
            a.target_btf_id = target_btf_id
            if cookie:
                if attach_type not in _TRACING_ATTACH_TYPES:
                    raise ValueError(f"attach type {attach_type} takes no cookie in BPF_LINK_CREATE")
                a.tracing_cookie = cookie
        fd = _sc.bpf(Cmd.LINK_CREATE, a, LINK_CREATE_SIZE)
        del info_buf  # (kept alive until the call returned)
        return fd

    def iter_create(self, link_fd: int) -> int:
        """``BPF_ITER_CREATE``: a new read-only descriptor of a ``seq_file`` running iterator ``link_fd``.

        The descriptor is an ordinary file descriptor (``O_CLOEXEC``) owned by the caller,
        not a BPF object: ``read(2)`` it to EOF and ``close(2)`` it. Each one runs its own
        iteration from the start. ``EINVAL`` for a link that is not an iterator (or an fd
        that is not a link), ``EBADF`` for a closed descriptor.
        """
        a = IterCreateAttr()
        a.link_fd = link_fd
        return _sc.bpf(Cmd.ITER_CREATE, a, ITER_CREATE_SIZE)

    def raw_tracepoint_open(self, name: str | None, prog_fd: int, *, cookie: int = 0) -> int:
        """``BPF_RAW_TRACEPOINT_OPEN``: a link attaching a raw tracepoint program to tracepoint ``name``.

        ``name`` is None for programs whose target was given at load time (tp_btf,
        fentry/fexit, lsm). ``cookie`` needs 6.10+.
        """
        a = RawTracepointAttr()
        name_buf = None
        if name is not None:
            raw = name.encode()
            if not raw or b"\0" in raw:
                raise ValueError(f"invalid tracepoint name {name!r}")
            name_buf = ctypes.create_string_buffer(raw)  # NUL-terminated
            a.name = ctypes.addressof(name_buf)
        a.prog_fd = prog_fd
        a.cookie = cookie
        fd = _sc.bpf(Cmd.RAW_TRACEPOINT_OPEN, a, RAW_TRACEPOINT_SIZE)
        del name_buf
        return fd

    def prog_attach(self, prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
        """``BPF_PROG_ATTACH`` (cgroups: ``target_fd`` is an open cgroup v2 directory).

        ``flags``: ``BPF_F_ALLOW_OVERRIDE`` (1) or ``BPF_F_ALLOW_MULTI`` (2). The program
        stays attached after every fd is closed, until :meth:`prog_detach`.
        """
        a = ProgAttachAttr()
        a.target_fd = target_fd
        a.attach_bpf_fd = prog_fd
        a.attach_type = attach_type
        a.attach_flags = flags
        _sc.bpf(Cmd.PROG_ATTACH, a, PROG_ATTACH_SIZE)

    def prog_detach(self, prog_fd: int, target_fd: int, attach_type: int) -> None:
        """``BPF_PROG_DETACH``: undo :meth:`prog_attach` (``prog_fd`` -1: the one program attached)."""
        a = ProgAttachAttr()
        a.target_fd = target_fd
        a.attach_bpf_fd = prog_fd if prog_fd >= 0 else 0
        a.attach_type = attach_type
        _sc.bpf(Cmd.PROG_DETACH, a, PROG_ATTACH_SIZE)

    def link_info(self, fd: int) -> LinkInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a link: type, id, program id (EINVAL for another object)."""
        _check_fd_kind(fd, "anon_inode:bpf_link", "a link")
        info = BpfLinkInfo()
        a = InfoAttr()
        a.bpf_fd = fd
        a.info_len = LINK_INFO_SIZE  # the kernel writes at most this much into info
        a.info = ctypes.addressof(info)
        _sc.bpf(Cmd.OBJ_GET_INFO_BY_FD, a, INFO_SIZE)
        return LinkInfo(type=info.type, id=info.id, prog_id=info.prog_id)

    def link_detach(self, fd: int) -> None:
        """``BPF_LINK_DETACH``: detach now; the fd stays open (a defunct link) until closed."""
        a = LinkDetachAttr()
        a.link_fd = fd
        _sc.bpf(Cmd.LINK_DETACH, a, LINK_DETACH_SIZE)

    # -- perf events ---------------------------------------------------------------------------

    def perf_event_open_tracepoint(self, category: str, name: str, *, pid: int = -1, cpu: int = 0) -> int:
        """A perf event for tracepoint ``category/name`` (its id read from tracefs).

        ``FileNotFoundError`` naming the path when tracefs is not mounted (see
        :data:`loader.kernel.perf.TRACEFS_ROOTS`) or the tracepoint does not exist.
        """
        return _perf.open_tracepoint(category, name, pid=pid, cpu=cpu)

    def perf_event_open_kprobe(self, func: str, *, retprobe: bool = False, offset: int = 0) -> int:
        """A ``kprobe`` PMU perf event on ``func`` + ``offset`` (a kretprobe with ``retprobe``).

        ``OSError(EOPNOTSUPP)`` naming the missing sysfs file where the kernel has no
        kprobes; the kernel's errno (``ENOENT``, ``EINVAL``) for a function it cannot probe.
        """
        return _perf.open_kprobe(func, retprobe=retprobe, offset=offset)

    def perf_event_open_uprobe(self, path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                               ref_ctr_offset: int = 0) -> int:
        """A ``uprobe`` PMU perf event at file offset ``offset`` of ``path`` (pid -1: every process)."""
        return _perf.open_uprobe(path, offset, retprobe=retprobe, pid=pid, ref_ctr_offset=ref_ctr_offset)

    def perf_event_set_bpf(self, perf_fd: int, prog_fd: int) -> None:
        """``ioctl(PERF_EVENT_IOC_SET_BPF)``: run the program when the event fires, until it is closed."""
        _perf.set_bpf(perf_fd, prog_fd)

    def perf_event_enable(self, perf_fd: int) -> None:
        """``ioctl(PERF_EVENT_IOC_ENABLE)``."""
        _perf.enable(perf_fd)

    # -- socket filters ------------------------------------------------------------------------

    @staticmethod
    def _setsockopt(sock_fd: int, option: int, value: int, what: str) -> None:
        val = ctypes.c_int(value)
        ret: int = _sc.libc.setsockopt(ctypes.c_int(sock_fd), ctypes.c_int(socket.SOL_SOCKET),
                                       ctypes.c_int(option), ctypes.byref(val),
                                       ctypes.c_uint32(ctypes.sizeof(val)))
        if ret < 0:
            code = ctypes.get_errno() or errno_codes.EIO
            raise OSError(code, f"{_sc.strerror(code)}: {what} on socket {sock_fd}")

    def socket_attach_filter(self, sock_fd: int, prog_fd: int) -> None:
        """``setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd)``: a socket filter program.

        The filter replaces any earlier one and stays with the socket (the program fd may
        be closed). ``EINVAL`` for a program that is not a socket filter.
        """
        self._setsockopt(sock_fd, SO_ATTACH_BPF, prog_fd, "SO_ATTACH_BPF")

    def socket_detach_filter(self, sock_fd: int) -> None:
        """``setsockopt(sock_fd, SOL_SOCKET, SO_DETACH_BPF)``: remove the filter (ENOENT if there is none)."""
        self._setsockopt(sock_fd, SO_DETACH_BPF, 0, "SO_DETACH_BPF")

    # -- perf event arrays -----------------------------------------------------------------------

    def perf_event_open_bpf_output(self, cpu: int) -> int:
        """A ``PERF_COUNT_SW_BPF_OUTPUT`` event on ``cpu`` (``PERF_SAMPLE_RAW``, a wakeup per sample).

        The fd goes into a ``PERF_EVENT_ARRAY`` at index ``cpu``; its ring is mmapped by
        :class:`loader.PerfReader`. ``ENODEV`` for an offline CPU.
        """
        return _perf.open_bpf_output(cpu)
