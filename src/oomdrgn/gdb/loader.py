"""Sourced by GDB: registers ``lx-oom``, ``lx-oom-kaslr`` and ``$lx_oom_score_adj``.

    $ gdb -ex "source $(python -m oomdrgn.gdb)" vmlinux

GDB's embedded Python is the system python3, which does not see a venv: this
file loads the ``oomdrgn`` package it sits in by path, and nothing else of its
site-packages (the GDB side needs only the standard library, never drgn). It
finds itself from its code object's file name, not ``__file__``: sourced from
another Python script (``gdb.execute("source ...")``), ``__file__`` is that
script's. Importing this module outside GDB does nothing.
"""

from __future__ import annotations


def _oomdrgn_gdb_load() -> None:
    import importlib
    import importlib.util
    import os
    import sys

    import gdb

    here = os.path.realpath(sys._getframe().f_code.co_filename)
    pkg = os.path.dirname(os.path.dirname(here))  # .../oomdrgn
    init = os.path.join(pkg, "__init__.py")
    if not os.path.isfile(init):
        raise gdb.GdbError(f"oomdrgn-gdb: {here} is not inside the oomdrgn package")
    loaded = sys.modules.get("oomdrgn")
    if loaded is None:
        spec = importlib.util.spec_from_file_location("oomdrgn", init,
                                                      submodule_search_locations=[pkg])
        if spec is None or spec.loader is None:
            raise gdb.GdbError(f"oomdrgn-gdb: cannot load {init}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["oomdrgn"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["oomdrgn"]
            raise
    elif os.path.realpath(os.path.dirname(loaded.__file__ or "")) != pkg:
        raise gdb.GdbError(f"oomdrgn-gdb: another oomdrgn is already loaded "
                           f"({loaded.__file__}), not {pkg}")
    importlib.import_module("oomdrgn.gdb.command")  # registers the commands


if __name__ == "__main__":  # sourced by GDB: its scripts run as __main__
    try:
        _oomdrgn_gdb_load()
    finally:
        del _oomdrgn_gdb_load
