"""A guest in which oomdrgn itself runs as root, on the live kernel (``-k``).

:class:`LiveGuest` is a :class:`~oomdrgn.testing.harness.qemu.Guest` whose userland is
a Debian root (see :mod:`oomdrgn.testing.harness.rootfs`) rather than busybox: python3,
drgn and the current oomdrgn are installed in it, the debug vmlinux sits at
``/usr/lib/debug/boot/vmlinux-<release>`` as ``linux-image-<release>-dbg``
installs it, so ``oomdrgn -k tasks`` runs as a user would run it, with no ``-s``.

The disks are NVMe namespaces (NVMe is built into every Debian cloud kernel;
virtio_blk and virtio_pci are modules on some), opened with ``snapshot=on``::

    with LiveGuest("6.1") as g:
        res = g.oomdrgn("-k", "tasks")
        res.status, res.stdout, res.stderr, res.seconds
"""

from __future__ import annotations

import base64
import shlex
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .kernels import KernelPaths, kernel_paths
from .qemu import Guest
from .rootfs import DEBUG_LABEL, ROOT_LABEL, debug_image, live_initramfs, rootfs_image

__all__ = ["LiveGuest", "GuestResult", "ROOT_DEVICE", "DEBUG_DEVICE"]

# By label: 6.x kernels scan NVMe namespaces asynchronously, so nvme0n1 is not
# always namespace 1 (seen on 6.12).
ROOT_DEVICE = f"LABEL={ROOT_LABEL}"    # namespace 1: the Debian root image
DEBUG_DEVICE = f"LABEL={DEBUG_LABEL}"  # namespace 2: the debug image, at /usr/lib/debug


@dataclass
class GuestResult:
    """What a command run by :meth:`LiveGuest.sh` left: exit status and exact bytes."""

    command: str
    status: int
    stdout: str
    stderr: str
    seconds: float


class LiveGuest(Guest):
    """A :class:`Guest` booted into the Debian root image with oomdrgn installed.

    :param lockdown: e.g. ``"confidentiality"``: boot with ``lockdown=`` so
        ``/proc/kcore`` is refused.
    :param memory_mb: 512 by default: drgn indexes a 300-400 MB vmlinux.

    Other arguments as for :class:`Guest` (``workdir``, ``keep``, ``append``...).
    """

    def __init__(self, kernel: Union[str, KernelPaths], *, memory_mb: int = 512,
                 lockdown: Optional[str] = None, append: str = "", **kw) -> None:
        kpaths = kernel_paths(kernel) if isinstance(kernel, str) else kernel
        # Built (or found in the cache) before QEMU starts: no boot waits on them.
        self.root_image = rootfs_image()
        self.debug_image = debug_image(kpaths)
        self.vmlinux = f"/usr/lib/debug/boot/vmlinux-{kpaths.release}"
        self.lockdown = lockdown
        live = f"root={ROOT_DEVICE} rw oomdrgn.debug={DEBUG_DEVICE}"
        if lockdown:
            live += f" lockdown={lockdown}"
        self._tmp_seq = 0
        super().__init__(kpaths, memory_mb=memory_mb, append=f"{live} {append}".strip(), **kw)

    def _start(self, args) -> None:
        # Guest builds the busybox initramfs's command line: swap in ours and
        # add the two disks.
        initrd = live_initramfs(self.kernel, self.workdir / "live-initrd.cpio")
        args = list(args)
        args[args.index("-initrd") + 1] = str(initrd)
        args += ["-drive", f"file={self.root_image},if=none,id=root,format=raw,snapshot=on",
                 "-drive", f"file={self.debug_image},if=none,id=debug,format=raw,snapshot=on",
                 "-device", "nvme,id=nvme0,serial=oomdrgn-live",
                 "-device", "nvme-ns,drive=root,bus=nvme0,nsid=1",
                 "-device", "nvme-ns,drive=debug,bus=nvme0,nsid=2"]
        self.qemu_args = args
        super()._start(args)

    # -- commands with their exact output ------------------------------------------

    def read_bytes(self, path: str, timeout: float = 60.0) -> bytes:
        """A guest file's exact bytes (through base64: the tty changes nothing)."""
        out = self.run(f"base64 -w0 {shlex.quote(path)}", timeout=timeout)
        return base64.b64decode("".join(out.split()))

    def read_text(self, path: str, timeout: float = 60.0) -> str:
        return self.read_bytes(path, timeout).decode("utf-8", "surrogateescape")

    def sh(self, cmd: str, timeout: float = 300.0,
           settle: Optional[Callable[[], None]] = None) -> GuestResult:
        """Run ``cmd`` (a shell command line); stdout and stderr come back apart.

        Only shell builtins run between ``cmd`` and the return of :meth:`run`;
        ``settle`` (e.g. waiting for a console line) is called before the first
        process that reads the results back is started.
        """
        self._tmp_seq += 1
        base = f"/tmp/live{self._tmp_seq}"
        started = time.monotonic()
        self.run(f"{{ {cmd} ; }} >{base}.out 2>{base}.err; echo $? >{base}.rc",
                 timeout=timeout)
        seconds = time.monotonic() - started
        if settle is not None:
            settle()
        status = int(self.read_text(f"{base}.rc").strip())
        return GuestResult(cmd, status, self.read_text(f"{base}.out"),
                           self.read_text(f"{base}.err"), round(seconds, 2))

    def oomdrgn(self, *args: object, prefix: str = "", timeout: float = 300.0) -> GuestResult:
        """``oomdrgn ARGS`` as root in the guest (``prefix``: e.g. ``setpriv ...``)."""
        cmd = " ".join(filter(None, [prefix, "oomdrgn", shlex.join(map(str, args))]))
        return self.sh(cmd, timeout)


def _main() -> None:
    import sys
    name = sys.argv[1] if len(sys.argv) > 1 else "6.1"
    with LiveGuest(name, keep=True) as g:
        print(g.banner)
        print(f"workdir {g.workdir}; Ctrl-] leaves", file=sys.stderr)
        g.interact()


if __name__ == "__main__":
    _main()
