"""oomdrgn for other people's QEMU test suites: boot a real kernel, set up
processes and memcgs from Python, ask oomdrgn what the OOM killer would do,
make it happen, and read what the kernel printed.

    from oomdrgn.testing import OomGuest
    with OomGuest("6.12") as g:
        g.cgroup("app", memory_max=64 << 20)
        batch, = g.spawn("batch", anon_mb=8, adj=1000, cgroup="app/batch")
        assert g.victim(memcg="app").chosen_pid == batch
        event = g.trigger_oom(cgroup="app/hog")
        assert event.victim_pid == batch

The pytest plugin (:mod:`oomdrgn.testing.pytest_plugin`) hands such guests to tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional

from .harness import Guest, Member, setup_cgroups, start_hog, start_population
from .harness.scenarios import kill_line as _kill_line
from .harness.scenarios import oom_table, summary_line

__all__ = ["OomGuest", "OomEvent"]


@dataclass
class OomEvent:
    """One OOM kill the kernel performed, as it printed it."""

    kill_line: str
    summary_line: Optional[str]
    table_lines: List[str]
    victim_pid: int
    lines: List[str] = field(default_factory=list)  # the console from the trigger on


class OomGuest:
    """A real Debian kernel under QEMU (TCG), ready for OOM experiments.

    :param kernel: ``5.10``, ``6.1``, ``6.12``, ``7.x`` (``vm-images/kernels.list``)
        or a :class:`oomdrgn.testing.harness.KernelPaths` for any vmlinuz + debug vmlinux
    """

    def __init__(self, kernel="6.12", *, memory_mb: int = 256, swap_mb: int = 0, smp: int = 2,
                 workdir: Optional[str] = None, keep: bool = False) -> None:
        self.guest = Guest(kernel, memory_mb=memory_mb, swap_mb=swap_mb, smp=smp,
                           workdir=workdir, keep=keep)
        self.kernel = self.guest.kernel
        self._prog = None
        self._names = 0

    # Set-up ------------------------------------------------------------------

    def cgroup(self, path: str, memory_max: Optional[int] = None,
               holds_processes: bool = False) -> None:
        """Create cgroup v2 *path* (its own memcg) with ``memory.max`` in bytes."""
        setup_cgroups(self.guest, [path] if holds_processes else [],
                      {path: memory_max} if memory_max is not None else None)

    def spawn(self, name: str, *, anon_mb: int = 0, shmem_mb: int = 0, adj: int = 0,
              uid: int = 0, threads: int = 0, leader_exit: bool = False, fork: int = 0,
              pageout_mb: int = 0, cgroup: Optional[str] = None,
              cpu: Optional[int] = None) -> List[int]:
        """Start ``1 + fork`` idle processes named *name* holding that much memory;
        returns their pids once every page is touched."""
        m = Member(name, anon_mb=anon_mb, shmem_mb=shmem_mb, adj=adj, uid=uid, threads=threads,
                   leader_exit=leader_exit, fork=fork, pageout_mb=pageout_mb, cgroup=cgroup)
        return start_population(self.guest, [m], cpu=cpu)[name]

    def run(self, cmd: str, timeout: float = 60.0) -> str:
        """A shell command in the guest (busybox), its output."""
        return self.guest.run(cmd, timeout=timeout)

    # Questions (the guest is paused while oomdrgn reads it) --------------------

    def program(self):
        """A drgn Program of the guest over its own QMP socket."""
        if self._prog is None:
            from ..drgn.program import open_program
            self._prog = open_program(qemu=str(self.guest.qmp_path_for_drgn),
                                      vmlinux=[str(self.kernel.vmlinux)])
        return self._prog

    def _ask(self, fn):
        from ..drgn.backend import reader_for
        prog = self.program()
        self.guest.stop()
        try:
            return fn(reader_for(prog))
        finally:
            self.guest.cont()

    def tasks(self, memcg: Optional[str] = None) -> str:
        """The table an OOM (global, or in *memcg*) would print now."""
        from ..core.decision import memcg_dump_tasks
        from ..core.oom import dump_tasks, format_dump_tasks
        return self._ask(lambda r: format_dump_tasks(
            r, memcg_dump_tasks(r, memcg) if memcg else dump_tasks(r)))

    def victim(self, memcg: Optional[str] = None):
        """:class:`oomdrgn.core.model.Selection`: whom ``select_bad_process()`` would kill now."""
        from ..core.decision import select_bad_process
        return self._ask(lambda r: select_bad_process(r, memcg))

    def scores(self) -> dict:
        """``{pid: /proc/PID/oom_score}`` as oomdrgn computes it."""
        from ..core.decision import oom_scores
        return self._ask(lambda r: {pid: s for pid, _, s in oom_scores(r)})

    def kill_line(self, pid: int, memcg: bool = False) -> str:
        """The line the kernel would print if *pid* were killed now."""
        from ..core.oom import oom_kill_line
        return self._ask(lambda r: oom_kill_line(r, pid, memcg))

    # Making it happen --------------------------------------------------------

    def trigger_oom(self, cgroup: Optional[str] = None, adj: int = 0,
                    timeout: float = 300.0) -> OomEvent:
        """Start a memory hog (in *cgroup*: a memcg OOM) and wait for the kill."""
        start = len(self.guest.kernel_lines())
        start_hog(self.guest, adj=adj, cgroup=cgroup)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.guest.kernel_lines()[start:]
            kill = _kill_line(lines)
            if kill:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no OOM kill within {timeout:g} s")
            time.sleep(0.5)
        import re
        m = re.search(r"Killed process (\d+) ", kill)
        assert m is not None  # _kill_line() matched "...: Killed process <pid> "
        pid = int(m.group(1))
        return OomEvent(kill_line=kill, summary_line=summary_line(lines),
                        table_lines=oom_table(lines), victim_pid=pid, lines=lines)

    def kernel_reports(self):
        """Every OOM report on the console, parsed (:func:`oomdrgn.core.logparse.parse_log`)."""
        from ..core.logparse import parse_log
        return parse_log(self.guest.console_text())

    # Lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self._prog = None
        self.guest.close()

    def __enter__(self) -> "OomGuest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
