"""``list_head`` walks as the kernel's list macros do, hardened against damaged
memory (standard library only)."""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple, Type

from .errors import ReadError

__all__ = ["MAX_LIST", "list_entries"]

# More entries than this means a corrupted (looping) list.
MAX_LIST = 4_000_000
_MASK64 = (1 << 64) - 1


def list_entries(head: int, offset: int, link: Callable[[int], int], what: str,
                 faults: Tuple[Type[BaseException], ...],
                 first: Optional[int] = None) -> Iterator[int]:
    """``list_for_each_entry``: the addresses of the structs whose ``list_head``
    at *offset* is on the list at *head*.

    Each entry's link is read before the entry is handed out, so that a bad
    link is reported as the list's fault (``ReadError`` naming *what*), not the
    entry's; a NULL link, a loop or a read in *faults* ends the walk so.

    :param link: reads a node's ``next``.
    :param first: the head's ``next``, when already read.
    """
    seen: set = set()
    add = seen.add
    try:
        node = link(head) if first is None else first
    except faults as e:
        raise ReadError(f"{what} list unreadable: {e}") from None
    while node != head:
        if node < 4096:  # NULL (or nearly): a zeroed or freed link
            raise ReadError(f"{what} list broken: link {node:#x}")
        if node in seen or len(seen) > MAX_LIST:
            raise ReadError(f"{what} list loops at {node:#x}")
        add(node)
        try:
            nxt = link(node)
        except faults as e:
            raise ReadError(f"{what} list unreadable: {e}") from None
        yield (node - offset) & _MASK64
        node = nxt
