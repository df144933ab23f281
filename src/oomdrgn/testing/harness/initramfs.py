"""The guest's initramfs: busybox, the workloads, ``/init`` and the kernel's modules.

Both the compiled workloads and the archive are cached by content hash, so a
second boot of the same kernel costs nothing here.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from .kernels import FETCH_COMMAND, HarnessError, KernelPaths, cache_dir, vm_images_dir

__all__ = ["build_initramfs", "compile_workloads", "write_cpio"]

BUSYBOX = "/bin/busybox"  # Debian's busybox-static, for amd64 guests
_CFLAGS = ["-static", "-O2", "-pthread"]
# The C compiler for each guest architecture (Debian's names); arm64 is a
# cross compiler (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross).
_CC = {"amd64": "gcc", "arm64": "aarch64-linux-gnu-gcc"}


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()[:16]


def compile_workloads(arch: str = "amd64") -> Dict[str, Path]:
    """Build every ``vm-images/workloads/*.c`` for ``arch`` (``amd64``,
    ``arm64``); return ``{name: binary}``."""
    if arch not in _CC:
        raise HarnessError(f"no compiler known for architecture {arch!r}")
    cc = _CC[arch]
    if not shutil.which(cc):
        raise HarnessError(f"{cc} not found: run scripts/setup.sh (apt: "
                           + ("gcc" if arch == "amd64" else
                              "gcc-aarch64-linux-gnu libc6-dev-arm64-cross") + ")")
    sources = sorted((vm_images_dir() / "workloads").glob("*.c"))
    # amd64 keeps the key it had before other architectures existed.
    key = _sha(*([] if arch == "amd64" else [arch.encode(), cc.encode()]),
               " ".join(_CFLAGS).encode(),
               *(s.name.encode() + s.read_bytes() for s in sources))
    out = cache_dir() / "workloads" / (key if arch == "amd64" else f"{arch}-{key}")
    bins = {s.stem: out / s.stem for s in sources}
    if all(b.exists() for b in bins.values()):
        return bins
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src in sources:
        cmd = [cc, *_CFLAGS, "-o", str(tmp / src.stem), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise HarnessError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return bins


def _busybox(kernel: KernelPaths) -> Tuple[Path, List[str]]:
    """The guest's busybox binary and its applets (without ``busybox``)."""
    if kernel.busybox is not None:
        # Fetched with the kernel, with the list its own architecture printed
        # (fetch-kernels.sh): it cannot run here.
        listing = kernel.busybox.with_name(kernel.busybox.name + ".applets")
        try:
            names = listing.read_text().split()
        except OSError:
            raise HarnessError(f"{listing} missing: run {FETCH_COMMAND} "
                               f"{kernel.name} again") from None
        return kernel.busybox, sorted(set(names) - {"busybox"})
    return Path(BUSYBOX), _applets()


def _applets() -> List[str]:
    """The applets of the host's busybox (amd64 guests)."""
    if not Path(BUSYBOX).is_file():
        raise HarnessError(f"{BUSYBOX} missing: install busybox-static")
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True)
    return sorted(set(out.stdout.split()) - {"busybox"})


# (path, mode, data, rdev) entries; mode carries the file type bits.
Entry = Tuple[str, int, bytes, Tuple[int, int]]


def write_cpio(entries: Iterable[Entry]) -> bytes:
    """An uncompressed ``newc`` cpio archive of ``entries``."""
    out = bytearray()

    def add(name: str, mode: int, data: bytes, rdev: Tuple[int, int], ino: int) -> None:
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0)
        out.extend(b"070701" + b"".join(b"%08x" % f for f in fields))
        out.extend(name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    ino = 0
    for ino, (name, mode, data, rdev) in enumerate(entries, 1):
        add(name, mode, data, rdev, ino)
    add("TRAILER!!!", 0, b"", (0, 0), 0)
    return bytes(out)


def _entries(kernel: KernelPaths, workloads: Dict[str, Path]) -> List[Entry]:
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    entries: List[Entry] = [(p, d, b"", (0, 0)) for p in
                            ("bin", "dev", "proc", "sys", "tmp", "modules")]
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("init", x, (vm_images_dir() / "guest" / "init").read_bytes(), (0, 0)))
    busybox, applets = _busybox(kernel)
    entries.append(("bin/busybox", x, busybox.read_bytes(), (0, 0)))
    entries += [(f"bin/{a}", stat.S_IFLNK | 0o777, b"busybox", (0, 0)) for a in applets]
    entries += [(f"bin/{n}", x, p.read_bytes(), (0, 0)) for n, p in sorted(workloads.items())]
    entries += [(f"modules/{m.name}", f, m.read_bytes(), (0, 0))
                for m in sorted(kernel.modules_dir.glob("*.ko"))]
    return entries


def build_initramfs(kernel: KernelPaths) -> Path:
    """A gzipped cpio for ``kernel`` (busybox and workloads of its architecture),
    cached under ``<cache>/initramfs/`` (``<arch>-<hash>`` for other than amd64)."""
    entries = _entries(kernel, compile_workloads(kernel.arch))
    arch = [] if kernel.arch == "amd64" else [kernel.arch.encode()]
    key = _sha(*arch, *(name.encode() + b"%o" % mode + data for name, mode, data, _ in entries))
    name = key if kernel.arch == "amd64" else f"{kernel.arch}-{key}"
    path = cache_dir() / "initramfs" / f"{name}.cpio.gz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(gzip.compress(write_cpio(entries), compresslevel=6, mtime=0))
        tmp.rename(path)
    return path
