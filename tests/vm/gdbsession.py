"""A real interactive ``gdb`` with oomdrgn's plugin, driven through pexpect."""

import os
import shutil
from pathlib import Path
from typing import Optional, Union

import pexpect

from oomdrgn.testing.harness import HarnessError

PLUGIN = Path(__file__).resolve().parents[2] / "plugin" / "oomdrgn-gdb.py"
PROMPT = r"\(gdb\) "


class GdbSession:
    """``gdb -nx -q`` with ``plugin/oomdrgn-gdb.py`` sourced; no symbol file.

    Every wait is bounded; :meth:`close` (also on ``with`` exit) stops a running
    guest, detaches and kills gdb whatever state it is in.
    """

    def __init__(self, log_path: Optional[Union[str, Path]] = None, timeout: float = 60.0,
                 program: str = "gdb", architecture: Optional[str] = None) -> None:
        """:param program: ``gdb``, or ``gdb-multiarch`` for another architecture's
        guest, then named by *architecture* (``set architecture``)."""
        gdb = shutil.which(program)
        if not gdb:
            raise HarnessError(f"{program} not found: install it (apt-get install {program})")
        self._log = open(log_path, "w") if log_path else None
        self._gdb = pexpect.spawn(gdb, ["-nx", "-q"], env=dict(os.environ, TERM="dumb"),
                                  encoding="utf-8", codec_errors="replace", echo=False,
                                  dimensions=(50, 500))
        self._gdb.logfile_read = self._log
        self.attached = False
        self.running = False
        try:
            self._expect(PROMPT, timeout, "gdb did not start")
            for setting in ("style enabled off", "pagination off", "confirm off", "width 0",
                            "height 0"):
                self.cmd(f"set {setting}")
            if architecture:
                self.cmd(f"set architecture {architecture}")
            out = self.cmd(f"source {PLUGIN}")
            if out.strip():
                raise HarnessError(f"sourcing {PLUGIN} printed:\n{out}")
        except BaseException:
            self.close()
            raise

    def _expect(self, pattern, timeout: float, what: str) -> int:
        try:
            return self._gdb.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            tail = str(self._gdb.before)[-3000:]
            raise HarnessError(f"{what} ({type(e).__name__}):\n{tail}") from None

    def cmd(self, line: str, timeout: float = 120.0) -> str:
        """Run one gdb command; return what it printed (``\\n`` line ends)."""
        self._gdb.sendline(line)
        self._expect(PROMPT, timeout, f"gdb: {line!r} did not return")
        return self._gdb.before.replace("\r\n", "\n")

    def connect(self, port: int, host: str = "127.0.0.1") -> str:
        out = self.cmd(f"target remote {host}:{port}")
        if "Remote debugging using" not in out:
            raise HarnessError(f"gdb could not connect to {host}:{port}:\n{out}")
        self.attached = True
        return out

    def resume(self) -> None:
        """``continue`` and return at once; then :meth:`wait_stop` or :meth:`interrupt`."""
        self._gdb.sendline("continue")
        self._expect(r"Continuing\.", 30.0, "gdb did not continue")
        self.running = True

    def wait_stop(self, timeout: float) -> str:
        """Wait for the prompt after the guest stopped (breakpoint or interrupt)."""
        self._expect(PROMPT, timeout, "the guest did not stop")
        self.running = False
        return self._gdb.before.replace("\r\n", "\n")

    def interrupt(self, timeout: float = 30.0) -> str:
        """Ctrl-C: stop the running guest wherever it is."""
        self._gdb.sendintr()
        return self.wait_stop(timeout)

    def detach(self) -> str:
        out = self.cmd("detach")
        self.attached = False
        return out

    def alive(self) -> bool:
        return self._gdb.isalive()

    def close(self) -> None:
        try:
            if self.running and self._gdb.isalive():
                self.interrupt(10.0)
            if self.attached and self._gdb.isalive():
                self.detach()
            if self._gdb.isalive():
                self._gdb.sendline("quit")
                self._gdb.expect(pexpect.EOF, timeout=10)
        except (HarnessError, pexpect.ExceptionPexpect, OSError):
            pass
        self._gdb.terminate(force=True)
        self._gdb.close(force=True)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> "GdbSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
