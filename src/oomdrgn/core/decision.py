"""The OOM killer's decision, asked of any backend: badness, victim, oom_score,
the memcg-scoped table and the ``oom-kill:`` summary line.

Mirrors ``oom_evaluate_task()``, ``select_bad_process()``, ``oom_badness()``,
``proc_oom_score()``, ``mem_cgroup_scan_tasks()`` and ``dump_oom_summary()``.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple, Union

from .badness import (LONG_MAX, LONG_MIN, MMF_OOM_SKIP, badness_points, global_totalpages,
                      memcg_totalpages, proc_oom_score)
from .constraint import Constraint, cpuset_filter
from .model import Candidate, ReadFailure, Row, Selection
from .oom import (ReadError, Reader, TargetError, _needs_percpu, dump_tasks, find_lock_task_mm,
                  oom_unkillable_task)
from .formats import format_summary

__all__ = ["totalpages", "oom_badness", "select_bad_process", "oom_score", "oom_scores",
           "memcg_dump_tasks", "oom_summary_line"]


def totalpages(reader: Reader, memcg: Optional[str] = None) -> int:
    """``oc->totalpages``: RAM + swap, or ``mem_cgroup_get_max() ?: 1`` for a memcg OOM."""
    totals = reader.vm_totals()
    if memcg:
        return memcg_totalpages(reader.memcg(memcg), totals)
    return global_totalpages(totals)


def oom_badness(reader: Reader, task: int, pages: int) -> Tuple[int, str]:
    """``oom_badness(p, totalpages)``: (points, why ineligible or "")."""
    info = reader.info
    none = LONG_MIN if info.badness_era == "long" else 0
    rec = reader.task(task)
    if oom_unkillable_task(rec):
        return none, "init or kernel thread"
    t = find_lock_task_mm(reader, task)
    if t is None:
        return none, "no mm (exited)"
    mm = reader.mm(t.mm, _needs_percpu(reader, "badness"))
    return badness_points(t, mm, pages, info.rules["badness"], info.page_shift,
                          info.badness_era)


def _scan(reader: Reader, memcg: Optional[str]) -> Iterator[int]:
    return reader.memcg_scan_tasks(memcg) if memcg else reader.processes()


def select_bad_process(reader: Reader, memcg: Optional[str] = None,
                       sysrq: bool = False, constraint: Optional[Constraint] = None,
                       fates: bool = True) -> Selection:
    """The victim ``select_bad_process()`` would choose, and every candidate's fate.

    :param memcg: cgroup path of a memcg OOM (``mem_cgroup_scan_tasks`` order)
    :param sysrq: a sysrq-forced OOM (existing victims do not abort the scan)
    :param constraint: the OOM's :func:`~oomdrgn.core.constraint.constrained_alloc`
        (its ``totalpages``, and ``oom_cpuset_eligible()`` of each task); None:
        all memory, every task eligible (a single-node machine's answer)
    :param fates: keep every candidate's fate (``candidates``); False: the
        victim alone (10,000+ records not made)
    """
    info = reader.info
    pages = constraint.totalpages if constraint is not None else totalpages(reader, memcg)
    long_era = info.badness_era == "long"
    none = LONG_MIN if long_era else 0
    chosen: Optional[int] = None
    chosen_points = none
    cands: List[Candidate] = []
    add = cands.append if fates else (lambda c: None)
    # Once per scan, not per task (the loop runs 10,000+ times).
    percpu = _needs_percpu(reader, "badness")
    rule, page_shift, era = info.rules["badness"], info.page_shift, info.badness_era
    # oom_cpuset_eligible(), made once per scan (None: every task eligible).
    eligible = cpuset_filter(reader, constraint) if constraint is not None and not memcg \
        else None
    task, mm = reader.task, reader.mm
    known = getattr(reader, "task_mm_memo", None) or {}  # find_lock_task_mm() answers
    for p in _scan(reader, memcg):
        try:
            rec = task(p)
        except ReadError as e:
            add(Candidate(reader.task_pid(p), "?", None, f"skipped: unreadable ({e})"))
            continue
        if oom_unkillable_task(rec):
            continue  # not listed: init and kernel threads are never candidates
        if eligible is not None and not eligible(p):
            add(Candidate(rec.pid, rec.comm, None, "skipped: shares no memory node "
                          "with the OOM (oom_cpuset_eligible)", rec.oom_score_adj))
            continue
        if not sysrq and rec.oom_mm:
            # tsk_is_oom_victim(): a victim is still exiting; unless its mm is
            # already reaped (MMF_OOM_SKIP), the scan is aborted.
            try:
                skip = (mm(rec.oom_mm, False).flags >> MMF_OOM_SKIP) & 1
            except ReadError:
                skip = 0
            if skip:
                add(Candidate(rec.pid, rec.comm, None,
                              "skipped: earlier OOM victim, mm already reaped",
                              rec.oom_score_adj))
                continue
            add(Candidate(rec.pid, rec.comm, None,
                          "abort: earlier OOM victim still exiting, no new kill",
                          rec.oom_score_adj))
            return Selection(-1, None, pages, tuple(cands), _rule_text(info))
        if rec.oom_flag_origin:
            points, why = LONG_MAX, ""
            verdict = "candidate (oom_task_origin: selected at once)"
        else:
            # oom_badness(p, totalpages), the task's record already in hand.
            try:
                t = known[p] if p in known else find_lock_task_mm(reader, p, rec)
                if t is None:
                    points, why = none, "no mm (exited)"
                else:
                    points, why = badness_points(t, mm(t.mm, percpu), pages, rule,
                                                 page_shift, era)
            except ReadError as e:
                add(Candidate(rec.pid, rec.comm, None, f"skipped: unreadable ({e})",
                              rec.oom_score_adj))
                continue
            verdict = "candidate"
        if points == none:  # LONG_MIN (long era), 0 (unsigned long era): ineligible
            add(Candidate(rec.pid, rec.comm, None, f"skipped: {why}", rec.oom_score_adj))
            continue
        if fates:
            add(Candidate(rec.pid, rec.comm, points, verdict, rec.oom_score_adj))
        # "if (points == LONG_MIN || points < oc->chosen_points) goto next;":
        # an equal later task replaces the chosen one.
        if points < chosen_points:
            continue
        chosen, chosen_points = rec.pid, points
    for c in cands:
        if c.pid == chosen and c.verdict.startswith("candidate"):
            c.verdict = "chosen"
    return Selection(chosen, chosen_points if chosen is not None else None, pages, tuple(cands),
                     _rule_text(info))


def _rule_text(info) -> str:
    era = ("oom_badness returns long: LONG_MIN ineligible, later equal task wins"
           if info.badness_era == "long" else
           "oom_badness returns unsigned long: 0 ineligible, minimum 1, later equal task wins")
    return f"{era}; counters {info.rules['badness']}"


def oom_score(reader: Reader, pid: int) -> int:
    """``/proc/PID/oom_score`` as ``proc_oom_score()`` computes it."""
    task = reader.find_task(pid)
    if task is None:
        raise TargetError(f"no task with PID {pid}")
    pages = totalpages(reader)
    points, _ = oom_badness(reader, task, pages)
    return proc_oom_score(points, pages, reader.info.badness_era)


def oom_scores(reader: Reader) -> List[Tuple[int, str, Optional[int]]]:
    """(pid, comm, oom_score) of every thread group leader, task-list order;
    None where unreadable. Kernel threads score 0, as /proc shows them."""
    pages = totalpages(reader)
    out: List[Tuple[int, str, Optional[int]]] = []
    for p in reader.processes():
        try:
            rec = reader.task(p)
            points, _ = oom_badness(reader, p, pages)
            out.append((rec.pid, rec.comm, proc_oom_score(points, pages, reader.info.badness_era)))
        except ReadError:
            out.append((reader.task_pid(p), "?", None))
    return out


def memcg_dump_tasks(reader: Reader, memcg: str) -> List[Union[Row, ReadFailure]]:
    """``dump_tasks()`` of a memcg OOM: ``mem_cgroup_scan_tasks()`` order."""
    return dump_tasks(reader, reader.memcg_scan_tasks(memcg))


def oom_summary_line(reader: Reader, pid: int, memcg: Optional[str] = None,
                     current: Optional[int] = None,
                     constraint: Optional[Constraint] = None) -> str:
    """The ``oom-kill:constraint=...`` line ``dump_oom_summary()`` prints for victim *pid*.

    :param current: PID of the task that hit the OOM (default: found on the
        panicking or only busy CPU)
    """
    victim = reader.find_task(pid)
    if victim is None:
        raise TargetError(f"no task with PID {pid}")
    if current is None:
        cur = reader.current_task()
        if cur is None:
            raise TargetError("cannot tell which task hit the OOM: give --current PID")
    else:
        cur = reader.find_task(current)
        if cur is None:
            raise TargetError(f"no task with PID {current}")
    v = reader.task(victim)
    cpuset = reader.cgroup_name(cur, "cpuset")
    if constraint is not None:
        name, nodemask = constraint.name, constraint.nodemask
    else:
        name, nodemask = ("CONSTRAINT_MEMCG" if memcg else "CONSTRAINT_NONE"), None
    return format_summary(
        constraint=name, nodemask=nodemask,
        cpuset=cpuset, mems_allowed=reader.mems_allowed(cur) if cpuset is not None else None,
        oom_memcg=_norm(memcg) if memcg else None,
        task_memcg=reader.cgroup_path(victim, "memory"),
        comm=v.comm, pid=v.pid, uid=v.uid)


def _norm(path: str) -> str:
    return "/" + path.strip("/")
