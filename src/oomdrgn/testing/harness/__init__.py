"""Real Debian kernels under QEMU, for ground truth: what the OOM killer printed
and a vmcore of that moment. Needs ``qemu-system-x86_64``, ``busybox-static``,
``gcc``, ``gdb``, and the Python packages ``qemu.qmp`` and ``pexpect``; for the
arm64 kernels ``qemu-system-aarch64``, ``aarch64-linux-gnu-gcc`` (static),
``aarch64-linux-gnu-nm`` and ``gdb-multiarch``.
"""

from __future__ import annotations

from .dumps import open_vmcore, unflatten
from .gdbstub import GdbStub, symbol_address
from .initramfs import build_initramfs, compile_workloads
from .kernels import (ALL_KERNEL_NAMES, ARM64_KERNEL_NAMES, FLAVOUR_KERNEL_NAMES, KERNEL_NAMES,
                      HarnessError, KernelPaths, kernel_paths)
from .population import (DEFAULT_POPULATION, Member, in_cgroup, setup_cgroups, start_hog,
                         start_population, stop_khugepaged)
from .qemu import Guest, strip_timestamp
from .scenarios import (IDLE_POPULATION, MEMCG_POPULATION, SWAP_POPULATION, Artifacts,
                        idle_scores, kill_line, kill_moment, memcg_kill_moment, memcg_panic,
                        memcg_report, oom_table, panic_snapshot, summary_line, sysrq_table)

__all__ = [
    "ALL_KERNEL_NAMES", "ARM64_KERNEL_NAMES", "FLAVOUR_KERNEL_NAMES", "Artifacts", "DEFAULT_POPULATION", "GdbStub", "Guest", "HarnessError", "IDLE_POPULATION",
    "KERNEL_NAMES", "KernelPaths", "MEMCG_POPULATION", "Member", "SWAP_POPULATION",
    "build_initramfs", "compile_workloads", "idle_scores", "in_cgroup", "kernel_paths",
    "kill_line", "kill_moment", "memcg_kill_moment", "memcg_panic", "memcg_report", "oom_table",
    "open_vmcore", "panic_snapshot", "setup_cgroups", "start_hog", "start_population",
    "stop_khugepaged",
    "strip_timestamp", "summary_line", "symbol_address", "sysrq_table", "unflatten",
]
