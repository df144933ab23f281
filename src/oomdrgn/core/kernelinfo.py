"""What oomdrgn knows about the target kernel, and the rules it chose (pure).

A backend gathers the evidence (data layout, format strings, call targets);
the decisions are made here, once, for every backend.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from .eras import Eras, detect_eras
from .mmcounters import COUNTER_RULES
from .record import record

__all__ = ["KernelInfo", "Evidence", "decide", "CONSUMERS"]

# The kernel functions whose counter reads oomdrgn reproduces: the table rows,
# the kill line, and badness (victim choice and /proc/PID/oom_score).
CONSUMERS = {"table": "dump_task", "kill": "__oom_kill_process", "badness": "oom_badness"}


@record(frozen=True)
class Evidence:
    """Facts a backend read from the target."""

    arch: str
    page_shift: int
    counter_layout: str  # "atomic" (before v6.2) or "percpu" (v6.2+)
    pgtables: str  # "bytes" (v4.15+) or "ptes" (nr_ptes/nr_pmds)
    # the kernel image's .rodata if it could be read, or what answers `in` for it
    rodata: Optional[Any]
    # For each consumer function: True/False whether it calls
    # __percpu_counter_sum, None if its code could not be read.
    calls_sum: Dict[str, Optional[bool]]
    has_shmem: bool = True  # enum has MM_SHMEMPAGES (v4.5+)
    badness_return: Optional[str] = None  # C return type of oom_badness()


@record(frozen=True)
class KernelInfo:
    arch: str
    page_shift: int
    counter_layout: str
    pgtables: str
    eras: Eras
    rules: Dict[str, str]  # consumer -> counter rule
    rule_evidence: Dict[str, str]  # consumer -> why
    badness_era: str = "long"  # "long" (v5.9+) or "unsigned long" (v4.17..v5.8)

    def describe(self) -> str:
        """One line for the user: which formats and counter rules are in use."""
        rules = ", ".join(f"{c}={self.rules[c]} ({self.rule_evidence[c]})" for c in CONSUMERS)
        return f"formats: {self.eras.evidence}; counters: {rules}"


def _rule(consumer: str, ev: Evidence, override: Optional[str]) -> tuple:
    if override:
        if override not in COUNTER_RULES:
            raise ValueError(f"unknown counter rule {override!r} (one of {', '.join(COUNTER_RULES)})")
        if (override == "atomic") != (ev.counter_layout == "atomic"):
            raise ValueError(f"counter rule {override!r} does not fit this kernel's "
                             f"{ev.counter_layout} rss_stat layout")
        return override, "set by the user"
    if ev.counter_layout == "atomic":
        return "atomic", "mm->rss_stat is atomic_long_t[]"
    func = CONSUMERS[consumer]
    calls = ev.calls_sum.get(consumer)
    if calls is None:
        # The function's code was not readable (or not found): follow
        # oom_badness, the one exported function every kernel has.
        calls, func = ev.calls_sum.get("badness"), CONSUMERS["badness"]
    if calls is None:
        return "percpu-count", "percpu_counter layout; call targets unreadable, assumed approximate"
    if calls:
        return "percpu-sum", f"{func} calls __percpu_counter_sum"
    return "percpu-count", f"{func} does not call __percpu_counter_sum"


def decide(ev: Evidence, counter_rule: Optional[str] = None) -> KernelInfo:
    """Choose formats and counter rules from *ev*; *counter_rule* overrides."""
    fallback_table = {"ptes": "T1"}.get(ev.pgtables, "T4" if ev.counter_layout == "percpu" else "T3")
    if ev.pgtables == "ptes":  # before v4.15: the two-line kill report
        fallback_kill = "K2" if ev.has_shmem else "K1"
    elif ev.counter_layout == "percpu" and any(ev.calls_sum.values()):
        fallback_kill = "K5"
    else:
        fallback_kill = "K4"
    eras = detect_eras(ev.rodata, fallback_table, fallback_kill)
    rules, why = {}, {}
    for consumer in CONSUMERS:
        rules[consumer], why[consumer] = _rule(consumer, ev, counter_rule)
    # Since Linux kernel commit 9066e5cfb73c ("mm, oom: make the calculation
    # of oom badness more accurate") (in v5.9), oom_badness() returns long.
    era = "unsigned long" if ev.badness_return in ("unsigned long", "unsigned int") else "long"
    return KernelInfo(ev.arch, ev.page_shift, ev.counter_layout, ev.pgtables, eras, rules, why,
                      era)
