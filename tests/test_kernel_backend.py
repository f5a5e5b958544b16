"""``KernelBackend`` against the running kernel, with ``bpftool`` as an independent witness.

Every test that makes a ``bpf(2)`` call is marked ``kernel`` and skips when not root or
when the kernel refuses BPF (``EPERM``); under ``EBPFSPEC_REQUIRE_KERNEL=1`` those skips
fail. The attr layout is checked against the kernel's own ``union bpf_attr`` in its BTF.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import btf
from loader.backend import Backend, MapAttrs
from loader.cpus import possible_cpus, round_up8
from loader.errors import NotSupportedError
from loader.kernel import KernelBackend
from loader.kernel import syscall as kernel_syscall
from loader.kernel.attr import (
    BpfMapInfo,
    BtfLoadAttr,
    GetIdAttr,
    InfoAttr,
    MapBatchAttr,
    MapCreateAttr,
    MapElemAttr,
    ObjAttr,
)

# enum bpf_map_type
HASH, ARRAY, PROG_ARRAY, PERCPU_HASH, LRU_HASH = 1, 2, 3, 5, 9
ARRAY_OF_MAPS, QUEUE, STACK, RINGBUF, BLOOM_FILTER = 12, 22, 23, 27, 30
# flags
NOEXIST, EXIST = 1, 2
F_NO_PREALLOC, F_ZERO_SEED = 1 << 0, 1 << 6

MakeMap = Callable[..., int]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kb() -> KernelBackend:
    """A KernelBackend, or a skip where this process may not use BPF."""
    if os.geteuid() != 0:
        pytest.skip("KernelBackend tests need root")
    backend = KernelBackend()
    try:
        fd = backend.map_create(MapAttrs(map_type=ARRAY, key_size=4, value_size=4, max_entries=1))
    except OSError as err:
        if err.errno == errno.EPERM:
            pytest.skip(f"the kernel refuses bpf(): {err}")
        raise
    backend.close(fd)
    return backend


@pytest.fixture
def make_map(kb: KernelBackend) -> Iterator[MakeMap]:
    """``make_map(type, key_size, value_size, max_entries, **attrs)``: a map closed after the test."""
    fds: list[int] = []

    def make(map_type: int, key_size: int, value_size: int, max_entries: int, **kwargs: Any) -> int:
        fd = kb.map_create(MapAttrs(map_type=map_type, key_size=key_size, value_size=value_size,
                                    max_entries=max_entries, **kwargs))
        fds.append(fd)
        return fd

    yield make
    for fd in fds:
        kb.close(fd)


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    """A bpffs of this test's own, mounted on a temporary directory and unmounted afterwards."""
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount bpffs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def bpftool_map(map_id: int) -> dict[str, Any]:
    """``bpftool map show id N -j``: what an independent tool sees of the map."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run(["bpftool", "map", "show", "id", str(map_id), "-j"],
                         capture_output=True, text=True, check=True).stdout
    shown: dict[str, Any] = json.loads(out)
    return shown


def u32(n: int) -> bytes:
    return struct.pack("=I", n)


def u64(n: int) -> bytes:
    return struct.pack("=Q", n)


def errno_of(call: Callable[[], object]) -> int | None:
    """The errno ``call`` fails with (None if it succeeds)."""
    try:
        call()
    except OSError as err:
        return err.errno
    return None


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- attr layout --------------------------------------------------------------------------------

ATTR_LAYOUT: dict[type[ctypes.Structure], tuple[int, dict[str, int]]] = {
    MapCreateAttr: (80, {
        "map_type": 0, "key_size": 4, "value_size": 8, "max_entries": 12, "map_flags": 16,
        "inner_map_fd": 20, "numa_node": 24, "map_name": 28, "map_ifindex": 44, "btf_fd": 48,
        "btf_key_type_id": 52, "btf_value_type_id": 56, "btf_vmlinux_value_type_id": 60,
        "map_extra": 64, "value_type_btf_obj_fd": 72, "map_token_fd": 76,
    }),
    MapElemAttr: (32, {"map_fd": 0, "key": 8, "value": 16, "next_key": 16, "flags": 24}),
    MapBatchAttr: (56, {
        "in_batch": 0, "out_batch": 8, "keys": 16, "values": 24, "count": 32, "map_fd": 36,
        "elem_flags": 40, "flags": 48,
    }),
    ObjAttr: (24, {"pathname": 0, "bpf_fd": 8, "file_flags": 12, "path_fd": 16}),
    InfoAttr: (16, {"bpf_fd": 0, "info_len": 4, "info": 8}),
    GetIdAttr: (16, {"id": 0, "next_id": 4, "open_flags": 8, "fd_by_id_token_fd": 12}),
    BtfLoadAttr: (40, {
        "btf": 0, "btf_log_buf": 8, "btf_size": 16, "btf_log_size": 20, "btf_log_level": 24,
        "btf_log_true_size": 28, "btf_flags": 32, "btf_token_fd": 36,
    }),
    BpfMapInfo: (88, {
        "type": 0, "id": 4, "key_size": 8, "value_size": 12, "max_entries": 16, "map_flags": 20,
        "name": 24, "ifindex": 40, "btf_vmlinux_value_type_id": 44, "netns_dev": 48, "netns_ino": 56,
        "btf_id": 64, "btf_key_type_id": 68, "btf_value_type_id": 72, "btf_vmlinux_id": 76,
        "map_extra": 80,
    }),
}


def field_layout(cls: type[ctypes.Structure], name: str) -> tuple[int, int]:
    """``(offset, size)`` of field ``name`` of ``cls``, looking into anonymous unions."""
    if name in {f[0] for f in cls._fields_}:
        field = getattr(cls, name)
        return int(field.offset), int(field.size)
    for anonymous in getattr(cls, "_anonymous_", ()):
        inner = next(f[1] for f in cls._fields_ if f[0] == anonymous)
        if hasattr(inner, name):
            field = getattr(inner, name)
            return int(getattr(cls, anonymous).offset + field.offset), int(field.size)
    raise AttributeError(name)


def field_offset(cls: type[ctypes.Structure], name: str) -> int:
    """Offset of field ``name`` of ``cls``."""
    return field_layout(cls, name)[0]


@pytest.mark.parametrize("cls", list(ATTR_LAYOUT), ids=lambda c: c.__name__)
def test_attr_layout(cls: type[ctypes.Structure]) -> None:
    """Sizes and offsets as in include/uapi/linux/bpf.h (every __aligned_u64 8-aligned)."""
    size, offsets = ATTR_LAYOUT[cls]
    assert ctypes.sizeof(cls) == size
    assert {name: field_offset(cls, name) for name in offsets} == offsets


def flatten_btf(t: btf.Type, base: int = 0) -> dict[str, tuple[int, int]]:
    """Named members of a BTF struct/union -> (byte offset, size), anonymous members inlined."""
    out: dict[str, tuple[int, int]] = {}
    for m in getattr(btf.skip_qualifiers_and_typedefs(t), "members", ()):
        mt = btf.skip_qualifiers_and_typedefs(m.type)
        if m.name:
            out[m.name] = (base + m.offset // 8, btf.sizeof(mt))
        else:
            out.update(flatten_btf(mt, base + m.offset // 8))
    return out


@pytest.mark.kernel
def test_attr_layout_matches_running_kernel_btf() -> None:
    """Each attr structure agrees with the running kernel's own ``union bpf_attr`` (its BTF)."""
    try:
        kernel = btf.load_kernel_spec()
    except OSError as err:
        pytest.skip(f"no kernel BTF: {err}")
    (bpf_attr,) = kernel.types_by_name("bpf_attr", kind=btf.Kind.UNION)
    parts = [flatten_btf(m.type) for m in getattr(bpf_attr, "members", ())]
    (map_info,) = kernel.types_by_name("bpf_map_info", kind=btf.Kind.STRUCT)
    renamed: dict[type[ctypes.Structure], dict[str, str]] = {GetIdAttr: {"id": "map_id"}}
    for cls in ATTR_LAYOUT:
        names = [f[0] for f in cls._fields_ if not f[0].startswith("_")]
        names += [n for n in ATTR_LAYOUT[cls][1] if n not in names]  # anonymous union members
        kernel_names = [renamed.get(cls, {}).get(n, n) for n in names]
        if cls is BpfMapInfo:
            candidates = [flatten_btf(map_info)]
        else:
            candidates = [p for p in parts if all(n in p for n in kernel_names)]
        assert len(candidates) == 1, f"{cls.__name__}: no single part of bpf_attr has {kernel_names}"
        (part,) = candidates
        for ours, theirs in zip(names, kernel_names, strict=True):
            assert field_layout(cls, ours) == part[theirs], f"{cls.__name__}.{ours}"


# -- syscall plumbing ---------------------------------------------------------------------------


def test_unsupported_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_syscall, "BPF_SYSCALL_NR", None)
    monkeypatch.setattr(kernel_syscall, "MACHINE", "pdp11")
    with pytest.raises(NotSupportedError, match="pdp11"):
        KernelBackend()
    with pytest.raises(NotSupportedError):
        kernel_syscall.bpf(0, MapCreateAttr())


def test_syscall_number_of_this_machine() -> None:
    if os.uname().machine == "x86_64":
        assert kernel_syscall.syscall_number() == 321
    elif os.uname().machine == "aarch64":
        assert kernel_syscall.syscall_number() == 280


@pytest.mark.kernel
def test_is_a_backend(kb: KernelBackend) -> None:
    assert isinstance(kb, Backend)
    assert kb.name == "kernel"
    assert kb.possible_cpus() == possible_cpus() >= 1


@pytest.mark.kernel
@pytest.mark.usefixtures("kb")
def test_bpf_raises_oserror_with_errno() -> None:
    attr = MapElemAttr()
    attr.map_fd = 0x7FFFFFFF  # no such fd
    with pytest.raises(OSError) as info:
        kernel_syscall.bpf(1, attr)
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == os.strerror(errno.EBADF)
    with pytest.raises(ValueError, match="exceeds"):
        kernel_syscall.bpf(1, attr, ctypes.sizeof(attr) + 8)


# -- map creation, witnessed by bpftool -----------------------------------------------------------

CREATE_CASES: list[tuple[str, int, int, int, int, dict[str, int]]] = [
    # bpftool type, map type, key size, value size, max entries, other attributes
    ("hash", HASH, 4, 8, 128, {}),
    ("hash", HASH, 16, 40, 64, {"map_flags": F_NO_PREALLOC}),
    ("array", ARRAY, 4, 12, 10, {}),
    ("percpu_hash", PERCPU_HASH, 4, 4, 32, {}),
    ("lru_hash", LRU_HASH, 8, 8, 64, {}),
    ("queue", QUEUE, 0, 4, 16, {}),
    ("stack", STACK, 0, 8, 16, {}),
    ("bloom_filter", BLOOM_FILTER, 0, 4, 100, {"map_extra": 3}),
    ("ringbuf", RINGBUF, 0, 0, 4096, {}),
    ("prog_array", PROG_ARRAY, 4, 4, 8, {}),
]


@pytest.mark.kernel
@pytest.mark.parametrize(("kind", "map_type", "key_size", "value_size", "max_entries", "extra"),
                         CREATE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CREATE_CASES)])
def test_create_map_types(kb: KernelBackend, make_map: MakeMap, kind: str, map_type: int, key_size: int,
                          value_size: int, max_entries: int, extra: dict[str, int]) -> None:
    fd = make_map(map_type, key_size, value_size, max_entries, name=f"t_{kind}"[:15], **extra)
    info = kb.map_info(fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (
        map_type, key_size, value_size, max_entries)
    assert info.map_flags == extra.get("map_flags", 0)
    assert info.map_extra == extra.get("map_extra", 0)
    assert info.name == f"t_{kind}"[:15]
    shown = bpftool_map(info.id)
    assert shown["id"] == info.id
    assert shown["type"] == kind
    assert shown["name"] == f"t_{kind}"[:15]
    assert (shown["bytes_key"], shown["bytes_value"], shown["max_entries"], shown["flags"]) == (
        key_size, value_size, max_entries, extra.get("map_flags", 0))
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


@pytest.mark.kernel
def test_create_rejects_bad_names_before_the_syscall(kb: KernelBackend) -> None:
    with pytest.raises(ValueError, match="longer than 15"):
        kb.map_create(MapAttrs(map_type=HASH, key_size=4, value_size=4, max_entries=1, name="x" * 16))
    with pytest.raises(ValueError, match="NUL"):
        kb.map_create(MapAttrs(map_type=HASH, key_size=4, value_size=4, max_entries=1, name="a\0b"))


@pytest.mark.kernel
def test_create_errors_carry_errno(kb: KernelBackend) -> None:
    assert errno_of(lambda: kb.map_create(MapAttrs(map_type=HASH, key_size=0, value_size=4,
                                                  max_entries=1))) == errno.EINVAL
    assert errno_of(lambda: kb.map_create(MapAttrs(map_type=HASH, key_size=4, value_size=4,
                                                  max_entries=1, name="bad-name"))) == errno.EINVAL


# -- element operations -----------------------------------------------------------------------------


@pytest.mark.kernel
def test_hash_element_semantics(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 4, name="sem")
    assert errno_of(lambda: kb.map_lookup(fd, u32(1), 8)) == errno.ENOENT
    assert errno_of(lambda: kb.map_update(fd, u32(1), u64(10), EXIST)) == errno.ENOENT
    kb.map_update(fd, u32(1), u64(10), NOEXIST)
    assert kb.map_lookup(fd, u32(1), 8) == u64(10)
    assert errno_of(lambda: kb.map_update(fd, u32(1), u64(11), NOEXIST)) == errno.EEXIST
    kb.map_update(fd, u32(1), u64(12), EXIST)
    assert kb.map_lookup(fd, u32(1), 8) == u64(12)
    for k in (2, 3, 4):
        kb.map_update(fd, u32(k), u64(k * 100))
    assert errno_of(lambda: kb.map_update(fd, u32(5), u64(5))) == errno.E2BIG  # full
    kb.map_update(fd, u32(4), u64(400))  # replacing in a full map is fine
    kb.map_delete(fd, u32(4))
    assert errno_of(lambda: kb.map_delete(fd, u32(4))) == errno.ENOENT
    assert errno_of(lambda: kb.map_lookup(fd, u32(4), 8)) == errno.ENOENT
    assert errno_of(lambda: kb.map_update(fd, u32(1), u64(1), 7)) == errno.EINVAL  # bad flags


@pytest.mark.kernel
def test_get_next_key_walks_every_key_once(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 64)
    assert errno_of(lambda: kb.map_get_next_key(fd, None, 4)) == errno.ENOENT  # empty
    for k in range(50):
        kb.map_update(fd, u32(k), u64(k))
    seen: list[bytes] = []
    key: bytes | None = None
    while True:
        try:
            key = kb.map_get_next_key(fd, key, 4)
        except FileNotFoundError:
            break
        seen.append(key)
    assert sorted(seen) == [u32(k) for k in range(50)]
    # A key that is not in a hash map restarts from the first key.
    assert kb.map_get_next_key(fd, u32(1000), 4) == seen[0]


@pytest.mark.kernel
def test_array_element_semantics(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(ARRAY, 4, 8, 3)
    assert kb.map_lookup(fd, u32(2), 8) == bytes(8)  # arrays exist zeroed
    assert errno_of(lambda: kb.map_lookup(fd, u32(3), 8)) == errno.ENOENT
    assert errno_of(lambda: kb.map_update(fd, u32(3), u64(1))) == errno.E2BIG
    assert errno_of(lambda: kb.map_update(fd, u32(0), u64(1), NOEXIST)) == errno.EEXIST
    kb.map_update(fd, u32(1), u64(0xDEADBEEF))
    assert kb.map_lookup(fd, u32(1), 8) == u64(0xDEADBEEF)
    assert errno_of(lambda: kb.map_delete(fd, u32(1))) == errno.EINVAL
    assert kb.map_get_next_key(fd, None, 4) == u32(0)
    assert kb.map_get_next_key(fd, u32(1), 4) == u32(2)
    assert errno_of(lambda: kb.map_get_next_key(fd, u32(2), 4)) == errno.ENOENT


@pytest.mark.kernel
def test_percpu_hash_slots(kb: KernelBackend, make_map: MakeMap) -> None:
    ncpus = kb.possible_cpus()
    slot = round_up8(4)
    fd = make_map(PERCPU_HASH, 4, 4, 8)
    value = b"".join(u32(0x1000 + cpu).ljust(slot, b"\0") for cpu in range(ncpus))
    kb.map_update(fd, u32(7), value)
    assert kb.map_lookup(fd, u32(7), slot * ncpus) == value
    assert kb.map_lookup_and_delete(fd, u32(7), slot * ncpus) == value
    assert errno_of(lambda: kb.map_lookup(fd, u32(7), slot * ncpus)) == errno.ENOENT


@pytest.mark.kernel
def test_lru_hash_evicts_instead_of_e2big(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(LRU_HASH, 4, 8, 32)
    for k in range(500):
        kb.map_update(fd, u32(k), u64(k))
    result = kb.map_lookup_batch(fd, None, 4, 4, 8, 1000)
    assert result.done
    assert 0 < result.count <= 32
    assert kb.map_lookup(fd, u32(499), 8) == u64(499)  # the newest survives


@pytest.mark.kernel
def test_queue_and_stack(kb: KernelBackend, make_map: MakeMap) -> None:
    queue = make_map(QUEUE, 0, 4, 3)
    stack = make_map(STACK, 0, 4, 3)
    for fd in (queue, stack):
        assert errno_of(partial(kb.map_lookup_and_delete, fd, b"", 4)) == errno.ENOENT
        for v in (1, 2, 3):
            kb.map_update(fd, b"", u32(v))
        assert errno_of(partial(kb.map_update, fd, b"", u32(4))) == errno.E2BIG
    assert kb.map_lookup(queue, b"", 4) == u32(1)  # peek
    assert kb.map_lookup(stack, b"", 4) == u32(3)
    kb.map_update(queue, b"", u32(4), EXIST)  # BPF_EXIST: push out the oldest
    assert [kb.map_lookup_and_delete(queue, b"", 4) for _ in range(3)] == [u32(2), u32(3), u32(4)]
    assert [kb.map_lookup_and_delete(stack, b"", 4) for _ in range(3)] == [u32(3), u32(2), u32(1)]
    assert errno_of(lambda: kb.map_lookup(queue, b"", 4)) == errno.ENOENT


@pytest.mark.kernel
def test_bloom_filter(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(BLOOM_FILTER, 0, 4, 100, map_extra=3, map_flags=F_ZERO_SEED)
    assert kb.map_info(fd).map_extra == 3
    kb.map_update(fd, b"", u32(42))
    assert kb.map_lookup(fd, b"", 4, value=u32(42)) == u32(42)  # maybe present
    assert errno_of(lambda: kb.map_lookup(fd, b"", 4, value=u32(43))) == errno.ENOENT


@pytest.mark.kernel
def test_array_of_maps(kb: KernelBackend, make_map: MakeMap) -> None:
    inner = make_map(ARRAY, 4, 8, 1, name="inner")
    outer = make_map(ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=inner, name="outer")
    shown = bpftool_map(kb.map_info(outer).id)
    assert (shown["type"], shown["bytes_key"], shown["bytes_value"]) == ("array_of_maps", 4, 4)
    kb.map_update(outer, u32(1), u32(inner))
    assert kb.map_lookup(outer, u32(1), 4) == u32(kb.map_info(inner).id)  # the inner map's id
    assert errno_of(lambda: kb.map_lookup(outer, u32(0), 4)) == errno.ENOENT
    other = make_map(HASH, 4, 8, 1)
    assert errno_of(lambda: kb.map_update(outer, u32(0), u32(other))) == errno.EINVAL  # not like inner
    kb.map_delete(outer, u32(1))


@pytest.mark.kernel
def test_prog_array_starts_empty(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(PROG_ARRAY, 4, 4, 4)
    assert errno_of(lambda: kb.map_lookup(fd, u32(0), 4)) == errno.ENOENT
    other = make_map(HASH, 4, 4, 1)
    assert errno_of(lambda: kb.map_update(fd, u32(0), u32(other))) == errno.EINVAL  # not a program


@pytest.mark.kernel
def test_freeze(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(ARRAY, 4, 4, 2)
    kb.map_update(fd, u32(0), u32(5))
    kb.map_freeze(fd)
    assert errno_of(lambda: kb.map_update(fd, u32(0), u32(6))) == errno.EPERM
    assert kb.map_lookup(fd, u32(0), 4) == u32(5)
    assert bpftool_map(kb.map_info(fd).id)["frozen"] == 1
    assert errno_of(lambda: kb.map_freeze(fd)) == errno.EPERM  # not EBUSY: a frozen map is read-only
    with pytest.raises(OSError) as info:
        kb.map_update_batch(fd, u32(1), u32(1), 1)
    assert info.value.errno == errno.EPERM
    assert getattr(info.value, "count", None) == 0


@pytest.mark.kernel
def test_hot_path_sizes(kb: KernelBackend, make_map: MakeMap) -> None:
    """Keys and values larger than the scratch buffers; a bad size is a ValueError."""
    fd = make_map(HASH, 300, 5000, 4)
    key, value = bytes(range(256)) + b"k" * 44, os.urandom(5000)
    kb.map_update(fd, key, value)
    assert kb.map_lookup(fd, key, 5000) == value
    assert kb.map_get_next_key(fd, None, 300) == key
    assert kb.map_lookup_and_delete(fd, key, 5000) == value
    with pytest.raises(ValueError, match="negative"):
        kb.map_lookup(fd, key, -1)
    with pytest.raises(ValueError, match="negative"):
        kb.map_get_next_key(fd, None, -4)


@pytest.mark.kernel
def test_nested_use_on_one_thread(kb: KernelBackend, make_map: MakeMap) -> None:
    """An operation started while another is in progress on the same thread gets its own buffers."""
    first = make_map(HASH, 4, 8, 4)
    second = make_map(HASH, 4, 8, 4)
    kb.map_update(first, u32(1), u64(111))
    kb.map_update(second, u32(2), u64(222))
    inner: list[bytes] = []

    class NestingKey(bytes):
        def __len__(self) -> int:  # called by map_lookup after it took its scratch buffers
            inner.append(kb.map_lookup(second, u32(2), 8))
            return super().__len__()

    assert kb.map_lookup(first, NestingKey(u32(1)), 8) == u64(111)
    assert inner == [u64(222)]


@pytest.mark.kernel
def test_threads(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 4096)
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for k in range(base, base + 500):
                kb.map_update(fd, u32(k), u64(k * 3))
                assert kb.map_lookup(fd, u32(k), 8) == u64(k * 3)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i * 1000,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert kb.map_lookup(fd, u32(7499), 8) == u64(7499 * 3)


@pytest.mark.kernel
def test_noexist_race_has_one_winner(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 16)
    outcomes: list[int | None] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        outcomes.append(errno_of(lambda: kb.map_update(fd, u32(9), u64(1), NOEXIST)))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == [errno.EEXIST] * 7 + [None]


# -- batches -------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_lookup_batch_over_10k_hash(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 10_000)
    n = 10_000
    assert kb.map_update_batch(fd, b"".join(u32(k) for k in range(n)),
                               b"".join(u64(k * 7) for k in range(n)), n) == n
    seen: dict[bytes, bytes] = {}
    cursor: bytes | None = None
    batches = 0
    while True:
        result = kb.map_lookup_batch(fd, cursor, 4, 4, 8, 128)
        batches += 1
        assert result.count <= 128
        assert len(result.keys) == result.count * 4 and len(result.values) == result.count * 8
        for i in range(result.count):
            key = result.keys[i * 4:i * 4 + 4]
            assert key not in seen
            seen[key] = result.values[i * 8:i * 8 + 8]
        if result.done:
            break
        assert len(result.next_batch) == 4
        cursor = result.next_batch
        assert batches < 1000
    assert seen == {u32(k): u64(k * 7) for k in range(n)}
    assert batches >= n // 128


@pytest.mark.kernel
def test_lookup_and_delete_batch_percpu_hash_from_start(kb: KernelBackend, make_map: MakeMap) -> None:
    ncpus = kb.possible_cpus()
    vs = round_up8(4) * ncpus
    fd = make_map(PERCPU_HASH, 4, 4, 256)
    values = {u32(k): b"".join(u32(k + cpu).ljust(8, b"\0") for cpu in range(ncpus)) for k in range(100)}
    assert kb.map_update_batch(fd, b"".join(values), b"".join(values.values()), 100) == 100
    got: dict[bytes, bytes] = {}
    cursor: bytes | None = None
    while True:
        result = kb.map_lookup_batch(fd, cursor, 4, 4, vs, 32, delete=True)
        for i in range(result.count):
            got[result.keys[i * 4:i * 4 + 4]] = result.values[i * vs:(i + 1) * vs]
        if result.done:
            break
        cursor = result.next_batch
    assert got == values
    assert errno_of(lambda: kb.map_get_next_key(fd, None, 4)) == errno.ENOENT  # all deleted


@pytest.mark.kernel
def test_lookup_batch_array(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(ARRAY, 4, 4, 10)
    for k in range(10):
        kb.map_update(fd, u32(k), u32(k + 100))
    first = kb.map_lookup_batch(fd, None, 4, 4, 4, 6)
    assert (first.count, first.done) == (6, False)
    rest = kb.map_lookup_batch(fd, first.next_batch, 4, 4, 4, 6)
    assert (rest.count, rest.done) == (4, True)
    assert first.keys + rest.keys == b"".join(u32(k) for k in range(10))
    assert first.values + rest.values == b"".join(u32(k + 100) for k in range(10))


@pytest.mark.kernel
def test_array_batches_that_the_kernel_does_not_support(kb: KernelBackend, make_map: MakeMap) -> None:
    """Arrays have no delete batch: the kernel answers its internal ENOTSUPP (524), not EINVAL."""
    fd = make_map(ARRAY, 4, 8, 4)
    assert errno_of(lambda: kb.map_delete_batch(fd, u32(0), 1)) == kernel_syscall.ENOTSUPP
    assert errno_of(lambda: kb.map_lookup_batch(fd, None, 4, 4, 8, 4, delete=True)) == kernel_syscall.ENOTSUPP
    with pytest.raises(OSError, match="ENOTSUPP"):
        kb.map_delete_batch(fd, u32(0), 1)


@pytest.mark.kernel
def test_batch_of_an_empty_map_is_done(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 8)
    result = kb.map_lookup_batch(fd, None, 4, 4, 8, 4)
    assert (result.count, result.keys, result.values, result.done) == (0, b"", b"", True)


@pytest.mark.kernel
def test_update_and_delete_batch_report_progress(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 5)
    kb.map_update(fd, u32(10), u64(0))
    kb.map_update(fd, u32(11), u64(0))
    keys = b"".join(u32(k) for k in range(5))
    with pytest.raises(OSError) as info:
        kb.map_update_batch(fd, keys, bytes(40), 5)
    assert info.value.errno == errno.E2BIG
    assert getattr(info.value, "count", None) == 3  # keys 0, 1 and 2 filled the map
    # elem_flags of an update batch may only be BPF_F_LOCK: NOEXIST/EXIST are refused.
    for flag in (NOEXIST, EXIST):
        refused = partial(kb.map_update_batch, fd, keys, bytes(40), 5, elem_flags=flag)
        assert errno_of(refused) == errno.EINVAL
    kb.map_delete_batch(fd, u32(10) + u32(11), 2)
    assert kb.map_update_batch(fd, keys, bytes(40), 5) == 5
    assert kb.map_delete_batch(fd, u32(0) + u32(1), 2) == 2
    with pytest.raises(OSError) as info:
        kb.map_delete_batch(fd, u32(2) + u32(0) + u32(3), 3)  # key 0 is gone
    assert info.value.errno == errno.ENOENT
    assert getattr(info.value, "count", None) == 1
    assert kb.map_get_next_key(fd, None, 4) in (u32(3), u32(4))


@pytest.mark.kernel
def test_batch_argument_checks(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(HASH, 4, 8, 8)
    with pytest.raises(ValueError, match="in_batch"):
        kb.map_lookup_batch(fd, b"\0" * 3, 4, 4, 8, 4)
    with pytest.raises(ValueError, match="positive"):
        kb.map_lookup_batch(fd, None, 4, 4, 8, 0)
    with pytest.raises(ValueError, match="divide"):
        kb.map_update_batch(fd, bytes(7), bytes(16), 2)
    with pytest.raises(ValueError, match="divide"):
        kb.map_update_batch(fd, bytes(8), bytes(15), 2)


# -- objects: pins, ids, fds ------------------------------------------------------------------------


@pytest.mark.kernel
def test_pin_and_get(kb: KernelBackend, make_map: MakeMap, bpffs: Path) -> None:
    fd = make_map(HASH, 4, 8, 4, name="pinned")
    kb.map_update(fd, u32(1), u64(99))
    path = str(bpffs / "m")
    kb.obj_pin(fd, path)
    assert os.path.exists(path)
    assert errno_of(lambda: kb.obj_pin(fd, path)) == errno.EEXIST
    got = kb.obj_get(path)
    try:
        assert kb.map_info(got).id == kb.map_info(fd).id
        assert kb.map_lookup(got, u32(1), 8) == u64(99)
        assert fcntl.fcntl(got, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        kb.close(got)
    readonly = kb.obj_get(path, 1 << 3)  # BPF_F_RDONLY
    try:
        assert errno_of(lambda: kb.map_update(readonly, u32(1), u64(1))) == errno.EPERM
    finally:
        kb.close(readonly)
    assert errno_of(lambda: kb.obj_get(str(bpffs / "missing"))) == errno.ENOENT
    kb.obj_unpin(path)
    assert not os.path.exists(path)
    assert errno_of(lambda: kb.obj_unpin(path)) == errno.ENOENT
    assert kb.map_lookup(fd, u32(1), 8) == u64(99)  # unpinning leaves the map to its fds
    with pytest.raises(ValueError, match="NUL"):
        kb.obj_get(path + "\0x")


@pytest.mark.kernel
def test_map_fd_by_id(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(ARRAY, 4, 4, 1)
    kb.map_update(fd, u32(0), u32(77))
    map_id = kb.map_info(fd).id
    other = kb.map_fd_by_id(map_id)
    try:
        assert other != fd
        assert kb.map_lookup(other, u32(0), 4) == u32(77)
        assert kb.map_info(other).id == map_id
    finally:
        kb.close(other)
    assert errno_of(lambda: kb.map_fd_by_id(0x7FFFFFF0)) == errno.ENOENT


@pytest.mark.kernel
def test_dup_and_close(kb: KernelBackend, make_map: MakeMap) -> None:
    fd = make_map(ARRAY, 4, 4, 1)
    before = open_fd_count()
    copies = [kb.dup(fd) for _ in range(5)]
    assert open_fd_count() == before + 5
    for c in copies:
        assert fcntl.fcntl(c, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert kb.map_info(c).id == kb.map_info(fd).id
        kb.close(c)
    assert open_fd_count() == before
    assert errno_of(lambda: kb.close(copies[0])) == errno.EBADF
    created = [kb.map_create(MapAttrs(map_type=HASH, key_size=4, value_size=4, max_entries=1))
               for _ in range(10)]
    assert open_fd_count() == before + 10
    for c in created:
        kb.close(c)
    assert open_fd_count() == before


# -- BTF ----------------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_btf_load_and_map_with_btf(kb: KernelBackend, make_map: MakeMap) -> None:
    raw = btf.marshal_types([
        btf.Int(1, "unsigned int", 4),
        btf.Int(2, "long long unsigned int", 8),
    ])
    btf_fd = kb.btf_load(raw)
    try:
        fd = make_map(HASH, 4, 8, 4, name="typed", btf_fd=btf_fd, btf_key_type_id=1, btf_value_type_id=2)
    finally:
        kb.close(btf_fd)  # the map holds its own reference to the BTF
    info = kb.map_info(fd)
    assert info.btf_id != 0
    assert (info.btf_key_type_id, info.btf_value_type_id) == (1, 2)
    assert bpftool_map(info.id)["btf_id"] == info.btf_id
    kb.map_update(fd, u32(1), u64(2))
    assert kb.map_lookup(fd, u32(1), 8) == u64(2)


@pytest.mark.kernel
def test_btf_load_rejects_bad_blob_with_log(kb: KernelBackend) -> None:
    raw = bytearray(btf.marshal_types([btf.Int(1, "int", 4, btf.IntEncoding.SIGNED)]))
    # The first type starts after the 24-byte header: name_off, info, size, then the INT's bits.
    raw[24 + 8:24 + 12] = struct.pack("=I", 3)  # size 3: not a size an INT may have
    with pytest.raises(OSError) as info:
        kb.btf_load(bytes(raw))
    assert info.value.errno == errno.EINVAL
    assert "BTF rejected" in str(info.value)
    with pytest.raises(OSError) as info:
        kb.btf_load(b"not btf at all")
    assert info.value.errno == errno.EINVAL


@pytest.mark.kernel
def test_interleaved_maps_and_flags_on_one_thread(kb: KernelBackend, make_map: MakeMap) -> None:
    """The per-thread attrs remember the last map fd and flags they were set to: calls that
    alternate between maps, flags and commands must each reach the map and flags they name."""
    a = make_map(HASH, 4, 8, 16)
    b = make_map(HASH, 4, 8, 16)
    queue = make_map(QUEUE, 0, 8, 4)
    for i in range(8):
        kb.map_update(a, u32(i), u64(100 + i))
        kb.map_update(b, u32(i), u64(200 + i), NOEXIST)
        if i < 4:
            kb.map_update(queue, b"", u64(300 + i))
        assert errno_of(partial(kb.map_update, a, u32(i), u64(0), NOEXIST)) == errno.EEXIST
        assert kb.map_lookup(b, u32(i), 8) == u64(200 + i)
        kb.map_update(a, u32(i), u64(150 + i), EXIST)  # EXIST right after NOEXIST on the same map
        assert kb.map_lookup(a, u32(i), 8) == u64(150 + i)
    assert errno_of(lambda: kb.map_update(b, u32(99), u64(0), EXIST)) == errno.ENOENT
    assert kb.map_lookup_and_delete(a, u32(3), 8) == u64(153)
    assert errno_of(lambda: kb.map_lookup(a, u32(3), 8)) == errno.ENOENT
    assert kb.map_lookup(b, u32(3), 8) == u64(203)  # the other map untouched
    assert kb.map_lookup_and_delete(queue, b"", 8) == u64(300)  # the key-less attrs, then a keyed one
    assert kb.map_lookup(b, u32(7), 8) == u64(207)
    assert errno_of(lambda: kb.map_lookup(a, u32(0), 8, NOEXIST)) == errno.EINVAL  # bad lookup flags
    assert kb.map_lookup(a, u32(0), 8) == u64(150)  # and back to 0 for the next call
