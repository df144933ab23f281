"""Memory as bars: RAM by use per node and zone with the watermarks and the free
pages by order, swap, and a memcg's usage against its limit with memory.stat.

The values are those the report prints (``__show_mem()``'s by the kernel's
labels, ``mem_cgroup_print_oom_meminfo()``'s), shown as printed; the bars
only add them up (what no counter names is drawn as "other").
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .escape import text
from .model import MemoryView
from .svg import COLORS, kb, level_bar, stacked_bar

__all__ = ["render_memory", "normalize_show_mem", "memcg_breakdown", "UNLIMITED_KB"]

#: A limit at or above this prints as ``PAGE_COUNTER_MAX`` pages in kB: no limit.
UNLIMITED_KB = 1 << 50


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def normalize_show_mem(values: dict, logged: bool, page_kb: int = 4) -> dict:
    """One shape for a target's and a log's ``__show_mem()`` values: ``global``,
    ``nodes`` [{Node, ...}], ``zones`` [{node, name, ...}], ``buddy``
    [(node, zone, [(block kB, count)], total kB)], ``swap`` (free kB, total kB)
    or None, ``pages_ram``, ``pages_reserved``."""
    out: Dict[str, Any] = {"global": dict(values.get("global", {}))}
    if not logged:
        out["nodes"] = list(values.get("nodes", []))
        out["zones"] = [dict(z) for z in values.get("zones", [])]
        out["buddy"] = []
        for fa in values.get("free_areas", []):
            blocks = [(page_kb << o, n) for o, n in enumerate(fa.get("nr_free", []))]
            out["buddy"].append((fa["node"], fa["zone"], blocks, fa["total_kB"]))
        swap = values.get("swap")
        out["swap"] = None if swap is None else (swap["free_swap_kB"], swap["total_swap_kB"])
        out["pages_ram"] = values.get("pages_ram")
        out["pages_reserved"] = values.get("pages_reserved")
        return out
    out["nodes"] = [dict(v, Node=int(k)) if "Node" not in v else dict(v)
                    for k, v in values.get("nodes", {}).items()]
    zones = []
    for key, v in values.get("zones", {}).items():
        nid, _, name = key.partition("/")
        zones.append(dict(v, node=int(nid), name=name))
    out["zones"] = zones
    other = values.get("other", {})
    out["buddy"] = []
    for key, b in other.get("buddy", {}).items():
        nid, _, name = key.partition("/")
        blocks = [(int(size[:-2]), n) for size, n in b["blocks"].items()]
        out["buddy"].append((int(nid), name, blocks, b["total_kb"]))
    out["swap"] = (other["free_swap_kb"], other["total_swap_kb"]) \
        if "total_swap_kb" in other else None
    out["pages_ram"] = other.get("pages_ram")
    out["pages_reserved"] = other.get("pages_reserved")
    return out


def _legend(parts: Sequence[Tuple[str, int]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{COLORS.get(n, "#999")}"></i>{text(n)} {text(kb(v))}</span>'
        for n, v in parts if v > 0) + "</div>"


def _vals(prefix: str, values: dict, skip: Sequence[str] = ()) -> str:
    """Every printed value by its label, as printed (``data-key`` names it)."""
    cells = []
    for label, v in values.items():
        if label in skip or isinstance(v, (list, dict)):
            continue
        cells.append(f'<span class="kv"><b>{text(label)}</b> '
                     f'<span data-key="{text(prefix + label)}">{text(v)}</span></span>')
    return '<div class="vals">' + " ".join(cells) + "</div>"


def _global(sm: dict, pk: int) -> str:
    g = sm["global"]
    anon = _int(g.get("active_anon")) + _int(g.get("inactive_anon"))
    shmem = _int(g.get("shmem"))
    kernel_stack = sum(_int(n.get("kernel_stack")) for n in sm["nodes"])
    parts = [("anon", (anon - shmem) * pk), ("shmem", shmem * pk),
             ("file", (_int(g.get("active_file")) + _int(g.get("inactive_file"))) * pk),
             ("unevictable", _int(g.get("unevictable")) * pk),
             ("slab", (_int(g.get("slab_reclaimable")) + _int(g.get("slab_unreclaimable"))) * pk),
             ("page tables", (_int(g.get("pagetables")) + _int(g.get("sec_pagetables"))) * pk),
             ("kernel stack", kernel_stack),
             ("free", _int(g.get("free")) * pk), ("free_pcp", _int(g.get("free_pcp")) * pk)]
    out = []
    ram, reserved = sm.get("pages_ram"), sm.get("pages_reserved")
    if ram:
        usable = (ram - (reserved or 0)) * pk
        parts.append(("other", max(usable - sum(v for _, v in parts), 0)))
        parts.append(("reserved", (reserved or 0) * pk))
        out.append(f'<p>{ram} pages RAM ({text(kb(ram * pk))}), {reserved} pages reserved; '
                   '"other": what no counter above names (vmalloc, driver pages, ...).</p>')
    out.append(stacked_bar(parts, ram * pk if ram else None, "RAM by use"))
    out.append(_legend(parts))
    out.append(_vals("global.", g))
    return "".join(out)


def _node(node: dict, zones: List[dict]) -> str:
    nid = node.get("Node")
    anon = _int(node.get("active_anon")) + _int(node.get("inactive_anon"))
    shmem = _int(node.get("shmem"))
    parts = [("anon", anon - shmem), ("shmem", shmem),
             ("file", _int(node.get("active_file")) + _int(node.get("inactive_file"))),
             ("unevictable", _int(node.get("unevictable"))),
             ("page tables", _int(node.get("pagetables")) + _int(node.get("sec_pagetables"))),
             ("kernel stack", _int(node.get("kernel_stack"))),
             ("free", sum(_int(z.get("free")) for z in zones))]
    managed = sum(_int(z.get("managed")) for z in zones)
    if managed:
        parts.append(("other", max(managed - sum(v for _, v in parts), 0)))
    return (f'<h4>Node {text(nid)}</h4>'
            + stacked_bar(parts, managed or None, f"node {nid}") + _legend(parts)
            + _vals(f"node{nid}.", node))


def _zone(z: dict, buddy: Optional[tuple]) -> str:
    nid, name = z.get("node"), z.get("name")
    managed = _int(z.get("managed"))
    parts = [("anon", _int(z.get("active_anon")) + _int(z.get("inactive_anon"))),
             ("file", _int(z.get("active_file")) + _int(z.get("inactive_file"))),
             ("unevictable", _int(z.get("unevictable"))),
             ("free", _int(z.get("free"))), ("free_pcp", _int(z.get("free_pcp")))]
    if managed:
        parts.append(("other", max(managed - sum(v for _, v in parts), 0)))
    free = _int(z.get("free"))
    marks = [(m, _int(z.get(m))) for m in ("min", "low", "high") if m in z]
    verdict = ""
    if marks:
        wmin = dict(marks).get("min", 0)
        verdict = (" <b class=\"bad\">free below min</b>" if free < wmin else
                   " free at or above min")
    out = [f'<h4>Node {text(nid)} {text(name)}</h4>',
           f'<div>managed {text(kb(managed))}, present {text(kb(_int(z.get("present"))))}</div>',
           stacked_bar(parts, managed or None, f"zone {name}"), _legend(parts),
           f'<div>free {free} kB against the watermarks (min/low/high){verdict}:</div>',
           level_bar(free, marks, max([free] + [v for _, v in marks]) * 5 // 4,
                     label=f"zone {name} free")]
    out.append(_vals(f"zone{nid}.{name}.", z, skip=("node", "name", "zone_idx")))
    if buddy is not None:
        out.append(_buddy(buddy))
    return '<div class="zone">' + "".join(out) + "</div>"


def _buddy(buddy: tuple) -> str:
    nid, name, blocks, total = buddy
    top = max((size * n for size, n in blocks), default=0) or 1
    rows = []
    for order, (size, n) in enumerate(blocks):
        w = 200 * size * n / top
        rows.append(f'<tr><td>{order}</td><td>{size}kB</td><td>{n}</td><td>{size * n}kB</td>'
                    f'<td><svg width="200" height="10"><rect width="{w:.1f}" height="10" '
                    f'fill="{COLORS["free"]}"/></svg></td></tr>')
    return (f'<table class="buddy"><caption>free pages by order: Node {text(nid)} '
            f'{text(name)}, <span data-key="buddy{text(nid)}.{text(name)}.total_kB">{total}</span>kB'
            '</caption><tr><th>order</th><th>block</th><th>free blocks</th><th>kB</th><th></th>'
            "</tr>" + "".join(rows) + "</table>")


def _swap(swap: Optional[tuple]) -> str:
    if swap is None:
        return ""
    free, total = swap
    parts = [("swap used", total - free), ("swap free", free)]
    return ('<h4>Swap</h4>'
            f'<div>Total swap = <span data-key="swap.total_kB">{total}</span>kB, '
            f'Free swap = <span data-key="swap.free_kB">{free}</span>kB</div>'
            + (stacked_bar(parts, total, "swap") + _legend(parts) if total else
               "<div>no swap</div>"))


def _counter_bar(name: str, c: dict) -> str:
    usage, limit = c.get("usage_kb", 0), c.get("limit_kb", 0)
    unlimited = limit >= UNLIMITED_KB
    lim = "max (no limit)" if unlimited else f"{limit}kB ({kb(limit)})"
    head = (f'<div><b>{text(name)}</b>: usage <span data-key="memcg.{text(name)}.usage_kb">'
            f'{usage}</span>kB ({text(kb(usage))}), limit <span data-key="memcg.{text(name)}.limit_kb"'
            f'>{limit}</span>kB = {text(lim)}, failcnt <span data-key="memcg.{text(name)}.failcnt">'
            f'{c.get("failcnt", 0)}</span></div>')
    marks = [] if unlimited else [("limit", limit)]
    color = "#d9534f" if not unlimited and usage >= limit else "#f0ad4e"
    return head + level_bar(usage, marks, usage if unlimited else limit, color,
                            label=f"{name} usage")


def memcg_breakdown(stats: Dict[str, int], usage_kb: int) -> List[Tuple[str, int]]:
    """memory.stat as (kind, kB) parts of the usage (v2 names, else v1's)."""
    def b(*names: str) -> int:
        for n in names:
            if n in stats:
                return _int(stats[n]) // 1024
        return 0
    shmem = b("shmem")
    kernel = b("kernel") or (b("kernel_stack") + b("pagetables") + b("percpu") + b("slab"))
    parts = [("anon", b("anon", "rss")), ("file", b("file", "cache") - shmem),
             ("shmem", shmem), ("kernel", kernel), ("sock", b("sock"))]
    parts.append(("other", max(usage_kb - sum(v for _, v in parts), 0)))
    return parts


def _memcg(m: dict) -> str:
    out = [f'<h4>memcg {text(m.get("memcg", m.get("path", "?")))}</h4>']
    for name in ("memory", "swap", "memory+swap", "kmem"):
        if isinstance(m.get(name), dict):
            out.append(_counter_bar(name, m[name]))
    stats = m.get("stats") or {}
    if stats:
        usage = m.get("memory", {}).get("usage_kb", 0)
        parts = memcg_breakdown(stats, usage)
        out.append("<div>usage by memory.stat:</div>"
                   + stacked_bar(parts, max(usage, sum(v for _, v in parts)), "memory.stat")
                   + _legend(parts))
        rows = "".join(f'<tr><td>{text(k)}</td><td data-key="memcg.stat.{text(k)}">{text(v)}'
                       "</td></tr>" for k, v in stats.items())
        dropped = m.get("console_dropped")
        note = (f"<p>the console dropped {len(dropped)} of these lines (one printk record, "
                "cut to its buffer): they are in memory, not on the console.</p>"
                if dropped else "")
        out.append(f"<details><summary>memory.stat ({len(stats)} items)</summary>{note}"
                   f'<table class="stats">{rows}</table></details>')
    return "".join(out)


def render_memory(view: MemoryView) -> str:
    """The memory part of one view."""
    out = []
    if view.memcg is not None:
        out.append(_memcg(view.memcg))
    if view.show_mem is not None:
        sm = normalize_show_mem(view.show_mem, view.logged, view.page_kb)
        pk = view.page_kb
        out.append("<h4>RAM by use</h4>" + _global(sm, pk))
        for node in sm["nodes"]:
            out.append(_node(node, [z for z in sm["zones"] if z.get("node") == node.get("Node")]))
        buddy = {(b[0], b[1]): b for b in sm["buddy"]}
        for z in sm["zones"]:
            out.append(_zone(z, buddy.get((z.get("node"), z.get("name")))))
        out.append(_swap(sm["swap"]))
    if view.note:
        out.append(f'<p class="note">{text(view.note)}</p>')
    if view.lines:
        out.append("<details><summary>the lines as printed</summary><pre>"
                   + text("\n".join(view.lines)) + "</pre></details>")
    return "".join(out)
