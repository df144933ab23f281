"""Plain records that backends produce and the pure core consumes.

A backend (drgn, GDB) turns kernel objects into these; nothing here knows about
a debugger.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from .record import field, record

__all__ = ["RawCounter", "MmRecord", "TaskRecord", "Row", "Victim", "ReadFailure",
           "VmTotals", "MemcgRecord", "Candidate", "Selection"]

# The records made once per task (MmRecord, TaskRecord, Row, Candidate) are plain slotted
# records, and RawCounter (four per mm) a NamedTuple: a frozen record's
# __init__ costs ~3x more (object.__setattr__ per field), which showed at
# 10,000+ tasks.


class RawCounter(NamedTuple):
    """One ``mm->rss_stat`` counter as stored in memory.

    ``count`` is ``atomic_long_t.counter`` (before v6.2) or
    ``percpu_counter.count`` (v6.2+); ``percpu`` holds the per-CPU ``s32``
    deltas of every possible CPU, when they were read.
    """

    # The kernel's name; it shadows tuple.count(), which nothing here calls.
    count: int  # type: ignore[assignment]
    percpu: Optional[Tuple[int, ...]] = None


@record(slots=True)
class MmRecord:
    """What the OOM code reads of a ``struct mm_struct``."""

    address: int
    total_vm: int
    # Indexed by the kernel's enum: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES.
    counters: Tuple[RawCounter, ...]
    pgtables_bytes: Optional[int] = None  # v4.15+
    nr_ptes: Optional[int] = None  # before v4.15
    nr_pmds: Optional[int] = None  # before v4.15
    flags: int = 0


@record(slots=True)
class TaskRecord:
    """What the OOM code reads of a ``struct task_struct``."""

    address: int
    pid: int
    tgid: int
    comm: str
    flags: int  # task->flags (PF_*)
    uid: int  # from_kuid(&init_user_ns, task_uid(task)) as an unsigned 32-bit value
    oom_score_adj: int  # task->signal->oom_score_adj
    mm: int  # address of task->mm, 0 if none
    error: Optional[str] = None  # set when a field could not be read
    # What oom_badness() and oom_evaluate_task() look at besides the mm:
    vfork_done: int = 0  # task->vfork_done (in_vfork() needs it non-NULL)
    parent_mm: int = 0  # task->real_parent->mm, read only when vfork_done is set
    oom_mm: int = 0  # task->signal->oom_mm (non-NULL: already an OOM victim)
    oom_flag_origin: bool = False  # task->signal->oom_flag_origin


@record(slots=True)
class Row:
    """One line of ``dump_tasks()``, values as the kernel computes them."""

    pid: int
    uid: int
    tgid: int
    total_vm: int
    rss: int
    rss_anon: int
    rss_file: int
    rss_shmem: int
    pgtables_bytes: int
    swapents: int
    oom_score_adj: int
    name: str
    nr_ptes: int = 0
    nr_pmds: int = 0


@record(frozen=True)
class Victim:
    """The values ``__oom_kill_process()`` prints, already in kB where it prints kB."""

    pid: int
    name: str
    total_vm_kb: int
    anon_rss_kb: int
    file_rss_kb: int
    shmem_rss_kb: int
    uid: int
    pgtables_kb: int
    oom_score_adj: int


@record(frozen=True)
class ReadFailure:
    """A process whose row could not be read (it is reported, not dropped)."""

    pid: int
    reason: str
    address: int = 0


@record(frozen=True)
class VmTotals:
    """Global memory sizes the OOM killer scales by (pages)."""

    totalram_pages: int
    total_swap_pages: int
    vm_swappiness: int = 60


@record(frozen=True)
class MemcgRecord:
    """What ``mem_cgroup_get_max()`` reads of a ``struct mem_cgroup`` (pages)."""

    path: str
    memory_max: int
    swap_max: Optional[int] = None  # cgroup v2 memcg->swap.max
    memsw_max: Optional[int] = None  # cgroup v1 memcg->memsw.max
    memsw_accounting: bool = False  # do_memsw_account(): cgroup v1 with swap accounting
    swappiness: int = 60  # mem_cgroup_swappiness(memcg)


@record(slots=True)
class Candidate:
    """One process as ``oom_evaluate_task()`` saw it."""

    pid: int
    name: str
    points: Optional[int]  # oom_badness(), None where it was not computed
    verdict: str  # "chosen", "candidate", "skipped: <why>", "abort: <why>"
    oom_score_adj: int = 0


@record(frozen=True)
class Selection:
    """The result of ``select_bad_process()``."""

    chosen_pid: Optional[int]  # None: no victim; -1: scan aborted (a victim exists)
    chosen_points: Optional[int]
    totalpages: int
    candidates: Tuple[Candidate, ...] = field(default_factory=tuple)
    rule: str = ""  # which era's rules were applied
