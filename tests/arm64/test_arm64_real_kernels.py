"""oomdrgn's output, read on this x86-64 host from dumps of arm64 guests, equals
byte for byte what each real arm64 kernel printed."""

import json
import re

import pytest

from oomdrgn.core.diskdump import DiskDump, block_size_mismatch
from oomdrgn.core.elffile import elf_machine

from ..vm.oracle import FORMATS, check_fast_path, run_oomdrgn

# One scenario is 15-25 s under TCG; the first test of each fixture pays for it.
pytestmark = [pytest.mark.vm, pytest.mark.arm64, pytest.mark.timeout(300)]


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _table_rows(art):
    return [l for l in art.table_lines if l.startswith("[") and not l.startswith("[  pid  ]")]


def _summary_pid(art):
    return int(re.search(r",pid=(\d+),uid=", art.summary_line).group(1))


def test_kernel_is_arm64(arm64_kernel):
    assert elf_machine(str(arm64_kernel.vmlinux)) == "aarch64"
    assert arm64_kernel.release.endswith("-" + arm64_kernel.flavour)
    assert arm64_kernel.flavour in ("cloud-arm64", "arm64-16k")


def test_panic_was_on_arm64(arm64_kernel, arm64_panic):
    # The guest's own boot log names the architecture and the release.
    text = "\n".join(arm64_panic.console_lines)
    assert "Machine model: linux,dummy-virt" in text
    assert arm64_kernel.release in text
    assert any(l.startswith("Kernel panic - not syncing: Out of memory")
               for l in arm64_panic.console_lines)


def test_page_size_is_the_kernels(arm64_kernel, arm64_killed):
    # 6.12-arm64-16k: 16 KiB pages, so K(x) = x << 4 in the kill line. QEMU 7.2
    # still writes 64 KiB blocks: diskdump.py reads them, not libkdumpfile.
    config = arm64_kernel.config.read_text()
    kib = int(re.search(r"^CONFIG_ARM64_(4|16|64)K_PAGES=y$", config, re.M).group(1))
    assert (kib == 16) == arm64_kernel.flavour.endswith("-16k")
    dump = DiskDump(str(arm64_killed.vmcores["kdump-zlib"]))
    try:
        assert dump.page_size == kib * 1024
        sizes = (dump.block_size, dump.page_size)
        assert block_size_mismatch(dump.path) == (sizes if sizes[0] != sizes[1] else None)
    finally:
        dump.close()
    values = re.findall(r"(?:total-vm|anon-rss|file-rss|shmem-rss):(\d+)kB",
                        arm64_killed.kill_line)
    assert len(values) == 4 and all(int(v) % kib == 0 for v in values), arm64_killed.kill_line


@pytest.mark.parametrize("fmt", FORMATS)
def test_panic_table_is_the_kernels(arm64_kernel, arm64_panic, fmt):
    assert len(_table_rows(arm64_panic)) >= 12, arm64_panic.table_lines
    res = run_oomdrgn("-c", arm64_panic.vmcores[fmt], "-s", arm64_kernel.vmlinux, "tasks")
    assert res.stdout == printed(arm64_panic.table_lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_moment_table_is_the_kernels(arm64_kernel, arm64_killed, fmt):
    res = run_oomdrgn("-c", arm64_killed.vmcores[fmt], "-s", arm64_kernel.vmlinux, "tasks")
    assert res.stdout == printed(arm64_killed.table_lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_line_is_the_kernels(arm64_kernel, arm64_killed, fmt):
    art = arm64_killed
    assert art.kill_line and "(kv-victim)" in art.kill_line, art.kill_line
    res = run_oomdrgn("-c", art.vmcores[fmt], "-s", arm64_kernel.vmlinux, "kill", art.victim_pid)
    assert res.stdout == art.kill_line + "\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_victim_is_the_one_the_kernel_killed(arm64_kernel, arm64_killed, fmt):
    art = arm64_killed
    res = run_oomdrgn("-c", art.vmcores[fmt], "-s", arm64_kernel.vmlinux, "-q", "victim",
                      "--json")
    sel = json.loads(res.stdout)
    assert sel["chosen_pid"] == _summary_pid(art)
    assert [c["pid"] for c in sel["candidates"] if c["verdict"] == "chosen"] == [_summary_pid(art)]
    text = run_oomdrgn("-c", art.vmcores[fmt], "-s", arm64_kernel.vmlinux, "-q", "victim").stdout
    assert text.startswith(f"victim: pid {_summary_pid(art)} (kv-victim) points ")


def test_summary_line_is_the_kernels(arm64_kernel, arm64_killed):
    art = arm64_killed
    res = run_oomdrgn("-c", art.vmcore, "-s", arm64_kernel.vmlinux, "-q", "summary",
                      _summary_pid(art))
    assert res.stdout == art.summary_line + "\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_memcg_table_is_the_kernels(arm64_kernel, arm64_memcg_panicked, fmt):
    art = arm64_memcg_panicked
    assert art.memcg == "/job"
    res = run_oomdrgn("-c", art.vmcores[fmt], "-s", arm64_kernel.vmlinux, "-q", "tasks",
                      "--memcg", art.memcg)
    assert res.stdout == printed(art.table_lines)


@pytest.mark.parametrize("fraction", [0.001, 0.5])
def test_truncated_kdump(arm64_kernel, arm64_panic, tmp_path, fraction):
    # oomdrgn reads these 64 KiB-block files itself (4 or 16 KiB pages): damage
    # ends in one line too.
    data = arm64_panic.vmcores["kdump-zlib"].read_bytes()
    cut = tmp_path / "vmcore.cut"
    cut.write_bytes(data[:int(len(data) * fraction)])
    res = run_oomdrgn("-c", cut, "-s", arm64_kernel.vmlinux, "tasks", check_status=None)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("oomdrgn: ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_fast_path_reads_what_drgn_objects_read(arm64_kernel, arm64_killed, fmt):
    check_fast_path(arm64_killed.vmcores[fmt], arm64_kernel.vmlinux, percpu=True)
