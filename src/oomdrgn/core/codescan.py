"""Find direct calls in machine code (standard library only).

Used to tell kernels that differ only in code: e.g. whether ``oom_badness``
calls ``__percpu_counter_sum`` (exact sums, v7.0+) or not (approximate).
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["calls_target"]

# call-depth tracking (x86, v6.2+) may redirect calls to a padding thunk just
# before the function, so accept a short window below the target.
_THUNK_WINDOW = 64


def _x86_64_targets(code: bytes, address: int) -> Iterable[int]:
    # E8 rel32: call near, relative to the next instruction. Scanning every
    # offset may find false E8 bytes; a false hit on an exact target is rare.
    for i in range(len(code) - 4):
        if code[i] == 0xE8:
            rel = int.from_bytes(code[i + 1:i + 5], "little", signed=True)
            yield (address + i + 5 + rel) & 0xFFFFFFFFFFFFFFFF


def _aarch64_targets(code: bytes, address: int) -> Iterable[int]:
    # BL imm26 (0b100101 << 26), and B imm26 (tail call, 0b000101 << 26).
    for i in range(0, len(code) - 3, 4):
        insn = int.from_bytes(code[i:i + 4], "little")
        if insn >> 26 in (0b100101, 0b000101):
            imm = insn & 0x3FFFFFF
            if imm & 0x2000000:
                imm -= 1 << 26
            yield (address + i + imm * 4) & 0xFFFFFFFFFFFFFFFF


def calls_target(code: bytes, address: int, target: int, arch: str = "x86_64") -> bool:
    """Whether the function at *address* whose bytes are *code* calls *target*."""
    scan = _aarch64_targets if arch == "aarch64" else _x86_64_targets
    return any(target - _THUNK_WINDOW <= t <= target for t in scan(code, address))
