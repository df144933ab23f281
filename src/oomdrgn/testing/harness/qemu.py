"""Boot a fetched Debian kernel with the test initramfs under QEMU, and drive it.

Serial port ttyS0 carries only the kernel console (to ``console.log``); ttyS1
carries the shell that :meth:`Guest.run` drives through pexpect. QMP serves
status, stop/cont and dumps (ELF, kdump, and raw images of each RAM bank);
a second QMP socket is left free for ``drgn --qemu``.

arm64 kernels boot under ``qemu-system-aarch64 -M virt`` (TCG only), whose one
serial port (PL011, ``ttyAMA0``) is the kernel console; the shell runs on a
virtio console (``hvc0``) instead of ttyS1. Debian's arm64 kernels (cloud and
16 KiB-page) have no pvpanic driver: they reboot at a panic (``panic=-1``), and
QEMU turns the reboot into a shutdown (``-no-reboot``) and the shutdown into a
pause (``-action shutdown=pause``), which keeps the panicked memory for the dump.

A guest that panics, or whose QEMU exits, before its shell is ready (under TCG a
rare emulator race: ``Oops: int3`` in ``sched_clock_cpu``, then ``Kernel panic -
not syncing: Fatal exception in interrupt``) is seen at once and booted again,
once; the retry is printed on stderr (and is a pytest warning inside a test).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import pexpect

from .dumps import dig_holes, unflatten
from .initramfs import build_initramfs
from .kernels import FETCH_COMMAND, HarnessError, KernelPaths, kernel_paths
from .qmp import Qmp

__all__ = ["BootDied", "BootRetryWarning", "Guest", "RAW_SPLIT", "boot_panic", "ram_banks",
           "strip_timestamp"]

QEMU = "qemu-system-x86_64"
BASE_APPEND = "console=ttyS0 ignore_loglevel printk.time=1 panic=-1 log_buf_len=8M"


@dataclass(frozen=True)
class _Machine:
    """How QEMU boots a kernel of one architecture."""

    qemu: str
    package: str  # the Debian package with ``qemu``
    machine: List[str]  # machine and CPU (TCG)
    console: str  # the kernel console (``console.log``)
    #: QEMU arguments that give the guest its shell port (the chardev ``shell``)
    shell_device: List[str]
    shell_tty: str  # that port in the guest
    panic: List[str]  # how a panic stops the guest
    panic_status: str  # QMP ``query-status`` once it did
    append: str = ""  # kernel parameters this machine's guests need


_MACHINES = {
    "amd64": _Machine(
        qemu=QEMU, package="qemu-system-x86", machine=["-accel", "tcg", "-cpu", "max"],
        console="ttyS0", shell_device=["-serial", "chardev:shell"], shell_tty="ttyS1",
        panic=["-device", "pvpanic", "-action", "panic=pause"], panic_status="guest-panicked",
        # Under TCG a 7.x guest twice stopped for good right after "clocksource:
        # Switched to clocksource tsc" (~2 s after boot; once before its shell was
        # up, once after). The guest keeps the clocksource it booted with instead.
        append="tsc=unstable"),
    # pauth-impdef: QEMU's own pointer-authentication hash instead of QARMA,
    # which TCG computes far more slowly (the kernel signs every return).
    "arm64": _Machine(
        qemu="qemu-system-aarch64", package="qemu-system-arm",
        machine=["-M", "virt", "-accel", "tcg", "-cpu", "max,pauth-impdef=on"],
        console="ttyAMA0",
        shell_device=["-device", "virtio-serial-pci", "-device", "virtconsole,chardev=shell"],
        shell_tty="hvc0", panic=["-action", "shutdown=pause"], panic_status="shutdown"),
}
_TIMESTAMP = re.compile(r"^\[ *\d+\.\d+\] ")
_READY = "OOMDRGN-READY"
_PANIC = re.compile(r"Kernel panic - not syncing:[^\n]*")
_BOOT_POLL = 0.5  # seconds between looks at the console while the guest boots
#: a booting guest whose console says nothing for this long, before its ready
#: marker, has hung (a boot prints every few seconds, also under a loaded TCG host)
_BOOT_SILENCE = 90.0


class BootDied(HarnessError):
    """The guest panicked, or QEMU exited, before its shell was ready.

    :param reason: the console's ``Kernel panic - not syncing: ...`` line, or
        ``QEMU exited``
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class BootRetryWarning(UserWarning):
    """A guest died at boot and was booted again."""


def boot_panic(console: str) -> Optional[str]:
    """The first ``Kernel panic - not syncing: ...`` line of ``console``, if any."""
    m = _PANIC.search(console)
    return m.group(0).strip() if m else None


def _panic_printed(lines: List[str]) -> bool:
    """Whether console *lines* (timestamps stripped) hold a panic's own line."""
    return any(line.startswith("Kernel panic - not syncing") for line in lines)


def _announce(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
    # pytest shows a passing test's stderr to nobody; its warnings summary does.
    if "PYTEST_CURRENT_TEST" in os.environ:
        warnings.warn(msg, BootRetryWarning, stacklevel=3)


def strip_timestamp(line: str) -> str:
    """``line`` without its leading ``[   12.345678] `` printk timestamp."""
    return _TIMESTAMP.sub("", line, count=1)


def _numa_args(nodes: int, smp: int, memory_mb: int) -> List[str]:
    """QEMU arguments for *nodes* NUMA nodes (none for fewer than 2)."""
    if nodes < 2:
        return []
    if smp < nodes or memory_mb % nodes:
        raise HarnessError(f"{nodes} NUMA nodes need at least as many CPUs (smp={smp}) "
                           f"and memory divisible among them ({memory_mb} MB)")
    args = []
    for i in range(nodes):
        first, last = i * smp // nodes, (i + 1) * smp // nodes - 1
        args += ["-object", f"memory-backend-ram,id=numa{i},size={memory_mb // nodes}M",
                 "-numa", f"node,nodeid={i},cpus={first}-{last},memdev=numa{i}"]
    return args


#: a range of ``info mtree -f``: ``  0000000000100000-0000000007ffffff (prio 0, ram):
#: pc.ram @0000000000100000`` (the ``@`` offset into the region, when not 0)
_MTREE_RANGE = re.compile(r"^\s+([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, (\w+)\): (\S+)"
                          r"(?: @([0-9a-f]+))?")
#: the RAM regions of the machines the harness boots: ``pc.ram`` (x86 pc),
#: ``mach-virt.ram`` (arm virt), ``ram`` (others; QEMU's machine ``default_ram_id``)
#: and the harness's own NUMA backends ``numa<i>`` (:func:`_numa_args`). Other
#: ``ram`` ranges of the address space are device memory (``vga.vram``...).
_RAM_REGION = re.compile(r"(?:pc\.ram|mach-virt\.ram|ram|numa\d+)")
#: where :meth:`Guest.dump_raw` cuts a machine's only RAM bank in two: 100 MiB
#: + 0x5000 into it, rounded up to 64 KiB (0x6410000: a page boundary for 4, 16
#: and 64 KiB pages, but not of a 2 MiB block, a section or a power of two)
RAW_SPLIT = (100 * (1 << 20) + 0x5000 + 0xffff) & ~0xffff


def ram_banks(mtree: str) -> List[Tuple[int, int]]:
    """``(physical address, size)`` of each RAM bank in ``info mtree -f`` output.

    The flat view of the system address space (``AS "memory"``) lists the
    machine's RAM in pieces where devices sit on top of it (x86: VGA and the
    option ROMs at 0xa0000-0xfffff, over ``pc.ram``), and the second piece of
    a region mapped twice (x86 ``ram-below-4g`` and ``ram-above-4g`` are
    aliases of ``pc.ram``) with its offset (``@0000000008000000``). Pieces of
    one region at one displacement (address minus offset) are one bank.
    """
    views = re.split(r"^FlatView #\d+\n", mtree, flags=re.M)
    view = next((v for v in views if re.search(r'^ AS "memory",', v, re.M)), None)
    if view is None:
        raise HarnessError(f'no flat view of AS "memory" in info mtree -f:\n{mtree[:2000]}')
    spans: Dict[Tuple[str, int], Tuple[int, int]] = {}  # (region, displacement) -> [start, end)
    for line in view.splitlines():
        m = _MTREE_RANGE.match(line)
        if not m or m.group(3) != "ram" or not _RAM_REGION.fullmatch(m.group(4)):
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16) + 1
        key = (m.group(4), start - int(m.group(5) or "0", 16))
        old = spans.get(key, (start, end))
        spans[key] = (min(old[0], start), max(old[1], end))
    return sorted((start, end - start) for start, end in spans.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """One QEMU guest, booted when constructed; use as a context manager.

    :param kernel: a name from ``kernels.list`` (``oomdrgn/testing/data``) or its
        :class:`KernelPaths`.
    :param workdir: where ``console.log``, ``ttyS1.log``, sockets and dumps go;
        default a fresh ``/tmp/oomdrgn-*``, removed by :meth:`close` unless ``keep``.
        A directory given here is never removed.
    :param gdb: open a gdbstub on ``127.0.0.1:gdb_port``; implies ``nokaslr``
        unless ``nokaslr=False`` is given, so ``nm`` addresses hold.
    :param gdb_wait: start halted (``-S``) until a debugger continues; then
        call :meth:`wait_ready` yourself (a death at boot is then not retried).
    :param accel: ``"tcg"`` (default, or ``$OOMDRGN_ACCEL``) or ``"kvm"``
        (refused when ``/dev/kvm`` is not usable; arm64 kernels: TCG only).
    :param swap_mb: if > 0, ``/init`` sets up swap on ``/dev/zram0`` of that
        size (``oomdrgn.swap_mb=N`` on the kernel command line, needs the
        ``zram.ko`` that ``fetch-kernels.sh`` extracts); :meth:`wait_ready`
        checks ``/proc/swaps``.
    :param numa_nodes: if > 1, that many NUMA nodes (QEMU ``-numa``): the
        memory split evenly, node ``i`` with the ``i``-th share of the CPUs.
    :param ram_below_4g_mb: x86-64 only: at most this much RAM below 4 GiB
        (``-M pc,max-ram-below-4g=<N>M``), the rest at 0x100000000, so the
        guest has two RAM banks (:meth:`ram_banks`); default: QEMU's layout.
    """

    def __init__(self, kernel: Union[str, KernelPaths], *, workdir: Optional[str] = None,
                 keep: bool = False, smp: int = 2, memory_mb: int = 256, append: str = "",
                 nokaslr: Optional[bool] = None, gdb: bool = False, gdb_wait: bool = False,
                 accel: Optional[str] = None, boot_timeout: float = 180.0,
                 swap_mb: int = 0, numa_nodes: int = 0,
                 ram_below_4g_mb: Optional[int] = None) -> None:
        self.kernel = kernel_paths(kernel) if isinstance(kernel, str) else kernel
        self.machine = _MACHINES[self.kernel.arch]
        self.memory_mb = memory_mb
        machine_args: List[str] = []
        if ram_below_4g_mb is not None:
            if self.kernel.arch != "amd64":
                raise HarnessError(f"ram_below_4g_mb is for x86-64 guests, not {self.kernel.arch}")
            # The pc machine (QEMU's default x86 machine) maps at most this much
            # of its RAM below the 4 GiB PCI hole, the rest from 4 GiB up
            # (aliases ram-below-4g and ram-above-4g of pc.ram).
            machine_args = ["-M", f"pc,max-ram-below-4g={ram_below_4g_mb}M"]
        qemu = shutil.which(self.machine.qemu)
        if not qemu:
            raise HarnessError(f"{self.machine.qemu} not found: install {self.machine.package}")
        accel_args = self._accel_args(accel, self.kernel.arch)
        initrd = build_initramfs(self.kernel)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="oomdrgn-", dir="/tmp"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.console_path = self.workdir / "console.log"
        self.tty_log_path = self.workdir / "ttyS1.log"
        self.stderr_path = self.workdir / "qemu.stderr"
        self.qmp_path = self.workdir / "qmp.sock"
        self.qmp_path_for_drgn = self.workdir / "qmp-drgn.sock"
        self.gdb_port = _free_port() if gdb else None
        # A pexpect.spawn (untyped) from _start() on, None once closed.
        self._tty: Any = None
        self._qmp: Optional[Qmp] = None
        self._seq = 0
        self.banner = ""
        self.swap_mb = swap_mb
        #: cgroups declared to hold processes (see population.setup_cgroups)
        self.cgroups_occupied: Set[str] = set()
        if nokaslr is None:
            nokaslr = gdb
        base = BASE_APPEND.replace("console=ttyS0", f"console={self.machine.console}")
        if self.machine.shell_tty != "ttyS1":
            base += f" oomdrgn.tty={self.machine.shell_tty}"
        cmdline = " ".join(filter(None, [base, self.machine.append,
                                         "nokaslr" if nokaslr else "",
                                         f"oomdrgn.swap_mb={swap_mb}" if swap_mb > 0 else "",
                                         append]))
        # One socket per NUMA node: CPUs of one socket share a cache, and a
        # kernel warns when they sit on different nodes.
        smp_arg = f"{smp},sockets={numa_nodes}" if numa_nodes > 1 else str(smp)
        args = [qemu, *accel_args, *machine_args, "-smp", smp_arg, "-m", str(memory_mb),
                "-nographic", "-monitor", "none", "-no-reboot",
                "-kernel", str(self.kernel.boot_image or self.kernel.vmlinuz),
                "-initrd", str(initrd), "-append", cmdline,
                "-serial", f"file:{self.console_path}",
                "-chardev", "stdio,id=shell,signal=off", *self.machine.shell_device,
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-qmp", f"unix:{self.qmp_path_for_drgn},server=on,wait=off",
                "-device", "vmcoreinfo", *self.machine.panic, *_numa_args(numa_nodes, smp,
                                                                         memory_mb)]
        if gdb:
            args += ["-gdb", f"tcp:127.0.0.1:{self.gdb_port}"] + (["-S"] if gdb_wait else [])
        self.qemu_args = args
        try:
            if len(str(self.qmp_path_for_drgn)) > 100:
                raise HarnessError(f"workdir path too long for unix sockets: {self.workdir}")
            self._start(args)
            if not gdb_wait:
                self._boot(args, boot_timeout)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _accel_args(accel: Optional[str], arch: str = "amd64") -> List[str]:
        if arch != "amd64":
            # Another architecture is only emulated: $OOMDRGN_ACCEL (meant for
            # the amd64 guests) does not apply, an explicit accel is refused.
            if accel not in (None, "tcg"):
                raise HarnessError(f"accel={accel} asked for a {arch} kernel: only tcg runs it")
            return list(_MACHINES[arch].machine)
        accel = accel or os.environ.get("OOMDRGN_ACCEL") or "tcg"
        if accel == "tcg":
            return list(_MACHINES[arch].machine)
        if accel == "kvm":
            # Only on request: on some hosts /dev/kvm exists but guests die.
            if not os.access("/dev/kvm", os.R_OK | os.W_OK):
                raise HarnessError("accel=kvm requested but /dev/kvm is not usable")
            return ["-accel", "kvm", "-cpu", "host"]
        raise HarnessError(f"unknown accel {accel!r} (tcg or kvm)")

    def _start(self, args: List[str]) -> None:
        shell = f"exec {shlex.join(args)} 2>{shlex.quote(str(self.stderr_path))}"
        self._tty = pexpect.spawn("/bin/sh", ["-c", shell], encoding="utf-8",
                                  codec_errors="replace", echo=False)
        self._tty.logfile_read = open(self.tty_log_path, "w")
        deadline = time.monotonic() + 30
        # The socket file appears at bind(), a moment before QEMU listens on
        # it (seen under load): retry "connection refused" until the deadline.
        while True:
            if self.qmp_path.exists():
                try:
                    self._qmp = Qmp(str(self.qmp_path))
                    return
                except Exception as e:
                    err = e
            else:
                err = None
            if not self._tty.isalive() or time.monotonic() > deadline:
                raise self._error(f"QEMU did not open its QMP socket ({err!r})")
            time.sleep(0.05)

    def _boot(self, args: List[str], timeout: float) -> None:
        """:meth:`wait_ready`; a guest that died at boot is started again, once."""
        try:
            self.wait_ready(timeout)
            return
        except BootDied as e:
            first = e.reason
        _announce(f"oomdrgn.harness: guest {self.kernel.name} died at boot ({first}), "
                  "booting it again once")
        self._stop_qemu()
        for path in (self.console_path, self.tty_log_path, self.stderr_path):
            if path.exists():  # kept beside the second boot's: boot1-console.log...
                path.rename(path.with_name(f"boot1-{path.name}"))
        self._start(args)
        try:
            self.wait_ready(timeout)
        except BootDied as e:
            raise BootDied(self._report(f"the guest died at boot twice: {first}; then "
                                        f"{e.reason}"), e.reason) from None

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait for ``/init``'s ready marker on ttyS1 (sets :attr:`banner`).

        :raises BootDied: as soon as the console shows a kernel panic or QEMU
            exits, before the marker.
        """
        what = "the guest did not boot to its shell"
        deadline = time.monotonic() + timeout
        heard, last_len = time.monotonic(), -1
        while True:
            left = deadline - time.monotonic()
            try:
                self._tty.expect(_READY + r"[^\r\n]*\r*\n",
                                 timeout=max(0.0, min(_BOOT_POLL, left)))
                break
            except pexpect.EOF:
                reason = "QEMU exited"
            except pexpect.TIMEOUT:
                console = self.console_text()
                reason = boot_panic(console) or ""
                if len(console) != last_len:
                    heard, last_len = time.monotonic(), len(console)
                elif not reason and time.monotonic() - heard > _BOOT_SILENCE:
                    # Seen under TCG on a loaded host: 7.x stopped printing right
                    # after "clocksource: Switched to clocksource tsc" and never
                    # reached its init. A hung boot is retried as a dead one.
                    reason = f"hung: the console silent for {_BOOT_SILENCE:g}s"
                if not reason and left <= 0:
                    raise self._error(f"{what} (timeout {timeout:g}s)") from None
            if reason:
                raise BootDied(self._report(f"{what}: {reason}"), reason) from None
        self.banner = (self._tty.after or "").strip()
        # The banner comes from the shell's own tty, so input is not lost; one
        # retry still covers a slow first prompt under TCG.
        for attempt in (1, 2):
            try:
                self.run("PS1='# '", timeout=30)
                break
            except HarnessError:
                if attempt == 2:
                    raise
        if self.swap_mb > 0:
            swaps = self.run("cat /proc/swaps")
            if "/dev/zram0" not in swaps:
                raise self._error(f"no zram swap ({self.swap_mb} MB asked):\n{swaps}"
                                  f"\n(re-run {FETCH_COMMAND} {self.kernel.name} for zram.ko?)")

    # -- the ttyS1 shell ---------------------------------------------------------

    def _expect(self, pattern: str, timeout: float, what: str) -> None:
        try:
            self._tty.expect(pattern, timeout=timeout)
        except pexpect.TIMEOUT:
            raise self._error(f"{what} (timeout {timeout:g}s)") from None
        except pexpect.EOF:
            raise self._error(f"{what}: QEMU exited") from None

    def run(self, cmd: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run ``cmd`` in the guest shell; return its output (``\\r`` removed).

        ``cmd`` must not read stdin. A trailing ``&`` backgrounds it as usual.
        :raises HarnessError: on timeout, or on a non-zero status if ``check``.
        """
        self._seq += 1
        tag = f"OOMDRGN{self._seq}x"
        # The quotes keep the echoed command line from matching the markers.
        self._tty.sendline(f"echo {tag}''B; eval {shlex.quote(cmd)}; echo {tag}''E$?")
        # The host pty adds its own \r to the guest's \r\n.
        self._expect(tag + r"B\r*\n", timeout, f"no start marker for {cmd!r}")
        self._expect(tag + r"E(\d+)\r*\n", timeout, f"{cmd!r} did not finish")
        out = self._tty.before.replace("\r", "")
        status = int(self._tty.match.group(1))
        if check and status:
            raise self._error(f"{cmd!r} exited with {status}:\n{out}")
        return out

    def wait_tty(self, pattern: str, timeout: float = 60.0) -> str:
        """Wait until the ttyS1 output matches regex ``pattern`` (e.g. what a
        background job prints after :meth:`run` returned); return the text up
        to and including the match (``\r`` removed)."""
        self._expect(pattern, timeout, f"nothing matched {pattern!r} on ttyS1")
        return (self._tty.before + self._tty.after).replace("\r", "")

    def start(self, cmd: str, log: str = "/dev/null") -> None:
        """Start ``cmd`` in the background, its output going to guest file ``log``."""
        self.run(f"{cmd} >{shlex.quote(log)} 2>&1 &")

    def interact(self) -> None:
        """Hand the ttyS1 shell to the user's terminal until Ctrl-]."""
        # interact() logs bytes, which a text-mode logfile refuses.
        log, self._tty.logfile_read = self._tty.logfile_read, None
        try:
            self._tty.interact()
        finally:
            self._tty.logfile_read = log

    # -- QMP --------------------------------------------------------------------

    def qmp(self, cmd: str, args: Optional[dict] = None, timeout: float = 30.0):
        """Run a QMP command on the harness's own socket."""
        try:
            if self._qmp is None:
                raise RuntimeError("QMP connection closed")
            return self._qmp.execute(cmd, args, timeout)
        except Exception as e:
            raise self._error(f"QMP {cmd} failed: {e!r}") from e

    def status(self) -> str:
        """QMP ``query-status``: ``running``, ``paused``, ``guest-panicked``, ``debug``..."""
        return self.qmp("query-status")["status"]

    def wait_panicked(self, timeout: float = 300.0) -> None:
        """Wait until the guest has stopped at a kernel panic (pvpanic on
        amd64; on arm64 the panic's reboot, paused by QEMU, checked against
        the console's ``Kernel panic`` line)."""
        self.wait_status(self.machine.panic_status, timeout)
        if self.machine.panic_status != "guest-panicked":
            if not _panic_printed(self.kernel_lines()):
                raise self._error("the guest stopped (shut down), but printed no kernel panic")

    def panic_lines(self, timeout: float = 60.0) -> List[str]:
        """:meth:`kernel_lines` once the panic is on the console: call it after
        the dumps. pvpanic stops the guest in ``panic()``'s notifiers, and
        ``console_flush_on_panic()`` comes after them: a console printed from
        a thread (PREEMPT_RT's legacy consoles) may not show the panic's lines
        yet. The guest then goes on to the end of ``panic()``, whose reboot
        (``panic=-1``, ``-no-reboot``) stops it again."""
        lines = self.kernel_lines()
        if self.machine.panic_status != "guest-panicked" or _panic_printed(lines):
            return lines
        self.qmp("set-action", {"shutdown": "pause"})
        self.cont()
        self.wait_status("shutdown", timeout)
        lines = self.kernel_lines()
        if not _panic_printed(lines):
            raise self._error("the guest stopped at a panic, but printed no kernel panic")
        return lines

    def wait_status(self, status: str, timeout: float = 300.0) -> None:
        """Poll :meth:`status` until it is ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.status()
            if now == status:
                return
            if time.monotonic() > deadline:
                raise self._error(f"status still {now!r} after {timeout:g}s, wanted {status!r}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Pause the guest's CPUs."""
        self.qmp("stop")

    def cont(self) -> None:
        """Resume the guest's CPUs."""
        self.qmp("cont")

    def dump(self, path: Union[str, Path], fmt: str = "elf", timeout: float = 300.0,
             flat: bool = False) -> Path:
        """Write a QMP ``dump-guest-memory`` of format ``fmt`` to ``path``, wait for it.

        ``fmt`` is ``elf`` or ``kdump-zlib`` (or QEMU's other kdump-* formats);
        kdump output is unflattened unless ``flat``, so it reads like makedumpfile's.
        ``raw``: :meth:`dump_raw` (files ``path.0``, ``path.1``...); returns the first.
        """
        if fmt == "raw":
            return self.dump_raw(path, timeout)[0][0]
        path = Path(path).resolve()
        self.qmp("dump-guest-memory", {"paging": False, "protocol": f"file:{path}",
                                       "format": fmt, "detach": True})
        deadline = time.monotonic() + timeout
        while True:
            state = self.qmp("query-dump")["status"]
            if state == "completed":
                if fmt.startswith("kdump") and not flat:
                    unflatten(path)
                return dig_holes(path)
            if state == "failed" or time.monotonic() > deadline:
                raise self._error(f"dump to {path} {state}: {self._dump_error(path)}")
            time.sleep(0.1)

    def _dump_error(self, path: Path) -> str:
        """QEMU's reason for a failed dump (its ``DUMP_COMPLETED`` event), and
        the space left where it wrote."""
        try:
            done = self._qmp.events("DUMP_COMPLETED") if self._qmp else []
            why = "; ".join(str(e.get("data", {}).get("error", "no error given")) for e in done)
        except Exception as e:  # the reason is a courtesy: never hide the failure
            why = f"no event ({e!r})"
        free = shutil.disk_usage(path.parent).free >> 20
        return f"{why or 'no DUMP_COMPLETED event'} ({free} MiB free in {path.parent})"

    def ram_banks(self) -> List[Tuple[int, int]]:
        """``(physical address, size)`` of each RAM bank, as QEMU maps it
        (``info mtree -f``, see :func:`ram_banks`), checked to add up to the
        guest's memory size."""
        mtree = self.qmp("human-monitor-command", {"command-line": "info mtree -f"})
        banks = ram_banks(mtree)
        if sum(size for _, size in banks) != self.memory_mb << 20:
            raise self._error(f"RAM banks {[(hex(a), hex(n)) for a, n in banks]} do not add "
                              f"up to the guest's {self.memory_mb} MB")
        return banks

    def pmemsave(self, path: Union[str, Path], paddr: int, size: int,
                 timeout: float = 60.0) -> Path:
        """Write ``size`` bytes of guest physical memory from ``paddr`` to
        ``path``, bare (QMP ``pmemsave``: it returns once the file is written;
        it reads through the system address space, so a range that a device
        covers reads as that device)."""
        path = Path(path).resolve()
        self.qmp("pmemsave", {"val": paddr, "size": size, "filename": str(path)}, timeout)
        return path

    def dump_raw(self, path: Union[str, Path], timeout: float = 300.0,
                 split: bool = True) -> List[Tuple[Path, int]]:
        """A raw image of each RAM bank (what a JTAG probe's ``Data.SAVE.Binary``
        writes: its bytes, no header): files ``path.0``, ``path.1``... in
        address order. Stop the guest first.

        :param split: a machine with one bank (arm64 ``virt``, x86 ``pc`` with
            all RAM below 4 GiB) has it written as two, cut :data:`RAW_SPLIT`
            into it, so a reader's reassembly of banks is exercised.
        :returns: ``(file, physical address)`` of each bank.
        """
        banks = self.ram_banks()
        if split and len(banks) == 1 and banks[0][1] > RAW_SPLIT:
            (start, size), = banks
            banks = [(start, RAW_SPLIT), (start + RAW_SPLIT, size - RAW_SPLIT)]
        base = Path(path).resolve()
        return [(dig_holes(self.pmemsave(f"{base}.{i}", start, size, timeout)), start)
                for i, (start, size) in enumerate(banks)]

    def kallsyms(self, name: str) -> int:
        """The runtime address of kernel symbol ``name``, read from the guest's
        ``/proc/kallsyms`` (the shell is root: real addresses unless
        ``kptr_restrict`` is 2); with KASLR it differs from the vmlinux's."""
        out = self.run(f"grep ' {name}$' /proc/kallsyms")
        addresses = {int(line.split()[0], 16) for line in out.splitlines() if line.strip()}
        if len(addresses) != 1 or 0 in addresses:
            raise self._error(f"/proc/kallsyms gives no single address for {name}:\n{out}")
        return addresses.pop()

    # -- the kernel console -------------------------------------------------------

    def console_text(self) -> str:
        """Everything the kernel printed on ttyS0 so far."""
        try:
            return self.console_path.read_text(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def kernel_lines(self) -> List[str]:
        """:meth:`console_text` as lines, printk timestamps stripped."""
        return [strip_timestamp(line) for line in self.console_text().splitlines()]

    def wait_console(self, pattern: str, timeout: float = 120.0) -> re.Match:
        """Wait until a console line (timestamp stripped) matches regex ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.kernel_lines():
                m = regex.search(line)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise self._error(f"no console line matched {pattern!r} in {timeout:g}s")
            time.sleep(0.2)

    # -- teardown -----------------------------------------------------------------

    def _error(self, msg: str) -> HarnessError:
        return HarnessError(self._report(msg))

    def _report(self, msg: str) -> str:
        """``msg`` with the tails of the console, the shell port and QEMU's stderr."""
        tail = "\n".join(self.console_text().splitlines()[-40:])
        parts = [f"{msg} [kernel {self.kernel.name}, workdir {self.workdir}]",
                 f"--- console.log tail ---\n{tail}"]
        if self._tty is not None:
            parts.append(f"--- ttyS1 tail ---\n{str(self._tty.before)[-1500:]}")
        try:
            parts.append(f"--- qemu stderr ---\n{self.stderr_path.read_text()[-2000:]}")
        except OSError:
            pass
        return "\n".join(parts)

    def _stop_qemu(self) -> None:
        """Kill QEMU and remove its sockets."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._tty is not None:
            self._tty.terminate(force=True)
            self._tty.close(force=True)
            if self._tty.logfile_read:
                self._tty.logfile_read.close()
            self._tty = None
        for sock in (self.qmp_path, self.qmp_path_for_drgn):
            sock.unlink(missing_ok=True)

    def close(self) -> None:
        """Kill QEMU, remove the sockets, and the workdir unless kept or given."""
        self._stop_qemu()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
