"""GDB commands: ``lx-oom``, ``lx-oom-kaslr`` and ``$lx_oom_score_adj(pid)``.

Loaded into GDB by ``plugin/oomdrgn-gdb.py``. The commands only parse
arguments and print: ``lx-oom`` takes the very argument spec of the CLI and
drgn's ``%oom`` (:mod:`oomdrgn.commands.subcommands`) and runs the same
:func:`~oomdrgn.commands.subcommands.run_command` over a :class:`~oomdrgn.gdb.backend.GdbReader`,
so every subcommand that needs only the reader protocol works here too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from typing import Iterator, Optional

import gdb

from ..commands.subcommands import add_rule_argument, add_subcommands, run_command
from ..core.errors import OomdrgnError
from .backend import GdbReader
from .kaslr import KaslrError, find_kaslr_offset, percpu_symbols_match, symbols_match
from .port import elf_symbols, kernel_cpu, kernel_symbol_file
from ..core.oom import ReadError, TargetError

__all__ = ["LxOom", "LxOomKaslr", "LxOomScoreAdj", "relocate_symbols"]


class _Exit(Exception):
    """argparse is done (``-h`` printed the help): return to the prompt."""


class _Parser(argparse.ArgumentParser):
    # argparse must never exit GDB: usage errors become gdb.GdbError.
    def exit(self, status: int = 0, message: Optional[str] = None):
        if message:
            gdb.write(message)
        raise _Exit()

    def error(self, message: str):
        raise gdb.GdbError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lx-oom",
                     description="The Linux OOM killer's view of the kernel GDB is attached to, "
                                 "printed byte for byte as that kernel prints it.")
    add_rule_argument(parser)
    add_subcommands(parser)
    return parser


@contextlib.contextmanager
def _confirm_off() -> Iterator[None]:
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off", to_string=True)
    try:
        yield
    finally:
        gdb.execute(f"set confirm {'on' if confirm else 'off'}", to_string=True)


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _require_target(command: str) -> None:
    inferior = gdb.selected_inferior()
    if inferior is None or inferior.pid == 0:
        raise gdb.GdbError(f"{command}: no target: attach to the kernel first "
                           "(e.g. target remote :1234 for QEMU's -s gdbstub)")


def relocate_symbols(path: Optional[str], command: str = "lx-oom-kaslr") -> int:
    """Load the symbols of vmlinux *path* at the offset the target runs it at.

    :returns: the offset (0 without KASLR)
    :raises gdb.GdbError: no target, no such file, or another build
    """
    _require_target(command)
    path = path or kernel_symbol_file()
    if not path:
        raise gdb.GdbError(f"{command}: no vmlinux: {command} /path/to/vmlinux")
    path = os.path.realpath(os.path.expanduser(path))
    try:
        with kernel_cpu():
            offset = find_kaslr_offset(path)
        link = elf_symbols(path, ("linux_banner",))["linux_banner"][0]
    except KaslrError as e:
        raise gdb.GdbError(f"{command}: {e}") from None
    except OSError as e:
        raise gdb.GdbError(f"{command}: {path}: {e.strerror}") from None
    gdb.set_convenience_variable("lx_kaslr_offset", offset)
    loaded = kernel_symbol_file()
    sym = gdb.lookup_global_symbol("linux_banner")
    if (loaded and os.path.realpath(loaded) == path and sym is not None
            and int(sym.value().address) == link + offset and percpu_symbols_match(path)):
        gdb.write(f"{command}: the symbols of {path} already match the running kernel "
                  f"(offset {offset:#x})\n")
        return offset
    load = f"add-symbol-file {_quote(path)} -o {offset:#x}"
    if elf_symbols(path, ("__per_cpu_start",)).get("__per_cpu_start", (1,))[0] == 0:
        # Zero-based per-CPU data (x86-64 SMP): .data..percpu holds offsets,
        # not addresses, and KASLR does not move it.
        load += " -s .data..percpu 0"
    gdb.write(f"{command}: the kernel runs at {offset:#x} from its link address; "
              f"loading {path} there ({load})\n")
    with _confirm_off():
        _drop_symbols(path)
        gdb.execute(load)
    return offset


def _drop_symbols(path: str) -> None:
    """Unload *path*'s symbols (and any other kernel symbols) before reloading."""
    main = gdb.current_progspace().filename
    kernel = kernel_symbol_file()
    for objfile in list(gdb.objfiles()):
        name = objfile.filename
        if not objfile.is_valid() or name is None:
            continue
        if os.path.realpath(name) != path and name != kernel:
            continue
        if name == main:
            gdb.execute("symbol-file", to_string=True)
        else:
            gdb.execute(f"remove-symbol-file {_quote(name)}", to_string=True)


def _ensure_kernel(command: str) -> None:
    """A target and kernel symbols that match it (relocated once if KASLR moved it)."""
    _require_target(command)
    try:
        match = symbols_match()
    except (KaslrError, OSError) as e:
        raise gdb.GdbError(f"{command}: {e}") from None
    if match is None:
        raise gdb.GdbError(f"{command}: no kernel symbols: load the debug vmlinux "
                           "with lx-oom-kaslr /path/to/vmlinux")
    if not match:
        gdb.write(f"{command}: the loaded symbols do not match the running kernel "
                  "(KASLR?): relocating them\n")
        relocate_symbols(kernel_symbol_file(), command)


def _reader(command: str, counter_rule: Optional[str] = None) -> GdbReader:
    try:
        return GdbReader(counter_rule)
    except ValueError as e:  # a counter rule that does not fit this kernel
        raise gdb.GdbError(f"{command}: {e}") from None


class _LazyReader:
    """The :class:`GdbReader`, made (target and symbols checked) when a
    subcommand first reads: those that read no kernel (``parse``) need no target."""

    def __init__(self, command: str, counter_rule: Optional[str]) -> None:
        self._command = command
        self._counter_rule = counter_rule
        self._reader: Optional[GdbReader] = None

    def __getattr__(self, name: str):
        if self._reader is None:
            _ensure_kernel(self._command)
            self._reader = _reader(self._command, self._counter_rule)
        return getattr(self._reader, name)


class LxOom(gdb.Command):
    """The OOM killer's task table, kill line and choices, as this kernel prints them.

Output is byte for byte what the kernel prints (without printk timestamps),
the same as the oomdrgn CLI and drgn's %oom. If the loaded symbols do not match
the running kernel (KASLR), they are first relocated as lx-oom-kaslr does.
Options of one command: lx-oom COMMAND -h."""

    def __init__(self) -> None:
        # "help lx-oom" lists every subcommand of the shared argument spec.
        self.__doc__ = f"{LxOom.__doc__}\n\n{_parser().format_help().rstrip()}"
        super().__init__("lx-oom", gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        self.dont_repeat()
        try:
            args = _parser().parse_args(gdb.string_to_argv(arg))
        except _Exit:
            return
        out = io.StringIO()
        try:
            with kernel_cpu():
                run_command(_LazyReader("lx-oom", args.counter_rule), args, out)
        except gdb.GdbError:
            raise
        except (OomdrgnError, ReadError, TargetError) as e:
            raise gdb.GdbError(f"lx-oom: {e}") from None
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"lx-oom: cannot read the kernel: {e}") from None
        except gdb.error as e:  # e.g. the target is running
            raise gdb.GdbError(f"lx-oom: {e}") from None
        finally:
            gdb.write(out.getvalue())


class LxOomKaslr(gdb.Command):
    """Load the vmlinux symbols where the kernel runs (KASLR).

Usage: lx-oom-kaslr [VMLINUX]

Finds the kernel's load offset by looking for VMLINUX's own linux_banner
(its whole text, build string included) in the target's memory, then loads
VMLINUX's symbols there with "add-symbol-file VMLINUX -o OFFSET" (zero-based
per-CPU data stays at 0) and sets $lx_kaslr_offset. Without VMLINUX, the
loaded symbol file is relocated.
Start GDB without the vmlinux and pass it here: its debug info is then read
once. Booting the guest with "nokaslr" is only a fallback."""

    def __init__(self) -> None:
        super().__init__("lx-oom-kaslr", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg: str, from_tty: bool) -> None:
        self.dont_repeat()
        argv = gdb.string_to_argv(arg)
        if len(argv) > 1:
            raise gdb.GdbError("usage: lx-oom-kaslr [VMLINUX]")
        relocate_symbols(argv[0] if argv else None)


class LxOomScoreAdj(gdb.Function):
    """$lx_oom_score_adj(PID): the oom_score_adj of the task with PID."""

    def __init__(self) -> None:
        super().__init__("lx_oom_score_adj")

    def invoke(self, pid: gdb.Value) -> int:
        try:
            with kernel_cpu():
                _ensure_kernel("$lx_oom_score_adj")
                reader = _reader("$lx_oom_score_adj")
                task = reader.find_task(int(pid))
                if task is None:
                    raise gdb.GdbError(f"$lx_oom_score_adj: no task with PID {int(pid)}")
                return reader.task(task).oom_score_adj
        except gdb.GdbError:
            raise
        except (ReadError, gdb.error) as e:
            raise gdb.GdbError(f"$lx_oom_score_adj: {e}") from None


LxOom()
LxOomKaslr()
LxOomScoreAdj()
