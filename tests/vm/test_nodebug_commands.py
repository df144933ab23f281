"""Every command without debug info prints what it prints with DWARF (issue 18).

For each kernel of the suite and each OOM moment (``panic``, ``killed``,
``memcg_panicked``, ``memcg_killed``; ``slab``, the unreclaimable slab dump,
where test_oom_report.py takes it), every command that has an
answer on that dump runs twice: with ``-s`` the debug vmlinux (DWARF), and with
no debug info at all (no ``-s``, nothing under the debug directories for these
builds, an empty layout cache: types from the kernel's BTF, symbols from its
kallsyms, both read from the dump). Their standard output must be the same
bytes. The DWARF answers are checked against what each kernel printed by the
other real-kernel tests, so equality proves the BTF path, on Debian's 6.1
arm64 kernel too, whose kallsyms holds functions only (the data symbols are
recovered: :mod:`oomdrgn.core.symrecover`).

What is not compared here (all of it in :func:`without_frames`; the frames
are compared in test_unwind_real.py, which proves the two places where they
rightly differ from drgn's): ``dump_stack()``'s frame lines, the
``# oomdrgn:`` note about them and `` </TASK>`` (x86-64), the ``frames``
section of ``--json`` and the HTML page's frames note, and the provenance notes
of the ``oom_control`` fields DWARF read from ``oom_kill_process()``'s frame
(``struct oom_control ... on the OOM task's stack``; without it the same
values come from the printk ring: the values themselves are compared). In the
HTML page besides: the command line (``-s VMLINUX`` is in one only) and the
"types and symbols" row, which says where the types came from.
"""

import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from difflib import unified_diff
from typing import Dict, List, Optional, Tuple

import pytest

from ..runner import OOMDRGN

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

#: the OOM moments compared on every kernel (session fixtures of tests/vm/conftest.py)
MOMENTS = ("panic", "killed", "memcg_panicked", "memcg_killed")
#: stderr of a run with no debug info, its types and symbols parsed from the dump
SOURCES = "oomdrgn: no debug info: types from the kernel's BTF at "

# dump_stack()'s frames (x86-64 ``printk_stack_address()``: `` %s%pBb``, ``? ``
# for unreliable ones; arm64 `` %pSb``), its `` </TASK>``, the frames note.
_FRAME = re.compile(r"^ (\? )?[\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+( \[[\w-]+\])?$"
                    r"|^ </TASK>$|^# oomdrgn: (the frames|no frames)")
_HTML_FRAMES = re.compile(r"<tr><th>frames</th><td>[^<]*</td></tr>"
                          r"|<li>the frames dump_stack\(\) printed[^<]*</li>")
_HTML_CONTROL = re.compile(r"<tr><th>oom_control: (\w+)</th><td>([^<]*)</td></tr>")
_STACK = "on the OOM task"


def without_frames(dwarf: str, btf: str, kind: str) -> Tuple[str, str]:
    """*dwarf* and *btf* (one command's outputs; *kind* ``text``, ``json`` or
    ``html``) without what needs unwound frames: the frame lines and their
    note, and the sources of the ``oom_control`` fields where DWARF's came from
    ``oom_kill_process()``'s frame."""
    if kind == "json":
        docs = [json.loads(dwarf), json.loads(btf)]
        if all(isinstance(d, dict) and "sections" in d for d in docs):
            for d in docs:
                d["sections"] = [s for s in d["sections"] if s.get("name") != "frames"]
            sources = [d.get("control", {}).get("sources", {}) for d in docs]
            if any(_STACK in v for v in sources[0].values()):
                for key in set(sources[0]) | set(sources[1]):
                    if sources[0].get(key) != sources[1].get(key):
                        for s in sources:
                            s.pop(key, None)
        return tuple(json.dumps(d, indent=1, sort_keys=True) + "\n" for d in docs)
    outs = ["".join(line for line in text.splitlines(True)
                    if not _FRAME.match(line.rstrip("\n"))) for text in (dwarf, btf)]
    if kind == "html":
        outs = [_HTML_FRAMES.sub("", text) for text in outs]
        rows = [dict(_HTML_CONTROL.findall(text)) for text in outs]
        if any(_STACK in v for v in rows[0].values()):
            differ = {k for k in set(rows[0]) | set(rows[1]) if rows[0].get(k) != rows[1].get(k)}
            outs = [_HTML_CONTROL.sub(lambda m: "" if m.group(1) in differ else m.group(0), t)
                    for t in outs]
    return outs[0], outs[1]


def _html(text: str, vmlinux: str) -> str:
    # The command line (with -s VMLINUX or without) and where the types and
    # symbols came from: the two runs differ there by construction.
    text = text.replace(f" -s {vmlinux}", "")
    return re.sub(r"<tr><th>types and symbols</th><td>[^<]*</td></tr>", "", text)


def commands(art, pid: int) -> List[List[str]]:
    """Every command with an answer on *art*'s dump, *pid* the victim's."""
    out = [["tasks"], ["oom-report"], ["oom-report", "--json"], ["show-mem"],
           ["summary", str(pid)], ["kill", str(pid)], ["victim"], ["victim", "--json"],
           ["score", str(pid)], ["explain", str(pid)], ["explain", str(pid), "--json"],
           # what-if: the victim made unkillable
           ["oom-report", "--set-adj", f"{pid}=-1000"],
           ["html", "-o", "-"], ["report"]]
    if art.memcg:
        m = art.memcg
        out += [["tasks", "--memcg", m], ["oom-report", "--memcg", m],
                ["summary", str(pid), "--memcg", m], ["kill", "--memcg", str(pid)],
                ["victim", "--memcg", m, "--json"], ["explain", str(pid), "--memcg", m],
                ["html", "-o", "-", "--memcg", m]]
    return out


def _kind(argv: List[str]) -> str:
    return "html" if argv[0] == "html" else "json" if "--json" in argv else "text"


def _run(core: str, argv: List[str], vmlinux: Optional[str]) -> Tuple[int, str, str]:
    """``oomdrgn -c CORE -q [-s VMLINUX] ARGV``; without *vmlinux*, with an empty
    layout cache of its own (the BTF and kallsyms path, every run)."""
    with tempfile.TemporaryDirectory(prefix="oomdrgn-nodebug-", dir="/tmp") as cache:
        res = _run_env(core, (["-s", vmlinux] if vmlinux else []) + argv, cache)
    return res.returncode, res.stdout, res.stderr


def _run_env(core: str, argv: List[str], cache: str, quiet: bool = True):
    # Bytes that are not UTF-8 shown escaped: a difference, not a crash.
    env = dict(os.environ, OOMDRGN_LAYOUT_CACHE=cache)
    return subprocess.run([*OOMDRGN, "-c", core, *(["-q"] if quiet else []), *argv],
                          capture_output=True, text=True, errors="backslashreplace",
                          timeout=300, env=env)


def differences(core: str, vmlinux: str, argvs: List[List[str]]) -> Dict[str, str]:
    """``{command: readable difference}`` of each command run with DWARF and without."""
    jobs = [(argv, v) for argv in argvs for v in (vmlinux, None)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: _run(core, *job), jobs))
    out = {}
    for i, argv in enumerate(argvs):
        (rc_d, dwarf, err_d), (rc_b, btf, err_b) = results[2 * i], results[2 * i + 1]
        name = " ".join(argv)
        if rc_d != 0 or rc_b != 0:
            out[name] = (f"exit {rc_d} with DWARF ({err_d.strip()[-300:]}), {rc_b} without "
                         f"({err_b.strip()[-300:]})")
            continue
        if argv[0] == "html":
            dwarf, btf = _html(dwarf, vmlinux), _html(btf, vmlinux)
        dwarf, btf = without_frames(dwarf, btf, _kind(argv))
        if argv[0] == "html":  # a line per tag, for a readable difference
            dwarf, btf = (t.replace("><", ">\n<") for t in (dwarf, btf))
        if dwarf != btf:
            diff = unified_diff(dwarf.splitlines(True), btf.splitlines(True), "DWARF", "BTF", n=1)
            out[name] = "".join(list(diff)[:40])
    return out


def _victim(core: str, vmlinux: str, art) -> int:
    argv = ["victim", "--json"] + (["--memcg", art.memcg] if art.memcg else [])
    status, out, err = _run(core, argv, vmlinux)
    assert status == 0, err
    return json.loads(out)["chosen_pid"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_every_command_as_with_dwarf(kernel, moment, request):
    assert_as_with_dwarf(kernel, request.getfixturevalue(moment))


# The kernels test_oom_report.py runs the slab scenario on (elsewhere the
# guest's slab hog leaves nothing killable: "System is deadlocked on memory").
@pytest.mark.kernels("6.1", "7.x", "6.12-arm64")
def test_unreclaimable_slab_dump_as_with_dwarf(kernel, slab):
    assert_as_with_dwarf(kernel, slab)


def assert_as_with_dwarf(kernel, art) -> None:
    """Every command on *art*'s dump prints the same without debug info as with DWARF."""
    core, vmlinux = str(art.vmcore), str(kernel.vmlinux)
    # Nothing but the dump: no debug info found, types and symbols from it.
    with tempfile.TemporaryDirectory(prefix="oomdrgn-nodebug-", dir="/tmp") as cache:
        res = _run_env(core, ["tasks"], cache, quiet=False)
    assert res.returncode == 0 and SOURCES in res.stderr, res.stderr
    pid = _victim(core, vmlinux, art)
    found = differences(core, vmlinux, commands(art, pid))
    assert not found, "\n".join(f"== {name}\n{text}" for name, text in found.items())
