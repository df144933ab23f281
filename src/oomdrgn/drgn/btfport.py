"""The target port with no debug info: a drgn program for memory only, types
from the kernel's BTF, symbols from its kallsyms (both read from the target
itself by :mod:`oomdrgn.core.btf` and :mod:`oomdrgn.core.kallsyms`), every
answer kept in the build's :class:`~oomdrgn.core.layoutcache.Layout`: with a
warm cache, BTF and kallsyms are not even parsed."""

from typing import Callable, Dict, List, Optional, Sequence, TYPE_CHECKING, Tuple

from drgn import Program

from ..core.btf import Btf
from ..core.errors import EXIT_DEBUGINFO, OomdrgnError
from ..core.kallsyms import Kallsyms
from ..core.layoutcache import Layout
from ..core.port import Fault, Member
from .port import DrgnPort, symbol_linear_map

if TYPE_CHECKING:  # core.symrecover loads only where kallsyms lacks data symbols
    from ..core.symrecover import Recovered
    from ..core.stack_trace import StackTracer

__all__ = ["BtfPort"]


class BtfPort(DrgnPort):
    """:class:`oomdrgn.core.port.Target` over a drgn program without debug info.

    :param load: gives ``(btf, (kallsyms, recovered))`` when the layout cannot
        answer (``recovered``: the data symbols of a kernel whose kallsyms holds
        functions only, see :mod:`oomdrgn.core.symrecover`; else None)
    :param kaslr: the kernel's KASLR offset (cached symbols are kept without it)
    """

    def __init__(self, prog: Program,
                 load: Callable[[], Tuple[Btf, Tuple[Kallsyms, Optional["Recovered"]]]],
                 layout: Layout, kaslr: int, vmlinux: Optional[str] = None) -> None:
        super().__init__(prog)
        self._load = load
        self._loaded: Optional[Tuple[Btf, Tuple[Kallsyms, Optional["Recovered"]]]] = None
        self.layout = layout
        self.kaslr = kaslr
        self._vmlinux = vmlinux
        self._tracer: Optional["StackTracer"] = None
        if not self.live and self._linear is None:  # drgn has no min_low_pfn without DWARF
            self.direct_map(symbol_linear_map(prog, self.symbol))

    @property
    def rodata_strings(self) -> Dict[str, bool]:
        """The build's answers to "does .rodata hold this string" (see
        :class:`oomdrgn.core.evidence.RodataStrings`)."""
        return self.layout.strings

    @property
    def btf(self) -> Btf:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded[0]

    @property
    def kallsyms(self) -> Kallsyms:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded[1][0]

    @property
    def recovered(self) -> Optional["Recovered"]:
        """The recovered data symbols (kallsyms without CONFIG_KALLSYMS_ALL), or None."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded[1][1]

    def member(self, type_name: str, designator: str) -> Member:
        m = self.layout.member(type_name, designator)  # raises if cached as missing
        if m is None:
            try:
                m = self.btf.member(type_name, designator)
            except LookupError:
                self.layout.put_member(type_name, designator, None)
                raise
            self.layout.put_member(type_name, designator, m)
        return m

    def sizeof(self, type_name: str) -> int:
        size = self.layout.size(type_name)  # raises if cached as missing
        if size is None:
            try:
                size = self.btf.sizeof(type_name)
            except LookupError:
                self.layout.put_size(type_name, None)
                raise
            self.layout.put_size(type_name, size)
        return size

    def constant(self, name: str) -> Optional[int]:
        if name not in self.layout.constants:
            # What BTF has not (PAGE_SHIFT): drgn's own Linux objects, from VMCOREINFO.
            value = self.btf.constant(name)
            self.layout.constants[name] = value if value is not None else super().constant(name)
            self.layout.changed = True
        return self.layout.constants[name]

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        known, found = self.layout.symbol(name, self.kaslr)
        if not known:
            found = self.kallsyms.lookup(name)
            rec = self.recovered
            if found is None and rec is not None:
                found = rec.symbols.get(name)
                from ..core.symrecover import WANTED
                # rec.absent: not in this kernel's era, by BTF's evidence.
                if found is None and name in WANTED and name not in rec.absent:
                    # Not absent from the kernel: not recovered. Never taken for
                    # absent (a kernel without it would be answered for).
                    raise OomdrgnError(
                        f"no symbol {name}: the kernel's kallsyms holds functions only (built "
                        f"without CONFIG_KALLSYMS_ALL) and {name} could not be recovered "
                        f"({rec.missing.get(name, 'no source')}): pass the debug vmlinux "
                        "(-s VMLINUX)", EXIT_DEBUGINFO)
            elif found is not None:
                # A variable BTF knows (per-CPU ones) has its type's size; any
                # other, the distance to the next symbol, as kallsyms gives it.
                var = self.btf.variable(name)
                if var is not None:
                    found = (found[0], var[0])
            self.layout.put_symbol(name, found, self.kaslr)
        return found

    def return_type(self, function: str) -> Optional[str]:
        if function not in self.layout.return_types:
            self.layout.return_types[function] = self.btf.return_type(function)
            self.layout.changed = True
        return self.layout.return_types[function]

    def vmlinux_path(self) -> Optional[str]:
        return self._vmlinux

    def find_task(self, pid: int) -> Optional[int]:
        return None  # the core walks the task list

    def symbol_name(self, address: int) -> Optional[str]:
        hit = self.kallsyms.name_at(address)
        return hit[0] if hit else None

    def stack_functions(self, task: int) -> Optional[List[str]]:
        frames = self.stack_frames(task)
        return None if frames is None else [name for name, _, _, _ in frames]

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        # Unwound from the dump's memory as the kernel does (ORC, frame records).
        try:
            return self._stack_tracer().frames(task)
        except (LookupError, ValueError, OverflowError, Fault, OomdrgnError):
            return None

    def _stack_tracer(self) -> "StackTracer":
        if self._tracer is None:
            from ..core.stack_trace import StackTracer
            from .unwind import cpu_registers, unwind_layout  # oom-report only
            self._tracer = StackTracer(self, cpu_registers(self.prog, self.arch),
                                       self.kallsyms.name_at, *unwind_layout(self))
        return self._tracer

    def oom_control(self, task: int) -> Optional[dict]:
        return None

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        return None
