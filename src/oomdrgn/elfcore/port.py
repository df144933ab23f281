"""The target port of an ELF vmcore with no debugger at all (standard library
only): memory through the dump's PT_LOAD segments, by physical address, for
the two ranges that need no page tables (the kernel image and the direct map of
RAM); types, symbols and constants from the build's layout cache, checked
against the kernel's BTF in the dump as the drgn port checks it.

It answers only what it answers exactly as the drgn ports would. Anything else
(an address outside those ranges or the dump, a type or symbol the cache has
not seen, a debugger hook) raises :class:`Unanswered`, and the caller opens
the dump with drgn instead (:func:`oomdrgn.elfcore.open.cached_reader`).
"""

from typing import Dict, List, Optional, Sequence, Tuple

from ..core.layoutcache import Layout
from ..core.port import Member
from ..core.rawimage import PhysicalMemory

__all__ = ["Unanswered", "CachedPort", "START_KERNEL_MAP"]

_MASK64 = (1 << 64) - 1
#: x86-64 ``__START_KERNEL_map``: __pa_symbol(x) = x - __START_KERNEL_map + phys_base
START_KERNEL_MAP = 0xffffffff80000000


class Unanswered(Exception):
    """What only a debugger answers: open the dump with drgn (never a fault of
    the dump: the drgn port then says what it says of it)."""


class CachedPort:
    """:class:`oomdrgn.core.port.Target` over an ELF vmcore and a warm layout.

    :param info: the dump's VMCOREINFO (``KEY: value``)
    :param text: that VMCOREINFO's text (for :meth:`vmcoreinfo`)
    """

    live = False

    def __init__(self, mem: PhysicalMemory, info: Dict[str, str], text: bytes,
                 layout: Layout, arch: str) -> None:
        self.mem, self.info, self._text, self.layout = mem, info, text, layout
        self.arch, self.little_endian = arch, True
        self.kaslr = int(info.get("KERNELOFFSET", "0"), 16)
        self._slice = mem.slicer()
        start, end = self.symbol("_text"), self.symbol("_end")
        if start is None or end is None:
            raise Unanswered("the kernel image's bounds (_text, _end) are not cached")
        if arch == "aarch64":
            # __pa_symbol(x) = x - kimage_voffset; the linear map since
            # 14c127c957c1 ("arm64: mm: Flip kernel VA space") (in v5.4) starts
            # at PAGE_OFFSET = -(1 << VA_BITS), physical address PHYS_OFFSET.
            image_off = int(info["NUMBER(kimage_voffset)"], 16)
            direct_off = (-(1 << int(info["NUMBER(VA_BITS)"]))
                          - int(info["NUMBER(PHYS_OFFSET)"], 16)) & _MASK64
        else:
            image_off = (START_KERNEL_MAP - int(info["NUMBER(phys_base)"])) & _MASK64
            direct_off = 0  # page_offset_base, read below through the image
        self._image = (start[0], end[0], image_off)
        self._direct: Tuple[int, int, int] = (0, 0, 0)
        if arch != "aarch64":
            direct_off = self._word("page_offset_base")
        shift = int(info["PAGESIZE"]).bit_length() - 1
        low, high = self._word("min_low_pfn") << shift, self._word("max_pfn") << shift
        self._direct = ((low + direct_off) & _MASK64, (high + direct_off) & _MASK64, direct_off)

    def _word(self, name: str) -> int:
        found = self.symbol(name)
        if found is None:
            raise Unanswered(f"no {name}")
        return int.from_bytes(self.read(found[0], 8), "little")

    # Memory -------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        start, end, off = self._direct
        if not (start <= address and address + size <= end):
            start, end, off = self._image
            if not (start <= address and address + size <= end):
                raise Unanswered(f"{address:#x} is outside the kernel image and the direct map")
        paddr = (address - off) & _MASK64
        data = self._slice(paddr, size)
        if data is None:
            try:
                data = self.mem.read(paddr, size)
            except LookupError:
                raise Unanswered(f"physical {paddr:#x} is not in the dump") from None
        return data

    # Types, symbols, constants: the layout cache's answers ----------------------

    def member(self, type_name: str, designator: str) -> Member:
        m = self.layout.member(type_name, designator)  # LookupError: cached as missing
        if m is None:
            raise Unanswered(f"{type_name}.{designator} not cached")
        return m

    def sizeof(self, type_name: str) -> int:
        size = self.layout.size(type_name)
        if size is None:
            raise Unanswered(f"sizeof({type_name}) not cached")
        return size

    def constant(self, name: str) -> Optional[int]:
        if name not in self.layout.constants:
            raise Unanswered(f"{name} not cached")
        return self.layout.constants[name]

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        known, found = self.layout.symbol(name, self.kaslr)
        if not known:
            raise Unanswered(f"symbol {name} not cached")
        return found

    def return_type(self, function: str) -> Optional[str]:
        if function not in self.layout.return_types:
            raise Unanswered(f"{function}'s return type not cached")
        return self.layout.return_types[function]

    @property
    def rodata_strings(self) -> Dict[str, bool]:
        return self.layout.strings

    def vmlinux_path(self) -> Optional[str]:
        return None

    def vmcoreinfo(self) -> Optional[bytes]:
        return self._text

    # The debugger's hooks: a debugger's answers only ------------------------------

    def find_task(self, pid: int) -> Optional[int]:
        raise Unanswered("find_task")

    def symbol_name(self, address: int) -> Optional[str]:
        raise Unanswered("symbol_name")

    def stack_functions(self, task: int) -> Optional[List[str]]:
        raise Unanswered("stack_functions")

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        raise Unanswered("stack_frames")

    def oom_control(self, task: int) -> Optional[dict]:
        raise Unanswered("oom_control")

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        raise Unanswered("stopped_task")
