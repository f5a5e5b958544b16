"""The eleven BPF registers."""

from __future__ import annotations

import enum

__all__ = ["Register"]


class Register(enum.IntEnum):
    """A BPF register: ``R0`` (return value), ``R1``-``R5`` (arguments, clobbered by calls),
    ``R6``-``R9`` (callee-saved) and ``R10`` (read-only frame pointer; alias ``RFP``).

    ``str()`` gives the 64-bit name as disassembly prints it (``"r1"``); :attr:`w` the
    name of the lower 32 bits (``"w1"``).
    """

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10
    RFP = 10

    def __str__(self) -> str:
        return f"r{self.value}"

    @property
    def w(self) -> str:
        """The name of this register's lower 32 bits (``"w1"``)."""
        return f"w{self.value}"
