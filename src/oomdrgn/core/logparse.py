"""Read OOM reports back out of kernel log text (standard library only).

Accepts what people paste: ``dmesg`` with or without ``[   12.345678]``
timestamps, ``dmesg -T`` (``[Mon Dec  8 17:51:31 2025]``, any locale),
``dmesg -x`` and ``-r`` prefixes, syslog and ``journalctl`` lines
(``Dec 14 17:13:12 host kernel: ``), printk caller ids (``[  T123]``,
``[C1]``), CRLF, and non-breaking spaces from web pages. Unrelated lines may
sit anywhere, also inside a report (other CPUs print while the OOM killer
does). A report may be cut short (``panic_on_oom``, a rotated log): whatever
was found is kept.

The parts of one report are the lines ``mm/oom_kill.c`` prints:
``dump_header()``'s first line, ``dump_tasks()``'s table (era from its
header, see :data:`oomdrgn.core.formats.TABLE_FORMATS`), ``dump_oom_summary()``'s
``oom-kill:`` line (v5.0+), ``oom_kill_process()``'s kill line(s) and
``oom_reap_task_mm()``'s ``oom_reaper:`` line.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .eras import kill_format
from .model import Row, Victim
from .formats import MEMCG_PREFIX, TABLE_FORMATS, TableFormat
from .record import field, fields, record

__all__ = ["LogLine", "InvokedLine", "TaskTable", "OomSummary", "SacrificeLine", "KillLine",
           "ExitingLine", "ReaperLine", "OomReport", "parse_log", "parse_lines",
           "split_prefix", "report_as_dict"]


@record(frozen=True)
class LogLine:
    """One input line, split into the log tool's prefix and the kernel's text."""

    number: int  # 1-based line number in the input
    prefix: str  # everything before the kernel's text: timestamp, host, caller id
    text: str  # what printk printed
    timestamp: Optional[float] = None  # printk seconds, when the prefix has them
    caller: Optional[str] = None  # printk caller id ("T123", "C1"), when printed

    @property
    def raw(self) -> str:
        return self.prefix + self.text


@record(frozen=True)
class InvokedLine:
    """``"%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd"``
    (``dump_header()``; 4.9-4.20 also print ``nodemask=``, 4.4 no ``(%pGg)``)."""

    comm: str
    gfp_mask: int
    gfp_flags: Optional[str]  # the %pGg names, None before v4.6
    nodemask: Optional[str]  # 4.9-4.20 only
    order: int
    oom_score_adj: int
    line: LogLine


@record(frozen=True)
class TaskTable:
    """The ``dump_tasks()`` block. Columns the era does not print are 0 in the rows."""

    era: str  # "T0".."T4", from the header line
    rows: Tuple[Row, ...]
    row_lines: Tuple[LogLine, ...]  # one per row, as printed
    header: LogLine
    title: Optional[LogLine] = None  # "Tasks state (memory values in pages):" (T3+)

    @property
    def format(self) -> TableFormat:
        return next(f for f in TABLE_FORMATS if f.name == self.era)


@record(frozen=True)
class OomSummary:
    """The ``oom-kill:`` line (``dump_oom_summary()``, v5.0+), joined if printk
    split its ``pr_cont()`` pieces over several lines."""

    constraint: str
    nodemask: str
    cpuset: Optional[str]  # None: kernel without CONFIG_CPUSETS
    mems_allowed: Optional[str]
    oom_memcg: Optional[str]  # None: global OOM (or no CONFIG_MEMCG)
    global_oom: bool
    task_memcg: Optional[str]
    task: str
    pid: int
    uid: int
    text: str  # the joined line
    lines: Tuple[LogLine, ...]


@record(frozen=True)
class SacrificeLine:
    """``"%s: Kill process %d (%s) score %u or sacrifice child"`` (K1, K2: before v5.1)."""

    message: str
    pid: int
    name: str
    score: int
    line: LogLine


@record(frozen=True)
class KillLine:
    """``__oom_kill_process()``'s ``Killed process`` line.

    ``era``: K1/K2 (no message prefix), K3, or K4 (K5, v7.0+, prints the same
    text). Values the era does not print are 0 in ``victim``.
    """

    era: str
    message: Optional[str]  # "Out of memory", "Memory cgroup out of memory", ...
    victim: Victim
    line: LogLine


@record(frozen=True)
class ExitingLine:
    """``"%s: OOM victim %d (%s) is already exiting. Skip killing the task"`` (v5.10+)."""

    message: str
    pid: int
    name: str
    line: LogLine


@record(frozen=True)
class ReaperLine:
    """``oom_reaper: reaped process %d (%s), now anon-rss:%lukB, ...`` or
    ``oom_reaper: unable to reap pid:%d (%s)``."""

    pid: int
    name: str
    reaped: bool
    anon_rss_kb: Optional[int]
    file_rss_kb: Optional[int]
    shmem_rss_kb: Optional[int]
    line: LogLine


@record
class OomReport:
    """One OOM kill (or attempt) as the log shows it; any part may be missing."""

    invoked: Optional[InvokedLine] = None
    table: Optional[TaskTable] = None
    summary: Optional[OomSummary] = None
    sacrifice: Optional[SacrificeLine] = None
    kill: Optional[KillLine] = None
    exiting: Optional[ExitingLine] = None
    reaped: List[ReaperLine] = field(default_factory=list)
    panic: Optional[LogLine] = None  # "Kernel panic - not syncing: ..." ending it
    memcg_path: Optional[str] = None  # from "Memory cgroup stats for" / "Task in"
    memcg_usage: Optional[LogLine] = None  # "memory: usage %llukB, limit ..."
    first_line: int = 0
    last_line: int = 0

    @property
    def memcg(self) -> bool:
        """Whether this is a memory cgroup OOM (its table lists only that cgroup)."""
        if self.summary is not None:
            return self.summary.oom_memcg is not None or self.summary.constraint == "CONSTRAINT_MEMCG"
        for part in (self.kill, self.sacrifice, self.exiting):
            if part is not None and part.message:
                return part.message.startswith(MEMCG_PREFIX)
        return self.memcg_path is not None or self.memcg_usage is not None

    @property
    def victim_pid(self) -> Optional[int]:
        if self.kill is not None:
            return self.kill.victim.pid
        for part in (self.summary, self.sacrifice, self.exiting):
            if part is not None and part.pid >= 0:  # -1: a summary cut short
                return part.pid
        return None


# -- line prefixes ---------------------------------------------------------------

_TIME = r"\d\d:\d\d:\d\d"
_SYSLOG = re.compile(
    r"(?:[A-Z][a-z]{2} [ \d]\d " + _TIME + r"(?:\.\d+)?"  # Dec 14 17:13:12[.123456]
    r"|\d{4}-\d\d-\d\dT" + _TIME + r"(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"  # ISO 8601
    r"|[A-Z][a-z]{2} \d{4}-\d\d-\d\d " + _TIME + r"(?: [A-Z]+)?"  # short-full
    r"|\[ *\d+\.\d+\]"  # journalctl -o short-monotonic
    r") \S+ kernel: ")
_LEVEL = re.compile(r"<\d{1,3}>")  # dmesg -r, /proc/kmsg
_DECODE = re.compile(  # dmesg -x: "kern  :info  : "
    r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|res0|res1|res2|res3"
    r"|local[0-7]) *:(?:emerg|alert|crit|err|warn|notice|info|debug) *: ")
_MONOTONIC = re.compile(r"\[ *(\d+\.\d+)\]")
_WALLCLOCK = re.compile(r"\[[^\]\[]*" + _TIME + r"[^\]\[]*\]"  # dmesg -T, any locale
                        r"|\d{4}-\d\d-\d\dT" + _TIME + r"[.,]\d+[+-]\d\d:?\d\d")  # --time-format iso
_CALLER = re.compile(r" ?\[ *([TC]\d+)\]")


_DMESG = re.compile(r"\[ *(\d+\.\d+)\](?:\[ *([TC]\d+)\])? ?")  # the common case, at once


def split_prefix(number: int, raw: str) -> LogLine:
    """Split one input line into the log tool's prefix and the kernel's text."""
    m = _DMESG.match(raw)
    if m and not raw.startswith(" [", m.end() - 1):
        return LogLine(number, raw[:m.end()], raw[m.end():], float(m.group(1)), m.group(2))
    pos = 0
    timestamp = caller = None
    for regex in (_SYSLOG, _LEVEL, _DECODE):
        m = regex.match(raw, pos)
        if m:
            pos = m.end()
    m = _MONOTONIC.match(raw, pos)
    if m:
        timestamp = float(m.group(1))
    else:
        m = _WALLCLOCK.match(raw, pos)
    stamped = m is not None
    if m:
        pos = m.end()
    m = _CALLER.match(raw, pos)
    if m and (stamped or m.group(0)[0] == "["):
        caller = m.group(1)
        pos = m.end()
        stamped = True
    if stamped and raw.startswith(" ", pos):
        pos += 1
    return LogLine(number, raw[:pos], raw[pos:], timestamp, caller)


# -- the kernel's lines ----------------------------------------------------------

_INVOKED = re.compile(
    r"(?P<comm>.*?) invoked oom-killer: gfp_mask=(?P<gfp>0x[0-9a-fA-F]+|\d+)"
    r"(?:\((?P<flags>[^)]*)\))?,(?: nodemask=(?P<nodemask>.*?),)?\s+"
    r"order=(?P<order>-?\d+), oom_score_adj=(?P<adj>-?\d+)")
_TITLE = "Tasks state (memory values in pages):"
_HEADERS = {f.header.rstrip("\n"): f for f in TABLE_FORMATS}
_SUMMARY = re.compile(
    r"oom-kill:constraint=(?P<constraint>[^,]*),nodemask=(?P<nodemask>.*?)"
    r"(?:,cpuset=(?P<cpuset>.*?),mems_allowed=(?P<mems>.*?))?"
    r"(?P<global>,global_oom)?(?:,oom_memcg=(?P<oom_memcg>.*?))?"
    r"(?:,task_memcg=(?P<task_memcg>.*?))?"
    r",task=(?P<task>.*),pid=(?P<pid>-?\d+),uid=(?P<uid>-?\d+)")
_SACRIFICE = re.compile(r"(?P<message>.+?): Kill process (?P<pid>-?\d+) \((?P<name>.*)\) "
                        r"score (?P<score>\d+) or sacrifice child")
_KILL = re.compile(
    r"(?:(?P<message>.+?): )?Killed process (?P<pid>-?\d+) \((?P<name>.*)\) "
    r"total-vm:(?P<total_vm_kb>\d+)kB, anon-rss:(?P<anon_rss_kb>\d+)kB, "
    r"file-rss:(?P<file_rss_kb>\d+)kB(?:, shmem-rss:(?P<shmem_rss_kb>\d+)kB)?"
    r"(?:, UID:(?P<uid>\d+) pgtables:(?P<pgtables_kb>-?\d+)kB "
    r"oom_score_adj:(?P<oom_score_adj>-?\d+))?")
_EXITING = re.compile(r"(?P<message>.+?): OOM victim (?P<pid>-?\d+) \((?P<name>.*)\) "
                      r"is already exiting\. Skip killing the task")
_REAPED = re.compile(r"oom_reaper: reaped process (?P<pid>-?\d+) \((?P<name>.*)\), "
                     r"now anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB, "
                     r"shmem-rss:(?P<shmem>\d+)kB")
_UNABLE = re.compile(r"oom_reaper: unable to reap pid:(?P<pid>-?\d+) \((?P<name>.*)\)")
_PANIC = "Kernel panic - not syncing: "
_MEMCG_STATS = re.compile(r"Memory cgroup stats for (?P<path>.*?):(?: .*)?")
_TASK_IN = re.compile(r"Task in (?P<task>.*) killed as a result of limit of (?P<path>.*)")
_MEMCG_USAGE = re.compile(r"memory: usage \d+kB, limit \d+kB, failcnt \d+")
_CONV = re.compile(r"%[-+ #0]*\d*(?:hh|h|ll|l|z)?([dius])")


def _row_regex(fmt: TableFormat) -> "re.Pattern":
    """The row format as a regex: each number right-aligned (``" *(-?\\d+)"``,
    wider values push the line right as printf does), the name everything left."""
    text = fmt.row.rstrip("\n")
    out, pos = [], 0
    for m in _CONV.finditer(text):
        out.append(re.escape(text[pos:m.start()]))
        out.append("(.*)" if m.group(1) == "s" else r" *(-?\d+)")
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out))


_ROWS = {f.name: _row_regex(f) for f in TABLE_FORMATS}
_INT_FIELDS = [f for f in fields(Row) if f != "name"]


def _row(fmt: TableFormat, text: str) -> Optional[Row]:
    m = _ROWS[fmt.name].fullmatch(text)
    if not m:
        return None
    values: Dict[str, Any] = dict.fromkeys(_INT_FIELDS, 0)
    for column, value in zip(fmt.columns, m.groups()):
        values[column] = value if column == "name" else int(value)
    return Row(**values)


def _victim(m: "re.Match") -> Victim:
    g = {k: int(v) for k, v in m.groupdict().items()
         if v is not None and k not in ("message", "name")}
    return Victim(pid=g["pid"], name=m.group("name"), total_vm_kb=g["total_vm_kb"],
                  anon_rss_kb=g["anon_rss_kb"], file_rss_kb=g["file_rss_kb"],
                  shmem_rss_kb=g.get("shmem_rss_kb", 0), uid=g.get("uid", 0),
                  pgtables_kb=g.get("pgtables_kb", 0), oom_score_adj=g.get("oom_score_adj", 0))


def _kill_era(m: "re.Match") -> str:
    if m.group("uid") is not None:
        return "K4"
    if m.group("message") is not None:
        return "K3"
    return "K2" if m.group("shmem_rss_kb") is not None else "K1"


def _summary(lines: List[LogLine]) -> Optional[OomSummary]:
    text = "".join(line.text for line in lines)
    m = _SUMMARY.fullmatch(text)
    if not m:
        return None
    return OomSummary(
        constraint=m.group("constraint"), nodemask=m.group("nodemask"), cpuset=m.group("cpuset"),
        mems_allowed=m.group("mems"), oom_memcg=m.group("oom_memcg"),
        global_oom=m.group("global") is not None, task_memcg=m.group("task_memcg"),
        task=m.group("task"), pid=int(m.group("pid")), uid=int(m.group("uid")), text=text,
        lines=tuple(lines))


# pr_cont() pieces of the summary line (cpuset_print_current_mems_allowed(),
# mem_cgroup_print_oom_context()): a piece starts with "," or is the value of a
# "key=" piece. Printed as lines of their own when another CPU's printk came
# between them; with caller ids, only the summary's own caller's pieces count.
_SUMMARY_PIECES = 12


class _Parser:
    def __init__(self) -> None:
        self.reports: List[OomReport] = []
        self.current: Optional[OomReport] = None
        self.title: Optional[LogLine] = None
        self.table: Optional[dict] = None
        self.summary_lines: List[LogLine] = []

    # Report boundaries -----------------------------------------------------

    def _close_table(self) -> None:
        if self.table is not None and self.current is not None:
            t = self.table
            self.current.table = TaskTable(era=t["fmt"].name, rows=tuple(t["rows"]),
                                           row_lines=tuple(t["lines"]), header=t["header"],
                                           title=t["title"])
        self.table = None

    def _new(self, line: LogLine) -> OomReport:
        self._finish()
        self.current = OomReport(first_line=line.number, last_line=line.number)
        self.reports.append(self.current)
        return self.current

    def _open(self, line: LogLine, *later_parts: str) -> OomReport:
        """The current report, or a new one if it already has a part printed after this line."""
        r = self.current
        if r is None or r.panic is not None or any(getattr(r, p) is not None for p in later_parts):
            r = self._new(line)
        r.last_line = line.number
        return r

    def _finish(self) -> None:
        self._flush_summary()
        self._close_table()

    # Summary continuation ----------------------------------------------------

    def _flush_summary(self) -> None:
        if self.summary_lines:
            lines, self.summary_lines = self.summary_lines, []
            summary = _summary(lines)
            if summary is None:  # incomplete: keep what the first line says
                summary = _summary_partial(lines[0])
            if summary is not None and self.current is not None:
                self.current.summary = summary

    def _continues_summary(self, line: LogLine) -> bool:
        if not self.summary_lines or len(self.summary_lines) >= _SUMMARY_PIECES:
            return False
        first = self.summary_lines[0]
        if first.caller and line.caller and first.caller != line.caller:
            return False
        if line.text.startswith(","):
            return True
        # A cgroup name or path after ",cpuset=", ",oom_memcg=", ",task_memcg=".
        return self.summary_lines[-1].text.endswith("=") and " " not in line.text

    # One line ---------------------------------------------------------------

    def feed(self, line: LogLine) -> None:
        text = line.text
        if self.summary_lines:
            if self._continues_summary(line):
                self.summary_lines.append(line)
                if _SUMMARY.fullmatch("".join(l.text for l in self.summary_lines)):
                    self._flush_summary()
                return
            if not _known(text):
                return  # an unrelated line between the pieces
            self._flush_summary()

        m = _INVOKED.fullmatch(text) if " invoked oom-killer: " in text else None
        if m:
            self.title = None
            r = self._new(line)
            r.invoked = InvokedLine(
                comm=m.group("comm"), gfp_mask=int(m.group("gfp"), 16 if "x" in m.group("gfp") else 10),
                gfp_flags=m.group("flags"), nodemask=m.group("nodemask"),
                order=int(m.group("order")), oom_score_adj=int(m.group("adj")), line=line)
            return
        if text == _TITLE:
            self.title = line
            return
        fmt = _HEADERS.get(text)
        if fmt is not None:
            self._close_table()
            title, self.title = self.title, None
            r = self._open(line, "table", "summary", "sacrifice", "kill")
            if title is not None and r.first_line == line.number:  # a report without first line
                r.first_line = title.number
            self.table = {"fmt": fmt, "rows": [], "lines": [], "header": line, "title": title}
            return
        if self.table is not None and text.startswith("["):
            row = _row(self.table["fmt"], text)
            if row is not None:
                self.table["rows"].append(row)
                self.table["lines"].append(line)
                assert self.current is not None  # _open() made it with the table
                self.current.last_line = line.number
                return
        if text.startswith("oom-kill:"):
            self._close_table()
            self._open(line, "summary", "sacrifice", "kill")
            self.summary_lines = [line]
            if _SUMMARY.fullmatch(text):
                self._flush_summary()
            return
        if not ("process " in text or "OOM victim " in text or text.startswith("oom_reaper: ")):
            self._other(text, line)
            return
        m = _SACRIFICE.fullmatch(text)
        if m:
            self._close_table()
            r = self._open(line, "sacrifice", "kill")
            r.sacrifice = SacrificeLine(m.group("message"), int(m.group("pid")), m.group("name"),
                                        int(m.group("score")), line)
            return
        m = _KILL.fullmatch(text)
        if m:
            self._close_table()
            r = self._open(line, "kill")
            r.kill = KillLine(_kill_era(m), m.group("message"), _victim(m), line)
            return
        m = _EXITING.fullmatch(text)
        if m:
            self._close_table()
            r = self._open(line, "kill", "exiting")
            r.exiting = ExitingLine(m.group("message"), int(m.group("pid")), m.group("name"), line)
            return
        m = (_REAPED.fullmatch(text) or _UNABLE.fullmatch(text)) \
            if text.startswith("oom_reaper: ") else None
        if m:
            self._reaper(m, line)

    def _other(self, text: str, line: LogLine) -> None:
        """A panic ending the report, a memcg OOM's own lines, or an unrelated line."""
        r = self.current
        if r is None or r.kill is not None or r.panic is not None:
            return
        if text.startswith(_PANIC):
            self._close_table()
            r.panic = line
            r.last_line = line.number
        elif text.startswith(("Memory cgroup stats for ", "Task in ", "memory: usage ")):
            self._memcg_line(text, line)

    def _reaper(self, m: "re.Match", line: LogLine) -> None:
        groups = m.groupdict()
        reaped = "anon" in groups
        anon, file, shmem = (int(groups[k]) if reaped else None
                             for k in ("anon", "file", "shmem"))
        rec = ReaperLine(int(m.group("pid")), m.group("name"), reaped, anon, file, shmem,
                         line=line)
        # The reaper runs later, in its own thread: attach it to its victim's report.
        for r in reversed(self.reports):
            if r.victim_pid == rec.pid:
                r.reaped.append(rec)
                r.last_line = max(r.last_line, line.number)
                return
        self._open(line).reaped.append(rec)

    def _memcg_line(self, text: str, line: LogLine) -> None:
        r = self.current
        assert r is not None  # _other() returned otherwise
        m = _MEMCG_STATS.fullmatch(text) or _TASK_IN.fullmatch(text)
        if m and r.memcg_path is None:
            r.memcg_path = m.group("path")
        elif _MEMCG_USAGE.fullmatch(text):
            r.memcg_usage = line

    def result(self) -> List[OomReport]:
        self._finish()
        return self.reports


def _summary_partial(line: LogLine) -> Optional[OomSummary]:
    """An ``oom-kill:`` line whose pieces did not all arrive: what its start says."""
    m = re.match(r"oom-kill:constraint=(?P<constraint>[^,]*),nodemask=(?P<nodemask>[^,]*)",
                 line.text)
    if not m:
        return None
    return OomSummary(constraint=m.group("constraint"), nodemask=m.group("nodemask"),
                      cpuset=None, mems_allowed=None, oom_memcg=None, global_oom=False,
                      task_memcg=None, task="", pid=-1, uid=-1, text=line.text, lines=(line,))


def _known(text: str) -> bool:
    """Whether *text* is one of the OOM report's own lines (it ends a summary)."""
    return bool(text == _TITLE or text in _HEADERS or text.startswith(("oom-kill:", _PANIC))
                or _INVOKED.fullmatch(text) or _KILL.fullmatch(text)
                or _SACRIFICE.fullmatch(text) or _REAPED.fullmatch(text))


def parse_lines(lines: Iterable[str]) -> List[OomReport]:
    """The OOM reports in *lines* (each without its newline), oldest first."""
    parser = _Parser()
    for number, raw in enumerate(lines, 1):
        raw = raw.rstrip("\r\n").replace("\u00a0", " ")
        parser.feed(split_prefix(number, raw))
    return parser.result()


def parse_log(text: str) -> List[OomReport]:
    """The OOM reports in a whole log's text, oldest first.

    Non-breaking spaces (U+00A0, left by web pages) are read as spaces.
    """
    return parse_lines(text.split("\n"))


# -- JSON ----------------------------------------------------------------------

def _line_ref(line: LogLine) -> dict:
    out: Dict[str, Any] = {"line": line.number}
    if line.timestamp is not None:
        out["timestamp"] = line.timestamp
    if line.caller is not None:
        out["caller"] = line.caller
    return out


def report_as_dict(report: OomReport) -> dict:
    """*report* as plain JSON-able data (rows carry only their era's columns)."""
    out: dict = {"first_line": report.first_line, "last_line": report.last_line,
                 "memcg": report.memcg, "memcg_path": report.memcg_path}
    inv = report.invoked
    out["invoked"] = None if inv is None else {
        "comm": inv.comm, "gfp_mask": inv.gfp_mask, "gfp_flags": inv.gfp_flags,
        "nodemask": inv.nodemask, "order": inv.order, "oom_score_adj": inv.oom_score_adj,
        **_line_ref(inv.line)}
    t = report.table
    out["table"] = None if t is None else {
        "era": t.era, **_line_ref(t.header),
        "rows": [{c: getattr(r, c) for c in t.format.columns} for r in t.rows]}
    s = report.summary
    out["summary"] = None if s is None else {
        k: getattr(s, k) for k in ("constraint", "nodemask", "cpuset", "mems_allowed",
                                   "oom_memcg", "global_oom", "task_memcg", "task", "pid", "uid")}
    if s is not None:
        out["summary"].update(_line_ref(s.lines[0]), pieces=len(s.lines))
    sac = report.sacrifice
    out["sacrifice"] = None if sac is None else {
        "message": sac.message, "pid": sac.pid, "name": sac.name, "score": sac.score,
        **_line_ref(sac.line)}
    k = report.kill
    if k is None:
        out["kill"] = None
    else:
        cols = kill_format(k.era).columns
        out["kill"] = {"era": k.era, "message": k.message,
                       "victim": {c: getattr(k.victim, c) for c in cols}, **_line_ref(k.line)}
    e = report.exiting
    out["exiting"] = None if e is None else {"message": e.message, "pid": e.pid, "name": e.name,
                                             **_line_ref(e.line)}
    out["reaped"] = [{"pid": r.pid, "name": r.name, "reaped": r.reaped,
                      "anon_rss_kb": r.anon_rss_kb, "file_rss_kb": r.file_rss_kb,
                      "shmem_rss_kb": r.shmem_rss_kb, **_line_ref(r.line)} for r in report.reaped]
    out["panic"] = None if report.panic is None else {"text": report.panic.text,
                                                      **_line_ref(report.panic)}
    return out
