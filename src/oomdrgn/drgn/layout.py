"""Read many fields of a kernel struct with few reads: offsets from the debug
info once per program, then raw bytes decoded per object (the hot path)."""

import re
import struct
from operator import itemgetter
from typing import Dict, List, Optional, Sequence, Tuple

from drgn import FaultError, Program, Type, TypeKind, offsetof, sizeof

__all__ = ["StructReader", "BlockCache", "linear_map"]

# Fields closer than this share one read (one read of a few KiB costs about
# what a read of 8 bytes costs; each read is a call into drgn).
_MERGE_GAP = 8192
_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_MASK64 = (1 << 64) - 1


def _scalar(t: Type) -> Tuple[int, bool, bool]:
    """(size, signed, is_bytes) of a member read as one value."""
    t = t.unaliased()
    kind = t.kind
    if kind == TypeKind.POINTER:
        return t.size, False, False
    if kind in (TypeKind.INT, TypeKind.BOOL):
        return t.size, kind == TypeKind.INT and t.is_signed, False
    if kind == TypeKind.ENUM:
        return t.size, t.type.is_signed, False
    if kind in (TypeKind.STRUCT, TypeKind.UNION) and len(t.members) == 1:
        # atomic_t, atomic_long_t, kuid_t and other one-member wrappers.
        return _scalar(t.members[0].type)
    if kind == TypeKind.ARRAY:
        return sizeof(t), False, True
    raise TypeError(f"cannot read {t} as a scalar")


def _member_type(ty: Type, designator: str) -> Type:
    """The type of ``ty.designator`` (``a.b[2].c``)."""
    t = ty
    for part in re.findall(r"[A-Za-z_]\w*|\[\d+\]", designator):
        t = t.unaliased()
        t = t.type if part.startswith("[") else t.member(part).type
    return t


class StructReader:
    """Decode *fields* (member designators like ``"uid"`` or ``"rss_stat[1].count"``)
    of one struct type from raw memory, with one ``struct.Struct`` per read.

    Fields missing from this kernel's type read as 0 (``has()`` tells).
    """

    def __init__(self, prog: Program, type_name: str, fields: Sequence[str],
                 memory: Optional["BlockCache"] = None) -> None:
        self.prog = prog
        self.memory = memory or BlockCache(prog, enabled=False)
        ty = prog.type(type_name)
        endian = "<" if prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN else ">"
        found: Dict[str, Tuple[int, int, bool, bool]] = {}
        for f in fields:
            try:
                found[f] = (offsetof(ty, f),) + _scalar(_member_type(ty, f))
            except LookupError:
                continue
        self.offsets = {f: v[0] for f, v in found.items()}
        # Group fields into reads, then build one unpacker per read.
        order = sorted(found, key=lambda f: found[f][0])
        self._groups: List[Tuple[int, int, struct.Struct, List[str]]] = []
        group: List[str] = []
        for f in order + [None]:
            if group and (f is None or found[f][0] - (found[group[-1]][0] + found[group[-1]][1])
                          >= _MERGE_GAP):
                self._groups.append(self._unpacker(group, found, endian))
                group = []
            if f is not None:
                group.append(f)
        # Reads come in offset order; hand the values back in *fields* order.
        position = {f: i for i, f in enumerate(f for *_, names in self._groups for f in names)}
        missing = len(position)
        index = [position.get(f, missing) for f in fields]
        self._arrange = (itemgetter(*index) if len(index) > 1
                         else lambda values: (values[index[0]],))
        self._reads = [(start, size, unpacker) for start, size, unpacker, _ in self._groups]
        if len(self._reads) == 1:  # the usual case: one read, no loop
            (start, size, unpacker), = self._reads
            unpack, arrange = self.memory.unpack, self._arrange
            self.read = lambda address: arrange(  # type: ignore[method-assign]
                unpack(unpacker, address + start, size) + (0,))
            exact = self.memory.read_exact
            self.read_exact = lambda address: arrange(  # type: ignore[method-assign]
                unpacker.unpack(exact(address + start, size)) + (0,))

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
        for; a field this kernel lacks reads as 0 (raises drgn.FaultError)."""
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


def linear_map(prog: Program) -> Optional[Tuple[int, int, int]]:
    """``(start, end, offset)``: the kernel's direct map of RAM, virtual
    ``[start, end)`` at physical ``address - offset``, from drgn's own
    ``phys_to_virt()`` and the kernel's ``min_low_pfn``/``max_pfn``; None if
    the kernel does not tell."""
    from drgn.helpers.linux.mm import phys_to_virt
    try:
        shift = prog["PAGE_SHIFT"].value_()
        low = prog["min_low_pfn"].value_() << shift
        high = prog["max_pfn"].value_() << shift
        offset = phys_to_virt(prog, 0).value_()
    except (LookupError, FaultError, ValueError, NotImplementedError):
        return None
    if not 0 <= low < high:
        return None
    return (low + offset) & _MASK64, (high + offset) & _MASK64, offset


class BlockCache:
    """Reads of a target whose memory cannot change (a vmcore), served from
    aligned blocks read once: task, signal, cred and mm structs sit densely in
    slab pages, so one block read answers many objects. Bounded (oldest block
    dropped first); a block that cannot be read whole falls back to a direct
    read of just the bytes asked for (which raises drgn's FaultError where
    memory is missing). Disabled (direct reads) for live targets.

    Blocks in the direct map (see :func:`linear_map`) are read by physical
    address: drgn then skips its page-table walk, which costs 4/5 of a
    small virtual read. A block whose two readings differ turns this off.
    """

    def __init__(self, prog: Program, enabled: bool, block_shift: int = 14,
                 max_bytes: int = 16 << 20,
                 linear: Optional[Tuple[int, int, int]] = None) -> None:
        self.prog = prog
        self.enabled = enabled
        self.linear = linear
        self._checked = False
        self.shift = block_shift
        self.size = 1 << block_shift
        self.mask = self.size - 1
        self.max_blocks = max(1, max_bytes >> block_shift)
        # index -> the block's bytes, or b"" where it cannot be read whole.
        self.blocks: Dict[int, bytes] = {}
        endian = "<" if prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN else ">"
        self._u64 = struct.Struct(endian + "Q")
        self._u32 = struct.Struct(endian + "I")

    def _load(self, index: int) -> bytes:
        address = index << self.shift
        try:
            block = self._read_block(address)
        except FaultError:
            block = b""  # partly unmapped: direct reads for this block
        blocks = self.blocks
        blocks[index] = block
        if len(blocks) > self.max_blocks:
            del blocks[next(iter(blocks))]
        return block

    def _physical(self, address: int, size: int) -> Optional[bytes]:
        """The bytes at *address* read by physical address, if in the direct map."""
        if self.linear is None:
            return None
        start, end, offset = self.linear
        if not (start <= address and address + size <= end):
            return None
        data = self.prog.read((address - offset) & _MASK64, size, True)
        if not self._checked:  # once: the physical reading is the virtual one
            self._checked = True
            if data != self.prog.read(address, size):
                self.linear = None
                return None
        return data

    def _read_block(self, address: int) -> bytes:
        block = self._physical(address, self.size)
        return self.prog.read(address, self.size) if block is None else block

    def read_exact(self, address: int, size: int) -> bytes:
        """The *size* bytes at *address*, read now (by physical address in the
        direct map), not cached."""
        data = self._physical(address, size)
        return self.prog.read(address, size) if data is None else data

    def read(self, address: int, size: int) -> bytes:
        start = address & self.mask
        if self.enabled and start + size <= self.size:
            block = self.blocks.get(address >> self.shift)
            if block is None:
                block = self._load(address >> self.shift)
            if block:
                return block[start:start + size]
        return self.prog.read(address, size)

    def unpack(self, unpacker: struct.Struct, address: int, size: int) -> tuple:
        """``unpacker.unpack()`` of the *size* bytes at *address* (the hot path)."""
        block = self.blocks.get(address >> self.shift)
        if block is None and self.enabled:
            block = self._load(address >> self.shift)
        if block:
            start = address & self.mask
            if start + size <= self.size:
                return unpacker.unpack_from(block, start)
        return unpacker.unpack(self.prog.read(address, size))

    def read_word(self, address: int) -> int:
        return self.unpack(self._u64, address, 8)[0]

    def read_u32(self, address: int) -> int:
        return self.unpack(self._u32, address, 4)[0]
