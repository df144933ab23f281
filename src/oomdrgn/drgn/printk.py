"""The target's kernel log as text lines, the way the console prints them (drgn).

Each record of the printk ring buffer becomes one line per line of its text,
every line with the record's timestamp, as ``printk.c``'s
``record_print_text()`` writes them to a console::

    [    8.406107] oom-kill:constraint=CONSTRAINT_NONE,...

:mod:`oomdrgn.core.logparse` reads these lines like any other log.
"""

from typing import List

from drgn import Program
from drgn.helpers.linux.printk import PrintkRecord, get_printk_records

__all__ = ["kernel_log_lines", "format_record"]


def _caller(record: PrintkRecord) -> str:
    # printk.c print_caller(): "[%6s]" of "T<tid>" or "C<cpu>".
    if record.caller_tid is not None:
        return "[%6s]" % f"T{record.caller_tid}"
    if record.caller_cpu is not None:
        return "[%6s]" % f"C{record.caller_cpu}"
    return ""


def format_record(record: PrintkRecord, timestamps: bool = True,
                  caller: bool = False) -> List[str]:
    """The console lines of one record.

    :param timestamps: prefix ``[%5lu.%06lu]`` (``print_time()``)
    :param caller: also ``[%6s]`` with the caller id, as a kernel built with
        ``CONFIG_PRINTK_CALLER`` prints it (the id is saved since v5.1, always
        since v5.10, whatever the config)
    """
    prefix = ""
    if timestamps:
        ns = record.timestamp
        prefix = "[%5d.%06d]" % (ns // 1_000_000_000, ns % 1_000_000_000 // 1000)
    if caller:
        prefix += _caller(record)
    if prefix:
        prefix += " "
    text = record.text.decode("utf-8", "surrogateescape")
    return [prefix + line for line in text.split("\n")]


def kernel_log_lines(prog: Program, timestamps: bool = True,
                     caller: bool = False) -> List[str]:
    """Every line of *prog*'s printk buffer, oldest first, without newlines.

    :param prog: a Linux kernel ``drgn.Program`` (vmcore, live or QEMU)
    """
    lines: List[str] = []
    for record in get_printk_records(prog):
        lines.extend(format_record(record, timestamps, caller))
    return lines
