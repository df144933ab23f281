"""``oomdrgn``: the command line. Opens a target with drgn and runs one subcommand."""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
from typing import List, Optional, Tuple, cast

from .commands.arguments import Parser
from .commands.subcommands import add_rule_argument, add_subcommands, run_command
from .core.errors import EXIT_INTERNAL, EXIT_USAGE, OomdrgnError

__all__ = ["main", "run", "build_parser"]


def _address(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (hex with 0x, "
                                         "or decimal)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="oomdrgn",
        description="What the Linux OOM killer sees, prints and would kill, "
                    "from a vmcore, the live kernel or a QEMU guest.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("-c", "--core", metavar="VMCORE", action="append",
                        help="a vmcore (ELF or kdump), or a raw RAM image FILE@PADDR "
                             "(repeatable: one per bank)")
    target.add_argument("-k", "--kernel", action="store_true",
                        help="the running kernel, through /proc/kcore (root; the default)")
    target.add_argument("--qemu", metavar="QMP_SOCKET", help="a QEMU guest's QMP socket")
    parser.add_argument("-s", "--symbols", metavar="VMLINUX", action="append", default=[],
                        help="debug vmlinux (repeatable; default: drgn's debug info search); "
                             "without DWARF: the build's vmlinuz or vmlinux, for its BTF")
    parser.add_argument("--debug-info", choices=("auto", "dwarf", "btf"), default="auto",
                        help="where types and symbols come from: the debug vmlinux's DWARF, "
                             "or the kernel's own BTF and kallsyms (default: DWARF if found)")
    parser.add_argument("--vmcoreinfo", metavar="FILE",
                        help="the kernel's VMCOREINFO text, for RAM images or ELF dumps "
                             "without it (default: found in the images)")
    parser.add_argument("--kaslr-offset", type=_address, metavar="OFFSET",
                        help="the kernel's KASLR offset, over what the images say")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a QMP socket to answer (default 10)")
    add_rule_argument(parser)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="do not print the detected formats and counter rules on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = add_subcommands(parser)
    p = sub.add_parser("shell", help="drgn's interactive console on the target, %%oom loaded")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="a vmcore, or raw RAM images FILE@PADDR (as -c)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    cast(io.TextIOWrapper, sys.stdout).reconfigure(errors="surrogateescape")
    # drgn's plugins (its crash commands, %oom) serve the console only; loading
    # them costs ~80 ms a run. DRGN_PLUGINS set by the user keeps them. Only for
    # this call: a caller's later drgn (a console it starts) keeps its plugins.
    disable = (args.command != "shell" and "DRGN_PLUGINS" not in os.environ
               and "DRGN_DISABLE_PLUGINS" not in os.environ)
    if disable:
        os.environ["DRGN_DISABLE_PLUGINS"] = "*"
    # A command is one pass that leaves few reference cycles: the cyclic
    # collector's passes over what it holds (the BTF index, a row a process:
    # ~8 ms of a 10,000-process table) are not run; the console keeps them.
    collect = args.command != "shell" and gc.isenabled()
    if collect:
        gc.disable()
    try:
        cached, handoff = _without_debugger(args)
        if cached is not None:
            return cached
        if args.command == "parse":  # a plain log file: no target
            status = run_command(None, args, sys.stdout)
        else:
            if not args.debug:
                # drgn logs its own warnings (e.g. an ignored vmlinux); oomdrgn
                # says what matters in its one line. (drgn imports logging.)
                import logging
                logging.getLogger("drgn").setLevel(logging.CRITICAL)
            from .drgn.program import open_program
            from .drgn.backend import reader_for
            from .drgn.physical import FOUND
            from .drgn.nodebug import PRELOADED
            if args.command == "shell" and args.targets:
                if args.core or args.kernel or args.qemu:
                    raise OomdrgnError("shell: give the target once (TARGET or -c/-k/--qemu)",
                                       EXIT_USAGE)
                args.core = args.targets
            prog = open_program(core=args.core, kcore=args.kernel, qemu=args.qemu,
                                vmlinux=args.symbols, timeout=args.timeout,
                                vmcoreinfo=args.vmcoreinfo, kaslr_offset=args.kaslr_offset,
                                debug_info=args.debug_info)
            if handoff is not None:  # what the run without a debugger learnt
                prog.config[PRELOADED] = handoff
            if not args.quiet and FOUND in prog.config:
                print(f"oomdrgn: {prog.config[FOUND]}", file=sys.stderr)
            if args.command == "shell":
                from .drgn.shell import run_shell
                return run_shell(prog, quiet=args.quiet)
            reader = reader_for(prog, args.counter_rule)
            if not args.quiet:
                sources = getattr(reader, "sources", None)
                if sources:
                    print(f"oomdrgn: {sources}", file=sys.stderr)
                print(f"oomdrgn: {reader.info.describe()}", file=sys.stderr)
            status = run_command(reader, args, sys.stdout)
            save = getattr(reader, "save_layout", None)
            if save is not None:
                save()
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
    finally:
        if disable:
            os.environ.pop("DRGN_DISABLE_PLUGINS", None)
        if collect:
            gc.enable()


#: the commands an ELF vmcore answers with no debugger (the task table and the
#: decision: what they read is memory, types and symbols)
_WITHOUT_DEBUGGER = ("tasks", "kill", "victim", "score")


def _without_debugger(args: argparse.Namespace) -> Tuple[Optional[int], Optional[tuple]]:
    """A command of :data:`_WITHOUT_DEBUGGER` on one ELF vmcore read with no
    debugger (:mod:`oomdrgn.elfcore`):
    the exit status, or None where drgn must open the dump (then nothing was
    printed), with what that run learnt of the build for drgn's (its layout,
    and BTF, kallsyms and recovered symbols if read), or None."""
    if (args.command not in _WITHOUT_DEBUGGER or not args.core or len(args.core) != 1 or "@" in args.core[0]
            or args.symbols or args.debug_info == "dwarf" or args.vmcoreinfo
            or args.kaslr_offset is not None):
        return None, None
    from .elfcore.open import cached_reader
    from .elfcore.port import Unanswered
    opened = cached_reader(args.core[0], args.counter_rule, args.debug_info)
    if opened is None:
        return None, None
    reader, sources = opened
    port = reader.target
    out = io.StringIO()
    try:
        status = run_command(reader, args, out)
    except (Unanswered, OomdrgnError):  # drgn's run says it, in its order
        return None, port.handoff()  # type: ignore[attr-defined]
    if not args.quiet:
        print(f"oomdrgn: {sources}", file=sys.stderr)
        print(f"oomdrgn: {reader.info.describe()}", file=sys.stderr)
    sys.stdout.write(out.getvalue())
    sys.stdout.flush()
    layout = port.layout  # type: ignore[attr-defined]
    if layout.changed and layout.build_id:
        from .core.layoutcache import save_layout
        save_layout(layout)
    return status, None


def run() -> int:
    """The ``oomdrgn`` command: :func:`main`; then, the process ending, what
    the run made is left out of the interpreter's last garbage collection (a
    pass over every object still held, BTF's and the table's: ~7 ms of a
    10,000-process run). Everything is still freed and closed as usual."""
    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(run())
