"""``python -m oomdrgn.gdb``: print the path of the file GDB sources to get ``lx-oom``.

    $ gdb -ex "source $(python -m oomdrgn.gdb)" vmlinux
    $ echo "source $(python -m oomdrgn.gdb)" >> ~/.gdbinit

Runs outside GDB (with the Python that has oomdrgn installed, venv included); the
printed file then loads this very package into GDB's own Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

__all__ = ["loader_path", "main"]


def loader_path() -> str:
    """The absolute path of ``oomdrgn/gdb/loader.py`` of this installation."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "loader.py")


def main(argv: Optional[List[str]] = None) -> int:
    argparse.ArgumentParser(prog="python -m oomdrgn.gdb", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter
                            ).parse_args(argv)
    print(loader_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
