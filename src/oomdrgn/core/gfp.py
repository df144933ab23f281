"""The first line of the OOM report: ``dump_header()``'s ``invoked oom-killer``
line, ``%pGg`` (the gfp flag names), ``gfp_zone()`` and ``--gfp`` parsing.

The flag names and masks are read from the kernel's own ``gfpflag_names[]``
(``mm/debug.c``, ``struct trace_print_flags {mask, name}``, ended by a NULL
name) and printed as ``lib/vsprintf.c`` ``format_flags()`` prints them; the
line's era is the format found in the kernel's ``.rodata``.
"""

from __future__ import annotations

import re
from typing import Dict, List, Literal, Optional, Sequence, Tuple

from .memo import once_per
from .cformat import cformat
from .errors import ReadError
from .formats import bitmap_list
from .kstrings import has_format
from .port import Target
from .record import record

__all__ = ["GfpFlagNames", "FALLBACK_GFPFLAG_NAMES", "gfpflag_names", "format_flags",
           "format_gfp", "gfp_zone", "InvokedFormat", "INVOKED_FORMATS", "invoked_format",
           "invoked_line", "compaction_warning", "compaction_line", "parse_gfp", "max_order"]

#: ``((mask, name), ...)`` in table order, as ``gfpflag_names[]`` holds them.
GfpFlagNames = Tuple[Tuple[int, str], ...]

#: Used only when the kernel has no ``gfpflag_names`` symbol (before v4.6, or
#: no symbols): Debian 6.1.176 amd64's table, read from that vmlinux's
#: ``gfpflag_names[]`` (``__def_gfpflag_names`` of include/trace/events/mmflags.h,
#: with that build's ``___GFP_*`` values; CONFIG_KASAN off, so no ``__GFP_SKIP_*``).
#: Other eras and configs number the flags differently: the names may be wrong there.
FALLBACK_GFPFLAG_NAMES: GfpFlagNames = (
    (0x1c24ca, "GFP_TRANSHUGE"), (0x1c20ca, "GFP_TRANSHUGE_LIGHT"),
    (0x100cca, "GFP_HIGHUSER_MOVABLE"), (0x100cc2, "GFP_HIGHUSER"), (0x100cc0, "GFP_USER"),
    (0x400cc0, "GFP_KERNEL_ACCOUNT"), (0xcc0, "GFP_KERNEL"), (0xc40, "GFP_NOFS"),
    (0xa20, "GFP_ATOMIC"), (0xc00, "GFP_NOIO"), (0x800, "GFP_NOWAIT"), (0x1, "GFP_DMA"),
    (0x2, "__GFP_HIGHMEM"), (0x4, "GFP_DMA32"), (0x20, "__GFP_HIGH"), (0x200, "__GFP_ATOMIC"),
    (0x40, "__GFP_IO"), (0x80, "__GFP_FS"), (0x2000, "__GFP_NOWARN"),
    (0x4000, "__GFP_RETRY_MAYFAIL"), (0x8000, "__GFP_NOFAIL"), (0x10000, "__GFP_NORETRY"),
    (0x40000, "__GFP_COMP"), (0x100, "__GFP_ZERO"), (0x80000, "__GFP_NOMEMALLOC"),
    (0x20000, "__GFP_MEMALLOC"), (0x100000, "__GFP_HARDWALL"), (0x200000, "__GFP_THISNODE"),
    (0x10, "__GFP_RECLAIMABLE"), (0x8, "__GFP_MOVABLE"), (0x400000, "__GFP_ACCOUNT"),
    (0x1000, "__GFP_WRITE"), (0xc00, "__GFP_RECLAIM"), (0x400, "__GFP_DIRECT_RECLAIM"),
    (0x800, "__GFP_KSWAPD_RECLAIM"), (0x800000, "__GFP_ZEROTAGS"),
)

# Lifetime: per target (the table is const data of the kernel image).
_MAX_ENTRIES = 256


def _read_names(target: Target) -> Optional[GfpFlagNames]:
    sym = target.symbol("gfpflag_names")
    if sym is None:
        return None
    try:
        size = target.sizeof("struct trace_print_flags")
        mask_m = target.member("struct trace_print_flags", "mask")
        name_m = target.member("struct trace_print_flags", "name")
    except LookupError:
        size, mask_m, name_m = 16, None, None
    order: Literal["little", "big"] = "little" if target.little_endian else "big"
    mask_off, mask_size = (mask_m.offset, mask_m.size) if mask_m else (0, 8)
    name_off = name_m.offset if name_m else 8
    from .kstrings import read_cstring
    out: List[Tuple[int, str]] = []
    try:
        for i in range(_MAX_ENTRIES):
            entry = target.read(sym[0] + i * size, size)
            name_ptr = int.from_bytes(entry[name_off:name_off + 8], order)
            if not name_ptr:
                return tuple(out)
            name = read_cstring(target, name_ptr, 64)
            if name is None:
                raise ReadError(f"gfpflag_names[{i}].name unreadable")
            out.append((int.from_bytes(entry[mask_off:mask_off + mask_size], order), name))
    except ReadError:
        return None
    return None  # no terminating entry: not the table we know


@once_per
def gfpflag_names(target: Target) -> Tuple[GfpFlagNames, bool]:
    """``(table, from_memory)``: the kernel's ``gfpflag_names[]`` (``from_memory``
    True), else :data:`FALLBACK_GFPFLAG_NAMES` (False). Read once per target."""
    names = _read_names(target)
    return (names, True) if names else (FALLBACK_GFPFLAG_NAMES, False)


def format_flags(flags: int, names: GfpFlagNames) -> str:
    """``lib/vsprintf.c`` ``format_flags()`` (since Linux kernel commit
    edf14cdbf9a0 ("mm, printk: introduce new format string for flags") (in v4.6),
    unchanged since): each name whose whole mask is set, in table order, its bits
    cleared; ``|`` between them; leftover bits as ``%#lx``; nothing for 0."""
    out = []
    flags &= (1 << 64) - 1
    for mask, name in names:
        if not flags:
            break
        if flags & mask != mask:
            continue
        flags &= ~mask
        out.append(name)
    text = "|".join(out)
    if flags:
        # number() with default_flag_spec (SPECIAL|SMALL, base 16): "0x" + hex.
        text += ("|" if out else "") + "0x%x" % flags
    return text


def format_gfp(target_or_reader, gfp_mask: int) -> str:
    """What ``%pGg`` prints for *gfp_mask* (``GFP_KERNEL``, ``GFP_HIGHUSER_MOVABLE|__GFP_COMP``)."""
    return format_flags(gfp_mask, gfpflag_names(_target(target_or_reader))[0])


def _target(target_or_reader) -> Target:
    return getattr(target_or_reader, "target", target_or_reader)


# gfp_zone() ------------------------------------------------------------------

# ___GFP_DMA, ___GFP_HIGHMEM, ___GFP_DMA32, ___GFP_MOVABLE: bits 0-3 in every
# era; #defines (not in the debug info) before the ___GFP_*_BIT enum of v6.10
# ("mm: enumerate all gfp flags", hash not checked here), which is read if present.
_ZONE_BITS = (("___GFP_DMA_BIT", 0), ("___GFP_HIGHMEM_BIT", 1), ("___GFP_DMA32_BIT", 2),
              ("___GFP_MOVABLE_BIT", 3))


def _zones_shift(max_nr_zones: int) -> int:
    """include/linux/page-flags-layout.h ``ZONES_SHIFT``."""
    for limit, shift in ((1, 0), (2, 1), (4, 2), (8, 3)):
        if max_nr_zones <= limit:
            return shift
    raise ValueError(f"MAX_NR_ZONES {max_nr_zones} too large")


def gfp_zone(target_or_reader, gfp_mask: int) -> int:
    """``gfp_zone()`` (include/linux/gfp.h): the highest zone (``enum zone_type``)
    *gfp_mask* may use, from ``GFP_ZONE_TABLE`` built with this kernel's zone enum.

    ``OPT_ZONE_*`` is the zone if the kernel has it, else ``ZONE_NORMAL``; the
    table's entry width is ``GFP_ZONES_SHIFT`` (2 with ZONE_DEVICE and at most 5
    zones, since Linux kernel commit b11a7b94100c ("mm: exclude ZONE_DEVICE from
    GFP_ZONE_TABLE") (in v4.7); else ``ZONES_SHIFT``). Invalid combinations
    (``GFP_ZONE_BAD``) read what the table holds there, 0, as the kernel does
    without CONFIG_DEBUG_VM.
    """
    target = _target(target_or_reader)
    const = target.constant
    normal = const("ZONE_NORMAL")
    movable = const("ZONE_MOVABLE")
    nr = const("__MAX_NR_ZONES")
    if normal is None or movable is None or nr is None:
        raise ReadError("no enum zone_type (ZONE_NORMAL, ZONE_MOVABLE, __MAX_NR_ZONES)")

    def opt(name: str) -> int:
        value = const(name)
        return normal if value is None else value

    dma, highmem, dma32, mov = (1 << (b if (b := const(n)) is not None else d)
                                for n, d in _ZONE_BITS)
    if (dma | highmem | dma32 | mov) >> 4:
        raise ReadError("___GFP_*_BIT zone bits beyond GFP_ZONE_TABLE's four")
    shift = (2 if const("ZONE_DEVICE") is not None and nr - 1 <= 4 else _zones_shift(nr))
    table = 0
    for bits, zone in ((0, normal), (dma, opt("ZONE_DMA")), (highmem, opt("ZONE_HIGHMEM")),
                       (dma32, opt("ZONE_DMA32")), (mov, normal), (mov | dma, opt("ZONE_DMA")),
                       (mov | highmem, movable), (mov | dma32, opt("ZONE_DMA32"))):
        table |= zone << (bits * shift)
    bit = gfp_mask & (dma | highmem | dma32 | mov)  # GFP_ZONEMASK
    return (table >> (bit * shift)) & ((1 << shift) - 1)


# The invoked line ------------------------------------------------------------

@record(frozen=True)
class InvokedFormat:
    """One era of ``dump_header()``'s first line (``pr_warn``, KERN_WARNING).

    ``pieces``: the format as printk calls print it; after the first, each is a
    ``pr_cont`` (KERN_CONT ``"\\x01c"`` since v4.9). ``nodemask``: how the era
    prints the nodemask (None: not printed; ``"pbl"``: ``%*pbl`` of
    ``oc->nodemask``, ``(null)`` for NULL; ``"cont"``: the same in pr_cont pieces).
    """

    name: str
    pieces: Tuple[str, ...]
    nodemask: Optional[str]
    gfp_names: bool  # prints (%pGg)
    since: str

    @property
    def rodata_strings(self) -> Tuple[bytes, ...]:
        first = b"\x014" + self.pieces[0].encode()
        return (first,) + tuple(b"\x01c" + p.encode() for p in self.pieces[1:])


INVOKED_FORMATS = (
    # Since Linux kernel commit ("mm: Fix OOM killer inaccuracy on large
    # many-core systems") (in v7.0): oom_score_adj printed with %d.
    InvokedFormat("I6", ("%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%d\n",),
                  None, True, "v7.0"),
    # Since Linux kernel commit ef8444ea01d7 ("mm, oom: reorganize the oom report
    # in dump_header") (in v5.0): the nodemask moved to the oom-kill: summary.
    # The same text as I2's (v4.6-v4.8).
    InvokedFormat("I5", ("%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd\n",),
                  None, True, "v5.0"),
    # Since Linux kernel commit ("mm: simplify nodemask printing") (in v4.15;
    # hash not checked here): nodemask_pr_args() of a NULL mask prints (null).
    # The same text as I3's (82e7d3abec86, v4.9-v4.10), which printed current's
    # cpuset mems for a NULL oc->nodemask: that era cannot be told apart from its
    # strings and is read as this one.
    InvokedFormat("I4", ("%s invoked oom-killer: gfp_mask=%#x(%pGg), nodemask=%*pbl, "
                         "order=%d, oom_score_adj=%hd\n",), "pbl", True, "v4.15"),
    # Since Linux kernel commit ("mm, oom: header nodemask is NULL when cpusets
    # are disabled") (in v4.11; hash not checked here): pr_cont() pieces, two
    # spaces before order.
    InvokedFormat("I3", ("%s invoked oom-killer: gfp_mask=%#x(%pGg), nodemask=", "%*pbl",
                         ",  order=%d, oom_score_adj=%hd\n"), "cont", True, "v4.11"),
    # Since Linux kernel commit edf14cdbf9a0's series ("mm, oom: print symbolic
    # gfp_flags in oom warning") (in v4.6): %#x and the %pGg names.
    InvokedFormat("I2", ("%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd\n",),
                  None, True, "v4.6"),
    # v3.8 (oom_score_adj a short) to v4.5, RHEL 7's 3.10 included.
    InvokedFormat("I1", ("%s invoked oom-killer: gfp_mask=0x%x, order=%d, oom_score_adj=%hd\n",),
                  None, False, "v3.8"),
)


def invoked_format(target_or_reader) -> Optional[InvokedFormat]:
    """The era whose strings the kernel's ``.rodata`` holds (None: not found)."""
    target = _target(target_or_reader)
    for f in INVOKED_FORMATS:
        if f.name == "I2":
            continue  # same strings as I5
        if f.name == "I3":
            if has_format(target, f.rodata_strings[0]) and (
                    has_format(target, f.rodata_strings[2])
                    or has_format(target, f.pieces[2].encode())):  # KERN_CONT "" before v4.9
                return f
            continue
        if has_format(target, f.rodata_strings[0]):
            return f
    return None


def _hex(value: int) -> str:
    """The kernel's ``%#x``: ``0x`` also for 0 (lib/vsprintf.c number())."""
    return "0x%x" % (value & 0xFFFFFFFF)


def invoked_line(target_or_reader, comm: str, gfp_mask: int, order: int, oom_score_adj: int,
                 nodemask: Optional[Sequence[int]] = None,
                 fmt: Optional[InvokedFormat] = None,
                 names: Optional[GfpFlagNames] = None) -> str:
    """``dump_header()``'s first line, newline included, in this kernel's era.

    :param comm: ``current->comm`` (the task that hit the OOM)
    :param oom_score_adj: ``current->signal->oom_score_adj``
    :param nodemask: ``oc->nodemask``'s node ids, None for NULL (printed only 4.9-4.20)
    :param fmt: the era (default: found in ``.rodata``; ValueError if none is)
    :param names: the flag table (default: :func:`gfpflag_names` of the target)
    """
    if fmt is None:
        fmt = invoked_format(target_or_reader)
        if fmt is None:
            raise ValueError("no 'invoked oom-killer' format found in the kernel's .rodata")
    comm = comm[:15]  # TASK_COMM_LEN - 1
    if fmt.name == "I1":
        return cformat("%s invoked oom-killer: gfp_mask=0x%x, order=%d, oom_score_adj=%hd\n",
                       [comm, gfp_mask & 0xFFFFFFFF, order, oom_score_adj])
    if names is None:
        names = gfpflag_names(_target(target_or_reader))[0]
    head = "%s invoked oom-killer: gfp_mask=%s(%s)" % (
        comm, _hex(gfp_mask), format_flags(gfp_mask, names))
    sep = ", "
    if fmt.nodemask is not None:
        head += ", nodemask=" + ("(null)" if nodemask is None else bitmap_list(nodemask))
        if fmt.nodemask == "cont":
            sep = ",  "  # the third piece: ",  order=%d, oom_score_adj=%hd\n"
    adj = "%d" if fmt.name == "I6" else "%hd"
    return head + cformat(sep + "order=%d, oom_score_adj=" + adj + "\n", [order, oom_score_adj])


def compaction_warning(target_or_reader, order: int) -> Optional[str]:
    """``"COMPACTION is disabled!!!\\n"``, printed right after the first line when
    the kernel is built without CONFIG_COMPACTION (the string is then in its
    ``.rodata``) and ``oc->order`` is not 0 (-1, a sysrq OOM, included); else None."""
    if order and has_format(_target(target_or_reader), b"\x014COMPACTION is disabled!!!\n"):
        return "COMPACTION is disabled!!!\n"
    return None


def compaction_line(target_or_reader, order: int) -> List[str]:
    """:func:`compaction_warning` as a list of lines (empty where not printed)."""
    line = compaction_warning(target_or_reader, order)
    return [] if line is None else [line]


# --gfp ---------------------------------------------------------------------

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|\d+")
_PRINTED = re.compile(r"(?P<num>0[xX][0-9a-fA-F]+|\d+)\((?P<names>[^()]*)\)")


def _names_value(text: str, names: GfpFlagNames) -> int:
    table: Dict[str, int] = {}
    for mask, name in names:
        table.setdefault(name, mask)
    value = 0
    for part in text.split("|"):
        part = part.strip()
        if not part:
            raise ValueError(f"empty gfp flag name in {text!r}")
        if _NUMBER.fullmatch(part):
            value |= int(part, 0)
        elif part in table:
            value |= table[part]
        else:
            raise ValueError(f"unknown gfp flag {part!r}")
    return value


def parse_gfp(text_or_target, text: Optional[str] = None,
              names: Optional[GfpFlagNames] = None) -> int:
    """A gfp mask from the command line: ``0xcc0``, ``3264``, ``GFP_KERNEL``,
    ``GFP_HIGHUSER_MOVABLE|__GFP_COMP``, or the printed ``0xcc0(GFP_KERNEL)``
    (number and names must agree).

    ``parse_gfp(text)`` or ``parse_gfp(reader, text)``: names come from *names*,
    else from that kernel's :func:`gfpflag_names`, else from
    :data:`FALLBACK_GFPFLAG_NAMES`.

    :raises ValueError: on anything else
    """
    if text is None:
        text = text_or_target
    elif names is None:
        names = gfpflag_names(_target(text_or_target))[0]
    table = names if names is not None else FALLBACK_GFPFLAG_NAMES
    if not isinstance(text, str):
        raise ValueError(f"gfp mask {text!r} is not text")
    text = text.strip()
    if not text:
        raise ValueError("empty gfp mask")
    m = _PRINTED.fullmatch(text)
    if m:
        value = int(m.group("num"), 0)
        listed = m.group("names")
        if (listed and _names_value(listed, table) != value) or (not listed and value):
            raise ValueError(f"gfp mask {text!r}: the number and the names differ")
        return value
    if _NUMBER.fullmatch(text):
        value = int(text, 0)
    else:
        value = _names_value(text, table)
    if value >> 32:
        raise ValueError(f"gfp mask {text!r} does not fit gfp_t (32 bits)")
    return value


def max_order(target_or_reader) -> int:
    """The highest order the buddy allocator serves: ``free_area[]``'s last index
    (``NR_PAGE_ORDERS - 1``; ``MAX_ORDER - 1`` before 23baf831a32c ("mm,
    treewide: redefine MAX_ORDER sanely") (in v6.4) made MAX_ORDER inclusive)."""
    length = _target(target_or_reader).member("struct zone", "free_area").length
    if not length:
        raise LookupError("struct zone has no free_area array")
    return length - 1
