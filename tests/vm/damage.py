"""Make damaged vmcores from a real ELF vmcore (the bad-input corpus).

Every case is a copy of a real dump with a few bytes changed where a kernel
object lives: the addresses come from drgn on the intact dump, the file
offsets from the ELF program headers.
"""

import shutil
from pathlib import Path
from typing import List, Tuple

from drgn import Object, offsetof
from drgn.helpers.linux.mm import follow_phys
from drgn.helpers.linux.pid import find_task

from oomdrgn.drgn.program import open_program
from oomdrgn.core.elffile import load_segments

GARBAGE = 0xFFFFDEAD00000000  # canonical kernel address, never mapped


class Corpus:
    """Damaged copies of one intact ELF vmcore."""

    def __init__(self, vmcore: Path, vmlinux: Path, workdir: Path) -> None:
        self.vmcore = Path(vmcore)
        self.workdir = Path(workdir)
        self.prog = open_program(core=str(vmcore), vmlinux=[str(vmlinux)])
        self.segments = load_segments(str(self.vmcore))

    def file_offset(self, vaddr: int) -> int:
        phys = follow_phys(self.prog["init_mm"].address_of_(), vaddr).value_()
        for paddr, offset, size in self.segments:
            if paddr <= phys < paddr + size:
                return offset + phys - paddr
        raise LookupError(f"{vaddr:#x} (phys {phys:#x}) is not in the dump")

    def patched(self, name: str, edits: List[Tuple[int, bytes]]) -> Path:
        """A copy of the dump with ``bytes`` written at each virtual address."""
        out = self.workdir / f"{name}.vmcore"
        shutil.copyfile(self.vmcore, out)
        with open(out, "r+b") as f:
            for vaddr, data in edits:
                f.seek(self.file_offset(vaddr))
                f.write(data)
        return out

    def truncated(self, fraction: float) -> Path:
        out = self.workdir / f"cut-{fraction}.vmcore"
        size = self.vmcore.stat().st_size
        with open(self.vmcore, "rb") as src, open(out, "wb") as dst:
            dst.write(src.read(max(1, int(size * fraction))))
        return out

    def task(self, pid: int) -> Object:
        return find_task(self.prog, pid)

    def field(self, obj: Object, member: str) -> int:
        """Address of ``obj->member`` (obj is a pointer)."""
        return obj.value_() + offsetof(obj.type_.type, member)

    @staticmethod
    def word(value: int) -> bytes:
        return value.to_bytes(8, "little")
