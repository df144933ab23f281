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

from __future__ import annotations

import struct
from typing import Dict, List

from .diskdump import DiskDump, DiskDumpError
from .elffile import note_entries, pt_notes

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
    return [desc for name, kind, desc in note_entries(notes, "<" if little_endian else ">")
            if name == b"CORE" and kind == NT_PRSTATUS]


def prstatus_notes(path: str, little_endian: bool = True) -> List[bytes]:
    """The ``NT_PRSTATUS`` descriptors of the dump at *path* (ELF or kdump), in
    CPU order; empty if it has none (or is neither)."""
    with open(path, "rb") as f:
        found = pt_notes(f)
    notes = found[3] if found is not None else None
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
