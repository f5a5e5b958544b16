"""Pin paths: validation shared by ``Map.pin`` and ``load_collection``'s pinning."""

from __future__ import annotations


def check_pin_path(path: str) -> None:
    """Raise ``ValueError`` for paths no bpffs pin can have (empty, NUL bytes)."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"invalid pin path {path!r}")
    if "\0" in path:
        raise ValueError(f"pin path {path!r} contains a NUL byte")
