"""The harness's own scenarios on every kernel: memcg OOMs (panic and kill
moment), zram swap, idle oom_scores, sysrq-f.

These check what the harness captured against what the guest itself printed
or reported (never typed-in counter values). One kdump-zlib dump per scenario,
removed when the kernel's tests are done. The memcg and idle fixtures are
conftest's (shared with the oomdrgn tests, so each scenario boots once).
"""

import re
import shutil
import tempfile

import pytest

from oomdrgn.testing.harness.scenarios import (IDLE_POPULATION, SWAP_POPULATION, panic_snapshot,
                                       sysrq_table)

# x86-64 only: the harness's own scenarios (swap, sysrq) are checked once.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]

MEMCG = "job"
_ROW = re.compile(r"^\[\s*(\d+)\]\s+(.*)$")


def _scenario(fn, name, **kw):
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-{fn.__name__}-{name}-", dir="/tmp")
    try:
        art = fn(name, workdir, fmt="kdump-zlib", **kw)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    assert art.vmcore.stat().st_size > 0
    return art


@pytest.fixture(scope="session")
def swap_panicked(kernel):
    """panic_on_oom=1 with zram swap full: rows carry swap entries."""
    # One CPU: with swap full, kswapd on another CPU kept reclaiming between the
    # table and the panic (seen on 6.1: one row's rss changed), smp=1 cannot.
    art = _scenario(panic_snapshot, kernel.name, population=SWAP_POPULATION, swap_mb=32, smp=1)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def sysrq(kernel):
    """echo f > /proc/sysrq-trigger, dumped after the kill."""
    art = _scenario(sysrq_table, kernel.name)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)


def rows(table_lines):
    """The table's rows as ``{column: text}`` (``pid`` from the brackets)."""
    header = next(l for l in table_lines if l.startswith("[  pid  ]")).split()[3:]
    out = []
    for line in table_lines:
        m = _ROW.match(line)
        if m and not line.startswith("[  pid  ]"):
            values = m.group(2).split(None, len(header) - 1)
            out.append(dict(zip(header, values), pid=m.group(1)))
    return out


def tgids(art):
    return {int(r["tgid"]) for r in rows(art.table_lines)}


def pids_outside(art, memcg):
    return {p for name, ps in art.pids.items() for p in ps} - set(art.pids_in(memcg))


def _summary(art):
    return dict(re.findall(r"(\w+)=([^,]*)", art.summary_line))


# -- memcg OOM, vm.panic_on_oom=2 -------------------------------------------------------

def test_memcg_panic_table_has_only_the_memcgs_processes(memcg_panicked):
    art = memcg_panicked
    inside = set(art.pids_in(MEMCG))
    assert inside and pids_outside(art, MEMCG)
    assert tgids(art) == inside, art.table_lines
    assert not tgids(art) & pids_outside(art, MEMCG)
    names = {r["name"] for r in rows(art.table_lines)}
    assert names == {n for n, ps in art.pids.items() if set(ps) <= inside}


def test_memcg_panic_report(memcg_panicked):
    art = memcg_panicked
    # panic_on_oom=2 panics in check_panic_on_oom(): no victim, no summary.
    assert art.summary_line is None and art.kill_line is None and art.victim_pid is None
    assert art.memcg == f"/{MEMCG}"
    assert f"Memory cgroup stats for /{MEMCG}:" in art.memcg_lines
    assert art.memcg_lines[0].startswith("memory: usage ")
    assert any(l.startswith("Kernel panic - not syncing: Out of memory: compulsory")
               for l in art.console_lines)
    protection = [l for l in art.memcg_lines if l.startswith("Memory cgroup min protection")]
    assert protection in ([], art.memcg_lines[-1:])


# -- memcg OOM, kill moment -----------------------------------------------------------

def test_memcg_kill_line_names_a_process_in_the_memcg(memcg_killed):
    art = memcg_killed
    assert art.kill_line.startswith("Memory cgroup out of memory: Killed process "), art.kill_line
    summary = _summary(art)
    assert summary["constraint"] == "CONSTRAINT_MEMCG"
    assert summary["oom_memcg"] == art.memcg == f"/{MEMCG}"
    tgid = int(summary["pid"])
    assert tgid in art.pids_in(MEMCG)
    name = next(n for n, ps in art.pids.items() if tgid in ps)
    assert summary["task"] == name and f"({name})" in art.kill_line
    # task_memcg is the victim's cgroup or the nearest ancestor with a memcg.
    assert f"/{art.cgroups[name]}".startswith(summary["task_memcg"])
    assert art.victim_pid in {int(r["pid"]) for r in rows(art.table_lines)
                              if int(r["tgid"]) == tgid}


def test_memcg_kill_moment_table_is_scoped(memcg_killed):
    assert tgids(memcg_killed) == set(memcg_killed.pids_in(MEMCG))


# -- swap ------------------------------------------------------------------------------

def test_swap_shows_in_the_panic_table(swap_panicked):
    art = swap_panicked
    total = next(l for l in art.console_lines if l.startswith("Total swap = "))
    assert int(re.search(r"(\d+)kB", total).group(1)) > 0
    by_tgid = {int(r["tgid"]): r for r in rows(art.table_lines)}
    swapped = [m for m in SWAP_POPULATION if m.pageout_mb]
    assert swapped
    for m in swapped:
        for pid in art.pids[m.name]:
            assert int(by_tgid[pid]["swapents"]) > 0, by_tgid[pid]


# -- idle oom_score -------------------------------------------------------------------

def test_idle_scores_cover_the_population(idle):
    every = [p for ps in idle.pids.values() for p in ps]
    assert every and all(p in idle.scores for p in every)
    assert idle.table_lines == [] and idle.kill_line is None
    for m in IDLE_POPULATION:
        for pid in idle.pids[m.name]:
            assert idle.status[pid]["adj"] == m.adj
            assert idle.status[pid]["Tgid"] == pid


def test_idle_scores_paged_out_members_have_swap(idle):
    paged = [m for m in IDLE_POPULATION if m.pageout_mb]
    assert paged
    for m in paged:
        for pid in idle.pids[m.name]:
            assert idle.status[pid]["VmSwap"] > 0, idle.status[pid]


# -- sysrq-f --------------------------------------------------------------------------

def test_sysrq_table_and_kill_line(sysrq):
    art = sysrq
    assert art.kill_line.startswith("Out of memory: Killed process ")
    assert any("Manual OOM execution" in l for l in art.console_lines)
    population = {p for ps in art.pids.values() for p in ps}
    assert population <= tgids(art)
    assert int(_summary(art)["pid"]) in population


def test_oomdrgn_on_swap_panic_is_the_kernels(kernel, swap_panicked):
    from .oracle import run_oomdrgn
    res = run_oomdrgn("-c", swap_panicked.vmcore, "-s", kernel.vmlinux, "-q", "tasks")
    assert res.stdout == "".join(l + "\n" for l in swap_panicked.table_lines)


def test_oomdrgn_on_sysrq_dump_differs_only_in_the_victim(kernel, sysrq):
    # Dumped after the kill: the victim is gone, and the shell that wrote to
    # sysrq-trigger ran since; every other row is what the kernel printed.
    from .oracle import run_oomdrgn
    res = run_oomdrgn("-c", sysrq.vmcore, "-s", kernel.vmlinux, "-q", "tasks")
    victim = f"[{sysrq.victim_pid:7d}]"

    def others(lines):
        return [l for l in lines if not l.startswith(victim) and not l.endswith(" sh")]
    assert others(res.stdout.splitlines()) == others(sysrq.table_lines)
    assert len(others(sysrq.table_lines)) >= 10


def test_oom_report_on_swap_panic_is_the_kernels(kernel, swap_panicked):
    """With zram swap full, ``oom-report`` equals the kernel's report part by
    part, the swap lines of ``__show_mem()`` included (one CPU: no reclaim runs
    beside the report, yet a preemptible kernel may run kswapd while it goes
    out (7.x, ``PREEMPT(lazy)``: a zone's boost lowered, anon pages moved):
    a value that moved must be proven to have moved)."""
    import json

    from oomdrgn.drgn.backend import reader_for
    from oomdrgn.drgn.program import open_program

    from .oracle import panic_report, run_oomdrgn
    from .showmem_proof import assert_same_or_moved
    art = swap_panicked
    printed = panic_report(art)
    res = run_oomdrgn("-q", "-c", art.vmcore, "-s", kernel.vmlinux, "oom-report", "--json")
    sections = {s["name"]: s for s in json.loads(res.stdout)["sections"]}
    assert {"invoked", "dump_stack", "show_mem", "tasks"} <= set(printed)  # a panic: no summary
    swap_lines = [l for l in printed["show_mem"]
                  if re.match(r"(\d+ pages in swap cache|Free swap  = \d+kB|Total swap = \d+kB)$", l)]
    assert len(swap_lines) == 3 and not swap_lines[-1].endswith(" 0kB"), swap_lines
    for name in ("invoked", "dump_stack", "show_mem", "slab", "tasks", "summary"):
        if name not in printed:
            continue
        ours = sections[name]["lines"]
        if name == "show_mem" and ours != printed[name]:
            prog = open_program(core=str(art.vmcore), vmlinux=[str(kernel.vmlinux)])
            assert_same_or_moved(prog, reader_for(prog), art, printed[name], ours)
            continue
        assert ours == printed[name], name
