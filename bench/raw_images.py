#!/usr/bin/env python3
"""Raw RAM images against the ELF dump of the same moment (issue: opening a raw
image costs no more than 1.5x opening the ELF dump).

Usage: bench/raw_images.py [--kernels 6.1,6.12-arm64] [--repeat 9]
Boots each kernel once (KASLR on; x86-64 RAM below and above the 4 GiB hole, arm64
RAM cut in two), stops it at ``__oom_kill_process`` and saves its RAM as an ELF dump
and as raw images (QMP ``pmemsave``). Then, modes taking turns, each in a fresh
process (``bench/measure.py``): ``open`` (open_program, one symbol and one type),
``oomdrgn`` (the table) and ``crash-ps`` (drgn's ``%crash ps -G``) on each; and the
whole process of ``oomdrgn -q TARGET tasks`` on each beside a bare ``drgn -c ELF``.
Prints medians and the raw/ELF ratios.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))

from oomdrgn.testing.harness import kernel_paths  # noqa: E402
from oomdrgn.testing.harness.scenarios import kill_moment  # noqa: E402

MODES = ("open", "oomdrgn", "crash-ps")


def _median(values):
    return statistics.median(values)


def measure(targets: dict, vmlinux: Path, repeat: int) -> dict:
    """``{(name, mode): [seconds...]}``, every mode and target taking turns."""
    out: dict = {}
    for _ in range(repeat):
        for mode in MODES:
            for name, target in targets.items():
                res = subprocess.run([sys.executable, str(HERE / "measure.py"), mode, target,
                                      str(vmlinux)], capture_output=True, text=True, check=True)
                doc = json.loads(res.stdout.strip().splitlines()[-1])
                out.setdefault((name, mode), []).append(doc["seconds"])
    return out


def whole(commands: dict, repeat: int) -> dict:
    """Wall seconds of each whole command, taking turns."""
    out: dict = {}
    for _ in range(repeat):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            out.setdefault(name, []).append(time.perf_counter() - start)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="6.1,6.12-arm64")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    for kernel in args.kernels.split(","):
        paths = kernel_paths(kernel)
        workdir = Path(tempfile.mkdtemp(prefix=f"oomdrgn-bench-raw-{kernel}-", dir="/tmp"))
        try:
            options = {} if paths.arch == "arm64" else {"ram_below_4g_mb": 128}
            art = kill_moment(kernel, workdir, fmt=("elf", "raw"), kaslr=True, **options)
            raw = ",".join(f"{path}@{paddr:#x}" for path, paddr in art.raw_banks)
            elf = str(art.vmcores["elf"])
            subprocess.run(["sync"], check=True)
            timed = measure({"elf": elf, "raw": raw}, paths.vmlinux, args.repeat)
            oomdrgn = [sys.executable, "-m", "oomdrgn.cli", "-q"]
            drgn = shutil.which("drgn", path=str(Path(sys.executable).parent)) or "drgn"
            walls = whole({"elf": [*oomdrgn, "-c", elf, "-s", str(paths.vmlinux), "tasks"],
                           "raw": [*oomdrgn, *art.target_args("raw"), "-s",
                                   str(paths.vmlinux), "tasks"],
                           "drgn": [drgn, "-q", "-c", elf, "-s", str(paths.vmlinux), "-e",
                                    "prog['init_task'].pid"]}, args.repeat)
            banks = ", ".join(f"{Path(p).name}@{a:#x}" for p, a in art.raw_banks)
            print(f"{kernel} ({banks}), medians of {args.repeat}:")
            for mode in MODES:
                e, r = _median(timed[("elf", mode)]), _median(timed[("raw", mode)])
                print(f"  {mode:9s} ELF {e:.3f} s  raw {r:.3f} s  raw/ELF {r / e:.2f}x")
            e, r, d = (_median(walls[k]) for k in ("elf", "raw", "drgn"))
            print(f"  whole `oomdrgn tasks`: ELF {e:.3f} s  raw {r:.3f} s  raw/ELF {r / e:.2f}x"
                  f"  (bare `drgn -c ELF` {d:.3f} s: raw {r / d:.2f}x)")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
