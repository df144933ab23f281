"""The ``__show_mem()`` formats copied per era parse and render, every label of
every era's format has a value rule, and the small pieces (``gfp_zone``,
``show_migration_types``, the console's ``KERN_CONT`` joining, the counters'
clamping) behave as the kernel's."""

import re
import struct
from pathlib import Path

import pytest

from oomdrgn.core.gfp import gfp_zone

from oomdrgn.core import show_mem as sm
from oomdrgn.core import show_mem_formats as F
from oomdrgn.core import vmstat
from oomdrgn.core.cformat import cformat
from oomdrgn.core.port import Fault, Member

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
LINES = ("global_", "node", "zone")
KINDS = {"global_": "global", "node": "node", "zone": "zone"}
# The log each verbatim era was printed by (Debian x86-64: THP, no SCS).
ERA_LOGS = {"v7.x": "7.x-oom.log", "v6.12": "6.12-oom.log", "v6.1": "6.1-oom.log",
            "v5.10": "5.10-oom.log"}
X86_DEBIAN = {"CONFIG_TRANSPARENT_HUGEPAGE": True, "CONFIG_SHADOW_CALL_STACK": False}


def _formats(era, config):
    return {"global_": era.global_, "node": F.assemble(era.node, config.get),
            "zone": F.assemble(era.zone, config.get)}


def _dummy_args(fmt):
    return ["Zone" if c.group().endswith("s") else 12345 for c in F.CONV.finditer(fmt)]


@pytest.mark.parametrize("era", F.ERAS, ids=lambda e: e.name)
@pytest.mark.parametrize("config", F.all_configs(), ids=lambda c: "-".join(
    k[7:] for k, v in sorted(c.items()) if v) or "none")
def test_every_label_has_a_rule_and_renders(era, config):
    for line, fmt in _formats(era, config).items():
        labels = sm.format_labels(fmt)
        assert labels and len(labels) == len(list(F.CONV.finditer(fmt)))
        missing = [lbl for lbl in labels if lbl not in sm.RULES[KINDS[line]]]
        assert not missing, f"{era.name} {line}: no rule for {missing}"
        text = cformat(fmt, _dummy_args(fmt))
        assert text.endswith("\n") and text.count("\n") == fmt.count("\n")
        assert "%" not in text


def test_labels_are_the_names_before_each_conversion():
    era = F.era("v6.1")
    node = F.assemble(era.node, X86_DEBIAN.get)
    labels = sm.format_labels(node)
    assert labels[:2] == ["Node", "active_anon"]
    assert {"isolated(anon)", "shmem_thp", "all_unreclaimable?"} <= set(labels)
    assert sm.format_labels(F.assemble(era.zone, X86_DEBIAN.get))[:3] == ["", "free", "boost"]
    assert sm.format_labels(era.global_)[3] == "active_file"  # after "\n "


def _fields(fmt, text):
    parts, pos = [], 0
    for m in F.CONV.finditer(fmt):
        parts += [re.escape(fmt[pos:m.start()]), "(.*?)" if m.group()[-1] == "s" else r"(\d+)"]
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    return re.fullmatch("".join(parts), text, re.S)


@pytest.mark.parametrize("name", sorted(ERA_LOGS))
def test_copied_formats_parse_what_that_kernel_printed(name):
    """The verbatim formats read back the lines the Debian kernel of that era
    printed (tests/data/logs), and re-render them byte for byte."""
    era = F.era(name)
    fmts = _formats(era, X86_DEBIAN)
    text = (LOGS / ERA_LOGS[name]).read_text()
    lines = [re.sub(r"^\[ *\d+\.\d+\] ", "", line) for line in text.splitlines()]
    start = lines.index("Mem-Info:")
    n = fmts["global_"].count("\n")
    block = "\n".join(lines[start + 1:start + 1 + n]) + "\n"
    node_line, zone_line = lines[start + 1 + n], lines[start + 2 + n]
    zone_text = re.sub(r"^Node \d+ ", "", zone_line) + "\n"
    for fmt, printed in ((fmts["global_"], block), (fmts["node"], node_line + "\n"),
                         (fmts["zone"], zone_text)):
        m = _fields(fmt, printed)
        assert m, f"{name}: {printed!r} does not parse with {fmt!r}"
        args = [g if c.group()[-1] == "s" else int(g)
                for g, c in zip(m.groups(), F.CONV.finditer(fmt))]
        assert cformat(fmt, args) == printed
    swap_stats = any(line.startswith("Swap cache stats:") for line in lines)
    assert swap_stats == era.swap_cache_stats


def test_gfp_zone():
    # enum zone_type of the Debian x86-64 kernels (5 lowmem_reserve[] entries printed).
    constants = {"ZONE_DMA": 0, "ZONE_DMA32": 1, "ZONE_NORMAL": 2, "ZONE_MOVABLE": 3,
                 "ZONE_DEVICE": 4, "__MAX_NR_ZONES": 5}

    class T:
        def constant(self, name):
            return constants.get(name)
    t = T()
    assert gfp_zone(t, 0xcc0) == 2                 # GFP_KERNEL
    assert gfp_zone(t, 0x140dca) == 3              # GFP_HIGHUSER_MOVABLE|...
    assert gfp_zone(t, 0xcc1) == 0                 # GFP_DMA
    assert gfp_zone(t, 0xcc4) == 1                 # GFP_DMA32
    assert gfp_zone(t, 0x8) == 2                   # __GFP_MOVABLE alone
    assert gfp_zone(t, 0x2) == 2                   # __GFP_HIGHMEM without HIGHMEM
    constants["___GFP_MOVABLE_BIT"] = 3            # 6.10+ enumerators: same bits
    assert gfp_zone(t, 0x140dca) == 3


def test_migration_types_letters():
    letters = {0: "U", 1: "M", 2: "E", 3: "H", 4: "C", 5: "I"}
    assert sm._migration_types(0b000011, 6, letters) == "UM"
    assert sm._migration_types(0b000110, 6, letters) == "ME"
    assert sm._migration_types(0b110000, 6, letters) == "CI"
    # A type without a letter is '\0' in the kernel's table: the string ends.
    assert sm._migration_types(0b1111, 4, {0: "U", 1: "M", 3: "H"}) == "UM"


def test_console_joins_kern_cont():
    c = sm._Console()
    c.printk("Mem-Info:\n")
    c.printk("a:1\n b:2\n")
    c.printk("Node 0 ")
    c.printk("DMA free:4kB\n", cont=True)
    c.printk("lowmem_reserve[]:")
    c.printk(" 0", cont=True)
    c.printk(" 1", cont=True)
    c.printk("\n", cont=True)
    c.printk("Node 0 ")
    c.printk("unterminated")
    assert c.done() == ["Mem-Info:", "a:1", " b:2", "Node 0 DMA free:4kB",
                        "lowmem_reserve[]: 0 1", "Node 0 ", "unterminated"]


class _Target:
    """Just enough of a kernel for vmstat: two counter arrays and a zone."""

    arch, little_endian, live = "x86_64", True, False

    def __init__(self, words):
        self.words = words
        self.constants = {"NR_FREE_PAGES": 0, "NR_ACTIVE_ANON": 1, "PAGE_SHIFT": 12,
                          "N_ONLINE": 1}
        self.symbols = {"vm_zone_stat": 0x1000, "vm_node_stat": 0x2000,
                        "__per_cpu_offset": 0x3000, "node_states": 0x4000}

    def read(self, address, size):
        if address not in self.words:
            raise Fault("unmapped", address)
        return struct.pack("<q", self.words[address])[:size]

    def member(self, type_name, designator):
        table = {("struct zone", "vm_stat"): 0x10, ("struct pglist_data", "vm_stat"): 0x20,
                 ("struct pglist_data", "node_zones"): 0x100,
                 ("struct pglist_data", "node_id"): 0x8,
                 ("struct zone", "present_pages"): 0x30, ("struct zone", "managed_pages"): 0x38,
                 ("struct zone", "name"): 0x40, ("struct zone", "per_cpu_pageset"): 0x48,
                 ("struct per_cpu_pages", "count"): 0x4}
        if (type_name, designator) not in table:
            raise LookupError(designator)
        off = table[(type_name, designator)]
        return Member(off, 8, "array" if designator == "node_zones" else "int", True,
                      5 if designator == "node_zones" else None)

    def sizeof(self, type_name):
        return {"atomic_long_t": 8, "struct zone": 0x400, "nodemask_t": 8}[type_name]

    def constant(self, name):
        return self.constants.get(name)

    def symbol(self, name):
        return (self.symbols[name], 8) if name in self.symbols else None


class _Memory:
    def __init__(self, target):
        self.target = target

    def read(self, address, size):
        return self.target.read(address, size)

    def read_word(self, address):
        return struct.unpack("<Q", self.target.read(address, 8))[0]


class _Reader:
    def __init__(self, words):
        self.target = _Target(words)
        self.memory = _Memory(self.target)


def test_counters_clamp_negative_sums_to_zero():
    r = _Reader({0x1000: -3, 0x1008: 7, 0x2008: 11, 0x5000 + 0x10: 5, 0x5000 + 0x18: -1,
                 0x6000 + 0x20 + 8: 9, 0x4008: 0b11})
    assert vmstat.global_zone_page_state(r, "NR_FREE_PAGES") == 0
    assert vmstat.global_zone_page_state(r, "NR_ACTIVE_ANON") == 7
    assert vmstat.global_node_page_state(r, "NR_ACTIVE_ANON") == 11
    assert vmstat.global_node_page_state_pages(r, "NR_ACTIVE_ANON") == 11
    assert vmstat.zone_page_state(r, 0x5000, "NR_FREE_PAGES") == 5
    assert vmstat.zone_page_state(r, 0x5000, "NR_ACTIVE_ANON") == 0
    assert vmstat.node_page_state(r, 0x6000, "NR_ACTIVE_ANON") == 9
    assert vmstat.online_nodes(r) == [0, 1]
    assert vmstat.page_kb(r) == 4
    with pytest.raises(LookupError):
        vmstat.global_zone_page_state(r, "NR_BOUNCE")
    assert not vmstat.has_item(r, "NR_BOUNCE")
