"""The kernel read once, over the target port: :class:`KernelReader` is the
:class:`oomdrgn.core.oom.Reader` of every backend.

Task, signal, cred and mm records come from raw reads decoded with offsets
found once per reader (the hot path); the layout of this kernel is detected
from its types, newest first.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Dict, Iterator, List, Literal, Optional, Tuple, Union

from . import cgroup
from .errors import ReadError, TargetError
from .evidence import gather_evidence, has_member
from .kernelinfo import KernelInfo, decide
from .klist import list_entries
from .mmcounters import per_cpu_ptrs, s32
from .model import MemcgRecord, MmRecord, RawCounter, ReadFailure, Row, TaskRecord, VmTotals
from .oom import task_that_hit_the_oom
from .port import Fault, Target
from .structs import BlockCache, StructReader

__all__ = ["KernelReader", "MM_ENUM"]

_MASK64 = (1 << 64) - 1
_FAULTS = (Fault,)
#: ``enum`` of ``mm->rss_stat``'s counters, in the order records hold them.
MM_ENUM = ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")


class KernelReader:
    """:class:`oomdrgn.core.oom.Reader` over a :class:`~oomdrgn.core.port.Target`.

    :param cache: serve reads from blocks read once (memory that cannot change
        while this reader lives: a vmcore, a stopped guest); default: unless
        the target is live
    """

    def __init__(self, target: Target, counter_rule: Optional[str] = None,
                 info: Optional[KernelInfo] = None, cache: Optional[bool] = None) -> None:
        self.target = target
        self.info = info or decide(gather_evidence(target), counter_rule)
        self.memory = BlockCache(target, enabled=not target.live if cache is None else cache)
        self.mm_index = [target.constant(n) for n in MM_ENUM]  # MM_SHMEMPAGES: v4.5+
        self._percpu_offsets: Optional[List[int]] = None
        self._pids: Optional[Dict[int, int]] = None
        # Records read once, kept while memory cannot change (a vmcore, a
        # stopped guest): the report walks the tasks twice (select_bad_process,
        # dump_tasks), as the kernel does.
        self._walks: Dict[Tuple[str, int], List[int]] = {}
        #: find_lock_task_mm() answers by process (:func:`oomdrgn.core.oom.find_lock_task_mm`);
        #: None while memory may change
        self.task_mm_memo: Optional[Dict[int, Optional[TaskRecord]]] = (
            {} if self.memory.enabled else None)
        self._tasks: Dict[int, TaskRecord] = {}
        self._mms: Dict[Tuple[int, bool], MmRecord] = {}
        self._layout(target)

    # Layout, found once --------------------------------------------------------

    def _layout(self, target: Target) -> None:
        info, mem = self.info, self.memory
        self.task_r = StructReader(target, "struct task_struct", [
            "pid", "tgid", "comm", "flags", "real_cred", "signal", "mm", "vfork_done",
            "real_parent", "thread_node.next", "tasks.next"], mem)
        self.tasks_off = target.member("struct task_struct", "tasks").offset
        self.thread_node_off = target.member("struct task_struct", "thread_node").offset
        self.pid_off = self.task_r.offset("pid")
        self.signal_off = self.task_r.offset("signal")
        self.mm_off = self.task_r.offset("mm")
        # signal->oom_mm since Linux kernel commit 26db62f179d1 ("oom: keep mm
        # of the killed task available") (in v4.10); before it reads 0.
        self.signal_r = StructReader(target, "struct signal_struct", [
            "oom_score_adj", "oom_mm", "oom_flag_origin", "thread_head.next"], mem)
        self.thread_head_off = target.member("struct signal_struct", "thread_head").offset
        self.cred_uid = target.member("struct cred", "uid").offset
        # (task, its task_r values) of the task the process walk stands on.
        self.walked: Tuple[int, tuple] = (0, ())
        # (task, &signal->thread_head, signal->thread_head.next) of the last
        # task read: find_lock_task_mm() walks that task's threads next.
        self.last_thread_head: Tuple[int, int, Optional[int]] = (0, 0, 0)
        percpu = info.counter_layout == "percpu"
        present = [i for i in self.mm_index if i is not None]
        rss = [f"rss_stat[{i}].count" if percpu else f"rss_stat.count[{i}]" for i in present]
        # Since v6.18 ("mm: introduce mm_flags_t", hash not checked here)
        # mm->flags is a struct { unsigned long __mm_flags[1]; } read with
        # mm_flags_test(); its first word holds MMF_OOM_SKIP.
        flags = target.member("struct mm_struct", "flags")
        self.flags_field = (f"flags.{flags.members[0]}[0]" if flags.kind in ("struct", "union")
                            else "flags")
        fields = ["total_vm", self.flags_field] + rss
        if percpu:
            fields += [f"rss_stat[{i}].counters" for i in present]
        fields += ["pgtables_bytes"] if info.pgtables == "bytes" else ["nr_ptes", "nr_pmds"]
        # mm_nr_pmds() is 0 where the PMD level is folded (no nr_pmds): reads 0.
        self.mm_r = StructReader(target, "struct mm_struct", fields, mem)
        # Where each value sits in what mm() reads: total_vm, flags, the counts
        # in mm_index order, [the per-CPU bases], the page-table fields, then
        # (0, None). A counter this kernel lacks (MM_SHMEMPAGES before v4.5)
        # reads count 0 and base None (no deltas).
        n, end = len(present), len(fields)
        slot = iter(range(2, 2 + n))
        count_at = [end if i is None else next(slot) for i in self.mm_index]
        self._counts = itemgetter(*count_at)
        self._bases = itemgetter(*(end + 1 if i == end else i + n for i in count_at))
        self._pgtables = itemgetter(*range(end - (1 if info.pgtables == "bytes" else 2), end))
        self._raw: Dict[int, RawCounter] = {}
        self._percpu_layout = percpu
        self._pgtables_bytes = info.pgtables == "bytes"

    def offset(self, type_name: str, designator: str) -> int:
        return self.target.member(type_name, designator).offset

    def symbol_address(self, name: str) -> int:
        sym = self.target.symbol(name)
        if sym is None:
            raise ReadError(f"no symbol {name}")
        return sym[0]

    # Lists ------------------------------------------------------------------

    def _kept(self, key: Tuple[str, int], walk: Iterator[int]) -> Iterator[int]:
        """*walk*, or its entries from an earlier complete walk while memory is static."""
        known = self._walks.get(key)
        if known is not None:
            yield from known
            return
        seen: List[int] = []
        for entry in walk:
            seen.append(entry)
            yield entry
        if self.memory.enabled:
            self._walks[key] = seen

    def processes(self) -> Iterator[int]:
        """``for_each_process``: ``init_task.tasks``, each task_struct's needed
        span read once, its link with it (see :meth:`_task_link`)."""
        head = self.symbol_address("init_task") + self.tasks_off
        return self._kept(("processes", 0), list_entries(
            head, self.tasks_off, self._task_link, "init_task.tasks", _FAULTS))

    def threads(self, task: int) -> Iterator[int]:
        known, head, first = self.last_thread_head
        if known != task:
            try:
                head = self.memory.read_word(task + self.signal_off) + self.thread_head_off
            except Fault as e:
                raise ReadError(f"task {task:#x}: signal unreadable: {e}") from None
            first = None
        return list_entries(head, self.thread_node_off, self._thread_link, "thread",
                            _FAULTS, first)

    def first_thread(self, task: int) -> Optional[int]:
        """The first thread of *task*'s group (``signal->thread_head.next``) when
        the last task record read was *task*'s (no read), else None."""
        known, _, first = self.last_thread_head
        if known != task or first is None:
            return None
        return (first - self.thread_node_off) & _MASK64

    def _task_link(self, node: int) -> int:
        """The link of the process list's *node*: a task_struct is 9-10 KiB of
        which the OOM code reads ~3 KiB, so that span is read once, exactly (no
        block), the ``tasks.next`` link with it, and kept for :meth:`task`."""
        task = (node - self.tasks_off) & _MASK64
        try:
            values = self.task_r.read_exact(task)
            nxt = values[-1]
        except (Fault, OverflowError, ValueError):
            # The task is unreadable (task() will say so, for its row); its
            # link alone may still be, for the walk to go on.
            values = ()
            nxt = self.memory.read_word(node)
        self.walked = (task, values)
        return nxt

    def _thread_link(self, node: int) -> int:
        """The link of a thread list's *node*: from the task the process walk
        stands on if it is that task's (no second read of it), else read."""
        task, values = self.walked
        if values and node == (task + self.thread_node_off) & _MASK64:
            return values[-2]
        return self.memory.read_word(node)

    def dump_tasks_static(self) -> Optional[List[Union[Row, ReadFailure]]]:
        """:func:`oomdrgn.core.oom.dump_tasks` of every process in one loop,
        with no per-task records: the process list walked as
        :meth:`processes` walks it, each task's span read once, its signal,
        cred and mm decoded where they lie. For memory that cannot change, and
        counters read as stored (not summed per CPU); None elsewhere, and where
        the walk meets anything but a sound list of readable tasks (the
        reference then says what it says). A process it does not read the
        simple way (no mm on its leader, a thread first in its group, a fault)
        gets the reference's row (:func:`oomdrgn.core.oom.process_row`)."""
        if (not self.memory.enabled or self.info.rules["table"] == "percpu-sum"
                or ("processes", 0) in self._walks):
            return None
        from .klist import MAX_LIST
        from .oom import PF_KTHREAD, process_row
        rows: List[Union[Row, ReadFailure]] = []
        add = rows.append
        read_span = self.task_r.read_exact
        signal_read, mm_read, read_u32 = self.signal_r.read, self.mm_r.read, self.memory.read_u32
        counts, pgtables, cred_uid = self._counts, self._pgtables, self.cred_uid
        node_off, tasks_off, by_bytes = self.thread_node_off, self.tasks_off, self._pgtables_bytes
        known = self.task_mm_memo if self.task_mm_memo is not None else {}
        walked: List[int] = []
        seen: set = set()
        try:
            head = self.symbol_address("init_task") + tasks_off
            node = self.memory.read_word(head)
        except (ReadError, Fault):
            return None
        while node != head:
            # list_entries()' checks: a NULL link, a loop, a link unreadable
            if node < 4096 or node in seen or len(seen) > MAX_LIST:
                return None
            seen.add(node)
            p = (node - tasks_off) & _MASK64
            try:
                values = read_span(p)
            except (Fault, OverflowError, ValueError):
                return None
            node = values[-1]
            walked.append(p)
            try:
                if p in known:
                    raise LookupError  # answered before
                pid, tgid, comm, flags, cred, signal, mm, _, _, _, _ = values
                if tgid == 1 or flags & PF_KTHREAD:  # oom_unkillable_task()
                    continue
                adj, _, _, first = signal_read(signal)
                if not mm or (first - node_off) & _MASK64 != p:
                    raise LookupError  # find_lock_task_mm() walks its threads
                m = mm_read(mm) + (0, None)
                file, anon, swap, shmem = counts(m)
                # get_mm_counter() of each, as stored (a negative one reads 0)
                file, anon = (file if file > 0 else 0), (anon if anon > 0 else 0)
                swap, shmem = (swap if swap > 0 else 0), (shmem if shmem > 0 else 0)
                pt = pgtables(m)  # pgtables_bytes, or (nr_ptes, nr_pmds) before v4.15
                add(Row(pid, read_u32(cred + cred_uid), tgid, m[0], file + anon + shmem, anon,
                        file, shmem, pt if by_bytes else 0, swap, adj,
                        comm.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
                        0 if by_bytes else pt[0], 0 if by_bytes else pt[1]))
            except (LookupError, Fault, OverflowError, ValueError):
                self.walked = (p, values)  # task(p) takes its span from here
                row = process_row(self, p, False, known)
                if row is not None:
                    add(row)
        self._walks[("processes", 0)] = walked  # a later walk need not read the list
        return rows

    def find_task(self, pid: int) -> Optional[int]:
        try:
            found = self.target.find_task(pid)
        except ReadError:
            found = None
        if found is not None:
            return found or None
        # No PID lookup (or a damaged one): one walk of every thread, stepping
        # over processes that cannot be read; kept while memory cannot change.
        pids = self._pids
        if pids is None:
            pids = {}
            for p in self.processes():
                try:
                    for t in self.threads(p):
                        tid = self.task_pid(t)
                        if tid >= 0:
                            pids.setdefault(tid, t)
                except ReadError:
                    continue
            if self.memory.enabled:
                self._pids = pids
        return pids.get(pid)

    def task_pid(self, task: int) -> int:
        try:
            return s32(self.memory.read_u32(task + self.pid_off))
        except (Fault, OverflowError, ValueError):
            return -1

    # Records -------------------------------------------------------------

    def task(self, task: int) -> TaskRecord:
        rec = self._tasks.get(task)
        if rec is not None:
            return rec
        try:
            rec = self._task(task)
        except (Fault, OverflowError, ValueError) as e:  # garbage pointers too
            raise ReadError(f"task {task:#x} unreadable: {e}") from None
        if self.memory.enabled:
            self._tasks[task] = rec
        return rec

    def _task(self, task: int) -> TaskRecord:
        walked, values = self.walked
        if walked != task or not values:
            values = self.task_r.read(task)
        pid, tgid, comm, flags, cred, signal, mm, vfork_done, parent, _, _ = values
        adj, oom_mm, oom_flag_origin, first = self.signal_r.read(signal)
        self.last_thread_head = (task, signal + self.thread_head_off, first)
        memory = self.memory
        return TaskRecord(
            task, pid, tgid, comm.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"),
            # uid: from_kuid(&init_user_ns, task_uid(task)), as an unsigned value.
            flags, memory.read_u32(cred + self.cred_uid), adj, mm, None, vfork_done,
            memory.read_word(parent + self.mm_off) if vfork_done else 0,
            oom_mm, bool(oom_flag_origin))

    def percpu_offsets(self) -> List[int]:
        """``__per_cpu_offset[cpu]`` of every possible CPU (read once per reader)."""
        if self._percpu_offsets is None:
            try:
                self._percpu_offsets = [self.per_cpu_offset(c) for c in self.cpus("possible")]
            except Fault as e:
                raise ReadError(f"per-CPU offsets unreadable: {e}") from None
        return self._percpu_offsets

    def per_cpu_offset(self, cpu: int) -> int:
        base = self.target.symbol("__per_cpu_offset")
        if base is None:  # a kernel built without SMP
            return 0
        return self.memory.read_word(base[0] + 8 * cpu)

    def mm(self, mm: int, percpu: bool) -> MmRecord:
        rec = self._mms.get((mm, percpu))
        if rec is not None:
            return rec
        try:
            rec = self._mm(mm, percpu, self.percpu_offsets() if percpu else ())
        except (Fault, OverflowError, ValueError) as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None
        if self.memory.enabled:
            self._mms[(mm, percpu)] = rec
        return rec

    def _mm(self, mm: int, percpu: bool, offsets) -> MmRecord:
        values = self.mm_r.read(mm) + (0, None)
        counts = self._counts(values)
        if percpu and self._percpu_layout:
            read_u32 = self.memory.read_u32
            counters = tuple(
                RawCounter(count, () if base is None else
                           tuple(s32(read_u32(p)) for p in per_cpu_ptrs(base, offsets)))
                for count, base in zip(counts, self._bases(values)))
        else:
            # Counters are immutable: one RawCounter per distinct value.
            get, put = self._raw.get, self._raw.setdefault
            counters = tuple([get(c) or put(c, RawCounter(c)) for c in counts])
        pt = self._pgtables(values)
        if self._pgtables_bytes:
            return MmRecord(mm, values[0], counters, pt, None, None, values[1])
        return MmRecord(mm, values[0], counters, None, pt[0], pt[1], values[1])

    # Memory, CPUs, the OOM's current -------------------------------------------

    def read_int(self, address: int, size: int = 8, signed: bool = False) -> int:
        order: Literal["little", "big"] = "little" if self.target.little_endian else "big"
        return int.from_bytes(self.target.read(address, size), order, signed=signed)

    def _global(self, name: str, designator: Optional[str] = None,
                type_name: Optional[str] = None, size: int = 8, signed: bool = False) -> int:
        address = self.symbol_address(name)
        if designator is not None and type_name is not None:
            address += self.offset(type_name, designator)
        return self.read_int(address, size, signed)

    def vm_totals(self) -> VmTotals:
        """``totalram_pages()``, ``total_swap_pages``, ``vm_swappiness``."""
        try:
            # _totalram_pages is an atomic_long_t since Linux kernel commit
            # ca79b0c211af ("mm: convert totalram_pages and totalhigh_pages
            # variables to atomic") (in v5.0).
            name = "_totalram_pages" if self.target.symbol("_totalram_pages") else "totalram_pages"
            return VmTotals(totalram_pages=self._global(name),
                            total_swap_pages=self._global("total_swap_pages", signed=True),
                            vm_swappiness=self._global("vm_swappiness", size=4, signed=True))
        except Fault as e:
            raise ReadError(f"memory totals unreadable: {e}") from None

    def cpus(self, which: str) -> List[int]:
        """The CPUs set in ``__cpu_<which>_mask`` (``possible``, ``online``)."""
        mask = self.target.symbol(f"__cpu_{which}_mask")
        if mask is None:
            raise ReadError(f"no __cpu_{which}_mask")
        size = self.target.member("struct cpumask", "bits").size
        bits = int.from_bytes(self.target.read(mask[0], size),
                              "little" if self.target.little_endian else "big")
        return [cpu for cpu in range(size * 8) if bits >> cpu & 1]

    def cpu_curr(self, cpu: int) -> int:
        """``cpu_rq(cpu)->curr``."""
        rq = (self.symbol_address("runqueues") + self.per_cpu_offset(cpu)) & _MASK64
        return self.read_int(rq + self.offset("struct rq", "curr"))

    def current_task(self) -> Optional[int]:
        """The task that hit the OOM (see :func:`oomdrgn.core.oom.task_that_hit_the_oom`):
        the panicking CPU's, else the stopped vCPU's, else ``oom_lock``'s owner,
        else the busy CPU's whose stack passes through the OOM killer, else the
        only busy CPU's."""
        try:
            cpu = (self._global("panic_cpu", size=4, signed=True)
                   if self.target.symbol("panic_cpu") else -1)
            if cpu >= 0:
                return task_that_hit_the_oom(self.cpu_curr(cpu), None, [])
            busy = [t for t in (self.cpu_curr(c) for c in self.cpus("online"))
                    if self.task_pid(t) != 0]
            stopped = self.target.stopped_task(busy)
            if stopped is None:
                # out_of_memory() runs under oom_lock (a mutex since "mm: oom_kill:
                # simplify OOM killer locking" (in v4.2, hash not checked here)),
                # and so do the memcg OOM and sysrq-f: free, no OOM is in
                # progress; held, its owner is the task in the OOM killer (no
                # registers or stack needed).
                owner = self.mutex_owner("oom_lock")
                if owner == 0:
                    return None
                if owner is not None and self.task_pid(owner) > 0:
                    return owner
            return task_that_hit_the_oom(
                None, stopped, [(t, self.target.stack_functions(t)) for t in busy])
        except Fault as e:
            raise ReadError(f"runqueues unreadable: {e}") from None

    def mutex_held(self, name: str) -> Optional[bool]:
        """Whether the global ``struct mutex`` *name* is held now (None: cannot tell)."""
        owner = self.mutex_owner(name)
        return None if owner is None else owner != 0

    def mutex_owner(self, name: str) -> Optional[int]:
        """The task holding the global ``struct mutex`` *name* (0: free; None:
        cannot tell)."""
        sym = self.target.symbol(name)
        if sym is None:
            return None
        # struct mutex's owner (atomic_long_t) since 3ca0ff571b09 ("locking/mutex:
        # Rework mutex::owner") (in v4.10): the owning task_struct, its low
        # three bits the MUTEX_FLAG_* bits. PREEMPT_RT's mutex is an rt_mutex
        # since bb630f9f7a7d ("locking/rtmutex: Add mutex variant for RT") (in
        # v5.15): rtmutex.owner, its low bit RT_MUTEX_HAS_WAITERS (rt_mutex_owner()).
        for designator, flags in (("owner", 0x7), ("rtmutex.owner", 0x1)):
            try:
                off = self.offset("struct mutex", designator)
            except LookupError:
                continue
            try:
                return self.memory.read_word(sym[0] + off) & ~flags & _MASK64
            except Fault:
                return None
        return None

    def mems_allowed(self, task: int) -> List[int]:
        m = self.target.member("struct task_struct", "mems_allowed.bits")
        try:
            bits = int.from_bytes(self.target.read(task + m.offset, m.size),
                                  "little" if self.target.little_endian else "big")
        except Fault as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None
        return [node for node in range(m.size * 8) if bits >> node & 1]

    # Cgroups (oomdrgn.core.cgroup) -------------------------------------------------

    def cgroup_path(self, task: int, subsys: str) -> Optional[str]:
        return cgroup.task_cgroup_path(self, task, subsys)

    def cgroup_name(self, task: int, subsys: str) -> Optional[str]:
        return cgroup.task_cgroup_name(self, task, subsys)

    def memcg(self, path: str) -> MemcgRecord:
        return cgroup.memcg_record(self, path)

    def memcg_scan_tasks(self, path: str) -> Iterator[int]:
        return cgroup.mem_cgroup_scan_tasks(self, path)

    def log_lines(self) -> List[str]:
        """The printk ring as console lines (see :mod:`oomdrgn.core.printk_ring`)."""
        from .printk_ring import console_lines, printk_records
        return console_lines(printk_records(self.target))

    def has(self, type_name: str, designator: str) -> bool:
        return has_member(self.target, type_name, designator)

    def string(self, address: int, limit: int = 4096) -> str:
        """The NUL-terminated string at *address*."""
        out = b""
        while len(out) < limit:
            chunk = self.target.read(address + len(out), 64 - (address + len(out)) % 64)
            end = chunk.find(b"\0")
            if end >= 0:
                return (out + chunk[:end]).decode("utf-8", "surrogateescape")
            out += chunk
        raise TargetError(f"string at {address:#x} longer than {limit} bytes")
