"""Open an ELF vmcore with no debugger, where the build's layout cache answers
for it and no DWARF would be preferred (standard library only)."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from ..core.elffile import core_notes, load_segments
from ..core.errors import OomdrgnError
from ..core.kernel import KernelReader
from ..core.layoutcache import CHECK_BYTES, btf_check, layout_path, load_layout
from ..core.rawimage import PhysicalMemory, RawImageError, elf_banks, parse_vmcoreinfo
from .port import CachedPort, Unanswered

__all__ = ["cached_reader", "dwarf_candidates"]

def dwarf_candidates(release: str, build_id: str) -> List[str]:
    """Where drgn's default search finds a kernel's debug vmlinux: by release
    and by build ID under /usr/lib/debug."""
    paths = [f"/usr/lib/debug/boot/vmlinux-{release}",
             f"/usr/lib/debug/lib/modules/{release}/vmlinux",
             f"/boot/vmlinux-{release}", f"/lib/modules/{release}/build/vmlinux",
             f"/lib/modules/{release}/vmlinux"]
    if len(build_id) > 2:
        paths.append(f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug")
    return paths


def cached_reader(path: str, counter_rule: Optional[str] = None,
                  debug_info: str = "auto") -> Optional[Tuple[KernelReader, str]]:
    """A reader of the ELF vmcore *path* with no debugger, and where its types
    and symbols came from (for stderr); None where drgn must open it: not an
    ELF core, a layout cache of its build that its BTF does not match,
    a debug vmlinux drgn would find (``auto``), or debuginfod configured.
    A build the layout cache does not know is read from the kernel's BTF and
    kallsyms in the dump (the layout then learnt is saved by the caller)."""
    try:
        arch, notes = core_notes(path)
    except OSError:
        return None
    text = next((desc for name, desc in notes if name == b"VMCOREINFO"), None)
    if arch is None or text is None:
        return None
    info: Dict[str, str] = parse_vmcoreinfo(text.rstrip(b"\0"))
    build_id = info.get("BUILD-ID", "")
    if debug_info == "auto" and (os.environ.get("DEBUGINFOD_URLS") or any(
            os.path.exists(p) for p in dwarf_candidates(info.get("OSRELEASE", ""), build_id))):
        return None
    layout = load_layout(build_id) if build_id else None
    try:
        mem = PhysicalMemory(elf_banks(path, load_segments(path)))
    except (RawImageError, OSError, ValueError):
        return None
    try:
        port = CachedPort(mem, info, text.rstrip(b"\0"), layout, arch)
        if layout is not None:
            at = (layout.btf_at + port.kaslr) & ((1 << 64) - 1)
            if btf_check(port.read(at, CHECK_BYTES)) != layout.btf_check:
                return None
            port.sources = (f"no debug info: types and symbols from the layout cache "
                            f"{layout_path(build_id)} (checked against the kernel's BTF "
                            f"at {at:#x})")
        reader = KernelReader(port, counter_rule)
    except (Unanswered, OomdrgnError, KeyError, ValueError, LookupError):
        return None
    return reader, port.sources
