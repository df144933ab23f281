"""KASLR under GDB: where the target runs the kernel of a vmlinux file.

:func:`find_kaslr_offset` looks for the vmlinux file's own ``linux_banner``
bytes (its whole text, build string included) in target memory; the command
that reloads the symbols at that offset is in :mod:`oomdrgn.gdb.command`.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import gdb

from ..core.elffile import read_section
from .port import (address_of, arch_of, cache, elf_symbols, have_target, kernel_symbol_file,
                   read_memory, user_mode)

__all__ = ["KaslrError", "find_kaslr_offset", "symbols_match", "percpu_symbols_match"]

_MASK64 = (1 << 64) - 1


class KaslrError(Exception):
    """The kernel's load offset cannot be found (or the vmlinux is another build)."""


def _file_rodata(path: str) -> Optional[bytes]:
    try:
        key = ("rodata", path)
        if key not in cache:
            cache[key] = read_section(path, ".rodata")
        return cache[key]  # type: ignore[return-value]
    except (OSError, ValueError):
        return None


def _banner(path: str) -> Tuple[int, bytes]:
    """Link address and bytes (with the NUL) of ``linux_banner`` in the file."""
    syms = elf_symbols(path, ("linux_banner", "__start_rodata"))
    if len(syms) != 2:
        raise KaslrError(f"{path}: no linux_banner/__start_rodata symbols (not a vmlinux?)")
    rodata = _file_rodata(path)
    if not rodata:
        raise KaslrError(f"{path}: no .rodata section")
    start = syms["linux_banner"][0] - syms["__start_rodata"][0]
    end = rodata.find(b"\0", start)
    if start < 0 or end < 0:
        raise KaslrError(f"{path}: linux_banner is not in .rodata")
    return syms["linux_banner"][0], rodata[start:end + 1]


# KASLR ----------------------------------------------------------------------

def symbols_match(path: Optional[str] = None) -> Optional[bool]:
    """Whether the loaded symbols' ``linux_banner`` holds the file's banner in
    target memory (``None`` when no kernel symbols are loaded)."""
    path = path or kernel_symbol_file()
    address = address_of("linux_banner")
    if not path or address is None:
        return None
    _, expected = _banner(path)
    try:
        if read_memory(address, len(expected)) != expected:
            return False
    except gdb.MemoryError:
        return False
    return percpu_symbols_match(path)


def percpu_symbols_match(path: str) -> bool:
    """Whether zero-based per-CPU symbols (x86-64 SMP) were left at 0 by the loader."""
    link = elf_symbols(path, ("__per_cpu_start",)).get("__per_cpu_start")
    return link is None or link[0] != 0 or address_of("__per_cpu_start") == 0


def _thread_pcs() -> List[int]:
    pcs = []
    current = gdb.selected_thread()
    try:
        for thread in gdb.selected_inferior().threads():
            thread.switch()
            try:
                pcs.append(int(gdb.parse_and_eval("$pc")) & _MASK64)
            except gdb.error:
                pass
    finally:
        if current is not None:
            current.switch()
    return pcs


def _candidates(path: str, arch: str) -> Iterator[int]:
    # x86-64 places the kernel at a CONFIG_PHYSICAL_ALIGN (>= 2 MiB) multiple
    # inside the 1 GiB kernel image area above __START_KERNEL_map; other
    # architectures are only tried around the stopped CPUs' program counters.
    align = 0x200000 if arch == "x86_64" else 0x10000
    yield 0
    text = elf_symbols(path, ("_stext", "_etext"))
    if len(text) == 2:
        stext, etext = text["_stext"][0], text["_etext"][0]
        for pc in _thread_pcs():
            if pc < 1 << 63:  # user space: no hint
                continue
            low = -(-(pc - etext) // align) * align
            for offset in range(low, pc - stext + 1, align):
                yield offset
    if arch == "x86_64":
        yield from range(align, 1 << 30, align)


def find_kaslr_offset(path: str) -> int:
    """The offset at which the target runs the kernel of vmlinux *path*.

    Looks for the file's ``linux_banner`` (its whole text, build string
    included) at the link address plus each candidate offset.

    :raises KaslrError: not found, or the target runs another build.
    """
    if not have_target():
        raise KaslrError("no target: connect first (target remote HOST:PORT)")
    link, expected = _banner(path)
    other = None
    seen = set()
    for offset in _candidates(path, arch_of(path)):
        if offset in seen:
            continue
        seen.add(offset)
        try:
            data = read_memory(link + offset, len(expected))
        except gdb.MemoryError:
            continue
        if data == expected:
            return offset
        if other is None and data.startswith(b"Linux version "):
            other = data
    if other is not None:
        running = other.split(b"\0")[0].decode(errors="replace").strip()
        mine = expected[:-1].decode(errors="replace").strip()
        raise KaslrError(f"{path} is not the build the target runs: the target's banner is "
                         f"{running!r}, the file's {mine!r}")
    hint = " (every CPU is stopped in user mode: see the warning)" if user_mode() else ""
    raise KaslrError(f"the banner of {path} is nowhere in the target's kernel image area "
                     f"(is the kernel booted? is this its vmlinux?){hint}")
