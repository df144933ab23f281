"""Raw RAM images: bank specs, overlap and VMCOREINFO search (synthetic banks)."""

import pytest

from oomdrgn.core.rawimage import (PhysicalMemory, RawImageError, find_vmcoreinfo,
                                   open_banks, parse_bank_spec, parse_vmcoreinfo)
from oomdrgn.core.rawkernel import set_kernel_offset

INFO = b"OSRELEASE=6.1.0-50-cloud-amd64\nBUILD-ID=ab\nPAGESIZE=4096\n" \
       b"SYMBOL(swapper_pg_dir)=ffffffff8260a000\nKERNELOFFSET=0\n"


@pytest.mark.parametrize("spec, want", [("ram.bin@0x80000000", ("ram.bin", 0x80000000)),
                                        ("ram.bin@4096", ("ram.bin", 4096)),
                                        ("dir/a@b.bin@0x0", ("dir/a@b.bin", 0)),
                                        ("ram.bin@0x8000_0000", ("ram.bin", 0x80000000))])
def test_parse_bank_spec(spec, want):
    assert parse_bank_spec(spec) == want


@pytest.mark.parametrize("spec", ["ram.bin", "ram.bin@", "ram.bin@zz", "@0x0", "ram.bin@-1"])
def test_bad_bank_spec(spec):
    with pytest.raises(RawImageError):
        parse_bank_spec(spec)


def _bank(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_banks_sorted_and_read_across(tmp_path):
    a = _bank(tmp_path, "a", b"A" * 8192)
    b = _bank(tmp_path, "b", b"B" * 4096)
    banks = open_banks([f"{b}@0x2000", f"{a}@0"])
    assert [x.paddr for x in banks] == [0, 0x2000]
    mem = PhysicalMemory(banks)
    assert mem.read(0x1ffe, 4) == b"AABB"
    with pytest.raises(LookupError):
        mem.read(0x2ffe, 4)


def test_overlapping_and_empty_banks(tmp_path):
    a = _bank(tmp_path, "a", b"A" * 8192)
    with pytest.raises(RawImageError, match="overlap"):
        open_banks([f"{a}@0", f"{a}@0x1000"])
    with pytest.raises(RawImageError, match="empty"):
        open_banks([_bank(tmp_path, "e", b"") + "@0"])
    with pytest.raises(RawImageError, match="no such"):
        open_banks([str(tmp_path / "missing") + "@0"])


def test_vmcoreinfo_found_as_the_page_and_as_the_note(tmp_path):
    page = INFO + b"\0" * (4096 - len(INFO))
    note = (b"\x0b\0\0\0" + len(INFO).to_bytes(4, "little") + b"\0\0\0\0"
            + b"VMCOREINFO\0\0" + INFO)
    noise = b"x" * 100 + b"OSRELEASE=not aligned\nPAGESIZE=4096\n"
    data = noise.ljust(4096, b"\0") + page + note.ljust(4096, b"\0")
    mem = PhysicalMemory(open_banks([_bank(tmp_path, "r", data) + "@0x40000000"]))
    hits = list(find_vmcoreinfo(mem))
    assert [(h.paddr, h.where) for h in hits] == [(0x40001000, "vmcoreinfo_data"),
                                                  (0x40002018, "vmcoreinfo_note")]
    assert all(h.text == INFO for h in hits)


def test_kernel_offset_moves_the_symbols():
    text = set_kernel_offset(INFO, 0x2a000000)
    info = parse_vmcoreinfo(text)
    assert info["KERNELOFFSET"] == "2a000000"
    assert info["SYMBOL(swapper_pg_dir)"] == "ffffffffac60a000"


def test_phys_base_below_zero():
    # The kernel writes phys_base with %ld: below 0 where its physical KASLR
    # offset is smaller than its virtual one; __pa_symbol() wraps as unsigned long.
    from oomdrgn.core.rawkernel import START_KERNEL_MAP, kernel_phys
    info = {"NUMBER(phys_base)": str(-0x1e000000)}
    assert kernel_phys(info, "x86_64", START_KERNEL_MAP + 0x21000000) == 0x3000000
    assert kernel_phys({"NUMBER(phys_base)": "0x1000000"}, "x86_64",
                       START_KERNEL_MAP + 0x200000) == 0x1200000


def test_slicer_reads_within_one_bank(tmp_path):
    a = _bank(tmp_path, "a", b"abcd" * 1024)
    b = _bank(tmp_path, "b", b"wxyz" * 1024)
    read = PhysicalMemory(open_banks([f"{b}@0x2000", f"{a}@0x1000"])).slicer()
    assert read(0x1004, 4) == b"abcd" and read(0x2ffc, 4) == b"wxyz"
    assert read(0x0, 4) is None  # below every bank
    assert read(0x1ffe, 4) is None  # runs past its bank (the next one is read apart)
    assert read(0x3000, 1) is None


def test_span_is_a_view_within_one_bank_and_outlives_close(tmp_path):
    a = _bank(tmp_path, "a", bytes(range(256)) * 32)
    b = _bank(tmp_path, "b", b"wxyz" * 1024)
    mem = PhysicalMemory(open_banks([f"{b}@0x2000", f"{a}@0"]))
    view = mem.span(0x100, 0x200)
    assert isinstance(view, memoryview) and bytes(view) == mem.read(0x100, 0x200)
    assert mem.span(0x1ffe, 4) is None  # runs into the next bank: read it
    assert mem.span(0x4000, 1) is None  # in no bank
    mem.close()  # a view still held keeps its mapping
    assert bytes(view[-2:]) == bytes([0xfe, 0xff])


def test_holds_searches_within_one_bank(tmp_path):
    a = _bank(tmp_path, "a", b"." * 100 + b"\x016needle" + b"." * 3988)
    b = _bank(tmp_path, "b", b"wxyz" * 1024)
    mem = PhysicalMemory(open_banks([f"{b}@0x2000", f"{a}@0x1000"]))
    assert mem.holds(0x1000, 0x1000, b"\x016needle") is True
    assert mem.holds(0x1064, 8, b"\x016needle") is True  # exactly its bytes
    assert mem.holds(0x1065, 0x800, b"\x016needle") is False  # starts before the range
    assert mem.holds(0x1000, 0x6b, b"\x016needle") is False  # ends after it
    assert mem.holds(0x2000, 0x1000, b"\x016needle") is False
    assert mem.holds(0x1ffe, 4, b"..wx") is None  # runs into the next bank
    assert mem.holds(0x4000, 1, b"w") is None  # in no bank
