"""Source oomdrgn's GDB loader into the system ``gdb`` the three ways a user does."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

__all__ = ["HOWS", "assert_loaded", "gdb_load"]

#: directly; from a ``python`` command; from a Python script that is itself sourced
#: (there ``__file__`` is the outer script's)
HOWS = ("source", "python-execute", "script-file")


def gdb_load(loader: str, how: str, workdir: Path,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``gdb -batch -nx`` loading ``loader`` by ``how``, then ``help lx-oom`` and
    the file ``oomdrgn`` was imported from (``oomdrgn from PATH``)."""
    gdb = shutil.which("gdb")
    if not gdb:
        raise AssertionError("gdb not found: apt-get install gdb (scripts/setup.sh does)")
    if how == "source":
        load = f"source {loader}"
    elif how == "python-execute":
        load = f"python gdb.execute({f'source {loader}'!r})"
    elif how == "script-file":
        outer = workdir / "outer-gdbinit.py"
        outer.write_text(f"import gdb\ngdb.execute({f'source {loader}'!r})\n")
        load = f"source {outer}"
    else:
        raise ValueError(how)
    cmd = [gdb, "-batch", "-nx", "-ex", load, "-ex", "help lx-oom",
           "-ex", "python import oomdrgn; print('oomdrgn from', oomdrgn.__file__)"]
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=workdir,
                          env=env)


def assert_loaded(res: subprocess.CompletedProcess, package_dir: Path) -> None:
    """``lx-oom`` answered its help, from the oomdrgn in ``package_dir``, cleanly."""
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Traceback" not in out and "Python Exception" not in out, out
    assert "usage: lx-oom" in res.stdout and "Undefined command" not in out, out
    origin = res.stdout.rpartition("oomdrgn from ")[2].strip()
    assert Path(origin).resolve() == (package_dir / "__init__.py").resolve(), out
