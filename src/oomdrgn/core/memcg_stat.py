"""A memcg's statistics as the OOM report prints them: ``memory_stat_format()``
(cgroup v2's ``memory.stat``) and ``memcg1_stat_format()`` (cgroup v1's), over
the target port.

The names and items come from the kernel's own tables in memory
(``memory_stats[]``, ``memcg_vm_event_stat[]``, ``memcg1_stats[]``,
``vmstat_text[]``); what is code in the kernel (units, the ``slab``,
``pgscan`` and ``pgsteal`` sums, which lines are skipped) is reproduced here
per era, each difference detected from the kernel's types and symbols.
The values are what that era's ``memcg_page_state()`` and ``memcg_events()``
read: the hierarchical counters as last flushed (rstat, v5.13+) or the
atomics (before), never the per-CPU deltas not yet folded in.

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`; *memcg* a ``struct
mem_cgroup *``.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from .memo import once_per
from .errors import ReadError, TargetError
from .port import Fault

__all__ = ["MemcgStatTables", "stat_tables", "memory_stat_format", "memcg1_stat_format",
           "vm_event_name", "Stats"]

#: ``(name, value)`` lines as ``seq_buf_printf(s, "%s %llu\n", ...)`` writes them.
Stats = List[Tuple[str, int]]

_MEMCG = "struct mem_cgroup"
_VMSTATS = "struct memcg_vmstats"
_U8_MAX = 0xFF
_LONG_MAX = (1 << 63) - 1

# Items memory.stat prints as plain counts or bytes (memcg_page_state_unit()
# returns 1; since "mm: memcg: normalize the value passed into
# memcg_rstat_updated()" (in v6.8, hash not checked here)
# memcg_page_state_output_unit() for the event-like ones). NR_KERNEL_STACK_KB is in kB; everything else in pages.
_UNIT_ONE = ("MEMCG_PERCPU_B", "MEMCG_ZSWAP_B", "NR_SLAB_RECLAIMABLE_B",
             "NR_SLAB_UNRECLAIMABLE_B", "WORKINGSET_REFAULT_ANON", "WORKINGSET_REFAULT_FILE",
             "WORKINGSET_ACTIVATE_ANON", "WORKINGSET_ACTIVATE_FILE", "WORKINGSET_RESTORE_ANON",
             "WORKINGSET_RESTORE_FILE", "WORKINGSET_NODERECLAIM", "PGDEMOTE_KSWAPD",
             "PGDEMOTE_DIRECT", "PGDEMOTE_KHUGEPAGED", "PGDEMOTE_PROACTIVE",
             "PGPROMOTE_SUCCESS")
# Reclaim counters that are node_stat_items in 7.x (the commit that moved
# them is not checked here): then they are rows of memory_stats[] with output
# unit 1, and pgscan/pgsteal are summed from memcg_page_state().
_RECLAIM_NODE = ("PGSTEAL_KSWAPD", "PGSTEAL_DIRECT", "PGSTEAL_KHUGEPAGED", "PGSTEAL_PROACTIVE",
                 "PGSCAN_KSWAPD", "PGSCAN_DIRECT", "PGSCAN_KHUGEPAGED", "PGSCAN_PROACTIVE",
                 "PGREFILL")
# The pgscan/pgsteal sums: every one of these the kernel has (KHUGEPAGED since
# 57e9cc50f4dd ("mm: vmscan: split khugepaged stats from direct reclaim stats")
# (in v6.3), PROACTIVE later, commit not checked here).
_PGSCAN = ("PGSCAN_KSWAPD", "PGSCAN_DIRECT", "PGSCAN_PROACTIVE", "PGSCAN_KHUGEPAGED")
_PGSTEAL = ("PGSTEAL_KSWAPD", "PGSTEAL_DIRECT", "PGSTEAL_PROACTIVE", "PGSTEAL_KHUGEPAGED")
# Before memcg_vm_event_stat[] ("mm: memcontrol: separate {pgscan,pgsteal}_{kswapd,
# direct} items in memory.stat of cgroup v2", v6.0, hash not checked here) the
# events were a fixed list; None marks where the pgscan and pgsteal sums go.
_FIXED_EVENTS = ("PGFAULT", "PGMAJFAULT", "PGREFILL", None, "PGACTIVATE", "PGDEACTIVATE",
                 "PGLAZYFREE", "PGLAZYFREED",
                 # CONFIG_MEMCG_KMEM && CONFIG_ZSWAP (v5.19+), CONFIG_TRANSPARENT_HUGEPAGE
                 "ZSWPIN", "ZSWPOUT", "THP_FAULT_ALLOC", "THP_COLLAPSE_ALLOC")


#: a memory.stat name (memory_stats[]'s entries)
_IDENT = re.compile(r"[a-z0-9_]+")


class MemcgStatTables:
    """This kernel's stat tables and counter layout, read once per reader."""

    def __init__(self, reader) -> None:
        self.reader = reader
        t = reader.target
        self.page_size = 1 << reader.info.page_shift
        # memcg_page_state() clamps negative sums at 0 under CONFIG_SMP.
        self.smp = t.symbol("__per_cpu_offset") is not None
        self._const: Dict[str, Optional[int]] = {}
        self._names: Dict[int, str] = {}
        try:
            self._layout(t)
            self.memory_stats = self._memory_stats(t)
            self.vm_event_stat = self._u32_table("memcg_vm_event_stat")
        except (Fault, LookupError) as e:
            raise TargetError(f"memcg stat tables unreadable: {e}") from None
        names = {name for name, _, _ in self.memory_stats}
        self.reclaim_is_node_stat = "pgscan_kswapd" in names
        self.unit_one = {v for v in map(self.constant, _UNIT_ONE) if v is not None}
        if self.reclaim_is_node_stat:
            self.unit_one |= {v for v in map(self.constant, _RECLAIM_NODE) if v is not None}

    # Layout ----------------------------------------------------------------

    def constant(self, name: str) -> Optional[int]:
        if name not in self._const:
            self._const[name] = self.reader.target.constant(name)
        return self._const[name]

    def required(self, name: str) -> int:
        """An enumerator this code cannot do without (raises TargetError)."""
        value = self.constant(name)
        if value is None:
            raise TargetError(f"no enumerator {name}")
        return value

    def _layout(self, t) -> None:
        vm = t.member(_MEMCG, "vmstats")
        if vm.kind == "array":
            # Before 2d146aa3aa84 ("mm: memcontrol: switch to rstat") (in v5.13):
            # atomic_long_t vmstats[MEMCG_NR_STAT], vmevents[NR_VM_EVENT_ITEMS].
            ev = t.member(_MEMCG, "vmevents")
            self.vmstats_kind = "atomic"
            self.state = (vm.offset, vm.length, vm.size // vm.length)
            self.events = (ev.offset, ev.length, ev.size // ev.length)
            self.state_local = self.events_local = None
        else:
            # struct memcg_vmstats, embedded (v5.13) or a pointer (since
            # 410f8e82689e ("memcg: extract memcg_vmstats from struct
            # mem_cgroup") (in v6.1)).
            self.vmstats_kind = "pointer" if vm.kind == "pointer" else "embedded"
            self.vmstats_off = vm.offset

            def arr(name: str):
                m = t.member(_VMSTATS, name)
                return (m.offset, m.length, m.size // m.length)
            self.state, self.events = arr("state"), arr("events")
            self.state_local = arr("state_local") if _has(t, _VMSTATS, "state_local") else None
            self.events_local = (arr("events_local") if _has(t, _VMSTATS, "events_local")
                                 else None)
        # Since ff48c71c26aa ("memcg: reduce memory for the lruvec and memcg
        # stats") (in v6.11) state[] is indexed through mem_cgroup_stats_index[].
        sym = t.symbol("mem_cgroup_stats_index")
        self.stats_index = self._bytes_table(sym, self.constant("MEMCG_NR_STAT"), 1)
        # Since 8278f1c7b492 ("memcg: reduce size of memcg vmstats structures")
        # (in v6.1) events[] is indexed through mem_cgroup_events_index[]: int,
        # holding index + 1 (0: none); u8 with U8_MAX for none since
        # 59142d87ab03 ("memcg: reduce memory size of mem_cgroup_events_index")
        # (in v6.10).
        sym = t.symbol("mem_cgroup_events_index")
        self.events_index = None
        if sym is not None:
            n = self.constant("NR_VM_EVENT_ITEMS")
            width = sym[1] // n if sym[1] and n else 4
            raw = self._bytes_table(sym, n, width) or []
            self.events_index = ([i - 1 for i in raw] if width > 1 else
                                 [-1 if i == _U8_MAX else i for i in raw])

    def _bytes_table(self, sym, count: Optional[int], width: int) -> Optional[List[int]]:
        if sym is None:
            return None
        if not count:
            count = sym[1] // width if sym[1] else 0
        if not count:
            raise TargetError("memcg stat index table of unknown size")
        data = self.reader.target.read(sym[0], count * width)
        return [_int(self.reader.target, data[i:i + width]) for i in range(0, len(data), width)]

    def _u32_table(self, name: str) -> Optional[List[int]]:
        sym = self.reader.target.symbol(name)
        if sym is None:
            return None
        if not sym[1]:
            raise TargetError(f"size of {name}[] unknown (no ELF symbol size)")
        return self._bytes_table(sym, sym[1] // 4, 4)

    def _memory_stats(self, t) -> List[Tuple[str, int, Optional[int]]]:
        """``memory_stats[]``: (name, idx, ratio); ratio (v5.10) is None where
        the unit comes from ``memcg_page_state_unit()`` (the member went away
        after v5.10, by a commit not checked here)."""
        sym = t.symbol("memory_stats")
        if sym is None:
            # memory_stats[] came with "mm: memcontrol: Add the missing numa_stat
            # interface for cgroup v2" (v5.10, hash not checked here); before it
            # every line was its own seq_buf_printf(): not reproduced here.
            raise TargetError("no memory_stats[]: a kernel before v5.10, whose memory.stat "
                              "lines are code, not a table (not supported)")
        size = t.sizeof("struct memory_stat")
        if not sym[1]:
            raise TargetError("size of memory_stats[] unknown (no ELF symbol size)")
        name_off = t.member("struct memory_stat", "name").offset
        idx = t.member("struct memory_stat", "idx")
        ratio = t.member("struct memory_stat", "ratio") if _has(
            t, "struct memory_stat", "ratio") else None
        data = t.read(sym[0], sym[1])
        limit = self.constant("MEMCG_NR_STAT")
        out = []
        for base in range(0, sym[1] - size + 1, size):
            def field(off: int, n: int) -> int:
                return _int(t, data[base + off:base + off + n])
            # Without debug info the size is kallsyms' distance to the next
            # named symbol: unnamed data may follow the array. Every entry of
            # the kernel's names a counter (a lower-case identifier, idx below
            # MEMCG_NR_STAT): the array ends at the first that does not.
            try:
                name = self.reader.string(field(name_off, 8))
            except Fault:
                break
            item = field(idx.offset, idx.size)
            if not _IDENT.fullmatch(name) or (limit is not None and item >= limit):
                break
            out.append((name, item, None if ratio is None else field(ratio.offset, ratio.size)))
        return out

    # vmstat_text ---------------------------------------------------------------

    def _text(self, index: int) -> str:
        if index not in self._names:
            table = self.reader.symbol_address("vmstat_text")
            self._names[index] = self.reader.string(self.reader.read_int(table + 8 * index))
        return self._names[index]

    def node_stat_name(self, item: int) -> str:
        """``node_stat_name()``: ``vmstat_text[NR_VM_ZONE_STAT_ITEMS +
        NR_VM_NUMA_EVENT_ITEMS + item]``."""
        return self._text(self.required("NR_VM_ZONE_STAT_ITEMS") + self._numa_items() + item)

    def _numa_items(self) -> int:
        # NR_VM_NUMA_EVENT_ITEMS since f19298b9516c ("mm/vmstat: convert NUMA
        # statistics to basic NUMA counters") (in v5.14), NR_VM_NUMA_STAT_ITEMS
        # before; a #define 0 without CONFIG_NUMA.
        for name in ("NR_VM_NUMA_EVENT_ITEMS", "NR_VM_NUMA_STAT_ITEMS"):
            value = self.constant(name)
            if value is not None:
                return value
        return 0

    def vm_event_name(self, item: int) -> str:
        """``vm_event_name()``: ``vmstat_text[NR_VM_ZONE_STAT_ITEMS +
        NR_VM_NUMA_EVENT_ITEMS + NR_VM_NODE_STAT_ITEMS + NR_VM_STAT_ITEMS + item]``
        (``NR_VM_WRITEBACK_STAT_ITEMS`` before it became ``enum vm_stat_item``)."""
        base = self.constant("NR_VM_STAT_ITEMS")
        if base is None:
            base = self.constant("NR_VM_WRITEBACK_STAT_ITEMS") or 0
        return self._text(self.required("NR_VM_ZONE_STAT_ITEMS") + self._numa_items()
                          + self.required("NR_VM_NODE_STAT_ITEMS") + base + item)

    def check_names(self) -> None:
        """The vmstat_text offsets name PGPGIN ``pgpgin`` (else the layout is not
        understood)."""
        pgpgin = self.constant("PGPGIN")
        if pgpgin is not None and self.vm_event_name(pgpgin) != "pgpgin":
            raise TargetError(f"vmstat_text layout not understood "
                              f"(PGPGIN reads {self.vm_event_name(pgpgin)!r})")

    # Units ------------------------------------------------------------------

    def output_unit(self, idx: int) -> int:
        """``memcg_page_state_output_unit()`` (``memcg_page_state_unit()`` before v6.8)."""
        if idx in self.unit_one:
            return 1
        if idx == self.constant("NR_KERNEL_STACK_KB"):
            return 1024
        return self.page_size


def _int(t, data: bytes, signed: bool = False) -> int:
    return int.from_bytes(data, "little" if t.little_endian else "big", signed=signed)


def _has(t, type_name: str, designator: str) -> bool:
    try:
        t.member(type_name, designator)
        return True
    except LookupError:
        return False


@once_per
def stat_tables(reader) -> MemcgStatTables:
    """The :class:`MemcgStatTables` of *reader* (read once per reader)."""
    tables = MemcgStatTables(reader)
    tables.check_names()
    return tables


def vm_event_name(reader, item: int) -> str:
    return stat_tables(reader).vm_event_name(item)


class _Counters:
    """One memcg's counters as this era's accessors read them."""

    def __init__(self, tables: MemcgStatTables, memcg: int) -> None:
        self.t = tables
        reader = tables.reader
        base = memcg
        if tables.vmstats_kind == "atomic":
            self.vmstats = memcg
        else:
            base = memcg + tables.vmstats_off
            if tables.vmstats_kind == "pointer":
                base = reader.read_int(base)
                if not base:
                    raise ReadError(f"memcg {memcg:#x}: no vmstats")
            self.vmstats = base
        self._arrays: Dict[str, List[int]] = {}

    def _array(self, which: str) -> List[int]:
        if which not in self._arrays:
            off, n, size = getattr(self.t, which)
            data = self.t.reader.target.read(self.vmstats + off, n * size)
            self._arrays[which] = [_int(self.t.reader.target, data[i:i + size], True)
                                   for i in range(0, len(data), size)]
        return self._arrays[which]

    def _state(self, which: str, idx: int) -> int:
        index = self.t.stats_index
        i = idx if index is None else (index[idx] if idx < len(index) else _U8_MAX)
        if index is not None and i >= _U8_MAX:
            return 0  # BAD_STAT_IDX: the kernel WARNs and returns 0
        x = self._array(which)[i]
        return 0 if self.t.smp and x < 0 else x

    def page_state(self, idx: int) -> int:
        """``memcg_page_state()``."""
        return self._state("state", idx)

    def page_state_local(self, idx: int) -> int:
        """``memcg_page_state_local()`` (v1 only)."""
        return self._state("state_local", idx)

    def _events(self, which: str, event: int) -> int:
        index = self.t.events_index
        i = event if index is None else index[event]
        if i < 0:
            return 0
        return self._array(which)[i] & ((1 << 64) - 1)

    def events(self, event: int) -> int:
        """``memcg_events()``."""
        return self._events("events", event)

    def events_local(self, event: int) -> int:
        """``memcg_events_local()`` (v1 only)."""
        return self._events("events_local", event)

    def page_state_output(self, idx: int) -> int:
        return self.page_state(idx) * self.t.output_unit(idx)


def _hugetlb_accounted(reader, tables: MemcgStatTables) -> bool:
    """``memcg_accounts_hugetlb()``: ``cgrp_dfl_root.flags &
    CGRP_ROOT_MEMORY_HUGETLB_ACCOUNTING``."""
    flag = tables.constant("CGRP_ROOT_MEMORY_HUGETLB_ACCOUNTING")
    if not flag:
        return False
    flags = reader.read_int(reader.symbol_address("cgrp_dfl_root")
                            + reader.offset("struct cgroup_root", "flags"), 4)
    return bool(flags & flag)


def memory_stat_format(reader, memcg: int) -> Stats:
    """``memory_stat_format()`` / ``memcg_stat_format()``: cgroup v2's
    ``memory.stat`` lines of *memcg*, in the kernel's order."""
    t = stat_tables(reader)
    c = _Counters(t, memcg)
    out: Stats = []
    unreclaimable = t.constant("NR_SLAB_UNRECLAIMABLE_B")
    nr_hugetlb = t.constant("NR_HUGETLB")
    for name, idx, ratio in t.memory_stats:
        # The hugetlb line ("memcg/hugetlb: add hugeTLB counters to memcg",
        # v6.13, hash not checked here) is printed only when
        # memory_hugetlb_accounting is on.
        if name == "hugetlb" and idx == nr_hugetlb and not _hugetlb_accounted(reader, t):
            continue
        if ratio is not None:  # memory_stats[i].ratio (v5.10 era)
            size = c.page_state(idx) * ratio
        else:
            size = c.page_state_output(idx)
        out.append((name, size))
        if idx == unreclaimable:
            recl = t.required("NR_SLAB_RECLAIMABLE_B")
            if ratio is not None:
                size = c.page_state(recl) + c.page_state(idx)
            else:
                size += c.page_state_output(recl)
            out.append(("slab", size))
    source = c.page_state if t.reclaim_is_node_stat else c.events

    def total(names) -> int:
        return sum(source(v) for v in map(t.constant, names) if v is not None)
    if t.vm_event_stat is None:
        for fixed in _FIXED_EVENTS:
            if fixed is None:
                out.append(("pgscan", total(_PGSCAN)))
                out.append(("pgsteal", total(_PGSTEAL)))
                continue
            value = t.constant(fixed)
            if value is not None:
                out.append((t.vm_event_name(value), c.events(value)))
        return out
    out.append(("pgscan", total(_PGSCAN)))
    out.append(("pgsteal", total(_PGSTEAL)))
    # PGPGIN/PGPGOUT are in the table for cgroup v1 only (8278f1c7b492, v6.1).
    skip = {t.constant("PGPGIN"), t.constant("PGPGOUT")}
    for event in t.vm_event_stat:
        if event not in skip:
            out.append((t.vm_event_name(event), c.events(event)))
    return out


def _parent(reader, memcg: int) -> int:
    """``parent_mem_cgroup()``: the memcg of ``memcg->css.parent`` (0: none)."""
    css = reader.offset(_MEMCG, "css")
    parent = reader.read_int(memcg + css + reader.offset("struct cgroup_subsys_state",
                                                          "parent"))
    return parent - css if parent else 0


def memcg1_stat_format(reader, memcg: int) -> Stats:
    """``memcg1_stat_format()`` (mm/memcontrol-v1.c): cgroup v1's ``memory.stat``
    lines, printed at an OOM on v1 since v6.5 ("memcg: dump
    memory.stat during cgroup OOM for v1", hash not checked here).

    Not printed: the ``anon_cost``/``file_cost`` lines of ``CONFIG_DEBUG_VM``.
    """
    t = stat_tables(reader)
    if t.state_local is None or t.events_local is None:
        raise TargetError("this kernel keeps no local memcg counters (no memcg1_stat_format)")
    c = _Counters(t, memcg)
    stats = t._u32_table("memcg1_stats") or []
    events = t._u32_table("memcg1_events") or []
    names_sym = reader.symbol_address("memcg1_stat_names")
    names = [reader.string(reader.read_int(names_sym + 8 * i)) for i in range(len(stats))]
    lru_base, nr_lru = t.constant("NR_LRU_BASE"), t.constant("NR_LRU_LISTS")
    if lru_base is None or nr_lru is None:
        raise TargetError("no NR_LRU_BASE/NR_LRU_LISTS")
    lru_names = [t.node_stat_name(lru_base + i)[3:] for i in range(nr_lru)]  # skip "nr_"
    page = t.page_size
    out: Stats = []
    for name, idx in zip(names, stats):
        out.append((name, c.page_state_local(idx) * t.output_unit(idx)))
    for event in events:
        out.append((t.vm_event_name(event), c.events_local(event)))
    for i, name in enumerate(lru_names):
        out.append((name, c.page_state_local(lru_base + i) * page))
    counter_max = _LONG_MAX // page  # PAGE_COUNTER_MAX on 64-bit
    memory = memsw = counter_max
    mem_max = reader.offset(_MEMCG, "memory.max")
    memsw_max = reader.offset(_MEMCG, "memsw.max")
    mi = memcg
    for _ in range(4096):
        if not mi:
            break
        memory = min(memory, reader.read_int(mi + mem_max))
        memsw = min(memsw, reader.read_int(mi + memsw_max))
        mi = _parent(reader, mi)
    out.append(("hierarchical_memory_limit", memory * page))
    out.append(("hierarchical_memsw_limit", memsw * page))
    for name, idx in zip(names, stats):
        out.append((f"total_{name}", c.page_state_output(idx)))
    for event in events:
        out.append((f"total_{t.vm_event_name(event)}", c.events(event)))
    for i, name in enumerate(lru_names):
        out.append((f"total_{name}", c.page_state(lru_base + i) * page))
    return out
