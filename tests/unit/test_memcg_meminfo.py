"""The memcg OOM report's pure parts: the printk record and console cuts of the
one-record eras (v5.0 .. v6.4), the console prefix, and ``memory_stat_format()``
per era over a small fake target (its tables, units, sums and skips)."""

import struct
from types import SimpleNamespace
from pathlib import Path

import pytest

from oomdrgn.core.memcg_meminfo import (CONSOLE_BUF, ConsolePrefix, console_prefix_len,
                                        record_print_text, vprintk_store_text)
from oomdrgn.core.memcg_stat import memory_stat_format
from oomdrgn.core.port import Member

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


def _stat_lines(name):
    """The stats lines of the first memcg report of a harness log (timestamps off)."""
    lines = [l.split("] ", 1)[1] for l in (LOGS / name).read_text().splitlines() if "] " in l]
    start = next(i for i, l in enumerate(lines) if l.startswith("Memory cgroup stats for"))
    end = next(i for i in range(start, len(lines))
               if lines[i].startswith(("Tasks state", "Memory cgroup min")))
    return lines[start + 1:end]


# --- the cuts ----------------------------------------------------------------

@pytest.mark.parametrize("log,after", [("6.1-oom.log", ["pgscan 0", "pgsteal 0"]),
                                       ("5.10-oom.log", ["pglazyfreed 0", "thp_fault_alloc 0"])])
def test_console_drops_lines_of_the_record(log, after):
    """The real consoles stopped at workingset_nodereclaim (6.1) and pglazyfree
    (5.10): 15-byte prefixes, each line's newline and the terminator fill the
    1024-byte buffer; the next line (as each era's source orders them) does not fit."""
    shown = _stat_lines(log)
    text = "\n".join(shown + after)
    assert record_print_text(text, 15) == shown
    used = sum(15 + len(l) + 1 for l in shown) + 1
    assert used <= CONSOLE_BUF < used + 15 + len(after[0]) + 1
    # Without timestamps (printk.time=0) the same record shows every line.
    assert record_print_text(text, 0) == shown + after


def test_line_that_fits_exactly():
    line = "x" * (CONSOLE_BUF - 15 - 2)  # prefix, newline, terminator
    assert record_print_text(line + "\nmore", 15) == [line]
    assert record_print_text(line + "y\nmore", 15) == []


def test_vprintk_store_cuts_at_log_line_max():
    """vscnprintf() into LOG_LINE_MAX (992) bytes with the 2-byte KERN_INFO
    prefix: 989 bytes of text; the cut line stays, as the record's last line."""
    text = "".join(f"stat_{i:03d} {i}\n" for i in range(120))  # 1320 bytes
    stored = vprintk_store_text(text, 992)
    assert len(stored) == 989 and text.startswith(stored)
    assert vprintk_store_text("a 1\nb 2\n", 992) == "a 1\nb 2"  # trailing newline dropped
    # The console keeps the cut line when it fits (no prefix here).
    assert record_print_text(stored, 0)[-1] == stored.rsplit("\n", 1)[1]
    # CONFIG_PRINTK_CALLER: PREFIX_MAX 48, LOG_LINE_MAX 976.
    assert len(vprintk_store_text(text, 976)) == 973


def test_console_prefix_len():
    assert console_prefix_len(ConsolePrefix()) == len("[   14.692620] ")
    assert console_prefix_len(ConsolePrefix(), 123456) == len("[123456.000000] ")
    assert console_prefix_len(ConsolePrefix(caller=True), 1, "T123") == len("[    1.000000][  T123] ")
    assert console_prefix_len(ConsolePrefix(time=False)) == 0
    assert console_prefix_len(ConsolePrefix(syslog=True)) == len("<6>[    0.000000] ")


# --- memory_stat_format() per era, over a fake target ---------------------------

class _Fake:
    """A little-endian LP64 target: symbols, members and bytes given by the test."""

    arch, little_endian, live = "x86_64", True, False

    def __init__(self):
        self.mem = {}
        self.next = 0x1000
        self.symbols, self.members, self.consts, self.sizes = {}, {}, {}, {}

    def alloc(self, data: bytes) -> int:
        address = self.next
        self.mem[address] = bytes(data)
        self.next += (len(data) + 15) // 16 * 16 + 16
        return address

    def string(self, text: str) -> int:
        return self.alloc(text.encode() + b"\0")

    def read(self, address, size):
        for base, data in self.mem.items():
            if base <= address and address + size <= base + len(data):
                return data[address - base:address - base + size]
        raise AssertionError(f"unmapped read {address:#x}+{size}")

    def member(self, type_name, designator):
        try:
            return self.members[type_name, designator]
        except KeyError:
            raise LookupError(designator) from None

    def sizeof(self, type_name):
        return self.sizes[type_name]

    def constant(self, name):
        return self.consts.get(name)

    def symbol(self, name):
        return self.symbols.get(name)


class _Reader:
    def __init__(self, target, page_shift=12):
        self.target = target
        self.info = SimpleNamespace(page_shift=page_shift)

    def read_int(self, address, size=8, signed=False):
        return int.from_bytes(self.target.read(address, size), "little", signed=signed)

    def string(self, address):
        data = b""
        while not data.endswith(b"\0"):
            data += self.target.read(address + len(data), 1)
        return data[:-1].decode()

    def symbol_address(self, name):
        return self.target.symbol(name)[0]

    def offset(self, type_name, designator):
        return self.target.member(type_name, designator).offset


def _enum(fake, names):
    fake.consts.update({n: i for i, n in enumerate(names)})


def _vmstat_text(fake, node_names, events):
    """vmstat_text: one zone item, NR_VM_NODE_STAT_ITEMS node items, two
    writeback/vm_stat items, then the events."""
    names = ["nr_free_pages"] + [n.lower() for n in node_names] + ["nr_dirty_threshold",
                                                                   "nr_dirty_bg_threshold"]
    names += [e.lower() for e in events]
    fake.consts.update(NR_VM_ZONE_STAT_ITEMS=1, NR_VM_NODE_STAT_ITEMS=len(node_names))
    table = b"".join(struct.pack("<Q", fake.string(n)) for n in names)
    fake.symbols["vmstat_text"] = (fake.alloc(table), len(table))


def _memory_stats(fake, rows, ratio, tail=()):
    """memory_stats[]: {name, [ratio,] idx}; *tail*: rows of what follows the
    array inside the symbol's size (kallsyms' distance to the next symbol)."""
    fields = [("name", 8), ("ratio", 4), ("idx", 4)] if ratio else [("name", 8), ("idx", 4)]
    off = 0
    for name, size in fields:
        fake.members["struct memory_stat", name] = Member(off, size, "int")
        off += size
    size = (off + 7) // 8 * 8
    fake.sizes["struct memory_stat"] = size
    data = b""
    for row in list(rows) + list(tail):
        entry = struct.pack("<Q", fake.string(row[0])) + b"".join(
            struct.pack("<I", v) for v in row[1:])
        data += entry.ljust(size, b"\0")
    fake.symbols["memory_stats"] = (fake.alloc(data), len(data))


def _array(fake, type_name, name, offset, values):
    fake.members[type_name, name] = Member(offset, 8 * len(values), "array", True, len(values))
    return b"".join(struct.pack("<q", v) for v in values)


def test_v5_10_era_atomics_ratio_and_fixed_events():
    """memcg->vmstats[] atomics (before rstat), memory_stats[] with ratio, the
    fixed event list (no memcg_vm_event_stat[]), THP events present, no zswap."""
    f = _Fake()
    node = ["NR_ANON_MAPPED", "NR_FILE_PAGES", "NR_KERNEL_STACK_KB", "NR_SLAB_RECLAIMABLE_B",
            "NR_SLAB_UNRECLAIMABLE_B", "WORKINGSET_NODERECLAIM"]
    events = ["PGPGIN", "PGPGOUT", "PGFAULT", "PGMAJFAULT", "PGREFILL", "PGSCAN_KSWAPD",
              "PGSCAN_DIRECT", "PGSTEAL_KSWAPD", "PGSTEAL_DIRECT", "PGACTIVATE",
              "PGDEACTIVATE", "PGLAZYFREE", "PGLAZYFREED", "THP_FAULT_ALLOC",
              "THP_COLLAPSE_ALLOC"]
    _enum(f, node)
    f.consts.update({e: i for i, e in enumerate(events)})
    f.consts["NR_VM_WRITEBACK_STAT_ITEMS"] = 2
    _vmstat_text(f, node, events)
    c = f.consts
    _memory_stats(f, [("anon", 4096, c["NR_ANON_MAPPED"]),
                      ("kernel_stack", 1024, c["NR_KERNEL_STACK_KB"]),
                      ("anon_thp", 2 << 20, c["NR_FILE_PAGES"]),
                      ("slab_reclaimable", 1, c["NR_SLAB_RECLAIMABLE_B"]),
                      ("slab_unreclaimable", 1, c["NR_SLAB_UNRECLAIMABLE_B"]),
                      ("workingset_nodereclaim", 1, c["WORKINGSET_NODERECLAIM"])], ratio=True)
    # NR_SLAB_UNRECLAIMABLE_B's negative sum reads 0 (CONFIG_SMP).
    state = [10, 1, 16, 100, -5, 3]
    ev = dict(PGFAULT=7, PGSCAN_KSWAPD=5, PGSCAN_DIRECT=1, PGSTEAL_DIRECT=2, PGLAZYFREED=2,
              THP_FAULT_ALLOC=1)
    f.symbols["__per_cpu_offset"] = (f.alloc(b"\0" * 16), 16)
    body = _array(f, "struct mem_cgroup", "vmstats", 0, state)
    body += _array(f, "struct mem_cgroup", "vmevents", len(body),
                   [ev.get(e, 0) for e in events])
    memcg = f.alloc(body)
    assert memory_stat_format(_Reader(f), memcg) == [
        ("anon", 40960), ("kernel_stack", 16384), ("anon_thp", 2 << 20),
        ("slab_reclaimable", 100), ("slab_unreclaimable", 0), ("slab", 100),
        ("workingset_nodereclaim", 3), ("pgfault", 7), ("pgmajfault", 0), ("pgrefill", 0),
        ("pgscan", 6), ("pgsteal", 2), ("pgactivate", 0), ("pgdeactivate", 0),
        ("pglazyfree", 0), ("pglazyfreed", 2), ("thp_fault_alloc", 1),
        ("thp_collapse_alloc", 0)]


def _vmstats_pointer(f, state, events):
    st = _array(f, "struct memcg_vmstats", "state", 0, state)
    ev = _array(f, "struct memcg_vmstats", "events", len(st), events)
    vmstats = f.alloc(st + ev)
    f.members["struct mem_cgroup", "vmstats"] = Member(8, 8, "pointer")
    return f.alloc(b"\0" * 8 + struct.pack("<Q", vmstats))


@pytest.mark.parametrize("tail", [(), (("S\xff", 0), ("anon", 0))])
def test_v6_1_era_event_table_index_plus_one_and_units(tail):
    """struct memcg_vmstats *, memcg_vm_event_stat[] with PGPGIN/PGPGOUT
    (skipped), mem_cgroup_events_index[] of int holding index + 1, units from
    memcg_page_state_unit(), pgscan/pgsteal summed from the events."""
    f = _Fake()
    events = ["PGPGIN", "PGPGOUT", "PGFAULT", "PGSCAN_KSWAPD", "PGSCAN_DIRECT",
              "PGSTEAL_KSWAPD", "PGSTEAL_DIRECT", "PGREFILL"]
    node = ["NR_ANON_MAPPED", "NR_KERNEL_STACK_KB", "NR_SLAB_RECLAIMABLE_B",
            "NR_SLAB_UNRECLAIMABLE_B", "WORKINGSET_NODERECLAIM", "MEMCG_PERCPU_B"]
    _enum(f, node)
    f.consts.update({e: i for i, e in enumerate(events)})
    f.consts.update(NR_VM_EVENT_ITEMS=len(events), NR_VM_WRITEBACK_STAT_ITEMS=2)
    _vmstat_text(f, node, events)
    c = f.consts
    _memory_stats(f, [("anon", c["NR_ANON_MAPPED"]), ("kernel_stack", c["NR_KERNEL_STACK_KB"]),
                      ("slab_reclaimable", c["NR_SLAB_RECLAIMABLE_B"]),
                      ("slab_unreclaimable", c["NR_SLAB_UNRECLAIMABLE_B"]),
                      ("workingset_nodereclaim", c["WORKINGSET_NODERECLAIM"]),
                      ("percpu", c["MEMCG_PERCPU_B"])], ratio=False, tail=tail)
    # The table holds its events in this order; events[] is indexed through
    # mem_cgroup_events_index[] (int, i + 1; 0: not a memcg event).
    table = [c["PGPGIN"], c["PGPGOUT"], c["PGSCAN_KSWAPD"], c["PGSCAN_DIRECT"],
             c["PGSTEAL_KSWAPD"], c["PGSTEAL_DIRECT"], c["PGFAULT"], c["PGREFILL"]]
    data = struct.pack(f"<{len(table)}I", *table)
    f.symbols["memcg_vm_event_stat"] = (f.alloc(data), len(data))
    index = [0] * len(events)
    for i, e in enumerate(table):
        index[e] = i + 1
    data = struct.pack(f"<{len(index)}i", *index)
    f.symbols["mem_cgroup_events_index"] = (f.alloc(data), len(data))
    state = [3, 8, 4096, 2048, 5, 64]
    memcg = _vmstats_pointer(f, state, [11, 12, 1, 2, 30, 40, 99, 6])
    out = memory_stat_format(_Reader(f), memcg)
    assert out == [("anon", 3 * 4096), ("kernel_stack", 8 * 1024),
                   ("slab_reclaimable", 4096), ("slab_unreclaimable", 2048),
                   ("slab", 6144), ("workingset_nodereclaim", 5), ("percpu", 64),
                   ("pgscan", 3), ("pgsteal", 70), ("pgscan_kswapd", 1),
                   ("pgscan_direct", 2), ("pgsteal_kswapd", 30), ("pgsteal_direct", 40),
                   ("pgfault", 99), ("pgrefill", 6)]


def test_v7_era_stats_index_reclaim_node_stats_and_hugetlb():
    """mem_cgroup_stats_index[] and mem_cgroup_events_index[] of u8 (U8_MAX:
    none), pgscan_*/pgsteal_* as memory_stats[] rows (unit 1, the sums from
    memcg_page_state()), hugetlb left out without memory_hugetlb_accounting."""
    f = _Fake()
    node = ["NR_ANON_MAPPED", "NR_HUGETLB", "NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B",
            "PGSCAN_KSWAPD", "PGSCAN_DIRECT", "PGSTEAL_KSWAPD", "PGSTEAL_DIRECT",
            "MEMCG_PERCPU_B"]
    events = ["PGPGIN", "PGPGOUT", "PGFAULT"]
    _enum(f, node)
    f.consts.update({e: i for i, e in enumerate(events)})
    f.consts.update(NR_VM_EVENT_ITEMS=len(events), NR_VM_STAT_ITEMS=2, MEMCG_NR_STAT=len(node),
                    NR_VM_NUMA_EVENT_ITEMS=0, CGRP_ROOT_MEMORY_HUGETLB_ACCOUNTING=1 << 19)
    _vmstat_text(f, node, events)
    c = f.consts
    _memory_stats(f, [("anon", c["NR_ANON_MAPPED"]), ("hugetlb", c["NR_HUGETLB"]),
                      ("slab_reclaimable", c["NR_SLAB_RECLAIMABLE_B"]),
                      ("slab_unreclaimable", c["NR_SLAB_UNRECLAIMABLE_B"]),
                      ("pgsteal_kswapd", c["PGSTEAL_KSWAPD"]),
                      ("pgscan_kswapd", c["PGSCAN_KSWAPD"])], ratio=False)
    # state[] holds only the items memcg keeps, through mem_cgroup_stats_index[].
    kept = ["NR_ANON_MAPPED", "NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B",
            "PGSCAN_KSWAPD", "PGSCAN_DIRECT", "PGSTEAL_KSWAPD", "PGSTEAL_DIRECT", "NR_HUGETLB"]
    sindex = [0xFF] * len(node)
    for i, n in enumerate(kept):
        sindex[c[n]] = i
    f.symbols["mem_cgroup_stats_index"] = (f.alloc(bytes(sindex)), len(sindex))
    table = [c["PGFAULT"]]
    data = struct.pack("<I", *table)
    f.symbols["memcg_vm_event_stat"] = (f.alloc(data), len(data))
    eindex = [0xFF] * len(events)
    eindex[c["PGFAULT"]] = 0
    f.symbols["mem_cgroup_events_index"] = (f.alloc(bytes(eindex)), len(eindex))
    f.members["struct cgroup_root", "flags"] = Member(0, 4, "int")
    f.symbols["cgrp_dfl_root"] = (f.alloc(b"\0" * 8), 8)
    memcg = _vmstats_pointer(f, [5, 100, 200, 7, 8, 3, 4, 9], [42])
    out = memory_stat_format(_Reader(f), memcg)
    assert out == [("anon", 5 * 4096), ("slab_reclaimable", 100), ("slab_unreclaimable", 200),
                   ("slab", 300), ("pgsteal_kswapd", 3), ("pgscan_kswapd", 7),
                   ("pgscan", 15), ("pgsteal", 7), ("pgfault", 42)]
    # With memory_hugetlb_accounting the hugetlb row is printed (pages * PAGE_SIZE).
    f.symbols["cgrp_dfl_root"] = (f.alloc(struct.pack("<Q", 1 << 19)), 8)
    out = memory_stat_format(_Reader(f, page_shift=14), memcg)
    assert out[:2] == [("anon", 5 * 16384), ("hugetlb", 9 * 16384)]
