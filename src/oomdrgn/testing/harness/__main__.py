"""``python -m oomdrgn.testing.harness``: fetch the kernels, run a scenario by hand, or
get a guest shell.

    python -m oomdrgn.testing.harness fetch [NAME...]   # kernels.list's kernels (default all)
    python -m oomdrgn.testing.harness kill 6.12 --out /tmp/k612
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional

from .kernels import ALL_KERNEL_NAMES, HarnessError, fetch_kernels, kernel_paths
from .qemu import Guest
from .scenarios import (SWAP_POPULATION, Artifacts, idle_scores, kill_moment, memcg_kill_moment,
                        memcg_panic, panic_snapshot, sysrq_table)

SCENARIOS: Dict[str, Callable[..., Artifacts]] = {
    "panic": panic_snapshot, "kill": kill_moment, "memcg-panic": memcg_panic,
    "memcg-kill": memcg_kill_moment, "idle-scores": idle_scores, "sysrq": sysrq_table}


def _scenario(args: argparse.Namespace) -> None:
    kwargs = {}
    if args.swap_mb is not None:
        kwargs["swap_mb"] = args.swap_mb
        if args.command == "panic" and args.swap_mb > 0:
            kwargs["population"] = SWAP_POPULATION
    art = SCENARIOS[args.command](args.kernel, args.out, fmt=args.format, **kwargs)
    kpaths = kernel_paths(args.kernel)
    vmlinux = kpaths.vmlinux
    arch = f" --architecture {kpaths.machine}" if args.format != "elf" else ""
    print("\n".join(art.memcg_lines + art.table_lines))
    for label, value in (("memcg", art.memcg), ("summary", art.summary_line),
                         ("kill", art.kill_line)):
        if value:
            print(f"{label}: {value}")
    for pid, score in sorted(art.scores.items()):
        fields = " ".join(f"{k}={v}" for k, v in art.status.get(pid, {}).items())
        print(f"{pid:>7} oom_score={score} {fields}")
    print(f"\nworkdir:   {art.workdir} ({art.seconds}s)\nvmcore:    {art.vmcore}\n"
          f"console:   {art.workdir / 'console.log'}\n"
          f"artifacts: {art.workdir / 'artifacts.json'}\n"
          f"drgn{arch} -c {art.vmcore} -s {vmlinux}")
    if kpaths.arch == "arm64" and args.format != "elf":
        print("(drgn's libkdumpfile misreads QEMU's aarch64 kdump files, 64 KiB blocks: "
              f"oomdrgn -c {art.vmcore} reads them)")


def _shell(args: argparse.Namespace) -> None:
    with Guest(args.kernel, workdir=args.out, keep=True, gdb=args.gdb,
               swap_mb=args.swap_mb or 0) as guest:
        print(f"{guest.banner}\nworkdir: {guest.workdir} (console.log: kernel console)\n"
              f"drgn --qemu {guest.qmp_path_for_drgn} -s {guest.kernel.vmlinux}")
        if guest.gdb_port:
            print(f"gdb: target remote 127.0.0.1:{guest.gdb_port} (booted nokaslr)")
        print(f"{guest.machine.shell_tty} shell; Ctrl-] quits (and kills the guest)")
        guest.interact()


def _fetch(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oomdrgn.testing.harness fetch",
        description="Fetch Debian kernels and their debug vmlinux into the user cache "
                    "(the packaged fetch-kernels.sh; idempotent).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"default all: {' '.join(ALL_KERNEL_NAMES)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(ALL_KERNEL_NAMES))
    if unknown:
        parser.error(f"unknown kernel {unknown[0]!r}")
    try:
        return fetch_kernels(args.names)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:
        return _fetch(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m oomdrgn.testing.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=[*SCENARIOS, "shell"],
                        help="panic: panic_on_oom snapshot; kill: dump at __oom_kill_process; "
                             "memcg-panic / memcg-kill: the same for a memcg OOM; "
                             "idle-scores: every /proc/PID/oom_score, then a dump; "
                             "sysrq: sysrq-f, dump after the kill line; "
                             "shell: boot and hand over the ttyS1 shell "
                             "(fetch [NAME...]: see fetch --help)")
    parser.add_argument("kernel", choices=ALL_KERNEL_NAMES)
    parser.add_argument("--out", help="directory to keep everything in (default /tmp/oomdrgn-*)")
    parser.add_argument("--format", default="elf", choices=["elf", "kdump-zlib"])
    parser.add_argument("--gdb", action="store_true", help="shell: open a gdbstub too")
    parser.add_argument("--swap-mb", type=int, default=None,
                        help="zram swap of this size in the guest (panic: adds a member "
                             "with swapped-out memory)")
    args = parser.parse_args(argv)
    try:
        _shell(args) if args.command == "shell" else _scenario(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
