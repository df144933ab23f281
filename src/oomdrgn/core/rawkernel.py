"""Where the kernel of a vmlinux is in raw physical memory, and the VMCOREINFO
that tells a debugger so (standard library only).

First the kernel's own VMCOREINFO text, kept in RAM (its ``BUILD-ID=``
checked against the vmlinux); without it, the vmlinux's ``linux_banner``
searched in RAM and the layout read from the kernel's own variables
(x86-64 ``phys_base``; arm64 ``kimage_voffset``, ``memstart_addr``), written
as the VMCOREINFO the kernel would have written.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Dict, Iterable, Iterator, List, Optional

from .elffile import elf_machine, read_section, symbol_values
from .rawimage import (PhysicalMemory, VmcoreinfoHit, find_vmcoreinfo, parse_vmcoreinfo,
                       text_at)
from .record import field, record

_MASK = 2**64 - 1
#: x86-64 __PAGE_OFFSET_BASE_L4: the direct map without KASLR (no page_offset_base)
_PAGE_OFFSET_L4 = 0xffff888000000000

__all__ = ["KernelImage", "Located", "LocateError", "vmlinux_image", "locate_kernel",
           "set_kernel_offset", "START_KERNEL_MAP", "arm64_linear_offset"]

#: x86-64 ``__START_KERNEL_map``: the kernel image's virtual base
START_KERNEL_MAP = 0xffffffff80000000
_SYMBOLS = ("_text", "_end", "linux_banner", "vmcoreinfo_data", "page_offset_base",
            "__start_rodata", "phys_base", "init_top_pgt", "swapper_pg_dir", "kimage_voffset",
            "memstart_addr", "__pgtable_l5_enabled")
#: the kernel image's physical alignment: x86-64 CONFIG_PHYSICAL_ALIGN (a
#: multiple of 2 MiB), arm64 MIN_KIMG_ALIGN (2 MiB)
_KERNEL_ALIGN = 0x200000
#: arm64 (VA_BITS, TCR_EL1_T1SZ) to try without VMCOREINFO, commonest first:
#: 48-bit; 52-bit (LPA2, or 64 KiB pages with LVA) on 52- and 48-bit hardware;
#: 47, 42, 39 and 36-bit (16 KiB, 64 KiB and small 4 KiB configurations)
_ARM64_VA_BITS = ((48, 16), (52, 12), (52, 16), (47, 17), (42, 22), (39, 25), (36, 28))
#: arm64 Image header flags bits 1-2 (Documentation/arch/arm64/booting.rst)
_ARM64_PAGE_SIZES = {1: 4096, 2: 16384, 3: 65536}


class LocateError(ValueError):
    """The kernel cannot be found in the images (the message is for the user)."""


@record(frozen=True)
class KernelImage:
    """What the vmlinux file says: architecture, build ID, banner and link addresses."""

    path: str
    arch: str
    build_id: Optional[str]
    banner: bytes  # linux_banner's bytes, NUL included
    symbols: Dict[str, int]
    #: arm64: the page size the file's Image header gives (None: not arm64)
    page_size: Optional[int] = None

    @property
    def release(self) -> str:
        return self.banner[len(b"Linux version "):].split(b" ", 1)[0].decode(errors="replace")

    def symbol(self, name: str) -> int:
        if name not in self.symbols:
            raise LocateError(f"{self.path}: no symbol {name} (not a vmlinux of this arch?)")
        return self.symbols[name]


def _gnu_build_id(notes: bytes) -> Optional[str]:
    i = 0
    while i + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, i)
        name = notes[i + 12:i + 12 + namesz]
        desc_at = i + 12 + (namesz + 3) // 4 * 4
        if ntype == 3 and name == b"GNU\0":
            return notes[desc_at:desc_at + descsz].hex()
        i = desc_at + (descsz + 3) // 4 * 4
    return None


def vmlinux_image(path: str) -> KernelImage:
    """The :class:`KernelImage` of vmlinux file *path*."""
    try:
        arch = elf_machine(path)
        syms = {k: v for k, (v, _) in symbol_values(path, _SYMBOLS).items()}
        notes = read_section(path, ".notes") or b""
        rodata = read_section(path, ".rodata") or b""
    except (OSError, ValueError) as e:
        raise LocateError(f"{path}: cannot read the vmlinux: {e}") from None
    if arch not in ("x86_64", "aarch64"):
        raise LocateError(f"{path}: unsupported architecture {arch!r}")
    if "linux_banner" not in syms or "__start_rodata" not in syms:
        raise LocateError(f"{path}: no linux_banner symbol (not a vmlinux?)")
    start = syms["linux_banner"] - syms["__start_rodata"]
    end = rodata.find(b"\0", start)
    if start < 0 or end < 0:
        raise LocateError(f"{path}: linux_banner is not in .rodata")
    page_size = None
    if arch == "aarch64":
        # The Image header (Documentation/arch/arm64/booting.rst) of the file: in
        # RAM its flags were seen changed after boot (a 16 KiB page size read
        # from a 4 KiB kernel's memory, 6.1-arm64).
        try:
            head = read_section(path, ".head.text") or b""
        except (OSError, ValueError):
            head = b""
        if head[56:60] == b"ARMd":
            page_size = _ARM64_PAGE_SIZES.get((int.from_bytes(head[24:32], "little") >> 1) & 3)
    return KernelImage(path, arch, _gnu_build_id(notes), rodata[start:end + 1], syms,
                       page_size)


@record
class Located:
    """The VMCOREINFO to open the images with, and how it was found (for stderr)."""

    vmcoreinfo: bytes
    arch: str
    how: List[str] = field(default_factory=list)
    #: further VMCOREINFO texts to try, in order, if ``vmcoreinfo`` does not
    #: read ``banner`` at ``banner_virt`` through the page tables
    alternatives: List[bytes] = field(default_factory=list)
    banner_virt: Optional[int] = None
    banner: bytes = b""

    @property
    def fields(self) -> Dict[str, str]:
        return parse_vmcoreinfo(self.vmcoreinfo)


def set_kernel_offset(text: bytes, offset: int) -> bytes:
    """``text`` with ``KERNELOFFSET=`` (and the symbols it moves) for ``offset``."""
    info = parse_vmcoreinfo(text)
    old = int(info.get("KERNELOFFSET", "0"), 16)
    lines = []
    for line in text.decode().splitlines():
        key, _, value = line.partition("=")
        if key == "KERNELOFFSET":
            continue
        if key.startswith("SYMBOL("):
            value = f"{int(value, 16) - old + offset:x}"
        lines.append(f"{key}={value}")
    lines.append(f"KERNELOFFSET={offset:x}")
    return ("\n".join(lines) + "\n").encode()


def _arch_of(info: Dict[str, str]) -> str:
    # Only arm64 kernels write kimage_voffset; x86-64 ones write phys_base.
    return "aarch64" if "NUMBER(kimage_voffset)" in info else "x86_64"


def kernel_phys(info: Dict[str, str], arch: str, virt: int) -> int:
    """The physical address of kernel-image address ``virt`` under ``info``."""
    if arch == "aarch64":
        return (virt - int(info["NUMBER(kimage_voffset)"], 0)) & (2**64 - 1)
    # __pa_symbol(): x - __START_KERNEL_map + phys_base, in unsigned long
    # arithmetic (phys_base wraps below 0 when the kernel's physical KASLR
    # offset is smaller than its virtual one; the kernel writes it with %ld).
    return (virt - START_KERNEL_MAP + int(info.get("NUMBER(phys_base)", "0"), 0)) & (2**64 - 1)


def arm64_linear_offset(info: Dict[str, str]) -> int:
    """arm64's ``__va(x) - x`` for RAM in the linear map: since 14c127c957c1
    ("arm64: mm: Flip kernel VA space") (in v5.4) it starts at PAGE_OFFSET =
    -(1 << VA_BITS), physical address PHYS_OFFSET (``__lm_to_phys()``)."""
    return (-(1 << int(info["NUMBER(VA_BITS)"])) - int(info["NUMBER(PHYS_OFFSET)"], 16)) \
        & (2**64 - 1)


def _banner_at(mem: PhysicalMemory, image: KernelImage, info: Dict[str, str],
               arch: str) -> Optional[int]:
    """Where ``info`` puts linux_banner, if the vmlinux's banner is there."""
    virt = image.symbol("linux_banner") + int(info.get("KERNELOFFSET", "0"), 16)
    paddr = kernel_phys(info, arch, virt)
    try:
        return paddr if mem.read(paddr, len(image.banner)) == image.banner else None
    except LookupError:
        return None


def probe_banner(mem: PhysicalMemory, image: KernelImage) -> Optional[int]:
    """The physical address of linux_banner, tried only where the kernel can
    be: ``_text`` at each 2 MiB boundary of the banks (no search through RAM)."""
    delta = image.symbol("linux_banner") - image.symbol("_text")
    for bank in mem.banks:
        text = -(-bank.paddr // _KERNEL_ALIGN) * _KERNEL_ALIGN
        while text + delta < bank.end:
            try:
                if mem.read(text + delta, len(image.banner)) == image.banner:
                    return text + delta
            except LookupError:
                pass
            text += _KERNEL_ALIGN
    return None


def _vmcoreinfo_by_pointer(mem: PhysicalMemory, image: KernelImage,
                           banner: int) -> Iterator[VmcoreinfoHit]:
    """The page ``vmcoreinfo_data`` points to, through the direct map: x86-64
    ``page_offset_base``; arm64 ``memstart_addr`` and each PAGE_OFFSET a VA_BITS
    gives (``-(1 << va)`` since 14c127c957c1 ("arm64: mm: Flip kernel VA space")
    (in v5.4), ``-(1 << (va - 1))`` before)."""
    def phys(name: str) -> int:
        return banner + image.symbol(name) - image.symbol("linux_banner")

    if "vmcoreinfo_data" not in image.symbols:
        return
    try:
        pointer = int.from_bytes(mem.read(phys("vmcoreinfo_data"), 8), "little")
        if image.arch == "x86_64":
            base = _PAGE_OFFSET_L4
            if "page_offset_base" in image.symbols:
                base = int.from_bytes(mem.read(phys("page_offset_base"), 8), "little")
            candidates = [pointer - base]
        else:
            memstart = int.from_bytes(mem.read(phys("memstart_addr"), 8), "little")
            candidates = [(pointer + (1 << bits) + memstart) & _MASK
                          for va, _ in _ARM64_VA_BITS for bits in (va, va - 1)]
    except LookupError:
        return
    for paddr in dict.fromkeys(candidates):
        if paddr % 4096:
            continue
        try:
            if mem.read(paddr, 10) != b"OSRELEASE=":
                continue
        except LookupError:
            continue
        text = text_at(mem, paddr, 4096)
        if text and b"PAGESIZE=" in text:
            yield VmcoreinfoHit(paddr, text, "where vmcoreinfo_data points")


def _from_ram(mem: PhysicalMemory, image: Optional[KernelImage],
              hits: Iterable[VmcoreinfoHit]) -> Optional[Located]:
    """The VMCOREINFO kept in RAM that belongs to ``image``'s build."""
    others = []
    for hit in hits:
        info = parse_vmcoreinfo(hit.text)
        arch = _arch_of(info)
        how = [f"VMCOREINFO at physical {hit.paddr:#x} ({hit.where})"]
        if image is None:
            return Located(hit.text, arch, how)
        build_id = info.get("BUILD-ID", "")
        if build_id and image.build_id and build_id != image.build_id[:len(build_id)]:
            # 905415ff3ffb ("lib/buildid: harden build ID parsing logic") (in
            # v6.12), backported to stable kernels, wrote garbage: then the
            # banner decides.
            if _banner_at(mem, image, info, arch) is None:
                others.append((hit, info))
                continue
            how.append("its BUILD-ID is not the vmlinux's, but the banner is")
        elif build_id:
            how.append("BUILD-ID matches the vmlinux")
        return Located(hit.text, arch, how)
    if others:
        hit, info = others[0]
        raise LocateError(
            f"the RAM images hold another kernel build: VMCOREINFO at {hit.paddr:#x} says "
            f"OSRELEASE={info.get('OSRELEASE', '?')} BUILD-ID={info.get('BUILD-ID', '?')}, "
            f"{image.path if image else 'the vmlinux'} is {image.release if image else '?'} "
            f"BUILD-ID={image.build_id if image else '?'}")
    return None


def _read_u64(mem: PhysicalMemory, paddr: int) -> int:
    return int.from_bytes(mem.read(paddr, 8), "little")


def _from_banner(mem: PhysicalMemory, image: KernelImage, probed: Optional[int]) -> Located:
    """VMCOREINFO written from the banner's place in RAM and the kernel's variables."""
    found = [probed] if probed is not None else list(mem.find(image.banner))
    if not found:
        raise LocateError(
            "no VMCOREINFO in the RAM images and the banner of "
            f"{image.path} ({image.release}) is nowhere in them: images of another kernel, "
            "or not the RAM the kernel runs in (pass --vmcoreinfo FILE if you have it)")
    banner = found[0]
    # The image is physically contiguous: a symbol's physical address is its
    # distance from linux_banner, from the banner's.
    def phys(name: str) -> int:
        return banner + image.symbol(name) - image.symbol("linux_banner")

    text = image.symbol("_text")
    lines = [f"OSRELEASE={image.release}"]
    if image.build_id:
        lines.append(f"BUILD-ID={image.build_id}")
    how = [f"no VMCOREINFO in RAM; linux_banner at physical {banner:#x}"]
    try:
        if image.arch == "x86_64":
            phys_base = _read_u64(mem, phys("phys_base"))
            virt_text = (phys("_text") - phys_base + START_KERNEL_MAP) & (2**64 - 1)
            offset = virt_text - text
            signed_base = phys_base - (1 << 64) if phys_base >> 63 else phys_base
            l5 = 0
            if "__pgtable_l5_enabled" in image.symbols:
                l5 = int.from_bytes(mem.read(phys("__pgtable_l5_enabled"), 4), "little")
            lines += ["PAGESIZE=4096",
                      f"SYMBOL(swapper_pg_dir)={image.symbol('init_top_pgt') + offset:x}",
                      f"NUMBER(phys_base)={signed_base}",  # as the kernel: %ld
                      f"NUMBER(pgtable_l5_enabled)={l5}"]
            how.append(f"phys_base {signed_base:#x} read from the kernel's variable")
        else:
            voffset = _read_u64(mem, phys("kimage_voffset"))
            offset = (phys("_text") + voffset - text) & (2**64 - 1)
            memstart = _read_u64(mem, phys("memstart_addr"))
            page_size = image.page_size
            if page_size is None:  # no header in the file: the one in RAM
                flags = _read_u64(mem, phys("_text") + 24)
                page_size = _ARM64_PAGE_SIZES.get((flags >> 1) & 3, 4096)
            lines += [f"PAGESIZE={page_size}",
                      f"SYMBOL(swapper_pg_dir)={image.symbol('swapper_pg_dir') + offset:x}",
                      f"NUMBER(kimage_voffset)={voffset:#x}",
                      f"NUMBER(PHYS_OFFSET)={memstart:#x}"]
            how.append(f"kimage_voffset {voffset:#x}, PHYS_OFFSET {memstart:#x}, "
                       f"{page_size // 1024} KiB pages (Image header)")
    except LookupError as e:
        raise LocateError(f"the RAM images are cut short inside the kernel ({e})") from None
    lines.append(f"KERNELOFFSET={offset:x}")
    texts = [("\n".join(lines) + "\n").encode()]
    if image.arch == "aarch64":
        # VA_BITS is a build option, in no variable: each is tried by reading
        # linux_banner through the page tables.
        texts = [texts[0] + f"NUMBER(VA_BITS)={va}\nNUMBER(TCR_EL1_T1SZ)={t1sz}\n".encode()
                 for va, t1sz in _ARM64_VA_BITS]
    return Located(texts[0], image.arch, how, alternatives=texts[1:],
                   banner_virt=image.symbol("linux_banner") + offset, banner=image.banner)


def locate_kernel(mem: PhysicalMemory, vmlinux: Optional[str] = None,
                  vmcoreinfo: Optional[bytes] = None,
                  kaslr_offset: Optional[int] = None) -> Located:
    """The VMCOREINFO to read ``mem`` with, checked against the vmlinux.

    :param vmcoreinfo: the user's text (``--vmcoreinfo FILE``): used as is.
    :param kaslr_offset: the user's ``--kaslr-offset``, over whatever was found.
    :raises LocateError: another build, no kernel found, the kernel's text not
        where the VMCOREINFO says (a bank at the wrong address), images cut short.
    """
    image = vmlinux_image(vmlinux) if vmlinux else None
    if vmcoreinfo is not None:
        info = parse_vmcoreinfo(vmcoreinfo)
        located = Located(vmcoreinfo, image.arch if image else _arch_of(info),
                          ["VMCOREINFO from --vmcoreinfo"])
    else:
        # The kernel's pointer first (a few reads), the search through RAM after.
        banner = probe_banner(mem, image) if image is not None else None
        near: Iterable[VmcoreinfoHit] = ()
        if image is not None and banner is not None:
            near = _vmcoreinfo_by_pointer(mem, image, banner)
        found = _from_ram(mem, image, chain(near, find_vmcoreinfo(mem)))
        if found is None:
            if image is None:
                raise LocateError("no VMCOREINFO in the RAM images: pass the vmlinux "
                                  "(-s VMLINUX) to find the kernel by its banner")
            found = _from_banner(mem, image, banner)
        located = found
    if kaslr_offset is not None:
        located.vmcoreinfo = set_kernel_offset(located.vmcoreinfo, kaslr_offset)
        located.how.append("KERNELOFFSET from --kaslr-offset")
    if image is not None:
        info = located.fields
        paddr = _banner_at(mem, image, info, located.arch)
        if paddr is None:
            virt = image.symbol("linux_banner") + int(info.get("KERNELOFFSET", "0"), 16)
            where = kernel_phys(info, located.arch, virt)
            bank = mem.bank_of(where)
            size = image.symbol("_end") - image.symbol("_text")
            below = [b for b in mem.banks if b.paddr <= where and b.end > where - size]
            if bank is None and below:
                raise LocateError(f"the RAM images are cut short inside the kernel: "
                                  f"{below[-1]} ends at {below[-1].end:#x}, linux_banner "
                                  f"belongs at physical {where:#x}")
            why = ("in no image: a bank is missing or at the wrong address" if bank is None
                   else f"not there in {bank}: a bank at the wrong address, or another build")
            raise LocateError(f"the kernel's text is not where it should be: linux_banner "
                              f"belongs at physical {where:#x}, {why}")
        _check_whole_kernel(mem, image, paddr)
        located.how.append(f"KASLR offset {int(info.get('KERNELOFFSET', '0'), 16):#x}, "
                           f"banner checked at physical {paddr:#x}")
    return located


def _check_whole_kernel(mem: PhysicalMemory, image: KernelImage, banner: int) -> None:
    """The kernel image, ``_text`` to ``_end``, aligned and whole in the banks."""
    text = banner - (image.symbol("linux_banner") - image.symbol("_text"))
    if text % _KERNEL_ALIGN:
        raise LocateError(f"the kernel's text is not where it should be: _text would be at "
                          f"physical {text:#x}, not {_KERNEL_ALIGN >> 20} MiB aligned "
                          "(a bank at the wrong address?)")
    end = text + image.symbol("_end") - image.symbol("_text")
    paddr = text
    while paddr < end:
        bank = mem.bank_of(paddr)
        if bank is None:
            raise LocateError(f"the RAM images are cut short inside the kernel: nothing at "
                              f"physical {paddr:#x} (the kernel spans {text:#x}-{end:#x})")
        paddr = bank.end
