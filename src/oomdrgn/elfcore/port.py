"""The target port of an ELF vmcore with no debugger at all (standard library
only): memory through the dump's PT_LOAD segments, by physical address, for
the two ranges that need no page tables (the kernel image and the direct map of
RAM), and the rest through the kernel's page tables in the dump; types, symbols
and constants from the build's layout cache (checked against the kernel's BTF
in the dump as the drgn port checks it), else from the kernel's own BTF and
kallsyms in the dump, each answer kept in the layout.

It answers only what it answers exactly as drgn's port with no debug info
would. Anything else (an address no page maps or outside the dump, a constant
only drgn knows, frames, symbol names) raises :class:`Unanswered`, and the
caller opens the dump with drgn instead (:func:`oomdrgn.elfcore.open.cached_reader`).
"""

from __future__ import annotations

from typing import Dict, List, Optional, TYPE_CHECKING, Tuple, Union

from ..core.errors import OomdrgnError
from ..core.layoutanswers import LayoutAnswers
from ..core.layoutcache import CHECK_BYTES, Layout, btf_check
from ..core.port import Fault
from ..core.rawimage import PhysicalMemory
from ..core.rawkernel import arm64_linear_offset, kernel_phys

if TYPE_CHECKING:  # parsed only where the layout has no answer
    from ..core.btf import Btf
    from ..core.kallsyms import Kallsyms
    from ..core.pagewalk import PageWalker
    from ..core.symrecover import Recovered

__all__ = ["Unanswered", "CachedPort"]

_MASK64 = (1 << 64) - 1


class Unanswered(Exception):
    """What only a debugger answers: open the dump with drgn (never a fault of
    the dump: the drgn port then says what it says of it)."""


class CachedPort(LayoutAnswers):
    """:class:`oomdrgn.core.port.Target` over an ELF vmcore.

    :param info: the dump's VMCOREINFO (``KEY: value``)
    :param text: that VMCOREINFO's text (for :meth:`vmcoreinfo`)
    :param layout: the build's cached layout, or None (the first dump of the
        build: a new one, from the kernel's BTF and kallsyms read at once;
        :attr:`sources` then says where from)
    """

    live = False

    def __init__(self, mem: PhysicalMemory, info: Dict[str, str], text: bytes,
                 layout: Optional[Layout], arch: str) -> None:
        self.mem, self.info, self._text = mem, info, text
        self.arch, self.little_endian = arch, True
        self.kaslr = int(info.get("KERNELOFFSET", "0"), 16)
        self._slice = mem.slicer()
        self._walker: Union["PageWalker", None, bool] = None  # False: none here
        self.sources = ""
        # __pa_symbol(): image addresses are physical ones moved by one offset.
        image_off = -kernel_phys(info, arch, 0) & _MASK64
        # x86-64's direct map: page_offset_base, read below through the image.
        direct_off = arm64_linear_offset(info) if arch == "aarch64" else 0
        self._image = (0, 0, image_off)
        self._direct: Tuple[int, int, int] = (0, 0, 0)
        self.layout = layout if layout is not None else self._new_layout(info)
        start, end = self.symbol("_text"), self.symbol("_end")
        if start is None or end is None:
            # kallsyms of functions only (Debian's 6.1 arm64): no _end, no
            # max_pfn; every address goes through the page tables.
            return
        self._image = (start[0], end[0], image_off)
        if arch != "aarch64":
            direct_off = self._word("page_offset_base")
        shift = int(info["PAGESIZE"]).bit_length() - 1
        low, high = self._word("min_low_pfn") << shift, self._word("max_pfn") << shift
        self._direct = ((low + direct_off) & _MASK64, (high + direct_off) & _MASK64, direct_off)

    # The kernel's own BTF and kallsyms, where the layout has no answer --------------

    def _image_read(self, address: int, size: int) -> bytes:
        """Kernel image memory, its bounds not known yet (kallsyms' tables and
        BTF lie in it, where VMCOREINFO and kallsyms say)."""
        try:
            return self._phys((address - self._image[2]) & _MASK64, size)
        except Unanswered as e:
            raise Fault(str(e), address) from None

    def _load(self) -> Tuple[int, str]:
        """BTF and kallsyms read (kept as :meth:`load_types` gives them): BTF's
        address, and where types and symbols came from."""
        from ..core.selftypes import btf_source, locate_btf, parse_btf, read_symbols, recover
        recovered = None
        try:
            ks, tables, symbols = read_symbols(self._image_read, self.info, self.little_endian)
            blob, at, how = locate_btf(self._image_read, ks, self._image_view)
            btf = parse_btf(blob, self.arch)
            if not ks.all_symbols:
                recovered, symbols = recover(self._faulting_read, ks, self.info, btf,
                                             self.arch, self.little_endian, at, tables)
        except OomdrgnError as e:  # drgn's run says it, and what else it tried
            raise Unanswered(str(e)) from None
        self._types = btf, ks, recovered
        return at, f"no debug info: {btf_source(btf, at, how)}; {symbols}"

    def load_types(self) -> Tuple["Btf", "Kallsyms", Optional["Recovered"]]:
        self._load()
        assert self._types is not None
        return self._types

    def _image_view(self, address: int, size: int) -> Union[bytes, memoryview]:
        """:meth:`_image_read` of a region read whole, once (the kernel's BTF):
        a view of the dump's mapping where one segment holds it (no copy)."""
        found = self.mem.span((address - self._image[2]) & _MASK64, size)
        return found if found is not None else self._image_read(address, size)

    def holds(self, address: int, size: int, needle: bytes) -> Optional[bool]:
        """Whether kernel image memory at *address* holds *needle*, searched in
        place (.rodata's strings); None: not answered here."""
        start, end, off = self._image
        if not (start <= address and address + size <= end):
            return None
        return self.mem.holds((address - off) & _MASK64, size, needle)

    def _faulting_read(self, address: int, size: int) -> bytes:
        """:meth:`read`, a fault where drgn's read would fault (no page, not in the dump)."""
        try:
            return self.read(address, size)
        except Unanswered as e:
            raise Fault(str(e), address) from None

    def _new_layout(self, info: Dict[str, str]) -> Layout:
        at, self.sources = self._load()
        return Layout(info.get("BUILD-ID", ""), (at - self.kaslr) & _MASK64,
                      btf_check(self._image_read(at, CHECK_BYTES)))

    def handoff(self) -> Tuple[Layout, Optional[tuple], str]:
        """What this port learnt of the build, for drgn's port of the same dump
        (:data:`oomdrgn.drgn.nodebug.PRELOADED`): the layout, the parsed BTF,
        kallsyms and recovered data symbols (None if not read), and where types
        and symbols came from."""
        return self.layout, self._types, self.sources

    def constant_elsewhere(self, name: str) -> Optional[int]:
        # What BTF has not, as drgn's Linux objects give it from VMCOREINFO.
        size = int(self.info["PAGESIZE"])
        value = {"PAGE_SIZE": size, "PAGE_SHIFT": size.bit_length() - 1,
                 "PAGE_MASK": -size & _MASK64}.get(name)
        if value is None:
            raise Unanswered(f"constant {name}")
        return value

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
                return self._mapped(address, size)
        # The hot path (a task's span, per task): _phys() inlined.
        data = self._slice((address - off) & _MASK64, size)
        return data if data is not None else self._phys((address - off) & _MASK64, size)

    def _phys(self, paddr: int, size: int) -> bytes:
        data = self._slice(paddr, size)
        if data is None:
            try:
                data = self.mem.read(paddr, size)
            except LookupError:
                raise Unanswered(f"physical {paddr:#x} is not in the dump") from None
        return data

    def _mapped(self, address: int, size: int) -> bytes:
        """Memory only the kernel's page tables map (vmalloc, per-CPU chunks,
        vmapped stacks), page by page; where no page maps it, drgn's answer."""
        from ..core.pagewalk import PageWalker, page_walker  # noqa: F811 (used lazily)
        if self._walker is None:
            self._walker = page_walker(self.info, self.arch, self._phys_or_none,
                                       lambda v: kernel_phys(self.info, self.arch, v)) or False
        walker = self._walker
        if not isinstance(walker, PageWalker):
            raise Unanswered(f"{address:#x}: page tables not walked here")
        out = bytearray()
        page = 1 << walker.page_shift
        while size:
            n = min(size, page - (address & (page - 1)))
            paddr = walker.translate(address)
            if paddr is None:
                raise Unanswered(f"{address:#x} is not mapped")
            out += self._phys(paddr, n)
            address, size = address + n, size - n
        return bytes(out)

    def _phys_or_none(self, paddr: int, size: int) -> Optional[bytes]:
        try:
            return self._phys(paddr, size)
        except Unanswered:
            return None

    def vmlinux_path(self) -> Optional[str]:
        return None

    def vmcoreinfo(self) -> Optional[bytes]:
        return self._text

    # The debugger's hooks LayoutAnswers does not give: drgn's only.

    def symbol_name(self, address: int) -> Optional[str]:
        raise Unanswered("symbol_name")

    def stack_functions(self, task: int) -> Optional[List[str]]:
        raise Unanswered("stack_functions")

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        raise Unanswered("stack_frames")
