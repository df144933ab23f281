"""get_mm_counter() rules: atomic clamp, percpu count only (v6.2+), exact sums (v7.0)."""

import pytest

import oomdrgn

from .kernel import LAYOUT_NAMES, LAYOUTS, Cpus, Mm, Process, Thread, build
from .kernel_rules import CPUS, kernel_counter

ATOMIC = [n for n in LAYOUT_NAMES if LAYOUTS[n].counters == "atomic"]
APPROX = [n for n in LAYOUT_NAMES if LAYOUTS[n].counters == "percpu" and not LAYOUTS[n].exact]
EXACT = [n for n in LAYOUT_NAMES if LAYOUTS[n].exact]


def _row(name, mm, cpus=CPUS, **kw):
    prog = build(name, [Process([Thread(4242, "probe")], mm=mm)], cpus=cpus, **kw)
    (row,) = oomdrgn.task_rows(prog)
    return row


def _check(name, mm, cpus=CPUS, **kw):
    layout = LAYOUTS[name]
    row = _row(name, mm, cpus, **kw)
    want = {m: kernel_counter(layout, cpus, mm, m) for m in ("file", "anon", "shmem", "swapents")}
    assert (row.rss_file, row.rss_anon, row.rss_shmem, row.swapents) == (
        want["file"], want["anon"], want["shmem"], want["swapents"])
    assert row.rss == want["file"] + want["anon"] + want["shmem"]
    return row, want


@pytest.mark.parametrize("name", ATOMIC)
def test_atomic_negative_counters_read_as_zero_each(name):
    mm = Mm(total_vm=100, file=-5, anon=40, shmem=-7, swapents=-1, pgtables_bytes=4096)
    row, want = _check(name, mm)
    assert want["file"] == want["swapents"] == 0  # the rule clamps each counter
    # get_mm_rss() adds clamped counters: a negative one does not eat the others.
    assert row.rss == mm.anon


@pytest.mark.parametrize("name", ATOMIC)
def test_atomic_ignores_per_cpu_description(name):
    # Atomic layouts have no per-CPU deltas: the same values as without them.
    mm = Mm(total_vm=100, file=5, anon=40, shmem=7, swapents=2, percpu={"anon": {0: 99}})
    _check(name, mm)


@pytest.mark.parametrize("name", APPROX)
def test_percpu_approximate_reads_count_only(name):
    mm = Mm(total_vm=1000, file=150, anon=100, shmem=40, swapents=3,
            percpu={"anon": {0: 500, 1: 480, 2: 300}, "file": {0: -140}, "shmem": {1: 400},
                    "swapents": {3: 0, 0: 60}})
    row, want = _check(name, mm)
    assert (row.rss_anon, row.rss_file, row.rss_shmem, row.swapents) == (
        mm.anon, mm.file, mm.shmem, mm.swapents)


@pytest.mark.parametrize("name", APPROX)
def test_percpu_approximate_negative_count_is_zero(name):
    mm = Mm(total_vm=1000, file=-4, anon=-2, percpu={"anon": {0: 50}})
    row, _ = _check(name, mm)
    assert row.rss == 0


@pytest.mark.parametrize("name", EXACT)
def test_exact_sum_adds_every_possible_cpu(name):
    # CPU 2 is possible but not online (stopped by panic, deltas not folded).
    cpus = Cpus(possible=4, online=frozenset({0, 1}))
    mm = Mm(total_vm=1000, file=150, anon=100, shmem=40, swapents=3,
            percpu={"anon": {0: 500, 1: 480, 2: 300}, "file": {0: -20, 1: 7},
                    "shmem": {2: 64}, "swapents": {0: 5, 2: 9}})
    row, want = _check(name, mm, cpus)
    online_only = mm.anon + sum(d for c, d in mm.percpu["anon"].items() if c in cpus.online)
    assert row.rss_anon == want["anon"] != online_only  # CPU 2 counted


@pytest.mark.parametrize("name", EXACT)
def test_exact_sum_clamps_at_zero(name):
    mm = Mm(total_vm=1000, file=10, anon=-2, percpu={"file": {0: -30}, "anon": {1: 50}})
    row, want = _check(name, mm)
    assert row.rss_file == 0 and row.rss_anon == want["anon"] > 0


@pytest.mark.parametrize("name", EXACT)
def test_exact_sum_with_dying_cpu_and_many_cpus(name):
    cpus = Cpus(possible=9, online=frozenset({0, 1, 2, 3, 5, 8}), dying=frozenset({4}))
    mm = Mm(total_vm=1000, file=1, anon=2, shmem=3, swapents=4,
            percpu={"anon": {c: 10 + c for c in range(9)}, "file": {8: 31}, "shmem": {4: -3}})
    _check(name, mm, cpus)


@pytest.mark.parametrize("name", EXACT)
def test_exact_sum_when_dump_task_is_inlined(name):
    # dump_task() is static and may be inlined: no symbol to scan, so the rule
    # follows oom_badness (which calls __percpu_counter_sum here).
    mm = Mm(total_vm=1000, anon=3, percpu={"anon": {2: 40}})
    prog = build(name, [Process([Thread(4242, "probe")], mm=mm)], cpus=CPUS,
                 inlined=("dump_task",))
    info = oomdrgn.kernel_info(prog)
    assert info.rules["table"] == "percpu-sum"
    assert "oom_badness" in info.rule_evidence["table"]
    assert oomdrgn.task_rows(prog)[0].rss_anon == kernel_counter(LAYOUTS[name], CPUS, mm, "anon")


@pytest.mark.parametrize("name", EXACT)
def test_exact_sum_on_aarch64(name):
    # On arm64 (v5.4+ VA layout) __per_cpu_offset[] is linear map minus kernel
    # image: percpu pointer + offset wraps around 2**64.
    mm = Mm(total_vm=1000, file=3, anon=100, percpu={"anon": {0: 500, 1: -7, 2: 300}})
    _check(name, mm, CPUS, arch="aarch64", page_shift=16)


@pytest.mark.parametrize("name", APPROX + EXACT)
def test_percpu_code_scan_on_aarch64(name):
    prog = build(name, [], arch="aarch64")
    want = "percpu-sum" if LAYOUTS[name].exact else "percpu-count"
    assert set(oomdrgn.kernel_info(prog).rules.values()) == {want}
