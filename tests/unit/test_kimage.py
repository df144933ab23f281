"""Kernel image files (vmlinuz): the payload found, decompressed, the build IDs."""

import gzip
import lzma
import struct

import pytest

from oomdrgn.core.kimage import KimageError, boot_image, decompress, gnu_build_ids

KERNEL = b"\x7fELF" + bytes(60) + struct.pack("<III", 4, 20, 3) + b"GNU\0" + bytes(range(20))


def _bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    return bytes(setup) + bytes(16) + payload + b"trailer"


def test_bzimage_gzip_and_xz():
    for packed, method in ((gzip.compress(KERNEL), "gzip"),
                           (lzma.compress(KERNEL, lzma.FORMAT_XZ) + b"\x01\x02\x03\x04", "xz")):
        image = boot_image(_bzimage(packed))
        assert (image.kind, image.compression) == ("x86 bzImage", method)
        assert decompress(image) == KERNEL
    assert gnu_build_ids(KERNEL) == [bytes(range(20)).hex()]


def test_arm64_image_zboot_and_elf():
    image = bytearray(128)
    image[56:60] = b"ARMd"
    assert boot_image(bytes(image)).kind == "arm64 Image"
    packed = gzip.compress(bytes(image))
    zboot = bytearray(64)
    zboot[:8] = b"MZ\0\0zimg"
    struct.pack_into("<II", zboot, 8, 64, len(packed))
    zboot[24:29] = b"gzip\0"
    found = boot_image(bytes(zboot) + packed)
    assert (found.kind, found.compression) == ("EFI zboot", "gzip")
    assert decompress(found) == bytes(image)
    assert boot_image(KERNEL).compression == "none"


def test_tool_methods_and_bad_input():
    lz4 = boot_image(_bzimage(b"\x02\x21\x4c\x18" + bytes(32)))
    assert lz4.compression == "lz4"
    with pytest.raises(KimageError, match="lz4-compressed"):
        decompress(lz4)
    with pytest.raises(KimageError, match="not a kernel image"):
        boot_image(bytes(1024))
    with pytest.raises(KimageError, match="compression is not known"):
        boot_image(_bzimage(b"garbage!"))
    with pytest.raises(KimageError, match="cut short"):
        decompress(boot_image(_bzimage(gzip.compress(KERNEL)[:40])))
