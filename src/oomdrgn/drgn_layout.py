"""Read many fields of a kernel struct with few reads: offsets from the debug
info once per program, then raw bytes decoded per object (the hot path)."""

from typing import Dict, List, Sequence, Tuple

from drgn import Program, Type, TypeKind, offsetof, sizeof

__all__ = ["StructReader"]

# Fields closer than this share one read.
_MERGE_GAP = 512


def _scalar(t: Type) -> Tuple[int, bool]:
    t = t.unaliased()
    kind = t.kind
    if kind == TypeKind.POINTER:
        return t.size, False
    if kind in (TypeKind.INT, TypeKind.BOOL):
        return t.size, kind == TypeKind.INT and t.is_signed
    if kind == TypeKind.ENUM:
        return t.size, t.type.is_signed
    if kind in (TypeKind.STRUCT, TypeKind.UNION) and len(t.members) == 1:
        # atomic_t, atomic_long_t, kuid_t, refcount-like wrappers.
        return _scalar(t.members[0].type)
    if kind == TypeKind.ARRAY:
        return sizeof(t), False  # returned as bytes
    raise TypeError(f"cannot read {t} as a scalar")


class StructReader:
    """Decode *fields* (member designators like ``"uid"`` or ``"rss_stat[1].count"``)
    of one struct type from raw memory.

    Fields missing from this kernel's type are left out (``has()`` tells).
    """

    def __init__(self, prog: Program, type_name: str, fields: Sequence[str]) -> None:
        self.prog = prog
        ty = prog.type(type_name)
        self.little = prog.platform.flags & prog.platform.flags.IS_LITTLE_ENDIAN
        self.fields: Dict[str, Tuple[int, int, bool, bool]] = {}
        for f in fields:
            try:
                off = offsetof(ty, f)
                member_type = _member_type(prog, ty, f)
            except LookupError:
                continue
            size, signed = _scalar(member_type)
            is_bytes = member_type.unaliased_kind() == TypeKind.ARRAY
            self.fields[f] = (off, size, signed, is_bytes)
        self.chunks = self._chunks()

    def _chunks(self) -> List[Tuple[int, int]]:
        spans = sorted((off, off + size) for off, size, _, _ in self.fields.values())
        chunks: List[List[int]] = []
        for start, end in spans:
            if chunks and start - chunks[-1][1] < _MERGE_GAP:
                chunks[-1][1] = max(chunks[-1][1], end)
            else:
                chunks.append([start, end])
        return [(s, e) for s, e in chunks]

    def has(self, field: str) -> bool:
        return field in self.fields

    def offset(self, field: str) -> int:
        return self.fields[field][0]

    def read(self, address: int) -> dict:
        """All fields of the object at *address* (raises drgn.FaultError)."""
        buf = {}
        for start, end in self.chunks:
            buf[start] = self.prog.read(address + start, end - start)
        order = "little" if self.little else "big"
        out = {}
        for name, (off, size, signed, is_bytes) in self.fields.items():
            for start, data in buf.items():
                if start <= off < start + len(data):
                    raw = data[off - start:off - start + size]
                    break
            out[name] = raw if is_bytes else int.from_bytes(raw, order, signed=signed)
        return out


def _member_type(prog: Program, ty: Type, designator: str) -> Type:
    """The type of ``ty.designator`` (``a.b[2].c``)."""
    import re
    t = ty
    for part in re.findall(r"[A-Za-z_]\w*|\[\d+\]", designator):
        t = t.unaliased()
        if part.startswith("["):
            t = t.type
        else:
            t = t.member(part).type
    return t
