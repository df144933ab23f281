"""A logged report's memory lines read back into values by the kernel's names,
and printed again with the kernel's own formats (standard library only).

``__show_mem()``: the global block, the node and zone lines are parsed with each
era's formats (:mod:`oomdrgn.core.show_mem_formats`, every ``CONFIG_`` variant,
back to v3.10: the per-CPU pageset lines before v4.1, zone lines without a node
line before v4.8); the era whose formats read every such line is the one that
printed them, and re-rendering the values with it must give the logged lines
back, byte for byte.
``mem_cgroup_print_oom_meminfo()``: ``memory:``/``swap:``/``memory+swap:``/``kmem:``
lines and the ``name value`` stat lines.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from . import show_mem_formats as F
from .cformat import cformat
from .record import field, record

__all__ = ["ParsedShowMem", "ParsedMemcg", "parse_show_mem", "parse_memcg"]

_NODE = re.compile(r"^Node (\d+) ")
_NODE_LINE = re.compile(r"^Node \d+ active_anon:")
_ZONE_LINE = re.compile(r"^(?:Node \d+ )?\w+ free:\d+kB ")
_PER_CPU_LINE = re.compile(r"^(?:Node \d+ )?\w+ per-cpu:$|^CPU +\d+: hi:")


def _parse(fmt: str, text: str) -> Optional[List[object]]:
    """The arguments that printed *text* with C format *fmt*, or None."""
    parts, pos = [], 0
    convs = list(F.CONV.finditer(fmt))
    for m in convs:
        parts.append(re.escape(fmt[pos:m.start()]))
        # a field width ("%4d") pads the number on the left with spaces
        pad = " *" if re.match(r"%[-+ #0]*[1-9]", m.group()) else ""
        parts.append("(.*?)" if m.group().endswith("s") else pad + r"(-?\d+)")
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    found = re.fullmatch("".join(parts), text, re.S)
    if found is None:
        return None
    return [g if c.group().endswith("s") else int(g) for g, c in zip(found.groups(), convs)]


@record
class ParsedShowMem:
    """What a logged ``Mem-Info:`` block says, and whether it re-renders exactly."""

    era: str  # the newest era whose formats read the lines (" = " older alike ones)
    values: Dict[str, object] = field(default_factory=dict)
    rendered: List[str] = field(default_factory=list)  # the lines printed again
    mismatches: List[int] = field(default_factory=list)  # indexes that print otherwise


def _configs(era: F.Era) -> List[Tuple[str, str, str]]:
    out = []
    for config in F.all_configs():
        def has(name: str, config: Dict[str, bool] = config) -> bool:
            return config.get(name, False)
        out.append((F.assemble(era.global_, has), F.assemble(era.node, has),
                    F.assemble(era.zone, has)))
    return out


def parse_show_mem(lines: Sequence[str]) -> Optional[ParsedShowMem]:
    """*lines* (``Mem-Info:`` and what follows it, printk prefixes removed) read
    with the first era whose formats read the global, node and zone lines."""
    if not lines or lines[0] != "Mem-Info:":
        return None
    found: Optional[ParsedShowMem] = None
    for era in F.ALL_ERAS:
        for global_, node, zone in _configs(era):
            parsed = _try(era, global_, node, zone, lines)
            if parsed is None or parsed.mismatches:
                continue
            if found is None:
                found = parsed
            elif era.name not in found.era:  # eras that print these lines alike
                found.era += f" = {era.name}"
            break
    return found


def _per_cpu(lines: Sequence[str]) -> Tuple[List[str], Dict[str, dict]]:
    """Before v4.1: the ``%s per-cpu:`` and ``CPU %4d: hi:...`` lines printed again,
    and their values by zone and CPU."""
    rendered: List[str] = []
    values: Dict[str, dict] = {}
    zone = ""
    for line in lines:
        head = _NODE.match(line)
        body = line[head.end():] if head else line
        args = _parse(F.PER_CPU, body + "\n")
        if args is not None:
            zone = f"{head.group(1) if head else 0}/{args[0]}"
            values[zone] = {}
            rendered.append((head.group(0) if head else "") + cformat(F.PER_CPU, args)[:-1])
            continue
        args = _parse(F.PER_CPU_PAGESET, line + "\n")
        if args is None:
            return rendered, values  # the caller sees the line count short
        values.setdefault(zone, {})[str(args[0])] = dict(zip(("hi", "btch", "usd"), args[1:]))
        rendered.append(cformat(F.PER_CPU_PAGESET, args)[:-1])
    return rendered, values


def _try(era: F.Era, global_: str, node: str, zone: str,
         lines: Sequence[str]) -> Optional[ParsedShowMem]:
    start = 1
    per_cpu: List[str] = []
    pcp_values: Dict[str, dict] = {}
    if era.per_cpu:  # the per-CPU pageset lines come before the global block
        while start < len(lines) and _PER_CPU_LINE.match(lines[start]):
            start += 1
        per_cpu, pcp_values = _per_cpu(lines[1:start])
        if len(per_cpu) != start - 1:
            return None
    elif len(lines) > 1 and _PER_CPU_LINE.match(lines[1]):
        return None  # printed before v4.1
    n = global_.count("\n")
    block = "\n".join(lines[start:start + n]) + "\n"
    args = _parse(global_, block)
    if args is None:
        return None
    out = ParsedShowMem(era.name)
    if era.per_cpu:
        out.values["per_cpu"] = pcp_values
    out.values["global"] = dict(zip(F.format_labels(global_), args))
    out.rendered = ["Mem-Info:"] + per_cpu + cformat(global_, args).rstrip("\n").split("\n")
    nodes: Dict[str, dict] = {}
    zones: Dict[str, dict] = {}
    for line in lines[start + n:]:
        node_args = _parse(node, line + "\n") if node else None
        if node_args is not None:
            nodes[str(node_args[0])] = dict(zip(F.format_labels(node), node_args))
            out.rendered.append(cformat(node, node_args).rstrip("\n"))
            continue
        head = _NODE.match(line)
        body = line[head.end():] if head else line
        zone_args = _parse(zone, body + "\n")
        if zone_args is not None:
            key = f"{head.group(1) if head else 0}/{zone_args[0]}"
            zones[key] = dict(zip(F.format_labels(zone)[1:], zone_args[1:]))
            out.rendered.append((head.group(0) if head else "")
                                + cformat(zone, zone_args).rstrip("\n"))
            continue
        if _NODE_LINE.match(line) or _ZONE_LINE.match(line):
            return None  # a node or zone line these formats do not read: another era
        out.rendered.append(line)  # lowmem_reserve, buddy, hugepages, swap, RAM: as logged
    if not nodes and not zones:
        return None
    out.values["nodes"], out.values["zones"] = nodes, zones
    out.values["other"] = _other_values(lines[start + n:])
    out.mismatches = [i for i, (a, b) in enumerate(zip(lines, out.rendered)) if a != b]
    return out


_OTHER = (("pagecache_pages", re.compile(r"^(\d+) total pagecache pages$")),
          ("swap_cache_pages", re.compile(r"^(\d+) pages in swap cache$")),
          ("free_swap_kb", re.compile(r"^Free swap  = (-?\d+)kB$")),
          ("total_swap_kb", re.compile(r"^Total swap = (\d+)kB$")),
          ("pages_ram", re.compile(r"^(\d+) pages RAM$")),
          ("pages_highmem", re.compile(r"^(\d+) pages HighMem/MovableOnly$")),
          ("pages_reserved", re.compile(r"^(\d+) pages reserved$")),
          ("pages_cma_reserved", re.compile(r"^(\d+) pages cma reserved$")),
          ("pages_hwpoisoned", re.compile(r"^(\d+) pages hwpoisoned$")),
          ("pages_highmem", re.compile(r"^(\d+) pages HighMem$")),  # v3.10
          ("pages_shared", re.compile(r"^(\d+) pages shared$")),  # v3.10
          ("pages_non_shared", re.compile(r"^(\d+) pages non-shared$")),  # v3.10
          ("pagetable_cache_pages", re.compile(r"^(\d+) pages in pagetable cache$")))
_BUDDY = re.compile(r"^(?:Node (\d+) )?(\w+): ((?:\d+\*\d+kB (?:\([A-Z]+\) )?)+)= (\d+)kB$")


def _other_values(lines: Sequence[str]) -> dict:
    out: dict = {"buddy": {}}
    for line in lines:
        for name, pattern in _OTHER:
            m = pattern.match(line)
            if m:
                out[name] = int(m.group(1))
        m = _BUDDY.match(line)
        if m:
            blocks = re.findall(r"(\d+)\*(\d+)kB(?: \(([A-Z]+)\))?", m.group(3))
            out["buddy"][f"{m.group(1) or 0}/{m.group(2)}"] = {
                "blocks": {f"{kb}kB": int(n) for n, kb, _ in blocks},
                "types": {f"{kb}kB": t for _, kb, t in blocks if t},
                "total_kb": int(m.group(4))}
    return out


@record
class ParsedMemcg:
    """A logged memcg OOM's counters and stats."""

    counters: Dict[str, Dict[str, int]] = field(default_factory=dict)
    path: Optional[str] = None
    stats: Dict[str, int] = field(default_factory=dict)
    protection: Optional[Dict[str, int]] = None


_COUNTER = re.compile(r"^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, "
                      r"failcnt (\d+)$")
_STATS = re.compile(r"^Memory cgroup stats for (.*):$")
_STAT = re.compile(r"^([a-z_0-9]+) (\d+)$")
_PROTECTION = re.compile(r"^Memory cgroup min protection (\d+)kB -- low protection (\d+)kB$")


def parse_memcg(lines: Sequence[str]) -> ParsedMemcg:
    """``mem_cgroup_print_oom_meminfo()``'s lines (and 7.x's protection line)."""
    out = ParsedMemcg()
    for line in lines:
        m = _COUNTER.match(line)
        if m:
            out.counters[m.group(1)] = {"usage_kb": int(m.group(2)),
                                        "limit_kb": int(m.group(3)),
                                        "failcnt": int(m.group(4))}
            continue
        m = _STATS.match(line)
        if m:
            out.path = m.group(1)
            continue
        m = _PROTECTION.match(line)
        if m:
            out.protection = {"min_kb": int(m.group(1)), "low_kb": int(m.group(2))}
            continue
        m = _STAT.match(line)
        if m and out.path is not None:
            out.stats[m.group(1)] = int(m.group(2))
    return out
