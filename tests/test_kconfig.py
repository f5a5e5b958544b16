"""``.kconfig`` values: parsing a kernel config and encoding each extern as libbpf does."""

from __future__ import annotations

import sys

import pytest

import btf
from ebpfspec import ExternKind, ExternSpec
from loader.errors import NotSupportedError
from loader.kconfig import encode_value, kconfig_map, kernel_version_code, layout, parse_config

TYPES = btf.Spec.from_types(
    [
        btf.Int(1, "_Bool", 1, btf.IntEncoding.BOOL),
        btf.Int(2, "int", 4, btf.IntEncoding.SIGNED),
        btf.Enum(
            3,
            "libbpf_tristate",
            4,
            (btf.EnumValue("TRI_NO", 0), btf.EnumValue("TRI_YES", 1), btf.EnumValue("TRI_MODULE", 2)),
        ),
        btf.Int(4, "char", 1, btf.IntEncoding.CHAR),
        btf.Array(5, "", 4, 2, 8),
        btf.Int(6, "long long unsigned int", 8),
    ]
)


def extern(name: str, type_id: int, weak: bool = False) -> ExternSpec:
    return ExternSpec(name, ExternKind.KCONFIG, TYPES.type_by_id(type_id), weak=weak)


def native(value: int, size: int) -> bytes:
    return value.to_bytes(size, sys.byteorder, signed=value < 0)


CONFIG = parse_config(
    "# comment\nCONFIG_BPF=y\nCONFIG_MOD=m\n# CONFIG_OFF is not set\nCONFIG_HZ=250\n"
    'CONFIG_NAME="hello world"\nCONFIG_ADDR=0x1000\n'
)


def test_parse_config() -> None:
    assert CONFIG == {
        "CONFIG_BPF": "y",
        "CONFIG_MOD": "m",
        "CONFIG_OFF": "n",
        "CONFIG_HZ": "250",
        "CONFIG_NAME": '"hello world"',
        "CONFIG_ADDR": "0x1000",
    }


def test_kernel_version_code() -> None:
    assert kernel_version_code("6.18.44-fc-v769") == 0x06122C
    assert kernel_version_code("5.4.300") == (5 << 16) + (4 << 8) + 255  # patch capped at 255
    assert kernel_version_code("6.1") == 0x060100
    with pytest.raises(NotSupportedError):
        kernel_version_code("not-a-release")


@pytest.mark.parametrize(
    ("name", "type_id", "expected"),
    [
        ("CONFIG_BPF", 1, native(1, 1)),
        ("CONFIG_MOD", 1, native(1, 1)),
        ("CONFIG_OFF", 1, native(0, 1)),
        ("CONFIG_BPF", 3, native(1, 4)),
        ("CONFIG_MOD", 3, native(2, 4)),
        ("CONFIG_OFF", 3, native(0, 4)),
        ("CONFIG_MOD", 4, b"m"),
        ("CONFIG_HZ", 2, native(250, 4)),
        ("CONFIG_ADDR", 6, native(0x1000, 8)),
        ("CONFIG_NAME", 5, b"hello w\0"),  # truncated to leave the NUL
    ],
)
def test_encode_values(name: str, type_id: int, expected: bytes) -> None:
    assert encode_value(extern(name, type_id), CONFIG.get(name)) == expected


def test_missing_options() -> None:
    assert encode_value(extern("CONFIG_NOPE", 2, weak=True), None) == bytes(4)
    with pytest.raises(NotSupportedError, match="CONFIG_NOPE"):
        encode_value(extern("CONFIG_NOPE", 2), None)
    with pytest.raises(NotSupportedError, match="not a number"):
        encode_value(extern("CONFIG_NAME", 2), CONFIG["CONFIG_NAME"])


def test_layout_and_map() -> None:
    externs = [extern("CONFIG_BPF", 1), extern("LINUX_KERNEL_VERSION", 2), extern("CONFIG_ADDR", 6)]
    offsets, size = layout(externs)
    assert offsets == {"CONFIG_BPF": 0, "LINUX_KERNEL_VERSION": 4, "CONFIG_ADDR": 8}
    assert size == 16
    spec, offsets_again = kconfig_map(externs, CONFIG, release="6.18.1")
    assert offsets_again == offsets
    assert spec.name == ".kconfig" and spec.freeze and spec.value_size == 16
    value = spec.contents[0].value
    assert isinstance(value, bytes)
    assert value[0:1] == b"\x01" and value[4:8] == native(0x061201, 4) and value[8:16] == native(0x1000, 8)
