"""The target port with no debug info: a drgn program for memory only, types
from the kernel's BTF, symbols from its kallsyms (both read from the target
itself by :mod:`oomdrgn.core.btf` and :mod:`oomdrgn.core.kallsyms`)."""

from typing import Dict, List, Optional, Sequence, Tuple

from drgn import Program

from ..core.btf import Btf
from ..core.kallsyms import Kallsyms
from ..core.port import Member
from .port import DrgnPort

__all__ = ["BtfPort"]


class BtfPort(DrgnPort):
    """:class:`oomdrgn.core.port.Target` over a drgn program without debug info."""

    def __init__(self, prog: Program, btf: Btf, kallsyms: Kallsyms,
                 vmlinux: Optional[str] = None) -> None:
        super().__init__(prog)
        self.btf = btf
        self.kallsyms = kallsyms
        self._vmlinux = vmlinux
        self._btf_members: Dict[Tuple[str, str], Member] = {}

    def member(self, type_name: str, designator: str) -> Member:
        key = (type_name, designator)
        m = self._btf_members.get(key)
        if m is None:
            m = self._btf_members[key] = self.btf.member(type_name, designator)
        return m

    def sizeof(self, type_name: str) -> int:
        return self.btf.sizeof(type_name)

    def constant(self, name: str) -> Optional[int]:
        # What BTF has not (PAGE_SHIFT): drgn's own Linux objects, from VMCOREINFO.
        value = self.btf.constant(name)
        return value if value is not None else super().constant(name)

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        if name not in self._symbols:
            found = self.kallsyms.lookup(name)
            if found is not None:
                # A variable BTF knows (per-CPU ones) has its type's size; any
                # other, the distance to the next symbol, as kallsyms gives it.
                var = self.btf.variable(name)
                if var is not None:
                    found = (found[0], var[0])
            self._symbols[name] = found
        return self._symbols[name]

    def return_type(self, function: str) -> Optional[str]:
        return self.btf.return_type(function)

    def vmlinux_path(self) -> Optional[str]:
        return self._vmlinux

    def find_task(self, pid: int) -> Optional[int]:
        return None  # the core walks the task list

    def symbol_name(self, address: int) -> Optional[str]:
        hit = self.kallsyms.name_at(address)
        return hit[0] if hit else None

    def stack_functions(self, task: int) -> Optional[List[str]]:
        return None  # no unwinding without debug info

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        return None

    def oom_control(self, task: int) -> Optional[dict]:
        return None

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        return None
