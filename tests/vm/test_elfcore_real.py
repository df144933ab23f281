"""``tasks`` of an ELF vmcore with no debugger at all (:mod:`oomdrgn.elfcore`):
once a run through drgn has filled the build's layout cache, the next run reads
the dump through its own segments and the cache, and prints what drgn's run
printed (which tests/vm/test_real_kernels.py holds to the kernel's table; there,
with the session's warm cache, the CLI takes this way too, text and JSON)."""

import io

import pytest

from oomdrgn.cli import build_parser
from oomdrgn.commands.subcommands import run_command
from oomdrgn.elfcore.open import cached_reader
from oomdrgn.elfcore.port import Unanswered

from .oracle import run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]


@pytest.mark.parametrize("moment", ["killed", "memcg_killed"])
def test_table_without_a_debugger_is_drgns(kernel, moment, request, tmp_path, monkeypatch):
    art = request.getfixturevalue(moment)
    core = str(art.vmcores["elf"])
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    assert cached_reader(core) is None  # no layout of the build yet
    cold = run_oomdrgn("-c", core, "tasks")
    assert "types from the kernel's BTF" in cold.stderr, cold.stderr
    opened = cached_reader(core)
    if kernel.name == "6.1-arm64":
        # Function-only kallsyms: no _end, so no bound on the kernel image.
        assert opened is None
        return
    assert opened is not None
    reader, sources = opened
    out = io.StringIO()
    try:
        assert run_command(reader, build_parser().parse_args(["-c", core, "tasks"]), out) == 0
        assert out.getvalue() == cold.stdout
    except Unanswered:
        # Per-CPU counters summed (7.x's table) live in per-CPU chunks that
        # may be vmalloc'd: page tables, so drgn's way (the CLI falls back).
        assert reader.info.rules["table"] == "percpu-sum"
    # The CLI takes that way, and says where types and symbols came from.
    warm = run_oomdrgn("-c", core, "tasks")
    assert warm.stdout == cold.stdout
    assert f"oomdrgn: {sources}\n" in warm.stderr
    assert warm.stderr.splitlines()[1:] == cold.stderr.splitlines()[1:]  # the rules line
