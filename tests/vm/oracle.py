"""Helpers for the real-kernel tests."""

import re
import shutil
import tempfile
from typing import List, Optional

from ..runner import run_oomdrgn  # noqa: F401  (the real-kernel tests take it from here)

FORMATS = ("elf", "kdump-zlib")  # every moment is dumped in both of QEMU's formats
_CPU = re.compile(r"^CPU: (\d+) ")
PANIC = "Kernel panic - not syncing"


def header_cpu(line: str) -> int:
    """N of a ``dump_stack()`` header's ``CPU: N ...`` line."""
    return int(_CPU.match(line)[1])


def after_panic(lines: List[str]) -> Optional[List[str]]:
    """What ``panic()`` printed after its last ``Kernel panic - not syncing``
    line, its ``dump_stack()`` first (None: no panic)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(PANIC)]
    return lines[starts[-1] + 1:] if starts else None


def panic_cpu(lines: List[str]) -> Optional[int]:
    """The CPU ``panic()`` ran on, from the ``dump_stack()`` header it printed
    (:func:`after_panic`; None: no panic). The panicking task stays there
    (``vpanic()`` disables preemption first), so a dump taken at the panic
    holds it as its ``task_cpu``; a move since the OOM's own header is proven
    where the two CPUs differ."""
    after = after_panic(lines)
    return header_cpu(after[0]) if after is not None else None


def check_fast_path(vmcore, vmlinux, percpu: bool) -> None:
    """oomdrgn's fast path (raw reads; direct-map blocks read by physical
    address) gives, for every thread of every process in *vmcore*, the records
    drgn Objects give (``task_slow``/``mm_slow``); its one-loop table
    (``dump_tasks_static()``) the rows made of those records."""
    from oomdrgn.drgn.backend import DrgnReader
    from oomdrgn.drgn.program import open_program
    reader = DrgnReader(open_program(core=str(vmcore), vmlinux=[str(vmlinux)]))
    if reader.info.counter_layout != "percpu":
        percpu = False  # atomic counters have no per-CPU part
    seen = 0
    for p in reader.processes():
        for t in reader.threads(p):
            assert reader.task(t) == reader.task_slow(t)
            mm = reader.task(t).mm
            if mm:
                assert reader.mm(mm, percpu) == reader.mm_slow(mm, percpu)
                seen += 1
    assert seen > 10
    # The direct map was read by physical address and agreed with drgn's reading.
    assert reader.target._linear is not None and reader.target._checked
    # dump_tasks()'s one-loop rows are the rows built record by record.
    from oomdrgn.core.oom import process_row
    fresh = DrgnReader(open_program(core=str(vmcore), vmlinux=[str(vmlinux)]))
    static = fresh.dump_tasks_static()  # its own walk: before any other
    if fresh.info.rules["table"] == "percpu-sum":  # 7.x: the record-by-record rows
        assert static is None
        return
    assert static is not None and len(static) > 10
    generic = [process_row(reader, p, False, {}) for p in reader.processes()]
    assert static == [r for r in generic if r is not None]


def scenario(fn, kernel, formats=FORMATS, **kw):
    """``fn(kernel.name, workdir, fmt=formats, **kw)`` in a fresh /tmp workdir,
    removed if the scenario fails (else by the fixture, with its dumps)."""
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-{fn.__name__}-{kernel.name}-", dir="/tmp")
    try:
        return fn(kernel.name, workdir, fmt=formats, **kw)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def panic_report(art):
    """The console lines of a panic's report (no kill line: from its invoked line
    to ``Kernel panic``), by part (:func:`oomdrgn.core.report_sections.split_report`)."""
    from oomdrgn.core.report_sections import split_report
    lines = art.console_lines
    start = max(i for i, text in enumerate(lines) if " invoked oom-killer: " in text)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Kernel panic"))
    return split_report(lines[start:end])


def assert_scores_are_the_guests(score_json: str, idle) -> None:
    """``oomdrgn score --json`` equals every ``/proc/PID/oom_score`` the idle
    scenario read in the guest (but the reader's own, read mid-scan)."""
    import json
    ours = {d["pid"]: d["oom_score"] for d in json.loads(score_json)}
    reader = idle.pids["oomscores"][0]
    compared = 0
    for pid, score in idle.scores.items():
        if pid == reader or pid not in ours:
            continue  # the reader itself was mid-scan; threads are not listed
        assert ours[pid] == score, (pid, ours[pid], score)
        compared += 1
    assert compared >= len(idle.pids) - 1


def symbols_asked(vmcore, vmlinux, commands):
    """Run each of *commands* (argument lists) in process on *vmcore* with the
    debug vmlinux; ``(prog, asked, failed)``: the program, ``{symbol: answer}``
    of every symbol the commands asked the drgn port for, and ``(argv, error)``
    of each command that failed."""
    import io

    from oomdrgn.cli import build_parser
    from oomdrgn.commands.subcommands import run_command
    from oomdrgn.core.errors import OomdrgnError
    from oomdrgn.drgn import port as drgn_port
    from oomdrgn.drgn.backend import reader_for
    from oomdrgn.drgn.program import open_program
    asked, failed, real = {}, [], drgn_port.DrgnPort.symbol

    def spy(port, name):
        asked[name] = real(port, name)
        return asked[name]
    drgn_port.DrgnPort.symbol = spy
    try:
        prog = open_program(core=str(vmcore), vmlinux=[str(vmlinux)])
        reader = reader_for(prog)
        for argv in commands:
            try:
                run_command(reader, build_parser().parse_args(["-c", str(vmcore)] + argv),
                            io.StringIO())
            except OomdrgnError as e:
                failed.append((argv, str(e)))
    finally:
        drgn_port.DrgnPort.symbol = real
    return prog, asked, failed


def panic_dump_once(cache: dict, make, kernel, panic):
    """``make(vmcore, vmlinux, config)`` of *kernel*'s panic dump (ELF), made once
    and kept in *cache* while that kernel's tests run (one kernel's at a time)."""
    key = (kernel.name, str(panic.vmcores["elf"]))
    if key not in cache:
        cache.clear()
        cache[key] = make(str(panic.vmcores["elf"]), str(kernel.vmlinux), str(kernel.config))
    return cache[key]
