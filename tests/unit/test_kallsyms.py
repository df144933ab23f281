"""kallsyms tables no kernel of the suite has, made by hand as ``scripts/kallsyms.c``
lays them out (64-bit little-endian, ``ALGN`` 8): absolute ``kallsyms_addresses``
(no CONFIG_KALLSYMS_BASE_RELATIVE, before v6.11), "big" names of 128 tokens and
more (two length bytes, v6.1+), and a one-byte length of 128 before v6.1. The
encodings the suite's kernels do have are tested on their dumps
(tests/vm/test_kallsyms_real.py)."""

import struct

import pytest

from oomdrgn.core.kallsyms import MAX_SYMBOL_LENGTH, Kallsyms, KallsymsError, read_kallsyms
from oomdrgn.core.errors import EXIT_DEBUGINFO, OomdrgnError
from oomdrgn.core.kallsyms_sorted import SortedKallsyms
from oomdrgn.core.port import Fault

TEXT = 0xffffffff81000000
RODATA = 0xffffffff81200000
DATA = 0xffffffff81400000
# Multi-character tokens on spare codes; one spans the type and the name.
EXTRA = ["tsym_", "_s", "init_", "ext", "ta", "sk"]


def _symbols(long_name=None):
    syms = [("T", "_text", TEXT), ("T", "_stext", TEXT), ("t", "startup", TEXT + 0x40)]
    syms += [("t", f"sym_{i:03d}", TEXT + 0x100 + 0x20 * i) for i in range(300)]
    if long_name:
        syms.insert(5, ("t", long_name, TEXT + 0x110))
    syms += [("D", "init_task", DATA + 0x100), ("D", "init_uts_ns", DATA + 0x1000)]
    return sorted(syms, key=lambda s: s[2])


def _tokens(syms):
    used = sorted({ord(c) for t, n, _ in syms for c in t + n})
    table = [""] * 256
    for c in used:
        table[c] = chr(c)
    spare = [i for i in range(256) if not table[i]]
    for code, tok in zip(spare, EXTRA):
        table[code] = tok
    return table


def _compress(text, table):
    out, i = [], 0
    multi = sorted((t, c) for c, t in enumerate(table) if len(t) > 1)
    while i < len(text):
        best = max((t for t, _ in multi if text.startswith(t, i)), key=len, default=text[i])
        out.append(table.index(best))
        i += len(best)
    return bytes(out)


def _names(syms, table, big):
    names, markers = bytearray(), []
    for i, (t, n, _) in enumerate(syms):
        if i % 256 == 0:
            markers.append(len(names))
        data = _compress(t + n, table)
        if big and len(data) > 0x7F:
            names += bytes([len(data) & 0x7F | 0x80, len(data) >> 7])
        else:  # before v6.1: one byte, whatever its bit 7
            names.append(len(data))
        names += data
    return bytes(names), markers


class Image:
    """The tables at RODATA (``.rodata`` of a made-up kernel), readable as memory."""

    def __init__(self, syms, *, big=False, absolute=False, seqs=None):
        table = _tokens(syms)
        names, markers = _names(syms, table, big)
        tokens = b"".join(t.encode() + b"\0" for t in table)
        index = struct.pack("<256H", *[sum(len(t) + 1 for t in table[:i]) for i in range(256)])
        self.mem, self.at = bytearray(), {}
        n = len(syms)
        if absolute:  # the v5.10 order: addresses, num_syms, names, markers, tokens
            self._put("addresses", struct.pack(f"<{n}Q", *[a for *_, a in syms]))
        else:
            base = syms[0][2]
            self._put("offsets", struct.pack(f"<{n}I", *[a - base for *_, a in syms]))
            self._put("relative_base", struct.pack("<Q", base))
        self._put("num_syms", struct.pack("<I", n))
        self._put("names", names)
        self._put("markers", struct.pack(f"<{len(markers)}I", *markers))
        if seqs is not None:  # Debian's 6.1 (v6.2, v6.3): before the token table
            self._put("seqs_of_names", b"".join(i.to_bytes(3, "big") for i in seqs))
        self._put("token_table", tokens)
        self._put("token_index", index)
        self.syms = syms

    def _put(self, label, data):
        self.mem += bytes(-len(self.mem) % 8)
        self.at[label] = RODATA + len(self.mem)
        self.mem += data

    def read(self, address, size):
        """Memory: the tables' pages, nothing else."""
        at = address - RODATA
        if not 0 <= at <= -len(self.mem) % 4096 + len(self.mem) - size:
            raise Fault("out of the image", address)
        return bytes(self.mem[at:at + size].ljust(size, b"\0"))

    def vmcoreinfo(self, tables=True):
        info = {"OSRELEASE": "0.0", "SYMBOL(_stext)": f"{TEXT:x}",
                "SYMBOL(init_uts_ns)": f"{DATA + 0x1000:x}", "KERNELOFFSET": "0"}
        if tables:
            info.update({f"SYMBOL(kallsyms_{k})": f"{v:x}" for k, v in self.at.items()
                         if k != "seqs_of_names"})  # VMCOREINFO does not name it
        return info


def _both(image):
    """The table read where VMCOREINFO says, and found by its layout."""
    return [read_kallsyms(image.read, image.vmcoreinfo(tables=t)) for t in (True, False)]


def _same(ks, syms):
    assert [(t, n, a) for n, t, a in zip(ks.names, ks.types, ks.addresses)] == syms


def test_absolute_addresses():
    image = Image(_symbols(), absolute=True)
    for ks in _both(image):
        _same(ks, image.syms)


def test_big_names():
    long_name = "x" * 200 + "_end_of_a_long_rust_symbol"
    image = Image(_symbols(long_name), big=True)
    for ks in _both(image):
        _same(ks, image.syms)
        assert ks.lookup(long_name) == (TEXT + 0x110, 0x10)


def test_one_byte_length_of_128_before_big_names():
    # 127 characters + the type: 128 tokens, a length byte 0x80 that v6.1+ would
    # read as a big length; kallsyms_markers say which.
    long_name = "q" * 127
    syms = _symbols(long_name)
    image = Image(syms)
    assert len(_compress("t" + long_name, _tokens(syms))) == 128
    for ks in _both(image):
        _same(ks, image.syms)


def test_lookup_name_at_and_sizes():
    ks = Kallsyms(["_text", "_stext", "f", "g", "big", "last"], "TTttDD",
                  [0x1000, 0x1000, 0x1040, 0x1050, 0x2000, 0x2000 + MAX_SYMBOL_LENGTH])
    # drgn's sizes: to the next entry (0 for an alias), none past MAX_SYMBOL_LENGTH.
    assert ks.lookup("_text") == (0x1000, 0) and ks.lookup("_stext") == (0x1000, 0x40)
    assert ks.lookup("big") == (0x2000, 0) and ks.lookup("last") == (0x12000, 0)
    # get_symbol_pos(): the first alias, its size to the next higher address.
    assert ks.name_at(0x1000) == ("_text", 0x1000, 0x40)
    assert ks.name_at(0x104f) == ("f", 0x1040, 0x10)
    assert ks.name_at(0xfff) is None and ks.name_at(0x12001) is None
    assert ks.type_of("g") == "t" and ks.type_of("h") is None and len(ks) == 6


def test_vmcoreinfo_that_disagrees():
    image = Image(_symbols())
    info = image.vmcoreinfo()
    info["SYMBOL(_stext)"] = f"{TEXT + 0x1000:x}"
    with pytest.raises(KallsymsError, match="_stext"):
        read_kallsyms(image.read, info)
    del info["SYMBOL(_stext)"]
    with pytest.raises(KallsymsError, match="no SYMBOL\\(_stext\\)"):
        read_kallsyms(image.read, info)
    info = image.vmcoreinfo(tables=False)
    info["SYMBOL(init_uts_ns)"] = f"{DATA + 0x100:x}"  # init_task's
    with pytest.raises(KallsymsError, match="init_uts_ns"):
        read_kallsyms(image.read, info)


def test_no_tables():
    image = Image(_symbols())
    image.mem[:] = bytes(len(image.mem))
    with pytest.raises(KallsymsError, match="no kallsyms tables"):
        read_kallsyms(image.read, image.vmcoreinfo(tables=False))


def _by_name(syms):
    """kallsyms_seqs_of_names: the indices in (name, address) order."""
    return sorted(range(len(syms)), key=lambda i: (syms[i][1], syms[i][2]))


def test_lookups_through_seqs_of_names():
    # Names of 128 tokens and more, one name twice (static functions of two
    # files: the first in the table wins), and over 256 entries (two blocks).
    long_name = "z" * 200
    syms = sorted(_symbols(long_name) + [("t", "sym_007", TEXT + 0x5000)], key=lambda s: s[2])
    image = Image(syms, big=True, seqs=_by_name(syms))
    ks = read_kallsyms(image.read, image.vmcoreinfo())
    assert isinstance(ks, SortedKallsyms)
    whole = Kallsyms([n for _, n, _ in syms], "".join(t for t, _, _ in syms),
                     [a for *_, a in syms])
    for name in [n for _, n, _ in syms] + ["", "sym_", "sym_299a", "zz", "~", "_"]:
        assert ks.lookup(name) == whole.lookup(name), name
        assert ks.type_of(name) == whole.type_of(name), name
    assert ks.lookup("sym_007") == (TEXT + 0x100 + 0x20 * 7, 0x20)
    assert ks.all_symbols and len(ks) == len(syms) and ks._table is None
    # The whole table, decoded only when asked for.
    _same(ks, syms)
    assert ks.name_at(TEXT + 0x111) == (long_name, TEXT + 0x110, 0x10)


def test_seqs_of_names_out_of_order_is_not_used():
    syms = _symbols()
    order = _by_name(syms)
    image = Image(syms, seqs=order[::-1])
    ks = read_kallsyms(image.read, image.vmcoreinfo())
    assert not isinstance(ks, SortedKallsyms)
    _same(ks, syms)
    assert ks.lookup("sym_100") == (TEXT + 0x100 + 0x20 * 100, 0x20)


def test_a_damaged_block_met_by_a_lookup():
    # 40 blocks: the checks on reading (32 probes, _stext) leave some unwalked.
    # One entry's length off by one there: the block no longer ends at the next
    # marker. A lookup that walks it, and the whole table, fail as a table that
    # does not hold together when read does (one error, exit status 4).
    syms = sorted(_symbols() + [("t", f"more_{i:05d}", TEXT + 0x8000 + 0x10 * i)
                                for i in range(40 * 256 - 305)], key=lambda s: s[2])
    image = Image(syms, seqs=_by_name(syms))
    walked = set(read_kallsyms(image.read, image.vmcoreinfo())._blocks)
    block = next(b for b in range(1, 39) if b not in walked)
    image.mem[image.at["names"] - RODATA + read_kallsyms(
        image.read, image.vmcoreinfo())._markers[block]] += 1
    ks = read_kallsyms(image.read, image.vmcoreinfo())
    assert isinstance(ks, SortedKallsyms) and ks.lookup("_stext") == (TEXT, 0x40)
    with pytest.raises(OomdrgnError, match=f"kallsyms cannot be read.*block {block} ") as e:
        ks.lookup(syms[256 * block + 5][1])
    assert e.value.status == EXIT_DEBUGINFO
    with pytest.raises(OomdrgnError, match="kallsyms cannot be read"):
        ks.names
