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
  ``vmstat_text`` the array of pointers to the counters' names (BTF's enum);
- code (arm64 only, :mod:`oomdrgn.core.a64refs`): the global a known
  function's instructions use, the function and the pattern named in a
  comment at each rule (``oom_lock`` is what ``oom_killer_disable()`` passes
  to ``mutex_lock_killable()``...), the result checked by what it holds.

Symbols outside :data:`WANTED` and kallsyms are not looked for: the port
answers them as absent (functions of other eras, ``.cold`` parts).
"""

import collections
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Literal, Mapping, Optional, Sequence, Set, Tuple

from .a64refs import Loaded, Ref, refs
from .btf import Btf
from .kallsyms import Kallsyms
from .ksymtab import KsymtabError, find_ksymtab
from .kstrings import _x86_64_pointers as x86_64_pointers
from .port import Fault

__all__ = ["Recovered", "recover_symbols", "WANTED"]

Read = Callable[[int, int], bytes]
_MASK64 = (1 << 64) - 1
_CHUNK = 1 << 20
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
    # Not recovered (no source, or their size is needed and unknown): a command
    # that asks for one fails naming it (the memcg OOM report's memory.stat, the
    # unreclaimable slab dump...).
    "memory_stats", "mem_cgroup_events_index", "mem_cgroup_stats_index",
    "memcg1_stat_names", "memcg1_stat_format", "slab_caches", "printk_time",
    "console_msg_format", "transparent_hugepage_flags", "swap_info", "swapper_spaces",
    "swap_cache_info", "vmlinux_build_id", "vmcoreinfo_data", "contig_page_data",
    "totalram_pages", "vm_stat", "nr_swapfiles", "nr_swapper_spaces",
    "preempt_dynamic_mode", "preempt_modes"))


@dataclass
class Recovered:
    """What was recovered: ``symbols`` ``{name: (address, size)}`` (size 0 if
    unknown), ``how`` each was found, and ``missing`` ``{name: why}`` for
    those looked for and not kept."""

    symbols: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    how: Dict[str, str] = field(default_factory=dict)
    missing: Dict[str, str] = field(default_factory=dict)

    def add(self, name: str, address: int, size: int, how: str) -> None:
        self.symbols[name] = (address & _MASK64, size)
        self.how[name] = how
        self.missing.pop(name, None)

    def miss(self, name: str, why: str) -> None:
        if name not in self.symbols:
            self.missing.setdefault(name, why)

    def sources(self) -> List[str]:
        """The kinds of source used, in a fixed order."""
        kinds = {h.split(":")[0] for h in self.how.values()}
        return [k for k in ("VMCOREINFO", "export table", "BTF", "layout", "code") if k in kinds]


class _Ctx:
    """What the recovery reads: memory, kallsyms (text), VMCOREINFO, BTF."""

    def __init__(self, read: Read, ks: Kallsyms, info: Mapping[str, str], btf: Btf,
                 arch: str, little: bool) -> None:
        self.read, self.ks, self.info, self.btf = read, ks, info, btf
        self.arch, self.little = arch, little
        self.order: Literal["little", "big"] = "little" if little else "big"
        self.out = Recovered()

    def word(self, address: int, size: int = 8, signed: bool = False) -> int:
        return int.from_bytes(self.read(address, size), self.order, signed=signed)

    def off(self, type_name: str, designator: str) -> int:
        return self.btf.member(type_name, designator).offset

    def have(self, name: str) -> Optional[int]:
        hit = self.out.symbols.get(name)
        return hit[0] if hit else None

    def size_of(self, name: str) -> int:
        var = self.btf.variable(name)
        return var[0] if var else 0

    def keep(self, name: str, address: int, how: str,
             check: Optional[Callable[[int], Optional[str]]] = None) -> bool:
        """Keep *name* at *address* if *check* (an error message, or None) passes."""
        try:
            error = check(address) if check else None
        except (Fault, LookupError, ValueError) as e:
            error = f"unreadable ({e})"
        if error:
            self.out.miss(name, f"{how}: {error}")
            return False
        self.out.add(name, address, self.size_of(name), how)
        return True

    def image(self) -> Tuple[bytes, int]:
        """The kernel image from ``_etext`` to ``_sinittext`` (``.rodata``, and
        ``.data`` on x86-64), unreadable pages as zeros."""
        lo, hi = self.ks.address_of("_etext"), self.ks.address_of("_sinittext")
        if lo is None or hi is None or not lo < hi <= lo + (256 << 20):
            raise ValueError("kallsyms has no _etext .. _sinittext")
        lo &= ~0xFFF  # x86-64's _etext is not aligned; the tables are
        buf = bytearray()
        at = lo
        while at < hi:
            n = min(_CHUNK, hi - at)
            try:
                buf += self.read(at, n)
            except Fault:
                buf += bytes(n)
            at += n
        return bytes(buf), lo

    def code(self, function: str) -> Optional[List[Ref]]:
        hit = self.ks.lookup(function)
        if hit is None or not hit[1] or self.arch != "aarch64":
            return None
        try:
            return refs(self.read(hit[0], hit[1]), hit[0])
        except Fault:
            return None


# Sources -----------------------------------------------------------------------

def _from_vmcoreinfo(c: _Ctx) -> None:
    for key, value in c.info.items():
        if key.startswith("SYMBOL(") and key.endswith(")"):
            name = key[7:-1]
            if name in WANTED:
                c.out.add(name, int(value, 16), c.size_of(name), "VMCOREINFO")


def _from_ksymtab(c: _Ctx, data: bytes, base: int) -> Dict[str, int]:
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


def _check_init_task(c: _Ctx) -> Callable[[int], Optional[str]]:
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


def _check_node_states(c: _Ctx) -> Callable[[int], Optional[str]]:
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


def _check_dfl_root(c: _Ctx) -> Callable[[int], Optional[str]]:
    def check(root: int) -> Optional[str]:
        at = root + c.off("struct cgroup_root", "cgrp") + c.off("struct cgroup", "root")
        return None if c.word(at) == root else "its cgroup's root is not itself"
    return check


def _check_subsys(c: _Ctx, name: bytes) -> Callable[[int], Optional[str]]:
    def check(ss: int) -> Optional[str]:
        text = c.read(c.word(ss + c.off("struct cgroup_subsys", "name")), 16).split(b"\0")[0]
        return None if text == name else f"its name is {text!r}"
    return check


def _check_positive(c: _Ctx, size: int = 8) -> Callable[[int], Optional[str]]:
    def check(address: int) -> Optional[str]:
        value = c.word(address, size, signed=True)
        return None if 0 < value < 1 << 48 else f"holds {value}"
    return check


def _check_cpus(c: _Ctx) -> Callable[[int], Optional[str]]:
    # A panic leaves only the panicking CPU online: any CPU, not CPU 0.
    def check(address: int) -> Optional[str]:
        return None if c.word(address) else "no CPU in it"
    return check


def _exported(c: _Ctx, table: Dict[str, int]) -> None:
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
    }
    for name, check in checks.items():
        if name in table and name not in c.out.symbols:
            c.keep(name, table[name], "export table", check)
        elif name not in c.out.symbols:
            c.out.miss(name, "not in the export table")


def _per_cpu(c: _Ctx, table: Dict[str, int]) -> Optional[int]:
    """Per-CPU variables from BTF's ``.data..percpu``; ``__per_cpu_start``."""
    sec = c.btf.datasec(".data..percpu")
    starts = {(table[n] - off) & _MASK64 for n, (off, _) in sec.items() if n in table}
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


def _gfpflag_names(c: _Ctx, data: bytes, base: int) -> None:
    # The array of struct trace_print_flags {mask, name} whose first name is
    # "GFP_TRANSHUGE" (__def_gfpflag_names, include/trace/events/mmflags.h).
    name = "gfpflag_names"
    order = c.order
    try:
        size = c.btf.sizeof("struct trace_print_flags")
        name_off = c.off("struct trace_print_flags", "name")
    except LookupError:
        c.out.miss(name, "layout: no struct trace_print_flags in BTF")
        return
    found = set()
    pos = data.find(b"\0GFP_TRANSHUGE\0")
    while pos >= 0:
        pointer = (base + pos + 1).to_bytes(8, order)
        at = data.find(pointer)
        while at >= 0:
            start = at - name_off
            if start % 8 == 0 and _gfp_table(c, data, base, start, size, name_off):
                found.add(base + start)
            at = data.find(pointer, at + 1)
        pos = data.find(b"\0GFP_TRANSHUGE\0", pos + 1)
    # Trace events keep their own copies (__print_flags() in
    # include/trace/stages/stage3_trace_output.h), ended by {-1, NULL} up to
    # v6.12 and by nothing after (ARRAY_SIZE(); 7.2's source, commit not checked
    # here): zeros may follow one. The copy flags_string() (lib/vsprintf.c,
    # %pGg) uses is gfpflag_names.
    if len(found) > 1:
        found &= _pointers(c, "flags_string")
    if len(found) == 1:
        c.out.add(name, found.pop(), 0, "layout: .rodata")
    else:
        c.out.miss(name, f"layout: {len(found)} arrays of GFP flag names")


def _vmstat_text(c: _Ctx, data: bytes, base: int) -> None:
    # const char * const vmstat_text[] = { "nr_free_pages", ... } (mm/vmstat.c):
    # the one array whose first three entries point at the names of enum
    # zone_stat_item's counters 0, 1, 2, lower-cased (from BTF; an alias such
    # as NR_ZONE_LRU_BASE shares a value: any of a value's names).
    from .btf import KIND_ENUM
    ids = c.btf.find("zone_stat_item", (KIND_ENUM,))
    names: Dict[int, Set[bytes]] = collections.defaultdict(set)
    for n, v in c.btf.enumerators(ids[0]) if ids else ():
        names[v].add(n.lower().encode())
    found = []
    first = data.find(b"\0nr_free_pages\0")
    if first >= 0 and names[1] and names[2]:
        pointer = (base + first + 1).to_bytes(8, c.order)
        at = data.find(pointer)
        while at >= 0:
            if at % 8 == 0 and all(_string_at(c, data, base, at + 8 * i) in names[i]
                                   for i in (1, 2)):
                found.append(base + at)
            at = data.find(pointer, at + 1)
    _one(c, "vmstat_text", found, "layout: .rodata")


def _string_at(c: _Ctx, data: bytes, base: int, at: int) -> Optional[bytes]:
    """The string the pointer at *at* in *data* points at (inside *data*), or None."""
    s = (int.from_bytes(data[at:at + 8], c.order) - base) & _MASK64
    end = data.find(b"\0", s, s + 128) if s < len(data) else -1
    return data[s:end] if end >= 0 else None


def _gfp_table(c: _Ctx, data: bytes, base: int, start: int, size: int, name_off: int) -> bool:
    order = c.order
    for i in range(64):
        at = start + i * size + name_off
        if at + 8 > len(data):
            return False
        ptr = int.from_bytes(data[at:at + 8], order)
        if ptr == 0:  # {0, NULL} ends it; a trace event's copy ends with {-1, NULL}
            mask = int.from_bytes(data[start + i * size:start + i * size + 8], order)
            return i >= 8 and mask == 0
        s = (ptr - base) & _MASK64
        if s >= len(data):
            return False
        text = data[s:data.find(b"\0", s)]
        if not (text.startswith(b"GFP_") or text.startswith(b"__GFP_")):
            return False
    return False


def _pointers(c: _Ctx, function: str) -> Set[int]:
    """The addresses *function*'s code computes or loads from (both architectures)."""
    hit = c.ks.lookup(function)
    if hit is None or not hit[1]:
        return set()
    try:
        code = c.read(hit[0], hit[1])
    except Fault:
        return set()
    if c.arch == "aarch64":
        return {r.address for r in refs(code, hit[0]) if r.kind in ("address", "load")}
    return set(x86_64_pointers(code, hit[0]))


# Code (arm64) ------------------------------------------------------------------

def _calls(c: _Ctx, function: str, callee: str) -> List[Ref]:
    found = c.code(function)
    target = c.ks.address_of(callee)
    if found is None or target is None:
        return []
    return [r for r in found if r.kind == "call" and r.target == target]


def _arg_addresses(calls: Sequence[Ref], arg: int = 0) -> List[int]:
    return [r.args[arg] for r in calls if isinstance(r.args[arg], int)]  # type: ignore[misc]


def _in(ranges: Sequence[Tuple[int, int]], address: int) -> bool:
    return any(lo <= address < hi for lo, hi in ranges)


def _code(c: _Ctx, btf_at: int, btf_size: int, percpu: Optional[int]) -> None:
    if c.arch != "aarch64":
        for name in WANTED:
            c.out.miss(name, "code: read on arm64 only")
        return
    # kstrdup_const() -> is_kernel_rodata(): adrp/add __start_rodata, then __end_rodata.
    found = c.code("kstrdup_const")
    adds = [r.address for r in found or () if r.kind == "address"]
    if len(adds) >= 2:
        lo, hi = adds[0], adds[1]
        page = 1 << int(c.info.get("PAGESIZE", "4096")).bit_length() - 1

        def rodata(_: int) -> Optional[str]:
            if not (lo < hi and lo % page == 0 and hi % page == 0
                    and (not btf_at or lo <= btf_at < btf_at + btf_size <= hi)):
                return f"{lo:#x} .. {hi:#x} is not .rodata holding the BTF"
            return None
        c.keep("__start_rodata", lo, "code: kstrdup_const", rodata)
        c.keep("__end_rodata", hi, "code: kstrdup_const", rodata)
    else:
        c.out.miss("__start_rodata", "code: kstrdup_const has no two addresses")
        c.out.miss("__end_rodata", "code: kstrdup_const has no two addresses")
    text = [(c.ks.address_of("_stext") or 0, c.ks.address_of("_etext") or 0)]
    ro_span = [(c.have("__start_rodata") or 0, c.have("__end_rodata") or 0)]
    sec = c.btf.datasec(".data..percpu")
    span = max((o + s for o, s in sec.values()), default=0)
    per_cpu = [(percpu, percpu + span)] if percpu is not None else []

    def data(address: int) -> bool:
        return not _in(text + ro_span + per_cpu, address)

    # oom_killer_disable(): mutex_lock_killable(&oom_lock) (mm/oom_kill.c).
    locks = [a for a in _arg_addresses(_calls(c, "oom_killer_disable", "mutex_lock_killable"))
             if data(a)]
    if locks:
        c.keep("oom_lock", locks[0], "code: oom_killer_disable", _check_mutex(c))
    else:
        c.out.miss("oom_lock", "code: no mutex_lock_killable(&oom_lock) in oom_killer_disable")
    # nmi_panic(): atomic_cmpxchg(&panic_cpu, PANIC_CPU_INVALID, cpu) (kernel/panic.c);
    # the per-CPU cpu_number it reads first is not data.
    atomics = sorted({r.address for r in c.code("nmi_panic") or ()
                      if r.kind == "atomic" and data(r.address)})
    if len(atomics) == 1:
        c.keep("panic_cpu", atomics[0], "code: nmi_panic", _check_cpu(c))
    else:
        c.out.miss("panic_cpu", f"code: {len(atomics)} atomic globals in nmi_panic")
    # total_swap_pages: read by si_swapinfo() (val->totalswap, beside
    # atomic_long_read(&nr_swap_pages)) and written by _enable_swap_info()
    # (total_swap_pages += p->pages, beside atomic_long_add(.., &nr_swap_pages))
    # (mm/swapfile.c); enable_swap_info() where the latter is inlined.
    nr = c.have("nr_swap_pages")
    read_by = {r.address for r in c.code("si_swapinfo") or ()
               if r.kind == "load" and r.size == 8 and data(r.address)}
    written = {r.address for f in ("_enable_swap_info", "enable_swap_info")
               for r in c.code(f) or () if r.kind == "store" and r.size == 8}
    words = sorted((read_by & written) - {nr})
    if nr is not None and len(words) == 1:
        c.keep("total_swap_pages", words[0], "code: si_swapinfo, _enable_swap_info",
               lambda a: None if 0 <= c.word(nr, signed=True) <= c.word(a, signed=True)
               else "fewer pages than nr_swap_pages")
    else:
        c.out.miss("total_swap_pages", f"code: {len(words)} words si_swapinfo reads and "
                                       "_enable_swap_info writes")
    # mem_cgroup_swappiness() (include/linux/swap.h), inlined in
    # mem_cgroup_get_max() and in v1's mem_cgroup_swappiness_read(): vm_swappiness
    # is the only int of the image they load (the memcg's own is read through
    # their argument). Both where both are.
    ints = sorted({a for f in ("mem_cgroup_get_max", "mem_cgroup_swappiness_read")
                   for a in _loads(c, f, 4, data)})
    _one(c, "vm_swappiness", ints, "code: mem_cgroup_get_max",
         lambda a: None if 0 <= c.word(a, 4, signed=True) <= 200 else "not 0..200")
    # cpuset_inc() in cpuset_css_online(): static_branch_inc_cpuslocked() of
    # cpusets_pre_enable_key, then cpusets_enabled_key; cpuset_dec() in
    # cpuset_css_offline() the other way round (kernel/cgroup/cpuset.c).
    inc = _arg_addresses(_calls(c, "cpuset_css_online", "static_key_slow_inc_cpuslocked"))
    dec = _arg_addresses(_calls(c, "cpuset_css_offline", "static_key_slow_dec_cpuslocked"))
    if len(inc) == 2 and len(dec) == 2 and inc == dec[::-1] and inc[0] != inc[1]:
        c.keep("cpusets_enabled_key", inc[1], "code: cpuset_css_online",
               lambda a: None if c.word(a, 4, signed=True) == c.word(inc[0], 4, signed=True)
               >= 0 else "its count is not cpusets_pre_enable_key's")
    else:
        c.out.miss("cpusets_enabled_key", "code: cpuset_css_online/offline's static keys "
                                          f"{[hex(a) for a in inc]} {[hex(a) for a in dec]}")
    _more_code(c, data)


def _loads(c: _Ctx, function: str, size: int, data: Callable[[int], bool]) -> List[int]:
    """The distinct data addresses *function* loads *size* bytes from."""
    return sorted({r.address for r in c.code(function) or ()
                   if r.kind == "load" and r.size == size and data(r.address)})


def _one(c: _Ctx, name: str, found: List[int], how: str,
         check: Optional[Callable[[int], Optional[str]]] = None) -> None:
    if len(found) == 1:
        c.keep(name, found[0], how, check)
    else:
        c.out.miss(name, f"{how}: {len(found)} candidates")


def _printed(c: _Ctx, function: str, text: bytes) -> List[int]:
    """The globals *function* prints as ``printk(FMT, global)``, FMT holding *text*."""
    out = set()
    for r in c.code(function) or ():
        fmt, arg = (r.args + (None, None))[:2]
        if r.kind == "call" and isinstance(fmt, int) and isinstance(arg, Loaded):
            try:
                if text in c.read(fmt, 96).split(b"\0")[0]:
                    out.add(arg.address)
            except Fault:
                pass
    return sorted(out)


def _root_memcg(c: _Ctx) -> Optional[int]:
    """The memory controller's root memcg: its root's top cgroup's css
    (``memory_cgrp_subsys.root->cgrp.subsys[memory_cgrp_id]``)."""
    ss, ssid = c.have("memory_cgrp_subsys"), c.btf.constant("memory_cgrp_id")
    if ss is None or ssid is None:
        return None
    root = c.word(ss + c.off("struct cgroup_subsys", "root"))
    css = c.word(root + c.off("struct cgroup_root", "cgrp")
                 + c.off("struct cgroup", "subsys") + 8 * ssid)
    return (css - c.off("struct mem_cgroup", "css")) & _MASK64


def _more_code(c: _Ctx, data: Callable[[int], bool]) -> None:
    """What oom-report and show-mem read besides (arm64 code)."""
    # mem_cgroup_get_max() -> mem_cgroup_is_root(): root_mem_cgroup, checked
    # against the memory controller's root css.
    words = _loads(c, "mem_cgroup_get_max", 8, data)
    try:
        root = _root_memcg(c)
    except (Fault, LookupError) as e:
        c.out.miss("root_mem_cgroup", f"code: the root memcg unreadable ({e})")
        root = None
    if root is not None:
        good = [a for a in words if a != c.have("total_swap_pages") and c.word(a) == root]
        _one(c, "root_mem_cgroup", good, "code: mem_cgroup_get_max")
    # get_taint(): return tainted_mask; kexec_crash_loaded(): !!kexec_crash_image.
    _one(c, "tainted_mask", _loads(c, "get_taint", 8, data), "code: get_taint",
         lambda a: None if c.word(a) < 1 << 32 else "not a taint mask")
    _one(c, "kexec_crash_image", _loads(c, "kexec_crash_loaded", 8, data),
         "code: kexec_crash_loaded",
         lambda a: None if c.word(a) == 0 or c.word(a) >> 63 else "not a kernel pointer")
    # dump_stack_print_info(): if (dump_stack_arch_desc_str[0] != '\0') (lib/dump_stack.c).
    def printable(a: int) -> Optional[str]:
        raw = c.read(a, 128)
        end = raw.find(b"\0")
        return None if end >= 0 and all(0x20 <= b < 0x7F for b in raw[:end]) else "not a string"
    _one(c, "dump_stack_arch_desc_str", _loads(c, "dump_stack_print_info", 1, data),
         "code: dump_stack_print_info", printable)
    # hugetlb_show_meminfo_node(): for_each_hstate(h), h from hstates to
    # &hstates[hugetlb_max_hstate] (mm/hugetlb.c); each hstate's name is
    # "hugepages-<size>kB".
    pairs = []
    found = c.code("hugetlb_show_meminfo_node") or []
    arrays = list(dict.fromkeys(r.address for r in found if r.kind == "address" and data(r.address)))
    for count in _loads(c, "hugetlb_show_meminfo_node", 4, data):
        try:
            n = c.word(count, 4, signed=True)
        except Fault:
            continue
        if 0 < n <= 64:
            pairs += [(count, a) for a in arrays if a != count and not _hstate_error(c, a, n)]
    if len(pairs) == 1:
        how = "code: hugetlb_show_meminfo_node"
        c.keep("hugetlb_max_hstate", pairs[0][0], how)
        c.keep("hstates", pairs[0][1], how)
    else:
        for name in ("hugetlb_max_hstate", "hstates"):
            c.out.miss(name, f"code: {len(pairs)} (hugetlb_max_hstate, hstates) in "
                             "hugetlb_show_meminfo_node, checked by their names")
    # __show_mem(): printk("%lu pages cma reserved\n", totalcma_pages),
    # printk("%lu pages hwpoisoned\n", atomic_long_read(&num_poisoned_pages)).
    for name, text in (("totalcma_pages", b"pages cma reserved"),
                       ("num_poisoned_pages", b"pages hwpoisoned")):
        _one(c, name, _printed(c, "__show_mem", text), "code: __show_mem")


def _hstate_error(c: _Ctx, address: int, n: int) -> Optional[str]:
    try:
        size = c.btf.sizeof("struct hstate")
        name, order = c.off("struct hstate", "name"), c.off("struct hstate", "order")
        page = int(c.info.get("PAGESIZE", "4096"))
        for i in range(n):
            h = address + i * size
            want = b"hugepages-%dkB" % ((page << c.word(h + order, 4)) >> 10)
            if c.read(h + name, 32).split(b"\0")[0] != want:
                return f"hstates[{i}] is not {want.decode()}"
    except (Fault, LookupError, ValueError) as e:
        return str(e)
    return None


def _check_mutex(c: _Ctx) -> Callable[[int], Optional[str]]:
    def check(mutex: int) -> Optional[str]:
        head = mutex + c.off("struct mutex", "wait_list")
        nxt = c.word(head)
        if c.word(nxt + 8) != head:
            return "its wait list does not link back to it"
        return None
    return check


def _check_cpu(c: _Ctx) -> Callable[[int], Optional[str]]:
    def check(address: int) -> Optional[str]:
        cpu = c.word(address, 4, signed=True)
        return None if -1 <= cpu < 1 << 16 else f"holds {cpu}"
    return check


def recover_symbols(read: Read, ks: Kallsyms, vmcoreinfo: Mapping[str, str], btf: Btf,
                    arch: str, little_endian: bool = True,
                    btf_at: int = 0) -> Recovered:
    """The data symbols of :data:`WANTED` (and every per-CPU variable) that a
    kernel with function-only kallsyms *ks* lets recover from its memory
    (``read(address, size)``, raising :class:`~oomdrgn.core.port.Fault`),
    VMCOREINFO and *btf* (found at *btf_at*, 0: not in memory)."""
    c = _Ctx(read, ks, vmcoreinfo, btf, arch, little_endian)
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
    _gfpflag_names(c, data, base)
    _vmstat_text(c, data, base)
    _code(c, btf_at, btf.size, percpu)
    for name in WANTED:
        c.out.miss(name, "no source")
    return c.out
