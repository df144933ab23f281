"""``.rodata`` read from memory (:func:`oomdrgn.core.evidence.rodata`): what the
vmlinux file's ``.rodata`` section holds, without the ``.BTF`` that ``RO_DATA()``
links in before ``__end_rodata``."""

import pytest

from oomdrgn.core.evidence import rodata, rodata_holds

START, BTF, STOP, END = 0x1000, 0x3000, 0x5000, 0x6000


class Memory:
    """An image whose .rodata holds a format before the BTF and one after it."""

    def __init__(self, btf=True):
        self.mem = bytearray(END)
        self.mem[START + 8:START + 20] = b"\x016%s free\0"
        self.mem[BTF:STOP] = b"B" * (STOP - BTF)
        self.mem[STOP + 8:STOP + 16] = b"\x013late\0"
        self.symbols = {"__start_rodata": START, "__end_rodata": END}
        if btf:
            self.symbols.update(__start_BTF=BTF, __stop_BTF=STOP)
        self.reads = []

    def vmlinux_path(self):
        return None

    def symbol(self, name):
        return (self.symbols[name], 0) if name in self.symbols else None

    def read(self, address, size):
        self.reads.append((address, size))
        return bytes(self.mem[address:address + size])


def test_rodata_without_btf():
    target = Memory()
    data = rodata(target)
    assert target.reads == [(START, BTF - START), (STOP, END - STOP)]
    assert b"\x016%s free\0" in data and b"\x013late\0" in data and b"BB" not in data


def test_rodata_of_a_kernel_without_btf():
    target = Memory(btf=False)
    assert rodata(target) == bytes(target.mem[START:END])


class InPlace(Memory):
    """A port that searches memory in place (``holds``), as the ELF vmcore's does."""

    def __init__(self, answers=True, **kw):
        super().__init__(**kw)
        self.answers, self.searched = answers, []

    def holds(self, address, size, needle):
        self.searched.append((address, size))
        if not self.answers:
            return None
        return needle in bytes(self.mem[address:address + size])


@pytest.mark.parametrize("btf", [True, False])
@pytest.mark.parametrize("needle", [b"\x016%s free", b"\x013late", b"free\0", b"BB", b"\x013none"])
def test_rodata_holds_as_rodata(needle, btf):
    # In place, part by part, or read and joined: the same answer as rodata();
    # a needle with NUL (it could span a join) is looked for in the joined copy.
    want = needle in rodata(Memory(btf=btf))
    target = InPlace(btf=btf)
    assert rodata_holds(target, needle) == want
    assert bool(target.reads) == (b"\0" in needle)
    assert bool(target.searched) == (b"\0" not in needle)
    fallback = InPlace(answers=False, btf=btf)  # memory the port cannot search
    assert rodata_holds(fallback, needle) == want and fallback.reads
