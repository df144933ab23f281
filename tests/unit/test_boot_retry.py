"""A guest that dies at boot is seen at once and booted again once, visibly.

No real flake needed: a fake ``qemu-system-x86_64`` (first on ``PATH``) plays
one boot per run from ``$FAKE_QEMU_PLAN``: ``panic`` writes the TCG race's
console lines and stays paused, as pvpanic leaves QEMU; ``exit`` quits;
``hang`` prints nothing; ``ready`` prints the ready marker and becomes a shell.
"""

import os
import stat
import sys
import tempfile
import time
from pathlib import Path

import pytest

from oomdrgn.testing.harness import HarnessError, KernelPaths, qemu
from oomdrgn.testing.harness.qemu import BootDied, BootRetryWarning, Guest, boot_panic

PANIC = "Kernel panic - not syncing: Fatal exception in interrupt"
CONSOLE = (f"[    1.302110] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n"
           f"[    1.302110] RIP: 0010:sched_clock_cpu+0x9/0x1b0\n"
           f"[    1.311003] {PANIC}\n")

FAKE_QEMU = f"""\
#!{sys.executable}
import os, subprocess, sys, time
args = sys.argv[1:]
opt = lambda name: [args[i + 1] for i, a in enumerate(args) if a == name]
console, = [s.removeprefix("file:") for s in opt("-serial") if s.startswith("file:")]
for q in opt("-qmp"):
    open(q.removeprefix("unix:").split(",")[0], "w").close()
runs = os.environ["FAKE_QEMU_RUNS"]
n = len(open(runs).read()) if os.path.exists(runs) else 0
open(runs, "a").write("x")
plan = os.environ["FAKE_QEMU_PLAN"].split(",")[n]
with open(console, "w") as f:
    f.write("[    0.000000] Linux version 6.99.0-fake\\n")
    if plan == "panic":
        f.write({CONSOLE!r})
if plan == "exit":
    sys.exit(1)
if plan == "ready":
    print("OOMDRGN-READY fake 6.99.0", flush=True)
    os.execv("/bin/sh", ["sh"])
time.sleep(600)
"""


class _FakeQmp:
    def __init__(self, path: str) -> None:
        assert os.path.exists(path)

    def close(self) -> None:
        pass


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Start guests of a fake kernel on the fake QEMU; returns ``boot(plan, **kw)``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "qemu-system-x86_64"
    exe.write_text(FAKE_QEMU)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("OOMDRGN_ACCEL", raising=False)
    monkeypatch.setattr(qemu, "Qmp", _FakeQmp)
    monkeypatch.setattr(qemu, "build_initramfs", lambda kernel: tmp_path / "initrd")
    (tmp_path / "vmlinuz").write_bytes(b"")
    kernel = KernelPaths(name="fake", release="6.99.0-fake", vmlinuz=tmp_path / "vmlinuz",
                         vmlinux=tmp_path / "vmlinux", modules_dir=tmp_path,
                         config=tmp_path / "config", boot_image=tmp_path / "vmlinuz")
    workdir = Path(tempfile.mkdtemp(prefix="oomdrgn-fake-", dir="/tmp"))  # short socket paths
    runs = tmp_path / "runs"

    def boot(plan: str, boot_timeout: float = 60.0) -> Guest:
        monkeypatch.setenv("FAKE_QEMU_PLAN", plan)
        monkeypatch.setenv("FAKE_QEMU_RUNS", str(runs))
        return Guest(kernel, workdir=str(workdir), boot_timeout=boot_timeout)

    boot.starts = lambda: len(runs.read_text()) if runs.exists() else 0
    boot.workdir = workdir
    yield boot
    for p in workdir.iterdir():
        p.unlink()
    workdir.rmdir()


def test_boot_panic_finds_the_panic_line():
    assert boot_panic("[    0.1] Linux version 7.2\n" + CONSOLE) == PANIC
    assert boot_panic("[    0.1] Linux version 7.2\n[    0.9] Oops: int3\n") is None


def test_panic_at_boot_is_seen_at_once_and_booted_again(fake, capfd):
    started = time.monotonic()
    with pytest.warns(BootRetryWarning, match="died at boot"):
        guest = fake("panic,ready")
    seconds = time.monotonic() - started
    try:
        assert guest.banner == "OOMDRGN-READY fake 6.99.0"
        assert guest.run("echo $((6 * 7))").strip() == "42"
    finally:
        guest.close()
    assert fake.starts() == 2
    assert seconds < 15, f"took {seconds:.1f}s: the panic was not seen at once"
    assert (f"oomdrgn.harness: guest fake died at boot ({PANIC}), booting it again once"
            in capfd.readouterr().err)
    # The first boot's console is kept beside the second's.
    assert PANIC in (fake.workdir / "boot1-console.log").read_text()
    assert PANIC not in (fake.workdir / "console.log").read_text()


def test_qemu_exit_at_boot_is_booted_again(fake):
    with pytest.warns(BootRetryWarning, match=r"\(QEMU exited\)"):
        fake("exit,ready").close()
    assert fake.starts() == 2


def test_only_one_retry(fake):
    started = time.monotonic()
    with pytest.warns(BootRetryWarning), pytest.raises(BootDied) as e:
        fake("panic,panic,ready")
    assert fake.starts() == 2
    assert time.monotonic() - started < 15
    assert e.value.reason == PANIC
    assert str(e.value).startswith(f"the guest died at boot twice: {PANIC}; then {PANIC}")


def test_a_boot_that_hangs_times_out_and_is_not_retried(fake):
    with pytest.raises(HarnessError) as e:
        fake("hang,ready", boot_timeout=2)
    assert not isinstance(e.value, BootDied)
    assert "did not boot to its shell (timeout 2s)" in str(e.value)
    assert fake.starts() == 1


def test_a_boot_whose_console_falls_silent_is_booted_again(fake, monkeypatch):
    # 7.x under a loaded TCG host once stopped printing after "clocksource:
    # Switched to clocksource tsc" and never came up: silence is a hung boot.
    monkeypatch.setattr(qemu, "_BOOT_SILENCE", 1.0)
    started = time.monotonic()
    with pytest.warns(BootRetryWarning, match="hung: the console silent for 1s"):
        guest = fake("hang,ready", boot_timeout=30)
    guest.close()
    assert fake.starts() == 2 and time.monotonic() - started < 15
