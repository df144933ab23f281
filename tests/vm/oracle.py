"""Helpers for the real-kernel tests."""

import subprocess
import sys

FORMATS = ("elf", "kdump-zlib")  # every moment is dumped in both of QEMU's formats


def run_oomdrgn(*args, check_status=0):
    """The installed CLI; returns the CompletedProcess (stdout, stderr text)."""
    res = subprocess.run([sys.executable, "-m", "oomdrgn.cli", *map(str, args)],
                         capture_output=True, text=True, timeout=300)
    if check_status is not None:
        assert res.returncode == check_status, res.stderr
    return res
