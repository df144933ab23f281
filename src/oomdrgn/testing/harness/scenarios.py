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
* :func:`memcg_v1_report_moment`: a memcg OOM in a cgroup v1 memory hierarchy,
  dumped right after the memcg's ``memory:``/``memory+swap:``/``kmem:`` report.
* :func:`idle_scores`: no OOM at all: every ``/proc/PID/oom_score`` (and a
  few ``status`` fields) read in the guest, then the guest stopped and dumped.
* :func:`sysrq_table`: ``echo f > /proc/sysrq-trigger`` (a forced OOM kill
  without memory pressure); dumped after the kill line.
* :func:`slab_kill_moment`: :func:`kill_moment` after ``oomslab`` filled
  unreclaimable slab: the report includes ``Unreclaimable slab info:``.
* :func:`numa_kill_moment`: :func:`kill_moment` on a two-node guest, the hog
  confined by a cpuset to node 0 (per-node lines, the node filter).
* :func:`whatif_kill_moment`: :func:`kill_moment` with ``oom_score_adj`` values
  written in the guest (by member name) before the hog starts: the kernel's
  side of a what-if.

Every scenario takes ``swap_mb`` (zram swap in the guest, see :class:`Guest`),
and ``fmt``: the dump formats of the moment, ``elf``, ``kdump-zlib`` and
``raw`` (bare images of each RAM bank, :meth:`Guest.dump_raw`; their files and
addresses in :attr:`Artifacts.raw_banks`).
"""

from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ...core.elffile import elf_machine, symbol_values
from .gdbstub import GdbStub, _tool, symbol_address
from .kernels import HarnessError, kernel_paths
from .population import (DEFAULT_POPULATION, Member, in_cgroup, setup_cgroups, start_hog,
                         start_population, stop_khugepaged)
from .qemu import Guest

__all__ = ["Artifacts", "IDLE_POPULATION", "KILL_FUNCTION", "MEMCG_POPULATION",
           "SWAP_POPULATION", "idle_scores", "kill_line", "kill_moment", "memcg_kill_moment",
           "memcg_panic", "memcg_report", "memcg_v1_report_moment", "MEMCG_V1_ROOT",
           "numa_kill_moment", "oom_table", "panic_snapshot",
           "slab_kill_moment", "summary_line", "sysrq_kill_moment", "sysrq_table",
           "whatif_kill_moment"]

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
    #: memcg kill moments: format -> a dump taken earlier in the same OOM, right
    #: after ``mem_cgroup_print_oom_meminfo()`` returned (the memcg lines' own moment);
    #: ``show_mem_moment``: ``"elf"`` -> the dump where ``dump_header()`` calls
    #: ``__show_mem()`` (:func:`show_mem_call`)
    print_vmcores: Dict[str, Path] = field(default_factory=dict)
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
    #: format ``raw``: ``(file, physical address)`` of each RAM bank's image, in
    #: address order (``vmcores["raw"]`` is the first file; a ``print_vmcores["raw"]``
    #: is ``print-vmcore.raw.0`` of the same banks)
    raw_banks: List[Tuple[str, int]] = field(default_factory=list)

    def save(self) -> Path:
        """Write ``artifacts.json`` (all but the console lines) into the workdir."""
        data = {k: v for k, v in asdict(self).items() if k != "console_lines"}
        path = self.workdir / "artifacts.json"
        path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        return path

    def target_args(self, fmt: str) -> List[str]:
        """oomdrgn's arguments for the dump of format ``fmt``: ``["-c", FILE]``;
        ``raw``: ``["-c", "FILE@0xPADDR", ...]``, one per RAM bank."""
        if fmt != "raw":
            return ["-c", str(self.vmcores[fmt])]
        if not self.raw_banks:
            raise KeyError("raw")  # as vmcores["raw"] would: no raw dump was taken
        return [arg for path, paddr in self.raw_banks for arg in ("-c", f"{path}@{paddr:#x}")]

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


def _dump_all(guest: Guest, workdir: Path, formats: List[str], prefix: str = "vmcore",
              ) -> Tuple[Dict[str, Path], List[Tuple[str, int]]]:
    """One dump per format of the stopped guest, ``<prefix>.<fmt>`` in ``workdir``
    (``raw``: ``<prefix>.raw.0``, ``.1``..., one per RAM bank, the first in the
    dict); and ``(file, physical address)`` of each raw bank."""
    vmcores: Dict[str, Path] = {}
    banks: List[Tuple[str, int]] = []
    for f in formats:
        if f == "raw":
            banks = [(str(path), paddr)
                     for path, paddr in guest.dump_raw(workdir / f"{prefix}.raw")]
            vmcores[f] = Path(banks[0][0])
        else:
            vmcores[f] = guest.dump(workdir / f"{prefix}.{f}", f)
    return vmcores, banks


def _artifacts(kernel: str, workdir: Path, vmcores: Dict[str, Path], lines: List[str],
               pids: Dict[str, List[int]], started: float, need_table: bool = True,
               **extra: Any) -> Artifacts:
    kill = kill_line(lines)
    summary = summary_line(lines)
    fmt, vmcore = next(iter(vmcores.items()))
    memcg, memcg_lines = memcg_report(lines)
    m = _OOM_MEMCG.search(summary or "")
    killed = _KILLED.match(kill) if kill else None  # kill_line() matched it
    art = Artifacts(kernel=kernel, workdir=workdir, vmcore=vmcore, dump_format=fmt,
                    vmcores=vmcores,
                    console_lines=lines, table_lines=oom_table(lines), kill_line=kill,
                    summary_line=summary,
                    victim_pid=int(killed.group(1)) if killed else None,
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
                   timeout: float = 600.0, swap_mb: int = 0, smp: int = 2,
                   ram_below_4g_mb: Optional[int] = None,
                   show_mem_moment: bool = False) -> Artifacts:
    """Run ``population`` and a hog with ``vm.panic_on_oom=1``; dump the panicked guest.

    The guest boots with KASLR.

    :param workdir: kept, holds ``console.log``, ``vmcore.<fmt>``, ``artifacts.json``.
    :param fmt: ``"elf"``, ``"kdump-zlib"`` or ``"raw"``, or several: one dump
        each, same moment.
    :param swap_mb: zram swap; the hog then fills it too before the OOM (its
        pages are same-filled, which zram stores almost for free).
    :param ram_below_4g_mb: x86-64: RAM in two banks, see :class:`Guest`.
    :param show_mem_moment: also dump (ELF, ``print_vmcores["elf"]``) where
        ``dump_header()`` calls ``__show_mem()`` (:func:`show_mem_call`),
        stopped at a hardware breakpoint (KASLR kept: the address is the
        running kernel's): what ``Mem-Info:`` printed was counted between
        that dump and the panic's.
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    printed: Dict[str, Path] = {}
    with Guest(kernel, workdir=str(workdir), swap_mb=swap_mb, smp=smp,
               ram_below_4g_mb=ram_below_4g_mb, gdb=show_mem_moment, nokaslr=False) as guest:
        guest.run("sysctl -w vm.panic_on_oom=1")
        pids = start_population(guest, population)
        if show_mem_moment:
            printed = _stop_at_show_mem(guest, kernel, workdir, pids, timeout)
        else:
            pids["oomhog"] = [start_hog(guest)]
        guest.wait_panicked(timeout)
        vmcores, raw_banks = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.panic_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population, ""), swap_mb=swap_mb, raw_banks=raw_banks,
                      print_vmcores=printed)


def _stop_at_show_mem(guest: Guest, kernel: str, workdir: Path, pids: Dict[str, List[int]],
                      timeout: float) -> Dict[str, Path]:
    """Start the hog with a hardware breakpoint on ``dump_header()``'s call of
    ``__show_mem()``/``show_mem()``; dump there (ELF), then let the guest go on."""
    kpaths = kernel_paths(kernel)
    at = show_mem_call(kpaths.vmlinux)
    # The kernel text moves as one block (KASLR): by dump_header's own offset.
    at += guest.kallsyms("dump_header") - symbol_address(kpaths.vmlinux, "dump_header")
    assert guest.gdb_port is not None
    with GdbStub(guest.gdb_port, log_path=workdir / "gdb.log", machine=kpaths.machine) as gdb:
        gdb.hbreak(at)
        gdb.cont()
        pids["oomhog"] = [start_hog(guest)]
        gdb.wait_stop(timeout)
        printed, _ = _dump_all(guest, workdir, ["elf"], "print-vmcore")
        gdb.cmd("delete")
        gdb.detach()
    return printed


def kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                population: Sequence[Member] = DEFAULT_POPULATION,
                fmt: Union[str, Sequence[str]] = "elf",
                timeout: float = 600.0, cpu: int = 0, swap_mb: int = 0,
                kaslr: bool = False, ram_below_4g_mb: Optional[int] = None,
                taint: int = 0, show_mem_moment: bool = False) -> Artifacts:
    """Run ``population`` and a hog pinned to ``cpu``; dump at ``__oom_kill_process``.

    Pinning to one CPU keeps the victim from flushing its counters (on its way
    out, on another CPU) before the kernel prints the kill line.

    :param kaslr: boot with KASLR (default ``nokaslr``); the breakpoint's
        address is then the guest's own (``/proc/kallsyms``).
    :param ram_below_4g_mb: x86-64: RAM in two banks, see :class:`Guest`.
    :param taint: taint bits set first (``/proc/sys/kernel/tainted``), so the
        report's ``dump_stack()`` header says ``Tainted:`` and its letters.
    :param show_mem_moment: see :func:`_kill_moment`.
    """
    options = {} if ram_below_4g_mb is None else {"ram_below_4g_mb": ram_below_4g_mb}

    def prepare(guest: Guest) -> Dict[str, List[int]]:
        if taint:
            guest.run(f"echo {taint} > /proc/sys/kernel/tainted")
        return {}
    return _kill_moment(kernel, workdir, population, fmt, timeout, cpu, swap_mb,
                        prepare=prepare, guest_options=options, kaslr=kaslr,
                        show_mem_moment=show_mem_moment)


def _kill_moment(kernel: str, workdir: Union[str, Path, None], population: Sequence[Member],
                 fmt: Union[str, Sequence[str]], timeout: float, cpu: Optional[int],
                 swap_mb: int, memcg_limits: Optional[Mapping[str, Union[int, str]]] = None,
                 hog_cgroup: Optional[str] = None,
                 prepare: Optional[Callable[[Guest], Dict[str, List[int]]]] = None,
                 guest_options: Optional[Mapping[str, Any]] = None,
                 cgroup_root: Optional[str] = None,
                 break_at: Optional[int] = None,
                 print_moment: Optional[int] = None,
                 trigger: Optional[Callable[[Guest], Dict[str, List[int]]]] = None,
                 kaslr: bool = False, show_mem_moment: bool = False) -> Artifacts:
    """The kill moment of every ``*_kill_moment``: a hardware breakpoint at
    ``break_at`` (default ``__oom_kill_process``), first at ``print_moment`` if
    given (dumped in every format); addresses are the vmlinux's, moved by the
    KASLR offset if ``kaslr``.

    :param show_mem_moment: a global OOM: the first stop (``print_moment``) is
        ``dump_header()``'s call of ``__show_mem()``, dumped as ELF alone
        (``print_vmcores["elf"]``): what ``Mem-Info:`` printed was counted
        between that dump and the kill moment's (the other CPU runs on, and
        interrupts come, while the report goes out on the console).
    """
    started = time.monotonic()
    workdir = _workdir(workdir)
    kpaths = kernel_paths(kernel)
    address = break_at if break_at is not None else symbol_address(kpaths.vmlinux,
                                                                   KILL_FUNCTION)
    print_formats = _formats(fmt)
    if show_mem_moment:
        assert print_moment is None, "one first stop"
        print_moment = show_mem_call(kpaths.vmlinux)
        print_formats = ["elf"]
    # gdb=True implies nokaslr (GDB breaks on the vmlinux's addresses) unless KASLR is asked.
    with Guest(kpaths, workdir=str(workdir), gdb=True, nokaslr=not kaslr, swap_mb=swap_mb,
               **(guest_options or {})) as guest:
        if kaslr:
            # The kernel text moves as one block: every address by the same
            # offset (x86-64 and arm64 alike), read off the running kernel.
            offset = (guest.kallsyms(KILL_FUNCTION)
                      - symbol_address(kpaths.vmlinux, KILL_FUNCTION))
            address += offset
            if print_moment is not None:
                print_moment += offset
        if memcg_limits is not None:
            guest.run("sysctl -w vm.panic_on_oom=0")
            setup_cgroups(guest, [m.cgroup for m in population] + [hog_cgroup], memcg_limits)
        # What a scenario sets up before the population (its own pids).
        extra = prepare(guest) if prepare is not None else {}
        pids = start_population(guest, population, cpu=cpu, cgroup_root=cgroup_root)
        pids.update(extra)
        assert guest.gdb_port is not None  # Guest(gdb=True)
        with GdbStub(guest.gdb_port, log_path=workdir / "gdb.log",
                     machine=kpaths.machine) as gdb:
            gdb.hbreak(address if print_moment is None else print_moment)
            gdb.cont()
            if trigger is not None:  # what brings the OOM, instead of the hog
                pids.update(trigger(guest))
            else:
                pids["oomhog"] = [start_hog(guest, cpu=cpu, cgroup=hog_cgroup,
                                            cgroup_root=cgroup_root)]
            gdb.wait_stop(timeout)
            printed: Dict[str, Path] = {}
            if print_moment is not None:  # first the moment of the print, then the kill
                printed, _ = _dump_all(guest, workdir, print_formats, "print-vmcore")
                gdb.cmd("delete")
                gdb.hbreak(address)
                gdb.cont()
                gdb.wait_stop(timeout)
            vmcores, raw_banks = _dump_all(guest, workdir, _formats(fmt))
            gdb.detach()
        guest.wait_console(_KILLED.pattern, timeout=120)
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population, hog_cgroup or ""), swap_mb=swap_mb,
                      print_vmcores=printed, raw_banks=raw_banks)


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
        vmcores, raw_banks = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.panic_lines()
    art = _artifacts(kernel, workdir, vmcores, lines, pids, started,
                     cgroups=_cgroups(population, hog_cgroup), swap_mb=swap_mb,
                     raw_banks=raw_banks)
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
    task_memcg=...`` summary, before ``Memory cgroup out of memory: Killed process``;
    and earlier in the same OOM, right after ``mem_cgroup_print_oom_meminfo()``
    returned (:attr:`Artifacts.print_vmcores`).

    Same parameters as :func:`memcg_panic`; the population and the hog are
    pinned to ``cpu``. Once the guest runs on, the hog may cause more memcg
    OOMs: the artifacts hold the first report.
    """
    limits, hog_cgroup = _memcg_setup(population, memcg, limit_mb, memcg_limits, hog_cgroup)
    # Also dumped right after the memcg lines were printed: a counter that moves
    # before __oom_kill_process (an uncharge on another CPU, the per-CPU charge
    # stock) is then seen to have moved after the print.
    printed = _after_call(kernel_paths(kernel).vmlinux, "dump_header",
                          "mem_cgroup_print_oom_meminfo")
    art = _kill_moment(kernel, workdir, population, fmt, timeout, cpu, swap_mb,
                       memcg_limits=limits, hog_cgroup=hog_cgroup, print_moment=printed)
    if not (art.summary_line and "CONSTRAINT_MEMCG" in art.summary_line):
        raise HarnessError(f"{kernel}: not a memcg OOM: {art.summary_line} (see {art.workdir})")
    return art


#: where :func:`memcg_v1_report_moment` mounts the cgroup v1 memory controller
MEMCG_V1_ROOT = "/mnt/memcg-v1"


def _setup_memcg_v1(guest: Guest, root: str, occupied: Sequence[Optional[str]],
                    limits: Mapping[str, Union[int, str]]) -> None:
    """Take the memory controller off cgroup v2 (``-memory`` in the root's
    subtree_control: no child cgroup holds it yet, so it may move), mount it
    alone as a cgroup v1 hierarchy at ``root``, make it hierarchical (root
    ``memory.use_hierarchy``: 0 by default on older kernels, always 1 on newer
    ones) and create the cgroups with their ``memory.limit_in_bytes``."""
    paths: Set[str] = set()
    for path in [c for c in occupied if c] + list(limits):
        parts = path.strip("/").split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    cmds = ["echo -memory > /sys/fs/cgroup/cgroup.subtree_control",
            f"mkdir -p {root}", f"mount -t cgroup -o memory memory {root}",
            f"{{ echo 1 > {root}/memory.use_hierarchy || true; }}"]
    cmds += [f"mkdir -p {shlex.quote(f'{root}/{p}')}"
             for p in sorted(paths, key=lambda p: (p.count("/"), p))]
    cmds += [f"echo {shlex.quote(str(v))} > {shlex.quote(f'{root}/{p}/memory.limit_in_bytes')}"
             for p, v in sorted(limits.items())]
    guest.run(" && ".join(cmds))


def _after_call(vmlinux: Path, caller: str, callee: str) -> int:
    """The address of the instruction after *caller*'s call of *callee* (the
    return address), found with ``objdump``."""
    return _call_site(vmlinux, caller, callee)[1]


def show_mem_call(vmlinux: Path) -> int:
    """The address of ``dump_header()``'s call of ``__show_mem()``, the newest
    name tried first; ``show_mem()`` where the kernel has no ``__show_mem()``
    (5.10 here)."""
    return _call_site(vmlinux, "dump_header", "__show_mem", "show_mem")[0]


def _call_site(vmlinux: Path, caller: str, *callees: str) -> Tuple[int, int]:
    """The addresses of *caller*'s call of the first of *callees* it calls, and of
    the instruction after it (the return address), found with ``objdump``."""
    machine = elf_machine(str(vmlinux)) or platform.machine()
    start, size = symbol_values(str(vmlinux), [caller]).get(caller, (0, 0))
    if not size:
        raise HarnessError(f"{caller} is not a function of {vmlinux}")
    objdump = _tool("objdump", machine, "binutils-aarch64-linux-gnu")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", f"--start-address={start:#x}",
                          f"--stop-address={start + size:#x}", str(vmlinux)], check=True,
                         capture_output=True, text=True).stdout
    insns = re.findall(r"^\s*([0-9a-f]+):\s+(.*)$", out, re.M)
    for callee in callees:
        for (at, text), (after, _) in zip(insns, insns[1:]):
            if re.search(rf"\b(call|bl)\s+[0-9a-f]+ <{re.escape(callee)}>", text):
                return int(at, 16), int(after, 16)
    raise HarnessError(f"{caller} calls none of {', '.join(callees)} in {vmlinux}")


def memcg_v1_report_moment(kernel: str, workdir: Union[str, Path, None] = None,
                           population: Sequence[Member] = MEMCG_POPULATION,
                           fmt: Union[str, Sequence[str]] = "elf", memcg: str = "job",
                           limit_mb: int = 48, hog_cgroup: Optional[str] = None,
                           cpu: int = 0, timeout: float = 600.0) -> Artifacts:
    """A memcg OOM on cgroup v1 (the memory controller mounted alone at
    :data:`MEMCG_V1_ROOT` with ``mount -t cgroup -o memory``, the members'
    ``cgroup`` paths in that hierarchy, ``memory.limit_in_bytes`` of ``memcg``
    ``limit_mb``), dumped right after ``mem_cgroup_print_oom_meminfo()``
    returned to ``dump_header()`` (a hardware breakpoint on the return
    address), and before, at its entry (``print_vmcores``); then the guest runs
    on to the kill line.

    The report has ``memory+swap:`` and ``kmem:`` lines. The dump comes right
    after them because the ``kmem`` counter moves within milliseconds of the
    print: the OOM's reclaim shrank memcg-aware slab caches, whose objects are
    freed by RCU callbacks in a softirq on the OOM's CPU (uncharging ``kmem``,
    and through the per-CPU charge stock ``memory``), often before
    ``__oom_kill_process``. Needs a kernel that still offers cgroup v1 memcg
    (not 6.12+ built without ``CONFIG_MEMCG_V1``).
    """
    limits, hog_cgroup = _memcg_setup(population, memcg, limit_mb, None, hog_cgroup)

    def prepare(guest: Guest) -> Dict[str, List[int]]:
        _setup_memcg_v1(guest, MEMCG_V1_ROOT, [m.cgroup for m in population] + [hog_cgroup],
                        limits)
        return start_population(guest, population, cpu=cpu, cgroup_root=MEMCG_V1_ROOT)
    vmlinux = kernel_paths(kernel).vmlinux
    address = _after_call(vmlinux, "dump_header", "mem_cgroup_print_oom_meminfo")
    # Also dumped at the function's entry (print_vmcores): a counter that moves
    # while the lines are printed lies between the two dumps.
    entry = symbol_address(vmlinux, "mem_cgroup_print_oom_meminfo")
    art = _kill_moment(kernel, workdir, (), fmt, timeout, cpu, 0, hog_cgroup=hog_cgroup,
                       prepare=prepare, cgroup_root=MEMCG_V1_ROOT, break_at=address,
                       print_moment=entry)
    art.cgroups = _cgroups(population, hog_cgroup)
    art.save()
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
        stop_khugepaged(guest)
        pids = start_population(guest, population, cpu=cpu)
        guest.run(f"sleep {settle_s:g}")
        out = guest.run("oomscores --delay-ms 500 --sleep & echo $!")
        pids["oomscores"] = [int(out.split()[-1])]
        text = guest.wait_tty(r"OOMSCORES-END \d+\r*\n", timeout)
        guest.stop()
        vmcores, raw_banks = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    scores, status = _parse_scores(text)
    missing = [p for ps in pids.values() for p in ps if p not in scores]
    if missing:
        raise HarnessError(f"no oom_score read for pids {missing} (see {workdir})")
    return _artifacts(kernel, workdir, vmcores, lines, pids, started, need_table=False,
                      cgroups=_cgroups(population), scores=scores, status=status,
                      swap_mb=swap_mb, raw_banks=raw_banks)


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
        stop_khugepaged(guest)  # the table is printed, the dump taken later
        pids = start_population(guest, population, timeout=timeout)
        guest.run("echo f > /proc/sysrq-trigger")
        guest.wait_console(_KILLED.pattern, timeout=timeout)
        guest.stop()
        vmcores, raw_banks = _dump_all(guest, workdir, _formats(fmt))
        lines = guest.kernel_lines()
    return _artifacts(kernel, workdir, vmcores, lines, pids, started,
                      cgroups=_cgroups(population), swap_mb=swap_mb, raw_banks=raw_banks)


def sysrq_kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                      population: Sequence[Member] = DEFAULT_POPULATION,
                      fmt: Union[str, Sequence[str]] = "elf",
                      timeout: float = 600.0, show_mem_moment: bool = False) -> Artifacts:
    """sysrq-f, dumped at ``__oom_kill_process``: ``moom_callback()`` runs the
    OOM killer on a kworker (``order=-1``, ``gfp_mask=0xcc0(GFP_KERNEL)``, and
    ``dump_stack()``'s ``Workqueue: events moom_callback`` line).
    *show_mem_moment*: see :func:`_kill_moment`."""
    def trigger(guest: Guest) -> Dict[str, List[int]]:
        # In the background, a second later: the guest stops at the breakpoint
        # (in the kworker) only after the shell has answered. The writer then
        # stops itself: exiting would free its stack and page tables on the
        # other CPU while the kworker prints Mem-Info, and spinning would make
        # a second busy CPU (with no registers in arm64 kdump files, the OOM's
        # task is then the only busy one).
        guest.start("sh -c 'sleep 1; echo f > /proc/sysrq-trigger; kill -STOP $$'")
        return {}
    return _kill_moment(kernel, workdir, population, fmt, timeout, None, 0, trigger=trigger,
                        show_mem_moment=show_mem_moment)


#: slab_kill_moment()'s population: a little user memory besides the hog.
SLAB_POPULATION = (
    Member("sl-plain", anon_mb=4),
    Member("sl-user", anon_mb=2, shmem_mb=2, adj=500, uid=1000),
)


def slab_kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                     population: Sequence[Member] = SLAB_POPULATION,
                     fmt: Union[str, Sequence[str]] = "elf", slab_mb: Optional[int] = None,
                     timeout: float = 600.0, cpu: int = 0,
                     show_mem_moment: bool = False) -> Artifacts:
    """:func:`kill_moment` after ``oomslab SLAB_MB`` queued ``slab_mb`` MB of
    System V messages (4 KiB kmalloc objects no task owns): at the OOM the
    unreclaimable slab outnumbers the LRU pages, so ``dump_header()`` prints
    ``Unreclaimable slab info:`` and the caches.

    :param slab_mb: default 60% of the guest's ``MemAvailable`` (the rest,
        which the hog fills, stays below it with the page cache of ``/``).
    :returns: :class:`Artifacts` with ``pids["oomslab"]`` empty (it exits).
    :param show_mem_moment: see :func:`_kill_moment`.

    kswapd is pinned to ``cpu`` with the hog: with this much slab it keeps
    failing, and on the other CPU it would count ``kswapd_failures`` up while
    the report is printed (``all_unreclaimable?`` would differ from the dump).
    """
    def fill(guest: Guest) -> Dict[str, List[int]]:
        guest.run("for d in /proc/[0-9]*; do grep -q '^Name:.kswapd' $d/status 2>/dev/null &&"
                  f" taskset -p -c {cpu} ${{d#/proc/}} >/dev/null; done; true")
        mb = slab_mb
        if mb is None:
            avail = re.search(r"MemAvailable:\s+(\d+) kB", guest.run("cat /proc/meminfo"))
            if not avail:
                raise HarnessError("no MemAvailable in /proc/meminfo")
            mb = int(avail.group(1)) * 6 // 10 // 1024
        out = guest.run(f"{'' if cpu is None else f'taskset -c {cpu} '}oomslab {mb}",
                        timeout=timeout)
        if "slab " not in out:
            raise HarnessError(f"oomslab failed: {out}")
        return {"oomslab": []}
    return _kill_moment(kernel, workdir, population, fmt, timeout, cpu, 0, prepare=fill,
                        show_mem_moment=show_mem_moment)


#: numa_kill_moment()'s population: memory on node 1 (pinned to its CPU).
NUMA_POPULATION = (
    Member("nu-node1", anon_mb=6),
    Member("nu-node1-user", anon_mb=3, shmem_mb=2, adj=300, uid=1000),
)


def numa_kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                     population: Sequence[Member] = NUMA_POPULATION,
                     fmt: Union[str, Sequence[str]] = "elf", timeout: float = 600.0,
                     cpuset: str = "node0", show_mem_moment: bool = False) -> Artifacts:
    """:func:`kill_moment` on a guest with two NUMA nodes (128 MB and CPU each):
    ``population`` runs on CPU 1 (its memory on node 1); the hog runs on
    CPU 0 in cgroup ``cpuset`` whose ``cpuset.mems`` is ``0``, so it fills
    node 0 alone and the OOM is constrained (``nodemask=0``,
    ``mems_allowed=0``): ``__show_mem()`` shows node 0 only.
    *show_mem_moment*: see :func:`_kill_moment`.
    """
    def confine(guest: Guest) -> Dict[str, List[int]]:
        root = "/sys/fs/cgroup"
        guest.run(f"echo +cpuset > {root}/cgroup.subtree_control && mkdir -p {root}/{cpuset}"
                  f" && echo 0 > {root}/{cpuset}/cpuset.mems")
        return start_population(guest, population, cpu=1)
    return _kill_moment(kernel, workdir, (), fmt, timeout, 0, 0, hog_cgroup=cpuset,
                        prepare=confine, guest_options={"numa_nodes": 2},
                        show_mem_moment=show_mem_moment)


def whatif_kill_moment(kernel: str, workdir: Union[str, Path, None] = None,
                       set_adj: Optional[Mapping[str, int]] = None,
                       population: Sequence[Member] = DEFAULT_POPULATION,
                       fmt: Union[str, Sequence[str]] = "elf", timeout: float = 600.0,
                       cpu: int = 0) -> Artifacts:
    """:func:`kill_moment`, but once ``population`` is ready (before the hog
    starts) ``set_adj[name]`` is written to ``/proc/PID/oom_score_adj`` of every
    process of member ``name``: what ``oomdrgn victim --set-adj PID=N`` assumed,
    done by the kernel. The members start as they would without it (same
    order, same ``--adj``), so only the written values differ.
    """
    set_adj = dict(set_adj or {})
    unknown = set(set_adj) - {m.name for m in population}
    if unknown:
        raise HarnessError(f"set_adj names no member: {sorted(unknown)}")

    def prepare(guest: Guest) -> Dict[str, List[int]]:
        pids = start_population(guest, population, cpu=cpu)
        writes = [f"echo {int(adj)} > /proc/{pid}/oom_score_adj"
                  for name, adj in sorted(set_adj.items()) for pid in pids[name]]
        reads = " ".join(f"/proc/{pid}/oom_score_adj"
                         for name in sorted(set_adj) for pid in pids[name])
        out = guest.run(" && ".join(writes) + f" && cat {reads}")
        want = [str(int(adj)) for name, adj in sorted(set_adj.items()) for _ in pids[name]]
        if out.split()[-len(want):] != want:
            raise HarnessError(f"oom_score_adj not written: read {out!r}, want {want}")
        return pids
    art = _kill_moment(kernel, workdir, (), fmt, timeout, cpu, 0, prepare=prepare)
    art.cgroups = _cgroups(population, "")
    art.save()
    return art
