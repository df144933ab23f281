"""Load oomdrgn's drgn commands without installing it.

    DRGN_PLUGINS=oomdrgn=plugin/oomdrgn_drgn.py drgn -c vmcore -s vmlinux
    >>> %oom tasks
"""

import os
import sys

_src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
if os.path.isdir(os.path.join(_src, "oomdrgn")) and _src not in sys.path:
    sys.path.insert(0, os.path.abspath(_src))

import oomdrgn.drgn.command  # noqa: E402,F401  (registers %oom)
