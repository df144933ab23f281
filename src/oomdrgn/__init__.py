"""oomdrgn: the Linux OOM killer's view of a kernel, from a vmcore, live or QEMU.

From any drgn script::

    from oomdrgn import tasks_table, kill_line
    print(tasks_table(prog), end="")
    print(kill_line(prog, 1234), end="")

A ``drgn.Program`` on any target the command line opens, raw RAM images
included::

    prog = open_program(core=["ddr0.bin@0x80000000", "ddr1.bin@0x880000000"],
                        vmlinux=["vmlinux"])
"""

from __future__ import annotations

__all__ = ["open_program", "tasks_table", "task_rows", "kill_line", "kernel_info"]


def open_program(core=None, kcore=False, qemu=None, vmlinux=(), **options):
    """A ``drgn.Program`` as ``oomdrgn -c``/``-k``/``--qemu`` opens it (see
    :func:`oomdrgn.drgn.program.open_program`): ``core`` is a vmcore, or a list
    of raw RAM images ``FILE@PADDR``; ``options``: ``vmcoreinfo``, ``kaslr_offset``."""
    from .drgn.program import open_program as _open
    return _open(core=core, kcore=kcore, qemu=qemu, vmlinux=vmlinux, **options)


def _reader(prog, counter_rule=None):
    from .drgn.backend import reader_for
    return reader_for(prog, counter_rule)


def task_rows(prog, counter_rule=None):
    """``dump_tasks()`` rows (:class:`oomdrgn.core.model.Row`) of a ``drgn.Program``."""
    from .core.oom import dump_tasks
    return dump_tasks(_reader(prog, counter_rule))


def tasks_table(prog, counter_rule=None) -> str:
    """The ``dump_tasks()`` block exactly as the target kernel prints it."""
    from .core.oom import dump_tasks, format_dump_tasks
    reader = _reader(prog, counter_rule)
    return format_dump_tasks(reader, dump_tasks(reader))


def kill_line(prog, pid: int, memcg: bool = False, counter_rule=None) -> str:
    """The ``Out of memory: Killed process`` line if *pid* were the victim."""
    from .core.oom import oom_kill_line
    return oom_kill_line(_reader(prog, counter_rule), pid, memcg)


def kernel_info(prog, counter_rule=None):
    """The detected formats and counter rules (:class:`oomdrgn.core.kernelinfo.KernelInfo`)."""
    return _reader(prog, counter_rule).info
