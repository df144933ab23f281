"""arm64 frame-pointer unwinding (standard library only), as
``arch/arm64/kernel/stacktrace.c`` does.

Every kernel function that calls another keeps a frame record ``{fp, lr}``
where ``x29`` points: ``[fp]`` is the caller's record, ``[fp + 8]`` the return
address into the caller (its pointer-authentication code, if any, stripped).
A record ``{0, 0}`` ends the chain (``task_pt_regs(task)->stackframe``); since
"arm64: stacktrace: unwind exception boundaries" (v6.13; hash not checked here)
it may instead mark a ``struct pt_regs`` (``FRAME_META_TYPE_PT_REGS``): the
interrupted ``pc`` and ``x29`` are in it.

A CPU's saved registers may stop a function before its frame record exists
(a breakpoint on its first instruction): its caller is then in ``lr``
(``x30``) and ``x29`` is still the caller's record.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from .port import Fault

__all__ = ["FpUnwinder", "before_frame_record", "strip_pac"]

Read = Callable[[int, int], bytes]
_MASK = (1 << 64) - 1
MAX_FRAMES = 128
FRAME_META_TYPE_FINAL = 1
FRAME_META_TYPE_PT_REGS = 2


def strip_pac(address: int, va_bits: int) -> int:
    """``ptrauth_strip_kernel_insn_pac()``: a kernel text address (bit 55 set)
    with its top bits set again (``| GENMASK(63, vabits_actual)``); others as is."""
    if address >> 55 & 1:
        return (address | ~((1 << va_bits) - 1)) & _MASK
    return address


#: (mask, value) of the instructions a function's entry runs before its frame
#: record is in ``x29``: ``bti``, ``paciasp``/``pacibsp``, ``nop``, ftrace's
#: ``mov x9, x30``, ``sub sp, sp, #imm``, ``stp x29, x30, [sp, #imm]`` (with or
#: without writeback); ``lr`` still holds the return address after each
_PROLOGUE = ((0xFFFFFF3F, 0xD503241F),  # bti {c, j, jc}
             (0xFFFFFFBF, 0xD503233F),  # paciasp, pacibsp
             (0xFFFFFFFF, 0xD503201F),  # nop
             (0xFFFFFFFF, 0xAA1E03E9),  # mov x9, x30
             (0xFF8003FF, 0xD10003FF),  # sub sp, sp, #imm
             (0xFE407FFF, 0xA8007BFD))  # stp x29, x30, [sp, #imm](!)


def before_frame_record(code: bytes) -> bool:
    """Whether the instructions *code* (a function's start up to, not
    including, the stopped ``pc``) are all entry instructions that leave the
    return address in ``lr`` and ``x29`` the caller's: a function stopped on
    its first instructions (a breakpoint on it). A leaf function stopped
    further in (``__arm_smccc_hvc+0x8``) is not: the kernel's unwinder and
    drgn (no call-frame information for assembly) follow ``x29`` only."""
    for i in range(0, len(code) - 3, 4):
        insn = int.from_bytes(code[i:i + 4], "little")
        if not any(insn & mask == value for mask, value in _PROLOGUE):
            return False
    return True


class FpUnwinder:
    """Follow a task's chain of frame records.

    :param read: ``read(address, size)`` of kernel memory (raises :class:`Fault`)
    :param va_bits: the kernel's ``vabits_actual`` (VMCOREINFO ``NUMBER(VA_BITS)``)
    :param pt_regs: ``(offsetof(struct pt_regs, stackframe), offsetof(pc),
        offsetof(regs[29]))`` where the kernel marks exception boundaries in its
        frame records (v6.13+), else None
    """

    def __init__(self, read: Read, va_bits: int,
                 pt_regs: Optional[Tuple[int, int, int]] = None) -> None:
        self.read = read
        self.va_bits = va_bits
        self.pt_regs = pt_regs

    def _word(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def unwind(self, pc: int, fp: int, lr: Optional[int] = None,
               interrupted: bool = True) -> List[Tuple[int, bool]]:
        """``[(pc, interrupted), ...]``, innermost first: *pc*, *lr* if given
        (the caller of a function stopped before its frame record: see
        :func:`before_frame_record`), then one frame per record from *fp*."""
        frames = [(pc, interrupted)]
        if lr is not None:
            lr = strip_pac(lr, self.va_bits)
            if not lr >> 63:
                return frames
            frames.append((lr, False))
        seen = 0
        while len(frames) < MAX_FRAMES:
            if not fp or fp & 0x7:
                break
            try:
                next_fp, next_pc = self._word(fp), self._word(fp + 8)
                kind = False
                if not next_fp and not next_pc:
                    if self.pt_regs is None or self._word(fp + 16) != FRAME_META_TYPE_PT_REGS:
                        break  # FRAME_META_TYPE_FINAL, or the final record before v6.13
                    regs = fp - self.pt_regs[0]
                    next_pc, next_fp = self._word(regs + self.pt_regs[1]), self._word(
                        regs + self.pt_regs[2])
                    kind = True
            except (Fault, ValueError, OverflowError):
                break
            # The records go up the stack: one at or below the last is a loop
            # (the kernel checks it per stack; this only within one 16 KiB block).
            if seen and fp <= seen and fp >> 14 == seen >> 14:
                break
            seen = fp
            next_pc = strip_pac(next_pc, self.va_bits)
            if not next_pc >> 63:
                break
            frames.append((next_pc, kind))
            fp = next_fp
        return frames
