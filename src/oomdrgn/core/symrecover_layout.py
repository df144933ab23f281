"""Data symbols of a function-only kallsyms found by their layout in the
kernel image's ``.rodata`` (:mod:`oomdrgn.core.symrecover`'s "layout" source;
standard library and core only): ``gfpflag_names``, ``vmstat_text``,
``taint_flags``."""

from __future__ import annotations

import collections
from typing import Dict, Optional, Set

from .symrecover_base import MASK64, Ctx, one, pointers
from .taint import TAINT_LETTERS, taint_run

__all__ = ["gfpflag_names", "vmstat_text", "taint_flags"]


def gfpflag_names(c: Ctx, data: bytes, base: int) -> None:
    # The array of struct trace_print_flags {mask, name} whose first name is
    # "GFP_TRANSHUGE" (__def_gfpflag_names, include/trace/events/mmflags.h).
    name = "gfpflag_names"
    order = c.order
    try:
        size = c.btf.sizeof("struct trace_print_flags")
        name_off = c.off("struct trace_print_flags", "name")
    except LookupError:
        c.out.miss(name, "layout: no struct trace_print_flags in BTF")
        return
    found = set()
    pos = data.find(b"\0GFP_TRANSHUGE\0")
    while pos >= 0:
        pointer = (base + pos + 1).to_bytes(8, order)
        at = data.find(pointer)
        while at >= 0:
            start = at - name_off
            if start % 8 == 0 and _gfp_table(c, data, base, start, size, name_off):
                found.add(base + start)
            at = data.find(pointer, at + 1)
        pos = data.find(b"\0GFP_TRANSHUGE\0", pos + 1)
    # Trace events keep their own copies (__print_flags() in
    # include/trace/stages/stage3_trace_output.h), ended by {-1, NULL} up to
    # v6.12 and by nothing after (ARRAY_SIZE(); 7.2's source, commit not checked
    # here): zeros may follow one. The copy flags_string() (lib/vsprintf.c,
    # %pGg) uses is gfpflag_names.
    if len(found) > 1:
        found &= pointers(c, "flags_string")
    if len(found) == 1:
        c.out.add(name, found.pop(), 0, "layout: .rodata")
    else:
        c.out.miss(name, f"layout: {len(found)} arrays of GFP flag names")


def vmstat_text(c: Ctx, data: bytes, base: int) -> None:
    # const char * const vmstat_text[] = { "nr_free_pages", ... } (mm/vmstat.c):
    # the one array whose first three entries point at the names of enum
    # zone_stat_item's counters 0, 1, 2, lower-cased (from BTF; an alias such
    # as NR_ZONE_LRU_BASE shares a value: any of a value's names).
    from .btf import KIND_ENUM
    ids = c.btf.find("zone_stat_item", (KIND_ENUM,))
    names: Dict[int, Set[bytes]] = collections.defaultdict(set)
    for n, v in c.btf.enumerators(ids[0]) if ids else ():
        names[v].add(n.lower().encode())
    found = []
    first = data.find(b"\0nr_free_pages\0")
    if first >= 0 and names[1] and names[2]:
        pointer = (base + first + 1).to_bytes(8, c.order)
        at = data.find(pointer)
        while at >= 0:
            if at % 8 == 0 and all(_string_at(c, data, base, at + 8 * i) in names[i]
                                   for i in (1, 2)):
                found.append(base + at)
            at = data.find(pointer, at + 1)
    one(c, "vmstat_text", found, "layout: .rodata")


#: the letters every kernel with taint_flags[] has (W, bit 9, since v2.6.26)
_TAINT_SURE = 10


def taint_flags(c: Ctx, data: bytes, base: int) -> None:
    # const struct taint_flag taint_flags[TAINT_FLAGS_COUNT] (kernel/panic.c,
    # since 7fd8329ba502 ("taint/module: Clean up global and module taint
    # flags handling") (in v4.10)): {c_true, c_false, ...} per bit, P/G first.
    # Its length is the run of entries with the letters of TAINT_LETTERS.
    name = "taint_flags"
    t = "struct taint_flag"
    try:
        size = c.btf.sizeof(t)
        on, off = c.off(t, "c_true"), c.off(t, "c_false")
    except LookupError:
        c.out.miss(name, f"layout: no {t} in BTF")
        return
    if off != on + 1:
        c.out.miss(name, f"layout: {t}'s c_false does not follow c_true")
        return
    align = 8 if size % 8 == 0 else 1  # a desc pointer (6.12's, not 6.1's) aligns it
    found = []
    pos = data.find(b"PG")
    while pos >= 0:
        start = pos - on
        if start >= 0 and start % align == 0:
            count = taint_run(data[start:start + len(TAINT_LETTERS) * size], size, on, off,
                              TAINT_LETTERS)
            if count >= _TAINT_SURE:
                found.append((base + start, count * size))
        pos = data.find(b"PG", pos + 1)
    if len(found) == 1:
        c.out.add(name, found[0][0], found[0][1], "layout: .rodata")
    else:
        c.out.miss(name, f"layout: {len(found)} arrays of taint letters")


def _string_at(c: Ctx, data: bytes, base: int, at: int) -> Optional[bytes]:
    """The string the pointer at *at* in *data* points at (inside *data*), or None."""
    s = (int.from_bytes(data[at:at + 8], c.order) - base) & MASK64
    end = data.find(b"\0", s, s + 128) if s < len(data) else -1
    return data[s:end] if end >= 0 else None


def _gfp_table(c: Ctx, data: bytes, base: int, start: int, size: int, name_off: int) -> bool:
    order = c.order
    for i in range(64):
        at = start + i * size + name_off
        if at + 8 > len(data):
            return False
        ptr = int.from_bytes(data[at:at + 8], order)
        if ptr == 0:  # {0, NULL} ends it; a trace event's copy ends with {-1, NULL}
            mask = int.from_bytes(data[start + i * size:start + i * size + 8], order)
            return i >= 8 and mask == 0
        s = (ptr - base) & MASK64
        if s >= len(data):
            return False
        text = data[s:data.find(b"\0", s)]
        if not (text.startswith(b"GFP_") or text.startswith(b"__GFP_")):
            return False
    return False
