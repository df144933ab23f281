"""The OOM killer's decision, checked against what the real kernels did."""

import json
import re

import pytest

from .oracle import assert_scores_are_the_guests, run_oomdrgn

pytestmark = pytest.mark.vm


def _summary_pid(art):
    return int(re.search(r",pid=(\d+),uid=", art.summary_line).group(1))


def test_victim_is_the_one_the_kernel_killed(kernel, killed):
    # At __oom_kill_process the kernel has chosen; the dump is of that moment.
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "victim", "--json")
    sel = json.loads(res.stdout)
    assert sel["chosen_pid"] == _summary_pid(killed)
    chosen = [c for c in sel["candidates"] if c["verdict"] == "chosen"]
    assert [c["pid"] for c in chosen] == [_summary_pid(killed)]
    # Every other candidate scored lower, or equal but earlier in the task list.
    order = [c["pid"] for c in sel["candidates"]]
    for c in sel["candidates"]:
        if c["points"] is not None and c["pid"] != sel["chosen_pid"]:
            assert (c["points"] < sel["chosen_points"]
                    or order.index(c["pid"]) < order.index(sel["chosen_pid"]))


def test_victim_text_and_all(kernel, killed):
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "victim", "--all")
    first = res.stdout.splitlines()[0]
    assert first.startswith(f"victim: pid {_summary_pid(killed)} (kv-victim) points ")
    assert "skipped: oom_score_adj is -1000: kv-unkillable" in res.stdout


def test_summary_line_is_the_kernels(kernel, killed):
    assert killed.summary_line.startswith("oom-kill:constraint=CONSTRAINT_NONE")
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "summary",
                      _summary_pid(killed))
    assert res.stdout == killed.summary_line + "\n"


# --- memcg ---------------------------------------------------------------

def test_memcg_table_is_the_kernels(kernel, memcg_panicked):
    art = memcg_panicked
    assert art.memcg == "/job"
    res = run_oomdrgn("-c", art.vmcores["kdump-zlib"], "-s", kernel.vmlinux, "-q", "tasks",
                      "--memcg", art.memcg)
    assert res.stdout == "".join(l + "\n" for l in art.table_lines)
    # Processes outside the memcg exist, and are not in the memcg's table.
    everything = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "tasks").stdout
    assert len(everything.splitlines()) > len(art.table_lines)


def test_memcg_victim_summary_and_kill_line(kernel, memcg_killed):
    art = memcg_killed
    tgid = _summary_pid(art)
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "victim", "--memcg",
                      art.memcg, "--json")
    assert json.loads(res.stdout)["chosen_pid"] == tgid
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "summary", tgid,
                      "--memcg", art.memcg)
    assert res.stdout == art.summary_line + "\n"
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "kill", "--memcg",
                      art.victim_pid)
    assert res.stdout == art.kill_line + "\n"
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "tasks", "--memcg",
                      art.memcg)
    assert res.stdout == "".join(l + "\n" for l in art.table_lines)


# --- /proc/PID/oom_score --------------------------------------------------

def test_oom_score_equals_the_guests(kernel, idle):
    res = run_oomdrgn("-c", idle.vmcore, "-s", kernel.vmlinux, "-q", "score", "--json")
    assert_scores_are_the_guests(res.stdout, idle)
    # Some memory really was swapped out, so swap entries took part.
    assert any(st.get("VmSwap", 0) > 0 for st in idle.status.values())
