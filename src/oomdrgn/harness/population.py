"""The processes a scenario puts in front of the OOM killer (``oompop`` and ``oomhog``)."""

import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .kernels import HarnessError
from .qemu import Guest

__all__ = ["DEFAULT_POPULATION", "HOG_NAME", "Member", "start_hog", "start_population"]

HOG_NAME = "oomhog"


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
        return shlex.join(args)


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


def start_population(guest: Guest, population: Sequence[Member] = DEFAULT_POPULATION,
                     cpu: Optional[int] = None, timeout: float = 180.0) -> Dict[str, List[int]]:
    """Start ``population`` (pinned to ``cpu`` if given); wait until every
    process has touched its memory. Returns ``{name: [pid, ...]}``."""
    names = [m.name for m in population]
    if len(set(names)) != len(names) or any(len(n) > 15 for n in names):
        raise HarnessError(f"population names must be unique and <= 15 chars: {names}")
    for i, m in enumerate(population):
        guest.start(_pin(cpu) + m.command(), f"/tmp/pop{i}.out")
    waits = "; ".join(f"w /tmp/pop{i}.out {m.processes}" for i, m in enumerate(population))
    guest.run('w() { until [ "$(grep -c ^ready "$1")" -ge "$2" ]; do sleep 0.2; done; }; '
              + waits, timeout=timeout)
    pids = {}
    for i, m in enumerate(population):
        out = guest.run(f"cat /tmp/pop{i}.out")
        pids[m.name] = [int(p) for p in re.findall(r"^ready (\d+)$", out, re.M)]
        if len(pids[m.name]) != m.processes:
            raise HarnessError(f"{m.name}: expected {m.processes} ready lines:\n{out}")
    return pids


def start_hog(guest: Guest, cpu: Optional[int] = None, adj: int = 0, step_ms: int = 0) -> int:
    """Start ``oomhog`` in the background; return its pid."""
    cmd = f"{_pin(cpu)}oomhog --name {HOG_NAME} --adj {adj} --step-ms {step_ms}"
    out = guest.run(f"{cmd} >/tmp/hog.out 2>&1 & echo $!")
    return int(out.split()[-1])
