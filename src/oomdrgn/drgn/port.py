"""The target port over a :class:`drgn.Program` (see :mod:`oomdrgn.core.port`)."""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from drgn import (FaultError, Object, ObjectAbsentError, Program, ProgramFlags, Type, TypeKind,
                  offsetof, sizeof)

from ..core.errors import OomdrgnError
from ..core.port import Fault, Member
from .program import PAUSED

__all__ = ["DrgnPort", "linear_map"]

_MASK64 = (1 << 64) - 1
_KINDS = {TypeKind.INT: "int", TypeKind.BOOL: "bool", TypeKind.ENUM: "enum",
          TypeKind.POINTER: "pointer", TypeKind.ARRAY: "array", TypeKind.STRUCT: "struct",
          TypeKind.UNION: "union"}
_PART = re.compile(r"[A-Za-z_]\w*|\[\d+\]")


def _direct_mapping_offset(prog: Program) -> int:
    """drgn's ``phys_to_virt(prog, 0)``, without importing every helper of
    ``drgn.helpers.linux`` (~20 ms) where drgn's own function is at hand."""
    try:
        from _drgn import _linux_helper_direct_mapping_offset
    except ImportError:  # another drgn: its public helper
        from drgn.helpers.linux.mm import phys_to_virt
        return phys_to_virt(prog, 0).value_()
    return _linux_helper_direct_mapping_offset(prog)


def _file_memory(prog: Program):
    """A direct reader of the target's files by physical address (raw images, an
    ELF vmcore: mapped, sliced), or None; ~10x faster than a drgn read."""
    from ..core.rawimage import PhysicalMemory, RawImageError, elf_banks
    mem = prog.cache.get("oomdrgn_physmem")
    path = prog.config.get("oomdrgn.elf_core")
    if mem is None and path:
        from ..core.elffile import load_segments
        try:
            mem = PhysicalMemory(elf_banks(path, load_segments(path)))
        except (RawImageError, OSError, ValueError):
            return None
        prog.cache["oomdrgn_physmem"] = mem
    return mem.slicer() if mem is not None else None


def linear_map(prog: Program) -> Optional[Tuple[int, int, int]]:
    """``(start, end, offset)``: the kernel's direct map of RAM, virtual
    ``[start, end)`` at physical ``address - offset``, from drgn's own
    ``phys_to_virt()`` and the kernel's ``min_low_pfn``/``max_pfn``; None if
    the kernel does not tell."""
    try:
        shift = prog["PAGE_SHIFT"].value_()
        low = prog["min_low_pfn"].value_() << shift
        high = prog["max_pfn"].value_() << shift
        offset = _direct_mapping_offset(prog)
    except (LookupError, FaultError, ValueError, NotImplementedError):
        return None
    if not 0 <= low < high:
        return None
    return (low + offset) & _MASK64, (high + offset) & _MASK64, offset


def symbol_linear_map(prog: Program, symbol: Callable[[str], Optional[Tuple[int, int]]]
                      ) -> Optional[Tuple[int, int, int]]:
    """:func:`linear_map` without debug info: the kernel's symbols (*symbol*, e.g.
    from kallsyms) and VMCOREINFO give ``min_low_pfn``, ``max_pfn`` and the offset,
    x86-64's ``page_offset_base`` or arm64's ``PAGE_OFFSET - PHYS_OFFSET``."""
    from ..core.rawimage import parse_vmcoreinfo
    from ..core.rawkernel import arm64_linear_offset

    def word(name: str) -> int:
        found = symbol(name)
        if found is None:
            raise LookupError(name)
        return int.from_bytes(prog.read(found[0], 8), "little")
    try:
        info = parse_vmcoreinfo(prog["VMCOREINFO"].string_())
        shift = int(info["PAGESIZE"]).bit_length() - 1
        low, high = word("min_low_pfn") << shift, word("max_pfn") << shift
        if "NUMBER(kimage_voffset)" in info:
            offset = arm64_linear_offset(info)
        else:
            offset = word("page_offset_base")  # x86-64: __va(x) = x + PAGE_OFFSET
    except (LookupError, KeyError, FaultError, ValueError, OomdrgnError):
        return None  # OomdrgnError: a symbol that kallsyms lacks and was not recovered
    if not 0 <= low < high:
        return None
    return (low + offset) & _MASK64, (high + offset) & _MASK64, offset


class DrgnPort:
    """:class:`oomdrgn.core.port.Target` over a drgn program of a Linux kernel.

    Reads of a vmcore inside the kernel's direct map go by physical address:
    drgn then skips its page-table walk (4/5 of a small read's cost). The
    first such read is checked against the virtual one; a difference turns
    this off. Types and members are looked up once per port.
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.arch = "aarch64" if "AARCH64" in str(prog.platform.arch) else "x86_64"
        self.little_endian = bool(prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN)
        # A QEMU guest paused when oomdrgn attached reads like a vmcore
        # (oomdrgn.drgn.program.PAUSED).
        self.live = (bool(prog.flags & ProgramFlags.IS_LIVE)
                     and not prog.config.get(PAUSED, False))
        self._checked = False
        self.direct_map(None if self.live else linear_map(prog))
        self._members: Dict[Tuple[str, str], Member] = {}
        self._symbols: Dict[str, Optional[Tuple[int, int]]] = {}

    def direct_map(self, linear: Optional[Tuple[int, int, int]]) -> None:
        """Read the direct map ``(start, end, offset)`` by physical address
        (None: every read virtual)."""
        self._linear = linear
        self._file = None if linear is None else _file_memory(self.prog)

    def read(self, address: int, size: int) -> bytes:
        try:
            linear = self._linear
            if linear is not None and linear[0] <= address and address + size <= linear[1]:
                paddr = (address - linear[2]) & _MASK64
                data = self._file(paddr, size) if self._file is not None else None
                if data is None:
                    data = self.prog.read(paddr, size, True)
                if self._checked:
                    return data
                self._checked = True  # once: the physical reading is the virtual one
                if data == self.prog.read(address, size):
                    return data
                self._linear = None
            return self.prog.read(address, size)
        except FaultError as e:
            raise Fault(str(e), address) from None

    def member(self, type_name: str, designator: str) -> Member:
        key = (type_name, designator)
        m = self._members.get(key)
        if m is None:
            ty = self.prog.type(type_name)
            t = ty
            for part in _PART.findall(designator):
                t = t.unaliased()
                t = t.type if part.startswith("[") else t.member(part).type
            m = self._members[key] = _member(offsetof(ty, designator), t)
        return m

    def sizeof(self, type_name: str) -> int:
        # drgn's sizeof() sees through typedefs (atomic_long_t, nodemask_t).
        return sizeof(self.prog.type(type_name))

    def constant(self, name: str) -> Optional[int]:
        try:
            return self.prog.constant(name).value_()
        except LookupError:
            return None

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        # Kept per program (symbols do not move; drgn's lookup is ~0.5 ms).
        if name not in self._symbols:
            self._symbols[name] = self._symbol(name)
        return self._symbols[name]

    def _symbol(self, name: str) -> Optional[Tuple[int, int]]:
        # A variable from the debug info's index first (~30 µs; the ELF symbol
        # table lookup takes ~0.5 ms, and ~5 ms for a name it lacks): its size is
        # its type's, as the symbol's st_size is.
        try:
            obj = self.prog.variable(name)
            try:
                size = sizeof(obj.type_)
            except TypeError:  # incomplete type (an array without bounds)
                size = 0
            if obj.address_ is not None:
                return obj.address_, size
        except (LookupError, ValueError):
            pass
        try:  # functions (their size from the symbol table), symbols without debug info
            sym = self.prog.symbol(name)
            return sym.address, sym.size
        except LookupError:
            return None

    def return_type(self, function: str) -> Optional[str]:
        try:
            return self.prog.function(function).type_.type.type_name()
        except (LookupError, AttributeError):
            return None

    def vmlinux_path(self) -> Optional[str]:
        try:
            return self.prog.main_module().debug_file_path
        except (AttributeError, LookupError):
            return None

    def find_task(self, pid: int) -> Optional[int]:
        from drgn.helpers.linux.pid import find_task
        try:
            t = find_task(self.prog, pid)
            return t.value_() if t else 0
        except (LookupError, FaultError, AttributeError):
            return None  # no usable PID hash: the core walks the tasks

    def symbol_name(self, address: int) -> Optional[str]:
        try:
            return self.prog.symbol(address).name
        except LookupError:
            return None

    def stack_functions(self, task: int) -> Optional[List[str]]:
        try:
            # An int would be taken as a PID: pass the task_struct.
            trace = self.prog.stack_trace(Object(self.prog, "struct task_struct *", task))
            return [frame.name for frame in trace if frame.name]
        except (LookupError, ValueError, FaultError, NotImplementedError):
            return None

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        try:
            trace = self.prog.stack_trace(Object(self.prog, "struct task_struct *", task))
        except (LookupError, ValueError, FaultError, NotImplementedError):
            return None
        frames = []
        for frame in trace:
            if frame.is_inline:
                continue  # the kernel prints ELF symbols: one line per real frame
            pc = frame.pc
            if not pc:
                break  # no return address: the end of the stack
            try:
                # A return address may be past its call's function: %pB looks up pc - 1.
                sym = self.prog.symbol(pc if frame.interrupted else pc - 1)
            except LookupError:
                if not pc >> 63:
                    break  # user space: the kernel's trace ends there too
                continue  # a module's code without its symbols: no name to give
            frames.append((sym.name, pc - sym.address, self._kallsyms_size(sym), True))
        return frames

    def _kallsyms_size(self, sym) -> int:
        """The size kallsyms gives a symbol: up to the next symbol's address
        (alignment padding included), not the ELF ``st_size``. The next symbol
        starts right at the end (a ``.cold`` part) or at an aligned address (code
        is 4-byte aligned, functions 16 on x86): those are probed, in order."""
        end = sym.address + sym.size
        for address in [end] + [a for a in range(end + 1, end + 64) if a % 4 == 0]:
            try:
                if self.prog.symbol(address).address == address:
                    return address - sym.address
            except LookupError:
                continue
        return sym.size

    def oom_control(self, task: int) -> Optional[dict]:
        try:
            trace = self.prog.stack_trace(Object(self.prog, "struct task_struct *", task))
        except (LookupError, ValueError, FaultError, NotImplementedError):
            return None
        for frame in trace:
            try:
                oc = frame["oc"]
                if oc.type_.unaliased_kind() == TypeKind.POINTER:
                    oc = oc[0]
                out = {"gfp_mask": oc.gfp_mask.value_(), "order": oc.order.value_(),
                       "nodemask": oc.nodemask.value_(), "memcg": oc.memcg.value_(),
                       "address": oc.address_, "function": frame.name}
                # Set by out_of_memory() before the report (none at its start).
                for name in ("constraint", "totalpages"):
                    try:
                        out[name] = getattr(oc, name).value_()
                    except (AttributeError, LookupError, FaultError, ObjectAbsentError):
                        out[name] = None
                return out
            except (KeyError, LookupError, FaultError, ObjectAbsentError, ValueError,
                    AttributeError):
                continue  # not in this frame, or optimized out
        return None

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        return None

    def vmcoreinfo(self) -> Optional[bytes]:
        return None


def _member(offset: int, t: Type) -> Member:
    t = t.unaliased()
    kind = _KINDS.get(t.kind, "other")
    signed = False
    if kind == "int":
        signed = t.is_signed
    elif kind == "enum":
        signed = t.type.is_signed
    try:
        size = sizeof(t)
    except TypeError:  # incomplete (a flexible array)
        size = 0
    members: Tuple[str, ...] = ()
    if kind in ("struct", "union"):
        members = tuple(m.name or "" for m in t.members)
    return Member(offset, size, kind, signed, t.length if kind == "array" else None, members)
