"""``lx-oom`` in ``gdb-multiarch`` on this x86-64 host, attached to an arm64
guest's gdbstub and stopped by a hardware breakpoint on ``__oom_kill_process``:
its table and kill line equal what the arm64 kernel printed."""

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from oomdrgn.testing.harness import Guest, kill_line, oom_table, start_hog, start_population

from .gdbsession import GdbSession
from .test_gdb import GDB_POPULATION

# x86-64 guests: test_gdb.py (KASLR, idle and memcg questions, report); here the
# kill moment through gdb-multiarch, booted nokaslr (no KASLR seed on -M virt).
pytestmark = [pytest.mark.vm, pytest.mark.arch("aarch64")]

_KILLED = r"^Out of memory: Killed process \d+ "


@pytest.fixture(scope="module")
def arm64_gdb(kernel):
    workdir = Path(tempfile.mkdtemp(prefix=f"oomdrgn-gdb-{kernel.name}-", dir="/tmp"))
    out = {}
    started = time.monotonic()
    try:
        # gdb=True boots with nokaslr: the vmlinux's addresses hold as linked.
        with Guest(kernel.name, workdir=str(workdir / "guest"), gdb=True) as guest:
            pids = start_population(guest, GDB_POPULATION, cpu=0)
            with GdbSession(log_path=workdir / "gdb.log", program="gdb-multiarch",
                            architecture="aarch64") as gdb:
                gdb.connect(guest.gdb_port)
                gdb.cmd(f"symbol-file {kernel.vmlinux}", timeout=600)
                out["idle_kill"] = gdb.cmd(f"lx-oom kill {pids['gdb-victim'][0]}", timeout=300)
                assert "reakpoint 1 at" in gdb.cmd("hbreak *__oom_kill_process")
                gdb.resume()
                start_hog(guest, cpu=0)
                out["stop"] = gdb.wait_stop(timeout=300)
                out["tasks"] = gdb.cmd("lx-oom tasks")
                # __oom_kill_process(struct task_struct *victim, ...): x0 on arm64.
                victim = int(gdb.cmd(
                    'python print(int(gdb.parse_and_eval("$x0").cast(gdb.lookup_type('
                    '"struct task_struct").pointer()).dereference()["pid"]))').strip())
                out["kill"] = gdb.cmd(f"lx-oom kill {victim}")
                gdb.detach()
            guest.wait_console(_KILLED, timeout=120)
            lines = guest.kernel_lines()
        out["table_lines"] = oom_table(lines)
        out["kill_line"] = kill_line(lines)
        out["seconds"] = round(time.monotonic() - started, 1)
        print(f"\n{kernel.name}: gdb-multiarch session {out['seconds']} s")
        yield out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(1200)
def test_lx_oom_table_is_the_kernels(arm64_gdb):
    assert "__oom_kill_process" in arm64_gdb["stop"], arm64_gdb["stop"]
    rows = [l for l in arm64_gdb["table_lines"] if l.startswith("[") and "pid" not in l]
    assert len(rows) >= 8, arm64_gdb["table_lines"]
    assert arm64_gdb["tasks"] == "".join(l + "\n" for l in arm64_gdb["table_lines"])


@pytest.mark.timeout(1200)
def test_lx_oom_kill_line_is_the_kernels(arm64_gdb):
    assert arm64_gdb["kill_line"] and "(gdb-victim)" in arm64_gdb["kill_line"]
    assert arm64_gdb["kill"] == arm64_gdb["kill_line"] + "\n"
    # Before the OOM, the same victim's line differs only in what changed since.
    assert arm64_gdb["idle_kill"].startswith("Out of memory: Killed process "), \
        arm64_gdb["idle_kill"]
