"""Where the test kernels and the repository's ``vm-images/`` live."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

__all__ = ["KERNEL_NAMES", "KernelPaths", "HarnessError", "cache_dir", "kernel_paths",
           "vm_images_dir"]


class HarnessError(RuntimeError):
    """A QEMU guest, kernel or scenario did not do what the harness expected."""


def cache_dir() -> Path:
    """``$OOMDRGN_CACHE``, else ``~/.cache/oomdrgn`` (as in ``fetch-kernels.sh``)."""
    return Path(os.environ.get("OOMDRGN_CACHE") or Path.home() / ".cache" / "oomdrgn")


def vm_images_dir() -> Path:
    """The repository's ``vm-images/``: ``$OOMDRGN_VM_IMAGES`` or beside ``src/``."""
    env = os.environ.get("OOMDRGN_VM_IMAGES")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "vm-images"
    if not (path / "kernels.list").is_file():
        raise HarnessError(f"{path} is not oomdrgn's vm-images/ (set OOMDRGN_VM_IMAGES)")
    return path


def _read_names() -> Tuple[str, ...]:
    try:
        text = (vm_images_dir() / "kernels.list").read_text()
    except HarnessError:
        return ("5.10", "6.1", "6.12", "7.x")
    return tuple(line.split()[0] for line in text.splitlines()
                 if line.strip() and not line.startswith("#"))


KERNEL_NAMES = _read_names()


@dataclass(frozen=True)
class KernelPaths:
    """One fetched Debian cloud kernel."""

    name: str
    release: str
    vmlinuz: Path
    vmlinux: Path
    modules_dir: Path
    config: Path


def kernel_paths(name: str) -> KernelPaths:
    """The files of kernel ``name`` (see ``vm-images/kernels.list``).

    :raises HarnessError: if ``vm-images/fetch-kernels.sh NAME`` has not run.
    """
    kdir = cache_dir() / "kernels" / name
    if not (kdir / "ok").is_file():
        raise HarnessError(f"kernel {name!r} is not in {kdir}: "
                           f"run vm-images/fetch-kernels.sh {name}")
    return KernelPaths(name=name, release=(kdir / "release").read_text().strip(),
                       vmlinuz=kdir / "vmlinuz", vmlinux=kdir / "vmlinux",
                       modules_dir=kdir / "modules", config=kdir / "config")
