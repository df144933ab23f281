"""One self-contained HTML page of an OOM (standard library only).

The records (:mod:`.model`) are filled by a face from the functions the text
commands print from; :func:`render_page` lays them out: inline CSS, SVG bars
and script, no URL, every kernel string escaped.
"""

from __future__ import annotations

from .memory import memcg_breakdown, normalize_show_mem
from .model import LoggedReport, MemcgNode, MemoryView, Page, TaskTable, View
from .page import render_page

__all__ = ["Page", "View", "TaskTable", "MemoryView", "MemcgNode", "LoggedReport",
           "render_page", "normalize_show_mem", "memcg_breakdown"]
