"""The target port: the little a debugger must answer for oomdrgn to read a kernel.

Everything else (which layout this kernel has, task/mm/signal/cred records,
cgroups, CPUs, the printk ring) is read over this port once, in the core
(:mod:`oomdrgn.core.kernel`). A backend (drgn, GDB) implements :class:`Target`;
its optional hooks (``find_task``, ``stack_functions``, ``stack_frames``,
``oom_control``, ``stopped_task``, ``vmcoreinfo``) return ``None`` where it has
nothing better than the core's own walk.
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, Tuple

from .errors import ReadError
from .record import record

__all__ = ["Fault", "Member", "Target"]


class Fault(ReadError):
    """Memory at an address could not be read."""

    def __init__(self, message: str, address: int = 0) -> None:
        super().__init__(message)
        self.address = address


@record(frozen=True)
class Member:
    """A struct member (or a designator such as ``rss_stat[1].count``).

    :param kind: ``int``, ``bool``, ``enum``, ``pointer``, ``array``, ``struct``,
        ``union`` or ``other`` (typedefs resolved)
    :param length: the element count of an array
    :param members: the member names of a struct or union, in order
    """

    offset: int
    size: int
    kind: str
    signed: bool = False
    length: Optional[int] = None
    members: Tuple[str, ...] = ()


class Target(Protocol):
    """A kernel's memory and types, as one debugger sees them."""

    #: ``x86_64`` or ``aarch64``
    arch: str
    little_endian: bool
    #: memory may change between reads (``/proc/kcore``, a running QEMU guest)
    live: bool

    def read(self, address: int, size: int) -> bytes:
        """*size* bytes at virtual *address* (raises :class:`Fault`)."""

    def member(self, type_name: str, designator: str) -> Member:
        """Offset and type of *designator* in ``type_name`` (``struct mm_struct``);
        raises ``LookupError`` if this kernel has no such member."""

    def sizeof(self, type_name: str) -> int:
        """``sizeof(type_name)`` (raises ``LookupError``)."""

    def constant(self, name: str) -> Optional[int]:
        """An enumerator's value (``MM_ANONPAGES``, ``memory_cgrp_id``), or None."""

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        """``(address, size)`` of a kernel symbol (size 0 if unknown), or None."""

    def return_type(self, function: str) -> Optional[str]:
        """The C return type of *function* (``long``, ``unsigned long``), or None."""

    def vmlinux_path(self) -> Optional[str]:
        """The kernel image file the symbols come from, if there is one."""

    # Optional hooks: None means "use the core's own way".

    def find_task(self, pid: int) -> Optional[int]:
        """The task with *pid* through the debugger's PID lookup, or None."""

    def stack_functions(self, task: int) -> Optional[List[str]]:
        """Function names on *task*'s stack, innermost first, or None."""

    def symbol_name(self, address: int) -> Optional[str]:
        """The name of the symbol holding *address* (what ``%ps`` prints), or None."""

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        """*task*'s frames, innermost first, as ``(function, offset, symbol size,
        reliable)`` of the ELF symbol holding each return address (looked up at
        address - 1, as ``%pB`` does), or None."""

    def oom_control(self, task: int) -> Optional[dict]:
        """The ``struct oom_control`` in *task*'s stack frames (``oc`` of
        ``out_of_memory()`` and its callers): ``gfp_mask``, ``order``,
        ``nodemask`` and ``memcg`` (addresses, 0 for NULL), or None."""

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        """Which of *tasks* runs on the CPU the debugger stopped, or None."""

    def vmcoreinfo(self) -> Optional[bytes]:
        """The VMCOREINFO text the debugger itself uses, or None."""
