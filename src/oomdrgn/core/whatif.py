"""What-if: the OOM killer's decision under assumed changes, nothing written.

``--set-adj PID=N`` (as a write to ``/proc/PID/oom_score_adj``), ``--set-max
PATH=BYTES`` (as a write to the memcg's ``memory.max``), ``--exclude PID`` (as
if the process had exited) and ``--swap-pages N`` (``total_swap_pages``).

The assumptions are applied to the plain records (:func:`assume_task`,
:func:`assume_memcg`, :func:`assume_totals`); :class:`WhatIfReader` is a
reader that hands the core's questions (``select_bad_process()``,
``dump_tasks()``, the kill line, the whole report) those records instead of
the target's, so every question is asked exactly as without assumptions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .badness import memcg_totalpages
from .constraint import Constraint
from .errors import ReadError, TargetError
from .model import MemcgRecord, TaskRecord, VmTotals
from .oom import Reader, find_lock_task_mm, oom_unkillable_task
from .record import record, replace

if TYPE_CHECKING:
    from .oom_report import OomControl

__all__ = ["OOM_SCORE_ADJ_MAX", "Assumptions", "WhatIfReader", "assume_memcg", "assume_task",
           "assume_totals", "assumed_control", "memparse", "parse_set_adj", "parse_set_max",
           "what_if"]

OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
_PREFIX = "what-if: "


@record(frozen=True)
class Assumptions:
    """The changes assumed, as given on the command line.

    :param set_adj: ``(pid, oom_score_adj)`` pairs
    :param set_max: ``(cgroup path, bytes or None for "max")`` pairs
    :param exclude: pids of processes taken as gone
    :param swap_pages: ``total_swap_pages`` assumed (None: as the target's)
    """

    set_adj: Tuple[Tuple[int, int], ...] = ()
    set_max: Tuple[Tuple[str, Optional[int]], ...] = ()
    exclude: Tuple[int, ...] = ()
    swap_pages: Optional[int] = None

    def __bool__(self) -> bool:
        return bool(self.set_adj or self.set_max or self.exclude
                    or self.swap_pages is not None)


# -- the command line's values (ValueError: a usage error) -------------------------------

def parse_set_adj(text: str) -> Tuple[int, int]:
    """``PID=N`` with N in [-1000, 1000] (``__set_oom_adj()``'s range check)."""
    pid, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        pid_n, adj = int(pid, 10), int(value, 10)
    except ValueError:
        raise ValueError(f"--set-adj {text!r}: not PID=N (e.g. 1234=500)") from None
    if pid_n <= 0:
        raise ValueError(f"--set-adj {text!r}: PID must be positive")
    if not OOM_SCORE_ADJ_MIN <= adj <= OOM_SCORE_ADJ_MAX:
        raise ValueError(f"--set-adj {text!r}: oom_score_adj {adj} out of range "
                         f"[{OOM_SCORE_ADJ_MIN}, {OOM_SCORE_ADJ_MAX}]")
    return pid_n, adj


_MEMPARSE = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)([KkMmGgTtPpEe]?)$")


def memparse(text: str) -> int:
    """The kernel's ``memparse()`` of a whole string: a number with an optional
    K, M, G, T, P or E suffix (powers of 1024)."""
    m = _MEMPARSE.match(text.strip())
    if not m:
        raise ValueError(text)
    number, suffix = m.groups()
    return int(number, 0) << (10 * " KMGTPE".index(suffix.upper() or " "))


def parse_set_max(text: str) -> Tuple[str, Optional[int]]:
    """``PATH=BYTES`` (``memparse()`` suffixes) or ``PATH=max``: None for "max"."""
    path, sep, value = text.rpartition("=")
    if not sep or not path.strip("/"):
        raise ValueError(f"--set-max {text!r}: not PATH=BYTES (e.g. /job=64M)")
    if value.strip() == "max":
        return path, None
    if value.strip().startswith("-"):
        raise ValueError(f"--set-max {text!r}: bytes must not be negative")
    try:
        return path, memparse(value)
    except ValueError:
        raise ValueError(f"--set-max {text!r}: not a byte count (e.g. 67108864, 64M, max)") \
            from None


# -- the records ----------------------------------------------------------------------

def assume_task(rec: TaskRecord, adj_by_tgid: Dict[int, int]) -> TaskRecord:
    """*rec* with its ``signal->oom_score_adj`` assumed: the value of its thread
    group (every thread shares one ``signal_struct``)."""
    adj = adj_by_tgid.get(rec.tgid)
    if adj is None or adj == rec.oom_score_adj:
        return rec
    return replace(rec, oom_score_adj=adj)


def assume_memcg(rec: MemcgRecord, max_pages: Dict[str, int]) -> MemcgRecord:
    """*rec* with its ``memory.max`` (pages) assumed."""
    pages = max_pages.get(_norm(rec.path))
    return rec if pages is None else replace(rec, memory_max=pages)


def assume_totals(totals: VmTotals, swap_pages: Optional[int]) -> VmTotals:
    """*totals* with ``total_swap_pages`` assumed."""
    if swap_pages is None:
        return totals
    return replace(totals, total_swap_pages=swap_pages)


def _norm(path: str) -> str:
    return "/" + path.strip("/")


def _page_counter_max(page_shift: int) -> int:
    """``PAGE_COUNTER_MAX`` on 64-bit: ``LONG_MAX / PAGE_SIZE``."""
    return ((1 << 63) - 1) >> page_shift


# -- the reader ----------------------------------------------------------------------

class WhatIfReader:
    """A :class:`~oomdrgn.core.oom.Reader` whose records carry the assumptions.

    ``task()``, ``vm_totals()`` and ``memcg()`` return assumed records;
    ``processes()``, ``memcg_scan_tasks()`` and ``find_task()`` leave the
    excluded processes out; everything else is the wrapped reader's.
    """

    def __init__(self, reader: Reader, adj_by_tgid: Dict[int, int], max_pages: Dict[str, int],
                 excluded_tgids: Sequence[int], swap_pages: Optional[int]) -> None:
        self._reader = reader
        self._adj = dict(adj_by_tgid)
        self._max = dict(max_pages)
        self._excluded = frozenset(excluded_tgids)
        self._swap = swap_pages
        self._lines: List[Tuple[str, Optional[str]]] = []  # (text, --set-max's path)
        # find_lock_task_mm() answers, made of this reader's records (the
        # wrapped reader's memo holds the target's).
        self.task_mm_memo: Optional[Dict[int, Optional[TaskRecord]]] = (
            {} if getattr(reader, "task_mm_memo", None) is not None else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    @property
    def wrapped(self) -> Reader:
        """The reader of the target as it is."""
        return self._reader

    def task(self, task: int) -> TaskRecord:
        return assume_task(self._reader.task(task), self._adj)

    def vm_totals(self) -> VmTotals:
        return assume_totals(self._reader.vm_totals(), self._swap)

    def memcg(self, path: str) -> MemcgRecord:
        return assume_memcg(self._reader.memcg(path), self._max)

    def _kept(self, tasks: Iterator[int]) -> Iterator[int]:
        if not self._excluded:
            yield from tasks
            return
        for p in tasks:
            try:
                if self._reader.task(p).tgid in self._excluded:
                    continue
            except ReadError:
                pass  # the scan reports it as unreadable
            yield p

    def processes(self) -> Iterator[int]:
        return self._kept(self._reader.processes())

    def memcg_scan_tasks(self, path: str) -> Iterator[int]:
        return self._kept(self._reader.memcg_scan_tasks(path))

    def find_task(self, pid: int) -> Optional[int]:
        task = self._reader.find_task(pid)
        if task is None or not self._excluded:
            return task
        try:
            return None if self._reader.task(task).tgid in self._excluded else task
        except ReadError:
            return task  # asked again, it fails where it is read

    def assumed_constraint(self, c: Constraint, memcg: Optional[str] = None) -> Constraint:
        """*c* (the OOM's as the target shows it: ``constrained_alloc()`` over the
        wrapped reader, or the kernel's own from its stack) with the
        ``totalpages`` the assumptions give: ``mem_cgroup_get_max() ?: 1`` of the
        assumed memcg *memcg*, or *c*'s pages (RAM, or the allowed nodes' present
        pages) plus the assumed swap instead of the target's."""
        old, new = self._reader.vm_totals(), self.vm_totals()
        if c.name == "CONSTRAINT_MEMCG":
            if memcg is None or (_norm(memcg) not in self._max and self._swap is None):
                return c
            pages = memcg_totalpages(self.memcg(memcg), new)
        else:  # constrained_alloc(): "oc->totalpages = ... + total_swap_pages"
            pages = c.totalpages - old.total_swap_pages + new.total_swap_pages
        return c if pages == c.totalpages else replace(c, totalpages=pages)

    def lines(self, memcg: Optional[str] = None) -> List[str]:
        """One line per change assumed (``what-if: ...``).

        :param memcg: the OOM's memcg, if a memcg OOM (a ``--set-max`` of
            another cgroup is said to change nothing)
        """
        out = []
        for text, path in self._lines:
            if path is not None:
                if memcg is None:
                    text += ": no effect on a global OOM (its totalpages is RAM + swap)"
                elif _norm(memcg) != path:
                    text += (f": no effect on totalpages (mem_cgroup_get_max() reads "
                             f"{_norm(memcg)}'s)")
            out.append(_PREFIX + text)
        return out

    def memcg_totalpages(self, path: str) -> int:
        """``mem_cgroup_get_max() ?: 1`` of the assumed memcg."""
        return memcg_totalpages(self.memcg(path), self.vm_totals())


def _resolve(reader: Reader, pid: int, option: str) -> TaskRecord:
    task = reader.find_task(pid)
    if task is None:
        raise TargetError(f"{option} {pid}: no task with PID {pid}")
    try:
        rec = reader.task(task)
        # Named by its process: the thread group leader's record, if it is there.
        leader = reader.find_task(rec.tgid) if rec.pid != rec.tgid else None
        return reader.task(leader) if leader is not None else rec
    except ReadError as e:
        raise TargetError(f"{option} {pid}: {e}") from None


def _shares_mm(reader: Reader, rec: TaskRecord, task: int) -> List[TaskRecord]:
    """The other processes ``__set_oom_adj()`` also gives the value: not kernel
    threads or init, not in a vfork, and with a thread on *rec*'s mm
    (``process_shares_mm()``). Since Linux kernel commit 44a70adec910 ("mm,
    oom_adj: make sure processes sharing mm have same view of oom_score_adj")
    (in v4.8); the scan is skipped for a task in a vfork."""
    if rec.vfork_done:
        return []
    mine = find_lock_task_mm(reader, task, rec)
    if mine is None:
        return []
    others = []
    for p in reader.processes():
        try:
            q = reader.task(p)
            if q.tgid == rec.tgid or oom_unkillable_task(q) or q.vfork_done:
                continue
            t = find_lock_task_mm(reader, p, q)
        except ReadError:
            continue
        if t is not None and t.mm == mine.mm:
            others.append(q)
    return others


def what_if(reader: Reader, assumed: Assumptions) -> WhatIfReader:
    """The reader under *assumed*; :meth:`WhatIfReader.lines` names each change.

    :raises TargetError: a PID or cgroup path names nothing
    """
    lines: List[Tuple[str, Optional[str]]] = []
    adj_by_tgid: Dict[int, int] = {}
    for pid, adj in assumed.set_adj:
        rec = _resolve(reader, pid, "--set-adj")
        lines.append((f"oom_score_adj of {rec.tgid} ({rec.comm}) set to {adj} "
                      f"(was {rec.oom_score_adj})", None))
        adj_by_tgid[rec.tgid] = adj
        task = reader.find_task(rec.tgid) or reader.find_task(pid)
        assert task is not None  # _resolve found it
        for q in _shares_mm(reader, rec, task):
            if q.tgid not in adj_by_tgid:
                adj_by_tgid[q.tgid] = adj
                lines.append((f"oom_score_adj of {q.tgid} ({q.comm}) set to {adj} "
                              f"(was {q.oom_score_adj}): it shares the mm of {rec.tgid}", None))
    max_pages: Dict[str, int] = {}
    shift = reader.info.page_shift
    top = _page_counter_max(shift)
    for path, nbytes in assumed.set_max:
        old = reader.memcg(path)  # raises TargetError for an unknown cgroup
        # page_counter_memparse(): bytes / PAGE_SIZE, at most PAGE_COUNTER_MAX.
        pages = top if nbytes is None else min(nbytes >> shift, top)
        max_pages[_norm(path)] = pages
        shown = "max" if nbytes is None else f"{nbytes} bytes ({pages} pages)"
        was = "max" if old.memory_max >= top else f"{old.memory_max} pages"
        lines.append((f"memory.max of {_norm(path)} set to {shown} (was {was})", _norm(path)))
    excluded: List[int] = []
    for pid in assumed.exclude:
        rec = _resolve(reader, pid, "--exclude")
        excluded.append(rec.tgid)
        lines.append((f"process {rec.tgid} ({rec.comm}) excluded, as if it had exited", None))
    if assumed.swap_pages is not None:
        swap = reader.vm_totals().total_swap_pages
        lines.append((f"total_swap_pages set to {assumed.swap_pages} (was {swap})", None))
    view = WhatIfReader(reader, adj_by_tgid, max_pages, excluded, assumed.swap_pages)
    view._lines = lines
    return view


def assumed_control(view: WhatIfReader, oc: "OomControl",
                    victim_pid: Optional[int] = None) -> "OomControl":
    """*oc* (from :func:`~oomdrgn.core.oom_report.oom_control` over the target
    as it is, not choosing a victim) with the assumed ``totalpages`` and the
    victim ``select_bad_process()`` chooses under the assumptions (or *victim_pid*).

    :raises TargetError: *victim_pid* is a process the assumptions exclude
    """
    from .decision import select_bad_process
    if victim_pid is not None and view.find_task(victim_pid) is None:
        raise TargetError(f"--victim {victim_pid}: excluded by the what-if")
    c = oc.constraint
    if c is not None:
        c = view.assumed_constraint(c, oc.memcg)
    sources = dict(oc.sources)
    if victim_pid is None:
        chosen = select_bad_process(view, oc.memcg, oc.order == -1, c, fates=False).chosen_pid
        victim_pid = chosen if chosen is not None and chosen > 0 else None
        sources["victim"] = "select_bad_process() under the what-if"
    return replace(oc, constraint=c, victim_pid=victim_pid, sources=sources)
