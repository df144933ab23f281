"""The kernel's printk formats for the OOM report, one variant per era.

Each era's strings are copied from ``mm/oom_kill.c`` of the kernels that print
them. Which era a kernel belongs to is read from the kernel itself (the format
strings are in its ``.rodata``, see :mod:`oomdrgn.core.eras`), never from a version
string.
"""

from __future__ import annotations

import functools
from operator import attrgetter
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .cformat import cformat, cformat_many, cformatter
from .model import Row, Victim
from .record import record

__all__ = ["TableFormat", "KillFormat", "TABLE_FORMATS", "KILL_FORMATS",
           "format_table", "format_row", "format_rows", "format_kill_line", "K", "OOM_PREFIX",
           "MEMCG_PREFIX", "format_summary", "bitmap_list", "parse_bitmap_list"]

OOM_PREFIX = "Out of memory"
MEMCG_PREFIX = "Memory cgroup out of memory"
ALLOCATING_PREFIX = "Out of memory (oom_kill_allocating_task)"


def K(pages: int, page_shift: int) -> int:
    """``#define K(x) ((x) << (PAGE_SHIFT-10))``"""
    return pages << (page_shift - 10)


@record(frozen=True)
class TableFormat:
    """One era of ``dump_tasks()`` output."""

    name: str
    title: Optional[str]
    header: str
    row: str
    columns: Tuple[str, ...]  # Row attributes, in the order the row format takes them
    since: str
    #: other row strings of the era that print the same text (found in .rodata too)
    also: Tuple[str, ...] = ()

    @property
    def pid_width(self) -> int:
        """Width of the ``[pid]`` field (``%7d`` or ``%5d``)."""
        return int(self.row[2])

    def lines(self) -> Tuple[str, ...]:
        """The constant lines printed before the rows."""
        return ((self.title,) if self.title else ()) + (self.header,)


TABLE_FORMATS = (
    # Since Linux kernel commit "mm, oom: dump_tasks add rss detailed
    # information printing" (in v6.8).
    TableFormat(
        "T4",
        "Tasks state (memory values in pages):\n",
        "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name\n",
        "[%7d] %5d %5d %8lu %8lu %8lu %8lu %9lu %8ld %8lu         %5hd %s\n",
        ("pid", "uid", "tgid", "total_vm", "rss", "rss_anon", "rss_file", "rss_shmem",
         "pgtables_bytes", "swapents", "oom_score_adj", "name"),
        "v6.8"),
    # Since Linux kernel commit c3b78b11efbb ("mm, oom: describe task memory
    # unit, larger PID pad") (in v4.19).
    TableFormat(
        "T3",
        "Tasks state (memory values in pages):\n",
        "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name\n",
        "[%7d] %5d %5d %8lu %8lu %8ld %8lu         %5hd %s\n",
        ("pid", "uid", "tgid", "total_vm", "rss", "pgtables_bytes", "swapents",
         "oom_score_adj", "name"),
        "v4.19"),
    # Since Linux kernel commit af5b0f6a09e4 ("mm: consolidate page table
    # accounting") (in v4.15).
    TableFormat(
        "T2",
        None,
        "[ pid ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name\n",
        "[%5d] %5d %5d %8lu %8lu %8ld %8lu         %5hd %s\n",
        ("pid", "uid", "tgid", "total_vm", "rss", "pgtables_bytes", "swapents",
         "oom_score_adj", "name"),
        "v4.15"),
    # Since Linux kernel commit dc6c9a35b66b ("mm: account pmd page tables to the
    # process") (in v4.0), until v4.14: nr_ptes and nr_pmds columns (the same strings
    # in v4.1.15, v4.4.155, v4.8.15 .. v4.13.9).
    TableFormat(
        "T1",
        None,
        "[ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name\n",
        "[%5d] %5d %5d %8lu %8lu %7ld %7ld %8lu         %5hd %s\n",
        ("pid", "uid", "tgid", "total_vm", "rss", "nr_ptes", "nr_pmds", "swapents",
         "oom_score_adj", "name"),
        "v4.0"),
    # Before Linux kernel commit dc6c9a35b66b ("mm: account pmd page tables to
    # the process") (in v4.0), which added nr_pmds: nr_ptes only (3.10, RHEL 7).
    # %7lu of mm->nr_ptes as in v3.10; e1f56c89b040 ("mm: convert mm->nr_ptes to
    # atomic_long_t") (in v3.13) printed it %7ld, the same text for any count
    # (checked against v3.10.99, v3.13.10, v3.19.8 and RHEL 7.3's 3.10.0-514.el7,
    # which prints %7ld and never took nr_pmds).
    TableFormat(
        "T0",
        None,
        "[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name\n",
        "[%5d] %5d %5d %8lu %8lu %7lu %8lu         %5hd %s\n",
        ("pid", "uid", "tgid", "total_vm", "rss", "nr_ptes", "swapents", "oom_score_adj",
         "name"),
        "v3.10",
        also=("[%5d] %5d %5d %8lu %8lu %7ld %8lu         %5hd %s\n",)),
)


@record(frozen=True)
class KillFormat:
    """One era of the ``__oom_kill_process()`` "Killed process" line."""

    name: str
    line: str
    columns: Tuple[str, ...]  # Victim attributes, after the message prefix if any
    prefixed: bool  # the line starts with "%s: " (the message)
    since: str


_KILL_COLS_K2 = ("pid", "name", "total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb")
_KILL_COLS_K4 = _KILL_COLS_K2 + ("uid", "pgtables_kb", "oom_score_adj")

KILL_FORMATS = (
    # Since Linux kernel commit ("mm: Fix OOM killer inaccuracy on large
    # many-core systems") (in v7.0): oom_score_adj printed with %d, counters
    # read with get_mm_counter_sum(). The text is the same as K4's for any short.
    KillFormat(
        "K5",
        "%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%d\n",
        _KILL_COLS_K4, True, "v7.0"),
    # Since Linux kernel commits 8ac3f8fe91a2 and 70cb6d267790 (in v5.4): UID,
    # pgtables and oom_score_adj added to the line.
    KillFormat(
        "K4",
        "%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd\n",
        _KILL_COLS_K4, True, "v5.4"),
    # Since Linux kernel commit bbbe48029720 ("mm, oom: remove 'prefer children
    # over parent' heuristic") (in v5.1).
    KillFormat(
        "K3",
        "%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n",
        _KILL_COLS_K2, True, "v5.1"),
    # Since Linux kernel commit "mm, shmem: add internal shmem resident memory
    # accounting" (in v4.5): shmem-rss.
    KillFormat(
        "K2",
        "Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n",
        _KILL_COLS_K2, False, "v4.5"),
    # The same string in v3.10.99, v3.13.10, v3.19.8, v4.1.15 and v4.4.155 (RHEL 7.3+
    # prints K2: it took the shmem accounting).
    KillFormat(
        "K1",
        "Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB\n",
        _KILL_COLS_K2[:5], False, "v3.10"),
)


def format_row(fmt: TableFormat, row: Row) -> str:
    """One ``dump_task()`` line for *row*."""
    return cformatter(fmt.row)(_columns(fmt.columns)(row))


@functools.lru_cache(maxsize=16)
def _columns(columns: Tuple[str, ...]) -> Callable[[Any], tuple]:
    """A getter of *columns* of a row, as a tuple."""
    get = attrgetter(*columns)
    return get if len(columns) > 1 else lambda row: (get(row),)


def format_rows(fmt: TableFormat, rows: Sequence[Row]) -> str:
    """``dump_task()`` lines for *rows*, formatted together."""
    return cformat_many(fmt.row, list(map(_columns(fmt.columns), rows)))


def format_table(fmt: TableFormat, rows: Sequence[Row]) -> str:
    """The whole ``dump_tasks()`` block: title (where printed), header, rows."""
    return "".join(fmt.lines()) + format_rows(fmt, rows)


def format_kill_line(fmt: KillFormat, victim: Victim, message: str = OOM_PREFIX) -> str:
    """The line ``__oom_kill_process()`` prints for *victim*."""
    args = [getattr(victim, c) for c in fmt.columns]
    if fmt.prefixed:
        args.insert(0, message)
    return cformat(fmt.line, args)


def parse_bitmap_list(text: str) -> List[int]:
    """:func:`bitmap_list` read back (``0-3,8`` -> ``[0, 1, 2, 3, 8]``).

    :raises ValueError: not such a list
    """
    bits: List[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if first < 0 or last < first:
            raise ValueError(f"not a bit list: {text!r}")
        bits.extend(range(first, last + 1))
    return bits


def bitmap_list(bits) -> str:
    """``%*pbl``: set bits as ranges, e.g. ``0``, ``0-3,8``; empty for none."""
    bits = sorted(set(bits))
    out, i = [], 0
    while i < len(bits):
        j = i
        while j + 1 < len(bits) and bits[j + 1] == bits[j] + 1:
            j += 1
        out.append(str(bits[i]) if i == j else f"{bits[i]}-{bits[j]}")
        i = j + 1
    return ",".join(out)


def format_summary(constraint: str, nodemask, cpuset, mems_allowed, oom_memcg, task_memcg,
                   comm: str, pid: int, uid: int) -> str:
    """The ``oom-kill:`` line of ``dump_oom_summary()`` (since Linux kernel commit
    ef8444ea01d7 ("mm, oom: reorganize the oom report in dump_header") (in v5.0)).

    ``nodemask`` is a list of node ids or None (printed ``(null)``); ``cpuset``
    None means a kernel without CONFIG_CPUSETS (both fields omitted); ``oom_memcg``
    None means a global OOM; ``task_memcg`` None means no memcg (omitted).
    """
    line = "oom-kill:constraint=%s,nodemask=%s" % (
        constraint, "(null)" if nodemask is None else bitmap_list(nodemask))
    if cpuset is not None:
        line += ",cpuset=%s,mems_allowed=%s" % (cpuset, bitmap_list(mems_allowed or ()))
    line += ",oom_memcg=%s" % oom_memcg if oom_memcg is not None else ",global_oom"
    if task_memcg is not None:
        line += ",task_memcg=%s" % task_memcg
    return line + cformat(",task=%s,pid=%d,uid=%d\n", [comm, pid, uid])
