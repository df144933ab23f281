"""Read many fields of a kernel struct with few reads: offsets from the debug
info once per program, then raw bytes decoded per object (the hot path)."""

import re
import struct
from typing import Dict, List, Sequence, Tuple

from drgn import Program, Type, TypeKind, offsetof, sizeof

__all__ = ["StructReader"]

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

    def __init__(self, prog: Program, type_name: str, fields: Sequence[str]) -> None:
        self.prog = prog
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
            out.update(zip(names, unpacker.unpack(self.prog.read(address + start, size))))
        return out
