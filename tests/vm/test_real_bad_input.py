"""Bad input on real dumps: one line, a distinct non-zero status, never a traceback."""

import pytest

from oomdrgn.core import errors
from oomdrgn.testing.harness import KERNEL_NAMES, kernel_paths

from .oracle import run_oomdrgn

pytestmark = pytest.mark.vm


def one_line(res, status, *words):
    assert res.returncode == status, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oomdrgn: error: "), res.stderr
    for w in words:
        assert w in lines[0]


def test_unknown_pid(kernel, panic):
    res = run_oomdrgn("-c", panic.vmcore, "-s", kernel.vmlinux, "-q", "kill", 4000000,
                      check_status=None)
    one_line(res, errors.EXIT_QUERY, "no task with PID 4000000")


def test_vmlinux_of_another_kernel(kernel, panic):
    other = kernel_paths(next(n for n in KERNEL_NAMES if n != kernel.name))
    res = run_oomdrgn("-c", panic.vmcore, "-s", other.vmlinux, "tasks", check_status=None)
    one_line(res, errors.EXIT_DEBUGINFO, "does not match", kernel.release)


def test_missing_vmlinux_file(kernel, panic, tmp_path):
    res = run_oomdrgn("-c", panic.vmcore, "-s", tmp_path / "vmlinux", "tasks", check_status=None)
    one_line(res, errors.EXIT_DEBUGINFO, "no such vmlinux")


@pytest.mark.parametrize("fraction", [0.001, 0.5])
def test_truncated_vmcore(kernel, panic, tmp_path, fraction):
    src = panic.vmcores["kdump-zlib"]
    data = src.read_bytes()
    cut = tmp_path / "vmcore.cut"
    cut.write_bytes(data[:int(len(data) * fraction)])
    res = run_oomdrgn("-c", cut, "-s", kernel.vmlinux, "tasks", check_status=None)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("oomdrgn: ")


@pytest.mark.parametrize("args, status, words", [
    (("--gfp", "GFP_NOSUCH"), errors.EXIT_USAGE, ("--gfp", "GFP_NOSUCH")),
    (("--gfp", "0xzz"), errors.EXIT_USAGE, ("--gfp",)),
    (("--order", "99"), errors.EXIT_USAGE, ("--order 99 out of range",)),
    (("--memcg", "/no/such/group"), errors.EXIT_QUERY, ("/no/such/group",)),
    (("--current", "4000000"), errors.EXIT_QUERY, ("--current 4000000",)),
    (("--victim", "4000000"), errors.EXIT_QUERY, ("--victim 4000000",)),
])
def test_oom_report_bad_options(kernel, panic, args, status, words):
    res = run_oomdrgn("-c", panic.vmcore, "-s", kernel.vmlinux, "-q", "oom-report", *args,
                      check_status=None)
    one_line(res, status, *words)
    assert res.stdout == ""


def test_oom_report_order_not_a_number(kernel, panic):
    res = run_oomdrgn("-c", panic.vmcore, "-s", kernel.vmlinux, "oom-report", "--order", "x",
                      check_status=None)
    assert res.returncode == errors.EXIT_USAGE and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].endswith("not an order: 'x'")
