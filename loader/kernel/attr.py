"""``union bpf_attr`` parts and ``struct bpf_{map,prog,btf,link}_info`` as ctypes structures.

One structure per part of the union this backend uses, laid out as in the kernel's
``include/uapi/linux/bpf.h``. Every ``__aligned_u64`` sits at an offset that is a
multiple of 8 through explicit padding fields (``_pad*``), so the layout is the same
on 32-bit architectures, where a plain ``c_uint64`` would only be 4-aligned. Every
structure's size is a multiple of 8.

The kernel accepts an attr shorter than its own union (it reads the missing tail as
zero), so each command is called with the size of its own structure. It rejects
non-zero bytes after the last field a command knows, which is why a structure that is
reused for several commands must have the fields one command does not use cleared.

Pointers are ``__aligned_u64`` fields holding addresses (``ctypes.addressof``).
"""

from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Final

u32 = ctypes.c_uint32
s32 = ctypes.c_int32
u64 = ctypes.c_uint64

#: Length of the kernel's object names (``BPF_OBJ_NAME_LEN``), NUL included.
OBJ_NAME_LEN: Final = 16


class Cmd(IntEnum):
    """``enum bpf_cmd``: the commands this backend issues (kernel values)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    ITER_CREATE = 33
    LINK_DETACH = 34


class MapCreateAttr(ctypes.Structure):
    """``BPF_MAP_CREATE``: the union's first anonymous struct (80 bytes up to ``map_token_fd``).

    ``inner_map_fd`` and ``btf_fd`` are ``__u32`` in the kernel; 0 means none (when the
    BTF type ids are 0, ``btf_fd`` is ignored). ``value_type_btf_obj_fd`` and
    ``map_token_fd`` are only read with ``BPF_F_VTYPE_BTF_OBJ_FD`` / ``BPF_F_TOKEN_FD``.
    """

    _fields_ = (
        ("map_type", u32),                   # 0
        ("key_size", u32),                   # 4
        ("value_size", u32),                 # 8
        ("max_entries", u32),                # 12
        ("map_flags", u32),                  # 16
        ("inner_map_fd", u32),               # 20
        ("numa_node", u32),                  # 24
        ("map_name", ctypes.c_char * OBJ_NAME_LEN),  # 28
        ("map_ifindex", u32),                # 44
        ("btf_fd", u32),                     # 48
        ("btf_key_type_id", u32),            # 52
        ("btf_value_type_id", u32),          # 56
        ("btf_vmlinux_value_type_id", u32),  # 60
        ("map_extra", u64),                  # 64
        ("value_type_btf_obj_fd", s32),      # 72
        ("map_token_fd", s32),               # 76
    )


class _ValueOrNextKey(ctypes.Union):
    _fields_ = (("value", u64), ("next_key", u64))


class MapElemAttr(ctypes.Structure):
    """``BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM``, ``GET_NEXT_KEY``, ``LOOKUP_AND_DELETE_ELEM``, ``FREEZE``.

    ``value`` and ``next_key`` share offset 16. ``DELETE_ELEM`` takes no ``value`` or
    ``flags`` and ``GET_NEXT_KEY`` no ``flags``: they must be zero there.
    """

    _anonymous_ = ("_u",)
    _fields_ = (
        ("map_fd", u32),           # 0
        ("_pad0", u32),            # 4
        ("key", u64),              # 8
        ("_u", _ValueOrNextKey),   # 16: value / next_key
        ("flags", u64),            # 24
    )


class MapBatchAttr(ctypes.Structure):
    """``BPF_MAP_*_BATCH``: the union's ``batch`` struct.

    ``count`` is in/out: the number of entries the buffers hold on the way in, the
    number processed on the way out (written back on success, on ``ENOENT`` and on most
    errors after the first element).
    """

    _fields_ = (
        ("in_batch", u64),     # 0: start after this cursor (NULL: the beginning)
        ("out_batch", u64),    # 8: where the next cursor goes
        ("keys", u64),         # 16
        ("values", u64),       # 24
        ("count", u32),        # 32
        ("map_fd", u32),       # 36
        ("elem_flags", u64),   # 40
        ("flags", u64),        # 48
    )


class ObjAttr(ctypes.Structure):
    """``BPF_OBJ_PIN`` / ``BPF_OBJ_GET``: ``pathname`` is a NUL-terminated path on bpffs.

    ``path_fd`` (a directory fd the path is relative to) is read only with
    ``BPF_F_PATH_FD`` in ``file_flags``.
    """

    _fields_ = (
        ("pathname", u64),    # 0
        ("bpf_fd", u32),      # 8
        ("file_flags", u32),  # 12
        ("path_fd", s32),     # 16
        ("_pad0", u32),       # 20
    )


class InfoAttr(ctypes.Structure):
    """``BPF_OBJ_GET_INFO_BY_FD``: the kernel writes ``min(info_len, its size)`` bytes at ``info``."""

    _fields_ = (
        ("bpf_fd", u32),    # 0
        ("info_len", u32),  # 4: in/out
        ("info", u64),      # 8
    )


class GetIdAttr(ctypes.Structure):
    """``BPF_*_GET_FD_BY_ID`` / ``BPF_*_GET_NEXT_ID``.

    The first field is the kernel's union of ``start_id``, ``prog_id``, ``map_id``,
    ``btf_id`` and ``link_id``; it is named ``id`` here.
    """

    _fields_ = (
        ("id", u32),          # 0
        ("next_id", u32),     # 4
        ("open_flags", u32),  # 8
        ("fd_by_id_token_fd", s32),  # 12: read only with BPF_F_TOKEN_FD in open_flags
    )


class BtfLoadAttr(ctypes.Structure):
    """``BPF_BTF_LOAD``. ``btf_log_true_size`` is written back by the kernel (6.4+)."""

    _fields_ = (
        ("btf", u64),                 # 0
        ("btf_log_buf", u64),         # 8
        ("btf_size", u32),            # 16
        ("btf_log_size", u32),        # 20
        ("btf_log_level", u32),       # 24
        ("btf_log_true_size", u32),   # 28
        ("btf_flags", u32),           # 32
        ("btf_token_fd", s32),        # 36
    )


class BpfMapInfo(ctypes.Structure):
    """``struct bpf_map_info`` up to ``map_extra`` (88 bytes)."""

    _fields_ = (
        ("type", u32),                       # 0
        ("id", u32),                         # 4
        ("key_size", u32),                   # 8
        ("value_size", u32),                 # 12
        ("max_entries", u32),                # 16
        ("map_flags", u32),                  # 20
        ("name", ctypes.c_char * OBJ_NAME_LEN),  # 24
        ("ifindex", u32),                    # 40
        ("btf_vmlinux_value_type_id", u32),  # 44
        ("netns_dev", u64),                  # 48
        ("netns_ino", u64),                  # 56
        ("btf_id", u32),                     # 64
        ("btf_key_type_id", u32),            # 68
        ("btf_value_type_id", u32),          # 72
        ("btf_vmlinux_id", u32),             # 76
        ("map_extra", u64),                  # 80
    )



class ProgLoadAttr(ctypes.Structure):
    """``BPF_PROG_LOAD``: the union's program-load struct (168 bytes up to ``keyring_id``, 6.18).

    Descriptor fields (``prog_btf_fd``, ``attach_prog_fd``/``attach_btf_obj_fd``) are 0
    when absent. ``log_true_size`` is written back by 6.4+ kernels: the log size the
    verifier needed. ``fd_array_cnt`` (6.14+), ``signature``, ``signature_size`` and
    ``keyring_id`` (6.18+) are left at zero, which older kernels accept.
    """

    _fields_ = (
        ("prog_type", u32),              # 0
        ("insn_cnt", u32),               # 4
        ("insns", u64),                  # 8
        ("license", u64),                # 16
        ("log_level", u32),              # 24
        ("log_size", u32),               # 28
        ("log_buf", u64),                # 32
        ("kern_version", u32),           # 40
        ("prog_flags", u32),             # 44
        ("prog_name", ctypes.c_char * OBJ_NAME_LEN),  # 48
        ("prog_ifindex", u32),           # 64
        ("expected_attach_type", u32),   # 68
        ("prog_btf_fd", u32),            # 72
        ("func_info_rec_size", u32),     # 76
        ("func_info", u64),              # 80
        ("func_info_cnt", u32),          # 88
        ("line_info_rec_size", u32),     # 92
        ("line_info", u64),              # 96
        ("line_info_cnt", u32),          # 104
        ("attach_btf_id", u32),          # 108
        ("attach_prog_fd", u32),         # 112: union with attach_btf_obj_fd
        ("core_relo_cnt", u32),          # 116
        ("fd_array", u64),               # 120
        ("core_relos", u64),             # 128
        ("core_relo_rec_size", u32),     # 136
        ("log_true_size", u32),          # 140: out (6.4+)
        ("prog_token_fd", s32),          # 144
        ("fd_array_cnt", u32),           # 148
        ("signature", u64),              # 152
        ("signature_size", u32),         # 160
        ("keyring_id", s32),             # 164
    )


class TestRunAttr(ctypes.Structure):
    """``BPF_PROG_TEST_RUN``: the union's ``test`` struct.

    ``retval``, ``data_size_out``, ``ctx_size_out`` and ``duration`` (mean ns per run) are
    written back. A ``data_size_out`` of 0 with a non-NULL ``data_out`` makes the kernel
    copy the whole output unchecked, so an output buffer always comes with its size.
    """

    __test__ = False  # not a pytest test class

    _fields_ = (
        ("prog_fd", u32),        # 0
        ("retval", u32),         # 4: out
        ("data_size_in", u32),   # 8
        ("data_size_out", u32),  # 12: in/out
        ("data_in", u64),        # 16
        ("data_out", u64),       # 24
        ("repeat", u32),         # 32
        ("duration", u32),       # 36: out
        ("ctx_size_in", u32),    # 40
        ("ctx_size_out", u32),   # 44: in/out
        ("ctx_in", u64),         # 48
        ("ctx_out", u64),        # 56
        ("flags", u32),          # 64
        ("cpu", u32),            # 68
        ("batch_size", u32),     # 72
        ("_pad0", u32),          # 76
    )


class ProgAttachAttr(ctypes.Structure):
    """``BPF_PROG_ATTACH`` / ``BPF_PROG_DETACH`` (cgroups, sockmaps, flow dissector, tcx, ...).

    ``target_fd`` shares its offset with ``target_ifindex`` and ``relative_fd`` with
    ``relative_id``; ``relative_fd`` and ``expected_revision`` are read only by the mprog
    attach points (tcx, netkit, 6.6+) and with ``BPF_F_BEFORE``/``BPF_F_AFTER``.
    """

    _fields_ = (
        ("target_fd", u32),          # 0
        ("attach_bpf_fd", u32),      # 4
        ("attach_type", u32),        # 8
        ("attach_flags", u32),       # 12
        ("replace_bpf_fd", u32),     # 16
        ("relative_fd", u32),        # 20
        ("expected_revision", u64),  # 24
    )


class RawTracepointAttr(ctypes.Structure):
    """``BPF_RAW_TRACEPOINT_OPEN``: ``name`` (NULL for BTF-typed programs) and ``cookie`` (6.10+)."""

    _fields_ = (
        ("name", u64),     # 0
        ("prog_fd", u32),  # 8
        ("_pad0", u32),    # 12
        ("cookie", u64),   # 16
    )


class _LinkCreateTarget(ctypes.Union):
    _fields_ = (("target_btf_id", u32), ("perf_event_cookie", u64), ("iter_info", u64))


class _LinkCreateTail(ctypes.Union):
    _fields_ = (("tracing_cookie", u64), ("iter_info_len", u32))


class LinkCreateAttr(ctypes.Structure):
    """``BPF_LINK_CREATE``: the common head and the first 16 bytes of its per-type union.

    The union at 16 is read according to ``attach_type`` (and the program's type):
    ``target_btf_id`` (u32, freplace and tracing programs), ``perf_event.bpf_cookie``
    (u64 at 16, here ``perf_event_cookie``, for ``BPF_PERF_EVENT``), ``tracing.cookie``
    (u64 at 24, here ``tracing_cookie``, fentry/fexit/fmod_ret/lsm, 6.8+) or, for
    ``BPF_TRACE_ITER``, ``iter_info`` (a pointer to a ``union bpf_iter_link_info``, u64
    at 16) and ``iter_info_len`` (u32 at 24; 0 exactly when ``iter_info`` is NULL). The
    larger per-type structs (kprobe_multi, uprobe_multi, tcx, ...) are not used by this
    backend.
    """

    _anonymous_ = ("_u", "_t")
    _fields_ = (
        ("prog_fd", u32),            # 0: union with map_fd
        ("target_fd", u32),          # 4: union with target_ifindex
        ("attach_type", u32),        # 8
        ("flags", u32),              # 12
        ("_u", _LinkCreateTarget),   # 16: target_btf_id / perf_event.bpf_cookie / iter_info
        ("_t", _LinkCreateTail),     # 24: tracing.cookie / iter_info_len
    )


class IterCreateAttr(ctypes.Structure):
    """``BPF_ITER_CREATE``: a new seq_file descriptor that runs the iterator link ``link_fd``.

    ``flags`` must be 0.
    """

    _fields_ = (
        ("link_fd", u32),  # 0
        ("flags", u32),    # 4
    )


class LinkDetachAttr(ctypes.Structure):
    """``BPF_LINK_DETACH``."""

    _fields_ = (
        ("link_fd", u32),  # 0
        ("_pad0", u32),    # 4
    )


class BpfProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` up to ``attach_btf_id`` (232 bytes).

    Pointer fields (``map_ids``, ``jited_prog_insns``, ...) are outputs the kernel fills
    only when given a buffer and its length (``nr_map_ids``, ...); left at zero, it only
    reports the lengths.
    """

    _fields_ = (
        ("type", u32),                      # 0
        ("id", u32),                        # 4
        ("tag", ctypes.c_uint8 * 8),        # 8
        ("jited_prog_len", u32),            # 16
        ("xlated_prog_len", u32),           # 20
        ("jited_prog_insns", u64),          # 24
        ("xlated_prog_insns", u64),         # 32
        ("load_time", u64),                 # 40
        ("created_by_uid", u32),            # 48
        ("nr_map_ids", u32),                # 52
        ("map_ids", u64),                   # 56
        ("name", ctypes.c_char * OBJ_NAME_LEN),  # 64
        ("ifindex", u32),                   # 80
        ("gpl_compatible", u32),            # 84: bit 0
        ("netns_dev", u64),                 # 88
        ("netns_ino", u64),                 # 96
        ("nr_jited_ksyms", u32),            # 104
        ("nr_jited_func_lens", u32),        # 108
        ("jited_ksyms", u64),               # 112
        ("jited_func_lens", u64),           # 120
        ("btf_id", u32),                    # 128
        ("func_info_rec_size", u32),        # 132
        ("func_info", u64),                 # 136
        ("nr_func_info", u32),              # 144
        ("nr_line_info", u32),              # 148
        ("line_info", u64),                 # 152
        ("jited_line_info", u64),           # 160
        ("nr_jited_line_info", u32),        # 168
        ("line_info_rec_size", u32),        # 172
        ("jited_line_info_rec_size", u32),  # 176
        ("nr_prog_tags", u32),              # 180
        ("prog_tags", u64),                 # 184
        ("run_time_ns", u64),               # 192
        ("run_cnt", u64),                   # 200
        ("recursion_misses", u64),          # 208
        ("verified_insns", u32),            # 216
        ("attach_btf_obj_id", u32),         # 220
        ("attach_btf_id", u32),             # 224
        ("_pad0", u32),                     # 228
    )


class BpfBtfInfo(ctypes.Structure):
    """``struct bpf_btf_info`` (32 bytes): ``BPF_OBJ_GET_INFO_BY_FD`` for a BTF object.

    The kernel copies ``min(btf_size, its size)`` bytes of the raw blob to ``btf`` (and the
    name to ``name``, at most ``name_len`` bytes) and writes back the real ``btf_size``,
    ``name_len``, ``id`` and ``kernel_btf``.
    """

    _fields_ = (
        ("btf", u64),         # 0
        ("btf_size", u32),    # 8: in/out
        ("id", u32),          # 12
        ("name", u64),        # 16
        ("name_len", u32),    # 24: in/out
        ("kernel_btf", u32),  # 28
    )


class BpfLinkInfo(ctypes.Structure):
    """``struct bpf_link_info`` (64 bytes): the head (type, id, prog_id); the per-type union as raw bytes."""

    _fields_ = (
        ("type", u32),     # 0
        ("id", u32),       # 4
        ("prog_id", u32),  # 8
        ("_pad0", u32),    # 12
        ("data", ctypes.c_uint8 * 48),  # 16: the per-link-type union
    )


MAP_CREATE_SIZE: Final = ctypes.sizeof(MapCreateAttr)
MAP_ELEM_SIZE: Final = ctypes.sizeof(MapElemAttr)
MAP_BATCH_SIZE: Final = ctypes.sizeof(MapBatchAttr)
OBJ_SIZE: Final = ctypes.sizeof(ObjAttr)
INFO_SIZE: Final = ctypes.sizeof(InfoAttr)
GET_ID_SIZE: Final = ctypes.sizeof(GetIdAttr)
BTF_LOAD_SIZE: Final = ctypes.sizeof(BtfLoadAttr)
MAP_INFO_SIZE: Final = ctypes.sizeof(BpfMapInfo)
PROG_LOAD_SIZE: Final = ctypes.sizeof(ProgLoadAttr)
TEST_RUN_SIZE: Final = ctypes.sizeof(TestRunAttr)
PROG_ATTACH_SIZE: Final = ctypes.sizeof(ProgAttachAttr)
RAW_TRACEPOINT_SIZE: Final = ctypes.sizeof(RawTracepointAttr)
LINK_CREATE_SIZE: Final = ctypes.sizeof(LinkCreateAttr)
LINK_DETACH_SIZE: Final = ctypes.sizeof(LinkDetachAttr)
ITER_CREATE_SIZE: Final = ctypes.sizeof(IterCreateAttr)
BTF_INFO_SIZE: Final = ctypes.sizeof(BpfBtfInfo)
PROG_INFO_SIZE: Final = ctypes.sizeof(BpfProgInfo)
LINK_INFO_SIZE: Final = ctypes.sizeof(BpfLinkInfo)
