"""``explain PID``: every number of one task's row, kill line and badness
(:mod:`oomdrgn.core.explain`); argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from ..core.errors import EXIT_QUERY, EXIT_TARGET, OomdrgnError
from ..core.explain import explain_task, format_explain
from ..core.oom import ReadError, Reader, TargetError

__all__ = ["run_explain"]


def run_explain(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    """Run ``explain``; returns the exit status."""
    try:
        doc = explain_task(reader, args.pid, args.memcg)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    except ReadError as e:
        raise OomdrgnError(f"target memory unreadable: {e}", EXIT_TARGET) from None
    if args.json:
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        out.write(format_explain(doc))
    return 0
