"""Debian's other x86-64 flavours (:data:`FLAVOUR_KERNEL_NAMES`: ``6.12-rt``,
``linux-image-rt-amd64``, PREEMPT_RT) at one kill moment each: the table, the
victim, its kill line and ``oom-kill:`` summary as the kernel printed them,
the whole ``oom-report``, then every command the same without debug info.

What PREEMPT_RT changes where oomdrgn reads: ``struct mutex`` is an rt_mutex,
so ``oom_lock``'s owner (the OOM's current, where neither a panic nor a
debugger's stop says) is ``rtmutex.owner``; without it a dump read without
debug info could not tell which task hit the OOM without unwinding stacks
(oomdrgn's own port of ELF vmcores asked drgn).
The whole suite on a flavour would add ~6 minutes of CI a kernel: these are
the questions a flavour answers differently.
"""

import json
import re

import pytest

from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program
from oomdrgn.testing.harness import FLAVOUR_KERNEL_NAMES

from . import test_elfcore_real as elfcore
from .oracle import run_oomdrgn
from .test_nodebug_commands import assert_as_with_dwarf
from .test_oom_report import _check_parts, _kernel_report

pytestmark = [pytest.mark.vm, pytest.mark.kernels(*FLAVOUR_KERNEL_NAMES),
              pytest.mark.timeout(1800)]


def test_the_flavours_are_there():
    # kernels.list names them, and they were fetched: nothing here skips.
    assert "6.12-rt" in FLAVOUR_KERNEL_NAMES


def test_oom_lock_owner_is_the_oom_task(kernel, killed):
    reader = reader_for(open_program(core=str(killed.vmcore), vmlinux=[str(kernel.vmlinux)]))
    config = kernel.config.read_text()
    if "CONFIG_PREEMPT_RT=y" in config.splitlines():
        with pytest.raises(LookupError):  # the rt_mutex layout, not the plain one
            reader.target.member("struct mutex", "owner")
    owner = reader.mutex_owner("oom_lock")
    assert owner and reader.task(owner).pid in killed.pids["oomhog"]
    assert reader.current_task() == owner


def test_kill_moment_is_the_kernels(kernel, killed):
    base = ["-q", "-c", killed.vmcore, "-s", kernel.vmlinux]
    res = run_oomdrgn(*base, "tasks")
    assert res.stdout == "".join(line + "\n" for line in killed.table_lines)
    pid = int(re.search(r",pid=(\d+),uid=", killed.summary_line)[1])
    assert json.loads(run_oomdrgn(*base, "victim", "--json").stdout)["chosen_pid"] == pid
    assert run_oomdrgn(*base, "summary", pid).stdout == killed.summary_line + "\n"
    assert run_oomdrgn(*base, "kill", killed.victim_pid).stdout == killed.kill_line + "\n"
    # The whole report, part by part; Mem-Info: equal, or each printed value
    # between the dump at __show_mem()'s call and this one (or a proven move).
    doc = json.loads(run_oomdrgn(*base, "oom-report", "--json").stdout)
    _check_parts(_kernel_report(killed), doc, memcg=False, kernel=kernel, art=killed, fmt="elf")


def test_every_command_as_with_dwarf(kernel, killed):
    assert_as_with_dwarf(kernel, killed)


@pytest.mark.parametrize("moment", ["killed", "memcg_killed"])
def test_no_question_goes_to_drgn(kernel, moment, request, tmp_path, monkeypatch):
    # The dump read without any debugger, as on the suite's kernels (the CLI
    # would fall back to drgn, slower, where oomdrgn's own port cannot answer).
    elfcore.test_table_and_decision_without_a_debugger_are_drgns(
        kernel, moment, request, tmp_path, monkeypatch)
