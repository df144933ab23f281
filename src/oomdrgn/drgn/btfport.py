"""The target port with no debug info: a drgn program for memory only, types
from the kernel's BTF, symbols from its kallsyms (both read from the target
itself by :mod:`oomdrgn.core.btf` and :mod:`oomdrgn.core.kallsyms`), every
answer kept in the build's :class:`~oomdrgn.core.layoutcache.Layout`: with a
warm cache, BTF and kallsyms are not even parsed."""

from __future__ import annotations

from typing import Callable, List, Optional, TYPE_CHECKING, Tuple

from drgn import Program

from ..core.btf import Btf
from ..core.errors import OomdrgnError
from ..core.kallsyms import Kallsyms
from ..core.layoutanswers import LayoutAnswers
from ..core.layoutcache import Layout
from ..core.port import Fault
from .port import DrgnPort, symbol_linear_map

if TYPE_CHECKING:  # core.symrecover loads only where kallsyms lacks data symbols
    from ..core.symrecover import Recovered
    from ..core.stack_trace import StackTracer

__all__ = ["BtfPort"]


class BtfPort(LayoutAnswers, DrgnPort):
    """:class:`oomdrgn.core.port.Target` over a drgn program without debug info.

    :param load: gives ``(btf, kallsyms, recovered)`` when the layout cannot
        answer (``recovered``: the data symbols of a kernel whose kallsyms holds
        functions only, see :mod:`oomdrgn.core.symrecover`; else None)
    :param kaslr: the kernel's KASLR offset (cached symbols are kept without it)
    """

    def __init__(self, prog: Program,
                 load: Callable[[], Tuple[Btf, Kallsyms, Optional["Recovered"]]],
                 layout: Layout, kaslr: int, vmlinux: Optional[str] = None) -> None:
        super().__init__(prog)
        self._load = load
        self.layout = layout
        self.kaslr = kaslr
        self._vmlinux = vmlinux
        self._tracer: Optional["StackTracer"] = None
        if not self.live and self._linear is None:  # drgn has no min_low_pfn without DWARF
            self.direct_map(symbol_linear_map(prog, self.symbol))

    def load_types(self) -> Tuple[Btf, Kallsyms, Optional["Recovered"]]:
        return self._load()

    def constant_elsewhere(self, name: str) -> Optional[int]:
        # What BTF has not (PAGE_SHIFT): drgn's own Linux objects, from VMCOREINFO.
        return DrgnPort.constant(self, name)

    def vmlinux_path(self) -> Optional[str]:
        return self._vmlinux

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
