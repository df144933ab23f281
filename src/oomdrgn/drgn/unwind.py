"""What the core's unwinders need from a drgn program without debug info: each
CPU's saved registers (the dump file's ``NT_PRSTATUS`` notes) and the layouts
the port cannot give (``struct orc_entry``'s bit fields, arm64's VA bits)."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from drgn import FaultError, Program

from ..core.prstatus import parse_notes, prstatus_notes
from ..core.rawimage import parse_vmcoreinfo
from ..core.stack_trace import registers_by_cpu

__all__ = ["cpu_registers", "unwind_layout"]


def _notes(prog: Program) -> List[bytes]:
    dump = prog.cache.get("oomdrgn_diskdump")  # a kdump file oomdrgn reads itself
    if dump is not None:
        return parse_notes(dump.notes)
    path = prog.config.get("oomdrgn.elf_core") or getattr(prog, "core_dump_path", None)
    if not path:
        return []  # a live kernel, a QEMU guest, raw RAM images: no saved registers
    try:
        return prstatus_notes(path)
    except (OSError, ValueError):
        return []


def cpu_registers(prog: Program, arch: str) -> List[Dict[str, int]]:
    """Each CPU's registers at the dump, by CPU number (empty if none saved)."""
    return registers_by_cpu(_notes(prog), arch)


def unwind_layout(port) -> Tuple[Optional[Tuple[Mapping[str, Tuple[int, int]], int]], int]:
    """``(orc_entry, va_bits)`` for :class:`~oomdrgn.core.stack_trace.StackTracer`:
    x86-64's ``struct orc_entry`` bit fields and size from BTF; arm64's
    ``vabits_actual`` from VMCOREINFO (``NUMBER(KERNELPACMASK)``, the
    pointer-authentication bits, else ``NUMBER(VA_BITS)``)."""
    if port.arch == "x86_64":
        try:
            return (port.btf.bit_fields("struct orc_entry"),
                    port.btf.sizeof("struct orc_entry")), 48
        except LookupError:
            return None, 48  # no ORC (CONFIG_UNWINDER_ORC off): no frames
    try:
        info = parse_vmcoreinfo(port.prog["VMCOREINFO"].string_())
    except (LookupError, FaultError, ValueError):
        info = {}
    mask = int(info.get("NUMBER(KERNELPACMASK)", "0"), 16)
    if mask:
        return None, (mask & -mask).bit_length() - 1
    return None, int(info.get("NUMBER(VA_BITS)", "48"))
