"""The kernel inside a boot image file (``vmlinuz``), as the kernel's own
``scripts/extract-vmlinux`` finds it: an x86 bzImage's compressed payload, an
arm64 ``Image`` as it is, an EFI zboot image's payload (standard library only).

Decompression here covers what the standard library reads (gzip, xz, lzma,
bzip2); lz4, zstd and lzo payloads are handed back compressed, for a tool."""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from typing import List, Union

from .record import record

__all__ = ["BootImage", "KimageError", "boot_image", "decompress", "gnu_build_ids",
           "STDLIB_METHODS"]


class KimageError(ValueError):
    """Not a kernel image, or one that cannot be unpacked here (message for the user)."""


#: the payload's first bytes, per compression (the kernel's extract-vmlinux list)
_MAGICS = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x89LZO", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
STDLIB_METHODS = ("none", "gzip", "xz", "lzma", "bzip2")


@record(frozen=True)
class BootImage:
    """A kernel image file: its kind, how its kernel is compressed, and the
    (still compressed) payload."""

    kind: str  # "ELF vmlinux", "arm64 Image", "x86 bzImage", "EFI zboot", "compressed file"
    compression: str  # "none" or a key of _MAGICS
    payload: bytes


def _method(payload: bytes, what: str) -> str:
    for magic, name in _MAGICS:
        if payload.startswith(magic):
            return name
    raise KimageError(f"{what}: its payload's compression is not known "
                      f"(starts {payload[:6].hex()})")


def boot_image(data: bytes) -> BootImage:
    """What kind of kernel image *data* is, and its payload."""
    if data[:4] == b"\x7fELF":
        return BootImage("ELF vmlinux", "none", data)
    if data[56:60] == b"ARMd":  # Documentation/arch/arm64/booting.rst: the Image header
        return BootImage("arm64 Image", "none", data)
    if data[:2] == b"MZ" and data[4:8] == b"zimg":
        # drivers/firmware/efi/libstub/zboot-header.S: payload offset and size,
        # then the compression's name.
        offset, size = struct.unpack_from("<II", data, 8)
        payload = data[offset:offset + size]
        return BootImage("EFI zboot", _method(payload, "EFI zboot image"), payload)
    if data[0x202:0x206] == b"HdrS":
        # Documentation/arch/x86/boot.rst: the protected-mode kernel follows
        # setup_sects (0 meaning 4) + 1 sectors; payload_offset/length (2.08+)
        # are relative to it.
        setup_sects = data[0x1F1] or 4
        version = struct.unpack_from("<H", data, 0x206)[0]
        if version < 0x208:
            raise KimageError(f"bzImage boot protocol {version >> 8}.{version & 0xFF}: "
                              "before 2.08 it does not say where the kernel is")
        offset, length = struct.unpack_from("<II", data, 0x248)
        start = (setup_sects + 1) * 512 + offset
        payload = data[start:start + length]
        return BootImage("x86 bzImage", _method(payload, "bzImage"), payload)
    for magic, name in _MAGICS:  # a compressed Image (Image.gz, as some distributions ship)
        if data.startswith(magic):
            return BootImage("compressed file", name, data)
    raise KimageError("not a kernel image (no ELF header, arm64 Image header, "
                      "EFI zboot or bzImage header, no known compression)")


def decompress(image: BootImage) -> bytes:
    """The kernel of *image*, decompressed where the standard library can.

    :raises KimageError: a method the standard library lacks, or a damaged payload
    """
    if image.compression == "none":
        return image.payload
    unpacker: Union["zlib._Decompress", lzma.LZMADecompressor, bz2.BZ2Decompressor]
    if image.compression == "gzip":
        unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif image.compression in ("xz", "lzma"):
        unpacker = lzma.LZMADecompressor(lzma.FORMAT_XZ if image.compression == "xz"
                                         else lzma.FORMAT_ALONE)
    elif image.compression == "bzip2":
        unpacker = bz2.BZ2Decompressor()
    else:
        raise KimageError(f"{image.kind}: {image.compression}-compressed")
    try:
        kernel = unpacker.decompress(image.payload)
    except (zlib.error, lzma.LZMAError, OSError, EOFError) as e:
        raise KimageError(f"{image.kind}: its {image.compression} payload is damaged "
                          f"({e})") from None
    if not unpacker.eof:
        raise KimageError(f"{image.kind}: its {image.compression} payload is cut short")
    return kernel


_BUILD_ID_NOTE = struct.pack("<III", 4, 20, 3) + b"GNU\0"  # NT_GNU_BUILD_ID, SHA-1


def gnu_build_ids(kernel: bytes) -> List[str]:
    """The GNU build IDs in an uncompressed kernel: its own (``.notes``) and
    those of the vDSO images it carries."""
    out = []
    at = kernel.find(_BUILD_ID_NOTE)
    while at >= 0:
        out.append(kernel[at + 16:at + 36].hex())
        at = kernel.find(_BUILD_ID_NOTE, at + 1)
    return out
