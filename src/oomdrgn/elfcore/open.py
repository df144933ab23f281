"""Open an ELF vmcore with no debugger, where the build's layout cache answers
for it and no DWARF would be preferred (standard library only)."""

import os
import struct
from typing import Dict, List, Optional, Tuple

from ..core.elffile import load_segments
from ..core.kernel import KernelReader
from ..core.layoutcache import CHECK_BYTES, btf_check, layout_path, load_layout
from ..core.rawimage import PhysicalMemory, RawImageError, elf_banks, parse_vmcoreinfo
from .port import CachedPort, Unanswered

__all__ = ["cached_reader", "dwarf_candidates"]

_MACHINES = {62: "x86_64", 183: "aarch64"}


def _notes(path: str) -> Tuple[Optional[str], List[Tuple[bytes, bytes]]]:
    """The architecture of a 64-bit little-endian ELF core file, and its notes
    ``(name, desc)``; (None, []) for anything else."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
            return None, []
        e_type, machine = struct.unpack_from("<HH", head, 16)
        if e_type != 4:  # ET_CORE
            return None, []
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        notes = []
        for i in range(len(table) // max(phentsize, 1)):
            p_type, _, offset, _, _, size = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if p_type != 4 or size > 1 << 24:  # PT_NOTE
                continue
            f.seek(offset)
            data = f.read(size)
            j = 0
            while j + 12 <= len(data):
                namesz, descsz, _ = struct.unpack_from("<III", data, j)
                at = j + 12 + (namesz + 3) // 4 * 4
                notes.append((data[j + 12:j + 12 + namesz].rstrip(b"\0"), data[at:at + descsz]))
                j = at + (descsz + 3) // 4 * 4
    return _MACHINES.get(machine), notes


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
    ELF core, no warm layout cache for its build (checked against its BTF),
    a debug vmlinux drgn would find (``auto``), or debuginfod configured."""
    try:
        arch, notes = _notes(path)
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
    layout = load_layout(build_id)
    if layout is None:
        return None
    try:
        mem = PhysicalMemory(elf_banks(path, load_segments(path)))
    except (RawImageError, OSError, ValueError):
        return None
    try:
        port = CachedPort(mem, info, text.rstrip(b"\0"), layout, arch)
        at = (layout.btf_at + port.kaslr) & ((1 << 64) - 1)
        if btf_check(port.read(at, CHECK_BYTES)) != layout.btf_check:
            return None
        reader = KernelReader(port, counter_rule)
    except (Unanswered, KeyError, ValueError, LookupError):
        return None
    where = layout_path(build_id)
    return reader, (f"no debug info: types and symbols from the layout cache {where} "
                    f"(checked against the kernel's BTF at {at:#x})")
