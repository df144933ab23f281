"""What a global OOM's ``dump_header()`` prints after the stack: ``__show_mem()``
(``show_mem()`` before the zone filter), re-created from kernel memory line
for line (standard library and core only).

The long lines' formats are the kernel's own: taken from its ``.rodata`` and
rendered with C ``printf`` semantics over values named by the label before
each conversion (``" shmem_thp: %lukB"`` -> ``shmem_thp``), so ``#ifdef``
pieces (``CONFIG_TRANSPARENT_HUGEPAGE``, ``CONFIG_SHADOW_CALL_STACK``...) and
era differences follow the kernel. When ``.rodata`` cannot be read, the era's
formats copied from the sources (:mod:`oomdrgn.core.show_mem_formats`) are
used, as the kernel's types and symbols suggest. Values whose expression
changed between eras are decided newest first (see :data:`RULES`).

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .memo import once_per
from . import show_mem_formats as F
from .record import record
from .show_mem_formats import format_labels
from . import vmstat
from .cformat import cformat
from .errors import ReadError
from .evidence import has_member, rodata
from .port import Fault
from .structs import scalar
from .vmstat import ZoneRef

__all__ = ["ShowMem", "show_mem", "format_labels", "RULES", "MemFormats",
           "mem_formats"]

_MASK64 = (1 << 64) - 1
_KERN_CONT = "\x01c"
# MAX_RECLAIM_RETRIES (mm/internal.h, a #define: no enumerator to read) has
# been 16 since it was introduced in 0a0337e0d1d1 ("mm, oom: rework oom
# detection") (in v4.7).
MAX_RECLAIM_RETRIES = 16
#: ``show_migration_types()``: the letter of each migrate type, by enumerator
#: (MIGRATE_RESERVE until 974a786e63c9 ("mm, page_alloc: remove MIGRATE_RESERVE")
#: (in v4.4), MIGRATE_HIGHATOMIC since; C and I only with CONFIG_CMA and
#: CONFIG_MEMORY_ISOLATION, whose enumerators exist only then).
MIGRATE_LETTERS = (("MIGRATE_UNMOVABLE", "U"), ("MIGRATE_MOVABLE", "M"),
                   ("MIGRATE_RECLAIMABLE", "E"), ("MIGRATE_HIGHATOMIC", "H"),
                   ("MIGRATE_RESERVE", "R"), ("MIGRATE_CMA", "C"), ("MIGRATE_ISOLATE", "I"))


@record
class ShowMem:
    """``__show_mem()``'s console lines (``KERN_CONT`` pieces joined, no
    timestamps), every printed number by the kernel's names, and how the
    formats were chosen (one line for the user)."""

    lines: List[str]
    values: dict
    formats: str


# Formats -------------------------------------------------------------------------------



@record(frozen=True)
class MemFormats:
    """The formats this kernel prints with (without ``KERN_`` prefixes) and
    the era facts that go with them."""

    global_: str
    node: str
    zone: str
    #: the zone line is a ``KERN_CONT`` after ``show_node()``'s ``"Node %d "``
    zone_cont: bool
    numa: bool
    hugetlb_per_node: bool
    zone_filter: bool
    swap: bool
    swap_cache_stats: bool
    cma: bool
    hwpoisoned: bool
    #: ``CONFIG_MEM_ALLOC_PROFILING``: __show_mem() may go on with "Memory
    #: allocations" lines (not re-created here)
    alloc_profiling: bool
    source: str


def _strings(ro: bytes, anchor: bytes) -> Iterator[Tuple[bytes, str]]:
    """(KERN_ prefix, text) of every whole string of *ro* that starts with *anchor*."""
    pos = 0
    while True:
        i = ro.find(anchor, pos)
        if i < 0:
            return
        pos = i + 1
        prefix = b""
        if i >= 2 and ro[i - 2] == 1:
            prefix, start = ro[i - 2:i], i - 2
        else:
            start = i
        if start and ro[start - 1] != 0:
            continue
        end = ro.find(b"\0", i)
        yield prefix, ro[i:end].decode("latin-1")


def _find(ro: bytes, anchor: str) -> Optional[Tuple[bytes, str]]:
    """The first whole string of *ro* that starts with *anchor* (the rest of
    .rodata is not searched)."""
    return next(_strings(ro, anchor.encode()), None)


def _has(ro: bytes, text: str) -> bool:
    return text.encode() + b"\0" in ro


def _config(reader) -> Callable[[str], bool]:
    t = reader.target

    def config(name: str) -> bool:
        if name == "CONFIG_TRANSPARENT_HUGEPAGE":
            return t.symbol("transparent_hugepage_flags") is not None
        if name == "CONFIG_SHADOW_CALL_STACK":
            return t.constant("NR_KERNEL_SCS_KB") is not None
        raise KeyError(name)
    return config


def _fallback_era(reader) -> F.Era:
    """The newest era whose marks this kernel's types and symbols show."""
    t = reader.target
    if not vmstat.has_item(reader, "NR_BOUNCE"):
        return F.era("v7.x")
    if t.symbol("__show_mem") is not None:
        return F.era("v6.1" if t.symbol("__show_free_areas") is not None else "v6.12")
    if vmstat.has_item(reader, "NR_SLAB_RECLAIMABLE_B"):
        return F.era("v5.10")
    return F.era("v4.14")


@once_per
def mem_formats(reader) -> MemFormats:
    """This kernel's formats: from its ``.rodata``, else its era's (once per reader)."""
    t = reader.target
    ro = rodata(t) or b""
    numa = t.symbol("node_data") is not None
    glob = _find(ro, "active_anon:%lu inactive_anon:%lu") if ro else None
    node = _find(ro, "Node %d active_anon:%lukB") if ro else None
    zone = _find(ro, "%s free:%lukB") if ro else None
    huge = _find(ro, "Node %d hugepages_total=%u") if ro else None
    if glob and node and zone:
        # hugetlb_show_meminfo_node(nid) (printk, per shown node) since "mm,
        # hugetlb: skip irrelevant nodes in show_free_areas()" (in v6.0, hash not
        # checked here); before, hugetlb_show_meminfo() with pr_info over
        # N_MEMORY: the string's KERN_INFO prefix tells them apart. The zone
        # filter (__show_mem(..., max_zone_idx), node_has_managed_zones()) came
        # with "mm: reduce noise in show_mem for lowmem allocations" (in v6.0,
        # hash not checked here): __show_mem is a symbol since.
        hugetlb_per_node = (huge[0] == b"" if huge else
                            t.symbol("hugetlb_show_meminfo_node") is not None)
        return MemFormats(
            global_=glob[1], node=node[1], zone=zone[1], zone_cont=zone[0] == b"\x01c",
            numa=numa, hugetlb_per_node=hugetlb_per_node,
            zone_filter=t.symbol("__show_mem") is not None,
            swap=_has(ro, F.SWAP_CACHE), swap_cache_stats=_has(ro, F.SWAP_CACHE_STATS),
            cma=_has(ro, F.PAGES_CMA), hwpoisoned=_has(ro, F.PAGES_HWPOISONED),
            alloc_profiling=b"Memory allocations" in ro,
            source="formats from the kernel's .rodata")
    era = _fallback_era(reader)
    config = _config(reader)
    why = "no .rodata" if not ro else "format strings not found in .rodata"
    return MemFormats(
        global_=era.global_, node=F.assemble(era.node, config), zone=F.assemble(era.zone, config),
        zone_cont=True, numa=numa, hugetlb_per_node=era.hugetlb_per_node,
        zone_filter=era.zone_filter, swap=t.symbol("nr_swap_pages") is not None,
        swap_cache_stats=era.swap_cache_stats and t.symbol("swap_cache_info") is not None,
        cma=t.constant("MIGRATE_CMA") is not None,
        hwpoisoned=t.symbol("num_poisoned_pages") is not None, alloc_profiling=False,
        source=f"formats of era {era.name} ({era.source}; {why}: guessed from types and symbols)")


# Value rules --------------------------------------------------------------------------


class _Ctx:
    """What the rules read: the reader, the formats, and the zone/node being printed."""

    def __init__(self, reader, fmts: MemFormats, cpu: Optional[int]) -> None:
        self.reader = reader
        self.t = reader.target
        self.kb = vmstat.page_kb(reader)
        self.cpu = cpu
        self.fmts = fmts
        zone_labels = set(format_labels(fmts.zone))
        # Where a counter is printed in the zone line, the kernel of that era
        # keeps it per zone; the global line reads the zone total then.
        # NR_PAGETABLE: a node counter since f0c0c115fb81 ("mm: memcontrol:
        # account pagetables per node") (in v5.11); NR_KERNEL_STACK_KB since
        # 991e7673859e ("mm: memcontrol: account kernel stack per node") (in
        # v5.9); NR_SLAB_* since 385386cff4c6 ("mm: vmstat: move slab
        # statistics from zone to node counters") (in v4.13).
        self.zone_items = {lbl for lbl in ("pagetables", "kernel_stack", "slab_reclaimable",
                                           "slab_unreclaimable") if lbl in zone_labels}
        # The THP node counters count huge pages (printed * HPAGE_PMD_NR) until
        # the series "mm: memcontrol: convert NR_*THPS account to pages" (in
        # v5.12, hashes not checked here), pages since. No type or string tells
        # them apart: a kernel printing pagetables per zone (before v5.11) is of
        # the old unit; v5.11 alone would be read wrongly when THPs exist.
        # HPAGE_PMD_NR = 1 << (PMD_SHIFT - PAGE_SHIFT), PMD_SHIFT = PAGE_SHIFT +
        # PAGE_SHIFT - 3 with 8-byte entries (x86-64; arm64 4K/16K/64K).
        self.thp_factor = (1 << (self._page_shift() - 3)) if "pagetables" in zone_labels else 1
        self.pgdat = 0
        self.zone: Optional[ZoneRef] = None
        self.zone_fields: Dict[str, int] = {}
        self.free_pcp = 0
        self.local_pcp = 0

    def _page_shift(self) -> int:
        return self.kb.bit_length() + 9  # K(1) = 1 << (PAGE_SHIFT - 10)

    def K(self, pages: int) -> int:
        return pages * self.kb

    def gnode(self, name: str) -> int:
        return vmstat.global_node_page_state(self.reader, name)

    def gzone(self, name: str) -> int:
        return vmstat.global_zone_page_state(self.reader, name)

    def node(self, name: str) -> int:
        return vmstat.node_page_state(self.reader, self.pgdat, name)

    def zstat(self, name: str) -> int:
        assert self.zone is not None
        return vmstat.zone_page_state(self.reader, self.zone.address, name)

    def global_item(self, label: str, name: str) -> int:
        return self.gzone(name) if label in self.zone_items else self.gnode(name)


def _slab(label: str, name: str) -> Callable[[_Ctx], int]:
    # NR_SLAB_*_B (pages in the global and node counters) since d42f3245c7e2
    # ("mm: memcg: convert vmstat slab counters to bytes") (in v5.9).
    def rule(c: _Ctx) -> int:
        if vmstat.has_item(c.reader, name + "_B"):
            return c.gnode(name + "_B")
        return c.global_item(label, name)
    return rule


def _bounce_global(c: _Ctx) -> int:
    # NR_BOUNCE is gone in 7.x ("mm: remove NR_BOUNCE zone stat", hash not
    # checked here): the kernel prints 0UL in its place.
    return c.gzone("NR_BOUNCE") if vmstat.has_item(c.reader, "NR_BOUNCE") else 0


def _g(name: str) -> Callable[[_Ctx], int]:
    return lambda c: c.gnode(name)


def _gz(name: str) -> Callable[[_Ctx], int]:
    return lambda c: c.gzone(name)


GLOBAL_RULES: Dict[str, Callable[[_Ctx], Any]] = {
    "active_anon": _g("NR_ACTIVE_ANON"), "inactive_anon": _g("NR_INACTIVE_ANON"),
    "isolated_anon": _g("NR_ISOLATED_ANON"), "active_file": _g("NR_ACTIVE_FILE"),
    "inactive_file": _g("NR_INACTIVE_FILE"), "isolated_file": _g("NR_ISOLATED_FILE"),
    "unevictable": _g("NR_UNEVICTABLE"), "dirty": _g("NR_FILE_DIRTY"),
    "writeback": _g("NR_WRITEBACK"),
    # NR_UNSTABLE_NFS until 8d92890bd6b8 ("mm/writeback: discard NR_UNSTABLE_NFS,
    # use NR_WRITEBACK instead") (in v5.8).
    "unstable": _g("NR_UNSTABLE_NFS"),
    "slab_reclaimable": _slab("slab_reclaimable", "NR_SLAB_RECLAIMABLE"),
    "slab_unreclaimable": _slab("slab_unreclaimable", "NR_SLAB_UNRECLAIMABLE"),
    "mapped": _g("NR_FILE_MAPPED"), "shmem": _g("NR_SHMEM"),
    "pagetables": lambda c: c.global_item("pagetables", "NR_PAGETABLE"),
    "sec_pagetables": _g("NR_SECONDARY_PAGETABLE"),
    "bounce": _bounce_global,
    "kernel_misc_reclaimable": _g("NR_KERNEL_MISC_RECLAIMABLE"),
    "free": _gz("NR_FREE_PAGES"), "free_pcp": lambda c: c.free_pcp,
    "free_cma": _gz("NR_FREE_CMA_PAGES"),
}


def _nk(name: str, factor: bool = False) -> Callable[[_Ctx], int]:
    return lambda c: c.K(c.node(name) * (c.thp_factor if factor else 1))


def _kswapd_failures(c: _Ctx) -> int:
    m, _ = scalar(c.t, "struct pglist_data", "kswapd_failures")
    return c.reader.read_int(c.pgdat + m.offset, m.size, signed=True)


def _all_unreclaimable(c: _Ctx) -> str:
    # pgdat->kswapd_failures >= MAX_RECLAIM_RETRIES since c73322d098e4 ("mm: fix
    # 100% CPU kswapd busyloop on unreclaimable nodes") (in v4.11); 7.x reads
    # the same through kswapd_test_hopeless(), kswapd_failures an atomic_t.
    if not has_member(c.t, "struct pglist_data", "kswapd_failures"):
        raise LookupError("all_unreclaimable? before v4.11 (pgdat_reclaimable()) is not "
                          "re-created")
    return "yes" if _kswapd_failures(c) >= MAX_RECLAIM_RETRIES else "no"


NODE_RULES: Dict[str, Callable[[_Ctx], Any]] = {
    "Node": lambda c: vmstat.node_id(c.reader, c.pgdat),
    "active_anon": _nk("NR_ACTIVE_ANON"), "inactive_anon": _nk("NR_INACTIVE_ANON"),
    "active_file": _nk("NR_ACTIVE_FILE"), "inactive_file": _nk("NR_INACTIVE_FILE"),
    "unevictable": _nk("NR_UNEVICTABLE"), "isolated(anon)": _nk("NR_ISOLATED_ANON"),
    "isolated(file)": _nk("NR_ISOLATED_FILE"), "mapped": _nk("NR_FILE_MAPPED"),
    "dirty": _nk("NR_FILE_DIRTY"), "writeback": _nk("NR_WRITEBACK"), "shmem": _nk("NR_SHMEM"),
    "shmem_thp": _nk("NR_SHMEM_THPS", True), "shmem_pmdmapped": _nk("NR_SHMEM_PMDMAPPED", True),
    "anon_thp": _nk("NR_ANON_THPS", True),
    "writeback_tmp": _nk("NR_WRITEBACK_TEMP"), "unstable": _nk("NR_UNSTABLE_NFS"),
    "kernel_stack": lambda c: c.node("NR_KERNEL_STACK_KB"),
    "shadow_call_stack": lambda c: c.node("NR_KERNEL_SCS_KB"),
    "pagetables": _nk("NR_PAGETABLE"), "sec_pagetables": _nk("NR_SECONDARY_PAGETABLE"),
    "all_unreclaimable?": _all_unreclaimable,
    "Balloon": _nk("NR_BALLOON_PAGES"), "gpu_active": _nk("NR_GPU_ACTIVE"),
    "gpu_reclaim": _nk("NR_GPU_RECLAIM"),
}


def _zk(name: str) -> Callable[[_Ctx], int]:
    return lambda c: c.K(c.zstat(name))


def _zk_or_zero(name: str) -> Callable[[_Ctx], int]:
    # 7.x prints 0UL where the counter does not exist (NR_BOUNCE removed;
    # NR_ZSPAGES without CONFIG_ZSMALLOC).
    return lambda c: c.K(c.zstat(name)) if vmstat.has_item(c.reader, name) else 0


def _zf(name: str) -> Callable[[_Ctx], int]:
    return lambda c: c.K(c.zone_fields[name])


ZONE_RULES: Dict[str, Callable[[_Ctx], Any]] = {
    "": lambda c: c.zone_fields["name"],
    "free": _zk("NR_FREE_PAGES"),
    "boost": _zf("watermark_boost"), "min": _zf("min"), "low": _zf("low"), "high": _zf("high"),
    "reserved_highatomic": _zf("nr_reserved_highatomic"),
    "free_highatomic": _zf("nr_free_highatomic"),
    "active_anon": _zk("NR_ZONE_ACTIVE_ANON"), "inactive_anon": _zk("NR_ZONE_INACTIVE_ANON"),
    "active_file": _zk("NR_ZONE_ACTIVE_FILE"), "inactive_file": _zk("NR_ZONE_INACTIVE_FILE"),
    "unevictable": _zk("NR_ZONE_UNEVICTABLE"), "writepending": _zk("NR_ZONE_WRITE_PENDING"),
    "zspages": _zk_or_zero("NR_ZSPAGES"),
    "present": _zf("present_pages"), "managed": _zf("managed_pages"),
    "mlocked": _zk("NR_MLOCK"),
    "kernel_stack": lambda c: c.zstat("NR_KERNEL_STACK_KB"),
    "pagetables": _zk("NR_PAGETABLE"),
    "slab_reclaimable": _zk("NR_SLAB_RECLAIMABLE"),
    "slab_unreclaimable": _zk("NR_SLAB_UNRECLAIMABLE"),
    "bounce": _zk_or_zero("NR_BOUNCE"),
    "free_pcp": lambda c: c.K(c.free_pcp), "local_pcp": lambda c: c.K(c.local_pcp),
    "free_cma": _zk("NR_FREE_CMA_PAGES"),
}

#: the value rule of every label, per line
RULES = {"global": GLOBAL_RULES, "node": NODE_RULES, "zone": ZONE_RULES}


def _render(fmt: str, rules: Dict[str, Callable[[_Ctx], Any]], c: _Ctx,
            what: str) -> Tuple[str, Dict[str, Any]]:
    values: Dict[str, Any] = {}
    args = []
    for label in format_labels(fmt):
        rule = rules.get(label)
        if rule is None:
            raise ReadError(f"show_mem: no value rule for {what} label {label!r}")
        try:
            v = rule(c)
        except LookupError as e:
            raise ReadError(f"show_mem: {what} {label}: {e}") from None
        values[label or "name"] = v
        args.append(v)
    return cformat(fmt, args), values


# The console ---------------------------------------------------------------------------


class _Console:
    """printk as the console shows one CPU's messages: a message that is not
    ``KERN_CONT`` ends an unfinished line first; newlines split lines."""

    def __init__(self) -> None:
        self.lines: List[str] = []
        self.open: Optional[str] = None

    def printk(self, text: str, cont: bool = False) -> None:
        if not cont and self.open is not None:
            self.lines.append(self.open)
            self.open = None
        parts = ((self.open or "") + text).split("\n")
        self.lines.extend(parts[:-1])
        self.open = parts[-1] or None

    def done(self) -> List[str]:
        if self.open is not None:
            self.lines.append(self.open)
            self.open = None
        return self.lines


# Reading a zone ---------------------------------------------------------------------------


def _zone_fields(reader, z: ZoneRef) -> Dict[str, int]:
    t, word = reader.target, reader.memory.read_word
    a = z.address
    out = {"present_pages": vmstat.zone_present_pages(reader, a),
           "managed_pages": vmstat.zone_managed_pages(reader, a)}
    # zone->_watermark[] + watermark_boost since 1c30844d2dfe ("mm: reclaim
    # small amounts of memory when an external fragmentation event occurs") (in
    # v5.0); zone->watermark[] before.
    boost = 0
    if has_member(t, "struct zone", "_watermark"):
        marks = t.member("struct zone", "_watermark").offset
        boost = word(a + t.member("struct zone", "watermark_boost").offset)
    else:
        marks = t.member("struct zone", "watermark").offset
    out["watermark_boost"] = boost
    for name, mark in (("min", "WMARK_MIN"), ("low", "WMARK_LOW"), ("high", "WMARK_HIGH")):
        index = t.constant(mark)
        if index is None:
            raise ReadError(f"no {mark} enumerator")
        out[name] = (word(a + marks + 8 * index) + boost) & _MASK64
    for name in ("nr_reserved_highatomic", "nr_free_highatomic"):
        out[name] = (word(a + t.member("struct zone", name).offset)
                     if has_member(t, "struct zone", name) else 0)
    return out


def _zone_name(reader, z: ZoneRef) -> str:
    return vmstat.zone_name(reader, z.address)


def _lowmem_reserve(reader, z: ZoneRef) -> List[int]:
    m = reader.target.member("struct zone", "lowmem_reserve")
    n = m.length or 0
    return [reader.read_int(z.address + m.offset + 8 * i, 8, signed=True) for i in range(n)]


def _migrate_letters(reader) -> Tuple[int, Dict[int, str]]:
    t = reader.target
    letters: Dict[int, str] = {}
    for name, letter in MIGRATE_LETTERS:
        value = t.constant(name)
        if value is not None:
            letters.setdefault(value, letter)
    types = t.constant("MIGRATE_TYPES")
    if types is None:
        types = t.member("struct free_area", "free_list").length or 0
    return types, letters


def _free_area(reader, z: ZoneRef, types: int) -> Tuple[List[int], List[int]]:
    """``nr_free`` and the bitmask of non-empty ``free_list[type]`` of each order."""
    t, word = reader.target, reader.memory.read_word
    areas = t.member("struct zone", "free_area")
    size = t.sizeof("struct free_area")
    lists = t.member("struct free_area", "free_list").offset
    nr_off = t.member("struct free_area", "nr_free").offset
    head = t.sizeof("struct list_head")
    nr, masks = [], []
    for order in range(areas.length or 0):
        area = z.address + areas.offset + order * size
        nr.append(word(area + nr_off))
        mask = 0
        for mt in range(types):
            lh = area + lists + mt * head
            if word(lh) != lh:  # !list_empty(&area->free_list[type])
                mask |= 1 << mt
        masks.append(mask & 0xFF)  # unsigned char types[]
    return nr, masks


def _migration_types(mask: int, types: int, letters: Dict[int, str]) -> str:
    out = []
    for i in range(types):
        if mask & (1 << i):
            letter = letters.get(i)
            if letter is None:  # the C table holds '\0' there: the string ends
                break
            out.append(letter)
    return "".join(out)


def _is_highmem(reader, idx: int) -> bool:
    t = reader.target
    high = t.constant("ZONE_HIGHMEM")
    if high is None:  # no CONFIG_HIGHMEM: is_highmem() is 0
        return False
    if idx == high:
        return True
    movable = t.symbol("movable_zone")
    return (idx == t.constant("ZONE_MOVABLE") and movable is not None
            and reader.read_int(movable[0], 4, signed=True) == high)


# Hugetlb, swap -----------------------------------------------------------------------


def _hstates(reader) -> List[int]:
    t = reader.target
    hstates, count = t.symbol("hstates"), t.symbol("hugetlb_max_hstate")
    if hstates is None or count is None:
        return []
    n = reader.read_int(count[0], 4, signed=True)
    size = t.sizeof("struct hstate")
    return [hstates[0] + i * size for i in range(max(0, n))]


def _hugetlb_values(reader, h: int, nid: int, kb: int) -> Tuple[int, int, int, int]:
    t = reader.target

    def node_u32(name: str) -> int:
        off = t.member("struct hstate", f"{name}[{nid}]").offset
        return reader.read_int(h + off, 4)
    order = reader.read_int(h + t.member("struct hstate", "order").offset, 4)
    return (node_u32("nr_huge_pages_node"), node_u32("free_huge_pages_node"),
            node_u32("surplus_huge_pages_node"), kb << order)


def _total_swapcache_pages(reader) -> int:
    t = reader.target
    # A function walking swapper_spaces[] until total_swapcache_pages() became
    # global_node_page_state(NR_SWAPCACHE) (an inline: no symbol) in v5.12
    # ("mm: memcg: add swapcache stat for memcg v2", hash not checked here).
    if t.symbol("total_swapcache_pages") is None and vmstat.has_item(reader, "NR_SWAPCACHE"):
        return vmstat.global_node_page_state(reader, "NR_SWAPCACHE")
    spaces, counts = t.symbol("swapper_spaces"), t.symbol("nr_swapper_spaces")
    info, nfiles = t.symbol("swap_info"), t.symbol("nr_swapfiles")
    if None in (spaces, counts, info, nfiles):
        return 0
    nr_swapfiles = reader.read_int(nfiles[0], 4)
    valid = t.constant("SWP_VALID") or t.constant("SWP_USED") or 1
    flags = t.member("struct swap_info_struct", "flags").offset
    smax = t.member("struct swap_info_struct", "max").offset
    nrpages = t.member("struct address_space", "nrpages").offset
    asize = t.sizeof("struct address_space")
    total = 0
    for i in range(min(nr_swapfiles, 64)):
        si = reader.memory.read_word(info[0] + 8 * i)
        # get_swap_device(swp_entry(i, 1)): a valid device with max > 1.
        if not si or not reader.memory.read_word(si + flags) & valid:
            continue
        if reader.read_int(si + smax, 4) <= 1:
            continue
        base = reader.memory.read_word(spaces[0] + 8 * i)
        for j in range(reader.read_int(counts[0] + 4 * i, 4)):
            total += reader.memory.read_word(base + j * asize + nrpages)
    return total


def _swap_values(reader, kb: int, stats: bool) -> Dict[str, Any]:
    t = reader.target
    out: Dict[str, Any] = {"pages_in_swap_cache": _total_swapcache_pages(reader)}
    if stats:
        s = t.symbol("swap_cache_info")
        words = [reader.memory.read_word(s[0] + 8 * i) for i in range(4)] if s else [0] * 4
        out["swap_cache_stats"] = dict(zip(("add", "delete", "find_success", "find_total"),
                                           words))
    nr = t.symbol("nr_swap_pages")
    total = t.symbol("total_swap_pages")
    out["free_swap_kB"] = (reader.read_int(nr[0], 8, signed=True) if nr else 0) * kb
    out["total_swap_kB"] = (reader.read_int(total[0], 8, signed=True) if total else 0) * kb
    return out


# __show_mem ---------------------------------------------------------------------------


def show_mem(reader, nodemask: Optional[Sequence[int]], mems_allowed: Sequence[int],
             max_zone_idx: Optional[int], cpu: Optional[int]) -> ShowMem:
    """``__show_mem(SHOW_MEM_FILTER_NODES, nodemask, max_zone_idx)`` as
    ``dump_header()`` calls it (``show_mem(SHOW_MEM_FILTER_NODES, nodemask)``
    before the zone filter).

    :param nodemask: ``oc->nodemask`` (None: ``NULL``, then *mems_allowed*)
    :param mems_allowed: the OOM task's ``cpuset_current_mems_allowed``
    :param max_zone_idx: ``gfp_zone(oc->gfp_mask)`` (None: unknown, no zone
        is filtered out); ignored by kernels before the zone filter
    :param cpu: the CPU that printed (its ``local_pcp``); None: unknown, 0 is
        printed and :attr:`ShowMem.formats` says so
    """
    try:
        return _show_mem(reader, nodemask, mems_allowed, max_zone_idx, cpu)
    except ReadError:
        raise
    except (LookupError, ValueError, OverflowError) as e:
        raise ReadError(f"show_mem: {e}") from None
    except Fault as e:
        raise ReadError(f"show_mem: memory unreadable: {e}") from None


def _show_mem(reader, nodemask, mems_allowed, max_zone_idx, cpu) -> ShowMem:
    fmts = mem_formats(reader)
    c = _Ctx(reader, fmts, cpu)
    allowed = set(nodemask if nodemask is not None else mems_allowed)
    zone_filter = fmts.zone_filter
    zmax = max_zone_idx if (zone_filter and max_zone_idx is not None) else None

    def skip_node(nid: int) -> bool:  # show_mem_node_skip(SHOW_MEM_FILTER_NODES, ...)
        return nid not in allowed

    zones = vmstat.populated_zones(reader)
    shown = [z for z in zones
             if not (zmax is not None and z.idx > zmax) and not skip_node(z.nid)]
    online = reader.cpus("online")
    pcp = {z.address: vmstat.zone_pcp_counts(reader, z.address, online) for z in shown}
    console = _Console()
    values: Dict[str, Any] = {}
    console.printk(F.MEM_INFO)

    c.free_pcp = sum(n for z in shown for _, n in pcp[z.address])
    text, values["global"] = _render(fmts.global_, GLOBAL_RULES, c, "global")
    console.printk(text)

    values["nodes"] = []
    for nid in vmstat.online_nodes(reader):
        if skip_node(nid):
            continue
        pgdat = vmstat.node_data(reader, nid)
        # node_has_managed_zones(pgdat, max_zone_idx): with the zone filter.
        if zone_filter:
            limit = zmax if zmax is not None else vmstat.nr_zones(reader) - 1
            if not any(vmstat.zone_managed_pages(reader, a)
                       for a in vmstat.pgdat_zones(reader, pgdat)[:limit + 1]):
                continue
        c.pgdat = pgdat
        text, node_values = _render(fmts.node, NODE_RULES, c, "node")
        values["nodes"].append(node_values)
        console.printk(text)

    values["zones"] = []
    for z in shown:
        c.zone, c.pgdat = z, z.pgdat
        c.zone_fields = _zone_fields(reader, z)
        c.zone_fields["name"] = _zone_name(reader, z)  # type: ignore[assignment]
        c.free_pcp = sum(n for _, n in pcp[z.address])
        counts = dict(pcp[z.address])
        c.local_pcp = counts.get(cpu, 0) if cpu is not None else 0
        if fmts.numa:
            console.printk(F.SHOW_NODE % z.nid)
        text, zone_values = _render(fmts.zone, ZONE_RULES, c, "zone")
        console.printk(text, cont=fmts.zone_cont)
        reserve = _lowmem_reserve(reader, z)
        console.printk(F.LOWMEM)
        for r in reserve:
            console.printk(cformat(F.LOWMEM_ITEM, [r]), cont=True)
        console.printk("\n", cont=True)
        zone_values.update(node=z.nid, zone_idx=z.idx, lowmem_reserve=reserve)
        values["zones"].append(zone_values)

    types, letters = _migrate_letters(reader)
    values["free_areas"] = []
    for z in shown:
        nr, masks = _free_area(reader, z, types)
        if fmts.numa:
            console.printk(F.SHOW_NODE % z.nid)
        console.printk(cformat(F.BUDDY_ZONE, [_zone_name(reader, z)]), cont=True)
        total = 0
        for order, (n, mask) in enumerate(zip(nr, masks)):
            total += n << order
            console.printk(cformat(F.BUDDY_ORDER, [n, c.kb << order]), cont=True)
            if n:
                console.printk(cformat(F.BUDDY_TYPES, [_migration_types(mask, types, letters)]),
                               cont=True)
        console.printk(cformat(F.BUDDY_TOTAL, [c.K(total)]), cont=True)
        values["free_areas"].append({"node": z.nid, "zone": _zone_name(reader, z),
                                     "nr_free": nr, "types": masks, "total_kB": c.K(total)})

    values["hugepages"] = []
    hstates = _hstates(reader)
    if fmts.hugetlb_per_node:
        huge_nodes = [nid for nid in vmstat.online_nodes(reader) if not skip_node(nid)]
    else:  # hugetlb_show_meminfo(): every node with memory, unfiltered
        huge_nodes = vmstat.node_state(reader, "N_MEMORY")
    for nid in huge_nodes:
        for h in hstates:
            total_h, free_h, surp, size_kb = _hugetlb_values(reader, h, nid, c.kb)
            console.printk(cformat(F.HUGETLB, [nid, total_h, free_h, surp, size_kb]))
            values["hugepages"].append({"node": nid, "hugepages_total": total_h,
                                        "hugepages_free": free_h, "hugepages_surp": surp,
                                        "hugepages_size": size_kb})

    values["total_pagecache_pages"] = vmstat.global_node_page_state(reader, "NR_FILE_PAGES")
    console.printk(cformat(F.PAGECACHE, [values["total_pagecache_pages"]]))

    if fmts.swap:
        swap = values["swap"] = _swap_values(reader, c.kb, fmts.swap_cache_stats)
        console.printk(cformat(F.SWAP_CACHE, [swap["pages_in_swap_cache"]]))
        if fmts.swap_cache_stats:
            s = swap["swap_cache_stats"]
            console.printk(cformat(F.SWAP_CACHE_STATS, [s["add"], s["delete"],
                                                        s["find_success"], s["find_total"]]))
        console.printk(cformat(F.FREE_SWAP, [swap["free_swap_kB"]]))
        console.printk(cformat(F.TOTAL_SWAP, [swap["total_swap_kB"]]))

    total = reserved = highmem = 0
    for z in zones:
        present = vmstat.zone_present_pages(reader, z.address)
        total += present
        reserved += present - vmstat.zone_managed_pages(reader, z.address)
        if _is_highmem(reader, z.idx):
            highmem += present
    values.update(pages_ram=total, pages_highmem_movableonly=highmem, pages_reserved=reserved)
    console.printk(cformat(F.PAGES_RAM, [total]))
    console.printk(cformat(F.PAGES_HIGHMEM, [highmem]))
    console.printk(cformat(F.PAGES_RESERVED, [reserved & _MASK64]))
    if fmts.cma:
        sym = reader.target.symbol("totalcma_pages")
        values["pages_cma_reserved"] = reader.memory.read_word(sym[0]) if sym else 0
        console.printk(cformat(F.PAGES_CMA, [values["pages_cma_reserved"]]))
    if fmts.hwpoisoned:
        sym = reader.target.symbol("num_poisoned_pages")
        values["pages_hwpoisoned"] = reader.read_int(sym[0], 8, signed=True) if sym else 0
        console.printk(cformat(F.PAGES_HWPOISONED, [values["pages_hwpoisoned"]]))

    notes = [fmts.source]
    if zone_filter:
        notes.append("zone filter max_zone_idx=" + (str(zmax) if zmax is not None else
                                                     "unknown (no zone filtered out)"))
    else:
        notes.append("no zone filter in this era")
    notes.append("nodes: " + ("nodemask" if nodemask is not None else "mems_allowed")
                 + " " + ",".join(map(str, sorted(allowed))))
    notes.append(f"local_pcp of CPU {cpu}" if cpu is not None else
                 "local_pcp: printing CPU unknown, 0 printed")
    if fmts.alloc_profiling:
        notes.append("Memory allocations lines (CONFIG_MEM_ALLOC_PROFILING) not re-created")
    return ShowMem(lines=console.done(), values=values, formats="show_mem: " + "; ".join(notes))
