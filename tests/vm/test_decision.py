"""The OOM killer's decision, checked against what the real kernels did."""

import json
import re

import pytest

from .oracle import run_oomdrgn

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
