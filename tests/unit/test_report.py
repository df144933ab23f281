"""The formats reproduce lines real kernels printed (tests/data/reference-lines.txt)."""

import pathlib
import re

import pytest

from oomdrgn.core.eras import kill_format, table_format
from oomdrgn.core.model import Row, Victim
from oomdrgn.core.formats import format_kill_line, format_row, format_table

DATA = pathlib.Path(__file__).parent.parent / "data" / "reference-lines.txt"


def _lines():
    for line in DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            yield tuple(line.split("|", 2))


def _row_from_text(era, text):
    nums = re.match(r"\[\s*(\d+)\]\s+(.*)", text)
    fields = [nums.group(1)] + nums.group(2).split()
    name = fields[-1]
    vals = [int(x) for x in fields[:-1]]
    if era == "T4":
        pid, uid, tgid, vm, rss, anon, file, shmem, pgt, swap, adj = vals
    else:
        pid, uid, tgid, vm, rss, pgt, swap, adj = vals
        anon = file = shmem = 0
    return Row(pid=pid, uid=uid, tgid=tgid, total_vm=vm, rss=rss, rss_anon=anon, rss_file=file,
               rss_shmem=shmem, pgtables_bytes=pgt, swapents=swap, oom_score_adj=adj, name=name)


@pytest.mark.parametrize("source,era,text", [x for x in _lines() if x[1].startswith("T")])
def test_rows_reproduce_real_kernel_lines(source, era, text):
    row = _row_from_text(era, text)
    assert format_row(table_format(era), row) == text + "\n"


def test_kill_line_reproduces_reference():
    (source, era, text), = [x for x in _lines() if x[1] == "K4"]
    m = re.match(r"Out of memory: Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB, "
                 r"file-rss:(\d+)kB, shmem-rss:(\d+)kB, UID:(\d+) pgtables:(\d+)kB oom_score_adj:(-?\d+)",
                 text)
    v = Victim(int(m[1]), m[2], *[int(m[i]) for i in range(3, 10)])
    assert format_kill_line(kill_format("K4"), v) == text + "\n"
    # K5 (%d instead of %hd) prints the same text for any short.
    assert format_kill_line(kill_format("K5"), v) == text + "\n"
    assert format_kill_line(kill_format("K4"), v, "Memory cgroup out of memory").startswith(
        "Memory cgroup out of memory: Killed process 1604 (invoke_memleak) ")


def test_table_block_has_title_and_header_per_era():
    assert format_table(table_format("T3"), []).splitlines() == [
        "Tasks state (memory values in pages):",
        "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name"]
    assert format_table(table_format("T2"), []).splitlines()[0].startswith("[ pid ]")
    assert len(format_table(table_format("T1"), []).splitlines()) == 1


def test_t1_prints_nr_ptes_and_nr_pmds():
    row = Row(pid=1, uid=0, tgid=1, total_vm=10, rss=5, rss_anon=0, rss_file=0, rss_shmem=0,
              pgtables_bytes=0, swapents=0, oom_score_adj=0, name="x", nr_ptes=7, nr_pmds=3)
    assert format_row(table_format("T1"), row) == \
        "[    1]     0     1       10        5       7       3        0             0 x\n"


def test_k2_has_no_prefix_and_k1_no_shmem():
    v = Victim(5, "a", 4, 8, 12, 16, 0, 0, 0)
    assert format_kill_line(kill_format("K2"), v) == \
        "Killed process 5 (a) total-vm:4kB, anon-rss:8kB, file-rss:12kB, shmem-rss:16kB\n"
    assert format_kill_line(kill_format("K1"), v) == \
        "Killed process 5 (a) total-vm:4kB, anon-rss:8kB, file-rss:12kB\n"
    assert format_kill_line(kill_format("K3"), v) == \
        "Out of memory: Killed process 5 (a) total-vm:4kB, anon-rss:8kB, file-rss:12kB, shmem-rss:16kB\n"
