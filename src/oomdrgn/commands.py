"""The ``oom`` subcommands, shared by the CLI, drgn's ``%oom`` and GDB's ``lx-oom``.

Argument parsing and printing only: the answers come from :mod:`oomdrgn.oom`.
"""

import argparse
import dataclasses
import json
from typing import TextIO

from .errors import EXIT_PARTIAL, EXIT_QUERY, OomdrgnError
from .mmcounters import COUNTER_RULES
from .model import ReadFailure
from .oom import Reader, TargetError, dump_tasks, format_dump_tasks, oom_kill_victim
from .report import MEMCG_PREFIX, OOM_PREFIX, format_kill_line

__all__ = ["add_subcommands", "add_rule_argument", "run_command"]

# JSON row keys: the kernel's newest header names, in its order.
_ROW_KEYS = ("pid", "uid", "tgid", "total_vm", "rss", "rss_anon", "rss_file", "rss_shmem",
             "pgtables_bytes", "swapents", "oom_score_adj", "name")


def add_rule_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counter-rule", choices=sorted(COUNTER_RULES),
                        help="override how get_mm_counter() is read (default: detected "
                             "from the kernel's code)")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands (``tasks``, ``kill``) to *parser*."""
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("tasks", help="the dump_tasks() table, as this kernel prints it")
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p = sub.add_parser("kill", help="the 'Killed process' line if PID were the victim")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("--memcg", action="store_true",
                   help="as a memcg OOM would print it ('Memory cgroup out of memory')")
    p.add_argument("--json", action="store_true", help="values as JSON")


def _kernel_json(reader: Reader) -> dict:
    info = reader.info
    return {"table_format": info.eras.table.name, "kill_format": info.eras.kill.name,
            "counter_rules": dict(info.rules), "counter_rule_evidence": dict(info.rule_evidence)}


def _tasks(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    rows = dump_tasks(reader)
    partial = any(isinstance(r, ReadFailure) for r in rows)
    if args.json:
        doc = {"kernel": _kernel_json(reader), "rows": []}
        for r in rows:
            if isinstance(r, ReadFailure):
                doc["rows"].append({"pid": r.pid, "unreadable": r.reason})
            else:
                row = {k: getattr(r, k) for k in _ROW_KEYS}
                if reader.info.pgtables == "ptes":  # before v4.15
                    row.update(nr_ptes=r.nr_ptes, nr_pmds=r.nr_pmds)
                doc["rows"].append(row)
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        out.write(format_dump_tasks(reader, rows))
    return EXIT_PARTIAL if partial else 0


def _kill(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    try:
        victim = oom_kill_victim(reader, args.pid)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    line = format_kill_line(reader.info.eras.kill, victim, MEMCG_PREFIX if args.memcg else OOM_PREFIX)
    if args.json:
        doc = {"kernel": _kernel_json(reader), "victim": dataclasses.asdict(victim), "line": line}
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        out.write(line)
    return 0


def run_command(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    """Run the parsed subcommand; returns the exit status (0, or partial output)."""
    return {"tasks": _tasks, "kill": _kill}[args.command](reader, args, out)
