"""Load oomdrgn's GDB commands (lx-oom, lx-oom-kaslr, $lx_oom_score_adj).

    (gdb) source /path/to/oomdrgn/plugin/oomdrgn-gdb.py
    (gdb) target remote :1234
    (gdb) lx-oom-kaslr /path/to/vmlinux
    (gdb) lx-oom tasks

or put the ``source`` line in ~/.gdbinit. GDB's embedded Python is the system
python3, not oomdrgn's venv: the package is taken from this checkout's
``src/`` (found from this file's real path), else from wherever ``import
oomdrgn`` finds it, else from a venv next to the checkout. The GDB side needs
no third-party package (and never drgn).
"""

import glob
import os
import sys

import gdb


def _load() -> None:
    root = os.path.dirname(os.path.dirname(os.path.realpath(os.path.expanduser(__file__))))
    src = os.path.join(root, "src")
    if os.path.isfile(os.path.join(src, "oomdrgn", "__init__.py")) and src not in sys.path:
        sys.path.insert(0, src)
    try:
        import oomdrgn  # noqa: F401
    except ImportError:
        # An installed copy in a venv beside the checkout (no .pth processing:
        # only pure-Python packages are usable from GDB's interpreter).
        for site in sorted(glob.glob(os.path.join(root, ".venv", "lib", "python3*",
                                                  "site-packages"))):
            if site not in sys.path:
                sys.path.append(site)
        try:
            import oomdrgn  # noqa: F401
        except ImportError:
            raise gdb.GdbError(f"oomdrgn-gdb: cannot import oomdrgn (looked in {src}, "
                               f"sys.path and {root}/.venv): install it or keep this "
                               "file in its checkout") from None
    import oomdrgn.gdb.command  # noqa: F401  (registers the commands)


_load()
