"""Data symbols of a kernel whose kallsyms holds functions only (built without
``CONFIG_KALLSYMS_ALL``, as Debian's 6.1 arm64 kernel), recovered from the
kernel's own memory and VMCOREINFO (standard library and core only).

Each symbol comes from one source, tried in this order, and is checked before
it is kept (a symbol that fails its check is missing, never guessed):

- VMCOREINFO's ``SYMBOL()`` lines (``init_uts_ns``, ``prb``, ...);
- the export table (:mod:`oomdrgn.core.ksymtab`): ``init_task``,
  ``_totalram_pages``, ``__per_cpu_offset``, ``node_states``... each checked
  by what it holds (``init_task`` is pid 0 ``swapper``, its task list links
  back to it...);
- BTF: per-CPU variables are VARs of the ``.data..percpu`` DATASEC, at their
  offset from ``__per_cpu_start``, itself the address of an exported per-CPU
  variable less its offset (every exported one agreeing);
- layout: ``gfpflag_names`` is the ``.rodata`` array of ``{mask, name}``
  whose first name is ``GFP_TRANSHUGE`` (include/trace/events/mmflags.h),
  ``vmstat_text`` the array of pointers to the counters' names (BTF's enum)
  (:mod:`oomdrgn.core.symrecover_layout`);
- code (arm64 only, :mod:`oomdrgn.core.symrecover_code`): the global a known
  function's instructions use, the function and the pattern named in a
  comment at each rule (``oom_lock`` is what ``oom_killer_disable()`` passes
  to ``mutex_lock_killable()``...), the result checked by what it holds; an
  array's size from the code's loop bound where BTF has no VAR for it
  (``memory_stats``).

A wanted symbol that a kernel of its era does not have is answered absent by
evidence read from BTF (:attr:`Recovered.absent`, with its reason), e.g.
``mem_cgroup_stats_index`` where ``struct memcg_vmstats``' ``state[]`` has all
``MEMCG_NR_STAT`` counters.

Symbols outside :data:`WANTED` and kallsyms are not looked for: the port
answers them as absent (functions of other eras, ``.cold`` parts).
"""

from __future__ import annotations

import collections
from typing import Callable, Dict, Mapping, Optional

from .btf import Btf
from .kallsyms import Kallsyms
from .ksymtab import KsymtabError, find_ksymtab
from .symrecover_base import MASK64, Ctx, Read, Recovered
from .symrecover_code import recover_from_code
from .symrecover_layout import gfpflag_names, taint_flags, vmstat_text

__all__ = ["Recovered", "recover_symbols", "WANTED"]

#: exported functions that find the export table (any one present will do)
_ANCHORS = ("kfree", "mutex_lock", "schedule", "memcpy", "kmalloc_trace", "__kmalloc",
            "vfree", "printk", "_printk")

#: The data symbols oomdrgn's commands ask for and this module looks for: one of
#: them not recovered makes the command that needs it fail (exit 4) naming it,
#: rather than take it for absent from the kernel.
WANTED = frozenset((
    "init_task", "_totalram_pages", "total_swap_pages", "nr_swap_pages", "__per_cpu_offset",
    "__cpu_online_mask", "__cpu_possible_mask", "__cpu_present_mask", "node_states",
    "node_data", "cgrp_dfl_root", "memory_cgrp_subsys", "cpusets_enabled_key", "oom_lock",
    "panic_cpu", "runqueues", "vm_swappiness", "__start_rodata", "__end_rodata", "prb",
    "init_uts_ns", "vm_node_stat", "vm_zone_stat", "gfpflag_names", "tainted_mask",
    "kexec_crash_image", "dump_stack_arch_desc_str", "hstates", "hugetlb_max_hstate",
    "totalcma_pages", "num_poisoned_pages", "taint_flags", "tnts", "nr_node_ids",
    "movable_zone", "memory_cgrp_subsys_enabled_key", "root_mem_cgroup", "vmstat_text",
    "fault_around_bytes", "fault_around_pages", "printk_time", "console_msg_format", "memory_stats",
    "mem_cgroup_events_index", "mem_cgroup_stats_index", "slab_caches", "memcg_vm_event_stat",
    "percpu_counter_batch",
    # Not recovered (no source, or their size is needed and unknown): a command
    # that asks for one fails naming it.
    "memcg1_stat_names", "transparent_hugepage_flags", "swap_info",
    "swapper_spaces", "swap_cache_info", "vmlinux_build_id", "vmcoreinfo_data",
    "contig_page_data", "totalram_pages", "vm_stat", "nr_swapfiles", "nr_swapper_spaces",
    "preempt_dynamic_mode", "preempt_modes"))


# Sources -----------------------------------------------------------------------

def _from_vmcoreinfo(c: Ctx) -> None:
    for key, value in c.info.items():
        if key.startswith("SYMBOL(") and key.endswith(")"):
            name = key[7:-1]
            if name in WANTED:
                c.out.add(name, int(value, 16), c.size_of(name), "VMCOREINFO")


def _from_ksymtab(c: Ctx, data: bytes, base: int) -> Dict[str, int]:
    counts = collections.Counter(c.ks.names)
    unique = {n: c.ks.addresses[c.ks.index(n)] for n, k in counts.items()  # type: ignore[index]
              if k == 1}
    anchors = {n: unique[n] for n in _ANCHORS if n in unique}
    try:
        return find_ksymtab(data, base, anchors, unique, c.little)
    except KsymtabError as e:
        for name in WANTED:
            c.out.miss(name, str(e))
        return {}


def _check_init_task(c: Ctx) -> Callable[[int], Optional[str]]:
    def check(task: int) -> Optional[str]:
        t = "struct task_struct"
        comm = c.read(task + c.off(t, "comm"), 16).split(b"\0")[0]
        if not comm.startswith(b"swapper") or c.word(task + c.off(t, "pid"), 4) != 0:
            return f"not the idle task (comm {comm!r})"
        tasks = task + c.off(t, "tasks")
        nxt = c.word(tasks)
        if c.word(nxt + 8) != tasks:
            return "its task list does not link back to it"
        return None
    return check


def _check_node_states(c: Ctx) -> Callable[[int], Optional[str]]:
    def check(address: int) -> Optional[str]:
        online = c.info.get("SYMBOL(node_online_map)")
        n_online = c.btf.constant("N_ONLINE")
        if online is None or n_online is None:
            return None
        size = c.btf.sizeof("nodemask_t")
        if address + n_online * size != int(online, 16):
            return "node_states[N_ONLINE] is not VMCOREINFO's node_online_map"
        return None
    return check


def _check_dfl_root(c: Ctx) -> Callable[[int], Optional[str]]:
    def check(root: int) -> Optional[str]:
        at = root + c.off("struct cgroup_root", "cgrp") + c.off("struct cgroup", "root")
        return None if c.word(at) == root else "its cgroup's root is not itself"
    return check


def _check_subsys(c: Ctx, name: bytes) -> Callable[[int], Optional[str]]:
    def check(ss: int) -> Optional[str]:
        text = c.read(c.word(ss + c.off("struct cgroup_subsys", "name")), 16).split(b"\0")[0]
        return None if text == name else f"its name is {text!r}"
    return check


def _check_positive(c: Ctx, size: int = 8) -> Callable[[int], Optional[str]]:
    def check(address: int) -> Optional[str]:
        value = c.word(address, size, signed=True)
        return None if 0 < value < 1 << 48 else f"holds {value}"
    return check


def _check_cpus(c: Ctx) -> Callable[[int], Optional[str]]:
    # A panic leaves only the panicking CPU online: any CPU, not CPU 0.
    def check(address: int) -> Optional[str]:
        return None if c.word(address) else "no CPU in it"
    return check


def _exported(c: Ctx, table: Dict[str, int]) -> None:
    checks: Dict[str, Optional[Callable[[int], Optional[str]]]] = {
        "init_task": _check_init_task(c),
        "node_states": _check_node_states(c),
        "cgrp_dfl_root": _check_dfl_root(c),
        "memory_cgrp_subsys": _check_subsys(c, b"memory"),
        "_totalram_pages": _check_positive(c),
        "__per_cpu_offset": None, "__cpu_online_mask": _check_cpus(c),
        "__cpu_possible_mask": _check_cpus(c), "__cpu_present_mask": _check_cpus(c),
        "node_data": None, "nr_swap_pages": None, "vm_node_stat": None,
        "vm_zone_stat": None, "init_uts_ns": None, "nr_node_ids": _check_positive(c, 4),
        "movable_zone": None, "memory_cgrp_subsys_enabled_key": None,
        # lib/percpu_counter.c: max(32, 2 * num_online_cpus()) (explain's bounds)
        "percpu_counter_batch": lambda a: (None if 32 <= c.word(a, 4, signed=True) < 1 << 16
                                           else f"holds {c.word(a, 4, signed=True)}"),
    }
    for name, check in checks.items():
        if name in table and name not in c.out.symbols:
            c.keep(name, table[name], "export table", check)
        elif name not in c.out.symbols:
            c.out.miss(name, "not in the export table")


def _per_cpu(c: Ctx, table: Dict[str, int]) -> Optional[int]:
    """Per-CPU variables from BTF's ``.data..percpu``; ``__per_cpu_start``."""
    sec = c.btf.datasec(".data..percpu")
    starts = {(table[n] - off) & MASK64 for n, (off, _) in sec.items() if n in table}
    exported = sum(1 for n in sec if n in table)
    if len(starts) != 1 or exported < 2:
        for name in ("runqueues",):
            c.out.miss(name, f"per-CPU: {exported} exported per-CPU variables give "
                             f"{len(starts)} different __per_cpu_start")
        return None
    start = starts.pop()
    for name, (off, size) in sec.items():
        if name not in c.out.symbols:
            c.out.add(name, start + off, size, "BTF: .data..percpu")
    return start


def _absent_by_era(c: Ctx) -> None:
    """The wanted tables a kernel of this era does not have, by BTF's evidence."""
    try:
        vm = c.btf.member("struct mem_cgroup", "vmstats")
    except LookupError:
        return
    if vm.kind == "array":
        # Before 2d146aa3aa84 ("mm: memcontrol: switch to rstat") (in v5.13):
        # mem_cgroup.vmstats[MEMCG_NR_STAT] and vmevents[] indexed directly.
        why = "struct mem_cgroup's vmstats[] is indexed by the counter itself"
        for name in ("mem_cgroup_stats_index", "mem_cgroup_events_index"):
            c.out.absent[name] = why
        return
    for name, member, count, commit in (
            # ff48c71c26aa ("memcg: reduce memory for the lruvec and memcg stats")
            # (in v6.11) cut state[] down, indexed through mem_cgroup_stats_index[].
            ("mem_cgroup_stats_index", "state", "MEMCG_NR_STAT", "ff48c71c26aa"),
            # 8278f1c7b492 ("memcg: reduce size of memcg vmstats structures") (in
            # v6.1) cut events[] down, indexed through mem_cgroup_events_index[].
            ("mem_cgroup_events_index", "events", "NR_VM_EVENT_ITEMS", "8278f1c7b492")):
        try:
            length = c.btf.member("struct memcg_vmstats", member).length
        except LookupError:
            continue
        total = c.btf.constant(count)
        if total and length == total:
            c.out.absent[name] = (f"BTF: struct memcg_vmstats' {member}[] holds all {total} "
                                  f"{count} counters (before {commit})")


def recover_symbols(read: Read, ks: Kallsyms, vmcoreinfo: Mapping[str, str], btf: Btf,
                    arch: str, little_endian: bool = True,
                    btf_at: int = 0) -> Recovered:
    """The data symbols of :data:`WANTED` (and every per-CPU variable) that a
    kernel with function-only kallsyms *ks* lets recover from its memory
    (``read(address, size)``, raising :class:`~oomdrgn.core.port.Fault`),
    VMCOREINFO and *btf* (found at *btf_at*, 0: not in memory); those its era
    has not, in :attr:`Recovered.absent`."""
    c = Ctx(read, ks, vmcoreinfo, btf, arch, little_endian)
    _absent_by_era(c)
    _from_vmcoreinfo(c)
    try:
        data, base = c.image()
    except ValueError as e:
        for name in WANTED:
            c.out.miss(name, str(e))
        return c.out
    table = _from_ksymtab(c, data, base)
    _exported(c, table)
    percpu = _per_cpu(c, table)
    gfpflag_names(c, data, base)
    vmstat_text(c, data, base)
    taint_flags(c, data, base)
    if arch == "aarch64":
        recover_from_code(c, btf_at, btf.size, percpu)
    for name in WANTED:
        c.out.miss(name, "code: read on arm64 only" if arch != "aarch64" else "no source")
    for name in c.out.absent:
        c.out.missing.pop(name, None)
    return c.out
