"""x86-64 ORC unwinding on small hand-made stacks and tables (both eras of
``struct orc_entry`` and both ``ORC_REG_*`` numberings). The real kernels'
tables are unwound in tests/vm/test_unwind_real.py."""

import struct

import pytest

from oomdrgn.core.port import Fault
from oomdrgn.core.unwind_orc import OrcTables, OrcUnwinder, orc_format

TEXT = 0xffffffff81000000
TABLES = 0xffffffff82000000
STACK = 0xffffc90000010000
PT_REGS = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
           "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112,
           "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160}
# struct orc_entry bit fields, as BTF gives them (Btf.bit_fields).
OLD = {"sp_offset": (0, 16), "bp_offset": (16, 16), "sp_reg": (32, 4), "bp_reg": (36, 4),
       "type": (40, 2), "end": (42, 1)}
NEW = {"sp_offset": (0, 16), "bp_offset": (16, 16), "sp_reg": (32, 4), "bp_reg": (36, 4),
       "type": (40, 3), "signal": (43, 1)}
# ORC_REG_* (SP, BP, PREV_SP, UNDEFINED) before and since the v7.x renumbering;
# types (CALL, REGS, REGS_PARTIAL, END) before and since v6.4.
REGS_OLD = {"SP": 5, "BP": 4, "PREV_SP": 1, "UNDEFINED": 0}
REGS_NEW = {"SP": 3, "BP": 4, "PREV_SP": 8, "UNDEFINED": 0}
TYPES_OLD = {"CALL": 0, "REGS": 1, "PARTIAL": 2}
TYPES_NEW = {"CALL": 2, "REGS": 3, "PARTIAL": 4, "END": 1}


class Memory:
    def __init__(self):
        self.blocks = {}

    def put(self, address, data):
        self.blocks[address] = bytes(data)

    def word(self, address, value):
        self.put(address, struct.pack("<Q", value))

    def read(self, address, size):
        for base, data in self.blocks.items():
            if base <= address and address + size <= base + len(data):
                return data[address - base:address - base + size]
        raise Fault(f"no memory at {address:#x}", address)


def _entry(fields, sp_reg, sp_offset, bp_reg, bp_offset, kind, end=0, signal=0):
    value = (sp_offset & 0xFFFF) | (bp_offset & 0xFFFF) << 16
    value |= sp_reg << fields["sp_reg"][0] | bp_reg << fields["bp_reg"][0]
    value |= kind << fields["type"][0]
    if end and "end" in fields:
        value |= 1 << fields["end"][0]
    if signal and "signal" in fields:  # objtool sets it on pt_regs entries
        value |= 1 << fields["signal"][0]
    return value.to_bytes(6, "little")


def _kernel(era):
    """Four functions (f0 .. f3 at TEXT + 0x100 * i) and their ORC entries; many
    filler C functions so that the register numbering is clear."""
    fields, regs, types = era
    mem = Memory()
    rows = []
    for i in range(64):  # filler C functions: sp = SP + 8 at their first byte
        rows.append((TEXT + 0x10000 + 0x40 * i,
                     _entry(fields, regs["SP"], 8, regs["UNDEFINED"], 0, types["CALL"])))
    for i in range(4):
        start = TEXT + 0x100 * i
        rows.append((start, _entry(fields, regs["SP"], 8, regs["UNDEFINED"], 0, types["CALL"])))
        # after push %rbp: sp = SP + 16, bp saved at PREV_SP - 16
        rows.append((start + 1, _entry(fields, regs["SP"], 16, regs["PREV_SP"], -16,
                                       types["CALL"])))
    rows.sort()
    ips = TABLES
    unwind = TABLES + 0x10000
    mem.put(ips, b"".join(struct.pack("<i", ip - (ips + 4 * n)) for n, (ip, _) in enumerate(rows)))
    mem.put(unwind, b"".join(e for _, e in rows))
    tables = OrcTables(ips, ips + 4 * len(rows), unwind, None, None, TEXT, TEXT + 0x20000)
    return mem, tables, rows


@pytest.fixture(params=[(OLD, REGS_OLD, TYPES_OLD), (NEW, REGS_OLD, TYPES_NEW),
                        (NEW, REGS_NEW, TYPES_NEW)], ids=["v5.10", "v6.4", "v7.x"])
def era(request):
    return request.param


def test_call_frames(era):
    """f3 stopped (registers) inside, called by f2, f1, f0; the bottom of the
    stack has no entry (user space's return address: the trace ends)."""
    mem, tables, _ = _kernel(era)
    fields = era[0]
    sp = STACK + 0x100
    # f3 at +0x20 after push %rbp: [sp] = caller's bp, [sp + 8] = return into f2
    mem.put(sp, struct.pack("<QQQQQQQ", STACK + 0x200, TEXT + 0x200 + 0x30,
                            STACK + 0x300, TEXT + 0x100 + 0x40,
                            STACK + 0x400, TEXT + 0x40, 0x401000))
    unwinder = OrcUnwinder(mem.read, orc_format(fields, 6), tables, PT_REGS)
    frames = unwinder.unwind(TEXT + 0x320, sp, STACK + 0x180,
                             {"ip": TEXT + 0x320, "sp": sp, "bp": STACK + 0x180, "cs": 0x10})
    assert frames == [(TEXT + 0x320, True), (TEXT + 0x230, False), (TEXT + 0x140, False),
                      (TEXT + 0x40, False)]


def test_register_numbering_is_read_from_the_table(era):
    mem, tables, _ = _kernel(era)
    unwinder = OrcUnwinder(mem.read, orc_format(era[0], 6), tables, PT_REGS)
    assert unwinder.regs_numbers["SP"] == era[1]["SP"]
    assert unwinder.regs_numbers["PREV_SP"] == era[1]["PREV_SP"]


def test_user_registers_end_the_trace(era):
    """A REGS entry (an exception entry's pt_regs on the stack) whose cs is a
    user one: the kernel stack ends there; a kernel cs continues at regs->ip."""
    fields, regs, types = era
    mem, tables, rows = _kernel(era)
    entry_text = TEXT + 0x18000  # asm_exc_page_fault: pt_regs at sp
    rows = sorted(rows + [(entry_text, _entry(fields, regs["SP"], 0, regs["UNDEFINED"], 0,
                                              types["REGS"], signal=1))])
    mem.put(TABLES, b"".join(struct.pack("<i", ip - (TABLES + 4 * n))
                             for n, (ip, _) in enumerate(rows)))
    mem.put(TABLES + 0x10000, b"".join(e for _, e in rows))
    tables = OrcTables(TABLES, TABLES + 4 * len(rows), TABLES + 0x10000, None, None, TEXT,
                       TEXT + 0x20000)
    sp = STACK + 0x100
    frame = bytearray(168)
    for name, value in (("ip", 0x401000), ("cs", 0x33), ("sp", 0x7ffd0000), ("bp", 0)):
        struct.pack_into("<Q", frame, PT_REGS[name], value)
    mem.put(sp, struct.pack("<Q", entry_text + 0x22) + bytes(frame))
    unwinder = OrcUnwinder(mem.read, orc_format(fields, 6), tables, PT_REGS)
    # f0 at its first byte (a breakpoint): return address at [sp]
    frames = unwinder.unwind(TEXT, sp, 0, {"ip": TEXT, "sp": sp, "bp": 0, "cs": 0x10})
    assert frames == [(TEXT, True), (entry_text + 0x22, False)]
    # the same pt_regs from kernel mode: the interrupted f1 follows, exact (signal)
    struct.pack_into("<Q", frame, PT_REGS["ip"], TEXT + 0x150)
    struct.pack_into("<Q", frame, PT_REGS["cs"], 0x10)
    struct.pack_into("<Q", frame, PT_REGS["sp"], STACK + 0x800)
    mem.put(sp, struct.pack("<Q", entry_text + 0x22) + bytes(frame))
    mem.put(STACK + 0x800, struct.pack("<QQ", 0, 0x401000))
    frames = unwinder.unwind(TEXT, sp, 0, {"ip": TEXT, "sp": sp, "bp": 0, "cs": 0x10})
    assert frames[:3] == [(TEXT, True), (entry_text + 0x22, False), (TEXT + 0x150, True)]


def test_unknown_code_ends_the_trace(era):
    """A return address with no ORC entry (BPF, a module without tables): the
    kernel guesses a frame pointer; oomdrgn stops."""
    mem, tables, _ = _kernel(era)
    sp = STACK + 0x100
    mem.put(sp, struct.pack("<QQ", 0xffffffffa0001234, 0))
    unwinder = OrcUnwinder(mem.read, orc_format(era[0], 6), tables, PT_REGS)
    frames = unwinder.unwind(TEXT, sp, 0, {"ip": TEXT, "sp": sp, "bp": 0, "cs": 0x10})
    assert frames == [(TEXT, True), (0xffffffffa0001234, False)]


def test_stack_going_the_wrong_way_ends_the_trace(era):
    mem, tables, _ = _kernel(era)
    sp = STACK + 0x100
    # f1 at +0x20 after push: saved bp, return into f0; f0's frame then points back up
    mem.put(sp, struct.pack("<QQ", STACK + 0x100, TEXT + 0x40))
    unwinder = OrcUnwinder(mem.read, orc_format(era[0], 6), tables, PT_REGS)
    frames = unwinder.unwind(TEXT + 0x120, sp, 0, {"ip": TEXT + 0x120, "sp": sp, "bp": 0,
                                                   "cs": 0x10})
    assert frames[:2] == [(TEXT + 0x120, True), (TEXT + 0x40, False)]
    assert len(frames) < 10


def test_orc_format_decodes_signed_offsets():
    fmt = orc_format(OLD, 6)
    raw = _entry(OLD, 5, -8, 1, -16, 0, end=1)
    assert fmt.decode(raw) == {"sp_offset": -8, "bp_offset": -16, "sp_reg": 5, "bp_reg": 1,
                               "type": 0, "end": 1}
    with pytest.raises(LookupError):
        orc_format({"sp_offset": (0, 16)}, 6)
