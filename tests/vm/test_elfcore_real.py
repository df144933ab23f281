"""The table and the decision (``tasks``, ``victim``, ``score``, ``kill``) of an
ELF vmcore with no debugger at all (:mod:`oomdrgn.elfcore`),
the first dump of a build (types and symbols from the kernel's BTF and kallsyms
in the dump, the layout then saved) and the next (the layout cache), prints
what drgn's run with no debug info prints (which tests/vm/test_real_kernels.py
holds to the kernel's table; there, with the session's warm cache, the CLI takes
this way too, text and JSON)."""

import io

import pytest

from oomdrgn.cli import build_parser
from oomdrgn.commands.subcommands import run_command
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program
from oomdrgn.elfcore.open import cached_reader
from oomdrgn.elfcore.port import CachedPort, Unanswered

from .oracle import run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]


def _run(reader, core, *argv):
    out = io.StringIO()
    assert run_command(reader, build_parser().parse_args(["-c", core, *argv]), out) == 0
    return out.getvalue()


def _tasks(reader, core):
    return _run(reader, core, "tasks")


#: what the dump answers with no debugger: the table and the decision, text and JSON
COMMANDS = (("tasks",), ("tasks", "--badness"), ("victim", "--all"), ("victim", "--json"),
            ("score",), ("kill", "VICTIM"))


@pytest.mark.parametrize("moment", ["killed", "memcg_killed"])
def test_table_and_decision_without_a_debugger_are_drgns(kernel, moment, request, tmp_path, monkeypatch):
    art = request.getfixturevalue(moment)
    core = str(art.vmcores["elf"])
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    drgn_reader = reader_for(open_program(core=core, debug_info="btf"))
    victim = _run(drgn_reader, core, "victim").split()[2]  # "victim: pid N (comm) ..."
    commands = [tuple(victim if a == "VICTIM" else a for a in c) for c in COMMANDS]
    drgns = {c: _run(drgn_reader, core, *c) for c in commands}
    for run in ("cold", "warm"):
        opened = cached_reader(core)
        assert opened is not None
        reader, sources = opened
        assert ("types from the kernel's BTF at" if run == "cold"
                else "from the layout cache") in sources, sources
        # 7.x's table sums per-CPU counters, some in vmalloc'd per-CPU chunks;
        # 6.1-arm64's kallsyms holds functions only (its data symbols recovered,
        # no _end): read through the kernel's page tables in the dump. No
        # question goes to drgn (Unanswered would fail here).
        for c in commands:
            assert _run(reader, core, *c) == drgns[c], c
        # The CLI takes that way, and says where types and symbols came from
        # (a cold run saves the layout: the next command finds it).
        cli = run_oomdrgn("-c", core, "tasks")
        assert cli.stdout == drgns[("tasks",)]
        assert f"oomdrgn: {sources}\n" in cli.stderr
        if run == "cold":
            assert "types from the kernel's BTF at" in cli.stderr, cli.stderr
            assert list(tmp_path.glob("*.json")), "the layout learnt is saved"
        cli = run_oomdrgn("-c", core, "victim", "--all")
        assert cli.stdout == drgns[("victim", "--all")]
        assert "oomdrgn: no debug info: types and symbols from the layout cache" in cli.stderr


def test_mapped_memory_is_drgns(kernel, killed, tmp_path, monkeypatch):
    """Memory only the kernel's page tables map (each task's vmapped stack, the
    per-CPU chunks), read through them from the dump, is what drgn reads: x86-64
    with 4 or 5 levels, arm64 4 KiB pages with a 52-bit VA (LPA2) and 16 KiB."""
    from drgn import FaultError
    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.pid import for_each_task

    from oomdrgn.core.elffile import core_notes, load_segments
    from oomdrgn.core.rawimage import PhysicalMemory, elf_banks, parse_vmcoreinfo

    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    core = str(killed.vmcores["elf"])
    prog = open_program(core=core, vmlinux=[str(kernel.vmlinux)])
    arch, notes = core_notes(core)
    text = next(desc for name, desc in notes if name == b"VMCOREINFO").rstrip(b"\0")
    info = parse_vmcoreinfo(text)
    port = CachedPort(PhysicalMemory(elf_banks(core, load_segments(core))), info, text,
                      None, arch)
    addresses = [t.stack.value_() for t in for_each_task(prog) if t.stack.value_()]
    unit = prog["pcpu_unit_offsets"][0].value_()  # CPU 0's unit in each chunk
    for slot in range(prog["pcpu_nr_slots"].value_()):
        for chunk in list_for_each_entry("struct pcpu_chunk",
                                         prog["pcpu_chunk_lists"][slot].address_of_(), "list"):
            addresses.append((chunk.base_addr.value_() + unit) & (2**64 - 1))
    mapped = [a for a in addresses if not port._direct[0] <= a < port._direct[1]]
    assert len(mapped) > 10, "vmapped stacks expected"
    page = int(info["PAGESIZE"])
    read = 0
    for address in mapped:
        try:
            drgns = prog.read(address, page)
        except FaultError:
            drgns = None
        try:
            ours = port.read(address, page)
        except Unanswered:  # drgn's answer is taken
            ours = None
        assert ours == drgns, hex(address)
        read += ours is not None
    assert read > 10, (read, len(mapped))


def test_drgn_takes_over_with_what_was_learnt(kernel, killed, tmp_path, monkeypatch, capsys):
    """Where the run with no debugger stops (anything it does not answer), the
    CLI opens the dump with drgn and hands on the layout, BTF, kallsyms and
    recovered symbols it read: drgn's port parses nothing again, prints what
    it prints, and the stderr says where types and symbols came from."""
    from oomdrgn import cli
    from oomdrgn.core.kernel import KernelReader
    from oomdrgn.drgn import nodebug

    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    core = str(killed.vmcores["elf"])
    drgns = _tasks(reader_for(open_program(core=core, debug_info="btf")), core)
    capsys.readouterr()
    static = KernelReader.dump_tasks_static

    def stop_without_a_debugger(self):
        if isinstance(self.target, CachedPort):
            raise Unanswered("a question only drgn answers")
        return static(self)

    def parse_again(*args, **kwargs):
        raise AssertionError("drgn's port parsed BTF and kallsyms again")

    monkeypatch.setattr(KernelReader, "dump_tasks_static", stop_without_a_debugger)
    monkeypatch.setattr(nodebug, "_load", parse_again)
    assert cli.main(["-c", core, "tasks"]) == 0
    out, err = capsys.readouterr()
    assert out == drgns
    assert "oomdrgn: no debug info: types from the kernel's BTF at" in err, err
    assert list(tmp_path.glob("*.json")), "the layout learnt is saved"
