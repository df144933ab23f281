"""The wheel alone: built from this tree, installed with its ``[testing]`` extra into a
fresh venv outside the checkout, used from a directory outside it.

``oomdrgn --help``; the harness's data and ``fetch`` from the installed package; the
system GDB sourcing the file ``python -m oomdrgn.gdb`` names (three ways) and
answering ``help lx-oom``; ``examples/`` copied elsewhere, passing on a real kernel
through the installed pytest plugin. drgn and the test dependencies come from the
package index through pip's cache (offline: ``PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR``).
"""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator

import pytest

from .gdbload import HOWS, assert_loaded, gdb_load

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "test_batch_job_dies_first.py"
KERNEL = "6.12"  # the oom_guest fixture's default


@dataclass
class Installed:
    venv: Path
    site: Path  # the venv's site-packages
    outside: Path  # a working directory outside the checkout
    env: Dict[str, str]  # no OOMDRGN_VM_IMAGES, no PYTHONPATH, no active venv

    def run(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              cwd=self.outside, env=self.env)

    def python(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(str(self.venv / "bin" / "python"), *args, timeout=timeout)


def _step(what: str, cmd, **kw) -> float:
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{what} failed:\n{res.stdout}\n{res.stderr}"
    seconds = time.monotonic() - started
    print(f"[install] {what}: {seconds:.1f} s")
    return seconds


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Iterator[Installed]:
    top = tmp_path_factory.mktemp("wheel")
    assert not top.resolve().is_relative_to(ROOT)
    # Built from a copy of what the build reads: nothing (build/, egg-info) is
    # written into the checkout, and no stale build/lib file reaches the wheel.
    tree = top / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = top / "dist"
    _step("pip wheel", [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree),
                        "-w", str(dist)], timeout=600)
    wheel, = dist.glob("oomdrgn-*.whl")
    venv = top / "venv"
    _step("venv", [sys.executable, "-m", "venv", str(venv)], timeout=300)
    _step("pip install wheel[testing]",
          [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check", f"{wheel}[testing]"], timeout=900)
    site, = (venv / "lib").glob("python3*/site-packages")
    outside = top / "work"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OOMDRGN_VM_IMAGES", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
                         "PYTEST_CURRENT_TEST")}
    yield Installed(venv=venv, site=site, outside=outside, env=env)
    shutil.rmtree(top)  # ~0.2 GB (drgn's libraries)


def test_cli_help(installed):
    res = installed.run(str(installed.venv / "bin" / "oomdrgn"), "--help")
    assert res.returncode == 0 and "usage: oomdrgn" in res.stdout, res.stderr


def test_data_and_fetch_come_from_the_package(installed):
    res = installed.python("-c", "import oomdrgn\n"
                           "from oomdrgn.testing.harness.kernels import vm_images_dir\n"
                           "print(oomdrgn.__file__); print(vm_images_dir())")
    assert res.returncode == 0, res.stderr
    package, data = map(Path, res.stdout.split())
    assert package == installed.site / "oomdrgn" / "__init__.py"
    assert data == installed.site / "oomdrgn" / "testing" / "data"
    for name in ("kernels.list", "fetch-kernels.sh", "guest/init", "rootfs/build-rootfs.sh",
                 "rootfs/init", "rootfs/live-init", "workloads/oompop.c", "README.md"):
        assert (data / name).is_file(), name
    res = installed.python("-m", "oomdrgn.testing.harness", "fetch", KERNEL)
    assert res.returncode == 0, res.stderr
    assert f"[fetch-kernels] {KERNEL}: cached" in res.stderr


def test_gdb_loader_path_is_in_the_venv(installed):
    res = installed.python("-m", "oomdrgn.gdb")
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == installed.site / "oomdrgn" / "gdb" / "loader.py"


@pytest.mark.parametrize("how", HOWS)
def test_system_gdb_sources_the_installed_loader(installed, how):
    loader = installed.python("-m", "oomdrgn.gdb").stdout.strip()
    res = gdb_load(loader, how, installed.outside, env=installed.env)
    assert_loaded(res, installed.site / "oomdrgn")


@pytest.mark.vm
def test_example_through_the_installed_plugin(installed):
    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 not found: this test boots a real kernel "
                    "(apt-get install qemu-system-x86)")
    shutil.copy2(EXAMPLE, installed.outside / EXAMPLE.name)
    (installed.outside / "test_data_from_the_package.py").write_text(
        "import sys\nfrom pathlib import Path\n"
        "from oomdrgn.testing.harness.kernels import vm_images_dir\n\n\n"
        "def test_data_from_the_package():\n"
        "    assert vm_images_dir().is_relative_to(Path(sys.prefix))\n")
    started = time.monotonic()
    res = installed.python("-m", "pytest", "-p", "no:cacheprovider", "-v",
                           "--oomdrgn-kernel", KERNEL, timeout=900)
    print(f"[install] examples/ on {KERNEL}: {time.monotonic() - started:.1f} s")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "oomdrgn-0.1.0" in out  # "plugins: ..., oomdrgn-0.1.0": the installed plugin
    assert "2 passed" in out, out
