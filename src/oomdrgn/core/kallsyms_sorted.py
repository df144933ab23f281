"""kallsyms looked up by name without decoding the whole table (standard
library only), as ``kallsyms_lookup_names()`` does: a binary search through
``kallsyms_seqs_of_names``, the entries' indices sorted by name (3 bytes each,
big-endian; 60443c88f3a8 ("kallsyms: Improve the performance of
kallsyms_lookup_name()") (in v6.2), backported to Debian's 6.1). A lookup
decodes about 17 names, each from its block of 256 (``kallsyms_markers``); the
whole table is decoded only when asked for (:attr:`names`, :meth:`name_at`).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .kallsyms import MAX_SYMBOL_LENGTH, Kallsyms, KallsymsError, unreadable_kallsyms, walk_entries

__all__ = ["SortedKallsyms", "PROBES"]

#: entries of kallsyms_seqs_of_names checked to be in order when it is found
PROBES = 32


class SortedKallsyms(Kallsyms):
    """:class:`Kallsyms` answering lookups by name through the kernel's sorted
    index.

    :param names: ``kallsyms_names``, the entries from its start
    :param markers: ``kallsyms_markers`` (the offset of every 256th entry)
    :param seqs: ``kallsyms_seqs_of_names``
    :param tokens: the 256 tokens
    :param big: whether a length with bit 7 set takes two bytes (73bbb94466fd
        ("kallsyms: support "big" kernel symbols") (in v6.1))
    :param full: the whole table decoded, when it is asked for
    :raises KallsymsError: the markers or the sorted index do not hold together
    """

    def __init__(self, names: bytes, markers: Sequence[int], seqs: bytes, tokens: List[str],
                 big: bool, full: Callable[[], Kallsyms]) -> None:
        # Kallsyms.__init__ is not called: its lists are made on demand.
        self.count = len(seqs) // 3
        self._names_blob, self._markers, self._seqs = names, markers, seqs
        self._tokens, self._big, self._full = tokens, big, full
        self._table: Optional[Kallsyms] = None
        self._blocks: Dict[int, List[int]] = {}
        self._sorted: Dict[int, str] = {}
        self._found: Dict[str, List[int]] = {}
        self.address: Callable[[int], int] = _no_rule
        #: addresses VMCOREINFO gives (``SYMBOL()`` in the image): a lookup of
        #: one of these names is checked against it
        self.expected: Dict[str, int] = {}
        if not self.count or len(markers) != (self.count + 255) >> 8 or markers[0]:
            raise KallsymsError("kallsyms: kallsyms_markers do not fit kallsyms_seqs_of_names")
        step = max(1, self.count // PROBES)
        keys = [self._key(j) for j in sorted({*range(0, self.count, step), self.count - 1})]
        if keys != sorted(keys):
            raise KallsymsError("kallsyms: kallsyms_seqs_of_names is not in name order")

    # The entries --------------------------------------------------------------

    def _starts(self, block: int) -> List[int]:
        """The offsets of the entries of *block* (256 entries) and where the
        block ends, checked against the next marker."""
        starts = self._blocks.get(block)
        if starts is None:
            found = walk_entries(self._names_blob, min(256, self.count - (block << 8)), self._big,
                          self._markers[block])
            if found is None:
                raise KallsymsError(f"kallsyms: block {block} runs past kallsyms_names")
            if block + 1 < len(self._markers) and found[-1] != self._markers[block + 1]:
                raise KallsymsError(f"kallsyms: block {block} does not end at the next marker")
            starts = self._blocks[block] = found
        return starts

    def _entry(self, i: int) -> str:
        """Entry *i* expanded: its type character, then its name."""
        if not 0 <= i < self.count:
            raise KallsymsError(f"kallsyms: kallsyms_seqs_of_names holds {i} of {self.count}")
        starts = self._starts(i >> 8)
        pos, end = starts[i & 255], starts[(i & 255) + 1]
        names = self._names_blob
        pos += 2 if self._big and names[pos] & 0x80 else 1  # the length: one byte or two
        return "".join(map(self._tokens.__getitem__, names[pos:end]))

    def _seq(self, j: int) -> int:
        return int.from_bytes(self._seqs[3 * j:3 * j + 3], "big")

    def _key(self, j: int) -> str:
        """The name of the *j*-th entry in name order (``strcmp()``'s order:
        names are Latin-1, one character a byte)."""
        key = self._sorted.get(j)
        if key is None:
            key = self._sorted[j] = self._entry(self._seq(j))[1:]
        return key

    # Kallsyms' questions ------------------------------------------------------

    def _matches(self, name: str) -> List[int]:
        """The indices of the entries called *name*.

        :raises OomdrgnError: a block of the table (or VMCOREINFO) contradicts
            it: exit status 4, as a table that does not hold together when read
        """
        found = self._found.get(name)
        if found is None:
            try:
                found = self._search(name)
            except KallsymsError as e:
                raise unreadable_kallsyms(e) from None
            self._found[name] = found
        return found

    def _search(self, name: str) -> List[int]:
        """The binary search, then every entry of that name; checked against
        VMCOREINFO's address where it gives one."""
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) >> 1
            if self._key(mid) < name:
                lo = mid + 1
            else:
                hi = mid
        found = []
        while lo < self.count and self._key(lo) == name:
            found.append(self._seq(lo))
            lo += 1
        value = self.expected.get(name)
        if found and value is not None and value not in map(self.address, found):
            raise KallsymsError(f"kallsyms: {name} is at {self.address(min(found)):#x}, "
                                f"VMCOREINFO says {value:#x}")
        return found

    def index(self, name: str) -> Optional[int]:
        """The index of the first symbol called *name* (the lowest: the table
        is in address order), or None."""
        if self._table is not None:
            return self._table.index(name)
        return min(self._matches(name), default=None)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.index(name) is not None

    @property
    def all_symbols(self) -> bool:
        return self.index("init_task") is not None

    def lookup(self, name: str) -> Optional[Tuple[int, int]]:
        i = self.index(name)
        if i is None:
            return None
        address = self.address(i)
        size = 0
        if i + 1 < self.count:
            gap = self.address(i + 1) - address
            if gap < MAX_SYMBOL_LENGTH:
                size = gap
        return address, size

    def address_of(self, name: str) -> Optional[int]:
        i = self.index(name)
        return None if i is None else self.address(i)

    def type_of(self, name: str) -> Optional[str]:
        i = self.index(name)
        return None if i is None else self._entry(i)[0]

    # The whole table ------------------------------------------------------------

    def whole(self) -> Kallsyms:
        """The whole table, decoded once.

        :raises OomdrgnError: it does not hold together (exit status 4)
        """
        if self._table is None:
            try:
                self._table = self._full()
            except KallsymsError as e:
                raise unreadable_kallsyms(e) from None
        return self._table

    @property
    def names(self) -> List[str]:  # type: ignore[override]
        return self.whole().names

    @property
    def types(self) -> str:  # type: ignore[override]
        return self.whole().types

    @property
    def addresses(self) -> List[int]:  # type: ignore[override]
        return self.whole().addresses


def _no_rule(i: int) -> int:
    raise KallsymsError("kallsyms: no address rule yet")
