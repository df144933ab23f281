"""The printk formats of ``__show_mem()`` / ``show_free_areas()``, per era, copied
verbatim from the kernel sources (standard library only).

These are the fallback when the kernel image's ``.rodata`` cannot be read (see
:mod:`oomdrgn.core.show_mem`, which prefers the exact strings found there). A
format's ``#ifdef`` pieces are kept as ``(text, CONFIG_NAME)`` pairs and joined
for the configuration the kernel shows (:func:`assemble`).

Sources: Debian's 7.2.13 and 6.12.117 ``mm/show_mem.c``, 6.1.176 and 5.10.223
``mm/page_alloc.c`` (``__show_free_areas``/``show_free_areas``); the v4.14-era
one from a public copy of ``mm/page_alloc.c`` (not checked against a booted
kernel). The older eras (:data:`OLDER_ERAS`, read only from logs) from the
``mm/page_alloc.c`` and ``lib/show_mem.c`` of public source trees of v3.10.99,
v3.13.10, v3.19.8, v4.1.15, v4.2.8, v4.4.155, v4.8.15, v4.9.115, v4.10.17, v4.11,
v4.12 and v4.13.9, and of RHEL 7.3's 3.10.0-514.el7.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .record import record

__all__ = ["Era", "ERAS", "Piece", "assemble", "era", "all_configs", "SHOW_NODE", "LOWMEM",
           "LOWMEM_ITEM", "BUDDY_ZONE", "BUDDY_ORDER", "BUDDY_TYPES", "BUDDY_TOTAL", "HUGETLB",
           "PAGECACHE", "SWAP_CACHE", "SWAP_CACHE_STATS", "FREE_SWAP", "TOTAL_SWAP",
           "PAGES_RAM", "PAGES_HIGHMEM", "PAGES_RESERVED", "PAGES_CMA", "PAGES_HWPOISONED",
           "MEM_INFO", "OLDER_ERAS", "ALL_ERAS", "PER_CPU", "PER_CPU_PAGESET",
           "PAGES_HIGHMEM_3_10", "PAGES_SHARED", "PAGES_NON_SHARED", "PAGETABLE_CACHE",
           "format_labels", "CONV"]

_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_()]*\??)[:=]?\s*$")
CONV = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z)?[diuxXsc]")


def format_labels(fmt: str) -> List[str]:
    """The label before each conversion of *fmt* (``""`` where there is none:
    the zone line's leading ``%s``)."""
    labels, pos = [], 0
    for m in CONV.finditer(fmt):
        m_label = _LABEL.search(fmt[pos:m.start()].rsplit("\n", 1)[-1])
        labels.append(m_label.group(1) if m_label else "")
        pos = m.end()
    return labels


#: a piece of a C string literal, with the ``CONFIG_`` it is under (or None)
Piece = Tuple[str, Optional[str]]
Format = Union[str, Tuple[Piece, ...]]


def assemble(fmt: Format, config: Callable[[str], bool]) -> str:
    """The format string a kernel with *config* (``CONFIG_X`` -> bool) was built with."""
    if isinstance(fmt, str):
        return fmt
    return "".join(text for text, cond in fmt if cond is None or config(cond))


def _pieces(*items: Union[str, Tuple[str, str]]) -> Tuple[Piece, ...]:
    return tuple((i, None) if isinstance(i, str) else (i[0], i[1]) for i in items)


_THP, _SCS = "CONFIG_TRANSPARENT_HUGEPAGE", "CONFIG_SHADOW_CALL_STACK"


@record(frozen=True)
class Era:
    """One era's formats (without ``KERN_`` prefixes; ``zone`` is ``KERN_CONT``)."""

    name: str
    source: str
    global_: str
    node: Format
    zone: Format
    #: hugetlb_show_meminfo_node(nid) per shown node (True), or the older
    #: hugetlb_show_meminfo() over N_MEMORY, unfiltered, with pr_info (False)
    hugetlb_per_node: bool
    #: __show_mem(filter, nodemask, max_zone_idx) (True) or show_mem(filter, nodemask)
    zone_filter: bool
    #: 5.10's show_swap_cache_info() second line
    swap_cache_stats: bool
    #: "%s per-cpu:" and one "CPU %4d: hi:..." line per online CPU and zone before the
    #: global block (before v4.1)
    per_cpu: bool = False


_HUGETLB = ("Node %d hugepages_total=%u hugepages_free=%u hugepages_surp=%u "
            "hugepages_size=%lukB\n")
SHOW_NODE = "Node %d "
LOWMEM = "lowmem_reserve[]:"
LOWMEM_ITEM = " %ld"
BUDDY_ZONE = "%s: "
BUDDY_ORDER = "%lu*%lukB "
BUDDY_TYPES = "(%s) "
BUDDY_TOTAL = "= %lukB\n"
HUGETLB = _HUGETLB
PAGECACHE = "%ld total pagecache pages\n"
SWAP_CACHE = "%lu pages in swap cache\n"
SWAP_CACHE_STATS = "Swap cache stats: add %lu, delete %lu, find %lu/%lu\n"
FREE_SWAP = "Free swap  = %ldkB\n"
TOTAL_SWAP = "Total swap = %lukB\n"
PAGES_RAM = "%lu pages RAM\n"
PAGES_HIGHMEM = "%lu pages HighMem/MovableOnly\n"
PAGES_RESERVED = "%lu pages reserved\n"
PAGES_CMA = "%lu pages cma reserved\n"
PAGES_HWPOISONED = "%lu pages hwpoisoned\n"
MEM_INFO = "Mem-Info:\n"
# show_free_areas() before d1bfcdb8ce0e ("mm: hide per-cpu lists in output of
# show_mem()") and 761b06771ade ("mm: completely remove dumping per-cpu lists from
# show_mem()") (in v4.1): per populated zone, show_node() and these.
PER_CPU = "%s per-cpu:\n"
PER_CPU_PAGESET = "CPU %4d: hi:%5d, btch:%4d usd:%4d\n"
# lib/show_mem.c of v3.10, before c78e93630d15 ("mm: do not walk all of system
# memory during show_mem") (in v3.11..v3.13: absent from v3.10.99, present in
# v3.13.10), which printed PAGES_HIGHMEM instead and dropped the shared counts.
PAGES_HIGHMEM_3_10 = "%lu pages HighMem\n"
PAGES_SHARED = "%lu pages shared\n"
PAGES_NON_SHARED = "%lu pages non-shared\n"
# CONFIG_QUICKLIST only (v3.10 .. v4.13 and later).
PAGETABLE_CACHE = "%lu pages in pagetable cache\n"

_GLOBAL_6 = ("active_anon:%lu inactive_anon:%lu isolated_anon:%lu\n"
             " active_file:%lu inactive_file:%lu isolated_file:%lu\n"
             " unevictable:%lu dirty:%lu writeback:%lu\n"
             " slab_reclaimable:%lu slab_unreclaimable:%lu\n"
             " mapped:%lu shmem:%lu pagetables:%lu\n"
             " sec_pagetables:%lu bounce:%lu\n"
             " kernel_misc_reclaimable:%lu\n"
             " free:%lu free_pcp:%lu free_cma:%lu\n")

_NODE_HEAD = (
    "Node %d", " active_anon:%lukB", " inactive_anon:%lukB", " active_file:%lukB",
    " inactive_file:%lukB", " unevictable:%lukB", " isolated(anon):%lukB",
    " isolated(file):%lukB", " mapped:%lukB", " dirty:%lukB", " writeback:%lukB",
    " shmem:%lukB")

_ZONE_HEAD = ("%s", " free:%lukB")
_ZONE_LRU = (" active_anon:%lukB", " inactive_anon:%lukB", " active_file:%lukB",
             " inactive_file:%lukB", " unevictable:%lukB", " writepending:%lukB")

# mm/show_mem.c of Debian 7.2.13.
_V7 = Era(
    name="v7.x", source="mm/show_mem.c (7.2)",
    global_=_GLOBAL_6,
    node=_pieces(*_NODE_HEAD,
                 (" shmem_thp:%lukB", _THP), (" shmem_pmdmapped:%lukB", _THP),
                 (" anon_thp:%lukB", _THP),
                 " kernel_stack:%lukB", (" shadow_call_stack:%lukB", _SCS),
                 " pagetables:%lukB", " sec_pagetables:%lukB", " all_unreclaimable? %s",
                 " Balloon:%lukB", " gpu_active:%lukB", " gpu_reclaim:%lukB", "\n"),
    zone=_pieces(*_ZONE_HEAD, " boost:%lukB", " min:%lukB", " low:%lukB", " high:%lukB",
                 " reserved_highatomic:%luKB", " free_highatomic:%luKB", *_ZONE_LRU,
                 " zspages:%lukB", " present:%lukB", " managed:%lukB", " mlocked:%lukB",
                 " bounce:%lukB", " free_pcp:%lukB", " local_pcp:%ukB", " free_cma:%lukB",
                 "\n"),
    hugetlb_per_node=True, zone_filter=True, swap_cache_stats=False)

# mm/show_mem.c of Debian 6.12.117.
_V6_12 = Era(
    name="v6.12", source="mm/show_mem.c (6.12)",
    global_=_GLOBAL_6,
    node=_pieces(*_NODE_HEAD,
                 (" shmem_thp:%lukB", _THP), (" shmem_pmdmapped:%lukB", _THP),
                 (" anon_thp:%lukB", _THP),
                 " writeback_tmp:%lukB", " kernel_stack:%lukB",
                 (" shadow_call_stack:%lukB", _SCS),
                 " pagetables:%lukB", " sec_pagetables:%lukB", " all_unreclaimable? %s", "\n"),
    zone=_pieces(*_ZONE_HEAD, " boost:%lukB", " min:%lukB", " low:%lukB", " high:%lukB",
                 " reserved_highatomic:%luKB", *_ZONE_LRU,
                 " present:%lukB", " managed:%lukB", " mlocked:%lukB",
                 " bounce:%lukB", " free_pcp:%lukB", " local_pcp:%ukB", " free_cma:%lukB",
                 "\n"),
    hugetlb_per_node=True, zone_filter=True, swap_cache_stats=False)

# mm/page_alloc.c __show_free_areas() of Debian 6.1.176.
_V6_1 = Era(
    name="v6.1", source="mm/page_alloc.c __show_free_areas (6.1)",
    global_=_GLOBAL_6,
    node=_pieces(*_NODE_HEAD,
                 (" shmem_thp: %lukB", _THP), (" shmem_pmdmapped: %lukB", _THP),
                 (" anon_thp: %lukB", _THP),
                 " writeback_tmp:%lukB", " kernel_stack:%lukB",
                 (" shadow_call_stack:%lukB", _SCS),
                 " pagetables:%lukB", " sec_pagetables:%lukB", " all_unreclaimable? %s", "\n"),
    zone=_V6_12.zone,
    hugetlb_per_node=True, zone_filter=True, swap_cache_stats=False)

# mm/page_alloc.c show_free_areas() of Debian 5.10.223.
_V5_10 = Era(
    name="v5.10", source="mm/page_alloc.c show_free_areas (5.10)",
    global_=("active_anon:%lu inactive_anon:%lu isolated_anon:%lu\n"
             " active_file:%lu inactive_file:%lu isolated_file:%lu\n"
             " unevictable:%lu dirty:%lu writeback:%lu\n"
             " slab_reclaimable:%lu slab_unreclaimable:%lu\n"
             " mapped:%lu shmem:%lu pagetables:%lu bounce:%lu\n"
             " free:%lu free_pcp:%lu free_cma:%lu\n"),
    node=_pieces(*_NODE_HEAD,
                 (" shmem_thp: %lukB", _THP), (" shmem_pmdmapped: %lukB", _THP),
                 (" anon_thp: %lukB", _THP),
                 " writeback_tmp:%lukB", " kernel_stack:%lukB",
                 (" shadow_call_stack:%lukB", _SCS),
                 " all_unreclaimable? %s", "\n"),
    zone=_pieces(*_ZONE_HEAD, " min:%lukB", " low:%lukB", " high:%lukB",
                 " reserved_highatomic:%luKB", *_ZONE_LRU,
                 " present:%lukB", " managed:%lukB", " mlocked:%lukB", " pagetables:%lukB",
                 " bounce:%lukB", " free_pcp:%lukB", " local_pcp:%ukB", " free_cma:%lukB",
                 "\n"),
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True)

# mm/page_alloc.c show_free_areas() of the v4.14 era (a public copy; no
# Debian kernel of this era is booted here). v4.13 prints the same lines (checked
# against v4.13.9): since 385386cff4c6 ("mm: vmstat: move slab statistics from zone
# to node counters") (in v4.13) the zone line has no slab counters.
_V4_14 = Era(
    name="v4.14", source="mm/page_alloc.c show_free_areas (v4.14 era, public copy)",
    global_=("active_anon:%lu inactive_anon:%lu isolated_anon:%lu\n"
             " active_file:%lu inactive_file:%lu isolated_file:%lu\n"
             " unevictable:%lu dirty:%lu writeback:%lu unstable:%lu\n"
             " slab_reclaimable:%lu slab_unreclaimable:%lu\n"
             " mapped:%lu shmem:%lu pagetables:%lu bounce:%lu\n"
             " free:%lu free_pcp:%lu free_cma:%lu\n"),
    node=_pieces(*_NODE_HEAD,
                 (" shmem_thp: %lukB", _THP), (" shmem_pmdmapped: %lukB", _THP),
                 (" anon_thp: %lukB", _THP),
                 " writeback_tmp:%lukB", " unstable:%lukB", " all_unreclaimable? %s", "\n"),
    zone=_pieces(*_ZONE_HEAD, " min:%lukB", " low:%lukB", " high:%lukB", *_ZONE_LRU,
                 " present:%lukB", " managed:%lukB", " mlocked:%lukB", " kernel_stack:%lukB",
                 " pagetables:%lukB", " bounce:%lukB", " free_pcp:%lukB", " local_pcp:%ukB",
                 " free_cma:%lukB", "\n"),
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True)

#: newest first
ERAS: Tuple[Era, ...] = (_V7, _V6_12, _V6_1, _V5_10, _V4_14)

# Older eras: read back from logs only (oomdrgn does not compute their values from
# memory). All with show_mem()'s "Mem-Info:", hugetlb_show_meminfo() over N_MEMORY
# and show_swap_cache_info()'s stats line.

_GLOBAL_4_1 = ("active_anon:%lu inactive_anon:%lu isolated_anon:%lu\n"
               " active_file:%lu inactive_file:%lu isolated_file:%lu\n"
               " unevictable:%lu dirty:%lu writeback:%lu unstable:%lu\n"
               " slab_reclaimable:%lu slab_unreclaimable:%lu\n"
               " mapped:%lu shmem:%lu pagetables:%lu bounce:%lu\n"
               " free:%lu free_pcp:%lu free_cma:%lu\n")
_NODE_4_8 = (*_NODE_HEAD,
             (" shmem_thp: %lukB", _THP), (" shmem_pmdmapped: %lukB", _THP),
             (" anon_thp: %lukB", _THP),
             " writeback_tmp:%lukB", " unstable:%lukB")
_ZONE_4_8 = _pieces(*_ZONE_HEAD, " min:%lukB", " low:%lukB", " high:%lukB", *_ZONE_LRU,
                    " present:%lukB", " managed:%lukB", " mlocked:%lukB",
                    " slab_reclaimable:%lukB", " slab_unreclaimable:%lukB",
                    " kernel_stack:%lukB", " pagetables:%lukB", " bounce:%lukB",
                    " free_pcp:%lukB", " local_pcp:%ukB", " free_cma:%lukB", "\n")

# v4.12 (checked against v4.12): c822f6223d03 ("mm: delete NR_PAGES_SCANNED and
# pgdat_reclaimable()") (in v4.12) dropped pages_scanned from the node line.
_V4_12 = Era(
    name="v4.12", source="mm/page_alloc.c show_free_areas (v4.12)",
    global_=_GLOBAL_4_1,
    node=_pieces(*_NODE_4_8, " all_unreclaimable? %s", "\n"),
    zone=_ZONE_4_8,
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True)

# v4.8 .. v4.11 (checked against v4.8.15, v4.9.115, v4.10.17, v4.11): since
# 599d0c954f91 ("mm, vmscan: move LRU lists to node") (in v4.8) the LRU and most
# file counters are printed per node, in a "Node %d" line of their own, and the zone
# line has writepending.
_V4_8 = Era(
    name="v4.8", source="mm/page_alloc.c show_free_areas (v4.8 .. v4.11)",
    global_=_GLOBAL_4_1,
    node=_pieces(*_NODE_4_8, " pages_scanned:%lu", " all_unreclaimable? %s", "\n"),
    zone=_ZONE_4_8,
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True)

_ZONE_3_10_HEAD = (*_ZONE_HEAD, " min:%lukB", " low:%lukB", " high:%lukB",
                   " active_anon:%lukB", " inactive_anon:%lukB", " active_file:%lukB",
                   " inactive_file:%lukB", " unevictable:%lukB", " isolated(anon):%lukB",
                   " isolated(file):%lukB", " present:%lukB", " managed:%lukB",
                   " mlocked:%lukB", " dirty:%lukB", " writeback:%lukB", " mapped:%lukB",
                   " shmem:%lukB", " slab_reclaimable:%lukB", " slab_unreclaimable:%lukB",
                   " kernel_stack:%lukB", " pagetables:%lukB", " unstable:%lukB",
                   " bounce:%lukB")
_ZONE_3_10_TAIL = (" free_cma:%lukB", " writeback_tmp:%lukB", " pages_scanned:%lu",
                   " all_unreclaimable? %s", "\n")

# v4.1 .. v4.7 (checked against v4.1.15, v4.2.8, v4.4.155), and RHEL 7.3+
# (3.10.0-514.el7, where both commits were backported in 3.10.0-453): since
# d1bfcdb8ce0e ("mm: hide per-cpu lists in output of show_mem()") and 761b06771ade
# ("mm: completely remove dumping per-cpu lists from show_mem()") (in v4.1), no
# per-CPU pageset lines; free_pcp and local_pcp instead, "free:" moved to the last
# global line. No node line: every counter is the zone's.
_V4_1 = Era(
    name="v4.1", source="mm/page_alloc.c show_free_areas (v4.1 .. v4.7, RHEL 7.3+)",
    global_=_GLOBAL_4_1,
    node="",
    zone=_pieces(*_ZONE_3_10_HEAD, " free_pcp:%lukB", " local_pcp:%ukB", *_ZONE_3_10_TAIL),
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True)

# v3.10 .. v3.19 (checked against v3.10.99, v3.13.10, v3.19.8): the per-CPU pageset
# lines (PER_CPU, PER_CPU_PAGESET) come first. lowmem_reserve[] items " %lu" until
# v3.19's " %ld" (the same text for any reserve).
_V3_10 = Era(
    name="v3.10", source="mm/page_alloc.c show_free_areas (v3.10 .. v3.19)",
    global_=("active_anon:%lu inactive_anon:%lu isolated_anon:%lu\n"
             " active_file:%lu inactive_file:%lu isolated_file:%lu\n"
             " unevictable:%lu dirty:%lu writeback:%lu unstable:%lu\n"
             " free:%lu slab_reclaimable:%lu slab_unreclaimable:%lu\n"
             " mapped:%lu shmem:%lu pagetables:%lu bounce:%lu\n"
             " free_cma:%lu\n"),
    node="",
    zone=_pieces(*_ZONE_3_10_HEAD, *_ZONE_3_10_TAIL),
    hugetlb_per_node=False, zone_filter=False, swap_cache_stats=True, per_cpu=True)

#: eras before v4.13, newest first (their lines are read back from logs only)
OLDER_ERAS: Tuple[Era, ...] = (_V4_12, _V4_8, _V4_1, _V3_10)
#: every era, newest first
ALL_ERAS: Tuple[Era, ...] = ERAS + OLDER_ERAS


def era(name: str) -> Era:
    for e in ALL_ERAS:
        if e.name == name:
            return e
    raise ValueError(f"unknown show_mem era {name!r}")


def all_configs() -> Sequence[Dict[str, bool]]:
    """Every combination of the ``CONFIG_`` options the formats depend on."""
    return [{_THP: thp, _SCS: scs} for thp in (False, True) for scs in (False, True)]
