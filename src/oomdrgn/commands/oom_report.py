"""The ``oom-report`` and ``show-mem`` subcommands: the whole report ``dump_header()``
and ``oom_kill_process()`` print, or ``__show_mem()`` alone.

Argument parsing and printing only: the answers come from :mod:`oomdrgn.core.oom_report`.
"""

from __future__ import annotations

import argparse
import json
from typing import Optional, TextIO

from ..core.errors import EXIT_PARTIAL, EXIT_QUERY, EXIT_USAGE, OomdrgnError, TargetError
from ..core.oom import Reader
from ..core.record import asdict
from .whatif import whatif_reader

__all__ = ["run_oom_report"]


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
    doc = {k: v for k, v in asdict(oc).items() if k not in ("logged",)}
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
               "sections": [asdict(s) for s in sections]}
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
