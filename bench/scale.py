#!/usr/bin/env python3
"""Scale benchmark: oomdrgn's table against drgn's %crash ps -G and a plain drgn loop,
on vmcores of real guests with 1k..20k processes (and 200 x 100 threads), in one run.

Usage: bench/scale.py [--kernel 6.1] [--sizes 1000,5000,10000,20000] [--no-threads]
                      [--no-qemu] [--repeat 3]
Also times ``oom-report`` (the whole report) against ``tasks`` on the same vmcore.
Prints, per vmcore: rows, seconds per mode (best of --repeat, program already
loaded), ratios to %crash ps -G, microseconds per process (oomdrgn's fixed set-up
left out and printed apart), and peak memory of
each measuring process against one that only loads the program.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from oomdrgn.testing.harness import Guest, Member, kernel_paths, start_population  # noqa: E402

MODES = ("load", "oomdrgn", "oom-report", "crash-ps", "loop")


def measure(target: list, vmlinux: Path, repeat: int) -> dict:
    """The best of *repeat* runs of every mode, the modes taking turns (so that
    a slow spell of the machine does not fall on one mode only)."""
    os.sync()  # the dump just written: no writeback during the measurements
    best: dict = {}
    for _ in range(repeat):
        for mode in MODES:
            out = subprocess.run([sys.executable, str(HERE / "measure.py"), mode, *target,
                                  str(vmlinux)], capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            if mode not in best or res["seconds"] < best[mode]["seconds"]:
                best[mode] = res
    return best


def memory_mb(processes: int, threads: int) -> int:
    # ~130 KiB per idle process (page tables, stacks, task_struct, pages),
    # ~128 KiB per extra thread (16 KiB kernel stack, task_struct, the user
    # stack's touched pages, page tables: 200 x 100 threads OOMed in 1.2 GB);
    # never below the 256 MB of the other guests.
    return max(256, 256 + processes * 130 // 1024 + processes * threads * 128 // 1024)


def raise_limits(guest: Guest, processes: int, threads: int) -> None:
    """kernel.threads-max defaults to RAM / 128 KiB (~6,000 in a 750 MB guest)
    and pid_max to 32,768: lift both above what the population needs."""
    want = 2 * processes * (1 + threads) + 1000
    guest.run(f"echo {max(want, 32768)} > /proc/sys/kernel/threads-max")
    guest.run(f"echo {min(max(want, 32768), 4194304)} > /proc/sys/kernel/pid_max")


def population(processes: int, threads: int) -> list:
    return [Member("idle", threads=threads, fork=processes - 1)]


def run_case(kernel: str, label: str, processes: int, threads: int, args, workdir: Path) -> dict:
    vmlinux = kernel_paths(kernel).vmlinux
    mem = memory_mb(processes, threads)
    t0 = time.monotonic()
    result = {"case": label, "processes": processes, "threads": threads, "guest_mb": mem}
    with Guest(kernel, workdir=str(workdir / label), memory_mb=mem,
               append="log_buf_len=8M", boot_timeout=600) as guest:
        raise_limits(guest, processes, threads)
        start_population(guest, population(processes, threads), timeout=900)
        guest.stop()
        result["setup_s"] = round(time.monotonic() - t0, 1)
        vmcore = guest.dump(workdir / label / "vmcore", "elf", timeout=1800)
        result["vmcore_mb"] = vmcore.stat().st_size >> 20
        result["dump"] = measure([str(vmcore)], vmlinux, args.repeat)
        vmcore.unlink()
        if not args.no_qemu:
            sock = str(guest.qmp_path_for_drgn)
            result["qemu"] = measure(["--qemu", sock], vmlinux, 1)
    return result


def per_process_us(m: dict, processes: int) -> float:
    """Microseconds per process, the fixed per-program set-up left out."""
    return (m["seconds"] - m.get("setup_seconds", 0.0)) / processes * 1e6


def report(r: dict) -> str:
    lines = [f"== {r['case']}: {r['processes']} processes x {1 + r['threads']} threads, "
             f"guest {r['guest_mb']} MB, vmcore {r.get('vmcore_mb', '?')} MB, "
             f"set-up {r['setup_s']} s"]
    for where in ("dump", "qemu"):
        if where not in r:
            continue
        m = r[where]
        crash = m["crash-ps"]["seconds"]
        base = m["load"]["max_rss_kb"]
        lines.append(f"  {where}: rows {m['oomdrgn']['rows']} "
                     f"(oomdrgn's fixed set-up {m['oomdrgn']['setup_seconds'] * 1e3:.1f} ms)")
        for mode in ("oomdrgn", "oom-report", "crash-ps", "loop"):
            s = m[mode]["seconds"]
            lines.append(f"    {mode:9s} {s:8.3f} s  {s / crash:6.3f}x crash-ps  "
                         f"{per_process_us(m[mode], r['processes']):7.1f} us/process  "
                         f"peak {m[mode]['max_rss_kb'] / 1024:7.1f} MB "
                         f"({m[mode]['max_rss_kb'] / base:4.2f}x load-only)")
        if "oom-report" in m:
            lines.append(f"    oom-report / tasks: "
                         f"{m['oom-report']['seconds'] / m['oomdrgn']['seconds']:.2f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", default="6.1")
    parser.add_argument("--sizes", default="1000,5000,10000,20000")
    parser.add_argument("--no-threads", action="store_true")
    parser.add_argument("--no-qemu", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the raw results here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="oomdrgn-bench-", dir="/tmp"))
    cases = [(f"{int(n) // 1000}k", int(n), 0) for n in args.sizes.split(",")]
    if not args.no_threads:
        cases.append(("200x100threads", 200, 99))
    results = []
    try:
        for label, n, threads in cases:
            r = run_case(args.kernel, label, n, threads, args, workdir)
            results.append(r)
            print(report(r), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    single = {r["processes"]: r for r in results if not r["threads"]}
    per = {n: per_process_us(r["dump"]["oomdrgn"], n) for n, r in single.items()}
    if per:
        lo, hi = min(per), max(per)
        print(f"\nlinearity: {per[hi] / per[lo]:.2f}x per-process cost at {hi} vs {lo} "
              f"({per[lo]:.1f} -> {per[hi]:.1f} us)")
    thr = [r for r in results if r["threads"]]
    if thr and per:
        t = per_process_us(thr[0]["dump"]["oomdrgn"], thr[0]["processes"])
        print(f"threads: {t / per[min(per)]:.2f}x per-process cost of {1 + thr[0]['threads']} "
              f"threads vs 1 ({t:.1f} vs {per[min(per)]:.1f} us)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
