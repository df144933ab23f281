"""Whole OOM scenarios on a real kernel: what it printed, plus a vmcore of the moment.

* :func:`panic_snapshot`: ``vm.panic_on_oom=1``; the dump is of the panicked
  guest, right after the kernel printed its task table.
* :func:`kill_moment`: a hardware breakpoint on ``__oom_kill_process`` stops
  the guest after the table and before the kill line; the dump is taken
  there, then the guest runs on and prints the real kill line.
"""

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .gdbstub import GdbStub, symbol_address
from .kernels import HarnessError, kernel_paths
from .population import DEFAULT_POPULATION, Member, start_hog, start_population
from .qemu import Guest

__all__ = ["Artifacts", "KILL_FUNCTION", "kill_moment", "kill_line", "oom_table",
           "panic_snapshot", "summary_line"]

KILL_FUNCTION = "__oom_kill_process"
_TABLE_END = ("oom-kill:", "Out of memory", "Kernel panic")
_KILLED = re.compile(r"^Out of memory: Killed process (\d+) ")


@dataclass
class Artifacts:
    """What one scenario left behind (lines have their printk timestamps stripped)."""

    kernel: str
    workdir: Path
    vmcore: Path
    dump_format: str
    console_lines: List[str]
    table_lines: List[str]
    kill_line: Optional[str]
    summary_line: Optional[str]
    victim_pid: Optional[int]
    pids: Dict[str, List[int]] = field(default_factory=dict)
    seconds: float = 0.0
    vmcores: Dict[str, Path] = field(default_factory=dict)  # format -> dump of the same moment

    def save(self) -> Path:
        """Write ``artifacts.json`` (all but the console lines) into the workdir."""
        data = {k: v for k, v in asdict(self).items() if k != "console_lines"}
        path = self.workdir / "artifacts.json"
        path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        return path


def oom_table(lines: Sequence[str]) -> List[str]:
    """The first ``dump_tasks()`` block in ``lines``: the ``Tasks state`` line if
    printed, the ``[  pid  ]`` header and every line up to the report's end."""
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("[  pid  ]"))
    except StopIteration:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(_TABLE_END)),
               len(lines))
    if start and lines[start - 1].startswith("Tasks state"):
        start -= 1
    return list(lines[start:end])


def kill_line(lines: Sequence[str]) -> Optional[str]:
    """The first ``Out of memory: Killed process`` line."""
    return next((line for line in lines if _KILLED.match(line)), None)


def summary_line(lines: Sequence[str]) -> Optional[str]:
    """The first ``oom-kill:`` summary line."""
    return next((line for line in lines if line.startswith("oom-kill:")), None)


def _workdir(workdir: Union[str, Path, None]) -> Path:
    path = Path(workdir or tempfile.mkdtemp(prefix="oomdrgn-scenario-", dir="/tmp"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _formats(fmt: Union[str, Sequence[str]]) -> List[str]:
    return [fmt] if isinstance(fmt, str) else list(fmt)


def _dump_all(guest: Guest, workdir: Path, formats: List[str]) -> Dict[str, Path]:
    return {f: guest.dump(workdir / f"vmcore.{f}", f) for f in formats}


def _artifacts(kernel: str, workdir: Path, vmcores: Dict[str, Path], lines: List[str],
               pids: Dict[str, List[int]], started: float) -> Artifacts:
    kill = kill_line(lines)
    fmt, vmcore = next(iter(vmcores.items()))
    art = Artifacts(kernel=kernel, workdir=workdir, vmcore=vmcore, dump_format=fmt,
                    vmcores=vmcores,
                    console_lines=lines, table_lines=oom_table(lines), kill_line=kill,
                    summary_line=summary_line(lines),
                    victim_pid=int(_KILLED.match(kill).group(1)) if kill else None,
                    pids=pids, seconds=round(time.monotonic() - started, 1))
    if not art.table_lines:
        raise HarnessError(f"{kernel}: no task table on the console (see {workdir})")
    art.save()
    return art


def panic_snapshot(kernel: str, workdir: Union[str, Path, None] = None,
                   population: Sequence[Member] = DEFAULT_POPULATION,
                   fmt: Union[str, Sequence[str]] = "elf",
                   timeout: float = 600.0) -> Artifacts:
    """Run ``population`` and a hog with ``vm.panic_on_oom=1``; dump the panicked guest.

    :param workdir: kept, holds ``console.log``, ``vmcore.<fmt>``, ``artifacts.json``.
    :param fmt: ``"elf"`` or ``"kdump-zlib"``, or several: one dump each, same moment.
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    with Guest(kernel, workdir=str(workdir)) as guest:
        guest.run("sysctl -w vm.panic_on_oom=1")
        pids = start_population(guest, population)
        pids["oomhog"] = [start_hog(guest)]
        guest.wait_status("guest-panicked", timeout)
        vmcores = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started)


def kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = DEFAULT_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf",
                timeout: float = 600.0, cpu: int = 0) -> Artifacts:
    """Run ``population`` and a hog pinned to ``cpu``; dump at ``__oom_kill_process``.

    Pinning to one CPU keeps the victim from flushing its counters (on its way
    out, on another CPU) before the kernel prints the kill line.
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    address = symbol_address(kernel_paths(kernel).vmlinux, KILL_FUNCTION)
    with Guest(kernel, workdir=str(workdir), gdb=True) as guest:
        pids = start_population(guest, population, cpu=cpu)
        with GdbStub(guest.gdb_port, log_path=workdir / "gdb.log") as gdb:
            gdb.hbreak(address)
            gdb.cont()
            pids["oomhog"] = [start_hog(guest, cpu=cpu)]
            gdb.wait_stop(timeout)
            vmcores = _dump_all(guest, workdir, _formats(fmt))
            gdb.detach()
        guest.wait_console(_KILLED.pattern, timeout=120)
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started)
