"""The processes a scenario puts in front of the OOM killer (``oompop`` and ``oomhog``)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Union

from .kernels import HarnessError
from .qemu import Guest

__all__ = ["CGROUP_ROOT", "DEFAULT_POPULATION", "HOG_NAME", "Member", "cgroup_dir",
           "in_cgroup", "setup_cgroups", "start_hog", "start_population"]

HOG_NAME = "oomhog"
CGROUP_ROOT = "/sys/fs/cgroup"  # cgroup v2, +memory in its subtree_control (/init)


@dataclass(frozen=True)
class Member:
    """One ``oompop`` invocation: ``1 + fork`` processes named ``name``."""

    name: str  # at most 15 characters (TASK_COMM_LEN - 1)
    anon_mb: int = 0
    shmem_mb: int = 0
    adj: int = 0
    uid: int = 0
    threads: int = 0
    leader_exit: bool = False
    fork: int = 0
    #: MB of its anon memory swapped out with MADV_PAGEOUT (needs ``swap_mb``).
    pageout_mb: int = 0
    #: cgroup v2 path under ``/sys/fs/cgroup`` (``"job/a"``); ``None``: the root.
    cgroup: Optional[str] = None

    @property
    def processes(self) -> int:
        """How many table rows this member adds."""
        return 1 + self.fork

    def command(self) -> str:
        """The guest command line."""
        args = ["oompop", "--name", self.name, "--adj", str(self.adj),
                "--anon", str(self.anon_mb), "--shmem", str(self.shmem_mb)]
        if self.uid:
            args += ["--uid", str(self.uid)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.leader_exit:
            args.append("--leader-exit")
        if self.fork:
            args += ["--fork", str(self.fork)]
        if self.pageout_mb:
            args += ["--pageout", str(self.pageout_mb)]
        return shlex.join(args)

    def shell_command(self, cpu: Optional[int] = None, root: str = CGROUP_ROOT) -> str:
        """:meth:`command`, pinned to ``cpu`` and moved into :attr:`cgroup` first
        (a path under ``root``: a cgroup v1 hierarchy's mount point, if given)."""
        return _pin(cpu) + _in_cgroup_cmd(self.command(), self.cgroup, root)


# A 256 MB guest: ~45 MB for these, the rest for the hog.
DEFAULT_POPULATION = (
    Member("pop-unkillable", anon_mb=4, adj=-1000),
    Member("pop-protected", anon_mb=6, adj=-500),
    Member("pop-plain", anon_mb=8),
    Member("pop-user", anon_mb=3, adj=300, uid=1000),
    Member("pop-nobody", anon_mb=2, adj=1000, uid=65534),
    Member("pop-shmem", anon_mb=1, shmem_mb=12, uid=1000),
    Member("pop-zombie-ldr", anon_mb=5, adj=100, threads=3, leader_exit=True),
    Member("pop-threads", anon_mb=2, threads=4, uid=65534),
    Member("pop-forker", anon_mb=2, adj=-200, fork=2),
    Member("pop-idle"),
)


def _pin(cpu: Optional[int]) -> str:
    return "" if cpu is None else f"taskset -c {cpu} "


def _norm(path: Optional[str]) -> str:
    return (path or "").strip("/")


def cgroup_dir(path: Optional[str], root: str = CGROUP_ROOT) -> str:
    """The guest directory of cgroup ``path`` (``"job/a"``; ``None``/``""``: the root)."""
    path = _norm(path)
    return f"{root}/{path}" if path else root


def in_cgroup(path: Optional[str], ancestor: str) -> bool:
    """Whether cgroup ``path`` is ``ancestor`` or below it."""
    path, ancestor = _norm(path), _norm(ancestor)
    return not ancestor or path == ancestor or path.startswith(ancestor + "/")


def _in_cgroup_cmd(cmd: str, cgroup: Optional[str], root: str = CGROUP_ROOT) -> str:
    # The shell moves itself, then execs: everything the program charges is
    # charged to the cgroup (v2 moves no charges, so the shell's own stay put).
    if not _norm(cgroup):
        return cmd
    procs = shlex.quote(cgroup_dir(cgroup, root) + "/cgroup.procs")
    return "sh -c " + shlex.quote(f"echo $$ > {procs} && exec {cmd}")


def setup_cgroups(guest: Guest, occupied: Iterable[Optional[str]],
                  limits: Optional[Mapping[str, Union[int, str]]] = None) -> None:
    """Create the cgroups in ``occupied`` (those that will hold processes) and
    in ``limits``, with their ancestors, and write each limit to ``memory.max``.

    A cgroup gets its own memcg when ``+memory`` is in its parent's
    ``subtree_control``; the harness writes it there unless the parent holds
    processes itself (cgroup v2's no-internal-process rule would refuse them):
    children of an occupied cgroup share its memcg, and the kernel then prints
    the parent as their ``task_memcg``. A limit on such a child is an error.
    Idempotent; the occupied cgroups accumulate in ``guest.cgroups_occupied``.
    :func:`start_population` and :func:`start_hog` call it for their own
    cgroups, so a scenario whose processes share a subtree calls it first with
    all of them (a cgroup is "occupied" before its processes exist).

    :param limits: ``{path: bytes or "max"}``.
    """
    limits = {_norm(k): v for k, v in (limits or {}).items()}
    # Remembered on the guest: a later call (start_hog) must not enable
    # +memory above a cgroup an earlier call declared occupied.
    guest.cgroups_occupied.update(_norm(c) for c in occupied)
    occupied_set = set(guest.cgroups_occupied)
    paths: Set[str] = set()
    for path in occupied_set | set(limits):
        parts = path.split("/") if path else []
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    cmds = []
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        parent = path.rpartition("/")[0]
        cmds.append(f"mkdir -p {shlex.quote(cgroup_dir(path))}")
        if parent and parent not in occupied_set:
            control = shlex.quote(cgroup_dir(parent) + "/cgroup.subtree_control")
            cmds.append(f"{{ grep -qw memory {control} || echo +memory > {control}; }}")
        elif parent and path in limits:
            raise HarnessError(f"cgroup {path!r}: no memcg of its own (its parent {parent!r} "
                               "holds processes), so no memory.max")
    for path, value in sorted(limits.items()):
        if not path:
            raise HarnessError("the root cgroup has no memory.max")
        cmds.append(f"echo {shlex.quote(str(value))} > "
                    f"{shlex.quote(cgroup_dir(path) + '/memory.max')}")
    if cmds:
        guest.run(" && ".join(cmds))


#: THP's sysfs switch: "never" stops khugepaged (start_stop_khugepaged()).
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def stop_khugepaged(guest: Guest) -> None:
    """Stop khugepaged (THP ``never``), where a test reads an idle process's
    counters and the kernel prints them later. It moves them on its own:
    collapsing a 2 MB range, __collapse_huge_page_copy() counts each empty pte
    it fills as a new MM_ANONPAGES page (seen on 5.10: pages_collapsed 0 -> 1
    and an idle zombie-led process's rss +274 pages, 20 s after it was ready).
    A kernel without THP has no switch: nothing to stop."""
    guest.run(f"[ ! -e {THP_ENABLED} ] || echo never > {THP_ENABLED}")


def start_population(guest: Guest, population: Sequence[Member] = DEFAULT_POPULATION,
                     cpu: Optional[int] = None, timeout: float = 180.0,
                     cgroup_root: Optional[str] = None) -> Dict[str, List[int]]:
    """Start ``population`` (pinned to ``cpu`` if given, each in its cgroup,
    created if need be, see :func:`setup_cgroups`); wait until every process
    has touched its memory (and paged out what it should). Returns
    ``{name: [pid, ...]}``.

    :param cgroup_root: the members' cgroups are under this cgroup v1
        mount point instead, created by the caller.
    """
    names = [m.name for m in population]
    if len(set(names)) != len(names) or any(len(n) > 15 for n in names):
        raise HarnessError(f"population names must be unique and <= 15 chars: {names}")
    if cgroup_root is None:
        setup_cgroups(guest, [m.cgroup for m in population if m.cgroup])
    for i, m in enumerate(population):
        guest.start(m.shell_command(cpu, cgroup_root or CGROUP_ROOT), f"/tmp/pop{i}.out")
    waits = "; ".join(f"w /tmp/pop{i}.out {m.processes}" for i, m in enumerate(population))
    guest.run('w() { until [ "$(grep -c ^ready "$1")" -ge "$2" ]; do sleep 0.2; done; }; '
              + waits, timeout=timeout)
    pids = {}
    for i, m in enumerate(population):
        out = guest.run(f"cat /tmp/pop{i}.out")
        pids[m.name] = [int(p) for p in re.findall(r"^ready (\d+)$", out, re.M)]
        if len(pids[m.name]) != m.processes:
            raise HarnessError(f"{m.name}: expected {m.processes} ready lines:\n{out}")
    # A leader that exits prints "ready" first: wait until it is a zombie, its
    # exit_mm() done (before v6.2 that folds its thread's rss cache into the mm,
    # SPLIT_RSS_COUNTING), so that nothing moves while the tests read.
    zombies = [pids[m.name][0] for m in population if m.leader_exit]
    if zombies:
        guest.run("; ".join(f"until grep -q '^State:[[:space:]]*Z' /proc/{p}/status; do "
                            "sleep 0.2; done" for p in zombies), timeout=timeout)
    return pids


def start_hog(guest: Guest, cpu: Optional[int] = None, adj: int = 0, step_ms: int = 0,
              cgroup: Optional[str] = None, name: str = HOG_NAME,
              cgroup_root: Optional[str] = None) -> int:
    """Start ``oomhog`` in the background (in ``cgroup``, created if need be:
    see :func:`setup_cgroups`; under ``cgroup_root``, a cgroup v1 mount
    point, the caller creates it); return its pid."""
    if _norm(cgroup) and cgroup_root is None:
        setup_cgroups(guest, [cgroup])
    cmd = _in_cgroup_cmd(f"oomhog --name {shlex.quote(name)} --adj {adj} --step-ms {step_ms}",
                         cgroup, cgroup_root or CGROUP_ROOT)
    out = guest.run(f"{_pin(cpu)}{cmd} >/tmp/hog.out 2>&1 & echo $!")
    return int(out.split()[-1])
