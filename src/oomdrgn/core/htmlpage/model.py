"""The records one HTML page is made from (plain data, standard library only).

A face fills them from the same functions the text commands print from
(``dump_tasks()``, ``select_bad_process()``, ``__show_mem()``'s and
``mem_cgroup_print_oom_meminfo()``'s values, ``report``'s comparisons, or a
log's parsed reports); :func:`oomdrgn.core.htmlpage.render_page` only lays
them out. Nothing here reads kernel memory or computes a kernel value.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..record import field, record

__all__ = ["TaskTable", "MemoryView", "MemcgNode", "LoggedReport", "View", "Page"]


@record
class TaskTable:
    """``dump_tasks()``'s rows with what ``select_bad_process()`` made of them.

    :param columns: the era's printed columns (:attr:`TableFormat.columns`)
    :param rows: per row the column values by those names, plus ``badness``
        (``oom_badness()`` points, None: ineligible or not computed), ``rank``
        (1 = the highest points), ``verdict`` (``select_bad_process()``'s),
        or ``unreadable`` (why) for a row that could not be read
    :param victim_pid: the row to mark (the OOM's victim, else the would-be one)
    :param text: the table exactly as the text command prints it
    :param explain: per PID, what ``explain`` says of it (a slot: None or absent
        until there is such a function)
    """

    columns: Tuple[str, ...]
    rows: List[Dict[str, Any]]
    victim_pid: Optional[int] = None
    victim_why: str = ""
    era: str = ""
    text: str = ""
    note: str = ""
    explain: Dict[int, Any] = field(default_factory=dict)


@record
class MemoryView:
    """Memory as one report prints it.

    :param show_mem: ``__show_mem()``'s values in the shape of
        :attr:`oomdrgn.core.show_mem.ShowMem.values` (a target's), or
        :attr:`oomdrgn.core.meminfo_parse.ParsedShowMem.values` (a log's), see
        *logged*
    :param memcg: ``mem_cgroup_print_oom_meminfo()``'s values (``memory``,
        ``swap``, ``memory+swap``, ``kmem``: ``usage_kb``/``limit_kb``/``failcnt``;
        ``memcg``: the path; ``stats``: memory.stat by name)
    :param page_kb: the page size in kB (the zone and buddy lines print kB,
        the global block pages)
    :param lines: the console lines these values print as
    """

    show_mem: Optional[dict] = None
    memcg: Optional[dict] = None
    logged: bool = False
    page_kb: int = 4
    lines: List[str] = field(default_factory=list)
    note: str = ""


@record
class MemcgNode:
    """One memory cgroup of the tree, pre-order.

    :param usage_kb: ``memory: usage`` as the memcg part of an OOM report prints it
    :param limit_kb: ``limit`` (``memory.max``; ``PAGE_COUNTER_MAX`` prints huge)
    :param victim: (pid, name, points) ``select_bad_process()`` would choose in a
        memcg OOM here; None: none, or not asked (see *note*)
    """

    path: str
    depth: int
    usage_kb: Optional[int] = None
    limit_kb: Optional[int] = None
    swap: Optional[Dict[str, int]] = None
    victim: Optional[Tuple[int, str, Optional[int]]] = None
    tasks: Optional[int] = None
    note: str = ""


@record
class LoggedReport:
    """One OOM report of the kernel's log, as ``report``/``parse`` describe it.

    :param summary: ``describe_report()``'s lines
    :param rows: the logged table beside memory now: per row ``status`` (same,
        moved, gone, new, unreadable), ``pid``, ``name``, ``changes``
    :param memory: per part (``show_mem``, ``memcg``...) the lines' verdicts:
        (verdict, logged line, line now, moved values text)
    """

    index: int
    title: str
    summary: List[str]
    rows: List[Dict[str, Any]] = field(default_factory=list)
    rows_note: str = ""
    memory: Dict[str, List[Tuple[str, Optional[str], Optional[str], str]]] = \
        field(default_factory=dict)
    memory_note: str = ""


@record
class View:
    """One picture of memory and tasks: the target now, or one logged report."""

    title: str
    memory: Optional[MemoryView] = None
    tasks: Optional[TaskTable] = None
    lines: List[Tuple[str, str]] = field(default_factory=list)  # (label, text): summary, kill
    notes: List[str] = field(default_factory=list)


@record
class Page:
    """Everything on one page.

    :param command: the exact command line that made it
    :param kernel: (label, value) pairs: release, formats, counter rules, sources
    :param missing: what the page cannot show, said plainly
    """

    title: str
    command: str
    source: str
    kernel: List[Tuple[str, str]] = field(default_factory=list)
    views: List[View] = field(default_factory=list)
    memcgs: Optional[List[MemcgNode]] = None
    memcgs_note: str = ""
    reports: List[LoggedReport] = field(default_factory=list)
    reports_note: str = ""
    missing: List[str] = field(default_factory=list)
