"""Read many fields of a kernel struct with few reads: offsets from the debug
info once per program, then raw bytes decoded per object (the hot path)."""

import re
import struct
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from drgn import FaultError, Program, Type, TypeKind, offsetof, sizeof

__all__ = ["StructReader", "BlockCache"]

# Fields closer than this share one read (one read of a few KiB costs about
# what a read of 8 bytes costs; each read is a call into drgn).
_MERGE_GAP = 8192
_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


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

    Fields missing from this kernel's type are left out (``has()`` tells).
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
        self._reads: List[Tuple[int, int, struct.Struct, List[str]]] = []
        group: List[str] = []
        for f in order + [None]:
            if group and (f is None or found[f][0] - (found[group[-1]][0] + found[group[-1]][1])
                          >= _MERGE_GAP):
                self._reads.append(self._unpacker(group, found, endian))
                group = []
            if f is not None:
                group.append(f)

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

    def read(self, address: int) -> dict:
        """All fields of the object at *address* (raises drgn.FaultError)."""
        out = {}
        for start, size, unpacker, names in self._reads:
            out.update(zip(names, unpacker.unpack(self.memory.read(address + start, size))))
        return out


class BlockCache:
    """Reads of a target whose memory cannot change (a vmcore), served from
    aligned blocks read once: task, signal, cred and mm structs sit densely in
    slab pages, so one block read answers many objects. Bounded (LRU); a block
    that cannot be read whole falls back to a direct read of just the bytes
    asked for (which raises drgn's FaultError where memory is missing).
    Disabled (direct reads) for live targets."""

    def __init__(self, prog: Program, enabled: bool, block_shift: int = 16,
                 max_blocks: int = 256) -> None:
        self.prog = prog
        self.enabled = enabled
        self.shift = block_shift
        self.size = 1 << block_shift
        self.max_blocks = max_blocks
        self.blocks: "OrderedDict[int, Optional[bytes]]" = OrderedDict()
        self.order = "little" if prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN \
            else "big"

    def read(self, address: int, size: int) -> bytes:
        if not self.enabled:
            return self.prog.read(address, size)
        index = address >> self.shift
        start = address & (self.size - 1)
        if start + size > self.size:
            return self.prog.read(address, size)
        blocks = self.blocks
        block = blocks.get(index, False)
        if block is False:
            try:
                block = self.prog.read(index << self.shift, self.size)
            except FaultError:
                block = None  # partly unmapped: direct reads for this block
            blocks[index] = block
            if len(blocks) > self.max_blocks:
                blocks.popitem(last=False)
        if block is None:
            return self.prog.read(address, size)
        return block[start:start + size]

    def read_word(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), self.order)

    def read_u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), self.order)
