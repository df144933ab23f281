"""C ``printf`` semantics for the kernel's printk formats (standard library only).

Python's ``%`` operator accepts the kernel's conversions (``%5d``, ``%8lu``,
``%5hd``, ``%s``) but not C's integer conversions: ``%u`` of -1 prints
4294967295, ``%hd`` truncates to a short, ``%lu`` wraps at 2**64. This module
applies those conversions first, so a format copied from ``mm/oom_kill.c``
prints what the kernel prints.
"""

from __future__ import annotations

import functools
import re
from itertools import chain
from typing import Any, Callable, List, Optional, Sequence, Tuple

__all__ = ["cformat", "cformat_many", "cformatter", "ctype_cast"]

_CONV = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?"
                   r"(?P<len>hh|h|ll|l|z)?(?P<conv>[diuxXsc%])")

_BITS = {"hh": 8, "h": 16, None: 32, "l": 64, "ll": 64, "z": 64}


def ctype_cast(value: int, length: Optional[str], signed: bool) -> int:
    """Convert *value* as C converts a vararg read with ``length`` (``h``, ``l``...)."""
    bits = _BITS[length]
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


@functools.lru_cache(maxsize=64)
def _compile(fmt: str) -> Tuple[str, Tuple[Optional[Tuple[int, bool]], ...]]:
    """The Python %-format equivalent of *fmt* and, per argument, the C integer
    conversion to apply first ((bits, signed), or None for %s/%c)."""
    out: List[str] = []
    casts: List[Optional[Tuple[int, bool]]] = []
    pos = 0
    for m in _CONV.finditer(fmt):
        out.append(fmt[pos:m.start()].replace("%", "%%"))
        pos = m.end()
        conv = m.group("conv")
        if conv == "%":
            out.append("%%")
            continue
        spec = "%" + m.group("flags") + (m.group("width") or "")
        if m.group("prec") is not None:
            spec += "." + m.group("prec")
        if conv in "sc":
            out.append(spec + conv)
            casts.append(None)
        else:
            out.append(spec + ("d" if conv in "diu" else conv))
            casts.append((_BITS[m.group("len")], conv in "di"))
    out.append(fmt[pos:].replace("%", "%%"))
    return "".join(out), tuple(casts)


def cformat(fmt: str, args: Sequence[Any]) -> str:
    """Format *args* with the C format string *fmt* exactly as ``vsnprintf`` would."""
    return cformatter(fmt)(args)


def cformat_many(fmt: str, rows: Sequence[Sequence[Any]]) -> str:
    """``"".join(cformat(fmt, args) for args in rows)``, with one ``%`` for all
    rows when every integer is already in its C type's range (the usual case)."""
    pyfmt, casts = _compile(fmt)
    n = len(casts)
    flat = list(chain.from_iterable(rows))
    if len(flat) != n * len(rows):
        raise TypeError(f"each row needs {n} arguments for {fmt!r}")
    for i, cast in enumerate(casts):
        if cast is not None and flat:
            lo, hi = _range(*cast)
            column = flat[i::n]
            if min(column) < lo or max(column) > hi:
                return "".join(map(cformatter(fmt), rows))
    return (pyfmt * len(rows)) % tuple(flat)


def _range(bits: int, signed: bool) -> Tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _wrap(value: Any, bits: int, signed: bool) -> int:
    value = int(value) & ((1 << bits) - 1)
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


@functools.lru_cache(maxsize=64)
def cformatter(fmt: str) -> Callable[[Sequence[Any]], str]:
    """A function formatting an argument sequence as :func:`cformat` does.

    It is generated for *fmt*, one expression per argument that leaves a value
    already in its C type's range untouched and wraps any other; a table of
    100,000 rows is formatted with one call per row.
    """
    pyfmt, casts = _compile(fmt)
    terms = []
    for i, cast in enumerate(casts):
        if cast is None:
            terms.append(f"a[{i}]")
            continue
        bits, signed = cast
        lo, hi = _range(bits, signed)
        terms.append(f"(a[{i}] if {lo} <= a[{i}] <= {hi} else _wrap(a[{i}], {bits}, {signed}))")
    code = f"lambda a: _fmt % ({', '.join(terms)}{',' if len(terms) == 1 else ''})"
    return eval(code, {"_fmt": pyfmt, "_wrap": _wrap})  # noqa: S307 (built from _compile only)
