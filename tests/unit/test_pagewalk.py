"""Page tables walked as the MMU walks them (:mod:`oomdrgn.core.pagewalk`), on
hand-built tables: x86-64 4 and 5 levels (4 KiB, 2 MiB and 1 GiB pages, the SME
bit), arm64 4 KiB, 16 KiB and 64 KiB granules (pages and blocks). The real
kernels' tables are read in tests/vm/test_elfcore_real.py against drgn's."""

from typing import Dict

import pytest

from oomdrgn.core.pagewalk import page_walker

IMAGE_OFF = 0xFFFFFFFF80000000


class Phys:
    """Physical memory of 8-byte entries."""

    def __init__(self) -> None:
        self.words: Dict[int, int] = {}

    def put(self, table: int, index: int, entry: int) -> None:
        self.words[table + 8 * index] = entry

    def read(self, paddr: int, size: int):
        assert size == 8
        return self.words.get(paddr, 0).to_bytes(8, "little")


def _x86(levels: int, sme: int = 0):
    mem = Phys()
    top = 0x1000
    info = {"PAGESIZE": "4096", "SYMBOL(init_top_pgt)": f"{IMAGE_OFF + top:x}",
            "NUMBER(pgtable_l5_enabled)": "1" if levels == 5 else "0",
            "NUMBER(sme_mask)": str(sme)}
    walker = page_walker(info, "x86_64", mem.read, lambda v: v - IMAGE_OFF)
    return mem, top, walker


def _index(vaddr: int, shift: int, bits: int = 9) -> int:
    return vaddr >> shift & ((1 << bits) - 1)


@pytest.mark.parametrize("levels", [4, 5])
def test_x86_64_pages(levels):
    sme = 1 << 47
    mem, top, walker = _x86(levels, sme)
    vaddr = 0xFFFFC90000123000 if levels == 4 else 0xFFA0000000123000
    shifts = [48, 39, 30, 21, 12][5 - levels:]
    table = top
    for i, shift in enumerate(shifts[:-1]):
        nxt = 0x10000 * (i + 2)
        mem.put(table, _index(vaddr, shift), nxt | sme | 0x63)  # present, rw, accessed
        table = nxt
    mem.put(table, _index(vaddr, 12), 0x7654000 | sme | 1 << 63 | 0x63)  # NX set
    assert walker.translate(vaddr + 0x123) == 0x7654123
    assert walker.translate(vaddr + 0x1000) is None  # no entry: not present
    assert walker.translate(vaddr & (1 << 47) - 1) is None  # a user address
    assert walker.translate(vaddr ^ 1 << 60) is None  # not canonical


def test_x86_64_huge_pages():
    mem, top, walker = _x86(4)
    two_m = 0xFFFFC90000400000
    one_g = 0xFFFFC90040000000
    mem.put(top, _index(two_m, 39), 0x20000 | 1)
    mem.put(0x20000, _index(two_m, 30), 0x30000 | 1)
    mem.put(0x30000, _index(two_m, 21), 0x80000000 | 1 << 12 | 1 << 7 | 1)  # PS, PAT
    assert walker.translate(two_m + 0x12345) == 0x80012345
    mem.put(0x20000, _index(one_g, 30), 0x140000000 | 1 << 7 | 1)
    assert walker.translate(one_g + 0x1234567) == 0x141234567


@pytest.mark.parametrize("page_shift,levels,block_level", [(12, 4, 2), (14, 4, 2), (16, 3, 1)])
def test_arm64_granules(page_shift, levels, block_level):
    mem = Phys()
    top = 0x40000000
    info = {"PAGESIZE": str(1 << page_shift), "NUMBER(VA_BITS)": "48",
            "SYMBOL(swapper_pg_dir)": f"{IMAGE_OFF + top:x}"}
    walker = page_walker(info, "aarch64", mem.read, lambda v: v - IMAGE_OFF)
    per = page_shift - 3
    shifts = [page_shift + per * i for i in range(levels - 1, -1, -1)]
    bits = [min(per, 48 - s) for s in shifts]
    vaddr = 0xFFFF800012340000 & ~((1 << page_shift) - 1)
    table = top
    for i, (shift, b) in enumerate(zip(shifts[:-1], bits)):
        nxt = top + (i + 1) * (1 << page_shift)
        mem.put(table, _index(vaddr, shift, b), nxt | 0b11)  # valid table
        table = nxt
    mem.put(table, _index(vaddr, shifts[-1], bits[-1]), 0x48000000 | 1 << 54 | 0b11)  # UXN
    assert walker.translate(vaddr + 0x10) == 0x48000010
    assert walker.translate(vaddr + (1 << page_shift)) is None
    assert walker.translate(vaddr & (1 << 48) - 1) is None  # TTBR0's
    # A block descriptor (bit 1 clear) one level up maps the whole block.
    block = 0xFFFF800080000000
    size_shift = shifts[block_level]
    table = top
    for i, (shift, b) in enumerate(zip(shifts[:block_level], bits)):
        nxt = top + (10 + i) * (1 << page_shift)
        mem.put(table, _index(block, shift, b), nxt | 0b11)
        table = nxt
    mem.put(table, _index(block, size_shift, bits[block_level]), 0x80000000 | 0b01)
    assert walker.translate(block + 0x4321) == 0x80004321


def test_what_vmcoreinfo_does_not_say():
    assert page_walker({"PAGESIZE": "4096"}, "x86_64", Phys().read, int) is None
    # 64 KiB pages with 52-bit physical addresses (FEAT_LPA: OA[51:48] in bits 15:12).
    assert page_walker({"PAGESIZE": "65536", "NUMBER(VA_BITS)": "52",
                        "NUMBER(MAX_PHYSMEM_BITS)": "52", "SYMBOL(swapper_pg_dir)": "0"},
                       "aarch64", Phys().read, int) is None


def test_arm64_lpa2():
    # 4 KiB pages, a 52-bit VA in use (TCR_EL1.T1SZ 12): five levels, the top one
    # of 16 entries, OA[51:50] in bits 9:8 (Debian's 6.12 arm64 under QEMU's max CPU).
    mem = Phys()
    top = 0x40000000
    info = {"PAGESIZE": "4096", "NUMBER(VA_BITS)": "52", "NUMBER(TCR_EL1_T1SZ)": "0xc",
            "SYMBOL(swapper_pg_dir)": f"{IMAGE_OFF + top:x}"}
    walker = page_walker(info, "aarch64", mem.read, lambda v: v - IMAGE_OFF)
    vaddr = 0xFFF0800000345000
    table = top
    for i, shift in enumerate([48, 39, 30, 21]):
        nxt = top + (i + 1) * 0x1000
        mem.put(table, _index(vaddr, shift, 4 if shift == 48 else 9), nxt | 0b11)
        table = nxt
    mem.put(table, _index(vaddr, 12), 0x48000000 | 0b10 << 8 | 0b11)  # OA[51:50] = 2
    assert walker.translate(vaddr + 1) == 2 << 50 | 0x48000001
    assert walker.translate(0xFFE0800000345000) is None  # below the 52-bit space
