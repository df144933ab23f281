"""The kernel's export table (``__ksymtab``, ``__ksymtab_gpl``) found by its
layout in the kernel image: exported symbols, data ones included, with their
names, where kallsyms holds functions only (standard library only).

With ``CONFIG_HAVE_ARCH_PREL32_RELOCATIONS`` (x86-64, arm64) each entry is
``struct kernel_symbol { int value_offset; int name_offset; int namespace_offset; }``,
each offset relative to its own field (include/linux/export.h; written by
modpost since ddb5cdbafaaa ("kbuild: generate KSYMTAB entries by modpost") (in
v6.5), still one ``___ksymtab+NAME`` section each), the table sorted by name
(``SORT(___ksymtab+*)`` in include/asm-generic/vmlinux.lds.h), the names in
``__ksymtab_strings`` (merged: a name may be the tail of a longer one). The
namespace field is there since 8651ec01daed ("module: add support for symbol
namespaces.") (in v5.4); before, entries are 8 bytes. Kernels with absolute
entries (no PREL32) are not read.
"""

from __future__ import annotations

import re
from array import array
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["find_ksymtab", "KsymtabError"]

_MASK64 = (1 << 64) - 1
#: how far before its name string an entry may be (both tables, the CRCs, the strings)
_WINDOW = 4 << 20
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_.$]*\Z")
#: a table shorter than this is not taken for the export table
_MIN_RUN = 16


class KsymtabError(ValueError):
    """No export table, or one that disagrees with kallsyms."""


class _Image:
    def __init__(self, data: bytes, base: int, little: bool) -> None:
        self.data, self.base = data, base
        self.s32 = array("i", data[:len(data) // 4 * 4])
        if little != (array("i", b"\1\0\0\0")[0] == 1):
            self.s32.byteswap()

    def string(self, address: int, limit: int = 256) -> Optional[bytes]:
        """The NUL-terminated string at *address* (maybe the tail of a longer
        one: the linker merges them), or None."""
        at = (address - self.base) & _MASK64
        if not 0 <= at < len(self.data):
            return None
        end = self.data.find(b"\0", at, at + limit)
        return None if end < 0 else self.data[at:end]

    def field(self, at: int) -> int:
        """The address a PREL32 field at byte offset *at* points at."""
        return (self.base + at + self.s32[at // 4]) & _MASK64


def _entry(img: _Image, at: int, stride: int) -> Optional[Tuple[str, int]]:
    if at < 0 or at + stride > len(img.s32) * 4:
        return None
    name = img.string(img.field(at + 4), 128)
    if name is None or not _NAME.match(name):
        return None
    if stride == 12 and img.string(img.field(at + 8), 128) is None:
        return None
    return name.decode(), img.field(at)


def _walk(img: _Image, at: int, stride: int) -> List[Tuple[str, int]]:
    """The valid entries around the one at *at*, in table order."""
    before, i = [], at - stride
    while (e := _entry(img, i, stride)) is not None:
        before.append(e)
        i -= stride
    after, i = [], at
    while (e := _entry(img, i, stride)) is not None:
        after.append(e)
        i += stride
    return before[::-1] + after


def _runs(entries: Sequence[Tuple[str, int]]) -> List[List[Tuple[str, int]]]:
    """*entries* cut where the name order restarts (``__ksymtab`` then ``__ksymtab_gpl``)."""
    runs: List[List[Tuple[str, int]]] = []
    for e in entries:
        if runs and runs[-1][-1][0].encode() < e[0].encode():
            runs[-1].append(e)
        else:
            runs.append([e])
    return runs


def _anchored(img: _Image, anchors: Mapping[str, int]) -> Optional[Tuple[int, int]]:
    """``(byte offset, stride)`` of an entry exporting one of *anchors* (name:
    address). A name may be the tail of a longer string (the linker merges
    ``__ksymtab_strings``), so every ``name\\0`` is a candidate."""
    targets: Dict[int, int] = {}
    for name, address in anchors.items():
        needle = name.encode() + b"\0"
        pos = img.data.find(needle)
        while pos >= 0:
            targets[pos] = address
            pos = img.data.find(needle, pos + 1)
    if not targets:
        return None
    s32 = img.s32
    lo = max(1, (min(targets) - _WINDOW) // 4)
    for i in range(lo, min(max(targets) // 4, len(s32))):
        # the name field at byte 4*i points at a candidate string
        value = targets.get(s32[i] + 4 * i)
        if value is not None and img.field(4 * i - 4) == value:
            at = 4 * i - 4
            for stride in (12, 8):
                if _entry(img, at + stride, stride) or _entry(img, at - stride, stride):
                    return at, stride
    return None


def find_ksymtab(data: bytes, base: int, anchors: Mapping[str, int],
                 unique: Mapping[str, int], little_endian: bool = True) -> Dict[str, int]:
    """The exported symbols ``{name: address}`` of the kernel image bytes *data*
    (kernel virtual address *base*; it must hold the tables and their strings).

    :param anchors: exported functions and their kallsyms addresses, tried in
        order to find one entry of the table
    :param unique: every function kallsyms holds once, by name: each exported
        one must be there at the same address (the check of the whole table)
    :raises KsymtabError: no table found, or it disagrees with kallsyms
    """
    img = _Image(data, base, little_endian)
    hit = _anchored(img, anchors)
    if hit is None:
        raise KsymtabError("no export table (__ksymtab) found: none of "
                           f"{', '.join(list(anchors)[:4])} is exported where kallsyms puts it")
    runs = [r for r in _runs(_walk(img, *hit)) if len(r) >= _MIN_RUN]
    found: Dict[str, int] = {}
    for run in runs[:2]:  # __ksymtab, __ksymtab_gpl
        found.update(run)
    checked = 0
    for name, address in found.items():
        known = unique.get(name)
        if known is not None:
            if known != address:
                raise KsymtabError(f"export table: {name} at {address:#x}, kallsyms says "
                                   f"{known:#x}")
            checked += 1
    if checked < len(found) // 4:
        raise KsymtabError(f"export table: only {checked} of {len(found)} entries are "
                           "functions kallsyms knows")
    return found
