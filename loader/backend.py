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


@attrs.frozen
class ProgramAttrs:
    """What ``BPF_PROG_LOAD`` takes. Descriptors are -1 when absent.

    ``insns`` are the encoded instructions (native byte order) with every map reference
    already turned into a descriptor. ``func_info``/``line_info`` are packed
    ``struct bpf_func_info`` (8 bytes) / ``struct bpf_line_info`` (16 bytes) records with
    instruction offsets counted in instructions; they need ``prog_btf_fd``.
    """

    prog_type: int
    insns: bytes
    license: str = ""
    kern_version: int = 0
    prog_flags: int = 0
    name: str = ""
    expected_attach_type: int = 0
    prog_btf_fd: int = -1
    func_info: bytes = b""
    line_info: bytes = b""
    attach_btf_id: int = 0
    attach_btf_obj_fd: int = -1
    attach_prog_fd: int = -1
    fd_array: tuple[int, ...] = ()


@attrs.frozen
class ProgramInfo:
    """What ``BPF_OBJ_GET_INFO_BY_FD`` says about a program (``struct bpf_prog_info``)."""

    type: int
    id: int
    name: str
    tag: bytes
    xlated_prog_len: int = 0
    jited_prog_len: int = 0
    btf_id: int = 0
    map_ids: tuple[int, ...] = ()


@attrs.frozen
class TestRunResult:
    """The outcome of ``BPF_PROG_TEST_RUN``: return value, output data/context, mean duration (ns)."""

    __test__ = False  # not a pytest test class

    retval: int
    data: bytes
    ctx: bytes
    duration_ns: int


class ProgLoadError(OSError):
    """``BPF_PROG_LOAD`` failed; ``log`` is the verifier's log (as much as the buffer held).

    ``log_true_size`` is the size the whole log needs, when the kernel says (6.4+), else 0.
    """

    def __init__(self, errno: int, message: str, log: str, log_true_size: int = 0):
        super().__init__(errno, message)
        self.log = log
        self.log_true_size = log_true_size


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

    def btf_fd_by_id(self, btf_id: int) -> int:
        """``BPF_BTF_GET_FD_BY_ID``: a new handle to the BTF object with this id (ENOENT if none)."""
        ...

    def btf_raw(self, fd: int) -> bytes:
        """The raw blob of BTF object ``fd`` as loaded (``BPF_OBJ_GET_INFO_BY_FD``'s ``btf``).

        EINVAL for a handle of another kind of object. A program's BTF is found this way
        from :attr:`ProgramInfo.btf_id` (freplace targets).
        """
        ...

    # -- programs ------------------------------------------------------------------------------

    def prog_load(self, attrs: ProgramAttrs, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
        """``BPF_PROG_LOAD``: ``(handle, verifier log)``.

        With ``log_level`` 0 no log is asked for on success; on failure the backend retries
        with ``log_level`` 1 (if it was 0) and raises :class:`ProgLoadError` carrying the
        log. ``log_size`` is the log buffer in bytes (0: the backend's default); when the
        log does not fit the kernel returns ENOSPC, which the caller handles by growing it.
        """
        ...

    def prog_test_run(
        self, fd: int, *, data: bytes = b"", data_out_size: int = 0, ctx: bytes = b"",
        ctx_out_size: int = 0, repeat: int = 1, flags: int = 0, cpu: int = 0,
    ) -> TestRunResult:
        """``BPF_PROG_TEST_RUN``. Output buffers are exactly ``data_out_size``/``ctx_out_size`` bytes."""
        ...

    def prog_info(self, fd: int) -> ProgramInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a program."""
        ...

    def prog_fd_by_id(self, prog_id: int) -> int:
        """``BPF_PROG_GET_FD_BY_ID``."""
        ...

    # -- attaching programs ----------------------------------------------------------------------
    # Kernel-side attachment: links, cgroup attachments, perf events and socket filters. A
    # backend that cannot attach (MemoryBackend) raises OSError(EOPNOTSUPP) from all of them.

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                    target_btf_id: int = 0, cookie: int = 0, iter_info: bytes = b"") -> int:
        """``BPF_LINK_CREATE``: attach the program through a new link; returns the link's handle.

        ``target_fd`` is what ``attach_type`` attaches to: an ifindex for ``BPF_XDP``, a
        perf event for ``BPF_PERF_EVENT``, a cgroup directory for cgroup attach types, a
        target program for freplace (0 where there is none). ``target_btf_id`` is for
        freplace and tracing programs; ``cookie`` (``bpf_get_attach_cookie``) for
        ``BPF_PERF_EVENT`` and tracing links. ``iter_info`` is for ``BPF_TRACE_ITER``
        (iterator) links: a packed ``union bpf_iter_link_info`` (the map to iterate, the
        task to walk), ``b""`` for none. Closing the last handle detaches the program
        (unless the link is pinned).
        """
        ...

    def iter_create(self, link_fd: int) -> int:
        """``BPF_ITER_CREATE``: start an iteration of iterator link ``link_fd``.

        Returns an ordinary read-only file descriptor (not a backend handle: the caller
        reads it to EOF and closes it with ``os.close``), one fresh iteration per call.
        EINVAL when ``link_fd`` is not an iterator link, EBADF when it is not open.
        """
        ...

    def raw_tracepoint_open(self, name: str | None, prog_fd: int) -> int:
        """``BPF_RAW_TRACEPOINT_OPEN``: attach a raw tracepoint program to tracepoint ``name``.

        ``name`` is None for programs whose target was given at load time (``tp_btf``,
        fentry/fexit, lsm). Returns a link handle.
        """
        ...

    def prog_attach(self, prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
        """``BPF_PROG_ATTACH``: attach without a link (cgroups: ``target_fd`` is the cgroup directory).

        ``flags``: ``BPF_F_ALLOW_OVERRIDE`` (1), ``BPF_F_ALLOW_MULTI`` (2). The attachment
        outlives every handle; :meth:`prog_detach` undoes it.
        """
        ...

    def prog_detach(self, prog_fd: int, target_fd: int, attach_type: int) -> None:
        """``BPF_PROG_DETACH``: undo :meth:`prog_attach` (``prog_fd`` -1: the one program attached)."""
        ...

    def link_info(self, fd: int) -> LinkInfo:
        """``BPF_OBJ_GET_INFO_BY_FD`` for a link: its type, id and program's id."""
        ...

    def link_detach(self, fd: int) -> None:
        """``BPF_LINK_DETACH``: detach the link's program now; the handle stays open (and must be closed)."""
        ...

    def perf_event_open_tracepoint(self, category: str, name: str, *, pid: int = -1, cpu: int = 0) -> int:
        """A perf event for tracepoint ``category/name``; its id comes from tracefs.

        ``FileNotFoundError`` naming the path when tracefs is not mounted or there is no
        such tracepoint. The default (``pid`` -1, ``cpu`` 0) suits BPF programs, which run
        on every CPU whatever the event's CPU.
        """
        ...

    def perf_event_open_kprobe(self, func: str, *, retprobe: bool = False, offset: int = 0) -> int:
        """A perf event of the ``kprobe`` PMU on kernel function ``func`` (+ ``offset``).

        ``OSError(EOPNOTSUPP)`` naming the missing file when the kernel has no kprobe PMU.
        """
        ...

    def perf_event_open_uprobe(self, path: str, offset: int, *, retprobe: bool = False, pid: int = -1,
                               ref_ctr_offset: int = 0) -> int:
        """A ``uprobe`` PMU perf event at file offset ``offset`` of ``path`` (pid -1: every process)."""
        ...

    def perf_event_set_bpf(self, perf_fd: int, prog_fd: int) -> None:
        """``PERF_EVENT_IOC_SET_BPF``: run the program when the perf event fires (the pre-link way)."""
        ...

    def perf_event_enable(self, perf_fd: int) -> None:
        """``PERF_EVENT_IOC_ENABLE``."""
        ...

    def socket_attach_filter(self, sock_fd: int, prog_fd: int) -> None:
        """``setsockopt(SO_ATTACH_BPF)``: filter what socket ``sock_fd`` receives by a socket filter program.

        The filter stays with the socket after the program handle is closed.
        """
        ...

    def socket_detach_filter(self, sock_fd: int) -> None:
        """``setsockopt(SO_DETACH_BPF)``: remove the socket's filter (ENOENT if it has none)."""
        ...

    def perf_event_open_bpf_output(self, cpu: int) -> int:
        """A ``PERF_COUNT_SW_BPF_OUTPUT`` perf event on ``cpu`` for a ``PERF_EVENT_ARRAY`` reader.

        Stored in the array at index ``cpu``, it receives what ``bpf_perf_event_output``
        emits there (``PERF_SAMPLE_RAW`` samples, one wakeup per sample) in a ring mmapped
        from the returned handle. ``ENODEV`` for an offline CPU.
        """
        ...


@attrs.frozen
class LinkInfo:
    """What ``BPF_OBJ_GET_INFO_BY_FD`` says about a link: the head of ``struct bpf_link_info``.

    ``type`` is an ``enum bpf_link_type`` value (1 raw tracepoint, 2 tracing, 3 cgroup,
    4 iter, 5 netns, 6 xdp, 7 perf event, ...).
    """

    type: int
    id: int
    prog_id: int
