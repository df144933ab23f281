"""The printk formats of ``__show_mem()`` / ``show_free_areas()``, per era, copied
verbatim from the kernel sources (standard library only).

These are the fallback when the kernel image's ``.rodata`` cannot be read (see
:mod:`oomdrgn.core.show_mem`, which prefers the exact strings found there). A
format's ``#ifdef`` pieces are kept as ``(text, CONFIG_NAME)`` pairs and joined
for the configuration the kernel shows (:func:`assemble`).

Sources: Debian's 7.2.13 and 6.12.117 ``mm/show_mem.c``, 6.1.176 and 5.10.223
``mm/page_alloc.c`` (``__show_free_areas``/``show_free_areas``); the v4.14-era
one from a public copy of ``mm/page_alloc.c`` (not checked against a booted
kernel).
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

__all__ = ["Era", "ERAS", "Piece", "assemble", "era", "all_configs", "SHOW_NODE", "LOWMEM",
           "LOWMEM_ITEM", "BUDDY_ZONE", "BUDDY_ORDER", "BUDDY_TYPES", "BUDDY_TOTAL", "HUGETLB",
           "PAGECACHE", "SWAP_CACHE", "SWAP_CACHE_STATS", "FREE_SWAP", "TOTAL_SWAP",
           "PAGES_RAM", "PAGES_HIGHMEM", "PAGES_RESERVED", "PAGES_CMA", "PAGES_HWPOISONED",
           "MEM_INFO"]

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


@dataclass(frozen=True)
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
# Debian kernel of this era is booted here).
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


def era(name: str) -> Era:
    for e in ERAS:
        if e.name == name:
            return e
    raise ValueError(f"unknown show_mem era {name!r}")


def all_configs() -> Sequence[Dict[str, bool]]:
    """Every combination of the ``CONFIG_`` options the formats depend on."""
    return [{_THP: thp, _SCS: scs} for thp in (False, True) for scs in (False, True)]
