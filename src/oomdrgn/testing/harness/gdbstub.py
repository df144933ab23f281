"""Drive a real ``gdb`` against a guest's gdbstub, to stop it at a kernel function.

GDB loads no symbol file: breakpoints go on raw addresses read with ``nm``
from the vmlinux, which is valid because the guest boots with ``nokaslr``
(with KASLR, moved by the offset the guest's ``/proc/kallsyms`` shows).
An aarch64 vmlinux is read with ``aarch64-linux-gnu-nm`` and its guest driven
by ``gdb-multiarch`` (the host's ``nm`` and ``gdb`` know only x86-64).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import pexpect

from ...core.elffile import elf_machine
from .kernels import HarnessError

__all__ = ["GdbStub", "symbol_address"]

_PROMPT = r"\(gdb\) "
_nm_cache: Dict[Tuple[str, float], Dict[str, int]] = {}
# gdb's name for each architecture (``set architecture``), by ELF machine name.
_GDB_ARCH = {"x86_64": "i386:x86-64", "aarch64": "aarch64"}


def _tool(name: str, machine: str, package: str) -> str:
    """The host's ``name`` if it reads ``machine`` binaries, else its cross or
    multiarch variant."""
    if machine == platform.machine():
        candidates = [name]
    else:
        candidates = [f"{machine}-linux-gnu-{name}", f"{name}-multiarch"]
    for cand in candidates:
        if shutil.which(cand):
            return cand
    raise HarnessError(f"no {' or '.join(candidates)} for {machine}: install {package}")


def symbol_address(vmlinux: Union[str, Path], name: str) -> int:
    """The address of text symbol ``name`` in ``vmlinux`` (as ``nm`` lists it).

    :raises HarnessError: if ``name`` is not a text symbol, e.g. it was inlined.
    """
    vmlinux = str(vmlinux)
    key = (vmlinux, os.stat(vmlinux).st_mtime)
    if key not in _nm_cache:
        nm = _tool("nm", elf_machine(vmlinux) or platform.machine(), "binutils-aarch64-linux-gnu")
        out = subprocess.run([nm, "--defined-only", vmlinux], check=True,
                             capture_output=True, text=True).stdout
        _nm_cache[key] = {f[2]: int(f[0], 16) for f in map(str.split, out.splitlines())
                          if len(f) == 3 and f[1] in "tT"}
    try:
        return _nm_cache[key][name]
    except KeyError:
        raise HarnessError(f"{name} is not a text symbol of {vmlinux} (inlined?)") from None


class GdbStub:
    """An interactive ``gdb`` connected to ``host:port``; the guest is stopped
    once connected (use :meth:`cont`).

    :param machine: the guest's architecture, ``x86_64`` or ``aarch64``
        (``gdb-multiarch`` for a foreign one).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60.0,
                 log_path: Optional[Union[str, Path]] = None,
                 machine: str = "x86_64") -> None:
        if machine not in _GDB_ARCH:
            raise HarnessError(f"no gdb architecture known for {machine!r}")
        gdb = "gdb" if machine == platform.machine() else _tool("gdb", machine, "gdb-multiarch")
        env = dict(os.environ, TERM="dumb")
        self._gdb = pexpect.spawn(gdb, ["-nx", "-q"], env=env, encoding="utf-8",
                                  codec_errors="replace", echo=False)
        self._log = open(log_path, "w") if log_path else None
        self._gdb.logfile_read = self._log
        self.attached = False
        self.running = False
        try:
            self._expect(_PROMPT, timeout, "gdb did not start")
            for setting in ("style enabled off", "pagination off", "confirm off",
                            "width 0", "height 0", f"architecture {_GDB_ARCH[machine]}"):
                self.cmd(f"set {setting}")
            out = self.cmd(f"target remote {host}:{port}", timeout)
            if "Remote debugging using" not in out:
                raise HarnessError(f"gdb could not connect to {host}:{port}:\n{out}")
            self.attached = True
        except BaseException:
            self.close()
            raise

    def _expect(self, pattern: str, timeout: float, what: str) -> None:
        try:
            self._gdb.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            tail = str(self._gdb.before)[-1500:]
            raise HarnessError(f"{what} ({type(e).__name__}):\n{tail}") from None

    def cmd(self, line: str, timeout: float = 30.0) -> str:
        """Run a gdb command; return its output."""
        self._gdb.sendline(line)
        self._expect(_PROMPT, timeout, f"gdb: {line!r} did not return")
        return self._gdb.before.replace("\r", "")

    def hbreak(self, address: int) -> None:
        """Set a hardware breakpoint at ``address``."""
        out = self.cmd(f"hbreak *{address:#x}")
        if "reakpoint" not in out:
            raise HarnessError(f"gdb refused hbreak *{address:#x}:\n{out}")

    def cont(self) -> None:
        """Resume the guest and return at once; see :meth:`wait_stop`."""
        self._gdb.sendline("continue")
        self._expect(r"Continuing\.", 30.0, "gdb did not continue")
        self.running = True

    def wait_stop(self, timeout: float = 300.0) -> str:
        """Wait until the guest stops at a breakpoint; return gdb's stop report."""
        self._expect(_PROMPT, timeout, "the guest did not hit the breakpoint")
        self.running = False
        out = self._gdb.before.replace("\r", "")
        if "Breakpoint" not in out:
            raise HarnessError(f"the guest stopped, but not at a breakpoint:\n{out}")
        return out.strip()

    def detach(self) -> None:
        """Remove breakpoints and let the guest run on."""
        if self.attached:
            self.cmd("detach")
            self.attached = False

    def close(self) -> None:
        """Detach if still attached (best effort), quit gdb."""
        try:
            if self.running and self._gdb.isalive():
                self._gdb.sendintr()
                self._expect(_PROMPT, 10.0, "gdb did not stop the guest")
                self.running = False
            if self.attached and self._gdb.isalive():
                self.detach()
        except HarnessError:
            pass
        self._gdb.terminate(force=True)
        self._gdb.close(force=True)
        if self._log:
            self._log.close()

    def __enter__(self) -> "GdbStub":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
