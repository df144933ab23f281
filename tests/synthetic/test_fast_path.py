"""The core's raw reads over the port equal drgn Objects, on every synthetic era.

The real-kernel suite checks the same on every real dump; here every layout
no kernel of the suite offers (atomic counters without MM_SHMEMPAGES, nr_ptes,
unsigned oom_badness, 16/64 KiB pages, mm_flags_t, ...) is covered too.
"""

import pytest

from oomdrgn.core.errors import ReadError
from oomdrgn.drgn.backend import DrgnReader

from .kernel import LAYOUT_NAMES, build
from .kernel_rules import CPUS, standard_processes


@pytest.mark.parametrize("percpu", [False, True], ids=["count", "percpu"])
@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_raw_records_equal_drgn_objects(name, percpu):
    reader = DrgnReader(build(name, standard_processes(), cpus=CPUS))
    if reader.info.counter_layout != "percpu":
        percpu = False  # atomic counters have no per-CPU part
    seen = 0
    for p in reader.processes():
        for t in reader.threads(p):
            try:
                slow = reader.task_slow(t)
            except ReadError:  # an unreadable task must be so on both paths
                with pytest.raises(ReadError):
                    reader.task(t)
                continue
            assert reader.task(t) == slow
            if slow.mm:
                assert reader.mm(slow.mm, percpu) == reader.mm_slow(slow.mm, percpu)
                seen += 1
    assert seen >= 5
