"""No debug info, where the kernel lacks what it needs (no kernel here is built so)."""

import drgn
import pytest

from oomdrgn.core.errors import EXIT_DEBUGINFO, OomdrgnError
from oomdrgn.drgn.nodebug import _btf_blob


class _Kallsyms:
    """kallsyms of a kernel built without CONFIG_DEBUG_INFO_BTF: no __start_BTF."""

    def __init__(self, symbols):
        self.symbols = symbols

    def address_of(self, name):
        return self.symbols.get(name)


def test_kernel_without_btf():
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    rodata = 0xffffffff82000000
    prog.add_memory_segment(rodata, 8 << 20, lambda a, n, o, p: bytes(n))  # .rodata: zeros
    ks = _Kallsyms({"__start_rodata": rodata, "__end_rodata": rodata + (8 << 20)})
    with pytest.raises(OomdrgnError) as e:
        _btf_blob(prog, ks)
    assert e.value.status == EXIT_DEBUGINFO
    assert "CONFIG_DEBUG_INFO_BTF" in str(e.value) and "-s VMLINUX" in str(e.value)
