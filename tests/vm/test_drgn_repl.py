"""A real ``drgn -c vmcore`` REPL runs ``%oom`` (the installed drgn.plugins entry point)."""

import os
import shutil

import pexpect
import pytest

# x86-64 only: loading %oom into drgn's console does not depend on the architecture.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]

PROMPT = "\r\n>>> "


def _command(child, line):
    """Run one REPL line; return what it printed (without the echo), LF line ends."""
    child.sendline(line)
    child.expect_exact(line + "\r\n")
    child.expect_exact(PROMPT)
    return child.before.replace("\r\n", "\n") + "\n"


def test_oom_commands_in_drgn_repl(kernel, killed):
    drgn = shutil.which("drgn", path=os.path.dirname(os.path.realpath(os.sys.executable)))
    drgn = drgn or os.path.join(os.path.dirname(os.sys.executable), "drgn")
    child = pexpect.spawn(drgn, ["-c", str(killed.vmcores["elf"]), "-s", str(kernel.vmlinux)],
                          env=dict(os.environ, TERM="dumb", NO_COLOR="1"), encoding="utf-8",
                          timeout=180, dimensions=(50, 4000))
    try:
        child.expect_exact("For help, type help(drgn).")
        child.expect_exact(">>> ")
        assert _command(child, "%oom tasks") == "".join(l + "\n" for l in killed.table_lines)
        assert _command(child, f"%oom kill {killed.victim_pid}") == killed.kill_line + "\n"
        assert "invalid choice: 'bogus'" in _command(child, "%oom bogus")
        assert "no task with PID 4000000" in _command(child, "%oom kill 4000000")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
