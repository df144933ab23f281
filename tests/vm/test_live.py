"""oomdrgn run as root inside each real Debian kernel, on the live kernel (``-k``).

One boot per kernel (:class:`oomdrgn.testing.harness.liveguest.LiveGuest`: a Debian
bookworm root with python3, drgn and the current oomdrgn; the debug vmlinux
where ``linux-image-<release>-dbg`` puts it; no ``-s`` anywhere). The fixture
:func:`live` runs every step in a fixed order, closes the guest, then the tests
judge what it recorded, so a failed assertion never leaves QEMU running and no
two guests ever run at once. Steps, in order:

1. khugepaged stopped (its collapses add rss to idle processes:
   :func:`~oomdrgn.testing.harness.population.stop_khugepaged`), then an idle
   population (varied oom_score_adj, uids, threads, an exited leader, forks,
   shmem), pinned to CPU 0;
2. clear errors: not root; ``/proc/kcore`` missing (a private ``/proc``);
3. ``oomdrgn -k victim --sysrq`` and ``oomdrgn -k kill VICTIM``;
4. ``oomdrgn -k tasks`` with the debug vmlinux moved away (the kernel's BTF and
   kallsyms); then ``oomdrgn -k tasks`` immediately followed by
   ``echo f > /proc/sysrq-trigger``; the kernel prints its table and kills the
   victim: both tables must be the kernel's;
5. ``oomdrgn -k score`` between two reads of every ``/proc/PID/oom_score``
   (the shell's ``read`` builtin: no new process); a score must equal the
   readings, or lie between them where the process's memory moved meanwhile
   (seen once: a daemon on 5.10, one point);
6. ``oomdrgn -k kill PID`` and ``/proc/PID/status`` for one process of each kind
   (on 6.12 also with ``--counter-rule percpu-sum``, see test_kill_columns_are_proc_status);
7. the debug vmlinux moved away: ``oomdrgn -k --debug-info dwarf tasks`` names
   the -dbg package.

A second boot per kernel with ``lockdown=confidentiality`` checks the lockdown
message. Timings of every step are printed (``pytest -s`` shows them).

Rows allowed to differ, and why: the test's own processes only. The test's own: the
interactive ``sh`` that runs oomdrgn (its counters move as it forks and waits)
and the ``oomdrgn`` (python3) process itself, which is in oomdrgn's view but
has exited before the kernel prints its table or ``/proc`` is read.
"""

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List

import pytest

from oomdrgn.testing.harness import (KERNEL_NAMES, HarnessError, Member, kernel_paths,
                                     start_population, stop_khugepaged)
from oomdrgn.testing.harness.liveguest import GuestResult, LiveGuest
from oomdrgn.testing.harness.scenarios import _call_site, kill_line, oom_table

pytestmark = pytest.mark.vm

# 1 GiB guest: ~40 MB here, 215-320 MB for oomdrgn (drgn's index of the vmlinux).
LIVE_POPULATION = (
    Member("lv-unkillable", anon_mb=3, adj=-1000),
    Member("lv-protected", anon_mb=5, adj=-500),
    Member("lv-plain", anon_mb=6),
    Member("lv-user", anon_mb=3, adj=300, uid=1000),
    Member("lv-victim", anon_mb=2, shmem_mb=1, adj=1000, uid=65534),  # sysrq-f kills it
    Member("lv-shmem", anon_mb=1, shmem_mb=10, uid=1000),
    Member("lv-zombie-ldr", anon_mb=4, adj=100, threads=3, leader_exit=True),
    Member("lv-threads", anon_mb=2, threads=4, uid=65534),
    Member("lv-forker", anon_mb=2, adj=-200, fork=2),
    Member("lv-idle"),
)
# One process of each kind for `kill PID` vs /proc/PID/status (the forker's
# second process is a forked child; the zombie leader's TGID names a thread).
KILL_CHECKS = (("lv-plain", 0), ("lv-shmem", 0), ("lv-zombie-ldr", 0), ("lv-threads", 0),
               ("lv-forker", 1), ("lv-unkillable", 0))


@lru_cache(maxsize=None)
def proc_exact_oom_approx(name: str) -> bool:
    """Whether the kernel's /proc/PID/status and its OOM kill line read the rss
    counters differently, read off its code: ``task_mem()`` calls
    ``__percpu_counter_sum`` (exact sums) and ``__oom_kill_process()`` does not
    (6.12.117, its cloud, generic and rt flavours alike; 7.2.13 calls it in both,
    5.10 and 6.1 in neither)."""
    vmlinux = kernel_paths(name).vmlinux

    def calls(caller: str) -> bool:
        try:
            _call_site(vmlinux, caller, "__percpu_counter_sum")
            return True
        except HarnessError:
            return False
    return calls("task_mem") and not calls("__oom_kill_process")


CPU = 0
LOCKDOWN = "confidentiality"
NOT_ROOT = "setpriv --reuid=65534 --regid=65534 --clear-groups"

BOOT_TIMEOUT = 300
LIVE_TIMEOUT = 1800  # the first test of a kernel pays for the whole run (~3-6 min)


@dataclass
class LiveRun:
    """What one boot of one kernel recorded."""

    kernel: str
    release: str
    banner: str = ""
    pids: Dict[str, List[int]] = field(default_factory=dict)
    shell_pid: int = 0
    results: Dict[str, GuestResult] = field(default_factory=dict)
    console: List[str] = field(default_factory=list)
    proc_scores: Dict[int, int] = field(default_factory=dict)  # read after oomdrgn's
    proc_scores_before: Dict[int, int] = field(default_factory=dict)  # and before
    proc_status: Dict[int, str] = field(default_factory=dict)  # kill-line pid -> status text
    kills: Dict[str, GuestResult] = field(default_factory=dict)  # rule:pid -> result
    possible_cpus: int = 0
    seconds: Dict[str, float] = field(default_factory=dict)

    def res(self, step: str) -> GuestResult:
        return self.results[step]


def _possible(text: str) -> int:
    n = 0
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def _run_live(kernel: str) -> LiveRun:
    kp = kernel_paths(kernel)
    run = LiveRun(kernel, kp.release)
    t0 = time.monotonic()

    def step(name: str, fn):
        t = time.monotonic()
        out = fn()
        run.seconds[name] = round(time.monotonic() - t, 1)
        return out

    # 1 GiB: in 512 MB, drgn's index of the vmlinux (~320 MB on 7.x) made the
    # kernel reclaim the idle victim's file pages between oomdrgn's reading and
    # the sysrq kill (seen on 7.x: file-rss 68 kB read, 4 kB printed).
    with _boot(kp) as g:
        run.seconds["boot"] = round(time.monotonic() - t0, 1)
        run.banner = g.banner
        run.shell_pid = int(g.run("echo $$").strip())
        run.possible_cpus = _possible(g.read_text("/sys/devices/system/cpu/possible"))
        stop_khugepaged(g)  # it moves idle processes' rss between our read and the sysrq
        run.pids = step("population", lambda: start_population(g, LIVE_POPULATION, cpu=CPU))
        r = run.results
        r["not_root"] = step("not_root", lambda: g.oomdrgn("-k", "tasks", prefix=NOT_ROOT))
        r["no_kcore"] = step("no_kcore", lambda: g.sh(
            "unshare --mount sh -c 'mount -t tmpfs none /proc && exec oomdrgn -k tasks'"))
        # The first drgn run in the guest reads the vmlinux from disk: the slow one.
        r["victim"] = step("victim", lambda: g.oomdrgn("-k", "victim", "--sysrq"))
        m = re.match(r"victim: pid (\d+) ", r["victim"].stdout)
        if m:
            r["kill_victim"] = step("kill_victim", lambda: g.oomdrgn("-k", "-q", "kill",
                                                                     m.group(1)))
            r["explain_victim"] = step("explain_victim", lambda: g.oomdrgn(
                "-k", "-q", "explain", m.group(1), "--json"))
        # The kernel's worker for sysrq-f runs on the writer's CPU: the shell moves
        # to the population's CPU for the write, so the victim cannot exit (and
        # flush its rss caches, 5.10/6.1) before the kernel prints the kill line.
        # taskset has exited before the write; the worker runs later, so no new
        # process may start until the kill line is out (sh(settle=...)).
        # With the debug vmlinux away: the kernel's BTF (sysfs) and kallsyms
        # (through /proc/kcore): the same table is expected.
        r["tasks_btf"] = step("tasks_btf", lambda: g.sh(
            f"mv {g.vmlinux} {g.vmlinux}.away; oomdrgn -k tasks; "
            f"mv {g.vmlinux}.away {g.vmlinux}"))
        r["tasks"] = step("tasks", lambda: g.sh(
            f"oomdrgn -k tasks; taskset -pc {CPU} $$ >/dev/null; echo f > /proc/sysrq-trigger",
            settle=lambda: g.wait_console(r"^Out of memory: Killed process \d+ ", timeout=120)))
        run.console = g.kernel_lines()
        g.run(f"taskset -pc 0-{run.possible_cpus - 1} $$ >/dev/null")
        scores = ("{ for d in /proc/[0-9]*; do read s <$d/oom_score && "
                  "echo \"${d#/proc/} $s\"; done; } >/tmp/proc-scores-%s 2>/dev/null")
        r["score"] = step("score", lambda: g.sh(
            f"{scores % 'before'}; oomdrgn -k -q score; {scores % 'after'}"))
        for when, into in (("before", run.proc_scores_before), ("after", run.proc_scores)):
            for line in g.read_text(f"/tmp/proc-scores-{when}").splitlines():
                pid, score = line.split()
                into[int(pid)] = int(score)

        def kills():
            rules = [None] + (["percpu-sum"] if proc_exact_oom_approx(kernel) else [])
            for name, i in KILL_CHECKS:
                pid = run.pids[name][i]
                for rule in rules:
                    args = (["--counter-rule", rule] if rule else []) + ["-q", "kill", pid]
                    res = g.oomdrgn("-k", *args)
                    run.kills[f"{rule or 'default'}:{pid}"] = res
                    line_pid = re.search(r"Killed process (\d+) ", res.stdout)
                    if line_pid and int(line_pid.group(1)) not in run.proc_status:
                        run.proc_status[int(line_pid.group(1))] = g.read_text(
                            f"/proc/{line_pid.group(1)}/status")
        step("kills", kills)

        def no_debuginfo():
            g.run(f"mv {g.vmlinux} {g.vmlinux}.away")
            try:
                return g.oomdrgn("-k", "--debug-info", "dwarf", "tasks")
            finally:
                g.run(f"mv {g.vmlinux}.away {g.vmlinux}")
        r["no_debuginfo"] = step("no_debuginfo", no_debuginfo)
    run.seconds["total"] = round(time.monotonic() - t0, 1)
    print(f"\n[live {kernel}] {run.release}: seconds {run.seconds}; oomdrgn -k runs: "
          + ", ".join(f"{k} {v.seconds}s" for k, v in run.results.items()))
    return run


_cache: Dict[str, LiveRun] = {}


def _boot(kp):
    """Boot the live guest (a death at boot is retried once by the harness itself)."""
    return LiveGuest(kp, memory_mb=1024, boot_timeout=BOOT_TIMEOUT)


@pytest.fixture(scope="module", params=KERNEL_NAMES)
def live(request) -> LiveRun:
    """Everything one boot of kernel ``request.param`` recorded (guest already closed)."""
    if request.param not in _cache:
        _cache[request.param] = _run_live(request.param)
    return _cache[request.param]


# -- helpers ---------------------------------------------------------------------

_ROW = re.compile(r"^\[\s*(\d+)\]")


def _rows(text: str) -> Dict[int, str]:
    rows = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            rows[int(m.group(1))] = line
    return rows


def _test_pids(run: LiveRun, oomdrgn_text: str) -> Dict[int, str]:
    """The test's own processes: the shell, and oomdrgn (python3) itself."""
    own = {run.shell_pid: "the shell that runs oomdrgn"}
    for pid, line in _rows(oomdrgn_text).items():
        if line.endswith(" oomdrgn"):
            own[pid] = "oomdrgn (python3) itself"
    return own


_KILL = re.compile(r"Killed process (?P<pid>\d+) \((?P<name>.*)\) total-vm:(?P<total_vm>\d+)kB, "
                   r"anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB, "
                   r"shmem-rss:(?P<shmem>\d+)kB, UID:(?P<uid>\d+) pgtables:(?P<pgtables>\d+)kB "
                   r"oom_score_adj:(?P<adj>-?\d+)")


def _status(text: str) -> Dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _kb(value: str) -> int:
    assert value.endswith(" kB"), value
    return int(value[:-3])


def _population_pids(run: LiveRun) -> List[int]:
    return [p for pids in run.pids.values() for p in pids]


# -- the tests -------------------------------------------------------------------

@pytest.mark.timeout(LIVE_TIMEOUT)
def test_guest_is_a_users_system(live):
    # The banner of /sbin/oomdrgn-live-init: Debian's python3, the -dbg path, no lockdown.
    assert live.banner.startswith(f"OOMDRGN-READY {live.release} live Python 3.")
    assert f"vmlinux=/usr/lib/debug/boot/vmlinux-{live.release}" in live.banner
    assert "[none]" in live.banner
    assert sorted(live.pids) == sorted(m.name for m in LIVE_POPULATION)


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_not_root_is_one_line_exit_5(live):
    res = live.res("not_root")
    assert res.status == 5, res
    assert res.stdout == ""
    assert res.stderr == "oomdrgn: error: -k reads /proc/kcore and needs root: run it with sudo\n"


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_kcore_missing_is_one_line_exit_3(live):
    # A kernel without CONFIG_PROC_KCORE, as seen from a private /proc without kcore.
    res = live.res("no_kcore")
    assert res.status == 3, res
    assert res.stdout == ""
    assert res.stderr == ("oomdrgn: error: /proc/kcore does not exist (kernel built without "
                          "CONFIG_PROC_KCORE): use a vmcore instead\n")


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_dwarf_insisted_on_names_the_dbg_package(live):
    # --debug-info dwarf without the debug vmlinux (without it, BTF: below).
    res = live.res("no_debuginfo")
    assert res.status == 4, res
    assert res.stdout == ""
    assert res.stderr == (f"oomdrgn: error: no debug info found for kernel {live.release}: "
                          f"install linux-image-{live.release}-dbg or pass -s VMLINUX\n")


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_tasks_table_is_the_sysrq_table(live):
    _assert_is_the_sysrq_table(live, live.res("tasks"))


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_tasks_table_without_debuginfo_is_the_sysrq_table(live):
    # No debug vmlinux: types from the BTF the kernel exports in sysfs, symbols
    # from kallsyms through /proc/kcore.
    res = live.res("tasks_btf")
    assert "oomdrgn: no debug info: types from /sys/kernel/btf/vmlinux, " in res.stderr, \
        res.stderr
    _assert_is_the_sysrq_table(live, res)


def _assert_is_the_sysrq_table(live, res):
    assert res.status == 0, res.stderr
    assert "counters:" in res.stderr  # no -q: the detection line, for the record
    kernel_table = oom_table(live.console)
    ours = res.stdout.splitlines()
    assert len(kernel_table) >= 12, kernel_table
    # Title and header lines, byte for byte.
    head = [l for l in kernel_table if not _ROW.match(l)]
    assert [l for l in ours if not _ROW.match(l)] == head
    theirs, mine = _rows("\n".join(kernel_table)), _rows(res.stdout)
    own = _test_pids(live, res.stdout)
    only = {p: mine.get(p) or theirs.get(p) for p in (set(mine) ^ set(theirs)) - set(own)}
    assert not only, f"rows in one table only: {only}"
    for pid in sorted(set(mine) - set(own)):
        assert mine[pid] == theirs[pid], f"pid {pid}"
    for pid in _population_pids(live):
        # Every process of the population has its row (the exited leader has none).
        if pid != live.pids["lv-zombie-ldr"][0]:
            assert pid in theirs
    differing = {p: (mine.get(p), theirs.get(p)) for p in own if mine.get(p) != theirs.get(p)}
    print(f"\n[live {live.kernel}] {len(set(mine) - set(own))} rows equal; the test's own rows "
          f"that differ: {differing}")


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_victim_and_kill_line_are_the_sysrq_kill(live):
    victim = live.res("victim")
    assert victim.status == 0, victim.stderr
    killed = kill_line(live.console)
    assert killed, live.console[-20:]
    # One OOM only, the sysrq's: nothing ran out of memory for real (1 GiB guest).
    invoked = [l for l in live.console if "invoked oom-killer:" in l]
    assert len(invoked) == 1 and "order=-1" in invoked[0], invoked
    assert f"victim: pid {live.pids['lv-victim'][0]} (lv-victim) " in victim.stdout
    assert f"Killed process {live.pids['lv-victim'][0]} (lv-victim)" in killed
    # oomdrgn's kill line, taken before the sysrq, is the one the kernel printed.
    assert live.res("kill_victim").stdout == killed + "\n"
    # explain, live: the same kill line, the victim ranked first.
    explained = live.res("explain_victim")
    assert explained.status == 0, explained.stderr
    doc = json.loads(explained.stdout)
    assert doc["kill_line"]["line"] == killed and doc["badness"]["rank"] == 1


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_score_is_proc_oom_score(live):
    res = live.res("score")
    assert res.status == 0, res.stderr
    ours, names = {}, {}
    for line in res.stdout.splitlines():
        pid, score, *name = line.split()
        ours[int(pid)] = int(score)
        names[int(pid)] = " ".join(name)
    own = _test_pids(live, live.res("tasks").stdout)
    # Every process /proc lists, oomdrgn lists (kernel threads included, score 0);
    # the one only oomdrgn lists is oomdrgn itself, exited when /proc was read.
    only_ours = set(ours) - set(live.proc_scores)
    assert len(only_ours) <= 1 and all(names[p] == "oomdrgn" for p in only_ours), \
        {p: names[p] for p in only_ours}
    own.update({p: "oomdrgn (python3) itself" for p in only_ours})
    assert set(live.proc_scores) - set(ours) == set()
    compared = [p for p in live.proc_scores if p not in own]
    assert len(compared) >= 20
    # Equal to the /proc readings around oomdrgn's run; between them only
    # where they differ (the process's memory moved during the run).
    before = live.proc_scores_before
    outside = {p: (before.get(p), ours[p], live.proc_scores[p]) for p in compared
               if not min(before.get(p, ours[p]), live.proc_scores[p]) <= ours[p]
               <= max(before.get(p, ours[p]), live.proc_scores[p])}
    assert outside == {}, "pid: (before, oomdrgn, after)"
    moved = [p for p in compared if before.get(p, live.proc_scores[p]) != live.proc_scores[p]]
    assert len(moved) <= 3, {p: (before.get(p), live.proc_scores[p]) for p in moved}
    for pid in _population_pids(live):
        if pid != live.pids["lv-victim"][0]:  # killed by the sysrq before this step
            assert pid in compared
    print(f"\n[live {live.kernel}] {len(compared)} oom_scores equal; not compared: "
          f"{ {p: (ours.get(p), live.proc_scores.get(p), why) for p, why in own.items()} }")


@pytest.mark.timeout(LIVE_TIMEOUT)
def test_kill_columns_are_proc_status(live):
    """``kill PID`` vs ``/proc/PID/status`` of the task the line names.

    Same counters on 5.10 and 6.1 (get_mm_counter(): the mm-level atomics, per-thread
    caches not added, in both) and on 7.x (get_mm_counter_sum() in both). On 6.12
    /proc sums the per-CPU deltas while the OOM killer reads percpu_counter.count
    only: the rss columns may differ by less than batch (32) pages per possible CPU,
    and oomdrgn with ``--counter-rule percpu-sum`` must equal /proc exactly.
    """
    slack_kb = (32 - 1) * live.possible_cpus * 4
    report = []
    for key, res in live.kills.items():
        rule, pid = key.split(":")
        assert res.status == 0, (key, res.stderr)
        m = _KILL.search(res.stdout)
        assert m, res.stdout
        st = _status(live.proc_status[int(m["pid"])])
        assert m["name"] == st["Name"]
        assert int(m["uid"]) == int(st["Uid"].split()[0])
        assert int(m["total_vm"]) == _kb(st["VmSize"])
        assert int(m["pgtables"]) == _kb(st["VmPTE"])
        if int(pid) != int(m["pid"]):  # an exited leader: the line names a thread
            assert int(st["Tgid"]) == int(pid)
        pairs = {f: (int(m[f]), _kb(st[k])) for f, k in
                 (("anon", "RssAnon"), ("file", "RssFile"), ("shmem", "RssShmem"))}
        if proc_exact_oom_approx(live.kernel) and rule == "default":
            for f, (a, b) in pairs.items():
                assert abs(a - b) <= slack_kb, (key, f, a, b)
        else:
            assert {f: a for f, (a, _) in pairs.items()} == {f: b for f, (_, b) in pairs.items()}, key
        report.append(f"{key} {m['name']} " + " ".join(
            f"{f}={a}/{b}" for f, (a, b) in pairs.items()))
    print(f"\n[live {live.kernel}] kill line / proc status (kB):\n  " + "\n  ".join(report))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_lockdown_confidentiality(name):
    started = time.monotonic()
    with LiveGuest(name, lockdown=LOCKDOWN, boot_timeout=BOOT_TIMEOUT) as g:
        assert f"[{LOCKDOWN}]" in g.banner, g.banner
        # lockdown_is_locked_down()'s notice is pr_notice_ratelimited(): the boot's
        # own burst of "use of tracefs is restricted" notices (in its first second)
        # would swallow ours within the 5 s ratelimit window. On a quiet host the
        # guest is ready before it ends: wait past it.
        while float(g.run("cut -d' ' -f1 /proc/uptime").split()[0]) < 7.0:
            time.sleep(0.5)
        res = g.oomdrgn("-k", "tasks")
        # The notice reaches the serial console a moment after the refused open().
        try:
            g.wait_console(r"Lockdown: oomdrgn: /proc/kcore access is restricted", timeout=30)
        except HarnessError:
            pass  # the assertion below shows the console's last lines
        lines = g.kernel_lines()
    print(f"\n[live {name}] lockdown boot + oomdrgn: {time.monotonic() - started:.1f} s")
    assert res.status == 5, res
    assert res.stdout == ""
    assert re.fullmatch(r"oomdrgn: error: cannot read /proc/kcore \(\[Errno 1\] Operation not "
                        r"permitted: '/proc/kcore'\); kernel lockdown may forbid it\n",
                        res.stderr), res.stderr
    assert any(re.search(r"Lockdown: oomdrgn: /proc/kcore access is restricted", l)
               for l in lines), lines[-10:]
