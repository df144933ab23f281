"""Read one section of an ELF file (standard library only).

Used to fetch a kernel image's ``.rodata`` from the vmlinux on disk, so that
the printk formats can be found without reading megabytes of target memory.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

__all__ = ["read_section", "elf_machine", "load_segments", "symbol_values", "core_notes",
           "core_note_names", "note_entries", "pt_notes"]

_EM = {62: "x86_64", 183: "aarch64"}


def _header(f: BinaryIO):
    ident = f.read(16)
    if ident[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    is64 = ident[4] == 2
    endian = "<" if ident[5] == 1 else ">"
    if is64:
        fmt = endian + "HHIQQQIHHHHHH"
    else:
        fmt = endian + "HHIIIIIHHHHHH"
    fields = struct.unpack(fmt, f.read(struct.calcsize(fmt)))
    return is64, endian, fields


def elf_machine(path: str) -> Optional[str]:
    """The architecture name of an ELF file (``x86_64``, ``aarch64``), if known."""
    with open(path, "rb") as f:
        _, _, fields = _header(f)
    return _EM.get(fields[1])


def read_section(path: str, name: str) -> Optional[bytes]:
    """The contents of section *name* of the ELF file at *path*, or ``None``."""
    with open(path, "rb") as f:
        is64, endian, fields = _header(f)
        shoff, shentsize, shnum, shstrndx = fields[5], fields[10], fields[11], fields[12]
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        shfmt = endian + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        sections = [struct.unpack_from(shfmt, table, i * shentsize) for i in range(shnum)]
        strtab = sections[shstrndx]
        f.seek(strtab[4])
        names = f.read(strtab[5])
        for sh in sections:
            end = names.index(b"\0", sh[0])
            if names[sh[0]:end].decode() == name:
                if sh[1] == 8:  # SHT_NOBITS
                    return None
                f.seek(sh[4])
                return f.read(sh[5])
    return None


def _program_headers(f: BinaryIO) -> List[Tuple[int, int, int, int]]:
    """``(p_type, p_offset, p_paddr, p_filesz)`` of each program header of a
    64-bit little-endian ELF file."""
    f.seek(0)
    head = f.read(64)
    phoff, = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    out = []
    for i in range(len(table) // max(phentsize, 1)):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", table,
                                                                       i * phentsize)
        out.append((p_type, p_offset, p_paddr, p_filesz))
    return out


def load_segments(path: str):
    """``(p_paddr, p_offset, p_filesz)`` of each PT_LOAD of a 64-bit little-endian ELF core."""
    with open(path, "rb") as f:
        return [(paddr, offset, size) for kind, offset, paddr, size in _program_headers(f)
                if kind == 1]  # PT_LOAD


def note_entries(data: bytes, order: str = "<") -> List[Tuple[bytes, int, bytes]]:
    """``(name, type, desc)`` of each ELF note in *data* (*order*: ``<`` or ``>``)."""
    out = []
    j = 0
    while j + 12 <= len(data):
        namesz, descsz, kind = struct.unpack_from(order + "III", data, j)
        at = j + 12 + (namesz + 3) // 4 * 4
        out.append((data[j + 12:j + 12 + namesz].rstrip(b"\0"), kind, data[at:at + descsz]))
        j = at + (descsz + 3) // 4 * 4
    return out


def pt_notes(f: BinaryIO) -> Optional[Tuple[int, int, str, bytes]]:
    """``(e_type, e_machine, byte order, notes)`` of a 64-bit ELF file: its
    ``PT_NOTE`` segments joined; None if it is not one."""
    f.seek(0)
    head = f.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
        return None
    order = "<" if head[5] == 1 else ">"
    e_type, machine = struct.unpack_from(order + "HH", head, 16)
    phoff, = struct.unpack_from(order + "Q", head, 32)
    phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    notes = b""
    for i in range(len(table) // max(phentsize, 1)):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(order + "IIQQQQ", table,
                                                                 i * phentsize)
        if p_type == 4 and p_filesz < 1 << 24:  # PT_NOTE
            f.seek(p_offset)
            notes += f.read(p_filesz)
    return e_type, machine, order, notes


def core_notes(path: str) -> Tuple[Optional[str], List[Tuple[bytes, bytes]]]:
    """The architecture of a 64-bit little-endian ELF core file and its notes
    ``(name, desc)``; (None, []) for any other file."""
    with open(path, "rb") as f:
        found = pt_notes(f)
    if found is None or found[0] != 4 or found[2] != "<":  # ET_CORE
        return None, []
    return _EM.get(found[1]), [(name, desc) for name, _, desc in note_entries(found[3])]


def core_note_names(path: str) -> List[bytes]:
    """The names of the notes of a 64-bit little-endian ELF core (``b"CORE"``,
    ``b"VMCOREINFO"``, ...)."""
    return [name for name, _ in core_notes(path)[1]]


def symbol_values(path: str, names: Iterable[str]) -> Dict[str, Tuple[int, int]]:
    """``{name: (st_value, st_size)}`` of the defined symbols *names* in the
    ``.symtab`` of *path* (link-time values, before any KASLR offset)."""
    with open(path, "rb") as f:
        ident = f.read(6)
    if ident[:4] != b"\x7fELF":
        raise ValueError(f"{path}: not an ELF file")
    is64 = ident[4] == 2
    fmt = ("<" if ident[5] == 1 else ">") + ("IBBHQQ" if is64 else "IIIBBH")
    symtab = read_section(path, ".symtab") or b""
    strtab = read_section(path, ".strtab") or b""
    wanted: Dict[int, str] = {}
    for name in set(names):
        needle = name.encode() + b"\0"
        i = strtab.find(needle)
        while i >= 0:
            wanted[i] = name
            i = strtab.find(needle, i + 1)
    found: Dict[str, Tuple[int, int]] = {}
    whole = len(symtab) - len(symtab) % struct.calcsize(fmt)
    for entry in struct.iter_unpack(fmt, symtab[:whole]):
        if is64:
            st_name, _, _, shndx, value, size = entry
        else:
            st_name, value, size, _, _, shndx = entry
        hit = wanted.get(st_name)
        if hit is not None and shndx != 0 and hit not in found:
            found[hit] = (value, size)
    return found
