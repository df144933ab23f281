"""drgn backend: turns a :class:`drgn.Program`'s kernel objects into plain records."""

from typing import Dict, Iterator, Optional

from drgn import FaultError, Object, ObjectAbsentError, Program, TypeKind
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.pid import find_task

from .elffile import read_section
from .kernelinfo import CONSUMERS, Evidence, KernelInfo, decide
from .model import MmRecord, RawCounter, TaskRecord
from .oom import ReadError

__all__ = ["DrgnReader", "gather_evidence"]

# Bound on list walks: more entries than this means a corrupted (looping) list.
_MAX_LIST = 4_000_000
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
    from .codescan import calls_target
    try:
        sym = prog.symbol(func)
        target = prog.symbol("__percpu_counter_sum").address
        code = prog.read(sym.address, sym.size)
    except (LookupError, FaultError):
        return None
    arch = "aarch64" if "AARCH64" in str(prog.platform.arch) else "x86_64"
    return calls_target(code, sym.address, target, arch)


def gather_evidence(prog: Program) -> Evidence:
    """Read what :func:`oomdrgn.kernelinfo.decide` needs from *prog*."""
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
        prog.constant("MM_SHMEMPAGES")
        has_shmem = True
    except LookupError:  # MM_SHMEMPAGES is new in v4.5
        has_shmem = False
    return Evidence(arch=arch, page_shift=prog["PAGE_SHIFT"].value_(), counter_layout=layout,
                    pgtables=pgtables, rodata=_rodata(prog), calls_sum=calls,
                    has_shmem=has_shmem)


class DrgnReader:
    """:class:`oomdrgn.oom.Reader` over a drgn program."""

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

    # Lists -----------------------------------------------------------------

    def _walk(self, head: Object, member: str, what: str) -> Iterator[int]:
        """Entries of a list_head as addresses of the containing struct."""
        offset = self.prog.type("struct task_struct").member(member).offset
        head_addr = head.address_
        seen = set()
        try:
            node = head.next.value_()
            while node != head_addr:
                if node in seen or len(seen) > _MAX_LIST:
                    raise ReadError(f"{what} list loops at {node:#x}")
                seen.add(node)
                yield node - offset
                node = self.prog.read_word(node)
        except FaultError as e:
            raise ReadError(f"{what} list unreadable: {e}") from None

    def processes(self) -> Iterator[int]:
        return self._walk(self.prog["init_task"].tasks, "tasks", "init_task.tasks")

    def threads(self, task: int) -> Iterator[int]:
        try:
            signal = Object(self.prog, self._task_ptr, task).signal
            head = signal.thread_head
        except FaultError as e:
            raise ReadError(f"task {task:#x}: signal unreadable: {e}") from None
        return self._walk(head, "thread_node", "thread")

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

    # Records ---------------------------------------------------------------

    def task(self, task: int) -> TaskRecord:
        t = Object(self.prog, self._task_ptr, task)
        try:
            return TaskRecord(
                address=task, pid=t.pid.value_(), tgid=t.tgid.value_(),
                comm=t.comm.string_().decode("utf-8", "surrogateescape"),
                flags=t.flags.value_(),
                uid=t.real_cred.uid.val.value_() & 0xFFFFFFFF,
                oom_score_adj=t.signal.oom_score_adj.value_(),
                mm=t.mm.value_())
        except FaultError as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

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
                deltas = tuple(_s32(self.prog.read_u32((base + off) & _MASK64))
                               for off in self._percpu())
            return RawCounter(fbc.count.value_(), deltas)
        return RawCounter(rss_stat.count[index].counter.value_())

    def mm(self, mm: int, percpu: bool) -> MmRecord:
        m = Object(self.prog, self._mm_ptr, mm)
        try:
            rss_stat = m.rss_stat
            counters = tuple(self._counter(rss_stat, i, percpu) for i in self._mm_index)
            if self.info.pgtables == "bytes":
                pt = dict(pgtables_bytes=m.pgtables_bytes.counter.value_())
            else:
                pt = dict(nr_ptes=m.nr_ptes.counter.value_(), nr_pmds=_nr_pmds(m))
            return MmRecord(address=mm, total_vm=m.total_vm.value_(), counters=counters, **pt)
        except FaultError as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _nr_pmds(m: Object) -> int:
    # mm_nr_pmds() is 0 where the PMD level is folded (no nr_pmds member).
    try:
        return m.nr_pmds.counter.value_()
    except (AttributeError, ObjectAbsentError):
        return 0
