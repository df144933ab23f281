"""``tasks --json`` / ``kill --json`` through commands.run_command()."""

import argparse
import io
import json

import pytest

import oomdrgn
from oomdrgn.commands.subcommands import run_command
from oomdrgn.drgn.backend import reader_for

from .kernel import LAYOUT_NAMES, LAYOUTS, build
from .kernel_rules import CPUS, expected_rows, standard_processes

KEYS = ("pid", "uid", "tgid", "total_vm", "rss", "rss_anon", "rss_file", "rss_shmem",
        "pgtables_bytes", "swapents", "oom_score_adj", "name")


def _run(prog, **args):
    out = io.StringIO()
    status = run_command(reader_for(prog), argparse.Namespace(**args), out)
    return status, json.loads(out.getvalue())


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_tasks_json(name):
    layout = LAYOUTS[name]
    procs = standard_processes()
    status, doc = _run(build(name, procs, cpus=CPUS), command="tasks", json=True)
    assert status == 0
    want = expected_rows(layout, CPUS, procs)
    assert len(doc["rows"]) == len(want)
    for got, exp in zip(doc["rows"], want):
        assert set(got) >= set(KEYS)
        for key in KEYS:
            if key == "uid":  # -1 or 4294967295 for (uid_t)-1: the same u32
                assert got[key] & 0xFFFFFFFF == exp[key]
            elif key == "pgtables_bytes" and layout.pgtables == "ptes":
                continue  # no such counter before v4.15
            else:
                assert got[key] == exp[key], key
    assert doc["kernel"]["table_format"] == layout.table
    assert doc["kernel"]["kill_format"] == layout.kill


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_kill_json_line_matches_kill_line(name):
    prog = build(name, standard_processes(), cpus=CPUS)
    status, doc = _run(prog, command="kill", pid=1234, memcg=True, json=True)
    assert status == 0
    assert doc["line"] == oomdrgn.kill_line(prog, 1234, memcg=True)
    assert doc["victim"]["pid"] == 1234 and doc["victim"]["name"] == "memhog"
