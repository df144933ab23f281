"""``explain``'s pure part (:mod:`oomdrgn.core.explain`) on hand-made records."""

import json

from oomdrgn.core.badness import MMF_OOM_SKIP
from oomdrgn.core.explain import explain, format_explain, smallest_adj
from oomdrgn.core.explain_read import MM_NAMES, ExplainFacts, RawField, ThreadCache
from oomdrgn.core.kernelinfo import Evidence, decide
from oomdrgn.core.model import Candidate, MmRecord, RawCounter, Selection, TaskRecord

TASK, MM, CRED, SIGNAL = 0xffff888001000000, 0xffff888002000000, 0xffff888003000000, \
    0xffff888004000000


def _info(layout="percpu", sums=False):
    return decide(Evidence(arch="x86_64", page_shift=12, counter_layout=layout,
                           pgtables="bytes", rodata=None,
                           calls_sum={"table": sums, "kill": sums, "badness": sums}))


def _task(adj=0, pid=169, tgid=159):
    return TaskRecord(TASK, pid, tgid, "kv-victim", 0, 4242, adj, MM)


def _fields(t, mm):
    f = [RawField("task->pid", TASK + 0x10, t.pid), RawField("task->tgid", TASK + 0x14, t.tgid),
         RawField("task->real_cred", TASK + 0x20, CRED),
         RawField("task->signal", TASK + 0x28, SIGNAL), RawField("task->mm", TASK + 0x30, MM),
         RawField("task->comm", TASK + 0x40, t.comm),
         RawField("mm->total_vm", MM + 0x8, mm.total_vm),
         RawField("task->real_cred->uid.val", CRED + 4, t.uid),
         RawField("task->signal->oom_score_adj", SIGNAL + 8, t.oom_score_adj),
         RawField("mm->pgtables_bytes.counter", MM + 0x60, mm.pgtables_bytes)]
    keys = ["task->pid", "task->tgid", "task->real_cred", "task->signal", "task->mm",
            "task->comm", "mm->total_vm", "cred->uid", "signal->oom_score_adj",
            "mm->pgtables_bytes"]
    return dict(zip(keys, f))


def _percpu_counter_fields(counters):
    out = []
    for i, c in enumerate(counters):
        name = MM_NAMES[i]
        base = 0x3f000 + 8 * i
        out.append((RawField(f"mm->rss_stat[{name}].count", MM + 0x100 + 0x28 * i, c.count),
                    RawField(f"mm->rss_stat[{name}].counters", MM + 0x120 + 0x28 * i, base),
                    *(RawField(f"*per_cpu_ptr(mm->rss_stat[{name}].counters, {cpu})",
                               base + cpu * 0x100000, d) for cpu, d in enumerate(c.percpu))))
    return tuple(out)


def _selection(cands, chosen, points, totalpages=45014):
    return Selection(chosen, points, totalpages, tuple(cands), "rule")


def _facts(info, t, mm, sel, counter_fields, caches=(), batch=32, cpus=(0, 1), memcg=None,
           split=False):
    return ExplainFacts(pid=t.tgid, info=info, leader=t, task=t, mm=mm, fields=_fields(t, mm),
                        counter_fields=counter_fields, possible_cpus=cpus,
                        percpu_counter_batch=batch, split_rss=split, caches=caches,
                        fault_around_pages=16, fault_around_read=True, selection=sel,
                        memcg=memcg)


# file, anon, swap, shmem (MmRecord order)
PERCPU = (RawCounter(0, (0, 0)), RawCounter(1000, (24, -3)), RawCounter(0, (0, 0)),
          RawCounter(438, (-2, 1)))


def _percpu_facts(adj=1000, cands=None, chosen=159, memcg=None, sums=False):
    info = _info("percpu", sums)
    t = _task(adj)
    mm = MmRecord(MM, 5647, PERCPU, pgtables_bytes=53248)
    cands = cands if cands is not None else [
        Candidate(154, "sh", 441, "candidate"), Candidate(159, "kv-victim", 46475, "chosen", adj),
        Candidate(187, "oomhog", 29861, "candidate")]
    return _facts(info, t, mm, _selection(cands, chosen, 46475), _percpu_counter_fields(PERCPU),
                  memcg=memcg)


def test_percpu_count_era_columns():
    doc = explain(_percpu_facts())
    json.dumps(doc)  # plain, JSON-able
    assert doc["pid"] == 169 and doc["tgid"] == 159 and doc["comm"] == "kv-victim"
    assert doc["table_format"] == "T4"
    assert list(doc["columns"]) == ["pid", "uid", "tgid", "total_vm", "rss", "rss_anon",
                                    "rss_file", "rss_shmem", "pgtables_bytes", "swapents",
                                    "oom_score_adj", "name"]
    assert doc["row"] == ("[    169]  4242   159     5647     1438     1000        0       438"
                          "    53248        0          1000 kv-victim")
    anon = doc["columns"]["rss_anon"]
    assert (anon["printed"], anon["exact"], anon["difference"]) == (1000, 1021, 21)
    assert anon["bound"] == 64  # percpu_counter_batch 32 x 2 possible CPUs
    assert "percpu_counter_read_positive(&task->mm->rss_stat[MM_ANONPAGES])" in anon["expression"]
    assert anon["fields"]["mm->rss_stat[MM_ANONPAGES].count"] == {
        "address": hex(MM + 0x128), "value": 1000}
    assert anon["fields"]["*per_cpu_ptr(mm->rss_stat[MM_ANONPAGES].counters, 1)"]["value"] == -3
    rss = doc["columns"]["rss"]
    assert (rss["printed"], rss["exact"], rss["bound"]) == (1438, 1458, 3 * 64)
    assert "get_mm_rss(task->mm)" in rss["expression"]
    for name in ("pid", "uid", "tgid", "total_vm", "pgtables_bytes", "oom_score_adj", "name"):
        col = doc["columns"][name]
        assert col["exact"] == col["printed"] and col["difference"] == 0, name
        assert "mm/oom_kill.c dump_task()" in col["source"]
    assert doc["columns"]["uid"]["fields"]["task->real_cred->uid.val"]["value"] == 4242


def test_kill_line_columns_in_kB():
    kl = explain(_percpu_facts())["kill_line"]
    assert kl["line"] == ("Out of memory: Killed process 169 (kv-victim) total-vm:22588kB, "
                          "anon-rss:4000kB, file-rss:0kB, shmem-rss:1752kB, UID:4242 "
                          "pgtables:52kB oom_score_adj:1000")
    assert list(kl["columns"]) == ["pid", "comm", "total-vm", "anon-rss", "file-rss",
                                   "shmem-rss", "UID", "pgtables", "oom_score_adj"]
    anon = kl["columns"]["anon-rss"]
    assert (anon["printed"], anon["exact"], anon["bound"]) == (4000, 4084, 256)
    assert anon["expression"].startswith("K(get_mm_counter(mm, MM_ANONPAGES)); "
                                         "K(x) = x << (PAGE_SHIFT-10), PAGE_SHIFT 12")
    assert "__oom_kill_process()" in kl["source"]
    memcg = explain(_percpu_facts(memcg="/job"))["kill_line"]["line"]
    assert memcg.startswith("Memory cgroup out of memory: Killed process 169 ")


def test_percpu_sum_era_prints_exact():
    doc = explain(_percpu_facts(sums=True))
    anon = doc["columns"]["rss_anon"]
    assert anon["printed"] == anon["exact"] == 1021 and anon["bound"] == 0
    assert "get_mm_counter_sum(task->mm, MM_ANONPAGES)" in anon["expression"]
    assert "get_mm_rss_sum(task->mm)" in doc["columns"]["rss"]["expression"]
    assert doc["kill_line"]["format"] == "K5"
    assert "get_mm_counter_sum(mm, MM_ANONPAGES)" in doc["kill_line"]["columns"]["anon-rss"][
        "expression"]


def test_atomic_era_adds_the_thread_caches():
    info = _info("atomic")
    t = _task(0)
    counters = (RawCounter(10), RawCounter(-5), RawCounter(0), RawCounter(7))
    mm = MmRecord(MM, 600, counters, pgtables_bytes=8192)
    caches = (ThreadCache(169, TASK, 12, TASK + 0x900, (3, 40, 0, 0),
                          tuple(TASK + 0x904 + 4 * i for i in range(4))),
              ThreadCache(170, TASK + 0x4000, 64, TASK + 0x4900, (0, 9, 0, -1),
                          tuple(TASK + 0x4904 + 4 * i for i in range(4))))
    cf = tuple((RawField(f"mm->rss_stat.count[{n}].counter", MM + 0x200 + 8 * i, c.count),)
               for i, (n, c) in enumerate(zip(MM_NAMES, counters)))
    sel = _selection([Candidate(159, "kv-victim", 700, "chosen")], 159, 700)
    doc = explain(_facts(info, t, mm, sel, cf, caches=caches, batch=None, cpus=(),
                         split=True))
    assert doc["table_format"] == "T3"
    anon = doc["columns"]["rss_anon"] if "rss_anon" in doc["columns"] else None
    assert anon is None  # T3 has no rss_anon column
    rss = doc["columns"]["rss"]
    # printed: each counter clamped at 0 (anon -5 -> 0): 10 + 0 + 7
    assert rss["printed"] == 17
    # exact: count + every thread's cache: (10+3) + (-5+40+9) + (7-1)
    assert rss["exact"] == 13 + 44 + 6
    assert rss["bound"] == 3 * 2 * 65 * 16
    assert "atomic_long_read(&mm->rss_stat.count[M])" in rss["expression"]
    assert rss["fields"]["task(170)->rss_stat.count[MM_ANONPAGES]"] == {
        "address": hex(TASK + 0x4908), "value": 9}
    kill = doc["kill_line"]["columns"]["anon-rss"]
    assert (kill["printed"], kill["exact"]) == (0, 44 * 4)
    assert doc["thread_caches"][1]["events"] == 64


def test_badness_terms_rank_and_victim():
    b = explain(_percpu_facts())["badness"]
    # rss 1000+0+438, swap 0, pgtables 53248/4096 = 13, adj 1000 x 45
    assert b["terms"] == {"rss": 1438, "swapents": 0, "pgtables": 13, "oom_score_adj": 1000,
                          "totalpages": 45014, "totalpages_per_1000": 45, "adj": 45000}
    assert b["points"] == 46451 and b["rank"] == 1 and b["candidates"] == 3
    assert b["victim"] == {"pid": 159, "comm": "kv-victim", "points": 46475}
    assert b["would_take"]["points_short"] == 0


def test_what_it_would_take_follows_the_tie_rule():
    # The task (159) scores 46451 - 45000 = 1451 at adj 0; a later task has 29861
    # (must be exceeded), an earlier one 30000 (equal is enough: a later equal wins).
    cands = [Candidate(154, "early", 30000, "candidate"),
             Candidate(159, "kv-victim", 1451, "candidate"),
             Candidate(187, "oomhog", 29861, "chosen")]
    b = explain(_percpu_facts(adj=0, cands=cands, chosen=187))["badness"]
    assert b["points"] == 1451 and b["rank"] == 3
    take = b["would_take"]
    assert take["needed_points"] == 30000 and take["points_short"] == 30000 - 1451
    # 1451 + adj * 45 >= 30000: adj >= 634.4
    assert take["oom_score_adj"] == 635
    text = format_explain(explain(_percpu_facts(adj=0, cands=cands, chosen=187)))
    assert "the smallest oom_score_adj that makes it the victim: 635" in text


def test_smallest_adj():
    assert smallest_adj(100, 1000, 10) == 90
    assert smallest_adj(100, 1001, 10) == 91
    assert smallest_adj(100, 100, 10) == 0
    assert smallest_adj(5000, 100, 1) == -999  # -1000 would make it ineligible
    assert smallest_adj(0, 20000, 10) is None  # more than 1000 needed
    assert smallest_adj(50, 40, 0) == -999 and smallest_adj(30, 40, 0) is None


def test_ineligible_cases():
    cands = [Candidate(159, "kv-victim", None, "skipped: oom_score_adj is -1000", -1000),
             Candidate(187, "oomhog", 29861, "chosen")]
    b = explain(_percpu_facts(adj=-1000, cands=cands, chosen=187))["badness"]
    assert b["points"] is None and b["why_ineligible"] == "oom_score_adj is -1000"
    assert b["rank"] is None
    assert b["would_take"]["oom_score_adj"] == smallest_adj(1451, 29862, 45)
    facts = _percpu_facts(adj=0, cands=cands, chosen=187)
    facts.mm.flags = 1 << MMF_OOM_SKIP
    b = explain(facts)["badness"]
    assert b["why_ineligible"] == "MMF_OOM_SKIP (already reaped)"
    assert b["would_take"]["oom_score_adj"] is None


def test_text_names_the_kernels_expressions():
    text = format_explain(explain(_percpu_facts()))
    assert "[    169]  4242   159     5647" in text
    assert "  rss_anon: printed 1000, exact 1021, difference +21 (bound 64: " in text
    assert f"    mm->rss_stat[MM_ANONPAGES].count @ {MM + 0x128:#x} = 1000" in text
    assert "Out of memory: Killed process 169 (kv-victim)" in text
    assert "rank 1 of 3: chosen" in text


def test_init_is_never_scanned():
    facts = _percpu_facts(adj=0, cands=[Candidate(187, "oomhog", 29861, "chosen")], chosen=187)
    init = TaskRecord(TASK, 1, 1, "init", 0, 0, 0, MM)
    facts = ExplainFacts(**{**facts.__dict__, "leader": init, "task": init})
    doc = explain(facts)
    assert doc["badness"]["points"] is None and doc["badness"]["candidate"] is False
    assert doc["badness"]["verdict"].startswith("never scanned: init or a kernel thread")
    assert doc["notes"][-1].startswith("oom_unkillable_task(): dump_tasks() prints no row")


def test_outside_the_memcg_is_not_scanned():
    facts = _percpu_facts(adj=0, cands=[Candidate(187, "oomhog", 29861, "chosen")], chosen=187,
                          memcg="/job")
    b = explain(facts)["badness"]
    assert b["rank"] is None and b["verdict"] == "not scanned: not in memcg /job " \
        "(mem_cgroup_scan_tasks())"
