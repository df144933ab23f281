"""``get_mm_counter()`` as each kernel era computes it (standard library only)."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from .model import MmRecord, RawCounter

__all__ = ["COUNTER_RULES", "get_mm_counter", "get_mm_counters", "get_mm_rss", "per_cpu_ptrs", "s32", "MM_FILEPAGES",
           "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES"]

# enum { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES } since v4.5;
# backends re-map by the kernel's own enum values, so these are the indices
# into MmRecord.counters.
MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES = range(4)

COUNTER_RULES = {
    # Before v6.2: atomic_long_read(&mm->rss_stat.count[member]), negative
    # values (a per-thread cache not yet flushed) read as 0. The per-thread
    # task->rss_stat caches (SPLIT_RSS_COUNTING) are NOT added.
    "atomic": "mm->rss_stat.count[].counter, clamped at 0 (per-thread caches not added)",
    # Since Linux kernel commit f1a7941243c1 ("mm: convert mm's rss stats into
    # percpu_counter") (in v6.2): percpu_counter_read_positive(), i.e. only
    # fbc->count, approximate.
    "percpu-count": "percpu_counter_read_positive(): percpu_counter.count only, clamped at 0",
    # Since "mm: Fix OOM killer inaccuracy on large many-core systems" (v7.0;
    # may be backported): get_mm_counter_sum() = percpu_counter_sum_positive(),
    # count plus every CPU's delta. The kernel sums online|dying CPUs; a dead
    # CPU's delta is folded into count by the hotplug callback, so while it runs
    # that equals summing every possible CPU. In a panic vmcore the stopped CPUs
    # are marked offline without folding, so only the possible-CPU sum
    # reproduces what the kernel printed before the panic.
    "percpu-sum": "percpu_counter_sum_positive(): count + per-CPU deltas of all possible CPUs, clamped at 0",
}


def _read(counter: RawCounter, rule: str) -> int:
    if rule == "percpu-sum":
        if counter.percpu is None:
            raise ValueError("percpu-sum needs the per-CPU deltas")
        value = counter.count + sum(counter.percpu)
    else:
        value = counter.count
    return value if value > 0 else 0


def get_mm_counter(mm: MmRecord, member: int, rule: str) -> int:
    """The value the kernel's ``get_mm_counter()`` (or ``_sum``) returns under *rule*."""
    return _read(mm.counters[member], rule)


def per_cpu_ptrs(ptr: int, offsets: Sequence[int]) -> List[int]:
    """``per_cpu_ptr(ptr, cpu)`` for each CPU's ``__per_cpu_offset`` in *offsets*:
    the address of that CPU's copy (64-bit wrapping sum)."""
    return [(ptr + off) & 0xFFFF_FFFF_FFFF_FFFF for off in offsets]


def s32(value: int) -> int:
    """An unsigned 32-bit reading as the ``s32`` a per-CPU counter delta is."""
    return value - (1 << 32) if value & 0x8000_0000 else value


def get_mm_counters(mm: MmRecord, rule: str) -> Tuple[int, int, int, int]:
    """:func:`get_mm_counter` of all four members, in enum order (one call per mm)."""
    if rule == "percpu-sum":
        return tuple(_read(c, rule) for c in mm.counters)  # type: ignore[return-value]
    # Unrolled: this runs twice per process of a 10,000-process report.
    file, anon, swap, shmem = mm.counters
    return (file.count if file.count > 0 else 0, anon.count if anon.count > 0 else 0,
            swap.count if swap.count > 0 else 0, shmem.count if shmem.count > 0 else 0)


def get_mm_rss(mm: MmRecord, rule: str) -> int:
    """``get_mm_rss()``: file + anon + shmem, each read as :func:`get_mm_counter`."""
    return (get_mm_counter(mm, MM_FILEPAGES, rule) + get_mm_counter(mm, MM_ANONPAGES, rule)
            + get_mm_counter(mm, MM_SHMEMPAGES, rule))
