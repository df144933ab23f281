"""``__show_mem()`` and the unreclaimable slab dump, re-created from the dump,
equal the lines each real kernel printed in its global OOM report.

* ``killed`` (dumped at ``__oom_kill_process``, right after the report): every
  line of ``Mem-Info:`` .. the line before ``Tasks state``/the slab dump, or
  proven to have moved: each printed value lies between the one counted at
  ``__show_mem()``'s call (a dump there too) and the dump's (the other CPU and
  interrupts run on while the report goes out on the console), or moved as
  :func:`tests.vm.showmem_proof.assert_same_or_moved` proves.
* ``panic`` (dumped after the panic): every line equal, or proven to have
  moved: the panic took the other CPUs offline (their per-CPU page lists
  intact: counted over the present CPUs the lines are the printed ones), or a
  counter moved by the same number of pages in the global, node and zone lines
  while another task ran after the report was printed. A zone line's
  ``local_pcp`` may be another CPU's where the task is shown to have moved
  (``panic()`` printed another CPU than its ``CPU: N`` header: 7.x,
  ``PREEMPT(lazy)``).
* ``slab`` (:func:`slab_kill_moment`: unreclaimable slab above the LRU pages):
  ``Unreclaimable slab info:`` and every cache line, on 6.1, 7.x, 6.12-arm64.
* ``numa`` (:func:`numa_kill_moment`: two nodes, the hog confined to node 0 by
  a cpuset): per-node lines and the node filter, on 7.x.

The arguments of ``show_mem()`` come from what the kernel printed: the
``gfp_mask`` of the ``invoked oom-killer`` line (``gfp_zone()`` of it), the
``CPU: N`` of the stack dump, ``nodemask=``/``mems_allowed=`` of the
``oom-kill:`` line (the panic prints none: the OOM task's ``mems_allowed``).
"""

import re
from typing import Callable, List, Optional

import pytest

from oomdrgn.core import show_mem as sm
from oomdrgn.core.dump_stack import task_cpu
from oomdrgn.core.gfp import gfp_zone
from oomdrgn.core.show_mem import show_mem
from oomdrgn.core.slabinfo import dump_unreclaimable_slab, should_dump_unreclaim_slab

from .oracle import FORMATS, panic_cpu
from .showmem_printed import at_call, oom_task_mems_allowed, ours, report
from .showmem_proof import assert_same_or_moved

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

SLAB_KERNELS = ("6.1", "7.x", "6.12-arm64")
NUMA_KERNELS = ("7.x",)
_LOCAL_PCP = re.compile(r" local_pcp:\d+kB")


# Proofs that a panic dump's value moved after it was printed ------------------------


def _present_cpus_lines(reader, count: Callable[[], List[str]]) -> Optional[List[str]]:
    """``count()`` over the present CPUs, if the dump's online mask lost some
    of them (panic(): smp_send_stop() takes the other CPUs offline)."""
    online, present = reader.cpus("online"), reader.cpus("present")
    if set(online) >= set(present):
        return None
    real = reader.cpus
    reader.cpus = lambda which: real("present" if which == "online" else which)
    try:
        return count()
    finally:
        del reader.cpus


def _printing_cpus(lines: List[str], args: dict, at_call) -> List[int]:
    """The CPUs the OOM task is shown on while it printed ``Mem-Info:``: its
    ``CPU: N`` header's, the one at ``__show_mem()``'s call (*at_call*, the
    dump there) and the one ``panic()`` printed (the task moved since, where
    it differs: seen on 7.x, ``PREEMPT(lazy)``)."""
    cpus = {args["cpu"], task_cpu(at_call, at_call.current_task()), panic_cpu(lines)}
    return sorted(c for c in cpus if c is not None)


def _on_cpus(count: Callable[[dict], List[str]], args: dict, cpus: List[int],
             printed: List[str]) -> List[str]:
    """``count(args)``, each zone line taken as counted on another of *cpus*
    where that one's ``local_pcp`` is the printed one: it is the page list of
    the CPU that printed the line (``this_cpu_read()``); nothing else depends
    on the CPU (asserted)."""
    out = count(args)
    for c in cpus:
        if c == args["cpu"]:
            continue
        for i, line in enumerate(count({**args, "cpu": c})):
            assert _LOCAL_PCP.sub("", line) == _LOCAL_PCP.sub("", out[i])
            pcp = _LOCAL_PCP.search(line)
            if (pcp and i < len(printed) and _LOCAL_PCP.search(out[i])[0] != pcp[0]
                    and _LOCAL_PCP.search(printed[i])[0] == pcp[0]):
                print(f"\n{line.split(' free:')[0]}: printed on CPU {c}, not {args['cpu']}")
                out[i] = line
    return out


# Tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_moment_show_mem_is_the_kernels(kernel, killed, programs, fmt):
    prog, reader = programs(kernel, killed, fmt)
    printed, _, args = report(killed.console_lines, reader)
    got = ours(reader, args)
    assert "formats from the kernel's .rodata" in got.formats
    assert got.values["pages_ram"] > 0 and got.values["global"]["free"] >= 0
    # The other CPU runs on while the report is printed (7.x: its vmstat
    # deltas folded in, one page; pages freed by an interrupt): only a proven
    # move may differ, or a value counted between __show_mem()'s call and now.
    before = at_call(killed, kernel.vmlinux, lambda r: ours(r, args).lines)
    assert before is not None
    assert_same_or_moved(prog, reader, killed, printed, got.lines, before)


@pytest.mark.parametrize("fmt", FORMATS)
def test_panic_show_mem_is_the_kernels_or_moved(kernel, panic, programs, fmt):
    prog, reader = programs(kernel, panic, fmt)
    printed, _, args = report(panic.console_lines, reader)
    mems = oom_task_mems_allowed(reader)
    # The dump at dump_header()'s call of __show_mem(): the memory the kernel
    # began to print from, and the CPU the task was on then.
    call_reader = at_call(panic, kernel.vmlinux, lambda r: r)
    cpus = _printing_cpus(panic.console_lines, args, call_reader)
    got = _on_cpus(lambda a: ours(reader, a, mems).lines, args, cpus, printed)
    if got == printed:
        return
    # The other CPUs left the online mask at the panic: counted over the
    # present CPUs (their page lists untouched), the lines must be the printed ones.
    present = _present_cpus_lines(
        reader, lambda: _on_cpus(lambda a: ours(reader, a, mems).lines, args, cpus, printed))
    if present is not None:
        got = present
    before = _on_cpus(lambda a: ours(call_reader, a, mems).lines, args, cpus, printed)
    assert_same_or_moved(prog, reader, panic, printed, got, before)


def test_no_slab_dump_in_the_usual_scenarios(kernel, killed, programs):
    # The kernel printed no slab dump: should_dump_unreclaim_slab() was false.
    _, reader = programs(kernel, killed, "elf")
    _, slab_lines, _ = report(killed.console_lines, reader)
    assert slab_lines == [] and not should_dump_unreclaim_slab(reader)


@pytest.mark.kernels(*SLAB_KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_unreclaimable_slab_is_the_kernels(kernel, request, programs, fmt):
    art = request.getfixturevalue("slab")
    prog, reader = programs(kernel, art, fmt)
    printed, slab_lines, args = report(art.console_lines, reader)
    assert len(slab_lines) > 20 and any(l.startswith("kmalloc") for l in slab_lines)
    assert should_dump_unreclaim_slab(reader)
    assert dump_unreclaimable_slab(reader) == slab_lines
    assert_same_or_moved(prog, reader, art, printed, ours(reader, args).lines,
                         at_call(art, kernel.vmlinux, lambda r: ours(r, args).lines))


@pytest.mark.kernels(*NUMA_KERNELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_numa_node_filter_is_the_kernels(kernel, request, programs, fmt):
    art = request.getfixturevalue("numa")
    prog, reader = programs(kernel, art, fmt)
    printed, _, args = report(art.console_lines, reader)
    assert sm.vmstat.online_nodes(reader) == [0, 1]
    assert args["mems_allowed"] == [0], art.summary_line
    got = ours(reader, args)
    assert_same_or_moved(prog, reader, art, printed, got.lines,
                         at_call(art, kernel.vmlinux, lambda r: ours(r, args).lines))
    assert not any(l.startswith("Node 1 ") for l in printed)
    # Node 1 is there, and would be printed for a task allowed on it.
    both = show_mem(reader, None, [0, 1], gfp_zone(reader.target, args["gfp_mask"]),
                    args["cpu"])
    assert any(l.startswith("Node 1 active_anon:") for l in both.lines)
    assert len(both.lines) > len(printed)
