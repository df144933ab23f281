"""The kernel's page counters, nodes and zones as ``mm/vmstat.c`` and
``include/linux/vmstat.h`` read them, over the target port.

Counters are named by their enumerator (``"NR_FREE_PAGES"``), whose value comes
from the kernel (``target.constant``): zone items index ``vm_zone_stat[]`` and
``zone->vm_stat[]``, node items ``vm_node_stat[]`` and ``pgdat->vm_stat[]``
(``atomic_long_t`` each). The per-CPU deltas not yet folded in are *not* added,
as the ``*_page_state()`` helpers do not add them; every one of those helpers
clamps a negative sum to 0 on SMP kernels (all of them, in every era since
v2.6.x).

The ``_B`` items (``NR_SLAB_RECLAIMABLE_B``...) count bytes only in memcg and
lruvec counters: the global and per-node ones hold pages (``__mod_node_page_state``
shifts the delta by ``PAGE_SHIFT``), so :func:`global_node_page_state_pages`
is the same read as :func:`global_node_page_state`.

*reader* is a :class:`oomdrgn.core.kernel.KernelReader` (any object with
``target``, ``memory``, ``cpus()`` and ``per_cpu_offset()``). Offsets are found
once per reader and kept while it lives.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .memo import once_per
from .errors import ReadError
from .evidence import has_member, page_shift
from .record import record

__all__ = ["ZoneRef", "global_zone_page_state", "global_node_page_state",
           "global_node_page_state_pages", "node_page_state", "node_page_state_pages",
           "zone_page_state", "item", "has_item", "node_state", "online_nodes", "node_data",
           "node_id", "pgdat_zones", "populated_zones", "for_each_zone", "zone_managed_pages",
           "zone_present_pages", "zone_name", "zone_pcp_count", "zone_pcp_counts",
           "page_kb", "nr_zones"]

_MASK64 = (1 << 64) - 1


@record(frozen=True)
class ZoneRef:
    """A ``struct zone`` and where it sits: ``zone_to_nid()``, ``zone_idx()``."""

    address: int
    nid: int
    idx: int
    pgdat: int


class _Layout:
    """Where the counters are in this kernel (found once per reader)."""

    def __init__(self, reader) -> None:
        t = reader.target
        self.target = t
        self.word = t.sizeof("atomic_long_t")
        # vm_stat[] is vm_zone_stat[] since Linux kernel commit 75ef71840539
        # ("mm, vmstat: add infrastructure for per-node vmstats") (in v4.8), which
        # added vm_node_stat[]; before it every counter is in vm_stat[].
        zone = t.symbol("vm_zone_stat") or t.symbol("vm_stat")
        if zone is None:
            raise ReadError("no vm_zone_stat (or vm_stat) symbol")
        self.vm_zone_stat = zone[0]
        node = t.symbol("vm_node_stat")
        self.vm_node_stat = node[0] if node else None
        self.zone_vm_stat = t.member("struct zone", "vm_stat").offset
        self.pgdat_vm_stat = (t.member("struct pglist_data", "vm_stat").offset
                              if self.vm_node_stat is not None else None)
        # A kernel built without SMP has no __per_cpu_offset and no clamping.
        self.smp = t.symbol("__per_cpu_offset") is not None
        self.page_shift = page_shift(t)
        self.zone_size = t.sizeof("struct zone")
        zones = t.member("struct pglist_data", "node_zones")
        self.node_zones = zones.offset
        self.max_nr_zones = zones.length or 0
        self.node_id = t.member("struct pglist_data", "node_id").offset
        self.present = t.member("struct zone", "present_pages").offset
        self.managed = t.member("struct zone", "managed_pages").offset
        self.name = t.member("struct zone", "name").offset
        # zone->per_cpu_pageset (struct per_cpu_pages __percpu *) since Linux
        # kernel commit 28f836b6777b ("mm/page_alloc: split per cpu page lists
        # and zone stats") (in v5.14); before it zone->pageset (struct
        # per_cpu_pageset __percpu *), whose pcp.count is the same count.
        if has_member(t, "struct zone", "per_cpu_pageset"):
            self.pcp_ptr = t.member("struct zone", "per_cpu_pageset").offset
            count = t.member("struct per_cpu_pages", "count")
        else:
            self.pcp_ptr = t.member("struct zone", "pageset").offset
            count = t.member("struct per_cpu_pageset", "pcp.count")
        self.pcp_count = count.offset
        self.pcp_count_size = count.size
        self.items: Dict[str, Optional[int]] = {}


@once_per
def _layout(reader) -> _Layout:
    return _Layout(reader)


def _signed(value: int, size: int) -> int:
    return value - (1 << (8 * size)) if value >> (8 * size - 1) else value


def _read_long(reader, address: int, size: int = 8) -> int:
    return int.from_bytes(reader.memory.read(address, size),
                          "little" if reader.target.little_endian else "big", signed=True)


def has_item(reader, name: str) -> bool:
    """Whether this kernel has the enumerator *name* (``NR_BOUNCE``...)."""
    layout = _layout(reader)
    if name not in layout.items:
        layout.items[name] = layout.target.constant(name)
    return layout.items[name] is not None


def item(reader, name: str) -> int:
    """The value of the ``zone_stat_item``/``node_stat_item`` enumerator *name*.

    :raises LookupError: this kernel has no such counter
    """
    if not has_item(reader, name):
        raise LookupError(f"this kernel has no counter {name}")
    return _layout(reader).items[name]  # type: ignore[return-value]


def _counter(reader, base: int, name: str) -> int:
    layout = _layout(reader)
    index = item(reader, name)  # LookupError: no such counter in this kernel
    try:
        x = _read_long(reader, base + index * layout.word, layout.word)
    except ReadError:
        raise
    except Exception as e:  # a Fault, or a garbage pointer
        raise ReadError(f"counter {name} at {base:#x} unreadable: {e}") from None
    return 0 if layout.smp and x < 0 else x


def global_zone_page_state(reader, name: str) -> int:
    """``global_zone_page_state(item)``: ``vm_zone_stat[item]``, clamped at 0."""
    return _counter(reader, _layout(reader).vm_zone_stat, name)


def global_node_page_state_pages(reader, name: str) -> int:
    """``global_node_page_state_pages(item)``: ``vm_node_stat[item]`` in pages
    (the ``_B`` items included), clamped at 0. Before v4.8 (no node counters)
    the item is read from ``vm_stat[]``."""
    layout = _layout(reader)
    base = layout.vm_node_stat if layout.vm_node_stat is not None else layout.vm_zone_stat
    return _counter(reader, base, name)


def global_node_page_state(reader, name: str) -> int:
    """``global_node_page_state(item)`` (see :func:`global_node_page_state_pages`)."""
    return global_node_page_state_pages(reader, name)


def node_page_state_pages(reader, pgdat: int, name: str) -> int:
    """``node_page_state_pages(pgdat, item)``: ``pgdat->vm_stat[item]``, clamped
    at 0 (``struct pglist_data *`` *pgdat*)."""
    layout = _layout(reader)
    if layout.pgdat_vm_stat is None:
        raise LookupError("this kernel has no per-node counters (before v4.8)")
    return _counter(reader, pgdat + layout.pgdat_vm_stat, name)


def node_page_state(reader, pgdat: int, name: str) -> int:
    """``node_page_state(pgdat, item)`` (see :func:`node_page_state_pages`)."""
    return node_page_state_pages(reader, pgdat, name)


def zone_page_state(reader, zone: int, name: str) -> int:
    """``zone_page_state(zone, item)``: ``zone->vm_stat[item]``, clamped at 0
    (``struct zone *`` *zone*)."""
    return _counter(reader, zone + _layout(reader).zone_vm_stat, name)


# Nodes and zones -------------------------------------------------------------------


def node_state(reader, state: str) -> List[int]:
    """The nodes set in ``node_states[state]`` (``N_ONLINE``, ``N_MEMORY``...).

    A kernel without NUMA (``MAX_NUMNODES`` 1) has node 0 only, as its
    ``for_each_node_state()`` says.
    """
    t = reader.target
    states, index = t.symbol("node_states"), t.constant(state)
    if states is None or index is None:
        return [0]
    size = t.sizeof("nodemask_t")
    try:
        bits = int.from_bytes(reader.memory.read(states[0] + index * size, size),
                              "little" if t.little_endian else "big")
    except Exception as e:
        raise ReadError(f"node_states[{state}] unreadable: {e}") from None
    return [nid for nid in range(size * 8) if bits >> nid & 1]


def online_nodes(reader) -> List[int]:
    """``for_each_online_node``: the nodes of ``node_states[N_ONLINE]``."""
    return node_state(reader, "N_ONLINE")


def node_data(reader, nid: int) -> int:
    """``NODE_DATA(nid)``: ``node_data[nid]`` (NUMA), else ``&contig_page_data``."""
    t = reader.target
    table = t.symbol("node_data")
    if table is not None:
        pgdat = reader.memory.read_word(table[0] + 8 * nid)
        if not pgdat:
            raise ReadError(f"NODE_DATA({nid}) is NULL")
        return pgdat
    contig = t.symbol("contig_page_data")
    if contig is None:
        raise ReadError("neither node_data nor contig_page_data")
    return contig[0]


def node_id(reader, pgdat: int) -> int:
    """``pgdat->node_id``."""
    return _read_long(reader, pgdat + _layout(reader).node_id, 4)


def nr_zones(reader) -> int:
    """``MAX_NR_ZONES``: the length of ``pgdat->node_zones[]``."""
    return _layout(reader).max_nr_zones


def pgdat_zones(reader, pgdat: int) -> List[int]:
    """``&pgdat->node_zones[0 .. MAX_NR_ZONES-1]``."""
    layout = _layout(reader)
    first = pgdat + layout.node_zones
    return [first + i * layout.zone_size for i in range(layout.max_nr_zones)]


def zone_present_pages(reader, zone: int) -> int:
    """``zone->present_pages``."""
    return reader.memory.read_word(zone + _layout(reader).present)


def zone_managed_pages(reader, zone: int) -> int:
    """``zone_managed_pages(zone)``: ``zone->managed_pages`` (an ``atomic_long_t``
    since 9705bea5f833 ("mm: convert zone->managed_pages to atomic variable")
    (in v5.0), the same word before)."""
    return reader.memory.read_word(zone + _layout(reader).managed)


def zone_name(reader, zone: int) -> str:
    """``zone->name`` (``DMA``, ``DMA32``, ``Normal``, ``Movable``...)."""
    return reader.string(reader.memory.read_word(zone + _layout(reader).name), 64)


def for_each_zone(reader) -> List[ZoneRef]:
    """``for_each_zone``: every zone of every online node, node by node."""
    out = []
    for nid in online_nodes(reader):
        pgdat = node_data(reader, nid)
        for idx, zone in enumerate(pgdat_zones(reader, pgdat)):
            out.append(ZoneRef(zone, node_id(reader, pgdat), idx, pgdat))
    return out


def populated_zones(reader) -> List[ZoneRef]:
    """``for_each_populated_zone``: the zones with ``present_pages``."""
    return [z for z in for_each_zone(reader) if zone_present_pages(reader, z.address)]


def zone_pcp_count(reader, zone: int, cpu: int) -> int:
    """``per_cpu_ptr(zone->per_cpu_pageset, cpu)->count``: pages on *cpu*'s
    per-CPU free lists of *zone* (``zone->pageset``'s ``pcp.count`` before v5.14)."""
    layout = _layout(reader)
    base = reader.memory.read_word(zone + layout.pcp_ptr)
    address = (base + reader.per_cpu_offset(cpu)) & _MASK64
    return _read_long(reader, address + layout.pcp_count, layout.pcp_count_size)


def zone_pcp_counts(reader, zone: int, cpus: Optional[List[int]] = None) -> List[Tuple[int, int]]:
    """``(cpu, count)`` of :func:`zone_pcp_count` for each CPU of *cpus*
    (default: ``for_each_online_cpu``)."""
    if cpus is None:
        cpus = reader.cpus("online")
    return [(cpu, zone_pcp_count(reader, zone, cpu)) for cpu in cpus]


def page_kb(reader) -> int:
    """``K(1)``: kB per page (``PAGE_SIZE / 1024``)."""
    return 1 << (_layout(reader).page_shift - 10)
