"""oom_badness() arithmetic, from the kernel's C, on hand-made records."""

from oomdrgn.core.badness import LONG_MIN, MMF_OOM_SKIP, badness_points, proc_oom_score
from oomdrgn.core.model import MmRecord, RawCounter, TaskRecord

TOTAL = 262_144  # 1 GiB of 4 KiB pages


def _task(adj=0, vfork_done=0, parent_mm=0):
    return TaskRecord(address=1, pid=100, tgid=100, comm="x", flags=0, uid=0,
                      oom_score_adj=adj, mm=0xA000, vfork_done=vfork_done, parent_mm=parent_mm)


def _mm(file=10, anon=20, swap=5, shmem=3, flags=0, **tables):
    counters = tuple(RawCounter(c) for c in (file, anon, swap, shmem))
    return MmRecord(address=0xA000, total_vm=1000, counters=counters, flags=flags, **tables)


def test_points_are_rss_swap_and_page_tables_in_pages():
    # get_mm_rss (10+20+3) + swap 5 + 81920 bytes / 4096.
    mm = _mm(pgtables_bytes=81_920)
    assert badness_points(_task(), mm, TOTAL, "atomic", 12) == (33 + 5 + 20, "")


def test_page_tables_scale_with_the_targets_page_size():
    # mm_pgtables_bytes(mm) / PAGE_SIZE: 16 KiB and 64 KiB pages (arm64).
    mm = _mm(pgtables_bytes=196_608)
    assert badness_points(_task(), mm, TOTAL, "atomic", 14)[0] == 38 + 12
    assert badness_points(_task(), mm, TOTAL, "atomic", 16)[0] == 38 + 3


def test_before_v4_15_page_tables_are_nr_ptes_plus_nr_pmds():
    mm = _mm(nr_ptes=7, nr_pmds=2)
    assert badness_points(_task(), mm, TOTAL, "atomic", 12)[0] == 38 + 9


def test_adj_scales_by_totalpages_per_mille():
    mm = _mm(pgtables_bytes=0)
    # adj * (totalpages / 1000), C integer division first.
    assert badness_points(_task(adj=500), mm, TOTAL, "atomic", 12)[0] == 38 + 500 * 262
    assert badness_points(_task(adj=-999), mm, TOTAL, "atomic", 12)[0] == 38 - 999 * 262


def test_ineligible_tasks():
    mm = _mm(pgtables_bytes=0)
    assert badness_points(_task(adj=-1000), mm, TOTAL, "atomic", 12)[0] == LONG_MIN
    skip = _mm(pgtables_bytes=0, flags=1 << MMF_OOM_SKIP)
    assert badness_points(_task(), skip, TOTAL, "atomic", 12)[0] == LONG_MIN
    vfork = _task(vfork_done=0xB000, parent_mm=0xA000)
    assert badness_points(vfork, mm, TOTAL, "atomic", 12)[1] == "in vfork"
    # The unsigned long era: 0 for the ineligible, at least 1 for the rest.
    assert badness_points(_task(adj=-1000), mm, TOTAL, "atomic", 12, "unsigned long")[0] == 0
    assert badness_points(_task(adj=-999), mm, TOTAL, "atomic", 12, "unsigned long")[0] == 1


def test_proc_oom_score_of_ineligible_is_zero():
    assert proc_oom_score(LONG_MIN, TOTAL) == 0
