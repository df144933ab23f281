"""oomdrgn's output equals, byte for byte, what each real kernel printed."""

import json
import re

import pytest

from .oracle import FORMATS, check_fast_path, run_oomdrgn

pytestmark = pytest.mark.vm


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _table_rows(art):
    # The console's rows, without title and header.
    return [l for l in art.table_lines if l.startswith("[") and not l.startswith("[  pid  ]")]


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
