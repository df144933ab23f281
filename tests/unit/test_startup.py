"""What a run imports before it reads the target: no more than it needs (each
module a whole run of ~100 ms pays for at start)."""

import os
import subprocess
import sys


def _imported(code: str, env=None) -> set:
    out = subprocess.run([sys.executable, "-c", code + "; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, env=env)
    return set(out.stdout.split())


def test_a_run_imports_no_dataclasses_and_no_shutil():
    # dataclasses (and inspect, ast, dis): the core's records are
    # oomdrgn.core.record's. shutil: argparse's help formatters ask the
    # terminal's width only when help is printed.
    mods = _imported("import sys, oomdrgn.cli, oomdrgn.elfcore.open, oomdrgn.commands.tasks, "
                     "oomdrgn.core.oom_report, oomdrgn.core.show_mem; "
                     "oomdrgn.cli.build_parser().parse_args(['-c', 'x', 'tasks'])")
    assert "oomdrgn.core.record" in mods
    assert not {"dataclasses", "inspect", "shutil"} & mods


def _help(columns: str) -> str:
    env = dict(os.environ, COLUMNS=columns)
    return subprocess.run([sys.executable, "-m", "oomdrgn.cli", "-h"], capture_output=True,
                          text=True, check=True, env=env).stdout


def test_help_still_fits_the_terminal():
    assert "usage: oomdrgn [-h]\n" in _help("50")  # wrapped at 48 columns
    assert "usage: oomdrgn [-h] [-c VMCORE | -k | --qemu QMP_SOCKET] [-s VMLINUX]" in _help("200")
