"""One self-contained HTML page from a :class:`~.model.Page`."""

from __future__ import annotations

from typing import List

from .assets import CSP, CSS, SCRIPT
from .escape import text
from .memory import render_memory
from .model import Page, View
from .sections import render_kernel, render_memcgs, render_report
from .tasks import render_tasks

__all__ = ["render_page"]


def _view(view: View, index: int) -> str:
    out = [f'<section class="view" id="view-{index}"><h2>{text(view.title)}</h2>']
    for note in view.notes:
        out.append(f'<p class="note">{text(note)}</p>')
    if view.lines:
        out.append("<table class=\"kernel\">" + "".join(
            f"<tr><th>{text(k)}</th><td><code>{text(v)}</code></td></tr>"
            for k, v in view.lines) + "</table>")
    if view.memory is not None:
        out.append("<h3>Memory</h3>" + render_memory(view.memory))
    if view.tasks is not None:
        out.append("<h3>Tasks</h3>" + render_tasks(view.tasks, str(index)))
    out.append("</section>")
    return "".join(out)


def render_page(page: Page) -> str:
    """The page as one HTML string: inline CSS, SVG and script, nothing fetched."""
    body: List[str] = [f"<h1>{text(page.title)}</h1>",
                       f'<p>made by <code>{text(page.command)}</code> from {text(page.source)}</p>']
    toc = [f'<a href="#view-{i}">{text(v.title)}</a>' for i, v in enumerate(page.views)]
    if page.memcgs is not None:
        toc.append('<a href="#memcgs">memory cgroups</a>')
    if page.reports or page.reports_note:
        toc.append('<a href="#reports">logged reports</a>')
    toc.append('<a href="#kernel">kernel</a>')
    body.append("<nav>" + " · ".join(toc) + "</nav>")
    body.extend(_view(v, i) for i, v in enumerate(page.views))
    if page.memcgs is not None:
        body.append('<section id="memcgs"><h2>Memory cgroups</h2>'
                    + render_memcgs(page.memcgs, page.memcgs_note) + "</section>")
    if page.reports or page.reports_note:
        body.append('<section id="reports"><h2>The kernel\'s logged reports</h2>'
                    + (f"<p>{text(page.reports_note)}</p>" if page.reports_note else "")
                    + "".join(render_report(r) for r in page.reports) + "</section>")
    body.append('<section id="kernel"><h2>Kernel, formats and rules detected</h2>'
                + render_kernel(page.kernel, page.command, page.source, page.missing)
                + "</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{text(page.title)}</title><style>{CSS}</style></head><body>"
            + "".join(body) + f"<script>{SCRIPT}</script></body></html>\n")
