"""Damaged real dumps and live failures: never a traceback, never a silent wrong row."""

import re
import subprocess

import pytest

from oomdrgn.core import errors

from .damage import GARBAGE, Corpus
from .oracle import run_oomdrgn

# x86-64 dumps only: the damage corpus is read by the same core on every
# architecture; arm64 truncation is in test_real_kernels.py.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]


@pytest.fixture(scope="module")
def corpus(kernel, panic, tmp_path_factory):
    return Corpus(panic.vmcores["elf"], kernel.vmlinux, tmp_path_factory.mktemp("corpus"))


def _rows(art):
    return [l for l in art.table_lines if l.startswith("[") and not l.startswith("[  pid  ]")]


def _victim(art, name):
    return next(int(re.match(r"\[\s*(\d+)\]", l).group(1)) for l in _rows(art)
                if l.endswith(" " + name))


def _check_partial(res, panic, pid, reason):
    """Exit 7, the damaged row marked with its pid and reason, every other row exact."""
    assert res.returncode == errors.EXIT_PARTIAL, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stdout.splitlines()
    bad = [l for l in lines if "<unreadable:" in l]
    assert len(bad) == 1 and re.match(rf"\[\s*{pid}\] <unreadable: .*{reason}", bad[0]), bad
    good = [l for l in lines if "<unreadable:" not in l]
    assert good == [l for l in panic.table_lines if not l.startswith(f"[{pid:7d}]")]


@pytest.mark.parametrize("member,reason", [("mm", "mm 0xffffdead00000000 unreadable"),
                                           ("signal", "unreadable"),
                                           ("real_cred", "unreadable")])
def test_task_pointer_to_garbage(kernel, panic, corpus, member, reason):
    pid = _victim(panic, "pop-plain")
    task = corpus.task(pid)
    dump = corpus.patched(f"{member}-garbage", [(corpus.field(task, member), corpus.word(GARBAGE))])
    try:
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", check_status=None)
        _check_partial(res, panic, pid, reason)
        js = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", "--json",
                         check_status=None)
        assert js.returncode == errors.EXIT_PARTIAL and '"unreadable"' in js.stdout
    finally:
        dump.unlink()


def test_thread_list_to_garbage(kernel, panic, corpus):
    pid = _victim(panic, "pop-threads")
    signal = corpus.task(pid).signal
    head = corpus.field(signal, "thread_head")
    dump = corpus.patched("threads-garbage", [(head, corpus.word(GARBAGE))])
    try:
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", check_status=None)
        _check_partial(res, panic, pid, "thread list unreadable")
    finally:
        dump.unlink()


def test_task_list_that_loops(kernel, panic, corpus):
    # The task after pop-user points back to pop-protected: a cycle.
    first = corpus.task(_victim(panic, "pop-protected"))
    later = corpus.task(_victim(panic, "pop-user"))
    target = corpus.field(first, "tasks")
    dump = corpus.patched("loop", [(corpus.field(later, "tasks"), corpus.word(target))])
    try:
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", check_status=None)
        assert res.returncode == errors.EXIT_PARTIAL, res.stderr
        lines = res.stdout.splitlines()
        assert "list loops" in lines[-1] and "<unreadable:" in lines[-1]
        # Up to the cycle, the kernel's rows.
        assert lines[:-1] == panic.table_lines[:len(lines) - 1]
    finally:
        dump.unlink()


@pytest.mark.parametrize("fraction", [0.00001, 0.001, 0.3, 0.9])
def test_truncated_elf(kernel, panic, corpus, fraction):
    dump = corpus.truncated(fraction)
    try:
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", check_status=None)
        assert "Traceback" not in res.stderr
        if res.returncode == errors.EXIT_TARGET:
            assert len(res.stderr.strip().splitlines()) == 1
            assert res.stderr.startswith("oomdrgn: error: ")
            return
        # The dump opened: it says it is truncated, and every row it prints is
        # the kernel's or marked unreadable (exit 7), never a silent wrong one.
        assert "is truncated" in res.stderr
        assert res.returncode in (0, errors.EXIT_PARTIAL), res.stderr
        good = [l for l in res.stdout.splitlines() if "<unreadable:" not in l]
        assert set(good) <= set(panic.table_lines)
        if res.returncode == 0:
            assert res.stdout.splitlines() == panic.table_lines
    finally:
        dump.unlink()


def test_vmlinux_without_debug_info(kernel, panic, tmp_path):
    # This build's vmlinux without DWARF: types from the kernel's BTF, symbols
    # from its kallsyms, the same table.
    stripped = tmp_path / "vmlinux.nodebug"
    subprocess.run(["objcopy", "--strip-debug", str(kernel.vmlinux), str(stripped)], check=True)
    res = run_oomdrgn("-c", panic.vmcore, "-s", stripped, "tasks")
    assert res.stdout.splitlines() == panic.table_lines
    assert "oomdrgn: no debug info: types " in res.stderr


def test_no_vmlinux_found(kernel, panic):
    # No -s and nothing under /usr/lib/debug for this build: the kernel's own BTF
    # and kallsyms; --debug-info dwarf insists on DWARF and names the package.
    res = run_oomdrgn("-c", panic.vmcore, "tasks")
    assert res.stdout.splitlines() == panic.table_lines
    assert "oomdrgn: no debug info: types " in res.stderr
    res = run_oomdrgn("-c", panic.vmcore, "--debug-info", "dwarf", "tasks", check_status=None)
    assert res.returncode == errors.EXIT_DEBUGINFO
    assert f"install linux-image-{kernel.release}-dbg" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_zero_filled_task(kernel, panic, corpus):
    """A page of zeros where a task_struct was (as a dump tool fills what it could
    not save): the list walk stops at it with a marked row, nothing is invented."""
    pid = _victim(panic, "pop-shmem")
    task = corpus.task(pid)
    # The slab object, not sizeof(struct task_struct): x86's ends in an FPU
    # state sized at boot (arch_task_struct_size, 7944 of 9344 bytes on 5.10
    # under QEMU), and zeroing the static size also zeroed the next task.
    size = corpus.prog["task_struct_cachep"].object_size.value_()
    dump = corpus.patched("zero-task", [(task.value_(), bytes(size))])
    try:
        res = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks", check_status=None)
        assert res.returncode == errors.EXIT_PARTIAL, res.stderr
        assert "Traceback" not in res.stderr
        lines = res.stdout.splitlines()
        assert "<unreadable:" in lines[-1]
        good = [l for l in lines if "<unreadable:" not in l]
        # Every printed row is the kernel's, in the kernel's order, up to the hole.
        assert good == panic.table_lines[:len(good)]
        assert not any(l.endswith(" pop-shmem") for l in good)
    finally:
        dump.unlink()
