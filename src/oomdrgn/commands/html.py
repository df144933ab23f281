"""The ``html`` subcommand and ``parse --html``: one self-contained HTML page of an OOM.

The page's records are filled from the functions the text commands print from
(``oom-report``'s :func:`~oomdrgn.core.oom_report.oom_control` and
:func:`~oomdrgn.core.oom_report.oom_report`, ``tasks``' ``dump_tasks()``,
``victim --all``'s :func:`~oomdrgn.core.decision.select_bad_process`,
``report``'s and ``parse``'s comparisons), never recomputed here;
:func:`oomdrgn.core.htmlpage.render_page` lays them out.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple, Union

from ..core.errors import EXIT_PARTIAL, EXIT_QUERY, EXIT_TARGET, OomdrgnError, ReadError, TargetError
from ..core.htmlpage.memory import UNLIMITED_KB
from ..core.htmlpage import LoggedReport, MemcgNode, MemoryView, Page, TaskTable, View, render_page
from ..core.logparse import OomReport, parse_lines, parse_log
from ..core.model import ReadFailure, Row, Selection

__all__ = ["run_html", "target_page", "log_page",
           "write_page", "command_line"]



def command_line(args: argparse.Namespace) -> str:
    """The command that made the page: the face's own (``args.command_line``), else
    this process's arguments."""
    given = getattr(args, "command_line", None)
    if given:
        return given
    return shlex.join(["oomdrgn"] + sys.argv[1:])


def write_page(page: Page, path: str, out: TextIO) -> None:
    text = render_page(page)
    if path == "-":
        out.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise OomdrgnError(f"{path}: {e.strerror}", EXIT_TARGET) from None


# -- the task table -------------------------------------------------------------------

def _rank(sel: Selection) -> Dict[int, Tuple[int, Optional[int], str]]:
    """pid -> (rank, points, verdict), ranked as ``victim --all`` prints them."""
    ranked = sorted(enumerate(sel.candidates),
                    key=lambda ic: (ic[1].points is None, -(ic[1].points or 0), -ic[0]))
    return {c.pid: (n, c.points, c.verdict) for n, (_, c) in enumerate(ranked, 1)}


def _row_dict(columns: Sequence[str], row: Union[Row, ReadFailure]) -> Dict[str, Any]:
    if isinstance(row, ReadFailure):
        return {"pid": row.pid, "unreadable": row.reason}
    return {c: getattr(row, c) for c in columns}


def task_table(columns: Sequence[str], rows: Sequence[Union[Row, ReadFailure]], era: str,
               text: str, sel: Optional[Selection], victim: Optional[int],
               victim_why: str, note: str = "") -> TaskTable:
    """The table's records; *sel*'s candidates are processes (leaders): a row is
    theirs by its tgid (the row itself may be the thread that has the mm)."""
    ranks = _rank(sel) if sel is not None else {}
    out = []
    for r in rows:
        d = _row_dict(columns, r)
        if isinstance(r, Row):
            d["tgid"] = r.tgid
            rank = ranks.get(r.tgid)
            d["rank"], d["badness"], d["verdict"] = rank if rank else (None, None, "")
            if rank is None and sel is not None:
                d["verdict"] = "not a candidate"
        out.append(d)
    return TaskTable(columns=tuple(columns), rows=out, victim_pid=victim, victim_why=victim_why,
                     era=era, text=text, note=note)


# -- a target --------------------------------------------------------------------------

#: Rows explained on a page at most (the victim first, then by rank).
EXPLAINED_ROWS = 200
#: ``explain`` walks every thread of the target for each task it explains (the
#: per-thread RSS caches sharing the mm): rows explained x processes is kept under
#: this (~2 s here), so a 10,000-process page explains the victim and one more.
EXPLAIN_BUDGET = 20_000


def _explain(reader, table: TaskTable, memcg: Optional[str], sel: Selection) -> str:
    """Fill *table*'s explain slot with ``explain PID``'s text for the rows that
    matter most; returns what was left out, for the page."""
    try:
        from ..core.explain import explain, format_explain
        from ..core.explain_read import read_explain_facts
    except ImportError as e:  # explain is not in this build
        return f"explain: not available ({e})"
    rows = [r for r in table.rows if "unreadable" not in r]
    rows.sort(key=lambda r: (r.get("pid") != table.victim_pid and r.get("tgid") != table.victim_pid,
                             r.get("rank") is None, r.get("rank") or 0))
    limit = max(1, min(EXPLAINED_ROWS, EXPLAIN_BUDGET // max(len(table.rows), 1)))
    for r in rows[:limit]:
        try:
            doc = explain(read_explain_facts(reader, r["pid"], memcg, selection=sel))
            table.explain[r["pid"]] = format_explain(doc)
        except (TargetError, ReadError, LookupError, ValueError) as e:
            table.explain[r["pid"]] = f"explain {r['pid']}: {e}"
    left = len(rows) - min(len(rows), limit)
    return (f"explain: on this page for the victim and the {limit - 1} highest-ranked rows "
            f"only ({left} rows without; `oomdrgn explain PID` gives any)") if left else ""


def _kernel_facts(reader, report_sections, oc) -> List[Tuple[str, str]]:
    from ..core.dump_stack import utsname
    info = reader.info
    facts: List[Tuple[str, str]] = []
    try:
        release, version = utsname(reader)
        facts.append(("kernel", f"{release} {version}"))
    except (ReadError, LookupError, TargetError):
        facts.append(("kernel", "release unreadable"))
    facts += [("architecture", info.arch), ("page size", f"{1 << info.page_shift} bytes"),
              ("table format", info.eras.table.name), ("kill line format", info.eras.kill.name),
              ("formats found", info.eras.evidence),
              ("counter layout", info.counter_layout), ("oom_badness() era", info.badness_era)]
    facts += [(f"counter rule: {c}", f"{info.rules[c]} ({info.rule_evidence[c]})")
              for c in info.rules]
    sources = getattr(reader, "sources", None)
    if sources:
        facts.append(("types and symbols", sources))
    for s in report_sections:
        if s.note and s.name in ("show_mem", "memcg", "frames"):
            facts.append((f"{s.name} formats" if s.name != "frames" else "frames", s.note))
    facts += [(f"oom_control: {k}", v) for k, v in oc.sources.items()]
    return facts


def _memcg_nodes(reader, page_victims: bool = True) -> Tuple[List[MemcgNode], str]:
    from ..core.decision import select_bad_process
    from ..core.memcg_meminfo import mem_cgroup_print_oom_meminfo
    from ..core.memcg_tree import memcg_tree
    try:
        tree = memcg_tree(reader)
    except (ReadError, LookupError) as e:
        return [], f"memory cgroups unreadable: {e}"
    nodes = []
    for path, depth in tree:
        node = MemcgNode(path, depth)
        try:
            values = mem_cgroup_print_oom_meminfo(reader, path).values
            mem = values.get("memory")
            if isinstance(mem, dict):
                node.usage_kb, node.limit_kb = mem["usage_kb"], mem["limit_kb"]
            swap = values.get("swap") or values.get("memory+swap")
            node.swap = swap if isinstance(swap, dict) else None
            node.tasks = sum(1 for _ in reader.memcg_scan_tasks(path))
            if path == "/":
                node.note = "the root: no memcg OOM of its own (the global victim is above)"
            elif node.limit_kb is None or node.limit_kb >= UNLIMITED_KB:
                node.note = "no limit: no memcg OOM of its own (an ancestor's limit applies)"
            elif page_victims:
                sel = select_bad_process(reader, path, fates=False)
                if sel.chosen_pid == -1:
                    node.note = "an earlier victim is still exiting: no new kill"
                elif sel.chosen_pid is not None:
                    t = reader.find_task(sel.chosen_pid)
                    name = reader.task(t).comm if t is not None else "?"
                    node.victim = (sel.chosen_pid, name, sel.chosen_points)
                else:
                    node.note = "no eligible process"
        except (TargetError, ReadError, LookupError) as e:
            node.note = f"unreadable: {e}"
        nodes.append(node)
    return nodes, ("Usage and limit as the memcg part of an OOM report prints them "
                   "(mem_cgroup_print_oom_meminfo()); the would-be victim as `victim --memcg "
                   "PATH` answers (select_bad_process() over mem_cgroup_scan_tasks()); "
                   "processes: the subtree's.")


def _logged_reports(reader) -> Tuple[List[LoggedReport], str]:
    from ..core.logged_memory import compare_logged_memory, logged_parts
    from ..core.oom import dump_tasks
    from .reports import _compare, describe_report
    try:
        log = reader.log_lines()
    except (ReadError, LookupError) as e:
        return [], f"the kernel log is unreadable: {e}"
    reports = parse_lines(log)
    if not reports:
        return [], "no OOM report in the target's kernel log"
    current = dump_tasks(reader)
    out = []
    for i, report in enumerate(reports, 1):
        lr = LoggedReport(i, f"report {i}", describe_report(i, report).splitlines(True))
        cmp = _compare(reader, report, current)
        if cmp is not None:
            from ..core.logcompare import format_comparison
            details = {(r.pid, r.status): line for r, line in
                       zip(cmp.rows, format_comparison(cmp).splitlines()[1 if cmp.note else 0:])}
            lr.rows = [{"status": r.status, "pid": r.pid, "name": r.name,
                        "detail": details.get((r.pid, r.status), "").partition(": ")[2]}
                       for r in cmp.rows]
            lr.rows_note = cmp.note or ""
        else:
            lr.rows_note = "no task table in this report: nothing to compare"
        memory = compare_logged_memory(reader, report, logged_parts(log, report))
        if memory is not None:
            lr.memory = {part: [(c.verdict, c.logged, c.now,
                                 ", ".join([str(m) for m in c.moved] + c.notes))
                                for c in comps] for part, comps in memory.parts.items()}
            lr.memory_note = memory.note
        out.append(lr)
    return out, ("Each OOM report of the printk ring beside memory now, as `report` prints "
                 "it: rows same/changed/gone/new, memory lines same/moved.")


def target_page(reader, memcg: Optional[str] = None, command: str = "",
                source: str = "the target") -> Page:
    """The page of a target (vmcore, live kernel, QEMU guest, RAM images)."""
    from ..core.decision import memcg_dump_tasks, select_bad_process
    from ..core.oom import dump_tasks, format_dump_tasks
    from ..core.oom_report import oom_control, oom_report
    oc = oom_control(reader, memcg=memcg)
    report = oom_report(reader, oc)
    sections = {s.name: s for s in report.sections}
    rows = memcg_dump_tasks(reader, oc.memcg) if oc.memcg else dump_tasks(reader)
    sel = select_bad_process(reader, oc.memcg, oc.order == -1, oc.constraint)
    page_kb = 1 << (reader.info.page_shift - 10)
    memory = None
    if "show_mem" in sections:
        s = sections["show_mem"]
        memory = MemoryView(show_mem=s.values, page_kb=page_kb, lines=s.lines, note=s.note)
    elif "memcg" in sections:
        s = sections["memcg"]
        memory = MemoryView(memcg=s.values, page_kb=page_kb, lines=s.lines, note=s.note)
    fmt = reader.info.eras.table
    why = oc.sources.get("victim", "")
    tasks = task_table(fmt.columns, rows, fmt.name, format_dump_tasks(reader, rows), sel,
                       oc.victim_pid, f"({why})",
                       note=f"badness: oom_badness() over totalpages {sel.totalpages}; "
                            f"rule: {sel.rule}.")
    lines: List[Tuple[str, str]] = [(name, line) for name in ("invoked", "dump_stack", "protection", "summary", "kill")
             if name in sections for line in sections[name].lines
             if line.strip() not in ("Call Trace:", "Call trace:", "<TASK>")]
    if oc.current is None:
        title = "Memory now (no OOM in progress)"
    else:
        title = f"The OOM in progress ({'memcg ' + oc.memcg if oc.memcg else 'global'})"
    view = View(title, memory, tasks, lines)
    if oc.memcg:
        view.notes.append(f"memcg OOM in {oc.memcg}: the table lists the memcg's processes "
                          "(mem_cgroup_scan_tasks() order)")
    memcgs, memcgs_note = _memcg_nodes(reader)
    reports, reports_note = _logged_reports(reader)
    missing = []
    left = _explain(reader, tasks, oc.memcg, sel)
    if left:
        missing.append(left)
    if "frames" in sections:
        missing.append("the frames dump_stack() printed: the ones in the dump are the task's "
                       "stack now (see the kernel section)")
    return Page(title="oomdrgn: " + title, command=command, source=source,
                kernel=_kernel_facts(reader, report.sections, oc), views=[view],
                memcgs=memcgs, memcgs_note=memcgs_note, reports=reports,
                reports_note=reports_note, missing=missing)


# -- a log ------------------------------------------------------------------------------

def _page_kb(values: dict) -> int:
    """The page size from the log: the buddy lines' first block is one page."""
    for b in values.get("other", {}).get("buddy", {}).values():
        first = next(iter(b["blocks"]), None)
        if first:
            return int(first[:-2])
    return 4


def _log_view(index: int, report: OomReport, lines: List[str]) -> View:
    from ..core.logged_memory import logged_parts
    from ..core.meminfo_parse import parse_memcg, parse_show_mem
    from .reports import describe_report, rerender
    parts = logged_parts(lines, report)
    memory = None
    if parts.get("show_mem"):
        parsed = parse_show_mem(parts["show_mem"])
        if parsed is not None:
            memory = MemoryView(show_mem=parsed.values, logged=True, page_kb=_page_kb(parsed.values),
                                lines=parts["show_mem"],
                                note=f"Mem-Info read with the formats of {parsed.era}")
    if parts.get("memcg"):
        m = parse_memcg(parts["memcg"])
        values: Dict[str, Any] = dict(m.counters)
        values.update(memcg=m.path or "?", stats=m.stats)
        memory = memory or MemoryView(logged=True)
        memory.memcg = values
        memory.lines = memory.lines + parts["memcg"]
    t = report.table
    tasks = None
    if t is not None:
        again = rerender(report)
        bad = again["table_mismatches"]
        victim = report.victim_pid
        kill_pid = report.kill.victim.pid if report.kill is not None else None
        tasks = task_table(t.format.columns, t.rows, t.era, again["table"] or "", None,
                           kill_pid if kill_pid is not None else victim,
                           "(the log's kill line)" if kill_pid is not None else
                           "(the log's summary)",
                           note=("badness: not in the log. Re-rendered with oomdrgn's formats: "
                                 + ("identical to the log's rows." if not bad else
                                    f"DIFFERS at log lines {bad}.")))
        for row in tasks.rows:
            row["verdict"] = "victim" if row.get("pid") == tasks.victim_pid or (
                report.summary is not None and row.get("tgid") == report.summary.pid) else ""
    view_lines = []
    if report.invoked is not None:
        view_lines.append(("invoked", report.invoked.line.text))
    view_lines += [("protection", line) for line in parts.get("protection", [])]
    if report.summary is not None:
        view_lines.append(("summary", report.summary.text))
    if report.kill is not None:
        view_lines.append(("kill", report.kill.line.text))
    for r in report.reaped:
        view_lines.append(("oom_reaper", r.line.text))
    if report.panic is not None:
        view_lines.append(("panic", report.panic.text))
    view = View(describe_report(index, report).splitlines()[0], memory, tasks, view_lines)
    view.notes = [line.strip() for line in describe_report(index, report).splitlines()[1:]]
    return view


def log_page(text: str, path: str, command: str) -> Page:
    """The page of a kernel log file: what its reports printed, nothing more."""
    reports = parse_log(text)
    if not reports:
        raise OomdrgnError(f"{path}: no OOM report found", EXIT_QUERY)
    lines = text.split("\n")
    views = [_log_view(i, r, lines) for i, r in enumerate(reports, 1)]
    eras = sorted({r.table.era for r in reports if r.table is not None})
    kills = sorted({r.kill.era for r in reports if r.kill is not None})
    mem = sorted({v.memory.note for v in views if v.memory is not None and v.memory.note})
    kernel = [("table formats", ", ".join(eras) or "none"),
              ("kill line formats", ", ".join(kills) or "none")]
    kernel += [("Mem-Info", m) for m in mem]
    return Page(title=f"oomdrgn: {os.path.basename(path)}: {len(reports)} OOM report(s)",
                command=command, source=f"the log {path}", kernel=kernel, views=views,
                missing=["badness points, ranks and memcg trees: a log does not print them "
                         "(open a dump of the same moment with `oomdrgn html`)",
                         "explain: not yet on this page"])


# -- the subcommand ---------------------------------------------------------------------

def _source(args: argparse.Namespace) -> str:
    """The target as the command line named it."""
    if getattr(args, "core", None):
        return "the dump " + ", ".join(args.core)
    if getattr(args, "qemu", None):
        return f"the QEMU guest at {args.qemu}"
    if getattr(args, "kernel", False):
        return "the running kernel (/proc/kcore)"
    return "the target"


def run_html(reader, args: argparse.Namespace, out: TextIO) -> int:
    """Write the page of *reader*'s target to ``args.output``."""
    page = target_page(reader, getattr(args, "memcg", None), command_line(args),
                       source=_source(args))
    write_page(page, args.output, out)
    if args.output != "-":
        out.write(f"html: wrote {args.output}\n")
    partial = any("unreadable" in r for v in page.views if v.tasks for r in v.tasks.rows)
    return EXIT_PARTIAL if partial else 0
