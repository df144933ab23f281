"""What-if's pure parts: the option values and the records (core/whatif.py)."""

import pytest

from oomdrgn.core.constraint import Constraint
from oomdrgn.core.model import MemcgRecord, TaskRecord, VmTotals
from oomdrgn.core.whatif import (Assumptions, WhatIfReader, assume_memcg, assume_task,
                                 assume_totals, memparse, parse_set_adj, parse_set_max)


@pytest.mark.parametrize("text, want", [("1234=500", (1234, 500)), ("1=-1000", (1, -1000)),
                                        ("7=1000", (7, 1000)), ("7=0", (7, 0))])
def test_parse_set_adj(text, want):
    assert parse_set_adj(text) == want


@pytest.mark.parametrize("text, words", [
    ("1234", "not PID=N"), ("x=5", "not PID=N"), ("5=x", "not PID=N"), ("=5", "not PID=N"),
    ("5=1001", "out of range [-1000, 1000]"), ("5=-1001", "out of range"),
    ("0=5", "PID must be positive"), ("-3=5", "PID must be positive")])
def test_parse_set_adj_bad(text, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_set_adj(text)


@pytest.mark.parametrize("text, want", [("4096", 4096), ("64K", 65536), ("1m", 1 << 20),
                                        ("2G", 2 << 30), ("0x1000", 4096)])
def test_memparse(text, want):
    assert memparse(text) == want


@pytest.mark.parametrize("text, want", [("/job=64M", ("/job", 64 << 20)),
                                        ("job/a=max", ("job/a", None)),
                                        ("/a=b=1", ("/a=b", 1))])
def test_parse_set_max(text, want):
    assert parse_set_max(text) == want


@pytest.mark.parametrize("text, words", [("/job", "not PATH=BYTES"), ("/=1", "not PATH=BYTES"),
                                         ("/job=-1", "must not be negative"),
                                         ("/job=1X", "not a byte count"),
                                         ("/job=", "not a byte count")])
def test_parse_set_max_bad(text, words):
    with pytest.raises(ValueError, match=words):
        parse_set_max(text)


def _task(tid, tgid, adj=0):
    return TaskRecord(address=tid * 0x1000, pid=tid, tgid=tgid, comm="t", flags=0, uid=0,
                      oom_score_adj=adj, mm=0x99)


def test_assume_task_every_thread_of_the_group():
    adj = {10: 500}
    assert assume_task(_task(10, 10), adj).oom_score_adj == 500
    assert assume_task(_task(11, 10), adj).oom_score_adj == 500  # signal_struct's
    other = _task(12, 12, -3)
    assert assume_task(other, adj) is other


def test_assume_memcg_and_totals():
    rec = MemcgRecord(path="/job", memory_max=12288)
    assert assume_memcg(rec, {"/job": 1024}).memory_max == 1024
    assert assume_memcg(rec, {"/other": 1}) is rec
    totals = VmTotals(totalram_pages=1000, total_swap_pages=0)
    assert assume_totals(totals, 500).total_swap_pages == 500
    assert assume_totals(totals, None) is totals


def test_assumptions_truth():
    assert not Assumptions()
    assert Assumptions(swap_pages=0)
    assert Assumptions(exclude=(3,))


class _Reader:
    task_mm_memo = None

    def vm_totals(self):
        return VmTotals(totalram_pages=10000, total_swap_pages=2000)

    def memcg(self, path):
        return MemcgRecord(path="/" + path.strip("/"), memory_max=4096, swap_max=1 << 40)


def test_assumed_constraint():
    view = WhatIfReader(_Reader(), {}, {"/job": 100}, (), 500)
    none = Constraint("CONSTRAINT_NONE", 12000, None, None, "")
    assert view.assumed_constraint(none).totalpages == 10500
    cpuset = Constraint("CONSTRAINT_CPUSET", 7000, None, None, "")  # 5000 node pages + swap
    assert view.assumed_constraint(cpuset).totalpages == 5500
    memcg = Constraint("CONSTRAINT_MEMCG", 6096, None, None, "")
    # mem_cgroup_get_max(): 100 + min(swap.max, 500 assumed swap)
    assert view.assumed_constraint(memcg, "job").totalpages == 600
    untouched = WhatIfReader(_Reader(), {5: 1}, {}, (), None)
    assert untouched.assumed_constraint(memcg, "/job") is memcg
    assert untouched.assumed_constraint(none) is none


class _Tasks:
    """A reader of a few processes: 10 (two threads 10, 11), 20 sharing 10's mm
    (CLONE_VM without CLONE_THREAD), 30 with its own mm, 40 a vfork child on 10's mm."""

    task_mm_memo = None

    class info:
        page_shift = 12

    def __init__(self):
        mm = {10: 0xa, 11: 0xa, 20: 0xa, 30: 0xc, 40: 0xa}
        self.recs = {t: TaskRecord(address=t, pid=t, tgid=10 if t == 11 else t,
                                   comm=f"p{t}", flags=0, uid=0, oom_score_adj=-t, mm=m,
                                   vfork_done=0x1 if t == 40 else 0)
                     for t, m in mm.items()}

    def find_task(self, pid):
        return pid if pid in self.recs else None

    def task(self, t):
        return self.recs[t]

    def threads(self, p):
        return [t for t in self.recs if self.recs[t].tgid == p]

    def processes(self):
        return iter([10, 20, 30, 40])

    def vm_totals(self):
        return VmTotals(totalram_pages=1000, total_swap_pages=0)


def test_what_if_lines_and_records():
    from oomdrgn.core.errors import TargetError
    from oomdrgn.core.whatif import what_if
    reader = _Tasks()
    view = what_if(reader, Assumptions(set_adj=((11, 500),), exclude=(30,), swap_pages=64))
    # __set_oom_adj(): the thread group (by tgid), and process 20 that shares
    # its mm; not the vfork child 40.
    assert view.lines() == [
        "what-if: oom_score_adj of 10 (p10) set to 500 (was -10)",
        "what-if: oom_score_adj of 20 (p20) set to 500 (was -20): it shares the mm of 10",
        "what-if: process 30 (p30) excluded, as if it had exited",
        "what-if: total_swap_pages set to 64 (was 0)"]
    assert [view.task(t).oom_score_adj for t in (10, 11, 20, 30, 40)] == [500, 500, 500, -30, -40]
    assert list(view.processes()) == [10, 20, 40]
    assert view.find_task(30) is None and view.find_task(20) == 20
    assert view.vm_totals().total_swap_pages == 64
    assert reader.task(10).oom_score_adj == -10  # the target's records untouched
    with pytest.raises(TargetError, match="--set-adj 99: no task with PID 99"):
        what_if(reader, Assumptions(set_adj=((99, 1),)))
