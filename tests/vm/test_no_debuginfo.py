"""No debug info at all: no ``-s``, nothing under the debug directories for these
builds. Types come from the kernel's BTF and symbols from its kallsyms, both
read from the dump; the table, kill line, summary, victim, scores and memcg
answers are the ones each kernel printed (the same scenarios the DWARF tests
use).

Debian's 6.1 arm64 kernel is built without ``CONFIG_KALLSYMS_ALL``: its
kallsyms has functions only (no ``init_task``, no data); the data symbols the
commands need are recovered from the dump (:mod:`oomdrgn.core.symrecover`:
the export table, BTF's per-CPU variables, the code that uses them), and the
same answers follow.
"""

import json
import re

import pytest

from oomdrgn.core import errors
from oomdrgn.core.elffile import symbol_values

from .damage import Corpus
from .oracle import FORMATS, assert_scores_are_the_guests, run_oomdrgn

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

#: every kernel: with CONFIG_KALLSYMS_ALL, or (6.1-arm64) its data symbols recovered
ALL_SYMBOLS = ("5.10", "6.1", "6.12", "7.x", "6.1-arm64", "6.12-arm64", "6.12-arm64-16k")
#: stderr without debug info: types from BTF and kallsyms, or from the layout cache
NO_DEBUG = "oomdrgn: no debug info: types "
#: ... parsed from the dump (a cold layout cache)
SOURCES = "oomdrgn: no debug info: types from the kernel's BTF at "


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _summary_pid(art):
    return int(re.search(r",pid=(\d+),uid=", art.summary_line).group(1))


@pytest.mark.kernels(*ALL_SYMBOLS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_panic_table(kernel, panic, fmt):
    res = run_oomdrgn("-c", panic.vmcores[fmt], "tasks")
    assert res.stdout == printed(panic.table_lines)
    assert NO_DEBUG in res.stderr
    assert "symbols from " in res.stderr


@pytest.mark.kernels(*ALL_SYMBOLS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_moment(kernel, killed, fmt):
    core = killed.vmcores[fmt]
    res = run_oomdrgn("-c", core, "-q", "tasks")
    assert res.stdout == printed(killed.table_lines)
    res = run_oomdrgn("-c", core, "-q", "kill", killed.victim_pid)
    assert res.stdout == killed.kill_line + "\n"
    tgid = _summary_pid(killed)
    res = run_oomdrgn("-c", core, "-q", "summary", tgid)
    assert res.stdout == killed.summary_line + "\n"
    res = run_oomdrgn("-c", core, "-q", "victim", "--json")
    assert json.loads(res.stdout)["chosen_pid"] == tgid


@pytest.mark.kernels(*ALL_SYMBOLS)
def test_memcg(kernel, memcg_panicked, memcg_killed):
    art = memcg_panicked
    res = run_oomdrgn("-c", art.vmcores["kdump-zlib"], "-q", "tasks", "--memcg", art.memcg)
    assert res.stdout == printed(art.table_lines)
    art = memcg_killed
    tgid = _summary_pid(art)
    res = run_oomdrgn("-c", art.vmcore, "-q", "victim", "--memcg", art.memcg, "--json")
    assert json.loads(res.stdout)["chosen_pid"] == tgid
    res = run_oomdrgn("-c", art.vmcore, "-q", "summary", tgid, "--memcg", art.memcg)
    assert res.stdout == art.summary_line + "\n"
    res = run_oomdrgn("-c", art.vmcore, "-q", "kill", "--memcg", art.victim_pid)
    assert res.stdout == art.kill_line + "\n"


@pytest.mark.kernels(*ALL_SYMBOLS)
def test_oom_score(kernel, idle):
    res = run_oomdrgn("-c", idle.vmcore, "-q", "score", "--json")
    assert_scores_are_the_guests(res.stdout, idle)


@pytest.mark.kernels(*ALL_SYMBOLS)
def test_raw_images(kernel, raw_killed):
    # Raw RAM images and no debug info: nothing but the memory.
    res = run_oomdrgn(*raw_killed.target_args("raw"), "tasks")
    assert res.stdout == printed(raw_killed.table_lines)
    assert NO_DEBUG in res.stderr


@pytest.mark.kernels("6.1-arm64")
def test_kallsyms_without_data_symbols(kernel, panic, tmp_path, monkeypatch):
    # Functions only in kallsyms: stderr says the data symbols were recovered,
    # and from what.
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    res = run_oomdrgn("-c", panic.vmcore, "tasks")
    assert res.stdout == printed(panic.table_lines)
    line = res.stderr.splitlines()[0]
    assert SOURCES in line and "(functions only)" in line, res.stderr
    assert re.search(r"and \d+ data symbols recovered \(VMCOREINFO, export table, BTF, "
                     r"layout, code\)$", line), line
    # The recovered symbols are kept in the layout cache as kallsyms' are (without
    # the KASLR offset: the vmlinux's link-time addresses), and a second run
    # opens from it.
    symbols = json.loads(_cache_file(tmp_path).read_text())["symbols"]
    asked = ("init_task", "__start_rodata", "__end_rodata")
    linked = symbol_values(str(kernel.vmlinux), asked)
    assert {n: symbols[n][0] for n in asked} == {n: linked[n][0] for n in asked}
    res = run_oomdrgn("-c", panic.vmcore, "tasks")
    assert res.stdout == printed(panic.table_lines)
    assert "types and symbols from the layout cache " in res.stderr, res.stderr


def _cache_file(path):
    files = list(path.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.kernels(*ALL_SYMBOLS)
def test_layout_cache(kernel, panic, killed, tmp_path, monkeypatch):
    # The first dump of a build fills the cache; the next (another boot, another
    # KASLR offset) opens from it without parsing BTF or kallsyms; an entry whose
    # BTF check fails, or made from another build, is not used.
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    res = run_oomdrgn("-c", killed.vmcore, "tasks")
    assert res.stdout == printed(killed.table_lines)
    assert SOURCES in res.stderr
    path = _cache_file(tmp_path)
    doc = json.loads(path.read_text())
    assert path.stat().st_size < 16 << 10 and doc["build_id"] == path.stem
    res = run_oomdrgn("-c", panic.vmcores["kdump-zlib"], "tasks")
    assert res.stdout == printed(panic.table_lines)
    assert "types and symbols from the layout cache " in res.stderr, res.stderr
    # What the cache does not hold yet (the kill line, the summary) loads BTF and
    # kallsyms then, and is kept.
    res = run_oomdrgn("-c", killed.vmcore, "-q", "kill", killed.victim_pid)
    assert res.stdout == killed.kill_line + "\n"
    res = run_oomdrgn("-c", killed.vmcore, "-q", "summary", _summary_pid(killed))
    assert res.stdout == killed.summary_line + "\n"
    assert len(json.loads(path.read_text())["symbols"]) > len(doc["symbols"])
    # A damaged entry (its BTF check) is not trusted: BTF and kallsyms again.
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(dict(doc, btf_check="00000000:65536")))
    res = run_oomdrgn("-c", killed.vmcore, "tasks")
    assert res.stdout == printed(killed.table_lines)
    assert SOURCES in res.stderr
    # Another build's entry under this build's name: not used either.
    path.write_text(json.dumps(dict(doc, build_id="0" * len(path.stem))))
    res = run_oomdrgn("-c", killed.vmcore, "tasks")
    assert SOURCES in res.stderr and res.stdout == printed(killed.table_lines)


@pytest.mark.kernels("5.10", "6.1", "6.12-arm64")
@pytest.mark.parametrize("damage", ["btf", "kallsyms"])
def test_damaged_btf_or_kallsyms(kernel, panic, tmp_path, damage, monkeypatch):
    # A dump whose BTF header, or kallsyms token table, is zeros: one line naming
    # what is missing and what gives it instead, exit 4, nothing on stdout. (An
    # empty layout cache: a warm one would not need kallsyms at all.)
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path / "layouts"))
    corpus = Corpus(panic.vmcores["elf"], kernel.vmlinux, tmp_path)
    if damage == "btf":
        at = corpus.prog.symbol("__start_BTF").address
        dump = corpus.patched("btf", [(at, bytes(64))])
        expect = "the kernel's BTF is damaged"
    else:
        at = corpus.prog.symbol("kallsyms_token_table").address
        dump = corpus.patched("kallsyms", [(at, bytes(1024))])
        expect = "the kernel's kallsyms cannot be read"
    res = run_oomdrgn("-c", dump, "tasks", check_status=None)
    assert res.returncode == errors.EXIT_DEBUGINFO, res.stderr
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "-s VMLINUX" in lines[0], res.stderr
    if damage == "btf":
        # The build's kernel image file (vmlinuz: a bzImage, lz4 on 5.10 and 6.1;
        # arm64's uncompressed Image) gives the types instead.
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinuz, "tasks")
        assert res.stdout == printed(panic.table_lines)
        assert f"types from the BTF of {kernel.vmlinux.parent / 'vmlinuz'} (" in res.stderr
        assert "the kernel's BTF is damaged" in res.stderr
        # Another build's image, or no image at all: one line, exit 4.
        other = next(p for p in kernel.vmlinux.parent.parent.glob("*/vmlinuz")
                     if p.parent != kernel.vmlinux.parent)
        junk = tmp_path / "junk"
        junk.write_bytes(bytes(4096))
        for path, words in ((other, "does not match the kernel"), (junk, "not a kernel image")):
            res = run_oomdrgn("-c", dump, "-s", path, "tasks", check_status=errors.EXIT_DEBUGINFO)
            lines = res.stderr.strip().splitlines()
            assert res.stdout == "" and len(lines) == 1 and words in lines[0], res.stderr
