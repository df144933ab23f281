"""``tasks``: the ``dump_tasks()`` table, its rows as JSON, or the table with
an ``oom_badness()`` column. Apart from the other decisions (:mod:`.decision`),
so that the plain table loads only what it prints."""

from __future__ import annotations

import argparse
from typing import Any, Dict, TextIO

from ..core.errors import EXIT_PARTIAL
from ..core.model import ReadFailure
from ..core.oom import Reader, dump_tasks, format_dump_tasks

__all__ = ["run_tasks"]


def run_tasks(reader: Reader, args: argparse.Namespace, out: TextIO) -> int:
    memcg = getattr(args, "memcg", None)
    if memcg:
        from ..core.decision import memcg_dump_tasks
        rows = memcg_dump_tasks(reader, memcg)
    else:
        rows = dump_tasks(reader)
    partial = any(isinstance(r, ReadFailure) for r in rows)
    points = None
    if getattr(args, "badness", False):
        from .decision import _badness_of
        points = _badness_of(reader, rows, memcg)
    if args.json:
        import json
        from .decision import _ROW_KEYS, _kernel_json
        doc: Dict[str, Any] = {"kernel": _kernel_json(reader), "rows": []}
        if memcg:
            doc["memcg"] = memcg
        for r in rows:
            if isinstance(r, ReadFailure):
                doc["rows"].append({"pid": r.pid, "unreadable": r.reason})
                continue
            row = {k: getattr(r, k) for k in _ROW_KEYS}
            if reader.info.pgtables == "ptes":  # before v4.15
                row.update(nr_ptes=r.nr_ptes, nr_pmds=r.nr_pmds)
            if points is not None:
                row["badness"] = points.get(r.pid)
            doc["rows"].append(row)
        json.dump(doc, out, indent=1)
        out.write("\n")
    elif points is None:
        out.write(format_dump_tasks(reader, rows))
    else:
        from .decision import _with_badness
        out.write(_with_badness(reader, rows, points))
    return EXIT_PARTIAL if partial else 0
