"""A target port's answers with no debug info (standard library and core only):
the build's layout cache first, else the kernel's BTF and kallsyms, each answer
kept in the layout; and the debugger's hooks as a port without DWARF answers
them. Shared by the drgn port (:class:`oomdrgn.drgn.btfport.BtfPort`) and the
no-debugger port of ELF vmcores (:class:`oomdrgn.elfcore.port.CachedPort`)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, TYPE_CHECKING, Tuple

from .errors import EXIT_DEBUGINFO, OomdrgnError
from .layoutcache import Layout
from .port import Member

if TYPE_CHECKING:
    from .btf import Btf
    from .kallsyms import Kallsyms
    from .symrecover import Recovered

__all__ = ["LayoutAnswers"]


class LayoutAnswers:
    """``member``, ``sizeof``, ``constant``, ``symbol`` and ``return_type`` of a
    :class:`oomdrgn.core.port.Target`, and its hooks ``find_task``,
    ``oom_control`` and ``stopped_task``: a subclass gives ``layout``,
    ``kaslr`` (cached symbols are kept without it), :meth:`load_types` and
    :meth:`constant_elsewhere`."""

    layout: Layout
    kaslr: int
    _types: Optional[Tuple["Btf", "Kallsyms", Optional["Recovered"]]] = None

    def load_types(self) -> Tuple["Btf", "Kallsyms", Optional["Recovered"]]:
        """The kernel's BTF, its kallsyms, and the data symbols recovered where
        kallsyms holds functions only (else None); called once, at the first
        question the layout does not answer."""
        raise NotImplementedError

    def _loaded(self) -> Tuple["Btf", "Kallsyms", Optional["Recovered"]]:
        if self._types is None:
            self._types = self.load_types()
        return self._types

    @property
    def btf(self) -> "Btf":
        return self._loaded()[0]

    @property
    def kallsyms(self) -> "Kallsyms":
        return self._loaded()[1]

    @property
    def recovered(self) -> Optional["Recovered"]:
        return self._loaded()[2]

    # The debugger's hooks, as with no DWARF: no PID hash lookup (the core
    # walks the task list), no frame variables (the OOM's struct
    # oom_control), no vCPU stopped in a debugger.

    def find_task(self, pid: int) -> Optional[int]:
        return None

    def oom_control(self, task: int) -> Optional[dict]:
        return None

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        return None

    def constant_elsewhere(self, name: str) -> Optional[int]:
        """A constant BTF does not hold (``PAGE_SHIFT``), or None."""
        raise NotImplementedError

    @property
    def rodata_strings(self) -> Dict[str, bool]:
        """The build's answers to "does .rodata hold this string" (see
        :class:`oomdrgn.core.evidence.RodataStrings`)."""
        return self.layout.strings

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
            value = self.btf.constant(name)
            self.layout.constants[name] = (value if value is not None
                                           else self.constant_elsewhere(name))
            self.layout.changed = True
        return self.layout.constants[name]

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        known, found = self.layout.symbol(name, self.kaslr)
        if not known:
            found = self.kallsyms.lookup(name)
            rec = self.recovered
            if found is None and rec is not None:
                found = rec.symbols.get(name)
                from .symrecover import WANTED
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
