"""A drgn Program over physical memory only: raw RAM images (``FILE@PADDR``)
and ELF dumps without a VMCOREINFO note. drgn walks the page tables itself
(``set_linux_kernel_custom``) with the VMCOREINFO :mod:`oomdrgn.core.rawkernel`
finds in the images or writes from the vmlinux."""

from __future__ import annotations

import platform as host_platform
from typing import List, Optional, Sequence

from drgn import Architecture, FaultError, Platform, PlatformFlags, Program

from ..core.errors import EXIT_DEBUGINFO, EXIT_TARGET, OomdrgnError
from ..core.rawimage import Bank, PhysicalMemory, RawImageError, parse_vmcoreinfo
from ..core.rawkernel import Located, LocateError, locate_kernel

__all__ = ["open_physical", "FOUND"]

#: ``prog.config`` key: what was found in the images, and where (for stderr)
FOUND = "oomdrgn.found"
_ARCH = {"x86_64": Architecture.X86_64, "aarch64": Architecture.AARCH64}


def _read_vmcoreinfo_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20)
    except OSError as e:
        raise OomdrgnError(f"{path}: cannot read the VMCOREINFO file: {e.strerror}",
                           EXIT_TARGET) from None
    if b"OSRELEASE=" not in text:
        raise OomdrgnError(f"{path}: not VMCOREINFO text (no OSRELEASE= line)", EXIT_TARGET)
    return text[text.index(b"OSRELEASE="):].split(b"\0", 1)[0]


def _reads_banner(prog: Program, located: Located) -> bool:
    assert located.banner_virt is not None
    try:
        return prog.read(located.banner_virt, len(located.banner)) == located.banner
    except (FaultError, ValueError):
        return False


def open_physical(banks: Sequence[Bank], vmlinux: Sequence[str] = (),
                  vmcoreinfo: Optional[str] = None, kaslr_offset: Optional[int] = None,
                  label: str = "") -> Program:
    """A Program reading ``banks``; raises :class:`OomdrgnError` with one line."""
    for path in vmlinux:
        try:
            open(path, "rb").close()
        except OSError:
            raise OomdrgnError(f"{path}: no such vmlinux", EXIT_DEBUGINFO) from None
    try:
        mem = PhysicalMemory(banks)
    except (RawImageError, OSError) as e:
        raise OomdrgnError(str(e), EXIT_TARGET) from None
    text = _read_vmcoreinfo_file(vmcoreinfo) if vmcoreinfo else None
    try:
        located = locate_kernel(mem, vmlinux[0] if vmlinux else None, text, kaslr_offset)
    except LocateError as e:
        mem.close()
        raise OomdrgnError(f"{label}: {e}" if label else str(e), EXIT_TARGET) from None
    arch = located.arch or host_platform.machine()
    prog = None
    for text in [located.vmcoreinfo] + located.alternatives:
        prog = Program(Platform(_ARCH[arch], PlatformFlags.IS_64_BIT
                                | PlatformFlags.IS_LITTLE_ENDIAN))
        for bank in mem.banks:
            prog.add_memory_segment(bank.paddr, bank.size, mem.reader(bank), physical=True)
        try:
            prog.set_linux_kernel_custom(text, False)
        except Exception as e:  # drgn's parse errors are plain Exceptions too
            raise OomdrgnError(f"{label}: bad VMCOREINFO: {e}", EXIT_TARGET) from None
        if located.banner_virt is None or _reads_banner(prog, located):
            located.vmcoreinfo = text
            break
    else:
        raise OomdrgnError(f"{label}: the kernel's page tables do not map its banner for any "
                           "known VA_BITS: pass --vmcoreinfo FILE", EXIT_TARGET)
    if located.alternatives:
        va = parse_vmcoreinfo(located.vmcoreinfo).get("NUMBER(VA_BITS)")
        located.how.append(f"VA_BITS {va} (the page tables map the banner)")
    prog.cache["oomdrgn_physmem"] = mem  # the mappings live as long as the Program
    found: List[str] = [f"{label}: " if label else ""]
    found[0] += "; ".join(located.how)
    prog.config[FOUND] = found[0]
    return prog
