"""drgn backend: :class:`~oomdrgn.core.kernel.KernelReader` over a drgn program,
plus the same records read through drgn Objects (the reference the core's
raw reads are tested against)."""

from __future__ import annotations

from typing import Optional

from drgn import FaultError, Object, ObjectAbsentError, Program, TypeKind

from ..core.errors import EXIT_USAGE, OomdrgnError, ReadError
from ..core.kernel import KernelReader
from ..core.kernelinfo import KernelInfo
from ..core.mmcounters import per_cpu_ptrs, s32
from ..core.model import MmRecord, RawCounter, TaskRecord
from .port import DrgnPort

__all__ = ["DrgnReader", "BtfReader", "reader_for"]


class DrgnReader(KernelReader):
    """:class:`oomdrgn.core.oom.Reader` over a drgn program (cached per
    program by :func:`oomdrgn.drgn.command.reader_for`)."""

    def __init__(self, prog: Program, counter_rule: Optional[str] = None,
                 info: Optional[KernelInfo] = None) -> None:
        self.prog = prog
        super().__init__(DrgnPort(prog), counter_rule, info)

    # The reference: drgn Objects, field by field ---------------------------------

    def task_slow(self, task: int) -> TaskRecord:
        """:meth:`task` through drgn Objects."""
        t = Object(self.prog, "struct task_struct *", task)
        try:
            signal = t.signal
            vfork_done = t.vfork_done.value_()
            has_oom_mm = self.has("struct signal_struct", "oom_mm")
            return TaskRecord(
                address=task, pid=t.pid.value_(), tgid=t.tgid.value_(),
                comm=t.comm.string_().decode("utf-8", "surrogateescape"),
                flags=t.flags.value_(),
                uid=t.real_cred.uid.val.value_() & 0xFFFFFFFF,
                oom_score_adj=signal.oom_score_adj.value_(),
                mm=t.mm.value_(), vfork_done=vfork_done,
                parent_mm=t.real_parent.mm.value_() if vfork_done else 0,
                oom_mm=signal.oom_mm.value_() if has_oom_mm else 0,
                oom_flag_origin=bool(signal.oom_flag_origin.value_()))
        except FaultError as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

    def _counter_slow(self, rss_stat: Object, index: Optional[int], percpu: bool) -> RawCounter:
        if index is None:
            return RawCounter(0, () if percpu else None)
        if self.info.counter_layout == "percpu":
            fbc = rss_stat[index]
            deltas = None
            if percpu:
                base = fbc.counters.value_()
                deltas = tuple(s32(self.prog.read_u32(p))
                               for p in per_cpu_ptrs(base, self.percpu_offsets()))
            return RawCounter(fbc.count.value_(), deltas)
        return RawCounter(rss_stat.count[index].counter.value_())

    def mm_slow(self, mm: int, percpu: bool) -> MmRecord:
        """:meth:`mm` through drgn Objects."""
        m = Object(self.prog, "struct mm_struct *", mm)
        try:
            rss_stat = m.rss_stat
            counters = tuple(self._counter_slow(rss_stat, i, percpu) for i in self.mm_index)
            if self.info.pgtables == "bytes":
                pt = dict(pgtables_bytes=m.pgtables_bytes.counter.value_())
            else:
                pt = dict(nr_ptes=m.nr_ptes.counter.value_(), nr_pmds=_nr_pmds(m))
            return MmRecord(address=mm, total_vm=m.total_vm.value_(), counters=counters,
                            flags=_mm_flags(m), **pt)
        except FaultError as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None


class BtfReader(KernelReader):
    """:class:`oomdrgn.core.oom.Reader` over a drgn program without debug info:
    types from the kernel's BTF, symbols from its kallsyms."""

    def __init__(self, prog: Program, counter_rule: Optional[str] = None) -> None:
        from .nodebug import btf_port
        self.prog = prog
        self.port, self.sources = btf_port(prog, prog.config.get("oomdrgn.nodebug_vmlinux"),
                                           use_cache=prog.config.get("oomdrgn.layout_cache",
                                                                     True))
        super().__init__(self.port, counter_rule)
        # The kernel image's bounds, kept for a later open with no debugger
        # (oomdrgn.elfcore reads the image only between them).
        for name in ("_text", "_end"):
            self.port.symbol(name)

    def save_layout(self) -> None:
        """Keep what this run learnt of the build in the layout cache."""
        from ..core.layoutcache import save_layout
        if self.port.layout.changed and self.port.layout.build_id:
            save_layout(self.port.layout)


def reader_for(prog: Program, counter_rule: Optional[str] = None) -> KernelReader:
    """The reader of *prog* for this counter rule (lifetime: the program): over
    its DWARF, or, opened without debug info, over the kernel's BTF and kallsyms."""
    key = ("oomdrgn.reader", counter_rule)
    reader = prog.cache.get(key)
    if reader is None:
        try:
            if prog.config.get("oomdrgn.debug_info") == "btf":
                reader = BtfReader(prog, counter_rule)
            else:
                reader = DrgnReader(prog, counter_rule)
        except ValueError as e:
            raise OomdrgnError(str(e), EXIT_USAGE) from None
        prog.cache[key] = reader
    return reader


def _mm_flags(m: Object) -> int:
    flags = m.flags
    # mm_flags_t (v6.18): struct { unsigned long __mm_flags[1]; }; the low word
    # holds MMF_OOM_SKIP.
    if flags.type_.unaliased_kind() in (TypeKind.STRUCT, TypeKind.UNION):
        return flags.member_(flags.type_.unaliased().members[0].name)[0].value_()
    return flags.value_()


def _nr_pmds(m: Object) -> int:
    # mm_nr_pmds() is 0 where the PMD level is folded (no nr_pmds member).
    try:
        return m.nr_pmds.counter.value_()
    except (AttributeError, ObjectAbsentError):
        return 0
