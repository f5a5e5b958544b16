"""``loader.Program``: a loaded BPF program.

Thread-safety: like :class:`~loader.Map`, a ``Program`` may be used from many threads;
``close()`` waits for running operations (test runs, attaches) and later ones raise
:class:`~loader.errors.ProgramError` with ``EBADF``.
"""

from __future__ import annotations

import errno
import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import btf
from ebpfspec import ExternSpec, ProgramSpec, ProgramType
from loader.backend import Backend, ProgramInfo, TestRunResult
from loader.errors import LoaderError, ProgramError
from loader.handle import Handle, HandleClosed
from loader.program_load import (
    ProgramBTF,
    apply_core,
    attach_btf_target,
    check_byte_order,
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


class Program:
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
    ) -> Program:
        """Load ``spec`` on its own: ``maps`` it uses (by name), ``types`` the object's BTF.

        ``kernel_types`` replaces the running kernel's BTF for CO-RE and attach targets.
        ``log_level`` > 0 keeps the verifier's log in :attr:`verifier_log` on success.
        """
        from loader.map import default_backend

        backend = backend or default_backend()
        program_btf = _load_btf(types, [spec], backend)
        try:
            return load_one(
                spec,
                backend,
                maps=maps or {},
                types=types,
                externs=externs or {},
                program_btf=program_btf,
                kernel=kernel_btf_source(kernel_types),
                log_level=log_level,
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

    def close(self) -> None:
        """Release the descriptor (idempotent); waits for operations in other threads."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._handle.closed

    def fileno(self) -> int:
        """The descriptor (``ProgramError`` EBADF if closed)."""
        try:
            return self._handle.peek()
        except HandleClosed:
            raise ProgramError(errno.EBADF, "fileno", self.name, "the program is closed") from None

    @property
    def fd(self) -> int:
        """Same as :meth:`fileno`."""
        return self.fileno()

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and not handle.closed:
            warnings.warn(f"unclosed program {self.name!r}", ResourceWarning, stacklevel=2, source=self)
            handle.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._handle.peek()}"
        return f"<loader.Program {self.name!r} {self.type} {state}>"

    # -- operations --------------------------------------------------------------------------------

    def info(self) -> ProgramInfo:
        """What the kernel reports about the program."""
        info: ProgramInfo = self._call("info", self._backend.prog_info)
        return info

    def pin(self, path: str) -> None:
        """Pin the program at ``path`` (on bpffs)."""
        from loader.pinning import check_pin_path

        check_pin_path(path)
        self._call("pin", self._backend.obj_pin, path)
        self._pinned_path = path

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` / found by :meth:`load_pinned` (no-op if none)."""
        if self._pinned_path is None:
            return
        try:
            self._backend.obj_unpin(self._pinned_path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise ProgramError(err.errno or errno.EIO, "unpin", self.name, self._pinned_path) from None
        self._pinned_path = None

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
) -> Program:
    """Relocate and load one program (the steps of :mod:`loader.program_load`)."""
    check_byte_order(spec)
    insns = list(spec.instructions)
    relocate_maps(spec, insns, maps)
    resolve_externs(spec, insns, externs, kernel)
    apply_core(spec, insns, types, kernel)
    attrs = program_attrs(spec, insns, program_btf=program_btf, attach_btf_id=attach_btf_target(spec, kernel))
    fd, log = load_program(attrs, spec.name, backend, log_level=log_level)
    return Program(fd, backend, name=spec.name, type=spec.type, spec=spec, verifier_log=log)
