"""drgn plugin: the ``%oom`` command (entry point group ``drgn.plugins``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from drgn import Program
from drgn.commands import CommandError, argument
from drgn.commands.linux import linux_kernel_command

from ..commands.subcommands import add_rule_argument, add_subcommands, run_command
from .backend import reader_for
from ..core.errors import OomdrgnError

__all__: list = []


class _Parser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: Optional[str] = None):
        if message:
            raise CommandError(message.strip())
        raise CommandError("")

    def error(self, message: str):
        raise CommandError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="oom", description="the Linux OOM killer's view of this kernel")
    add_rule_argument(parser)
    add_subcommands(parser)
    return parser


@linux_kernel_command(
    description="the OOM killer's task table and kill line, as this kernel prints them",
    usage="**oom** [--counter-rule RULE] {tasks [--memcg PATH] [--badness] [--json] | "
          "kill PID [--memcg] [--json] | victim [--memcg PATH] [--all] [--json] | "
          "score [PID...] | summary PID [--memcg PATH] [--current PID] | report [--json] | "
          "parse FILE [--json]}",
    arguments=(argument("argv", nargs=argparse.REMAINDER, metavar="ARGS"),),
)
def _cmd_oom(prog: Program, name: str, args: argparse.Namespace, **kwargs: Any) -> None:
    parsed = _parser().parse_args(args.argv)
    try:
        run_command(reader_for(prog, parsed.counter_rule), parsed, sys.stdout)
    except OomdrgnError as e:
        raise CommandError(str(e)) from None
