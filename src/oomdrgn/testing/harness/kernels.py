"""Where the test kernels and the harness's data (``oomdrgn/testing/data``) live."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["ALL_KERNEL_NAMES", "ARM64_KERNEL_NAMES", "FETCH_COMMAND", "FLAVOUR_KERNEL_NAMES",
           "KERNEL_NAMES", "KernelPaths", "HarnessError",
           "cache_dir", "fetch_kernels", "kernel_paths", "vm_images_dir"]

#: How a user fetches kernels (also from an installed package, no checkout).
FETCH_COMMAND = "python -m oomdrgn.testing.harness fetch"


class HarnessError(RuntimeError):
    """A QEMU guest, kernel or scenario did not do what the harness expected."""


def cache_dir() -> Path:
    """``$OOMDRGN_CACHE``, else ``~/.cache/oomdrgn`` (as in ``fetch-kernels.sh``)."""
    return Path(os.environ.get("OOMDRGN_CACHE") or Path.home() / ".cache" / "oomdrgn")


def vm_images_dir() -> Path:
    """The harness's data: ``$OOMDRGN_VM_IMAGES``, else the package's own
    ``oomdrgn/testing/data`` (``vm-images/`` in a checkout links to it): kernels.list,
    fetch-kernels.sh, the guest's init, the rootfs scripts, the workload sources."""
    env = os.environ.get("OOMDRGN_VM_IMAGES")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "data"
    if not (path / "kernels.list").is_file():
        raise HarnessError(f"{path} holds no kernels.list (set OOMDRGN_VM_IMAGES to a copy "
                           "of oomdrgn/testing/data)")
    return path


def fetch_kernels(names: Sequence[str] = ()) -> int:
    """Run the packaged ``fetch-kernels.sh`` for ``names`` (default: all of
    ``kernels.list``) into :func:`cache_dir`; return its exit status."""
    script = vm_images_dir() / "fetch-kernels.sh"
    env = dict(os.environ, OOMDRGN_CACHE=str(cache_dir()))
    return subprocess.run(["bash", str(script), *names], env=env).returncode


def _read_list() -> Dict[str, Tuple[str, str]]:
    """``{name: (Debian architecture, flavour)}`` from ``kernels.list``
    (``name arch suite [flavour] line``; no flavour: ``cloud-<arch>``)."""
    try:
        text = (vm_images_dir() / "kernels.list").read_text()
    except HarnessError:
        return {"5.10": ("amd64", "cloud-amd64"), "6.1": ("amd64", "cloud-amd64"),
                "6.12": ("amd64", "cloud-amd64"), "7.x": ("amd64", "cloud-amd64"),
                "6.1-arm64": ("arm64", "cloud-arm64"), "6.12-arm64": ("arm64", "cloud-arm64"),
                "6.12-arm64-16k": ("arm64", "arm64-16k")}
    rows = (line.split() for line in text.splitlines()
            if line.strip() and not line.startswith("#"))
    return {row[0]: (row[1], row[3] if row[3] != "deb" else f"cloud-{row[1]}") for row in rows}


_KERNELS = _read_list()
#: The x86-64 cloud kernels (``amd64`` in ``kernels.list``): what ``tests/vm`` runs on.
KERNEL_NAMES = tuple(n for n, (a, f) in _KERNELS.items() if a == "amd64" and f == "cloud-amd64")
#: The arm64 kernels, booted under ``qemu-system-aarch64 -M virt`` (``tests/arm64``):
#: cloud kernels (4 KiB pages) and ``6.12-arm64-16k`` (16 KiB pages).
ARM64_KERNEL_NAMES = tuple(n for n, (a, _) in _KERNELS.items() if a == "arm64")
#: Debian's other x86-64 flavours (``rt-amd64``): run by the tests that name them
#: (``tests/vm/test_flavours.py``), not by the whole suite.
FLAVOUR_KERNEL_NAMES = tuple(n for n, (a, f) in _KERNELS.items()
                             if a == "amd64" and f != "cloud-amd64")
#: Every kernel of ``kernels.list``.
ALL_KERNEL_NAMES = tuple(_KERNELS)


@dataclass(frozen=True)
class KernelPaths:
    """One fetched Debian kernel."""

    name: str
    release: str
    vmlinuz: Path
    vmlinux: Path
    modules_dir: Path
    config: Path
    #: Debian's architecture name: ``amd64`` or ``arm64``
    arch: str = "amd64"
    #: what QEMU's ``-kernel`` loads (the uncompressed ``Image`` on arm64)
    boot_image: Optional[Path] = None
    #: the guest's busybox (of the kernel's architecture) and its applet list;
    #: ``None``: the host's ``/bin/busybox`` (amd64)
    busybox: Optional[Path] = None
    #: Debian's flavour, the release's suffix: ``cloud-amd64``, ``cloud-arm64``,
    #: ``arm64-16k``
    flavour: str = "cloud-amd64"

    @property
    def machine(self) -> str:
        """The ELF/``uname -m`` name: ``x86_64`` or ``aarch64``."""
        return {"amd64": "x86_64", "arm64": "aarch64"}[self.arch]


def kernel_paths(name: str) -> KernelPaths:
    """The files of kernel ``name`` (see ``vm-images/kernels.list``).

    :raises HarnessError: if :func:`fetch_kernels` (``fetch-kernels.sh NAME``) has not run.
    """
    kdir = cache_dir() / "kernels" / name
    if not (kdir / "ok").is_file():
        raise HarnessError(f"kernel {name!r} is not in {kdir}: "
                           f"run {FETCH_COMMAND} {name}")
    # Directories fetched before arm64 existed have no "arch" file: amd64.
    arch_file = kdir / "arch"
    arch = arch_file.read_text().strip() if arch_file.is_file() else "amd64"
    if arch not in ("amd64", "arm64"):
        raise HarnessError(f"kernel {name!r}: unsupported architecture {arch!r}")
    boot_image = kdir / "Image" if arch == "arm64" else kdir / "vmlinuz"
    busybox = kdir / "busybox" if arch != "amd64" else None
    # Directories fetched before flavours existed have no "flavour" file: cloud.
    flavour_file = kdir / "flavour"
    flavour = (flavour_file.read_text().strip() if flavour_file.is_file()
               else f"cloud-{arch}")
    for path in filter(None, (boot_image, busybox)):
        if not path.is_file():
            raise HarnessError(f"kernel {name!r}: {path} missing: "
                               f"run {FETCH_COMMAND} {name} again")
    return KernelPaths(name=name, release=(kdir / "release").read_text().strip(),
                       vmlinuz=kdir / "vmlinuz", vmlinux=kdir / "vmlinux",
                       modules_dir=kdir / "modules", config=kdir / "config", arch=arch,
                       boot_image=boot_image, busybox=busybox, flavour=flavour)
