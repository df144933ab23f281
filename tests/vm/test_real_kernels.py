"""oomdrgn's output equals, byte for byte, what each real kernel printed: every
x86-64 and arm64 kernel, each dump in ELF and kdump-zlib, read on this host."""

import json
import re

import pytest

from oomdrgn.core.diskdump import DiskDump, block_size_mismatch
from oomdrgn.core.elffile import elf_machine

from .oracle import FORMATS, check_fast_path, run_oomdrgn

# One scenario is 10-25 s under TCG; the first test of each fixture pays for it.
pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _table_rows(art):
    # The console's rows, without title and header.
    return [l for l in art.table_lines if l.startswith("[") and not l.startswith("[  pid  ]")]


def test_kernel_files_are_the_lists(kernel):
    assert elf_machine(str(kernel.vmlinux)) == kernel.machine
    assert kernel.release.endswith("-" + kernel.flavour)


def test_panic_was_on_that_kernel(kernel, panic):
    # The guest's own boot log names the release (and on arm64 the machine).
    text = "\n".join(panic.console_lines)
    assert kernel.release in text
    if kernel.arch == "arm64":
        assert "Machine model: linux,dummy-virt" in text
    assert any(l.startswith("Kernel panic - not syncing: Out of memory")
               for l in panic.console_lines)


def test_page_size_is_the_kernels(kernel, killed):
    # 6.12-arm64-16k: 16 KiB pages, so K(x) = x << 4 in the kill line. QEMU 7.2
    # writes arm64 kdumps in 64 KiB blocks: diskdump.py reads them, not libkdumpfile.
    config = kernel.config.read_text()
    m = re.search(r"^CONFIG_ARM64_(4|16|64)K_PAGES=y$", config, re.M)
    kib = int(m.group(1)) if kernel.arch == "arm64" else 4
    assert (kib == 16) == kernel.flavour.endswith("-16k")
    dump = DiskDump(str(killed.vmcores["kdump-zlib"]))
    try:
        assert dump.page_size == kib * 1024
        sizes = (dump.block_size, dump.page_size)
        assert block_size_mismatch(dump.path) == (sizes if sizes[0] != sizes[1] else None)
    finally:
        dump.close()
    values = re.findall(r"(?:total-vm|anon-rss|file-rss|shmem-rss):(\d+)kB", killed.kill_line)
    assert len(values) == 4 and all(int(v) % kib == 0 for v in values), killed.kill_line


@pytest.mark.parametrize("fraction", [0.001, 0.5])
def test_truncated_kdump(kernel, panic, tmp_path, fraction):
    # Cut kdumps (libkdumpfile's, or diskdump.py's 64 KiB-block ones): one line.
    data = panic.vmcores["kdump-zlib"].read_bytes()
    cut = tmp_path / "vmcore.cut"
    cut.write_bytes(data[:int(len(data) * fraction)])
    res = run_oomdrgn("-c", cut, "-s", kernel.vmlinux, "tasks", check_status=None)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("oomdrgn: ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_panic_table_is_the_kernels(kernel, panic, fmt):
    assert len(_table_rows(panic)) >= 12, panic.table_lines
    res = run_oomdrgn("-c", panic.vmcores[fmt], "-s", kernel.vmlinux, "tasks")
    assert res.stdout == printed(panic.table_lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_moment_table_is_the_kernels(kernel, killed, fmt):
    res = run_oomdrgn("-c", killed.vmcores[fmt], "-s", kernel.vmlinux, "tasks")
    assert res.stdout == printed(killed.table_lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_line_is_the_kernels(kernel, killed, fmt):
    assert killed.kill_line and "(kv-victim)" in killed.kill_line, killed.kill_line
    res = run_oomdrgn("-c", killed.vmcores[fmt], "-s", kernel.vmlinux, "kill", killed.victim_pid)
    assert res.stdout == killed.kill_line + "\n"


def test_kill_line_by_tgid_of_exited_leader(kernel, killed):
    # The victim's leader exited: any pid of the group names the same line.
    tgid = int(re.search(r"pid=(\d+),uid=", killed.summary_line).group(1))
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "kill", tgid)
    assert res.stdout == killed.kill_line + "\n"


def test_memcg_prefix(kernel, killed):
    res = run_oomdrgn("-c", killed.vmcore, "-s", kernel.vmlinux, "-q", "kill", "--memcg",
                      killed.victim_pid)
    assert res.stdout == killed.kill_line.replace("Out of memory:", "Memory cgroup out of memory:",
                                                  1) + "\n"


def test_json_rows_carry_the_printed_values(kernel, panic):
    res = run_oomdrgn("-c", panic.vmcore, "-s", kernel.vmlinux, "-q", "tasks", "--json")
    doc = json.loads(res.stdout)
    header = next(l for l in panic.table_lines if l.startswith("[  pid  ]")).split()[3:]
    rows = _table_rows(panic)
    assert len(doc["rows"]) == len(rows)
    for obj, line in zip(doc["rows"], rows):
        pid, rest = re.match(r"\[\s*(\d+)\]\s+(.*)", line).groups()
        values = [pid] + rest.split()
        assert obj["pid"] == int(values[0]) and obj["name"] == values[-1]
        for key, text in zip(header[:-1], values[1:-1]):
            assert obj[key] == int(text), (key, line)


def test_rules_named_on_stderr(kernel, panic):
    res = run_oomdrgn("-c", panic.vmcore, "-s", kernel.vmlinux, "kill", 1, check_status=None)
    assert "format found in the kernel's .rodata" in res.stderr
    assert "counters:" in res.stderr


@pytest.mark.parametrize("percpu", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_fast_path_reads_what_drgn_objects_read(kernel, killed, percpu, fmt):
    check_fast_path(killed.vmcores[fmt], kernel.vmlinux, percpu)
