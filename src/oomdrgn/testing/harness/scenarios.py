"""Whole OOM scenarios on a real kernel: what it printed, plus a vmcore of the moment.

* :func:`panic_snapshot`: ``vm.panic_on_oom=1``; the dump is of the panicked
  guest, right after the kernel printed its task table.
* :func:`kill_moment`: a hardware breakpoint on ``__oom_kill_process`` stops
  the guest after the table and before the kill line; the dump is taken
  there, then the guest runs on and prints the real kill line.
* :func:`memcg_panic`: a memcg OOM with ``vm.panic_on_oom=2``: the kernel
  prints the memcg's report and table, then panics (no summary, no kill line).
* :func:`memcg_kill_moment`: :func:`kill_moment` for a memcg OOM
  (``Memory cgroup out of memory: Killed process ...``).
* :func:`idle_scores`: no OOM at all: every ``/proc/PID/oom_score`` (and a
  few ``status`` fields) read in the guest, then the guest stopped and dumped.
* :func:`sysrq_table`: ``echo f > /proc/sysrq-trigger`` (a forced OOM kill
  without memory pressure); dumped after the kill line.

Every scenario takes ``swap_mb`` (zram swap in the guest, see :class:`Guest`).
"""

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .gdbstub import GdbStub, symbol_address
from .kernels import HarnessError, kernel_paths
from .population import (DEFAULT_POPULATION, Member, in_cgroup, setup_cgroups, start_hog,
                         start_population)
from .qemu import Guest

__all__ = ["Artifacts", "IDLE_POPULATION", "KILL_FUNCTION", "MEMCG_POPULATION",
           "SWAP_POPULATION", "idle_scores", "kill_line", "kill_moment", "memcg_kill_moment",
           "memcg_panic", "memcg_report", "oom_table", "panic_snapshot", "summary_line",
           "sysrq_table"]

KILL_FUNCTION = "__oom_kill_process"
_TABLE_END = ("oom-kill:", "Out of memory", "Memory cgroup out of memory", "Kernel panic")
_KILLED = re.compile(r"^(?:Out of memory|Memory cgroup out of memory): Killed process (\d+) ")
_MEMCG_STATS = re.compile(r"^Memory cgroup stats for (.*):$")
_OOM_MEMCG = re.compile(r"[:,]oom_memcg=([^,]*)")
_SCORES = re.compile(r"OOMSCORES-BEGIN\r*\n(.*?)OOMSCORES-END (\d+)", re.S)
MB = 1 << 20

# DEFAULT_POPULATION plus a member with 6 of its 8 MB of anon swapped out.
SWAP_POPULATION = DEFAULT_POPULATION + (Member("pop-swapped", anon_mb=8, pageout_mb=6, adj=50),)

# A memcg "job" with its own child memcgs (job/a, job/b, job/c/d), a child
# that shares its parent's memcg (job/b/deep: job/b holds processes, so it
# cannot give job/b/deep a memcg of its own), and processes outside it (the
# root cgroup and a sibling memcg "other"). The hog goes to job/hog.
# mc-a-victim (oom_score_adj 1000) outscores the hog in a 48 MB job.
MEMCG_POPULATION = (
    Member("mc-root", anon_mb=6),
    Member("mc-other", anon_mb=4, adj=500, cgroup="other"),
    Member("mc-other-user", anon_mb=2, shmem_mb=2, uid=1000, cgroup="other"),
    Member("mc-a-plain", anon_mb=5, cgroup="job/a"),
    Member("mc-a-victim", anon_mb=2, shmem_mb=3, adj=1000, uid=1000, cgroup="job/a"),
    Member("mc-a-unkill", anon_mb=2, adj=-1000, cgroup="job/a"),
    Member("mc-b-threads", anon_mb=3, threads=3, adj=-200, cgroup="job/b"),
    Member("mc-b-forks", anon_mb=1, fork=2, uid=65534, cgroup="job/b"),
    Member("mc-b-deep", anon_mb=2, adj=100, cgroup="job/b/deep"),
    Member("mc-d-zombie", anon_mb=2, adj=300, threads=2, leader_exit=True, cgroup="job/c/d"),
)

# oom_score_adj from -1000 to 1000, uids, threads, an exited leader, shmem,
# forks, and anon memory swapped out (needs swap_mb).
IDLE_POPULATION = (
    Member("id-unkillable", anon_mb=3, adj=-1000),
    Member("id-almost", anon_mb=2, adj=-999),
    Member("id-protected", anon_mb=4, adj=-500, uid=1000),
    Member("id-plain", anon_mb=6),
    Member("id-user", anon_mb=3, shmem_mb=2, adj=300, uid=1000),
    Member("id-max", anon_mb=2, adj=1000, uid=65534),
    Member("id-swapped", anon_mb=12, pageout_mb=8, adj=200),
    Member("id-swap-all", anon_mb=4, pageout_mb=4, threads=2, uid=4242),
    Member("id-zombie-ldr", anon_mb=3, adj=500, threads=2, leader_exit=True),
    Member("id-threads", anon_mb=2, threads=5, adj=-100),
    Member("id-forker", anon_mb=1, fork=3, adj=700, uid=65534),
    Member("id-shmem", shmem_mb=8, adj=100),
    Member("id-idle"),
)


@dataclass
class Artifacts:
    """What one scenario left behind (lines have their printk timestamps stripped)."""

    kernel: str
    workdir: Path
    vmcore: Path
    dump_format: str
    console_lines: List[str]
    table_lines: List[str]
    kill_line: Optional[str]
    summary_line: Optional[str]
    victim_pid: Optional[int]
    pids: Dict[str, List[int]] = field(default_factory=dict)
    seconds: float = 0.0
    vmcores: Dict[str, Path] = field(default_factory=dict)  # format -> dump of the same moment
    #: memcg OOMs: the OOM memcg's path as the kernel prints it (``oom_memcg=``,
    #: ``Memory cgroup stats for ...:``), e.g. ``/job``
    memcg: Optional[str] = None
    #: memcg OOMs: the report lines between the call trace and the table
    #: (``memory: usage ...``, ``swap: ...``, ``Memory cgroup stats for /job:``
    #: and the stats, on 7.x ``Memory cgroup min protection ...``)
    memcg_lines: List[str] = field(default_factory=list)
    #: member name -> cgroup path (``""``: the root cgroup); the hog is ``oomhog``
    cgroups: Dict[str, str] = field(default_factory=dict)
    #: :func:`idle_scores`: pid -> ``/proc/PID/oom_score`` as read in the guest
    scores: Dict[int, int] = field(default_factory=dict)
    #: :func:`idle_scores`: pid -> ``{"adj", "Tgid", "VmRSS", "RssAnon", "RssFile",
    #: "RssShmem", "VmSwap", "VmPTE"}`` (kB; only the fields the kernel printed)
    status: Dict[int, Dict[str, int]] = field(default_factory=dict)
    swap_mb: int = 0

    def save(self) -> Path:
        """Write ``artifacts.json`` (all but the console lines) into the workdir."""
        data = {k: v for k, v in asdict(self).items() if k != "console_lines"}
        path = self.workdir / "artifacts.json"
        path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        return path

    def pids_in(self, cgroup: str) -> List[int]:
        """The pids of every member (and the hog) in ``cgroup`` or below it."""
        return sorted(p for name, pids in self.pids.items()
                      if name in self.cgroups and in_cgroup(self.cgroups[name], cgroup)
                      for p in pids)


def _table_span(lines: Sequence[str]) -> Optional[Tuple[int, int]]:
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("[  pid  ]"))
    except StopIteration:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(_TABLE_END)),
               len(lines))
    if start and lines[start - 1].startswith("Tasks state"):
        start -= 1
    return start, end


def oom_table(lines: Sequence[str]) -> List[str]:
    """The first ``dump_tasks()`` block in ``lines``: the ``Tasks state`` line if
    printed, the ``[  pid  ]`` header and every line up to the report's end."""
    span = _table_span(lines)
    return list(lines[span[0]:span[1]]) if span else []


def memcg_report(lines: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """The memcg path and report lines (``memory: usage`` up to the table) of
    the first memcg OOM report in ``lines``; ``(None, [])`` if there is none."""
    span = _table_span(lines)
    end = span[0] if span else len(lines)
    try:
        start = next(i for i in range(end) if lines[i].startswith("memory: usage "))
    except StopIteration:
        return None, []
    report = list(lines[start:end])
    path = next((m.group(1) for m in map(_MEMCG_STATS.match, report) if m), None)
    return path, report


def kill_line(lines: Sequence[str]) -> Optional[str]:
    """The first ``Out of memory: Killed process`` or ``Memory cgroup out of
    memory: Killed process`` line."""
    return next((line for line in lines if _KILLED.match(line)), None)


def summary_line(lines: Sequence[str]) -> Optional[str]:
    """The first ``oom-kill:`` summary line."""
    return next((line for line in lines if line.startswith("oom-kill:")), None)


def _workdir(workdir: Union[str, Path, None]) -> Path:
    path = Path(workdir or tempfile.mkdtemp(prefix="oomdrgn-scenario-", dir="/tmp"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _formats(fmt: Union[str, Sequence[str]]) -> List[str]:
    return [fmt] if isinstance(fmt, str) else list(fmt)


def _dump_all(guest: Guest, workdir: Path, formats: List[str]) -> Dict[str, Path]:
    return {f: guest.dump(workdir / f"vmcore.{f}", f) for f in formats}


def _artifacts(kernel: str, workdir: Path, vmcores: Dict[str, Path], lines: List[str],
               pids: Dict[str, List[int]], started: float, need_table: bool = True,
               **extra: Any) -> Artifacts:
    kill = kill_line(lines)
    summary = summary_line(lines)
    fmt, vmcore = next(iter(vmcores.items()))
    memcg, memcg_lines = memcg_report(lines)
    m = _OOM_MEMCG.search(summary or "")
    art = Artifacts(kernel=kernel, workdir=workdir, vmcore=vmcore, dump_format=fmt,
                    vmcores=vmcores,
                    console_lines=lines, table_lines=oom_table(lines), kill_line=kill,
                    summary_line=summary,
                    victim_pid=int(_KILLED.match(kill).group(1)) if kill else None,
                    pids=pids, seconds=round(time.monotonic() - started, 1),
                    memcg=m.group(1) if m else memcg, memcg_lines=memcg_lines, **extra)
    if need_table and not art.table_lines:
        raise HarnessError(f"{kernel}: no task table on the console (see {workdir})")
    art.save()
    return art


def _cgroups(population: Sequence[Member], hog: Optional[str] = None) -> Dict[str, str]:
    out = {m.name: (m.cgroup or "").strip("/") for m in population}
    if hog is not None:
        out["oomhog"] = hog.strip("/")
    return out


def panic_snapshot(kernel: str, workdir: Union[str, Path, None] = None,
                   population: Sequence[Member] = DEFAULT_POPULATION,
                   fmt: Union[str, Sequence[str]] = "elf",
                   timeout: float = 600.0, swap_mb: int = 0, smp: int = 2) -> Artifacts:
    """Run ``population`` and a hog with ``vm.panic_on_oom=1``; dump the panicked guest.

    :param workdir: kept, holds ``console.log``, ``vmcore.<fmt>``, ``artifacts.json``.
    :param fmt: ``"elf"`` or ``"kdump-zlib"``, or several: one dump each, same moment.
    :param swap_mb: zram swap; the hog then fills it too before the OOM (its
        pages are same-filled, which zram stores almost for free).
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    with Guest(kernel, workdir=str(workdir), swap_mb=swap_mb, smp=smp) as guest:
        guest.run("sysctl -w vm.panic_on_oom=1")
        pids = start_population(guest, population)
        pids["oomhog"] = [start_hog(guest)]
        guest.wait_panicked(timeout)
        vmcores = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population, ""), swap_mb=swap_mb)


def kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = DEFAULT_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf",
                timeout: float = 600.0, cpu: int = 0, swap_mb: int = 0) -> Artifacts:
    """Run ``population`` and a hog pinned to ``cpu``; dump at ``__oom_kill_process``.

    Pinning to one CPU keeps the victim from flushing its counters (on its way
    out, on another CPU) before the kernel prints the kill line.
    """
    return _kill_moment(kernel, workdir, population, fmt, timeout, cpu, swap_mb)


def _kill_moment(kernel: str, workdir: Union[str, Path, None], population: Sequence[Member],
                 fmt: Union[str, Sequence[str]], timeout: float, cpu: Optional[int],
                 swap_mb: int, memcg_limits: Optional[Mapping[str, Union[int, str]]] = None,
                 hog_cgroup: Optional[str] = None) -> Artifacts:
    started = time.monotonic()
    workdir = _workdir(workdir)
    kpaths = kernel_paths(kernel)
    address = symbol_address(kpaths.vmlinux, KILL_FUNCTION)
    with Guest(kpaths, workdir=str(workdir), gdb=True, swap_mb=swap_mb) as guest:
        if memcg_limits is not None:
            guest.run("sysctl -w vm.panic_on_oom=0")
            setup_cgroups(guest, [m.cgroup for m in population] + [hog_cgroup], memcg_limits)
        pids = start_population(guest, population, cpu=cpu)
        with GdbStub(guest.gdb_port, log_path=workdir / "gdb.log",
                     machine=kpaths.machine) as gdb:
            gdb.hbreak(address)
            gdb.cont()
            pids["oomhog"] = [start_hog(guest, cpu=cpu, cgroup=hog_cgroup)]
            gdb.wait_stop(timeout)
            vmcores = _dump_all(guest, workdir, _formats(fmt))
            gdb.detach()
        guest.wait_console(_KILLED.pattern, timeout=120)
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population, hog_cgroup or ""), swap_mb=swap_mb)


def _memcg_setup(population: Sequence[Member], memcg: str, limit_mb: int,
                 memcg_limits: Optional[Mapping[str, Union[int, str]]],
                 hog_cgroup: Optional[str]) -> Tuple[Dict[str, Union[int, str]], str]:
    memcg = memcg.strip("/")
    if not memcg:
        raise HarnessError("memcg must name a cgroup below the root")
    limits: Dict[str, Union[int, str]] = {memcg: limit_mb * MB}
    limits.update({k.strip("/"): v for k, v in (memcg_limits or {}).items()})
    if hog_cgroup is None:
        below = any(in_cgroup(m.cgroup, memcg) and (m.cgroup or "").strip("/") != memcg
                    for m in population)
        hog_cgroup = f"{memcg}/hog" if below else memcg
    if not in_cgroup(hog_cgroup, memcg):
        raise HarnessError(f"the hog's cgroup {hog_cgroup!r} is not in memcg {memcg!r}")
    return limits, hog_cgroup


def memcg_panic(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = MEMCG_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf", memcg: str = "job", limit_mb: int = 48,
                memcg_limits: Optional[Mapping[str, Union[int, str]]] = None,
                hog_cgroup: Optional[str] = None, swap_mb: int = 0,
                cpu: Optional[int] = None, timeout: float = 600.0) -> Artifacts:
    """A memcg OOM with ``vm.panic_on_oom=2``: the guest panics right after the
    memcg's report and table (the kernel prints no summary and no kill line).

    :param memcg: the cgroup whose ``memory.max`` is ``limit_mb``; the hog
        runs in ``hog_cgroup`` (default ``<memcg>/hog`` if members sit below
        ``memcg``, else ``memcg`` itself).
    :param memcg_limits: more ``{path: memory.max}`` (bytes or ``"max"``).
    :returns: :class:`Artifacts` with ``table_lines`` (the memcg's tasks only),
        ``memcg`` (``/job``), ``memcg_lines`` and ``cgroups``.
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    limits, hog_cgroup = _memcg_setup(population, memcg, limit_mb, memcg_limits, hog_cgroup)
    with Guest(kernel, workdir=str(workdir), swap_mb=swap_mb) as guest:
        guest.run("sysctl -w vm.panic_on_oom=2")
        setup_cgroups(guest, [m.cgroup for m in population] + [hog_cgroup], limits)
        pids = start_population(guest, population, cpu=cpu)
        pids["oomhog"] = [start_hog(guest, cpu=cpu, cgroup=hog_cgroup)]
        guest.wait_panicked(timeout)
        vmcores = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    art = _artifacts(kernel, workdir, vmcores, lines, pids, started,
                     cgroups=_cgroups(population, hog_cgroup), swap_mb=swap_mb)
    if art.memcg is None:
        raise HarnessError(f"{kernel}: no memcg report on the console (see {workdir})")
    return art


def memcg_kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                      population: Sequence[Member] = MEMCG_POPULATION,
                      fmt: Union[str, Sequence[str]] = "elf", memcg: str = "job",
                      limit_mb: int = 48,
                      memcg_limits: Optional[Mapping[str, Union[int, str]]] = None,
                      hog_cgroup: Optional[str] = None, swap_mb: int = 0, cpu: int = 0,
                      timeout: float = 600.0) -> Artifacts:
    """:func:`kill_moment` for a memcg OOM (``vm.panic_on_oom=0``): dumped at
    ``__oom_kill_process``, after the table and the ``oom-kill:...,oom_memcg=/job,
    task_memcg=...`` summary, before ``Memory cgroup out of memory: Killed process``.

    Same parameters as :func:`memcg_panic`; the population and the hog are
    pinned to ``cpu``. Once the guest runs on, the hog may cause more memcg
    OOMs: the artifacts hold the first report.
    """
    limits, hog_cgroup = _memcg_setup(population, memcg, limit_mb, memcg_limits, hog_cgroup)
    art = _kill_moment(kernel, workdir, population, fmt, timeout, cpu, swap_mb,
                       memcg_limits=limits, hog_cgroup=hog_cgroup)
    if not (art.summary_line and "CONSTRAINT_MEMCG" in art.summary_line):
        raise HarnessError(f"{kernel}: not a memcg OOM: {art.summary_line} (see {art.workdir})")
    return art


def _parse_scores(text: str) -> Tuple[Dict[int, int], Dict[int, Dict[str, int]]]:
    m = _SCORES.search(text)
    if not m:
        raise HarnessError(f"no oomscores output in:\n{text[-2000:]}")
    scores: Dict[int, int] = {}
    status: Dict[int, Dict[str, int]] = {}
    for line in m.group(1).replace("\r", "").splitlines():
        pid, *fields = line.split()
        values = dict(f.split("=", 1) for f in fields)
        scores[int(pid)] = int(values.pop("score"))
        status[int(pid)] = {k: int(v) for k, v in values.items() if v.lstrip("-").isdigit()}
    if len(scores) != int(m.group(2)):
        raise HarnessError(f"oomscores printed {m.group(2)} processes, parsed {len(scores)}")
    return scores, status


def idle_scores(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = IDLE_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf", swap_mb: int = 32, cpu: int = 0,
                settle_s: float = 1.0, timeout: float = 300.0) -> Artifacts:
    """Every process's ``/proc/PID/oom_score`` while idle, and a dump of that state.

    The guest shell is pinned to ``cpu`` and so is everything it starts: the
    population, then (after ``settle_s``) ``oomscores`` in the background,
    which waits until the shell is idle again, reads ``oom_score``,
    ``oom_score_adj`` and ``status`` of every ``/proc/[0-9]*`` in one pass
    (after an identical warm-up pass), prints them and sleeps. The harness
    stops the guest (QMP ``stop``) as soon as it sees the output, and dumps.

    What can still differ between the read and the dump: the reading process
    itself (its own row is read mid-scan; it allocates nothing afterwards,
    but the kernel may still touch its stack and page tables while it writes
    and goes to sleep), the guest shell if it were not idle yet after the
    delay (normally it waits on ttyS1), and kernel threads (no mm, score 0).

    :returns: :class:`Artifacts` with ``scores`` and ``status`` (by pid),
        ``pids`` (``oomscores``: the reader), no table and no kill line.
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    if any(m.pageout_mb for m in population) and swap_mb <= 0:
        raise HarnessError("members with pageout_mb need swap_mb > 0")
    with Guest(kernel, workdir=str(workdir), swap_mb=swap_mb) as guest:
        guest.run(f"taskset -p -c {cpu} $$ >/dev/null")
        pids = start_population(guest, population, cpu=cpu)
        guest.run(f"sleep {settle_s:g}")
        out = guest.run("oomscores --delay-ms 500 --sleep & echo $!")
        pids["oomscores"] = [int(out.split()[-1])]
        text = guest.wait_tty(r"OOMSCORES-END \d+\r*\n", timeout)
        guest.stop()
        vmcores = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    scores, status = _parse_scores(text)
    missing = [p for ps in pids.values() for p in ps if p not in scores]
    if missing:
        raise HarnessError(f"no oom_score read for pids {missing} (see {workdir})")
    return _artifacts(kernel, workdir, vmcores, lines, pids, started, need_table=False,
                      cgroups=_cgroups(population), scores=scores, status=status,
                      swap_mb=swap_mb)


def sysrq_table(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = DEFAULT_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf", append: str = "log_buf_len=8M",
                swap_mb: int = 0, memory_mb: int = 256, timeout: float = 600.0) -> Artifacts:
    """Force an OOM kill with sysrq-f (``kernel.sysrq=1`` is set by ``/init``);
    wait for the kill line, then stop the guest and dump.

    The dump comes after the kill: the victim has had SIGKILL and the OOM
    reaper may have emptied its mm, so its row in the dump differs from the
    printed one (or is gone). The shell that wrote to ``/proc/sysrq-trigger``
    also ran between the table and the dump. Every other row should match.

    :param append: extra kernel command line (large tables need ``log_buf_len``).
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    with Guest(kernel, workdir=str(workdir), swap_mb=swap_mb, append=append,
               memory_mb=memory_mb) as guest:
        pids = start_population(guest, population, timeout=timeout)
        guest.run("echo f > /proc/sysrq-trigger")
        guest.wait_console(_KILLED.pattern, timeout=timeout)
        guest.stop()
        vmcores = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population), swap_mb=swap_mb)
