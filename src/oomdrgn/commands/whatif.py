"""The what-if options of ``victim``, ``score`` and ``oom-report``: parsing only;
the assumptions are applied by :mod:`oomdrgn.core.whatif`."""

import argparse
from typing import Optional, Tuple

from ..core.errors import EXIT_QUERY, EXIT_USAGE, OomdrgnError, TargetError
from ..core.oom import Reader
from ..core.whatif import Assumptions, WhatIfReader, parse_set_adj, parse_set_max, what_if

__all__ = ["add_whatif_arguments", "whatif_reader"]


def _pid(text: str, option: str) -> int:
    try:
        pid = int(text, 10)
    except ValueError:
        pid = 0
    if pid <= 0:
        raise ValueError(f"{option} {text!r}: not a PID")
    return pid


def _pages(text: str) -> int:
    try:
        pages = int(text, 0)
    except ValueError:
        raise ValueError(f"--swap-pages {text!r}: not a page count") from None
    if pages < 0:
        raise ValueError(f"--swap-pages {pages}: must not be negative")
    return pages


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


def whatif_reader(reader: Reader, args: argparse.Namespace) -> Tuple[Reader,
                                                                      Optional[WhatIfReader]]:
    """The reader to ask (the what-if view if any option was given) and the view.

    :raises OomdrgnError: a malformed value (``EXIT_USAGE``), a PID or cgroup
        that names nothing (``EXIT_QUERY``)
    """
    swap = getattr(args, "swap_pages", None)
    try:
        assumed = Assumptions(
            set_adj=tuple(parse_set_adj(t) for t in getattr(args, "set_adj", None) or ()),
            set_max=tuple(parse_set_max(t) for t in getattr(args, "set_max", None) or ()),
            exclude=tuple(_pid(t, "--exclude") for t in getattr(args, "exclude", None) or ()),
            swap_pages=None if swap is None else _pages(swap))
    except ValueError as e:
        raise OomdrgnError(str(e), EXIT_USAGE) from None
    if not assumed:
        return reader, None
    try:
        view = what_if(reader, assumed)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    return view, view
