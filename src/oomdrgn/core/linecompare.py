"""Logged report lines set beside the lines oomdrgn computes now, value by value.

Two lines are the same line when they have the same *shape* (the text with
every number taken out); then each number is compared and named by the label
printed before it (``free:``, ``Node 0 DMA free:``, ``hugepages_total=``,
``anon``), so a difference reads ``free 534 -> 540 (+6)``. Lines are aligned
by shape (a zone missing on one side does not shift the rest).
"""

from __future__ import annotations

import difflib
import re
from typing import List, Optional, Sequence, Tuple

from .record import field, record

__all__ = ["Moved", "LineComparison", "compare_lines", "line_shape", "line_values"]

# A number as printk prints one: decimal, maybe signed, or 0x hex.
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|-?\d+")
# The label before a number: "free:", "hugepages_total=", "anon ".
_LABEL = re.compile(r"([A-Za-z_()?\[\]]+[A-Za-z_()?\]])[:=]? ?$")
# A buddy line's block count ("2*4kB": label "4kB") and its migratetype letters.
_BLOCKS = re.compile(r"\*(\d+[kMG]B)")
_TYPES = re.compile(r" \([A-Z]+\)")
# A yes/no flag and its label: the node line's "all_unreclaimable? no" (%s of
# pgdat->kswapd_failures >= MAX_RECLAIM_RETRIES), which kswapd may flip.
_FLAG = re.compile(r"([A-Za-z_]+\?) (yes|no)\b")


def line_shape(text: str) -> str:
    """*text* with every number and yes/no flag replaced by ``#`` (a buddy
    line's migratetype letters left out)."""
    return _NUMBER.sub("#", _FLAG.sub(r"\1 #", _TYPES.sub("", text)))


def line_values(text: str) -> List[Tuple[str, int]]:
    """Every number of *text* with its label (the word before it, or its
    position ``#N`` where none), in order."""
    out: List[Tuple[str, int]] = []
    last = 0
    for n, m in enumerate(_NUMBER.finditer(text)):
        before = text[last:m.start()]
        label = _LABEL.search(before)
        blocks = _BLOCKS.match(text, m.end())
        if blocks:
            name = f"{blocks.group(1)} blocks"
        elif before.endswith("= "):
            name = "total"
        elif before == "*" and n:
            last = m.end()
            continue  # a block size ("4" of "2*4kB"): part of the label
        else:
            name = label.group(1) if label else f"#{n + 1}"
        value = int(m.group(0), 16) if m.group(0).startswith("0x") else int(m.group(0))
        out.append((name, value))
        last = m.end()
    return out


@record(frozen=True)
class Moved:
    label: str
    logged: int
    now: int

    def __str__(self) -> str:
        return f"{self.label} {self.logged} -> {self.now} ({self.now - self.logged:+d})"


@record
class LineComparison:
    """One logged line (or one computed line missing from the log)."""

    verdict: str  # "same", "moved", "only in the log", "only in memory"
    logged: Optional[str]
    now: Optional[str]
    moved: List[Moved] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.verdict == "same":
            return f"same      {self.logged}"
        if self.verdict == "moved":
            return (f"moved     {self.logged}\n          now: "
                    + ", ".join([str(m) for m in self.moved] + self.notes))
        if self.verdict == "only in the log":
            return f"log only  {self.logged}"
        return f"now only  {self.now}"


def _pair(logged: str, now: str) -> LineComparison:
    if logged == now:
        return LineComparison("same", logged, now)
    moved = [Moved(a[0], a[1], b[1]) for a, b in zip(line_values(logged), line_values(now))
             if a[1] != b[1]]
    types = (_TYPES.findall(logged), _TYPES.findall(now))
    note = [] if types[0] == types[1] else [f"migratetypes {''.join(types[0])} ->{''.join(types[1])}"]
    note += [f"{a[0]} {a[1]} -> {b[1]}" for a, b in zip(_FLAG.findall(logged), _FLAG.findall(now))
             if a[1] != b[1]]
    return LineComparison("moved", logged, now, moved, note)


def compare_lines(logged: Sequence[str], now: Sequence[str]) -> List[LineComparison]:
    """Each logged line beside the computed line of the same shape (see module doc)."""
    a = [line_shape(x) for x in logged]
    b = [line_shape(x) for x in now]
    out: List[LineComparison] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.extend(_pair(logged[i], now[j]) for i, j in zip(range(i1, i2), range(j1, j2)))
            continue
        out.extend(LineComparison("only in the log", logged[i], None) for i in range(i1, i2))
        out.extend(LineComparison("only in memory", None, now[j]) for j in range(j1, j2))
    return out
