"""The whole OOM report, in the order ``dump_header()`` and ``oom_kill_process()`` print it.

``mm/oom_kill.c``: the ``invoked oom-killer`` line, ``dump_stack()``, then for a
memcg OOM ``mem_cgroup_print_oom_meminfo()``, else ``__show_mem()`` and, when
``should_dump_unreclaim_slab()``, ``dump_unreclaimable_slab()``; (7.x)
``mem_cgroup_show_protected_memory()``; ``dump_tasks()``; ``dump_oom_summary()``;
the ``Killed process`` line. Each part is built by its own module from kernel
memory; this module decides the ``struct oom_control`` they are asked about
(:func:`oom_control`) and puts them in order (:func:`oom_report`).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from .cgroup import memcg_path
from .constraint import CONSTRAINTS, Constraint, constrained_alloc
from .decision import memcg_dump_tasks, oom_summary_line, select_bad_process
from .dump_stack import dump_stack, task_cpu
from .errors import ReadError, TargetError
from .formats import MEMCG_PREFIX, OOM_PREFIX, bitmap_list, format_kill_line, parse_bitmap_list
from .gfp import compaction_line, gfp_zone, invoked_line, parse_gfp
from .logparse import OomReport, parse_lines
from .memcg_meminfo import mem_cgroup_print_oom_meminfo, mem_cgroup_show_protected_memory
from .model import ReadFailure
from .oom import Reader, dump_tasks, format_dump_tasks, oom_kill_victim
from .record import field, record
from .show_mem import show_mem
from .slabinfo import dump_unreclaimable_slab, should_dump_unreclaim_slab

__all__ = ["OomControl", "OomReportText", "Section", "oom_control", "oom_report",
           "DEFAULT_GFP"]

#: What the report assumes when no OOM is in progress: a user page fault.
DEFAULT_GFP = "GFP_HIGHUSER_MOVABLE"
#: "CPU: 1 PID: 156 Comm: oomhog ..." (dump_stack_print_info(); 6.10+ adds "UID: %u ").
_DUMP_STACK = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: ")


@record
class OomControl:
    """The OOM's ``struct oom_control`` as far as oomdrgn can tell it.

    :param current: ``current``'s task_struct address (None: no OOM in progress
        and no ``--current``: the invoked line and the stack are left out)
    :param cpu: the CPU ``current`` ran on (``this_cpu_read()`` in ``__show_mem``)
    :param sources: per field, where its value came from (for the user)
    """

    gfp_mask: int
    order: int
    nodemask: Optional[List[int]] = None
    memcg: Optional[str] = None
    current: Optional[int] = None
    cpu: Optional[int] = None
    victim_pid: Optional[int] = None
    constraint: Optional[Constraint] = None
    sources: Dict[str, str] = field(default_factory=dict)
    logged: Optional[OomReport] = None


@record
class Section:
    """One part of the report: its name (``invoked``, ``dump_stack``, ``show_mem``,
    ``slab``, ``memcg``, ``protection``, ``tasks``, ``summary``, ``kill``), its
    console lines, and whether they are meant to equal the kernel's byte for byte."""

    name: str
    lines: List[str]
    exact: bool = True
    note: str = ""
    values: dict = field(default_factory=dict)


@record
class OomReportText:
    control: OomControl
    sections: List[Section]
    partial: bool = False

    @property
    def lines(self) -> List[str]:
        return [line for s in self.sections for line in s.lines]


# -- the oom_control --------------------------------------------------------------

def _logged_oom(reader: Reader, current: Optional[int]) -> Tuple[Optional[OomReport], List[str]]:
    """The last OOM report in the printk ring if it is the OOM *current* is in."""
    if current is None:
        return None, []
    try:
        lines = reader.log_lines()
    except ReadError:
        return None, []
    reports = [r for r in parse_lines(lines) if r.invoked is not None]
    if not reports:
        return None, lines
    last = reports[-1]
    try:
        rec = reader.task(current)
    except ReadError:
        return None, lines
    pid = _logged_pid(last, lines)
    if last.invoked is not None and last.invoked.comm == rec.comm and pid in (None, rec.pid):
        return last, lines
    return None, lines


def _logged_pid(report: OomReport, lines: Sequence[str]) -> Optional[int]:
    """The PID of ``dump_stack()``'s ``CPU: N PID: P`` line after the invoked line."""
    for text in lines[report.first_line:report.first_line + 8]:
        m = _DUMP_STACK.search(text)
        if m:
            return int(m.group(2))
    return None


def _stacked_control(reader: Reader, current: Optional[int]) -> Optional[dict]:
    """The OOM task's ``struct oom_control`` from its stack (a backend hook:
    drgn reads the ``oc`` variable of the OOM functions' frames), with its
    ``nodemask`` read as node ids and its ``memcg`` as a cgroup path."""
    if current is None:
        return None
    target = reader.target
    try:
        oc = target.oom_control(current)
    except ReadError:
        return None
    if oc is None:
        return None
    out = dict(oc)
    if oc.get("nodemask"):
        m = target.member("nodemask_t", "bits")
        bits = int.from_bytes(target.read(oc["nodemask"] + m.offset, m.size),
                              "little" if target.little_endian else "big")
        out["nodemask"] = [n for n in range(m.size * 8) if bits >> n & 1]
    else:
        out["nodemask"] = None
    out["memcg"] = memcg_path(reader, oc["memcg"]) if oc.get("memcg") else None
    if oc.get("constraint") is not None:  # enum oom_constraint, by its enumerators
        names = {target.constant(n): n for n in CONSTRAINTS}
        out["constraint"] = names.get(oc["constraint"])
    return out


def _nodemask(text: str) -> Optional[List[int]]:
    """``nodemask=(null)`` or ``%*pbl`` as the summary prints it."""
    return None if text == "(null)" else parse_bitmap_list(text)


def oom_control(reader: Reader, gfp_mask: Optional[int] = None, order: Optional[int] = None,
                memcg: Optional[str] = None, current_pid: Optional[int] = None,
                victim_pid: Optional[int] = None,
                nodemask: Optional[List[int]] = None, choose_victim: bool = True) -> OomControl:
    """The ``oom_control`` to report on: the options given, else the OOM in
    progress (the task that hit it, its own ``invoked`` line and summary in the
    printk ring), else the defaults (``GFP_HIGHUSER_MOVABLE``, order 0, no
    current task, the victim :func:`select_bad_process` would choose).

    :raises TargetError: ``--current`` or ``--memcg`` names nothing
    """
    sources: Dict[str, str] = {}
    if current_pid is not None:
        current = reader.find_task(current_pid)
        if current is None:
            raise TargetError(f"--current {current_pid}: no such task")
        sources["current"] = "--current"
    else:
        current = reader.current_task()
        sources["current"] = ("the task on the OOM path (panicking CPU, stopped vCPU, "
                              "oom_lock's owner or busy CPU)"
                              if current is not None else "none: no OOM in progress")
    if memcg is not None:
        reader.memcg(memcg)  # raises TargetError for an unknown cgroup
    logged, _ = _logged_oom(reader, current)
    inv = logged.invoked if logged is not None else None
    stacked = _stacked_control(reader, current)
    if stacked is not None:
        where = f"struct oom_control in {stacked['function']}() on the OOM task's stack"
        if gfp_mask is None:
            gfp_mask, sources["gfp_mask"] = stacked["gfp_mask"], where
        if order is None:
            order, sources["order"] = stacked["order"], where
        if memcg is None and stacked["memcg"] is not None:
            memcg, sources["memcg"] = stacked["memcg"], where
        if nodemask is None and stacked["nodemask"] is not None:
            nodemask, sources["nodemask"] = stacked["nodemask"], where
    if gfp_mask is not None:
        sources.setdefault("gfp_mask", "--gfp")
    elif inv is not None:
        gfp_mask, sources["gfp_mask"] = inv.gfp_mask, "the OOM's invoked line (printk ring)"
    else:
        gfp_mask, sources["gfp_mask"] = parse_gfp(reader, DEFAULT_GFP), f"default {DEFAULT_GFP}"
    if order is not None:
        sources.setdefault("order", "--order")
    elif inv is not None:
        order, sources["order"] = inv.order, "the OOM's invoked line (printk ring)"
    else:
        order, sources["order"] = 0, "default 0"
    if memcg is not None:
        sources.setdefault("memcg", "--memcg")
    elif logged is not None and logged.memcg:
        memcg = (logged.summary.oom_memcg if logged.summary is not None
                 and logged.summary.oom_memcg else logged.memcg_path)
        sources["memcg"] = "the OOM's own report (printk ring)"
    if stacked is None and nodemask is None and logged is not None \
            and logged.summary is not None:
        nodemask = _nodemask(logged.summary.nodemask)
        sources["nodemask"] = "the OOM's summary line (printk ring)"
    constraint = constrained_alloc(reader, gfp_mask, nodemask, memcg, current,
                                   zonelist=order != -1)
    sources["constraint"] = f"constrained_alloc(): {constraint.why}"
    if stacked is not None and stacked.get("constraint") is not None:
        # The kernel's own answer, on the stack: it wins (and is a check of ours).
        if stacked["constraint"] != constraint.name or \
                stacked.get("totalpages") not in (None, constraint.totalpages):
            sources["constraint"] += (f"; the OOM's oom_control says {stacked['constraint']}, "
                                      f"totalpages {stacked.get('totalpages')}: taken")
            constraint = Constraint(stacked["constraint"],
                                    stacked.get("totalpages") or constraint.totalpages,
                                    constraint.nodemask, current, "the OOM's oom_control")
    nodemask = constraint.nodemask if memcg is None else nodemask
    if victim_pid is not None:
        sources["victim"] = "given"
        if reader.find_task(victim_pid) is None:
            raise TargetError(f"--victim {victim_pid}: no such task")
    elif not choose_victim:
        sources["victim"] = "not asked"
    elif logged is not None and logged.victim_pid is not None and logged.victim_pid > 0 \
            and reader.find_task(logged.victim_pid) is not None:
        victim_pid, sources["victim"] = logged.victim_pid, "the OOM's summary line (printk ring)"
    else:
        chosen = select_bad_process(reader, memcg, order == -1, constraint,
                                    fates=False).chosen_pid
        victim_pid = chosen if chosen is not None and chosen > 0 else None
        sources["victim"] = "select_bad_process()"
    return OomControl(gfp_mask=gfp_mask, order=order, nodemask=nodemask, memcg=memcg,
                      current=current, cpu=_cpu(reader, current),
                      victim_pid=victim_pid, constraint=constraint, sources=sources,
                      logged=logged)


# -- the report ----------------------------------------------------------------------

def _cpu(reader: Reader, task: Optional[int]) -> Optional[int]:
    """The CPU *task* runs on: the CPU whose ``rq->curr`` it is, else ``task_cpu()``."""
    if task is None:
        return None
    try:
        for cpu in reader.cpus("online"):
            if reader.cpu_curr(cpu) == task:
                return cpu
        return task_cpu(reader, task)
    except (ReadError, LookupError):
        return None


def _head(reader: Reader, oc: OomControl) -> List[Section]:
    if oc.current is None:
        return []
    cur = reader.task(oc.current)
    lines = invoked_line(reader, cur.comm, oc.gfp_mask, oc.order, cur.oom_score_adj,
                         oc.nodemask).splitlines()
    lines += compaction_line(reader, oc.order)
    stack = dump_stack(reader, oc.current, oc.cpu)
    return [Section("invoked", lines), Section("dump_stack", list(stack.header)),
            Section("frames", list(stack.frames), exact=False, note=stack.note)]


def _meminfo(reader: Reader, oc: OomControl) -> List[Section]:
    if oc.memcg is not None:
        m = mem_cgroup_print_oom_meminfo(reader, oc.memcg)
        sections = [Section("memcg", m.lines, note=m.formats, values=m.values)]
    else:
        mems = reader.mems_allowed(oc.current) if oc.current is not None else []
        s = show_mem(reader, oc.nodemask, mems, gfp_zone(reader, oc.gfp_mask), oc.cpu)
        sections = [Section("show_mem", s.lines, note=s.formats, values=s.values)]
        if should_dump_unreclaim_slab(reader):
            sections.append(Section("slab", dump_unreclaimable_slab(reader)))
    protection = mem_cgroup_show_protected_memory(reader, oc.memcg)
    if protection:
        sections.append(Section("protection", protection))
    return sections


def oom_report(reader: Reader, oc: OomControl) -> OomReportText:
    """Every line of the OOM report for *oc*, part by part (see :class:`Section`)."""
    sections = _head(reader, oc) + _meminfo(reader, oc)
    rows = memcg_dump_tasks(reader, oc.memcg) if oc.memcg else dump_tasks(reader)
    partial = any(isinstance(r, ReadFailure) for r in rows)
    sections.append(Section("tasks", format_dump_tasks(reader, rows).splitlines()))
    if oc.victim_pid is not None:
        cur = None
        if oc.current is not None:
            cur = reader.task(oc.current).pid
        try:
            summary = oom_summary_line(reader, oc.victim_pid, oc.memcg, cur, oc.constraint)
            sections.append(Section("summary", summary.splitlines()))
        except TargetError as e:
            sections.append(Section("summary", [], note=str(e)))
        victim = oom_kill_victim(reader, oc.victim_pid)
        prefix = MEMCG_PREFIX if oc.memcg else OOM_PREFIX
        sections.append(Section("kill", format_kill_line(reader.info.eras.kill, victim,
                                                         prefix).splitlines()))
    return OomReportText(oc, sections, partial)


def nodemask_text(nodes: Optional[Sequence[int]]) -> str:
    """A nodemask as ``%*pbl`` prints it (``(null)`` for none)."""
    return "(null)" if nodes is None else bitmap_list(nodes)
