"""Logged memory lines read back (oomdrgn.core.meminfo_parse) from what the four real
kernels printed (tests/data/logs): each Mem-Info block is read by its own era's
formats and prints again byte for byte; the memcg lines give their counters and stats."""

from pathlib import Path

import pytest

from oomdrgn.core.logparse import parse_log, split_prefix
from oomdrgn.core.logged_memory import logged_parts
from oomdrgn.core.meminfo_parse import parse_memcg, parse_show_mem

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
KERNELS = ("5.10", "6.1", "6.12", "7.x")


def _reports(name):
    text = (LOGS / f"{name}-oom.log").read_text()
    lines = text.split("\n")
    return [logged_parts(lines, r) for r in parse_log(text)]


@pytest.mark.parametrize("name", KERNELS)
def test_each_mem_info_block_is_read_by_its_own_era_and_prints_again(name):
    blocks = [p["show_mem"] for p in _reports(name) if "show_mem" in p]
    assert blocks
    for block in blocks:
        parsed = parse_show_mem(block)
        assert parsed is not None and parsed.era.split(" = ")[0] == f"v{name}"
        assert parsed.rendered == block and parsed.mismatches == []
        zones = parsed.values["zones"]
        # A buddy line per zone line (their totals may differ from the zone's
        # free count: memory moved while the kernel printed, as in 6.12's log).
        buddy = parsed.values["other"]["buddy"]
        assert set(buddy) == set(zones)
        assert all(b["total_kb"] >= 0 and b["blocks"] for b in buddy.values())
        assert parsed.values["other"]["pages_ram"] > 0


@pytest.mark.parametrize("name", KERNELS)
def test_memcg_lines_give_counters_and_stats(name):
    parts = [p for p in _reports(name) if "memcg" in p]
    assert parts
    m = parse_memcg(parts[0]["memcg"] + parts[0].get("protection", []))
    assert m.path == "/oomtest"
    assert set(m.counters) == {"memory", "swap"}
    assert m.counters["memory"]["usage_kb"] <= m.counters["memory"]["limit_kb"]
    assert m.stats["anon"] > 0 and len(m.stats) > 20
    assert (m.protection is not None) == (name == "7.x")


def test_a_block_no_era_reads_is_not_read():
    lines = (LOGS / "6.1-oom.log").read_text().split("\n")
    texts = [split_prefix(i, raw).text for i, raw in enumerate(lines, 1)]
    start = texts.index("Mem-Info:")
    block = texts[start:start + 12]
    assert block[10].startswith("Node 0 DMA free:")
    block[10] = block[10].replace(" boost:", " lift:", 1)  # a zone line no era prints
    assert parse_show_mem(block) is None
