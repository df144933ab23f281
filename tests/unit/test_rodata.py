"""``.rodata`` read from memory (:func:`oomdrgn.core.evidence.rodata`): what the
vmlinux file's ``.rodata`` section holds, without the ``.BTF`` that ``RO_DATA()``
links in before ``__end_rodata``."""

from oomdrgn.core.evidence import rodata

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
