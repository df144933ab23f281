"""drgn backend: turns a :class:`drgn.Program`'s kernel objects into plain records."""

from operator import itemgetter
from typing import Iterator, List, Optional

from drgn import (FaultError, Object, ObjectAbsentError, Program, ProgramFlags, TypeKind,
                  offsetof)
from drgn.helpers.linux.cgroup import cgroup_get_from_path, cgroup_name, cgroup_path
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.mm import totalram_pages
from drgn.helpers.linux.pid import find_task
from drgn.helpers.linux.sched import cpu_curr

from .layout import BlockCache, StructReader, linear_map
from ..core.elffile import read_section
from ..core.klist import list_entries
from ..core.kernelinfo import CONSUMERS, Evidence, KernelInfo, decide
from ..core.mmcounters import per_cpu_ptrs, s32
from ..core.model import MemcgRecord, MmRecord, RawCounter, TaskRecord, VmTotals
from ..core.oom import ReadError, TargetError, task_that_hit_the_oom

__all__ = ["DrgnReader", "gather_evidence"]

# What a read of damaged memory raises.
_FAULTS = (FaultError,)
_MASK64 = (1 << 64) - 1


def _vmlinux_path(prog: Program) -> Optional[str]:
    try:
        return prog.main_module().debug_file_path
    except (AttributeError, LookupError):
        return None


def _rodata(prog: Program) -> Optional[bytes]:
    """The kernel image's .rodata: from the vmlinux file, else from memory."""
    path = _vmlinux_path(prog)
    if path:
        try:
            data = read_section(path, ".rodata")
            if data:
                return data
        except (OSError, ValueError):
            pass
    try:
        start = prog.symbol("__start_rodata").address
        end = prog.symbol("__end_rodata").address
        return prog.read(start, end - start)
    except (LookupError, FaultError):
        return None


def _calls_sum(prog: Program, func: str) -> Optional[bool]:
    from ..core.codescan import calls_target
    try:
        sym = prog.symbol(func)
        target = prog.symbol("__percpu_counter_sum").address
        code = prog.read(sym.address, sym.size)
    except (LookupError, FaultError):
        return None
    arch = "aarch64" if "AARCH64" in str(prog.platform.arch) else "x86_64"
    return calls_target(code, sym.address, target, arch)


def gather_evidence(prog: Program) -> Evidence:
    """Read what :func:`oomdrgn.core.kernelinfo.decide` needs from *prog*."""
    mm_type = prog.type("struct mm_struct")
    rss_stat = mm_type.member("rss_stat").type
    # Since Linux kernel commit f1a7941243c1 ("mm: convert mm's rss stats into
    # percpu_counter") (in v6.2), rss_stat is an array of struct percpu_counter.
    layout = "percpu" if rss_stat.unaliased_kind() == TypeKind.ARRAY else "atomic"
    # Since Linux kernel commit af5b0f6a09e4 ("mm: consolidate page table
    # accounting") (in v4.15), mm->pgtables_bytes replaces nr_ptes/nr_pmds.
    pgtables = "bytes" if mm_type.has_member("pgtables_bytes") else "ptes"
    arch = "aarch64" if "AARCH64" in str(prog.platform.arch) else "x86_64"
    calls = {c: (_calls_sum(prog, f) if layout == "percpu" else None) for c, f in CONSUMERS.items()}
    try:
        badness_return = prog.function("oom_badness").type_.type.type_name()
    except (LookupError, AttributeError):
        badness_return = None
    try:
        prog.constant("MM_SHMEMPAGES")
        has_shmem = True
    except LookupError:  # MM_SHMEMPAGES is new in v4.5
        has_shmem = False
    return Evidence(arch=arch, page_shift=prog["PAGE_SHIFT"].value_(), counter_layout=layout,
                    pgtables=pgtables, rodata=_rodata(prog), calls_sum=calls,
                    has_shmem=has_shmem, badness_return=badness_return)


class DrgnReader:
    """:class:`oomdrgn.core.oom.Reader` over a drgn program."""

    def __init__(self, prog: Program, counter_rule: Optional[str] = None,
                 info: Optional[KernelInfo] = None) -> None:
        self.prog = prog
        self.info = info or decide(gather_evidence(prog), counter_rule)
        self._task_ptr = prog.type("struct task_struct *")
        self._mm_ptr = prog.type("struct mm_struct *")
        self._mm_index = []
        for name in ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES"):
            try:
                self._mm_index.append(prog.constant(name).value_())
            except LookupError:  # MM_SHMEMPAGES is new in v4.5
                self._mm_index.append(None)
        self._percpu_offsets: Optional[list] = None
        self._has_oom_mm: Optional[bool] = None
        self._fast = _FastLayout(prog, self._mm_index, self.info)

    # Lists -----------------------------------------------------------------

    def processes(self) -> Iterator[int]:
        """``for_each_process``: ``init_task.tasks``, each task_struct's needed
        span read once, its link with it (see :meth:`_FastLayout.task_link`)."""
        fast = self._fast
        return list_entries(self.prog["init_task"].tasks.address_, fast.tasks_off,
                            fast.task_link, "init_task.tasks", _FAULTS)

    def threads(self, task: int) -> Iterator[int]:
        fast = self._fast
        known, head, first = fast.last_thread_head
        if known != task:
            try:
                head = fast.memory.read_word(task + fast.signal_off) + fast.thread_head_off
            except FaultError as e:
                raise ReadError(f"task {task:#x}: signal unreadable: {e}") from None
            first = None
        return list_entries(head, fast.thread_node_off, fast.thread_link, "thread",
                            _FAULTS, first)

    def find_task(self, pid: int) -> Optional[int]:
        try:
            t = find_task(self.prog, pid)
            return t.value_() if t else None
        except (LookupError, FaultError, AttributeError):
            pass
        # No usable PID hash (damaged dump, minimal debug info): walk the
        # tasks, stepping over processes that cannot be read.
        for p in self.processes():
            try:
                for t in self.threads(p):
                    if self.task_pid(t) == pid:
                        return t
            except ReadError:
                continue
        return None

    def task_pid(self, task: int) -> int:
        try:
            return Object(self.prog, self._task_ptr, task).pid.value_()
        except FaultError:
            return -1

    def memcg_scan_tasks(self, path: str) -> Iterator[int]:
        """``mem_cgroup_scan_tasks()``: the memcg subtree in pre-order; in each
        memcg, css_task_iter(CSS_TASK_ITER_PROCS) over its css_sets."""
        from drgn.helpers.linux.cgroup import css_for_each_descendant_pre
        css = self._memcg_css(path)
        ssid = self.prog.constant("memory_cgrp_id").value_()
        for pos in css_for_each_descendant_pre(css):
            yield from self._css_procs(pos, ssid)

    def _css_procs(self, css: Object, ssid: int) -> Iterator[int]:
        prog = self.prog
        head = css.cgroup.e_csets[ssid]
        cset_type = prog.type("struct css_set")
        node_off = cset_type.member("e_cset_node").offset + ssid * sizeof_list_head(prog)
        cg_list = prog.type("struct task_struct").member("cg_list").offset
        for cset_addr in list_entries(head.address_, node_off, prog.read_word,
                                      "cgroup css_set", _FAULTS):
            cset = Object(prog, "struct css_set *", cset_addr)
            # tasks, then mg_tasks, then (v5.3+) dying_tasks: css_task_iter_advance().
            for name in ("tasks", "mg_tasks", "dying_tasks"):
                try:
                    lst = getattr(cset, name)
                except AttributeError:
                    continue
                for task in list_entries(lst.address_, cg_list, prog.read_word,
                                         f"css_set {name}", _FAULTS):
                    t = Object(prog, self._task_ptr, task)
                    # CSS_TASK_ITER_PROCS: leaders only, and dying leaders only
                    # while some thread of theirs lives.
                    if t.exit_signal.value_() < 0:
                        continue
                    if name == "dying_tasks" and not t.signal.live.counter.value_():
                        continue
                    yield task

    def _memcg_css(self, path: str) -> Object:
        try:
            cgrp = cgroup_get_from_path(self.prog, path.strip("/") or "")
        except (LookupError, ValueError, FaultError):
            cgrp = None
        if not cgrp:
            raise TargetError(f"no cgroup {path!r} in the default hierarchy")
        ssid = self.prog.constant("memory_cgrp_id").value_()
        css = cgrp.subsys[ssid]
        if not css:
            raise TargetError(f"cgroup {path!r} has no memory controller")
        return css

    def memcg(self, path: str) -> MemcgRecord:
        css = self._memcg_css(path)
        memcg = Object(self.prog, "struct mem_cgroup *", css.value_())
        dfl = self._cgroup_on_dfl()
        swap_max = memsw_max = None
        try:
            swap_max = memcg.swap.max.value_()
        except AttributeError:
            pass
        try:
            memsw_max = memcg.memsw.max.value_()
        except AttributeError:
            pass
        swappiness = self.prog["vm_swappiness"].value_()
        if not dfl:
            try:
                swappiness = memcg.swappiness.value_()
            except AttributeError:
                pass
        return MemcgRecord(path="/" + path.strip("/"), memory_max=memcg.memory.max.value_(),
                           swap_max=swap_max, memsw_max=memsw_max,
                           memsw_accounting=not dfl and memsw_max is not None,
                           swappiness=swappiness)

    def _cgroup_on_dfl(self) -> bool:
        # cgroup_subsys_on_dfl(memory_cgrp_subsys): the memory controller is on v2.
        try:
            root = self.prog["memory_cgrp_subsys"].root
            return root.value_() == self.prog["cgrp_dfl_root"].address_
        except (LookupError, FaultError):
            return True

    def vm_totals(self) -> VmTotals:
        return VmTotals(totalram_pages=totalram_pages(self.prog),
                        total_swap_pages=self.prog["total_swap_pages"].value_(),
                        vm_swappiness=self.prog["vm_swappiness"].value_())

    def current_task(self) -> Optional[int]:
        """The panicking CPU's task, else the busy CPU whose stack passes
        through the OOM killer (from the dump's saved registers), else the only
        busy CPU's (see :func:`oomdrgn.core.oom.task_that_hit_the_oom`)."""
        try:
            cpu = self.prog["panic_cpu"].counter.value_()
        except (LookupError, AttributeError):
            cpu = -1
        if cpu >= 0:
            return task_that_hit_the_oom(cpu_curr(self.prog, cpu).value_(), None, [])
        busy = [cpu_curr(self.prog, c) for c in for_each_online_cpu(self.prog)]
        return task_that_hit_the_oom(None, None, [(t.value_(), self._stack_names(t))
                                                  for t in busy if t.pid.value_() != 0])

    def _stack_names(self, task: Object) -> Optional[List[str]]:
        try:
            return [frame.name for frame in self.prog.stack_trace(task) if frame.name]
        except (LookupError, ValueError, FaultError, NotImplementedError):
            return None

    def _task_cgroup(self, task: int, subsys: str) -> Optional[Object]:
        try:
            ssid = self.prog.constant(f"{subsys}_cgrp_id").value_()
        except LookupError:
            return None  # kernel built without that controller
        t = Object(self.prog, self._task_ptr, task)
        return t.cgroups.subsys[ssid].cgroup

    def cgroup_path(self, task: int, subsys: str) -> Optional[str]:
        cgrp = self._task_cgroup(task, subsys)
        return None if cgrp is None else (cgroup_path(cgrp).decode() or "/")

    def cgroup_name(self, task: int, subsys: str) -> Optional[str]:
        cgrp = self._task_cgroup(task, subsys)
        return None if cgrp is None else (cgroup_name(cgrp).decode() or "/")

    def mems_allowed(self, task: int) -> list:
        bits = Object(self.prog, self._task_ptr, task).mems_allowed.bits
        out = []
        word_bits = 8 * bits[0].type_.size
        for i in range(len(bits)):
            w = bits[i].value_()
            out.extend(i * word_bits + b for b in range(word_bits) if w >> b & 1)
        return out

    # Records ---------------------------------------------------------------

    def task(self, task: int) -> TaskRecord:
        try:
            return self._fast.task(task)
        except (FaultError, OverflowError, ValueError) as e:  # garbage pointers too
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

    def task_slow(self, task: int) -> TaskRecord:
        """:meth:`task` through drgn Objects (the reference the fast path is tested against)."""
        t = Object(self.prog, self._task_ptr, task)
        try:
            signal = t.signal
            vfork_done = t.vfork_done.value_()
            return TaskRecord(
                address=task, pid=t.pid.value_(), tgid=t.tgid.value_(),
                comm=t.comm.string_().decode("utf-8", "surrogateescape"),
                flags=t.flags.value_(),
                uid=t.real_cred.uid.val.value_() & 0xFFFFFFFF,
                oom_score_adj=signal.oom_score_adj.value_(),
                mm=t.mm.value_(), vfork_done=vfork_done,
                parent_mm=t.real_parent.mm.value_() if vfork_done else 0,
                oom_mm=self._oom_mm(signal),
                oom_flag_origin=bool(signal.oom_flag_origin.value_()))
        except FaultError as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

    def _oom_mm(self, signal: Object) -> int:
        # signal->oom_mm since Linux kernel commit 26db62f179d1 ("oom: keep mm
        # of the killed task available") (in v4.10); before, no such marker.
        if self._has_oom_mm is None:
            self._has_oom_mm = self.prog.type("struct signal_struct").has_member("oom_mm")
        return signal.oom_mm.value_() if self._has_oom_mm else 0

    def _percpu(self) -> list:
        if self._percpu_offsets is None:
            offs = self.prog["__per_cpu_offset"]
            self._percpu_offsets = [offs[cpu].value_() for cpu in for_each_possible_cpu(self.prog)]
        return self._percpu_offsets

    def _counter(self, rss_stat: Object, index: Optional[int], percpu: bool) -> RawCounter:
        if index is None:
            return RawCounter(0, () if percpu else None)
        if self.info.counter_layout == "percpu":
            fbc = rss_stat[index]
            deltas = None
            if percpu:
                base = fbc.counters.value_()
                deltas = tuple(s32(self.prog.read_u32(p))
                               for p in per_cpu_ptrs(base, self._percpu()))
            return RawCounter(fbc.count.value_(), deltas)
        return RawCounter(rss_stat.count[index].counter.value_())

    def mm(self, mm: int, percpu: bool) -> MmRecord:
        try:
            return self._fast.mm(mm, percpu, self._percpu() if percpu else ())
        except (FaultError, OverflowError, ValueError) as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None

    def mm_slow(self, mm: int, percpu: bool) -> MmRecord:
        """:meth:`mm` through drgn Objects."""
        m = Object(self.prog, self._mm_ptr, mm)
        try:
            rss_stat = m.rss_stat
            counters = tuple(self._counter(rss_stat, i, percpu) for i in self._mm_index)
            if self.info.pgtables == "bytes":
                pt = dict(pgtables_bytes=m.pgtables_bytes.counter.value_())
            else:
                pt = dict(nr_ptes=m.nr_ptes.counter.value_(), nr_pmds=_nr_pmds(m))
            return MmRecord(address=mm, total_vm=m.total_vm.value_(), counters=counters,
                            flags=_mm_flags(m), **pt)
        except FaultError as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None


class _FastLayout:
    """Offsets of what the OOM code reads, computed once; records from raw reads."""

    def __init__(self, prog: Program, mm_index: list, info: KernelInfo) -> None:
        self.prog = prog
        # A vmcore never changes: serve reads from cached blocks. Live targets
        # (/proc/kcore, QMP) read directly, every time.
        live = bool(prog.flags & ProgramFlags.IS_LIVE)
        self.memory = mem = BlockCache(prog, enabled=not live,
                                       linear=None if live else linear_map(prog))
        self.task_r = StructReader(prog, "struct task_struct", [
            "pid", "tgid", "comm", "flags", "real_cred", "signal", "mm", "vfork_done",
            "real_parent", "thread_node.next", "tasks.next"], mem)
        self.tasks_off = offsetof(prog.type("struct task_struct"), "tasks")
        # (task, its task_r values) of the task the process walk stands on.
        self.walked = (0, ())
        self.signal_r = StructReader(prog, "struct signal_struct", [
            "oom_score_adj", "oom_mm", "oom_flag_origin", "thread_head.next"], mem)
        # (task, &signal->thread_head, signal->thread_head.next) of the last
        # task read: find_lock_task_mm() walks that task's threads next.
        self.last_thread_head = (0, 0, 0)
        self.cred_uid = offsetof(prog.type("struct cred"), "uid")
        self.signal_off = self.task_r.offset("signal")
        self.thread_node_off = offsetof(prog.type("struct task_struct"), "thread_node")
        self.thread_head_off = offsetof(prog.type("struct signal_struct"), "thread_head")
        self.parent_mm = self.task_r.offset("mm")
        present = [i for i in mm_index if i is not None]
        rss = [f"rss_stat[{i}].count" if info.counter_layout == "percpu"
               else f"rss_stat.count[{i}]" for i in present]
        # Since v6.18 mm->flags is an mm_flags_t: struct { unsigned long
        # __mm_flags[1]; } (mm_flags_test()); its first word holds MMF_OOM_SKIP.
        flags_t = prog.type("struct mm_struct").member("flags").type.unaliased()
        self.flags_field = "flags"
        if flags_t.kind in (TypeKind.STRUCT, TypeKind.UNION):
            self.flags_field = f"flags.{flags_t.members[0].name}[0]"
        fields = ["total_vm", self.flags_field] + rss
        if info.counter_layout == "percpu":
            fields += [f"rss_stat[{i}].counters" for i in present]
        fields += (["pgtables_bytes"] if info.pgtables == "bytes" else ["nr_ptes", "nr_pmds"])
        self.mm_r = StructReader(prog, "struct mm_struct", fields, mem)
        # Where each value sits in what mm() reads: total_vm, flags, the counts
        # in mm_index order, [the per-CPU bases], the page-table fields, then
        # (0, None). A counter this kernel lacks (MM_SHMEMPAGES before v4.5)
        # reads count 0 and base None (no deltas).
        n, end = len(present), len(fields)
        slot = iter(range(2, 2 + n))
        count_at = [end if i is None else next(slot) for i in mm_index]
        self.counts = itemgetter(*count_at)
        self.bases = itemgetter(*(end + 1 if i == end else i + n for i in count_at))
        self.pgtables = itemgetter(*range(end - (1 if info.pgtables == "bytes" else 2), end))
        self.raw: dict = {}
        self.percpu_layout = info.counter_layout == "percpu"
        self.pgtables_bytes = info.pgtables == "bytes"

    def task_link(self, node: int) -> int:
        """The link of the process list's *node*: a task_struct is 9-10 KiB of
        which the OOM code reads ~3 KiB, so that span is read once, exactly (no
        block), the ``tasks.next`` link with it, and kept for :meth:`task`."""
        task = (node - self.tasks_off) & _MASK64
        try:
            values = self.task_r.read_exact(task)
            nxt = values[-1]
        except (FaultError, OverflowError, ValueError):
            # The task is unreadable (task() will say so, for its row); its
            # link alone may still be, for the walk to go on.
            values = ()
            nxt = self.memory.read_word(node)
        self.walked = (task, values)
        return nxt

    def thread_link(self, node: int) -> int:
        """The link of a thread list's *node*: from the task the process walk
        stands on if it is that task's (no second read of it), else read."""
        task, values = self.walked
        if values and node == (task + self.thread_node_off) & _MASK64:
            return values[-2]
        return self.memory.read_word(node)

    def task(self, task: int) -> TaskRecord:
        walked, values = self.walked
        if walked != task or not values:
            values = self.task_r.read(task)
        pid, tgid, comm, flags, cred, signal, mm, vfork_done, parent, _, _ = values
        adj, oom_mm, oom_flag_origin, first = self.signal_r.read(signal)
        self.last_thread_head = (task, signal + self.thread_head_off, first)
        memory = self.memory
        return TaskRecord(
            task, pid, tgid, comm.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
            flags, memory.read_u32(cred + self.cred_uid), adj, mm, None, vfork_done,
            memory.read_word(parent + self.parent_mm) if vfork_done else 0,
            oom_mm, bool(oom_flag_origin))

    def mm(self, mm: int, percpu: bool, offsets) -> MmRecord:
        values = self.mm_r.read(mm) + (0, None)
        counts = self.counts(values)
        if percpu and self.percpu_layout:
            read_u32 = self.memory.read_u32
            counters = tuple(
                RawCounter(count, () if base is None else
                           tuple(s32(read_u32(p)) for p in per_cpu_ptrs(base, offsets)))
                for count, base in zip(counts, self.bases(values)))
        else:
            # Counters are immutable: one RawCounter per distinct value.
            get, put = self.raw.get, self.raw.setdefault
            counters = tuple([get(c) or put(c, RawCounter(c)) for c in counts])
        pt = self.pgtables(values)
        if self.pgtables_bytes:
            return MmRecord(mm, values[0], counters, pt, None, None, values[1])
        return MmRecord(mm, values[0], counters, None, pt[0], pt[1], values[1])


def sizeof_list_head(prog: Program) -> int:
    return prog.type("struct list_head").size


def _mm_flags(m: Object) -> int:
    flags = m.flags
    # Since v6.18 mm->flags is an mm_flags_t: struct { unsigned long
    # __mm_flags[1]; } read with mm_flags_test(); the low word holds MMF_OOM_SKIP.
    if flags.type_.unaliased_kind() in (TypeKind.STRUCT, TypeKind.UNION):
        return flags.member_(flags.type_.unaliased().members[0].name)[0].value_()
    return flags.value_()


def _nr_pmds(m: Object) -> int:
    # mm_nr_pmds() is 0 where the PMD level is folded (no nr_pmds member).
    try:
        return m.nr_pmds.counter.value_()
    except (AttributeError, ObjectAbsentError):
        return 0
