"""Every subcommand's arguments (argparse only, nothing heavy imported: the
commands themselves load when one runs), for the CLI, ``%oom`` and ``lx-oom``."""

from __future__ import annotations

import argparse
from typing import Any, List, Optional

from ..core.formats import parse_bitmap_list
from ..core.mmcounters import COUNTER_RULES

__all__ = ["Parser", "add_subcommands", "add_rule_argument", "add_whatif_arguments"]


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, the terminal's width asked only when help is
    formatted: argparse makes one per ``add_argument()`` (to check metavars),
    each importing shutil and asking the terminal, ~2 ms of a run."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)
        self._later = width is None, max_help_position

    def format_help(self) -> str:
        later, max_help_position = self._later
        if later:  # as HelpFormatter.__init__ sizes itself
            import shutil
            self._width = shutil.get_terminal_size().columns - 2
            self._max_help_position = min(max_help_position,
                                          max(self._width - 20, self._indent_increment * 2))
        return super().format_help()


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` (and its subcommands') with :class:`_Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def add_rule_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counter-rule", choices=sorted(COUNTER_RULES),
                        help="override how get_mm_counter() is read (default: detected "
                             "from the kernel's code)")


def add_subcommands(parser: argparse.ArgumentParser) -> "argparse._SubParsersAction":
    """Add the subcommands (tasks, kill, victim, score, summary, report, parse,
    oom-report, show-mem, html) to *parser*."""
    # prog given: argparse would make a help formatter to say it.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                prog=parser.prog)
    p = sub.add_parser("tasks", help="the dump_tasks() table, as this kernel prints it")
    p.add_argument("--memcg", metavar="PATH",
                   help="the table a memcg OOM in this cgroup (v2 path) prints")
    p.add_argument("--badness", action="store_true",
                   help="add oom_badness() points (not printed by the kernel)")
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p = sub.add_parser("kill", help="the 'Killed process' line if PID were the victim")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("--memcg", action="store_true",
                   help="as a memcg OOM would print it ('Memory cgroup out of memory')")
    p.add_argument("--json", action="store_true", help="values as JSON")
    p = sub.add_parser("victim", help="the process select_bad_process() would kill now")
    p.add_argument("--memcg", metavar="PATH", help="for a memcg OOM in this cgroup")
    p.add_argument("--sysrq", action="store_true",
                   help="as a sysrq-f forced OOM (existing victims do not abort the scan)")
    p.add_argument("--all", action="store_true",
                   help="rank every candidate and say why others were skipped")
    p.add_argument("--json", action="store_true", help="as JSON")
    add_whatif_arguments(p)
    p = sub.add_parser("score", help="/proc/PID/oom_score as proc_oom_score() computes it")
    p.add_argument("pids", type=int, nargs="*", metavar="PID", help="default: every process")
    p.add_argument("--json", action="store_true", help="as JSON")
    add_whatif_arguments(p, set_max=False)
    p = sub.add_parser("summary", help="the 'oom-kill:constraint=...' line for victim PID")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("--memcg", metavar="PATH", help="for a memcg OOM in this cgroup")
    p.add_argument("--current", type=int, metavar="PID",
                   help="the task that hit the OOM (default: the panicking/busy CPU's)")
    add_report_subcommands(sub)
    add_explain_subcommands(sub)
    add_oom_report_subcommands(sub)
    add_html_subcommand(sub)
    return sub


def add_whatif_arguments(p: argparse.ArgumentParser, set_max: bool = True) -> None:
    """``--set-adj``, ``--set-max`` (if *set_max*), ``--exclude``, ``--swap-pages``."""
    g = p.add_argument_group("what-if (assumed, nothing is written to the target)")
    # Checked when run (whatif_reader): a bad value is one line, EXIT_USAGE, as --gfp's.
    g.add_argument("--set-adj", action="append", default=[],
                   metavar="PID=N", help="as if N (-1000..1000) were written to "
                   "/proc/PID/oom_score_adj (repeatable)")
    if set_max:
        g.add_argument("--set-max", action="append", default=[],
                       metavar="PATH=BYTES", help="as if the cgroup's memory.max were BYTES "
                       "(K/M/G suffixes, or max) (repeatable)")
    g.add_argument("--exclude", action="append", default=[], metavar="PID",
                   help="as if the process PID had exited (repeatable)")
    g.add_argument("--swap-pages", metavar="N",
                   help="as if total_swap_pages were N")


def _nodes(text: str) -> List[int]:
    """``0-1,3`` (the kernel's ``%*pbl``) as a list of node ids."""
    try:
        return parse_bitmap_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a node list: {text!r} (e.g. 0 or 0-1,3)")


def _order(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an order: {text!r}")
    if value < -1:  # -1: a forced OOM (sysrq-f, the memcg's memory.max lowered)
        raise argparse.ArgumentTypeError(f"order {value} out of range (-1 and up)")
    return value


def _gfp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gfp", metavar="MASK",
                   help="the allocation's gfp_mask: a number (0xcc0) or the kernel's flag "
                        "names (GFP_KERNEL, GFP_HIGHUSER_MOVABLE|__GFP_COMP); default: the "
                        "OOM in progress, else GFP_HIGHUSER_MOVABLE")
    p.add_argument("--nodemask", type=_nodes, metavar="NODES",
                   help="oc->nodemask (e.g. 0-1); default: the OOM in progress, else none")
    p.add_argument("--current", type=int, metavar="PID",
                   help="the task that hit the OOM; default: the task on the OOM path")


def add_oom_report_subcommands(subparsers: Any) -> None:
    """Add ``oom-report`` and ``show-mem`` to *subparsers*."""
    p = subparsers.add_parser(
        "oom-report", help="the whole OOM report (invoked line, stack, Mem-Info or memcg "
                           "stats, slab, tasks, summary, kill line) as this kernel prints it")
    _gfp_options(p)
    p.add_argument("--order", type=_order, metavar="N", help="the allocation's order "
                   "(default: the OOM in progress, else 0)")
    p.add_argument("--memcg", metavar="PATH", help="a memcg OOM in this cgroup")
    p.add_argument("--victim", type=int, metavar="PID",
                   help="default: the OOM's own victim, else select_bad_process()'s")
    p.add_argument("--json", action="store_true", help="every section and value as JSON")
    add_whatif_arguments(p)
    p = subparsers.add_parser("show-mem", help="__show_mem() alone: Mem-Info, zones, "
                                               "buddy lists, swap, pages RAM")
    _gfp_options(p)
    p.add_argument("--json", action="store_true", help="lines and values as JSON")


def add_report_subcommands(subparsers: Any) -> None:
    """Add ``report`` and ``parse`` to *subparsers* (from ``add_subparsers()``)."""
    p = subparsers.add_parser(
        "report", help="every OOM report in the target's kernel log, beside what "
                       "oomdrgn recomputes now from memory")
    p.add_argument("--json", action="store_true", help="reports and comparisons as JSON")
    p = subparsers.add_parser(
        "parse", help="read the OOM reports of a dmesg/journal text file (no target needed)")
    p.add_argument("file", metavar="FILE", help="kernel log text (dmesg, dmesg -T, journalctl, "
                                                "syslog); '-' reads stdin")
    p.add_argument("--json", action="store_true", help="reports as JSON")
    p.add_argument("--html", metavar="PAGE",
                   help="also write one self-contained HTML page of the log's reports")


def add_explain_subcommands(subparsers: Any) -> None:
    """Add ``explain`` to *subparsers*."""
    p = subparsers.add_parser(
        "explain", help="every number of PID's dump_tasks() row, kill line and badness: "
                        "the kernel's expression, the fields read, printed vs exact")
    p.add_argument("pid", type=int, metavar="PID")
    p.add_argument("--memcg", metavar="PATH",
                   help="as a memcg OOM in this cgroup (v2 path) would see it")
    p.add_argument("--json", action="store_true", help="as JSON")


def add_html_subcommand(subparsers: Any) -> None:
    """Add ``html`` to *subparsers*."""
    p = subparsers.add_parser(
        "html", help="one self-contained HTML page: memory by use, the task table (sortable, "
                     "badness, victim), memcgs, the logged reports beside memory")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the page to write ('-': standard output)")
    p.add_argument("--memcg", metavar="PATH", help="a memcg OOM in this cgroup")
