"""What :mod:`oomdrgn.core.symrecover` and its sources share: the result
(:class:`Recovered`) and what a source reads and keeps through (:class:`Ctx`)
(standard library and core only)."""

from __future__ import annotations

from typing import Callable, Dict, List, Literal, Mapping, Optional, Set, Tuple

from .a64refs import Ref, refs
from .btf import Btf
from .kallsyms import Kallsyms
from .kstrings import x86_64_pointers
from .port import Fault
from .record import field, record

__all__ = ["Recovered", "Ctx", "Read", "MASK64", "one", "pointers"]

Read = Callable[[int, int], bytes]
MASK64 = (1 << 64) - 1
_CHUNK = 1 << 20


@record
class Recovered:
    """What was recovered: ``symbols`` ``{name: (address, size)}`` (size 0 if
    unknown), ``how`` each was found, and ``missing`` ``{name: why}`` for
    those looked for and not kept."""

    symbols: Dict[str, Tuple[int, int]] = field(default_factory=dict)
    how: Dict[str, str] = field(default_factory=dict)
    missing: Dict[str, str] = field(default_factory=dict)
    #: ``{name: why}``: looked for, and absent from this kernel by evidence
    #: (its era, read from BTF), never for want of a source
    absent: Dict[str, str] = field(default_factory=dict)

    def add(self, name: str, address: int, size: int, how: str) -> None:
        self.symbols[name] = (address & MASK64, size)
        self.how[name] = how
        self.missing.pop(name, None)

    def miss(self, name: str, why: str) -> None:
        if name not in self.symbols:
            self.missing.setdefault(name, why)

    def sources(self) -> List[str]:
        """The kinds of source used, in a fixed order."""
        kinds = {h.split(":")[0] for h in self.how.values()}
        return [k for k in ("VMCOREINFO", "export table", "BTF", "layout", "code") if k in kinds]


class Ctx:
    """What the recovery reads: memory, kallsyms (text), VMCOREINFO, BTF."""

    def __init__(self, read: Read, ks: Kallsyms, info: Mapping[str, str], btf: Btf,
                 arch: str, little: bool) -> None:
        self.read, self.ks, self.info, self.btf = read, ks, info, btf
        self.arch, self.little = arch, little
        self.order: Literal["little", "big"] = "little" if little else "big"
        self.out = Recovered()

    def word(self, address: int, size: int = 8, signed: bool = False) -> int:
        return int.from_bytes(self.read(address, size), self.order, signed=signed)

    def off(self, type_name: str, designator: str) -> int:
        return self.btf.member(type_name, designator).offset

    def have(self, name: str) -> Optional[int]:
        hit = self.out.symbols.get(name)
        return hit[0] if hit else None

    def size_of(self, name: str) -> int:
        var = self.btf.variable(name)
        return var[0] if var else 0

    def keep(self, name: str, address: int, how: str,
             check: Optional[Callable[[int], Optional[str]]] = None,
             size: Optional[int] = None) -> bool:
        """Keep *name* at *address* (*size* bytes, default: its BTF VAR's) if
        *check* (an error message, or None) passes."""
        try:
            error = check(address) if check else None
        except (Fault, LookupError, ValueError) as e:
            error = f"unreadable ({e})"
        if error:
            self.out.miss(name, f"{how}: {error}")
            return False
        self.out.add(name, address, self.size_of(name) if size is None else size, how)
        return True

    def image(self) -> Tuple[bytes, int]:
        """The kernel image from ``_etext`` to ``_sinittext`` (``.rodata``, and
        ``.data`` on x86-64), unreadable pages as zeros."""
        lo, hi = self.ks.address_of("_etext"), self.ks.address_of("_sinittext")
        if lo is None or hi is None or not lo < hi <= lo + (256 << 20):
            raise ValueError("kallsyms has no _etext .. _sinittext")
        lo &= ~0xFFF  # x86-64's _etext is not aligned; the tables are
        buf = bytearray()
        at = lo
        while at < hi:
            n = min(_CHUNK, hi - at)
            try:
                buf += self.read(at, n)
            except Fault:
                buf += bytes(n)
            at += n
        return bytes(buf), lo

    def function(self, name: str) -> Optional[Tuple[int, int]]:
        """*name*'s (address, size) in kallsyms, or its one GCC clone
        (``name.constprop.0``, ``name.isra.0``...)."""
        hit = self.ks.lookup(name)
        if hit is None:
            clones = {n for n in self.ks.names if n.startswith(name + ".")
                      and not n.endswith(".cold") and ".cold." not in n}
            hit = self.ks.lookup(clones.pop()) if len(clones) == 1 else None
        return hit

    def code(self, function: str, callee_saved: bool = False) -> Optional[List[Ref]]:
        """The global addresses *function*'s arm64 code uses (see
        :func:`~oomdrgn.core.a64refs.refs`), None if it has none to read."""
        hit = self.function(function)
        if hit is None or not hit[1] or self.arch != "aarch64":
            return None
        try:
            return refs(self.read(hit[0], hit[1]), hit[0], callee_saved=callee_saved)
        except Fault:
            return None


def one(c: Ctx, name: str, found: List[int], how: str,
        check: Optional[Callable[[int], Optional[str]]] = None,
        size: Optional[int] = None) -> None:
    """Keep *name* if *found* holds exactly one address (and *check* passes)."""
    if len(found) == 1:
        c.keep(name, found[0], how, check, size)
    else:
        shown = ", ".join(f"{a:#x}" for a in found[:4]) + (", ..." if len(found) > 4 else "")
        c.out.miss(name, f"{how}: {len(found)} candidates" + (f" ({shown})" if found else ""))


def pointers(c: Ctx, function: str) -> Set[int]:
    """The addresses *function*'s code computes or loads from (both architectures)."""
    hit = c.ks.lookup(function)
    if hit is None or not hit[1]:
        return set()
    try:
        code = c.read(hit[0], hit[1])
    except Fault:
        return set()
    if c.arch == "aarch64":
        return {r.address for r in refs(code, hit[0]) if r.kind in ("address", "load")}
    return set(x86_64_pointers(code, hit[0]))
