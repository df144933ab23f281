"""The ``oom`` subcommands, shared by the CLI, drgn's ``%oom`` and GDB's ``lx-oom``:
their arguments (:mod:`.arguments`), and each run by its module, loaded then."""

from __future__ import annotations

import argparse
import importlib
from typing import TextIO

from ..core.errors import EXIT_QUERY, EXIT_TARGET, OomdrgnError, ReadError, TargetError
from .arguments import add_rule_argument, add_subcommands

__all__ = ["add_subcommands", "add_rule_argument", "run_command"]

#: subcommand -> (module of oomdrgn.commands, its function)
_RUNS = {"tasks": ("tasks", "run_tasks"), "kill": ("decision", "run_decision"),
         "victim": ("decision", "run_decision"), "score": ("decision", "run_decision"),
         "summary": ("decision", "run_decision"), "report": ("reports", "run_report"),
         "parse": ("reports", "run_report"), "explain": ("explain", "run_explain"),
         "oom-report": ("oom_report", "run_oom_report"),
         "show-mem": ("oom_report", "run_oom_report"), "html": ("html", "run_html")}


def run_command(reader, args: argparse.Namespace, out: TextIO) -> int:
    """Run the parsed subcommand; returns the exit status (0, or partial output).

    *reader* may be None for ``parse`` (no target)."""
    module, function = _RUNS[args.command]
    run = getattr(importlib.import_module(f".{module}", __package__), function)
    assert reader is not None or args.command == "parse"  # only parse runs without a target
    try:
        return run(reader, args, out)
    except TargetError as e:
        raise OomdrgnError(str(e), EXIT_QUERY) from None
    except ReadError as e:
        raise OomdrgnError(f"target memory unreadable: {e}", EXIT_TARGET) from None
