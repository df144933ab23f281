"""The invoked line's pure parts: %pGg, the eras' formats, --gfp parsing.

Expected texts are the lines real kernels printed (tests/data/logs/), read back
with logparse; the fallback flag table is Debian 6.1's, so every line the 6.1
kernel printed must come out of it unchanged.
"""

import pathlib

import pytest

from oomdrgn.core.gfp import (FALLBACK_GFPFLAG_NAMES, INVOKED_FORMATS, format_flags,
                              invoked_line, parse_gfp)
from oomdrgn.core.logparse import parse_log

LOGS = pathlib.Path(__file__).parent.parent / "data" / "logs"
ERAS = {f.name: f for f in INVOKED_FORMATS}


class NoSymbols:
    """A target without symbols: the fallback table is used."""

    def symbol(self, name):
        return None


def invoked(name):
    return [r.invoked for r in parse_log((LOGS / name).read_text()) if r.invoked]


def test_fallback_table_prints_what_6_1_printed():
    lines = [i for n in ("6.1-oom.log", "6.1-panic.log") for i in invoked(n)]
    assert len(lines) >= 3
    for inv in lines:
        assert format_flags(inv.gfp_mask, FALLBACK_GFPFLAG_NAMES) == inv.gfp_flags
        # The whole line, era I5 (v5.0-v6.19).
        assert invoked_line(NoSymbols(), inv.comm, inv.gfp_mask, inv.order, inv.oom_score_adj,
                            fmt=ERAS["I5"]) == inv.line.text + "\n"


def test_format_flags_rules():
    names = FALLBACK_GFPFLAG_NAMES
    assert format_flags(0, names) == ""  # %pGg of 0: nothing, "gfp_mask=0x0()"
    # Leftover bits after the names: "|%#lx"; no name at all: the number alone.
    assert format_flags(0xcc0 | 1 << 30, names) == "GFP_KERNEL|0x40000000"
    assert format_flags(1 << 30, names) == "0x40000000"


@pytest.mark.parametrize("name", ["public/4.x-K1-dmesg.log", "public/syslog-K1.log"])
def test_i1_era_lines(name):
    for inv in invoked(name):
        assert inv.gfp_flags is None
        assert invoked_line(NoSymbols(), inv.comm, inv.gfp_mask, inv.order, inv.oom_score_adj,
                            fmt=ERAS["I1"]) == inv.line.text + "\n"


@pytest.mark.parametrize("name", ["public/4.15-memcg-dmesg-T.log",
                                  "public/4.15-web-content-excerpt.log"])
def test_i4_era_lines_with_nodemask(name):
    (inv,) = invoked(name)
    assert inv.nodemask == "(null)"
    # That kernel's flag names are not ours: the line itself says what its mask prints.
    names = ((inv.gfp_mask, inv.gfp_flags),)
    assert invoked_line(NoSymbols(), inv.comm, inv.gfp_mask, inv.order, inv.oom_score_adj,
                        fmt=ERAS["I4"], names=names) == inv.line.text + "\n"


def test_i3_pieces_and_i6_adj():
    # v4.11-v4.14: pieces, two spaces before order; v7.0: oom_score_adj with %d.
    line = invoked_line(NoSymbols(), "a", 0xcc0, -1, 0, fmt=ERAS["I3"])
    assert line == "a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), nodemask=(null),  order=-1, oom_score_adj=0\n"
    line = invoked_line(NoSymbols(), "a", 0, 0, -1000, nodemask=[0, 1, 3], fmt=ERAS["I4"])
    assert line == "a invoked oom-killer: gfp_mask=0x0(), nodemask=0-1,3, order=0, oom_score_adj=-1000\n"


def test_parse_gfp():
    assert parse_gfp("0xcc0") == 0xcc0 == parse_gfp("3264") == parse_gfp("GFP_KERNEL")
    assert parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_COMP") == 0x140cca
    assert parse_gfp(" GFP_KERNEL | 0x1 ") == 0xcc1
    assert parse_gfp("0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO)") == 0x140dca
    assert parse_gfp("0x0()") == 0
    assert parse_gfp("X", names=((0x5, "X"),)) == 0x5
    assert parse_gfp(NoSymbols(), "GFP_KERNEL") == 0xcc0  # a kernel without the table
    for bad in ("", "GFP_NOPE", "GFP_KERNEL|", "0xcc0(GFP_USER)", "0x1()", "0x1ffffffff",
                "12abc", "gfp_kernel"):
        with pytest.raises(ValueError):
            parse_gfp(bad)
