"""The target's kernel log as console lines, from a drgn program.

A thin face over :mod:`oomdrgn.core.printk_ring`, which reads the printk
buffer over the target port (the same walk serves GDB);
:mod:`oomdrgn.core.logparse` reads the lines like any other log.
"""

from __future__ import annotations

from typing import List

from drgn import Program

from ..core.printk_ring import console_lines, printk_records
from .port import DrgnPort

__all__ = ["kernel_log_lines"]


def kernel_log_lines(prog: Program, timestamps: bool = True,
                     caller: bool = False) -> List[str]:
    """Every line of *prog*'s printk buffer, oldest first, without newlines.

    :param prog: a Linux kernel ``drgn.Program`` (vmcore, live or QEMU)
    :param caller: add the ``[%6s]`` caller id (``CONFIG_PRINTK_CALLER``)
    """
    return console_lines(printk_records(DrgnPort(prog)), timestamps, caller)
