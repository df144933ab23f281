"""Per-CPU registers saved in a dump: the ``NT_PRSTATUS`` notes (standard library only).

An ELF vmcore carries them in its ``PT_NOTE`` segments, a kdump file in the
notes its sub-header points to (``offset_note``, header version 4 on). Both
the kernel's ``crash_save_cpu()`` and QEMU's ``dump-guest-memory`` write one
note per CPU, in CPU order: the *i*-th note is CPU *i* (QEMU also sets
``pr_pid`` to the CPU index + 1), as drgn maps them for a running task.

``struct elf_prstatus`` (64-bit): ``pr_reg`` at byte 112, then
``elf_gregset_t``: x86-64's ``struct user_regs_struct`` (r15 .. gs), arm64's
``struct user_pt_regs`` (x0 .. x30, sp, pc, pstate).
"""

import struct
from typing import BinaryIO, Dict, List, Optional

from .diskdump import DiskDump, DiskDumpError

__all__ = ["cpu_registers", "prstatus_notes", "parse_notes", "X86_64_REGS", "AARCH64_REGS"]

NT_PRSTATUS = 1
_PR_REG = 112
#: ``struct user_regs_struct`` (arch/x86/include/asm/user_64.h)
X86_64_REGS = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax",
               "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
               "fs_base", "gs_base", "ds", "es", "fs", "gs")
#: ``struct user_pt_regs`` (arch/arm64/include/uapi/asm/ptrace.h)
AARCH64_REGS = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate")


def parse_notes(notes: bytes, little_endian: bool = True) -> List[bytes]:
    """The descriptors of the ``CORE`` ``NT_PRSTATUS`` notes in *notes* (ELF note
    format), in order."""
    order = "<" if little_endian else ">"
    out = []
    j = 0
    while j + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from(order + "III", notes, j)
        name = notes[j + 12:j + 12 + namesz].rstrip(b"\0")
        desc = j + 12 + (namesz + 3) // 4 * 4
        if name == b"CORE" and kind == NT_PRSTATUS:
            out.append(notes[desc:desc + descsz])
        j = desc + (descsz + 3) // 4 * 4
    return out


def _elf_notes(f: BinaryIO) -> Optional[bytes]:
    """The ``PT_NOTE`` segments of a 64-bit ELF core, joined; None if not ELF."""
    head = f.read(64)
    if head[:4] != b"\x7fELF" or head[4] != 2:
        return None
    order = "<" if head[5] == 1 else ">"
    phoff, = struct.unpack_from(order + "Q", head, 32)
    phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    notes = b""
    for i in range(len(table) // max(phentsize, 1)):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(order + "IIQQQQ", table,
                                                                 i * phentsize)
        if p_type == 4 and p_filesz < 1 << 24:  # PT_NOTE
            f.seek(p_offset)
            notes += f.read(p_filesz)
    return notes


def prstatus_notes(path: str, little_endian: bool = True) -> List[bytes]:
    """The ``NT_PRSTATUS`` descriptors of the dump at *path* (ELF or kdump), in
    CPU order; empty if it has none (or is neither)."""
    with open(path, "rb") as f:
        notes = _elf_notes(f)
    if notes is None:
        try:
            dump = DiskDump(path)
        except (DiskDumpError, OSError):
            return []
        try:
            notes = dump.notes
        finally:
            dump.close()
    return parse_notes(notes, little_endian)


def cpu_registers(desc: bytes, arch: str, little_endian: bool = True) -> Dict[str, int]:
    """The registers in one ``NT_PRSTATUS`` descriptor, by the names of
    :data:`X86_64_REGS` or :data:`AARCH64_REGS` (*arch*: ``x86_64``, ``aarch64``)."""
    names = X86_64_REGS if arch == "x86_64" else AARCH64_REGS
    order = "<" if little_endian else ">"
    values = struct.unpack_from(order + "%dQ" % len(names), desc, _PR_REG)
    return dict(zip(names, values))
