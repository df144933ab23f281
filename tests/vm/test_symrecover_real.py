"""Data symbols recovered where kallsyms holds functions only
(:mod:`oomdrgn.core.symrecover`), on every kernel of the suite.

Debian's 6.1 arm64 kernel is built without ``CONFIG_KALLSYMS_ALL``; the others
with it: there kallsyms is cut down to what a build without it keeps (the
``_stext`` .. ``_etext`` and ``_sinittext`` .. ``_einittext`` symbols, as
``scripts/kallsyms.c`` does). Then each recovered address must be the debug
vmlinux's (moved by ``KERNELOFFSET``), and every data symbol oomdrgn's commands
asked drgn's debug info for must be recovered, or be one oomdrgn fails on
(exit 4 naming it) rather than take for absent.
"""


import pytest

from oomdrgn.core import errors
from oomdrgn.core.elffile import symbol_values
from oomdrgn.core.errors import OomdrgnError
from oomdrgn.core.kallsyms import Kallsyms, read_kallsyms
from oomdrgn.core.layoutcache import Layout
from oomdrgn.core.symrecover import WANTED, Recovered, recover_symbols
from oomdrgn.drgn import nodebug
from oomdrgn.drgn.btfport import BtfPort
from oomdrgn.drgn.program import open_program

from .damage import Corpus
from .oracle import panic_dump_once, run_oomdrgn, symbols_asked

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]

#: Commands whose symbol questions are recorded (a panic dump: an OOM in progress).
COMMANDS = (["oom-report", "--json"], ["show-mem"], ["tasks", "--badness"],
            ["victim", "--all"], ["score"], ["report"], ["tasks", "--memcg", "/"],
            ["oom-report", "--memcg", "/"], ["explain", "1"], ["html", "-o", "-"])
#: recovered from arm64 code with their size (BTF has no VAR for them): the
#: memcg OOM report's memory.stat tables
SIZED = ("memory_stats", "mem_cgroup_events_index", "memcg_vm_event_stat", "mem_cgroup_stats_index",
         "taint_flags")
#: recovered from arm64 code, where the kernel has them
FROM_CODE = SIZED + ("fault_around_bytes", "fault_around_pages", "printk_time", "console_msg_format", "slab_caches")
_ENDS = ("_stext", "_etext", "_sinittext", "_einittext")
_MASK64 = (1 << 64) - 1


class Dump:
    """A panic dump: what the commands asked drgn's debug info, the function-only
    kallsyms, and what was recovered from it and the BTF in memory."""

    def __init__(self, vmcore: str, vmlinux: str, config: str) -> None:
        self.vmlinux = vmlinux
        with open(config) as f:
            self.kallsyms_all = "CONFIG_KALLSYMS_ALL=y\n" in f.read()
        _, self.asked, failed = symbols_asked(vmcore, vmlinux, COMMANDS)
        assert not failed, failed
        self.prog = open_program(core=vmcore, debug_info="btf")
        self.info = nodebug._vmcoreinfo(self.prog)
        self.kaslr = int(self.info.get("KERNELOFFSET", "0"), 16)
        self.arch = "aarch64" if "NUMBER(kimage_voffset)" in self.info else "x86_64"
        read = nodebug._reader(self.prog)
        full = read_kallsyms(read, self.info)
        assert full.all_symbols == self.kallsyms_all
        ends = {k: v + self.kaslr for k, (v, _) in symbol_values(vmlinux, _ENDS).items()}
        self.text = _text_only(full, ends)
        self.btf, self.btf_at, _ = nodebug._memory_btf(self.prog, self.text, self.arch)
        self.recovered = recover_symbols(read, self.text, self.info, self.btf, self.arch,
                                         True, self.btf_at)

    def truth(self, names):
        """The debug vmlinux's addresses of *names*, moved by KERNELOFFSET
        (x86-64's zero-based per-CPU symbols are not moved)."""
        return {k: (v + self.kaslr) & _MASK64 if v >> 63 else v
                for k, (v, _) in symbol_values(self.vmlinux, names).items()}


def _text_only(ks: Kallsyms, ends: dict) -> Kallsyms:
    """*ks* as ``scripts/kallsyms.c`` without ``--all-symbols`` keeps it
    (``symbol_valid()``: in a text range, an end symbol only for itself)."""
    keep = []
    for name, kind, address in zip(ks.names, ks.types, ks.addresses):
        for begin, end in (("_stext", "_etext"), ("_sinittext", "_einittext")):
            if ends[begin] <= address <= ends[end] and (address != ends[end] or name == end):
                keep.append((name, kind, address))
                break
    names, kinds, addresses = zip(*keep)
    return Kallsyms(list(names), "".join(kinds), list(addresses))


@pytest.fixture
def dump(kernel, panic, open_dumps):
    return panic_dump_once(open_dumps, Dump, kernel, panic)


def test_recovered_symbols_are_the_vmlinux_ones(kernel, dump, record_property):
    rec = dump.recovered
    truth = dump.truth(list(rec.symbols))
    wrong = {n: (hex(a), hex(truth[n]) if n in truth else None)
             for n, (a, _) in rec.symbols.items() if truth.get(n) != a}
    assert not wrong
    named = sorted(n for n in rec.symbols if not rec.how[n].startswith("BTF"))
    record_property("recovered", " ".join(f"{n}({rec.how[n]})" for n in named))
    print(f"{kernel.name}: {len(rec.symbols)} recovered ({len(named)} besides per-CPU "
          f"variables): " + ", ".join(f"{n} ({rec.how[n]})" for n in named)
          + "; missing: " + ", ".join(f"{n} ({w})" for n, w in sorted(rec.missing.items())))
    # The export table, VMCOREINFO and the layout work on both architectures;
    # per-CPU variables where the BTF has a .data..percpu DATASEC (not 5.10's).
    names = ["init_task", "_totalram_pages", "__per_cpu_offset", "__cpu_online_mask",
             "node_states", "cgrp_dfl_root", "memory_cgrp_subsys", "prb", "init_uts_ns",
             "vm_node_stat", "vm_zone_stat", "gfpflag_names", "vmstat_text", "nr_node_ids",
             "taint_flags"]
    if dump.btf.datasec(".data..percpu"):
        names.append("runqueues")
    if dump.arch == "aarch64":
        names += [n for n in FROM_CODE if n in dump.truth(FROM_CODE)]
    for name in names:
        assert name in rec.symbols, (name, rec.missing.get(name))
    # Sizes derived from the code's loop bounds and BTF's counts: the vmlinux's.
    sizes = symbol_values(dump.vmlinux, SIZED)
    assert {n: rec.symbols[n][1] for n in SIZED if n in rec.symbols} == {
        n: sizes[n][1] for n in SIZED if n in rec.symbols}
    # What BTF says the kernel's era has not, the vmlinux has not either.
    assert rec.absent.keys().isdisjoint(dump.truth(list(rec.absent))), rec.absent


def test_every_data_symbol_the_commands_ask_for(kernel, dump, record_property):
    """Each symbol the commands asked drgn's debug info for that function-only
    kallsyms lacks is recovered, or oomdrgn fails on it (never taken for absent);
    on arm64 (where the code is read) every one is recovered."""
    lacks = sorted(n for n, answer in dump.asked.items()
                   if answer is not None and dump.text.lookup(n) is None)
    assert lacks
    record_property("lacks", " ".join(lacks))
    unknown = [n for n in lacks if n not in dump.recovered.symbols and n not in WANTED]
    assert not unknown
    if dump.arch == "aarch64":
        missing = {n: dump.recovered.missing.get(n) for n in lacks
                   if n not in dump.recovered.symbols and n != "tnts"}  # before v4.10
        # (the debug vmlinux's addresses beside the candidates, where one is missed)
        assert not missing, (missing, {n: hex(a) for n, a in dump.truth(list(missing)).items()})
    # And the commands ask for nothing absent that a function-only kallsyms would
    # take for absent while the kernel has it.
    absent = [n for n, answer in dump.asked.items() if answer is None]
    assert not [n for n in absent if n in dump.recovered.symbols]


def test_unrecovered_symbol_fails_closed(kernel, dump):
    """The port of a function-only kallsyms: a wanted symbol not recovered is an
    error naming it (exit 4); a name nobody looks for is absent (None)."""
    rec = Recovered(dict(dump.recovered.symbols), dict(dump.recovered.how), {})
    del rec.symbols["init_task"]
    rec.missing["init_task"] = "export table: not the idle task"
    port = BtfPort(dump.prog, lambda: (dump.btf, dump.text, rec),
                   Layout("", 0, ""), dump.kaslr)
    with pytest.raises(OomdrgnError) as e:
        port.symbol("init_task")
    assert e.value.status == errors.EXIT_DEBUGINFO
    assert "no symbol init_task" in str(e.value) and "CONFIG_KALLSYMS_ALL" in str(e.value)
    assert port.symbol("no_such_symbol_anywhere") is None
    assert port.symbol("_totalram_pages") == dump.recovered.symbols["_totalram_pages"]


@pytest.mark.kernels("6.1-arm64")
def test_damaged_code_fails_closed(kernel, panic, tmp_path, monkeypatch):
    # kstrdup_const()'s code zeroed: .rodata's bounds cannot be recovered, and
    # the table (its format is found in .rodata) says so in one line, exit 4.
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path / "layouts"))
    corpus = Corpus(panic.vmcores["elf"], kernel.vmlinux, tmp_path)
    sym = corpus.prog.symbol("kstrdup_const")
    dump = corpus.patched("code", [(sym.address, bytes(sym.size))])
    res = run_oomdrgn("-c", dump, "tasks", check_status=None)
    assert res.returncode == errors.EXIT_DEBUGINFO, res.stderr
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no symbol __start_rodata" in lines[0], res.stderr
    assert "CONFIG_KALLSYMS_ALL" in lines[0] and "kstrdup_const" in lines[0]
