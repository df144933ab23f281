"""The kernel's page tables walked in a dump (standard library only): a kernel
virtual address outside the direct map and the kernel image (vmalloc, per-CPU
chunks, vmapped stacks) to its physical address, as the MMU translates it.

x86-64: from ``init_top_pgt``, 4 levels or 5 (``pgtable_l5_enabled``, LA57),
1 GiB and 2 MiB pages (PS), the SME encryption bit taken off (``sme_mask``).
arm64: from ``swapper_pg_dir``, the levels that the VA size in use (``64 -
TCR_EL1_T1SZ``, else ``VA_BITS``) and the page size give
(``ARM64_HW_PGTABLE_LEVELS()``), block descriptors at the upper levels; output
addresses of 48 bits, or 52 with LPA2 (4 KiB and 16 KiB granules, a 52-bit VA:
OA[51:50] in bits 9:8, since 352b0395b505 ("arm64: Enable 52-bit virtual
addressing for 4k and 16k granule configs") (in v6.9)).
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

__all__ = ["PageWalker", "page_walker"]

ReadPhys = Callable[[int, int], Optional[bytes]]

_X86_ADDR = 0x000F_FFFF_FFFF_F000  # bits 12..51 of an entry
_X86_PRESENT, _X86_PS = 1, 1 << 7
_ARM64_ADDR = 0x0000_FFFF_FFFF_FFFF  # bits ..47 of a descriptor
_ARM64_LPA2 = 0x0003_FFFF_FFFF_FFFF  # bits ..49, OA[51:50] in bits 9:8


class PageWalker:
    """Translations of kernel virtual addresses, each page's kept.

    :param read: ``read(paddr, size)``: bytes of physical memory, or None
    :param top: the physical address of the top-level table
    :param shifts: the address bit each level indexes from, top level first
    :param index_bits: bits of index per level, top level first
    :param page_shift: the smallest page
    :param arch: ``x86_64`` or ``aarch64`` (the entries' format)
    :param mask: the bits of an entry that are the next table's or page's address
    :param lpa2: arm64 with LPA2: OA[51:50] in bits 9:8 of each descriptor
    :param high: the kernel half's addresses have every bit from *high* up set
        (x86-64: canonical, bit 47 or 56 too; arm64: TTBR1's, bits VA_BITS up)
    """

    def __init__(self, read: ReadPhys, top: int, shifts: list, index_bits: list,
                 page_shift: int, arch: str, mask: int, high: int, lpa2: bool = False) -> None:
        self._read, self._top, self._lpa2 = read, top, lpa2
        self._levels = list(zip(shifts, index_bits))
        self.page_shift, self._arch, self._mask = page_shift, arch, mask
        self._high, self._ones = high, (1 << (64 - high)) - 1
        self._pages: Dict[int, Optional[int]] = {}

    def translate(self, vaddr: int) -> Optional[int]:
        """The physical address of *vaddr*, or None where no page maps it
        (a user or non-canonical address included)."""
        if vaddr >> self._high != self._ones:
            return None
        page = vaddr >> self.page_shift
        if page not in self._pages:
            self._pages[page] = self._walk(page << self.page_shift)
        base = self._pages[page]
        return None if base is None else base | vaddr & ((1 << self.page_shift) - 1)

    def _walk(self, vaddr: int) -> Optional[int]:
        table = self._top
        last = len(self._levels) - 1
        for level, (shift, bits) in enumerate(self._levels):
            at = table + 8 * (vaddr >> shift & ((1 << bits) - 1))
            raw = self._read(at, 8)
            if raw is None or len(raw) != 8:
                return None
            entry = int.from_bytes(raw, "little")
            if self._arch == "x86_64":
                if not entry & _X86_PRESENT:
                    return None
                huge = level != last and level >= len(self._levels) - 3 and entry & _X86_PS
            else:
                if not entry & 1:
                    return None
                huge = level != last and not entry & 2  # a block descriptor
                if level == last and not entry & 2:
                    return None  # reserved at the last level
            address = entry & self._mask
            if self._lpa2:
                address |= (entry >> 8 & 3) << 50
            if huge or level == last:
                size = 1 << shift
                return (address & ~(size - 1)) | (vaddr & (size - 1))
            table = address & ~((1 << self.page_shift) - 1)
        return None


def page_walker(info: Mapping[str, str], arch: str, read: ReadPhys,
                image_to_phys: Callable[[int], int]) -> Optional[PageWalker]:
    """The walker of the kernel's page tables that VMCOREINFO describes, or
    None where it does not say enough (or says what is not handled here).

    :param image_to_phys: a kernel image address to its physical address
        (``__pa_symbol()``)
    """
    try:
        page_shift = int(info["PAGESIZE"]).bit_length() - 1
        if arch == "x86_64":
            top = image_to_phys(int(info["SYMBOL(init_top_pgt)"], 16))
            levels = 5 if int(info.get("NUMBER(pgtable_l5_enabled)", "0")) else 4
            shifts = [12 + 9 * i for i in range(levels - 1, -1, -1)]
            sme = int(info.get("NUMBER(sme_mask)", "0"))
            return PageWalker(read, top, shifts, [9] * levels, 12, arch,
                              _X86_ADDR & ~sme, shifts[0] + 8)
        if arch == "aarch64":
            t1sz = info.get("NUMBER(TCR_EL1_T1SZ)")
            va_bits = 64 - int(t1sz, 0) if t1sz else int(info["NUMBER(VA_BITS)"])
            lpa2 = va_bits > 48 and page_shift in (12, 14)
            if va_bits > 52 or page_shift not in (12, 14, 16) or (
                    page_shift == 16 and int(info.get("NUMBER(MAX_PHYSMEM_BITS)", "48")) > 48):
                return None  # 64 KiB pages with 52-bit PA (LPA): not handled
            per = page_shift - 3
            levels = (va_bits - 4) // per  # ARM64_HW_PGTABLE_LEVELS()
            shifts = [page_shift + per * i for i in range(levels - 1, -1, -1)]
            bits = [min(per, va_bits - s) for s in shifts]
            top = image_to_phys(int(info["SYMBOL(swapper_pg_dir)"], 16))
            mask = (_ARM64_LPA2 if lpa2 else _ARM64_ADDR) & ~((1 << page_shift) - 1)
            return PageWalker(read, top, shifts, bits, page_shift, arch, mask, va_bits, lpa2)
    except (KeyError, ValueError):
        return None
    return None
