"""kernel_info(): eras and counter rules read from the synthetic kernel."""

import pytest

import oomdrgn
from oomdrgn.core.errors import OomdrgnError

from .kernel import LAYOUT_NAMES, LAYOUTS, build
from .kernel_rules import CPUS, kernel_counter, standard_processes

CONSUMERS = ("table", "kill", "badness")


def _rule(layout):
    if layout.counters == "atomic":
        return "atomic"
    return "percpu-sum" if layout.exact else "percpu-count"


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_eras_and_rules(name):
    layout = LAYOUTS[name]
    info = oomdrgn.kernel_info(build(name, standard_processes(), cpus=CPUS))
    assert info.eras.table.name == layout.table
    assert info.eras.kill.name == layout.kill
    assert "format found in the kernel's .rodata" in info.eras.evidence
    assert "guessed" not in info.eras.evidence
    assert {c: info.rules[c] for c in CONSUMERS} == {c: _rule(layout) for c in CONSUMERS}
    assert info.counter_layout == layout.counters
    assert info.pgtables == layout.pgtables
    assert info.page_shift == 12 and info.arch == "x86_64"
    assert name not in info.describe()  # no version string anywhere


def test_percpu_sum_override_on_v6_12():
    layout = LAYOUTS["v6.12"]
    procs = standard_processes()
    prog = build("v6.12", procs, cpus=CPUS)
    info = oomdrgn.kernel_info(prog, counter_rule="percpu-sum")
    assert {info.rules[c] for c in CONSUMERS} == {"percpu-sum"}
    assert oomdrgn.kernel_info(prog).rules["table"] == "percpu-count"  # default unchanged
    # With the override the values follow the exact rule (as v7.0 computes them).
    exact = LAYOUTS["v7.0"]
    hog = next(p for p in procs if p.tgid == 1234)
    (row,) = [r for r in oomdrgn.task_rows(prog, counter_rule="percpu-sum") if r.tgid == 1234]
    assert row.rss_anon == kernel_counter(exact, CPUS, hog.mm, "anon")
    assert row.rss_anon != kernel_counter(layout, CPUS, hog.mm, "anon")
    line = oomdrgn.kill_line(prog, 1234, counter_rule="percpu-sum")
    page_shift = 12
    assert f"anon-rss:{kernel_counter(exact, CPUS, hog.mm, 'anon') << (page_shift - 10)}kB" in line


@pytest.mark.parametrize("rule", ["percpu-sum", "percpu-count"])
def test_percpu_override_rejected_on_v5_10(rule):
    prog = build("v5.10", standard_processes(), cpus=CPUS)
    with pytest.raises((ValueError, OomdrgnError)):
        oomdrgn.kernel_info(prog, counter_rule=rule)
    with pytest.raises((ValueError, OomdrgnError)):
        oomdrgn.tasks_table(prog, counter_rule=rule)


def test_unknown_rule_rejected():
    prog = build("v6.12", [], cpus=CPUS)
    with pytest.raises((ValueError, OomdrgnError)):
        oomdrgn.kernel_info(prog, counter_rule="exact-ish")


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_without_rodata_formats_are_guessed_from_layout(name):
    layout = LAYOUTS[name]
    info = oomdrgn.kernel_info(build(name, standard_processes(), cpus=CPUS, rodata=False))
    assert "guessed" in info.eras.evidence
    assert {info.rules[c] for c in CONSUMERS} == {_rule(layout)}
    if layout.pgtables == "ptes":
        assert info.eras.table.name == "T1"


@pytest.mark.parametrize("name", ["v4.4", "v4.14"])
def test_without_rodata_old_kill_line_guess(name):
    info = oomdrgn.kernel_info(build(name, [], rodata=False))
    assert info.eras.kill.name == LAYOUTS[name].kill
