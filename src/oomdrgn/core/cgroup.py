"""Cgroups as the OOM killer reads them, over the target port: a task's cgroup
path and name (``dump_oom_summary()``), a memcg's limits
(``mem_cgroup_get_max()``) and ``mem_cgroup_scan_tasks()`` order.

*reader* is a :class:`oomdrgn.core.kernel.KernelReader`.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

from .errors import ReadError, TargetError
from .klist import list_entries
from .model import MemcgRecord
from .port import Fault

__all__ = ["task_cgroup_path", "task_cgroup_name", "memcg_record", "mem_cgroup_scan_tasks",
           "cgroup_from_path", "memcg_path"]

_FAULTS = (Fault,)
_CSS = "struct cgroup_subsys_state"


def _word(reader, address: int) -> int:
    return reader.read_int(address)


def _ssid(reader, subsys: str) -> Optional[int]:
    return reader.target.constant(f"{subsys}_cgrp_id")


def _task_cgroup(reader, task: int, subsys: str) -> Optional[int]:
    """``task_cgroup(task, <subsys>_cgrp_id)``: ``task->cgroups->subsys[id]->cgroup``."""
    ssid = _ssid(reader, subsys)
    if ssid is None:
        return None  # kernel built without that controller
    cset = _word(reader, task + reader.offset("struct task_struct", "cgroups"))
    css = _word(reader, cset + reader.offset("struct css_set", f"subsys[{ssid}]"))
    return _word(reader, css + reader.offset(_CSS, "cgroup"))


def _kernfs_names(reader, cgrp: int) -> List[str]:
    """Names from *cgrp*'s kernfs node up to (not including) the root's."""
    kn = _word(reader, cgrp + reader.offset("struct cgroup", "kn"))
    # kernfs_node->parent is __parent since Linux kernel commit 633488947ef6
    # ("kernfs: Use RCU to access kernfs_node::parent.") (in v6.15).
    parent = "parent" if reader.has("struct kernfs_node", "parent") else "__parent"
    parent_off = reader.offset("struct kernfs_node", parent)
    name_off = reader.offset("struct kernfs_node", "name")
    names: List[str] = []
    for _ in range(4096):  # deeper than any real hierarchy: a loop
        up = _word(reader, kn + parent_off)
        if not up:
            return names
        names.append(reader.string(_word(reader, kn + name_off)))
        kn = up
    raise TargetError(f"cgroup {cgrp:#x}: kernfs parents loop")


def _guard(what: str, task: int, fn):
    try:
        return fn()
    except Fault as e:
        raise ReadError(f"{what} of task {task:#x} unreadable: {e}") from None


def task_cgroup_path(reader, task: int, subsys: str) -> Optional[str]:
    """The path of *task*'s cgroup of *subsys* (``/`` for the root)."""
    def path():
        cgrp = _task_cgroup(reader, task, subsys)
        return None if cgrp is None else "/" + "/".join(reversed(_kernfs_names(reader, cgrp)))
    return _guard("cgroup", task, path)


def task_cgroup_name(reader, task: int, subsys: str) -> Optional[str]:
    """``pr_cont_cgroup_name()``: the cgroup's own name (``/`` for the root)."""
    def name():
        cgrp = _task_cgroup(reader, task, subsys)
        if cgrp is None:
            return None
        names = _kernfs_names(reader, cgrp)
        return names[0] if names else "/"
    return _guard("cgroup", task, name)


def _children(reader, css: int) -> Iterator[int]:
    """``css_for_each_child()``: the child csses of *css*, offline included."""
    head = css + reader.offset(_CSS, "children")
    return list_entries(head, reader.offset(_CSS, "sibling"), reader.memory.read_word,
                        "cgroup children", _FAULTS)


def _cgroup_name(reader, cgrp: int) -> str:
    kn = _word(reader, cgrp + reader.offset("struct cgroup", "kn"))
    return reader.string(_word(reader, kn + reader.offset("struct kernfs_node", "name")))


def cgroup_from_path(reader, path: str, root: Optional[int] = None) -> int:
    """The cgroup of *path* (as ``cgroup_get_from_path()``) in the hierarchy whose
    top cgroup is *root* (default: the default hierarchy's, ``cgrp_dfl_root.cgrp``)."""
    cgrp = root or (reader.symbol_address("cgrp_dfl_root")
                    + reader.offset("struct cgroup_root", "cgrp"))
    self_off = reader.offset("struct cgroup", "self")
    for part in filter(None, path.strip("/").split("/")):
        found = [c - self_off for c in _children(reader, cgrp + self_off)
                 if _cgroup_name(reader, c - self_off) == part]
        if not found:
            where = "the default hierarchy" if root is None else "the memory hierarchy"
            raise TargetError(f"no cgroup {path!r} in {where}")
        # A removed cgroup stays a child until released: prefer the online one.
        online = reader.target.constant("CSS_ONLINE") or 0
        flags = reader.offset(_CSS, "flags")
        live = [c for c in found if reader.read_int(c + self_off + flags, 4) & online]
        cgrp = (live or found)[-1]
    return cgrp


def _memcg_root(reader) -> Optional[int]:
    """The top cgroup of the memory controller's hierarchy (``memory_cgrp_subsys.
    root->cgrp``): cgroup v2's, or the v1 hierarchy the controller is mounted on;
    None (the default hierarchy) where it cannot be read."""
    try:
        root = _word(reader, reader.symbol_address("memory_cgrp_subsys")
                     + reader.offset("struct cgroup_subsys", "root"))
        dfl = reader.symbol_address("cgrp_dfl_root")
    except (LookupError, ReadError):
        return None
    if not root or root == dfl:
        return None
    return root + reader.offset("struct cgroup_root", "cgrp")


def _memcg_css(reader, path: str) -> int:
    ssid = _ssid(reader, "memory")
    if ssid is None:
        raise TargetError("this kernel has no memory controller")
    try:
        # On cgroup v1, path is in the memory controller's own hierarchy.
        cgrp = cgroup_from_path(reader, path, _memcg_root(reader))
        css = _word(reader, cgrp + reader.offset("struct cgroup", f"subsys[{ssid}]"))
    except Fault as e:
        raise TargetError(f"cgroup {path!r} unreadable: {e}") from None
    if not css:
        raise TargetError(f"cgroup {path!r} has no memory controller")
    return css


def _cgroup_on_dfl(reader) -> bool:
    """``cgroup_subsys_on_dfl(memory_cgrp_subsys)``: the memory controller is on v2."""
    try:
        root = _word(reader, reader.symbol_address("memory_cgrp_subsys")
                     + reader.offset("struct cgroup_subsys", "root"))
        return root == reader.symbol_address("cgrp_dfl_root")
    except (LookupError, Fault):
        return True


def memcg_record(reader, path: str) -> MemcgRecord:
    """What ``mem_cgroup_get_max()`` reads of the memcg of cgroup v2 *path*."""
    css = _memcg_css(reader, path)
    memcg = css - reader.offset("struct mem_cgroup", "css")
    mt = "struct mem_cgroup"

    def field(designator: str, size: int = 8, signed: bool = False) -> Optional[int]:
        try:
            return reader.read_int(memcg + reader.offset(mt, designator), size, signed)
        except LookupError:
            return None

    dfl = _cgroup_on_dfl(reader)
    memsw_max = field("memsw.max")
    swappiness = reader.vm_totals().vm_swappiness
    if not dfl:
        own = field("swappiness", 4, True)
        swappiness = swappiness if own is None else own
    try:
        memory_max = reader.read_int(memcg + reader.offset(mt, "memory.max"))
    except Fault as e:
        raise TargetError(f"memcg {path!r} unreadable: {e}") from None
    return MemcgRecord(path="/" + path.strip("/"), memory_max=memory_max,
                       swap_max=field("swap.max"), memsw_max=memsw_max,
                       memsw_accounting=not dfl and memsw_max is not None,
                       swappiness=swappiness)


def _descendants_pre(reader, css: int) -> Iterator[int]:
    """``css_for_each_descendant_pre()``: *css*, then its subtree in pre-order."""
    stack = [css]
    while stack:
        pos = stack.pop()
        yield pos
        stack.extend(reversed(list(_children(reader, pos))))


def mem_cgroup_scan_tasks(reader, path: str) -> Iterator[int]:
    """``mem_cgroup_scan_tasks()``: the memcg subtree in pre-order; in each
    memcg, ``css_task_iter(CSS_TASK_ITER_PROCS)`` over its css_sets."""
    css = _memcg_css(reader, path)
    ssid = _ssid(reader, "memory")
    assert ssid is not None  # else _memcg_css() raised TargetError
    for pos in _descendants_pre(reader, css):
        yield from _css_procs(reader, pos, ssid)


def _css_procs(reader, css: int, ssid: int) -> Iterator[int]:
    cgrp = _word(reader, css + reader.offset(_CSS, "cgroup"))
    head = cgrp + reader.offset("struct cgroup", f"e_csets[{ssid}]")
    node = reader.offset("struct css_set", f"e_cset_node[{ssid}]")
    cg_list = reader.offset("struct task_struct", "cg_list")
    exit_signal = reader.offset("struct task_struct", "exit_signal")
    signal = reader.offset("struct task_struct", "signal")
    live = reader.offset("struct signal_struct", "live")
    for cset in list_entries(head, node, reader.memory.read_word, "cgroup css_set", _FAULTS):
        # tasks, then mg_tasks, then (v5.3+) dying_tasks: css_task_iter_advance().
        for name in ("tasks", "mg_tasks", "dying_tasks"):
            if not reader.has("struct css_set", name):
                continue
            lst = cset + reader.offset("struct css_set", name)
            for task in list_entries(lst, cg_list, reader.memory.read_word,
                                     f"css_set {name}", _FAULTS):
                # CSS_TASK_ITER_PROCS: leaders only, and dying leaders only
                # while some thread of theirs lives.
                if reader.read_int(task + exit_signal, 4, True) < 0:
                    continue
                if name == "dying_tasks" and not reader.read_int(
                        _word(reader, task + signal) + live, 4, True):
                    continue
                yield task


def memcg_path(reader, memcg: int) -> str:
    """The path of the cgroup of ``struct mem_cgroup *`` *memcg* (``memcg->css.cgroup``),
    as ``pr_cont_cgroup_path()`` prints it (``/`` for the root)."""
    try:
        cgrp = _word(reader, memcg + reader.offset("struct mem_cgroup", "css.cgroup"))
        return "/" + "/".join(reversed(_kernfs_names(reader, cgrp)))
    except Fault as e:
        raise ReadError(f"memcg {memcg:#x} unreadable: {e}") from None
