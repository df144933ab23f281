"""The tree is clean under ruff and mypy, as ``pyproject.toml`` configures them.

Both run with this interpreter from the checkout's root (found from this file, so
any clone passes), under CI's ``scripts/test.sh`` like every test; neither writes
a cache into the tree.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF_PATHS = ("src", "tests", "bench", "scripts", "plugin", "examples")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_is_clean():
    res = _run("ruff", "check", "--no-cache", *RUFF_PATHS)
    assert res.returncode == 0, f"ruff check {' '.join(RUFF_PATHS)}:\n{res.stdout}{res.stderr}"


@pytest.mark.skipif(sys.version_info < (3, 10),
                    reason="the pinned mypy (pyproject.toml's test extra) needs Python 3.10+")
def test_mypy_is_clean(tmp_path):
    # files, python_version and the untyped modules (drgn, gdb...): [tool.mypy].
    res = _run("mypy", "--cache-dir", str(tmp_path))
    assert res.returncode == 0, f"mypy:\n{res.stdout}{res.stderr}"
