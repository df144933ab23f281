"""A logged OOM report's memory lines (``Mem-Info:`` .. swap and RAM, or the
memcg's usage and stats, the slab dump, the 7.x protection line) set beside the
same lines computed from memory now, with the logged report's own arguments.

The arguments come from the logged report itself: ``gfp_zone()`` of its
``gfp_mask``, the CPU of its ``CPU: N PID: P`` line (``local_pcp``), the nodemask
and ``mems_allowed`` of its ``oom-kill:`` line, its memcg. A value memory cannot
tell (the logged line has no counterpart now) is listed as such, never dropped.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

from .errors import ReadError, TargetError
from .formats import parse_bitmap_list
from .linecompare import LineComparison, compare_lines
from .logparse import OomReport, split_prefix
from .record import field, record
from .report_sections import split_report

__all__ = ["MemoryComparison", "logged_parts", "kernel_texts", "compare_logged_memory",
           "MEMORY_PARTS"]

#: the parts of a report that print memory counters (see report_sections)
MEMORY_PARTS = ("show_mem", "memcg", "slab", "protection")
_CPU = re.compile(r"^CPU: (\d+) (?:UID: \d+ )?PID: (\d+) ")


@record
class MemoryComparison:
    """Per part (``show_mem``, ``memcg``, ``slab``, ``protection``): each logged line
    beside memory now; ``args`` says what the lines were computed with."""

    parts: Dict[str, List[LineComparison]] = field(default_factory=dict)
    args: Dict[str, object] = field(default_factory=dict)
    note: str = ""

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for comparisons in self.parts.values():
            for c in comparisons:
                out[c.verdict] = out.get(c.verdict, 0) + 1
        return out


def logged_parts(lines: Sequence[str], report: OomReport) -> Dict[str, List[str]]:
    """The report's console lines (*lines*: the whole log, raw) by part."""
    return split_report(kernel_texts(lines[report.first_line - 1:report.last_line],
                                     report.first_line))


def kernel_texts(lines: Sequence[str], first: int = 1) -> List[str]:
    """What printk printed in *lines* (raw, numbered from *first*), one text per
    printed line: the log tool's prefix removed, and a multi-line record
    (``show_free_areas()``'s global block) split back into its lines, whether
    rsyslog escaped its newlines (``#012``, RHEL's ``/var/log/messages``) or
    journalctl/dmesg indented its continuation lines by the prefix's width."""
    texts: List[str] = []
    width = 0
    for n, raw in enumerate(lines, first):
        line = split_prefix(n, raw)
        text = line.text
        if line.prefix:
            width = len(line.prefix)
        elif width and raw.startswith(" " * width) and texts:
            text = raw[width:]  # a continuation line of the record before
        texts.extend(text.split("#012"))
    return texts


def _nodes(text: Optional[str]) -> Optional[List[int]]:
    return None if text is None or text == "(null)" else parse_bitmap_list(text)


def compare_logged_memory(reader, report: OomReport,
                          parts: Dict[str, List[str]]) -> Optional[MemoryComparison]:
    """The report's memory parts beside memory now (None: it logged none)."""
    logged = {p: parts[p] for p in MEMORY_PARTS if parts.get(p)}
    if not logged:
        return None
    from .gfp import gfp_zone
    out = MemoryComparison()
    found = next((m for m in map(_CPU.match, parts.get("dump_stack", [])) if m), None)
    cpu = int(found.group(1)) if found else None
    s = report.summary
    nodemask = _nodes(s.nodemask) if s is not None else None
    mems = _nodes(s.mems_allowed) if s is not None and s.mems_allowed else None
    if mems is None and found is not None:
        # No summary (panic_on_oom stops before it): the OOM task's own mems_allowed.
        task = reader.find_task(int(found.group(2)))
        if task is not None:
            mems = reader.mems_allowed(task)
    memcg = (s.oom_memcg if s is not None and s.oom_memcg else report.memcg_path) \
        if report.memcg else None
    out.args = {"cpu": cpu, "nodemask": nodemask, "mems_allowed": mems, "memcg": memcg}
    now: Dict[str, List[str]] = {}
    try:
        if "show_mem" in logged:
            from .show_mem import show_mem
            zone = gfp_zone(reader, report.invoked.gfp_mask) if report.invoked else None
            out.args["max_zone_idx"] = zone
            result = show_mem(reader, nodemask, mems or [], zone, cpu)
            now["show_mem"] = result.lines
            out.note = result.formats
        if "slab" in logged:
            from .slabinfo import dump_unreclaimable_slab
            now["slab"] = dump_unreclaimable_slab(reader)
        if "memcg" in logged:
            if memcg is None:
                out.note = "the log does not name the memcg: its lines are not compared"
            else:
                from .memcg_meminfo import mem_cgroup_print_oom_meminfo
                # The log is the printk ring's: the stats as the record keeps them.
                now["memcg"] = mem_cgroup_print_oom_meminfo(reader, memcg).ring_lines
        if "protection" in logged:
            from .memcg_meminfo import mem_cgroup_show_protected_memory
            now["protection"] = mem_cgroup_show_protected_memory(reader, memcg)
    except TargetError as e:  # the memcg is gone, ...
        out.note = f"memory now cannot tell: {e}"
    except (ReadError, LookupError) as e:
        out.note = f"memory now unreadable: {e}"
    for part, lines in logged.items():
        out.parts[part] = compare_lines(lines, now.get(part, []))
    return out
