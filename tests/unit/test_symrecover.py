"""The pieces of :mod:`oomdrgn.core.symrecover` on hand-made bytes: the export
table found by its layout (:mod:`oomdrgn.core.ksymtab`) and the globals arm64
code uses (:mod:`oomdrgn.core.a64refs`). Real kernels: tests/vm/test_symrecover_real.py."""

import struct

import pytest

from oomdrgn.core.a64refs import Loaded, refs
from oomdrgn.core.ksymtab import KsymtabError, find_ksymtab

BASE = 0xFFFF800008000000


def _table(names, values, stride=12):
    """An image: entries of *names* -> *values*, then the strings (each name,
    then an empty namespace)."""
    strings, at = bytearray(b"\0"), {}
    for name in names:
        at[name] = len(strings)
        strings += name.encode() + b"\0\0"
    head = bytearray(64)  # not an entry
    table_at = len(head)
    strings_at = table_at + stride * len(names) + 16
    body = bytearray()
    for i, name in enumerate(names):
        entry = table_at + stride * i
        fields = [values[name] - (BASE + entry),
                  BASE + strings_at + at[name] - (BASE + entry + 4)]
        if stride == 12:
            fields.append(BASE + strings_at + at[name] + len(name) + 1 - (BASE + entry + 8))
        body += struct.pack("<%di" % len(fields), *fields)
    return bytes(head + body + bytes(16) + strings)


NAMES = sorted(["init_task", "kfree", "mutex_lock", "node_states"] +
               [f"sym_{i:03d}" for i in range(20)])
VALUES = {n: 0xFFFF800009000000 + 0x40 * i for i, n in enumerate(NAMES)}


@pytest.mark.parametrize("stride", [12, 8])
def test_export_table(stride):
    data = _table(NAMES, VALUES, stride)
    functions = {n: a for n, a in VALUES.items() if n not in ("init_task", "node_states")}
    found = find_ksymtab(data, BASE, {"kfree": VALUES["kfree"]}, functions)
    assert found == VALUES


def test_export_table_disagreeing_with_kallsyms():
    data = _table(NAMES, VALUES)
    with pytest.raises(KsymtabError, match="mutex_lock"):
        find_ksymtab(data, BASE, {"kfree": VALUES["kfree"]},
                     {"kfree": VALUES["kfree"], "mutex_lock": VALUES["mutex_lock"] + 4})
    with pytest.raises(KsymtabError, match="no export table"):
        find_ksymtab(data, BASE, {"kfree": VALUES["kfree"] + 8}, {})


def _adrp(rd, pc, target):
    imm = (target >> 12) - (pc >> 12)
    return 0x90000000 | (imm & 3) << 29 | ((imm >> 2) & 0x7FFFF) << 5 | rd


def _add(rd, rn, imm):
    return 0x91000000 | imm << 10 | rn << 5 | rd


def _ldr64(rt, rn, offset):
    return 0xF9400000 | (offset // 8) << 10 | rn << 5 | rt


def _bl(pc, target):
    return 0x94000000 | ((target - pc) // 4) & 0x3FFFFFF


def test_arm64_refs():
    pc, anchor = 0xFFFF800008100000, 0xFFFF800009811000
    code = [_adrp(19, pc, anchor),            # adrp x19, anchor
            _add(19, 19, 0xBE0),              # add x19, x19, #0xbe0
            _add(0, 19, 0x190),               # add x0, x19, #0x190 (the global)
            _bl(pc + 12, pc + 0x1000),        # bl callee(x0)
            _ldr64(1, 19, 0x10),              # ldr x1, [x19, #16] (x19 kept over the call)
            0xAA0103E2,                       # mov x2, x1
            _bl(pc + 24, pc + 0x2000)]        # bl printk(?, ?, x2)
    found = refs(b"".join(struct.pack("<I", i) for i in code), pc)
    calls = [r for r in found if r.kind == "call"]
    assert calls[0].target == pc + 0x1000 and calls[0].args[0] == anchor + 0xBE0 + 0x190
    loads = [r for r in found if r.kind == "load"]
    assert [(r.address, r.size) for r in loads] == [(anchor + 0xBE0 + 0x10, 8)]
    assert calls[1].args[0] is None  # x0 is clobbered by the first call
    assert calls[1].args[2] == Loaded(anchor + 0xBE0 + 0x10, 8)


def test_arm64_refs_after_the_epilogue():
    # Code after a ret (an out-of-line path) is reached from the body, where the
    # callee-saved registers still hold the body's values: with callee_saved,
    # their reload from the stack is forgotten at the ret. A pre-indexed load
    # (ldr x20, [x22, #48]!) reads base + 48 and writes it back.
    pc, anchor = 0xFFFF800008100000, 0xFFFF800009811000
    code = [_adrp(19, pc, anchor),            # adrp x19, anchor
            _add(19, 19, 0x620),              # add x19, x19, #0x620
            0xA94653F3,                       # ldp x19, x20, [sp, #96]
            0xD65F03C0,                       # ret
            0xAA1303F6,                       # mov x22, x19
            0xF8430ED4,                       # ldr x20, [x22, #48]!
            _ldr64(1, 22, 8)]                 # ldr x1, [x22, #8]
    blob = b"".join(struct.pack("<I", i) for i in code)
    assert [r.kind for r in refs(blob, pc)] == ["address"]  # x19 reloaded: unknown
    loads = [(r.address, r.size) for r in refs(blob, pc, callee_saved=True) if r.kind == "load"]
    assert loads == [(anchor + 0x620 + 48, 8), (anchor + 0x620 + 48 + 8, 8)]
