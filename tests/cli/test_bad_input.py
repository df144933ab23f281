"""Whole-target failures: one line on stderr, a distinct exit status, no traceback."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from oomdrgn.core import errors

from ..runner import run_oomdrgn
from .unprivileged import as_user, python_for, world_readable_site

NOBODY = 65534


def oomdrgn(*args):
    return run_oomdrgn(*args, check_status=None, timeout=120)


class Nobody:
    """oomdrgn run as uid 65534 from a world-readable copy in :attr:`dir`, so that
    the clone's directory may have any mode (0700 under /root)."""

    def __init__(self, top: Path) -> None:
        self.dir = top
        self.site = world_readable_site(top / "site")
        self.executable = python_for(NOBODY)
        self.env = dict(os.environ, PYTHONPATH=str(self.site))

    def python(self, *args: str) -> subprocess.CompletedProcess:
        cmd = as_user(NOBODY, [self.executable, "-s", *args])
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env=self.env, cwd=self.site)

    def oomdrgn(self, *args: str) -> subprocess.CompletedProcess:
        return self.python("-m", "oomdrgn.cli", *args)


@pytest.fixture(scope="module")
def nobody():
    top = Path(tempfile.mkdtemp(prefix="oomdrgn-nobody-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield Nobody(top)
    finally:
        shutil.rmtree(top)


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


def test_nobody_runs_the_copy_of_this_oomdrgn(nobody):
    res = nobody.python("-c", "import drgn, oomdrgn.cli; print(oomdrgn.__file__)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(nobody.site / "oomdrgn" / "__init__.py")


def test_unreadable_file(nobody):
    # In a directory uid 65534 may search: only the file's own mode denies it.
    f = nobody.dir / "secret"
    f.write_bytes(b"\x7fELF" + bytes(60))
    f.chmod(0)
    res = nobody.oomdrgn("-c", str(f), "tasks")
    assert_one_line_error(res, errors.EXIT_PERMISSION, "permission denied")


def test_live_kernel_needs_root(nobody):
    res = nobody.oomdrgn("-k", "tasks")
    assert_one_line_error(res, errors.EXIT_PERMISSION, "needs root")


def test_bad_arguments_are_usage_errors():
    res = oomdrgn("-c", "x", "kill", "notapid")
    assert res.returncode == errors.EXIT_USAGE
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [["--help"], ["tasks", "--help"], ["kill", "--help"]])
def test_help(argv):
    res = oomdrgn(*argv)
    assert res.returncode == 0 and "usage:" in res.stdout
