"""``constrained_alloc()`` and ``oom_cpuset_eligible()``: which memory the failed
allocation could use, hence ``oc->constraint``, ``oc->totalpages`` and which tasks
``select_bad_process()`` may choose (mm/oom_kill.c; the same from v5.0 to v7.x).

Read over the port: ``node_states[N_MEMORY]``, ``pgdat->node_present_pages``,
the OOM task's ``mems_allowed``, its cpuset's ancestors, ``tsk->mempolicy``.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from . import vmstat
from .badness import global_totalpages, memcg_totalpages
from .errors import ReadError
from .port import Fault
from .record import record

__all__ = ["Constraint", "constrained_alloc", "oom_cpuset_eligible", "cpuset_filter", "CONSTRAINTS"]

CONSTRAINTS = ("CONSTRAINT_NONE", "CONSTRAINT_CPUSET", "CONSTRAINT_MEMORY_POLICY",
               "CONSTRAINT_MEMCG")
PF_EXITING = 0x00000004


@record(frozen=True)
class Constraint:
    """``oc->constraint`` and what ``constrained_alloc()`` leaves in *oc*.

    :param nodemask: ``oc->nodemask`` after ``out_of_memory()`` (kept only for
        ``CONSTRAINT_MEMORY_POLICY``; NULL, here None, otherwise)
    :param current: the OOM task (``oom_cpuset_eligible()`` compares with it);
        None: unknown, every task taken as eligible
    :param why: how it was decided, for the user
    """

    name: str
    totalpages: int
    nodemask: Optional[List[int]]
    current: Optional[int]
    why: str
    numa: bool = True  # CONFIG_NUMA (else every task is eligible)


def _nodes(reader, address: int) -> List[int]:
    """A ``nodemask_t`` at *address* as node ids."""
    t = reader.target
    size = t.sizeof("nodemask_t")
    bits = int.from_bytes(t.read(address, size), "little" if t.little_endian else "big")
    return [n for n in range(size * 8) if bits >> n & 1]


def _task_nodes(reader, task: int) -> List[int]:
    return reader.mems_allowed(task)


def _present_pages(reader, nodes: Sequence[int]) -> int:
    off = reader.offset("struct pglist_data", "node_present_pages")
    return sum(reader.read_int(vmstat.node_data(reader, n) + off) for n in nodes)


def _gfp_bit(reader, name: str) -> int:
    from .gfp import parse_gfp
    try:
        return parse_gfp(reader, name)
    except ValueError:
        return 0


def _cpusets_enabled(reader) -> bool:
    """``cpusets_enabled()``: the static key counts the cpusets beyond the top one."""
    key = reader.target.symbol("cpusets_enabled_key")
    if key is None:
        return False  # a kernel without CONFIG_CPUSETS
    off = reader.offset("struct static_key_false", "key.enabled")
    return reader.read_int(key[0] + off, 4, signed=True) > 0


def _task_cpuset(reader, task: int) -> Optional[int]:
    """``task_cs(task)``: the ``struct cpuset`` of *task* (its css is the first member)."""
    ssid = reader.target.constant("cpuset_cgrp_id")
    if ssid is None:
        return None
    cset = reader.read_int(task + reader.offset("struct task_struct", "cgroups"))
    return reader.read_int(cset + reader.offset("struct css_set", f"subsys[{ssid}]")) \
        - reader.offset("struct cpuset", "css")


def _hardwall_ancestor_allows(reader, task: int, node: int) -> bool:
    """``nearest_hardwall_ancestor(task_cs(current))`` has *node* in its mems."""
    cs = _task_cpuset(reader, task)
    if cs is None:
        return True
    flags_off = reader.offset("struct cpuset", "flags")
    parent_off = reader.offset("struct cpuset", "css.parent")
    css_off = reader.offset("struct cpuset", "css")
    wall = sum(1 << b for b in (reader.target.constant("CS_MEM_EXCLUSIVE"),
                                reader.target.constant("CS_MEM_HARDWALL")) if b is not None)
    for _ in range(64):
        parent = reader.read_int(cs + parent_off)
        if reader.read_int(cs + flags_off) & wall or not parent:
            break
        cs = parent - css_off
    return node in _nodes(reader, cs + reader.offset("struct cpuset", "mems_allowed"))


def _node_allowed(reader, node: int, gfp_mask: int, current: int) -> bool:
    """``cpuset_zone_allowed()`` of a zone on *node* for *current*'s allocation
    (``__cpuset_node_allowed()``, 7.x ``cpuset_current_node_allowed()``)."""
    if node in _task_nodes(reader, current):
        return True
    rec = reader.task(current)
    if rec.oom_mm:  # tsk_is_oom_victim()
        return True
    if rec.flags & PF_EXITING:
        return True
    if gfp_mask & _gfp_bit(reader, "__GFP_HARDWALL"):
        return False
    # Since Linux kernel commit ("cgroup/cpuset: ... cpuset_v2()") (in v6.15,
    # hash not checked here) a v2 cpuset allows any node to a non-hardwall
    # allocation; before it (and for v1) the nearest hardwalled ancestor decides,
    # which on v2 is the top cpuset (all nodes): the same answer.
    return _hardwall_ancestor_allows(reader, current, node)


def _zonelist_nodes(reader, highest_zoneidx: int, nodemask: Optional[List[int]]) -> List[int]:
    """The nodes of the zones ``for_each_zone_zonelist_nodemask()`` visits: every
    node's populated zones up to *highest_zoneidx*, within *nodemask* (the
    fallback zonelist holds every node)."""
    nodes = {z.nid for z in vmstat.populated_zones(reader) if z.idx <= highest_zoneidx}
    if nodemask is not None:
        nodes &= set(nodemask)
    return sorted(nodes)


def constrained_alloc(reader, gfp_mask: int, nodemask: Optional[List[int]],
                      memcg: Optional[str], current: Optional[int],
                      zonelist: bool = True) -> Constraint:
    """``constrained_alloc(oc)``, then ``out_of_memory()``'s
    ``if (oc->constraint != CONSTRAINT_MEMORY_POLICY) oc->nodemask = NULL``.

    :param zonelist: ``oc->zonelist`` is set (not for sysrq-f: order -1)
    """
    from .gfp import gfp_zone
    totals = reader.vm_totals()
    if memcg is not None:
        return Constraint("CONSTRAINT_MEMCG", memcg_totalpages(reader.memcg(memcg), totals),
                          None, current, "memcg OOM")
    total = global_totalpages(totals)
    try:
        if reader.target.symbol("node_data") is None:
            return Constraint("CONSTRAINT_NONE", total, None, current, "no CONFIG_NUMA",
                              numa=False)
        if not zonelist:
            return Constraint("CONSTRAINT_NONE", total, None, current, "no zonelist (sysrq)")
        if gfp_mask & _gfp_bit(reader, "__GFP_THISNODE"):
            return Constraint("CONSTRAINT_NONE", total, None, current, "__GFP_THISNODE")
        swap = totals.total_swap_pages
        memory = vmstat.node_state(reader, "N_MEMORY")
        if nodemask is not None and not set(memory) <= set(nodemask):
            return Constraint("CONSTRAINT_MEMORY_POLICY",
                              swap + _present_pages(reader, nodemask), nodemask, current,
                              "the nodemask leaves out nodes with memory (a mempolicy)")
        if current is None:
            return Constraint("CONSTRAINT_NONE", total, None, None,
                              "no OOM task: cpusets not checked")
        if _cpusets_enabled(reader) and any(
                not _node_allowed(reader, nid, gfp_mask, current)
                for nid in _zonelist_nodes(reader, gfp_zone(reader, gfp_mask), nodemask)):
            mems = _task_nodes(reader, current)
            return Constraint("CONSTRAINT_CPUSET", swap + _present_pages(reader, mems), None,
                              current, "the OOM task's cpuset leaves out zones it could use")
    except Fault as e:
        raise ReadError(f"constrained_alloc(): {e}") from None
    return Constraint("CONSTRAINT_NONE", total, None, current, "all memory allowed")


def _mempolicy_in_oom_domain(reader, task: int, mask: Sequence[int]) -> bool:
    """``mempolicy_in_oom_domain()``: an MPOL_BIND policy must intersect *mask*."""
    pol = reader.read_int(task + reader.offset("struct task_struct", "mempolicy"))
    bind = reader.target.constant("MPOL_BIND")
    if not pol or bind is None:
        return True
    mode = reader.target.member("struct mempolicy", "mode")
    if reader.read_int(pol + mode.offset, mode.size) != bind:
        return True
    try:
        nodes_off = reader.offset("struct mempolicy", "nodes")
    except LookupError:
        # 269fbe72cded ("mm/mempolicy: use unified 'nodes' for bind/interleave/
        # prefer policies") (in v5.14): before it, v.nodes.
        nodes_off = reader.offset("struct mempolicy", "v.nodes")
    return bool(set(_nodes(reader, pol + nodes_off)) & set(mask))


def cpuset_filter(reader, c: Constraint) -> Optional[Callable[[int], bool]]:
    """``oom_cpuset_eligible()`` of a global OOM as a test of one task, made
    once per scan (current's nodes read once); None where every task is
    eligible (a memcg OOM, no ``CONFIG_NUMA``, no nodemask and no current task)."""
    if c.name == "CONSTRAINT_MEMCG" or not c.numa:
        return None
    if c.nodemask is None and c.current is None:
        return None
    nodemask, current = c.nodemask, c.current
    # (current is set when nodemask is None: see the return above.)
    mine = set(_task_nodes(reader, current)) if current is not None and nodemask is None \
        else set()

    def eligible(task: int) -> bool:
        """Some thread of *task* shares memory with the OOM (its mempolicy meets
        ``oc->nodemask``, else its ``mems_allowed`` meets current's)."""
        for t in reader.threads(task):
            if nodemask is not None:
                if _mempolicy_in_oom_domain(reader, t, nodemask):
                    return True
            elif mine & set(_task_nodes(reader, t)):
                return True
        return False
    return eligible


def oom_cpuset_eligible(reader, task: int, c: Constraint) -> bool:
    """``oom_cpuset_eligible(task, oc)`` of a global OOM (see :func:`cpuset_filter`)."""
    eligible = cpuset_filter(reader, c)
    return eligible is None or eligible(task)
