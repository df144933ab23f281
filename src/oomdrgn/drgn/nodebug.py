"""No debug info: the kernel's BTF and kallsyms, found in the target's memory,
made into a :class:`~oomdrgn.drgn.btfport.BtfPort`."""

from __future__ import annotations

from typing import Optional, TYPE_CHECKING, Tuple

from drgn import FaultError, Program

from ..core.btf import Blob, Btf, BtfError
from ..core.elffile import read_section
from ..core.errors import EXIT_DEBUGINFO, OomdrgnError
from ..core.kallsyms import Kallsyms
from ..core.port import Fault
from ..core.rawimage import parse_vmcoreinfo
from ..core.layoutcache import CHECK_BYTES, Layout, btf_check, layout_path, load_layout
from ..core.selftypes import btf_source, locate_btf, parse_btf, read_symbols, recover
from .btfport import BtfPort

if TYPE_CHECKING:  # core.symrecover loads only where kallsyms lacks data symbols
    from ..core.symrecover import Recovered

__all__ = ["btf_port", "PRELOADED"]

#: ``prog.config`` key: ``(layout, (btf, kallsyms, recovered) or None, sources)``
#: that a run of the same dump with no debugger learnt
#: (:meth:`oomdrgn.elfcore.port.CachedPort.handoff`)
PRELOADED = "oomdrgn.preloaded"


def _vmcoreinfo(prog: Program) -> dict:
    try:
        return parse_vmcoreinfo(prog["VMCOREINFO"].string_())
    except (LookupError, FaultError, ValueError) as e:
        raise OomdrgnError(f"no debug info, and no VMCOREINFO to find the kernel's BTF and "
                           f"kallsyms ({e}): pass the debug vmlinux (-s VMLINUX)",
                           EXIT_DEBUGINFO) from None


def _reader(prog: Program):
    def read(address: int, size: int) -> bytes:
        try:
            return prog.read(address, size)
        except FaultError as e:
            raise Fault(str(e), address) from None
    return read


def _btf_blob(prog: Program, ks: Kallsyms) -> Tuple[Blob, int, str]:
    """The vmlinux BTF in *prog*'s memory (:func:`oomdrgn.core.selftypes.locate_btf`)."""
    return locate_btf(_reader(prog), ks)


def _file_btf(prog: Program, vmlinux: Optional[str]) -> Optional[Tuple[bytes, str]]:
    """The BTF of the build's file given with ``-s`` (a kernel image, or a vmlinux
    without DWARF), and what it is; None without one."""
    image = prog.config.get("oomdrgn.boot_image")
    if image is not None:
        path, what, blob = image
        return (blob, f"{path} ({what})") if blob else None
    if vmlinux:
        try:
            blob = read_section(vmlinux, ".BTF")
        except (OSError, ValueError):
            return None
        return (blob, vmlinux) if blob else None
    return None


#: the running kernel's BTF, as the kernel exports it (CONFIG_DEBUG_INFO_BTF)
SYSFS_BTF = "/sys/kernel/btf/vmlinux"


def _sysfs_btf(prog: Program, ks: Kallsyms) -> Optional[Tuple[bytes, int, str]]:
    """The live kernel's BTF from :data:`SYSFS_BTF` (the same bytes as
    ``__start_BTF``, whose address is kept for the layout cache's check; 0 if
    kallsyms lacks it), or None (not ``-k``, or no such file)."""
    if not prog.config.get("oomdrgn.live_kernel"):
        return None
    try:
        with open(SYSFS_BTF, "rb") as f:
            blob = f.read()
    except OSError:
        return None
    at = ks.address_of("__start_BTF") or 0
    try:
        if at and prog.read(at, CHECK_BYTES) != blob[:CHECK_BYTES]:
            at = 0  # not where kallsyms says: never checked against memory
    except FaultError:
        at = 0
    return blob, at, SYSFS_BTF


def _memory_btf(prog: Program, ks: Kallsyms, arch: str) -> Tuple[Btf, int, str]:
    blob, at, how = _sysfs_btf(prog, ks) or _btf_blob(prog, ks)
    return parse_btf(blob, arch), at, how


def _load(prog: Program, info: dict, vmlinux: Optional[str] = None
          ) -> Tuple[Btf, Kallsyms, Optional["Recovered"], int, str]:
    """BTF and kallsyms parsed from memory (BTF from the ``-s`` file where memory
    has none; data symbols recovered where kallsyms holds functions only), BTF's
    address in memory (0: from the file), and where from."""
    arch = "aarch64" if "NUMBER(kimage_voffset)" in info else "x86_64"
    little = bool(prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN)
    ks, tables, symbols = read_symbols(_reader(prog), info, little)
    try:
        btf, at, how = _memory_btf(prog, ks, arch)
        types = (f"types from {how}, {btf.types} types" if how == SYSFS_BTF else
                 btf_source(btf, at, how))
    except OomdrgnError as e:
        found = _file_btf(prog, vmlinux)
        if found is None:
            raise
        try:
            btf = Btf(found[0], char_signed=arch == "x86_64")
        except BtfError as bad:
            raise OomdrgnError(f"{e}; the BTF of {found[1]} is damaged too ({bad})",
                               EXIT_DEBUGINFO) from None
        at = 0
        types = (f"types from the BTF of {found[1]}, {btf.types} types (the "
                 f"kernel's memory has none: {e.args[0]})")
    recovered = None
    if not ks.all_symbols:
        # Built without CONFIG_KALLSYMS_ALL (Debian's 6.1 arm64): functions only;
        # the data symbols the commands need are recovered from memory.
        recovered, symbols = recover(_reader(prog), ks, info, btf, arch, little, at, tables)
    return btf, ks, recovered, at, f"{types}; {symbols}"


def _warm(prog: Program, layout: Layout, kaslr: int) -> bool:
    """Whether the cached layout's BTF is where it was, the same bytes."""
    try:
        head = prog.read((layout.btf_at + kaslr) & (2**64 - 1), CHECK_BYTES)
    except FaultError:
        return False
    return btf_check(head) == layout.btf_check


def btf_port(prog: Program, vmlinux: Optional[str] = None,
             use_cache: bool = True) -> Tuple[BtfPort, str]:
    """The port of a program opened without debug info, and where its types and
    symbols came from (for stderr): the build's layout cache if it holds this
    kernel's (checked against its BTF in memory), else BTF and kallsyms.

    :raises OomdrgnError: no kallsyms or no BTF found (exit status 4)
    """
    info = _vmcoreinfo(prog)
    kaslr = int(info.get("KERNELOFFSET", "0"), 16)
    build_id = info.get("BUILD-ID", "")
    preloaded = prog.config.get(PRELOADED)
    if preloaded is not None:  # a run of the same dump with no debugger stopped
        layout, loaded, sources = preloaded

        def parsed() -> Tuple[Btf, Kallsyms, Optional["Recovered"]]:
            return loaded if loaded is not None else _load(prog, info, vmlinux)[:3]
        return BtfPort(prog, parsed, layout, kaslr, vmlinux), sources
    layout = load_layout(build_id) if use_cache else None
    if layout is not None and _warm(prog, layout, kaslr):
        def later() -> Tuple[Btf, Kallsyms, Optional["Recovered"]]:
            return _load(prog, info, vmlinux)[:3]
        where = layout_path(build_id)
        return (BtfPort(prog, later, layout, kaslr, vmlinux),
                f"no debug info: types and symbols from the layout cache {where} "
                f"(checked against the kernel's BTF at {layout.btf_at + kaslr:#x})")
    btf, ks, recovered, at, sources = _load(prog, info, vmlinux)
    layout = Layout(build_id, (at - kaslr) & (2**64 - 1),
                    btf_check(prog.read(at, CHECK_BYTES)) if at else "")
    if not use_cache or not build_id or not at:  # BTF from a file: not checkable in memory
        layout.build_id = ""  # never saved
    return (BtfPort(prog, lambda: (btf, ks, recovered), layout, kaslr, vmlinux),
            f"no debug info: {sources}")
