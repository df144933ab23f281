"""What :func:`oomdrgn.core.kernelinfo.decide` needs, read over the target port.

Layouts are detected newest first, from the types; which counter a function
reads, from its code; the printk formats, from ``.rodata``.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Tuple, Union

from .codescan import calls_target
from .elffile import read_section
from .errors import ReadError
from .kernelinfo import CONSUMERS, Evidence
from .memo import once_per
from .port import Target

__all__ = ["gather_evidence", "rodata", "rodata_holds", "RodataStrings", "page_shift", "has_member", "counter_layout"]


def has_member(target: Target, type_name: str, designator: str) -> bool:
    try:
        target.member(type_name, designator)
        return True
    except LookupError:
        return False


def counter_layout(target: Target) -> str:
    """``percpu`` or ``atomic``: how ``mm->rss_stat`` is stored."""
    # Since Linux kernel commit f1a7941243c1 ("mm: convert mm's rss stats into
    # percpu_counter") (in v6.2), rss_stat is an array of struct percpu_counter.
    kind = target.member("struct mm_struct", "rss_stat").kind
    return "percpu" if kind == "array" else "atomic"


def _rodata_parts(target: Target) -> Optional[List[Tuple[int, int]]]:
    """The address ranges of the kernel image's ``.rodata`` as the file's
    section holds it: without .BTF, which RO_DATA() links in before
    __end_rodata (half of it on 6.1: 4 of 8 MB; types, no strings)."""
    start, end = target.symbol("__start_rodata"), target.symbol("__end_rodata")
    if start is None or end is None or end[0] <= start[0]:
        return None
    btf, stop = target.symbol("__start_BTF"), target.symbol("__stop_BTF")
    if btf is not None and stop is not None and start[0] <= btf[0] < stop[0] <= end[0]:
        return [(start[0], btf[0]), (stop[0], end[0])]
    return [(start[0], end[0])]


@once_per
def rodata(target: Target) -> Optional[bytes]:
    """The kernel image's ``.rodata``: from the vmlinux file, else from memory
    (read once per target); searched for strings only."""
    path = target.vmlinux_path()
    if path:
        try:
            data = read_section(path, ".rodata")
            if data:
                return data
        except (OSError, ValueError):
            pass
    parts = _rodata_parts(target)
    if parts is None:
        return None
    try:
        return b"\0".join(target.read(a, b - a) for a, b in parts)
    except ReadError:
        return None


def rodata_holds(target: Target, needle: bytes) -> bool:
    """``needle in rodata(target)``; searched in place where the port can
    (``holds``: a dump's file mapping, no copy of 4 MB into fresh memory), a
    needle without NUL being in no join of the parts."""
    holds = getattr(target, "holds", None)
    if holds is not None and b"\0" not in needle and not target.vmlinux_path():
        parts = _rodata_parts(target)
        if parts is not None:
            answers = [holds(a, b - a, needle) for a, b in parts]
            if None not in answers:
                return any(answers)
    data = rodata(target)
    return data is not None and needle in data


class RodataStrings:
    """``.rodata`` asked only whether it holds strings (``needle in view``),
    each answer kept in *memo* (a build's layout cache, see
    :meth:`oomdrgn.core.layoutcache.Layout`): with a warm cache the era is
    named without reading .rodata (8 MB on 6.1) or searching it."""

    def __init__(self, target: Target, memo: Dict[str, bool]) -> None:
        self.target, self.memo = target, memo

    def __contains__(self, needle: bytes) -> bool:
        key = needle.hex()
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = rodata_holds(self.target, needle)
        return hit


def _calls_sum(target: Target, func: str) -> Optional[bool]:
    """Whether *func*'s code calls ``__percpu_counter_sum`` (None: unreadable)."""
    sym, callee = target.symbol(func), target.symbol("__percpu_counter_sum")
    if sym is None or callee is None or not sym[1]:
        return None
    try:
        code = target.read(sym[0], sym[1])
    except ReadError:
        return None
    return calls_target(code, sym[0], callee[0], target.arch)


def _vmcoreinfo(target: Target) -> Optional[bytes]:
    text = target.vmcoreinfo()
    if text:
        return text
    # The kernel's own copy: vmcoreinfo_data (a pointer) and vmcoreinfo_size.
    data, size = target.symbol("vmcoreinfo_data"), target.symbol("vmcoreinfo_size")
    if data is None or size is None:
        return None
    try:
        order: Literal["little", "big"] = "little" if target.little_endian else "big"
        address = int.from_bytes(target.read(data[0], 8), order)
        length = int.from_bytes(target.read(size[0], 8), order)
        return target.read(address, min(length, 1 << 16)) if address else None
    except ReadError:
        return None


def page_shift(target: Target) -> int:
    """``PAGE_SHIFT``: the debugger's own constant, else ``PAGESIZE=`` of the
    kernel's VMCOREINFO, else 12 on x86-64 (its only page size)."""
    shift = target.constant("PAGE_SHIFT")
    if shift:
        return shift
    for line in (_vmcoreinfo(target) or b"").split(b"\n"):
        if line.startswith(b"PAGESIZE="):
            return int(line[9:]).bit_length() - 1
    if target.arch == "x86_64":
        return 12
    raise ReadError("cannot find the page size (no PAGE_SHIFT, no VMCOREINFO)")


def _rodata_strings(target: Target) -> Union[bytes, RodataStrings, None]:
    """What the era detection searches: .rodata, or where the port keeps a
    memo of string answers (``rodata_strings``), a :class:`RodataStrings`."""
    memo = getattr(target, "rodata_strings", None)
    return RodataStrings(target, memo) if memo is not None else rodata(target)


def gather_evidence(target: Target) -> Evidence:
    """Read the facts the decisions are made from."""
    layout = counter_layout(target)
    # Since Linux kernel commit af5b0f6a09e4 ("mm: consolidate page table
    # accounting") (in v4.15), mm->pgtables_bytes replaces nr_ptes/nr_pmds.
    pgtables = "bytes" if has_member(target, "struct mm_struct", "pgtables_bytes") else "ptes"
    calls = {c: (_calls_sum(target, f) if layout == "percpu" else None)
             for c, f in CONSUMERS.items()}
    return Evidence(arch=target.arch, page_shift=page_shift(target), counter_layout=layout,
                    pgtables=pgtables, rodata=_rodata_strings(target), calls_sum=calls,
                    # MM_SHMEMPAGES is new in v4.5.
                    has_shmem=target.constant("MM_SHMEMPAGES") is not None,
                    badness_return=target.return_type("oom_badness"))
