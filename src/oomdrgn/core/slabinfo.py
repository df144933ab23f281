"""The OOM report's unreclaimable slab dump: ``should_dump_unreclaim_slab()``
(``is_dump_unreclaim_slabs()`` before v6.1) and ``dump_unreclaimable_slab()``
(``mm/slab_common.c``) over SLUB's ``get_slabinfo()``, read over the target port.

SLUB only: the SLAB allocator (removed in v6.8) keeps other counters
(``n->total_slabs``, ``n->free_objects``) and is refused here. Without
``CONFIG_SLUB_DEBUG`` a node's ``nr_slabs``/``total_objects`` do not exist and
read 0, as ``node_nr_objs()`` returns then: no cache is printed.

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`.
"""

from __future__ import annotations

from typing import Iterator, List

from .memo import once_per
from . import vmstat
from .cformat import cformat
from .errors import ReadError
from .evidence import has_member
from .klist import list_entries
from .port import Fault
from .record import record

__all__ = ["SlabInfo", "should_dump_unreclaim_slab", "dump_unreclaimable_slab",
           "get_slabinfo", "slab_caches", "UNRECLAIMABLE_HEADER", "UNRECLAIMABLE_NAMES",
           "UNRECLAIMABLE_ROW", "UNRECLAIMABLE_BUSY"]

# The pr_info()/pr_warn() formats of dump_unreclaimable_slab(), unchanged since
# 7ad3f188aac1 ("mm: oom: show unreclaimable slab info when unreclaimable slabs
# > user memory") (in v4.15).
UNRECLAIMABLE_HEADER = "Unreclaimable slab info:\n"
UNRECLAIMABLE_NAMES = "Name                      Used          Total\n"
UNRECLAIMABLE_ROW = "%-17s %10luKB %10luKB\n"
UNRECLAIMABLE_BUSY = "excessive unreclaimable slab but cannot dump stats\n"
# SLAB_RECLAIM_ACCOUNT: a #define (0x00020000U) until the flags became an enum
# of bit numbers (_SLAB_RECLAIM_ACCOUNT, v6.10, hash not checked here).
_SLAB_RECLAIM_ACCOUNT = 0x00020000
# count_partial_free_approx()'s MAX_PARTIAL_TO_SCAN (a #define in mm/slub.c).
_MAX_PARTIAL_TO_SCAN = 10000
_FAULTS = (Fault,)
_MASK64 = (1 << 64) - 1
_LRU = ("NR_ACTIVE_ANON", "NR_INACTIVE_ANON", "NR_ACTIVE_FILE", "NR_INACTIVE_FILE",
        "NR_ISOLATED_ANON", "NR_ISOLATED_FILE", "NR_UNEVICTABLE")


@record(frozen=True)
class SlabInfo:
    """``struct slabinfo`` as SLUB's ``get_slabinfo()`` fills it (the part
    ``dump_unreclaimable_slab()`` uses), with the cache's name and size."""

    name: str
    size: int
    active_objs: int
    num_objs: int
    num_slabs: int


def should_dump_unreclaim_slab(reader) -> bool:
    """``should_dump_unreclaim_slab()``: unreclaimable slab pages outnumber
    the LRU pages (``NR_SLAB_UNRECLAIMABLE_B`` since d42f3245c7e2 ("mm: memcg:
    convert vmstat slab counters to bytes") (in v5.9), ``NR_SLAB_UNRECLAIMABLE``
    before; pages in both)."""
    nr_lru = sum(vmstat.global_node_page_state(reader, name) for name in _LRU)
    name = ("NR_SLAB_UNRECLAIMABLE_B" if vmstat.has_item(reader, "NR_SLAB_UNRECLAIMABLE_B")
            else "NR_SLAB_UNRECLAIMABLE")
    return vmstat.global_node_page_state_pages(reader, name) > nr_lru


def slab_caches(reader) -> Iterator[int]:
    """``list_for_each_entry(s, &slab_caches, list)``: each ``struct kmem_cache *``."""
    head = reader.symbol_address("slab_caches")
    off = reader.offset("struct kmem_cache", "list")
    return list_entries(head, off, reader.memory.read_word, "slab_caches", _FAULTS)


class _Layout:
    def __init__(self, reader) -> None:
        t = reader.target
        if not has_member(t, "struct kmem_cache_node", "partial"):
            raise ReadError("not a SLUB kernel (struct kmem_cache_node has no partial list)")
        self.name = t.member("struct kmem_cache", "name").offset
        self.size = t.member("struct kmem_cache", "size").offset
        flags = t.member("struct kmem_cache", "flags")
        self.flags, self.flags_size = flags.offset, flags.size
        reclaim = t.constant("_SLAB_RECLAIM_ACCOUNT")
        self.reclaim = 1 << reclaim if reclaim is not None else _SLAB_RECLAIM_ACCOUNT
        # s->per_node[node].node in 7.x (the node's kmem_cache_node beside its
        # barn, "slab: add sheaf support", hash not checked here); s->node[node]
        # before.
        if has_member(t, "struct kmem_cache", "per_node"):
            self.node = t.member("struct kmem_cache", "per_node[0].node").offset
            self.node_step = t.member("struct kmem_cache", "per_node[1].node").offset - self.node
        else:
            self.node = t.member("struct kmem_cache", "node").offset
            self.node_step = 8
        sym = t.symbol("nr_node_ids")
        self.nr_node_ids = reader.read_int(sym[0], 4) if sym else 1
        kcn = "struct kmem_cache_node"
        self.nr_partial = t.member(kcn, "nr_partial").offset
        self.partial = t.member(kcn, "partial").offset
        # CONFIG_SLUB_DEBUG: nr_slabs and total_objects (node_nr_objs() is 0 without).
        self.debug = has_member(t, kcn, "total_objects")
        if self.debug:
            self.nr_slabs = t.member(kcn, "nr_slabs").offset
            self.total_objects = t.member(kcn, "total_objects").offset
        # The partial list holds struct slab since d122019bf061 ("mm: Split
        # slab into its own type") (in v5.17), struct page before, linked by
        # slab_list since 916ac0527837 ("slub: use slab_list instead of lru")
        # (in v5.2), by lru before. inuse:16 and objects:15 are bit fields of
        # one word (unchanged since SLUB came): read as 16-bit halves.
        owner = "struct slab" if _has_type_member(t, "struct slab", "slab_list") else "struct page"
        link = "slab_list" if has_member(t, owner, "slab_list") else "lru"
        self.link = t.member(owner, link).offset
        self.inuse = t.member(owner, "inuse").offset
        self.objects = t.member(owner, "objects").offset
        self.approx = t.symbol("count_partial_free_approx") is not None


def _has_type_member(t, type_name: str, member: str) -> bool:
    try:
        t.member(type_name, member)
        return True
    except (LookupError, ValueError):
        return False


def _u16(reader, address: int) -> int:
    return int.from_bytes(reader.memory.read(address, 2),
                          "little" if reader.target.little_endian else "big")


def _free_counts(reader, layout: _Layout, n: int) -> List[int]:
    """``slab->objects - slab->inuse`` of each slab on ``n->partial``, in list order."""
    head = n + layout.partial
    out = []
    for slab in list_entries(head, layout.link, reader.memory.read_word, "slab partial",
                             _FAULTS):
        objects = _u16(reader, slab + layout.objects) & 0x7FFF
        inuse = _u16(reader, slab + layout.inuse)
        out.append(objects - inuse)
    return out


def _count_partial_free(reader, layout: _Layout, n: int, nr_objs: int) -> int:
    counts = _free_counts(reader, layout, n)
    nr_partial = reader.memory.read_word(n + layout.nr_partial)
    # count_partial_free_approx() since v6.10 ("mm/slub: ... approximate the
    # partial free count", hash not checked here; its symbol tells): above
    # MAX_PARTIAL_TO_SCAN slabs, 5000 from the head and 5000 from the tail,
    # scaled by mult_frac() and capped at node_nr_objs().
    if not layout.approx or nr_partial <= _MAX_PARTIAL_TO_SCAN:
        return sum(counts)
    half = _MAX_PARTIAL_TO_SCAN // 2
    scanned = counts[:half] + list(reversed(counts))[:_MAX_PARTIAL_TO_SCAN - half]
    x = sum(scanned)
    quot, rem = divmod(x, len(scanned))
    x = quot * nr_partial + rem * nr_partial // len(scanned)
    return min(x, nr_objs)


def get_slabinfo(reader, cache: int) -> SlabInfo:
    """SLUB's ``get_slabinfo(s, &sinfo)`` of ``struct kmem_cache *`` *cache*:
    over each node's ``kmem_cache_node``, ``nr_slabs``, ``total_objects`` and
    the free objects of the partial slabs (CPU slabs count as in use)."""
    layout = _layout(reader)
    word = reader.memory.read_word
    nr_slabs = nr_objs = nr_free = 0
    for node in range(layout.nr_node_ids):
        n = word(cache + layout.node + node * layout.node_step)
        if not n:
            continue
        objs = word(n + layout.total_objects) if layout.debug else 0
        nr_slabs += word(n + layout.nr_slabs) if layout.debug else 0
        nr_objs += objs
        nr_free += _count_partial_free(reader, layout, n, objs)
    size = reader.read_int(cache + layout.size, 4)
    name = reader.string(word(cache + layout.name), 256)
    return SlabInfo(name, size, (nr_objs - nr_free) & _MASK64, nr_objs, nr_slabs)




@once_per
def _layout(reader) -> _Layout:
    return _Layout(reader)


def dump_unreclaimable_slab(reader) -> List[str]:
    """``dump_unreclaimable_slab()``'s console lines: the header, then
    ``%-17s %10luKB %10luKB`` (name, ``active_objs * size / 1024``,
    ``num_objs * size / 1024``) of each cache on ``slab_caches`` that is not
    ``SLAB_RECLAIM_ACCOUNT`` and has objects, in list order. If ``slab_mutex``
    is held now, the kernel's ``mutex_trylock()`` would have failed: its one
    warning line. A kernel without the function (before v4.15) prints nothing.
    """
    if reader.target.symbol("dump_unreclaimable_slab") is None:
        return []
    if reader.mutex_held("slab_mutex"):
        return [UNRECLAIMABLE_BUSY.rstrip("\n")]
    layout = _layout(reader)
    lines = [UNRECLAIMABLE_HEADER.rstrip("\n"), UNRECLAIMABLE_NAMES.rstrip("\n")]
    little = reader.target.little_endian
    try:
        for s in slab_caches(reader):
            flags = int.from_bytes(reader.memory.read(s + layout.flags, layout.flags_size),
                                   "little" if little else "big")
            if flags & layout.reclaim:
                continue
            info = get_slabinfo(reader, s)
            if info.num_objs > 0:
                # (sinfo.active_objs * s->size) / 1024 in unsigned long.
                lines.append(cformat(UNRECLAIMABLE_ROW, [
                    info.name, (info.active_objs * info.size & _MASK64) // 1024,
                    (info.num_objs * info.size & _MASK64) // 1024]).rstrip("\n"))
    except Fault as e:
        raise ReadError(f"slab caches unreadable: {e}") from None
    return lines
