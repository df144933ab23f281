"""``oomdrgn html``: the page of real dumps (a global OOM at the panic and at the
kill moment, a memcg OOM at the kill moment) of every kernel, opened in Debian's
headless chromium.

Each page: every pid of the table the kernel printed is in the page's table; a
click on a column header sorts it (read back from the DOM); the victim is marked
(the row of the kernel's own kill line, or at the panic ``victim``'s choice);
nothing is requested from the network; every number shown equals the text
commands' output for the same dump (``tasks``, ``victim --all``, ``oom-report``'s
memory lines); a screenshot is kept (see tests/browser/fixtures.py).
"""

import re

from oomdrgn.core.logparse import parse_lines
from oomdrgn.core.meminfo_parse import parse_memcg, parse_show_mem
from oomdrgn.core.report_sections import split_report

from ..browser.fixtures import artifacts, browser  # noqa: F401
from ..runner import run_oomdrgn

FMT = "kdump-zlib"
_ROW = re.compile(r"^\[\s*(\d+)\]")
_RANKED = re.compile(r"^\s*(\d+)\s+(\d+)\s+(-?\d+|-)\s+(-?\d+)  ")
#: a cell's sort key, as the page's script reads it: data-v where set, else its text
_KEY = "function k(c){return c.hasAttribute('data-v')?c.getAttribute('data-v'):c.textContent;}"
_COLUMN = _KEY + """var name=arguments[0],table=document.getElementById('tasks-0');
var heads=[].slice.call(table.tHead.rows[0].cells).map(function(h){return h.textContent;});
var i=heads.indexOf(name);
return [].slice.call(table.tBodies[0].rows).map(function(r){
  return r.cells[i]?k(r.cells[i]):null;});"""
_CLICK = """var name=arguments[0];
[].slice.call(document.querySelectorAll('#tasks-0 th')).filter(function(h){
  return h.textContent===name;})[0].click();"""
_ROWS = _KEY + """var table=document.getElementById('tasks-0');
var heads=[].slice.call(table.tHead.rows[0].cells).map(function(h){return h.textContent;});
return [].slice.call(table.tBodies[0].rows).map(function(r){var o={victim:r.classList.contains('victim')};
  heads.forEach(function(h,i){if(r.cells[i])o[h]=k(r.cells[i]);});return o;});"""
_KEYS = """var o={};document.querySelectorAll('#view-0 [data-key]').forEach(function(e){
  o[e.getAttribute('data-key')]=e.textContent;});return o;"""


def _target(kernel, art):
    return ("-q", "-c", art.vmcores[FMT], "-s", kernel.vmlinux)


def _text_rows(text: str) -> dict:
    """``tasks``' rows: pid -> the printed fields (the name last, spaces kept)."""
    lines = text.splitlines()
    header = lines[1].replace("[  pid  ]", "pid").replace("[ pid ]", "pid").split()
    rows = {}
    for line in lines[2:]:
        m = _ROW.match(line)
        fields = line[m.end():].split(None, len(header) - 2)
        rows[int(m.group(1))] = dict(zip(header, [m.group(1)] + fields))
    return rows


def _sorted_ok(values, numeric: bool, descending: bool) -> bool:
    keys = [(float(v) if v not in ("", None) else float("-inf")) if numeric else v
            for v in values]
    return keys == sorted(keys, reverse=descending)


def _check_page(kernel, art, case, browser, artifacts, tmp_path, memcg=None):  # noqa: F811
    page = tmp_path / "page.html"
    res = run_oomdrgn(*_target(kernel, art), "html", "-o", page)
    assert res.stdout == f"html: wrote {page}\n"
    load = browser.open(page)
    assert browser.js("return document.documentElement.getAttribute('data-ready');") == "1"
    shot = browser.screenshot(artifacts / f"{kernel.name}-{case}.png")
    assert shot.stat().st_size > 10_000
    # Nothing but the page itself was requested.
    assert browser.requests() == [page.resolve().as_uri()], load
    assert browser.console_errors() == []
    command = browser.js("return document.getElementById('command').textContent;")
    assert command.startswith("oomdrgn ") and f"html -o {page}" in command

    # Every pid of the kernel's table, and exactly the `tasks` command's rows and values.
    rows = browser.js(_ROWS)
    page_pids = [int(r["pid"]) for r in rows]
    printed = [int(m.group(1)) for m in map(_ROW.match, art.table_lines) if m]
    assert printed and set(printed) <= set(page_pids)
    scope = ("--memcg", memcg) if memcg else ()
    text_rows = _text_rows(run_oomdrgn(*_target(kernel, art), "tasks", *scope).stdout)
    assert page_pids == list(text_rows)
    for r in rows:
        for column, value in text_rows[int(r["pid"])].items():
            assert r[column] == value, (r, column, value)

    # Badness and rank: `victim --all`'s, by process (the row's tgid).
    ranked = {}
    for line in run_oomdrgn(*_target(kernel, art), "victim", "--all", *scope).stdout.splitlines():
        m = _RANKED.match(line)
        if m:
            ranked[int(m.group(2))] = (m.group(1), "" if m.group(3) == "-" else m.group(3))
    assert ranked
    for r in rows:
        rank, points = ranked.get(int(r["tgid"]), ("", ""))
        assert (r["rank"], r["badness"]) == (rank, points), r

    # The victim: the kernel's own (kill line) when it printed one, else `victim`'s choice.
    marked = [r for r in rows if r["victim"]]
    assert len(marked) == 1
    if art.kill_line is not None:
        killed = int(re.search(r"Killed process (\d+)", art.kill_line).group(1))
        assert int(marked[0]["pid"]) == killed
    else:
        chosen = int(re.search(r"^victim: pid (\d+)", run_oomdrgn(
            *_target(kernel, art), "victim", *scope).stdout).group(1))
        assert int(marked[0]["tgid"]) == chosen

    # The memory numbers: those `oom-report` prints.
    report = run_oomdrgn(*_target(kernel, art), "oom-report").stdout.splitlines()
    parts = split_report([line for line in report if not line.startswith("# ")])
    keys = browser.js(_KEYS)
    expected = {}
    if memcg:
        m = parse_memcg(parts["memcg"])
        for name, counter in m.counters.items():
            expected.update({f"memcg.{name}.{k}": str(v) for k, v in counter.items()})
        expected.update({f"memcg.stat.{k}": str(v) for k, v in m.stats.items()})
        assert m.stats
    else:
        values = parse_show_mem(parts["show_mem"]).values
        expected.update({f"global.{k}": str(v) for k, v in values["global"].items()})
        for nid, node in values["nodes"].items():
            expected.update({f"node{nid}.{k}": str(v) for k, v in node.items()})
        for key, zone in values["zones"].items():
            nid, _, name = key.partition("/")
            expected.update({f"zone{nid}.{name}.{k}": str(v) for k, v in zone.items()})
        for key, b in values["other"]["buddy"].items():
            nid, _, name = key.partition("/")
            expected[f"buddy{nid}.{name}.total_kB"] = str(b["total_kb"])
        expected["swap.free_kB"] = str(values["other"]["free_swap_kb"])
        expected["swap.total_kB"] = str(values["other"]["total_swap_kb"])
    assert len(expected) > 10
    assert {k: keys.get(k) for k in expected} == expected

    # A click on a header sorts by it, again the other way; a string column too.
    for column, numeric in (("rss", True), ("badness", True), ("name", False)):
        browser.js(_CLICK, column)
        assert _sorted_ok(browser.js(_COLUMN, column), numeric, descending=False), column
        browser.js(_CLICK, column)
        assert _sorted_ok(browser.js(_COLUMN, column), numeric, descending=True), column
    # A click on the victim's row shows its details and its `explain`.
    browser.js("document.querySelector('#tasks-0 tr.victim td').click();")
    detail = browser.js("var d=document.getElementById('detail-0');"
                        "return d.hidden?null:d.textContent;")
    assert detail is not None and f"pid: {marked[0]['pid']}" in detail
    assert "explain: " in detail


def test_html_panic(kernel, panic, browser, artifacts, tmp_path):  # noqa: F811
    _check_page(kernel, panic, "panic", browser, artifacts, tmp_path)


def test_html_killed(kernel, killed, browser, artifacts, tmp_path):  # noqa: F811
    _check_page(kernel, killed, "killed", browser, artifacts, tmp_path)


def test_html_memcg_killed(kernel, memcg_killed, browser, artifacts, tmp_path):  # noqa: F811
    _check_page(kernel, memcg_killed, "memcg_killed", browser, artifacts, tmp_path,
                memcg=memcg_killed.memcg)


def test_html_the_logged_reports(kernel, killed, browser, tmp_path):  # noqa: F811
    """The page's logged reports are `report`'s: one per OOM of the printk ring."""
    page = tmp_path / "page.html"
    run_oomdrgn(*_target(kernel, killed), "html", "-o", page)
    browser.open(page)
    shown = browser.js("return document.querySelectorAll('#reports div.report').length;")
    text = run_oomdrgn(*_target(kernel, killed), "report").stdout
    assert shown == len(re.findall(r"^report \d+: ", text, re.M)) >= 1
    assert len(parse_lines(killed.console_lines)) >= 1
