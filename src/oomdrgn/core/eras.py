"""Which era of the OOM report a kernel prints, read from the kernel's own strings.

The printk formats live in the kernel image's ``.rodata`` as ``KERN_SOH level``
followed by the format (``pr_info`` -> ``"\\x016"``, ``pr_err`` -> ``"\\x013"``).
Finding the exact format bytes there names the era without a version string.
"""

from __future__ import annotations

from typing import Optional

from .formats import KILL_FORMATS, TABLE_FORMATS, KillFormat, TableFormat
from .record import record

__all__ = ["Eras", "detect_eras", "table_format", "kill_format"]

_KERN_INFO = b"\x016"
_KERN_ERR = b"\x013"


@record(frozen=True)
class Eras:
    table: TableFormat
    kill: KillFormat
    evidence: str  # how they were chosen, for the user


def table_format(name: str) -> TableFormat:
    for f in TABLE_FORMATS:
        if f.name == name:
            return f
    raise ValueError(f"unknown table format {name!r}")


def kill_format(name: str) -> KillFormat:
    for f in KILL_FORMATS:
        if f.name == name:
            return f
    raise ValueError(f"unknown kill-line format {name!r}")


def _find_table(rodata: bytes) -> Optional[TableFormat]:
    for f in TABLE_FORMATS:
        rows = (f.row,) + f.also
        if _KERN_INFO + f.header.encode() in rodata and \
                any(_KERN_INFO + row.encode() in rodata for row in rows):
            return f
    return None


def _find_kill(rodata: bytes) -> Optional[KillFormat]:
    for f in KILL_FORMATS:
        if _KERN_ERR + f.line.encode() in rodata:
            return f
    return None


def detect_eras(rodata: Optional[bytes], fallback_table: str, fallback_kill: str) -> Eras:
    """Pick the table and kill-line formats whose exact strings *rodata* holds.

    :param rodata: the kernel image's read-only data (``None`` if unavailable)
    :param fallback_table: format name to use when no string is found
    :param fallback_kill: likewise for the kill line
    """
    table = _find_table(rodata) if rodata else None
    kill = _find_kill(rodata) if rodata else None
    notes = []
    if table is None:
        table = table_format(fallback_table)
        notes.append(f"table {table.name} (guessed from the data layout: format string not found)")
    else:
        notes.append(f"table {table.name} (format found in the kernel's .rodata)")
    if kill is None:
        kill = kill_format(fallback_kill)
        notes.append(f"kill line {kill.name} (guessed from the data layout: format string not found)")
    else:
        notes.append(f"kill line {kill.name} (format found in the kernel's .rodata)")
    return Eras(table, kill, "; ".join(notes))
