"""``loader.Program``: a loaded BPF program.

Thread-safety: like :class:`~loader.Map`, a ``Program`` may be used from many threads;
``close()`` waits for running operations (test runs, attaches) and later ones raise
:class:`~loader.errors.ProgramError` with ``EBADF``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import btf
from ebpfspec import AttachType, ExternSpec, ProgramSpec, ProgramType
from loader.backend import Backend, ProgramInfo, TestRunResult
from loader.errors import LoaderError, NotSupportedError, ProgramError
from loader.handle import Handle, HandleClosed
from loader.link import (
    ATTACH_TRACE_ITER,
    ATTACH_XDP,
    IterLink,
    Link,
    attach_error,
    cgroup_attach,
    error_detail,
    interface_index,
    iter_link_info,
    link_perf_event,
    program_error,
    socket_attach,
    uprobe_offset,
)
from loader.live import LiveObject
from loader.program_load import (
    KconfigValues,
    ProgramBTF,
    TargetProgram,
    apply_core,
    attach_btf_target,
    check_byte_order,
    find_target_function,
    load_program,
    program_attrs,
    relocate_maps,
    resolve_externs,
)

if TYPE_CHECKING:
    from loader.map import Map

#: Room added to a test run's output buffer beyond the input (XDP may grow packets).
TEST_RUN_HEADROOM = 256
#: Largest output buffer a test run grows to after ENOSPC.
MAX_TEST_RUN_OUTPUT = 1 << 24


class Program(LiveObject):
    """A loaded BPF program. Get one from :func:`loader.load_collection` or :meth:`Program.load`."""

    def __init__(
        self,
        fd: int,
        backend: Backend,
        *,
        name: str,
        type: ProgramType,
        spec: ProgramSpec | None = None,
        verifier_log: str = "",
    ):
        """Wrap ``fd`` (ownership passes to the Program)."""
        self._backend = backend
        self._handle = Handle(fd, backend.close)
        self.name = name
        self.type = ProgramType(type)
        self.spec = spec
        self.verifier_log = verifier_log
        self._pinned_path: str | None = None

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        spec: ProgramSpec,
        backend: Backend | None = None,
        *,
        maps: Mapping[str, Map] | None = None,
        types: btf.Spec | None = None,
        externs: Mapping[str, ExternSpec] | None = None,
        kernel_types: btf.Spec | None = None,
        log_level: int = 0,
        target: Program | None = None,
    ) -> Program:
        """Load ``spec`` on its own: ``maps`` it uses (by name), ``types`` the object's BTF.

        ``kernel_types`` replaces the running kernel's BTF for CO-RE and attach targets.
        ``log_level`` > 0 keeps the verifier's log in :attr:`verifier_log` on success.
        ``target`` is the program an extension (``freplace/FUNC``) program is loaded
        against (also fentry/fexit programs, to trace a BPF program's function): the
        load gets ``attach_prog_fd`` = its descriptor and ``attach_btf_id`` = the id of
        ``FUNC`` (``spec.attach_to``) in its BTF, read from the kernel
        (``BPF_BTF_GET_FD_BY_ID``); ``ProgramError`` naming both when it has no such
        function. The target is held in use (another thread closing it waits) during the
        load. Kernel: freplace needs Linux 5.6+ and a target loaded with BTF func info.
        """
        from loader.map import default_backend

        backend = backend or default_backend()
        program_btf = _load_btf(types, [spec], backend)
        try:
            with target_program(target, backend, spec.name, "load") as held:
                return load_one(
                    spec,
                    backend,
                    maps=maps or {},
                    types=types,
                    externs=externs or {},
                    program_btf=program_btf,
                    kernel=kernel_btf_source(kernel_types),
                    log_level=log_level,
                    target=held,
                )
        finally:
            if program_btf is not None:
                backend.close(program_btf.fd)

    @classmethod
    def from_fd(cls, fd: int, backend: Backend | None = None) -> Program:
        """A ``Program`` for an existing program descriptor; takes ownership of ``fd``."""
        from loader.map import default_backend

        backend = backend or default_backend()
        try:
            info = backend.prog_info(fd)
        except OSError as err:
            backend.close(fd)
            raise ProgramError(err.errno or errno.EIO, "info", f"fd {fd}") from err
        return cls(fd, backend, name=info.name, type=ProgramType(info.type))

    @classmethod
    def from_id(cls, prog_id: int, backend: Backend | None = None) -> Program:
        """A ``Program`` for the program with kernel id ``prog_id``."""
        from loader.map import default_backend

        backend = backend or default_backend()
        try:
            fd = backend.prog_fd_by_id(prog_id)
        except OSError as err:
            raise ProgramError(err.errno or errno.EIO, "get fd by id", f"id {prog_id}") from err
        return cls.from_fd(fd, backend)

    @classmethod
    def load_pinned(cls, path: str, backend: Backend | None = None) -> Program:
        """A ``Program`` for the program pinned at ``path``."""
        from loader.map import default_backend

        backend = backend or default_backend()
        try:
            fd = backend.obj_get(path)
        except OSError as err:
            raise ProgramError(err.errno or errno.EIO, "load pinned", path) from err
        program = cls.from_fd(fd, backend)
        program._pinned_path = path
        return program

    # -- lifetime --------------------------------------------------------------------------------

    # -- operations --------------------------------------------------------------------------------

    def info(self) -> ProgramInfo:
        """What the kernel reports about the program."""
        info: ProgramInfo = self._call("info", self._backend.prog_info)
        return info

    def test_run(
        self,
        data: bytes = b"",
        *,
        ctx: bytes = b"",
        repeat: int = 1,
        ctx_out: bool = False,
        flags: int = 0,
        cpu: int = 0,
    ) -> TestRunResult:
        """Run the program once (or ``repeat`` times) on ``data`` (``BPF_PROG_TEST_RUN``).

        Returns the return value, the output data (and context if ``ctx_out``) and the mean
        duration in nanoseconds. The output buffer grows if the program enlarges the data.
        """
        if repeat < 1:
            raise ValueError(f"program {self.name!r}: repeat must be at least 1")
        out_size = len(data) + TEST_RUN_HEADROOM if data else 0
        while True:
            try:
                result: TestRunResult = self._call(
                    "test run",
                    self._backend.prog_test_run,
                    data=bytes(data),
                    data_out_size=out_size,
                    ctx=bytes(ctx),
                    ctx_out_size=len(ctx) if ctx_out else 0,
                    repeat=repeat if repeat > 1 else 0,  # 0 runs once; some types refuse any other
                    flags=flags,
                    cpu=cpu,
                )
                return result
            except ProgramError as err:
                if err.errno != errno.ENOSPC or not data or out_size >= MAX_TEST_RUN_OUTPUT:
                    raise
                out_size *= 4

    # -- attaching ----------------------------------------------------------------------------------
    # Each attach_* method returns a loader.Link (closing it detaches) and raises ProgramError
    # (errno, op, this program's name) or NotSupportedError where the kernel lacks the hook.

    def attach(self) -> Link:
        """Attach where the program's section says, like libbpf's auto-attach.

        ``tracepoint/CAT/NAME`` (``tp/``) → :meth:`attach_tracepoint`;
        ``raw_tracepoint/NAME`` (``raw_tp/``) → :meth:`attach_raw_tracepoint`;
        ``kprobe/FUNC[+OFF]`` / ``kretprobe/FUNC`` → :meth:`attach_kprobe` / :meth:`attach_kretprobe`;
        ``uprobe/PATH:FUNC[+OFF]`` / ``uretprobe/...`` → :meth:`attach_uprobe`;
        ``tp_btf/``, ``fentry/``, ``fexit/``, ``fmod_ret/``, ``lsm/`` → :meth:`attach_tracing`;
        ``iter/NAME`` → :meth:`attach_iter` (without a map or task: iterators that need a
        map fail, saying so); ``freplace/FUNC`` → :meth:`attach_freplace` to the program it
        was loaded against.
        Programs that need a target the section cannot name (XDP, cgroups, sockets, TC, ...)
        raise :class:`NotSupportedError` pointing at the method to use.
        """
        spec = self.spec
        if spec is None:
            raise NotSupportedError(f"program {self.name!r}: attach: no spec says where it attaches; "
                                    "use one of the attach_* methods")
        kind, attach_to, section = self.type, spec.attach_to or "", spec.section_name
        if kind == ProgramType.TRACEPOINT:
            category, _, name = attach_to.partition("/")
            if not category or not name:
                raise NotSupportedError(f"program {self.name!r}: attach: section {section!r} names no "
                                        "tracepoint CATEGORY/NAME; use attach_tracepoint()")
            return self.attach_tracepoint(category, name)
        if kind in (ProgramType.RAW_TRACEPOINT, ProgramType.RAW_TRACEPOINT_WRITABLE):
            if not attach_to:
                raise NotSupportedError(f"program {self.name!r}: attach: section {section!r} names no "
                                        "tracepoint; use attach_raw_tracepoint()")
            return self.attach_raw_tracepoint(attach_to)
        if kind == ProgramType.KPROBE:
            prefix = section.split("/", 1)[0]
            if prefix in ("kprobe", "kretprobe") and attach_to:
                func, plus, offset = attach_to.partition("+")
                if prefix == "kretprobe":
                    return self.attach_kretprobe(func)
                return self.attach_kprobe(func, offset=int(offset, 0) if plus else 0)
            if prefix in ("uprobe", "uretprobe") and attach_to:
                path, colon, where = attach_to.rpartition(":")
                if colon and path and where:
                    target: int | str = int(where, 0) if where[:1].isdigit() else where
                    return self.attach_uprobe(path, target, retprobe=prefix == "uretprobe")
            raise NotSupportedError(f"program {self.name!r}: attach: section {section!r} names no probe "
                                    "target; use attach_kprobe() or attach_uprobe()")
        if kind == ProgramType.TRACING and spec.attach_type == AttachType.TRACE_ITER:
            return self.attach_iter()
        if kind == ProgramType.EXT:
            return self.attach_freplace()
        if kind in (ProgramType.TRACING, ProgramType.LSM):
            return self.attach_tracing()
        hint = {
            ProgramType.XDP: "attach_xdp(interface)",
            ProgramType.SOCKET_FILTER: "attach_socket(sock)",
        }.get(kind, "attach_cgroup(path)" if kind.name.startswith(("CGROUP", "SOCK_OPS")) else "")
        raise NotSupportedError(f"program {self.name!r}: attach: {kind} programs (section {section!r}) "
                                "need a target to attach to" + (f"; use {hint}" if hint else ""))

    def attach_tracepoint(self, category: str, name: str | None = None, *, cookie: int = 0) -> Link:
        """Attach to tracepoint ``category/name`` (or ``category`` alone as ``"syscalls/sys_enter_getpid"``).

        Through a perf event of the tracepoint (its id read from tracefs) and a
        ``BPF_PERF_EVENT`` link; where the kernel has no such links, the older
        ``PERF_EVENT_IOC_SET_BPF`` way (then ``cookie``, ``bpf_get_attach_cookie``, is not
        available). ``ProgramError`` ENOENT naming the path when tracefs is not mounted or
        the tracepoint does not exist.
        """
        if name is None:
            category, _, name = category.partition("/")
        op, target = "attach tracepoint", f"tracepoint {category}/{name}"
        with self._attaching(op, target, ProgramType.TRACEPOINT) as fd:
            try:
                perf_fd = self._backend.perf_event_open_tracepoint(category, name)
            except OSError as err:
                raise attach_error(err, op, self.name, target) from None
            return link_perf_event(self._backend, fd, perf_fd, program=self.name, op=op, target=target,
                                   cookie=cookie)

    def attach_kprobe(self, func: str, *, offset: int = 0, cookie: int = 0) -> Link:
        """Attach to kernel function ``func`` (+ ``offset``) through the kprobe PMU.

        ``NotSupportedError`` saying kprobes are unavailable on kernels without them
        (``CONFIG_KPROBES``); ``ProgramError`` for a function the kernel cannot probe.
        """
        return self._attach_kprobe(func, offset=offset, retprobe=False, cookie=cookie)

    def attach_kretprobe(self, func: str, *, cookie: int = 0) -> Link:
        """Attach to the return of kernel function ``func`` (see :meth:`attach_kprobe`)."""
        return self._attach_kprobe(func, offset=0, retprobe=True, cookie=cookie)

    def _attach_kprobe(self, func: str, *, offset: int, retprobe: bool, cookie: int) -> Link:
        kind = "kretprobe" if retprobe else "kprobe"
        op, target = f"attach {kind}", f"{kind} {func}" + (f"+{offset:#x}" if offset else "")
        with self._attaching(op, target, ProgramType.KPROBE) as fd:
            try:
                perf_fd = self._backend.perf_event_open_kprobe(func, retprobe=retprobe, offset=offset)
            except OSError as err:
                if err.errno == errno.EOPNOTSUPP:
                    raise NotSupportedError(f"program {self.name!r}: {op} {func}: kprobes are unavailable: "
                                            f"{error_detail(err) or 'not supported'}") from None
                raise attach_error(err, op, self.name, target) from None
            return link_perf_event(self._backend, fd, perf_fd, program=self.name, op=op, target=target,
                                   cookie=cookie)

    def attach_uprobe(self, path: str, offset_or_symbol: int | str, *, retprobe: bool = False, pid: int = -1,
                      cookie: int = 0) -> Link:
        """Attach to a user-space function of ``path``: a file offset, or a symbol (``"f"``, ``"f+0x10"``).

        Symbols are looked up in the ELF file's ``.symtab`` and ``.dynsym``.
        ``retprobe`` probes the function's return; ``pid`` limits the probe to one
        process (-1: every process running ``path``).
        """
        kind = "uretprobe" if retprobe else "uprobe"
        op = f"attach {kind}"
        if isinstance(offset_or_symbol, str):
            try:
                offset = uprobe_offset(path, offset_or_symbol)
            except LookupError as err:
                raise ProgramError(errno.ENOENT, op, self.name, str(err).strip("'\"")) from None
            except ValueError as err:
                raise ProgramError(errno.EINVAL, op, self.name, str(err)) from None
            except OSError as err:
                raise program_error(err, op, self.name, path) from None
        else:
            offset = offset_or_symbol
        target = f"{kind} {path}:{offset_or_symbol}"
        if offset != offset_or_symbol:
            target += f" ({offset:#x})"
        with self._attaching(op, target, ProgramType.KPROBE) as fd:
            try:
                perf_fd = self._backend.perf_event_open_uprobe(path, offset, retprobe=retprobe, pid=pid)
            except OSError as err:
                raise attach_error(err, op, self.name, target) from None
            return link_perf_event(self._backend, fd, perf_fd, program=self.name, op=op, target=target,
                                   cookie=cookie)

    def attach_uretprobe(self, path: str, offset_or_symbol: int | str, *, pid: int = -1,
                         cookie: int = 0) -> Link:
        """:meth:`attach_uprobe` with ``retprobe=True``."""
        return self.attach_uprobe(path, offset_or_symbol, retprobe=True, pid=pid, cookie=cookie)

    def attach_raw_tracepoint(self, name: str) -> Link:
        """Attach to raw tracepoint ``name`` (``BPF_RAW_TRACEPOINT_OPEN``), e.g. ``"sys_enter"``."""
        op, target = "attach raw tracepoint", f"raw tracepoint {name}"
        types = (ProgramType.RAW_TRACEPOINT, ProgramType.RAW_TRACEPOINT_WRITABLE)
        with self._attaching(op, target, *types) as fd:
            try:
                link_fd = self._backend.raw_tracepoint_open(name, fd)
            except OSError as err:
                raise attach_error(err, op, self.name, target) from None
            return Link(link_fd, self._backend, program=self.name, target=target)

    def attach_tracing(self, *, cookie: int = 0) -> Link:
        """Attach a ``tp_btf``/``fentry``/``fexit``/``fmod_ret``/``lsm`` program to its load-time target.

        ``BPF_RAW_TRACEPOINT_OPEN`` without a name, or ``BPF_LINK_CREATE`` with the spec's
        attach type when a ``cookie`` is given. An extension (``freplace``) program is
        attached to the program it was loaded against (:meth:`attach_freplace` without
        arguments); an iterator program goes to :meth:`attach_iter` (iterator links take
        no cookie: ``ProgramError`` EINVAL).
        """
        op = "attach tracing"
        attach_type = self.spec.attach_type if self.spec is not None else None
        target = f"{self.spec.section_name}" if self.spec is not None else "its load-time target"
        is_iter = attach_type is not None and int(attach_type) == ATTACH_TRACE_ITER
        if is_iter and self.type == ProgramType.TRACING:
            if cookie:
                raise ProgramError(errno.EINVAL, op, self.name, "iterator links take no cookie")
            return self.attach_iter()
        with self._attaching(op, target, ProgramType.TRACING, ProgramType.LSM, ProgramType.EXT) as fd:
            try:
                if cookie:
                    if attach_type is None:
                        raise ProgramError(errno.EINVAL, op, self.name,
                                           "a cookie needs the attach type, and the program has no spec")
                    link_fd = self._backend.link_create(fd, 0, int(attach_type), cookie=cookie)
                else:
                    link_fd = self._backend.raw_tracepoint_open(None, fd)
            except OSError as err:
                raise attach_error(err, op, self.name, target) from None
            return Link(link_fd, self._backend, program=self.name, target=target)

    def attach_iter(self, *, map: Map | None = None, tid: int = 0, pid: int = 0, pid_fd: int = 0) -> IterLink:
        """Attach an iterator program (``iter/NAME``) with a ``BPF_TRACE_ITER`` link; read it with
        :meth:`IterLink.open <loader.link.IterLink.open>`.

        ``map`` is the map a map iterator walks (``iter/bpf_map_elem``,
        ``iter/bpf_sk_storage_map``, ``iter/sockmap``): its descriptor goes to the kernel
        in ``union bpf_iter_link_info`` (``map.map_fd``) and the map is held in use while
        the link is made. ``tid``, ``pid`` or ``pid_fd`` (a pidfd) restrict a task
        iterator (``iter/task``, ``iter/task_file``, ``iter/task_vma``) to one thread or
        process (Linux 6.1+). At most one of them (``ValueError``). Iterators over
        everything (``iter/task``, ``iter/bpf_map``, ``iter/bpf_prog``, ...) take none.

        ``ProgramError`` (naming the program, with the kernel's errno) when the kernel
        refuses: ``EBADF`` for a map iterator without a map (the message says so),
        ``EACCES`` when the program reads more of a key or value than the map has.
        ``NotSupportedError`` on a backend that cannot attach (:class:`loader.MemoryBackend`).
        Kernel: Linux 5.8+ (``iter/bpf_map_elem`` 5.9+). Thread-safe.
        """
        op = "attach iterator"
        spec = self.spec
        if spec is not None and spec.attach_type != AttachType.TRACE_ITER:
            raise ProgramError(errno.EINVAL, op, self.name,
                               f"section {spec.section_name!r} is not an iterator (iter/NAME)")
        what = spec.attach_to if spec is not None and spec.attach_to else "(its load-time target)"
        target = f"iterator {what}"
        if map is not None:
            target += f" over map {map.name!r}"
        elif tid or pid or pid_fd:
            target += f" of {'thread' if tid else 'process'} " + (f"{tid or pid}" if tid or pid
                                                                  else f"pidfd {pid_fd}")
        with self._attaching(op, target, ProgramType.TRACING) as fd:
            with _map_in_use(map, self.name, op) as map_fd:
                try:
                    info = iter_link_info(map_fd=map_fd, tid=tid, pid=pid, pid_fd=pid_fd)
                except ValueError as err:
                    raise ValueError(f"program {self.name!r}: {op}: {err}") from None
                try:
                    link_fd = self._backend.link_create(fd, 0, ATTACH_TRACE_ITER, iter_info=info)
                except OSError as err:
                    detail = target
                    if err.errno == errno.EBADF and map is None:
                        detail += "; this iterator walks a map: give it with attach_iter(map=...)"
                    raise attach_error(err, op, self.name, detail) from None
            return IterLink(link_fd, self._backend, program=self.name, target=target)

    def attach_freplace(self, target: Program | None = None, func_name: str | None = None) -> Link:
        """Attach an extension (``freplace/FUNC``) program: it then runs instead of ``FUNC``.

        Without arguments, to the function of the program it was loaded against
        (``BPF_RAW_TRACEPOINT_OPEN`` without a name, libbpf's way). With a ``target``
        program (of the same type as the one it was loaded against, Linux 5.10+), to its
        function ``func_name`` (default: the section's ``FUNC``) through
        ``BPF_LINK_CREATE`` with ``target_fd`` = the target's descriptor and
        ``target_btf_id`` = the id of ``func_name`` in the target's BTF (read from the
        kernel); ``ProgramError`` ENOENT naming both when the target has no such function.
        Closing the link puts the original function back. The target is held in use
        while the link is made. Kernel: Linux 5.6+ (extension programs). Thread-safe.
        """
        op = "attach freplace"
        if target is None:
            if func_name is not None:
                raise ValueError(f"program {self.name!r}: {op}: func_name {func_name!r} needs a target "
                                 "program")
            where = f"{self.spec.section_name}" if self.spec is not None else "its load-time target"
            with self._attaching(op, where, ProgramType.EXT) as fd:
                try:
                    link_fd = self._backend.raw_tracepoint_open(None, fd)
                except OSError as err:
                    raise attach_error(err, op, self.name, where) from None
                return Link(link_fd, self._backend, program=self.name, target=where)
        spec = self.spec
        name = func_name or (spec.attach_to if spec is not None else "")
        where = f"function {name!r} of program {target.name!r}" if name else f"program {target.name!r}"
        with self._attaching(op, where, ProgramType.EXT) as fd:
            if not name:
                raise ValueError(f"program {self.name!r}: {op}: name the function of {target.name!r} to "
                                 "replace (func_name=...)")
            with target_program(target, self._backend, self.name, op) as held:
                assert held is not None
                btf_id = find_target_function(held, name, self.name, op)
                attach_type = int(spec.attach_type) if spec is not None else 0
                try:
                    link_fd = self._backend.link_create(fd, held.fd, attach_type, target_btf_id=btf_id)
                except OSError as err:
                    raise attach_error(err, op, self.name, where) from None
            return Link(link_fd, self._backend, program=self.name, target=where)

    def attach_xdp(self, interface: int | str, *, flags: int = 0) -> Link:
        """Attach to network interface ``interface`` (an index or a name, ``"lo"``) with a ``BPF_XDP`` link.

        ``flags``: ``XDP_FLAGS_SKB_MODE`` / ``XDP_FLAGS_DRV_MODE`` / ``XDP_FLAGS_HW_MODE``
        (:mod:`loader.link`); 0 lets the kernel choose. ``ProgramError`` EBUSY when
        another program holds the interface.
        """
        op = "attach xdp"
        ifindex, where = interface_index(interface, program=self.name, op=op)
        target = f"xdp on {where}"
        with self._attaching(op, target, ProgramType.XDP) as fd:
            try:
                link_fd = self._backend.link_create(fd, ifindex, ATTACH_XDP, flags=flags)
            except OSError as err:
                raise attach_error(err, op, self.name, target) from None
            return Link(link_fd, self._backend, program=self.name, target=target)

    def attach_cgroup(self, cgroup: str | os.PathLike[str] | int, attach_type: int | None = None) -> Link:
        """Attach to a cgroup v2 directory (a path or an open descriptor) as ``attach_type``.

        ``attach_type`` defaults to the spec's (``cgroup_skb/ingress`` → ``BPF_CGROUP_INET_INGRESS``).
        A cgroup link where the kernel has them, else ``BPF_PROG_ATTACH`` with
        ``BPF_F_ALLOW_MULTI``, undone by closing the link either way.
        """
        op = "attach cgroup"
        if attach_type is None:
            if self.spec is None:
                raise ProgramError(errno.EINVAL, op, self.name,
                                   "no spec gives the attach type: pass attach_type")
            attach_type = int(self.spec.attach_type)
        with self._attaching(op, "a cgroup") as fd:
            return cgroup_attach(self._backend, fd, cgroup, int(attach_type), program=self.name, op=op)

    def attach_socket(self, sock: socket.socket | int | Any) -> Link:
        """Filter what socket ``sock`` (a socket, an object with ``fileno()``, or a descriptor) receives.

        ``SO_ATTACH_BPF`` of a socket filter program; closing the link removes the filter
        (``SO_DETACH_BPF``). The link holds a duplicate of the socket descriptor until then.
        """
        op = "attach socket filter"
        with self._attaching(op, "a socket", ProgramType.SOCKET_FILTER) as fd:
            return socket_attach(self._backend, fd, sock, program=self.name, op=op)

    @contextlib.contextmanager
    def _attaching(self, op: str, target: str, *types: ProgramType) -> Iterator[int]:
        """The program's descriptor, in use for the block.

        ``ProgramError`` EINVAL if the program's type is not one of ``types`` (any if none given).
        """
        if types and self.type not in types:
            wanted = " or ".join(str(t) for t in types)
            raise ProgramError(errno.EINVAL, op, self.name,
                               f"{self.type} programs cannot attach to {target}: that needs a {wanted} "
                               "program")
        try:
            fd = self._handle.acquire()
        except HandleClosed:
            raise ProgramError(errno.EBADF, op, self.name, "the program is closed") from None
        try:
            yield fd
        finally:
            self._handle.release()

    KIND = "program"

    def _error(self, code: int, op: str, detail: str = "") -> LoaderError:
        return ProgramError(code, op, self.name, detail)

    def _call(self, op: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            fd = self._handle.acquire()
        except HandleClosed:
            raise ProgramError(errno.EBADF, op, self.name, "the program is closed") from None
        try:
            return fn(fd, *args, **kwargs)
        except OSError as err:
            if isinstance(err, LoaderError):
                raise
            raise ProgramError(err.errno or errno.EIO, op, self.name) from None
        finally:
            self._handle.release()


@contextlib.contextmanager
def _map_in_use(m: Map | None, program: str, op: str) -> Iterator[int | None]:
    """The descriptor of ``m`` (None for no map), held in use for the block."""
    if m is None:
        yield None
        return
    handle = m._handle
    try:
        fd = handle.acquire()
    except HandleClosed:
        raise ProgramError(errno.EBADF, op, program, f"map {m.name!r} is closed") from None
    try:
        yield fd
    finally:
        handle.release()


@contextlib.contextmanager
def target_program(
    target: Program | None, backend: Backend, program: str, op: str
) -> Iterator[TargetProgram | None]:
    """``target``'s descriptor (held in use for the block), name and BTF; None for no target.

    The BTF is what the kernel keeps for the target (``prog_info`` → ``btf_id`` →
    ``BPF_BTF_GET_FD_BY_ID`` → the raw blob), so a program from ``Program.from_id`` works too.
    Errors are ``ProgramError`` for ``program``'s ``op``, naming the target.
    """
    if target is None:
        yield None
        return
    if not isinstance(target, Program):
        raise TypeError(f"program {program!r}: {op}: the target is a loader.Program, "
                        f"not {type(target).__name__}")
    if target.backend.name != backend.name:
        raise ValueError(f"program {program!r}: {op}: target program {target.name!r} lives in the "
                         f"{target.backend.name} backend, not the {backend.name} one")
    try:
        fd = target._handle.acquire()
    except HandleClosed:
        raise ProgramError(errno.EBADF, op, program, f"target program {target.name!r} is closed") from None
    try:
        yield TargetProgram(fd, target.name, _program_types(fd, backend, target.name, program, op))
    finally:
        target._handle.release()


def _program_types(fd: int, backend: Backend, name: str, program: str, op: str) -> btf.Spec:
    """The BTF the kernel keeps for program ``fd`` (named ``name``), for ``program``'s ``op``."""
    where = f"reading the BTF of target program {name!r}"
    try:
        btf_id = backend.prog_info(fd).btf_id
    except OSError as err:
        raise program_error(err, op, program, where) from None
    if not btf_id:
        raise ProgramError(errno.EINVAL, op, program,
                           f"target program {name!r} has no BTF (it was loaded without func info), so no "
                           "function of it can be named")
    try:
        btf_fd = backend.btf_fd_by_id(btf_id)
    except OSError as err:
        raise program_error(err, op, program, f"{where} (BTF id {btf_id})") from None
    try:
        raw = backend.btf_raw(btf_fd)
    except OSError as err:
        raise program_error(err, op, program, f"{where} (BTF id {btf_id})") from None
    finally:
        backend.close(btf_fd)
    try:
        return btf.load_spec(raw)
    except btf.BTFError as err:
        raise ProgramError(errno.EINVAL, op, program, f"{where}: {err}") from None


def kernel_btf_source(kernel_types: btf.Spec | None) -> Callable[[], btf.Spec]:
    """A function giving the target BTF, read only when first needed."""
    if kernel_types is not None:
        return lambda: kernel_types
    return functools.cache(btf.load_kernel_spec)


def _load_btf(types: btf.Spec | None, programs: Sequence[ProgramSpec], backend: Backend) -> ProgramBTF | None:
    from loader.program_load import load_program_btf

    return load_program_btf(types, programs, backend)


def load_one(
    spec: ProgramSpec,
    backend: Backend,
    *,
    maps: Mapping[str, Map],
    types: btf.Spec | None,
    externs: Mapping[str, ExternSpec],
    program_btf: ProgramBTF | None,
    kernel: Callable[[], btf.Spec],
    log_level: int = 0,
    kconfig: KconfigValues | None = None,
    target: TargetProgram | None = None,
) -> Program:
    """Relocate and load one program (the steps of :mod:`loader.program_load`), against ``target``."""
    check_byte_order(spec)
    insns = list(spec.instructions)
    relocate_maps(spec, insns, maps)
    resolve_externs(spec, insns, externs, kernel, kconfig)
    apply_core(spec, insns, types, kernel)
    attrs = program_attrs(
        spec,
        insns,
        program_btf=program_btf,
        attach_btf_id=attach_btf_target(spec, kernel, target),
        attach_prog_fd=target.fd if target is not None else -1,
    )
    fd, log = load_program(attrs, spec.name, backend, log_level=log_level)
    return Program(fd, backend, name=spec.name, type=spec.type, spec=spec, verifier_log=log)
