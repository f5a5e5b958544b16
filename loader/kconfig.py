"""``.kconfig`` externs: the kernel's configuration, as libbpf provides it to BPF programs.

A program declares ``extern int CONFIG_HZ __kconfig;`` (or ``LINUX_KERNEL_VERSION``); the
loader lays every such variable out in one read-only array map called ``.kconfig``, fills
it from the running kernel's configuration (``/proc/config.gz`` or
``/boot/config-$(uname -r)``) and relocates the programs' loads to it, exactly like a data
section.

Values follow libbpf: ``bool`` is 1 for ``y``/``m``; ``enum libbpf_tristate`` is
``y``=1, ``m``=2, ``n``=0; a ``char`` gets the letter; integers are parsed (decimal or
hex); ``char[N]`` gets the quoted string. A ``__weak`` extern missing from the
configuration is 0; a missing non-weak one is an error naming it.
"""

from __future__ import annotations

import gzip
import platform
import re
import sys
from collections.abc import Mapping, Sequence

import btf
from ebpfspec import ExternKind, ExternSpec, MapKV, MapSpec, MapType
from loader.errors import NotSupportedError

#: Name of the map holding the values.
KCONFIG_MAP = ".kconfig"
#: ``BPF_F_RDONLY_PROG``: programs only read the values.
_RDONLY_PROG = 1 << 7
_CONFIG_LINE = re.compile(r"^(CONFIG_\w+)=(.*)$")
_NOT_SET = re.compile(r"^# (CONFIG_\w+) is not set$")


def kernel_version_code(release: str | None = None) -> int:
    """``KERNEL_VERSION(a, b, c)`` of ``release`` (default: ``uname -r``), patch capped at 255."""
    numbers = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release or platform.release())
    if numbers is None:
        raise NotSupportedError(f"cannot parse the kernel release {release!r}")
    major, minor, patch = (int(n) if n else 0 for n in numbers.groups())
    return (major << 16) + (minor << 8) + min(patch, 255)


def read_kernel_config(paths: Sequence[str] | None = None) -> dict[str, str]:
    """``CONFIG_X`` → its value text (``y``, ``m``, ``"text"``, ``1000``); ``n`` for unset options."""
    candidates = paths or ("/proc/config.gz", f"/boot/config-{platform.release()}")
    for path in candidates:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                return parse_config(f.read())
        except OSError:
            continue
    raise NotSupportedError(f"the kernel's configuration is not readable (tried {', '.join(candidates)})")


def parse_config(text: str) -> dict[str, str]:
    """The options of a kernel ``.config`` text."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        match = _CONFIG_LINE.match(line)
        if match:
            options[match.group(1)] = match.group(2)
            continue
        unset = _NOT_SET.match(line)
        if unset:
            options[unset.group(1)] = "n"
    return options


def kconfig_externs(externs: Mapping[str, ExternSpec]) -> list[ExternSpec]:
    """The ``.kconfig`` externs, in declaration order."""
    return [x for x in externs.values() if x.kind == ExternKind.KCONFIG]


def layout(externs: Sequence[ExternSpec]) -> tuple[dict[str, int], int]:
    """Each extern's offset in the ``.kconfig`` value (natural alignment) and the total size."""
    offsets: dict[str, int] = {}
    position = 0
    for x in externs:
        t = _value_type(x)
        align = btf.alignof(t)
        position = (position + align - 1) // align * align
        offsets[x.name] = position
        position += btf.sizeof(t)
    return offsets, max(position, 1)


def kconfig_map(externs: Sequence[ExternSpec], config: Mapping[str, str] | None = None,
                release: str | None = None) -> tuple[MapSpec, dict[str, int]]:
    """The ``.kconfig`` map spec (filled and frozen) and each extern's offset in it."""
    offsets, size = layout(externs)
    if config is None and any(x.name.startswith("CONFIG_") for x in externs):
        config = read_kernel_config()
    value = bytearray(size)
    for x in externs:
        encoded = encode_value(x, (config or {}).get(x.name), release)
        value[offsets[x.name]:offsets[x.name] + len(encoded)] = encoded
    spec = MapSpec(name=KCONFIG_MAP, type=MapType.ARRAY, key_size=4, value_size=size, max_entries=1,
                   flags=_RDONLY_PROG, contents=(MapKV(b"\0\0\0\0", bytes(value)),), freeze=True)
    return spec, offsets


def encode_value(extern: ExternSpec, text: str | None, release: str | None = None) -> bytes:
    """The bytes of one extern, from its configuration ``text`` (None: not in the configuration)."""
    t = btf.skip_qualifiers_and_typedefs(_value_type(extern))
    size = btf.sizeof(t)
    if extern.name == "LINUX_KERNEL_VERSION":
        return _int_bytes(kernel_version_code(release), size, extern.name)
    if text is None:
        if extern.weak:
            return bytes(size)
        raise NotSupportedError(f".kconfig extern {extern.name!r} is not in the kernel's configuration")
    if isinstance(t, btf.Enum):  # enum libbpf_tristate
        tristate = {"y": 1, "m": 2, "n": 0}.get(text)
        if tristate is None:
            raise NotSupportedError(f".kconfig extern {extern.name!r}: {text!r} is not y, m or n")
        return _int_bytes(tristate, size, extern.name)
    if isinstance(t, btf.Int) and t.encoding & btf.IntEncoding.BOOL:
        if text not in ("y", "m", "n"):
            raise NotSupportedError(f".kconfig extern {extern.name!r}: {text!r} is not a boolean")
        return _int_bytes(int(text in ("y", "m")), size, extern.name)
    if isinstance(t, btf.Int) and size == 1 and text in ("y", "m", "n"):
        return text.encode()
    if isinstance(t, btf.Array):
        if not text.startswith('"'):
            raise NotSupportedError(f".kconfig extern {extern.name!r}: {text!r} is not a string")
        raw = text.strip('"').encode()[: size - 1]
        return raw + bytes(size - len(raw))
    if isinstance(t, btf.Int):
        if text in ("y", "m", "n"):
            return _int_bytes({"y": 1, "m": 2, "n": 0}[text], size, extern.name)
        try:
            number = int(text, 0)
        except ValueError:
            raise NotSupportedError(f".kconfig extern {extern.name!r}: {text!r} is not a number") from None
        return _int_bytes(number, size, extern.name)
    raise NotSupportedError(f".kconfig extern {extern.name!r} has an unsupported type {t}")


def _value_type(extern: ExternSpec) -> btf.Type:
    t = extern.type
    if isinstance(t, btf.Var):
        return t.type
    if t is None:
        raise NotSupportedError(f".kconfig extern {extern.name!r} has no BTF type")
    return t


def _int_bytes(value: int, size: int, name: str) -> bytes:
    try:
        return value.to_bytes(size, "little" if sys.byteorder == "little" else "big", signed=value < 0)
    except OverflowError:
        raise NotSupportedError(f".kconfig extern {name!r}: {value} does not fit {size} bytes") from None
