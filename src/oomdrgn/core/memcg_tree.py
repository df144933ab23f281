"""The memory cgroups of a target, as a tree (``css_for_each_descendant_pre()``
from the memory controller's root), over the target port.

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`.
"""

from __future__ import annotations

from typing import List, Tuple

from . import cgroup
from .errors import ReadError
from .port import Fault

__all__ = ["memcg_tree"]


def memcg_tree(reader) -> List[Tuple[str, int]]:
    """(path, depth) of every online memcg, pre-order, the root (``/``) first.

    A cgroup without the memory controller (cgroup v2: not in its parent's
    ``subtree_control``) has no memcg of its own and is left out, with its
    subtree (none of it can have one either). Removed cgroups still referenced
    (``CSS_ONLINE`` clear) are left out.
    """
    ssid = reader.target.constant("memory_cgrp_id")
    if ssid is None:
        return []  # a kernel without CONFIG_MEMCG
    try:
        root = cgroup._memcg_root(reader) or (reader.symbol_address("cgrp_dfl_root")
                                              + reader.offset("struct cgroup_root", "cgrp"))
        self_off = reader.offset("struct cgroup", "self")
        subsys = reader.offset("struct cgroup", f"subsys[{ssid}]")
        flags = reader.offset("struct cgroup_subsys_state", "flags")
        online = reader.target.constant("CSS_ONLINE") or 0
        out: List[Tuple[str, int]] = []
        stack = [(root, "", 0)]
        while stack:
            cgrp, path, depth = stack.pop()
            if not reader.read_int(cgrp + subsys):
                continue
            out.append((path or "/", depth))
            kids = []
            for css in cgroup._children(reader, cgrp + self_off):
                child = css - self_off
                if online and not reader.read_int(css + flags, 4) & online:
                    continue
                kids.append((child, f"{path}/{cgroup._cgroup_name(reader, child)}", depth + 1))
            stack.extend(reversed(kids))
        return out
    except Fault as e:
        raise ReadError(f"memory cgroups unreadable: {e}") from None
