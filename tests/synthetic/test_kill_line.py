"""kill_line(): the "Killed process" line of every era, for chosen victims."""

import pytest

import oomdrgn
from oomdrgn.core.oom import TargetError

from .kernel import LAYOUT_NAMES, LAYOUTS, build
from .kernel_rules import CPUS, expected_kill_line, standard_processes

VICTIMS = [412, 600, 700, 900, 1234, 1300, 1400, 1500, 4194303]


@pytest.fixture(scope="module", params=LAYOUT_NAMES)
def kernel(request):
    procs = standard_processes()
    return LAYOUTS[request.param], procs, build(request.param, procs, cpus=CPUS)


def _proc(procs, pid):
    return next(p for p in procs if any(t.pid == pid for t in p.threads))


@pytest.mark.parametrize("memcg", [False, True], ids=["global", "memcg"])
@pytest.mark.parametrize("pid", VICTIMS)
def test_kill_line(kernel, pid, memcg):
    layout, procs, prog = kernel
    want = expected_kill_line(layout, CPUS, _proc(procs, pid), memcg=memcg)
    assert oomdrgn.kill_line(prog, pid, memcg=memcg) == want


def test_prefix_by_era(kernel):
    layout, _, prog = kernel
    line = oomdrgn.kill_line(prog, 1234)
    memcg = oomdrgn.kill_line(prog, 1234, memcg=True)
    if layout.kill in ("K1", "K2"):  # before v5.1: no "%s: " message
        assert line.startswith("Killed process 1234 (memhog)") and memcg == line
    else:
        assert line.startswith("Out of memory: Killed process 1234 (memhog)")
        assert memcg.startswith("Memory cgroup out of memory: Killed process 1234 (memhog)")
    assert ("shmem-rss:" in line) == (layout.kill != "K1")
    assert ("UID:" in line) == (layout.kill in ("K4", "K5"))


def test_invalid_uid_prints_unsigned(kernel):
    layout, _, prog = kernel
    line = oomdrgn.kill_line(prog, 900)
    if layout.kill in ("K4", "K5"):
        assert "UID:4294967295 " in line


@pytest.mark.parametrize("pid", [700, 701, 702])
def test_leader_exited_any_thread_names_first_thread_with_mm(kernel, pid):
    _, _, prog = kernel
    assert "Killed process 701 (worker) " in oomdrgn.kill_line(prog, pid)


def test_non_leader_thread_pid_kills_group(kernel):
    _, _, prog = kernel
    assert oomdrgn.kill_line(prog, 602) == oomdrgn.kill_line(prog, 600)


@pytest.mark.parametrize("pid", [2, 800, 12345])
def test_no_line_without_mm_or_task(kernel, pid):
    _, _, prog = kernel
    with pytest.raises(TargetError):
        oomdrgn.kill_line(prog, pid)


@pytest.mark.parametrize("page_shift", [14, 16])
@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_kill_line_scales_with_page_size(name, page_shift):
    # arm64 with 16 KiB / 64 KiB pages (K(x) = x << (PAGE_SHIFT - 10)).
    layout = LAYOUTS[name]
    procs = standard_processes()
    prog = build(name, procs, cpus=CPUS, arch="aarch64", page_shift=page_shift)
    assert oomdrgn.kernel_info(prog).page_shift == page_shift
    for pid in (1234, 700):
        want = expected_kill_line(layout, CPUS, _proc(procs, pid), page_shift=page_shift)
        assert oomdrgn.kill_line(prog, pid) == want
    # The table stays in pages.
    small = build(name, procs, cpus=CPUS)
    assert oomdrgn.tasks_table(prog) == oomdrgn.tasks_table(small)


@pytest.mark.parametrize("page_shift", [12, 14, 16])
def test_kill_line_page_size_on_x86_64_layout(page_shift):
    # PAGE_SHIFT is read from the program, not assumed from the architecture.
    layout = LAYOUTS["v7.0"]
    procs = standard_processes()
    prog = build("v7.0", procs, cpus=CPUS, page_shift=page_shift)
    want = expected_kill_line(layout, CPUS, _proc(procs, 1234), page_shift=page_shift)
    assert oomdrgn.kill_line(prog, 1234) == want
