"""Real Debian kernels under QEMU, x86-64 and arm64: each scenario runs once per
kernel per session.

Every test that takes ``kernel`` runs on every kernel of ``kernels.list`` (four
x86-64, three arm64), unless its module names one architecture with
``pytest.mark.arch("x86_64")`` and says why. The dumps (ELF ~270 MB and
kdump-zlib ~20 MB of the same moment) live in a temporary directory removed as
soon as that kernel's tests are done.
"""

import gc
import os
import shutil
import tempfile

import pytest

from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program

from oomdrgn.testing.harness import (ARM64_KERNEL_NAMES, FLAVOUR_KERNEL_NAMES, KERNEL_NAMES,
                                    Member, kernel_paths, kill_moment, panic_snapshot)
from oomdrgn.testing.harness.scenarios import (idle_scores, memcg_kill_moment, memcg_panic,
                                               numa_kill_moment, slab_kill_moment,
                                               sysrq_kill_moment)

from .oracle import scenario as _scenario

# The kill-moment population differs from the default: its would-be victim
# (highest oom_score_adj) is a multi-threaded process whose leader has exited,
# so the kill line names a thread that still has the mm.
KILL_POPULATION = (
    Member("kv-unkillable", anon_mb=3, adj=-1000),
    Member("kv-root", anon_mb=7, shmem_mb=2),
    Member("kv-user", anon_mb=2, shmem_mb=9, adj=500, uid=1000),
    Member("kv-victim", anon_mb=4, shmem_mb=1, adj=1000, uid=4242, threads=2, leader_exit=True),
    Member("kv-forks", anon_mb=1, adj=-300, uid=65534, fork=3),
    Member("kv-threads", anon_mb=3, threads=6),
)


#: kernels.list's names by the ELF machine they run on.
KERNELS_BY_ARCH = {"x86_64": KERNEL_NAMES, "aarch64": ARM64_KERNEL_NAMES}


def pytest_configure(config):
    config.addinivalue_line("markers", "arch(machine): the test runs on that "
                            "architecture's kernels only (x86_64, aarch64)")
    config.addinivalue_line("markers", "kernels(*names): the test runs on these "
                            "kernels only (a scenario too costly for all, or Debian's "
                            "other flavours: FLAVOUR_KERNEL_NAMES)")


def pytest_generate_tests(metafunc):
    """``kernel``: every kernel, or those of the module's ``arch`` marker."""
    if "kernel" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("arch")
    names = (KERNEL_NAMES + ARM64_KERNEL_NAMES if marker is None
             else KERNELS_BY_ARCH[marker.args[0]])
    only = metafunc.definition.get_closest_marker("kernels")
    if only is not None:  # a scenario run on a few kernels (suite time): no skips
        names = names + (FLAVOUR_KERNEL_NAMES if marker is None else ())
        unknown = set(only.args) - set(names)
        assert not unknown, f"kernels marker names unknown kernels {sorted(unknown)}"
        names = [n for n in names if n in only.args]
    metafunc.parametrize("kernel", names, indirect=True, scope="session")


@pytest.fixture(scope="session", autouse=True)
def _layout_cache():
    """A layout cache of this session's own: every run starts cold (a warm one
    in ~/.cache would leave the BTF and kallsyms path untested)."""
    path = tempfile.mkdtemp(prefix="oomdrgn-layouts-", dir="/tmp")
    old = os.environ.get("OOMDRGN_LAYOUT_CACHE")
    os.environ["OOMDRGN_LAYOUT_CACHE"] = path
    yield path
    if old is None:
        os.environ.pop("OOMDRGN_LAYOUT_CACHE", None)
    else:
        os.environ["OOMDRGN_LAYOUT_CACHE"] = old
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kernel(request):
    """One Debian kernel: 5.10, 6.1, 6.12, 7.x (x86-64); 6.1-arm64, 6.12-arm64,
    6.12-arm64-16k (arm64 under qemu-system-aarch64 -M virt, TCG)."""
    return kernel_paths(request.param)


def _scenario_fixture(name: str, fn, doc: str, amd64=None, **kw):
    """A session fixture: scenario *fn* once per kernel, both dump formats unless
    ``formats=`` says others (see :func:`tests.vm.oracle.scenario`), its workdir
    removed when that kernel's tests are done. *amd64*: more keyword arguments
    for the x86-64 kernels only."""
    def fixture(kernel):
        more = amd64 if amd64 is not None and kernel.arch == "amd64" else {}
        art = _scenario(fn, kernel, **kw, **more)
        yield art
        _remove(art.workdir)
    fixture.__doc__ = doc
    return pytest.fixture(fixture, scope="session", name=name)


panic = _scenario_fixture(
    "panic", panic_snapshot,
    "vm.panic_on_oom=1 + hog: the guest paused at the panic, dumped in both formats; "
    "also dumped (ELF, print_vmcores) where dump_header() calls __show_mem().",
    show_mem_moment=True)
#: the kill moment's taint: W (TAINT_WARN, bit 9) and O (TAINT_OOT_MODULE, bit 12),
#: so its dump_stack() header prints taint letters (print_tainted(), taint_flags[])
KILL_TAINT = 1 << 9 | 1 << 12
killed = _scenario_fixture(
    "killed", kill_moment,
    "Dumped at a hardware breakpoint on __oom_kill_process, then the real kill line; "
    "the kernel tainted W and O first; also dumped (ELF, print_vmcores) where "
    "dump_header() calls __show_mem().",
    population=KILL_POPULATION, taint=KILL_TAINT, show_mem_moment=True)
memcg_panicked = _scenario_fixture(
    "memcg_panicked", memcg_panic,
    "A memcg OOM in /job (nested groups, processes outside too) with vm.panic_on_oom=2: "
    "the kernel printed the memcg's table, then panicked.")
memcg_killed = _scenario_fixture(
    "memcg_killed", memcg_kill_moment,
    "A memcg OOM dumped at __oom_kill_process, then the kernel's memcg kill line.")
slab = _scenario_fixture("slab", slab_kill_moment, ":func:`slab_kill_moment`, with its "
                         "dump at __show_mem()'s call.", show_mem_moment=True)
numa = _scenario_fixture("numa", numa_kill_moment, ":func:`numa_kill_moment`, with its "
                         "dump at __show_mem()'s call.", show_mem_moment=True)
#: x86-64 raw images: 128 MB below the 4 GiB hole, 128 MB above (two banks at
#: 0x0 and 0x100000000); arm64's one bank is cut in two (Guest.dump_raw).
RAW_AMD64 = {"ram_below_4g_mb": 128}
raw_panic = _scenario_fixture(
    "raw_panic", panic_snapshot,
    "The panic moment (KASLR on), dumped as ELF and as raw images of each RAM bank "
    "(Artifacts.raw_banks, Artifacts.target_args('raw')).",
    formats=("elf", "raw"), amd64=RAW_AMD64)
raw_killed = _scenario_fixture(
    "raw_killed", kill_moment,
    "The kill moment with KASLR on (breakpoint at __oom_kill_process's runtime address), "
    "dumped as ELF and as raw images of each RAM bank.",
    formats=("elf", "raw"), amd64=RAW_AMD64, population=KILL_POPULATION, kaslr=True)
sysrq_killed = _scenario_fixture(
    "sysrq_killed", sysrq_kill_moment,
    ":func:`sysrq_kill_moment`: sysrq-f's OOM on a kworker, dumped at __oom_kill_process "
    "and at __show_mem()'s call.", show_mem_moment=True)


@pytest.fixture(scope="session")
def idle(kernel):
    """An idle guest (with zram swap, paged-out memory): every /proc/PID/oom_score
    read inside, then the guest stopped and dumped."""
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-idle-{kernel.name}-", dir="/tmp")
    try:
        art = idle_scores(kernel.name, workdir, fmt="kdump-zlib")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    yield art
    _remove(art.workdir)


def _remove(workdir) -> None:
    """Remove a scenario's dumps, each emptied first: a file still open (in a
    program some test kept) would otherwise hold its disk until the session
    ends (seen: a dozen open copies of each kernel's panic dump, 10 GB in all)."""
    gc.collect()
    for root, _, files in os.walk(workdir):
        for name in files:
            path = os.path.join(root, name)
            try:
                os.chmod(path, 0o600)  # the dumps are read-only
                os.truncate(path, 0)
            except OSError:
                pass
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def open_dumps():
    """A module's cache of opened dumps, emptied when the module's tests of one
    kernel are done: an open Program keeps its dump on disk after the scenario's
    workdir is removed."""
    cache: dict = {}
    yield cache
    cache.clear()
    gc.collect()  # a Program in a reference cycle lets go of its file only here


@pytest.fixture(scope="module")
def programs(open_dumps):
    """``programs(kernel, art, fmt)``: ``(prog, reader)`` of a scenario's dump, opened once.
    One kernel's programs at a time: an open Program keeps its (removed) dump on disk."""
    cache = open_dumps

    def get(kernel, art, fmt):
        key = (kernel.name, str(art.vmcores[fmt]))
        if any(k[0] != kernel.name for k in cache):
            cache.clear()
        if key not in cache:
            prog = open_program(core=str(art.vmcores[fmt]), vmlinux=[str(kernel.vmlinux)])
            cache[key] = (prog, reader_for(prog))
        return cache[key]
    return get
