"""logreport sets a logged table beside current rows (real kernels' logs, tests/data/logs/).

The "current" rows here are real rows too: the table the same kernel printed
at its next OOM, a few milliseconds later (a victim gone, the hog grown).
"""

import argparse
import io
import json
import pathlib

import pytest

from oomdrgn.core.errors import EXIT_USAGE, OomdrgnError
from oomdrgn.core.logparse import parse_log
from oomdrgn.core.logcompare import (STATUSES, compare_report, compare_rows, comparison_as_dict,
                               format_comparison, oom_memcg)
from oomdrgn.core.model import ReadFailure
from oomdrgn.core.record import replace
from oomdrgn.commands.reports import run_report

LOGS = pathlib.Path(__file__).parent.parent / "data" / "logs"
KERNELS = ("5.10", "6.1", "6.12", "7.x")


def reports(kernel):
    return parse_log((LOGS / f"{kernel}-oom.log").read_text())


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_table_beside_itself_is_all_same(kernel):
    for r in reports(kernel):
        cmp = compare_report(r, list(r.table.rows))
        assert cmp.all_same and cmp.counts()["same"] == len(r.table.rows)
        assert [c.pid for c in cmp.rows] == [row.pid for row in r.table.rows]


@pytest.mark.parametrize("kernel", KERNELS)
def test_next_oom_table_as_current(kernel):
    _, first, second = reports(kernel)
    victim = first.kill.victim
    cmp = compare_report(first, list(second.table.rows))
    by_name = {c.name: c for c in cmp.rows}
    assert by_name[victim.name].status == "gone" and by_name[victim.name].pid == victim.pid
    hog = by_name["oomhog"]  # grew between the two OOMs, or not (7.x: it had not yet)
    assert hog.status == ("changed" if hog.logged != hog.current else "same")
    assert "name" not in {c for c, _, _ in hog.changes}
    for column, logged, now in hog.changes:
        assert logged == getattr(hog.logged, column) and now == getattr(hog.current, column)
        assert column in cmp.columns
    assert cmp.counts()["new"] == 0 and cmp.counts()["gone"] == 1
    assert cmp.counts()["same"] + cmp.counts()["changed"] == len(second.table.rows)
    # The other way round: the victim is "new" (in memory, not in the log).
    back = compare_report(second, list(first.table.rows))
    assert [(c.status, c.pid) for c in back.rows if c.status == "new"] == [("new", victim.pid)]


def test_only_the_eras_columns_are_compared():
    # 5.10 prints T3: rss_anon/rss_file/rss_shmem are not in its table.
    _, first, _ = reports("5.10")
    rows = [replace(r, rss_anon=r.rss_anon + 7, rss_shmem=3) for r in first.table.rows]
    assert compare_report(first, rows).all_same
    # 6.12 prints T4: they are.
    _, first, _ = reports("6.12")
    rows = [replace(r, rss_anon=r.rss_anon + 7) for r in first.table.rows]
    cmp = compare_report(first, rows)
    assert {c.status for c in cmp.rows} == {"changed"}
    assert all(c.changes == (("rss_anon", c.logged.rss_anon, c.logged.rss_anon + 7),)
               for c in cmp.rows)


def test_pid_reuse_is_not_the_same_process():
    _, first, _ = reports("6.12")
    rows = list(first.table.rows)
    i = next(i for i, r in enumerate(rows) if r.name == "pop-plain")
    rows[i] = replace(rows[i], name="another")  # same pid, another process
    cmp = compare_report(first, rows)
    got = [(c.status, c.pid, c.name) for c in cmp.rows if c.status != "same"]
    assert got == [("gone", rows[i].pid, "pop-plain"), ("new", rows[i].pid, "another")]
    rows[i] = replace(first.table.rows[i], tgid=rows[i].tgid + 1000)
    got = [c.status for c in compare_report(first, rows).rows if c.status != "same"]
    assert got == ["gone", "new"]


def test_another_thread_of_the_same_process():
    # pop-zombie-ldr's leader exited: its row comes from a thread (pid != tgid).
    # If that thread exits too, the next thread with the mm gives the row.
    _, first, _ = reports("6.12")
    rows = list(first.table.rows)
    i = next(i for i, r in enumerate(rows) if r.name == "pop-zombie-ldr")
    assert rows[i].pid != rows[i].tgid
    rows[i] = replace(rows[i], pid=rows[i].pid + 1)
    (c,) = [c for c in compare_report(first, rows).rows if c.status != "same"]
    assert c.status == "changed" and c.changes == (("pid", rows[i].pid - 1, rows[i].pid),)


def test_unreadable_rows():
    _, first, _ = reports("7.x")
    rows = list(first.table.rows)
    gone = rows.pop(3)
    rows.append(ReadFailure(pid=gone.pid, reason="task 0xffff unreadable", address=0xffff))
    rows.append(ReadFailure(pid=-1, reason="task list broken"))
    cmp = compare_report(first, rows)
    bad = [(c.status, c.pid, c.reason) for c in cmp.rows if c.status != "same"]
    assert bad == [("unreadable", gone.pid, "task 0xffff unreadable"),
                   ("unreadable", -1, "task list broken")]


@pytest.mark.parametrize("kernel", KERNELS)
def test_memcg_report_beside_the_global_table(kernel):
    memcg, first, _ = reports(kernel)
    assert memcg.memcg and oom_memcg(memcg) == "/oomtest"
    # The global table, moments later: only the logged rows are compared.
    cmp = compare_report(memcg, list(first.table.rows), why_global="memcg /oomtest now: gone")
    statuses = {c.name: c.status for c in cmp.rows}
    assert statuses == {"cg-member": "same", "cg-hog": "gone"}  # killed by the memcg OOM
    assert cmp.memcg and cmp.note.startswith("memcg OOM") and cmp.note.endswith("(memcg /oomtest now: gone)")
    text = format_comparison(cmp)
    assert text.startswith("note: memcg OOM") and "new" not in text.split("rows:")[1]


@pytest.mark.parametrize("kernel", KERNELS)
def test_memcg_report_beside_the_memcgs_table(kernel):
    memcg, first, _ = reports(kernel)
    # The memcg's own table now (here: the rows of the global table in that cgroup).
    scoped = [r for r in first.table.rows if r.name.startswith("cg-")]
    cmp = compare_report(memcg, scoped, current_memcg="/oomtest")
    assert not cmp.memcg and "table of memcg /oomtest" in cmp.note
    assert {c.name: c.status for c in cmp.rows} == {"cg-member": "same", "cg-hog": "gone"}
    extra = scoped + [next(r for r in first.table.rows if r.name == "pop-idle")]
    cmp = compare_report(memcg, extra, current_memcg="/oomtest")
    assert [c.name for c in cmp.rows if c.status == "new"] == ["pop-idle"]


def test_no_table_no_comparison():
    r = parse_log((LOGS / "public" / "4.9-kills-only.log").read_text())[0]
    assert r.table is None and compare_report(r, []) is None


def test_text_and_json_renderings():
    _, first, second = reports("6.12")
    # The next OOM's rows, the hog grown by 2 MB (it may not have, between two OOMs).
    current = [replace(r, total_vm=r.total_vm + 512, rss=r.rss + 512)
               if r.name == "oomhog" else r for r in second.table.rows]
    cmp = compare_report(first, current)
    text = format_comparison(cmp)
    lines = text.splitlines()
    assert len(lines) == len(cmp.rows) + 1
    assert lines[-1] == "rows: " + ", ".join(f"{n} {s}" for s, n in cmp.counts().items() if n)
    victim = first.kill.victim
    assert any(l.split()[:2] == ["gone", str(victim.pid)] and f" {victim.name}: in the log" in l
               for l in lines)
    hog = next(l for l in lines if l.startswith("changed") and " oomhog: " in l)
    assert "total_vm " in hog and " -> " in hog
    assert any(l.split()[-1] == "words" and l.startswith("same") for l in lines)  # "pop two words"
    doc = json.loads(json.dumps(comparison_as_dict(cmp)))
    assert doc["era"] == "T4" and doc["counts"] == cmp.counts() and set(doc["counts"]) == set(STATUSES)
    entry = next(r for r in doc["rows"] if r["name"] == "oomhog")
    assert entry["status"] == "changed" and entry["logged"]["pid"] == entry["current"]["pid"]
    assert {c["column"] for c in entry["changes"]} >= {"total_vm", "rss"}
    assert set(entry["logged"]) == set(cmp.columns)


def test_compare_rows_by_era_name():
    _, first, second = reports("5.10")
    cmp = compare_rows(first.table.rows, second.table.rows, "T3")
    assert cmp.columns[-1] == "name" and "rss_anon" not in cmp.columns


def test_report_command_needs_a_target():
    with pytest.raises(OomdrgnError) as e:
        run_report(None, argparse.Namespace(command="report", json=False), io.StringIO())
    assert e.value.status == EXIT_USAGE


def test_report_command_uses_the_memcgs_table_when_it_can(monkeypatch):
    import oomdrgn.core.decision
    from oomdrgn.core.oom import TargetError
    from oomdrgn.commands.reports import _compare

    memcg, first, _ = reports("6.12")
    scoped = [r for r in first.table.rows if r.name.startswith("cg-")]
    asked = []

    def fake(reader, path):
        asked.append(path)
        return scoped
    monkeypatch.setattr(oomdrgn.core.decision, "memcg_dump_tasks", fake)
    cmp = _compare(None, memcg, list(first.table.rows))
    assert asked == ["/oomtest"] and "table of memcg /oomtest" in cmp.note

    def gone(reader, path):
        raise TargetError(f"no cgroup {path!r} in the default hierarchy")
    monkeypatch.setattr(oomdrgn.core.decision, "memcg_dump_tasks", gone)
    cmp = _compare(None, memcg, list(first.table.rows))
    assert cmp.memcg and "no cgroup '/oomtest'" in cmp.note
    # A global report never asks for a memcg.
    assert _compare(None, first, list(first.table.rows)).all_same
