"""Real Debian kernels under QEMU, for ground truth: what the OOM killer printed
and a vmcore of that moment. Needs ``qemu-system-x86_64``, ``busybox-static``,
``gcc``, ``gdb``, and the Python packages ``qemu.qmp`` and ``pexpect``.
"""

from .dumps import open_vmcore, unflatten
from .gdbstub import GdbStub, symbol_address
from .initramfs import build_initramfs, compile_workloads
from .kernels import KERNEL_NAMES, HarnessError, KernelPaths, kernel_paths
from .population import DEFAULT_POPULATION, Member, start_hog, start_population
from .qemu import Guest, strip_timestamp
from .scenarios import Artifacts, kill_line, kill_moment, oom_table, panic_snapshot, summary_line

__all__ = [
    "Artifacts", "DEFAULT_POPULATION", "GdbStub", "Guest", "HarnessError", "KERNEL_NAMES",
    "KernelPaths", "Member", "build_initramfs", "compile_workloads", "kernel_paths",
    "kill_line", "kill_moment", "oom_table", "open_vmcore", "panic_snapshot", "start_hog",
    "start_population", "strip_timestamp", "summary_line", "symbol_address", "unflatten",
]
