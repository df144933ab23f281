"""Damaged memory: unreadable objects are reported, loops end."""

import argparse
import io
import json

import pytest

import oomdrgn
from oomdrgn.commands.subcommands import run_command
from oomdrgn.drgn.backend import reader_for
from oomdrgn.core.errors import EXIT_PARTIAL, OomdrgnError
from oomdrgn.core.oom import ReadError, TargetError

from .kernel import LAYOUT_NAMES, LAYOUTS, Mm, Process, Thread, build
from .kernel_rules import CPUS, expected_table_rows, standard_processes

BAD_PID = 666
BAD_AT = 5  # index in the task list


def _damaged(name, **mm):
    procs = standard_processes()
    bad = Process([Thread(BAD_PID, "damaged")], mm=Mm(total_vm=10, anon=1, **mm))
    procs.insert(BAD_AT, bad)
    good = [p for p in procs if p is not bad]
    return procs, good, build(name, procs, cpus=CPUS)


def _head_len(layout):
    return 2 if layout.table in ("T3", "T4") else 1


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_unmapped_mm_row_marked_others_printed(name):
    layout = LAYOUTS[name]
    procs, good, prog = _damaged(name, unmapped=True)
    lines = oomdrgn.tasks_table(prog).splitlines(keepends=True)[_head_len(layout):]
    (bad,) = [l for l in lines if "<unreadable: " in l]
    assert bad.startswith("[") and int(bad[1:bad.index("]")]) == BAD_PID
    assert [l for l in lines if l is not bad] == expected_table_rows(layout, CPUS, good)
    # In its place in the task list.
    assert lines.index(bad) == len(expected_table_rows(layout, CPUS, procs[:BAD_AT]))


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_unmapped_mm_json(name):
    _, good, prog = _damaged(name, unmapped=True)
    out = io.StringIO()
    status = run_command(reader_for(prog), argparse.Namespace(command="tasks", json=True), out)
    rows = json.loads(out.getvalue())["rows"]
    assert status == EXIT_PARTIAL
    (bad,) = [r for r in rows if "unreadable" in r]
    assert bad["pid"] == BAD_PID and bad["unreadable"]
    assert len(rows) == 1 + len(expected_table_rows(LAYOUTS[name], CPUS, good))


@pytest.mark.parametrize("name", [n for n in LAYOUT_NAMES if LAYOUTS[n].counters == "percpu"])
def test_unmapped_percpu_counters(name):
    # Only the exact rule reads the per-CPU deltas.
    layout = LAYOUTS[name]
    _, good, prog = _damaged(name, unmapped_percpu=True)
    text = oomdrgn.tasks_table(prog)
    assert ("<unreadable: " in text) == layout.exact
    assert (" damaged\n" in text) == (not layout.exact)
    rows = text.splitlines(keepends=True)[_head_len(layout):]
    assert [l for l in rows if "damaged" not in l and "<unreadable" not in l] == \
        expected_table_rows(layout, CPUS, good)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["v4.4", "v5.10", "v7.0"])
def test_looping_task_list_ends_with_error(name):
    prog = build(name, standard_processes(), cpus=CPUS, loop_tasks=True)
    text = oomdrgn.tasks_table(prog)
    last = text.splitlines()[-1]
    assert "<unreadable: " in last and "loops" in last


@pytest.mark.timeout(10)
def test_looping_task_list_unknown_pid_ends():
    prog = build("v6.12", standard_processes(), cpus=CPUS, loop_tasks=True)
    with pytest.raises((ReadError, OomdrgnError, TargetError)):
        oomdrgn.kill_line(prog, 31337)


@pytest.mark.timeout(10)
def test_looping_task_list_command_is_a_user_error():
    prog = build("v6.12", standard_processes(), cpus=CPUS, loop_tasks=True)
    out = io.StringIO()
    try:
        status = run_command(reader_for(prog), argparse.Namespace(command="tasks", json=False),
                             out)
    except OomdrgnError:
        return
    assert status == EXIT_PARTIAL


def test_kill_on_unreadable_mm_is_a_user_error():
    _, _, prog = _damaged("v5.10", unmapped=True)
    with pytest.raises(OomdrgnError):
        run_command(reader_for(prog), argparse.Namespace(command="kill", pid=BAD_PID,
                                                         memcg=False, json=False),
                    io.StringIO())


def _bad_signal(name):
    procs = standard_processes()
    bad = Process([Thread(BAD_PID, "badsignal")], mm=Mm(total_vm=10, anon=1),
                  unmapped_signal=True)
    procs.insert(BAD_AT, bad)
    return procs, [p for p in procs if p is not bad], build(name, procs, cpus=CPUS)


@pytest.mark.parametrize("name", ["v4.4", "v5.10", "v7.0"])
def test_unmapped_signal_row_marked_others_printed(name):
    layout = LAYOUTS[name]
    _, good, prog = _bad_signal(name)
    lines = oomdrgn.tasks_table(prog).splitlines(keepends=True)[_head_len(layout):]
    (bad,) = [l for l in lines if "<unreadable: " in l]
    assert [l for l in lines if l is not bad] == expected_table_rows(layout, CPUS, good)


def test_unmapped_signal_row_names_its_pid():
    _, _, prog = _bad_signal("v6.12")
    (bad,) = [l for l in oomdrgn.tasks_table(prog).splitlines() if "<unreadable: " in l]
    assert int(bad[1:bad.index("]")]) == BAD_PID


def test_kill_line_of_healthy_process_after_damaged_one():
    procs, _, prog = _bad_signal("v6.12")
    assert "Killed process 1234 (memhog) " in oomdrgn.kill_line(prog, 1234)
