"""``explain PID`` against the real kernels: what it says the kernel printed is
what the kernel printed (every column of every row of the table, the kill
line); its exact values are drgn's own sums (per-CPU deltas on 6.2+, the
per-thread caches before), within the bound it states; its badness and rank
are ``victim --all``'s; and over GDB it says the same as on a dump."""

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from oomdrgn.core.explain import explain_task
from oomdrgn.testing.harness import Guest, Member, start_population

from .gdbsession import GdbSession
from .oracle import run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]

_COUNTERS = {"rss_anon": ("MM_ANONPAGES",), "rss_file": ("MM_FILEPAGES",),
             "rss_shmem": ("MM_SHMEMPAGES",), "swapents": ("MM_SWAPENTS",),
             "rss": ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SHMEMPAGES")}
_KILL_COUNTERS = {"anon-rss": "MM_ANONPAGES", "file-rss": "MM_FILEPAGES",
                  "shmem-rss": "MM_SHMEMPAGES"}


def _rows(art):
    """The console's table: header names, then {pid: (line, {name: value})}."""
    header = next(l for l in art.table_lines if l.startswith("[  pid  ]") or
                  l.startswith("[ pid ]"))
    names = ["pid"] + header.split("]", 1)[1].split()
    rows = {}
    for line in art.table_lines:
        m = re.match(r"\[\s*(-?\d+)\]\s+(.*)$", line)
        if not m or line == header:
            continue
        values = [m.group(1)] + m.group(2).split(None, len(names) - 2)
        row = dict(zip(names, values))
        rows[int(m.group(1))] = (line, {k: (v if k == "name" else int(v))
                                        for k, v in row.items()})
    assert len(rows) >= 2, art.table_lines
    return rows


def _kill_values(line):
    m = re.search(r"Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB, "
                  r"file-rss:(\d+)kB, shmem-rss:(\d+)kB(?:, UID:(\d+) pgtables:(\d+)kB "
                  r"oom_score_adj:(-?\d+))?$", line)
    assert m, line
    keys = ("pid", "comm", "total-vm", "anon-rss", "file-rss", "shmem-rss", "UID", "pgtables",
            "oom_score_adj")
    return {k: (v if k == "comm" else int(v)) for k, v in zip(keys, m.groups())
            if v is not None}


def _drgn_exact(prog, pid, names):
    """The exact counters by drgn's own objects, not oomdrgn's reader: count plus
    every possible CPU's delta (v6.2+), or the atomic count plus every thread's
    task->rss_stat cache (before)."""
    from drgn.helpers.linux.cpumask import for_each_possible_cpu
    from drgn.helpers.linux.percpu import per_cpu_ptr
    from drgn.helpers.linux.pid import find_task, for_each_task
    mm = find_task(prog, pid).mm
    total = 0
    for name in names:
        k = prog[name].value_()
        try:
            counter = mm.rss_stat[k]
            value = counter.count.value_() + sum(
                per_cpu_ptr(counter.counters, cpu)[0].value_()
                for cpu in for_each_possible_cpu(prog))
        except TypeError:  # before v6.2: struct mm_rss_stat { atomic_long_t count[]; }
            value = mm.rss_stat.count[k].counter.value_() + sum(
                t.rss_stat.count[k].value_() for t in for_each_task(prog)
                if t.mm.value_() == mm.value_())
        total += max(value, 0)
    return total


def _victim_all(art, kernel, *more):
    """``victim --all``: {pid: (rank, points or None)}."""
    out = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "victim", "--all",
                      *more).stdout
    ranks = {}
    for line in out.splitlines()[3:]:
        rank, pid, points = line.split()[:3]
        ranks[int(pid)] = (int(rank), None if points == "-" else int(points))
    return ranks


def _check_row(doc, line, values):
    assert doc["row"] == line
    assert set(doc["columns"]) == set(values)
    for name, value in values.items():
        col = doc["columns"][name]
        assert col["printed"] == value, (name, col, line)
        if name not in _COUNTERS:
            assert col["exact"] == col["printed"], name


def _check_exact(prog, doc, pid, page_shift):
    for name, col in doc["columns"].items():
        if name in _COUNTERS:
            assert col["exact"] == _drgn_exact(prog, pid, _COUNTERS[name]), (name, col)
            assert abs(col["exact"] - col["printed"]) <= col["bound"], (name, col)
            assert col["difference"] == col["exact"] - col["printed"]
    for name, counter in _KILL_COUNTERS.items():
        col = doc["kill_line"]["columns"].get(name)
        if col is not None:
            exact = _drgn_exact(prog, pid, (counter,)) << (page_shift - 10)
            assert col["exact"] == exact and abs(exact - col["printed"]) <= col["bound"], col


@pytest.mark.parametrize("scenario", ["killed", "panic"])
def test_every_row_printed_is_the_kernels_exact_is_drgns(kernel, scenario, request, programs):
    art = request.getfixturevalue(scenario)
    prog, reader = programs(kernel, art, "elf")
    ranks = _victim_all(art, kernel)
    moved = 0
    for pid, (line, values) in _rows(art).items():
        doc = explain_task(reader, pid)
        _check_row(doc, line, values)
        _check_exact(prog, doc, pid, reader.info.page_shift)
        # The field addresses are drgn's.
        from drgn.helpers.linux.pid import find_task
        task = find_task(prog, pid)
        total_vm = doc["columns"]["total_vm"]["fields"]["mm->total_vm"]
        assert total_vm == {"address": hex(task.mm.total_vm.address_),
                            "value": task.mm.total_vm.value_()}
        assert doc["columns"]["pid"]["fields"]["task->pid"]["address"] == hex(
            task.pid.address_)
        moved += sum(abs(c["difference"]) for c in doc["columns"].values())
        # The badness is victim --all's, and so is the rank.
        b = doc["badness"]
        tgid = values["tgid"]
        if tgid in ranks:
            rank, points = ranks[tgid]
            assert b["selection_points"] == points and b["points"] == points, (pid, b)
            assert b["rank"] == (rank if points is not None else None), (pid, b)
        if b["victim"] is not None and b["victim"]["pid"] == tgid:
            assert b["rank"] == 1 and b["would_take"]["points_short"] == 0
        elif b["points"] is not None and b["victim"] is not None:
            take = b["would_take"]
            assert take["points_short"] == take["needed_points"] - b["points"] > 0
    print(f"{kernel.name} {scenario}: total |exact - printed| over the rows: {moved}")


def test_victim_explained_kill_line_is_the_kernels(kernel, killed):
    victim = killed.victim_pid
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "explain", victim,
                      "--json")
    doc = json.loads(res.stdout)
    kl = doc["kill_line"]
    assert kl["line"] == killed.kill_line
    for name, value in _kill_values(killed.kill_line).items():
        assert kl["columns"][name]["printed"] == value, (name, kl["columns"][name])
    assert doc["badness"]["rank"] == 1
    assert doc["badness"]["victim"]["pid"] == doc["tgid"]
    # The row of the victim, in the table the kernel printed just before.
    line, values = _rows(killed)[doc["pid"]]
    _check_row(doc, line, values)
    # The text names the kernel's expressions and the same line.
    text = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "explain",
                       victim).stdout
    assert killed.kill_line in text and line in text
    assert "mm->total_vm @ 0x" in text and "rank 1 of " in text


def test_memcg_victim(kernel, memcg_killed, programs):
    art = memcg_killed
    prog, reader = programs(kernel, art, "elf")
    ranks = _victim_all(art, kernel, "--memcg", art.memcg)
    for pid, (line, values) in _rows(art).items():
        doc = explain_task(reader, pid, art.memcg)
        _check_row(doc, line, values)
        _check_exact(prog, doc, pid, reader.info.page_shift)
        rank, points = ranks[values["tgid"]]
        assert doc["badness"]["points"] == points
        assert doc["badness"]["rank"] == (rank if points is not None else None)
    res = run_oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "explain",
                      art.victim_pid, "--memcg", art.memcg, "--json")
    doc = json.loads(res.stdout)
    assert doc["kill_line"]["line"] == art.kill_line
    assert doc["badness"]["rank"] == 1 and doc["badness"]["scope"] == f"memcg {art.memcg}"


def test_bad_input_is_one_line(kernel, killed):
    for args, message in ((("explain", "999999"), "oomdrgn: error: no task with PID 999999"),
                          (("explain", str(killed.victim_pid), "--memcg", "/no/such"),
                           "oomdrgn: error: no cgroup ")):
        res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", *args,
                          check_status=6)
        assert res.stdout == ""
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith(message), res.stderr


# Over GDB (QEMU's gdbstub), one x86-64 kernel -------------------------------------

GDB_POPULATION = (
    Member("ex-root", anon_mb=4, shmem_mb=1),
    Member("ex-victim", anon_mb=3, shmem_mb=2, adj=700, uid=4242, threads=3),
    Member("ex-low", anon_mb=1, adj=-500, uid=65534, fork=1),
)


@pytest.mark.arch("x86_64")
@pytest.mark.kernels("6.12")
def test_lx_oom_explain_is_the_clis_json(kernel):
    workdir = Path(tempfile.mkdtemp(prefix=f"oomdrgn-explain-gdb-{kernel.name}-", dir="/tmp"))
    try:
        with Guest(kernel.name, workdir=str(workdir / "guest"), gdb=True,
                   nokaslr=False) as guest:
            pids = start_population(guest, GDB_POPULATION, cpu=0)
            with GdbSession(log_path=workdir / "gdb.log") as gdb:
                gdb.connect(guest.gdb_port)
                gdb.cmd(f"symbol-file -readnever {kernel.vmlinux}")
                gdb.resume()
                time.sleep(2)
                gdb.interrupt()
                answers = {pid: gdb.cmd(f"lx-oom explain {pid} --json", timeout=300)
                           for pid in (pids["ex-victim"][0], pids["ex-low"][0])}
                dump = guest.dump(workdir / "idle.kdump", "kdump-zlib")
                gdb.detach()
        for pid, text in answers.items():
            ours = json.loads(text[text.index("{"):])
            cli = json.loads(run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "explain",
                                         pid, "--json").stdout)
            assert ours == cli, pid
            assert ours["comm"] in ("ex-victim", "ex-low")
            assert ours["percpu_counter_batch"] is not None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
