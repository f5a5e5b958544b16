"""Bob Jenkins' ``lookup3`` hash as the kernel spells it (``include/linux/jhash.h``).

The kernel hashes a hash-map key with ``jhash2`` over its 32-bit words when the key
size is a multiple of 4 and with ``jhash`` over its bytes otherwise (``htab_map_hash``);
the bloom filter does the same for values. Words are read in the machine's byte order,
as the kernel reads them; the byte-wise tail is always assembled little-end first.

With ``BPF_F_ZERO_SEED`` the seed is 0, so the bucket a key lands in (and therefore the
order ``BPF_MAP_GET_NEXT_KEY`` walks a hash map in) is the kernel's exactly.
"""

from __future__ import annotations

import struct
import sys

__all__ = ["JHASH_INITVAL", "htab_hash", "jhash", "jhash2"]

#: The kernel's ``JHASH_INITVAL``.
JHASH_INITVAL = 0xDEADBEEF

_M = 0xFFFFFFFF
_NATIVE = "<" if sys.byteorder == "little" else ">"
_WORDS: dict[int, struct.Struct] = {}


def _words(data: bytes) -> tuple[int, ...]:
    """``data`` (a multiple of 4 bytes long) as native-endian u32 words."""
    n = len(data) >> 2
    s = _WORDS.get(n)
    if s is None:
        s = _WORDS.setdefault(n, struct.Struct(f"{_NATIVE}{n}I"))
    return s.unpack(data)


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """``__jhash_mix``."""
    a = (a - c) & _M
    a ^= ((c << 4) | (c >> 28)) & _M
    c = (c + b) & _M
    b = (b - a) & _M
    b ^= ((a << 6) | (a >> 26)) & _M
    a = (a + c) & _M
    c = (c - b) & _M
    c ^= ((b << 8) | (b >> 24)) & _M
    b = (b + a) & _M
    a = (a - c) & _M
    a ^= ((c << 16) | (c >> 16)) & _M
    c = (c + b) & _M
    b = (b - a) & _M
    b ^= ((a << 19) | (a >> 13)) & _M
    a = (a + c) & _M
    c = (c - b) & _M
    c ^= ((b << 4) | (b >> 28)) & _M
    b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    """``__jhash_final``; returns the new ``c`` (the hash)."""
    c ^= b
    c = (c - (((b << 14) | (b >> 18)) & _M)) & _M
    a ^= c
    a = (a - (((c << 11) | (c >> 21)) & _M)) & _M
    b ^= a
    b = (b - (((a << 25) | (a >> 7)) & _M)) & _M
    c ^= b
    c = (c - (((b << 16) | (b >> 16)) & _M)) & _M
    a ^= c
    a = (a - (((c << 4) | (c >> 28)) & _M)) & _M
    b ^= a
    b = (b - (((a << 14) | (a >> 18)) & _M)) & _M
    c ^= b
    return (c - (((b << 24) | (b >> 8)) & _M)) & _M


def jhash2(words: tuple[int, ...], initval: int) -> int:
    """``jhash2(k, length, initval)`` over u32 ``words``."""
    length = len(words)
    a = b = c = (JHASH_INITVAL + (length << 2) + initval) & _M
    i = 0
    while length > 3:
        a = (a + words[i]) & _M
        b = (b + words[i + 1]) & _M
        c = (c + words[i + 2]) & _M
        a, b, c = _mix(a, b, c)
        length -= 3
        i += 3
    if length == 0:
        return c
    if length == 3:
        c = (c + words[i + 2]) & _M
    if length >= 2:
        b = (b + words[i + 1]) & _M
    a = (a + words[i]) & _M
    return _final(a, b, c)


def jhash(data: bytes, initval: int) -> int:
    """``jhash(key, length, initval)`` over the bytes of ``data``."""
    length = len(data)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    pos = 0
    while length > 12:
        wa, wb, wc = _words(data[pos:pos + 12])
        a = (a + wa) & _M
        b = (b + wb) & _M
        c = (c + wc) & _M
        a, b, c = _mix(a, b, c)
        length -= 12
        pos += 12
    if length == 0:
        return c
    tail = data[pos:].ljust(12, b"\0")  # the kernel's switch adds the missing bytes as zeros
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return _final(a, b, c)


def htab_hash(key: bytes, seed: int) -> int:
    """``htab_map_hash``: ``jhash2`` when the length is a multiple of 4, else ``jhash``."""
    if len(key) & 3 == 0:
        return jhash2(_words(key), seed)
    return jhash(key, seed)
