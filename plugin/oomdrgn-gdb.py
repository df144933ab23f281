"""Load oomdrgn's GDB commands (lx-oom, lx-oom-kaslr, $lx_oom_score_adj) from a checkout.

    (gdb) source /path/to/oomdrgn/plugin/oomdrgn-gdb.py
    (gdb) target remote :1234
    (gdb) lx-oom-kaslr /path/to/vmlinux
    (gdb) lx-oom tasks

or put the ``source`` line in ~/.gdbinit. An installed oomdrgn needs no checkout:
``source $(python -m oomdrgn.gdb)``. This file runs the package's own loader
(``oomdrgn/gdb/loader.py``), taken from this checkout's ``src/``, else from
wherever GDB's Python finds ``oomdrgn``, else from a venv beside the checkout.
The checkout is found from this file's code object, not ``__file__`` (which is
the outer script's when this file is sourced from another Python script).
"""


def _oomdrgn_gdb_plugin() -> None:
    import glob
    import importlib.util
    import os
    import runpy
    import sys

    import gdb

    here = os.path.realpath(sys._getframe().f_code.co_filename)
    root = os.path.dirname(os.path.dirname(here))
    loader = os.path.join("oomdrgn", "gdb", "loader.py")
    candidates = [os.path.join(root, "src", loader)]
    spec = importlib.util.find_spec("oomdrgn")
    if spec is not None and spec.origin:
        candidates.append(os.path.join(os.path.dirname(os.path.dirname(spec.origin)), loader))
    candidates += sorted(glob.glob(os.path.join(root, ".venv", "lib", "python3*",
                                                "site-packages", loader)))
    for path in candidates:
        if os.path.isfile(path):
            runpy.run_path(path, run_name="__main__")
            return
    raise gdb.GdbError(f"oomdrgn-gdb: cannot find oomdrgn (looked in {root}/src, sys.path "
                       f"and {root}/.venv): install it and source $(python -m oomdrgn.gdb)")


if __name__ == "__main__":
    try:
        _oomdrgn_gdb_plugin()
    finally:
        del _oomdrgn_gdb_plugin
