"""``oomdrgn parse LOG --html PAGE`` for every log in tests/data/logs, opened in
headless chromium: it opens with no error and no request, and each report's
task table holds that report's logged pids."""

from pathlib import Path

import pytest

from oomdrgn.cli import main
from oomdrgn.core.logparse import parse_log

LOGS = sorted(Path(__file__).resolve().parent.parent.joinpath("data", "logs").rglob("*.log"))
_PIDS = """return [].slice.call(document.querySelectorAll('section.view')).map(function(s){
  return [].slice.call(s.querySelectorAll('table.tasks tbody tr')).map(function(tr){
    return Number(tr.getAttribute('data-pid'));});});"""


def test_the_request_log_sees_a_fetch(browser, tmp_path):
    """The network check is not blind: a page that fetches is seen fetching."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><img src="http://192.0.2.1/x.png"><p>x</p>')
    browser.open(page)
    assert "http://192.0.2.1/x.png" in browser.requests()


@pytest.mark.parametrize("log", LOGS, ids=[str(p.relative_to(p.parents[1])) for p in LOGS])
def test_log_page_opens_with_the_logs_pids(browser, tmp_path, capsys, log):
    page = tmp_path / "page.html"
    assert main(["parse", str(log), "--html", str(page)]) in (0, 1)
    capsys.readouterr()
    browser.open(page)
    assert browser.js("return document.documentElement.getAttribute('data-ready');") == "1"
    assert browser.requests() == [page.resolve().as_uri()]
    assert browser.console_errors() == []
    shown = browser.js(_PIDS)
    reports = parse_log(log.read_text(errors="surrogateescape"))
    assert len(shown) == len(reports)
    for report, pids in zip(reports, shown):
        logged = [r.pid for r in report.table.rows] if report.table is not None else []
        assert pids == logged
