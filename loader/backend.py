"""The ``Backend`` protocol: primitive kernel operations on bytes and handles.

A backend knows nothing of specs or Python values: it creates maps from plain
attributes and moves exact-size byte strings in and out of them. :class:`loader.Map`
computes every size (key, value, per-CPU slots, batch buffers) before it calls a
backend, so a backend may assume the buffers it is given and asked to fill are exactly
as large as the kernel will read or write.

Failures are ``OSError`` with the kernel's errno (``ENOENT``, ``EEXIST``, ``E2BIG``,
``EPERM``, ...); :mod:`loader.errors` turns them into the library's errors, naming the
map. Batch operations that stop early with ``ENOENT`` (the end of the map) return
their partial results with ``done=True`` instead of raising, as the kernel returns
them alongside the errno.

Handles are ints: file descriptors for :class:`~loader.KernelBackend`, private
numbers for :class:`~loader.MemoryBackend`. Every handle a backend returns must be
given back to :meth:`Backend.close` exactly once.

Implementations must be thread-safe: any operation may be called from any thread.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class MapAttrs:
    """What ``BPF_MAP_CREATE`` takes (``union bpf_attr``'s map-create part).

    ``inner_map_fd`` and ``btf_fd`` are -1 when absent. ``name`` is at most 15 bytes
    (longer names are truncated by the caller).
    """

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    inner_map_fd: int = -1
    numa_node: int = 0
    name: str = ""
    map_ifindex: int = 0
    btf_fd: int = -1
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    map_extra: int = 0


@attrs.frozen
class MapInfo:
    """What ``BPF_OBJ_GET_INFO_BY_FD`` says about a map (``struct bpf_map_info``)."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    map_extra: int = 0
    #: Set by :meth:`loader.Map.info`: why the map was created without its BTF ("" if it was not).
    btf_fallback: str = ""


@attrs.frozen
class BatchResult:
    """One batch operation's output.

    ``keys``/``values`` hold ``count`` packed entries; ``next_batch`` is the opaque
    cursor to pass as ``in_batch`` next time; ``done`` is True when the kernel said
    ``ENOENT`` (no entries after these).
    """

    count: int
    keys: bytes
    values: bytes
    next_batch: bytes
    done: bool


@runtime_checkable
class Backend(Protocol):
    """Primitive BPF operations. See the module docstring for the contract."""

    #: Short name for messages: "kernel", "memory", ...
    name: str

    def possible_cpus(self) -> int:
        """Number of possible CPUs: the per-CPU slot count of per-CPU maps."""
        ...

    # -- maps ----------------------------------------------------------------------------

    def map_create(self, attrs: MapAttrs) -> int:
        """``BPF_MAP_CREATE``; returns the new map's handle."""
        ...

    def map_lookup(
        self, fd: int, key: bytes, value_size: int, flags: int = 0, *, value: bytes | None = None
    ) -> bytes:
        """``BPF_MAP_LOOKUP_ELEM``: ``value_size`` bytes (all CPUs' slots for per-CPU maps).

        ``value`` is for maps whose lookup *reads* the value buffer (a bloom filter's
        "is this value in the set"): it is copied into the buffer before the call.
        """
        ...

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        """``BPF_MAP_UPDATE_ELEM``. For queue/stack/bloom maps ``key`` is ``b""``."""
        ...

    def map_delete(self, fd: int, key: bytes) -> None:
        """``BPF_MAP_DELETE_ELEM``."""
        ...

    def map_lookup_and_delete(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes:
        """``BPF_MAP_LOOKUP_AND_DELETE_ELEM`` (queue/stack pop with ``key=b""``, hash maps)."""
        ...

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes:
        """``BPF_MAP_GET_NEXT_KEY``: the key after ``key`` (the first key if None); ENOENT at the end."""
        ...

    def map_lookup_batch(
        self, fd: int, in_batch: bytes | None, batch_size: int, key_size: int, value_size: int,
        count: int, *, delete: bool = False, elem_flags: int = 0,
    ) -> BatchResult:
        """``BPF_MAP_LOOKUP_BATCH`` (or ``..._AND_DELETE_BATCH``) of up to ``count`` entries.

        ``in_batch`` None starts at the beginning (the kernel's NULL ``in_batch``);
        ``batch_size`` is the cursor's size: hash maps keep a u32 bucket index in it, arrays
        a key, so callers pass ``max(key_size, 4)``.
        ``value_size`` is per entry (all CPUs' slots for per-CPU maps). ``ENOSPC`` (a
        bucket larger than ``count``) raises.
        """
        ...

    def map_update_batch(
        self, fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
    ) -> int:
        """``BPF_MAP_UPDATE_BATCH``; returns how many entries were written.

        On failure raises ``OSError`` whose ``count`` attribute (if set) tells how many
        entries were written before it.
        """
        ...

    def map_delete_batch(self, fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
        """``BPF_MAP_DELETE_BATCH``; returns how many entries were deleted."""
        ...

    def map_freeze(self, fd: int) -> None:
        """``BPF_MAP_FREEZE``: user space may no longer write the map."""
        ...

    def map_info(self, fd: int) -> MapInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a map."""
        ...

    def map_fd_by_id(self, map_id: int) -> int:
        """``BPF_MAP_GET_FD_BY_ID``: a new handle to the map with this id."""
        ...

    # -- objects -------------------------------------------------------------------------

    def obj_pin(self, fd: int, path: str) -> None:
        """``BPF_OBJ_PIN``: pin the object at ``path`` (on bpffs)."""
        ...

    def obj_get(self, path: str, flags: int = 0) -> int:
        """``BPF_OBJ_GET``: a new handle to the object pinned at ``path``."""
        ...

    def obj_unpin(self, path: str) -> None:
        """Remove the pin at ``path`` (``unlink`` on bpffs); ENOENT if there is none."""
        ...

    def dup(self, fd: int) -> int:
        """A second handle to the same object (closed separately)."""
        ...

    def close(self, fd: int) -> None:
        """Release a handle."""
        ...

    # -- BTF -------------------------------------------------------------------------------

    def btf_load(self, raw: bytes) -> int:
        """``BPF_BTF_LOAD`` of a raw BTF blob; returns its handle."""
        ...
