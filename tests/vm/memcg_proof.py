"""Proof that a memcg's ``memory: usage`` moved between the kernel's print and a
dump: only that value differs, it fell by at most a charge stock's worth, and a
per-CPU stock of the OOM's subtree or a task that ran after the print shows who
uncharged."""

import re

from drgn.helpers.linux.cgroup import cgroup_path
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.percpu import per_cpu

from .showmem_proof import _ran_after, stamped

_COUNTER = re.compile(r"^(memory|swap|memory\+swap|kmem): usage (\d+)kB, limit (\d+)kB, "
                      r"failcnt (\d+)$")
#: the most pages a per-CPU charge stock holds (MEMCG_CHARGE_BATCH: 32 before
#: v6.1's 64; refill_stock() drains above it)
_STOCK_MAX_PAGES = 64



def assert_same_or_usage_moved(prog, reader, art, printed, ours, formats="") -> bool:
    """*ours* (the memcg lines from memory) is *printed*, or differs in the
    ``memory: usage`` line alone, proven moved (:func:`prove_usage_moved`);
    returns whether it moved."""
    moved = [i for i, (a, b) in enumerate(zip(printed, ours)) if a != b]
    if not moved:
        return False
    assert moved == [0], (formats, [(printed[i], ours[i]) for i in moved])
    prove_usage_moved(prog, reader, art, printed[0], ours[0])
    return True


def stocked_memcgs(prog):
    """The memcgs the per-CPU charge stocks hold pages of: ``memcg_stock``'s
    ``cached``/``nr_pages`` (an array of both in later kernels), and the memcgs of
    the cached ``obj_cgroup`` with bytes."""
    held = set()
    for cpu in for_each_online_cpu(prog):
        stock = per_cpu(prog["memcg_stock"], cpu)
        cached, pages = stock.cached, stock.nr_pages
        pairs = (zip(cached, pages) if cached.type_.kind.name == "ARRAY"
                 else [(cached, pages)])
        held |= {cgroup_path(m.css.cgroup).decode() for m, n in pairs if m and n}
        objcg = getattr(stock, "cached_objcg", None)  # none in memcg_stock on 7.x
        if objcg is not None and objcg and stock.nr_bytes:
            held.add(cgroup_path(objcg.memcg.css.cgroup).decode())
    return held


def prove_usage_moved(prog, reader, art, printed, ours):
    """``printed`` and ``ours`` differ in the ``memory: usage`` value only: the
    limit and failcnt are the same, the usage fell by at most a stock's worth of
    pages, and a per-CPU charge stock holds pages of a memcg of the OOM's subtree
    at the dump. drain_all_stock() empties the OOM CPU's stock of every memcg of
    the subtree (synchronously) before the OOM is declared, so such a stock was
    refilled since; a refill for another memcg drains the pages of the previous
    one: the uncharge seen here. On cgroup v1 the kernel's own ``memory+swap``
    line, printed after the ``memory`` line, already saw the lower usage. Else a
    task other than the OOM's ran after the line was printed."""
    p, o = _COUNTER.match(printed), _COUNTER.match(ours)
    assert p and o and p.group(1) == o.group(1) == "memory", (printed, ours)
    assert (p.group(3), p.group(4)) == (o.group(3), o.group(4)), (printed, ours)
    fell_kb = int(p.group(2)) - int(o.group(2))
    page_kb = 1 << (reader.info.page_shift - 10)
    assert 0 < fell_kb <= _STOCK_MAX_PAGES * page_kb, (printed, ours)
    held = stocked_memcgs(prog)
    if any(m == art.memcg or m.startswith(art.memcg + "/") for m in held):
        return
    # Or, as for Mem-Info (showmem_proof): another task ran after the line was
    # printed (its se.exec_start, never ahead of the printk clock, is later), one
    # that could uncharge (reclaim freeing a page of the memcg, an exit).
    when = next((t for t, line in stamped(art.workdir) if line == printed), None)
    ran = [] if when is None else _ran_after(prog, reader.current_task(), when)
    assert ran, (printed, ours, held)
