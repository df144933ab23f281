"""``NT_PRSTATUS`` notes of a hand-made ELF core (the real dumps' are read in
tests/vm/test_unwind_real.py, ELF and kdump)."""

import struct

from oomdrgn.core.prstatus import AARCH64_REGS, X86_64_REGS, cpu_registers, prstatus_notes


def _note(name, kind, desc):
    name = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), kind) + pad(name) + pad(desc)


def _prstatus(pid, regs):
    desc = bytearray(112 + 8 * len(regs) + 8)
    struct.pack_into("<I", desc, 32, pid)
    struct.pack_into("<%dQ" % len(regs), desc, 112, *regs)
    return bytes(desc)


def _core(path, notes):
    phoff = 64
    data_at = phoff + 56
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 32, phoff)
    struct.pack_into("<HH", head, 54, 56, 1)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, data_at, 0, 0, len(notes), len(notes), 4)
    path.write_bytes(bytes(head) + phdr + notes)


def test_notes_in_cpu_order(tmp_path):
    cpu0 = list(range(1, len(X86_64_REGS) + 1))
    cpu1 = [v * 16 for v in cpu0]
    notes = (_note(b"CORE", 1, _prstatus(1, cpu0)) + _note(b"QEMU", 0, bytes(440))
             + _note(b"CORE", 1, _prstatus(2, cpu1)) + _note(b"VMCOREINFO", 0, b"OSRELEASE=6.1\n"))
    path = tmp_path / "vmcore"
    _core(path, notes)
    descs = prstatus_notes(str(path))
    assert len(descs) == 2
    regs = [cpu_registers(d, "x86_64") for d in descs]
    assert regs[0]["r15"] == 1 and regs[0]["ip"] == X86_64_REGS.index("ip") + 1
    assert regs[1]["sp"] == 16 * (X86_64_REGS.index("sp") + 1)


def test_arm64_registers():
    values = list(range(len(AARCH64_REGS)))
    regs = cpu_registers(_prstatus(1, values), "aarch64")
    assert regs["x29"] == 29 and regs["x30"] == 30 and regs["sp"] == 31 and regs["pc"] == 32


def test_not_a_dump(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"junk" * 100)
    assert prstatus_notes(str(path)) == []
