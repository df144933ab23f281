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
:func:`memcg_proof.prove_usage_moved`. The cgroup v1 scenario is dumped right after the
print (its ``kmem`` counter moves the same way, often): there nothing may move.
"""

import re
import shutil
import tempfile

import pytest

from oomdrgn.core.elffile import symbol_values
from oomdrgn.core.errors import TargetError
from oomdrgn.core.memcg_meminfo import (mem_cgroup_print_oom_meminfo,
                                        mem_cgroup_show_protected_memory)
from oomdrgn.core.printk_ring import printk_records
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program
from oomdrgn.testing.harness.scenarios import memcg_v1_report_moment

from .oracle import FORMATS
from .memcg_proof import assert_same_or_usage_moved

pytestmark = pytest.mark.vm

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


def _check(prog, reader, art):
    info, ours = _ours(reader, art)
    printed = list(art.memcg_lines)
    assert len(ours) == len(printed), (info.formats, printed, ours)
    if assert_same_or_usage_moved(prog, reader, art, printed, ours, info.formats):
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
    prog = open_program(core=str(art.print_vmcores[fmt]), vmlinux=[str(kernel.vmlinux)])
    at_print = reader_for(prog)
    info = _check(prog, at_print, art)  # equal, or the usage fell while the lines printed
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
