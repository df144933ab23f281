"""task_that_hit_the_oom(): which task was ``current`` when the OOM killer ran."""

from oomdrgn.core.oom import task_that_hit_the_oom

OOM_STACK = ["__oom_kill_process", "oom_kill_process", "out_of_memory",
             "__alloc_pages_slowpath", "handle_mm_fault"]
KSWAPD = ["balance_pgdat", "kswapd", "kthread"]


def test_panicking_cpu_first():
    assert task_that_hit_the_oom(0xA, 0xB, [(0xC, OOM_STACK)]) == 0xA


def test_the_cpu_the_debugger_stopped():
    assert task_that_hit_the_oom(None, 0xB, [(0xB, None), (0xC, None)]) == 0xB


def test_two_busy_cpus_the_one_in_the_oom_killer():
    # kswapd busy on the other CPU at the kill moment (seen under load).
    assert task_that_hit_the_oom(None, None, [(0xC, KSWAPD), (0xD, OOM_STACK)]) == 0xD


def test_only_busy_cpu():
    assert task_that_hit_the_oom(None, None, [(0xC, None)]) == 0xC
    assert task_that_hit_the_oom(None, None, [(0xC, KSWAPD)]) == 0xC


def test_cannot_tell():
    assert task_that_hit_the_oom(None, None, []) is None
    assert task_that_hit_the_oom(None, None, [(0xC, None), (0xD, None)]) is None
    assert task_that_hit_the_oom(None, None, [(0xC, OOM_STACK), (0xD, OOM_STACK)]) is None
