"""Paths the library is handed: pins stay under their root and on bpffs; non-ELF CLI files fail cleanly.

Pins (:mod:`loader.pinning`): names from object files are one path component; pin paths
have no NUL and no ``..``; a pin's real path (symlinks resolved) stays inside the pin
root; for the kernel backend the real directory of a pin is on bpffs. Kernel tests mount
a private bpffs in a temporary directory and unmount it afterwards.

CLI (:mod:`ebpfspec.cli`): a directory, ``/dev/null``, a FIFO (with or without a
writer), a sparse file larger than ``MAX_OBJECT_SIZE`` and an unreadable file each give
exit status 1 and one line on stderr, no traceback, quickly.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import ebpfspec
import loader
from ebpfspec import MapSpec, MapType, PinType
from ebpfspec.cli import main
from ebpfspec.reader import MAX_OBJECT_SIZE
from loader import Backend, load_collection
from loader.pinning import check_pin_dir, check_pin_name, check_pin_path, check_pin_target, pin_file
from tests.conftest import ROOT, TESTDATA, open_fds
from tests.test_map import RecordingBackend

BACKENDS = [pytest.param("kernel", marks=pytest.mark.kernel), "memory"]

PINNED = MapSpec(
    name="array_map", type=MapType.ARRAY, key_size=4, value_size=8, max_entries=4, pinning=PinType.BY_NAME
)
SPEC = ebpfspec.CollectionSpec(maps={"array_map": PINNED})


def kernel_backend() -> Backend:
    """A KernelBackend (skips without root)."""
    if os.geteuid() != 0:
        pytest.skip("the kernel backend needs root")
    return loader.KernelBackend()


def make_backend(kind: str) -> Backend:
    return kernel_backend() if kind == "kernel" else loader.MemoryBackend()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request.param)


@contextlib.contextmanager
def mounted_bpffs() -> Iterator[Path]:
    """A private bpffs mounted on a new temporary directory (unmounted and removed after)."""
    directory = Path(tempfile.mkdtemp(prefix="ebpfspec-paths-"))
    done = subprocess.run(["mount", "-t", "bpf", "bpf", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        directory.rmdir()
        pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)
        directory.rmdir()


@pytest.fixture
def bpffs() -> Iterator[Path]:
    with mounted_bpffs() as directory:
        yield directory


@pytest.fixture
def pin_root(backend: Backend) -> Iterator[Path]:
    """Where pins go: a private bpffs for the kernel backend, a plain directory for the memory one."""
    if backend.name == "kernel":
        with mounted_bpffs() as directory:
            yield directory
    else:
        with tempfile.TemporaryDirectory(prefix="ebpfspec-pins-") as directory:
            yield Path(directory)


# -- names and paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../escape", "/etc/passwd", "/sys/fs/bpf/other", "a/b", "./x", ".", "..", "", "nul\0byte", "trailing/"],
)
def test_pin_names_are_one_path_component(name: str) -> None:
    with pytest.raises(ValueError, match="invalid pin name"):
        check_pin_name(name)
    with pytest.raises(ValueError, match="invalid pin name"):
        pin_file("/sys/fs/bpf", name)


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("counts", "counts"),
        ("map.name-1", "map_name-1"),
        (".rodata", "_rodata"),
        ("..hidden", "__hidden"),
        ("a..b", "a__b"),
        ("ünïcode", "ünïcode"),
    ],
)
def test_ordinary_pin_names_pass(name: str, file: str) -> None:
    """Dots become underscores, as libbpf does: bpffs refuses names with dots (EPERM)."""
    check_pin_name(name)
    assert pin_file("/sys/fs/bpf/app", name) == f"/sys/fs/bpf/app/{file}"


@pytest.mark.parametrize(
    "path", ["", "a\0b", "..", "../x", "/sys/fs/bpf/../../etc/x", "pins/../x", "/sys/fs/bpf/app/.."]
)
def test_bad_pin_paths(path: str) -> None:
    with pytest.raises(ValueError, match="pin path"):
        check_pin_path(path)
    with pytest.raises(ValueError, match="pin path"):
        check_pin_target(path, None)


def test_pin_must_be_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    check_pin_target(str(root / "m"), None, root=str(root))
    for outside in (tmp_path / "m", tmp_path / "rootx" / "m", root):
        with pytest.raises(ValueError, match="not inside the pin root"):
            check_pin_target(str(outside), None, root=str(root))


def test_symlink_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "m").symlink_to(tmp_path / "elsewhere")  # dangling: resolved all the same
    with pytest.raises(ValueError, match="outside the pin root"):
        pin_file(str(root), "m")
    (root / "d").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the pin root"):
        check_pin_target(str(root / "d" / "m"), None, root=str(root))


def test_symlinks_inside_the_root_are_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "m").symlink_to("sub/real")
    assert pin_file(str(root), "m") == str(root / "m")
    link = tmp_path / "link"  # the root itself reached through a symlink
    link.symlink_to(root, target_is_directory=True)
    assert pin_file(str(link), "m") == str(link / "m")


def test_collection_pin_names_from_the_object_are_confined(backend: Backend, pin_root: Path) -> None:
    """A map called like an absolute path or with ``..`` is refused before anything is created."""
    for bad in ("/etc/passwd", "../escape", "x/../../y"):
        spec = ebpfspec.CollectionSpec(maps={bad: PINNED.replace(name=bad)})
        before = open_fds()
        with pytest.raises(ValueError, match="invalid pin name"):
            load_collection(spec, backend=backend, pin_path=str(pin_root))
        assert open_fds() == before


def test_collection_refuses_a_planted_symlink(backend: Backend, pin_root: Path) -> None:
    """``<root>/array_map`` is a symlink out of the root: the load neither reuses nor pins through it."""
    outside = Path(tempfile.mkdtemp(prefix="ebpfspec-outside-"))
    try:
        (pin_root / "array_map").symlink_to(outside / "array_map")
        recording = RecordingBackend(backend)
        before = open_fds()
        with pytest.raises(ValueError, match="outside the pin root"):
            load_collection(SPEC, backend=recording, pin_path=str(pin_root))
        assert open_fds() == before
        assert not {"map_create", "obj_get", "obj_pin"} & set(recording.methods())
        assert os.listdir(outside) == []
    finally:
        (pin_root / "array_map").unlink()
        outside.rmdir()


def test_map_pin_path_with_dotdot_is_refused(backend: Backend, pin_root: Path) -> None:
    recording = RecordingBackend(backend)
    with loader.Map.create(PINNED.replace(pinning=PinType.NONE), recording) as m:
        with pytest.raises(ValueError, match=r"'\.\.' component"):
            m.pin(str(pin_root / "sub" / ".." / "m"))
        assert "obj_pin" not in recording.methods() and m.pinned_path is None


# -- bpffs (kernel) ---------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_check_pin_target_needs_bpffs(bpffs: Path, tmp_path: Path) -> None:
    kernel = kernel_backend()
    check_pin_target(str(bpffs / "m"), kernel)
    check_pin_target(str(bpffs / "missing" / "m"), kernel)  # left to the kernel: ENOENT
    with pytest.raises(ValueError, match="not on bpffs"):
        check_pin_target(str(tmp_path / "m"), kernel)
    plain = tmp_path / "plain"
    plain.mkdir()
    (bpffs / "out").symlink_to(plain, target_is_directory=True)  # a symlink on bpffs leading off it
    with pytest.raises(ValueError, match=r"really .*not on bpffs"):
        check_pin_target(str(bpffs / "out" / "m"), kernel)
    (bpffs / "out").unlink()
    check_pin_target(str(tmp_path / "m"), loader.MemoryBackend())  # the memory backend's pins are no files


@pytest.mark.kernel
def test_pin_root_must_really_be_on_bpffs(bpffs: Path, tmp_path: Path) -> None:
    kernel = kernel_backend()
    plain = tmp_path / "plain"
    plain.mkdir()
    via = bpffs / "looks_like_bpffs"
    via.symlink_to(plain, target_is_directory=True)
    try:
        with pytest.raises(ValueError, match=r"really .*not on bpffs"):
            check_pin_dir(str(via), kernel)
        with pytest.raises(ValueError, match="not on bpffs"):
            load_collection(SPEC, backend=kernel, pin_path=str(via))
        assert os.listdir(plain) == []
    finally:
        via.unlink()


@pytest.mark.kernel
def test_map_pinned_outside_the_root_is_not_reused_through_a_symlink(bpffs: Path) -> None:
    """Another application's map, pinned elsewhere on the same bpffs, cannot be substituted."""
    kernel = kernel_backend()
    (bpffs / "app").mkdir()
    (bpffs / "other").mkdir()
    with loader.Map.create(PINNED.replace(pinning=PinType.NONE), kernel) as foreign:
        foreign.pin(str(bpffs / "other" / "array_map"))
        (bpffs / "app" / "array_map").symlink_to(bpffs / "other" / "array_map")
        before = open_fds()
        with pytest.raises(ValueError, match="outside the pin root"):
            load_collection(SPEC, backend=kernel, pin_path=str(bpffs / "app"))
        assert open_fds() == before
        foreign.unpin()


@pytest.mark.kernel
def test_symlinks_inside_the_root_and_to_the_root_work(bpffs: Path, tmp_path: Path) -> None:
    kernel = kernel_backend()
    app = bpffs / "app"
    (app / "sub").mkdir(parents=True)
    with loader.Map.create(PINNED.replace(pinning=PinType.NONE), kernel) as mine:
        mine.pin(str(app / "sub" / "real"))
        (app / "array_map").symlink_to("sub/real")
        with load_collection(SPEC, backend=kernel, pin_path=str(app)) as coll:
            assert coll.maps["array_map"].info().id == mine.info().id  # reused through the symlink
        mine.unpin()
    (app / "array_map").unlink()
    link = tmp_path / "pins"
    link.symlink_to(app, target_is_directory=True)
    with load_collection(SPEC, backend=kernel, pin_path=str(link)) as coll:
        assert os.path.exists(app / "array_map")  # pinned in the real directory, on bpffs
        coll.maps["array_map"].unpin()


@pytest.mark.kernel
def test_map_pin_refuses_paths_off_bpffs(bpffs: Path, tmp_path: Path) -> None:
    recording = RecordingBackend(kernel_backend())
    plain = tmp_path / "plain"
    plain.mkdir()
    (bpffs / "out").symlink_to(plain, target_is_directory=True)
    with loader.Map.create(PINNED.replace(pinning=PinType.NONE), recording) as m:
        for path in (plain / "m", bpffs / "out" / "m"):
            with pytest.raises(ValueError, match="not on bpffs"):
                m.pin(str(path))
        assert "obj_pin" not in recording.methods()
    (bpffs / "out").unlink()


@pytest.mark.kernel
def test_program_pin_refuses_paths_off_bpffs(tmp_path: Path) -> None:
    recording = RecordingBackend(kernel_backend())
    spec = ebpfspec.load_collection_spec(TESTDATA / "xdp_test-el.o")
    with load_collection(spec, backend=recording, only=["xdp_len_filter"]) as coll:
        with pytest.raises(ValueError, match="not on bpffs"):
            coll.programs["xdp_len_filter"].pin(str(tmp_path / "prog"))
        assert "obj_pin" not in recording.methods()


# -- CLI file arguments that are not ELF objects ------------------------------------------------------------

#: Commands that read an object file, with the arguments after it.
FILE_COMMANDS = [("inspect", []), ("btf dump", []), ("load", ["--backend", "memory"])]


def run_cli(
    capsys: pytest.CaptureFixture[str], command: str, path: Path | str, rest: list[str]
) -> tuple[int, str]:
    """Run the CLI in-process; returns (status, stderr) after checking stdout is empty."""
    status = main([*command.split(), str(path), *rest])
    out, err = capsys.readouterr()
    assert out == ""
    return status, err


def assert_clean_error(status: int, err: str, *parts: str) -> None:
    assert status == 1
    assert err.startswith("ebpfspec: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


@pytest.mark.parametrize(("command", "rest"), FILE_COMMANDS, ids=[c for c, _ in FILE_COMMANDS])
def test_cli_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, rest: list[str]
) -> None:
    assert_clean_error(*run_cli(capsys, command, tmp_path, rest), str(tmp_path), "Is a directory")


@pytest.mark.parametrize(("command", "rest"), FILE_COMMANDS, ids=[c for c, _ in FILE_COMMANDS])
def test_cli_dev_null(capsys: pytest.CaptureFixture[str], command: str, rest: list[str]) -> None:
    assert_clean_error(*run_cli(capsys, command, "/dev/null", rest), "/dev/null", "malformed ELF")


@pytest.mark.parametrize(("command", "rest"), FILE_COMMANDS, ids=[c for c, _ in FILE_COMMANDS])
def test_cli_huge_sparse_file_fails_fast(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, rest: list[str]
) -> None:
    """Refused from its size (``fstat``) before a byte is read: fast, and nothing allocated for it."""
    huge = tmp_path / "huge.o"
    with huge.open("wb") as f:
        f.truncate(MAX_OBJECT_SIZE + 1)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        status, err = run_cli(capsys, command, huge, rest)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 4 << 20
    assert_clean_error(status, err, str(huge), f"larger than {MAX_OBJECT_SIZE} bytes")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("command", "rest"), FILE_COMMANDS, ids=[c for c, _ in FILE_COMMANDS])
def test_cli_fifo_without_a_writer_does_not_block(tmp_path: Path, command: str, rest: list[str]) -> None:
    """``open(2)`` of a FIFO with no writer would wait forever; the reader opens it non-blocking."""
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ebpfspec", *command.split(), str(fifo), *rest],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert time.monotonic() - start < 20
    assert_clean_error(done.returncode, done.stderr, str(fifo), "malformed ELF")
    assert done.stdout == ""


@pytest.mark.timeout(60)
def test_cli_fifo_with_a_writer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A writer sending junk: a clean error, whether it came before or after the open."""
    fifo = tmp_path / "fifo.o"
    os.mkfifo(fifo)

    def write() -> None:
        with contextlib.suppress(OSError), open(fifo, "wb") as f:  # waits for the reader
            f.write(b"\x7fELF" + b"junk" * 100)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.05)
    status, err = run_cli(capsys, "inspect", fifo, [])
    assert_clean_error(status, err, str(fifo), "malformed ELF")
    # a reader-less writer blocks on open: release it if the reader came and went first
    with contextlib.suppress(OSError):
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.close(fd)
    writer.join(10)
    assert not writer.is_alive()


@pytest.mark.timeout(60)
def test_cli_reads_an_object_from_a_pipe(tmp_path: Path) -> None:
    """The non-blocking open does not break pipes: ``<(cat prog.o)`` still works."""
    script = f"{sys.executable} -m ebpfspec inspect <(cat {TESTDATA / 'maps-el.o'}) --maps"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "hash_map" in done.stdout


def _drop_file_capabilities() -> None:
    """In a child process before exec: lose CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for good.

    Root keeps every capability of the bounding set across exec, so they are dropped from it.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("command", "rest"), FILE_COMMANDS, ids=[c for c, _ in FILE_COMMANDS])
def test_cli_unreadable_file(tmp_path: Path, command: str, rest: list[str]) -> None:
    """A file without read permission: ``Permission denied``, exit 1.

    Root reads any file, so as root the CLI runs in a child without the capabilities that
    let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH dropped from its bounding set): the
    test needs no kernel feature and runs everywhere.
    """
    secret = tmp_path / "secret.o"
    secret.write_bytes((TESTDATA / "maps-el.o").read_bytes())
    secret.chmod(0)
    done = subprocess.run(
        [sys.executable, "-m", "ebpfspec", *command.split(), str(secret), *rest],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,
    )
    assert_clean_error(done.returncode, done.stderr, str(secret), os.strerror(errno.EACCES))
    assert done.stdout == ""


def test_library_reports_directories_as_oserror(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        ebpfspec.load_collection_spec(tmp_path)
    assert info.value.filename == str(tmp_path)


@pytest.mark.kernel
@pytest.mark.parametrize("path", ["/dev/null", "/tmp", "__file__"])
def test_cli_map_dump_of_something_not_pinned(capsys: pytest.CaptureFixture[str], path: str) -> None:
    kernel_backend()
    target = __file__ if path == "__file__" else path
    status = main(["map", "dump", target])
    out, err = capsys.readouterr()
    assert out == ""
    assert_clean_error(status, err, target)
