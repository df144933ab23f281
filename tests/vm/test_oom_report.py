"""``oomdrgn oom-report``: the whole OOM report, rebuilt from memory, beside what each
real kernel printed (all seven kernels, both dump formats).

At the kill moment (``killed``, ``memcg_killed``, ``sysrq_killed``: the guest stopped at
``__oom_kill_process``, right after the report was printed) every part equals
the kernel's, line for line, from the ``invoked`` line to the kill line; only
the unwound frames are not held to it (the task is deeper in the OOM path than
when ``dump_stack()`` ran): they are marked so in the output. A value that moved
after the print must be shown to have moved: ``Mem-Info:`` by
:func:`tests.vm.showmem_proof.assert_same_or_moved` (with the scenario's dump at
``__show_mem()``'s call), the memcg lines by the dump taken right after they
were printed.
"""

import json
import re

import pytest

from oomdrgn.core.report_sections import split_report
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.program import open_program

from .memcg_proof import assert_same_or_usage_moved
from .oracle import FORMATS, panic_report, run_oomdrgn
from .showmem_printed import at_call, ours, report
from .showmem_proof import assert_same_or_moved

EXACT = ("invoked", "dump_stack", "memcg", "show_mem", "slab", "protection", "tasks",
         "summary", "kill")


def _kernel_report(art):
    """The console lines of the report the dump was taken in (the guest went on
    after the dump and may have printed more), from its invoked line to its kill line."""
    lines = art.console_lines
    end = lines.index(art.kill_line)
    start = max(i for i, text in enumerate(lines[:end]) if " invoked oom-killer: " in text)
    return split_report(lines[start:end + 1])


def _oomdrgn_report(kernel, art, fmt, *extra):
    res = run_oomdrgn("-q", "-c", art.vmcores[fmt], "-s", kernel.vmlinux, "oom-report",
                      "--json", *extra)
    return json.loads(res.stdout)


def _cores(art, fmt):
    """``open_program(core=...)`` of the dump of format ``fmt`` (raw: every bank)."""
    return art.target_args(fmt)[1::2]


def _check_parts(printed, doc, memcg, kernel=None, art=None, fmt=None, show_mem=True):
    sections = {s["name"]: s for s in doc["sections"]}
    expected = {"invoked", "dump_stack", "tasks", "summary", "kill"}
    if memcg or show_mem:
        expected.add("memcg" if memcg else "show_mem")
    assert expected <= set(printed), sorted(printed)
    for name in EXACT:
        if name not in printed and name not in sections:
            continue
        assert name in sections, f"oomdrgn has no {name} part; the kernel printed it"
        assert sections[name]["exact"]
        if name == "show_mem" and sections[name]["lines"] != printed.get(name):
            # A counter moved between the print and the dump (the other CPU
            # runs on): proven as tests/vm/test_show_mem.py proves it, or failed.
            prog = open_program(core=_cores(art, fmt), vmlinux=[str(kernel.vmlinux)])
            reader = reader_for(prog)
            # Counted at __show_mem()'s call too, with the printed arguments.
            _, _, args = report(art.console_lines, reader)
            before = at_call(art, kernel.vmlinux, lambda r: ours(r, args).lines)
            assert_same_or_moved(prog, reader, art, printed["show_mem"],
                                 sections[name]["lines"], before)
            continue
        if name == "memcg" and sections[name]["lines"] != printed.get(name):
            # Moved since the print: the dump taken right after the print has them all.
            _assert_moved_after_the_print(kernel, art, fmt, printed["memcg"],
                                          sections[name]["lines"])
            continue
        if name == "kill" and sections[name]["lines"] != printed.get(name):
            _assert_victim_synced_its_rss(kernel, art, fmt, printed["kill"][0],
                                          sections[name]["lines"][0])
            continue
        assert sections[name]["lines"] == printed.get(name), name
    frames = sections["frames"]  # never held to the kernel's text, and marked so
    assert not frames["exact"]
    if frames["lines"]:
        assert "not the ones dump_stack() printed" in frames["note"]
    else:  # drgn gives no stack trace on QEMU's arm64 kdump files (no registers)
        assert "no frames" in frames["note"]
        # (nor on raw RAM images: no registers at all)
        assert kernel is None or fmt == "raw" or kernel.arch == "arm64" and fmt == "kdump-zlib"


def _assert_moved_after_the_print(kernel, art, fmt, printed, now):
    from oomdrgn.core.memcg_meminfo import mem_cgroup_print_oom_meminfo
    prog = open_program(core=str(art.print_vmcores[fmt]), vmlinux=[str(kernel.vmlinux)])
    reader = reader_for(prog)
    at_print = mem_cgroup_print_oom_meminfo(reader, art.memcg).lines
    assert len(at_print) == len(printed)
    # Equal there, or the usage fell while the lines printed (proven).
    assert_same_or_usage_moved(prog, reader, art, printed, at_print)
    shape = re.compile(r"\d+")
    assert [shape.sub("#", line) for line in now] == [shape.sub("#", line) for line in printed]


_RSS = re.compile(r"\b(anon|file|shmem)-rss:(\d+)kB")
#: enum mm_counter_type's names, by the kill line's field.
_COUNTER = {"file": "MM_FILEPAGES", "anon": "MM_ANONPAGES", "shmem": "MM_SHMEMPAGES"}


def _assert_victim_synced_its_rss(kernel, art, fmt, printed, now):
    """The kill line's RSS went up between the dump and the print by exactly what
    the victim had counted in its own task_struct and not yet added to its mm
    (SPLIT_RSS_COUNTING, before f1a7941243c1 ("mm: convert mm's rss stats into
    percpu_counter") (in v6.2)): do_send_sig_info() woke it on another CPU, and
    do_exit() -> exit_mm() -> sync_mm_rss() added them before pr_err() read the mm."""
    from drgn.helpers.linux.pid import find_task
    assert _RSS.sub("", printed) == _RSS.sub("", now), (printed, now)
    prog = open_program(core=_cores(art, fmt), vmlinux=[str(kernel.vmlinux)])
    pid = int(re.search(r"Killed process (\d+) ", now).group(1))
    task = find_task(prog, pid)
    assert task and task.type_.type.has_member("rss_stat"), "the kill line moved, with no pending RSS"
    kib = prog["PAGE_SIZE"].value_() // 1024
    for (field, was), (_, then) in zip(_RSS.findall(now), _RSS.findall(printed)):
        pending = task.rss_stat.count[prog[_COUNTER[field]]].value_()
        assert int(then) == int(was) + pending * kib, (field, was, pending, then)


@pytest.mark.parametrize("fmt", FORMATS)
def test_global_oom_report_at_the_kill_moment(kernel, killed, fmt):
    doc = _oomdrgn_report(kernel, killed, fmt)
    assert doc["control"]["gfp_mask"] is not None
    _check_parts(_kernel_report(killed), doc, memcg=False, kernel=kernel, art=killed, fmt=fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_memcg_oom_report_at_the_kill_moment(kernel, memcg_killed, fmt):
    doc = _oomdrgn_report(kernel, memcg_killed, fmt)
    assert doc["control"]["memcg"] == memcg_killed.memcg
    _check_parts(_kernel_report(memcg_killed), doc, memcg=True, kernel=kernel,
                 art=memcg_killed, fmt=fmt)


@pytest.mark.kernels("6.1", "7.x", "6.12-arm64")
@pytest.mark.parametrize("fmt", FORMATS)
def test_report_with_the_unreclaimable_slab_dump(kernel, slab, fmt):
    # Unreclaimable slab outweighs the LRU pages: the kernel printed its slab dump.
    printed = _kernel_report(slab)
    assert len(printed.get("slab", [])) > 20
    _check_parts(printed, _oomdrgn_report(kernel, slab, fmt), memcg=False, kernel=kernel,
                 art=slab, fmt=fmt)


@pytest.mark.kernels("7.x")
@pytest.mark.parametrize("fmt", FORMATS)
def test_report_of_an_oom_confined_by_a_cpuset(kernel, numa, fmt):
    # Two nodes, the hog's cpuset allows node 0 only: constraint=CONSTRAINT_CPUSET,
    # the node filter of __show_mem() and the cpuset's totalpages for the victim.
    printed = _kernel_report(numa)
    assert "constraint=CONSTRAINT_CPUSET" in printed["summary"][0]
    doc = _oomdrgn_report(kernel, numa, fmt)
    assert doc["control"]["constraint"]["name"] == "CONSTRAINT_CPUSET"
    assert "taken" not in doc["control"]["sources"]["constraint"]  # ours == the kernel's
    _check_parts(printed, doc, memcg=False, kernel=kernel, art=numa, fmt=fmt)


@pytest.mark.kernels("5.10", "6.1", "6.12", "7.x", "6.12-arm64")
@pytest.mark.parametrize("fmt", FORMATS)
def test_report_of_sysrq_f_on_a_kworker(kernel, sysrq_killed, fmt):
    # sysrq-f: moom_callback() runs the OOM killer on a kworker with order -1;
    # dump_stack() prints print_worker_info()'s "Workqueue: events moom_callback".
    printed = _kernel_report(sysrq_killed)
    invoked = printed["invoked"][0]
    assert invoked.startswith("kworker/") and ", order=-1," in invoked, invoked
    assert any(l.startswith("Workqueue: ") for l in printed["dump_stack"]), printed["dump_stack"]
    doc = _oomdrgn_report(kernel, sysrq_killed, fmt)
    assert doc["control"]["order"] == -1
    _check_parts(printed, doc, memcg=False, kernel=kernel, art=sysrq_killed, fmt=fmt)


def test_no_oom_in_progress_at_a_quiet_moment(kernel, idle):
    # A guest dumped with no OOM going on (oom_lock free, whatever a CPU was
    # running): no invoked line and no stack; the defaults, and the victim
    # select_bad_process() would choose.
    res = run_oomdrgn("-q", "-c", idle.vmcore, "-s", kernel.vmlinux, "oom-report", "--json")
    doc = json.loads(res.stdout)
    assert doc["control"]["current"] is None
    assert doc["control"]["sources"]["current"] == "none: no OOM in progress"
    parts = {s["name"]: s["lines"] for s in doc["sections"]}
    assert not parts.get("invoked") and not parts.get("dump_stack")
    assert parts["show_mem"][0] == "Mem-Info:" and len(parts["tasks"]) > 2


def _memory_comparison(kernel, art, fmt):
    res = run_oomdrgn("-q", "-c", art.vmcores[fmt], "-s", kernel.vmlinux, "report", "--json")
    return json.loads(res.stdout)["reports"][-1]["memory_comparison"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_at_the_panic_sets_every_memory_line_beside_memory(kernel, panic, fmt):
    # panic_on_oom: the report was printed, then the kernel panicked (the other
    # CPUs stopped, counters may have moved): every logged line is the same now,
    # or reported as moved with the values that moved; none goes unaccounted.
    printed = panic_report(panic)
    mc = _memory_comparison(kernel, panic, fmt)
    assert mc is not None and set(mc["parts"]) - {"protection"} == {"show_mem"}
    lines = mc["parts"]["show_mem"]
    assert [c["logged"] for c in lines] == printed["show_mem"]
    for c in lines:
        assert c["verdict"] in ("same", "moved"), c
        if c["verdict"] == "moved":
            assert c["moved"] or c["notes"], c
    assert mc["counts"].get("same", 0) > len(lines) // 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_of_a_memcg_panic_sets_the_memcg_lines_beside_memory(kernel, memcg_panicked, fmt):
    printed = panic_report(memcg_panicked)
    mc = _memory_comparison(kernel, memcg_panicked, fmt)
    assert mc["args"]["memcg"] == memcg_panicked.memcg
    lines = mc["parts"]["memcg"]
    # The log is the printk ring's: its stats record is whole where the console
    # (5.10-6.4: one record, 1024-byte console buffer) showed only its first lines.
    logged = [c["logged"] for c in lines]
    assert logged[:len(printed["memcg"])] == printed["memcg"]
    assert all(c["verdict"] in ("same", "moved") for c in lines), lines
