"""``report`` and ``parse`` on real kernels: the table a kernel printed, read back.

The panic dump holds the printk buffer with the table the kernel printed just
before it panicked; memory has not changed since, so every row is "same".
"""

import argparse
import io
import json

import pytest

from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program
from oomdrgn.core.logparse import parse_lines, parse_log
from oomdrgn.drgn.printk import kernel_log_lines
from oomdrgn.commands.reports import rerender, run_report

from .oracle import FORMATS

pytestmark = pytest.mark.vm


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _rows(table_lines):
    return [l for l in table_lines if l.startswith("[") and not l.startswith("[  pid  ]")]




@pytest.mark.parametrize("fmt", FORMATS)
def test_report_finds_the_printed_table_all_same(kernel, panic, programs, fmt):
    prog, reader = programs(kernel, panic, fmt)
    out = io.StringIO()
    status = run_report(reader, argparse.Namespace(command="report", json=True), out)
    assert status == 0
    doc = json.loads(out.getvalue())
    last = doc["reports"][-1]
    assert last["panic"]["text"].startswith("Kernel panic - not syncing: Out of memory")
    assert last["table"]["era"] == doc["table_format_now"]
    cmp = last["comparison"]
    assert cmp["all_same"], [r for r in cmp["rows"] if r["status"] != "same"]
    assert cmp["counts"]["same"] == len(_rows(panic.table_lines)) >= 12
    assert [r["pid"] for r in cmp["rows"]] == [int(l[1:l.index("]")]) for l in _rows(panic.table_lines)]


def test_report_text(kernel, panic, programs):
    prog, reader = programs(kernel, panic, "elf")
    out = io.StringIO()
    assert run_report(reader, argparse.Namespace(command="report", json=False), out) == 0
    text = out.getvalue()
    n = len(_rows(panic.table_lines))
    assert f"rows: {n} same\n" in text and "panic: Kernel panic" in text


def test_printk_buffer_holds_the_console_table(kernel, panic, programs):
    prog, _ = programs(kernel, panic, "elf")
    r = parse_lines(kernel_log_lines(prog))[-1]
    t = r.table
    assert printed(([t.title.text] if t.title else []) + [t.header.text]
                   + [l.text for l in t.row_lines]) == printed(panic.table_lines)
    # The same records with caller ids: the table was printed by the hog.
    rc = parse_lines(kernel_log_lines(prog, caller=True))[-1]
    assert rc.table.rows == t.rows
    hog = panic.pids["oomhog"][0]
    assert {l.caller for l in rc.table.row_lines} == {f"T{hog}"}


def test_parse_console_log_rerenders_the_table(kernel, panic):
    console = panic.workdir / "console.log"
    r = parse_log(console.read_text(errors="replace").replace("\r", ""))[-1]
    again = rerender(r)
    assert again["table"] == printed(panic.table_lines) and again["table_mismatches"] == []
    out = io.StringIO()
    status = run_report(None, argparse.Namespace(command="parse", file=str(console),
                                                       json=False), out)
    assert status == 0 and printed(panic.table_lines) in out.getvalue()


def test_memcg_report_beside_the_memcgs_table(kernel, memcg_panicked):
    art = memcg_panicked
    prog = open_program(core=str(art.vmcores["elf"]), vmlinux=[str(kernel.vmlinux)])
    out = io.StringIO()
    status = run_report(reader_for(prog), argparse.Namespace(command="report", json=True), out)
    assert status == 0
    last = json.loads(out.getvalue())["reports"][-1]
    assert last["memcg"] and last["memcg_path"] == art.memcg
    cmp = last["comparison"]
    assert cmp["note"] == f"memcg OOM: compared with the table of memcg {art.memcg} now"
    assert cmp["all_same"] and cmp["counts"]["same"] == len(_rows(art.table_lines))
