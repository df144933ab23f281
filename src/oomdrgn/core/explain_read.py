"""What ``explain`` reads of one task, over the target port (both backends).

The records :class:`~oomdrgn.core.kernel.KernelReader` gives (task, mm with
its per-CPU deltas, the selection) plus what they leave out: the address of
every field read, each per-CPU delta's address, the per-thread
``task->rss_stat`` caches before v6.2 and the batching constants. The
explanation itself is made from these by :func:`oomdrgn.core.explain.explain`
(no reads).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

from .errors import ReadError, TargetError
from .kernelinfo import KernelInfo
from .mmcounters import per_cpu_ptrs, s32
from .model import MmRecord, Selection, TaskRecord
from .oom import Reader, task_with_mm
from .port import Fault
from .record import field, record

__all__ = ["RawField", "ThreadCache", "ExplainFacts", "read_explain_facts", "MM_NAMES"]

#: ``enum`` names of ``mm->rss_stat``'s counters, in :class:`MmRecord` order.
MM_NAMES = ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")
# mm/memory.c before v6.2: "#define TASK_RSS_EVENTS_THRESH (64)", a #define
# (not in the debug info).
TASK_RSS_EVENTS_THRESH = 64
# mm/memory.c: "fault_around_bytes = rounddown_pow_of_two(65536)" where the
# symbol cannot be read.
FAULT_AROUND_BYTES = 65536


@record(frozen=True)
class RawField:
    """One value read from memory: its C expression, address and value."""

    name: str
    address: int
    value: Union[int, str]
    pointer: bool = False  # the value is an address


@record(frozen=True)
class ThreadCache:
    """``task->rss_stat`` of one thread whose ``task->mm`` is the mm (before
    v6.2, ``SPLIT_RSS_COUNTING``): counts not yet added to ``mm->rss_stat``."""

    pid: int
    address: int  # the task_struct
    events: int  # task->rss_stat.events: page faults since the last sync_mm_rss()
    events_address: int
    counts: Tuple[int, ...]  # task->rss_stat.count[], MmRecord order (0 where absent)
    addresses: Tuple[int, ...]  # their addresses (0 where absent)


@record(frozen=True)
class ExplainFacts:
    """Everything :func:`oomdrgn.core.explain.explain` needs, read once."""

    pid: int  # the PID asked about
    info: KernelInfo
    leader: TaskRecord  # the task the PID names
    task: TaskRecord  # the thread find_lock_task_mm() returns (it has the mm)
    mm: MmRecord  # with every possible CPU's deltas on a percpu_counter layout
    fields: Dict[str, RawField]  # scalar fields by C expression
    #: per counter (MmRecord order): its raw fields (count, counters pointer, each
    #: CPU's delta), empty for a counter this kernel lacks
    counter_fields: Tuple[Tuple[RawField, ...], ...]
    possible_cpus: Tuple[int, ...]
    percpu_counter_batch: Optional[int]  # v6.2+ (lib/percpu_counter.c)
    split_rss: bool  # before v6.2: task->rss_stat caches exist
    caches: Tuple[ThreadCache, ...]  # every thread with task->mm == this mm
    fault_around_pages: int
    fault_around_read: bool  # False: the default assumed (symbol unreadable)
    selection: Selection
    memcg: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def _field(reader: Reader, name: str, base: int, type_name: str, designator: str,
           size: int = 8, signed: bool = False, pointer: bool = False) -> RawField:
    address = base + reader.offset(type_name, designator)
    return RawField(name, address, reader.read_int(address, size, signed), pointer)


def _sized(reader: Reader, name: str, base: int, type_name: str, designator: str) -> RawField:
    m = reader.target.member(type_name, designator)
    return RawField(name, base + m.offset, reader.read_int(base + m.offset, m.size, m.signed))


def _counter_fields(reader: Reader, mm: int, percpu: bool, cpus: List[int],
                    offsets: List[int]) -> Tuple[Tuple[RawField, ...], ...]:
    out: List[Tuple[RawField, ...]] = []
    for name in MM_NAMES:
        k = reader.target.constant(name)
        if k is None:  # MM_SHMEMPAGES before v4.5
            out.append(())
            continue
        if not percpu:
            out.append((_field(reader, f"mm->rss_stat.count[{name}].counter", mm,
                               "struct mm_struct", f"rss_stat.count[{k}]", signed=True),))
            continue
        count = _field(reader, f"mm->rss_stat[{name}].count", mm, "struct mm_struct",
                       f"rss_stat[{k}].count", signed=True)
        base = _field(reader, f"mm->rss_stat[{name}].counters", mm, "struct mm_struct",
                      f"rss_stat[{k}].counters", pointer=True)
        deltas = [RawField(f"*per_cpu_ptr(mm->rss_stat[{name}].counters, {cpu})", p,
                           s32(reader.memory.read_u32(p)))
                  for cpu, p in zip(cpus, per_cpu_ptrs(int(base.value), offsets))]
        out.append((count, base, *deltas))
    return tuple(out)


def _thread_caches(reader: Reader, mm: int) -> Optional[Tuple[ThreadCache, ...]]:
    """The ``task->rss_stat`` of every thread whose ``task->mm`` is *mm* (the
    kernel caches only while ``task->mm == mm``: add_mm_counter_fast()); None
    where task_struct has no rss_stat (no SPLIT_RSS_COUNTING, or v6.2+)."""
    tt = "struct task_struct"
    try:
        events_off = reader.offset(tt, "rss_stat.events")
        idx = [reader.target.constant(n) for n in MM_NAMES]
        count_offs = [None if k is None else reader.offset(tt, f"rss_stat.count[{k}]")
                      for k in idx]
    except LookupError:
        return None
    mm_off, pid_off = reader.offset(tt, "mm"), reader.offset(tt, "pid")
    out = []
    for p in reader.processes():
        try:
            threads = list(reader.threads(p))
        except ReadError:
            continue
        for t in threads:
            try:
                if reader.memory.read_word(t + mm_off) != mm:
                    continue
                counts = tuple(0 if o is None else s32(reader.memory.read_u32(t + o))
                               for o in count_offs)
                out.append(ThreadCache(
                    s32(reader.memory.read_u32(t + pid_off)), t,
                    s32(reader.memory.read_u32(t + events_off)), t + events_off, counts,
                    tuple(0 if o is None else t + o for o in count_offs)))
            except Fault:
                continue
    return tuple(out)


def _global_int(reader: Reader, name: str, size: int) -> Optional[int]:
    sym = reader.target.symbol(name)
    if sym is None:
        return None
    try:
        return reader.read_int(sym[0], size, signed=True)
    except Fault:
        return None


def read_explain_facts(reader: Reader, pid: int, memcg: Optional[str] = None,
                       selection: Optional[Selection] = None) -> ExplainFacts:
    """Read what ``explain PID`` shows.

    :param memcg: a memcg OOM in this cgroup (its ``totalpages`` and scan order)
    :param selection: :func:`~oomdrgn.core.decision.select_bad_process`'s answer
        if already at hand (default: asked here, under the OOM's constraint as
        ``victim`` asks it)
    :raises TargetError: no such PID or memcg, or the task has no mm
    """
    from .decision import select_bad_process  # decision imports oom: no cycle at import
    from .oom_report import oom_control
    if memcg is not None:
        reader.memcg(memcg)  # raises TargetError for an unknown cgroup
    task, t = task_with_mm(reader, pid, "the kernel prints no row and no Killed process "
                                        "line for it")
    try:
        leader = reader.task(task)
    except ReadError as e:
        raise TargetError(f"PID {pid}: {e}") from None
    info = reader.info
    percpu = info.counter_layout == "percpu"
    tt, mt = "struct task_struct", "struct mm_struct"
    notes: List[str] = []
    try:
        mm = reader.mm(t.mm, percpu)
        cpus = reader.cpus("possible") if percpu else []
        offsets = reader.percpu_offsets() if percpu else []
        a = t.address
        fields = {f.name: f for f in (
            _sized(reader, "task->pid", a, tt, "pid"),
            _sized(reader, "task->tgid", a, tt, "tgid"),
            _field(reader, "task->real_cred", a, tt, "real_cred", pointer=True),
            _field(reader, "task->signal", a, tt, "signal", pointer=True),
            _field(reader, "task->mm", a, tt, "mm", pointer=True),
            RawField("task->comm", a + reader.offset(tt, "comm"), t.comm),
            _field(reader, "mm->total_vm", mm.address, mt, "total_vm"),
        )}
        fields["cred->uid"] = _sized(reader, "task->real_cred->uid.val",
                                     int(fields["task->real_cred"].value), "struct cred", "uid")
        fields["signal->oom_score_adj"] = _sized(
            reader, "task->signal->oom_score_adj", int(fields["task->signal"].value),
            "struct signal_struct", "oom_score_adj")
        if info.pgtables == "bytes":
            fields["mm->pgtables_bytes"] = _field(
                reader, "mm->pgtables_bytes.counter", mm.address, mt, "pgtables_bytes",
                signed=True)
        else:
            fields["mm->nr_ptes"] = _field(reader, "mm->nr_ptes.counter", mm.address, mt,
                                           "nr_ptes", signed=True)
            try:
                fields["mm->nr_pmds"] = _field(reader, "mm->nr_pmds.counter", mm.address, mt,
                                               "nr_pmds", signed=True)
            except LookupError:
                pass  # the PMD level folded: mm_nr_pmds() is 0
        counter_fields = _counter_fields(reader, mm.address, percpu, cpus, offsets)
        caches = None if percpu else _thread_caches(reader, mm.address)
        batch = _global_int(reader, "percpu_counter_batch", 4) if percpu else None
        if percpu and batch is None:
            notes.append("percpu_counter_batch unreadable: the bound assumes its "
                         "boot value max(32, 2 x online CPUs)")
            batch = max(32, 2 * len(reader.cpus("online")))
        # fault_around_pages since "mm: prefer fault_around_pages to
        # fault_around_bytes" (in v6.4, hash not checked here); before, bytes.
        around = _global_int(reader, "fault_around_pages", 8)
        if around is not None:
            around <<= info.page_shift
        else:
            around = _global_int(reader, "fault_around_bytes", 8)
    except Fault as e:
        raise TargetError(f"PID {pid}: {e}") from None
    if selection is None:
        constraint = oom_control(reader, memcg=memcg, choose_victim=False).constraint
        selection = select_bad_process(reader, memcg, constraint=constraint)
    page = 1 << info.page_shift
    return ExplainFacts(
        pid=pid, info=info, leader=leader, task=t, mm=mm, fields=fields,
        counter_fields=counter_fields, possible_cpus=tuple(cpus),
        percpu_counter_batch=batch, split_rss=caches is not None, caches=caches or (),
        fault_around_pages=max(1, (around if around else FAULT_AROUND_BYTES) // page),
        fault_around_read=bool(around), selection=selection, memcg=memcg, notes=notes)
