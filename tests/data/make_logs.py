#!/usr/bin/env python3
"""Regenerate ``tests/data/logs/``: OOM reports that real kernels printed under QEMU.

    .venv/bin/python tests/data/make_logs.py [KERNEL ...]   (default: every kernel)

Per kernel (one QEMU at a time, a few minutes in all under TCG):

``<kernel>-oom.log``
    The console of a guest where a hog first fills a memory cgroup (a memcg
    OOM: ``Memory cgroup out of memory: Killed process``), then the whole
    guest (global OOMs until the hog itself is killed), with the oom_reaper's
    lines. The population includes a process whose comm has spaces.
``<kernel>-panic.log``
    The console of :func:`oomdrgn.testing.harness.panic_snapshot` (``vm.panic_on_oom=1``):
    a report cut short by the panic (no summary, no kill line).
``<kernel>-printk-caller.log``
    The printk buffer of that panic's vmcore, rendered by
    :func:`oomdrgn.drgn.printk.kernel_log_lines` with the caller ids the kernel saved
    (``[    8.406107][  T195] ...``, as a ``CONFIG_PRINTK_CALLER`` console prints them;
    the Debian kernels do not set that option, so their own consoles cannot show it).

Every file is cut to the OOM reports and a few lines around them (timestamps
kept, lines otherwise untouched). No line is typed by hand.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence

from oomdrgn.testing.harness import (DEFAULT_POPULATION, KERNEL_NAMES, Guest, Member, kernel_paths,
                             open_vmcore, panic_snapshot, start_hog, start_population)
from oomdrgn.drgn.printk import kernel_log_lines

LOGS = Path(__file__).resolve().parent / "logs"
CONTEXT = 3  # unrelated lines kept before the first and after the last OOM line
# The default population plus a comm with spaces (the table's name column is
# everything after oom_score_adj).
POPULATION = DEFAULT_POPULATION + (Member("pop two words", anon_mb=1, adj=200),)
CGROUP = "/sys/fs/cgroup/oomtest"
_OOM_MARKS = ("invoked oom-killer", "oom-kill:", "Killed process", "oom_reaper:",
              "Kernel panic", "Tasks state", "[  pid  ]")


def _is_oom(line: str) -> bool:
    return any(m in line for m in _OOM_MARKS)


def trim(lines: Sequence[str]) -> List[str]:
    """From ``CONTEXT`` lines before the first OOM line to ``CONTEXT`` after the last."""
    marks = [i for i, line in enumerate(lines) if _is_oom(line)]
    if not marks:
        raise RuntimeError("no OOM report in the log")
    return list(lines[max(0, marks[0] - CONTEXT):marks[-1] + CONTEXT + 1])


def _write(name: str, lines: Sequence[str]) -> None:
    path = LOGS / name
    path.write_text("".join(line + "\n" for line in trim(lines)), errors="surrogateescape")
    print(f"{path} ({len(trim(lines))} lines)")


def oom_log(kernel: str, workdir: Path) -> List[str]:
    """A memcg OOM, then global OOMs until the hog is killed; the console lines."""
    with Guest(kernel, workdir=str(workdir)) as guest:
        start_population(guest, POPULATION)
        guest.run(f"mkdir {CGROUP} && echo 24M > {CGROUP}/memory.max")
        into = f"echo $$ > {CGROUP}/cgroup.procs; exec"
        guest.start(f"sh -c '{into} oompop --name cg-member --anon 2'", "/tmp/cgpop.out")
        guest.run("until grep -q ^ready /tmp/cgpop.out; do sleep 0.2; done", timeout=120)
        guest.start(f"sh -c '{into} oomhog --name cg-hog'", "/tmp/cghog.out")
        guest.wait_console(r"^Memory cgroup out of memory: Killed process \d+ \(cg-hog\)", 300)
        start_hog(guest)
        guest.wait_console(r"Killed process \d+ \(oomhog\)", 300)
        time.sleep(5)  # the oom_reaper's lines
        return guest.console_text().splitlines()


def panic_logs(kernel: str, workdir: Path) -> tuple:
    """The console of a panic_on_oom panic, and its vmcore's printk buffer with caller ids."""
    art = panic_snapshot(kernel, workdir, fmt="elf")
    console = (art.workdir / "console.log").read_text(errors="replace").replace("\r", "")
    prog = open_vmcore(art.vmcores["elf"], kernel_paths(kernel).vmlinux)
    return console.splitlines(), kernel_log_lines(prog, caller=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("kernels", nargs="*", default=list(KERNEL_NAMES))
    args = parser.parse_args(argv)
    LOGS.mkdir(exist_ok=True)
    for kernel in args.kernels:
        for what in ("oom", "panic"):
            workdir = Path(tempfile.mkdtemp(prefix=f"oomdrgn-logs-{kernel}-", dir="/tmp"))
            try:
                if what == "oom":
                    _write(f"{kernel}-oom.log", oom_log(kernel, workdir))
                else:
                    console, printk = panic_logs(kernel, workdir)
                    _write(f"{kernel}-panic.log", console)
                    _write(f"{kernel}-printk-caller.log", printk)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
