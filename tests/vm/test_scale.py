"""Scale: oomdrgn's default (fast) path on a real guest of 10,000 processes,
against the table the kernel itself printed for them (sysrq-f, with
``log_buf_len=8M`` so the log keeps every row).

The guest has 1.5 GB: it is dumped as kdump-zlib, whose zero pages take no
room, not as a 1.5 GB ELF file that a nearly full disk refuses.

One kernel per counter layout: 6.1 (atomic counters) and 7.x (per-CPU
counters summed over every possible CPU).
"""

import re
import shutil
import tempfile

import pytest

from oomdrgn.testing.harness import Member, kernel_paths, sysrq_table

from .oracle import run_oomdrgn

PROCESSES = 10_000
_ROW = re.compile(r"^\[\s*(\d+)\]")


@pytest.fixture(scope="module", params=["6.1", "7.x"])
def scale(request):
    name = request.param
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-scale-{name}-", dir="/tmp")
    try:
        # ~130 KiB per idle process besides the 256 MB of the small guests.
        art = sysrq_table(name, workdir, population=[Member("idle", fork=PROCESSES - 1)],
                          fmt="kdump-zlib", memory_mb=256 + PROCESSES * 130 // 1024,
                          append="log_buf_len=8M", timeout=1200)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    yield kernel_paths(name), art
    shutil.rmtree(workdir, ignore_errors=True)


def _by_pid(lines):
    return {int(m.group(1)): line for line in lines if (m := _ROW.match(line))}


@pytest.mark.timeout(1800)
def test_fast_path_table_is_the_kernels_at_10k_processes(scale):
    kernel, art = scale
    printed = _by_pid(art.table_lines)
    assert len(printed) > PROCESSES, "the kernel's log lost rows: log_buf_len too small?"
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "tasks")
    mine = _by_pid(res.stdout.splitlines())
    victim = int(re.search(r"Killed process (\d+)", art.kill_line).group(1))
    # Between the table and the dump: the victim was killed (and maybe reaped),
    # the shell that wrote to /proc/sysrq-trigger ran again and the guest's
    # shell may have started processes (absent from the table). Nothing else moved.
    differ = {pid for pid in printed.keys() | mine.keys() if printed.get(pid) != mine.get(pid)}
    population = {pid for pids in art.pids.values() for pid in pids}
    assert len(population) == PROCESSES
    newer = {pid for pid in mine.keys() - printed.keys() if pid not in population}
    movers = {victim} | newer | {pid for pid, line in printed.items() if line.endswith(" sh")}
    assert differ <= movers, [(printed.get(p), mine.get(p)) for p in sorted(differ - movers)[:5]]
    assert len(printed.keys() & mine.keys()) >= PROCESSES
    # The header lines too.
    assert res.stdout.splitlines()[:2] == [l for l in art.table_lines if not _ROW.match(l)][:2]
