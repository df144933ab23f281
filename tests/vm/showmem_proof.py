"""Proof that a counter of ``__show_mem()`` moved between the kernel's print and the
dump: it moved in the same direction in every line that prints it (global pages,
node kB, the zones' kB summed; each level folds its per-CPU deltas at its own
threshold, so the amounts may differ), or a zone's free lists moved (its buddy
line, adding up to its own total), or a zone's watermark boost moved (its min,
low and high by as much; lowered only by kswapd, which must be among the tasks
that ran), while another task ran after ``Mem-Info:``
was printed (its ``se.exec_start`` is later), or an idle CPU stopped its tick
after it (``quiet_vmstat()`` folds that CPU's deltas), or while the kernel printed
(its own global line disagrees with its node or zone lines, the dump's agree);
or, where the scenario also dumped at ``__show_mem()``'s call, every printed
value lies between that dump's and the later one's. Anything else differing
fails."""

import re
from typing import Dict, List, Optional, Tuple

from oomdrgn.core import show_mem as sm
from oomdrgn.core import show_mem_formats as F
from oomdrgn.core.show_mem import mem_formats

_STAMP = re.compile(r"^\[ *(\d+)\.(\d+)\] (.*)$")
#: global counters printed once, after the zones (show_mem(), __show_mem()):
#: NR_FILE_PAGES, NR_SWAPCACHE
_ONCE = re.compile(r"^(\d+) (total pagecache pages|pages in swap cache)$")
_ONCE_LABELS = {"total pagecache pages": "file_pages", "pages in swap cache": "swapcache"}


def stamped(workdir) -> List[Tuple[float, str]]:
    """The console's lines with their printk timestamps (seconds)."""
    out = []
    for raw in (workdir / "console.log").read_text(errors="replace").splitlines():
        m = _STAMP.match(raw.replace("\r", ""))
        if m:
            out.append((int(m[1]) + int(m[2]) / 10 ** len(m[2]), m[3]))
    return out


def _fields(fmt: str, text: str) -> Optional[Dict[str, str]]:
    """*text* parsed with C format *fmt*: label -> printed value."""
    parts, pos = [], 0
    for m in F.CONV.finditer(fmt):
        parts.append(re.escape(fmt[pos:m.start()]))
        parts.append("(.*?)" if m.group().endswith("s") else r"(-?\d+)")
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    m = re.fullmatch("".join(parts), text, re.S)
    return dict(zip(sm.format_labels(fmt), m.groups())) if m else None


def _blocks(reader, lines: List[str]) -> Tuple[Dict[str, Dict[str, str]], set]:
    """The global, node and zone lines parsed by label (``zone <node>/<name>``,
    ``node <id>``), and the indexes of the lines they span."""
    fmts = mem_formats(reader)
    n = fmts.global_.count("\n")
    out = {"global": _fields(fmts.global_, "\n".join(lines[1:1 + n]) + "\n")}
    spans = set(range(1, 1 + n))
    for i, line in enumerate(lines[1 + n:], 1 + n):
        node = _fields(fmts.node, line + "\n")
        if node is not None:
            out[f"node {node['Node']}"] = node
            spans.add(i)
            continue
        zone = _fields(fmts.zone, re.sub(r"^Node \d+ ", "", line) + "\n")
        if zone is not None:
            out[f"zone {line.split(' free:')[0]}"] = zone
            spans.add(i)
            continue
        once = _ONCE.match(line)
        if once is not None and out["global"] is not None:
            out["global"][_ONCE_LABELS[once[2]]] = once[1]
            spans.add(i)
    return out, spans


#: a counter printed at several levels: (global label, node label, zone label)
_LEVELS = [("active_anon",) * 3, ("inactive_anon",) * 3, ("active_file",) * 3,
           ("inactive_file",) * 3, ("unevictable",) * 3, ("free", None, "free"),
           ("free_pcp", None, "free_pcp"), ("free_cma", None, "free_cma"), ("mapped", "mapped", None),
           ("shmem", "shmem", None), ("dirty", "dirty", None),
           ("writeback", "writeback", None), ("pagetables", "pagetables", None),
           ("file_pages", None, None), ("swapcache", None, None),
           # Pages a reclaimer on another CPU had isolated at the print and put
           # back since (seen on 7.x: isolated_anon 342 -> 117, active_anon +207).
           ("isolated_anon", "isolated(anon)", None), ("isolated_file", "isolated(file)", None),
           # Slab, global pages only: kswapd's shrink_slab() frees reclaimable
           # objects (dentries, inodes) as it reclaims after the print (kswapd ran
           # on 7.x's one-CPU swap panic: its boost lowered, anon pages moved).
           ("slab_reclaimable", None, None), ("slab_unreclaimable", None, None),
           # kB, in no global line: a node counter since 991e7673859e ("mm: memcontrol:
           # account kernel stack per node") (in v5.9), a zone one before (seen on
           # 6.1: -4 kB with pagetables -5, a task that exited on the other CPU).
           ("kernel_stack", "kernel_stack", "kernel_stack")]


def _mid_print(p: Dict[str, Dict[str, str]], d: Dict[str, Dict[str, str]], kb: int,
               glabel: str, nlabel: Optional[str], zlabel: Optional[str]) -> bool:
    """*glabel* moved while ``Mem-Info:`` was being printed: in memory the global
    count is the sum of the nodes' (a node counter) or the zones' (a zone counter):
    ``refresh_cpu_vm_stats()`` adds a fold to the node or zone first and to the
    global at its end (``fold_diff()``), ``zone_page_state_add()`` to both at
    once; the dump's lines agree so, yet the kernel's own global line disagrees
    with its node or zone lines printed after it."""
    if glabel not in p["global"]:
        return False
    for prefix, label in (("node ", nlabel), ("zone ", zlabel)):
        keys = [k for k in p if k.startswith(prefix) and label is not None and label in p[k]]
        if not keys:
            continue
        printed_sum = sum(int(p[k][label]) for k in keys)
        dumped_sum = sum(int(d[k][label]) for k in keys)
        if (int(p["global"][glabel]) * kb != printed_sum
                and int(d["global"][glabel]) * kb == dumped_sum):
            return True
    return False


_BUDDY = re.compile(r"^(Node \d+ \w+): (.*) = (\d+)kB$")
_BLOCK = re.compile(r"(\d+)\*(\d+)kB")


def _buddy_move(printed: str, dumped: str) -> Optional[str]:
    """A zone's buddy line (``show_free_areas()``: free blocks per order, their
    total) that moved: pages freed to or taken from the buddy lists; each line
    adds up to its own total. None if *printed* and *dumped* are not that."""
    p, d = _BUDDY.match(printed), _BUDDY.match(dumped)
    if not p or not d or p[1] != d[1]:
        return None
    for m in (p, d):
        blocks = _BLOCK.findall(m[2])
        if sum(int(n) * int(kb) for n, kb in blocks) != int(m[3]):
            return None
    if [kb for _, kb in _BLOCK.findall(p[2])] != [kb for _, kb in _BLOCK.findall(d[2])]:
        return None
    return f"{p[1]} free lists {int(d[3]) - int(p[3]):+d} kB"


#: the zone line's watermarks: min, low and high print ``wmark_pages()``, which
#: adds ``watermark_boost`` to each since 1c30844d2dfe ("mm: reclaim small amounts
#: of memory when an external fragmentation event occurs") (in v5.0)
_WMARKS = ("boost", "min", "low", "high")
#: the move's text when the boost fell: only kswapd lowers it (balance_pgdat()
#: after a boosted reclaim), so kswapd must have run after the print
_KSWAPD_LOWERED = "lowered by kswapd"


def _boost_move(key: str, p: Dict[str, str], d: Dict[str, str]) -> Optional[str]:
    """A zone's ``watermark_boost`` that moved (raised by ``boost_watermark()``
    on a fallback steal, lowered by kswapd), its min, low and high moving by
    exactly as much; None if it did not move; raises if the watermarks did
    not follow it."""
    if not key.startswith("zone ") or "boost" not in p or p["boost"] == d["boost"]:
        return None
    delta = int(d["boost"]) - int(p["boost"])
    follow = {w: int(d[w]) - int(p[w]) for w in _WMARKS[1:]}
    assert all(v == delta for v in follow.values()), \
        f"{key} boost {delta:+d} kB but the watermarks moved {follow}"
    return f"{key} boost {delta:+d} kB, min, low and high with it" + \
        (f", {_KSWAPD_LOWERED}" if delta < 0 else "")


def _consistent_moves(reader, printed: List[str], dumped: List[str]) -> Tuple[List[str], bool]:
    """The counters that moved in the same direction in every line that prints
    them (global pages, node kB, the zones' kB summed), the zones' buddy lines
    that moved (each adding up to its own total), and whether every move is
    proven by the kernel's own lines (:func:`_mid_print`); raises if any other
    value differs."""
    kb = sm.vmstat.page_kb(reader)
    (p, spans), (d, _) = _blocks(reader, printed), _blocks(reader, dumped)
    assert p.keys() == d.keys()
    other = [(a, b) for i, (a, b) in enumerate(zip(printed, dumped)) if a != b and i not in spans]
    buddy = [_buddy_move(a, b) for a, b in other]
    other = [pair for pair, move in zip(other, buddy) if move is None]
    assert not other, f"lines other than the counters' differ: {other}"
    moved: List[str] = [m for m in buddy if m is not None]
    explained = set()
    others_moved = bool(moved)  # pages moved on the lists: an actor must be shown
    for glabel, nlabel, zlabel in _LEVELS:
        levels = {}  # pages in the global line, kB in the node and zone lines
        if glabel in p["global"]:
            levels["global"] = int(d["global"][glabel]) - int(p["global"][glabel])
        for key in p:
            if key.startswith("node ") and nlabel in p[key]:
                levels[key] = int(d[key][nlabel]) - int(p[key][nlabel])
        zones = [k for k in p if k.startswith("zone ") and zlabel in p[k]]
        if zones:
            levels["zones"] = sum(int(d[k][zlabel]) - int(p[k][zlabel]) for k in zones)
        # Each level folds its own per-CPU deltas (vm_stat_diff, vm_node_stat_diff)
        # when they pass the zone's stat_threshold: one page added may show as +1
        # in the node and global lines and +10 in the zone's. The levels may then
        # move by different amounts, never in opposite directions.
        signs = {v > 0 for v in levels.values() if v}
        assert len(signs) <= 1, (f"{glabel}: moved in opposite directions {levels}\n"
                                 + "\n".join(f"K: {a}\nO: {b}" for a, b in
                                             zip(printed, dumped) if a != b))
        if signs:
            moved.append(f"{glabel} {levels}")
            others_moved |= not _mid_print(p, d, kb, glabel, nlabel, zlabel)
            explained.update({("global", glabel)} | {(k, nlabel) for k in p if k[:5] == "node "}
                             | {(k, zlabel) for k in p if k[:5] == "zone "})
    for key in p:
        boost = _boost_move(key, p[key], d[key])
        if boost is not None:
            moved.append(boost)
            others_moved = True
            explained.update((key, label) for label in _WMARKS)
    for key in p:
        for label, value in p[key].items():
            if (key, label) not in explained:
                assert d[key][label] == value, f"{key} {label}: printed {value}, " \
                                               f"dump {d[key][label]}, not a consistent move"
    return moved, not others_moved


def _ran_after(prog, oom_task: int, when: float) -> List[str]:
    """Tasks other than the OOM task whose ``se.exec_start`` (rq_clock_task,
    never ahead of the printk clock) is later than *when*: they ran after it."""
    from drgn.helpers.linux.pid import for_each_task
    ns = int(when * 1e9)
    return [f"{t.comm.string_().decode()}[{t.pid.value_()}]" for t in for_each_task(prog)
            if t.value_() != oom_task and t.se.exec_start.value_() > ns]


def _x86_clock_offset(prog, tick: int) -> Optional[Tuple[int, int]]:
    """x86 with an unstable sched_clock (QEMU's TCG): ``local_clock()``, the printk
    clock, is the CPU's last tick's ``ktime_get_ns()`` plus ``__gtod_offset``
    plus the TSC time since, held within one tick of it (kernel/sched/clock.c,
    ``sched_clock_local()``): CLOCK_MONOTONIC minus the printk clock is
    ``-__gtod_offset``, give or take a tick. None where the clock is stable."""
    try:
        if prog["__sched_clock_stable"].key.enabled.counter.value_():
            return None
        return -prog["__gtod_offset"].value_(), tick
    except (KeyError, AttributeError):
        return None


def _sched_clock_offset(prog, tick: int = 0) -> Optional[Tuple[int, int]]:
    """CLOCK_MONOTONIC minus the printk clock and its uncertainty (ns): arm64's
    generic ``sched_clock()`` (``cd``), both taken at the timekeeper's last cycle
    count of the same counter (exact); x86: :func:`_x86_clock_offset`."""
    try:
        cd = prog["cd"]
    except KeyError:
        return _x86_clock_offset(prog, tick)
    rd = cd.read_data[cd.seq.seqcount.sequence.value_() & 1]  # as sched_clock() picks
    tkr = prog["tk_core"].timekeeper.tkr_mono
    cyc = tkr.cycle_last.value_()
    mono = tkr.base.value_() + (tkr.xtime_nsec.value_() >> tkr.shift.value_())
    sched = rd.epoch_ns.value_() + ((((cyc - rd.epoch_cyc.value_()) & rd.sched_clock_mask.value_())
                                     * rd.mult.value_()) >> rd.shift.value_())
    return mono - sched, 0


def _tick_stopped_after(prog, when: float) -> List[str]:
    """The CPUs that stopped their tick after *when* (printk seconds): stopping
    it calls ``quiet_vmstat()``, which folds the CPU's vmstat deltas
    (tick_nohz_stop_tick()). ``ts->last_tick`` is the expiry of the tick that
    was due then, at most one tick later than the stop."""
    from drgn.helpers.linux.cpumask import for_each_possible_cpu
    from drgn.helpers.linux.percpu import per_cpu
    try:
        tick = prog["tick_nsec"].value_()
    except KeyError:  # gone from ntp.c in v6.14; HZ is 100 at least
        tick = 10_000_000
    found = _sched_clock_offset(prog, tick)
    if found is None:
        return []
    offset, slack = found
    out = []
    for cpu in for_each_possible_cpu(prog):
        # The earliest the stop can have been, on the printk clock.
        stop = per_cpu(prog["tick_cpu_sched"], cpu).last_tick.value_() - offset - tick - slack
        if stop > when * 1e9:
            out.append(f"cpu{cpu} stopped its tick after {stop / 1e9:.6f}")
    return out


def _between(reader, printed: List[str], before: List[str], got: List[str]) -> bool:
    """Every value *printed* lies between the one counted at ``__show_mem()``'s
    call (*before*) and the one in the dump (*got*), bounds included; a line
    the counters are not in equals one of the two."""
    if not len(before) == len(printed) == len(got):
        return False
    (p, spans), (b, _), (d, _) = (_blocks(reader, lines) for lines in (printed, before, got))
    if not p.keys() == b.keys() == d.keys():
        return False
    for i, line in enumerate(printed):
        if i not in spans and line not in (before[i], got[i]):
            return False
    for key, values in p.items():
        if values is None or b[key] is None or d[key] is None:
            return False  # a block that does not parse: no proof here
        for label, value in values.items():
            if label not in b[key] or label not in d[key]:
                return False
            if b[key][label] == value or d[key][label] == value:
                continue
            lo, hi = sorted((int(b[key][label]), int(d[key][label])))
            if not lo <= int(value) <= hi:
                return False
    return True


def assert_same_or_moved(prog, reader, art, printed: List[str], got: List[str],
                         before: Optional[List[str]] = None) -> None:
    """*got* is *printed*, or differs only in counters that moved in the same
    direction in the global, node and zone lines (a per-CPU delta folded in, a
    page added) while another task ran after ``Mem-Info:`` was printed (its
    ``se.exec_start`` is later) or an idle CPU stopped its tick after it, or
    only in counters that the kernel's own lines show moved while they were
    printed, or (*before*: the lines counted from a dump at ``__show_mem()``'s
    call) every printed value lies between that dump's and *got*'s."""
    if got == printed:
        return
    assert len(got) == len(printed), "\n".join(got)
    if before is not None and (before == printed or _between(reader, printed, before, got)):
        return  # what memory held at the call, or counted between the two dumps
    moved, proven_by_the_print = _consistent_moves(reader, printed, got)
    if proven_by_the_print:  # moved while the kernel printed: its lines disagree
        assert moved
        return
    when = next(t for t, line in stamped(art.workdir) if line == "Mem-Info:")
    ran = _ran_after(prog, reader.current_task(), when) + _tick_stopped_after(prog, when)
    assert moved and ran, (moved, ran)
    if any(m.endswith(_KSWAPD_LOWERED) for m in moved):
        assert any(r.startswith("kswapd") for r in ran), (moved, ran)
