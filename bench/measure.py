#!/usr/bin/env python3
"""One measurement in a fresh process (so peak memory is its own).

Usage: measure.py MODE VMCORE VMLINUX      (or --qemu SOCKET VMLINUX)
VMCORE may be raw RAM images, FILE@PADDR[,FILE@PADDR...].
MODE: open (the time to open the program itself, and answer one symbol and one type:
``seconds``), load (open the program only: the baseline), oomdrgn (the dump_tasks table),
oom-report (the whole OOM report: Mem-Info, table, victim, summary, kill line),
crash-ps (drgn's %crash ps -G), loop (a plain drgn loop computing the columns
field by field through drgn Objects).
Prints one JSON line: mode, seconds (after the program is loaded; modules are
imported before the clock starts), setup_seconds (oomdrgn: building its reader,
the fixed per-program part of the time: formats found in .rodata, offsets
from the debug info), rows, max_rss_kb.
"""

import contextlib
import io
import json
import resource
import sys
import time


def plain_loop(prog) -> int:
    """The dump_tasks columns, the obvious way, one drgn Object access per field."""
    from drgn.helpers.linux.list import list_for_each_entry
    out = io.StringIO()
    rows = 0
    for p in list_for_each_entry("struct task_struct", prog["init_task"].tasks.address_of_(),
                                 "tasks"):
        if p.flags.value_() & 0x00200000 or p.tgid.value_() == 1:
            continue
        t = None
        for th in list_for_each_entry("struct task_struct", p.signal.thread_head.address_of_(),
                                      "thread_node"):
            if th.mm:
                t = th
                break
        if t is None:
            continue
        mm = t.mm
        try:
            counts = [mm.rss_stat[i].count.value_() for i in range(4)]
        except (TypeError, IndexError, LookupError):
            counts = [mm.rss_stat.count[i].counter.value_() for i in range(4)]
        counts = [max(c, 0) for c in counts]
        print(t.pid.value_(), t.real_cred.uid.val.value_(), t.tgid.value_(),
              mm.total_vm.value_(), counts[0] + counts[1] + counts[3],
              mm.pgtables_bytes.counter.value_(), counts[2],
              t.signal.oom_score_adj.value_(), t.comm.string_(), file=out)
        rows += 1
    return rows


def main() -> int:
    mode, target = sys.argv[1], sys.argv[2:]
    from oomdrgn.drgn.program import open_program
    opened = time.perf_counter()
    if target[0] == "--qemu":
        prog = open_program(qemu=target[1], vmlinux=[target[2]])
    else:
        core = target[0].split(",") if "@" in target[0] else target[0]
        prog = open_program(core=core, vmlinux=[target[1]])
    # drgn loads lazily: make the program answer one type and symbol lookup
    # so that "loaded" means the same for every mode.
    prog["init_task"].pid.value_()
    prog.type("struct mm_struct")
    if mode == "open":
        print(json.dumps({"mode": mode, "seconds": time.perf_counter() - opened,
                          "setup_seconds": 0.0, "rows": 0,
                          "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        return 0
    from drgn.commands import run_command

    from oomdrgn.drgn.backend import DrgnReader
    from oomdrgn.core.oom import dump_tasks, format_dump_tasks
    from oomdrgn.core.oom_report import oom_control, oom_report
    rows = 0
    setup = 0.0
    t0 = time.perf_counter()
    if mode == "oomdrgn":
        reader = DrgnReader(prog)
        setup = time.perf_counter() - t0
        table = dump_tasks(reader)
        text = format_dump_tasks(reader, table)
        rows = len(table)
        assert text
    elif mode == "oom-report":
        reader = DrgnReader(prog)
        setup = time.perf_counter() - t0
        report = oom_report(reader, oom_control(reader))
        rows = len(next(s for s in report.sections if s.name == "tasks").lines) - 2
        assert report.lines
    elif mode == "crash-ps":
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            run_command(prog, "crash ps -G")
        rows = buf.getvalue().count("\n") - 1
    elif mode == "loop":
        rows = plain_loop(prog)
    elif mode != "load":
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "seconds": seconds, "setup_seconds": setup, "rows": rows,
                      "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
