"""``mem_cgroup_print_oom_meminfo()`` (and 7.x's ``mem_cgroup_show_protected_memory()``)
rebuilt from memory, beside the lines each real kernel printed: every kernel, both
dump formats, cgroup v2 (``memcg_killed``, ``memcg_panicked``: /job with child
memcgs) and cgroup v1 (``memcg_v1``: the memory controller mounted alone, on the
kernels that still offer it).

The lines are compared whole, from ``memory: usage`` to the line before ``Tasks
state``. The memcg kill moment is also dumped right after the print: there every
line is equal, and a value that differs at ``__oom_kill_process`` has moved since.
At the panic one value may have moved since the print: the ``memory: usage`` of the page counter, when the per-CPU
charge stock is refilled for another memcg after the print (RCU callbacks in a
softirq on the OOM's CPU free objects the OOM's reclaim shrank:
``refill_stock()`` drains, i.e. uncharges, the pages the stock held). See
:func:`_prove_usage_moved`. The cgroup v1 scenario is dumped right after the
print (its ``kmem`` counter moves the same way, often): there nothing may move.
"""

import re
import shutil
import tempfile

import pytest
from drgn.helpers.linux.cgroup import cgroup_path
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.percpu import per_cpu

from oomdrgn.core.elffile import symbol_values
from oomdrgn.core.errors import TargetError
from oomdrgn.core.memcg_meminfo import (mem_cgroup_print_oom_meminfo,
                                        mem_cgroup_show_protected_memory)
from oomdrgn.core.printk_ring import printk_records
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program
from oomdrgn.testing.harness.scenarios import memcg_v1_report_moment

from .oracle import FORMATS
from .showmem_proof import _ran_after, stamped

pytestmark = pytest.mark.vm

_COUNTER = re.compile(r"^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, "
                      r"failcnt (\d+)$")
#: the most pages a per-CPU charge stock holds (MEMCG_CHARGE_BATCH: 32 before
#: v6.1's 64; refill_stock() drains above it)
_STOCK_MAX_PAGES = 64


@pytest.fixture(scope="session")
def memcg_v1(kernel):
    """A memcg OOM in /job of a cgroup v1 memory hierarchy, dumped right after
    mem_cgroup_print_oom_meminfo() returned (kernels with cgroup v1 memcg only)."""
    assert "mem_cgroup_legacy_files" in symbol_values(str(kernel.vmlinux),
                                                     ["mem_cgroup_legacy_files"]), \
        f"{kernel.name} has no cgroup v1 memory controller (CONFIG_MEMCG_V1)"
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-memcg_v1-{kernel.name}-", dir="/tmp")
    try:
        art = memcg_v1_report_moment(kernel.name, workdir, fmt=FORMATS)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)




def _ours(reader, art):
    info = mem_cgroup_print_oom_meminfo(reader, art.memcg)
    return info, info.lines + mem_cgroup_show_protected_memory(reader, art.memcg)


def _stocked_memcgs(prog):
    """The memcgs the per-CPU charge stocks hold pages of: ``memcg_stock``'s
    ``cached``/``nr_pages`` (an array of both in later kernels), and the memcgs of
    the cached ``obj_cgroup`` with bytes."""
    held = set()
    for cpu in for_each_online_cpu(prog):
        stock = per_cpu(prog["memcg_stock"], cpu)
        cached, pages = stock.cached, stock.nr_pages
        pairs = (zip(cached, pages) if cached.type_.kind.name == "ARRAY"
                 else [(cached, pages)])
        held |= {cgroup_path(m.css.cgroup).decode() for m, n in pairs if m and n}
        objcg = getattr(stock, "cached_objcg", None)  # none in memcg_stock on 7.x
        if objcg is not None and objcg and stock.nr_bytes:
            held.add(cgroup_path(objcg.memcg.css.cgroup).decode())
    return held


def _prove_usage_moved(prog, reader, art, printed, ours):
    """``printed`` and ``ours`` differ in the ``memory: usage`` value only: the
    limit and failcnt are the same, the usage fell by at most a stock's worth of
    pages, and a per-CPU charge stock holds pages of a memcg of the OOM's subtree
    at the dump. drain_all_stock() empties the OOM CPU's stock of every memcg of
    the subtree (synchronously) before the OOM is declared, so such a stock was
    refilled since; a refill for another memcg drains the pages of the previous
    one: the uncharge seen here. On cgroup v1 the kernel's own ``memory+swap``
    line, printed after the ``memory`` line, already saw the lower usage. Else a
    task other than the OOM's ran after the line was printed."""
    p, o = _COUNTER.match(printed), _COUNTER.match(ours)
    assert p and o and p.group(1) == o.group(1) == "memory", (printed, ours)
    assert (p.group(3), p.group(4)) == (o.group(3), o.group(4)), (printed, ours)
    fell_kb = int(p.group(2)) - int(o.group(2))
    page_kb = 1 << (reader.info.page_shift - 10)
    assert 0 < fell_kb <= _STOCK_MAX_PAGES * page_kb, (printed, ours)
    held = _stocked_memcgs(prog)
    if any(m == art.memcg or m.startswith(art.memcg + "/") for m in held):
        return
    # Or, as for Mem-Info (showmem_proof): another task ran after the line was
    # printed (its se.exec_start, never ahead of the printk clock, is later), one
    # that could uncharge (reclaim freeing a page of the memcg, an exit).
    when = next((t for t, line in stamped(art.workdir) if line == printed), None)
    ran = [] if when is None else _ran_after(prog, reader.current_task(), when)
    assert ran, (printed, ours, held)


def _check(prog, reader, art):
    info, ours = _ours(reader, art)
    printed = list(art.memcg_lines)
    assert len(ours) == len(printed), (info.formats, printed, ours)
    moved = [i for i, (a, b) in enumerate(zip(printed, ours)) if a != b]
    if moved:
        assert moved == [0], (info.formats, [(printed[i], ours[i]) for i in moved])
        _prove_usage_moved(prog, reader, art, printed[0], ours[0])
        if "memory+swap" in info.values:  # v1: the later line saw the lower usage
            assert info.values["memory"]["usage_kb"] == info.values["memory+swap"]["usage_kb"]
    return info


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", line)


def _check_record(reader, info):
    """The stats as the printk ring holds them: one record cut by the console only
    (the eras of one pr_info), or one record per line."""
    records = printk_records(reader.target)
    i = max(i for i, r in enumerate(records) if r.text.startswith(b"Memory cgroup stats for "))
    shown = info.lines[next(j for j, line in enumerate(info.lines)
                            if line.startswith("Memory cgroup stats for ")) + 1:]
    shown = [line for line in shown if not line.startswith("Memory cgroup min protection ")]
    assert info.record_lines[:len(shown)] == shown
    if "one record" in info.formats:
        assert records[i + 1].text.decode().split("\n") == info.record_lines
        assert len(info.record_lines) > len(shown)  # the console dropped lines
    else:
        texts = [r.text.decode() for r in records[i + 1:i + 1 + len(info.record_lines)]]
        assert texts == info.record_lines


@pytest.mark.parametrize("fmt", FORMATS)
def test_memcg_meminfo_at_the_kill_moment(kernel, memcg_killed, fmt):
    # Dumped twice in the same OOM: right after the memcg lines were printed
    # (every line equal: nothing may differ there), then at __oom_kill_process,
    # where a counter that moved since the print (an uncharge on another CPU, the
    # per-CPU charge stock: seen on 5.10) is proven to have moved by the first dump.
    art = memcg_killed
    at_print = reader_for(open_program(core=str(art.print_vmcores[fmt]),
                                       vmlinux=[str(kernel.vmlinux)]))
    info, ours = _ours(at_print, art)
    assert ours == art.memcg_lines, info.formats
    assert info.values["memcg"] == art.memcg == "/job"
    _check_record(at_print, info)
    at_kill = reader_for(open_program(core=str(art.vmcores[fmt]), vmlinux=[str(kernel.vmlinux)]))
    _, ours = _ours(at_kill, art)
    moved = [(a, b) for a, b in zip(art.memcg_lines, ours) if a != b]
    assert len(ours) == len(art.memcg_lines) and all(
        _shape(a) == _shape(b) for a, b in moved), moved  # the same lines, values moved


@pytest.mark.parametrize("fmt", FORMATS)
def test_memcg_meminfo_at_the_panic(kernel, memcg_panicked, programs, fmt):
    prog, reader = programs(kernel, memcg_panicked, fmt)
    info = _check(prog, reader, memcg_panicked)
    assert "swap" in info.values and "kmem" not in info.values
    _check_record(reader, info)


#: the kernels built with the cgroup v1 memory controller (CONFIG_MEMCG_V1; the
#: others have no mem_cgroup_legacy_files: see test_v1_memcg_is_where_the_kernel_has_it)
V1_KERNELS = ("5.10", "6.1", "6.1-arm64")


def test_v1_memcg_is_where_the_kernel_has_it(kernel):
    has = "mem_cgroup_legacy_files" in symbol_values(str(kernel.vmlinux),
                                                     ["mem_cgroup_legacy_files"])
    assert has == (kernel.name in V1_KERNELS)


@pytest.mark.kernels(*V1_KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_memcg_v1_meminfo(kernel, memcg_v1, programs, fmt):
    """Dumped right after the print: every line equal; or, for a counter the RCU
    callbacks uncharged while the lines went to the console (seen on 6.1: memory
    -4 kB, kmem -8 kB), the printed value lies between the dump at the function's
    entry and the one after it, which differ: it moved within the print."""
    prog, reader = programs(kernel, memcg_v1, fmt)
    info, ours = _ours(reader, memcg_v1)
    if ours != memcg_v1.memcg_lines:
        before = open_program(core=str(memcg_v1.print_vmcores[fmt]),
                              vmlinux=[str(kernel.vmlinux)])
        _, entry = _ours(reader_for(before), memcg_v1)
        _assert_moved_within_the_print(memcg_v1.memcg_lines, entry, ours, info.formats)
    assert {"memory+swap", "kmem"} <= set(info.values) and "swap" not in info.values
    assert mem_cgroup_show_protected_memory(reader, memcg_v1.memcg) == []
    _check_record(reader, info)


def _assert_moved_within_the_print(printed, entry, after, formats):
    number = re.compile(r"-?\d+")
    assert len(printed) == len(entry) == len(after), formats
    for p, e, a in zip(printed, entry, after):
        if p == a:
            continue
        shape = number.sub("#", p)
        assert shape == number.sub("#", e) == number.sub("#", a), (p, e, a)
        for pv, ev, av in zip(*(map(int, number.findall(x)) for x in (p, e, a))):
            if pv != av:
                assert ev != av and min(ev, av) <= pv <= max(ev, av), (p, e, a, formats)


def test_memcg_children_are_in_the_hierarchical_stats(kernel, memcg_panicked, programs):
    """Each child memcg of /job has its own report; /job's hierarchical counters
    hold at least the sum of its children's (rstat or atomics: what is not yet
    folded in is per-CPU, bounded by the flush threshold)."""
    prog, reader = programs(kernel, memcg_panicked, "elf")
    job = mem_cgroup_print_oom_meminfo(reader, "/job").values
    children = ("/job/a", "/job/b", "/job/c", "/job/hog")
    kids = [mem_cgroup_print_oom_meminfo(reader, c).values for c in children]
    assert [k["memcg"] for k in kids] == list(children)
    assert sum(k["memory"]["usage_kb"] for k in kids) <= job["memory"]["usage_kb"]
    anon = sum(k["stats"]["anon"] for k in kids)
    assert 0 < anon <= job["stats"]["anon"]
    # /job/b/deep shares job/b's memcg on cgroup v2 (job/b holds processes).
    with pytest.raises(TargetError, match="no memory controller"):
        mem_cgroup_print_oom_meminfo(reader, "/job/b/deep")


def test_protected_memory_of_a_global_oom(kernel, killed, programs):
    """7.x prints the root memcg's protection after ``__show_mem()`` too (a
    global OOM: ``oc->memcg`` is NULL); the other kernels print no such line."""
    prog, reader = programs(kernel, killed, "elf")
    lines = killed.console_lines
    start = next(i for i, line in enumerate(lines) if " invoked oom-killer: " in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Tasks state"))
    printed = [line for line in lines[start:end]
               if line.startswith("Memory cgroup min protection ")]
    assert mem_cgroup_show_protected_memory(reader, None) == printed
