"""What the kernel itself would print for a synthetic scenario.

Written from ``mm/oom_kill.c`` and ``include/linux/mm.h`` for the tests,
independently of oomdrgn's code: the counter rules and the printk output are
spelled out here with Python's own formatting, so a test compares oomdrgn
against a second, separate statement of the kernel's behaviour.
"""

from typing import Dict, List, Optional

from .kernel import PF_EXITING, PF_KTHREAD, PF_WQ_WORKER, Cpus, Layout, Mm, Process, Thread

__all__ = ["CPUS", "standard_processes", "kernel_counter", "expected_row", "expected_rows",
           "expected_table_rows", "row_line", "expected_kill_line", "victim_thread"]

# CPU 0 and 1 online. CPU 2 was online when the OOM killer ran, then panic's
# smp_send_stop() cleared it from cpu_online_mask without folding its
# per-CPU deltas (a dump shows it possible, not online, deltas intact).
# CPU 3 was never brought up: its deltas are zero.
CPUS = Cpus(possible=4, online=frozenset({0, 1}))

INVALID_UID = 0xFFFFFFFF  # (uid_t)-1


def standard_processes() -> List[Process]:
    """A process list with every case dump_tasks()/__oom_kill_process() treat specially."""
    return [
        # init: oom_unkillable_task() (is_global_init).
        Process([Thread(1, "systemd")],
                mm=Mm(total_vm=41_000, file=2_100, anon=900, shmem=12, pgtables_bytes=98_304,
                      nr_ptes=24, nr_pmds=3)),
        # kernel threads: PF_KTHREAD, one without mm and one using a borrowed mm.
        Process([Thread(2, "kthreadd", has_mm=False, flags=PF_KTHREAD)]),
        Process([Thread(35, "kworker/u8:1", flags=PF_KTHREAD | PF_WQ_WORKER)],
                mm=Mm(total_vm=5_000, file=300, anon=200, nr_ptes=3, nr_pmds=1,
                      pgtables_bytes=12_288)),
        # OOM_SCORE_ADJ_MIN: never killed, still printed.
        Process([Thread(412, "sshd")],
                mm=Mm(total_vm=3_900, file=1_400, anon=250, shmem=3, pgtables_bytes=61_440,
                      nr_ptes=15, nr_pmds=2, percpu={"anon": {0: 6, 1: -2}}),
                oom_score_adj=-1000),
        # Threads sharing one mm: the leader is the first thread with an mm.
        Process([Thread(600, "postgres", uid=113), Thread(601, "postgres", uid=113),
                 Thread(602, "bgwriter", uid=113)],
                mm=Mm(total_vm=55_123, file=3_000, anon=7_777, shmem=25_000, swapents=31,
                      pgtables_bytes=450_560, nr_ptes=110, nr_pmds=4,
                      percpu={"shmem": {0: 12, 2: 7}}),
                oom_score_adj=-900),
        # Leader exited (mm NULL): pid, comm and uid come from thread 701.
        Process([Thread(700, "leaderexit", has_mm=False, uid=1000, flags=PF_EXITING),
                 Thread(701, "worker", uid=100_000), Thread(702, "worker2", uid=1000)],
                mm=Mm(total_vm=20_480, file=64, anon=4_096, swapents=100,
                      pgtables_bytes=73_728, nr_ptes=18, nr_pmds=1,
                      percpu={"anon": {1: 31, 3: 0}}),
                oom_score_adj=200),
        # Zombie: no thread has an mm any more.
        Process([Thread(800, "defunct", has_mm=False, flags=PF_EXITING)]),
        # Invalid uid: %d prints -1, %u prints 4294967295.
        Process([Thread(900, "nobody", uid=INVALID_UID)],
                mm=Mm(total_vm=2_000, file=100, anon=60, pgtables_bytes=40_960, nr_ptes=10,
                      nr_pmds=1)),
        # The hog: per-CPU deltas large against count, including CPU 2 (not online).
        Process([Thread(1234, "memhog", uid=1000)],
                mm=Mm(total_vm=123_456_789, file=150, anon=100, shmem=40, swapents=2_048,
                      pgtables_bytes=251_658_240, nr_ptes=61_440, nr_pmds=120,
                      percpu={"anon": {0: 500, 1: 480, 2: 300}, "file": {0: -20, 1: 7},
                              "shmem": {1: 64}, "swapents": {0: 5, 2: 9}}),
                oom_score_adj=500),
        # count negative, exact sum positive.
        Process([Thread(1300, "lagging", uid=1000)],
                mm=Mm(total_vm=9_000, file=30, anon=-2, swapents=-1, pgtables_bytes=36_864,
                      nr_ptes=9, nr_pmds=1, percpu={"anon": {0: 50}, "swapents": {1: 4}})),
        # count positive, exact sum negative: clamped at 0.
        Process([Thread(1400, "overcount", uid=1000)],
                mm=Mm(total_vm=9_500, file=10, anon=70, pgtables_bytes=36_864, nr_ptes=9,
                      nr_pmds=1, percpu={"file": {0: -30}, "anon": {2: -100}})),
        # Several negative counters (an atomic counter behind a per-thread cache).
        Process([Thread(1500, "negative", uid=1000)],
                mm=Mm(total_vm=8_000, file=-3, anon=7, shmem=-1, swapents=-2,
                      pgtables_bytes=32_768, nr_ptes=8, nr_pmds=1)),
        # Wide values: PID above 99999, comm of TASK_COMM_LEN - 1 bytes.
        Process([Thread(4_194_303, "abcdefghijklmno", uid=65_534)],
                mm=Mm(total_vm=1_000, file=5, anon=5, pgtables_bytes=8_192, nr_ptes=2,
                      nr_pmds=1),
                oom_score_adj=1000),
    ]


# Counters -------------------------------------------------------------------


def kernel_counter(layout: Layout, cpus: Cpus, mm: Mm, member: str) -> int:
    """``get_mm_counter()`` (``get_mm_counter_sum()`` in v7.0) as the kernel computes it."""
    if member == "shmem" and not layout.shmem:
        return 0  # no MM_SHMEMPAGES before v4.5: shmem pages were file pages
    count = getattr(mm, member)
    if layout.counters == "atomic":
        # atomic_long_read(&mm->rss_stat.count[member]), a negative value
        # (SPLIT_RSS_COUNTING caches not flushed yet) read as 0.
        value = count
    elif not layout.exact:
        # v6.2+: percpu_counter_read_positive(): fbc->count only.
        value = count
    else:
        # v7.0: percpu_counter_sum_positive(): fbc->count plus the s32 delta
        # of every CPU of cpu_online_mask | cpu_dying_mask. Every other CPU
        # holds 0 while the kernel runs (percpu_counter_cpu_dead() folds a
        # CPU going down; a CPU never up never wrote one), so at OOM time that
        # is the sum over all possible CPUs; the dump's online mask may miss
        # CPUs that panic stopped (CPU 2 here), which the OOM killer counted.
        deltas = mm.percpu.get(member, {})
        value = count + sum(deltas.get(cpu, 0) for cpu in range(cpus.possible))
    return value if value > 0 else 0


def _rss(layout: Layout, cpus: Cpus, mm: Mm) -> int:
    # get_mm_rss(): file + anon (+ shmem since v4.5), each read as above.
    return sum(kernel_counter(layout, cpus, mm, m) for m in ("file", "anon", "shmem"))


# dump_tasks() -----------------------------------------------------------------


def victim_thread(proc: Process) -> Optional[Thread]:
    """``find_lock_task_mm()``: the first thread of the group that has an mm."""
    if proc.mm is None:
        return None
    return next((t for t in proc.threads if t.has_mm), None)


def expected_row(layout: Layout, cpus: Cpus, proc: Process) -> Optional[Dict[str, int]]:
    """``dump_task(p)`` for the process *proc*: None when the kernel skips it."""
    leader = proc.threads[0]
    # oom_unkillable_task(p): is_global_init(p) || (p->flags & PF_KTHREAD).
    if proc.tgid == 1 or leader.flags & PF_KTHREAD:
        return None
    task = victim_thread(proc)
    if task is None:
        return None
    mm = proc.mm
    return dict(
        pid=task.pid, uid=task.uid, tgid=proc.tgid, total_vm=mm.total_vm,
        rss=_rss(layout, cpus, mm),
        rss_anon=kernel_counter(layout, cpus, mm, "anon"),
        rss_file=kernel_counter(layout, cpus, mm, "file"),
        rss_shmem=kernel_counter(layout, cpus, mm, "shmem"),
        pgtables_bytes=mm.pgtables_bytes, nr_ptes=mm.nr_ptes, nr_pmds=mm.nr_pmds,
        swapents=kernel_counter(layout, cpus, mm, "swapents"),
        oom_score_adj=proc.oom_score_adj, name=task.comm)


def expected_rows(layout: Layout, cpus: Cpus, procs: List[Process]) -> List[Dict[str, int]]:
    """``for_each_process(p) dump_task(p)``, in ``init_task.tasks`` order."""
    rows = (expected_row(layout, cpus, p) for p in procs)
    return [r for r in rows if r is not None]


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - (1 << 16) if v & 0x8000 else v


def row_line(table: str, r: Dict[str, int]) -> str:
    """One ``pr_info()`` row of era *table* (uid is ``%d``, oom_score_adj ``%hd``)."""
    uid, adj = _s32(r["uid"]), _s16(r["oom_score_adj"])
    if table == "T1":
        return (f"[{r['pid']:5d}] {uid:5d} {r['tgid']:5d} {r['total_vm']:8d} {r['rss']:8d} "
                f"{r['nr_ptes']:7d} {r['nr_pmds']:7d} {r['swapents']:8d}         "
                f"{adj:5d} {r['name']}\n")
    if table in ("T2", "T3"):
        width = 5 if table == "T2" else 7
        return (f"[{r['pid']:{width}d}] {uid:5d} {r['tgid']:5d} {r['total_vm']:8d} "
                f"{r['rss']:8d} {r['pgtables_bytes']:8d} {r['swapents']:8d}         "
                f"{adj:5d} {r['name']}\n")
    if table == "T4":
        return (f"[{r['pid']:7d}] {uid:5d} {r['tgid']:5d} {r['total_vm']:8d} {r['rss']:8d} "
                f"{r['rss_anon']:8d} {r['rss_file']:8d} {r['rss_shmem']:9d} "
                f"{r['pgtables_bytes']:8d} {r['swapents']:8d}         {adj:5d} {r['name']}\n")
    raise ValueError(table)


def expected_table_rows(layout: Layout, cpus: Cpus, procs: List[Process]) -> List[str]:
    return [row_line(layout.table, r) for r in expected_rows(layout, cpus, procs)]


# __oom_kill_process() ---------------------------------------------------------


def expected_kill_line(layout: Layout, cpus: Cpus, proc: Process, page_shift: int = 12,
                       memcg: bool = False) -> str:
    """The "Killed process" line when *proc* is the victim."""
    task = victim_thread(proc)  # victim = find_lock_task_mm(victim)
    assert task is not None
    mm = proc.mm

    def K(pages: int) -> int:  # #define K(x) ((x) << (PAGE_SHIFT-10))
        return pages << (page_shift - 10)

    anon = K(kernel_counter(layout, cpus, mm, "anon"))
    file = K(kernel_counter(layout, cpus, mm, "file"))
    shmem = K(kernel_counter(layout, cpus, mm, "shmem"))
    body = (f"Killed process {task.pid} ({task.comm}) total-vm:{K(mm.total_vm)}kB, "
            f"anon-rss:{anon}kB, file-rss:{file}kB")
    if layout.kill == "K1":
        return body + "\n"
    body += f", shmem-rss:{shmem}kB"
    if layout.kill == "K2":
        return body + "\n"
    prefix = "Memory cgroup out of memory" if memcg else "Out of memory"
    if layout.kill == "K3":
        return f"{prefix}: {body}\n"
    # K4/K5: from_kuid() with %u; mm_pgtables_bytes(mm) >> 10; %hd (K4) or %d (K5).
    adj = _s16(proc.oom_score_adj)
    return (f"{prefix}: {body}, UID:{task.uid & 0xFFFFFFFF} "
            f"pgtables:{mm.pgtables_bytes >> 10}kB oom_score_adj:{adj}\n")
