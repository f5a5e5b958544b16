"""The number of *possible* CPUs: how many slots a per-CPU map value has.

Not ``os.cpu_count()``: the kernel sizes per-CPU values by ``num_possible_cpus()``, the
CPUs listed in ``/sys/devices/system/cpu/possible`` (which may include CPUs that are
offline or not yet plugged in).
"""

from __future__ import annotations

import functools

POSSIBLE_CPUS_FILE = "/sys/devices/system/cpu/possible"


def parse_cpu_list(text: str) -> list[int]:
    """The CPUs of a kernel CPU list such as ``"0-3,8-11"`` or ``"0"``, in order.

    ``ValueError`` for anything that is not such a list.
    """
    cpus: list[int] = []
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty CPU list")
    for part in stripped.split(","):
        first, sep, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise ValueError(f"invalid CPU list {text.strip()!r}: bad range {part!r}") from None
        if low < 0 or high < low or high >= 1 << 16:
            raise ValueError(f"invalid CPU list {text.strip()!r}: bad range {part!r}")
        cpus.extend(range(low, high + 1))
    if len(set(cpus)) != len(cpus):
        raise ValueError(f"invalid CPU list {text.strip()!r}: overlapping ranges")
    return cpus


@functools.cache
def possible_cpus() -> int:
    """How many CPUs the running kernel considers possible (cached)."""
    with open(POSSIBLE_CPUS_FILE, encoding="ascii") as f:
        return len(parse_cpu_list(f.read()))


def round_up8(size: int) -> int:
    """``round_up(size, 8)``: the kernel's slot size for one CPU's value in a per-CPU map."""
    return (size + 7) & ~7
