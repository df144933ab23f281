"""``oom_badness()``, ``proc_oom_score()`` and ``mem_cgroup_get_max()`` (pure).

Two eras, told apart by the return type of ``oom_badness`` in the kernel's
debug info:

* ``long`` (since Linux kernel commit 9066e5cfb73c ("mm, oom: make the
  calculation of oom badness more accurate") (in v5.9)): ``LONG_MIN`` marks an
  ineligible task, points may be negative, no clamp;
* ``unsigned long`` (v4.17 .. v5.8): 0 marks an ineligible task, points are
  clamped to at least 1.
"""

from __future__ import annotations

from typing import Tuple

from .mmcounters import get_mm_counters
from .model import MemcgRecord, MmRecord, TaskRecord, VmTotals

__all__ = ["LONG_MIN", "LONG_MAX", "OOM_SCORE_ADJ_MIN", "MMF_OOM_SKIP", "in_vfork",
           "badness_points", "proc_oom_score", "global_totalpages", "mem_cgroup_get_max",
           "c_div"]

LONG_MIN = -(1 << 63)
LONG_MAX = (1 << 63) - 1
OOM_SCORE_ADJ_MIN = -1000
# include/linux/sched/coredump.h (a #define, so not in the debug info):
# "#define MMF_OOM_SKIP 21" since v4.9.
MMF_OOM_SKIP = 21


def c_div(a: int, b: int) -> int:
    """C's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _long(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def in_vfork(t: TaskRecord, mm: int) -> bool:
    """``tsk->vfork_done && tsk->real_parent->mm == tsk->mm``."""
    return bool(t.vfork_done) and t.parent_mm == mm


def badness_points(t: TaskRecord, mm: MmRecord, totalpages: int, rule: str, page_shift: int,
                   era: str = "long") -> Tuple[int, str]:
    """``oom_badness()`` for the thread *t* that ``find_lock_task_mm()`` returned.

    :returns: (points, why-ineligible or ""). Ineligible is ``LONG_MIN`` in the
        ``long`` era and 0 in the ``unsigned long`` era.
    """
    none = LONG_MIN if era == "long" else 0
    score_adj = t.oom_score_adj
    if score_adj == OOM_SCORE_ADJ_MIN:
        return none, "oom_score_adj is -1000"
    if (mm.flags >> MMF_OOM_SKIP) & 1:
        return none, "MMF_OOM_SKIP (already reaped)"
    if t.vfork_done and in_vfork(t, t.mm):
        return none, "in vfork"
    # The baseline: rss, swap entries and page tables, in pages. Since Linux
    # kernel commit af5b0f6a09e4 ("mm: consolidate page table accounting")
    # (in v4.15) the tables are mm_pgtables_bytes(mm) / PAGE_SIZE; before, the
    # count of page-table pages: nr_ptes + mm_nr_pmds(mm).
    if mm.pgtables_bytes is not None:
        tables = mm.pgtables_bytes // (1 << page_shift)
    else:
        tables = (mm.nr_ptes or 0) + (mm.nr_pmds or 0)
    # get_mm_rss(mm) + get_mm_counter(mm, MM_SWAPENTS): all four counters.
    points = sum(get_mm_counters(mm, rule)) + tables
    # "adj *= totalpages / 1000; points += adj;" in long arithmetic: wrapped
    # only where a value leaves the range of a long (never, in practice).
    adj = score_adj * (totalpages // 1000)
    points += adj
    if not (LONG_MIN <= adj <= LONG_MAX and LONG_MIN <= points <= LONG_MAX):
        points = _long(points - adj + _long(adj))
    if era != "long":
        # unsigned long era: "return points > 0 ? points : 1;"
        return (points if points > 0 else 1), ""
    return points, ""


def proc_oom_score(badness: int, totalpages: int, era: str = "long") -> int:
    """``/proc/PID/oom_score`` from ``oom_badness()``."""
    if era == "long":
        # fs/proc/base.c since v5.9: LONG_MIN -> 0, else scaled into [0, 2000]*2/3.
        if badness == LONG_MIN:
            return 0
        points = c_div((1000 + c_div(badness * 1000, totalpages)) * 2, 3)
        return points & ((1 << 64) - 1)
    # Before v5.9: oom_badness(...) * 1000 / totalpages (unsigned long).
    return (badness * 1000) // totalpages


def global_totalpages(totals: VmTotals) -> int:
    """``constrained_alloc()`` for an unconstrained allocation: RAM + swap."""
    return totals.totalram_pages + totals.total_swap_pages


def mem_cgroup_get_max(memcg: MemcgRecord, totals: VmTotals) -> int:
    """``mem_cgroup_get_max()``: the memcg limit plus the swap it may use."""
    limit = memcg.memory_max
    if memcg.swappiness:
        if memcg.memsw_accounting and memcg.memsw_max is not None:
            swap = (memcg.memsw_max - limit) & ((1 << 64) - 1)
            limit += min(swap, totals.total_swap_pages)
        elif memcg.swap_max is not None:
            limit += min(memcg.swap_max, totals.total_swap_pages)
    return limit


def memcg_totalpages(memcg: MemcgRecord, totals: VmTotals) -> int:
    """``oc->totalpages`` of a memcg OOM: ``mem_cgroup_get_max() ?: 1``."""
    return mem_cgroup_get_max(memcg, totals) or 1
