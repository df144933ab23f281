"""The head of the OOM report rebuilt from memory, against what the kernel printed.

For the ``killed`` (dump at ``__oom_kill_process``), ``panic`` and
``memcg_killed`` moments of every kernel: the ``invoked oom-killer`` line (comm
and oom_score_adj of the OOM's current, gfp_mask and order from its ``struct
oom_control`` where drgn can read it, else from the kernel's line), and
``dump_stack()``'s header (``CPU:``, ``Hardware name:``, ``Call Trace:``,
``<TASK>``) equal the kernel's lines byte for byte. The kernel's lines are the
dump's own printk records (the report of this moment is the last one there),
each also found on the console. The frames are the task's stack at the dump, so
only the callers of ``out_of_memory()`` (the same return addresses) are compared.

At the panic moment the OOM task may have run on another CPU when
``dump_header()`` printed (7.x, ``PREEMPT(lazy)``, seen in CI): ``panic()``
prints its own header with the CPU it runs on (preemption off from its start),
which must be the dump's ``task_cpu``; the OOM's header must then be ours at the
CPU it printed, every other byte equal.
"""

import pytest

from oomdrgn.core.dump_stack import dump_stack, dump_stack_frames, dump_stack_header, task_cpu
from oomdrgn.core.gfp import (compaction_warning, format_gfp, gfp_zone, gfpflag_names,
                              invoked_line, parse_gfp)
from oomdrgn.core.logparse import parse_lines
from oomdrgn.core.printk_ring import console_lines, printk_records
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program

from .oracle import after_panic, header_cpu

pytestmark = pytest.mark.vm

SCENARIOS = ("killed", "panic", "memcg_killed")


class Moment:
    """One dump: its reader, the OOM's current and the kernel's report head."""

    def __init__(self, kernel, scenario, art):
        self.art, self.scenario = art, scenario
        self.prog = open_program(core=str(art.vmcores["elf"]), vmlinux=[str(kernel.vmlinux)])
        self.reader = reader_for(self.prog)
        self.ring = console_lines(printk_records(self.reader.target), timestamps=False)
        self.first = max(i for i, line in enumerate(self.ring) if " invoked oom-killer: " in line)
        self.task = self.reader.current_task()
        self.rec = self.reader.task(self.task)
        self.cpu = task_cpu(self.reader, self.task)
        (self.invoked,) = [r.invoked for r in parse_lines(self.ring[self.first:self.first + 1])]
        #: what panic() printed after its first line, its dump_stack() (None: no panic)
        self.after_panic = after_panic(self.ring)

    def after_invoked(self):
        """The ring's lines after the first line (and its COMPACTION warning)."""
        warning = compaction_warning(self.reader, self.invoked.order)
        start = self.first + 1
        if warning is not None:
            assert self.ring[start] == warning.rstrip("\n")
            start += 1
        return self.ring[start:]


@pytest.fixture(params=SCENARIOS)
def moment(request, kernel, open_dumps):
    key = (kernel.name, request.param)
    if key not in open_dumps:
        for other in [k for k in open_dumps if k[0] != kernel.name]:
            del open_dumps[other]  # one kernel's dumps open at a time
        open_dumps[key] = Moment(kernel, request.param, request.getfixturevalue(request.param))
    return open_dumps[key]


def test_invoked_line_from_memory(moment):
    r = moment.reader
    printed = moment.ring[moment.first]
    assert printed in moment.art.console_lines
    assert moment.invoked.comm == moment.rec.comm  # the report is current's
    oc = r.target.oom_control(moment.task)
    if oc is not None:
        gfp_mask, order = oc["gfp_mask"], oc["order"]
    else:  # the frame's oc was optimized out: the kernel's own numbers
        gfp_mask, order = moment.invoked.gfp_mask, moment.invoked.order
    line = invoked_line(r, moment.rec.comm, gfp_mask, order, moment.rec.oom_score_adj)
    assert line == printed + "\n"
    # COMPACTION is disabled!!!: not on these kernels (CONFIG_COMPACTION=y);
    # after_invoked() checks the ring holds it where the rule says so.
    assert moment.after_invoked()[0].startswith("CPU: ")


def test_oom_control_hook_where_drgn_reads_it(moment):
    """x86-64: ``oc`` is readable on every kernel and moment (``oom_kill_process``,
    ``out_of_memory``, ``check_panic_on_oom``). arm64: at ``__oom_kill_process``
    of 6.12 in ``out_of_memory``; in 6.12's panic and every 6.1 moment drgn finds
    it optimized out (the hook says None, the test then uses the printed numbers)."""
    oc = moment.reader.target.oom_control(moment.task)
    print(f"\noom_control: {moment.art.kernel}: {'in ' + oc['function'] if oc else 'None'}")
    if moment.reader.target.arch == "x86_64":
        assert oc is not None
    if oc is not None:
        assert (oc["gfp_mask"], oc["order"]) == (moment.invoked.gfp_mask, moment.invoked.order)
        assert (oc["memcg"] != 0) == (moment.art.memcg is not None)
        assert oc["nodemask"] == 0  # no mempolicy in these scenarios


def test_dump_stack_header_equals_the_kernels(moment):
    header = dump_stack_header(moment.reader, moment.task, moment.cpu)
    printed = moment.after_invoked()[:len(header)]
    assert (moment.after_panic is not None) == (moment.scenario == "panic")
    if moment.after_panic is not None:  # panic()'s own header: the CPU at the panic
        assert header == moment.after_panic[:len(header)]
    cpu = header_cpu(printed[0])
    if cpu != moment.cpu:
        # The task moved between dump_header() and panic(): proven above (panic()
        # printed the dump's CPU); a kill moment's dump is the report's own CPU.
        assert moment.after_panic is not None, (cpu, moment.cpu)
        header = dump_stack_header(moment.reader, moment.task, cpu)
        print(f"\n{moment.art.kernel}: the OOM task printed on CPU {cpu}, panicked on {moment.cpu}")
    assert header == printed
    for line in header:
        assert line in moment.art.console_lines
    assert header[-1] in ("Call Trace:", " <TASK>", "Call trace:")


def _frame(line):
    """``func+0x1/0x2`` of a frame line (arm64 v6.12+ may add `` (C)``)."""
    return line.strip().split(" ")[0]


def _functions(frames):
    """The functions of ``func.cold+0x1/0x2`` frames (a .cold part is its function's)."""
    return [f.split("+")[0].split(".cold")[0] for f in frames]


def test_frames_are_plausible(moment):
    r = moment.reader
    frames = dump_stack_frames(r, moment.task)
    names = [_frame(f).split("+")[0] for f in frames if "+0x" in f]
    assert names and all(r.target.symbol(n) is not None for n in names)
    assert "out_of_memory" in _functions(names)  # or its .cold part (panic() is there)
    ds = dump_stack(r, moment.task)
    assert ds.frames == tuple(frames) and ds.lines()[len(ds.header)].startswith("# oomdrgn: ")
    # The callers of out_of_memory() return to the same addresses as when
    # dump_stack() ran: the kernel's reliable frames below it equal ours.
    printed = []
    for line in moment.after_invoked()[len(ds.header):]:
        if not line.startswith(" ") or "+0x" not in line:
            break
        if not line.startswith(" ? "):
            printed.append(_frame(line))
    ours = [_frame(f) for f in frames if "+0x" in f]
    k = _functions(printed).index("out_of_memory")
    o = _functions(ours).index("out_of_memory")
    assert ours[o + 1:] == printed[k + 1:]


def test_format_gfp_of_every_printed_mask(moment):
    names, from_memory = gfpflag_names(moment.reader.target)
    assert from_memory
    seen = 0
    for report in parse_lines(moment.art.console_lines):
        inv = report.invoked
        if inv is None:
            continue
        assert format_gfp(moment.reader, inv.gfp_mask) == inv.gfp_flags
        assert parse_gfp(inv.gfp_flags, names=names) == inv.gfp_mask
        assert parse_gfp(moment.reader, "%#x(%s)" % (inv.gfp_mask, inv.gfp_flags)) == inv.gfp_mask
        seen += 1
    assert seen >= 1


def test_gfp_zone_with_the_kernels_zones(moment):
    r = moment.reader
    const = r.target.constant
    masks = dict((name, mask) for mask, name in gfpflag_names(r.target)[0])
    normal = const("ZONE_NORMAL")
    assert gfp_zone(r, masks["GFP_KERNEL"]) == normal
    assert gfp_zone(r, masks["GFP_HIGHUSER_MOVABLE"]) == const("ZONE_MOVABLE")
    for flag, zone in (("GFP_DMA32", "ZONE_DMA32"), ("GFP_DMA", "ZONE_DMA")):
        expected = const(zone)
        assert gfp_zone(r, masks[flag]) == (normal if expected is None else expected)
