"""logparse reads back what real kernels printed (tests/data/logs/, see make_logs.py).

Every log here was printed by a kernel: the harness's Debian kernels under QEMU,
or public logs (tests/data/logs/README.md). Variants (other log tools'
prefixes, caller ids, interleaving, split summaries, truncation) are derived
from those lines mechanically, never typed.
"""

import argparse
import datetime
import io
import json
import pathlib
import re
import subprocess
import sys

import pytest

from oomdrgn.core.errors import EXIT_QUERY, EXIT_TARGET, OomdrgnError
from oomdrgn.core.eras import kill_format
from oomdrgn.testing.harness.qemu import strip_timestamp
from oomdrgn.testing.harness.scenarios import oom_table, summary_line
from oomdrgn.core.logparse import parse_lines, parse_log, report_as_dict, split_prefix
from oomdrgn.core.formats import format_kill_line, format_row
from oomdrgn.commands.reports import rerender, run_report

LOGS = pathlib.Path(__file__).parent.parent / "data" / "logs"
KERNELS = {"5.10": "T3", "6.1": "T3", "6.12": "T4", "7.x": "T4"}  # table era each prints


def read(name):
    return (LOGS / name).read_text(errors="surrogateescape")


def lines_of(name):
    return read(name).split("\n")[:-1]


def essence(reports):
    """What a report says, without where in the input it was."""
    out = []
    for r in reports:
        d = report_as_dict(r)
        out.append(json.loads(json.dumps(d), object_hook=lambda o: {
            k: v for k, v in o.items()
            if k not in ("line", "timestamp", "caller", "first_line", "last_line", "pieces")}))
    return out


def printed(texts):
    return "".join(t + "\n" for t in texts)


# -- the harness's kernels ----------------------------------------------------------

@pytest.mark.parametrize("kernel", KERNELS)
def test_oom_log_reports(kernel):
    lines = lines_of(f"{kernel}-oom.log")
    reports = parse_log(read(f"{kernel}-oom.log"))
    assert len(reports) == 3, [r.first_line for r in reports]
    memcg, first, last = reports
    for r in reports:
        assert r.invoked is not None and r.table is not None and r.summary is not None
        assert r.table.era == KERNELS[kernel]
        assert r.kill is not None and r.kill.era == "K4"
        assert r.summary.pid == r.kill.victim.pid and r.summary.task == r.kill.victim.name
        assert r.kill.victim.pid in [row.pid for row in r.table.rows]
        assert r.first_line == r.invoked.line.number and r.last_line == r.kill.line.number
        assert lines[r.first_line - 1] == r.invoked.line.raw
    # The memcg OOM: cgroup v2 "oomtest", its table lists the cgroup's two tasks.
    assert memcg.memcg and memcg.memcg_path == "/oomtest"
    assert memcg.summary.constraint == "CONSTRAINT_MEMCG" and memcg.summary.oom_memcg == "/oomtest"
    assert memcg.kill.message == "Memory cgroup out of memory"
    assert sorted(row.name for row in memcg.table.rows) == ["cg-hog", "cg-member"]
    assert memcg.invoked.comm == "cg-hog" and memcg.invoked.gfp_flags == "GFP_KERNEL"
    # Global OOMs: the hog invokes, the oom_score_adj 1000 process goes first.
    assert not first.memcg and first.summary.global_oom and first.summary.cpuset == "/"
    assert first.invoked.comm == "oomhog" and first.kill.victim.name == "pop-nobody"
    assert first.kill.victim.oom_score_adj == 1000
    assert last.kill.victim.name == "oomhog"
    # A comm with spaces: the name is everything after oom_score_adj.
    assert "pop two words" in [row.name for row in first.table.rows]


@pytest.mark.parametrize("kernel", KERNELS)
def test_table_and_lines_match_the_harness_extraction(kernel):
    # The harness's own helpers (timestamps stripped) find the first table,
    # summary and global kill line; the parser must agree.
    stripped = [strip_timestamp(line) for line in lines_of(f"{kernel}-oom.log")]
    memcg, first, _ = parse_log(read(f"{kernel}-oom.log"))
    t = memcg.table
    assert [t.title.text, t.header.text] + [l.text for l in t.row_lines] == oom_table(stripped)
    assert memcg.summary.text == summary_line(stripped)
    for r, prefix in ((memcg, "Memory cgroup out of memory"), (first, "Out of memory")):
        assert r.kill.line.text == next(l for l in stripped
                                        if l.startswith(prefix + ": Killed process"))


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log"))
                         + sorted("public/" + p.name for p in (LOGS / "public").glob("*.log")))
def test_rows_and_kill_lines_rerender_exactly(name):
    reports = parse_log(read(name))
    assert reports
    for r in reports:
        again = rerender(r)
        assert again["table_mismatches"] == []
        assert again["kill_identical"] in (None, True)
        if r.table is not None:
            t = r.table
            assert "".join(format_row(t.format, row) for row in t.rows) == \
                printed(l.text for l in t.row_lines)
            assert t.header.text + "\n" == t.format.header
            if t.title is not None:
                assert t.title.text + "\n" == t.format.title
            assert again["table"] == "".join(t.format.lines()) + printed(l.text for l in t.row_lines)


@pytest.mark.parametrize("kernel", KERNELS)
def test_panic_report_is_cut_short(kernel):
    lines = lines_of(f"{kernel}-panic.log")
    (r,) = parse_log(read(f"{kernel}-panic.log"))
    assert r.invoked.comm == "oomhog" and r.table.era == KERNELS[kernel]
    assert r.summary is None and r.kill is None
    assert r.panic.text.startswith("Kernel panic - not syncing: Out of memory")
    stripped = [strip_timestamp(line) for line in lines]
    t = r.table
    assert [t.title.text, t.header.text] + [l.text for l in t.row_lines] == oom_table(stripped)


@pytest.mark.parametrize("kernel", KERNELS)
def test_printk_caller_ids(kernel):
    # The panic dump's printk buffer, with the caller ids the kernel saved.
    callers = parse_log(read(f"{kernel}-printk-caller.log"))
    plain = parse_log(read(f"{kernel}-panic.log"))
    assert essence(callers) == essence(plain)
    (r,) = callers
    hog = next(row for row in r.table.rows if row.name == "oomhog")
    assert {l.caller for l in r.table.row_lines} == {f"T{hog.pid}"}
    assert r.invoked.line.caller == f"T{hog.pid}"
    assert re.fullmatch(r"\[ *\d+\.\d{6}\]\[ *T\d+\] ", r.invoked.line.prefix)


# -- other log tools' prefixes, derived from a real log -------------------------------

_STAMP = re.compile(r"^\[ *(\d+)\.(\d+)\] ")
_BOOT = datetime.datetime(2025, 12, 8, 17, 51, 31)


def _variant(lines, how):
    out = []
    for line in lines:
        m = _STAMP.match(line)
        text = line[m.end():] if m else line
        when = _BOOT + datetime.timedelta(seconds=int(m.group(1))) if m else _BOOT
        if how == "none":
            out.append(text)
        elif how == "dmesg-T":
            out.append(when.strftime("[%a %b %e %H:%M:%S %Y] ") + text)
        elif how == "dmesg-T-tz":  # drgn's get_dmesg(timestamps="human")
            out.append(when.strftime("[%a %b %e %H:%M:%S UTC %Y] ") + text)
        elif how == "iso":
            out.append(when.strftime("%Y-%m-%dT%H:%M:%S,000000+00:00 ") + text)
        elif how == "journal":
            out.append(when.strftime("%b %d %H:%M:%S oomtest kernel: ") + text)
        elif how == "syslog":
            out.append(when.strftime("%b %e %H:%M:%S oomtest kernel: ") + line)
        elif how == "journal-iso":
            out.append(when.strftime("%Y-%m-%dT%H:%M:%S+0100 oomtest kernel: ") + text)
        elif how == "caller":
            out.append(line[:m.end() - 1] + "[    T77] " + text if m else line)
        elif how == "caller-dmesg":
            out.append(line[:m.end()] + "[T77] " + text if m else line)
        elif how == "raw":
            out.append("<6>" + line)
        elif how == "decode":
            out.append("kern  :info  : " + line)
        elif how == "crlf":
            out.append(line + "\r")
    return out


VARIANTS = ["none", "dmesg-T", "dmesg-T-tz", "iso", "journal", "syslog", "journal-iso", "caller",
            "caller-dmesg", "raw", "decode", "crlf"]


@pytest.mark.parametrize("how", VARIANTS)
@pytest.mark.parametrize("kernel", ["5.10", "7.x"])
def test_log_tool_prefixes(kernel, how):
    lines = lines_of(f"{kernel}-oom.log")
    assert essence(parse_lines(_variant(lines, how))) == essence(parse_lines(lines))


@pytest.mark.parametrize("how", ["none", "caller", "journal"])
def test_prefix_split_keeps_text_exact(how):
    lines = lines_of("6.12-oom.log")
    for orig, line in zip(lines, _variant(lines, how)):
        ll = split_prefix(1, line.rstrip("\r"))
        assert ll.text == strip_timestamp(orig)
        assert ll.raw == line.rstrip("\r")


def test_timestamps_and_line_numbers():
    lines = lines_of("6.12-oom.log")
    r = parse_log(read("6.12-oom.log"))[1]
    assert lines[r.invoked.line.number - 1] == r.invoked.line.raw
    assert r.invoked.line.timestamp == float(_STAMP.match(r.invoked.line.raw).group(1) + "."
                                            + _STAMP.match(r.invoked.line.raw).group(2))
    assert lines[r.kill.line.number - 1] == r.kill.line.raw
    assert r.first_line == r.invoked.line.number and r.last_line == r.kill.line.number


# -- interleaving, split summaries, truncation ---------------------------------------

def _unrelated(lines):
    """Lines of the same log that are no part of any report (boot messages)."""
    return [l for l in lines if "oomdrgn-init" in l]


def test_interleaved_unrelated_lines():
    lines = lines_of("6.12-oom.log")
    noise = _unrelated(lines)
    assert noise
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        mixed.append(noise[i % len(noise)])
    assert essence(parse_lines(mixed)) == essence(parse_lines(lines))


def _pr_cont_pieces(summary):
    # dump_oom_summary(): pr_info("oom-kill:constraint=%s,nodemask=%*pbl"), then
    # cpuset_print_current_mems_allowed(): pr_cont(",cpuset="), pr_cont_cgroup_name(),
    # pr_cont(",mems_allowed=%*pbl"); mem_cgroup_print_oom_context():
    # pr_cont(",oom_memcg=") + path or pr_cont(",global_oom"), pr_cont(",task_memcg=")
    # + path; pr_cont(",task=%s,pid=%d,uid=%d\n").
    cuts = [",cpuset=", ",mems_allowed=", ",global_oom", ",oom_memcg=", ",task_memcg=", ",task="]
    pieces, rest = [], summary
    for cut in cuts:
        i = rest.find(cut)
        if i < 0:
            continue
        pieces.append(rest[:i])
        rest = rest[i:]
        if cut in (",cpuset=", ",oom_memcg=", ",task_memcg="):  # the name comes on its own
            pieces.append(cut)
            rest = rest[len(cut):]
    return [p for p in pieces if p] + [rest]


@pytest.mark.parametrize("kernel", KERNELS)
def test_summary_split_by_pr_cont(kernel):
    lines = lines_of(f"{kernel}-oom.log")
    noise = _unrelated(lines)[0]
    split = []
    for line in lines:
        m = _STAMP.match(line)
        text = line[m.end():]
        if text.startswith("oom-kill:"):
            for piece in _pr_cont_pieces(text):
                split.append(line[:m.end()] + piece)
                split.append(noise)  # another CPU printed in between
        else:
            split.append(line)
    plain = parse_lines(lines)
    reports = parse_lines(split)
    assert essence(reports) == essence(plain)
    assert all(len(r.summary.lines) >= 6 for r in reports)
    assert [r.summary.text for r in reports] == [r.summary.text for r in plain]


def test_summary_pieces_follow_their_caller():
    # Caller ids added mechanically: the invoking task's on its own lines, the
    # id of PID 1 (which printed the log's "oomdrgn-init" lines) on a stray
    # piece that another CPU printed between them.
    lines = lines_of("6.12-oom.log")
    r = parse_log(read("6.12-oom.log"))[1]
    hog = next(row.pid for row in r.table.rows if row.name == r.invoked.comm)
    n = r.summary.lines[0].number - 1
    stamp = lines[n][:_STAMP.match(lines[n]).end() - 1]
    pieces = _pr_cont_pieces(r.summary.text)

    def with_callers(stray_caller):
        split = [f"{stamp}[  T{hog}] {pieces[0]}", f"{stamp}[{stray_caller:>6}] {pieces[3]}"]
        split += [f"{stamp}[  T{hog}] {p}" for p in pieces[1:]]
        return [f"{l[:_STAMP.match(l).end() - 1]}[  T{hog}] {l[_STAMP.match(l).end():]}"
                for l in lines[r.first_line - 1:n]] + split

    (got,) = parse_lines(with_callers("T1"))
    assert got.summary.text == r.summary.text and got.summary.pid == r.summary.pid
    # The same stray piece from the same caller would be taken in.
    (got,) = parse_lines(with_callers(f"T{hog}"))
    assert got.summary.text != r.summary.text


@pytest.mark.parametrize("kernel", ["5.10", "6.12"])
def test_truncated_anywhere(kernel):
    lines = lines_of(f"{kernel}-oom.log")
    full = parse_lines(lines)
    first = full[0]
    for n in range(len(lines)):
        reports = parse_lines(lines[:n])
        if n >= first.first_line:
            r = reports[0]
            assert r.invoked == first.invoked
            if r.table is not None:  # a prefix of the full table
                assert r.table.rows == first.table.rows[:len(r.table.rows)]
        else:
            assert reports == []


def test_report_without_first_line_or_table():
    lines = lines_of("6.12-oom.log")
    r = parse_log(read("6.12-oom.log"))[1]
    # From the table title on: the report has no first line, still the rest.
    (cut,) = parse_lines(lines[r.table.title.number - 1:r.last_line])
    assert cut.invoked is None and cut.table.rows == r.table.rows
    assert cut.kill.victim == r.kill.victim and cut.summary.text == r.summary.text
    # Only the summary and the kill line.
    (cut,) = parse_lines(lines[r.kill.line.number - 2:r.kill.line.number])
    assert cut.table is None and cut.summary.pid == cut.kill.victim.pid == r.kill.victim.pid


# -- public logs (older kernels, other tools) ----------------------------------------

def public(name):
    return parse_log((LOGS / "public" / name).read_text())


def test_public_4_15_memcg_dmesg_T():
    (r,) = public("4.15-memcg-dmesg-T.log")
    assert r.invoked.comm == "stress" and r.invoked.nodemask == "(null)"
    assert r.invoked.gfp_mask == 0x14000c0 and r.invoked.oom_score_adj == 939
    assert r.table.era == "T2" and len(r.table.rows) == 6 and r.table.title is None
    assert r.memcg and r.memcg_path.startswith("/kubepods/burstable/")
    assert (r.sacrifice.pid, r.sacrifice.score, r.sacrifice.message) == \
        (32308, 1718, "Memory cgroup out of memory")
    assert r.kill.era == "K2" and r.kill.message is None and r.kill.victim.total_vm_kb == 110644
    assert [(x.pid, x.reaped) for x in r.reaped] == [(32308, True)]
    assert r.invoked.line.prefix == "[Sat Apr 27 22:56:09 2019] "


def test_public_4_15_comm_with_space():
    (r,) = public("4.15-web-content-excerpt.log")
    assert r.invoked.comm == "Web Content"
    assert [row.name for row in r.table.rows].count("Web Content") == 3
    assert r.kill.victim.name == "Web Content" and r.reaped[0].name == "Web Content"


def test_public_4_9_kills_without_reports():
    reports = public("4.9-kills-only.log")
    assert [(r.kill and r.kill.victim.pid, r.sacrifice and r.sacrifice.pid) for r in reports] == \
        [(7267, None), (7268, 7268), (None, 7269)]
    assert [len(r.reaped) for r in reports] == [1, 1, 0]


def test_public_k1():
    for name in ("4.x-K1-dmesg.log", "syslog-K1.log"):
        (r,) = public(name)
        assert r.invoked.gfp_flags is None and r.kill.era == "K1"
        assert r.sacrifice.pid == r.kill.victim.pid
        assert r.kill.line.text + "\n" == format_kill_line(kill_format("K1"), r.kill.victim)


def test_public_journal_t1_memcg():
    (r,) = public("journal-T1-memcg.log")
    assert r.invoked is None and r.table.era == "T1" and r.memcg
    assert [(row.nr_ptes, row.nr_pmds) for row in r.table.rows][0] == (62, 3)
    assert r.table.header.prefix.endswith(" kernel: ")


def test_t0_rhel7_table_from_the_t1_log():
    """RHEL 7 (3.10) prints no nr_pmds (dc6c9a35b66b, v4.0) and no ``Tasks state``
    title: the real T1 log's rows, rendered with 3.10's dump_tasks() format in place
    of the T1 header and rows (no complete public 3.10 report was found), are read
    as T0 with the sacrifice and kill lines, and re-render exactly."""
    from oomdrgn.core.eras import table_format
    t0, t1 = table_format("T0"), table_format("T1")
    (orig,) = public("journal-T1-memcg.log")
    by_text = dict(zip((line.text for line in orig.table.row_lines), orig.table.rows))
    out = []
    for raw in (LOGS / "public" / "journal-T1-memcg.log").read_text().split("\n"):
        line = split_prefix(0, raw)
        if line.text == t1.header.rstrip("\n"):
            raw = line.prefix + t0.header.rstrip("\n")
        elif line.text in by_text:
            raw = line.prefix + format_row(t0, by_text[line.text]).rstrip("\n")
        out.append(raw)
    (r,) = parse_lines(out)
    assert r.table.era == "T0" and r.table.title is None
    assert [(row.pid, row.nr_ptes, row.nr_pmds) for row in r.table.rows] == \
        [(row.pid, row.nr_ptes, 0) for row in orig.table.rows]
    assert r.sacrifice.pid == r.kill.victim.pid == orig.kill.victim.pid
    for row, line in zip(r.table.rows, r.table.row_lines):
        assert format_row(t0, row) == line.text + "\n"

def test_public_summary_without_cpuset_or_memcg():
    (r,) = public("5.8-no-cpuset.log")
    s = r.summary
    assert (s.cpuset, s.mems_allowed, s.oom_memcg, s.global_oom, s.task_memcg) == \
        (None, None, None, False, None)
    assert (s.task, s.pid, s.uid) == ("chromium", 27368, 1000)


def test_public_french_dmesg_T_and_t4():
    (r,) = public("dmesg-T-fr-T4.log")
    assert r.table.era == "T4"
    colmap = r.table.rows[-1]
    assert (colmap.rss_anon, colmap.rss_file, colmap.rss_shmem, colmap.swapents) == \
        (3388364, 14371, 608, 518157)
    assert r.summary.task_memcg.endswith(".scope")


def test_public_reference_log_with_nbsp():
    raw = (LOGS / "public" / "5.15-arm64-reference.log").read_text()
    assert "\u00a0" in raw  # copied from a web page
    (r,) = parse_log(raw)
    assert [row.pid for row in r.table.rows] == [142, 1468, 1502, 1604]
    assert r.kill.victim.pid == r.summary.pid == 1604


# -- the parse subcommand --------------------------------------------------------------

def _parse(path, as_json=False):
    out = io.StringIO()
    status = run_report(None, argparse.Namespace(command="parse", file=str(path),
                                                       json=as_json), out)
    return status, out.getvalue()


@pytest.mark.parametrize("kernel", KERNELS)
def test_parse_command_rerenders_the_input(kernel):
    status, text = _parse(LOGS / f"{kernel}-oom.log")
    assert status == 0
    stripped = [strip_timestamp(line) for line in lines_of(f"{kernel}-oom.log")]
    assert printed(oom_table(stripped)) in text  # the table, exactly as logged
    # 3 reports: their tables and kill lines, and the 2 global OOMs' Mem-Info blocks.
    assert text.count("identical to the log") == 8
    for r in parse_log(read(f"{kernel}-oom.log")):
        assert r.kill.line.text + "\n" in text
        assert f"invoked by: {r.invoked.comm} (" in text


def test_parse_command_json():
    status, text = _parse(LOGS / "7.x-oom.log", as_json=True)
    doc = json.loads(text)
    assert status == 0 and len(doc["reports"]) == 3
    rows = doc["reports"][1]["table"]["rows"]
    assert set(rows[0]) == {"pid", "uid", "tgid", "total_vm", "rss", "rss_anon", "rss_file",
                            "rss_shmem", "pgtables_bytes", "swapents", "oom_score_adj", "name"}
    assert doc["reports"][0]["rerendered"]["kill_identical"] is True


def test_parse_command_t3_json_has_only_printed_columns():
    status, text = _parse(LOGS / "5.10-oom.log", as_json=True)
    row = json.loads(text)["reports"][1]["table"]["rows"][0]
    assert "rss_anon" not in row and "pgtables_bytes" in row


def test_parse_command_errors(tmp_path):
    with pytest.raises(OomdrgnError) as e:
        _parse(tmp_path / "nope")
    assert e.value.status == EXIT_TARGET
    (tmp_path / "boot.log").write_text(printed(_unrelated(lines_of("6.12-oom.log"))))
    with pytest.raises(OomdrgnError) as e:
        _parse(tmp_path / "boot.log")
    assert e.value.status == EXIT_QUERY and "no OOM report" in str(e.value)


def test_parse_command_flags_a_row_that_does_not_rerender(tmp_path):
    # A row whose total_vm gets a leading zero parses, but prints differently.
    lines = lines_of("6.12-oom.log")
    r = parse_log(read("6.12-oom.log"))[1]
    padded = re.compile(r"(\[ *\d+\] +-?\d+ +-?\d+ +) (\d+) ")  # total_vm with padding
    n = next(l.number - 1 for l in r.table.row_lines if padded.match(l.text))
    stamp = _STAMP.match(lines[n]).group(0)
    lines[n] = stamp + padded.sub(r"\g<1>0\2 ", lines[n][len(stamp):], count=1)
    assert parse_lines(lines)[1].table.rows == r.table.rows
    (tmp_path / "x.log").write_text(printed(lines))
    status, text = _parse(tmp_path / "x.log")
    assert status != 0 and f"DIFFERS from the log at lines {n + 1}" in text


def test_core_modules_import_without_drgn():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('drgn', '_drgn', 'gdb'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import oomdrgn.core.logparse, oomdrgn.core.logcompare, oomdrgn.commands.reports\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# -- lines no test kernel printed, made from mm/oom_kill.c's format strings -----------

# oom_reap_task() when the mm could not be reaped, and oom_kill_process() when the
# victim was already exiting (v5.10+); printed with a real report's victim.
UNABLE_TO_REAP = "oom_reaper: unable to reap pid:%d (%s)\n"
ALREADY_EXITING = "%s: OOM victim %d (%s) is already exiting. Skip killing the task\n"


def test_unable_to_reap_and_already_exiting():
    from oomdrgn.core.cformat import cformat
    lines = lines_of("6.12-oom.log")
    r = parse_log(read("6.12-oom.log"))[1]
    v = r.kill.victim
    stamp = lines[r.kill.line.number - 1][:_STAMP.match(lines[r.kill.line.number - 1]).end()]
    exiting = stamp + cformat(ALREADY_EXITING, ["Out of memory", v.pid, v.name]).rstrip("\n")
    unable = stamp + cformat(UNABLE_TO_REAP, [v.pid, v.name]).rstrip("\n")
    # The kill line replaced by the "already exiting" one, then the reaper's failure.
    cut = lines[r.first_line - 1:r.kill.line.number - 1] + [exiting, unable]
    (got,) = parse_lines(cut)
    assert got.kill is None and (got.exiting.pid, got.exiting.name) == (v.pid, v.name)
    assert got.exiting.message == "Out of memory" and got.victim_pid == v.pid
    assert [(x.pid, x.reaped, x.anon_rss_kb) for x in got.reaped] == [(v.pid, False, None)]
