"""The what-if options of ``victim``, ``score`` and ``oom-report``: parsing only;
the assumptions are applied by :mod:`oomdrgn.core.whatif`."""

from __future__ import annotations

import argparse
from typing import Optional, Tuple

from ..core.errors import EXIT_QUERY, EXIT_USAGE, OomdrgnError, TargetError
from ..core.oom import Reader
from ..core.whatif import Assumptions, WhatIfReader, parse_set_adj, parse_set_max, what_if

__all__ = ["whatif_reader"]


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
