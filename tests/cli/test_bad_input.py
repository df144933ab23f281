"""Whole-target failures: one line on stderr, a distinct exit status, no traceback."""

import os
import subprocess
import sys

import pytest

from oomdrgn.core import errors


def oomdrgn(*args, user=None):
    cmd = [sys.executable, "-m", "oomdrgn.cli", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def assert_one_line_error(res, status, *words):
    assert res.returncode == status, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("oomdrgn: error: ")
    for w in words:
        assert w in lines[0]
    assert res.stdout == ""


def test_missing_vmcore(tmp_path):
    res = oomdrgn("-c", str(tmp_path / "nope"), "tasks")
    assert_one_line_error(res, errors.EXIT_TARGET, "no such vmcore")


def test_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert_one_line_error(oomdrgn("-c", str(tmp_path / "empty"), "tasks"),
                          errors.EXIT_TARGET, "empty file")


def test_directory(tmp_path):
    assert_one_line_error(oomdrgn("-c", str(tmp_path), "tasks"), errors.EXIT_TARGET,
                          "is a directory")


def test_not_a_core(tmp_path):
    (tmp_path / "text").write_text("hello, this is not a vmcore\n")
    assert_one_line_error(oomdrgn("-c", str(tmp_path / "text"), "tasks"), errors.EXIT_TARGET,
                          "not a vmcore")


def test_unreadable_file(tmp_path):
    f = tmp_path / "secret"
    f.write_bytes(b"\x7fELF" + bytes(60))
    f.chmod(0)
    tmp_path.chmod(0o755)
    os.chmod(tmp_path.parent, 0o755)
    res = oomdrgn("-c", str(f), "tasks", user=65534)
    assert_one_line_error(res, errors.EXIT_PERMISSION, "permission denied")


def test_live_kernel_needs_root():
    res = oomdrgn("-k", "tasks", user=65534)
    assert_one_line_error(res, errors.EXIT_PERMISSION, "needs root")


def test_bad_arguments_are_usage_errors():
    res = oomdrgn("-c", "x", "kill", "notapid")
    assert res.returncode == errors.EXIT_USAGE
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [["--help"], ["tasks", "--help"], ["kill", "--help"]])
def test_help(argv):
    res = oomdrgn(*argv)
    assert res.returncode == 0 and "usage:" in res.stdout
