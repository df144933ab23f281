"""Real Debian arm64 kernels under qemu-system-aarch64 (TCG, -M virt): each
scenario runs once per kernel per session, like tests/vm on x86-64.

The dumps (ELF ~270 MB and kdump-zlib ~16 MB of the same moment) live in a
temporary directory removed as soon as that kernel's tests are done.
"""

import shutil

import pytest

from oomdrgn.testing.harness import ARM64_KERNEL_NAMES, kernel_paths, kill_moment, panic_snapshot
from oomdrgn.testing.harness.scenarios import memcg_panic

from ..vm.conftest import KILL_POPULATION
from ..vm.oracle import scenario as _scenario


def pytest_configure(config):
    config.addinivalue_line("markers", "arm64: boots real Debian arm64 kernels under "
                            "qemu-system-aarch64 (TCG)")


@pytest.fixture(scope="session", params=ARM64_KERNEL_NAMES)
def arm64_kernel(request):
    """One of the Debian arm64 kernels (6.1-arm64, 6.12-arm64: cloud, 4 KiB
    pages; 6.12-arm64-16k: 16 KiB pages)."""
    kernel = kernel_paths(request.param)
    assert kernel.arch == "arm64", kernel
    return kernel


@pytest.fixture(scope="session")
def arm64_panic(arm64_kernel):
    """vm.panic_on_oom=1 + hog: the guest paused at the panic's reboot, dumped
    in both formats."""
    art = _scenario(panic_snapshot, arm64_kernel)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def arm64_killed(arm64_kernel):
    """Dumped at a hardware breakpoint on __oom_kill_process (gdb-multiarch),
    then the real kill line."""
    art = _scenario(kill_moment, arm64_kernel, population=KILL_POPULATION)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def arm64_memcg_panicked(arm64_kernel):
    """A memcg OOM in /job with vm.panic_on_oom=2: the memcg's table, then a panic."""
    art = _scenario(memcg_panic, arm64_kernel)
    yield art
    shutil.rmtree(art.workdir, ignore_errors=True)
