"""The ``report`` and ``parse`` subcommands: OOM reports read back from kernel logs.

* ``report``: every OOM report in the target's printk buffer, its table set
  beside the rows :func:`oomdrgn.core.oom.dump_tasks` recomputes now from memory.
* ``parse FILE``: a plain dmesg/journal text file, no target: per report the
  invoking task, table era, rows, victim, and the table and kill line
  re-rendered with oomdrgn's own formats (they must equal the log's lines).

Argument parsing and printing only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional, TextIO, cast

from ..core.eras import kill_format
from ..core.errors import EXIT_PARTIAL, EXIT_PERMISSION, EXIT_QUERY, EXIT_TARGET, EXIT_USAGE, OomdrgnError
from ..core.logparse import LogLine, OomReport, parse_lines, parse_log, report_as_dict
from ..core.logcompare import compare_report, comparison_as_dict, format_comparison, oom_memcg
from ..core.logged_memory import compare_logged_memory, logged_parts
from ..core.meminfo_parse import parse_memcg, parse_show_mem
from ..core.model import ReadFailure
from ..core.formats import format_kill_line, format_row, format_table
from ..core.record import asdict

__all__ = ["run_report", "rerender",
           "describe_report"]



# -- re-rendering ------------------------------------------------------------------

def rerender(report: OomReport) -> dict:
    """The report's table and kill line printed again with oomdrgn's formats.

    Returns ``table`` (text or None), ``table_mismatches`` (log line numbers
    whose row prints differently), ``kill`` and ``kill_identical``.
    """
    out: dict = {"table": None, "table_mismatches": [], "kill": None, "kill_identical": None}
    t = report.table
    if t is not None:
        fmt = t.format
        out["table"] = format_table(fmt, t.rows)
        out["table_mismatches"] = [line.number for row, line in zip(t.rows, t.row_lines)
                                   if format_row(fmt, row) != line.text + "\n"]
    k = report.kill
    if k is not None:
        kfmt = kill_format(k.era)
        # (k.message is None only on a prefixed era's line that lost its prefix.)
        line = format_kill_line(kfmt, k.victim, cast(str, k.message)) if kfmt.prefixed \
            else format_kill_line(kfmt, k.victim)
        out["kill"] = line
        out["kill_identical"] = line == k.line.text + "\n"
    return out


# -- text ---------------------------------------------------------------------------

def _first_line(report: OomReport) -> Optional[LogLine]:
    t, s = report.table, report.summary
    candidates = [report.invoked and report.invoked.line, t and (t.title or t.header),
                  s and s.lines[0], report.sacrifice and report.sacrifice.line,
                  report.kill and report.kill.line, report.reaped and report.reaped[0].line]
    return next((line for line in candidates if line), None)


def _when(report: OomReport) -> str:
    line = _first_line(report)
    return f" {line.prefix.strip()}" if line is not None and line.prefix.strip() else ""


def describe_report(index: int, report: OomReport) -> str:
    """A readable summary of one parsed report."""
    path = (report.summary and report.summary.oom_memcg) or report.memcg_path
    kind = ("memcg OOM" + (f" ({path})" if path else "")) if report.memcg else "global OOM"
    out = [f"report {index}: log lines {report.first_line}-{report.last_line}{_when(report)}, {kind}\n"]
    inv = report.invoked
    if inv is not None:
        gfp = f"{inv.gfp_mask:#x}" + (f"({inv.gfp_flags})" if inv.gfp_flags is not None else "")
        out.append(f"  invoked by: {inv.comm} (gfp_mask={gfp}, order={inv.order}, "
                   f"oom_score_adj={inv.oom_score_adj})\n")
    else:
        out.append("  invoked by: (first line not in the log)\n")
    t = report.table
    out.append(f"  table: {t.era}, {len(t.rows)} rows\n" if t else "  table: none in the log\n")
    s = report.summary
    if s is not None:
        memcg = f"oom_memcg={s.oom_memcg}" if s.oom_memcg is not None else \
            ("global_oom" if s.global_oom else "no memcg")
        task_memcg = f", task_memcg={s.task_memcg}" if s.task_memcg is not None else ""
        out.append(f"  summary: {s.constraint}, {memcg}{task_memcg}, "
                   f"task={s.task}, pid={s.pid}, uid={s.uid}\n")
    if report.sacrifice is not None:
        sac = report.sacrifice
        out.append(f"  chosen: {sac.pid} ({sac.name}) score {sac.score}\n")
    k = report.kill
    if k is not None:
        how = f" ({k.message})" if k.message else ""
        out.append(f"  victim: {k.victim.pid} ({k.victim.name}), kill line {k.era}{how}\n")
    elif report.exiting is not None:
        e = report.exiting
        out.append(f"  victim: {e.pid} ({e.name}) was already exiting: not killed\n")
    else:
        out.append("  victim: no kill line in the log\n")
    for r in report.reaped:
        what = (f"reaped, now anon-rss={r.anon_rss_kb}kB file-rss={r.file_rss_kb}kB "
                f"shmem-rss={r.shmem_rss_kb}kB") if r.reaped else "unable to reap"
        out.append(f"  oom_reaper: {r.pid} ({r.name}) {what}\n")
    if report.panic is not None:
        out.append(f"  panic: {report.panic.text}\n")
    return "".join(out)


def _rendered_text(report: OomReport, again: dict) -> str:
    out = []
    if again["table"] is not None:
        assert report.table is not None  # rerender() printed it
        bad = again["table_mismatches"]
        verdict = "identical to the log's rows" if not bad else \
            f"DIFFERS from the log at lines {', '.join(map(str, bad))}"
        out.append(f"  table re-rendered by oomdrgn ({report.table.era}, {verdict}):\n")
        out.append(again["table"])
    if again["kill"] is not None:
        verdict = "identical to the log's" if again["kill_identical"] else "DIFFERS from the log's"
        out.append(f"  kill line re-rendered by oomdrgn ({verdict}):\n")
        out.append(again["kill"])
    return "".join(out)


def _bad_render(again: dict) -> bool:
    return bool(again["table_mismatches"]) or again["kill_identical"] is False


# -- the subcommands ---------------------------------------------------------------

def _read_file(path: str) -> str:
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        raise OomdrgnError(f"{path}: no such file", EXIT_TARGET) from None
    except IsADirectoryError:
        raise OomdrgnError(f"{path}: is a directory, not a log file", EXIT_TARGET) from None
    except PermissionError:
        raise OomdrgnError(f"{path}: permission denied", EXIT_PERMISSION) from None
    return data.decode("utf-8", "surrogateescape")


def logged_memory(parts: dict) -> dict:
    """A logged report's memory lines as values (``show_mem``: its era, the values by
    the kernel's labels, the lines that do not print again the same; ``memcg``)."""
    out: dict = {}
    if parts.get("show_mem"):
        parsed = parse_show_mem(parts["show_mem"])
        out["show_mem"] = None if parsed is None else {
            "era": parsed.era, "values": parsed.values, "mismatches": parsed.mismatches,
            "lines": len(parts["show_mem"])}
    if parts.get("memcg") or parts.get("protection"):
        m = parse_memcg(parts.get("memcg", []) + parts.get("protection", []))
        out["memcg"] = asdict(m)
    if parts.get("slab"):
        out["slab_lines"] = len(parts["slab"]) - 1
    return out


def _memory_summary(memory: dict) -> str:
    out = []
    sm = memory.get("show_mem", "absent")
    if sm is None:
        out.append("  Mem-Info: no era's formats read it\n")
    elif sm != "absent":
        same = "identical to the log's" if not sm["mismatches"] else \
            f"{len(sm['mismatches'])} lines differ"
        zones = ", ".join(sm["values"]["zones"])
        out.append(f"  Mem-Info: formats {sm['era']}, zones {zones}; re-rendered: {same}\n")
    m = memory.get("memcg")
    if m is not None:
        mem = m["counters"].get("memory")
        usage = f"usage {mem['usage_kb']}kB of {mem['limit_kb']}kB, " if mem else ""
        out.append(f"  memcg {m['path']}: {usage}{len(m['stats'])} stats\n")
    if "slab_lines" in memory:
        out.append(f"  unreclaimable slab: {memory['slab_lines']} caches\n")
    return "".join(out)


def _parse(args: argparse.Namespace, out: TextIO) -> int:
    text = _read_file(args.file)
    reports = parse_log(text)
    if not reports:
        raise OomdrgnError(f"{args.file}: no OOM report found", EXIT_QUERY)
    lines = text.split("\n")
    status = 0
    docs = []
    for i, report in enumerate(reports, 1):
        again = rerender(report)
        memory = logged_memory(logged_parts(lines, report))
        sm = memory.get("show_mem")
        bad_memory = "show_mem" in memory and (sm is None or bool(sm["mismatches"]))
        status = EXIT_PARTIAL if _bad_render(again) or bad_memory else status
        if args.json:
            docs.append({"index": i, **report_as_dict(report), "rerendered": again,
                         "memory": memory})
        else:
            out.write(("\n" if i > 1 else "") + describe_report(i, report)
                      + _memory_summary(memory) + _rendered_text(report, again))
    if args.json:
        json.dump({"file": args.file, "reports": docs}, out, indent=1)
        out.write("\n")
    if getattr(args, "html", None):
        from .html import command_line, log_page, write_page
        write_page(log_page(text, args.file, command_line(args)), args.html, out)
    return status


def _compare(reader: Any, report: OomReport, current: list):
    """A memcg report beside its memcg's table now, if that can be computed,
    else beside the global table (logged rows only)."""
    path = oom_memcg(report)
    if path is None:
        return compare_report(report, current, why_global="the log does not name the memcg"
                              if report.memcg else None)
    from ..core.decision import memcg_dump_tasks
    from ..core.oom import TargetError
    try:
        return compare_report(report, memcg_dump_tasks(reader, path), current_memcg=path)
    except (TargetError, AttributeError, LookupError, ValueError) as e:
        return compare_report(report, current, why_global=f"memcg {path} now: {e}")


def _report(reader: Any, args: argparse.Namespace, out: TextIO) -> int:
    if reader is None:
        raise OomdrgnError("report reads the target's kernel log: it needs a target",
                           EXIT_USAGE)
    from ..core.oom import dump_tasks

    log = reader.log_lines()
    reports = parse_lines(log)
    if not reports:
        raise OomdrgnError("no OOM report in the target's kernel log", EXIT_QUERY)
    current = dump_tasks(reader)
    status = EXIT_PARTIAL if any(isinstance(r, ReadFailure) for r in current) else 0
    era_now = reader.info.eras.table.name
    docs = []
    for i, report in enumerate(reports, 1):
        cmp = _compare(reader, report, current)
        memory = compare_logged_memory(reader, report, logged_parts(log, report))
        if args.json:
            docs.append({"index": i, **report_as_dict(report),
                         "comparison": None if cmp is None else comparison_as_dict(cmp),
                         "memory_comparison": None if memory is None else _memory_json(memory)})
            continue
        text = [("\n" if i > 1 else "") + describe_report(i, report)]
        if cmp is None:
            text.append("  no task table in this report: nothing to compare\n")
        else:
            if cmp.era != era_now:
                text.append(f"  note: the log's table is {cmp.era}, this kernel prints {era_now}\n")
            text.append("  compared with the rows oomdrgn computes from memory now:\n")
            text.extend("    " + line for line in format_comparison(cmp).splitlines(True))
        if memory is not None:
            text.extend(_memory_text(memory))
        out.write("".join(text))
    if args.json:
        json.dump({"table_format_now": era_now, "reports": docs}, out, indent=1)
        out.write("\n")
    return status


def _memory_json(memory) -> dict:
    return {"args": memory.args, "note": memory.note, "counts": memory.counts(),
            "parts": {part: [{"verdict": c.verdict, "logged": c.logged, "now": c.now,
                              "moved": [asdict(m) for m in c.moved],
                              "notes": c.notes} for c in comparisons]
                      for part, comparisons in memory.parts.items()}}


def _memory_text(memory) -> List[str]:
    args = ", ".join(f"{k} {v}" for k, v in memory.args.items() if v is not None)
    out = [f"  memory lines compared with memory now ({args}):\n"]
    if memory.note:
        out.append(f"    note: {memory.note}\n")
    for part, comparisons in memory.parts.items():
        counts: dict = {}
        for c in comparisons:
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        out.append(f"    {part}: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "\n")
        out.extend("      " + line + "\n" for c in comparisons if c.verdict != "same"
                   for line in c.describe().splitlines())
    return out


def run_report(reader: Optional[Any], args: argparse.Namespace, out: TextIO) -> int:
    """Run ``report`` or ``parse``; returns the exit status.

    :param reader: an :class:`oomdrgn.core.oom.Reader` of the target (``report``
        only: its kernel log and memory)
    """
    if args.command == "parse":
        return _parse(args, out)
    if args.command == "report":
        return _report(reader, args, out)
    raise ValueError(f"not a report subcommand: {args.command!r}")
