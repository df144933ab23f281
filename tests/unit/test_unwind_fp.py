"""arm64 frame-record unwinding on small hand-made stacks. The real kernels'
stacks are unwound in tests/vm/test_unwind_real.py."""

import struct

from oomdrgn.core.port import Fault
from oomdrgn.core.unwind_fp import FpUnwinder, before_frame_record, strip_pac

TEXT = 0xffff800008000000
STACK = 0xffff80000a000000
PAC = 0x9def000000000000  # a pointer-authentication code in bits 63..48 (bit 55 kept)


class Memory:
    def __init__(self, words):
        self.words = dict(words)

    def read(self, address, size):
        assert size == 8
        if address not in self.words:
            raise Fault(f"no memory at {address:#x}", address)
        return struct.pack("<Q", self.words[address])


def _chain(records):
    """Frame records at STACK + 0x100 * i: {next record, return address}."""
    words = {}
    for i, lr in enumerate(records):
        at = STACK + 0x100 * i
        last = i == len(records) - 1
        words[at] = 0 if last else at + 0x100
        words[at + 8] = 0 if last else lr
    return words


def _signed(address):
    return address & ((1 << 48) - 1) | PAC


def test_strip_pac():
    assert strip_pac(_signed(TEXT + 0x10), 48) == TEXT + 0x10
    assert strip_pac(TEXT + 0x10, 48) == TEXT + 0x10
    assert strip_pac(0x400000, 48) == 0x400000  # user addresses as they are


def test_records_with_pac_end_at_the_final_record():
    mem = Memory(_chain([_signed(TEXT + 0x104), _signed(TEXT + 0x208), 0]))
    frames = FpUnwinder(mem.read, 48).unwind(TEXT + 0x40, STACK)
    assert frames == [(TEXT + 0x40, True), (TEXT + 0x104, False), (TEXT + 0x208, False)]


def test_stopped_at_entry_the_caller_is_in_lr():
    mem = Memory(_chain([_signed(TEXT + 0x208), 0]))
    frames = FpUnwinder(mem.read, 48).unwind(TEXT + 0x300, STACK, lr=_signed(TEXT + 0x104))
    assert frames == [(TEXT + 0x300, True), (TEXT + 0x104, False), (TEXT + 0x208, False)]


def test_unreadable_or_looping_records_end_the_trace():
    frames = FpUnwinder(Memory({}).read, 48).unwind(TEXT, STACK)
    assert frames == [(TEXT, True)]
    loop = {STACK: STACK, STACK + 8: TEXT + 0x104}
    frames = FpUnwinder(Memory(loop).read, 48).unwind(TEXT, STACK)
    assert frames == [(TEXT, True), (TEXT + 0x104, False)]
    misaligned = {STACK: STACK + 0x103, STACK + 8: TEXT + 0x104}
    assert len(FpUnwinder(Memory(misaligned).read, 48).unwind(TEXT, STACK)) == 2


def test_exception_boundary_record():
    """v6.13+: a {0, 0} record followed by FRAME_META_TYPE_PT_REGS: the
    interrupted pc (exact) and x29 are in the pt_regs around it."""
    stackframe, pc_off, fp_off = 0x130, 0x100, 0xe8
    regs = STACK + 0x1000
    words = {STACK: regs + stackframe, STACK + 8: TEXT + 0x104,
             regs + stackframe: 0, regs + stackframe + 8: 0, regs + stackframe + 16: 2,
             regs + pc_off: TEXT + 0x500, regs + fp_off: STACK + 0x2000,
             STACK + 0x2000: 0, STACK + 0x2008: 0, STACK + 0x2010: 1}
    unwinder = FpUnwinder(Memory(words).read, 48, (stackframe, pc_off, fp_off))
    assert unwinder.unwind(TEXT, STACK) == [(TEXT, True), (TEXT + 0x104, False),
                                            (TEXT + 0x500, True)]
    # before v6.13 the same {0, 0} record is the last
    assert FpUnwinder(Memory(words).read, 48).unwind(TEXT, STACK) == [
        (TEXT, True), (TEXT + 0x104, False)]


def _code(*insns):
    return b"".join(struct.pack("<I", i) for i in insns)


def test_before_frame_record():
    assert before_frame_record(b"")  # a breakpoint on the first instruction
    # 6.12 arm64: mov x9, x30; nop; paciasp; stp x29, x30, [sp, #-32]!
    assert before_frame_record(_code(0xAA1E03E9, 0xD503201F, 0xD503233F, 0xA9BE7BFD))
    # ... then mov x29, sp: x29 is this function's record
    assert not before_frame_record(_code(0xD503233F, 0xA9BE7BFD, 0x910003FD))
    # __arm_smccc_hvc+0x8: bti c; hvc #0 (an assembly leaf: x29 only)
    assert not before_frame_record(_code(0xD503245F, 0xD4000002))
    # sub sp, sp, #0x40; stp x29, x30, [sp, #0x30]
    assert before_frame_record(_code(0xD10103FF, 0xA9037BFD))
