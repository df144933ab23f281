"""The one way tests run the ``oomdrgn`` command: this venv's CLI in a subprocess."""

import subprocess
import sys
from typing import Optional, Sequence

__all__ = ["OOMDRGN", "run_oomdrgn"]

#: the command line of the CLI under test
OOMDRGN: Sequence[str] = (sys.executable, "-m", "oomdrgn.cli")


def run_oomdrgn(*args, check_status: Optional[int] = 0,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``oomdrgn ARGS``; returns the CompletedProcess (stdout, stderr text).

    :param check_status: the exit status asserted (None: not checked)
    """
    res = subprocess.run([*OOMDRGN, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    if check_status is not None:
        assert res.returncode == check_status, res.stderr
    return res
