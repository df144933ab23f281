"""A task's stack frames without debug info, over the target port.

Where a task's stack starts: a task on a CPU at the dump (``task->on_cpu``)
from that CPU's saved registers (the dump's ``NT_PRSTATUS`` notes, see
:mod:`oomdrgn.core.prstatus`; as drgn's ``stack_trace()`` does); a sleeping
one from what ``__switch_to()`` saved (x86-64: ``task->thread.sp`` points to a
``struct inactive_task_frame``; arm64: ``task->thread.cpu_context``). Then
:mod:`oomdrgn.core.unwind_orc` (x86-64) or :mod:`oomdrgn.core.unwind_fp`
(arm64) walks it, and kallsyms names each frame as the kernel's ``%pB`` does:
the symbol holding the address (a return address's minus one; the first of
aliases), its size up to the next symbol. (The DWARF port names frames from
the vmlinux's ELF symbol table: an alias, an inner label such as
``entry_SYSCALL_64_after_hwframe``, or a mapping symbol kallsyms leaves out
(arm64 ``$x``) may then name or size a frame otherwise.)
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .port import Fault, Target
from .prstatus import cpu_registers
from .unwind_fp import FpUnwinder, before_frame_record
from .unwind_orc import PT_REGS_FIELDS, OrcTables, OrcUnwinder, orc_format

__all__ = ["StackTracer", "registers_by_cpu"]

NameAt = Callable[[int], Optional[Tuple[str, int, int]]]
Frame = Tuple[str, int, int, bool]
#: the longest function entry (bytes) checked for a frame record not yet made
_PROLOGUE = 64


class StackTracer:
    """Unwinds the tasks of one kernel.

    :param target: the port (memory, BTF's layouts, kallsyms' symbols)
    :param registers: each CPU's saved registers, by CPU number (from
        ``prstatus.cpu_registers``); empty where the target has none (a live kernel)
    :param name_at: ``(name, start, size)`` of the symbol holding an address
        (``Kallsyms.name_at``), or None
    :param orc_entry: x86-64: ``struct orc_entry``'s ``({field: (bit offset,
        bit size)}, size)`` (``Btf.bit_fields``)
    :param va_bits: arm64: ``vabits_actual`` (pointer-authentication codes above it)
    """

    def __init__(self, target: Target, registers: Sequence[Mapping[str, int]], name_at: NameAt,
                 orc_entry: Optional[Tuple[Mapping[str, Tuple[int, int]], int]] = None,
                 va_bits: int = 48) -> None:
        self.target = target
        self.registers = list(registers)
        self.name_at = name_at
        self._orc_entry = orc_entry
        self.va_bits = va_bits
        self._orc: Optional[OrcUnwinder] = None
        self._fp: Optional[FpUnwinder] = None

    def _word(self, address: int, size: int = 8) -> int:
        return int.from_bytes(self.target.read(address, size), "little")

    def _task_int(self, task: int, designator: str) -> int:
        m = self.target.member("struct task_struct", designator)
        return self._word(task + m.offset, m.size)

    def _cpu(self, task: int) -> int:
        for designator in ("thread_info.cpu", "cpu"):
            # Since bcf9033e5449 ("sched: move CPU field back into thread_info if
            # THREAD_INFO_IN_TASK") (in v5.16) thread_info.cpu; before it task->cpu.
            try:
                return self._task_int(task, designator)
            except LookupError:
                continue
        raise LookupError("task_struct has no cpu")

    def running_registers(self, task: int) -> Optional[Mapping[str, int]]:
        """The saved registers of the CPU *task* is on at the dump, or None if it
        sleeps (``task->on_cpu`` clear)."""
        try:
            on_cpu = self._task_int(task, "on_cpu")
        except LookupError:
            on_cpu = 0  # !CONFIG_SMP
        if not on_cpu:
            return None
        cpu = self._cpu(task)
        if cpu >= len(self.registers):
            raise LookupError(f"no saved registers for CPU {cpu}")
        return self.registers[cpu]

    # x86-64 ------------------------------------------------------------------

    def _orc_unwinder(self) -> OrcUnwinder:
        if self._orc is None:
            if self._orc_entry is None:
                raise LookupError("no struct orc_entry layout")
            t = self.target

            def address(name: str) -> Optional[int]:
                found = t.symbol(name)
                return None if found is None else found[0]
            offsets = {name: t.member("struct pt_regs", name).offset for name in PT_REGS_FIELDS}
            self._orc = OrcUnwinder(t.read, orc_format(*self._orc_entry),
                                    OrcTables.from_symbols(address), offsets,
                                    self._module_orc)
        return self._orc

    def _module_text(self, module: int) -> Tuple[int, int]:
        """``(base, size)`` of a ``struct module``'s core text."""
        t = self.target
        try:
            # Since ac3b43283923 ("module: replace module_layout with
            # module_memory") (in v6.4): mem[MOD_TEXT].
            text = t.constant("MOD_TEXT") or 0
            size = t.sizeof("struct module_memory")
            at = module + t.member("struct module", "mem").offset + text * size
            return (self._word(at + t.member("struct module_memory", "base").offset),
                    self._word(at + t.member("struct module_memory", "size").offset, 4))
        except LookupError:
            at = module + t.member("struct module", "core_layout").offset
            return (self._word(at + t.member("struct module_layout", "base").offset),
                    self._word(at + t.member("struct module_layout", "size").offset, 4))

    def _module_orc(self, ip: int) -> Optional[Tuple[int, int, int]]:
        """The ORC tables of the module whose text holds *ip*, or None."""
        t = self.target
        head = t.symbol("modules")
        if head is None:
            return None
        link = t.member("struct module", "list").offset
        node = self._word(head[0])
        for _ in range(65536):
            if node == head[0] or not node:
                break
            module = node - link
            base, size = self._module_text(module)
            if base <= ip < base + size:
                arch = module + t.member("struct module", "arch").offset
                mas = "struct mod_arch_specific"
                return (self._word(arch + t.member(mas, "orc_unwind_ip").offset),
                        self._word(arch + t.member(mas, "orc_unwind").offset),
                        self._word(arch + t.member(mas, "num_orcs").offset, 4))
            node = self._word(node)
        return None

    def _x86_64(self, task: int) -> List[Tuple[int, bool]]:
        orc = self._orc_unwinder()
        regs = self.running_registers(task)
        if regs is not None:
            return orc.unwind(regs["ip"], regs["sp"], regs["bp"], regs)
        # unwind_start() of a task that is not running: __switch_to_asm()'s frame.
        t = self.target
        sp = self._task_int(task, "thread.sp")
        bp = self._word(sp + t.member("struct inactive_task_frame", "bp").offset)
        ip = self._word(sp + t.member("struct inactive_task_frame", "ret_addr").offset)
        fork = t.symbol("ret_from_fork")
        return orc.unwind(ip, sp + t.sizeof("struct inactive_task_frame"), bp,
                          signal=fork is not None and ip == fork[0])

    # arm64 -------------------------------------------------------------------

    def _fp_unwinder(self) -> FpUnwinder:
        if self._fp is None:
            t = self.target
            marks = None
            try:
                t.sizeof("struct frame_record_meta")
                marks = (t.member("struct pt_regs", "stackframe").offset,
                         t.member("struct pt_regs", "pc").offset,
                         t.member("struct pt_regs", "regs[29]").offset)
            except LookupError:
                pass  # before v6.13: a {0, 0} record is always the last
            self._fp = FpUnwinder(t.read, self.va_bits, marks)
        return self._fp

    def _aarch64(self, task: int) -> List[Tuple[int, bool]]:
        fp = self._fp_unwinder()
        regs = self.running_registers(task)
        if regs is not None:
            pc = regs["pc"]
            lr = None
            hit = self.name_at(pc)
            if hit is not None and pc - hit[1] <= _PROLOGUE:
                try:
                    code = self.target.read(hit[1], pc - hit[1]) if pc > hit[1] else b""
                    if before_frame_record(code):
                        lr = regs["x30"]
                except Fault:
                    pass
            return fp.unwind(pc, regs["x29"], lr)
        t = self.target
        base = t.member("struct task_struct", "thread.cpu_context").offset
        ctx = "struct cpu_context"
        pc = self._word(task + base + t.member(ctx, "pc").offset)
        frame = self._word(task + base + t.member(ctx, "fp").offset)
        return fp.unwind(pc, frame, interrupted=False)

    # Frames ------------------------------------------------------------------

    def pcs(self, task: int) -> List[Tuple[int, bool]]:
        """``[(pc, interrupted), ...]`` of *task*, innermost first.

        :raises LookupError: no registers or layout to start from
        """
        if self.target.arch == "aarch64":
            return self._aarch64(task)
        return self._x86_64(task)

    def frames(self, task: int) -> List[Frame]:
        """``(function, offset, size, reliable)`` per frame, as the DWARF port's
        ``stack_frames``: a return address is looked up at address - 1; a frame
        in user space ends the trace, one with no symbol is left out."""
        out: List[Frame] = []
        for pc, interrupted in self.pcs(task):
            hit = self.name_at(pc if interrupted else pc - 1)
            if hit is None:
                if not pc >> 63:
                    break
                continue
            name, start, size = hit
            out.append((name, pc - start, size, True))
        return out


def registers_by_cpu(notes: Sequence[bytes], arch: str, little_endian: bool = True
                     ) -> List[Dict[str, int]]:
    """Each ``NT_PRSTATUS`` descriptor's registers, the *i*-th for CPU *i*."""
    return [cpu_registers(desc, arch, little_endian) for desc in notes]
