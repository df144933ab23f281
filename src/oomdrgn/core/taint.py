"""The kernel's table of taint letters, ``taint_flags[]`` (standard library only):
one ``struct taint_flag`` ``{c_true, c_false, ...}`` per taint bit, from bit 0
(TAINT_PROPRIETARY_MODULE, ``P``/``G``), since 7fd8329ba502 ("taint/module:
Clean up global and module taint flags handling") (in v4.10)."""

from __future__ import annotations

from typing import Optional

__all__ = ["TAINT_LETTERS", "taint_run"]

#: print_tainted()'s letter for each taint bit, from bit 0 (TAINT_PROPRIETARY_MODULE)
#: to TAINT_FWCTL's J (v6.15); a kernel has a prefix of them (18 in v5.10, 19 in
#: v6.1, 20 in v7.2), all but P with ' ' when not set.
TAINT_LETTERS = b"PFSRMBUDAWCIOELKXTNJ"


def taint_run(raw: bytes, size: int, on: int, off: int,
              letters: Optional[bytes] = None) -> int:
    """How many entries at the start of *raw* (*size* bytes each, ``c_true`` at
    *on*, ``c_false`` at *off*) are taint letters, as every entry of the
    kernel's is: an upper-case ``c_true`` (*letters*' letter at that place,
    where given), a blank ``c_false`` but P's ``G``."""
    count = len(raw) // size
    if letters is not None:
        count = min(count, len(letters))
    for i in range(count):
        c, nc = raw[i * size + on], raw[i * size + off]
        letter = 0x41 <= c <= 0x5A if letters is None else c == letters[i]
        if not (letter and nc == (0x47 if i == 0 else 0x20)):
            return i
    return count
