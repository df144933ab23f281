"""taint_flags[]'s length where the symbol's size is kallsyms' distance to the
next symbol (:func:`oomdrgn.core.dump_stack._taint_count`). Real kernels, tainted
W and O: the killed moment of tests/vm (its dump_stack() header)."""

import pytest

from oomdrgn.core.dump_stack import _taint_count
from oomdrgn.core.taint import TAINT_LETTERS, taint_run

AT = 0x1000


class Memory:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, address: int, size: int) -> bytes:
        return self.data[address - AT:address - AT + size]


def _table(count: int, size: int) -> bytes:
    out = bytearray()
    for i, letter in enumerate(TAINT_LETTERS[:count]):
        entry = bytearray(size)
        entry[0], entry[1] = letter, ord("G") if i == 0 else ord(" ")
        entry[2] = 1
        out += entry
    return bytes(out)


@pytest.mark.parametrize("size", [3, 16])  # {c_true, c_false, module}; v6.12's desc too
def test_count_ends_at_the_last_letter(size):
    # 19 entries (v6.1), then padding and the next object, inside kallsyms' size.
    data = _table(19, size) + bytes(5) + b"Zq" + bytes(64)
    assert _taint_count(Memory(data), (AT, len(data)), size, 0, 1) == 19


def test_exact_size_is_the_count():
    data = _table(18, 3)  # v5.10: the symbol's own size (DWARF)
    assert _taint_count(Memory(data + b"X X X "), (AT, len(data)), 3, 0, 1) == 18


def test_no_size_is_no_count():
    assert _taint_count(Memory(b""), (AT, 0), 3, 0, 1) == 0


def test_letters_given_must_be_the_kernels():
    # The search through .rodata (symrecover_layout.taint_flags) asks for the
    # kernel's own letters in order: a run of other upper-case letters is not it.
    data = _table(19, 3)
    assert taint_run(data, 3, 0, 1, TAINT_LETTERS) == 19
    swapped = data[:3] + bytes([ord("X")]) + data[4:]
    assert taint_run(swapped, 3, 0, 1, TAINT_LETTERS) == 1
    assert taint_run(swapped, 3, 0, 1) == 19
