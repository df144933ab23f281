"""list_entries(): the kernel's list walk over a dict of links, damaged too."""

import pytest

from oomdrgn.core.klist import list_entries
from oomdrgn.core.oom import ReadError


class Fault(Exception):
    pass


def _reader(links):
    def link(node):
        if node not in links:
            raise Fault(f"no memory at {node:#x}")
        return links[node]
    return link


HEAD = 0x1000


def test_entries_in_list_order_minus_offset():
    links = {HEAD: 0x2010, 0x2010: 0x3010, 0x3010: HEAD}
    assert list(list_entries(HEAD, 0x10, _reader(links), "t", (Fault,))) == [0x2000, 0x3000]


def test_first_link_given():
    links = {0x2010: HEAD}
    assert list(list_entries(HEAD, 0x10, _reader(links), "t", (Fault,), first=0x2010)) == [0x2000]


@pytest.mark.parametrize("links,message,got", [
    ({HEAD: 0x2010, 0x2010: 0}, "t list broken: link 0x0", [0x2000]),
    ({HEAD: 0x2010, 0x2010: 0x3010, 0x3010: 0x2010}, "t list loops at 0x2010", [0x2000, 0x3000]),
    # The bad link is read before its entry is handed out: the entry is not.
    ({HEAD: 0x2010, 0x2010: 0x3010}, "t list unreadable: no memory at 0x3010", [0x2000]),
    ({}, "t list unreadable: no memory at 0x1000", []),
])
def test_damage_ends_the_walk_with_the_lists_fault(links, message, got):
    seen = []
    with pytest.raises(ReadError, match=message):
        for entry in list_entries(HEAD, 0x10, _reader(links), "t", (Fault,)):
            seen.append(entry)
    assert seen == got
