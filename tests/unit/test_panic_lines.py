"""``Guest.panic_lines()``: a console that pvpanic stopped before it printed the
panic (PREEMPT_RT prints from a thread; ``console_flush_on_panic()`` comes after
the panic notifiers) is let run to ``panic()``'s reboot; a console that has it
is left as it is. QMP is a stand-in that plays the guest."""

import types
from pathlib import Path
from typing import List, Optional

import pytest

from oomdrgn.testing.harness import HarnessError
from oomdrgn.testing.harness.qemu import _MACHINES, Guest

REPORT = "[   40.100000] Mem-Info:\n"
PANIC = "[   40.200000] Kernel panic - not syncing: System is deadlocked on memory\n"


class _Guest(Guest):
    """A Guest with no QEMU: *flushed* is what its console prints once it goes on."""

    def __init__(self, workdir: Path, console: str, flushed: str, arch: str = "amd64") -> None:
        self.console_path = workdir / "console.log"
        self.console_path.write_text(console)
        self.stderr_path = workdir / "qemu.stderr"
        self.kernel = types.SimpleNamespace(name="fake")
        self.workdir, self._tty, self.machine = workdir, None, _MACHINES[arch]
        self.flushed, self.state = flushed, "guest-panicked"
        self.calls: List[str] = []

    def qmp(self, cmd: str, args: Optional[dict] = None, timeout: float = 30.0):
        self.calls.append(cmd if args is None else f"{cmd} {args}")
        if cmd == "cont":
            with self.console_path.open("a") as f:
                f.write(self.flushed)
            self.state = "shutdown" if self.calls[-2] == "set-action {'shutdown': 'pause'}" \
                else "running"
        if cmd == "query-status":
            return {"status": self.state}
        return {}


def test_a_printed_panic_is_left_as_it_is(tmp_path):
    g = _Guest(tmp_path, REPORT + PANIC, flushed="")
    assert g.panic_lines() == ["Mem-Info:", PANIC[15:-1]]
    assert g.calls == []


def test_an_unflushed_console_runs_to_the_reboot_paused(tmp_path):
    g = _Guest(tmp_path, REPORT, flushed=PANIC + "[   40.300000] ---[ end Kernel panic ]---\n")
    assert g.panic_lines() == ["Mem-Info:", PANIC[15:-1], "---[ end Kernel panic ]---"]
    assert g.calls == ["set-action {'shutdown': 'pause'}", "cont", "query-status"]


def test_no_panic_line_even_then_is_an_error(tmp_path):
    g = _Guest(tmp_path, REPORT, flushed="")
    with pytest.raises(HarnessError, match="printed no kernel panic"):
        g.panic_lines()


def test_arm64_stops_after_the_flush_already(tmp_path):
    # no pvpanic: the guest stopped at the reboot, the console flushed before it
    g = _Guest(tmp_path, REPORT, flushed="", arch="arm64")
    assert g.panic_lines() == ["Mem-Info:"]
    assert g.calls == []
