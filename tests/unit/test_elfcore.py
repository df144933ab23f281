"""The ELF vmcore port with no debugger (:mod:`oomdrgn.elfcore`) on a hand-made
core file: what it reads, and what it leaves to drgn. Real kernels:
tests/vm/test_elfcore_real.py."""

import struct

import pytest

from oomdrgn.core.layoutcache import Layout, btf_check, save_layout
from oomdrgn.core.port import Member
from oomdrgn.core.rawimage import PhysicalMemory, elf_banks
from oomdrgn.core.elffile import load_segments
from oomdrgn.core.elffile import core_notes
from oomdrgn.elfcore.open import cached_reader
from oomdrgn.elfcore.port import CachedPort, Unanswered

TEXT = 0xffffffff80001000  # the image at physical 0x1000 (phys_base 0)
DIRECT = 0xffff888000000000
RAM = 64 << 10
INFO = (b"OSRELEASE=6.1.0-test\nBUILD-ID=abcdef12\nPAGESIZE=4096\n"
        b"NUMBER(phys_base)=0\nKERNELOFFSET=0\n")


def _core(path, ram: bytes) -> None:
    name = b"VMCOREINFO\0\0"
    note = struct.pack("<III", 11, len(INFO), 0) + name + INFO + bytes(-len(INFO) % 4)
    notes_at, load_at = 64 + 2 * 56, 64 + 2 * 56 + len(note)
    head = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9))
    head += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    ph = struct.pack("<IIQQQQQQ", 4, 0, notes_at, 0, 0, len(note), len(note), 4)
    ph += struct.pack("<IIQQQQQQ", 1, 7, load_at, 0, 0, len(ram), len(ram), 4096)
    path.write_bytes(bytes(head) + ph + note + ram)


def _ram() -> bytearray:
    ram = bytearray(RAM)
    struct.pack_into("<QQQ", ram, 0x1100, DIRECT, 0, RAM >> 12)  # page_offset_base, min/max_pfn
    ram[0x2000:0x2004] = b"BTF!"
    ram[0x8000:0x8008] = b"direct!!"
    return ram


def _layout() -> Layout:
    layout = Layout("abcdef12", TEXT + 0x1000, btf_check(bytes(_ram()[0x2000:0x2000 + (64 << 10)])))
    for name, address in (("_text", TEXT), ("_end", TEXT + 0x4000), ("page_offset_base", TEXT + 0x100),
                          ("min_low_pfn", TEXT + 0x108), ("max_pfn", TEXT + 0x110)):
        layout.put_symbol(name, (address, 8), 0)
    layout.put_member("struct task_struct", "pid", Member(2416, 4, "int", True))
    layout.put_member("struct mm_struct", "nr_ptes", None)
    return layout


def _port(tmp_path):
    path = tmp_path / "vmcore"
    _core(path, bytes(_ram()))
    mem = PhysicalMemory(elf_banks(str(path), load_segments(str(path))))
    arch, notes = core_notes(str(path))
    info = dict(line.split("=", 1) for line in INFO.decode().split())
    return CachedPort(mem, info, INFO, _layout(), arch), path


def test_reads_the_image_and_the_direct_map(tmp_path):
    port, _ = _port(tmp_path)
    assert port.read(DIRECT + 0x8000, 8) == b"direct!!"
    assert port.read(TEXT + 0x1000, 4) == b"BTF!"
    assert port.member("struct task_struct", "pid").offset == 2416
    with pytest.raises(LookupError):  # cached as missing: the kernel has none
        port.member("struct mm_struct", "nr_ptes")


@pytest.mark.parametrize("ask", [
    lambda p: p.read(TEXT + 0x4000, 8),  # past _end
    lambda p: p.read(DIRECT + RAM, 8),  # past max_pfn
    lambda p: p.read(0xffffc90000000000, 8),  # vmalloc: page tables
    # Not cached, and no kallsyms or BTF in the dump to answer from.
    lambda p: p.member("struct task_struct", "comm"),
    lambda p: p.symbol("init_task"),
    # Frames and symbol names: drgn's.
    lambda p: p.stack_frames(DIRECT + 0x8000),
    lambda p: p.symbol_name(TEXT + 0x10),
])
def test_leaves_the_rest_to_drgn(tmp_path, ask):
    port, _ = _port(tmp_path)
    with pytest.raises(Unanswered):
        ask(port)


def test_hooks_answer_as_drgns_port_without_debug_info(tmp_path):
    # As oomdrgn.drgn.btfport.BtfPort: no PID hash lookup (the core walks the
    # task list), no struct oom_control (a frame's variable), no stopped vCPU.
    port, _ = _port(tmp_path)
    assert port.find_task(1) is None
    assert port.oom_control(DIRECT + 0x8000) is None
    assert port.stopped_task([DIRECT + 0x8000]) is None


def test_no_warm_cache_no_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path / "layouts"))
    _, path = _port(tmp_path)
    assert cached_reader(str(path)) is None  # no layout of the build
    layout = _layout()
    layout.btf_check = "0:1"
    save_layout(layout)
    assert cached_reader(str(path)) is None  # another BTF: never trusted
    (tmp_path / "other").write_bytes(b"\x7fELF\x02\x01" + bytes(58))
    assert cached_reader(str(tmp_path / "other")) is None  # no core
