"""``tasks`` of an ELF vmcore with no debugger at all (:mod:`oomdrgn.elfcore`),
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
from oomdrgn.elfcore.port import Unanswered

from .oracle import run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]


def _tasks(reader, core):
    out = io.StringIO()
    assert run_command(reader, build_parser().parse_args(["-c", core, "tasks"]), out) == 0
    return out.getvalue()


@pytest.mark.parametrize("moment", ["killed", "memcg_killed"])
def test_table_without_a_debugger_is_drgns(kernel, moment, request, tmp_path, monkeypatch):
    art = request.getfixturevalue(moment)
    core = str(art.vmcores["elf"])
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    drgns = _tasks(reader_for(open_program(core=core, debug_info="btf")), core)
    for run in ("cold", "warm"):
        opened = cached_reader(core)
        if kernel.name == "6.1-arm64":
            # Function-only kallsyms: its data symbols are recovered on drgn's way.
            assert opened is None
        else:
            assert opened is not None
            reader, sources = opened
            assert ("types from the kernel's BTF at" if run == "cold"
                    else "from the layout cache") in sources, sources
            try:
                assert _tasks(reader, core) == drgns
            except Unanswered:
                # Per-CPU counters summed (7.x's table) live in per-CPU chunks that
                # may be vmalloc'd: page tables, so drgn's way (the CLI falls back).
                assert reader.info.rules["table"] == "percpu-sum"
        # The CLI takes that way (drgn's where it must: what the first way
        # learnt handed on), and says where types and symbols came from.
        cli = run_oomdrgn("-c", core, "tasks")
        assert cli.stdout == drgns
        if opened is not None:
            assert f"oomdrgn: {sources}\n" in cli.stderr
        if run == "cold":
            assert "types from the kernel's BTF at" in cli.stderr, cli.stderr
            assert list(tmp_path.glob("*.json")), "the layout learnt is saved"
