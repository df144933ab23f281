"""oomdrgn.core.diskdump on small kdump files written here (no QEMU): the reader
behind QEMU's aarch64 kdump-zlib dumps (64 KiB blocks, 4 or 16 KiB kernel pages)."""

import struct
import zlib

import pytest

from oomdrgn.core.diskdump import DiskDump, DiskDumpError, block_size_mismatch


def write_kdump(path, blocks, block_size, max_mapnr, page_size=4096, compress=True):
    """A kdump file (header version 6) holding ``blocks`` ({pfn: bytes})."""
    vmcoreinfo = b"OSRELEASE=test\nPAGESIZE=%d\n" % page_size
    bitmap_len = max(block_size, (max_mapnr + 7) // 8)
    bitmap_blocks = 2 * ((bitmap_len + block_size - 1) // block_size)
    header = struct.pack("<8si390s6x16sIiiIIIIIIi", b"KDUMP   ", 6, b"", b"", 0, block_size,
                         1, bitmap_blocks, max_mapnr, 0, 0, 0, 0, 1)
    dumped = bytearray(bitmap_blocks * block_size // 2)
    for pfn in blocks:
        dumped[pfn // 8] |= 1 << (pfn % 8)
    desc_off = (2 + bitmap_blocks) * block_size
    data_off = desc_off + 24 * len(blocks)
    vmcoreinfo_off = data_off
    data_off += len(vmcoreinfo)
    descs, datas = b"", b""
    for pfn in sorted(blocks):
        raw = zlib.compress(blocks[pfn]) if compress else blocks[pfn]
        descs += struct.pack("<qIIQ", data_off + len(datas), len(raw), 1 if compress else 0, 0)
        datas += raw
    sub = struct.pack("<QiiQQqQqQqQQQQ", 0x40000000, 1, 0, 0, max_mapnr, vmcoreinfo_off,
                      len(vmcoreinfo), 0, 0, 0, 0, 0, max_mapnr, max_mapnr)
    with open(path, "wb") as f:
        f.write(header.ljust(block_size, b"\0"))
        f.write(sub.ljust(block_size, b"\0"))
        f.write(bytes(len(dumped)))  # first bitmap: not read
        f.write(dumped)
        f.write(descs + vmcoreinfo + datas)


def _block(pfn, size):
    return bytes((pfn * 7 + i) & 0xff for i in range(size))


@pytest.mark.parametrize("page_size", [4096, 16384])
@pytest.mark.parametrize("compress", [True, False])
def test_reads_across_64k_blocks(tmp_path, compress, page_size):
    bs = 65536
    blocks = {pfn: _block(pfn, bs) for pfn in (0x4000, 0x4001, 0x4003)}
    path = tmp_path / "vmcore"
    write_kdump(path, blocks, bs, max_mapnr=0x5000, page_size=page_size, compress=compress)
    assert block_size_mismatch(str(path)) == (65536, page_size)
    dump = DiskDump(str(path))
    assert dump.page_size == page_size and dump.phys_base == 0x40000000
    start = 0x4000 * bs + bs - 100
    assert dump.read(start, 300) == blocks[0x4000][-100:] + blocks[0x4001][:200]
    with pytest.raises(LookupError):
        dump.read(0x4002 * bs + 8, 8)  # not dumped
    with pytest.raises(LookupError):
        dump.read(0x4001 * bs + bs - 8, 16)  # runs into a block not dumped
    dump.close()


@pytest.mark.parametrize("size", [4096, 16384, 65536])
def test_same_sizes_are_left_to_libkdumpfile(tmp_path, size):
    path = tmp_path / "vmcore"
    write_kdump(path, {1: _block(1, size)}, size, max_mapnr=16, page_size=size)
    assert block_size_mismatch(str(path)) is None


def test_not_kdump(tmp_path):
    path = tmp_path / "vmcore"
    path.write_bytes(b"\x7fELF" + bytes(600))
    assert block_size_mismatch(str(path)) is None
    with pytest.raises(DiskDumpError):
        DiskDump(str(path))
