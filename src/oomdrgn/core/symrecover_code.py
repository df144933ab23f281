"""Data symbols of a function-only kallsyms found in arm64 code
(:mod:`oomdrgn.core.symrecover`'s "code" source; standard library and core
only): the global a known function's instructions use
(:mod:`oomdrgn.core.a64refs`), the function and the pattern named in a comment
at each rule, citing where the kernel's source uses the symbol, the result
checked by what it holds."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from .a64refs import Loaded, Ref
from .port import Fault
from .symrecover_base import MASK64, Ctx, one
from .symrecover_memcg import memcg_stat_tables

__all__ = ["recover_from_code"]


def _calls(c: Ctx, function: str, callee: str) -> List[Ref]:
    found = c.code(function)
    target = c.ks.address_of(callee)
    if found is None or target is None:
        return []
    return [r for r in found if r.kind == "call" and r.target == target]


def _arg_addresses(calls: Sequence[Ref], arg: int = 0) -> List[int]:
    return [r.args[arg] for r in calls if isinstance(r.args[arg], int)]  # type: ignore[misc]


def _in(ranges: Sequence[Tuple[int, int]], address: int) -> bool:
    return any(lo <= address < hi for lo, hi in ranges)


def recover_from_code(c: Ctx, btf_at: int, btf_size: int, percpu: Optional[int]) -> None:
    """The data symbols arm64 code gives (per-CPU variables from *percpu*,
    ``__per_cpu_start``, and .rodata, holding the BTF at *btf_at*, are not data)."""
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
    one(c, "vm_swappiness", ints, "code: mem_cgroup_get_max",
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
    _memcg_and_printk(c, data)


def _loads(c: Ctx, function: str, size: int, data: Callable[[int], bool]) -> List[int]:
    """The distinct data addresses *function* loads *size* bytes from."""
    return sorted({r.address for r in c.code(function) or ()
                   if r.kind == "load" and r.size == size and data(r.address)})


def _printed(c: Ctx, function: str, text: bytes) -> List[int]:
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


def _root_memcg(c: Ctx) -> Optional[int]:
    """The memory controller's root memcg: its root's top cgroup's css
    (``memory_cgrp_subsys.root->cgrp.subsys[memory_cgrp_id]``)."""
    ss, ssid = c.have("memory_cgrp_subsys"), c.btf.constant("memory_cgrp_id")
    if ss is None or ssid is None:
        return None
    root = c.word(ss + c.off("struct cgroup_subsys", "root"))
    css = c.word(root + c.off("struct cgroup_root", "cgrp")
                 + c.off("struct cgroup", "subsys") + 8 * ssid)
    return (css - c.off("struct mem_cgroup", "css")) & MASK64


def _more_code(c: Ctx, data: Callable[[int], bool]) -> None:
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
        one(c, "root_mem_cgroup", good, "code: mem_cgroup_get_max")
    # get_taint(): return tainted_mask; kexec_crash_loaded(): !!kexec_crash_image.
    one(c, "tainted_mask", _loads(c, "get_taint", 8, data), "code: get_taint",
         lambda a: None if c.word(a) < 1 << 32 else "not a taint mask")
    one(c, "kexec_crash_image", _loads(c, "kexec_crash_loaded", 8, data),
         "code: kexec_crash_loaded",
         lambda a: None if c.word(a) == 0 or c.word(a) >> 63 else "not a kernel pointer")
    # dump_stack_print_info(): if (dump_stack_arch_desc_str[0] != '\0') (lib/dump_stack.c).
    def printable(a: int) -> Optional[str]:
        raw = c.read(a, 128)
        end = raw.find(b"\0")
        return None if end >= 0 and all(0x20 <= b < 0x7F for b in raw[:end]) else "not a string"
    one(c, "dump_stack_arch_desc_str", _loads(c, "dump_stack_print_info", 1, data),
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
        one(c, name, _printed(c, "__show_mem", text), "code: __show_mem")


def _hstate_error(c: Ctx, address: int, n: int) -> Optional[str]:
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


def _check_mutex(c: Ctx) -> Callable[[int], Optional[str]]:
    def check(mutex: int) -> Optional[str]:
        head = mutex + c.off("struct mutex", "wait_list")
        nxt = c.word(head)
        if c.word(nxt + 8) != head:
            return "its wait list does not link back to it"
        return None
    return check


def _check_cpu(c: Ctx) -> Callable[[int], Optional[str]]:
    def check(address: int) -> Optional[str]:
        cpu = c.word(address, 4, signed=True)
        return None if -1 <= cpu < 1 << 16 else f"holds {cpu}"
    return check


def _memcg_and_printk(c: Ctx, data: Callable[[int], bool]) -> None:
    """What explain, the console prefix, the memcg OOM report's memory.stat and
    the unreclaimable slab dump read besides."""
    page = int(c.info.get("PAGESIZE", "4096"))

    # fault_around_bytes_get() (mm/memory.c, the debugfs file): *val =
    # fault_around_bytes (6.1: mm/memory.c:4519), a power of two of at least a
    # page; fault_around_pages << PAGE_SHIFT since "mm: prefer fault_around_pages
    # to fault_around_bytes" (in v6.4, hash not checked here; 6.12:
    # mm/memory.c:5201), a power of two of at most PTRS_PER_PTE, below a page
    # (fault_around_bytes_set()). What the one global holds tells which it is.
    found = _loads(c, "fault_around_bytes_get", 8, data)
    names = ("fault_around_bytes", "fault_around_pages")
    try:
        held = c.word(found[0]) if len(found) == 1 else 0
    except Fault:
        held = 0
    if held and held & (held - 1) == 0 and held < 1 << 32:
        name, other = names if held >= page else names[::-1]
        c.keep(name, found[0], "code: fault_around_bytes_get")
        c.out.absent[other] = f"fault_around_bytes_get() reads {name} (it holds {held})"
    else:
        for name in names:
            c.out.miss(name, f"code: fault_around_bytes_get: {len(found)} candidates"
                       + (f", holding {held}" if held else ""))

    def flag(size: int) -> Callable[[int], Optional[str]]:
        return lambda a: None if c.word(a, size) in (0, 1) else f"holds {c.word(a, size)}"
    # kmsg_dump_get_buffer(): bool time = printk_time; its one byte-sized global
    # (kernel/printk/printk.c; 6.1: line 3837).
    one(c, "printk_time", _loads(c, "kmsg_dump_get_buffer", 1, data),
        "code: kmsg_dump_get_buffer", flag(1))
    # record_print_text(&r, console_msg_format & MSG_FORMAT_SYSLOG, printk_time):
    # the int loaded between the call before and that call, in
    # console_emit_next_record() (6.1: kernel/printk/printk.c:2760; the call
    # sits after the epilogue, reached by a branch: callee-saved registers kept)
    # or printk_get_next_message() (its successor). MSG_FORMAT_DEFAULT 0 or
    # MSG_FORMAT_SYSLOG 1.
    target = c.function("record_print_text")
    ints = set()
    for function in ("console_emit_next_record", "printk_get_next_message"):
        window: set = set()
        for r in c.code(function, callee_saved=True) or ():
            if r.kind == "call":
                if target is not None and r.target == target[0]:
                    ints |= window
                window = set()
            elif r.kind == "load" and r.size == 4 and data(r.address):
                window.add(r.address)
    one(c, "console_msg_format", sorted(ints), "code: console_emit_next_record", flag(4))
    memcg_stat_tables(c, data)
    _slab_caches(c, data)


def _slab_caches(c: Ctx, data: Callable[[int], bool]) -> None:
    # dump_unreclaimable_slab(): mutex_trylock(&slab_mutex), then
    # list_for_each_entry(s, &slab_caches, list) (mm/slab_common.c; 6.1: lines
    # 1244, 1252): the other data address, a list of kmem_caches each named by a
    # printable string, linked both ways.
    name = "slab_caches"
    found = c.code("dump_unreclaimable_slab", callee_saved=True) or []
    lock = c.function("mutex_trylock")
    mutexes = set(_arg_addresses([r for r in found if r.kind == "call" and lock is not None
                                  and r.target == lock[0]]))
    try:
        off = c.btf.member("struct kmem_cache", "list").offset
        name_at = c.btf.member("struct kmem_cache", "name").offset
    except LookupError:
        c.out.miss(name, "code: no struct kmem_cache list/name in BTF")
        return

    def caches(head: int) -> Optional[str]:
        at, seen = head, 0
        while True:
            nxt = c.word(at)
            if c.word(nxt + 8) != at:
                return "a list entry does not link back"
            if nxt == head:
                return None if seen else "an empty list"
            text = c.read(c.word(nxt - off + name_at), 64).split(b"\0")[0]
            if not text or not all(0x20 < ch < 0x7F for ch in text):
                return "an entry's name is not a string"
            at, seen = nxt, seen + 1
            if seen > 1 << 14:
                return "no end"
    good = []
    for a in sorted({r.address for r in found if r.kind in ("address", "load")
                     and data(r.address)} - mutexes):
        try:
            if caches(a) is None:
                good.append(a)
        except Fault:
            pass
    one(c, name, good, "code: dump_unreclaimable_slab", caches)
