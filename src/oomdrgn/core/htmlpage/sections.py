"""The page's other parts: the memcg tree, the logged reports beside memory,
the kernel and formats detected, the command."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from .escape import text
from .memory import UNLIMITED_KB
from .model import LoggedReport, MemcgNode
from .svg import level_bar

__all__ = ["render_memcgs", "render_report", "render_kernel"]


def render_memcgs(nodes: Sequence[MemcgNode], note: str) -> str:
    rows = []
    # A memcg without a limit is drawn against the largest usage of the tree.
    top = max((n.usage_kb or 0 for n in nodes), default=0)
    for n in nodes:
        usage, limit = n.usage_kb, n.limit_kb
        if usage is None:
            bar = "-"
        else:
            lim_kb = UNLIMITED_KB if limit is None else limit
            unlimited = lim_kb >= UNLIMITED_KB
            marks = [] if unlimited else [("limit", lim_kb)]
            color = "#d9534f" if not unlimited and usage >= lim_kb else "#f0ad4e"
            bar = level_bar(usage, marks, top if unlimited else lim_kb, color,
                            label=f"{n.path} usage")
        lim = "-" if limit is None else ("max" if limit >= UNLIMITED_KB else f"{limit}kB")
        if n.victim is not None:
            pid, name, points = n.victim
            victim = (f'<span class="mv" data-pid="{pid}">{pid} ({text(name)}), points '
                      f'{text(points)}</span>')
        else:
            victim = "-"
        rows.append(
            f'<tr data-memcg="{text(n.path)}"><td style="padding-left:{0.3 + 1.2 * n.depth}em">'
            f'{text(n.path)}</td><td data-key="memcg:{text(n.path)}.usage_kb">'
            f'{"-" if usage is None else usage}</td><td>{text(lim)}</td>'
            f'<td>{"-" if n.tasks is None else n.tasks}</td><td>{bar}</td><td>{victim}'
            f'{" <i>" + text(n.note) + "</i>" if n.note else ""}</td></tr>')
    return (f'<p>{text(note)}</p><table class="memcgs"><thead><tr><th>memcg</th>'
            '<th>usage kB</th><th>limit</th><th>processes</th><th>usage / limit</th>'
            '<th>would-be victim (memcg OOM here)</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


_VERDICT_CLASS = {"same": "same", "moved": "moved", "gone": "gone", "new": "new"}


def render_report(r: LoggedReport) -> str:
    out = [f'<div class="report" id="report-{r.index}"><h3>{text(r.title)}</h3>',
           "<pre>" + text("".join(r.summary)) + "</pre>"]
    if r.rows:
        counts: dict = {}
        for row in r.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        out.append("<p>the logged table beside memory now: "
                   + ", ".join(f"{n} {text(s)}" for s, n in counts.items()) + "</p>")
        cells = []
        for row in r.rows:
            st = row["status"]
            if st == "same":
                continue  # counted above: a 10,000-row page stays light
            cells.append(f'<tr class="{_VERDICT_CLASS.get(st, "other")}"><td>{text(st)}</td>'
                         f'<td>{row["pid"]}</td><td>{text(row["name"])}</td>'
                         f'<td>{text(row.get("detail", ""))}</td></tr>')
        if cells:
            out.append('<details><summary>rows not the same</summary><table class="cmp"><tr>'
                       "<th>verdict</th><th>pid</th><th>name</th><th>what moved</th></tr>"
                       + "".join(cells) + "</table></details>")
    if r.rows_note:
        out.append(f'<p class="note">{text(r.rows_note)}</p>')
    for part, lines in r.memory.items():
        counts = {}
        for verdict, _, _, _ in lines:
            counts[verdict] = counts.get(verdict, 0) + 1
        out.append(f"<p>{text(part)} lines beside memory now: "
                   + ", ".join(f"{n} {text(v)}" for v, n in counts.items()) + "</p>")
        cells = [f'<tr class="{_VERDICT_CLASS.get(v, "other")}"><td>{text(v)}</td>'
                 f'<td><code>{text(logged or "")}</code></td><td>{text(moved)}</td></tr>'
                 for v, logged, _, moved in lines if v != "same"]
        if cells:
            out.append('<table class="cmp"><tr><th>verdict</th><th>logged line</th>'
                       "<th>moved</th></tr>" + "".join(cells) + "</table>")
    if r.memory_note:
        out.append(f'<p class="note">{text(r.memory_note)}</p>')
    out.append("</div>")
    return "".join(out)


def render_kernel(kernel: List[Tuple[str, str]], command: str, source: str,
                  missing: Optional[Sequence[str]]) -> str:
    rows = "".join(f"<tr><th>{text(k)}</th><td>{text(v)}</td></tr>" for k, v in kernel)
    out = [f'<table class="kernel"><tr><th>command</th><td><code id="command">{text(command)}'
           f'</code></td></tr><tr><th>source</th><td>{text(source)}</td></tr>{rows}</table>']
    if missing:
        out.append("<p>Not on this page:</p><ul>"
                   + "".join(f"<li>{text(m)}</li>" for m in missing) + "</ul>")
    return "".join(out)
