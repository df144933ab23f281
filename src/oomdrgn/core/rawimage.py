"""Raw physical RAM images: one file per bank, as a JTAG probe or a bootloader
saves them (TRACE32 ``Data.SAVE.Binary``, vendor ``DDRCS0_0.BIN``, QEMU
``pmemsave``), given as crash's ``FILE@PADDR``; also the PT_LOAD segments of
an ELF dump read the same way (standard library only).
"""

from __future__ import annotations

import io
import mmap
import os
import re
from bisect import bisect_right
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .record import record

__all__ = ["Bank", "RawImageError", "PhysicalMemory", "parse_bank_spec", "is_bank_spec",
           "open_banks", "elf_banks", "find_vmcoreinfo", "parse_vmcoreinfo",
           "VmcoreinfoHit", "text_at"]

_WINDOW = 32 << 20  # bytes searched at a time
_SPEC = re.compile(r"^(?P<path>.+)@(?P<addr>[^@/]*)$")


class RawImageError(ValueError):
    """A bank spec or image that cannot be used (the message is for the user)."""


@record(frozen=True)
class Bank:
    """``size`` bytes of physical memory at ``paddr``, at ``offset`` in ``path``."""

    path: str
    paddr: int
    size: int
    offset: int = 0

    @property
    def end(self) -> int:
        return self.paddr + self.size

    def __str__(self) -> str:
        return f"{self.path}@{self.paddr:#x}"


def is_bank_spec(spec: str) -> bool:
    """Whether ``spec`` is ``FILE@PADDR`` (and not an existing file so named)."""
    return "@" in os.path.basename(spec) and not os.path.exists(spec)


def parse_bank_spec(spec: str) -> Tuple[str, int]:
    """``(path, paddr)`` of ``FILE@PADDR`` (hex with 0x, else decimal, as crash)."""
    m = _SPEC.match(spec)
    if not m or not m.group("path"):
        raise RawImageError(f"{spec}: expected FILE@PADDR (a raw RAM image and its "
                            "physical address)")
    text = m.group("addr").replace("_", "")
    try:
        addr = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise RawImageError(f"{spec}: {m.group('addr')!r} is not a physical address "
                            "(hex with 0x, or decimal)") from None
    if addr < 0:
        raise RawImageError(f"{spec}: negative physical address")
    return m.group("path"), addr


def open_banks(specs: Sequence[str]) -> List[Bank]:
    """The banks of ``FILE@PADDR`` specs, sorted by address; checks that each file
    exists, is not empty and that no two banks overlap."""
    banks = []
    for spec in specs:
        path, paddr = parse_bank_spec(spec)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise RawImageError(f"{path}: no such RAM image") from None
        except OSError as e:
            raise RawImageError(f"{path}: {e.strerror}") from None
        if os.path.isdir(path):
            raise RawImageError(f"{path}: is a directory, not a RAM image")
        if size == 0:
            raise RawImageError(f"{path}: empty file, not a RAM image")
        banks.append(Bank(path, paddr, size))
    banks.sort(key=lambda b: b.paddr)
    for a, b in zip(banks, banks[1:]):
        if b.paddr < a.end:
            raise RawImageError(f"{a} and {b} overlap ({a.path} ends at {a.end:#x})")
    return banks


def elf_banks(path: str, segments: Sequence[Tuple[int, int, int]]) -> List[Bank]:
    """The banks of an ELF dump's ``(p_paddr, p_offset, p_filesz)`` PT_LOADs."""
    return sorted((Bank(path, paddr, size, offset) for paddr, offset, size in segments
                   if size), key=lambda b: b.paddr)


class PhysicalMemory:
    """Read-only physical memory over banks (each file mapped, never written)."""

    def __init__(self, banks: Sequence[Bank]) -> None:
        self.banks = list(banks)
        self._maps: Dict[str, mmap.mmap] = {}
        # Files, not bare descriptors: a file closes when nothing holds it (a
        # bare descriptor outlives its memory, and keeps a removed dump on disk).
        self._files: Dict[str, io.FileIO] = {}
        for bank in self.banks:
            if bank.path not in self._maps:
                with open(bank.path, "rb") as f:
                    self._maps[bank.path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        for bank in self.banks:
            have = len(self._maps[bank.path]) - bank.offset
            if have < bank.size:  # an ELF dump cut short: keep what is there
                raise RawImageError(f"{bank.path}: truncated: {max(have, 0)} of {bank.size} "
                                    f"bytes of the segment at {bank.paddr:#x}")

    def bank_of(self, paddr: int) -> Optional[Bank]:
        for bank in self.banks:
            if bank.paddr <= paddr < bank.end:
                return bank
        return None

    def view(self, bank: Bank) -> memoryview:
        """The bank's bytes (no copy)."""
        return memoryview(self._maps[bank.path])[bank.offset:bank.offset + bank.size]

    def span(self, paddr: int, size: int) -> Optional[memoryview]:
        """The *size* bytes at *paddr* as a view of the file's mapping, or None
        unless one bank holds them all: megabytes used in place (the kernel's
        BTF), where a copy would cost the page faults of fresh memory."""
        bank = self.bank_of(paddr)
        if bank is None or paddr + size > bank.end:
            return None
        start = bank.offset + paddr - bank.paddr
        return memoryview(self._maps[bank.path])[start:start + size]

    def holds(self, paddr: int, size: int, needle: bytes) -> Optional[bool]:
        """Whether the *size* bytes at *paddr* hold *needle*, searched in the
        file's mapping (no copy); None unless one bank holds them all."""
        bank = self.bank_of(paddr)
        if bank is None or paddr + size > bank.end:
            return None
        start = bank.offset + paddr - bank.paddr
        return self._maps[bank.path].find(needle, start, start + size) >= 0

    def read(self, paddr: int, size: int) -> bytes:
        """``size`` bytes at ``paddr``; :class:`LookupError` where no bank holds them."""
        out = bytearray()
        while size:
            bank = self.bank_of(paddr)
            if bank is None:
                raise LookupError(f"physical address {paddr:#x} is in no RAM image")
            n = min(size, bank.end - paddr)
            start = bank.offset + paddr - bank.paddr
            out += self._maps[bank.path][start:start + n]
            paddr += n
            size -= n
        return bytes(out)

    def slicer(self):
        """``read(paddr, size)``: the bytes if one bank holds them all, else None
        (the hot path of reads by physical address: a bisect and a ``pread``,
        which, unlike a slice of the mapping, leaves no page resident here)."""
        banks = sorted(self.banks, key=lambda b: b.paddr)
        starts = [b.paddr for b in banks]
        for bank in banks:
            if bank.path not in self._files:
                self._files[bank.path] = io.FileIO(bank.path, "r")
        files = dict(self._files)  # held by the reader (a default) while it lives
        spans = [(b.end, files[b.path].fileno(), b.offset - b.paddr) for b in banks]
        pread = os.pread

        def read(paddr: int, size: int, _files: dict = files) -> Optional[bytes]:
            i = bisect_right(starts, paddr) - 1
            if i < 0:
                return None
            end, fd, delta = spans[i]
            if paddr + size > end:
                return None
            data = pread(fd, size, paddr + delta)
            return data if len(data) == size else None
        return read

    def reader(self, bank: Bank):
        """A read function for drgn's ``add_memory_segment`` over one bank."""
        data = self._maps[bank.path]
        base = bank.offset

        def read(address: int, count: int, offset: int, physical: bool) -> bytes:
            return data[base + offset:base + offset + count]
        return read

    def find(self, needle: bytes) -> Iterator[int]:
        """Every physical address where ``needle`` starts (within one bank)."""
        for bank in self.banks:
            data = self._maps[bank.path]
            end = bank.offset + bank.size
            # Window by window, each let go once searched: a search through
            # gigabytes of RAM must not keep them all in this process's memory.
            for start in range(bank.offset, end, _WINDOW):
                stop = min(start + _WINDOW, end)
                i = data.find(needle, start, min(stop + len(needle) - 1, end))
                while i >= 0:
                    yield bank.paddr + i - bank.offset
                    i = data.find(needle, i + 1, min(stop + len(needle) - 1, end))
                first = start - start % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, first, stop - first - stop % mmap.PAGESIZE)

    def close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a span still viewed: unmapped when its last view goes
                pass
        self._maps.clear()
        for f in self._files.values():
            f.close()
        self._files.clear()


@record(frozen=True)
class VmcoreinfoHit:
    """VMCOREINFO text found in RAM: where, and the text itself."""

    paddr: int
    text: bytes
    where: str  # "vmcoreinfo_data" (the page) or "vmcoreinfo_note" (the ELF note)


def text_at(mem: PhysicalMemory, paddr: int, limit: int) -> Optional[bytes]:
    """The NUL-ended text at ``paddr`` (at most ``limit`` bytes), whole lines only."""
    try:
        raw = mem.read(paddr, limit)
    except LookupError:
        bank = mem.bank_of(paddr)
        if bank is None:
            return None
        raw = mem.read(paddr, bank.end - paddr)
    text = raw.split(b"\0", 1)[0]
    # Whole lines of KEY=VALUE: drop a last line cut short.
    return text[:text.rfind(b"\n") + 1] or None


def find_vmcoreinfo(mem: PhysicalMemory, page_size: int = 4096) -> Iterator[VmcoreinfoHit]:
    """Each copy of the kernel's VMCOREINFO text in RAM, lowest address first
    (lazily: a caller that takes the first good one reads no further).

    ``crash_save_vmcoreinfo_init()`` writes it into ``vmcoreinfo_data`` (a page
    of its own, from ``get_zeroed_page()``: the text starts the page) and
    ``update_vmcoreinfo_note()`` copies it into ``vmcoreinfo_note`` (pages of
    their own: a 12-byte ELF note header and the padded name ``VMCOREINFO``,
    then the text at byte 24). Both start with ``OSRELEASE=``. Pages of 4 KiB
    are checked: larger pages are multiples of it.
    """
    for paddr in mem.find(b"OSRELEASE="):
        if paddr % page_size == 0:
            where = "vmcoreinfo_data"
        elif paddr % page_size == 24 and mem.read(paddr - 12, 12) == b"VMCOREINFO\0\0":
            where = "vmcoreinfo_note"
        else:
            continue
        text = text_at(mem, paddr, 4096 - (paddr % page_size))
        if text and b"PAGESIZE=" in text:
            yield VmcoreinfoHit(paddr, text, where)


def parse_vmcoreinfo(text: bytes) -> Dict[str, str]:
    """``KEY=VALUE`` lines as a dict (the first value of a repeated key)."""
    out: Dict[str, str] = {}
    for line in text.decode(errors="replace").splitlines():
        key, eq, value = line.partition("=")
        if eq and key not in out:
            out[key] = value
    return out
