"""The task table: ``dump_tasks()``'s columns, ``oom_badness()`` points, rank and
verdict; sortable by any column (the script sorts by ``data-v``), the victim
marked, a row's ``explain`` in a JSON slot."""

from __future__ import annotations

from typing import Any, Dict, List

from .escape import json_blob, text
from .model import TaskTable

__all__ = ["render_tasks"]

_EXTRA = ("badness", "rank", "verdict")


def _cell(value: Any) -> str:
    """A cell; its sort key is its text, or ``data-v`` where they differ."""
    if value is None:
        return '<td data-v="">-</td>'
    return f"<td>{text(value)}</td>"


def _row(columns, row: Dict[str, Any], victim) -> str:
    pid = row.get("pid")
    cls = []
    # The victim's row: its own pid (a kill line's), or its process (a summary's
    # pid is the leader's; the row may be the thread that still has the mm).
    if victim is not None and victim in (pid, row.get("tgid")):
        cls.append("victim")
    if "unreadable" in row:
        cls.append("unreadable")
        cells = _cell(pid) + f'<td colspan="{len(columns) + len(_EXTRA) - 1}">unreadable: ' \
            f'{text(row["unreadable"])}</td>'
    else:
        cells = "".join(_cell(row.get(c)) for c in columns) + "".join(
            _cell(row.get(c)) for c in _EXTRA)
    attr = f' class="{" ".join(cls)}"' if cls else ""
    return f'<tr data-pid="{text(pid)}"{attr}>{cells}</tr>'


def render_tasks(table: TaskTable, ident: str) -> str:
    """The table; *ident* makes its element ids unique on the page."""
    heads = list(table.columns) + list(_EXTRA)
    kinds = ["num" if c != "name" else "str" for c in table.columns] + ["num", "num", "str"]
    th = "".join(f'<th data-kind="{k}" title="sort by {text(c)}">{text(c)}</th>'
                 for c, k in zip(heads, kinds))
    body: List[str] = [_row(table.columns, r, table.victim_pid) for r in table.rows]
    victim = ""
    if table.victim_pid is not None:
        victim = (f'<p>victim: <b class="victim-tag" data-victim="{table.victim_pid}">pid '
                  f'{table.victim_pid}</b> {text(table.victim_why)}</p>')
    explain = (f'<script type="application/json" class="explain-data" id="explain-{ident}">'
               f'{json_blob({str(k): v for k, v in table.explain.items()})}</script>')
    return (f'<p>{len(table.rows)} rows, table format {text(table.era)}. '
            f'{text(table.note)} Click a column header to sort, a row for its details.</p>'
            f'{victim}<div class="tablewrap"><table class="tasks" id="tasks-{ident}" '
            f'data-explain="explain-{ident}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            f'<div class="detail" id="detail-{ident}" hidden></div>{explain}'
            + (f"<details><summary>the table as printed</summary><pre>{text(table.text)}"
               "</pre></details>" if table.text else ""))
