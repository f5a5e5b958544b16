"""``union bpf_attr`` and ``struct bpf_map_info`` as ctypes structures.

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
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    BTF_LOAD = 18
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27


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


MAP_CREATE_SIZE: Final = ctypes.sizeof(MapCreateAttr)
MAP_ELEM_SIZE: Final = ctypes.sizeof(MapElemAttr)
MAP_BATCH_SIZE: Final = ctypes.sizeof(MapBatchAttr)
OBJ_SIZE: Final = ctypes.sizeof(ObjAttr)
INFO_SIZE: Final = ctypes.sizeof(InfoAttr)
GET_ID_SIZE: Final = ctypes.sizeof(GetIdAttr)
BTF_LOAD_SIZE: Final = ctypes.sizeof(BtfLoadAttr)
MAP_INFO_SIZE: Final = ctypes.sizeof(BpfMapInfo)
