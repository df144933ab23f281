"""The disks and initramfs of the live guest, in which oomdrgn runs as root.

Three pieces, so that only the cheap one is rebuilt when oomdrgn changes:

* the **root image**: Debian minbase + ``python3`` + the drgn wheel, an ext4
  image built by ``vm-images/rootfs/build-rootfs.sh`` (debootstrap, no loop
  mounts), cached as ``<cache>/rootfs/root-<key>.ext4``; the key hashes the
  script, the suite and the drgn version. ~3 min once, ~0.3 GB.
* one **debug image** per kernel: an ext4 image holding only
  ``boot/vmlinux-<release>`` (the fetched debug vmlinux), mounted at
  ``/usr/lib/debug`` in the guest, where ``linux-image-<release>-dbg`` puts it.
  Cached as ``<cache>/rootfs/debug/<name>-<key>.ext4`` (key: release, size and
  mtime of the vmlinux); 0.3-0.4 GB each, built in seconds.
* the **initramfs**: busybox, ``vm-images/rootfs/init`` and ``live-init``, the
  current ``src/oomdrgn`` and the static workloads, the kernel's cached modules.
  Written into the guest's workdir at every boot (a few MB, well under a second).

QEMU opens both images with ``snapshot=on``: the guest writes go to a temporary
overlay and the cached files are never modified.

``python -m oomdrgn.testing.harness.rootfs [NAME...]`` builds the root image and the
debug images of the named kernels (default all) and prints their paths and sizes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from .initramfs import BUSYBOX, Entry, _applets, compile_workloads, write_cpio
from .kernels import HarnessError, KernelPaths, cache_dir, kernel_paths, vm_images_dir

__all__ = ["DEBUG_LABEL", "ROOT_LABEL", "ROOTFS_SUITE", "cache_usage", "debug_image",
           "live_initramfs", "oomdrgn_package_dir", "rootfs_cache_dir", "rootfs_image"]

ROOTFS_SUITE = "bookworm"
ROOT_LABEL = "oomdrgn-root"  # set by build-rootfs.sh
DEBUG_LABEL = "oomdrgn-debug"
_DEBUG_IMAGE_FORMAT = b"2"  # in the debug images' key: bump when their layout changes
_SLACK_MB = 48  # ext4 metadata and journal around the one big file


def rootfs_cache_dir() -> Path:
    """``<cache>/rootfs``: the root image, the debug images, debootstrap's .debs."""
    return cache_dir() / "rootfs"


def oomdrgn_package_dir() -> Path:
    """The ``oomdrgn`` package directory these modules were imported from."""
    return Path(__file__).resolve().parents[2]


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()[:16]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    # Two test sessions of this user must not build the same image at once.
    rootfs_cache_dir().mkdir(parents=True, exist_ok=True)
    with open(rootfs_cache_dir() / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _drgn_version() -> str:
    import drgn
    return drgn.__version__


def _progress(msg: str) -> None:
    print(f"[oomdrgn rootfs] {msg}", file=sys.stderr, flush=True)


def rootfs_image(suite: str = ROOTFS_SUITE, drgn_version: Optional[str] = None) -> Path:
    """The cached root image, built first if needed (needs root and debootstrap).

    :param drgn_version: the drgn wheel to install in the guest (default: the
        version this Python imports, so guest and host read kernels alike).
    """
    script = vm_images_dir() / "rootfs" / "build-rootfs.sh"
    drgn_version = drgn_version or _drgn_version()
    key = _sha(script.read_bytes(), suite.encode(), drgn_version.encode())
    path = rootfs_cache_dir() / f"root-{key}.ext4"
    if path.exists():
        return path
    if not shutil.which("debootstrap"):
        raise HarnessError("debootstrap not found: apt-get install debootstrap "
                           "(the live guest's root image is built with it)")
    if os.geteuid() != 0:
        raise HarnessError("building the live guest's root image needs root (debootstrap)")
    with _locked("root"):
        if path.exists():
            return path
        started = time.monotonic()
        _progress(f"building {path} (debootstrap {suite}, drgn {drgn_version}); "
                  "a few minutes, once")
        env = dict(os.environ, OOMDRGN_ROOTFS_SUITE=suite, OOMDRGN_DRGN_VERSION=drgn_version,
                   OOMDRGN_PYTHON=sys.executable, OOMDRGN_CACHE=str(cache_dir()))
        proc = subprocess.run(["bash", str(script), str(path)], env=env)
        if proc.returncode or not path.exists():
            raise HarnessError(f"{script} failed with status {proc.returncode}")
        for old in rootfs_cache_dir().glob("root-*.ext4"):
            if old != path:
                _progress(f"removing the superseded {old.name}")
                old.unlink()
        _progress(f"root image ready in {time.monotonic() - started:.0f} s")
    return path


def debug_image(kernel: KernelPaths) -> Path:
    """The cached ext4 image holding ``boot/vmlinux-<release>`` of ``kernel``."""
    st = kernel.vmlinux.stat()
    key = _sha(_DEBUG_IMAGE_FORMAT, kernel.release.encode(),
               b"%d:%d" % (st.st_size, st.st_mtime_ns))
    ddir = rootfs_cache_dir() / "debug"
    path = ddir / f"{kernel.name}-{key}.ext4"
    if path.exists():
        return path
    if not shutil.which("mkfs.ext4"):
        raise HarnessError("mkfs.ext4 not found: apt-get install e2fsprogs")
    with _locked(f"debug-{kernel.name}"):
        if path.exists():
            return path
        started = time.monotonic()
        _progress(f"building {path} ({st.st_size >> 20} MB vmlinux of {kernel.release})")
        ddir.mkdir(parents=True, exist_ok=True)
        stage = ddir / f"{kernel.name}.stage"
        tmp = path.with_suffix(".tmp")
        shutil.rmtree(stage, ignore_errors=True)
        try:
            (stage / "boot").mkdir(parents=True)
            target = stage / "boot" / f"vmlinux-{kernel.release}"
            try:
                os.link(kernel.vmlinux, target)  # mkfs copies it: no second copy here
            except OSError:
                shutil.copy2(kernel.vmlinux, target)
            size_mb = (st.st_size >> 20) * 21 // 20 + _SLACK_MB
            with open(tmp, "wb") as f:
                f.truncate(size_mb << 20)
            proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", DEBUG_LABEL,
                                   "-d", str(stage), str(tmp)], capture_output=True, text=True)
            if proc.returncode:
                raise HarnessError(f"mkfs.ext4 -d {stage} failed:\n{proc.stderr}")
            tmp.rename(path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            tmp.unlink(missing_ok=True)
        for old in ddir.glob(f"{kernel.name}-*.ext4"):
            if old != path:
                old.unlink()
        _progress(f"debug image ready in {time.monotonic() - started:.1f} s")
    return path


def _package_entries(pkg: Path) -> List[Entry]:
    d, f = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644
    entries: List[Entry] = [("payload/oomdrgn", d, b"", (0, 0))]
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg)
        if "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        name = f"payload/oomdrgn/{rel.as_posix()}"
        if path.is_dir():
            entries.append((name, d, b"", (0, 0)))
        elif path.is_file():
            entries.append((name, f, path.read_bytes(), (0, 0)))
    return entries


def live_initramfs(kernel: KernelPaths, out: Path,
                   workloads: Optional[Dict[str, Path]] = None) -> Path:
    """Write the live guest's (uncompressed) initramfs for ``kernel`` to ``out``."""
    rdir = vm_images_dir() / "rootfs"
    workloads = compile_workloads() if workloads is None else workloads
    d, f, x = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFREG | 0o755
    entries: List[Entry] = [(p, d, b"", (0, 0)) for p in
                            ("bin", "dev", "proc", "sys", "newroot", "modules",
                             "payload", "payload/bin")]
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("init", x, (rdir / "init").read_bytes(), (0, 0)))
    entries.append(("live-init", x, (rdir / "live-init").read_bytes(), (0, 0)))
    entries.append(("bin/busybox", x, Path(BUSYBOX).read_bytes(), (0, 0)))
    entries += [(f"bin/{a}", stat.S_IFLNK | 0o777, b"busybox", (0, 0)) for a in _applets()]
    entries += [(f"payload/bin/{n}", x, p.read_bytes(), (0, 0))
                for n, p in sorted(workloads.items())]
    entries += [(f"modules/{m.name}", f, m.read_bytes(), (0, 0))
                for m in sorted(kernel.modules_dir.glob("*.ko"))]
    entries += _package_entries(oomdrgn_package_dir())
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(write_cpio(entries))
    tmp.rename(out)
    return out


def cache_usage() -> Dict[str, int]:
    """Bytes used under :func:`rootfs_cache_dir`, by top-level entry (sparse-aware)."""
    usage: Dict[str, int] = {}
    root = rootfs_cache_dir()
    if not root.is_dir():
        return usage
    for top in root.iterdir():
        paths = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        usage[top.name] = sum(p.lstat().st_blocks * 512 for p in paths)
    return usage


def main(argv: Optional[List[str]] = None) -> int:
    names = (argv if argv is not None else sys.argv[1:])
    from .kernels import KERNEL_NAMES
    try:
        t = time.monotonic()
        root = rootfs_image()
        print(f"root image  {root}  {root.stat().st_blocks >> 11} MB  "
              f"({time.monotonic() - t:.1f} s)")
        for name in names or KERNEL_NAMES:
            t = time.monotonic()
            img = debug_image(kernel_paths(name))
            print(f"debug {name:5} {img}  {img.stat().st_blocks >> 11} MB  "
                  f"({time.monotonic() - t:.1f} s)")
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    total = sum(cache_usage().values())
    print(f"{rootfs_cache_dir()}: {total >> 20} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
