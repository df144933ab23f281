"""The ``oom-report`` and ``show-mem`` subcommands: the whole report ``dump_header()``
and ``oom_kill_process()`` print, or ``__show_mem()`` alone.

Argument parsing and printing only: the answers come from :mod:`oomdrgn.core.oom_report`.
"""

import argparse
import dataclasses
import json
from typing import Any, List, Optional, TextIO

from ..core.errors import EXIT_PARTIAL, EXIT_QUERY, EXIT_USAGE, OomdrgnError, TargetError
from ..core.formats import parse_bitmap_list
from ..core.oom import Reader
from .whatif import add_whatif_arguments, whatif_reader

__all__ = ["OOM_REPORT_COMMANDS", "add_oom_report_subcommands", "run_oom_report"]

OOM_REPORT_COMMANDS = ("oom-report", "show-mem")


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


def _control(reader: Reader, args: argparse.Namespace, whatif: bool = False):
    from ..core.gfp import parse_gfp
    from ..core.oom_report import oom_control
    gfp: Optional[int] = None
    if args.gfp is not None:
        try:
            gfp = parse_gfp(reader, args.gfp)
        except ValueError as e:
            raise OomdrgnError(f"--gfp: {e}", EXIT_USAGE) from None
    order = getattr(args, "order", None)
    if order is not None:
        from ..core.gfp import max_order
        top = max_order(reader)
        if order > top:
            raise OomdrgnError(f"--order {order} out of range (this kernel: 0-{top})",
                               EXIT_USAGE)
    try:
        return oom_control(reader, gfp_mask=gfp, order=order,
                           memcg=getattr(args, "memcg", None), current_pid=args.current,
                           victim_pid=getattr(args, "victim", None), nodemask=args.nodemask,
                           choose_victim=not whatif)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None


def _control_json(oc) -> dict:
    doc = {k: v for k, v in dataclasses.asdict(oc).items() if k not in ("logged",)}
    doc["current"] = None if oc.current is None else hex(oc.current)
    return doc


def run_oom_report(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    """Run ``oom-report`` or ``show-mem``; returns the exit status."""
    from ..core.oom_report import Section, oom_report
    target, view = reader, None
    if args.command == "oom-report":
        reader, view = whatif_reader(target, args)
    # The OOM's control as the target shows it, then under the assumptions.
    oc = _control(target, args, view is not None)
    if view is not None:
        from ..core.whatif import assumed_control
        try:
            oc = assumed_control(view, oc, getattr(args, "victim", None))
        except TargetError as e:
            raise OomdrgnError(str(e), EXIT_QUERY) from None
    if args.command == "show-mem":
        from ..core.gfp import gfp_zone
        from ..core.show_mem import show_mem
        mems = reader.mems_allowed(oc.current) if oc.current is not None else []
        s = show_mem(reader, oc.nodemask, mems, gfp_zone(reader, oc.gfp_mask), oc.cpu)
        sections = [Section("show_mem", s.lines, note=s.formats, values=s.values)]
        partial = False
    else:
        report = oom_report(reader, oc)
        sections, partial = report.sections, report.partial
    if args.json:
        doc = {"control": _control_json(oc),
               "sections": [dataclasses.asdict(s) for s in sections]}
        if view is not None:
            doc = {"assumed": view.lines(oc.memcg), **doc}
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        if view is not None:
            out.writelines(line + "\n" for line in view.lines(oc.memcg))
        for sec in sections:
            if not sec.exact and sec.lines:
                out.write(f"# {sec.note}\n")
            out.write("".join(line + "\n" for line in sec.lines))
    return EXIT_PARTIAL if partial else 0
