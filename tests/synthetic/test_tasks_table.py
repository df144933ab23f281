"""tasks_table(): the dump_tasks() block of every era, from a synthetic kernel."""

import pytest

import oomdrgn
from oomdrgn.core.formats import TABLE_FORMATS

from .kernel import LAYOUT_NAMES, LAYOUTS, PF_KTHREAD, build
from .kernel_rules import CPUS, INVALID_UID, expected_rows, expected_table_rows, standard_processes

TITLE = "Tasks state (memory values in pages):\n"


def _table(layout_name):
    procs = standard_processes()
    prog = build(layout_name, procs, cpus=CPUS)
    return procs, oomdrgn.tasks_table(prog).splitlines(keepends=True)


def _head_len(layout):
    return 2 if layout.table in ("T3", "T4") else 1


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_whole_table(name):
    layout = LAYOUTS[name]
    procs, lines = _table(name)
    fmt = next(f for f in TABLE_FORMATS if f.name == layout.table)
    assert lines[:_head_len(layout)] == list(fmt.lines())
    assert lines[_head_len(layout):] == expected_table_rows(layout, CPUS, procs)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_title_and_header(name):
    layout = LAYOUTS[name]
    _, lines = _table(name)
    if layout.table in ("T3", "T4"):
        assert lines[0] == TITLE
        header = lines[1]
    else:  # before v4.19: no title line
        assert TITLE not in lines
        header = lines[0]
    assert header.startswith("[  pid  ]" if layout.table in ("T3", "T4") else "[ pid ]")
    assert ("nr_ptes nr_pmds" in header) == (layout.table == "T1")
    assert ("rss_anon rss_file rss_shmem" in header) == (layout.table == "T4")


def _pids(layout, lines):
    return [int(line[1:line.index("]")]) for line in lines[_head_len(layout):]]


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_rows_in_task_list_order_and_skips(name):
    layout = LAYOUTS[name]
    procs, lines = _table(name)
    pids = _pids(layout, lines)
    # init (tgid 1), both kernel threads (with or without an mm) and the
    # zombie (no thread with an mm) are skipped; the others keep list order.
    assert pids == [r["pid"] for r in expected_rows(layout, CPUS, procs)]
    skipped = [p for p in procs if p.tgid == 1 or p.threads[0].flags & PF_KTHREAD
               or not any(t.has_mm for t in p.threads) or p.mm is None]
    assert {p.tgid for p in skipped} == {1, 2, 35, 800}


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_leader_exited_row_comes_from_first_thread_with_mm(name):
    _, lines = _table(name)
    (row,) = [l for l in lines if l.rstrip().endswith(" worker")]
    fields = row.split("]", 1)[1].split()
    assert int(row[1:row.index("]")]) == 701  # pid of the thread, not the leader's 700
    assert int(fields[0]) == 100_000  # that thread's uid
    assert int(fields[1]) == 700  # tgid of the group
    assert "leaderexit" not in "".join(lines)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_invalid_uid_prints_minus_one(name):
    _, lines = _table(name)
    (row,) = [l for l in lines if l.rstrip().endswith(" nobody")]
    assert row.split("]", 1)[1].split()[0] == "-1"
    assert str(INVALID_UID) not in row


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_oom_score_adj_min_rows_are_printed(name):
    _, lines = _table(name)
    (row,) = [l for l in lines if l.rstrip().endswith(" sshd")]
    assert row.split()[-2] == "-1000"


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_task_rows_api_matches_table(name):
    layout = LAYOUTS[name]
    procs = standard_processes()
    prog = build(name, procs, cpus=CPUS)
    rows = oomdrgn.task_rows(prog)
    assert [r.pid for r in rows] == _pids(layout, oomdrgn.tasks_table(prog).splitlines())
    assert rows[-1].name == "abcdefghijklmno"  # TASK_COMM_LEN - 1 characters, whole
