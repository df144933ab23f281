import pytest

from oomdrgn.core.mmcounters import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS,
                                get_mm_counter, get_mm_rss)
from oomdrgn.core.model import MmRecord, RawCounter


def _mm(*counters):
    return MmRecord(address=0, total_vm=0, counters=tuple(counters), pgtables_bytes=0)


def test_atomic_clamps_each_counter_at_zero():
    mm = _mm(RawCounter(-3), RawCounter(10), RawCounter(2), RawCounter(5))
    assert get_mm_counter(mm, MM_FILEPAGES, "atomic") == 0
    assert get_mm_rss(mm, "atomic") == 15  # -3 is read as 0, not subtracted
    assert get_mm_counter(mm, MM_SWAPENTS, "atomic") == 2


def test_percpu_count_ignores_deltas_and_sum_adds_them():
    c = RawCounter(100, (5, -7, 30, 0))
    mm = _mm(c, RawCounter(-1, (4, 0, 0, 0)), RawCounter(0, (0,) * 4), RawCounter(0, (0,) * 4))
    assert get_mm_counter(mm, MM_FILEPAGES, "percpu-count") == 100
    assert get_mm_counter(mm, MM_FILEPAGES, "percpu-sum") == 128
    # count -1 reads as 0 approximately; with the deltas it is 3.
    assert get_mm_counter(mm, MM_ANONPAGES, "percpu-count") == 0
    assert get_mm_counter(mm, MM_ANONPAGES, "percpu-sum") == 3
    assert get_mm_rss(mm, "percpu-sum") == 131


def test_sum_clamps_after_adding():
    mm = _mm(RawCounter(2, (-5,)), RawCounter(0, (0,)), RawCounter(0, (0,)), RawCounter(0, (0,)))
    assert get_mm_counter(mm, MM_FILEPAGES, "percpu-sum") == 0


def test_sum_without_deltas_is_an_error():
    with pytest.raises(ValueError):
        get_mm_counter(_mm(RawCounter(1), RawCounter(0), RawCounter(0), RawCounter(0)),
                       MM_SHMEMPAGES, "percpu-sum")
