"""``oomdrgn``: the command line. Opens a target with drgn and runs one subcommand."""

import argparse
import io
import logging
import sys
from typing import List, Optional, cast

from .commands.subcommands import add_rule_argument, add_subcommands, run_command
from .core.errors import EXIT_INTERNAL, OomdrgnError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oomdrgn",
        description="What the Linux OOM killer sees, prints and would kill, "
                    "from a vmcore, the live kernel or a QEMU guest.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("-c", "--core", metavar="VMCORE", help="a vmcore (ELF or kdump)")
    target.add_argument("-k", "--kernel", action="store_true",
                        help="the running kernel, through /proc/kcore (root; the default)")
    target.add_argument("--qemu", metavar="QMP_SOCKET", help="a QEMU guest's QMP socket")
    parser.add_argument("-s", "--symbols", metavar="VMLINUX", action="append", default=[],
                        help="debug vmlinux (repeatable; default: drgn's debug info search)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a QMP socket to answer (default 10)")
    add_rule_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not print the detected formats and counter rules on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    add_subcommands(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    cast(io.TextIOWrapper, sys.stdout).reconfigure(errors="surrogateescape")
    if not args.debug:
        # drgn logs its own warnings (e.g. an ignored vmlinux); oomdrgn says
        # what matters in its one line.
        logging.getLogger("drgn").setLevel(logging.CRITICAL)
    try:
        if args.command == "parse":  # a plain log file: no target
            status = run_command(None, args, sys.stdout)
        else:
            from .drgn.program import open_program
            from .drgn.backend import reader_for
            prog = open_program(core=args.core, kcore=args.kernel, qemu=args.qemu,
                                vmlinux=args.symbols, timeout=args.timeout)
            reader = reader_for(prog, args.counter_rule)
            if not args.quiet:
                print(f"oomdrgn: {reader.info.describe()}", file=sys.stderr)
            status = run_command(reader, args, sys.stdout)
        sys.stdout.flush()
        return status
    except OomdrgnError as e:
        print(f"oomdrgn: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line, never a traceback unless asked
        if args.debug:
            raise
        print(f"oomdrgn: internal error: {type(e).__name__}: {e} (rerun with --debug)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
