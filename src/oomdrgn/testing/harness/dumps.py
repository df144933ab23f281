"""QEMU dump files: unflatten kdump output, open with drgn (imported lazily)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Union

__all__ = ["is_flattened", "open_vmcore", "unflatten"]

_FLAT_SIGNATURE = b"makedumpfile\0"
_FLAT_HEADER_SIZE = 4096


def is_flattened(path: Union[str, Path]) -> bool:
    """Whether ``path`` is in makedumpfile's flattened (streamable) format."""
    with open(path, "rb") as f:
        return f.read(len(_FLAT_SIGNATURE)) == _FLAT_SIGNATURE


def unflatten(path: Union[str, Path]) -> Path:
    """Rewrite a flattened kdump file in place as a plain one (``makedumpfile -R``).

    QEMU 7.2 writes every kdump-* dump flattened: a 4096-byte header, then
    records of big-endian ``(offset, size)`` and data, ended by offset -1.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        if src.read(_FLAT_HEADER_SIZE)[:len(_FLAT_SIGNATURE)] != _FLAT_SIGNATURE:
            raise ValueError(f"{path} is not a flattened dump")
        while True:
            offset, size = struct.unpack(">qq", src.read(16))
            if offset < 0:
                break
            dst.seek(offset)
            while size:
                chunk = src.read(min(size, 1 << 20))
                if not chunk:
                    raise ValueError(f"{path}: truncated flattened record")
                dst.write(chunk)
                size -= len(chunk)
    os.replace(tmp, path)
    return path


def dig_holes(path: Union[str, Path]) -> Path:
    """Give *path*'s runs of zero blocks back to the filesystem (util-linux
    ``fallocate --dig-holes``): a dump's free pages then take no disk, and its
    bytes are unchanged. Where the tool or the filesystem cannot, the file is
    left whole (it only costs disk)."""
    tool = shutil.which("fallocate")
    if tool:
        subprocess.run([tool, "--dig-holes", str(path)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return Path(path)


def open_vmcore(vmcore: Union[str, Path], vmlinux: Union[str, Path]):
    """A ``drgn.Program`` for a QEMU ``dump-guest-memory`` file (ELF or kdump).

    QEMU's kdump files carry no architecture name, which libkdumpfile then
    refuses to guess, so the platform is given up front (harmless for ELF),
    from the vmlinux's ELF machine (x86-64 or aarch64). QEMU's aarch64 kdump
    files go through :mod:`oomdrgn.core.diskdump` (see there).
    """
    import drgn

    from ...core.diskdump import block_size_mismatch
    from ...core.elffile import elf_machine

    if block_size_mismatch(str(vmcore)):
        # QEMU's aarch64 kdump files (64 KiB blocks), which libkdumpfile misreads.
        from ...drgn.program import open_program
        return open_program(core=str(vmcore), vmlinux=[str(vmlinux)])

    arch = {"aarch64": drgn.Architecture.AARCH64}.get(elf_machine(str(vmlinux)) or "",
                                                      drgn.Architecture.X86_64)
    platform = drgn.Platform(arch,
                             drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)
    prog = drgn.Program(platform)
    prog.set_core_dump(str(vmcore))
    prog.load_debug_info([str(vmlinux)])
    return prog
