"""The uncompressed kernel of a boot image file (``-s vmlinuz``): the standard
library where it can, else the compressor's own tool, as the kernel's
``scripts/extract-vmlinux`` does."""

from __future__ import annotations

import shutil
import subprocess
from typing import Tuple

from ..core.kimage import BootImage, KimageError, boot_image, decompress

__all__ = ["kernel_of"]

#: method -> (command, Debian package)
_TOOLS = {"lz4": (["lz4", "-dc"], "lz4"), "zstd": (["zstd", "-dcq"], "zstd"),
          "lzo": (["lzop", "-dc"], "lzop")}


def _by_tool(image: BootImage) -> bytes:
    argv, package = _TOOLS[image.compression]
    if shutil.which(argv[0]) is None:
        raise KimageError(f"{image.kind}: {image.compression}-compressed, and {argv[0]} is "
                          f"not installed (apt-get install {package})")
    # x86 appends the decompressed size to the payload (*_with_size in
    # arch/x86/boot/compressed/Makefile): the tools may stop at it.
    for payload in (image.payload[:-4], image.payload):
        proc = subprocess.run(argv, input=payload, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=False)
        if proc.returncode == 0 and proc.stdout:
            return proc.stdout
    raise KimageError(f"{image.kind}: {argv[0]} cannot decompress its payload")


def kernel_of(path: str) -> Tuple[bytes, str]:
    """The uncompressed kernel in the image file *path* and what it was
    (``x86 bzImage, zstd``).

    :raises KimageError: not a kernel image, or it cannot be unpacked
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KimageError(f"cannot read it: {e.strerror or e}") from None
    image = boot_image(data)
    what = image.kind if image.compression == "none" else f"{image.kind}, {image.compression}"
    if image.compression in _TOOLS:
        return _by_tool(image), what
    return decompress(image), what
