"""OOM reports of the v3.10 .. v4.13 eras read back and printed again.

The logs are public and verbatim (tests/data/logs/README.md): RHEL 7.4's
3.10.0-693.el7 in ``/var/log/messages`` (rsyslog escapes the global block's
newlines as ``#012``), Ubuntu 16.04's 4.4.0-71-generic in ``/var/log/syslog``, and
a 4.9.0 i686 kernel through journalctl (continuation lines indented by the
prefix's width). Expected lines come from the logs themselves, each log's
prefix cut by this file's own rule; no number is typed here.
"""

import argparse
import io
import re
from pathlib import Path

import pytest

from oomdrgn.commands.reports import run_report
from oomdrgn.core import show_mem_formats as F
from oomdrgn.core.cformat import cformat
from oomdrgn.core.formats import format_kill_line, format_row, format_table
from oomdrgn.core.eras import detect_eras, kill_format
from oomdrgn.core.logged_memory import kernel_texts, logged_parts
from oomdrgn.core.logparse import parse_log
from oomdrgn.core.meminfo_parse import parse_show_mem

PUBLIC = Path(__file__).resolve().parents[1] / "data" / "logs" / "public"

#: log -> (table era, kill-line era, show_mem era, the kernel release it names)
LOGS = {
    "3.10-rhel7-messages.log": ("T0", "K2", "v4.1", "3.10.0-693.el7.x86_64"),
    "4.4-ubuntu16.04-syslog.log": ("T1", "K1", "v4.1", "4.4.0-71-generic"),
    "4.9-journal-i686.log": ("T1", "K2", "v4.8", "4.9.0-gentoo"),
}

# This file's own prefix rule: "Mon DD HH:MM:SS host kernel: " and an optional
# "[seconds] " after it; a line starting with spaces continues the record above
# (journalctl indents it by the prefix's width).
_PREFIX = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: (?:\[ *\d+\.\d+\] )?")


def _texts(name):
    out, width = [], 0
    for raw in (PUBLIC / name).read_text().split("\n"):
        m = _PREFIX.match(raw)
        if m:
            width = m.end()
            out.append(raw[m.end():])
        elif raw.startswith(" " * 8) and width:
            out.append(raw[width:])
        else:
            out.append(None)  # not a kernel line
    return [t for t in out if t is not None]


def _between(texts, first, stop):
    """The kernel's lines from *first* up to the first line *stop* accepts."""
    start = texts.index(first)
    end = next(i for i in range(start + 1, len(texts)) if stop(texts[i]))
    return texts[start:end]


def _report(name):
    text = (PUBLIC / name).read_text()
    (report,) = parse_log(text)
    return text, report


@pytest.mark.parametrize("name", sorted(LOGS))
def test_report_table_and_kill_line(name):
    table_era, kill_era, _, release = LOGS[name]
    text, r = _report(name)
    texts = _texts(name)
    assert any(release in t for t in texts)
    assert r.invoked is not None and r.invoked.line.text in texts
    assert r.table is not None and r.table.era == table_era
    fmt = r.table.format
    # The table as this file cuts it out of the log: header to the sacrifice line.
    logged = _between(texts, fmt.header[:-1], lambda t: not t.startswith("["))
    assert len(logged) == len(r.table.rows) + 1
    assert format_table(fmt, r.table.rows) == "".join(t + "\n" for t in logged)
    for row, line in zip(r.table.rows, r.table.row_lines):
        assert format_row(fmt, row) == line.text + "\n"
    assert r.sacrifice is not None and r.sacrifice.pid == r.kill.victim.pid
    assert r.kill is not None and r.kill.era == kill_era
    assert format_kill_line(kill_format(kill_era), r.kill.victim) == r.kill.line.text + "\n"
    assert r.kill.line.text in texts


@pytest.mark.parametrize("name", sorted(LOGS))
def test_mem_info_block_is_read_by_its_era_and_prints_again(name):
    era = LOGS[name][2]
    text, r = _report(name)
    block = logged_parts(text.split("\n"), r)["show_mem"]
    parsed = parse_show_mem(block)
    assert parsed is not None and parsed.era.split(" = ")[0] == era
    assert parsed.mismatches == [] and parsed.rendered == block
    # Byte for byte against the log, cut by this file's rule: rsyslog's "#012" is the
    # kernel's newline inside the one record of the global block.
    logged = _between(_texts(name), "Mem-Info:", lambda t: t.startswith("[ pid ]"))
    assert "\n".join(parsed.rendered) == "\n".join(logged).replace("#012", "\n")


@pytest.mark.parametrize("name", sorted(LOGS))
def test_mem_info_values_are_the_logged_numbers(name):
    text, r = _report(name)
    parsed = parse_show_mem(logged_parts(text.split("\n"), r)["show_mem"])
    texts = "\n".join(_texts(name)).replace("#012", "\n")
    free_pcp = re.search(r" free:\d+ free_pcp:(\d+) ", texts).group(1)
    assert parsed.values["global"]["free_pcp"] == int(free_pcp)
    zones = re.findall(r"^(?:Node (\d+) )?(\w+) free:(\d+)kB min:", texts, re.M)
    assert {f"{n or 0}/{z}": int(kb) for n, z, kb in zones} == {
        key: zone["free"] for key, zone in parsed.values["zones"].items()}
    ram = re.search(r"^(\d+) pages RAM$", texts, re.M).group(1)
    assert parsed.values["other"]["pages_ram"] == int(ram)


def test_the_4_9_node_line():
    text, r = _report("4.9-journal-i686.log")
    parsed = parse_show_mem(logged_parts(text.split("\n"), r)["show_mem"])
    (node,) = parsed.values["nodes"].values()
    line = next(t for t in _texts("4.9-journal-i686.log") if t.startswith("Node 0 active_anon:"))
    assert node["pages_scanned"] == int(re.search(r"pages_scanned:(\d+) ", line).group(1))
    assert node["all_unreclaimable?"] == re.search(r"all_unreclaimable\? (\w+)$", line).group(1)


@pytest.mark.parametrize("name", sorted(LOGS))
def test_parse_command(name):
    table_era, kill_era, era, _ = LOGS[name]
    out = io.StringIO()
    status = run_report(None, argparse.Namespace(command="parse", file=str(PUBLIC / name),
                                                 json=False), out)
    text = out.getvalue()
    assert status == 0
    assert f"table: {table_era}, " in text and f"kill line {kill_era}" in text
    assert f"Mem-Info: formats {era}" in text and "re-rendered: identical to the log's" in text
    assert f"table re-rendered by oomdrgn ({table_era}, identical to the log's rows)" in text


def test_kernel_texts_splits_records_back_into_lines():
    lines = (PUBLIC / "3.10-rhel7-messages.log").read_text().split("\n")
    texts = kernel_texts(lines)
    i = texts.index("Mem-Info:")
    assert texts[i + 1].startswith("active_anon:") and texts[i + 2].startswith(" active_file:")
    assert not any("#012" in t for t in texts)
    lines = (PUBLIC / "4.9-journal-i686.log").read_text().split("\n")
    texts = kernel_texts(lines)
    i = texts.index("Mem-Info:")
    assert texts[i + 2].startswith(" active_file:") and texts[i + 6].startswith(" free:")


# -- every older era's formats, printed with stand-in values and read back --------------

def _printed(era, node_lines):
    """A Mem-Info block as *era*'s formats print it (stand-in values: the numbers
    only have to differ, no kernel printed them)."""
    has = {"CONFIG_TRANSPARENT_HUGEPAGE": True}.get
    values = iter(range(11, 10000, 7))

    def fill(fmt):
        return cformat(fmt, ["DMA32" if c.group().endswith("s") else next(values)
                             for c in re.finditer(r"%[-+ #0]*\d*(?:l|h)?[dus]", fmt)])
    out = ["Mem-Info:"]
    if era.per_cpu:
        out += ["Node 0 " + cformat(F.PER_CPU, ["DMA32"])[:-1]]
        out += [cformat(F.PER_CPU_PAGESET, [cpu, 186, 31, next(values)])[:-1] for cpu in (0, 1)]
    out += fill(era.global_).rstrip("\n").split("\n")
    node = F.assemble(era.node, has)
    if node and node_lines:
        out.append(fill(node).rstrip("\n"))
    out.append("Node 0 " * (not node) + fill(F.assemble(era.zone, has))[:-1])
    out.append("lowmem_reserve[]: 0 0 0 0")
    return out


@pytest.mark.parametrize("era", F.OLDER_ERAS, ids=lambda e: e.name)
def test_older_era_formats_read_back_as_that_era(era):
    block = _printed(era, node_lines=True)
    parsed = parse_show_mem(block)
    assert parsed is not None and parsed.era.split(" = ")[0] == era.name
    assert parsed.rendered == block and parsed.mismatches == []
    if era.per_cpu:
        assert set(parsed.values["per_cpu"]["0/DMA32"]) == {"0", "1"}


def test_eras_from_v4_13_on_are_unchanged():
    assert [e.name for e in F.ERAS] == ["v7.x", "v6.12", "v6.1", "v5.10", "v4.14"]
    assert F.ALL_ERAS[:len(F.ERAS)] == F.ERAS
    assert all(F.era(e.name) is e for e in F.ALL_ERAS)


def test_rodata_of_the_3_13_to_rhel7_t0_row_names_t0():
    """v3.13+ (and RHEL 7's 3.10.0-514.el7) print mm->nr_ptes with %7ld: the
    strings of that mm/oom_kill.c, as pr_info()/pr_err() put them in .rodata."""
    rodata = b"\0".join([
        b"\x016[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name\n",
        b"\x016[%5d] %5d %5d %8lu %8lu %7ld %8lu         %5hd %s\n",
        b"\x013Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB, file-rss:%lukB, "
        b"shmem-rss:%lukB\n"])
    eras = detect_eras(rodata, "T3", "K4")
    assert (eras.table.name, eras.kill.name) == ("T0", "K2")
    assert "guessed" not in eras.evidence
