"""``loader.Link``: one attachment of a BPF program, undone by closing it.

Programs reach their hooks in four ways, and a :class:`Link` hides which one was used:

- :attr:`LinkKind.LINK` — a BPF link (``BPF_LINK_CREATE``, ``BPF_RAW_TRACEPOINT_OPEN``):
  the attachment lives as long as the link's descriptor (or its pin). Only these links
  have :meth:`Link.info`, :meth:`Link.pin` and :meth:`Link.detach`. A link to a perf event
  (tracepoints, kprobes, uprobes) also owns the perf event, closed after the link.
- :attr:`LinkKind.PERF_EVENT` — a perf event given the program with
  ``PERF_EVENT_IOC_SET_BPF`` (kernels without perf event links): closing the event
  detaches the program.
- :attr:`LinkKind.PROG_ATTACH` — ``BPF_PROG_ATTACH`` to a cgroup (kernels without cgroup
  links): the attachment outlives every descriptor, so the link keeps its own duplicates
  of the cgroup and program descriptors and undoes it with ``BPF_PROG_DETACH``.
- :attr:`LinkKind.SOCKET_FILTER` — ``SO_ATTACH_BPF`` on a socket: the link keeps a
  duplicate of the socket descriptor (so the socket stays open until the link is closed,
  and the descriptor it detaches from can never be someone else's) and removes the filter
  with ``SO_DETACH_BPF``.

An iterator program (``iter/NAME``) attached with :meth:`loader.Program.attach_iter` gives an
:class:`IterLink`: a BPF link whose :meth:`IterLink.open` starts an iteration and returns
a file to read its output from.

``close()`` is idempotent and thread-safe (it waits for operations running in other threads,
see :mod:`loader.handle`); a link garbage-collected while still open warns with
``ResourceWarning`` and is closed. A pinned link stays attached after ``close()`` until
its pin is removed (:meth:`Link.unpin`), as in the kernel.

The functions below the class do the attaching for :class:`loader.Program`'s ``attach_*``
methods: they take the program's descriptor and name, and raise
:class:`~loader.errors.ProgramError` (with the errno and the operation) or
:class:`~loader.errors.NotSupportedError` (the kernel or backend lacks the hook), naming
the program.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import io
import os
import socket
import struct
import warnings
from collections.abc import Callable, Iterator
from typing import Final, Self

from loader.backend import Backend, LinkInfo
from loader.errors import LoaderError, NotSupportedError, ProgramError
from loader.handle import Handle, HandleClosed

__all__ = [
    "BPF_F_ALLOW_MULTI",
    "BPF_F_ALLOW_OVERRIDE",
    "XDP_FLAGS_DRV_MODE",
    "XDP_FLAGS_HW_MODE",
    "XDP_FLAGS_SKB_MODE",
    "XDP_FLAGS_UPDATE_IF_NOEXIST",
    "IterLink",
    "Link",
    "LinkKind",
    "uprobe_offset",
]

#: ``enum bpf_attach_type`` values used here.
ATTACH_XDP: Final = 37
ATTACH_PERF_EVENT: Final = 41
ATTACH_TRACE_ITER: Final = 28
#: ``enum bpf_link_type`` of iterator links.
LINK_TYPE_ITER: Final = 4
#: ``sizeof(union bpf_iter_link_info)`` (Linux 5.9+; the task part 6.1+), and the parts filled here:
#: ``map.map_fd`` at 0; ``task.tid``, ``task.pid``, ``task.pid_fd`` at 0, 4, 8.
ITER_LINK_INFO_SIZE: Final = 16
_ITER_MAP: Final = struct.Struct("=I")
_ITER_TASK: Final = struct.Struct("=III")
#: ``BPF_PROG_ATTACH`` flags.
BPF_F_ALLOW_OVERRIDE: Final = 1
BPF_F_ALLOW_MULTI: Final = 2
#: ``XDP_FLAGS_*`` for :meth:`loader.Program.attach_xdp` (``include/uapi/linux/if_link.h``).
XDP_FLAGS_UPDATE_IF_NOEXIST: Final = 1 << 0
XDP_FLAGS_SKB_MODE: Final = 1 << 1
XDP_FLAGS_DRV_MODE: Final = 1 << 2
XDP_FLAGS_HW_MODE: Final = 1 << 3
#: The kernel-internal ``ENOTSUPP`` (524), which some attach paths return to user space.
ENOTSUPP: Final = 524
#: Errors of ``BPF_LINK_CREATE`` that mean "this kernel has no such link": use the older way.
_NO_LINK: Final = frozenset({errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP})


class LinkKind(enum.Enum):
    """How a :class:`Link` holds its attachment (see the module docstring)."""

    LINK = "link"
    PERF_EVENT = "perf event"
    PROG_ATTACH = "prog attach"
    SOCKET_FILTER = "socket filter"


class Link:
    """An attached program; :meth:`close` detaches it. Get one from ``Program.attach*``.

    ``program`` is the program's name, ``target`` says what it is attached to (for
    messages), ``kind`` how (:class:`LinkKind`).
    """

    def __init__(
        self,
        fd: int,
        backend: Backend,
        *,
        program: str,
        target: str,
        kind: LinkKind = LinkKind.LINK,
        release: Callable[[int], None] | None = None,
    ):
        """Own ``fd``; ``release(fd)`` undoes the attachment and closes every descriptor held.

        The default ``release`` closes ``fd`` through the backend. Prefer the ``attach*``
        methods of :class:`loader.Program` and :meth:`load_pinned`.
        """
        self._backend = backend
        self._handle = Handle(fd, release or backend.close)
        self.program = program
        self.target = target
        self.kind = kind
        self._pinned_path: str | None = None

    @classmethod
    def load_pinned(cls, path: str, backend: Backend | None = None) -> Link:
        """The link pinned at ``path`` (on bpffs); ``ProgramError`` if there is none or it is not a link.

        An iterator link comes back as an :class:`IterLink` (``IterLink.load_pinned`` refuses
        other links with ``EINVAL``).
        """
        from loader.map import default_backend
        from loader.pinning import check_pin_path

        check_pin_path(path)
        backend = backend or default_backend()
        try:
            fd = backend.obj_get(path)
        except OSError as err:
            raise program_error(err, "load pinned link", path) from None
        try:
            info = backend.link_info(fd)
            name = _program_name(backend, info.prog_id)
        except BaseException as err:
            backend.close(fd)
            if isinstance(err, OSError) and not isinstance(err, LoaderError):
                raise program_error(err, "load pinned link", path, f"{path} is not a link") from None
            raise
        link_cls: type[Link] = cls
        if info.type == LINK_TYPE_ITER and issubclass(IterLink, cls):
            link_cls = IterLink
        elif issubclass(cls, IterLink) and info.type != LINK_TYPE_ITER:
            backend.close(fd)
            raise ProgramError(errno.EINVAL, "load pinned link", name,
                               f"{path} is a link of type {info.type}, not an iterator link")
        link = link_cls(fd, backend, program=name, target=f"link id {info.id} pinned at {path}")
        link._pinned_path = path
        return link

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach (unless pinned) and release every descriptor. Idempotent and thread-safe.

        Waits for operations running in other threads. If undoing a ``BPF_PROG_ATTACH`` or
        a socket filter fails (other than "already gone"), the descriptors are released
        anyway and a :class:`~loader.errors.ProgramError` says why.
        """
        self._handle.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._handle.closed

    def fileno(self) -> int:
        """The descriptor the link holds (a link, perf event, cgroup or socket); EBADF once closed."""
        try:
            return self._handle.peek()
        except HandleClosed:
            raise ProgramError(errno.EBADF, "link fileno", self.program, "the link is closed") from None

    @property
    def fd(self) -> int:
        """Same as :meth:`fileno`."""
        return self.fileno()

    @property
    def pinned_path(self) -> str | None:
        """Where the link is pinned, if this object pinned or loaded it."""
        return self._pinned_path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and not handle.closed:
            warnings.warn(f"unclosed link of program {self.program!r} ({self.target})", ResourceWarning,
                          stacklevel=2, source=self)
            with contextlib.suppress(Exception):
                handle.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._handle.peek()}"
        return f"<loader.{type(self).__name__} {self.program!r} {self.kind.value} to {self.target} {state}>"

    # -- real links only ---------------------------------------------------------------------------

    def info(self) -> LinkInfo:
        """What the kernel says about the link: type (``enum bpf_link_type``), id, program id."""
        info = self._link_call("link info", self._backend.link_info)
        assert isinstance(info, LinkInfo)
        return info

    def pin(self, path: str) -> None:
        """Pin the link at ``path`` on bpffs: it then stays attached after :meth:`close`."""
        from loader.pinning import check_pin_path

        check_pin_path(path)
        self._link_call("pin link", self._backend.obj_pin, path)
        self._pinned_path = path

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` / found by :meth:`load_pinned` (no-op if none)."""
        path = self._pinned_path
        if path is None:
            return
        try:
            self._backend.obj_unpin(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise program_error(err, "unpin link", self.program, path) from None
        self._pinned_path = None

    def detach(self) -> None:
        """``BPF_LINK_DETACH``: detach the program now, even if pinned; the link stays open until closed."""
        self._link_call("detach link", self._backend.link_detach)

    def _link_call(self, op: str, fn: Callable[..., object], *args: object) -> object:
        if self.kind is not LinkKind.LINK:
            raise NotSupportedError(f"program {self.program!r}: {op}: attached through a {self.kind.value} "
                                    f"({self.target}), not a BPF link")
        try:
            fd = self._handle.acquire()
        except HandleClosed:
            raise ProgramError(errno.EBADF, op, self.program, "the link is closed") from None
        try:
            return fn(fd, *args)
        except OSError as err:
            if isinstance(err, LoaderError):
                raise
            raise program_error(err, op, self.program) from None
        finally:
            self._handle.release()


class IterLink(Link):
    """An attached iterator program (``BPF_TRACE_ITER`` link): :meth:`open` runs it.

    Get one from :meth:`loader.Program.attach_iter` (or :meth:`Link.load_pinned` of a
    pinned iterator link). Each :meth:`open` starts a fresh iteration — the program runs
    once per object (task, map, map element, ...) as the returned file is read — so two
    opens give two complete, independent outputs. Like :class:`Link`, every method is
    thread-safe, and :meth:`close` (waiting for an :meth:`open` in progress) makes later
    opens fail with ``EBADF``; files opened before stay readable (the kernel keeps the
    link alive for them). A pinned iterator link's file on bpffs can also be read
    directly (``cat``), one iteration per ``open(2)``.

    Kernel: Linux 5.8+ (``BPF_ITER_CREATE``); the iterators themselves (``iter/task``,
    ``iter/bpf_map``, ``iter/bpf_map_elem``, ...) each have their own first release.
    """

    def open(self) -> io.BufferedReader:
        """Start an iteration (``BPF_ITER_CREATE``): a binary file whose ``read()`` gives the output.

        The caller owns the file and should close it (``with link.open() as f: f.read()``).
        The kernel produces the output as it is read; errors it meets on the way
        (``E2BIG`` when one object's output does not fit the seq_file buffer, ``EAGAIN``/
        ``EINTR``, ...) surface as ``OSError`` from ``read()``. ``ProgramError`` (naming the
        program, with the errno) when the iteration cannot start; ``EBADF`` once the link
        is closed.
        """
        fd = self._link_call("open iterator", self._backend.iter_create)
        assert isinstance(fd, int)
        try:
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise


def iter_link_info(*, map_fd: int | None = None, tid: int = 0, pid: int = 0, pid_fd: int = 0) -> bytes:
    """A packed ``union bpf_iter_link_info`` (:data:`ITER_LINK_INFO_SIZE` bytes), ``b""`` for none.

    ``map_fd`` is the map a map iterator (``iter/bpf_map_elem``, ``iter/bpf_sk_storage_map``,
    ...) walks; ``tid``/``pid``/``pid_fd`` restrict a task iterator (``iter/task``,
    ``iter/task_file``, ``iter/task_vma``) to one thread, one process, or the process of a
    pidfd (Linux 6.1+). At most one may be given (``ValueError`` otherwise).
    """
    given = [what for what, value in (("map", map_fd is not None), ("tid", tid), ("pid", pid),
                                      ("pid_fd", pid_fd)) if value]
    if len(given) > 1:
        raise ValueError(f"an iterator takes one of map, tid, pid and pid_fd, not {' and '.join(given)}")
    for what, value in (("map_fd", map_fd or 0), ("tid", tid), ("pid", pid), ("pid_fd", pid_fd)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"iterator {what} must be a u32, not {value}")
    if map_fd is not None:
        return _ITER_MAP.pack(map_fd).ljust(ITER_LINK_INFO_SIZE, b"\0")
    if tid or pid or pid_fd:
        return _ITER_TASK.pack(tid, pid, pid_fd).ljust(ITER_LINK_INFO_SIZE, b"\0")
    return b""


# -- errors --------------------------------------------------------------------------------------------


def error_detail(err: OSError) -> str:
    """What ``err`` says beyond its errno's usual text."""
    text = str(err.strerror or "")
    code = err.errno or 0
    for prefix in (os.strerror(code), "Operation not supported (ENOTSUPP)"):
        if text.startswith(prefix):
            text = text[len(prefix):].lstrip(": ")
            break
    return text


def program_error(err: OSError, op: str, program: str, detail: str = "") -> ProgramError:
    """A :class:`ProgramError` for ``err``, keeping what the backend said beyond the errno."""
    own = error_detail(err)
    both = "; ".join(part for part in (detail, own) if part)
    return ProgramError(err.errno or errno.EIO, op, program, both)


def attach_error(err: OSError, op: str, program: str, detail: str = "") -> LoaderError:
    """The library error for a failed attach: ``NotSupportedError`` for "not supported" errnos."""
    if isinstance(err, LoaderError):
        return err
    if err.errno in (errno.EOPNOTSUPP, ENOTSUPP):
        why = "; ".join(part for part in (detail, error_detail(err) or "not supported") if part)
        return NotSupportedError(f"program {program!r}: {op}: {why}")
    return program_error(err, op, program, detail)


def _program_name(backend: Backend, prog_id: int) -> str:
    """The name of the program with id ``prog_id`` (``"program id N"`` when it cannot be read)."""
    try:
        fd = backend.prog_fd_by_id(prog_id)
    except OSError:
        return f"program id {prog_id}"
    try:
        return backend.prog_info(fd).name or f"program id {prog_id}"
    except OSError:
        return f"program id {prog_id}"
    finally:
        backend.close(fd)


def _os_dup(fd: int) -> int:
    """A close-on-exec duplicate of an ordinary descriptor (a socket, a cgroup directory)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)


@contextlib.contextmanager
def _closing_on_error(close: Callable[[int], None], fd: int) -> Iterator[int]:
    """Yield ``fd``; close it if the block raises."""
    try:
        yield fd
    except BaseException:
        with contextlib.suppress(OSError):
            close(fd)
        raise


# -- attaching -----------------------------------------------------------------------------------------


def link_perf_event(backend: Backend, prog_fd: int, perf_fd: int, *, program: str, op: str, target: str,
                    cookie: int = 0) -> Link:
    """Attach through perf event ``perf_fd`` (owned from here on): a ``BPF_PERF_EVENT`` link.

    Where the kernel has no perf event links (``EINVAL``/``EOPNOTSUPP``), the program is
    given to the event with ``PERF_EVENT_IOC_SET_BPF`` and the event enabled; that way has
    no cookie, so a ``cookie`` then raises ``NotSupportedError``.
    """
    with _closing_on_error(backend.close, perf_fd):
        try:
            link_fd = backend.link_create(prog_fd, perf_fd, ATTACH_PERF_EVENT, cookie=cookie)
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise attach_error(err, op, program, target) from None
            if cookie:
                raise NotSupportedError(
                    f"program {program!r}: {op}: attach cookies need BPF_PERF_EVENT links (Linux 5.15+), "
                    f"which the kernel refused ({os.strerror(err.errno or errno.EIO)})") from None
            try:
                backend.perf_event_set_bpf(perf_fd, prog_fd)
                backend.perf_event_enable(perf_fd)
            except OSError as err2:
                raise attach_error(err2, op, program, target) from None
            return Link(perf_fd, backend, program=program, target=target, kind=LinkKind.PERF_EVENT)

    def release(fd: int) -> None:
        try:
            backend.close(fd)
        finally:
            backend.close(perf_fd)

    return Link(link_fd, backend, program=program, target=target, release=release)


def cgroup_attach(backend: Backend, prog_fd: int, cgroup: str | os.PathLike[str] | int, attach_type: int, *,
                  program: str, op: str) -> Link:
    """Attach to a cgroup (a directory path or an open descriptor of one) with ``attach_type``.

    A ``BPF_LINK_CREATE`` link where the kernel has cgroup links, else ``BPF_PROG_ATTACH``
    with ``BPF_F_ALLOW_MULTI`` (the link then keeps duplicates of the cgroup and program
    descriptors to detach with).
    """
    if isinstance(cgroup, int):
        target = f"cgroup fd {cgroup}"
        try:
            cg_fd = _os_dup(cgroup)
        except OSError as err:
            raise program_error(err, op, program, target) from None
    else:
        target = f"cgroup {os.fspath(cgroup)}"
        try:
            cg_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise program_error(err, op, program, target) from None
    with _closing_on_error(os.close, cg_fd):
        try:
            link_fd = backend.link_create(prog_fd, cg_fd, attach_type)
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise attach_error(err, op, program, target) from None
        else:
            os.close(cg_fd)
            return Link(link_fd, backend, program=program, target=target)
        # The older way: an attachment that outlives descriptors, undone by BPF_PROG_DETACH.
        try:
            own_prog = backend.dup(prog_fd)
        except OSError as err:
            raise program_error(err, op, program, target) from None
        with _closing_on_error(backend.close, own_prog):
            try:
                backend.prog_attach(own_prog, cg_fd, attach_type, BPF_F_ALLOW_MULTI)
            except OSError as err:
                raise attach_error(err, op, program, f"{target}, after BPF_LINK_CREATE was refused") from None

    def release(fd: int) -> None:
        try:
            backend.prog_detach(own_prog, fd, attach_type)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.EBADF):
                raise program_error(err, "detach cgroup", program, target) from None
        finally:
            try:
                backend.close(own_prog)
            finally:
                os.close(fd)

    return Link(cg_fd, backend, program=program, target=target, kind=LinkKind.PROG_ATTACH, release=release)


def socket_fd(sock: socket.socket | int | object) -> int:
    """The descriptor of a socket object, an object with ``fileno()``, or an int."""
    if isinstance(sock, int) and not isinstance(sock, bool):
        return sock
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        raise TypeError(f"attach_socket needs a socket, an object with fileno() or a descriptor, "
                        f"not {type(sock).__name__}")
    fd = fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"the socket is closed (fileno() gave {fd!r})")
    return fd


def socket_attach(backend: Backend, prog_fd: int, sock: socket.socket | int | object, *, program: str,
                  op: str) -> Link:
    """Filter what ``sock`` receives by the program (``SO_ATTACH_BPF``); closing the link removes it."""
    fd = socket_fd(sock)
    target = f"socket fd {fd}"
    try:
        own = _os_dup(fd)
    except OSError as err:
        raise program_error(err, op, program, target) from None
    with _closing_on_error(os.close, own):
        try:
            backend.socket_attach_filter(own, prog_fd)
        except OSError as err:
            raise attach_error(err, op, program, target) from None

    def release(fd: int) -> None:
        try:
            backend.socket_detach_filter(fd)
        except OSError as err:
            if err.errno != errno.ENOENT:  # gone already (another filter replaced and removed it)
                raise program_error(err, "detach socket filter", program, target) from None
        finally:
            os.close(fd)

    return Link(own, backend, program=program, target=target, kind=LinkKind.SOCKET_FILTER, release=release)


def interface_index(interface: int | str, *, program: str, op: str) -> tuple[int, str]:
    """``(ifindex, description)`` of a network interface given by index or name."""
    if isinstance(interface, int) and not isinstance(interface, bool):
        if interface <= 0:
            raise ValueError(f"program {program!r}: {op}: invalid interface index {interface}")
        return interface, f"ifindex {interface}"
    if not isinstance(interface, str):
        raise TypeError(f"program {program!r}: {op}: an interface is an index or a name, "
                        f"not {type(interface).__name__}")
    try:
        index = socket.if_nametoindex(interface)
    except OSError:
        raise ProgramError(errno.ENODEV, op, program, f"no network interface {interface!r}") from None
    return index, f"{interface} (ifindex {index})"


# -- uprobe symbols --------------------------------------------------------------------------------------


def uprobe_offset(path: str, symbol: str) -> int:
    """The file offset of function ``symbol`` in the ELF executable or library ``path``.

    ``symbol`` may end in ``+OFFSET`` (decimal or ``0x`` hex) to probe inside the function.
    The symbol is looked for in ``.symtab``, then ``.dynsym`` (defined ``STT_FUNC`` /
    ``STT_GNU_IFUNC`` symbols); its address is turned into a file offset through the
    loadable segment holding it. ``LookupError`` when there is no such function,
    ``ValueError`` when the file is not a usable ELF file, ``OSError`` when it cannot be read.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    name, plus, extra = symbol.partition("+")
    delta = 0
    if plus:
        try:
            delta = int(extra.strip(), 0)
        except ValueError:
            raise ValueError(f"invalid offset in uprobe target {symbol!r}") from None
        if delta < 0:
            raise ValueError(f"negative offset in uprobe target {symbol!r}")
    name = name.strip()
    if not name:
        raise ValueError(f"uprobe target {symbol!r} names no function")
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
            address: int | None = None
            for table_name in (".symtab", ".dynsym"):
                table = elf.get_section_by_name(table_name)
                if not isinstance(table, SymbolTableSection):
                    continue
                for sym in table.get_symbol_by_name(name) or ():
                    if sym["st_shndx"] == "SHN_UNDEF" or sym["st_info"]["type"] not in ("STT_FUNC",
                                                                                       "STT_GNU_IFUNC"):
                        continue
                    address = int(sym["st_value"])
                    break
                if address is not None:
                    break
            if address is None:
                raise LookupError(f"{path} has no function {name!r} (looked in .symtab and .dynsym)")
            for segment in elf.iter_segments():
                header = segment.header
                if header["p_type"] != "PT_LOAD":
                    continue
                start = int(header["p_vaddr"])
                if start <= address < start + int(header["p_filesz"]):
                    return address - start + int(header["p_offset"]) + delta
        except ELFError as err:
            raise ValueError(f"{path} is not a usable ELF file: {err}") from None
    raise LookupError(f"function {name!r} of {path} (address {address:#x}) is in no loadable segment")
