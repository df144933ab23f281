"""The memcg part of an OOM report, as ``dump_header()`` prints it:
``mem_cgroup_print_oom_meminfo()`` (mm/memcontrol.c) and, in 7.x (the release
it came in is not checked here), ``mem_cgroup_show_protected_memory()``, over
the target port.

The report is ``memory: usage ...``, then ``swap: ...`` (cgroup v2) or
``memory+swap: ...`` and ``kmem: ...`` (v1), then ``Memory cgroup stats for
<path>:`` and the memcg's statistics (:mod:`oomdrgn.core.memcg_stat`).

How the statistics reach the console changed once:

* Since c8713d0b2312 ("mm: memcontrol: dump memory.stat during cgroup OOM")
  (in v5.0) until v6.4, ``pr_info("%s", buf)``: the whole ``memory.stat`` text
  is one printk record. ``vprintk_store()`` formats it into ``LOG_LINE_MAX``
  (1024 - ``PREFIX_MAX`` (32, 48 with ``CONFIG_PRINTK_CALLER``)) bytes, KERN_INFO
  prefix included, so the record keeps at most 989 bytes of the text; then the
  console's ``record_print_text()`` puts
  every line of the record, each behind its own prefix (``[%5lu.%06lu] ``: 15
  bytes), into a 1024-byte buffer and drops every line that does not fit. On
  the console the statistics stop after ~1000 bytes of *prefixed* lines
  (tests/data/logs: 5.10 at ``pglazyfree``, 6.1 at ``workingset_nodereclaim``),
  though the printk ring holds up to 989 bytes of them (``dmesg`` through
  ``/dev/kmsg`` shows them).
* Since "memcg: use seq_buf_do_printk() with mem_cgroup_print_oom_meminfo()"
  (v6.5, hash not checked here) ``seq_buf_do_printk()`` prints every line as
  its own record: nothing is cut.

Which one a kernel does is read from its code (does
``mem_cgroup_print_oom_meminfo`` call ``seq_buf_do_printk``?).

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .memo import once_per
from . import cgroup
from .codescan import calls_target
from .errors import ReadError, TargetError
from .memcg_stat import Stats, memcg1_stat_format, memory_stat_format
from .port import Fault
from .record import field, record

__all__ = ["MemcgMeminfo", "mem_cgroup_print_oom_meminfo", "mem_cgroup_show_protected_memory",
           "vprintk_store_text", "record_print_text", "console_prefix_len", "ConsolePrefix",
           "CONSOLE_BUF", "PREFIX_MAX"]

_MEMCG = "struct mem_cgroup"
_MASK64 = (1 << 64) - 1
#: the console's record buffer: ``LOG_LINE_MAX + PREFIX_MAX`` (5.10),
#: ``CONSOLE_LOG_MAX`` (6.1): 1024 bytes.
CONSOLE_BUF = 1024
#: ``PREFIX_MAX`` (kernel/printk/printk.c): 32, 48 with ``CONFIG_PRINTK_CALLER``.
PREFIX_MAX = {False: 32, True: 48}
_KERN_INFO = "\x016"


@record
class MemcgMeminfo:
    """What ``mem_cgroup_print_oom_meminfo()`` prints for one memcg.

    :param lines: the console lines, without timestamps or newlines (the stats
        cut as the console cuts them in the eras of one record)
    :param values: every number by the kernel's names (``memory``, ``swap``,
        ``memory+swap``, ``kmem``: ``usage_kb``, ``limit_kb``, ``failcnt``;
        ``stats``: every ``memory.stat`` line, also those the console drops)
    :param formats: which era variant, and how it was detected
    :param record_lines: the stats as the printk ring keeps them (= the stat
        lines of *lines* where each line is its own record)
    """

    lines: List[str]
    values: dict
    formats: str
    record_lines: List[str] = field(default_factory=list)

    @property
    def ring_lines(self) -> List[str]:
        """The lines as the printk ring keeps them (the stats not cut by a console)."""
        head = next((i + 1 for i, line in enumerate(self.lines)
                     if line.startswith("Memory cgroup stats for ")), len(self.lines))
        return self.lines[:head] + self.record_lines


# The printk record and the console: pure ------------------------------------

def vprintk_store_text(text: str, log_line_max: int, level: str = _KERN_INFO) -> str:
    """The text ``vprintk_store()`` keeps of ``printk(level "%s", text)``: the
    formatted string cut to ``LOG_LINE_MAX - 1`` bytes (``vscnprintf()``), a
    trailing newline dropped, then the level prefix."""
    out = (level + text)[:log_line_max - 1]
    if out.endswith("\n"):
        out = out[:-1]
    return out[len(level):]


def record_print_text(text: str, prefix_len: int, buf_size: int = CONSOLE_BUF) -> List[str]:
    """The lines the console prints of a record with *text*: each line behind
    a prefix of *prefix_len* bytes, with its newline, in a *buf_size* buffer
    with a terminator; a line that does not fit is dropped with all after it
    (``record_print_text()``, v5.10+; ``msg_print_text()`` before v5.10 is not
    checked here)."""
    data = text.encode("utf-8", "surrogateescape")
    text_len = min(len(data), buf_size)
    pos, length, truncated = 0, 0, False
    lines: List[str] = []
    while True:
        nl = data.find(b"\n", pos, pos + text_len)
        if nl >= 0:
            line_len = nl - pos
        else:
            if truncated:
                break  # drop the truncated line
            line_len = text_len
        if length + prefix_len + text_len + 1 + 1 > buf_size:
            if length + prefix_len + line_len + 1 + 1 > buf_size:
                break
            text_len = buf_size - length - prefix_len - 1 - 1
            truncated = True
        lines.append(data[pos:pos + line_len].decode("utf-8", "surrogateescape"))
        length += prefix_len + line_len + 1
        if text_len == line_len:
            break
        pos += line_len + 1
        text_len -= line_len + 1
    return lines


@record(frozen=True)
class ConsolePrefix:
    """What ``info_print_prefix()`` puts before each console line."""

    time: bool = True  # printk_time (printk.time=)
    caller: bool = False  # CONFIG_PRINTK_CALLER
    syslog: bool = False  # console_msg_format=syslog

    def describe(self) -> str:
        parts = [p for p, on in (("<level>", self.syslog), ("[time]", self.time),
                                 ("[caller]", self.caller)) if on]
        return " ".join(parts) or "none"


def console_prefix_len(prefix: ConsolePrefix, seconds: int = 0, caller_id: str = "T1",
                       level: int = 6) -> int:
    """The length of ``info_print_prefix()`` for a record at *seconds* after boot."""
    n = len(f"<{level}>") if prefix.syslog else 0
    if prefix.time:
        n += len("[%5d.%06d]" % (seconds, 0))
    if prefix.caller:
        n += len("[%6s]" % caller_id)
    if prefix.time or prefix.caller:
        n += 1  # the space
    return n


# Over the port ----------------------------------------------------------------

@once_per
def _console_prefix(reader) -> ConsolePrefix:
    """printk_time, console_msg_format and CONFIG_PRINTK_CALLER (whose
    ``print_caller()`` leaves ``"[%6s]"`` in .rodata), once per reader."""
    from .evidence import rodata
    t = reader.target
    time = True
    sym = t.symbol("printk_time")
    if sym is not None:
        time = bool(reader.read_int(sym[0], 1))
    sym = t.symbol("console_msg_format")
    syslog = bool(sym is not None and reader.read_int(sym[0], 4) & 1)  # MSG_FORMAT_SYSLOG
    data = rodata(t)
    return ConsolePrefix(time, bool(data and b"[%6s]\x00" in data), syslog)


def _now_seconds(reader) -> int:
    """Seconds since boot of the printk ring's newest record (0 if unreadable)."""
    from .printk_ring import printk_records
    try:
        records = printk_records(reader.target)
    except ReadError:
        return 0
    return records[-1].timestamp // 1_000_000_000 if records else 0


def _prints_line_by_line(reader) -> Tuple[bool, str]:
    """Whether ``mem_cgroup_print_oom_meminfo()`` prints the stats with
    ``seq_buf_do_printk()``, and the evidence: a call found in its code (GCC
    moves the unlikely part to ``<name>.cold``, 7.x: both are scanned); no call
    in all of its code; else the helper's existence (it came in the same series
    as its use here)."""
    t = reader.target
    target = t.symbol("seq_buf_do_printk")
    if target is None:
        return False, "no seq_buf_do_printk"
    name = "mem_cgroup_print_oom_meminfo"
    main, cold = t.symbol(name), t.symbol(name + ".cold")
    parts = [s for s in (main, cold) if s and s[1]]
    try:
        if any(calls_target(t.read(a, n), a, target[0], t.arch) for a, n in parts):
            return True, "seq_buf_do_printk called"
    except ReadError:
        return True, "seq_buf_do_printk exists (code unreadable)"
    if main and main[1] and cold and cold[1]:
        return False, "seq_buf_do_printk not called"
    return True, "seq_buf_do_printk exists"


def _counter(reader, memcg: int, name: str) -> Optional[Tuple[int, int, int]]:
    """``(page_counter_read(), max, failcnt)`` of ``memcg-><name>`` (pages), or
    None where this kernel has no such counter."""
    if not reader.has(_MEMCG, name):
        return None
    # page_counter's count/limit became usage/max in "mm: rename page_counter's
    # count/limit into usage/max" (v4.15, hash not checked here).
    usage = "usage" if reader.has("struct page_counter", "usage") else "count"
    limit = "max" if reader.has("struct page_counter", "max") else "limit"
    base = memcg + reader.offset(_MEMCG, name)
    return (reader.read_int(base + reader.offset("struct page_counter", usage)) & _MASK64,
            reader.read_int(base + reader.offset("struct page_counter", limit)),
            reader.read_int(base + reader.offset("struct page_counter", "failcnt")))


def _memory_event(reader, memcg: int, name: str) -> int:
    idx = reader.target.constant(name)
    if idx is None:
        raise TargetError(f"no {name}")
    return reader.read_int(memcg + reader.offset(_MEMCG, f"memory_events[{idx}]"))


def _memcg_of(reader, memcg_path: Optional[str]) -> int:
    """The ``struct mem_cgroup *`` of *memcg_path* (None: ``root_mem_cgroup``)."""
    if memcg_path is None:
        return reader.read_int(reader.symbol_address("root_mem_cgroup"))
    css = cgroup._memcg_css(reader, memcg_path)
    return css - reader.offset(_MEMCG, "css")


def _line(name: str, usage: int, limit: int, failcnt: int, shift: int) -> str:
    return "%s: usage %dkB, limit %dkB, failcnt %d" % (name, usage << shift, limit << shift,
                                                       failcnt)


def mem_cgroup_print_oom_meminfo(reader, memcg_path: str,
                                 seconds: Optional[int] = None) -> MemcgMeminfo:
    """What ``mem_cgroup_print_oom_meminfo()`` prints for the memcg of
    *memcg_path* (cgroup v2 path, or the path in the v1 memory hierarchy).

    :param seconds: the printk time of the report, for the width of the console
        prefix in the eras that cut (default: the newest printk record's)
    :raises TargetError: no such memcg, or a kernel whose tables are not understood
    """
    try:
        return _meminfo(reader, memcg_path, seconds)
    except Fault as e:
        raise TargetError(f"memcg {memcg_path!r} unreadable: {e}") from None


def _meminfo(reader, memcg_path: str, seconds: Optional[int]) -> MemcgMeminfo:
    memcg = _memcg_of(reader, memcg_path)
    dfl = cgroup._cgroup_on_dfl(reader)
    shift = reader.info.page_shift - 10  # K()
    notes = []
    values: Dict[str, object] = {}
    lines: List[str] = []

    memory = _counter(reader, memcg, "memory")
    if memory is None:
        raise TargetError("struct mem_cgroup has no memory counter")
    counters: List[Tuple[str, Optional[Tuple[int, int, int]]]] = [("memory", memory)]
    if dfl:
        swap = _counter(reader, memcg, "swap")
        # Since "page_counter: track failcnt only for legacy cgroups" (v6.16,
        # hash not checked here) cgroup v2 counts no failcnt: the report prints
        # memory.events' max and swap max counts instead.
        if reader.has("struct page_counter", "track_failcnt"):
            counters = [("memory", (memory[0], memory[1],
                                    _memory_event(reader, memcg, "MEMCG_MAX")))]
            if swap is not None:
                swap = (swap[0], swap[1], _memory_event(reader, memcg, "MEMCG_SWAP_MAX"))
            notes.append("failcnt: memory_events[MEMCG_MAX], [MEMCG_SWAP_MAX] "
                         "(page_counter has track_failcnt)")
        else:
            notes.append("failcnt: page_counter")
        counters.append(("swap", swap))
    else:
        # memsw and kmem exist only with CONFIG_MEMCG_V1 (6.12+).
        counters += [("memory+swap", _counter(reader, memcg, "memsw")),
                     ("kmem", _counter(reader, memcg, "kmem"))]
    for name, c in counters:
        if c is None:
            continue
        lines.append(_line(name, *c, shift))
        values[name] = {"usage_kb": c[0] << shift, "limit_kb": c[1] << shift, "failcnt": c[2]}

    path = cgroup.memcg_path(reader, memcg)  # pr_cont_cgroup_path(memcg->css.cgroup)
    lines.append(f"Memory cgroup stats for {path}:")
    values["memcg"] = path
    # On v1 the OOM prints cgroup v1's memory.stat since "memcg: dump memory.stat
    # during cgroup OOM for v1" (v6.5, hash not checked here), the change that
    # made memcg1_stat_format(); before it, cgroup v2's on both.
    if not dfl and reader.target.symbol("memcg1_stat_format") is not None:
        stats: Stats = memcg1_stat_format(reader, memcg)
        notes.insert(0, "stats: memcg1_stat_format (cgroup v1)")
    else:
        stats = memory_stat_format(reader, memcg)
        notes.insert(0, "stats: memory_stat_format (cgroup v2's memory.stat"
                     + (")" if dfl else ", on cgroup v1)"))
    notes.insert(0, "cgroup v2: swap line" if dfl else "cgroup v1: memory+swap and kmem lines")
    values["stats"] = dict(stats)
    text = "".join(f"{name} {value}\n" for name, value in stats)
    # A seq_buf of PAGE_SIZE (7.x: SEQ_BUF_SIZE, 4 KiB): what overflows is lost.
    text = text[:(1 << reader.info.page_shift) - 1]

    line_by_line, evidence = _prints_line_by_line(reader)
    if line_by_line:
        record = text.splitlines()
        lines += record
        notes.append(f"printed line by line ({evidence})")
    else:
        prefix = _console_prefix(reader)
        log_line_max = CONSOLE_BUF - PREFIX_MAX[prefix.caller]
        stored = vprintk_store_text(text, log_line_max)
        record = stored.split("\n")
        if seconds is None:
            seconds = _now_seconds(reader)
        plen = console_prefix_len(prefix, seconds)
        shown = record_print_text(stored, plen, CONSOLE_BUF)
        lines += shown
        values["console_dropped"] = [line.split(" ")[0] for line in record[len(shown):]]
        values["record_truncated"] = len(stored) < len(text.rstrip("\n"))
        notes.append(f"one record (pr_info \"%s\", {evidence}): kept "
                     f"{len(stored)} of {len(text)} bytes (LOG_LINE_MAX {log_line_max}); "
                     f"console shows {len(shown)} of {len(record)} lines "
                     f"({CONSOLE_BUF}-byte buffer, {plen}-byte prefix {prefix.describe()})")
    return MemcgMeminfo(lines=lines, values=values, formats="; ".join(notes),
                        record_lines=record)


def _memcg_disabled(reader) -> bool:
    """``mem_cgroup_disabled()``: ``!cgroup_subsys_enabled(memory_cgrp_subsys)``."""
    sym = reader.target.symbol("memory_cgrp_subsys_enabled_key")
    if sym is None:
        return False
    try:
        off = reader.offset("struct static_key_true", "key.enabled")
    except LookupError:
        return False
    return reader.read_int(sym[0] + off, 4, signed=True) <= 0


def mem_cgroup_show_protected_memory(reader, memcg_path: Optional[str]) -> List[str]:
    """``mem_cgroup_show_protected_memory()`` (7.x: after the memcg meminfo or
    ``__show_mem()``): ``Memory cgroup min protection %lukB -- low protection
    %lukB`` of the memcg of *memcg_path* (None, a global OOM: the root memcg).
    Empty where this kernel does not print it (no such function, cgroup v1,
    the memory controller disabled)."""
    if reader.target.symbol("mem_cgroup_show_protected_memory") is None:
        return []
    try:
        if _memcg_disabled(reader) or not cgroup._cgroup_on_dfl(reader):
            return []
        memcg = _memcg_of(reader, memcg_path)
        base = memcg + reader.offset(_MEMCG, "memory")
        pc = "struct page_counter"
        low = reader.read_int(base + reader.offset(pc, "children_low_usage"))
        min_ = reader.read_int(base + reader.offset(pc, "children_min_usage"))
    except Fault as e:
        raise TargetError(f"memcg {memcg_path!r} unreadable: {e}") from None
    shift = reader.info.page_shift - 10
    return ["Memory cgroup min protection %dkB -- low protection %dkB"
            % (min_ << shift, low << shift)]
