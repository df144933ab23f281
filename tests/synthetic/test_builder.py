"""The synthetic kernels themselves: layouts, strings, and what drgn's helpers see."""

import pytest
from drgn import TypeKind, offsetof, sizeof
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.list import list_for_each_entry

from oomdrgn.core.formats import KILL_FORMATS, TABLE_FORMATS

from .kernel import LAYOUT_NAMES, LAYOUTS, Cpus, build
from .kernel_rules import CPUS, standard_processes


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_rodata_holds_exactly_the_eras_strings(name):
    layout = LAYOUTS[name]
    prog = build(name, [])
    start = prog.symbol("__start_rodata").address
    rodata = prog.read(start, prog.symbol("__end_rodata").address - start)
    tables = {f.name for f in TABLE_FORMATS if b"\x016" + f.row.encode() + b"\0" in rodata}
    kills = {f.name for f in KILL_FORMATS if b"\x013" + f.line.encode() + b"\0" in rodata}
    assert tables == {layout.table} and kills == {layout.kill}


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_struct_layouts(name):
    layout = LAYOUTS[name]
    prog = build(name, [])
    mm = prog.type("struct mm_struct")
    rss = mm.member("rss_stat").type
    nr = 4 if layout.shmem else 3
    if layout.counters == "atomic":
        assert rss.kind == TypeKind.STRUCT and rss.member("count").type.length == nr
    else:
        assert rss.kind == TypeKind.ARRAY and rss.length == nr
        fbc = rss.type
        assert offsetof(fbc, "count") % 8 == 0 and sizeof(fbc.member("counters").type) == 8
    assert mm.has_member("pgtables_bytes") == (layout.pgtables == "bytes")
    assert mm.has_member("nr_ptes") == (layout.pgtables == "ptes")
    task = prog.type("struct task_struct")
    assert task.has_member("thread_group") == layout.thread_group
    for t in (mm, task, prog.type("struct signal_struct")):
        offsets = [m.offset for m in t.members]
        assert offsets == sorted(offsets) and sizeof(t) % 8 == 0
    assert (prog.constant("MM_SHMEMPAGES").value_() == 3) if layout.shmem else True
    if not layout.shmem:
        with pytest.raises(LookupError):
            prog.constant("MM_SHMEMPAGES")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_drgn_helpers_read_it(arch):
    procs = standard_processes()
    cpus = Cpus(possible=6, online=frozenset({0, 2, 5}), dying=frozenset({1}))
    prog = build("v7.0", procs, cpus=cpus, arch=arch, page_shift=16)
    assert list(for_each_possible_cpu(prog)) == list(range(6))
    assert list(for_each_online_cpu(prog)) == [0, 2, 5]
    tasks = list_for_each_entry("struct task_struct", prog["init_task"].tasks.address_of_(),
                                "tasks")
    assert [t.pid.value_() for t in tasks] == [p.tgid for p in procs]
    assert prog["PAGE_SHIFT"].value_() == 16
    assert ("AARCH64" in str(prog.platform.arch)) == (arch == "aarch64")


def test_default_cpus():
    assert set(CPUS.online) < set(range(CPUS.possible))  # a possible, offline CPU exists
