"""What-if (``--set-adj``, ``--set-max``, ``--exclude``, ``--swap-pages``) against
the real kernel.

The design, so that no test can pass by accident:

1. On the dump of a real OOM (``killed``: dumped at ``__oom_kill_process``), the
   what-if gives ``kv-root`` (rank 4 without it) ``oom_score_adj`` 1000 and the
   real victim ``kv-victim`` 0. Its answer (victim, points, table, kill line)
   is checked against the kernel's own printed table of that OOM, with the
   badness formula applied by hand to the printed rows (not by oomdrgn).
2. A second boot (``whatif_killed``) runs the same workload and writes those
   two values to ``/proc/PID/oom_score_adj`` before the hog starts: the kernel
   must kill ``kv-root``, which it never does without them. Its kill line is
   compared with the one the what-if predicted on the first boot's dump in
   every value that does not move between boots (name, UID, oom_score_adj,
   total-vm); the pid is the one the second boot's ``kv-root`` got. The rest
   (rss, pgtables) is proven on the second boot's own dump: the same what-if
   there (now a no-op: "was 1000") prints the kernel's kill line byte for byte.
3. A memcg OOM's ``--set-max``: the victim under a 4 MiB ``memory.max`` of
   ``/job`` is computed by hand from the kernel's printed memcg table.
"""

import json
import re

import pytest

from oomdrgn.core import errors
from oomdrgn.core.formats import format_row
from oomdrgn.core.logparse import parse_lines
from oomdrgn.testing.harness.scenarios import whatif_kill_moment

from .conftest import KILL_POPULATION
from .oracle import run_oomdrgn, scenario
from .test_real_bad_input import one_line

pytestmark = pytest.mark.vm

#: The what-if of this module, by member name: kv-root made the most killable.
SET_ADJ = {"kv-root": 1000, "kv-victim": 0}
_KILL = re.compile(r"Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB, "
                   r"file-rss:(\d+)kB, shmem-rss:(\d+)kB, UID:(\d+) pgtables:(\d+)kB "
                   r"oom_score_adj:(-?\d+)$")


@pytest.fixture(scope="session")
def whatif_killed(kernel):
    """The ``killed`` workload with :data:`SET_ADJ` written in the guest before the
    hog starts; dumped at ``__oom_kill_process`` (ELF only)."""
    import shutil
    art = scenario(whatif_kill_moment, kernel, formats=("elf",), set_adj=SET_ADJ,
                   population=KILL_POPULATION)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)


def _report(art):
    """The kernel's first OOM report of the scenario, parsed."""
    report = parse_lines(art.console_lines)[0]
    assert report.table is not None and report.kill is not None
    return report


def _whatif_args(art, names_adj):
    out = []
    for name, adj in names_adj.items():
        out += ["--set-adj", f"{art.pids[name][0]}={adj}"]
    return out


def _victim(kernel, art, *args):
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "victim", "--json", *args)
    return json.loads(res.stdout)


def _by_hand(rows, adj_by_tgid, totalpages, page_shift):
    """``oom_badness()`` of each printed row (long era: no clamp), the adj
    assumed; and ``select_bad_process()``'s choice (a later equal task wins).
    Rows are one per process, in the scan order the kernel printed them."""
    points = {}
    chosen, best = None, None
    for r in rows:
        adj = adj_by_tgid.get(r.tgid, r.oom_score_adj)
        if adj == -1000:
            continue
        p = (r.rss + r.swapents + r.pgtables_bytes // (1 << page_shift)
             + adj * (totalpages // 1000))
        points[r.tgid] = p
        if best is None or p >= best:
            chosen, best = r.tgid, p
    return chosen, best, points


def _assert_kill_line_matches_row(line, row, adj, shift):
    """The predicted kill line's values are the kernel's printed row's (kB)."""
    m = _KILL.search(line)
    assert m, line
    pid, name, total_vm, anon, file, shmem, uid, pgtables, score_adj = m.groups()
    assert (int(pid), name) == (row.pid, row.name)
    assert int(total_vm) == row.total_vm << (shift - 10)
    assert int(anon) + int(file) + int(shmem) == row.rss << (shift - 10)
    assert int(uid) == row.uid
    assert int(pgtables) == row.pgtables_bytes >> 10
    assert int(score_adj) == adj


def _shift(kernel):
    return 14 if kernel.name.endswith("16k") else 12


# -- 1. on the dump of a real OOM --------------------------------------------------

def test_set_adj_prediction_against_the_printed_table(kernel, killed):
    report = _report(killed)
    root, real = killed.pids["kv-root"][0], killed.pids["kv-victim"][0]
    assert report.summary.pid == real  # the kernel's own choice: kv-victim
    plain = _victim(kernel, killed)
    doc = _victim(kernel, killed, *_whatif_args(killed, SET_ADJ))
    assert doc["assumed"] == [
        f"what-if: oom_score_adj of {root} (kv-root) set to 1000 (was 0)",
        f"what-if: oom_score_adj of {real} (kv-victim) set to 0 (was 1000)"]
    assert doc["totalpages"] == plain["totalpages"]  # adj leaves totalpages alone
    # Without the what-if kv-root is not the victim; with it, it is.
    assert plain["chosen_pid"] == real and doc["chosen_pid"] == root
    # The same choice and points, by hand from the rows the kernel printed.
    shift = _shift(kernel)
    chosen, best, points = _by_hand(report.table.rows, {root: 1000, real: 0},
                                    doc["totalpages"], shift)
    assert (chosen, best) == (root, doc["chosen_points"])
    ours = {c["pid"]: c["points"] for c in doc["candidates"] if c["points"] is not None}
    assert ours == points
    # The kill line: kv-root's printed row, oom_score_adj 1000.
    row = next(r for r in report.table.rows if r.tgid == root)
    _assert_kill_line_matches_row(doc["kill_line"], row, 1000, shift)
    assert doc["kill_line"].startswith("Out of memory: Killed process ")


def test_set_adj_report_is_the_kernels_table_with_the_adj(kernel, killed):
    report = _report(killed)
    root, real = killed.pids["kv-root"][0], killed.pids["kv-victim"][0]
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "oom-report",
                      *_whatif_args(killed, SET_ADJ))
    lines = res.stdout.splitlines()
    assert lines[:2] == [f"what-if: oom_score_adj of {root} (kv-root) set to 1000 (was 0)",
                         f"what-if: oom_score_adj of {real} (kv-victim) set to 0 (was 1000)"]
    # The table: the kernel's rows, the two processes' adj column changed
    # (every thread of kv-victim: the row shows the thread with the mm).
    fmt = report.table.format
    want = [line.text for line in report.table.row_lines]
    for i, r in enumerate(report.table.rows):
        if r.tgid in (root, real):
            r.oom_score_adj = 1000 if r.tgid == root else 0
            want[i] = format_row(fmt, r).rstrip("\n")
    header = lines.index(report.table.header.text)
    assert lines[header + 1:header + 1 + len(want)] == want
    summary = next(line for line in lines if line.startswith("oom-kill:"))
    assert summary.endswith(f",task=kv-root,pid={root},uid=0")
    assert lines[-1].startswith(f"Out of memory: Killed process {root} (kv-root) ")
    assert lines[-1].endswith(" oom_score_adj:1000")


def test_exclude_and_swap_pages(kernel, killed):
    report = _report(killed)
    real = killed.pids["kv-victim"][0]
    plain = _victim(kernel, killed)
    doc = _victim(kernel, killed, "--exclude", str(real))
    assert doc["assumed"] == [f"what-if: process {real} (kv-victim) excluded, as if it had exited"]
    rows = [r for r in report.table.rows if r.tgid != real]
    chosen, best, _ = _by_hand(rows, {}, plain["totalpages"], _shift(kernel))
    assert (doc["chosen_pid"], doc["chosen_points"]) == (chosen, best)
    assert real not in {c["pid"] for c in doc["candidates"]}
    # total_swap_pages assumed: totalpages moves by the same amount.
    doc = _victim(kernel, killed, "--swap-pages", "100000")
    assert doc["totalpages"] == plain["totalpages"] + 100000  # the guest has no swap
    assert doc["assumed"] == ["what-if: total_swap_pages set to 100000 (was 0)"]
    _, best, _ = _by_hand(report.table.rows, {}, doc["totalpages"], _shift(kernel))
    assert doc["chosen_points"] == best
    # oom-report: the OOM's own oom_control (from its stack where it can be
    # read) with the assumed swap added.
    def control(*args):
        res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "oom-report",
                          "--json", *args)
        return json.loads(res.stdout)["control"]
    before, after = control(), control("--swap-pages", "100000")
    assert before["constraint"]["totalpages"] == plain["totalpages"]
    assert after["constraint"]["totalpages"] == plain["totalpages"] + 100000
    assert after["victim_pid"] == doc["chosen_pid"]


def test_set_max_prediction_against_the_printed_memcg_table(kernel, memcg_killed):
    art = memcg_killed
    report = _report(art)
    shift = _shift(kernel)
    plain = _victim(kernel, art, "--memcg", art.memcg)
    assert plain["chosen_pid"] == report.summary.pid
    doc = _victim(kernel, art, "--memcg", art.memcg, "--set-max", f"{art.memcg}=4M")
    pages = (4 << 20) >> shift
    assert doc["assumed"] == [f"what-if: memory.max of {art.memcg} set to {4 << 20} bytes "
                              f"({pages} pages) (was {plain['totalpages']} pages)"]
    # mem_cgroup_get_max(): the limit (the guest has no swap).
    assert doc["totalpages"] == pages
    chosen, best, points = _by_hand(report.table.rows, {}, pages, shift)
    assert (doc["chosen_pid"], doc["chosen_points"]) == (chosen, best)
    assert chosen != report.summary.pid  # a different victim than the kernel's
    row = next(r for r in report.table.rows if r.tgid == chosen)
    _assert_kill_line_matches_row(doc["kill_line"], row, row.oom_score_adj, shift)
    assert doc["kill_line"].startswith("Memory cgroup out of memory: Killed process ")


@pytest.mark.parametrize("args, status, words", [
    (("--set-adj", "4000000=5"), errors.EXIT_QUERY, ("--set-adj 4000000", "no task")),
    (("--exclude", "4000000"), errors.EXIT_QUERY, ("--exclude 4000000", "no task")),
    (("--set-adj", "1=1001"), errors.EXIT_USAGE, ("out of range [-1000, 1000]",)),
    (("--set-adj", "1:5"), errors.EXIT_USAGE, ("not PID=N",)),
    (("--set-max", "/no/such/group=1M"), errors.EXIT_QUERY, ("/no/such/group",)),
    (("--set-max", "/=-1"), errors.EXIT_USAGE, ("--set-max",)),
    (("--set-max", "/job=-4096"), errors.EXIT_USAGE, ("must not be negative",)),
    (("--swap-pages", "-1"), errors.EXIT_USAGE, ("--swap-pages",)),
])
@pytest.mark.parametrize("command", ["victim", "oom-report"])
def test_bad_whatif_input(kernel, killed, command, args, status, words):
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", command, *args,
                      check_status=None)
    one_line(res, status, *words)


def test_bad_whatif_input_score(kernel, killed):
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "score",
                      "--exclude", "4000000", check_status=None)
    one_line(res, errors.EXIT_QUERY, "--exclude 4000000")


# -- 2. the kernel does it --------------------------------------------------------

def test_the_kernel_kills_whom_the_whatif_named(kernel, killed, whatif_killed):
    art = whatif_killed
    predicted = _victim(kernel, killed, *_whatif_args(killed, SET_ADJ))["kill_line"]
    # The second boot's kernel chose kv-root, which it never does unassisted.
    report = _report(art)
    root = art.pids["kv-root"][0]
    assert report.summary.pid == root and report.summary.task == "kv-root"
    m, p = _KILL.search(art.kill_line), _KILL.search(predicted)
    assert m and p, (art.kill_line, predicted)
    assert int(m.group(1)) == root
    # Name, UID, oom_score_adj and total-vm do not move between boots: equal.
    for group in (2, 3, 7, 9):
        assert m.group(group) == p.group(group), (group, art.kill_line, predicted)
    assert art.kill_line.split(" Killed process ")[0] == predicted.split(" Killed process ")[0]
    # The rest, from the second boot's own dump: the what-if (now a no-op)
    # prints the kernel's kill line byte for byte.
    doc = _victim(kernel, art, *_whatif_args(art, SET_ADJ))
    real = art.pids["kv-victim"][0]
    assert doc["assumed"] == [
        f"what-if: oom_score_adj of {root} (kv-root) set to 1000 (was 1000)",
        f"what-if: oom_score_adj of {real} (kv-victim) set to 0 (was 0)"]
    assert doc["chosen_pid"] == root
    assert doc["kill_line"] == art.kill_line + "\n"
