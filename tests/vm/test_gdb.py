"""``lx-oom`` in a real GDB attached to QEMU's gdbstub, guest booted with KASLR on.

Per kernel, one guest and one GDB session (the vmlinux is read once):

* the guest is interrupted (Ctrl-C) while its population sleeps: ``lx-oom``
  equals oomdrgn (drgn) on a kdump of that stopped state;
* a hardware breakpoint on ``__oom_kill_process`` stops it mid-OOM: ``lx-oom
  tasks`` equals the table the kernel printed and drgn on a dump of that state;
  ``lx-oom kill VICTIM`` equals the line the kernel prints once GDB detaches.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from oomdrgn.core.elffile import symbol_values
from oomdrgn.testing.harness import (KERNEL_NAMES, Guest, Member, kernel_paths, kill_line, oom_table,
                             start_hog, start_population, summary_line)

from ..runner import run_oomdrgn
from .gdbsession import PLUGIN, GdbSession

# x86-64 guests (gdb, KASLR, the first argument in $rdi); arm64: test_gdb_arm64.py.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]

# The victim (highest oom_score_adj) is multi-threaded and its leader has
# exited: the kill line names the thread that still has the mm.
GDB_POPULATION = (
    Member("gdb-unkillable", anon_mb=3, adj=-1000),
    Member("gdb-root", anon_mb=6, shmem_mb=2),
    Member("gdb-user", anon_mb=2, shmem_mb=6, adj=500, uid=1000),
    Member("gdb-victim", anon_mb=4, shmem_mb=1, adj=1000, uid=4242, threads=2, leader_exit=True),
    Member("gdb-forks", anon_mb=1, adj=-300, uid=65534, fork=2),
    # A memcg subtree: lx-oom tasks/victim --memcg walk it over GDB.
    Member("gdb-job-a", anon_mb=2, adj=200, cgroup="gdbjob/a"),
    Member("gdb-job-b", anon_mb=3, uid=1000, cgroup="gdbjob/b", fork=1),
)
#: lx-oom commands asked while the guest is interrupted, and the same oomdrgn
#: command line on a dump of that state.
IDLE_QUESTIONS = {
    "tasks": "tasks", "json": "tasks --json",
    "memcg tasks": "tasks --memcg /gdbjob", "memcg victim": "victim --memcg /gdbjob --all",
    "memcg summary": None,  # needs a PID: added in _run
    "victim": "victim --all", "score": "score",
}
_KILLED = r"^Out of memory: Killed process \d+ "


@dataclass
class GdbRun:
    """What one kernel's GDB session printed, and drgn's answers on dumps of the same states."""

    kernel: str
    cmdline: str = ""
    #: The KASLR offset, from the guest's /proc/kallsyms and the vmlinux.
    offset: Optional[int] = None
    kaslr: str = ""
    kaslr_again: str = ""
    seconds: Dict[str, float] = field(default_factory=dict)
    pids: Dict[str, List[int]] = field(default_factory=dict)
    # Interrupted while idle.
    idle: Dict[str, str] = field(default_factory=dict)
    idle_drgn: Dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)
    # Stopped at __oom_kill_process.
    stop: str = ""
    victim_pid: Optional[int] = None
    kill_tasks: str = ""
    kill_line: str = ""
    score_adj: str = ""
    summary: str = ""
    kill_drgn: Optional[subprocess.CompletedProcess] = None
    report: str = ""
    report_drgn: Optional[subprocess.CompletedProcess] = None
    oom_report: str = ""
    oom_report_drgn: Optional[subprocess.CompletedProcess] = None
    # What the kernel printed.
    table_lines: List[str] = field(default_factory=list)
    printed_kill_line: Optional[str] = None
    printed_summary: Optional[str] = None


def _idle_questions(run: "GdbRun") -> Dict[str, str]:
    victim = run.pids["gdb-victim"][0]
    job_b = run.pids["gdb-job-b"][0]
    questions = {k: v for k, v in IDLE_QUESTIONS.items() if v is not None}
    questions["kill"] = f"kill {victim}"
    # No OOM in progress: the task that hits it is named.
    questions["memcg summary"] = f"summary {job_b} --memcg /gdbjob --current {job_b}"
    questions["memcg kill"] = f"kill {job_b} --memcg"
    return questions


def _oomdrgn(*args) -> subprocess.CompletedProcess:
    return run_oomdrgn(*args, check_status=None)


def _run(kernel, workdir: Path) -> GdbRun:
    run = GdbRun(kernel.name)
    other = kernel_paths(next(n for n in KERNEL_NAMES if n != kernel.name))
    started = time.monotonic()

    def mark(step: str) -> None:
        run.seconds[step] = round(time.monotonic() - started, 1)

    with Guest(kernel.name, workdir=str(workdir / "guest"), gdb=True, nokaslr=False) as guest:
        mark("boot")
        run.cmdline = next((l for l in guest.kernel_lines() if l.startswith("Command line:")), "")
        run.pids = start_population(guest, GDB_POPULATION, cpu=0)
        run.offset = guest.kallsyms("linux_banner") - symbol_values(
            str(kernel.vmlinux), ("linux_banner",))["linux_banner"][0]
        mark("population")
        with GdbSession(log_path=workdir / "gdb.log") as gdb:
            gdb.connect(guest.gdb_port)
            # Another build's vmlinux is refused before any symbol is touched.
            run.errors["other vmlinux"] = gdb.cmd(f"lx-oom-kaslr {other.vmlinux}")
            # ELF symbols only, at their link addresses (cheap: the debug info is
            # read once, below): the first lx-oom finds the offset itself and
            # reloads the vmlinux there. KASLR may leave the kernel at its link
            # address (slot 0 of ~480): the symbols are then loaded 2 MiB off, so
            # that there is always an offset to find.
            moved = "" if run.offset else "-o 0x200000 "
            gdb.cmd(f"symbol-file -readnever {moved}{kernel.vmlinux}")
            run.kaslr = gdb.cmd("lx-oom kill 1", timeout=300)
            mark("symbols")
            run.kaslr_again = gdb.cmd(f"lx-oom-kaslr {kernel.vmlinux}")

            # (2) An arbitrary point: Ctrl-C while the population sleeps.
            gdb.resume()
            time.sleep(2)
            gdb.interrupt()
            questions = _idle_questions(run)
            for key, line in questions.items():
                run.idle[key] = gdb.cmd(f"lx-oom {line}")
            mark("idle lx-oom")
            run.errors["unknown pid"] = gdb.cmd("lx-oom kill 999999")
            run.errors["bad subcommand"] = gdb.cmd("lx-oom bogus")
            run.errors["help"] = gdb.cmd("lx-oom -h")
            run.errors["still alive"] = gdb.cmd("print 6*7")
            idle_dump = guest.dump(workdir / "idle.kdump", "kdump-zlib")
            mark("idle dump")

            # (1) The kill moment: after the table, before the kill line.
            out = gdb.cmd("hbreak *__oom_kill_process")
            assert "reakpoint 1 at" in out, out
            gdb.resume()
            run.pids["oomhog"] = [start_hog(guest, cpu=0)]
            run.stop = gdb.wait_stop(timeout=300)
            mark("oom stop")
            run.kill_tasks = gdb.cmd("lx-oom tasks")
            # __oom_kill_process(struct task_struct *victim, ...): stopped at its
            # first instruction, the victim is the first argument.
            # (Through Python: "print ((struct task_struct *)$rdi)->pid" parses
            # the type in the frame's scope and takes GDB a minute.)
            run.victim_pid = int(gdb.cmd(
                'python print(int(gdb.parse_and_eval("$rdi").cast(gdb.lookup_type('
                '"struct task_struct").pointer()).dereference()["pid"]))').strip())
            run.kill_line = gdb.cmd(f"lx-oom kill {run.victim_pid}")
            run.score_adj = gdb.cmd(f"output $lx_oom_score_adj({run.victim_pid})")
            run.summary = gdb.cmd(f"lx-oom summary {run.victim_pid}")
            # The OOM in progress: its invoked line, table and summary are in
            # the printk ring already.
            run.report = gdb.cmd("lx-oom report")
            run.oom_report = gdb.cmd("lx-oom oom-report --json", timeout=300)
            mark("kill lx-oom")
            kill_dump = guest.dump(workdir / "kill.kdump", "kdump-zlib")
            gdb.detach()
        guest.wait_console(_KILLED, timeout=120)
        lines = guest.kernel_lines()
        run.table_lines = oom_table(lines)
        run.printed_kill_line = kill_line(lines)
        run.printed_summary = summary_line(lines)
    mark("kernel kill line")
    vmlinux = kernel.vmlinux
    for key, line in _idle_questions(run).items():
        run.idle_drgn[key] = _oomdrgn("-c", idle_dump, "-s", vmlinux, "-q", *line.split())
    run.kill_drgn = _oomdrgn("-c", kill_dump, "-s", vmlinux, "-q", "tasks")
    run.report_drgn = _oomdrgn("-c", kill_dump, "-s", vmlinux, "-q", "report")
    run.oom_report_drgn = _oomdrgn("-c", kill_dump, "-s", vmlinux, "-q", "oom-report", "--json")
    mark("drgn")
    return run


@pytest.fixture(scope="module")
def gdb_run(kernel):
    """The whole session for one kernel; QEMU and GDB are gone when it returns."""
    workdir = Path(tempfile.mkdtemp(prefix=f"oomdrgn-gdb-{kernel.name}-", dir="/tmp"))
    try:
        run = _run(kernel, workdir)
        print(f"\n{kernel.name}: seconds since start {run.seconds}", file=sys.stderr)
        yield run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def printed(lines) -> str:
    return "".join(line + "\n" for line in lines)


@pytest.mark.timeout(600)
def test_kaslr_offset_found_and_symbols_loaded(gdb_run):
    assert "nokaslr" not in gdb_run.cmdline and gdb_run.cmdline, gdb_run.cmdline
    lines = gdb_run.kaslr.splitlines()
    assert lines[0] == ("lx-oom: the loaded symbols do not match the running kernel (KASLR?): "
                        "relocating them"), gdb_run.kaslr
    m = re.match(r"lx-oom: the kernel runs at (0x[0-9a-f]+) from its link address; loading ",
                 lines[1])
    assert m, gdb_run.kaslr
    offset = m.group(1)
    assert int(offset, 16) == gdb_run.offset, (offset, gdb_run.offset)
    assert lines[-1].startswith("Out of memory: Killed process 1 (init) "), gdb_run.kaslr
    assert gdb_run.kaslr_again.strip().endswith(
        f"already match the running kernel (offset {offset})"), gdb_run.kaslr_again
    assert re.search(r"(?i)breakpoint 1, (0x[0-9a-f]+ in )?__oom_kill_process", gdb_run.stop), \
        gdb_run.stop


@pytest.mark.timeout(600)
def test_kill_moment_table_is_the_kernels(gdb_run):
    rows = [l for l in gdb_run.table_lines if l.startswith("[") and "pid" not in l]
    assert len(rows) >= 8, gdb_run.table_lines
    assert gdb_run.kill_tasks == printed(gdb_run.table_lines)


@pytest.mark.timeout(600)
def test_kill_moment_table_equals_drgn_on_its_dump(gdb_run):
    assert gdb_run.kill_drgn.returncode == 0, gdb_run.kill_drgn.stderr
    assert gdb_run.kill_tasks == gdb_run.kill_drgn.stdout


@pytest.mark.timeout(600)
def test_kill_line_is_the_kernels(gdb_run):
    assert gdb_run.printed_kill_line and "(gdb-victim)" in gdb_run.printed_kill_line
    # The kernel was handed the group leader (it has exited); the line names
    # the thread find_lock_task_mm() found, and so does lx-oom kill TGID.
    assert gdb_run.victim_pid == gdb_run.pids["gdb-victim"][0]
    assert gdb_run.kill_line == gdb_run.printed_kill_line + "\n"
    assert gdb_run.score_adj.strip() == "1000"


@pytest.mark.timeout(600)
def test_summary_line_is_the_kernels(gdb_run):
    # The task that hit the OOM is found on the only busy CPU (per-CPU runqueues).
    assert gdb_run.printed_summary, "the kernel printed no oom-kill: line"
    assert gdb_run.summary == gdb_run.printed_summary + "\n"


@pytest.mark.timeout(600)
def test_interrupted_guest_equals_drgn_on_its_dump(gdb_run):
    for key, res in gdb_run.idle_drgn.items():
        assert res.returncode == 0, (key, res.stderr)
        # Every question, memcg-scoped ones included, the same answer over GDB.
        if key != "json":
            assert gdb_run.idle[key] == res.stdout, key
    assert gdb_run.idle["tasks"] == gdb_run.idle_drgn["tasks"].stdout
    memcg_rows = gdb_run.idle["memcg tasks"].splitlines()[2:]
    assert [r.split()[-1] for r in memcg_rows] == ["gdb-job-a", "gdb-job-b", "gdb-job-b"]
    assert "constraint=CONSTRAINT_MEMCG" in gdb_run.idle["memcg summary"]
    assert "oom_memcg=/gdbjob,task_memcg=/gdbjob/b" in gdb_run.idle["memcg summary"]
    assert "gdb-victim" in gdb_run.idle["tasks"]
    # The JSON carries the detected formats and counter rules: the same evidence.
    assert json.loads(gdb_run.idle["json"]) == json.loads(gdb_run.idle_drgn["json"].stdout)
    assert gdb_run.idle["kill"] == gdb_run.idle_drgn["kill"].stdout
    assert gdb_run.idle["kill"].startswith("Out of memory: Killed process ")


@pytest.mark.timeout(600)
def test_report_over_gdb_equals_drgn_on_its_dump(gdb_run):
    # The kernel log read from the printk ring over GDB: the OOM in progress
    # (invoked line, table, summary; no kill line yet) set beside memory.
    assert gdb_run.report_drgn.returncode == 0, gdb_run.report_drgn.stderr
    assert gdb_run.report == gdb_run.report_drgn.stdout
    assert "invoked by: oomhog" in gdb_run.report
    assert "same" in gdb_run.report and "gdb-victim" in gdb_run.report


@pytest.mark.timeout(600)
def test_user_errors_are_gdb_errors(gdb_run):
    for what, out in gdb_run.errors.items():
        assert "Traceback" not in out and "Python Exception" not in out, (what, out)
    assert gdb_run.errors["unknown pid"].strip() == "lx-oom: no task with PID 999999"
    assert "lx-oom: error: argument COMMAND: invalid choice: 'bogus'" in gdb_run.errors[
        "bad subcommand"]
    assert gdb_run.errors["help"].startswith("usage: lx-oom ")
    assert gdb_run.errors["still alive"].strip() == "$1 = 42"
    assert "is nowhere in the target's kernel image area" in gdb_run.errors["other vmlinux"] \
        or "is not the build the target runs" in gdb_run.errors["other vmlinux"]


# The loader, in GDB's own Python (the system python3: no venv, no drgn) -------------

def _gdb_batch(*commands: str, env: Optional[dict] = None, cwd: Optional[str] = None) -> str:
    gdb = shutil.which("gdb")
    assert gdb, "gdb not found: install gdb"
    args = [gdb, "-nx", "-q", "-batch"]
    for c in commands:
        args += ["-ex", c]
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd,
                         env=dict(os.environ, TERM="dumb", **(env or {})))
    return res.stdout + res.stderr


@pytest.mark.timeout(120)
def test_plugin_loads_without_drgn_and_needs_no_target_for_parse(tmp_path):
    log = Path(__file__).resolve().parents[1] / "data" / "logs" / "6.1-oom.log"
    out = _gdb_batch(f"source {PLUGIN}",
                     "python import sys; print('drgn loaded:', 'drgn' in sys.modules)",
                     "lx-oom tasks", "lx-oom-kaslr", f"lx-oom parse {log}")
    assert "drgn loaded: False" in out, out
    assert "lx-oom: no target: attach to the kernel first" in out
    assert "lx-oom-kaslr: no target: attach to the kernel first" in out
    assert "Out of memory: Killed process" in out  # parse re-rendered the log's kill line
    assert "Traceback" not in out and "Python Exception" not in out, out


@pytest.mark.timeout(120)
def test_plugin_found_through_a_symlink_or_pythonpath(tmp_path):
    link = tmp_path / "oomdrgn-gdb.py"
    link.symlink_to(PLUGIN)
    out = _gdb_batch(f"source {link}", "python import oomdrgn; print(oomdrgn.__file__)")
    assert str(PLUGIN.parents[1] / "src" / "oomdrgn" / "__init__.py") in out, out
    copy = tmp_path / "copy" / "oomdrgn-gdb.py"
    copy.parent.mkdir()
    shutil.copy(PLUGIN, copy)
    out = _gdb_batch(f"source {copy}", "help lx-oom-kaslr",
                     env={"PYTHONPATH": str(PLUGIN.parents[1] / "src")})
    assert "Load the vmlinux symbols where the kernel runs (KASLR)." in out, out
    out = _gdb_batch(f"source {copy}", "help lx-oom-kaslr", env={"PYTHONPATH": ""})
    installed = "Error" not in _gdb_batch("python import oomdrgn", env={"PYTHONPATH": ""})
    if installed:  # oomdrgn installed for the system python3: the copy uses it
        assert "Load the vmlinux symbols where the kernel runs (KASLR)." in out, out
    else:
        assert "oomdrgn-gdb: cannot find oomdrgn" in out, out


def _sections(text: str) -> dict:
    doc = json.loads(text[text.index("{"):])
    return {s["name"]: s["lines"] for s in doc["sections"]}


@pytest.mark.timeout(600)
def test_oom_report_over_gdb_equals_drgn_on_its_dump(gdb_run):
    # The whole report at the kill moment: GDB has no struct oom_control and no
    # frames, so gfp_mask and order come from the OOM's own invoked line in the
    # printk ring; every exact part equals drgn's on the dump of that moment.
    assert gdb_run.oom_report_drgn.returncode == 0, gdb_run.oom_report_drgn.stderr
    ours, drgn = _sections(gdb_run.oom_report), _sections(gdb_run.oom_report_drgn.stdout)
    assert ours.pop("frames") == []
    drgn.pop("frames")
    assert ours == drgn
    assert {"invoked", "dump_stack", "show_mem", "tasks", "summary", "kill"} <= set(ours)
