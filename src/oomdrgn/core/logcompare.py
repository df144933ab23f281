"""A logged ``dump_tasks()`` table beside the rows oomdrgn recomputes now (pure).

Rows are matched by PID, guarded against PID reuse by tgid and name: a PID
whose tgid or name differ is another process (the logged one ``gone``, the
current one ``new``). A process whose row now comes from another thread
(``find_lock_task_mm()`` found a different first thread with an mm) is matched
by tgid and name, and its ``pid`` column shows as changed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

from .eras import table_format
from .logparse import OomReport
from .model import ReadFailure, Row
from .record import record

__all__ = ["RowComparison", "TableComparison", "compare_rows", "compare_report", "oom_memcg",
           "format_comparison", "comparison_as_dict", "STATUSES"]

# same: every printed column equal; changed: some differ; gone: in the log, not
# in memory; new: in memory, not in the log; unreadable: in memory, row unreadable.
STATUSES = ("same", "changed", "gone", "new", "unreadable")

Value = Union[int, str]


@record(frozen=True)
class RowComparison:
    """One process: its logged row, its current row, and what differs."""

    status: str
    pid: int
    name: str
    logged: Optional[Row] = None
    current: Optional[Row] = None
    changes: Tuple[Tuple[str, Value, Value], ...] = ()  # (column, logged, current)
    reason: Optional[str] = None  # why the current row is unreadable


@record(frozen=True)
class TableComparison:
    """A logged table against memory, in the log's order, then new processes."""

    era: str
    columns: Tuple[str, ...]  # the era's printed columns
    rows: Tuple[RowComparison, ...]
    memcg: bool = False  # new rows are not listed: the log's table was memcg-scoped
    note: Optional[str] = None

    def counts(self) -> Dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for r in self.rows:
            out[r.status] += 1
        return out

    @property
    def all_same(self) -> bool:
        return bool(self.rows) and all(r.status == "same" for r in self.rows)


MEMCG_NOTE = ("memcg OOM: the log's table lists only the cgroup's tasks, compared here with "
              "the global table now; only the logged rows are compared, processes in memory "
              "but not in the log are not listed")


def _changes(columns: Sequence[str], logged: Row, current: Row) -> Tuple[Tuple[str, Value, Value], ...]:
    return tuple((c, getattr(logged, c), getattr(current, c)) for c in columns
                 if getattr(logged, c) != getattr(current, c))


def compare_rows(logged: Sequence[Row], current: Sequence[Union[Row, ReadFailure]],
                 era: str, memcg: bool = False, note: Optional[str] = None) -> TableComparison:
    """Set *logged* rows (of table era *era*) beside *current* ones (as
    :func:`oomdrgn.core.oom.dump_tasks` returns them).

    :param memcg: the logged table was a memcg OOM's and *current* is the
        global table: do not list new rows
    """
    columns = table_format(era).columns
    rows_now = [r for r in current if isinstance(r, Row)]
    failures = {f.pid: f for f in current if isinstance(f, ReadFailure)}
    by_pid = {r.pid: r for r in rows_now}
    by_group: Dict[Tuple[int, str], List[Row]] = {}
    for r in rows_now:
        by_group.setdefault((r.tgid, r.name), []).append(r)
    used = set()  # ids of matched current rows
    out: List[RowComparison] = []
    for row in logged:
        now = by_pid.get(row.pid)
        if now is not None and (now.tgid, now.name) != (row.tgid, row.name):
            now = None  # PID reused by another process
        if now is None or id(now) in used:
            now = next((r for r in by_group.get((row.tgid, row.name), ()) if id(r) not in used),
                       None)
        if now is None:
            failure = failures.pop(row.pid, None)
            if failure is not None:
                out.append(RowComparison("unreadable", row.pid, row.name, logged=row,
                                         reason=failure.reason))
            else:
                out.append(RowComparison("gone", row.pid, row.name, logged=row))
            continue
        used.add(id(now))
        changes = _changes(columns, row, now)
        out.append(RowComparison("changed" if changes else "same", row.pid, row.name,
                                 logged=row, current=now, changes=changes))
    if not memcg:
        for r in rows_now:
            if id(r) not in used:
                out.append(RowComparison("new", r.pid, r.name, current=r))
        for f in failures.values():
            out.append(RowComparison("unreadable", f.pid, "", reason=f.reason))
    return TableComparison(era, tuple(columns), tuple(out), memcg,
                           note or (MEMCG_NOTE if memcg else None))


def compare_report(report: OomReport, current: Sequence[Union[Row, ReadFailure]],
                   current_memcg: Optional[str] = None,
                   why_global: Optional[str] = None) -> Optional[TableComparison]:
    """The report's table beside *current*; None if the report has no table.

    :param current_memcg: *current* is the memcg-scoped table of this cgroup
        (:func:`oomdrgn.core.decision.memcg_dump_tasks`), not the global one
    :param why_global: for a memcg report compared with the global table, why
        (added to the note)
    """
    if report.table is None:
        return None
    if report.memcg and current_memcg is not None:
        return compare_rows(report.table.rows, current, report.table.era,
                            note=f"memcg OOM: compared with the table of memcg {current_memcg} now")
    note = None
    if report.memcg and why_global:
        note = f"{MEMCG_NOTE} ({why_global})"
    return compare_rows(report.table.rows, current, report.table.era, report.memcg, note)


def oom_memcg(report: OomReport) -> Optional[str]:
    """The cgroup whose limit a memcg OOM report hit, as the log names it."""
    if not report.memcg:
        return None
    if report.summary is not None and report.summary.oom_memcg is not None:
        return report.summary.oom_memcg
    return report.memcg_path


def _describe(r: RowComparison) -> str:
    if r.status == "changed":
        return ", ".join(f"{c} {a!r} -> {b!r}" if c == "name" else f"{c} {a} -> {b}"
                         for c, a, b in r.changes)
    if r.status == "gone":
        return "in the log, not in memory"
    if r.status == "new":
        return "in memory, not in the log"
    if r.status == "unreadable":
        return f"row unreadable now: {r.reason}"
    return ""


def format_comparison(cmp: TableComparison) -> str:
    """One line per process (status, pid, name, what differs), then the counts."""
    lines = []
    if cmp.note:
        lines.append(f"note: {cmp.note}\n")
    width = max((len(str(r.pid)) for r in cmp.rows), default=1)
    for r in cmp.rows:
        detail = _describe(r)
        lines.append(f"{r.status:<10} {r.pid:>{width}} {r.name}{': ' + detail if detail else ''}\n")
    counts = ", ".join(f"{n} {s}" for s, n in cmp.counts().items() if n)
    lines.append(f"rows: {counts or 'none'}\n")
    return "".join(lines)


def _row_dict(columns: Sequence[str], row: Optional[Row]) -> Optional[dict]:
    return None if row is None else {c: getattr(row, c) for c in columns}


def comparison_as_dict(cmp: TableComparison) -> dict:
    """*cmp* as plain JSON-able data."""
    return {
        "era": cmp.era, "memcg": cmp.memcg, "note": cmp.note, "counts": cmp.counts(),
        "all_same": cmp.all_same,
        "rows": [{"status": r.status, "pid": r.pid, "name": r.name,
                  "logged": _row_dict(cmp.columns, r.logged),
                  "current": _row_dict(cmp.columns, r.current),
                  "changes": [{"column": c, "logged": a, "current": b} for c, a, b in r.changes],
                  **({"reason": r.reason} if r.reason else {})}
                 for r in cmp.rows],
    }
