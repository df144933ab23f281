"""Read a kdump (``makedumpfile``/diskdump format) file's pages (standard library only).

drgn reads kdump files through libkdumpfile, which takes the page size from
the ``VMCOREINFO`` (``PAGESIZE=4096``) and then misreads a file whose blocks
are bigger: QEMU (7.2) writes aarch64 guests' ``kdump-*`` dumps in 64 KiB
blocks whatever the guest's page size, so every physical read fails
("Out-of-bounds PFN"). For such files oomdrgn reads the pages itself
(:class:`DiskDump`) and gives drgn only physical memory and the vmcoreinfo
(``Program.set_linux_kernel_custom``).

Format (makedumpfile's ``diskdump_mod.h``): block 0 is ``struct
disk_dump_header``, then ``sub_hdr_size`` blocks of ``struct kdump_sub_header``,
``bitmap_blocks`` blocks of two bitmaps (pages present, pages dumped), then
one ``struct page_desc`` per dumped page, in PFN order.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from typing import BinaryIO, Dict, Optional, Tuple

__all__ = ["DiskDump", "DiskDumpError", "block_size_mismatch"]

_SIGNATURE = b"KDUMP   "
# struct disk_dump_header on 64-bit targets: signature[8], int header_version,
# struct new_utsname (6 x 65), struct timeval (aligned to 8), then the fields.
_HEADER = struct.Struct("<8si390s6x16sIiiIIIIIIi")
# struct kdump_sub_header (64-bit): phys_base, dump_level, split, start_pfn,
# end_pfn, offset_vmcoreinfo, size_vmcoreinfo, offset_note, size_note,
# offset_eraseinfo, size_eraseinfo, start_pfn_64, end_pfn_64, max_mapnr_64.
_SUB_HEADER = struct.Struct("<QiiQQqQqQqQQQQ")
_PAGE_DESC = struct.Struct("<qIIQ")  # offset, size, flags, page_flags
_COMPRESSED_ZLIB = 0x1
_COMPRESSED_OTHER = {0x2: "lzo", 0x4: "snappy", 0x20: "zstd"}


class DiskDumpError(ValueError):
    """The file is not a kdump file this reader handles."""


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise DiskDumpError(f"truncated at offset {offset:#x} ({len(data)} of {size} bytes)")
    return data


def _vmcoreinfo_page_size(vmcoreinfo: bytes) -> Optional[int]:
    for line in vmcoreinfo.splitlines():
        if line.startswith(b"PAGESIZE="):
            return int(line[9:])
    return None


class DiskDump:
    """The header, vmcoreinfo and pages of one (plain, not flattened) kdump file."""

    def __init__(self, path: str, cache_blocks: int = 64) -> None:
        self.path = path
        self._f = open(path, "rb")
        try:
            self._parse()
        except BaseException:
            self._f.close()
            raise
        self._cache: "OrderedDict[int, bytes]" = OrderedDict()
        self._cache_blocks = cache_blocks

    def _parse(self) -> None:
        f = self._f
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size or not head.startswith(_SIGNATURE):
            raise DiskDumpError(f"{self.path}: not a kdump file")
        (_, self.header_version, _, _, _, self.block_size, sub_hdr_size, bitmap_blocks,
         max_mapnr, _, _, _, _, self.nr_cpus) = _HEADER.unpack(head)
        bs = self.block_size
        if bs <= 0 or bs & (bs - 1):
            raise DiskDumpError(f"{self.path}: block size {bs} is not a power of two")
        if self.header_version < 3:
            raise DiskDumpError(f"{self.path}: header version {self.header_version} "
                                "carries no vmcoreinfo")
        sub = _SUB_HEADER.unpack(_read_at(f, bs, _SUB_HEADER.size))
        self.phys_base = sub[0]
        offset_vmcoreinfo, size_vmcoreinfo = sub[5], sub[6]
        self.max_mapnr = sub[13] if self.header_version >= 6 else max_mapnr
        self.vmcoreinfo = (_read_at(f, offset_vmcoreinfo, size_vmcoreinfo)
                           if size_vmcoreinfo else b"")
        #: the ELF notes (``NT_PRSTATUS`` per CPU...), header version 4 on
        self.notes = (_read_at(f, sub[7], sub[8])
                      if self.header_version >= 4 and sub[8] > 0 else b"")
        # The second half of the bitmap area: the pages that were dumped.
        half = bitmap_blocks * bs // 2
        self._bitmap = _read_at(f, (1 + sub_hdr_size) * bs + half, half)
        self._desc_offset = (1 + sub_hdr_size + bitmap_blocks) * bs
        self._index: Optional[Dict[int, Tuple[int, int, int]]] = None

    @property
    def page_size(self) -> Optional[int]:
        """``PAGESIZE`` from the vmcoreinfo (the kernel's), if there."""
        return _vmcoreinfo_page_size(self.vmcoreinfo)

    def _build_index(self) -> Dict[int, Tuple[int, int, int]]:
        pfns = [byte * 8 + bit for byte, value in enumerate(self._bitmap) if value
                for bit in range(8) if value >> bit & 1]
        pfns = [p for p in pfns if p < self.max_mapnr]
        table = _read_at(self._f, self._desc_offset, len(pfns) * _PAGE_DESC.size)
        index = {}
        for i, pfn in enumerate(pfns):
            offset, size, flags, _ = _PAGE_DESC.unpack_from(table, i * _PAGE_DESC.size)
            index[pfn] = (offset, size, flags)
        return index

    def block(self, pfn: int) -> Optional[bytes]:
        """The ``block_size`` bytes of block ``pfn``; ``None`` if not dumped."""
        data = self._cache.get(pfn)
        if data is not None:
            self._cache.move_to_end(pfn)
            return data
        if self._index is None:
            self._index = self._build_index()
        desc = self._index.get(pfn)
        if desc is None:
            return None
        offset, size, flags = desc
        raw = _read_at(self._f, offset, size)
        if flags & _COMPRESSED_ZLIB:
            data = zlib.decompress(raw)
        elif flags:
            name = next((n for bit, n in _COMPRESSED_OTHER.items() if flags & bit), hex(flags))
            raise DiskDumpError(f"{self.path}: {name}-compressed pages are not supported "
                                "here (dump with kdump-zlib or elf)")
        else:
            data = raw
        if len(data) != self.block_size:
            raise DiskDumpError(f"{self.path}: block {pfn:#x} holds {len(data)} bytes")
        self._cache[pfn] = data
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return data

    def read(self, address: int, count: int) -> bytes:
        """``count`` bytes of physical memory at ``address``.

        :raises LookupError: if a block in that range was not dumped.
        """
        out = bytearray()
        bs = self.block_size
        while count > 0:
            pfn, start = divmod(address, bs)
            n = min(count, bs - start)
            data = self.block(pfn)
            if data is None:
                raise LookupError(f"physical address {address:#x} is not in the dump")
            out += data[start:start + n]
            address += n
            count -= n
        return bytes(out)

    def close(self) -> None:
        self._f.close()


def block_size_mismatch(path: str) -> Optional[Tuple[int, int]]:
    """``(block_size, page_size)`` if kdump file ``path`` has blocks of another
    size than the kernel's pages (QEMU's aarch64 dumps), else ``None``."""
    try:
        dump = DiskDump(path)
    except (DiskDumpError, OSError):
        return None
    try:
        page_size = dump.page_size
        if page_size and page_size != dump.block_size:
            return dump.block_size, page_size
        return None
    finally:
        dump.close()
