"""The kernel's own symbol table (kallsyms) read from its memory: symbols
without debug info (standard library and core only).

``scripts/kallsyms.c`` links the table into ``.rodata``; ``kernel/kallsyms.c``
decodes it. Since v6.0 the VMCOREINFO note names where its parts are
(5fd8fea935a1 ("vmcoreinfo: include kallsyms symbols") (in v6.0),
f09bddbd8661 ("vmcoreinfo: add kallsyms_num_syms symbol") (in v6.0)); before,
:func:`read_kallsyms` finds them in the kernel image by their layout.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import operator
import struct
from array import array
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import EXIT_DEBUGINFO, OomdrgnError
from .port import Fault

if TYPE_CHECKING:
    from .kallsyms_sorted import SortedKallsyms

__all__ = ["Kallsyms", "KallsymsError", "read_kallsyms", "unreadable_kallsyms", "walk_entries"]

Read = Callable[[int, int], bytes]

#: drgn's MAX_SYMBOL_LENGTH: a longer gap to the next symbol gives size 0 (unknown).
MAX_SYMBOL_LENGTH = 0x10000
_TOKENS = 256
# The digits are used in symbol names, so the token table keeps each as the
# one-character token at its own code (insert_real_symbols_in_table()).
_DIGITS = b"".join(bytes([c, 0]) for c in range(0x30, 0x3A))
_CHUNK = 1 << 20
_PAGE = 4096


class KallsymsError(ValueError):
    """No kallsyms table could be read, or it does not hold together."""


def unreadable_kallsyms(e: Exception) -> OomdrgnError:
    """The error of a kallsyms table that does not hold together (exit status 4)."""
    return OomdrgnError(f"no debug info, and the kernel's kallsyms cannot be read ({e}): "
                        "pass the debug vmlinux (-s VMLINUX)", EXIT_DEBUGINFO)


class Kallsyms:
    """The decoded table, in the kernel's order (by address).

    :param names: symbol names
    :param types: one ``nm(1)`` type character per symbol
    :param addresses: symbol addresses (non-decreasing)
    """

    def __init__(self, names: List[str], types: str, addresses: List[int]) -> None:
        if not len(names) == len(types) == len(addresses):
            raise KallsymsError("kallsyms: names, types and addresses differ in length")
        self.names = names
        self.types = types
        self.addresses = addresses
        # The first of equal names wins, as kallsyms_lookup_name() returns.
        self._index: Dict[str, int] = dict(zip(reversed(names), range(len(names) - 1, -1, -1)))

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    @property
    def all_symbols(self) -> bool:
        """Whether data symbols are in (CONFIG_KALLSYMS_ALL; without it only
        ``_stext`` .. ``_etext`` and ``_sinittext`` .. ``_einittext``): ``init_task``."""
        return "init_task" in self._index

    def index(self, name: str) -> Optional[int]:
        """The position of the first symbol called *name*, or None."""
        return self._index.get(name)

    def lookup(self, name: str) -> Optional[Tuple[int, int]]:
        """``(address, size)`` of *name*, or None. The size is the distance to the
        next entry, 0 for the last or past :data:`MAX_SYMBOL_LENGTH`, as drgn's
        kallsyms symbol finder gives it."""
        i = self._index.get(name)
        if i is None:
            return None
        address = self.addresses[i]
        size = 0
        if i + 1 < len(self.addresses):
            gap = self.addresses[i + 1] - address
            if gap < MAX_SYMBOL_LENGTH:
                size = gap
        return address, size

    def address_of(self, name: str) -> Optional[int]:
        """The address of *name*, or None."""
        i = self._index.get(name)
        return None if i is None else self.addresses[i]

    def type_of(self, name: str) -> Optional[str]:
        """The ``nm(1)`` type character of *name* (``T``, ``t``, ``D``...), or None."""
        i = self._index.get(name)
        return None if i is None else self.types[i]

    def name_at(self, address: int) -> Optional[Tuple[str, int, int]]:
        """``(name, start, size)`` of the symbol holding *address*, as
        ``get_symbol_pos()`` finds it for ``%ps``/``%pS``: the first of aliased
        symbols, the size up to the next higher address (0 for the last).
        None outside ``_stext`` .. the last symbol (``is_ksym_addr()``)."""
        addrs = self.addresses
        low = self.address_of("_stext")
        if not addrs or address < (addrs[0] if low is None else low) or address > addrs[-1]:
            return None
        i = bisect.bisect_right(addrs, address) - 1
        start = addrs[i]
        i = bisect.bisect_left(addrs, start, 0, i)
        after = bisect.bisect_right(addrs, start, i)
        size = addrs[after] - start if after < len(addrs) else 0
        return self.names[i], start, size


# Reading the tables.

def read_kallsyms(read: Read, vmcoreinfo: Mapping[str, str], *,
                  search: Optional[Tuple[int, int]] = None, word_size: int = 8,
                  little_endian: bool = True) -> Kallsyms:
    """The kernel's kallsyms table, read through *read* (``read(address, size)``:
    kernel virtual memory, raising :class:`oomdrgn.core.port.Fault`).

    :param vmcoreinfo: the VMCOREINFO ``KEY=VALUE`` lines as a dict
        (:func:`oomdrgn.core.rawimage.parse_vmcoreinfo`); ``SYMBOL(_stext)`` is
        needed, and ``SYMBOL(kallsyms_*)`` where the kernel has them (v6.0+)
    :param search: where to look for the tables when VMCOREINFO does not say
        (``[start, end)``); default from ``SYMBOL(_stext)`` up to the highest
        ``SYMBOL(...)`` in the kernel image (``init_uts_ns`` and others in
        ``.data``, after ``.rodata``)
    :raises KallsymsError: no consistent table found
    """
    layout = _Layout(word_size, little_endian)
    stext = _symbol(vmcoreinfo, "_stext")
    if stext is None:
        raise KallsymsError("kallsyms: VMCOREINFO has no SYMBOL(_stext)")
    if _symbol(vmcoreinfo, "kallsyms_names") is not None:
        ks = _from_vmcoreinfo(read, vmcoreinfo, layout, stext)
    else:
        ks = _search(read, layout, stext, search or _image_range(vmcoreinfo, stext))
    _check(ks, vmcoreinfo, stext)
    return ks


class _Layout:
    """Word size, byte order and alignment of the tables: ``ALGN`` in
    ``scripts/kallsyms.c``, the word size, 4 since a081b5789255 ("kallsyms: Get
    rid of kallsyms relative base") (in v7.0)."""

    def __init__(self, word_size: int, little_endian: bool, algn: int = 0) -> None:
        self.word = word_size
        self.algn = algn or word_size
        self.order = "<" if little_endian else ">"
        self.swap = little_endian != (struct.pack("=H", 1) == b"\1\0")

    def u16s(self, data: bytes) -> "array[int]":
        return self._array("H", data)

    def u32s(self, data: bytes) -> "array[int]":
        return self._array("I", data)

    def s32s(self, data: bytes) -> "array[int]":
        return self._array("i", data)

    def _array(self, code: str, data: bytes) -> "array[int]":
        out = array(code, data)
        if self.swap:
            out.byteswap()
        return out

    def word_at(self, data: bytes, offset: int) -> int:
        return int.from_bytes(data[offset:offset + self.word],
                              "little" if self.order == "<" else "big")

    def align(self, value: int, to: Optional[int] = None) -> int:
        a = to or self.algn
        return (value + a - 1) // a * a


def _symbol(vmcoreinfo: Mapping[str, str], name: str) -> Optional[int]:
    value = vmcoreinfo.get(f"SYMBOL({name})")
    try:
        return int(value, 16) if value is not None else None
    except ValueError:
        return None


def _read(read: Read, address: int, size: int, what: str) -> bytes:
    try:
        data = read(address, size)
    except Fault as e:
        raise KallsymsError(f"kallsyms: {what} at {address:#x} cannot be read: {e}") from None
    if len(data) != size:
        raise KallsymsError(f"kallsyms: {what} at {address:#x}: short read")
    return data


def _tokens(table: bytes, index: Sequence[int]) -> Optional[List[str]]:
    """The 256 tokens, or None unless *index* points at NUL-terminated strings of *table*."""
    out = []
    for i, at in enumerate(index):
        end = table.find(b"\0", at)
        if end < 0 or (i and table[at - 1] != 0):
            return None
        out.append(table[at:end].decode("latin-1"))
    return out


def walk_entries(names: bytes, count: int, big: bool, start: int = 0) -> Optional[List[int]]:
    """The offset of each entry's length in *names* (and the end, last), or None
    if the entries run past it. *big*: a length with bit 7 set takes two bytes
    (73bbb94466fd ("kallsyms: support "big" kernel symbols") (in v6.1))."""
    offsets: List[int] = []
    append = offsets.append
    pos = start
    try:
        if big:
            for _ in range(count):
                append(pos)
                n = names[pos]
                pos += (n & 0x7F | names[pos + 1] << 7) + 2 if n & 0x80 else n + 1
        else:
            for _ in range(count):
                append(pos)
                pos += names[pos] + 1
    except IndexError:
        return None
    if pos > len(names):
        return None
    append(pos)
    return offsets


def _markers_agree(markers: Sequence[int], starts: Sequence[int]) -> bool:
    """Whether ``kallsyms_markers`` (the offset of every 256th entry) fits *starts*."""
    base = starts[0]
    return all(m == starts[k << 8] - base for k, m in enumerate(markers))


def _decode(names: bytes, starts: List[int], tokens: List[str], big: bool) -> Tuple[List[str], str]:
    """Names and types of the entries at *starts* (the end last), as
    ``kallsyms_expand_symbol()``: each byte is a token, the first character of
    the first token the type."""
    base = starts[0]
    body = names[base:starts[-1]]
    heads = starts[:-1] if base == 0 else list(map(base.__rsub__, starts[:-1]))
    firsts = list(map((1).__add__, heads))
    bigs = _bigs(bytes(map(body.__getitem__, heads))) if big else []
    for i in bigs:  # a big length's second byte is no token
        firsts[i] += 1
    codes = bytes(map(body.__getitem__, firsts))
    types = "".join(map([t[:1] for t in tokens].__getitem__, codes))
    if any("\n" in t for t in tokens):  # never in a symbol name; the slow way
        ends = heads[1:] + [len(body)]
        return ["".join(map(tokens.__getitem__, body[f:e]))[1:]
                for f, e in zip(firsts, ends)], types
    # At C speed: every byte becomes its token, the first one less its type
    # character, each length byte a newline (a big length's second byte
    # nothing), then one split.
    parts = list(map(tokens.__getitem__, body))
    collections.deque(map(parts.__setitem__, heads, itertools.repeat("\n")), maxlen=0)
    rest = [t[1:] for t in tokens]
    collections.deque(map(parts.__setitem__, firsts, map(rest.__getitem__, codes)), maxlen=0)
    for i in bigs:
        parts[heads[i] + 1] = ""
    return "".join(parts).split("\n")[1:], types


_HIGH = bytes(0x80) + bytes([1]) * 0x80


def _bigs(lengths: bytes) -> List[int]:
    """The positions of the first length bytes with bit 7 set (few)."""
    flags = lengths.translate(_HIGH)
    out = []
    at = flags.find(1)
    while at >= 0:
        out.append(at)
        at = flags.find(1, at + 1)
    return out


def _entries(names: bytes, count: int, start: int, layout: _Layout,
             markers_at: Optional[int] = None,
             origin: int = 0) -> Optional[Tuple[List[int], bool]]:
    """The entry offsets of ``kallsyms_names`` in *names* (at address *origin*)
    from *start*, and whether lengths are big (two bytes with bit 7 set).
    Lengths of 128 and more are ambiguous across v6.1 (no table says which
    encoding): the reading whose ``kallsyms_markers`` (right after the names,
    aligned; or at *markers_at*) agree wins."""
    plain = walk_entries(names, count, False, start)
    if plain is not None and max(bytes(map(names.__getitem__, plain[:-1])), default=0) < 0x80:
        readings = [(plain, False)]  # no length of 128 or more: one reading
    else:
        readings = [(starts, big) for starts, big in
                    ((walk_entries(names, count, True, start), True), (plain, False)) if starts]
    k = (count + 255) >> 8
    for starts, big in readings:
        for at in ([markers_at] if markers_at is not None else
                   sorted({layout.align(origin + starts[-1], a) - origin
                           for a in (layout.word, 4)})):
            raw = names[at:at + 4 * k]
            if len(raw) == 4 * k and _markers_agree(layout.u32s(raw), starts):
                return starts, big
    # Markers out of reach: only a table with one possible reading will do.
    return readings[0] if len(readings) == 1 and markers_at is None else None


def _interpret(offsets: bytes, offsets_at: int, base: Optional[int], stext_index: int,
               stext: int, layout: _Layout) -> Optional[List[int]]:
    """Addresses from ``kallsyms_offsets``, in the encoding that puts ``_stext``
    where VMCOREINFO says (``kallsyms_sym_address()`` of each era), or None."""
    rule = _address_rule(offsets, offsets_at, base, stext_index, stext, layout)
    return None if rule is None else rule[1]()


def _address_rule(offsets: bytes, offsets_at: int, base: Optional[int], stext_index: int,
                  stext: int, layout: _Layout
                  ) -> Optional[Tuple[Callable[[int], int], Callable[[], List[int]]]]:
    """(the address of entry i, every address) from ``kallsyms_offsets``, in the
    encoding that puts ``_stext`` where VMCOREINFO says, or None."""
    mask = (1 << 8 * layout.word) - 1
    s32 = layout.s32s(offsets)
    o = s32[stext_index]
    if base is not None:
        # Base-relative: 2213e9a66bb8 ("kallsyms: add support for relative
        # offsets in kallsyms address table") (in v4.6).
        u32 = layout.u32s(offsets)
        if (base + (o & 0xFFFFFFFF)) & mask == stext:
            return (lambda i: (base + u32[i]) & mask,
                    lambda: _masked(list(map(base.__add__, u32)), mask))
        # CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86-64 until 01157ddc58dc ("kallsyms:
        # Remove KALLSYMS_ABSOLUTE_PERCPU") (in v6.15)): non-negative offsets
        # are absolute, negative ones relative to kallsyms_relative_base - 1.
        below = base - 1
        if o < 0 and (below - o) & mask == stext:
            return (lambda i: (s32[i] if s32[i] >= 0 else below - s32[i]) & mask,
                    lambda: _masked([v if v >= 0 else below - v for v in s32], mask))
    # Place-relative, offset_to_ptr(): a081b5789255 ("kallsyms: Get rid of
    # kallsyms relative base") (in v7.0).
    if (offsets_at + 4 * stext_index + o) & mask == stext:
        return (lambda i: (offsets_at + 4 * i + s32[i]) & mask,
                lambda: _masked(list(map(operator.add, range(offsets_at, offsets_at + 4 * len(s32),
                                                             4), s32)), mask))
    # 32-bit without CONFIG_RELOCATABLE: the value itself.
    if o & 0xFFFFFFFF == stext:
        return lambda i: s32[i] & 0xFFFFFFFF, lambda: [v & 0xFFFFFFFF for v in s32]
    return None


def _masked(addresses: List[int], mask: int) -> List[int]:
    """*addresses* wrapped to the word size (where any is out of it)."""
    if addresses and (min(addresses) < 0 or max(addresses) > mask):
        return [a & mask for a in addresses]
    return addresses


def _from_vmcoreinfo(read: Read, vmcoreinfo: Mapping[str, str], layout: _Layout,
                     stext: int) -> Kallsyms:
    """The tables where VMCOREINFO says they are (v6.0+)."""
    where = {name: _symbol(vmcoreinfo, f"kallsyms_{name}") for name in
             ("names", "num_syms", "token_table", "token_index", "offsets",
              "relative_base", "addresses")}
    names_at, table_at, index_at = where["names"], where["token_table"], where["token_index"]
    if where["num_syms"] is None or table_at is None or index_at is None or names_at is None:
        raise KallsymsError("kallsyms: VMCOREINFO lacks SYMBOL(kallsyms_num_syms), "
                            "SYMBOL(kallsyms_token_table) or SYMBOL(kallsyms_token_index)")
    count = layout.u32s(_read(read, where["num_syms"], 4, "kallsyms_num_syms"))[0]
    index = layout.u16s(_read(read, index_at, 2 * _TOKENS, "kallsyms_token_index"))
    # The token table ends right before the token index (every era's order).
    size = index_at - table_at if 0 < index_at - table_at <= 0x10000 else max(index) + 0x1000
    tokens = _tokens(_read(read, table_at, size, "kallsyms_token_table"), index)
    if tokens is None:
        raise KallsymsError(f"kallsyms: kallsyms_token_table at {table_at:#x} does not "
                            "match kallsyms_token_index")
    # The names run up to kallsyms_markers, then the token table, in both
    # orders (404bad70fcf7 ("scripts/kallsyms: change the output order") (in v6.4)).
    if not 0 < table_at - names_at <= 256 << 20:
        raise KallsymsError("kallsyms: kallsyms_token_table does not follow kallsyms_names")
    names = _read(read, names_at, table_at - names_at, "kallsyms_names")

    def whole() -> Kallsyms:
        found = _entries(names, count, 0, layout, origin=names_at)
        if found is None:
            raise KallsymsError(f"kallsyms: the {count} entries of kallsyms_names at "
                                f"{names_at:#x} do not agree with kallsyms_markers")
        starts, big = found
        syms, types = _decode(names, starts, tokens, big)
        table = Kallsyms(syms, types, _addresses(read, where, count, layout, stext,
                                                 _stext_index(syms))[1]())
        _check(table, vmcoreinfo, stext)
        return table
    by_name = _sorted_by_name(read, where, names, count, tokens, layout, whole)
    if by_name is None:
        return whole()
    stext_index = by_name.index("_stext")
    if stext_index is None:
        raise KallsymsError("kallsyms: no _stext symbol in the table")
    by_name.address = _addresses(read, where, count, layout, stext, stext_index)[0]
    by_name.expected = {k[7:-1]: v for k, v in ((k, _symbol(vmcoreinfo, k[7:-1]))
                                                for k in vmcoreinfo if k.startswith("SYMBOL("))
                        if v is not None and stext <= v < stext + (1 << 30)}
    return by_name


def _addresses(read: Read, where: Mapping[str, Optional[int]], count: int, layout: _Layout,
               stext: int, stext_index: int
               ) -> Tuple[Callable[[int], int], Callable[[], List[int]]]:
    """(the address of entry i, every address) of the tables at *where*."""
    if where["addresses"] is not None:
        # Absolute addresses, until 64e166099b69 ("kallsyms: get rid of code for
        # absolute kallsyms") (in v6.11).
        raw = _read(read, where["addresses"], count * layout.word, "kallsyms_addresses")
        return (lambda i: layout.word_at(raw, i * layout.word),
                lambda: [layout.word_at(raw, i) for i in range(0, len(raw), layout.word)])
    offsets_at = where["offsets"]
    if offsets_at is None:
        raise KallsymsError("kallsyms: VMCOREINFO has neither SYMBOL(kallsyms_offsets) "
                            "nor SYMBOL(kallsyms_addresses)")
    base = where["relative_base"]
    if base is not None:
        base = layout.word_at(_read(read, base, layout.word, "kallsyms_relative_base"), 0)
    rule = _address_rule(_read(read, offsets_at, 4 * count, "kallsyms_offsets"),
                         offsets_at, base, stext_index, stext, layout)
    if rule is None:
        raise KallsymsError("kallsyms: no encoding of kallsyms_offsets puts _stext at "
                            f"SYMBOL(_stext)={stext:#x}")
    return rule


def _sorted_by_name(read: Read, where: Mapping[str, Optional[int]], names: bytes, count: int,
                    tokens: List[str], layout: _Layout,
                    whole: Callable[[], Kallsyms]) -> Optional["SortedKallsyms"]:
    """The table answering lookups through ``kallsyms_seqs_of_names``
    (:mod:`oomdrgn.core.kallsyms_sorted`), or None where it is not found. It
    lies between ``kallsyms_markers`` and the token table (Debian's 6.1,
    v6.2 and v6.3), or after the offsets and ``kallsyms_relative_base`` since
    404bad70fcf7 ("scripts/kallsyms: change the output order") (in v6.4). The
    markers end before it or before the token table, each table aligned."""
    from .kallsyms_sorted import SortedKallsyms
    names_at, table_at, offsets_at = where["names"], where["token_table"], where["offsets"]
    assert names_at is not None and table_at is not None
    k, size = (count + 255) >> 8, 3 * count
    for algn in dict.fromkeys((layout.word, 4)):
        def down(v: int) -> int:
            return v - v % algn
        places = [down(table_at - size)]  # where kallsyms_seqs_of_names may start
        if offsets_at is not None:
            after = where["relative_base"]
            after = offsets_at + 4 * count if after is None else after + layout.word
            places.append(layout.align(after, algn))
        for seqs_at in places:
            markers_at = down((seqs_at if seqs_at < table_at else table_at) - 4 * k)
            if not names_at < markers_at < table_at:
                continue
            try:
                markers = layout.u32s(_read(read, markers_at, 4 * k, "kallsyms_markers"))
                seqs = _read(read, seqs_at, size, "kallsyms_seqs_of_names")
            except KallsymsError:
                continue
            if markers[-1] >= markers_at - names_at:
                continue
            for big in (True, False):
                try:
                    return SortedKallsyms(names[:markers_at - names_at], markers, seqs, tokens,
                                          big, whole)
                except KallsymsError:
                    pass
    return None


def _stext_index(names: List[str]) -> int:
    try:
        return names.index("_stext")
    except ValueError:
        raise KallsymsError("kallsyms: no _stext symbol in the table") from None


# The layout search (kernels whose VMCOREINFO does not name the tables).

def _image_range(vmcoreinfo: Mapping[str, str], stext: int) -> Tuple[int, int]:
    """``SYMBOL(_stext)`` up to the highest ``SYMBOL(...)`` of the kernel image
    (``.data`` symbols such as ``init_uts_ns`` lie beyond ``.rodata``)."""
    top = stext
    for key in vmcoreinfo:
        if key.startswith("SYMBOL("):
            v = _symbol(vmcoreinfo, key[7:-1])
            if v is not None and stext < v < stext + (1 << 30):
                top = max(top, v)
    return stext, top if top > stext else stext + (64 << 20)


def _gather(read: Read, start: int, end: int) -> bytearray:
    """``[start, end)`` read a chunk at a time (a page at a time where a chunk
    faults), unreadable pages left zero."""
    data = bytearray(end - start)
    at = start
    while at < end:
        size = min(_CHUNK - at % _CHUNK, end - at)
        try:
            data[at - start:at - start + size] = read(at, size)[:size]
        except Fault:
            page = at
            while page < at + size:
                step = min(_PAGE - page % _PAGE, at + size - page)
                try:
                    data[page - start:page - start + step] = read(page, step)[:step]
                except Fault:
                    pass
                page += step
        at += size
    return data


def _search(read: Read, layout: _Layout, stext: int, where: Tuple[int, int]) -> Kallsyms:
    """Find the tables by their shape in ``[start, end)``, as ``scripts/kallsyms.c``
    lays them out: ``kallsyms_token_table`` (256 NUL-terminated tokens, the digits
    among them) then ``kallsyms_token_index``; before the token table
    ``kallsyms_markers``, before them ``kallsyms_names``, before them
    ``kallsyms_num_syms``; the offsets (or addresses) and ``kallsyms_relative_base``
    before ``kallsyms_num_syms`` (until v6.4) or after the token index (since
    404bad70fcf7 ("scripts/kallsyms: change the output order") (in v6.4))."""
    start, end = where
    data = bytes(_gather(read, start, end))
    tried = 0
    at = data.find(_DIGITS)
    while at >= 0:
        tried += 1
        ks = _tables_at(data, at, start, layout, stext)
        if ks is not None:
            return ks
        at = data.find(_DIGITS, at + 1)
    raise KallsymsError(f"kallsyms: no kallsyms tables in [{start:#x}, {end:#x}) "
                        f"({tried} candidate token tables)")


def _tables_at(data: bytes, digits: int, start: int, layout: _Layout,
               stext: int) -> Optional[Kallsyms]:
    """The tables around the digit tokens at *digits* in *data* (at *start*), or None."""
    # The tokens from '0' to the last one; the token index follows, aligned.
    end = digits
    for _ in range(_TOKENS - 0x30):
        end = data.find(b"\0", end) + 1
        if end == 0:
            return None
    for index_at in sorted({layout.align(start + end, a) - start for a in (2, 4, layout.word)}):
        raw = data[index_at:index_at + 2 * _TOKENS]
        if len(raw) < 2 * _TOKENS:
            continue
        index = layout.u16s(raw)
        table_at = digits - index[0x30]
        if index[0] != 0 or table_at < 0 or data.find(b"\0", table_at + index[-1]) != end - 1:
            continue
        tokens = _tokens(data[table_at:end], index)
        if tokens is None:
            continue
        ks = _names_before(data, table_at, index_at, tokens, start, layout, stext)
        if ks is not None:
            return ks
    return None


def _u32(data: bytes, at: int, layout: _Layout) -> int:
    return struct.unpack_from(layout.order + "I", data, at)[0] if 0 <= at <= len(data) - 4 else -1


def _markers_from(data: bytes, at: int, table_at: int, layout: _Layout) -> List[int]:
    """The increasing words from the zero at *at*: ``kallsyms_markers``, maybe
    one word too many. Every 256 entries take at least 2 bytes each, at most
    ``2 + KSYM_NAME_LEN`` (512 since b8a94bfb3395 ("kallsyms: increase maximum
    kernel symbol length to 512") (in v6.1))."""
    markers = [0]
    at += 4
    while at + 4 <= table_at:
        v = _u32(data, at, layout)
        if not markers[-1] + 512 <= v <= markers[-1] + 256 * 514:
            break
        markers.append(v)
        at += 4
    return markers


def _names_before(data: bytes, table_at: int, index_at: int, tokens: List[str], start: int,
                  layout: _Layout, stext: int) -> Optional[Kallsyms]:
    """``kallsyms_markers``, ``kallsyms_names`` and ``kallsyms_num_syms`` before the
    token table at *table_at*, then the addresses. The markers come right before
    the token table, or before ``kallsyms_seqs_of_names`` (3 bytes a symbol:
    60443c88f3a8 ("kallsyms: Improve the performance of kallsyms_lookup_name()")
    (in v6.2), backported to Debian's 6.1) until v6.4 moved it after the offsets."""
    lo, hi = max(0, table_at - (16 << 20)), table_at
    while True:
        zeros = data.rfind(b"\0\0\0\0", lo, hi)
        if zeros < 0:
            return None
        # markers[0] is the last aligned zero word of a run (markers[1] is not
        # zero); go on before the run.
        at = zeros - (start + zeros) % 4
        hi = _zeros_from(data, lo, zeros) + 3
        if at < lo or data[at:at + 4] != bytes(4):
            continue
        markers = _markers_from(data, at, table_at, layout)
        for k in (len(markers), len(markers) - 1):
            if k < 2 or not any(
                    gap == 0 or 3 * 256 * (k - 1) < gap <= 3 * 256 * k + 8
                    for gap in {table_at + start - layout.align(start + at + 4 * k, a)
                                for a in (layout.word, 4)}):
                continue
            ks = _names_at_markers(data, at, markers[:k], index_at, tokens, start, layout, stext)
            if ks is not None:
                return ks


def _zeros_from(data: bytes, lo: int, at: int) -> int:
    """Where the run of zero bytes through *at* begins (not before *lo*)."""
    while at > lo:
        begin = max(lo, at - 4096)
        kept = len(data[begin:at].rstrip(b"\0"))
        if kept:
            return begin + kept
        at = begin
    return lo


def _names_at_markers(data: bytes, markers_at: int, markers: List[int], index_at: int,
                      tokens: List[str], start: int, layout: _Layout,
                      stext: int) -> Optional[Kallsyms]:
    """``kallsyms_num_syms`` then ``kallsyms_names`` (one ``ALGN`` further: the
    word size, or 4) before the markers at *markers_at*: the names' last 256
    entries lie between the last marker and the markers."""
    k = len(markers)
    last = markers_at - 4 - markers[-1]  # the latest num_syms can be
    for num_at in range(last - (start + last) % 4, max(last - 256 * 520, -1), -4):
        count = _u32(data, num_at, layout)
        if not (k - 1) << 8 < count <= k << 8:
            continue
        for algn in dict.fromkeys((layout.word, 4)):
            if (start + num_at) % algn or any(data[num_at + 4:num_at + algn]):
                continue
            found = _entries(data, count, num_at + algn, layout, markers_at=markers_at)
            if found is None or layout.align(start + found[0][-1], algn) - start != markers_at:
                continue
            starts, big = found
            names, types = _decode(data, starts, tokens, big)
            if "_stext" not in names:
                continue
            addresses = _addresses_near(data, num_at, index_at, count, start,
                                        _Layout(layout.word, layout.order == "<", algn),
                                        names.index("_stext"), stext)
            if addresses is not None:
                return Kallsyms(names, types, addresses)
    return None


def _addresses_near(data: bytes, num_at: int, index_at: int, count: int, start: int,
                    layout: _Layout, stext_index: int, stext: int) -> Optional[List[int]]:
    """The addresses of the table whose ``kallsyms_num_syms`` is at *num_at*."""
    a, size = layout.word, 4 * count
    base_at = num_at - a  # before v6.4: offsets, relative base (a word), num_syms
    after = layout.align(start + index_at + 2 * _TOKENS) - start  # since v6.4: after the index
    candidates: List[Tuple[int, Optional[int]]] = [  # (offsets, relative base)
        (base_at - layout.align(size), base_at),
        (after, layout.align(start + after + size) - start),
        (after, None)]  # v7.0+: no relative base
    for off_at, rb_at in candidates:
        if off_at < 0 or off_at + size > len(data):
            continue
        base = None
        if rb_at is not None:
            if not 0 <= rb_at <= len(data) - a:
                continue
            base = layout.word_at(data, rb_at)
        got = _interpret(data[off_at:off_at + size], start + off_at, base, stext_index,
                         stext, layout)
        if got is not None:
            return got
    # Absolute addresses (no CONFIG_KALLSYMS_BASE_RELATIVE), before num_syms.
    at = num_at - count * a
    if at >= 0:
        got = [layout.word_at(data, at + i * a) for i in range(count)]
        if got[stext_index] == stext:
            return got
    return None


def _check(ks: Kallsyms, vmcoreinfo: Mapping[str, str], stext: int) -> None:
    """The table agrees with VMCOREINFO: ``_stext`` and every ``SYMBOL(name)`` of
    the image it holds (a ``SYMBOL()`` outside the image is a pointer's value,
    such as ``mem_section``'s), and addresses are sorted."""
    if ks.address_of("_stext") != stext:
        raise KallsymsError(f"kallsyms: _stext is not at SYMBOL(_stext)={stext:#x}")
    if hasattr(ks, "expected"):  # sorted lookups: each checked as it is made
        return
    last = ks.addresses[-1]
    for key in vmcoreinfo:
        if not key.startswith("SYMBOL("):
            continue
        name = key[7:-1]
        value = _symbol(vmcoreinfo, name)
        if value is None or not stext <= value <= last or name not in ks:
            continue
        if ks.address_of(name) != value and value not in (
                addr for n, addr in zip(ks.names, ks.addresses) if n == name):
            raise KallsymsError(f"kallsyms: {name} is at {ks.address_of(name):#x}, "
                                f"VMCOREINFO says {value:#x}")
    if not all(map(operator.le, ks.addresses, itertools.islice(ks.addresses, 1, None))):
        raise KallsymsError("kallsyms: addresses are not sorted")
