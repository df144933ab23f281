"""Raw RAM images (``-c FILE@PADDR``, one per bank, as a JTAG probe saves them:
QMP ``pmemsave`` here), and ELF dumps without VMCOREINFO, of real guests booted
with KASLR: oomdrgn finds the kernel in them alone and prints what the kernel
printed, as it does from the ELF dump of the same moment.

x86-64 guests have RAM below and above the 4 GiB hole (``max-ram-below-4g``):
two images, one at 0x100000000. arm64 guests' RAM is cut in two at an
arbitrary boundary.
"""

import hashlib
import json
import os
import re
import subprocess

import pytest

import oomdrgn
from oomdrgn.core.elffile import core_note_names, symbol_values
from oomdrgn.core.rawimage import PhysicalMemory, open_banks
from oomdrgn.core.rawkernel import locate_kernel, vmlinux_image

from ..runner import OOMDRGN
from .oracle import panic_report, run_oomdrgn
from .test_oom_report import _check_parts, _kernel_report

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]


def printed(lines):
    return "".join(line + "\n" for line in lines)


def _specs(art):
    return art.target_args("raw")[1::2]


def _elf_vmcoreinfo(art):
    """The VMCOREINFO note's text of the ELF dump of the same moment."""
    with open(art.vmcores["elf"], "rb") as f:
        data = f.read(1 << 16)
    at = data.index(b"VMCOREINFO\0")
    size = int.from_bytes(data[at - 8:at - 4], "little")  # the note header's n_descsz
    text = data[at + 12:at + 12 + size].split(b"\0")[0].decode()
    return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)


def _summary_pid(art):
    return int(re.search(r",pid=(\d+),uid=", art.summary_line).group(1))


def _found(stderr):
    return next(l for l in stderr.splitlines() if "banner checked at physical" in l)


def test_banks_and_kaslr(kernel, raw_killed, raw_panic):
    # Two images each; the kernel ran with a KASLR offset, which oomdrgn finds.
    for art in (raw_killed, raw_panic):
        banks = art.raw_banks
        assert len(banks) == 2, banks
        if kernel.arch == "amd64":
            assert banks[1][1] == 1 << 32
        total = sum(os.path.getsize(path) for path, _ in banks)
        assert total == 256 << 20
        # KASLR on (the offset may still be 0 by chance: one slot in hundreds).
        assert not any("nokaslr" in line for line in art.console_lines
                       if line.startswith("Kernel command line:"))
        offset = int(_elf_vmcoreinfo(art)["KERNELOFFSET"], 16)
        res = run_oomdrgn(*art.target_args("raw"), "-s", kernel.vmlinux, "tasks")
        assert f"KASLR offset {offset:#x}" in _found(res.stderr)
        assert "BUILD-ID matches the vmlinux" in res.stderr


def test_panic_from_raw_images(kernel, raw_panic):
    # At the panic (panic_on_oom=1) the kernel printed the report up to the table:
    # the table is the same; every Mem-Info line the same now, or moved, shown.
    raw = raw_panic.target_args("raw")
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "tasks")
    assert res.stdout == printed(raw_panic.table_lines)
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "report", "--json")
    mc = json.loads(res.stdout)["reports"][-1]["memory_comparison"]
    lines = mc["parts"]["show_mem"]
    assert [c["logged"] for c in lines] == panic_report(raw_panic)["show_mem"]
    for c in lines:
        assert c["verdict"] in ("same", "moved"), c
        if c["verdict"] == "moved":
            assert c["moved"] or c["notes"], c
    assert mc["counts"].get("same", 0) > len(lines) // 2


def test_kill_moment_from_raw_images(kernel, raw_killed):
    raw = raw_killed.target_args("raw")
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "tasks")
    assert res.stdout == printed(raw_killed.table_lines)
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "kill", raw_killed.victim_pid)
    assert res.stdout == raw_killed.kill_line + "\n"
    tgid = _summary_pid(raw_killed)
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "summary", tgid)
    assert res.stdout == raw_killed.summary_line + "\n"
    res = run_oomdrgn(*raw, "-s", kernel.vmlinux, "-q", "victim", "--json")
    assert json.loads(res.stdout)["chosen_pid"] == tgid
    # The Python API takes the same specs.
    prog = oomdrgn.open_program(core=_specs(raw_killed), vmlinux=[str(kernel.vmlinux)])
    assert oomdrgn.kill_line(prog, raw_killed.victim_pid) == raw_killed.kill_line + "\n"


def test_oom_report_from_raw_images(kernel, raw_killed):
    # The whole report, from the invoked line to the kill line: every part as the
    # ELF dump of the same moment gives it, byte for byte (the same memory), and
    # every part but Mem-Info as the kernel printed it (Mem-Info against the
    # kernel: test_oom_report.py, where a counter that moved must be proven to
    # have; raw images hold no registers, so no unwound frames, marked so).
    res = run_oomdrgn(*raw_killed.target_args("raw"), "-s", kernel.vmlinux, "-q",
                      "oom-report", "--json")
    raw = json.loads(res.stdout)
    res = run_oomdrgn(*raw_killed.target_args("elf"), "-s", kernel.vmlinux, "-q",
                      "oom-report", "--json")
    elf = {s["name"]: s for s in json.loads(res.stdout)["sections"]}
    for section in raw["sections"]:
        if section["name"] != "frames":
            assert section["lines"] == elf[section["name"]]["lines"], section["name"]
    printed = _kernel_report(raw_killed)
    parts = {s["name"]: s for s in raw["sections"]}
    assert parts["show_mem"]["exact"] and parts["show_mem"]["lines"][0] == "Mem-Info:"
    printed.pop("show_mem")
    raw["sections"] = [s for s in raw["sections"] if s["name"] != "show_mem"]
    _check_parts(printed, raw, memcg=False, kernel=kernel, art=raw_killed, fmt="raw",
                 show_mem=False)


def test_explain_and_whatif_from_raw_images(kernel, raw_killed):
    # explain and a what-if read raw images as the ELF dump of the same moment:
    # the same record, field addresses included (the kernel's own virtual ones).
    victim = raw_killed.victim_pid
    answers = []
    for fmt in ("raw", "elf"):
        target = (*raw_killed.target_args(fmt), "-s", kernel.vmlinux, "-q")
        explained = json.loads(run_oomdrgn(*target, "explain", victim, "--json").stdout)
        whatif = json.loads(run_oomdrgn(*target, "victim", "--json", "--set-adj",
                                        f"{victim}=-1000").stdout)
        answers.append((explained, whatif))
    (explained, whatif), elf = answers[0], answers[1]
    assert (explained, whatif) == elf
    assert explained["kill_line"]["line"] == raw_killed.kill_line
    assert whatif["chosen_pid"] not in (None, -1, int(victim))


def _copy_without_vmcoreinfo(specs, tmp_path):
    """The images, every ``OSRELEASE=`` overwritten: RAM without VMCOREINFO."""
    out = []
    for i, spec in enumerate(specs):
        path, _, addr = spec.rpartition("@")
        data = bytearray(open(path, "rb").read())
        for m in re.finditer(rb"OSRELEASE=", data):
            data[m.start():m.end()] = b"XSRELEASE="
        copy = tmp_path / f"bank{i}.bin"
        copy.write_bytes(data)
        out.append(f"{copy}@{addr}")
    return out


def test_raw_images_without_vmcoreinfo(kernel, raw_killed, tmp_path):
    # The kernel found by its banner, the layout from its own variables.
    specs = _copy_without_vmcoreinfo(_specs(raw_killed), tmp_path)
    args = [a for s in specs for a in ("-c", s)]
    res = run_oomdrgn(*args, "-s", kernel.vmlinux, "tasks")
    assert res.stdout == printed(raw_killed.table_lines)
    found = _found(res.stderr)
    assert "no VMCOREINFO in RAM" in found
    assert f"KASLR offset {int(_elf_vmcoreinfo(raw_killed)['KERNELOFFSET'], 16):#x}" in found
    res = run_oomdrgn(*args, "-s", kernel.vmlinux, "-q", "kill", raw_killed.victim_pid)
    assert res.stdout == raw_killed.kill_line + "\n"


def test_elf_dump_without_vmcoreinfo_note(kernel, raw_killed, tmp_path):
    # What QEMU writes without -device vmcoreinfo: drgn cannot open it.
    data = bytearray(raw_killed.vmcores["elf"].read_bytes())
    at = data.index(b"VMCOREINFO\0")
    assert at < 1 << 16  # the note, before the memory
    data[at:at + 10] = b"XMCOREINFO"
    path = tmp_path / "vmcore.elf"
    path.write_bytes(data)
    del data
    assert b"VMCOREINFO" not in core_note_names(str(path))
    res = run_oomdrgn("-c", path, "-s", kernel.vmlinux, "tasks")
    assert res.stdout == printed(raw_killed.table_lines)
    assert "(no VMCOREINFO note): VMCOREINFO at physical" in res.stderr
    res = run_oomdrgn("-c", path, "-s", kernel.vmlinux, "-q", "kill", raw_killed.victim_pid)
    assert res.stdout == raw_killed.kill_line + "\n"


def test_shell_on_raw_images(kernel, raw_killed):
    # drgn's console, %oom loaded, on images drgn itself cannot open.
    code = ("%oom victim --json\n"
            "print('ADDR', hex(prog['init_task'].address_of_().value_()))\n")
    res = subprocess.run([*OOMDRGN, *raw_killed.target_args("raw"),
                          "-s", str(kernel.vmlinux), "-q", "shell"],
                         input=code, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])
    assert doc["chosen_pid"] == _summary_pid(raw_killed)
    offset = int(_elf_vmcoreinfo(raw_killed)["KERNELOFFSET"], 16)
    init_task = symbol_values(str(kernel.vmlinux), ["init_task"])["init_task"][0]
    assert f"ADDR {(init_task + offset) & (2**64 - 1):#x}" in res.stdout, res.stdout


def _snapshot(paths):
    """Name, size, mtime and a hash of the head of each file in the directories."""
    out = {}
    for d in sorted({os.path.dirname(p) for p in paths}):
        for name in sorted(os.listdir(d)):
            full = os.path.join(d, name)
            st = os.stat(full)
            with open(full, "rb") as f:
                head = hashlib.sha256(f.read(1 << 16)).hexdigest()
            out[full] = (st.st_size, st.st_mtime_ns, head)
    return out


def _other_build(kernel):
    """A vmlinux of another kernel of the same architecture."""
    from oomdrgn.testing.harness.kernels import kernel_paths
    for name in ("6.1", "6.12", "5.10") if kernel.arch == "amd64" else ("6.1-arm64",
                                                                        "6.12-arm64"):
        other = kernel_paths(name)
        if other.name != kernel.name:
            return other.vmlinux
    raise AssertionError("no other kernel")


BAD = ["at-missing", "at-not-a-number", "no-such-file", "empty", "overlap", "wrong-address",
       "other-build", "no-vmcoreinfo-no-banner", "cut-in-kernel"]


@pytest.mark.parametrize("case", BAD)
def test_bad_raw_input(kernel, raw_panic, tmp_path, case):
    # One line on stderr, exit status 3, nothing written anywhere.
    specs = _specs(raw_panic)
    first, _, addr0 = specs[0].rpartition("@")
    vmlinux = kernel.vmlinux
    if case == "at-missing":
        specs = [first] + specs[1:]
        specs[0] = first + "@"
    elif case == "at-not-a-number":
        specs = [first + "@0xZZ"] + specs[1:]
    elif case == "no-such-file":
        specs = [str(tmp_path / "nothing.bin") + "@0x0"] + specs[1:]
    elif case == "empty":
        (tmp_path / "empty.bin").write_bytes(b"")
        specs = specs + [f"{tmp_path / 'empty.bin'}@0x200000000"]
    elif case == "overlap":
        specs = specs + [f"{first}@{int(addr0, 16) + 0x1000:#x}"]
    elif case == "wrong-address":
        # Every bank 2 MiB too high: the VMCOREINFO is found, the banner is not
        # where it says.
        specs = [f"{s.rpartition('@')[0]}@{int(s.rpartition('@')[2], 16) + 0x200000:#x}"
                 for s in specs]
    elif case == "other-build":
        vmlinux = _other_build(kernel)
    elif case == "no-vmcoreinfo-no-banner":
        specs = _copy_without_vmcoreinfo(specs, tmp_path)
        vmlinux = _other_build(kernel)
    elif case == "cut-in-kernel":
        mem = PhysicalMemory(open_banks(specs))
        image = vmlinux_image(str(vmlinux))
        located = locate_kernel(mem, str(vmlinux))
        banner = int(re.search(r"banner checked at physical (0x[0-9a-f]+)",
                               located.how[-1]).group(1), 16)
        text = banner - (image.symbols["linux_banner"] - image.symbols["_text"])
        middle = text + (image.symbols["_end"] - image.symbols["_text"]) // 2
        bank = mem.bank_of(middle)
        mem.close()
        cut = tmp_path / "cut.bin"
        with open(bank.path, "rb") as f:
            cut.write_bytes(f.read(middle - bank.paddr))
        specs = [f"{cut}@{bank.paddr:#x}" if s.rpartition("@")[0] == bank.path else s
                 for s in specs]
    before = _snapshot([s.rpartition("@")[0] for s in specs if os.path.exists(
        s.rpartition("@")[0])] + [str(tmp_path / "x")])
    args = [a for s in specs for a in ("-c", s)]
    res = run_oomdrgn(*args, "-s", vmlinux, "tasks", check_status=None)
    assert res.returncode == 3, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oomdrgn: error: "), res.stderr
    assert res.stdout == ""
    expect = {"at-missing": "is not a physical address", "at-not-a-number":
              "is not a physical address", "no-such-file": "no such RAM image",
              "empty": "empty file", "overlap": "overlap",
              "wrong-address": "the kernel's text is not where it should be",
              "other-build": "another kernel build",
              "no-vmcoreinfo-no-banner": "is nowhere in them",
              "cut-in-kernel": "cut short inside the kernel"}[case]
    assert expect in lines[0], lines[0]
    after = _snapshot([s.rpartition("@")[0] for s in specs if os.path.exists(
        s.rpartition("@")[0])] + [str(tmp_path / "x")])
    assert after == before


def test_vmcoreinfo_file_and_kaslr_offset(kernel, raw_killed, tmp_path):
    # The user's VMCOREINFO (here the ELF dump's note, saved as text) for images
    # that lost theirs; --kaslr-offset over it: the right one reads the same,
    # a wrong one is refused where the banner is not.
    info = _elf_vmcoreinfo(raw_killed)
    path = tmp_path / "vmcoreinfo.txt"
    path.write_text("".join(f"{k}={v}\n" for k, v in info.items()))
    specs = _copy_without_vmcoreinfo(_specs(raw_killed), tmp_path)
    args = [a for s in specs for a in ("-c", s)]
    res = run_oomdrgn(*args, "-s", kernel.vmlinux, "--vmcoreinfo", path, "tasks")
    assert res.stdout == printed(raw_killed.table_lines)
    assert "VMCOREINFO from --vmcoreinfo" in _found(res.stderr)
    offset = int(info["KERNELOFFSET"], 16)
    res = run_oomdrgn(*args, "-s", kernel.vmlinux, "--kaslr-offset", hex(offset), "-q",
                      "kill", raw_killed.victim_pid)
    assert res.stdout == raw_killed.kill_line + "\n"
    res = run_oomdrgn(*args, "-s", kernel.vmlinux, "--kaslr-offset", hex(offset + 0x200000),
                      "tasks", check_status=3)
    assert "the kernel's text is not where it should be" in res.stderr
