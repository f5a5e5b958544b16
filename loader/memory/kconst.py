"""Kernel constants the model follows (Linux 6.18; sizes as on x86-64 with 4 KiB pages).

Each is named after the kernel's own constant so the checks that use them read like
the kernel code they model.
"""

from __future__ import annotations

import resource

from ebpfspec.enums import MapFlags

#: ``PAGE_SIZE`` of this machine (ring buffers must be a power-of-2 multiple of it).
PAGE_SIZE = resource.getpagesize()
#: ``KMALLOC_MAX_SIZE``: ``1 << (PAGE_SHIFT + MAX_PAGE_ORDER)`` with ``MAX_PAGE_ORDER == 10``.
KMALLOC_MAX_SIZE = PAGE_SIZE << 10
#: ``sizeof(struct htab_elem)``: a hash map refuses ``key_size + value_size`` at or above
#: ``KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE`` (E2BIG).
HTAB_ELEM_SIZE = 48
#: ``sizeof(struct bucket)``: ``n_buckets`` above ``U32_MAX / 16`` is E2BIG.
HTAB_BUCKET_SIZE = 16
#: ``PCPU_MIN_UNIT_SIZE``: largest per-CPU slot (``round_up(value_size, 8)``).
PCPU_MIN_UNIT_SIZE = 32 << 10
#: Largest ``max_entries`` of a hash map (``1UL << 31``).
HTAB_MAX_ENTRIES = 1 << 31
U32_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF
#: ``BPF_OBJ_NAME_LEN``: map names are at most 15 bytes plus the NUL.
BPF_OBJ_NAME_LEN = 16
#: ``BTF_MAX_SIZE``: largest blob ``BPF_BTF_LOAD`` takes (E2BIG above).
BTF_MAX_SIZE = 16 * 1024 * 1024
#: ``LOCAL_FREE_TARGET`` / ``LOCAL_NR_SCANS`` of the common LRU (``kernel/bpf/bpf_lru_list.h``).
LOCAL_FREE_TARGET = 128
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
#: ``PERCPU_FREE_TARGET`` / ``PERCPU_NR_SCANS`` of the per-CPU LRU (``BPF_F_NO_COMMON_LRU``).
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET
#: Bloom filter: the low 4 bits of ``map_extra`` are the number of hash functions (0: 5).
BLOOM_DEFAULT_HASHES = 5

# -- map_flags bits and masks (plain ints: ``~`` of an IntFlag would drop undefined bits) ----------

BPF_F_NO_PREALLOC = int(MapFlags.NO_PREALLOC)
BPF_F_NO_COMMON_LRU = int(MapFlags.NO_COMMON_LRU)
BPF_F_NUMA_NODE = int(MapFlags.NUMA_NODE)
BPF_F_RDONLY = int(MapFlags.RDONLY)
BPF_F_WRONLY = int(MapFlags.WRONLY)
BPF_F_ZERO_SEED = int(MapFlags.ZERO_SEED)
BPF_F_RDONLY_PROG = int(MapFlags.RDONLY_PROG)
BPF_F_WRONLY_PROG = int(MapFlags.WRONLY_PROG)
BPF_F_MMAPABLE = int(MapFlags.MMAPABLE)
BPF_F_PRESERVE_ELEMS = int(MapFlags.PRESERVE_ELEMS)
BPF_F_INNER_MAP = int(MapFlags.INNER_MAP)
BPF_F_PATH_FD = int(MapFlags.PATH_FD)
BPF_F_TOKEN_FD = int(MapFlags.TOKEN_FD)

BPF_F_ACCESS_MASK = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG
HTAB_CREATE_FLAG_MASK = (BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK
                         | BPF_F_ZERO_SEED)
ARRAY_CREATE_FLAG_MASK = (BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS
                          | BPF_F_INNER_MAP)
QUEUE_STACK_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK
BLOOM_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | BPF_F_ACCESS_MASK
RINGBUF_CREATE_FLAG_MASK = BPF_F_NUMA_NODE
#: ``file_flags`` ``BPF_OBJ_GET`` accepts.
BPF_OBJ_FLAG_MASK = BPF_F_RDONLY | BPF_F_WRONLY


def flags_access_ok(flags: int) -> bool:
    """``bpf_map_flags_access_ok``: not both ``BPF_F_RDONLY_PROG`` and ``BPF_F_WRONLY_PROG``."""
    both = BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG
    return flags & both != both


def roundup_pow_of_two(n: int) -> int:
    """``roundup_pow_of_two`` for ``n >= 1``."""
    return 1 << (n - 1).bit_length()


def round_up8(n: int) -> int:
    """``round_up(n, 8)``."""
    return (n + 7) & ~7
