"""Stack frames with no debug info at all (x86-64 ORC, arm64 frame records,
read from the dump: :mod:`oomdrgn.core.stack_trace`), on every kernel, both
dump formats, the ``killed`` and ``panic`` moments.

The OOM task's frames equal the DWARF port's (drgn's unwinder: ORC from the
vmlinux file on x86-64, CFI on arm64) and, from ``out_of_memory()`` to the
entry from user space, the frames the kernel printed (its own unwinder, in the
console). Where drgn cannot or does not unwind, what the kernel's code says
is checked instead:

- QEMU's arm64 kdump files (64 KiB blocks, read by oomdrgn itself) give drgn
  no registers: the DWARF port has no frames for a running task there; the
  ELF dump of the same moment has, and those are the expected ones.
- 6.1-arm64, a task stopped at ``__oom_kill_process+0x0``: the vmlinux's CFI
  for it starts 8 bytes in (after ftrace's patchable NOPs), so drgn follows
  ``x29`` and leaves out ``oom_kill_process`` (still in ``lr``); the extra
  frame is proven by the ``bl __oom_kill_process`` right before its return
  address.
- Sleeping tasks: the same return addresses; the names and sizes are
  kallsyms' (what the kernel's ``%pB`` prints), which may differ from the
  vmlinux ELF symbol table drgn names frames with: an alias
  (``__do_sys_pause``/``__x64_sys_pause``), an inner label
  (``entry_SYSCALL_64_after_hwframe`` in ``entry_SYSCALL_64``), a mapping
  symbol kallsyms leaves out (arm64 ``$x``, which ends the DWARF port's size).
"""

import re

import pytest
from drgn import Object

from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.btfport import BtfPort
from oomdrgn.drgn.program import open_program

from .oracle import FORMATS, run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

_FRAME = re.compile(r"^ (\S+)\+0x[0-9a-f]+/0x[0-9a-f]+$")


def _open(core, vmlinux=None):
    prog = open_program(core=str(core), vmlinux=[str(vmlinux)] if vmlinux else [])
    return reader_for(prog)


def _nodebug(core):
    reader = _open(core)
    assert isinstance(reader.target, BtfPort)  # no debug info reachable
    return reader


def _line(frame):
    name, offset, size, _ = frame
    return " %s+%#x/%#x" % (name, offset, size)


def _report_start(art):
    """The ``invoked oom-killer`` line of the report the dump was taken in: the
    last one before the first kill line (the guest went on after the dump and
    may have printed another OOM), or before ``Kernel panic``."""
    lines = art.console_lines
    ends = ("Kernel panic",) if art.kill_line is None else (art.kill_line,)
    end = next(i for i, text in enumerate(lines) if text.startswith(ends))
    return max(i for i in range(end) if " invoked oom-killer: " in lines[i])


def _oom_pid(art):
    """The PID of the ``CPU: ... PID: N Comm:`` line of the dump's report."""
    lines = art.console_lines
    start = _report_start(art)
    for text in lines[start:]:
        m = re.search(r"^CPU: \d+ (?:UID: \d+ )?PID: (\d+) Comm: ", text)
        if m:
            return int(m.group(1))
    raise AssertionError("no CPU: line after the OOM")


def _printed_trace(art, panic):
    """The frames of the trace the kernel printed for the dump's OOM (at the
    panic for ``panic``), without the unreliable ``? `` ones."""
    lines = art.console_lines
    start = _report_start(art)
    if panic:
        start = next(i for i in range(start, len(lines))
                     if lines[i].startswith("Kernel panic"))
    begin = next(i for i in range(start, len(lines)) if lines[i] in ("Call Trace:", "Call trace:"))
    out = []
    for text in lines[begin + 1:]:
        if text in (" <TASK>",) or text.startswith(" ? "):
            continue
        m = _FRAME.match(text)
        if m is None:
            break
        out.append(text)
    assert out, "no frames printed"
    return out


def _bl_target(reader, at):
    """The target of the arm64 ``bl`` at *at*, or None."""
    insn = int.from_bytes(reader.target.read(at, 4), "little")
    if insn >> 26 != 0b100101:
        return None
    imm = insn & 0x3FFFFFF
    if imm >> 25:
        imm -= 1 << 26
    return (at + 4 * imm) & (2**64 - 1)


def _expected(kernel, ours, dwarf, reader):
    """DWARF's frames, and the lr frame drgn misses where CFI does not cover a
    function's first instructions (6.1-arm64), proven by its ``bl``."""
    if ours == dwarf or len(ours) != len(dwarf) + 1 or kernel.arch != "arm64":
        return dwarf
    if ours[:1] + ours[2:] != dwarf or ours[0][1] != 0:
        return dwarf
    ks = reader.target.kallsyms
    caller = ks.address_of(ours[1][0]) + ours[1][1]
    assert _bl_target(reader, caller - 4) == ks.address_of(ours[0][0])
    return ours


def _oom_frames(kernel, art, fmt):
    """(ours, expected) frames of the OOM task of *art* in dump *fmt*."""
    pid = _oom_pid(art)
    ours_reader = _nodebug(art.vmcores[fmt])
    task = ours_reader.find_task(pid)
    ours = ours_reader.target.stack_frames(task)
    dwarf_reader = _open(art.vmcores[fmt], kernel.vmlinux)
    dwarf = dwarf_reader.target.stack_frames(dwarf_reader.find_task(pid))
    if not dwarf and kernel.arch == "arm64" and fmt == "kdump-zlib":
        # drgn has no registers in QEMU's arm64 kdump files: the ELF dump of the moment
        elf = _open(art.vmcores["elf"], kernel.vmlinux)
        dwarf = elf.target.stack_frames(elf.find_task(pid))
    assert dwarf, "the DWARF port gives no frames"
    return ours, _expected(kernel, ours, dwarf, ours_reader)


def _check_printed(ours, art, panic):
    """From the first frame the kernel printed too, ours are the printed ones."""
    printed = _printed_trace(art, panic)
    lines = [_line(f) for f in ours]
    common = next(i for i, text in enumerate(lines) if text in printed)
    assert lines[common:] == printed[printed.index(lines[common]):]
    assert any("out_of_memory" in text for text in lines[common:])


@pytest.mark.parametrize("fmt", FORMATS)
def test_killed_oom_task(kernel, killed, fmt):
    ours, expected = _oom_frames(kernel, killed, fmt)
    assert ours == expected
    assert ours[0][0] == "__oom_kill_process" and ours[0][1] == 0
    _check_printed(ours, killed, panic=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_panic_oom_task(kernel, panic, fmt):
    ours, expected = _oom_frames(kernel, panic, fmt)
    assert ours == expected
    _check_printed(ours, panic, panic=True)


def _report(core, *more):
    return run_oomdrgn("-c", core, *more, "-q", "oom-report").stdout


@pytest.mark.parametrize("moment", ["killed", "panic"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_oom_report_same_bytes(kernel, moment, fmt, request):
    """``oom-report`` with no debug info is byte for byte the DWARF one (the ELF
    dump's where drgn has no registers; but the proven lr frame on 6.1-arm64)."""
    art = request.getfixturevalue(moment)
    ours = _report(art.vmcores[fmt])
    dwarf = _report(art.vmcores[fmt], "-s", kernel.vmlinux)
    if kernel.arch == "arm64" and fmt == "kdump-zlib" and "+0x" not in dwarf:
        dwarf = _report(art.vmcores["elf"], "-s", kernel.vmlinux)
    frames, _ = _oom_frames(kernel, art, fmt)
    reader = _open(art.vmcores["elf"], kernel.vmlinux)
    if frames != reader.target.stack_frames(reader.find_task(_oom_pid(art))):
        # the lr frame drgn leaves out (proven in _expected): one line more
        extra = _line(frames[1]) + "\n"
        assert extra in ours
        ours = ours.replace(extra, "", 1)
    assert ours == dwarf


def _sleepers(reader):
    """init, a shell and kthreadd: tasks asleep in the kernel."""
    out = []
    for pid in (1, 2):
        task = reader.find_task(pid)
        if task:
            out.append(task)
    for task in reader.processes():
        if reader.task(task).comm == "sh":
            out.append(task)
            break
    return out


def _dwarf_pcs(reader, task):
    """``(pc, interrupted)`` of drgn's frames of *task* (one per real frame)."""
    prog = reader.target.prog
    trace = prog.stack_trace(Object(prog, "struct task_struct *", task))
    return [(f.pc, f.interrupted) for f in trace if not f.is_inline]


@pytest.mark.parametrize("fmt", FORMATS)
def test_sleeping_tasks(kernel, killed, fmt):
    ours_reader = _nodebug(killed.vmcores[fmt])
    dwarf_reader = _open(killed.vmcores[fmt], kernel.vmlinux)
    prog = dwarf_reader.target.prog
    ks = ours_reader.target.kallsyms
    checked = 0
    for task in _sleepers(dwarf_reader):
        pid = dwarf_reader.task(task).pid
        ours = ours_reader.target.stack_frames(ours_reader.find_task(pid))
        dwarf = dwarf_reader.target.stack_frames(task)
        assert dwarf and len(ours) == len(dwarf), (pid, ours, dwarf)
        for mine, theirs, (pc, interrupted) in zip(ours, dwarf, _dwarf_pcs(dwarf_reader, task)):
            # drgn's return address, named as kallsyms names it (the kernel's %pB)
            name, start, size = ks.name_at(pc if interrupted else pc - 1)
            assert mine == (name, pc - start, size, True), (pid, mine, theirs)
            if mine[:2] == theirs[:2] and mine[2] != theirs[2]:
                # drgn's size ends at an ELF symbol kallsyms leaves out ($x)
                end = start + theirs[2]
                assert prog.symbol(end).address == end and ks.name_at(end)[1] != end
        checked += 1
    assert checked >= 3
