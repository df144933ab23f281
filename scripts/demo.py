#!/usr/bin/env python3
"""The demo: a real Debian kernel in QEMU runs out of memory; oomdrgn reads the
vmcore of that moment and prints the same lines the kernel printed.

Usage: scripts/demo.py [KERNEL...]   (default: 6.12; names from kernels.list)
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from oomdrgn.testing.harness import KERNEL_NAMES, kernel_paths, kill_moment  # noqa: E402


def _oomdrgn(*args) -> str:
    """Run ``oomdrgn ARGS``: print its command line, then its output; return its stdout."""
    cmd = [sys.executable, "-m", "oomdrgn.cli", *map(str, args)]
    print("$ oomdrgn " + " ".join(map(str, args)), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(res.stderr)
    sys.stderr.flush()
    print(res.stdout, end="", flush=True)
    if res.returncode:
        print(f"(exit status {res.returncode})", flush=True)
    return res.stdout


def demo(name: str) -> bool:
    kernel = kernel_paths(name)
    print(f"=== {name}: {kernel.release} under QEMU: population + memory hog, "
          "stopped at __oom_kill_process ===")
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-demo-{name}-", dir="/tmp")
    try:
        art = kill_moment(name, workdir, fmt="kdump-zlib")
        kernel_text = "".join(l + "\n" for l in art.table_lines) + art.kill_line + "\n"
        print(f"\n--- the kernel printed (console, timestamps stripped), {art.seconds}s ---")
        print(kernel_text, end="")
        print("\n--- oomdrgn, from the vmcore of that moment ---")
        ours = _oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "tasks")
        ours += _oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "-q", "kill", art.victim_pid)
        same = ours == kernel_text
        print(f"\n{name}: {'IDENTICAL, byte for byte' if same else 'DIFFERENT'} "
              f"({len(art.table_lines) + 1} lines)\n")
        return same
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    names = sys.argv[1:] or ["6.12"]
    bad = [n for n in names if n not in KERNEL_NAMES]
    if bad:
        print(f"unknown kernel {bad[0]!r}: one of {' '.join(KERNEL_NAMES)}", file=sys.stderr)
        return 2
    results = [demo(n) for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
