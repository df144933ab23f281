"""Every number of one task's ``dump_tasks()`` row, kill line and badness, explained.

:func:`explain` turns :class:`~oomdrgn.core.explain_read.ExplainFacts` into a
plain JSON-able record (no reads): per column the kernel's expression for this
era and where it is, the raw fields with their addresses, what the kernel
prints (``printed``) and the exact value (per-CPU deltas or per-thread caches
included), their difference and the bound the kernel's batching allows; then
``oom_badness()``'s terms, the task's rank and what it would take to be
chosen. :func:`format_explain` renders it as text; :func:`explain_task` reads
and explains in one call.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .badness import LONG_MAX, LONG_MIN, badness_points
from .explain_read import (MM_NAMES, TASK_RSS_EVENTS_THRESH, ExplainFacts, RawField,
                           read_explain_facts)
from .formats import MEMCG_PREFIX, OOM_PREFIX, K, format_kill_line, format_row
from .mmcounters import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from .model import Candidate, Row, Victim
from .oom import oom_unkillable_task

__all__ = ["explain", "explain_task", "format_explain", "smallest_adj"]

_FILE = "mm/oom_kill.c"
_MM_H = "include/linux/mm.h"
_COLUMN_COUNTERS = {"rss_anon": (MM_ANONPAGES,), "rss_file": (MM_FILEPAGES,),
                    "rss_shmem": (MM_SHMEMPAGES,), "swapents": (MM_SWAPENTS,),
                    "rss": (MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES)}
_KILL_COUNTERS = {"anon-rss": MM_ANONPAGES, "file-rss": MM_FILEPAGES,
                  "shmem-rss": MM_SHMEMPAGES}


def _hex(address: int) -> str:
    # Strings: a 64-bit kernel address is not exact in a JavaScript number.
    return f"{address:#x}"


def _fields(raw: Sequence[RawField]) -> Dict[str, Dict[str, Any]]:
    return {f.name: {"address": _hex(f.address),
                     "value": _hex(f.value) if f.pointer and isinstance(f.value, int) else f.value}
            for f in raw}


# The counters --------------------------------------------------------------

def _getter(rule: str, sum_name: str = "get_mm_counter_sum") -> str:
    return sum_name if rule == "percpu-sum" else "get_mm_counter"


def _counter_expr(rule: str, member: str, mm: str = "mm") -> str:
    """``get_mm_counter(mm, M)`` of *rule*, with what it reads."""
    if rule == "atomic":
        return (f"get_mm_counter({mm}, {member}) = atomic_long_read(&{mm}->rss_stat.count"
                f"[{member}]), negative read as 0 (SPLIT_RSS_COUNTING)")
    if rule == "percpu-sum":
        return (f"get_mm_counter_sum({mm}, {member}) = percpu_counter_sum_positive("
                f"&{mm}->rss_stat[{member}]): count + every CPU's delta, negative read as 0")
    return (f"get_mm_counter({mm}, {member}) = percpu_counter_read_positive("
            f"&{mm}->rss_stat[{member}]): fbc->count only, negative read as 0")


def _printed(facts: ExplainFacts, i: int, rule: str) -> int:
    c = facts.mm.counters[i]
    value = c.count + (sum(c.percpu or ()) if rule == "percpu-sum" else 0)
    return value if value > 0 else 0


def _exact(facts: ExplainFacts, i: int) -> int:
    c = facts.mm.counters[i]
    if facts.info.counter_layout == "percpu":
        value = c.count + sum(c.percpu or ())
    else:
        value = c.count + sum(tc.counts[i] for tc in facts.caches)
    return value if value > 0 else 0


def _bound(facts: ExplainFacts, rule: str) -> Tuple[int, str]:
    """How far one counter's printed value may be from the exact one (pages)."""
    if rule == "percpu-sum":
        return 0, "the kernel sums every CPU's delta: printed is exact"
    if rule == "percpu-count":
        batch, n = facts.percpu_counter_batch or 0, len(facts.possible_cpus)
        return batch * n, (f"percpu_counter_batch {batch} x {n} possible CPUs (each CPU's "
                           "s32 delta stays below the batch: percpu_counter_add_batch())")
    if not facts.split_rss:
        return 0, "no per-thread caches (no SPLIT_RSS_COUNTING): printed is exact"
    n, around = len(facts.caches), facts.fault_around_pages
    faults = TASK_RSS_EVENTS_THRESH + 1
    return n * faults * around, (
        f"{n} thread(s) with this mm x {faults} page faults each before "
        f"sync_mm_rss() (TASK_RSS_EVENTS_THRESH {TASK_RSS_EVENTS_THRESH}, "
        f"check_sync_rss_stat()) x {around} pages per fault (fault-around"
        f"{'' if facts.fault_around_read else ', default'}; drivers' vm_insert_page() "
        "is not counted)")


def _counter_raw(facts: ExplainFacts, i: int) -> List[RawField]:
    raw = list(facts.counter_fields[i])
    if facts.info.counter_layout != "percpu":
        name = MM_NAMES[i]
        raw += [RawField(f"task({tc.pid})->rss_stat.count[{name}]", tc.addresses[i],
                         tc.counts[i]) for tc in facts.caches]
    return raw


def _counter_column(facts: ExplainFacts, members: Tuple[int, ...], rule: str, expression: str,
                    source: str, scale=lambda v: v) -> Dict[str, Any]:
    printed = sum(_printed(facts, i, rule) for i in members)
    exact = sum(_exact(facts, i) for i in members)
    bound, why = _bound(facts, rule)
    raw: List[RawField] = [facts.fields["task->mm"]]
    for i in members:
        raw += _counter_raw(facts, i)
    return {"printed": scale(printed), "exact": scale(exact),
            "difference": scale(exact) - scale(printed), "bound": scale(bound * len(members)),
            "bound_why": why if len(members) == 1 else f"{len(members)} counters, each: {why}",
            "expression": expression, "source": source, "fields": _fields(raw)}


def _plain(value: Any, expression: str, source: str, raw: Sequence[RawField]) -> Dict[str, Any]:
    return {"printed": value, "exact": value, "difference": 0, "bound": 0, "bound_why": "",
            "expression": expression, "source": source, "fields": _fields(raw)}


# The table row -------------------------------------------------------------

def _row_function(facts: ExplainFacts) -> str:
    # dump_task() since "mm, oom: refactor dump_tasks for memcg OOMs" (in v5.3,
    # hash not checked here); before, the loop of dump_tasks() printed the rows.
    return f"{_FILE} dump_task()" if facts.info.eras.table.name in ("T3", "T4") else \
        f"{_FILE} dump_tasks() (dump_task() since v5.3)"


def _row(facts: ExplainFacts) -> Row:
    rule, t, mm = facts.info.rules["table"], facts.task, facts.mm
    file, anon, swap, shmem = (_printed(facts, i, rule) for i in range(4))
    return Row(t.pid, t.uid, t.tgid, mm.total_vm, file + anon + shmem, anon, file, shmem,
               mm.pgtables_bytes or 0, swap, t.oom_score_adj, t.comm,
               mm.nr_ptes or 0, mm.nr_pmds or 0)


def _table_columns(facts: ExplainFacts) -> Dict[str, Dict[str, Any]]:
    info, t, f = facts.info, facts.task, facts.fields
    rule = info.rules["table"]
    src = _row_function(facts)
    rss_getter = "get_mm_rss_sum" if rule == "percpu-sum" else "get_mm_rss"
    get = _getter(rule)
    out: Dict[str, Dict[str, Any]] = {}
    for name in info.eras.table.columns:
        if name == "pid":
            out[name] = _plain(t.pid, "task->pid (the thread find_lock_task_mm(p) returned: "
                               "the first of p's threads that still has an mm)", src,
                               [f["task->pid"]])
        elif name == "uid":
            out[name] = _plain(t.uid, "from_kuid(&init_user_ns, task_uid(task)) = "
                               "task->real_cred->uid in the initial user namespace", src,
                               [f["task->real_cred"], f["cred->uid"]])
        elif name == "tgid":
            out[name] = _plain(t.tgid, "task->tgid", src, [f["task->tgid"]])
        elif name == "total_vm":
            out[name] = _plain(facts.mm.total_vm, "task->mm->total_vm (pages mapped)", src,
                               [f["task->mm"], f["mm->total_vm"]])
        elif name == "rss":
            out[name] = _counter_column(
                facts, _COLUMN_COUNTERS[name], rule,
                f"{rss_getter}(task->mm) = {get}(mm, MM_FILEPAGES) + {get}(mm, MM_ANONPAGES) "
                f"+ {get}(mm, MM_SHMEMPAGES); each {_counter_expr(rule, 'M')}",
                f"{src}; {rss_getter}() in {_MM_H}")
        elif name in _COLUMN_COUNTERS:
            (i,) = _COLUMN_COUNTERS[name]
            out[name] = _counter_column(facts, (i,), rule,
                                        _counter_expr(rule, MM_NAMES[i], "task->mm"),
                                        f"{src}; {get}() in {_MM_H}")
        elif name == "pgtables_bytes":
            out[name] = _plain(facts.mm.pgtables_bytes or 0,
                               "mm_pgtables_bytes(task->mm) = atomic_long_read(&mm->pgtables_bytes)",
                               f"{src}; mm_pgtables_bytes() in {_MM_H}",
                               [f["task->mm"], f["mm->pgtables_bytes"]])
        elif name == "nr_ptes":
            out[name] = _plain(facts.mm.nr_ptes or 0, "atomic_long_read(&task->mm->nr_ptes)",
                               src, [f["task->mm"], f["mm->nr_ptes"]])
        elif name == "nr_pmds":
            out[name] = _plain(facts.mm.nr_pmds or 0, "mm_nr_pmds(task->mm) = "
                               "atomic_long_read(&mm->nr_pmds) (0 where the PMD level is folded)",
                               f"{src}; mm_nr_pmds() in {_MM_H}",
                               [f["task->mm"]] + ([f["mm->nr_pmds"]] if "mm->nr_pmds" in f else []))
        elif name == "oom_score_adj":
            out[name] = _plain(t.oom_score_adj, "task->signal->oom_score_adj", src,
                               [f["task->signal"], f["signal->oom_score_adj"]])
        elif name == "name":
            out[name] = _plain(t.comm, "task->comm", src, [f["task->comm"]])
    return out


# The kill line -------------------------------------------------------------

def _kill_function(facts: ExplainFacts) -> str:
    # __oom_kill_process() since "mm, oom: refactor oom_kill_process()" (in
    # v4.20, hash not checked here); before, oom_kill_process() printed the line.
    return f"{_FILE} __oom_kill_process()" if facts.info.eras.kill.name in ("K3", "K4", "K5") \
        else f"{_FILE} __oom_kill_process() (oom_kill_process() before v4.20)"


def _kill_line(facts: ExplainFacts) -> Dict[str, Any]:
    info, t, f, mm = facts.info, facts.task, facts.fields, facts.mm
    rule, shift = info.rules["kill"], info.page_shift
    src = _kill_function(facts)
    k = f"K(x) = x << (PAGE_SHIFT-10), PAGE_SHIFT {shift}"
    message = MEMCG_PREFIX if facts.memcg else OOM_PREFIX
    cols: Dict[str, Dict[str, Any]] = {
        "pid": _plain(t.pid, "task_pid_nr(victim), victim = find_lock_task_mm(victim)",
                      src, [f["task->pid"]]),
        "comm": _plain(t.comm, "victim->comm", src, [f["task->comm"]]),
        "total-vm": _plain(K(mm.total_vm, shift), f"K(mm->total_vm); {k}", src,
                           [f["task->mm"], f["mm->total_vm"]]),
    }
    for label, i in _KILL_COUNTERS.items():
        cols[label] = _counter_column(
            facts, (i,), rule, f"K({_getter(rule)}(mm, {MM_NAMES[i]})); {k}; "
            + _counter_expr(rule, MM_NAMES[i]), f"{src}; {_getter(rule)}() in {_MM_H}",
            scale=lambda v: K(v, shift))
        cols[label]["unit"] = "kB"
    cols["UID"] = _plain(t.uid, "from_kuid(&init_user_ns, task_uid(victim))", src,
                         [f["task->real_cred"], f["cred->uid"]])
    pg = (mm.pgtables_bytes or 0) >> 10
    cols["pgtables"] = _plain(pg, "mm_pgtables_bytes(mm) >> 10", src,
                              [f["task->mm"], f["mm->pgtables_bytes"]] if "mm->pgtables_bytes" in f
                              else [f["task->mm"]])
    cols["oom_score_adj"] = _plain(t.oom_score_adj, "victim->signal->oom_score_adj", src,
                                   [f["task->signal"], f["signal->oom_score_adj"]])
    for c in cols.values():
        c.setdefault("unit", "kB" if c is cols["total-vm"] or c is cols["pgtables"] else "")
    shown = {"pid": "pid", "name": "comm", "total_vm_kb": "total-vm", "anon_rss_kb": "anon-rss",
             "file_rss_kb": "file-rss", "shmem_rss_kb": "shmem-rss", "uid": "UID",
             "pgtables_kb": "pgtables", "oom_score_adj": "oom_score_adj"}
    fmt = info.eras.kill
    victim = Victim(t.pid, t.comm, cols["total-vm"]["printed"], cols["anon-rss"]["printed"],
                    cols["file-rss"]["printed"], cols["shmem-rss"]["printed"], t.uid, pg,
                    t.oom_score_adj)
    return {"line": format_kill_line(fmt, victim, message).rstrip("\n"), "format": fmt.name,
            "message": message, "source": src, "counter_rule": rule,
            "columns": {shown[c]: cols[shown[c]] for c in fmt.columns}}


# Badness -------------------------------------------------------------------

def smallest_adj(base: int, needed: int, unit: int) -> Optional[int]:
    """The smallest ``oom_score_adj`` in [-999, 1000] for which
    ``base + adj * unit >= needed`` (-1000 makes a task ineligible); None if
    none does. *unit* is ``totalpages / 1000``."""
    if unit <= 0:
        return -999 if base >= needed else None
    adj = max(-999, -((base - needed) // unit))  # ceil((needed - base) / unit)
    return adj if adj <= 1000 else None


def _needed(cands: Sequence[Candidate], index: int) -> Optional[int]:
    """The fewest points candidate *index* needs to be chosen: ``select_bad_process()``
    skips only ``points < chosen_points``, so it must reach every earlier
    candidate's points and exceed every later one's. None: nobody else competes."""
    need: Optional[int] = None
    for j, c in enumerate(cands):
        if j == index or c.points is None:
            continue
        n = c.points if j < index else c.points + 1
        need = n if need is None else max(need, n)
    return need


def _badness(facts: ExplainFacts) -> Dict[str, Any]:
    info, t, mm, sel = facts.info, facts.task, facts.mm, facts.selection
    rule, era, shift = info.rules["badness"], info.badness_era, info.page_shift
    totalpages = sel.totalpages
    points, why = badness_points(t, mm, totalpages, rule, shift, era)
    none = LONG_MIN if era == "long" else 0
    if oom_unkillable_task(facts.leader):  # oom_badness()'s first test
        points, why = none, "init or kernel thread"
    get = _getter(rule)
    rss = sum(_printed(facts, i, rule) for i in (MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES))
    swap = _printed(facts, MM_SWAPENTS, rule)
    if mm.pgtables_bytes is not None:
        tables, tables_expr = mm.pgtables_bytes // (1 << shift), "mm_pgtables_bytes(p->mm) / PAGE_SIZE"
    else:
        tables, tables_expr = (mm.nr_ptes or 0) + (mm.nr_pmds or 0), \
            "atomic_long_read(&p->mm->nr_ptes) + mm_nr_pmds(p->mm)"
    unit = totalpages // 1000
    adj = t.oom_score_adj * unit
    rss_name = "get_mm_rss_sum" if rule == "percpu-sum" else "get_mm_rss"
    doc: Dict[str, Any] = {
        "function": f"{_FILE} oom_badness()",
        "expression": (f"points = {rss_name}(p->mm) + {get}(p->mm, MM_SWAPENTS) + "
                       f"{tables_expr}; adj *= totalpages / 1000; points += adj"),
        "returns": era if era == "long" else f"{era} (0: ineligible; else at least 1)",
        "counter_rule": rule,
        "ineligible": ("LONG_MIN" if era == "long" else "0") + " where oom_score_adj == "
                      "OOM_SCORE_ADJ_MIN (-1000), MMF_OOM_SKIP is set on the mm, or the task "
                      "is in_vfork(); init and kernel threads are never scanned",
        "terms": {"rss": rss, "swapents": swap, "pgtables": tables,
                  "oom_score_adj": t.oom_score_adj, "totalpages": totalpages,
                  "totalpages_per_1000": unit, "adj": adj},
        "points": None if points == none else points,
        "why_ineligible": why,
        "totalpages": totalpages,
        "scope": f"memcg {facts.memcg}" if facts.memcg else "global",
        "tie_rule": "an equal later task replaces the chosen one "
                    "(select_bad_process(): 'points < oc->chosen_points' skips only lower)",
    }
    cands = list(sel.candidates)
    index = next((k for k, c in enumerate(cands) if c.pid == t.tgid), None)
    if sel.chosen_pid == -1:
        doc["selection"] = "aborted: an earlier OOM victim is still exiting (no new victim)"
    doc["victim"] = None
    if sel.chosen_pid not in (None, -1):
        v = next(c for c in cands if c.pid == sel.chosen_pid)
        doc["victim"] = {"pid": v.pid, "comm": v.name, "points": v.points}
    if index is None:
        verdict = ("never scanned: init or a kernel thread (oom_unkillable_task())"
                   if oom_unkillable_task(facts.leader) else
                   f"not scanned: not in memcg {facts.memcg} (mem_cgroup_scan_tasks())"
                   if facts.memcg else "not scanned")
        doc.update(candidate=False, rank=None, candidates=len(cands), selection_points=None,
                   verdict=verdict)
        return doc
    me = cands[index]
    ranked = sorted(range(len(cands)), key=lambda k: (cands[k].points is None,
                                                       -(cands[k].points or 0), -k))
    doc.update(candidate=True, verdict=me.verdict, selection_points=me.points,
               candidates=len(cands), rank=ranked.index(index) + 1 if me.points is not None
               else None)
    base = rss + swap + tables
    need = _needed(cands, index)
    take: Dict[str, Any] = {"needed_points": need}
    if me.points == LONG_MAX:
        take["why"] = "oom_task_origin(): chosen at once"
    if why and why != "oom_score_adj is -1000":
        take.update(points_short=None, oom_score_adj=None,
                    why=f"ineligible whatever its oom_score_adj: {why}")
    elif need is None:
        take.update(points_short=0, oom_score_adj=-999,
                    why="no other eligible candidate")
    else:
        have = base + adj if points != none else None
        take["points_short"] = max(0, need - have) if have is not None else None
        take["oom_score_adj"] = smallest_adj(base, need, unit)
        if take["oom_score_adj"] is None:
            take["why"] = "even oom_score_adj 1000 would not be enough"
    doc["would_take"] = take
    return doc


# The whole record ----------------------------------------------------------

def explain(facts: ExplainFacts) -> Dict[str, Any]:
    """The explanation of one task (JSON-able): ``pid``, ``tgid``, ``comm``,
    ``rule``, ``columns`` (by the kernel's header names), ``row`` (the line),
    ``kill_line``, ``badness``."""
    info, t = facts.info, facts.task
    fmt = info.eras.table
    return {
        "pid": t.pid, "tgid": t.tgid, "comm": t.comm, "asked": facts.pid,
        "task": _hex(t.address), "mm": _hex(facts.mm.address),
        "rule": dict(info.rules),
        "rule_evidence": dict(info.rule_evidence),
        "page_shift": info.page_shift,
        "table_format": fmt.name,
        "row": format_row(fmt, _row(facts)).rstrip("\n"),
        "columns": _table_columns(facts),
        "kill_line": _kill_line(facts),
        "badness": _badness(facts),
        "possible_cpus": list(facts.possible_cpus),
        "percpu_counter_batch": facts.percpu_counter_batch,
        "thread_caches": [{"pid": tc.pid, "task": _hex(tc.address), "events": tc.events,
                           "counts": dict(zip(MM_NAMES, tc.counts))} for tc in facts.caches],
        "notes": list(facts.notes) + (
            ["oom_unkillable_task(): dump_tasks() prints no row for this task and it is never "
             "a victim; the values are what the kernel would print"]
            if oom_unkillable_task(facts.leader) else []),
    }


def explain_task(reader, pid: int, memcg: Optional[str] = None) -> Dict[str, Any]:
    """:func:`explain` of :func:`~oomdrgn.core.explain_read.read_explain_facts`."""
    return explain(read_explain_facts(reader, pid, memcg))


# Text ----------------------------------------------------------------------

def _block(name: str, col: Dict[str, Any]) -> List[str]:
    unit = f" {col['unit']}" if col.get("unit") else ""
    head = f"  {name}: printed {col['printed']}{unit}"
    if col["exact"] != col["printed"] or col["bound"]:
        head += (f", exact {col['exact']}{unit}, difference {col['difference']:+d}"
                 f" (bound {col['bound']}: {col['bound_why']})")
    lines = [head, f"    {col['expression']}", f"    in {col['source']}"]
    for fname, fv in col["fields"].items():
        lines.append(f"    {fname} @ {fv['address']} = {fv['value']}")
    return lines


def format_explain(doc: Dict[str, Any]) -> str:
    """:func:`explain`'s record as text: the row and kill line, a block per column,
    then the badness."""
    out = [f"explain: PID {doc['asked']} -> {doc['comm']} pid {doc['pid']} tgid {doc['tgid']} "
           f"(task {doc['task']}, mm {doc['mm']})",
           "counter rules: " + ", ".join(f"{k}={v}" for k, v in doc["rule"].items())]
    for note in doc["notes"]:
        out.append(f"note: {note}")
    out += ["", f"dump_tasks() row (table {doc['table_format']}):", doc["row"]]
    for name, col in doc["columns"].items():
        out += _block(name, col)
    kl = doc["kill_line"]
    out += ["", f"kill line (format {kl['format']}, {kl['source']}):", kl["line"]]
    for name, col in kl["columns"].items():
        out += _block(name, col)
    b = doc["badness"]
    terms = b["terms"]
    out += ["", f"badness ({b['function']}, returns {b['returns']}, {b['scope']}):",
            f"  {b['expression']}",
            f"  = {terms['rss']} rss + {terms['swapents']} swapents + {terms['pgtables']} "
            f"pgtables + {terms['oom_score_adj']} x ({terms['totalpages']} / 1000 = "
            f"{terms['totalpages_per_1000']}) = "
            + ("ineligible: " + b["why_ineligible"] if b["points"] is None else str(b["points"])),
            f"  ineligible: {b['ineligible']}"]
    v = b["victim"]
    if "selection" in b:
        out.append(f"  {b['selection']}")
    if not b["candidate"]:
        out.append(f"  {b['verdict']}")
    else:
        rank = "-" if b["rank"] is None else f"{b['rank']} of {b['candidates']}"
        out.append(f"  rank {rank}: {b['verdict']}")
        if v is not None and v["pid"] != doc["tgid"]:
            out.append(f"  victim: {v['pid']} ({v['comm']}) with {v['points']} points")
            take = b["would_take"]
            if take.get("points_short") is not None:
                out.append(f"  would need {take['needed_points']} points: "
                           f"{take['points_short']} short")
            if take.get("oom_score_adj") is not None:
                out.append(f"  the smallest oom_score_adj that makes it the victim: "
                           f"{take['oom_score_adj']}")
            if take.get("why"):
                out.append(f"  {take['why']}")
        elif v is not None and b["would_take"].get("oom_score_adj") is not None:
            out.append(f"  it stays the victim down to oom_score_adj "
                       f"{b['would_take']['oom_score_adj']} (it needs "
                       f"{b['would_take']['needed_points']} points)")
        out.append(f"  ties: {b['tie_rule']}")
    return "\n".join(out) + "\n"
