"""The memcg stat tables of a function-only kallsyms found in arm64 code
(:mod:`oomdrgn.core.symrecover`'s "code" source, for the memcg OOM report's
``memory.stat`` lines; standard library and core only): ``memory_stats``,
``mem_cgroup_events_index``, ``memcg_vm_event_stat``, with their sizes (BTF has
no VAR for them), each checked by what it holds."""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from .port import Fault
from .symrecover_base import Ctx, one

__all__ = ["memcg_stat_tables"]


def memcg_stat_tables(c: Ctx, data: Callable[[int], bool]) -> None:
    """``mem_cgroup_events_index``, ``memcg_vm_event_stat`` and ``memory_stats``
    (*data*: whether an address is data, not text, .rodata or per-CPU)."""
    _events_index(c, data)
    _stats_index(c, data)
    _memory_stats(c)


def _index_tables(c: Ctx, data: Callable[[int], bool], functions: Tuple[str, ...], n: int,
                  k: int, widths: Tuple[Tuple[int, int, int], ...]) -> List[Tuple[int, int]]:
    """(address, size) of each data table *functions* compute whose *n* entries
    map onto 0..*k*-1 each once: *widths* ``(bytes, none, first)`` (an entry
    ``none`` maps nowhere, the others hold ``first`` + the index)."""
    found = []
    for a in sorted({r.address for f in functions for r in c.code(f) or ()
                     if r.kind == "address" and data(r.address)}):
        for width, none, first in widths:
            try:
                raw = c.read(a, n * width)
            except Fault:
                continue
            values = [int.from_bytes(raw[i:i + width], c.order) for i in range(0, len(raw), width)]
            if sorted(v for v in values if v != none) == list(range(first, first + k)):
                found.append((a, n * width))
    return found


def _stats_index(c: Ctx, data: Callable[[int], bool]) -> None:
    # memcg_page_state() and __mod_memcg_state() -> memcg_stats_index(idx):
    # mem_cgroup_stats_index[idx] (mm/memcontrol.c; 6.12: lines 329, 348; since
    # ff48c71c26aa ("memcg: reduce memory for the lruvec and memcg stats") (in
    # v6.11)): u8, MEMCG_NR_STAT of them, each of struct memcg_vmstats' state[]
    # counters once, U8_MAX for the others. (Absent before: see
    # symrecover._absent_by_era.)
    name = "mem_cgroup_stats_index"
    if name in c.out.absent:
        return
    n = c.btf.constant("MEMCG_NR_STAT")
    try:
        k = c.btf.member("struct memcg_vmstats", "state").length
    except LookupError:
        k = 0
    if not n or not k:
        c.out.miss(name, "code: no MEMCG_NR_STAT or memcg_vmstats.state[] in BTF")
        return
    found = _index_tables(c, data, ("memcg_page_state", "__mod_memcg_state"), n, k,
                          ((1, 0xFF, 0),))
    one(c, name, [a for a, _ in found], "code: memcg_page_state, __mod_memcg_state", size=n)


def _events_index(c: Ctx, data: Callable[[int], bool]) -> None:
    # __count_memcg_events() -> memcg_events_index(idx): mem_cgroup_events_index[idx]
    # (mm/memcontrol.c; 6.1: line 696; since 8278f1c7b492 ("memcg: reduce size of
    # memcg vmstats structures") (in v6.1)): the data address whose
    # NR_VM_EVENT_ITEMS entries give each of the memcg's NR_MEMCG_EVENTS
    # counters (struct memcg_vmstats' events[]) one event: int index + 1 (0:
    # none), or u8 index (U8_MAX: none) since 59142d87ab03 ("memcg: reduce memory
    # size of mem_cgroup_events_index") (in v6.10).
    name = "mem_cgroup_events_index"
    n = c.btf.constant("NR_VM_EVENT_ITEMS")
    try:
        k = c.btf.member("struct memcg_vmstats", "events").length
    except LookupError:
        k = 0
    if not n or not k:
        c.out.miss(name, "code: no NR_VM_EVENT_ITEMS or memcg_vmstats.events[] in BTF")
        return
    found = _index_tables(c, data, ("__count_memcg_events",), n, k, ((4, 0, 1), (1, 0xFF, 0)))
    if len(found) != 1:
        c.out.miss(name, f"code: {len(found)} tables in __count_memcg_events map "
                         f"{n} events to {k} counters")
        return
    table, size = found[0]
    c.keep(name, table, "code: __count_memcg_events", size=size)
    width = size // n
    index = [int.from_bytes(c.read(table + i * width, width), c.order) for i in range(n)]
    # memcg_vm_event_stat[] (mm/memcontrol.c; v6.0 on, commit not checked here):
    # the u32 events the memcg counts, NR_MEMCG_EVENTS of them; init_memcg_events()
    # made mem_cgroup_events_index[] its inverse (6.1: line 691). Its address is
    # computed in memory_stat_format() (6.1: the events loop, line 1600).
    lo, hi = c.have("__start_rodata"), c.have("__end_rodata")
    if lo is None or hi is None:
        c.out.miss("memcg_vm_event_stat", "code: .rodata's bounds unknown")
        return

    def inverse(a: int) -> bool:
        try:
            events = [c.word(a + 4 * i, 4) for i in range(k)]
        except Fault:
            return False
        return all(e < n and index[e] == (i + 1 if width > 1 else i)
                   for i, e in enumerate(events))
    stats = sorted({r.address for f in ("memory_stat_format", "memcg_stat_format")
                    for r in c.code(f) or ()
                    if r.kind == "address" and lo <= r.address < hi and inverse(r.address)})
    one(c, "memcg_vm_event_stat", stats, "code: memory_stat_format", size=4 * k)


def _memory_stats(c: Ctx) -> None:
    # memory_stat_format() (memcg_stat_format() since v6.5, commit not checked
    # here) and memory_numa_stat_show(): for (i = 0; i < ARRAY_SIZE(memory_stats);
    # i++) (mm/memcontrol.c; 6.1: lines 1564, 6562; 6.12: lines 1448, 4253):
    # the loop's start and end addresses, both computed in each function,
    # bound a .rodata array of struct memory_stat {name, idx} whose every entry
    # names a counter (a lower-case identifier, each once) below MEMCG_NR_STAT,
    # and whose entry just before the start does not. The iterator's own
    # increments are addresses inside it: the end is the farthest such bound
    # (the next array, cgroup v1's stats, repeats names), the same in both.
    name = "memory_stats"
    lo, hi = c.have("__start_rodata"), c.have("__end_rodata")
    limit = c.btf.constant("MEMCG_NR_STAT")
    try:
        size = c.btf.sizeof("struct memory_stat")
        name_off = c.btf.member("struct memory_stat", "name").offset
        idx = c.btf.member("struct memory_stat", "idx")
    except LookupError:
        c.out.miss(name, "code: no struct memory_stat in BTF")
        return
    if lo is None or hi is None or not limit:
        c.out.miss(name, "code: .rodata's bounds or MEMCG_NR_STAT unknown")
        return

    def entry(at: int) -> Optional[bytes]:
        try:
            text = c.read(c.word(at + name_off), 48).split(b"\0")[0]
        except Fault:
            return None
        good = (0 < len(text) < 48 and c.word(at + idx.offset, idx.size) < limit
                and all(ch in b"abcdefghijklmnopqrstuvwxyz0123456789_" for ch in text))
        return text if good else None

    def names(start: int, n: int) -> bool:
        texts = [entry(start + i * size) for i in range(n)]
        return None not in texts and len(set(texts)) == n
    pairs = set()
    for function in ("memory_stat_format", "memcg_stat_format", "memory_numa_stat_show"):
        ats = sorted({r.address for r in c.code(function) or ()
                      if r.kind == "address" and lo <= r.address < hi})
        for start in ats:
            if entry(start) is None or entry(start - size) is not None:
                continue
            ends = [end for end in ats if end > start and not (end - start) % size
                    and (end - start) // size <= 256 and names(start, (end - start) // size)]
            if ends:
                pairs.add((start, max(ends)))
    if len(pairs) == 1:
        start, end = pairs.pop()
        c.keep(name, start, "code: memory_stat_format", size=end - start)
    else:
        c.out.miss(name, f"code: {len(pairs)} bounded arrays of struct memory_stat in "
                         "memory_stat_format, memcg_stat_format, memory_numa_stat_show")
