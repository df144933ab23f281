#!/usr/bin/env python3
"""No debug info against a bare drgn open (issue: with no DWARF, the 10k-process
table, whole process, in <= 0.5x the time of a bare ``drgn -c vmcore -s vmlinux``
open and <= 0.3x its peak memory; a warm layout cache no slower).

Usage: bench/nodebug.py VMCORE VMLINUX [--repeat 9] [--command tasks]
(a vmcore of bench/scale.py's, e.g. 10k idle processes on 6.1). Each command runs
as a whole process, the commands taking turns; prints wall-time and peak-memory
medians and the ratios to the bare drgn open:
  drgn      drgn -q -c VMCORE -s VMLINUX -e 'prog["init_task"].pid'
  dwarf     oomdrgn -q -c VMCORE -s VMLINUX tasks   (or --command's)
  btf-cold  oomdrgn -q -c VMCORE tasks   (no debug info, no layout cache)
  btf-warm  the same with the build's layout cache filled
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run4(argv, env) -> tuple:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--command", default="tasks", help="the oomdrgn command (default: tasks)")
    args = ap.parse_args()
    command = args.command.split()
    bindir = Path(sys.executable).parent
    drgn = shutil.which("drgn", path=str(bindir)) or "drgn"
    oomdrgn = [sys.executable, "-m", "oomdrgn.cli", "-q"]
    warm = tempfile.mkdtemp(prefix="oomdrgn-bench-layouts-")
    env = dict(os.environ)
    cold_env = dict(env, OOMDRGN_LAYOUT_CACHE="/proc/oomdrgn-no-cache")  # never written
    warm_env = dict(env, OOMDRGN_LAYOUT_CACHE=warm)
    commands = {
        "drgn": ([drgn, "-q", "-c", args.vmcore, "-s", args.vmlinux, "-e",
                  "prog['init_task'].pid"], env),
        "dwarf": ([*oomdrgn, "-c", args.vmcore, "-s", args.vmlinux, *command], env),
        "btf-cold": ([*oomdrgn, "-c", args.vmcore, *command], cold_env),
        "btf-warm": ([*oomdrgn, "-c", args.vmcore, *command], warm_env),
    }
    # As pip installs a package: its bytecode compiled (drgn's is); an editable
    # checkout run with PYTHONDONTWRITEBYTECODE would compile every module each run.
    import oomdrgn
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(oomdrgn.__file__).parent)],
                   env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"},
                   check=True, stdout=subprocess.DEVNULL)
    try:
        subprocess.run(commands["btf-warm"][0], env=warm_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fill it
        walls: dict = {k: [] for k in commands}
        peaks: dict = {k: [] for k in commands}
        for _ in range(args.repeat):
            for name, (argv, e) in commands.items():
                wall, peak = run4(argv, e)
                walls[name].append(wall)
                peaks[name].append(peak)
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    base_w, base_p = statistics.median(walls["drgn"]), statistics.median(peaks["drgn"])
    print(f"{Path(args.vmcore).name}, {args.command}: medians of {args.repeat}, whole process")
    for name in commands:
        w, p = statistics.median(walls[name]), statistics.median(peaks[name])
        print(f"  {name:9s} {w:.3f} s ({w / base_w:.2f}x drgn)  peak {p:.0f} MiB "
              f"({p / base_p:.2f}x drgn)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
