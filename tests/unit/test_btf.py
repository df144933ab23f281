"""The BTF reader on small hand-made blobs: what real kernels cannot show.

Real kernels' BTF is compared with their DWARF in tests/vm/test_btf_real.py.
Here: both byte orders, ENUM64, kind_flag bit fields (and the old INT-encoded
ones), the v7.0 layout section, and damaged, truncated or zeroed blobs, which
:class:`Btf` refuses and :func:`find_btf` skips.
"""

import struct
from typing import Dict, List, Optional, Tuple

import pytest

from oomdrgn.core.btf import Btf, BtfError, find_btf
from oomdrgn.core.port import Member

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, \
    FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(1, 20)
SIGNED, CHAR, BOOL = 1, 2, 4


class Blob:
    """A BTF blob built type by type (ids from 1, in order of :meth:`add`)."""

    def __init__(self) -> None:
        self.strings = b"\0"
        self.offsets: Dict[str, int] = {"": 0}
        self.types: List[Tuple[int, int, List[int]]] = []  # name, info, words after

    def s(self, name: str) -> int:
        if name not in self.offsets:
            self.offsets[name] = len(self.strings)
            self.strings += name.encode() + b"\0"
        return self.offsets[name]

    def add(self, kind: int, name: str = "", size_or_type: int = 0, vlen: int = 0,
            words: Optional[List[int]] = None, kflag: bool = False) -> int:
        info = kflag << 31 | kind << 24 | vlen
        self.types.append((self.s(name), info, [size_or_type] + (words or [])))
        return len(self.types)

    def int(self, name: str, size: int, encoding: int = 0, bits: int = 0, offset: int = 0):
        return self.add(INT, name, size, words=[encoding << 24 | offset << 16 | (bits or size * 8)])

    def struct(self, name: str, size: int, members, kind: int = STRUCT, kflag: bool = False):
        words = []
        for mname, mtype, bit, bitsize in members:
            words += [self.s(mname), mtype, bitsize << 24 | bit if kflag else bit]
        return self.add(kind, name, size, len(members), words, kflag)

    def enum(self, name: str, size: int, values, kflag: bool = False, wide: bool = False):
        words = []
        for vname, v in values:
            v &= (1 << 64) - 1
            words += [self.s(vname), v & 0xFFFFFFFF] + ([v >> 32] if wide else [])
        return self.add(ENUM64 if wide else ENUM, name, size, len(values), words, kflag)

    def bytes(self, endian: str = "<", layout: Optional[List[Tuple[int, int]]] = None) -> bytes:
        w = endian + "I"
        body = b"".join(struct.pack(endian + "II", n, info)
                        + b"".join(struct.pack(w, x & 0xFFFFFFFF) for x in rest)
                        for n, info, rest in self.types)
        if layout is None:
            head = struct.pack(endian + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body),
                               len(self.strings))
            return head + body + self.strings
        lay = b"".join(struct.pack("BBH", a, b, 0) for a, b in layout)
        head = struct.pack(endian + "HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, len(body),
                           len(body) + len(lay), len(self.strings), len(body), len(lay))
        return head + body + lay + self.strings


def kernel_like() -> Blob:
    """Types shaped like the kernel's, each kind of BTF at least once."""
    b = Blob()
    t_int = b.int("int", 4, SIGNED)                                      # 1
    t_uint = b.int("unsigned int", 4)                                    # 2
    t_ulong = b.int("long unsigned int", 8)                              # 3
    t_long = b.int("long int", 8, SIGNED)                                # 4
    t_char = b.int("char", 1, SIGNED | CHAR)                             # 5
    t_bool = b.int("_Bool", 1, BOOL)                                     # 6
    b.add(TYPEDEF, "bool", t_bool)                                       # 7
    atomic = b.struct("", 8, [("counter", t_long, 0, 0)])                # 8
    t_atomic_long = b.add(TYPEDEF, "atomic_long_t", atomic)              # 9
    arr = b.add(ARRAY, "", 0, words=[t_atomic_long, t_int, 4])           # 10
    p_char = b.add(PTR, "", b.add(CONST, "", t_char))                    # 11, 12
    nodes = b.add(ARRAY, "", 0, words=[t_ulong, t_int, 2])               # 13
    nodemask = b.struct("", 16, [("bits", nodes, 0, 0)])                 # 14
    b.add(TYPEDEF, "nodemask_t", nodemask)                               # 15
    anon = b.struct("", 8, [("lock", t_uint, 0, 0), ("flags", t_uint, 32, 0)],
                    kind=UNION)                                          # 16
    # kind_flag bit fields: a:3 at bit 320 (byte 40), b:5 at bit 323, c:8 at bit 328.
    zone = b.struct("zone", 56, [
        ("vm_stat", arr, 0, 0), ("", anon, 256, 0), ("a", t_uint, 320, 3),
        ("b", t_uint, 323, 5), ("c", t_uint, 328, 8), ("name", p_char, 384, 0)],
        kflag=True)                                                      # 17
    vzone = b.add(VOLATILE, "", zone)                                    # 18
    zones = b.add(ARRAY, "", 0, words=[vzone, t_int, 3])                 # 19
    flex = b.add(ARRAY, "", 0, words=[t_ulong, t_int, 0])                # 20
    b.struct("pglist_data", 176, [("node_zones", zones, 0, 0), ("node_id", t_int, 1344, 0),
                                  ("tail", flex, 1408, 0)])             # 21
    b.enum("zone_type", 4, [("ZONE_DMA32", 0), ("ZONE_NORMAL", 1), ("MAX_NR_ZONES", 2)])  # 22
    b.enum("", 4, [("CPUHP_INVALID", -1), ("CPUHP_OFFLINE", 0)], kflag=True)  # 23
    b.enum("", 4, [("BIG_FLAG", 0xFFFFFFFF)])                            # 24
    b.enum("", 8, [("HMM_PFN_VALID", 1 << 63), ("HMM_PFN_WRITE", 1 << 62)], wide=True)  # 25
    b.enum("", 8, [("NEG64", -(1 << 40))], kflag=True, wide=True)        # 26
    proto = b.add(FUNC_PROTO, "", t_long, 1, [b.s("p"), t_ulong])        # 27
    b.add(FUNC, "oom_badness", proto, vlen=1)                            # 28
    proto_b = b.add(FUNC_PROTO, "", 7)                                   # 29
    b.add(FUNC, "is_ok", proto_b, vlen=1)                                # 30
    proto_v = b.add(FUNC_PROTO, "", 0, 2, [b.s("fmt"), p_char, 0, 0])    # 31
    b.add(FUNC, "printk_like", proto_v, vlen=1)                          # 32
    proto_s = b.add(FUNC_PROTO, "", p_char)                              # 33
    b.add(FUNC, "name_of", proto_s, vlen=1)                              # 34
    var = b.add(VAR, "vm_node_stat", arr, words=[1])                     # 35
    b.add(DATASEC, ".data..percpu", 64, 1, [var, 0, 32])                 # 36
    b.add(FLOAT, "double", 8)                                            # 37
    b.add(DECL_TAG, "user", 21, words=[0xFFFFFFFF])                      # 38
    b.add(TYPE_TAG, "percpu", t_ulong)                                   # 39
    b.add(FWD, "opaque", 0)                                              # 40
    b.add(FWD, "uopaque", 0, kflag=True)                                 # 41
    b.add(RESTRICT, "", b.add(PTR, "", t_int))                           # 42, 43
    # Old-style bit field (kind_flag 0): the INT holds bits and offset.
    bf = b.int("unsigned int", 4, 0, bits=4, offset=8)                   # 44
    b.struct("old_bits", 4, [("x", bf, 0, 0), ("y", bf, 17, 0)])         # 45
    fn_ptr = b.add(PTR, "", proto)                                       # 46
    b.add(VAR, "hook", fn_ptr, words=[1])                                # 47
    return b


@pytest.fixture(params=["<", ">", "view"], ids=["little-endian", "big-endian", "a-view"])
def btf(request):
    if request.param == "view":  # as a dump's file mapping gives it: parsed in place
        return Btf(memoryview(kernel_like().bytes("<")))
    return Btf(kernel_like().bytes(request.param))


def test_header_and_types(btf):
    assert btf.types == 47
    assert btf.name(17) == "zone" and btf.kind(17) == STRUCT


@pytest.mark.parametrize("endian", ["<", ">"])
def test_byte_order_from_the_magic(endian):
    assert Btf(kernel_like().bytes(endian)).little_endian is (endian == "<")


def test_members(btf):
    assert btf.member("struct zone", "vm_stat") == Member(0, 32, "array", length=4)
    assert btf.member("struct zone", "vm_stat[3]") == Member(24, 8, "struct", members=("counter",))
    assert btf.member("struct zone", "vm_stat[3].counter") == Member(24, 8, "int", True)
    # A member of an anonymous union, found by its name as C does.
    assert btf.member("struct zone", "flags") == Member(36, 4, "int")
    assert btf.member("struct zone", "name") == Member(48, 8, "pointer")
    # Qualifiers (volatile) and typedefs seen through for the kind.
    assert btf.member("struct pglist_data", "node_zones[2]") == Member(
        112, 56, "struct", members=("vm_stat", "", "a", "b", "c", "name"))
    assert btf.member("struct pglist_data", "node_zones[1].flags").offset == 56 + 36
    assert btf.member("struct pglist_data", "node_id") == Member(168, 4, "int", True)
    # The last member, an array without elements: a flexible array (drgn: incomplete).
    assert btf.member("struct pglist_data", "tail") == Member(176, 0, "array", length=None)
    assert btf.member("nodemask_t", "bits") == Member(0, 16, "array", length=2)
    assert btf.member("nodemask_t", "bits[1]") == Member(8, 8, "int")


def test_bit_fields(btf):
    # kind_flag: offsets in the low 24 bits, sizes in the high 8; a bit field
    # on a byte boundary has an offset (drgn's offsetof()), others raise.
    assert btf.member("struct zone", "a") == Member(40, 4, "int")
    assert btf.member("struct zone", "c") == Member(41, 4, "int")
    with pytest.raises(ValueError):
        btf.member("struct zone", "b")
    # kind_flag 0: the INT's own bit offset (8) adds to the member's.
    assert btf.member("struct old_bits", "x") == Member(1, 4, "int")
    with pytest.raises(ValueError):
        btf.member("struct old_bits", "y")


def test_missing_types_and_members(btf):
    for type_name, designator in [("struct nosuch", "x"), ("struct zone", "nosuch"),
                                  ("struct zone", "vm_stat[1].nosuch"), ("zone", "name"),
                                  ("union zone", "name")]:
        with pytest.raises(LookupError):
            btf.member(type_name, designator)
    with pytest.raises(TypeError):
        btf.member("struct zone", "name[1]")  # a pointer, not an array
    with pytest.raises(TypeError):
        btf.member("struct zone", "flags.x")
    with pytest.raises(TypeError):
        btf.member("struct zone *", "name")  # drgn: a pointer has no members


def test_sizeof(btf):
    assert btf.sizeof("unsigned long") == btf.sizeof("long unsigned int") == 8
    assert btf.sizeof("atomic_long_t") == 8
    assert btf.sizeof("nodemask_t") == 16
    assert btf.sizeof("struct zone") == 56
    assert btf.sizeof("const struct zone *") == 8
    assert btf.sizeof("char [16]") == 16 and btf.sizeof("int *[4]") == 32
    assert btf.sizeof("short") == 2  # no such base type here: drgn's default
    with pytest.raises(LookupError):
        btf.sizeof("struct nosuch")
    for incomplete in ("struct opaque", "void", "int []"):
        with pytest.raises(TypeError):
            btf.sizeof(incomplete)


def test_constants(btf):
    assert btf.constant("ZONE_NORMAL") == 1 and btf.constant("MAX_NR_ZONES") == 2
    assert btf.constant("CPUHP_INVALID") == -1  # kind_flag: signed
    assert btf.constant("BIG_FLAG") == 0xFFFFFFFF
    assert btf.constant("HMM_PFN_VALID") == 1 << 63  # ENUM64, unsigned
    assert btf.constant("NEG64") == -(1 << 40)  # ENUM64, signed
    assert btf.constant("NO_SUCH_ENUMERATOR") is None
    assert btf.constant("zone") is None  # a type's name is no enumerator


def test_return_types_and_names(btf):
    assert btf.return_type("oom_badness") == "long"
    assert btf.return_type("is_ok") == "bool"
    assert btf.return_type("printk_like") == "void"
    assert btf.return_type("name_of") == "const char *"
    assert btf.return_type("nosuch") is None
    assert btf.type_name(27) == "long (unsigned long p)"
    assert btf.type_name(31) == "void (const char *fmt, ...)"
    assert btf.type_name(43) == "int * restrict"
    assert btf.type_name(19) == "volatile struct zone [3]"
    assert btf.type_name(41) == "union uopaque"
    assert btf.type_name(8) == "struct <anonymous>"


def test_variables(btf):
    assert btf.variable("vm_node_stat") == (32, "atomic_long_t [4]")
    assert btf.variable("hook") == (8, "long (*)(unsigned long p)")
    assert btf.variable("nosuch") is None


def test_char_signedness_where_the_blob_does_not_say():
    # pahole before v1.2x: no char type carries BTF_INT_SIGNED; the ABI decides.
    b = Blob()
    c = b.int("char", 1)
    b.int("signed char", 1)
    b.struct("s", 1, [("c", c, 0, 0)])
    data = b.bytes()
    assert Btf(data).member("struct s", "c").signed is False  # no x86 pt_regs: unsigned
    assert Btf(data, char_signed=True).member("struct s", "c").signed is True


def test_old_enums_without_kind_flag():
    # No enum has kind_flag (pahole < v1.24): a small negative value means signed.
    b = Blob()
    b.enum("", 4, [("STATE_INVALID", -1), ("STATE_OK", 0)])
    b.enum("", 4, [("PROC_IPC_INIT_INO", 0xEFFFFFFF)])
    b.enum("", 8, [("PERF_CONTEXT_HV", -32)])  # an 8-byte enum cut to 32 bits
    btf = Btf(b.bytes())
    assert btf.constant("STATE_INVALID") == -1
    assert btf.constant("PROC_IPC_INIT_INO") == 0xEFFFFFFF
    assert btf.constant("PERF_CONTEXT_HV") == (1 << 64) - 32


def test_layout_section_lets_an_unknown_kind_be_skipped():
    b = kernel_like()
    b.add(20, "future", 7, vlen=2, words=[1, 2, 3, 4, 5])  # 4 bytes + 2 x 8 bytes
    b.int("after_it", 2)
    layout = [(0, 0)] * 20 + [(4, 8)]
    btf = Btf(b.bytes("<", layout))
    assert btf.types == 49 and btf.sizeof("struct zone") == 56
    assert btf.find("after_it", (INT,)) == [49]
    with pytest.raises(BtfError):
        Btf(b.bytes("<"))  # without the layout: kind 20 cannot be walked


@pytest.mark.parametrize("damage", ["magic", "version", "truncated", "strings_start",
                                    "strings_end", "kind", "vlen", "type_off"])
def test_damaged_blobs_are_refused(damage):
    data = bytearray(kernel_like().bytes())
    hdr_len, str_off = 24, struct.unpack_from("<I", data, 16)[0]
    if damage == "magic":
        data[0] = 0
    elif damage == "version":
        data[2] = 2
    elif damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "strings_start":
        data[hdr_len + str_off] = ord("x")
    elif damage == "strings_end":
        data[-1] = ord("x")
    elif damage == "kind":
        data[hdr_len + 4 + 3] = 0  # type 1's kind: UNKN
    elif damage == "vlen":  # the anonymous struct (id 8): 65535 members
        struct.pack_into("<I", data, hdr_len + 4 * Btf(bytes(data))._offsets[8] + 4,
                         STRUCT << 24 | 0xFFFF)
    elif damage == "type_off":
        struct.pack_into("<I", data, 8, 2)
    with pytest.raises(BtfError):
        Btf(bytes(data))


def test_find_btf_skips_zeroed_and_damaged_copies():
    good = kernel_like().bytes()
    zeroed = good[:24] + bytes(len(good) - 24)  # a header over zeroed sections
    damaged = bytearray(good)  # a pointer (id 11) to type 0x7fffffff
    struct.pack_into("<I", damaged, 24 + 4 * Btf(good)._offsets[11] + 8, 0x7FFFFFFF)
    junk = b"\x9f\xeb\x01\x00" + b"\xff" * 60  # the magic, then nonsense
    memory = b"\0" * 100 + junk + zeroed + b"\0" * 13 + bytes(damaged) + b"\1" * 7 + good + b"\0" * 9
    at = 100 + len(junk) + len(zeroed) + 13 + len(damaged) + 7
    assert find_btf(memory) == (at, len(good))
    assert memory[at:at + len(good)] == good
    assert find_btf(memory, at + 1) is None
    assert find_btf(b"\0" * 4096) is None
    assert find_btf(good[:-1]) is None  # the string section runs past the buffer


def test_find_btf_big_endian():
    good = kernel_like().bytes(">")
    assert find_btf(b"\xeb\x9f\x01" + b"\0" * 5 + good) == (8, len(good))


def test_packed_enums_and_listings(btf):
    b = Blob()
    b.enum("", 1, [("PACKED_NEG", -1), ("PACKED_ONE", 1)], kflag=True)
    b.enum("", 2, [("PACKED_MAX", 0xFFFF)])
    small = Btf(b.bytes())
    assert small.constant("PACKED_NEG") == -1 and small.constant("PACKED_MAX") == 0xFFFF
    assert small.enumerators(1) == [("PACKED_NEG", -1), ("PACKED_ONE", 1)]
    assert small.kind_flag(1) and not small.kind_flag(2)
    assert btf.members(16) == [("lock", 2, 0), ("flags", 2, 32)]
    assert btf.enumerators(25) == [("HMM_PFN_VALID", 1 << 63), ("HMM_PFN_WRITE", 1 << 62)]
