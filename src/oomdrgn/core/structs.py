"""Many fields of a kernel struct from few reads, over the target port.

Offsets come from the port once per reader; each object is then raw bytes
decoded with one ``struct.Struct`` (the hot path). :class:`BlockCache` serves
reads of memory that cannot change (a vmcore, a stopped guest) from aligned
blocks read once.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Dict, List, Optional, Sequence, Tuple

from .port import Fault, Member, Target

__all__ = ["StructReader", "BlockCache", "scalar"]

# Fields closer than this share one read (one read of a few KiB costs about
# what a read of 8 bytes costs).
_MERGE_GAP = 8192
_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def scalar(target: Target, type_name: str, designator: str) -> Tuple[Member, bool]:
    """The member to read for *designator* as one value, and whether it is raw
    bytes (a char array). One-member wrappers (``atomic_t``, ``kuid_t``,
    ``mm_flags_t``'s word array aside) are looked through.

    :raises LookupError: no such member; ``TypeError``: not a scalar
    """
    m = target.member(type_name, designator)
    while m.kind in ("struct", "union") and len(m.members) == 1:
        designator = f"{designator}.{m.members[0]}"
        m = target.member(type_name, designator)
    if m.kind in ("int", "bool", "enum", "pointer"):
        return m, False
    if m.kind == "array":
        return m, True
    raise TypeError(f"cannot read {type_name}.{designator} ({m.kind}) as a scalar")


class BlockCache:
    """Reads through aligned blocks read once (bounded, oldest dropped first).

    A block that cannot be read whole falls back to direct reads of just the
    bytes asked for (which raise :class:`Fault` where memory is missing).
    Disabled (every read direct) for live targets. Lifetime: the reader that
    owns it (one program of a vmcore, one command at a GDB stop).
    """

    def __init__(self, target: Target, enabled: bool, block_shift: int = 14,
                 max_bytes: int = 16 << 20) -> None:
        self.target = target
        self.enabled = enabled
        self.shift = block_shift
        self.size = 1 << block_shift
        self.mask = self.size - 1
        self.max_blocks = max(1, max_bytes >> block_shift)
        # index -> the block's bytes, or b"" where it cannot be read whole.
        self.blocks: Dict[int, bytes] = {}
        endian = "<" if target.little_endian else ">"
        self._u64 = struct.Struct(endian + "Q")
        self._u32 = struct.Struct(endian + "I")
        self.read_exact = target.read
        # The hot path as closures over locals (no attribute lookups per read).
        blocks, shift, mask, size, load = self.blocks, self.shift, self.mask, self.size, self._load
        direct = target.read

        def unpack(unpacker: struct.Struct, address: int, n: int) -> tuple:
            block = blocks.get(address >> shift)
            if block is None and enabled:
                block = load(address >> shift)
            if block:
                start = address & mask
                if start + n <= size:
                    return unpacker.unpack_from(block, start)
            return unpacker.unpack(direct(address, n))
        u64, u32 = self._u64, self._u32
        self.unpack = unpack  # type: ignore[method-assign,assignment]
        self.read_word = lambda address: unpack(u64, address, 8)[0]  # type: ignore[method-assign]
        self.read_u32 = lambda address: unpack(u32, address, 4)[0]  # type: ignore[method-assign]

    def _load(self, index: int) -> bytes:
        try:
            block = self.target.read(index << self.shift, self.size)
        except Fault:
            block = b""  # partly unmapped: direct reads for this block
        blocks = self.blocks
        blocks[index] = block
        if len(blocks) > self.max_blocks:
            del blocks[next(iter(blocks))]
        return block

    def read(self, address: int, size: int) -> bytes:
        start = address & self.mask
        if self.enabled and start + size <= self.size:
            block = self.blocks.get(address >> self.shift)
            if block is None:
                block = self._load(address >> self.shift)
            if block:
                return block[start:start + size]
        return self.target.read(address, size)

    def unpack(self, unpacker: struct.Struct, address: int, size: int) -> tuple:
        """``unpacker.unpack()`` of the *size* bytes at *address* (the hot path)."""
        block = self.blocks.get(address >> self.shift)
        if block is None and self.enabled:
            block = self._load(address >> self.shift)
        if block:
            start = address & self.mask
            if start + size <= self.size:
                return unpacker.unpack_from(block, start)
        return unpacker.unpack(self.target.read(address, size))

    def read_word(self, address: int) -> int:
        return self.unpack(self._u64, address, 8)[0]

    def read_u32(self, address: int) -> int:
        return self.unpack(self._u32, address, 4)[0]


class StructReader:
    """Decode *fields* (designators like ``"uid"`` or ``"rss_stat[1].count"``)
    of one struct type from raw memory.

    Fields missing from this kernel's type read as 0 (``has()`` tells).
    """

    def __init__(self, target: Target, type_name: str, fields: Sequence[str],
                 memory: Optional[BlockCache] = None) -> None:
        self.memory = memory or BlockCache(target, enabled=False)
        endian = "<" if target.little_endian else ">"
        found: Dict[str, Tuple[int, int, bool, bool]] = {}
        for f in fields:
            try:
                m, is_bytes = scalar(target, type_name, f)
            except LookupError:
                continue
            found[f] = (m.offset, m.size, m.signed, is_bytes)
        self.offsets = {f: v[0] for f, v in found.items()}
        # Group fields into reads, then build one unpacker per read.
        order = sorted(found, key=lambda f: found[f][0])
        groups: List[Tuple[int, int, struct.Struct, List[str]]] = []
        group: List[str] = []
        ends: List[Optional[str]] = [*order, None]
        for g in ends:
            if group and (g is None or found[g][0] - (found[group[-1]][0] + found[group[-1]][1])
                          >= _MERGE_GAP):
                groups.append(self._unpacker(group, found, endian))
                group = []
            if g is not None:
                group.append(g)
        # Reads come in offset order; hand the values back in *fields* order.
        position = {f: i for i, f in enumerate(f for *_, names in groups for f in names)}
        missing = len(position)
        index = [position.get(f, missing) for f in fields]
        self._arrange = (itemgetter(*index) if len(index) > 1
                         else lambda values: (values[index[0]],))
        self._reads = [(start, size, unpacker) for start, size, unpacker, _ in groups]
        if len(self._reads) == 1:  # the usual case: one read, no loop
            (start, size, unpacker), = self._reads
            unpack, arrange = self.memory.unpack, self._arrange
            exact = self.memory.read_exact
            if missing in index:
                self.read = lambda address: arrange(  # type: ignore[method-assign]
                    unpack(unpacker, address + start, size) + (0,))
                self.read_exact = lambda address: arrange(  # type: ignore[method-assign]
                    unpacker.unpack(exact(address + start, size)) + (0,))
            else:  # every field present: no 0 to append
                self.read = lambda address: arrange(  # type: ignore[method-assign]
                    unpack(unpacker, address + start, size))
                self.read_exact = lambda address: arrange(  # type: ignore[method-assign]
                    unpacker.unpack(exact(address + start, size)))

    @staticmethod
    def _unpacker(group, found, endian):
        start = found[group[0]][0]
        fmt, pos, names = endian, start, []
        for f in group:
            off, size, signed, is_bytes = found[f]
            if off < pos:  # overlapping designators are not supported
                raise ValueError(f"overlapping field {f}")
            fmt += f"{off - pos}x" if off > pos else ""
            fmt += f"{size}s" if is_bytes else (_CODES[size] if signed else _CODES[size].upper())
            pos = off + size
            names.append(f)
        return start, pos - start, struct.Struct(fmt), names

    def has(self, field: str) -> bool:
        return field in self.offsets

    def offset(self, field: str) -> int:
        return self.offsets[field]

    def read(self, address: int) -> tuple:
        """The fields of the object at *address*, in the order they were asked
        for; a field this kernel lacks reads as 0 (raises :class:`Fault`)."""
        unpack = self.memory.unpack
        values: tuple = ()
        for start, size, unpacker in self._reads:
            values += unpack(unpacker, address + start, size)
        return self._arrange(values + (0,))

    def read_exact(self, address: int) -> tuple:
        """:meth:`read`, reading just the fields' span (no block): for big
        structs of which little is needed, like ``task_struct``."""
        values: tuple = ()
        for start, size, unpacker in self._reads:
            values += unpacker.unpack(self.memory.read_exact(address + start, size))
        return self._arrange(values + (0,))
