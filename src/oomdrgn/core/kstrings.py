"""The kernel's own strings: its ``.rodata``, the printk formats in it, and the
string literals a function's code points at (standard library and core only).

Used where a line's text is decided by the build rather than by memory: which
format an era prints (found in ``.rodata``), or a distribution's literal passed
as an argument (Debian's ``LINUX_PACKAGE_ID`` in ``dump_stack_print_info()``),
found by scanning the function's code for addresses inside ``.rodata``.
"""

from __future__ import annotations

import weakref
from typing import Dict, Iterator, List, Optional, Tuple

from .errors import ReadError
from .evidence import rodata
from .port import Target

__all__ = ["kernel_rodata", "has_format", "find_format", "referenced_strings", "read_cstring",
           "x86_64_pointers"]

_MASK64 = (1 << 64) - 1
# Lifetime: per target (the kernel image does not change under a target).
_REFS: "weakref.WeakKeyDictionary[object, Dict[str, List[str]]]" = weakref.WeakKeyDictionary()


def kernel_rodata(target: Target) -> Optional[bytes]:
    """The kernel image's ``.rodata`` (:func:`oomdrgn.core.evidence.rodata`, read once per target)."""
    return rodata(target)


def has_format(target: Target, fmt: bytes) -> bool:
    """Whether the NUL-terminated string *fmt* (with its ``KERN_`` prefix) is in ``.rodata``."""
    data = kernel_rodata(target)
    return bool(data) and (fmt + b"\0") in data  # type: ignore[operator]


def find_format(target: Target, start: bytes) -> Optional[str]:
    """The whole NUL-terminated ``.rodata`` string that begins with *start*
    (right after a NUL), or None."""
    data = kernel_rodata(target)
    if not data:
        return None
    at = data.find(b"\0" + start)
    if at < 0:
        return None
    end = data.find(b"\0", at + 1)
    return data[at + 1:end if end >= 0 else len(data)].decode("latin-1")


def read_cstring(target: Target, address: int, limit: int = 256) -> Optional[str]:
    """The printable NUL-terminated string at *address* (None if unreadable,
    unterminated within *limit*, or not text)."""
    try:
        raw = target.read(address, limit)
    except ReadError:
        try:
            raw = target.read(address, 64 - address % 64)
        except ReadError:
            return None
    end = raw.find(b"\0")
    if end < 0:
        return None
    text = raw[:end]
    if any(b < 0x20 or b > 0x7e for b in text):
        return None
    return text.decode("ascii")


def x86_64_pointers(code: bytes, address: int) -> Iterator[int]:
    """Absolute addresses in x86-64 code: ``push $imm32`` and ``mov $imm32, %r64``
    (sign-extended), ``lea disp32(%rip), %r64``. Every offset is tried: a false
    hit only matters if it lands on a string, and callers filter those."""
    for i in range(len(code) - 4):
        b = code[i]
        if b == 0x68:  # push imm32
            yield int.from_bytes(code[i + 1:i + 5], "little", signed=True) & _MASK64
        elif b in (0x48, 0x49, 0x4C) and i + 7 <= len(code):
            op, modrm = code[i + 1], code[i + 2]
            if op == 0xC7 and modrm & 0xF8 == 0xC0 and b != 0x4C:  # mov $imm32, %r64
                yield int.from_bytes(code[i + 3:i + 7], "little", signed=True) & _MASK64
            elif op == 0x8D and modrm & 0xC7 == 0x05:  # lea disp32(%rip), %r64
                disp = int.from_bytes(code[i + 3:i + 7], "little", signed=True)
                yield (address + i + 7 + disp) & _MASK64


def _aarch64_pointers(code: bytes, address: int) -> Iterator[int]:
    """``adrp Xd, page`` followed (anywhere later) by ``add Xn, Xd, #imm``."""
    pages: Dict[int, int] = {}
    for i in range(0, len(code) - 3, 4):
        insn = int.from_bytes(code[i:i + 4], "little")
        pc = address + i
        if insn & 0x9F000000 == 0x90000000:  # adrp
            imm = ((insn >> 5) & 0x7FFFF) << 2 | (insn >> 29) & 3
            if imm & (1 << 20):
                imm -= 1 << 21
            pages[insn & 31] = ((pc & ~0xFFF) + (imm << 12)) & _MASK64
        elif insn & 0xFF800000 == 0x91000000:  # add (immediate), 64-bit
            rn = (insn >> 5) & 31
            if rn in pages:
                imm = (insn >> 10) & 0xFFF
                if insn & (1 << 22):
                    imm <<= 12
                yield (pages[rn] + imm) & _MASK64


def _rodata_range(target: Target) -> Optional[Tuple[int, int]]:
    start, end = target.symbol("__start_rodata"), target.symbol("__end_rodata")
    if start is None or end is None or end[0] <= start[0]:
        return None
    return start[0], end[0]


def referenced_strings(target: Target, function: str) -> List[str]:
    """The string literals (in ``.rodata``) that *function*'s code (and its
    ``.cold`` part) points at, in code order, each once; empty if the function
    or its size is unknown."""
    try:
        cached = _REFS.setdefault(target, {})
    except TypeError:
        cached = {}
    if function in cached:
        return cached[function]
    found: List[str] = []
    span = _rodata_range(target)
    seen = set()
    # GCC may move most of a function into its .cold part (6.12's
    # dump_stack_print_info() is a test and two jumps there): scan both.
    for part in (function, function + ".cold"):
        sym = target.symbol(part)
        if sym is None or not sym[1] or span is None:
            continue
        try:
            code = target.read(sym[0], sym[1])
        except ReadError:
            continue
        scan = _aarch64_pointers if target.arch == "aarch64" else x86_64_pointers
        for p in scan(code, sym[0]):
            if span[0] <= p < span[1] and p not in seen:
                seen.add(p)
                text = read_cstring(target, p)
                if text is not None:
                    found.append(text)
    cached[function] = found
    return found
