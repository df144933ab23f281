"""The questions oomdrgn answers, asked of any backend through :class:`Reader`.

This mirrors ``mm/oom_kill.c``: ``for_each_process``, ``oom_unkillable_task``,
``find_lock_task_mm``, ``dump_task`` and ``__oom_kill_process``. A backend only
walks lists and reads records; the order and the rules are here, once.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Protocol, Sequence, Tuple, Union

from .errors import ReadError, TargetError
from .kernelinfo import KernelInfo
from .mmcounters import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES,
                         get_mm_counter, get_mm_counters)
from .model import MemcgRecord, MmRecord, ReadFailure, Row, TaskRecord, Victim, VmTotals
from .port import Target
from .structs import BlockCache
from .formats import (MEMCG_PREFIX, OOM_PREFIX, K, format_kill_line,
                     format_rows)

__all__ = ["Reader", "ReadError", "TargetError", "dump_tasks", "format_dump_tasks",
           "find_lock_task_mm", "process_row", "task_with_mm", "oom_kill_victim", "oom_kill_line", "PF_KTHREAD"]

PF_KTHREAD = 0x00200000


class Reader(Protocol):
    """What a backend provides. Addresses are plain ints."""

    info: KernelInfo
    # What the core's readers over the port use (oomdrgn.core.kernel.KernelReader):
    target: Target
    memory: BlockCache

    def offset(self, type_name: str, designator: str) -> int:
        """The byte offset of *designator* in *type_name*."""

    def symbol_address(self, name: str) -> int:
        """The address of symbol *name* (raises :class:`ReadError` if none)."""

    def read_int(self, address: int, size: int = 8, signed: bool = False) -> int:
        """An integer of *size* bytes at *address*, in the target's byte order."""

    def cpus(self, which: str) -> List[int]:
        """CPU ids set in ``__cpu_<which>_mask`` (``online``, ``possible``)."""

    def cpu_curr(self, cpu: int) -> int:
        """``cpu_curr(cpu)``: the task *cpu* runs."""

    def per_cpu_offset(self, cpu: int) -> int:
        """``__per_cpu_offset[cpu]`` (0 without SMP)."""

    def percpu_offsets(self) -> List[int]:
        """``__per_cpu_offset[]`` of every possible CPU."""

    def processes(self) -> Iterator[int]:
        """``for_each_process``: task addresses after ``init_task``, list order."""

    def threads(self, task: int) -> Iterator[int]:
        """``for_each_thread``: thread addresses of *task*'s group, list order."""

    def task(self, task: int) -> TaskRecord:
        """Read a ``task_struct`` (raises :class:`ReadError`)."""

    def mm(self, mm: int, percpu: bool) -> MmRecord:
        """Read an ``mm_struct``; *percpu*: also read the per-CPU counter deltas."""

    def find_task(self, pid: int) -> Optional[int]:
        """The task with this PID in the initial namespace, if any."""

    def task_pid(self, task: int) -> int:
        """``task->pid`` alone, or -1 if even that is unreadable."""

    # For the decision (oomdrgn.core.decision):

    def vm_totals(self) -> "VmTotals":
        """``totalram_pages()``, ``total_swap_pages``, ``vm_swappiness``."""

    def memcg(self, path: str) -> "MemcgRecord":
        """The memcg of cgroup v2 *path* (raises :class:`TargetError` if none)."""

    def memcg_scan_tasks(self, path: str) -> Iterator[int]:
        """``mem_cgroup_scan_tasks()`` order: the memcg subtree pre-order, leaders."""

    def current_task(self) -> Optional[int]:
        """The task that hit the OOM (see :func:`task_that_hit_the_oom`)."""

    def cgroup_path(self, task: int, subsys: str) -> Optional[str]:
        """``task_cgroup(task, <subsys>_cgrp_id)``'s path (None: no such controller)."""

    def cgroup_name(self, task: int, subsys: str) -> Optional[str]:
        """Likewise, the cgroup's name (``pr_cont_cgroup_name``)."""

    def mems_allowed(self, task: int) -> List[int]:
        """Node ids set in ``task->mems_allowed``."""

    def log_lines(self) -> List[str]:
        """The kernel log (printk ring) as console lines, with timestamps."""

    def mutex_held(self, name: str) -> Optional[bool]:
        """Whether the global ``struct mutex`` *name* is held now (None: cannot tell)."""


# mm/oom_kill.c functions on the way from a failed allocation to the kill.
OOM_PATH = frozenset({"out_of_memory", "mem_cgroup_out_of_memory", "oom_kill_process",
                      "__oom_kill_process", "dump_header", "select_bad_process",
                      "oom_evaluate_task", "dump_tasks", "dump_task"})


def task_that_hit_the_oom(panicking: Optional[int], stopped: Optional[int],
                          busy: Sequence[Tuple[int, Optional[Sequence[str]]]]) -> Optional[int]:
    """``current`` of the OOM, from what the target shows.

    :param panicking: the panicking CPU's task, if the kernel panicked;
    :param stopped: the task of the CPU a debugger stopped (the one that hit
        its breakpoint);
    :param busy: per CPU not idle: its task and the function names on that
        task's stack (None where the stack cannot be read).
    :returns: the first of: *panicking*, *stopped*, the busy task whose stack
        passes through the OOM killer (if just one), the only busy task; else
        None. (Asked only while an OOM may be in progress: see
        :meth:`oomdrgn.core.kernel.KernelReader.current_task`.)
    """
    if panicking is not None:
        return panicking
    if stopped is not None:
        return stopped
    in_oom = [t for t, names in busy if names is not None and OOM_PATH.intersection(names)]
    if len(in_oom) == 1:
        return in_oom[0]
    return busy[0][0] if len(busy) == 1 else None


def oom_unkillable_task(t: TaskRecord) -> bool:
    """``is_global_init(p) || (p->flags & PF_KTHREAD)``."""
    return t.tgid == 1 or bool(t.flags & PF_KTHREAD)


def find_lock_task_mm(reader: Reader, p: int,
                      known: Optional[TaskRecord] = None) -> Optional[TaskRecord]:
    """The first thread of *p*'s group that still has an mm.

    :param known: a record already read for one of the threads (not re-read)
    """
    memo = getattr(reader, "task_mm_memo", None)  # kept while memory is static
    if memo is not None and p in memo:
        return memo[p]
    if known is not None and known.mm and known.address == p:
        # for_each_thread() starts at the first thread of p's group: p itself,
        # with an mm, is the answer (no walk of the thread list).
        first = getattr(reader, "first_thread", None)
        if first is not None and first(p) == p:
            if memo is not None:
                memo[p] = known
            return known
    found = None
    for t in reader.threads(p):
        rec = known if known is not None and known.address == t else reader.task(t)
        if rec.mm:
            found = rec
            break
    if memo is not None:
        memo[p] = found
    return found


def _needs_percpu(reader: Reader, consumer: str) -> bool:
    return reader.info.rules[consumer] == "percpu-sum"


def _row(info: KernelInfo, t: TaskRecord, mm: MmRecord) -> Row:
    file, anon, swap, shmem = get_mm_counters(mm, info.rules["table"])
    # get_mm_rss(): file + anon + shmem, each read as get_mm_counter() reads it.
    return Row(t.pid, t.uid, t.tgid, mm.total_vm, file + anon + shmem, anon, file, shmem,
               mm.pgtables_bytes or 0, swap, t.oom_score_adj, t.comm,
               mm.nr_ptes or 0, mm.nr_pmds or 0)


def dump_tasks(reader: Reader,
               scan: Optional[Iterator[int]] = None) -> List[Union[Row, ReadFailure]]:
    """The rows of ``dump_tasks()``, in the kernel's order.

    :param scan: the processes to visit: ``for_each_process`` (default, a global
        OOM) or ``mem_cgroup_scan_tasks()`` order (a memcg OOM). oomdrgn does not
        apply ``oom_cpuset_eligible()`` (it cannot know the allocation's nodemask).

    A process that cannot be read yields a :class:`ReadFailure` in its place.
    A reader with ``dump_tasks_static()`` (every process of a kernel that cannot
    change, in one loop) gives the same rows faster where it applies.
    """
    if scan is None:
        # The reader's own class's (a view over a reader, such as a what-if's,
        # changes records: it gets the record-by-record rows).
        static = getattr(type(reader), "dump_tasks_static", None)
        found = static(reader) if static is not None else None
        if found is not None:
            return found
    rows: List[Union[Row, ReadFailure]] = []
    add = rows.append
    percpu = _needs_percpu(reader, "table")
    known = getattr(reader, "task_mm_memo", None) or {}  # find_lock_task_mm() answers
    processes = reader.processes() if scan is None else iter(scan)
    while True:
        try:
            p = next(processes)
        except StopIteration:
            break
        except ReadError as e:  # the task list itself is broken: stop here
            add(ReadFailure(pid=-1, reason=str(e)))
            break
        row = process_row(reader, p, percpu, known)
        if row is not None:
            add(row)
    return rows


def process_row(reader: Reader, p: int, percpu: bool,
                known: dict) -> Union[Row, ReadFailure, None]:
    """``dump_tasks()``'s row of process *p* (None: unkillable, or no thread
    with an mm; a :class:`ReadFailure` where it cannot be read).

    :param known: find_lock_task_mm() answers already had, by process
    """
    try:
        leader = reader.task(p)
        if leader.tgid == 1 or leader.flags & PF_KTHREAD:  # oom_unkillable_task()
            return None
        t = known[p] if p in known else find_lock_task_mm(reader, p, leader)
        if t is None:
            return None
        return _row(reader.info, t, reader.mm(t.mm, percpu))
    except ReadError as e:
        return ReadFailure(pid=reader.task_pid(p), reason=str(e), address=p)


def format_dump_tasks(reader: Reader, rows: List[Union[Row, ReadFailure]]) -> str:
    """The ``dump_tasks()`` block as the kernel prints it; unreadable rows are marked."""
    fmt = reader.info.eras.table
    out = list(fmt.lines())
    run: List[Row] = []  # readable rows since the last failure, formatted together
    for r in rows:
        if isinstance(r, ReadFailure):
            out.append(format_rows(fmt, run))
            run = []
            out.append(f"[{r.pid:{fmt.pid_width}d}] <unreadable: {r.reason}>\n")
        else:
            run.append(r)
    out.append(format_rows(fmt, run))
    return "".join(out)


def task_with_mm(reader: Reader, pid: int, why: str) -> Tuple[int, TaskRecord]:
    """Process *pid*'s task_struct and ``find_lock_task_mm()``'s thread of it.

    :raises TargetError: no such PID, unreadable, or no mm (*why* says what the
        kernel then does not print)
    """
    task = reader.find_task(pid)
    if task is None:
        raise TargetError(f"no task with PID {pid}")
    try:
        t = find_lock_task_mm(reader, task)
    except ReadError as e:
        raise TargetError(f"PID {pid}: {e}") from None
    if t is None:
        raise TargetError(f"PID {pid} has no mm (kernel thread or exited): {why}")
    return task, t


def oom_kill_victim(reader: Reader, pid: int) -> Victim:
    """The values ``__oom_kill_process()`` prints if the process *pid* is the victim."""
    task, t = task_with_mm(reader, pid, "the kernel would not print a Killed process line")
    info = reader.info
    rule = info.rules["kill"]
    try:
        mm = reader.mm(t.mm, _needs_percpu(reader, "kill"))
    except ReadError as e:
        raise TargetError(f"PID {pid}: {e}") from None
    shift = info.page_shift
    return Victim(
        pid=t.pid, name=t.comm, total_vm_kb=K(mm.total_vm, shift),
        anon_rss_kb=K(get_mm_counter(mm, MM_ANONPAGES, rule), shift),
        file_rss_kb=K(get_mm_counter(mm, MM_FILEPAGES, rule), shift),
        shmem_rss_kb=K(get_mm_counter(mm, MM_SHMEMPAGES, rule), shift),
        uid=t.uid,
        # mm_pgtables_bytes(mm) >> 10 (a long, shifted arithmetically).
        pgtables_kb=(mm.pgtables_bytes or 0) >> 10,
        oom_score_adj=t.oom_score_adj)


def oom_kill_line(reader: Reader, pid: int, memcg: bool = False) -> str:
    """The "Killed process" line of ``__oom_kill_process()`` for victim *pid*."""
    victim = oom_kill_victim(reader, pid)
    return format_kill_line(reader.info.eras.kill, victim, MEMCG_PREFIX if memcg else OOM_PREFIX)
