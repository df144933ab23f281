"""An OOM report's console lines cut into the parts ``dump_header()`` and
``oom_kill_process()`` print, so that each part can be set beside oomdrgn's.

The parts are named as :class:`oomdrgn.core.oom_report.Section` names them:
``invoked``, ``dump_stack`` (``CPU: ...`` up to ``Call Trace:``/``<TASK>``),
``frames`` (the unwound stack and registers), ``memcg`` or ``show_mem``,
``slab``, ``protection``, ``tasks``, ``summary``, ``kill``.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

__all__ = ["split_report", "PARTS"]

PARTS = ("invoked", "dump_stack", "frames", "memcg", "show_mem", "slab", "protection",
         "tasks", "summary", "kill")

# What starts each part (the text after the printk prefix).
_MEMCG_START = ("memory: usage ", "Task in ")  # v2/v1 since 4.x; "Task in" before 4.19
_STACK_HEAD_END = ("Call Trace:", "Call trace:", " <TASK>", "<TASK>")
_TABLE_START = ("Tasks state (memory values in pages):", "[  pid  ]", "[ pid ]")


def _part_of(text: str, current: str) -> str:
    """The part *text* starts, or *current* if it continues that part."""
    if " invoked oom-killer: " in text:
        return "invoked"
    if current in ("invoked", "") and (text.startswith("CPU: ") or text.startswith("CPU:")):
        return "dump_stack"
    if text == "Mem-Info:":
        return "show_mem"
    if text.startswith(_MEMCG_START) and current in ("dump_stack", "frames"):
        return "memcg"
    if text == "Unreclaimable slab info:":
        return "slab"
    if text.startswith("Memory cgroup min protection "):
        return "protection"
    if text.startswith(_TABLE_START) and current != "tasks":
        return "tasks"
    if text.startswith("oom-kill:"):
        return "summary"
    if ": Killed process " in text or text.startswith("Killed process "):
        return "kill"
    if current == "summary" and (text.startswith(",") or not text.strip()):
        return "summary"  # pr_cont() pieces printk split off
    if current in ("summary", "kill"):
        return "end"  # the kill line ends the report (the reaper's lines come later)
    return current


def split_report(texts: Sequence[str]) -> Dict[str, List[str]]:
    """*texts* (one report's console lines, printk prefixes removed, from its
    ``invoked`` line on) by part; lines before the first known part are dropped."""
    parts: Dict[str, List[str]] = {}
    current = ""
    for text in texts:
        part = _part_of(text, current)
        if part == "dump_stack" and current == "dump_stack" and parts["dump_stack"] and \
                parts["dump_stack"][-1] in _STACK_HEAD_END and text not in _STACK_HEAD_END:
            part = "frames"
        if current == "frames" and part == "dump_stack":
            part = "frames"
        current = part
        if part == "end":
            break
        if part:
            parts.setdefault(part, []).append(text)
    return parts
