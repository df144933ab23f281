"""The checkout's GDB loaders in the system GDB: ``python -m oomdrgn.gdb``'s file
and ``plugin/oomdrgn-gdb.py``, each sourced directly, from a ``python`` command
and from another sourced Python script (whose ``__file__`` GDB keeps)."""

import subprocess
import sys
from pathlib import Path

import pytest

import oomdrgn

from .gdbload import HOWS, assert_loaded, gdb_load

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(oomdrgn.__file__).parent


def test_module_prints_the_loader_path():
    res = subprocess.run([sys.executable, "-m", "oomdrgn.gdb"], capture_output=True,
                         text=True, check=True)
    path = Path(res.stdout.strip())
    assert path.is_absolute() and path.resolve() == PACKAGE / "gdb" / "loader.py"


@pytest.mark.parametrize("how", HOWS)
def test_loader(how, tmp_path):
    assert_loaded(gdb_load(str(PACKAGE / "gdb" / "loader.py"), how, tmp_path), PACKAGE)


@pytest.mark.parametrize("how", HOWS)
def test_checkout_plugin(how, tmp_path):
    assert_loaded(gdb_load(str(ROOT / "plugin" / "oomdrgn-gdb.py"), how, tmp_path),
                  ROOT / "src" / "oomdrgn")


def test_loader_twice_is_harmless(tmp_path):
    loader = str(PACKAGE / "gdb" / "loader.py")
    (tmp_path / "twice.py").write_text(
        f"import gdb\ngdb.execute({f'source {loader}'!r})\ngdb.execute({f'source {loader}'!r})\n")
    assert_loaded(gdb_load(str(tmp_path / "twice.py"), "source", tmp_path), PACKAGE)
