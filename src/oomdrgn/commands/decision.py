"""``tasks``, ``kill``, ``victim``, ``score`` and ``summary``: the table and the
decision, printed (the answers come from :mod:`oomdrgn.core.oom` and
:mod:`oomdrgn.core.decision`)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional, Sequence, TextIO, Tuple

from ..core.errors import EXIT_PARTIAL, EXIT_QUERY, OomdrgnError
from ..core.model import ReadFailure
from ..core.badness import LONG_MIN
from ..core.decision import (oom_badness, oom_score, oom_scores, oom_summary_line,
                       select_bad_process, totalpages)
from ..core.oom import (ReadError, Reader, TargetError, format_dump_tasks,
                  oom_kill_victim)
from ..core.formats import MEMCG_PREFIX, OOM_PREFIX, format_kill_line, format_row
from ..core.record import asdict
from .whatif import whatif_reader

__all__ = ["run_decision"]

# JSON row keys: the kernel's newest header names, in its order.
_ROW_KEYS = ("pid", "uid", "tgid", "total_vm", "rss", "rss_anon", "rss_file", "rss_shmem",
             "pgtables_bytes", "swapents", "oom_score_adj", "name")


def _kernel_json(reader: Reader) -> dict:
    info = reader.info
    return {"table_format": info.eras.table.name, "kill_format": info.eras.kill.name,
            "counter_rules": dict(info.rules), "counter_rule_evidence": dict(info.rule_evidence)}


def _badness_of(reader: Reader, rows, memcg) -> dict:
    pages = totalpages(reader, memcg)
    points = {}
    for r in rows:
        if isinstance(r, ReadFailure):
            continue
        task = reader.find_task(r.pid)
        try:
            value, _ = oom_badness(reader, task, pages) if task else (None, "")
        except ReadError:
            value = None
        points[r.pid] = None if value == LONG_MIN else value
    return points


def _with_badness(reader: Reader, rows, points) -> str:
    """The kernel's table with an oom_badness column before the name."""
    fmt = reader.info.eras.table
    text = format_dump_tasks(reader, []).replace(" name\n", f" {'badness':>12} name\n")
    for r in rows:
        if isinstance(r, ReadFailure):
            text += format_dump_tasks(reader, [r]).splitlines(True)[-1]
            continue
        line = format_row(fmt, r)
        head = line[:len(line) - len(r.name) - 1]
        value = points.get(r.pid)
        text += f"{head}{'-' if value is None else value:>12} {r.name}\n"
    return text


def _dump(doc, out: TextIO) -> None:
    json.dump(doc, out, indent=1)
    out.write("\n")


def _constraint(reader: Reader, memcg, current=None, victim=None):
    """The OOM in progress's constraint (cpuset, mempolicy), else all memory."""
    from ..core.oom_report import oom_control
    return oom_control(reader, memcg=memcg, current_pid=current, victim_pid=victim,
                       choose_victim=False).constraint


def _victim(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    # The OOM's constraint as the target shows it, then under the assumptions.
    constraint = _constraint(reader, args.memcg)
    reader, view = whatif_reader(reader, args)
    if view is not None:
        constraint = view.assumed_constraint(constraint, args.memcg)
    sel = select_bad_process(reader, args.memcg, args.sysrq, constraint)
    kill = None
    if view is not None and sel.chosen_pid is not None and sel.chosen_pid > 0:
        kill = format_kill_line(reader.info.eras.kill, oom_kill_victim(reader, sel.chosen_pid),
                                MEMCG_PREFIX if args.memcg else OOM_PREFIX)
    if args.json:
        doc = {"kernel": _kernel_json(reader), **asdict(sel)}
        if view is not None:
            doc.update(assumed=view.lines(args.memcg), kill_line=kill)
        _dump(doc, out)
        return 0
    if view is not None:
        out.writelines(line + "\n" for line in view.lines(args.memcg))
    scope = f"memcg {args.memcg}" if args.memcg else "global"
    if sel.chosen_pid == -1:
        out.write(f"select_bad_process ({scope}): aborted, an earlier OOM victim is still "
                  "exiting: no new victim\n")
    elif sel.chosen_pid is None:
        out.write(f"select_bad_process ({scope}): no eligible victim "
                  "(the kernel would panic: 'Out of memory and no killable processes')\n")
    else:
        name = next(c.name for c in sel.candidates if c.pid == sel.chosen_pid)
        out.write(f"victim: pid {sel.chosen_pid} ({name}) points {sel.chosen_points} "
                  f"totalpages {sel.totalpages} ({scope})\n")
    out.write(f"rule: {sel.rule}\n")
    if args.all or view is not None:
        ranked = sorted(enumerate(sel.candidates),
                        key=lambda ic: (ic[1].points is None,
                                        -(ic[1].points or 0), -ic[0]))
        out.write(f"{'rank':>4} {'pid':>7} {'points':>20} {'adj':>5}  verdict / name\n")
        for n, (_, c) in enumerate(ranked, 1):
            pts = "-" if c.points is None else str(c.points)
            out.write(f"{n:>4} {c.pid:>7} {pts:>20} {c.oom_score_adj:>5}  {c.verdict}: {c.name}\n")
    if kill is not None:
        out.write(kill)
    return 0


def _score(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    reader, view = whatif_reader(reader, args)
    scores: Sequence[Tuple[int, Optional[str], Optional[int]]]
    if args.pids:
        try:
            scores = [(pid, None, oom_score(reader, pid)) for pid in args.pids]
        except TargetError as e:
            raise OomdrgnError(str(e), EXIT_QUERY) from None
    else:
        scores = oom_scores(reader)
    if args.json:
        doc: Any = [{"pid": p, "oom_score": s} for p, _, s in scores]
        _dump(doc if view is None else {"assumed": view.lines(), "scores": doc}, out)
    else:
        if view is not None:
            out.writelines(line + "\n" for line in view.lines())
        for pid, name, score in scores:
            out.write(f"{pid:>7} {'?' if score is None else score:>5}"
                      f"{' ' + name if name else ''}\n")
    partial = any(s is None for _, _, s in scores)
    return EXIT_PARTIAL if partial else 0


def _summary(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    try:
        out.write(oom_summary_line(reader, args.pid, args.memcg, args.current,
                                   _constraint(reader, args.memcg, args.current, args.pid)))
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    return 0


def _kill(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    try:
        victim = oom_kill_victim(reader, args.pid)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    line = format_kill_line(reader.info.eras.kill, victim, MEMCG_PREFIX if args.memcg else OOM_PREFIX)
    if args.json:
        doc = {"kernel": _kernel_json(reader), "victim": asdict(victim), "line": line}
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        out.write(line)
    return 0


def run_decision(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    """Run ``tasks``, ``kill``, ``victim``, ``score`` or ``summary``."""
    from .tasks import run_tasks
    handler = {"tasks": run_tasks, "kill": _kill, "victim": _victim, "score": _score,
               "summary": _summary}[args.command]
    return handler(reader, args, out)
