#!/usr/bin/env python3
"""The demo: a real Debian kernel in QEMU runs out of memory; oomdrgn reads the
vmcore of that moment and prints the same OOM report the kernel printed, from the
``invoked oom-killer`` line to the kill line (the stack's frames aside).

Usage: scripts/demo.py [KERNEL...]   (default: 6.12; names from kernels.list)
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from oomdrgn.core.report_sections import PARTS, split_report  # noqa: E402
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
        lines = art.console_lines
        end = lines.index(art.kill_line)
        start = max(i for i, text in enumerate(lines[:end]) if " invoked oom-killer: " in text)
        kernel_report = lines[start:end + 1]
        print(f"\n--- the kernel printed (console, timestamps stripped), {art.seconds}s ---")
        print("\n".join(kernel_report))
        print("\n--- oomdrgn, from the vmcore of that moment ---")
        ours = _oomdrgn("-c", art.vmcore, "-s", kernel.vmlinux, "oom-report")
        theirs, mine = split_report(kernel_report), split_report(
            [line for line in ours.splitlines() if not line.startswith("# ")])
        print()
        same = True
        for part in PARTS:
            if part not in theirs and part not in mine:
                continue
            if part == "frames":
                print(f"  {part:<11} not compared (unwound from the dump, marked so)")
                continue
            equal = theirs.get(part) == mine.get(part)
            same &= equal
            print(f"  {part:<11} {'identical' if equal else 'DIFFERENT'} "
                  f"({len(theirs.get(part, []))} lines)")
        print(f"\n{name}: {'IDENTICAL, byte for byte' if same else 'DIFFERENT'} "
              f"(the whole report but its stack frames)\n")
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
