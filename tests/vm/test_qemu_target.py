"""``oomdrgn --qemu``: a running QEMU guest read over QMP, then the kernel's own view."""

import json
import shutil
import subprocess
import sys
import tempfile

import pytest

from oomdrgn.testing.harness import start_population
from oomdrgn.testing import OomGuest
from oomdrgn.testing.harness.scenarios import kill_line, oom_table

from .conftest import KILL_POPULATION
from .oracle import run_oomdrgn

# x86-64 only: drgn's QMP target on an arm64 guest is not part of the suite yet.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]


def _reads_as_static(guest, kernel) -> bool:
    """Whether oomdrgn reads the guest as memory that cannot change (kept
    records, physical reads of the direct map), and says so in the program.
    Asked in a process of its own: QEMU serves one QMP client per socket."""
    code = ("import sys\n"
            "from oomdrgn.drgn.backend import reader_for\n"
            "from oomdrgn.drgn.program import PAUSED, open_program\n"
            "prog = open_program(qemu=sys.argv[1], vmlinux=[sys.argv[2]])\n"
            "reader = reader_for(prog)\n"
            "assert prog.config[PAUSED] is reader.memory.enabled\n"
            "print(reader.memory.enabled)\n")
    out = subprocess.run([sys.executable, "-c", code, str(guest.qmp_path_for_drgn),
                          str(kernel.vmlinux)], capture_output=True, text=True, check=True)
    return {"True": True, "False": False}[out.stdout.strip()]


@pytest.mark.timeout(600)
def test_qemu_guest_equals_its_dump_and_sysrq_table(kernel):
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-qemu-{kernel.name}-", dir="/tmp")
    try:
        with OomGuest(kernel.name, workdir=workdir) as og:
            guest = og.guest
            start_population(guest, KILL_POPULATION, cpu=0)
            guest.stop()
            # Paused: read once, as a vmcore (QMP's query-status said so).
            assert _reads_as_static(guest, kernel)
            live = run_oomdrgn("--qemu", guest.qmp_path_for_drgn, "-s", kernel.vmlinux, "-q",
                               "tasks").stdout
            dump = guest.dump(f"{workdir}/vmcore", "kdump-zlib")
            dumped = run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "tasks").stdout
            assert live == dumped
            # explain over QMP (paused) is the dump's, addresses and all.
            chosen = json.loads(run_oomdrgn("-c", dump, "-s", kernel.vmlinux, "-q", "victim",
                                            "--json").stdout)["chosen_pid"]
            explained = [run_oomdrgn(*target, "-s", kernel.vmlinux, "-q", "explain", chosen,
                                     "--json").stdout
                         for target in (("--qemu", guest.qmp_path_for_drgn), ("-c", dump))]
            assert explained[0] == explained[1] and json.loads(explained[0])["badness"]["rank"] == 1
            # No debug info: the guest's own BTF and kallsyms, read over QMP.
            nodebug = run_oomdrgn("--qemu", guest.qmp_path_for_drgn, "--debug-info", "btf",
                                  "tasks")
            assert nodebug.stdout == dumped
            assert "oomdrgn: no debug info: types " in nodebug.stderr
            kill_live = run_oomdrgn("--qemu", guest.qmp_path_for_drgn, "-s", kernel.vmlinux,
                                    "-q", "kill", "--json", 1).returncode
            assert kill_live == 0
            # Now the kernel prints its own table (sysrq-f forces an OOM kill).
            guest.cont()
            guest.run("echo f > /proc/sysrq-trigger")
            guest.wait_console(r"Out of memory: Killed process", timeout=120)
            lines = guest.kernel_lines()
        table = oom_table(lines)
        assert kill_line(lines)
        # The shell that wrote to sysrq-trigger ran between the two readings:
        # its row may differ; every other row is the same.
        ours = [l for l in live.splitlines() if not l.endswith(" sh")]
        theirs = [l for l in table if not l.endswith(" sh")]
        assert ours == theirs
        assert len(theirs) >= 2 + len(KILL_POPULATION)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(600)
def test_running_guest_with_fork_exit_storm(kernel):
    """Tasks exit and fork while oomdrgn reads a running guest: it ends, in bounded
    time, with the table (exit 0) or with the rows it could not read marked (exit 7)."""
    workdir = tempfile.mkdtemp(prefix=f"oomdrgn-test-storm-{kernel.name}-", dir="/tmp")
    try:
        with OomGuest(kernel.name, workdir=workdir) as og:
            guest = og.guest
            for m in KILL_POPULATION:
                og.spawn(m.name, anon_mb=m.anon_mb, shmem_mb=m.shmem_mb, adj=m.adj, uid=m.uid,
                         threads=m.threads, leader_exit=m.leader_exit, fork=m.fork)
            guest.start("while :; do (oompop --name storm --anon 1 --threads 2 & "
                        "p=$!; sleep 0.01; kill $p) 2>/dev/null; done")
            statuses = set()
            for _ in range(3):
                res = run_oomdrgn("--qemu", guest.qmp_path_for_drgn, "-s", kernel.vmlinux,
                                  "-q", "tasks", check_status=None)
                assert "Traceback" not in res.stderr, res.stderr
                assert res.returncode in (0, 7), res.stderr
                statuses.add(res.returncode)
                lines = res.stdout.splitlines()
                assert lines[0].startswith(("Tasks state", "[  pid  ]"))
                # The idle population is there, with its names.
                assert sum(l.endswith(" kv-forks") for l in lines) == 4
            assert guest.status() == "running"
            assert not _reads_as_static(guest, kernel)  # running: read live, every time
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
