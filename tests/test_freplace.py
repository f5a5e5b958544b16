"""Extension (``freplace``) programs: loading against a target program, and ``attach_freplace``.

``freplace_mix`` (testdata/fentry.c, ``SEC("freplace/global_mix")``) replaces the global
function ``global_mix`` of programs.c, a subprogram of ``classifier_prog`` and
``cgroup_skb_prog``. The test kernel refuses every extension program load with EPERM
(before the verifier runs: no log), so on the kernel what is checked is what reaches it —
recorded on the way through a real :class:`KernelBackend` and compared with what
``bpftool`` says of the target's BTF — and that its refusal comes back as a clear error.
The memory backend accepts the load (after the kernel's checks of the target function)
and refuses the attachment, as it refuses every attachment.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import btf
import ebpfspec
import loader
from ebpfspec import ProgramType
from loader import Backend, KernelBackend, MemoryBackend, NotSupportedError, Program
from loader.backend import ProgramAttrs
from loader.errors import ProgramError
from tests.conftest import TESTDATA

ORDER = "el" if sys.byteorder == "little" else "eb"
FENTRY = ebpfspec.load_collection_spec(TESTDATA / f"fentry-{ORDER}.o")
PROGRAMS = ebpfspec.load_collection_spec(TESTDATA / f"programs-{ORDER}.o")
EXT = FENTRY.programs["freplace_mix"]

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


class Recording:
    """A mixin for a real backend: records every ``prog_load``'s attributes and ``link_create``'s
    arguments, then lets the backend underneath answer."""

    loads: list[ProgramAttrs]
    links: list[dict[str, Any]]

    def prog_load(self, attrs: ProgramAttrs, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
        self.loads.append(attrs)
        result: tuple[int, str] = super().prog_load(attrs, log_level=log_level, log_size=log_size)  # type: ignore[misc]
        return result

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, *, flags: int = 0,
                    target_btf_id: int = 0, cookie: int = 0, iter_info: bytes = b"") -> int:
        self.links.append({"prog_fd": prog_fd, "target_fd": target_fd, "attach_type": attach_type,
                           "target_btf_id": target_btf_id})
        fd: int = super().link_create(prog_fd, target_fd, attach_type, flags=flags,  # type: ignore[misc]
                                      target_btf_id=target_btf_id, cookie=cookie, iter_info=iter_info)
        return fd


class RecordingKernel(Recording, KernelBackend):
    def __init__(self) -> None:
        super().__init__()
        self.loads, self.links = [], []


class RecordingMemory(Recording, MemoryBackend):
    def __init__(self) -> None:
        super().__init__(possible_cpus=2)
        self.loads, self.links = [], []


def make(kind: str) -> RecordingKernel | RecordingMemory:
    if kind == "kernel":
        if os.geteuid() != 0:
            pytest.skip("loading programs needs root")
        return RecordingKernel()
    return RecordingMemory()


BACKENDS = [pytest.param("kernel", marks=pytest.mark.kernel), "memory"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[RecordingKernel | RecordingMemory]:
    b = make(request.param)
    yield b
    if isinstance(b, MemoryBackend):
        assert b.open_handles() == 0 and b.live_objects() == 0


@pytest.fixture
def targets(backend: Backend) -> Iterator[loader.Collection]:
    """programs.c's ``classifier_prog`` (calls the global ``global_mix``) and ``xdp_prog`` (calls only the
    static ``bump``)."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF")
    with loader.load_collection(PROGRAMS, backend=backend, only=["classifier_prog", "xdp_prog"]) as coll:
        yield coll


@pytest.fixture
def mem_targets() -> Iterator[loader.Collection]:
    """``targets`` on a recording memory backend only (for what only the model can show here)."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF")
    backend = RecordingMemory()
    with loader.load_collection(PROGRAMS, backend=backend, only=["classifier_prog", "xdp_prog"]) as coll:
        yield coll
    assert backend.open_handles() == 0 and backend.live_objects() == 0


@pytest.fixture
def fentry_bss(targets: loader.Collection) -> Iterator[dict[str, loader.Map]]:
    """fentry.c's ``.bss``, which its fentry/fexit/lsm programs use, in the targets' backend."""
    with loader.Map.create(FENTRY.maps[".bss"], targets.programs["xdp_prog"].backend) as bss:
        yield {".bss": bss}


def target_btf(backend: Backend, prog: Program) -> btf.Spec:
    """The target's BTF as the backend keeps it (by the program's BTF id)."""
    fd = backend.btf_fd_by_id(prog.info().btf_id)
    try:
        return btf.load_spec(backend.btf_raw(fd))
    finally:
        backend.close(fd)


def bpftool_func_id(btf_id: int, name: str) -> int:
    """The type id ``bpftool btf dump id BTF_ID`` gives FUNC ``name``."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run([bpftool, "btf", "dump", "id", str(btf_id), "-j"], check=True, capture_output=True,
                         text=True).stdout
    (found,) = [t["id"] for t in json.loads(out)["types"] if t["kind"] == "FUNC" and t["name"] == name]
    return int(found)


# -- loading ------------------------------------------------------------------------------------------


def test_freplace_loads_against_its_target(backend: RecordingKernel | RecordingMemory,
                                           targets: loader.Collection) -> None:
    """``attach_prog_fd`` is the target's descriptor and ``attach_btf_id`` the id of ``global_mix`` in
    the target's BTF; the kernel here refuses with EPERM, the model accepts."""
    target = targets.programs["classifier_prog"]
    (func,) = target_btf(backend, target).types_by_name("global_mix", btf.Kind.FUNC)
    if isinstance(backend, KernelBackend):
        assert func.id == bpftool_func_id(target.info().btf_id, "global_mix")  # an independent witness
    backend.loads.clear()
    try:
        ext = Program.load(EXT, backend, types=FENTRY.types, target=target)
    except ProgramError as err:
        assert isinstance(backend, KernelBackend), err
        # Linux 6.18 on the test machine: every extension load is refused before the verifier runs
        assert err.errno == errno.EPERM
        assert err.program == "freplace_mix" and err.op == "load"
        assert "program 'freplace_mix': load: Operation not permitted" in str(err)
        assert "extension programs need privileges" in str(err)
        ext = None
    # one load asked of the backend (which retries it once itself, for the log)
    (attrs,) = [a for a in backend.loads if a.prog_type == ProgramType.EXT]
    assert attrs.attach_prog_fd == target.fileno()
    assert attrs.attach_btf_id == func.id
    assert attrs.expected_attach_type == 0
    assert attrs.attach_btf_obj_fd == -1
    if ext is None:
        return
    with ext:
        assert isinstance(backend, MemoryBackend)
        assert ext.type == ProgramType.EXT
        # the extension holds its target, as the kernel's dst_prog: closing the target keeps it alive
        target_id = target.info().id
        target.close()
        Program.from_id(target_id, backend).close()  # still there
        with pytest.raises(NotSupportedError, match=r"freplace_mix.*MemoryBackend cannot attach"):
            ext.attach()  # the load-time target: BPF_RAW_TRACEPOINT_OPEN without a name


def test_a_missing_target_function_is_named(backend: RecordingKernel | RecordingMemory,
                                            targets: loader.Collection) -> None:
    target = targets.programs["classifier_prog"]
    backend.loads.clear()
    with pytest.raises(ProgramError) as info:
        Program.load(EXT.replace(attach_to="no_such_function"), backend, types=FENTRY.types, target=target)
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == ("program 'freplace_mix': load: No such file or directory (target program "
                               "'classifier_prog' has no function 'no_such_function' in its BTF)")
    assert backend.loads == []  # refused before anything reached the backend


def test_freplace_without_a_target_says_how_to_give_one(backend: RecordingKernel | RecordingMemory,
                                                        targets: loader.Collection) -> None:
    with pytest.raises(ProgramError, match=r"freplace_mix.*Program.load\(spec, target=target_prog") as info:
        Program.load(EXT, backend, types=FENTRY.types)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ProgramError, match=r"freplace_mix.*target program") as info:
        loader.load_collection(FENTRY, backend=backend, only=["freplace_mix"])
    assert info.value.errno == errno.EINVAL


def test_target_errors_name_both_programs(backend: RecordingKernel | RecordingMemory,
                                          targets: loader.Collection,
                                          fentry_bss: dict[str, loader.Map]) -> None:
    xdp = targets.programs["xdp_prog"]
    with pytest.raises(ProgramError, match=r"freplace_mix.*section 'freplace' names no function") as info:
        Program.load(EXT.replace(attach_to="", section_name="freplace"), backend, types=FENTRY.types,
                     target=xdp)
    assert info.value.errno == errno.EINVAL
    socket_filter = FENTRY.programs["fentry_openat2"].replace(type=ProgramType.SOCKET_FILTER)
    with pytest.raises(ProgramError, match=r"are not loaded against a target program like 'xdp_prog'"):
        Program.load(socket_filter, backend, types=FENTRY.types, maps=fentry_bss, target=xdp)
    # a target without BTF: nothing names its functions
    bare_spec = PROGRAMS.programs["socket_prog"]
    with Program.load(bare_spec, backend, maps=targets.maps) as bare:  # no types: no func info, no BTF
        assert bare.info().btf_id == 0
        with pytest.raises(ProgramError, match=r"target program 'socket_prog' has no BTF") as info:
            Program.load(EXT, backend, types=FENTRY.types, target=bare)
        assert info.value.errno == errno.EINVAL
    closed = Program.load(bare_spec, backend, maps=targets.maps)
    closed.close()
    with pytest.raises(ProgramError, match=r"freplace_mix.*target program 'socket_prog' is closed") as info:
        Program.load(EXT, backend, types=FENTRY.types, target=closed)
    assert info.value.errno == errno.EBADF


def test_the_model_checks_the_target_function_as_the_verifier_does(mem_targets: loader.Collection) -> None:
    """On the memory backend (the kernel here refuses every extension with EPERM before looking):
    the function must be one of the target's subprograms, global for an extension, and the target
    not an extension itself."""
    xdp, classifier = mem_targets.programs["xdp_prog"], mem_targets.programs["classifier_prog"]
    backend = xdp.backend
    # xdp_prog does not call global_mix
    with pytest.raises(ProgramError, match=r"subprog 'global_mix'.*doesn't exist in target program 'xdp"):
        Program.load(EXT, backend, types=FENTRY.types, target=xdp)
    with pytest.raises(ProgramError, match="cannot replace static function 'bump'") as info:
        Program.load(EXT.replace(attach_to="bump"), backend, types=FENTRY.types, target=xdp)
    assert info.value.errno == errno.EINVAL
    with Program.load(EXT, backend, types=FENTRY.types, target=classifier) as ext, \
            pytest.raises(ProgramError, match="cannot recursively attach"):
        Program.load(EXT.replace(attach_to="freplace_mix"), backend, types=FENTRY.types, target=ext)
    # fentry on a BPF program's function loads against it the same way
    fentry = FENTRY.programs["fentry_openat2"].replace(attach_to="bump")
    with loader.Map.create(FENTRY.maps[".bss"], backend) as bss, \
            Program.load(fentry, backend, types=FENTRY.types, maps={".bss": bss}, target=xdp) as traced:
        assert traced.type == ProgramType.TRACING


# -- attaching ----------------------------------------------------------------------------------------


def test_attach_freplace_passes_the_target_and_its_function(mem_targets: loader.Collection) -> None:
    """``BPF_LINK_CREATE`` gets the target's descriptor and ``global_mix``'s BTF id (memory backend:
    the only place an extension program loads here), and the refusal names the program."""
    classifier = mem_targets.programs["classifier_prog"]
    backend = classifier.backend
    assert isinstance(backend, RecordingMemory)
    (func,) = target_btf(backend, classifier).types_by_name("global_mix", btf.Kind.FUNC)
    with Program.load(EXT, backend, types=FENTRY.types, target=classifier) as ext:
        with pytest.raises(NotSupportedError,
                           match=r"freplace_mix.*function 'global_mix' of program 'classifier_prog'.*"
                                 r"MemoryBackend cannot attach"):
            ext.attach_freplace(classifier, "global_mix")
        assert backend.links == [{"prog_fd": ext.fileno(), "target_fd": classifier.fileno(), "attach_type": 0,
                                  "target_btf_id": func.id}]
        backend.links.clear()
        with pytest.raises(NotSupportedError):
            ext.attach_freplace(classifier)  # the function defaults to the section's
        assert backend.links[0]["target_btf_id"] == func.id
        with pytest.raises(ProgramError, match=r"freplace_mix': attach freplace: .*'classifier_prog' has no "
                                               r"function 'nothing'") as info:
            ext.attach_freplace(classifier, "nothing")
        assert info.value.errno == errno.ENOENT
        with pytest.raises(ValueError, match="needs a target program"):
            ext.attach_freplace(func_name="global_mix")
    with pytest.raises(ProgramError, match=r"xdp_prog.*XDP programs cannot attach to program 'classifier_"):
        mem_targets.programs["xdp_prog"].attach_freplace(classifier)


# -- the backend primitives ------------------------------------------------------------------------------


def test_btf_by_id_gives_back_the_blob_loaded(backend: RecordingKernel | RecordingMemory,
                                              targets: loader.Collection) -> None:
    """``btf_fd_by_id`` + ``btf_raw``: a program's BTF as loaded; the same errnos from both backends."""
    prog = targets.programs["classifier_prog"]
    fd = backend.btf_fd_by_id(prog.info().btf_id)
    try:
        raw = backend.btf_raw(fd)
    finally:
        backend.close(fd)
    assert btf.load_spec(raw).types_by_name("classifier_prog", btf.Kind.FUNC)
    again = backend.btf_load(raw)
    try:
        assert backend.btf_raw(again) == raw
    finally:
        backend.close(again)
    with pytest.raises(OSError) as info:
        backend.btf_raw(prog.fileno())  # a program, not BTF
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        backend.btf_fd_by_id(0xFFFFFFF0)
    assert info.value.errno == errno.ENOENT


def test_load_collection_loads_freplace_against_program_targets(
        backend: RecordingKernel | RecordingMemory, targets: loader.Collection) -> None:
    """``load_collection(program_targets=...)``: the same load as ``Program.load(target=...)``."""
    target = targets.programs["classifier_prog"]
    (func,) = target_btf(backend, target).types_by_name("global_mix", btf.Kind.FUNC)
    backend.loads.clear()
    try:
        coll = loader.load_collection(FENTRY, backend=backend, only=["freplace_mix"],
                                      program_targets={"freplace_mix": target})
    except ProgramError as err:
        assert isinstance(backend, KernelBackend), err
        assert err.errno == errno.EPERM and err.program == "freplace_mix"  # this kernel: see above
        coll = None
    (attrs,) = [a for a in backend.loads if a.prog_type == ProgramType.EXT]
    assert attrs.attach_prog_fd == target.fileno()
    assert attrs.attach_btf_id == func.id
    if coll is not None:
        with coll:
            assert isinstance(backend, MemoryBackend)
            assert coll.programs["freplace_mix"].type == ProgramType.EXT


def test_load_collection_refuses_unknown_program_targets(backend: RecordingKernel | RecordingMemory,
                                                         targets: loader.Collection) -> None:
    with pytest.raises(KeyError, match="no_such_program"):
        loader.load_collection(FENTRY, backend=backend, only=["freplace_mix"],
                               program_targets={"no_such_program": targets.programs["xdp_prog"]})
    with pytest.raises(ProgramError, match=r"freplace_mix.*program_targets=\{'freplace_mix'"):
        loader.load_collection(FENTRY, backend=backend, only=["freplace_mix"])
