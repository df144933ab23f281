"""kallsyms read from each real kernel's memory (:mod:`oomdrgn.core.kallsyms`, no
debug info), against that kernel's debug info and what it printed.

The table is read where VMCOREINFO says (v6.0+) and, on every kernel, found by
its layout alone (VMCOREINFO's ``kallsyms_*`` lines dropped; 5.10 has none).
Oracles: drgn's own kallsyms reader (``load_vmlinux_kallsyms``, v6.0+), the
addresses drgn's debug info gives for every symbol oomdrgn's commands ask for,
the vmlinux symbol table moved by ``KERNELOFFSET``, and the ``%pB``/``%pS`` names,
offsets and sizes the kernel printed in its call traces.
"""

import collections
import re
import time

import drgn
import pytest

from oomdrgn.core.elffile import symbol_values
from oomdrgn.core.kallsyms import MAX_SYMBOL_LENGTH, read_kallsyms
from oomdrgn.core.kallsyms_sorted import SortedKallsyms
from oomdrgn.core.port import Fault
from oomdrgn.core.rawimage import parse_vmcoreinfo

from .oracle import panic_dump_once, symbols_asked

pytestmark = pytest.mark.vm

#: Linker symbols oomdrgn reads ranges with (``.rodata``, ``.BTF``, the image).
LINKER = ("_text", "_stext", "_etext", "_sinittext", "_einittext", "__init_begin",
          "__init_end", "__start_rodata", "__end_rodata", "__start_BTF", "__stop_BTF",
          "_sdata", "_edata", "__bss_start", "__bss_stop", "_end")
#: Commands whose symbol questions are recorded (a panic dump: an OOM in progress).
COMMANDS = (["oom-report", "--json"], ["show-mem"], ["tasks", "--badness"],
            ["victim", "--all"], ["score"], ["report"], ["tasks", "--memcg", "/"])
#: A call trace line of the kernel image (``name+0xoff/0xsize``): x86's ``? `` marks
#: a guess, arm64's `` (C)``-like suffix (7.x here) the unwinder's source.
FRAME = re.compile(r"^\s*(?:\? )?([\w.$]+)\+0x([0-9a-f]+)/0x([0-9a-f]+)(?: \([A-Z]+\))?$")


class Dump:
    """One dump opened once: the program, its VMCOREINFO, both kallsyms readings,
    and the symbols oomdrgn's commands asked the drgn port for."""

    def __init__(self, vmcore: str, vmlinux: str, config: str) -> None:
        self.vmlinux = vmlinux
        with open(config) as f:
            self.kallsyms_all = "CONFIG_KALLSYMS_ALL=y\n" in f.read()
        self.prog, self.asked, self.failed = symbols_asked(vmcore, vmlinux, COMMANDS)
        self.vmcoreinfo = parse_vmcoreinfo(self.prog["VMCOREINFO"].string_())
        self.kaslr = int(self.vmcoreinfo.get("KERNELOFFSET", "0"), 16)
        self.listed = "SYMBOL(kallsyms_names)" in self.vmcoreinfo
        started = time.perf_counter()
        self.by_vmcoreinfo = read_kallsyms(self.read, self.vmcoreinfo) if self.listed else None
        self.seconds = {"vmcoreinfo": time.perf_counter() - started}
        started = time.perf_counter()
        self.by_layout = read_kallsyms(self.read, {k: v for k, v in self.vmcoreinfo.items()
                                                   if "kallsyms" not in k})
        self.seconds["layout"] = time.perf_counter() - started

    def read(self, address: int, size: int) -> bytes:
        try:
            return self.prog.read(address, size)
        except drgn.FaultError as e:
            raise Fault(str(e), address) from None

    @property
    def kallsyms(self):
        return self.by_vmcoreinfo or self.by_layout

    def kept(self, name: str, address: int) -> bool:
        """Whether ``scripts/kallsyms.c`` keeps a symbol (``symbol_valid()``): all
        with ``--all-symbols`` (CONFIG_KALLSYMS_ALL), else those of ``_stext`` ..
        ``_etext`` and ``_sinittext`` .. ``_einittext`` (bounds from the vmlinux
        symbol table), not those at an end but the end symbols themselves."""
        if self.kallsyms_all:
            return True
        ends = {k: v + self.kaslr for k, (v, _) in symbol_values(
            self.vmlinux, ("_stext", "_etext", "_sinittext", "_einittext")).items()}
        for begin, end in (("_stext", "_etext"), ("_sinittext", "_einittext")):
            if ends[begin] <= address <= ends[end]:
                return address != ends[end] or name == end
        return False


@pytest.fixture
def dump(kernel, panic, open_dumps):
    """The panic dump (ELF) of *kernel*, opened once (one kernel's at a time)."""
    return panic_dump_once(open_dumps, Dump, kernel, panic)


def _table(ks):
    return list(zip(ks.names, ks.types, ks.addresses))


def test_layout_search_finds_the_table_vmcoreinfo_names(kernel, dump, record_property):
    ks = dump.by_layout
    record_property("symbols", len(ks))
    for how, seconds in dump.seconds.items():
        record_property(f"{how}_seconds", round(seconds, 3))
    print(f"{kernel.name}: {len(ks)} symbols, read in "
          + ", ".join(f"{s:.3f} s ({how})" for how, s in dump.seconds.items() if dump.listed
                      or how == "layout"))
    assert len(ks) > 10000 and "_stext" in ks
    # Data symbols (init_task...) only with CONFIG_KALLSYMS_ALL (not Debian's 6.1 arm64).
    assert ks.all_symbols == dump.kallsyms_all
    if dump.listed:
        assert _table(dump.by_vmcoreinfo) == _table(ks)
    else:  # before 5fd8fea935a1 ("vmcoreinfo: include kallsyms symbols") (in v6.0)
        assert not any("kallsyms" in k for k in dump.vmcoreinfo)


# drgn reads kallsyms only where VMCOREINFO lists the tables (v6.0+): 5.10 has no
# such oracle (its table is checked against the debug symbols below).
@pytest.mark.kernels("6.1", "6.12", "7.x", "6.1-arm64", "6.12-arm64", "6.12-arm64-16k")
def test_same_table_as_drgn_kallsyms(kernel, dump):
    assert dump.listed
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
    theirs = load_vmlinux_kallsyms(dump.prog)(dump.prog, None, None, False)
    ks = dump.by_vmcoreinfo
    # drgn's size: to the next entry, 0 for the last or past MAX_SYMBOL_LENGTH.
    gaps = [b - a for a, b in zip(ks.addresses, ks.addresses[1:])] + [MAX_SYMBOL_LENGTH]
    mine = collections.Counter((n, a, g if g < MAX_SYMBOL_LENGTH else 0)
                               for n, a, g in zip(ks.names, ks.addresses, gaps))
    assert mine == collections.Counter((s.name, s.address, s.size) for s in theirs)
    # The type characters: drgn's kind of each (FUNC for t, OBJECT for data).
    kinds = {(s.name, s.address): s.kind for s in theirs}
    for name, kind, address in _table(ks):
        low = kind.lower()
        want = (drgn.SymbolKind.FUNC if low == "t" else
                drgn.SymbolKind.OBJECT if low in "bcdgrv" else drgn.SymbolKind.UNKNOWN)
        assert kinds[(name, address)] == want, (name, kind)


# kallsyms_seqs_of_names: v6.2+, and Debian's 6.1 (backported); where VMCOREINFO
# names the tables (v6.0+). 6.1 puts it before the token table, 6.12 and 7.x after
# the offsets.
@pytest.mark.kernels("6.1", "6.12", "7.x", "6.1-arm64", "6.12-arm64", "6.12-arm64-16k")
def test_lookups_by_name_through_the_kernels_index(kernel, dump, record_property):
    """Lookups by name through the kernel's sorted index, with no table decoded,
    answer as the whole table: a sample of every name, every symbol oomdrgn's
    commands ask for, and names that are not there."""
    started = time.perf_counter()
    ks = read_kallsyms(dump.read, dump.vmcoreinfo)
    record_property("sorted_open_seconds", round(time.perf_counter() - started, 4))
    assert isinstance(ks, SortedKallsyms)
    whole = ks._full()
    sample = (whole.names[::37] + list(dump.asked)
              + [n + "_" for n in whole.names[::997]] + ["", "~", "\x7f"])
    for name in sample:
        assert ks.lookup(name) == whole.lookup(name), name
        assert ks.type_of(name) == whole.type_of(name), name
    assert ks.all_symbols == whole.all_symbols == dump.kallsyms_all
    assert ks._table is None and len(ks) == len(whole)
    print(f"{kernel.name}: {len(sample)} lookups through kallsyms_seqs_of_names, "
          f"{len(ks._blocks)} of {(len(ks) + 255) >> 8} blocks walked")


def test_every_symbol_oomdrgn_asks_for(kernel, dump, record_property):
    """Every symbol oomdrgn's commands asked the drgn port (debug info's variables,
    then the ELF symbol table) is in kallsyms at the same address if
    ``scripts/kallsyms.c`` kept it, and kallsyms has none the debug info lacks."""
    assert not dump.failed
    assert len(dump.asked) > 20
    ks = dump.kallsyms
    lacks = []
    for name, answer in dump.asked.items():
        got = ks.lookup(name)
        if answer is None:
            assert got is None, name
        elif dump.kept(name, answer[0]):
            assert got is not None and got[0] == answer[0], name
        else:
            assert got is None, name
            lacks.append(name)
    record_property("kallsyms_lacks", " ".join(sorted(lacks)))
    print(f"{kernel.name}: {len(dump.asked)} symbols asked; kallsyms lacks "
          f"{len(lacks)}: {' '.join(sorted(lacks)) or '-'}")


def test_linker_symbols(kernel, dump, record_property):
    """The section bounds oomdrgn uses are in kallsyms where ``scripts/kallsyms.c``
    keeps them, where the vmlinux symbol table puts them moved by KERNELOFFSET
    (drgn leaves arm64's absolute ``_end`` unmoved)."""
    ks = dump.kallsyms
    elf = {k: v + dump.kaslr for k, (v, _) in symbol_values(dump.vmlinux, LINKER).items()}
    present = [name for name in LINKER if name in ks]
    record_property("linker_symbols_in_kallsyms", " ".join(present))
    print(f"{kernel.name}: linker symbols in kallsyms: {' '.join(present)}; "
          f"not: {' '.join(n for n in LINKER if n not in ks) or '-'}")
    assert set(present) == {name for name in LINKER if dump.kept(name, elf[name])}
    for name in present:
        assert ks.address_of(name) == elf[name], name


def test_name_at_gives_what_the_kernel_printed(kernel, panic, dump):
    """The kernel's call traces (``name+0xoff/0xsize``): kallsyms puts the same
    name, offset and size at that address. x86 prints them with ``%pB``
    (``printk_stack_address()``: looked up at the address - 1, a return address
    may be past its function's end), arm64 with ``%pS`` (``dump_backtrace_entry()``)."""
    ks = dump.kallsyms
    back = 1 if kernel.arch == "amd64" else 0
    starts = collections.defaultdict(list)
    for name, address in zip(ks.names, ks.addresses):
        starts[name].append(address)
    frames = [m.groups() for m in map(FRAME.match, panic.console_lines) if m]
    assert len(frames) >= 8
    for name, off, size in frames:
        off, size = int(off, 16), int(size, 16)
        assert any(ks.name_at(s + off - back) == (name, s, size) for s in starts[name]), name
        assert any(ks.name_at(s) == ks.name_at(s + size - 1) == (name, s, size)
                   for s in starts[name]), name
