"""The global addresses an arm64 function's code uses (standard library only).

A linear pass over the function that follows ``adrp`` pages through ``add``
(immediate) and ``mov`` into the loads, stores, atomics and calls that use
them (GCC reaches globals as ``adrp xN, anchor; add xN, xN, #lo12; add xM,
xN, #offset`` from a section anchor). No control flow is followed: a value
is the last one written in code order, so callers pick their event by a
pattern and validate what it points at.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

from .record import record

__all__ = ["Ref", "refs", "Loaded"]

_MASK64 = (1 << 64) - 1


@record(frozen=True)
class Loaded:
    """A register's value: the *size*-byte word loaded from *address*."""

    address: int
    size: int


Value = Union[int, Loaded]


@record(frozen=True)
class Ref:
    """One use of a global: *kind* ``load``/``store`` (*size* bytes at *address*),
    ``atomic`` (an exclusive, CAS or LSE access at *address*), ``address``
    (an ``add`` computing *address*), or ``call`` (``bl`` to *target*, the
    known values of ``x0``..``x2`` in *args*)."""

    kind: str
    pc: int
    address: int = 0
    size: int = 0
    target: int = 0
    args: Tuple[Optional[Value], ...] = ()


def _adrp(insn: int, pc: int) -> int:
    imm = ((insn >> 5) & 0x7FFFF) << 2 | (insn >> 29) & 3
    if imm & (1 << 20):
        imm -= 1 << 21
    return ((pc & ~0xFFF) + (imm << 12)) & _MASK64


def refs(code: bytes, address: int, callee_saved: bool = False) -> List[Ref]:
    """The uses of global addresses in the little-endian arm64 *code* at *address*.

    :param callee_saved: keep x19..x28 across the epilogue: their reload from
        the stack before a ``ret`` is forgotten at the ``ret``, as the code after
        it (out-of-line paths) is reached by branches from the body, where they
        still hold the body's values
    """
    regs: Dict[int, Value] = {}
    saved: Dict[int, Value] = {}  # x19..x28 before their reload from the stack
    out: List[Ref] = []

    def base(rn: int) -> Optional[int]:
        v = regs.get(rn)
        return v if isinstance(v, int) else None

    def load(rt: int, value: Optional[Value]) -> None:
        if rt != 31:
            if value is None:
                regs.pop(rt, None)
            else:
                regs[rt] = value

    for i in range(0, len(code) - 3, 4):
        insn = int.from_bytes(code[i:i + 4], "little")
        pc = address + i
        rd, rn = insn & 31, (insn >> 5) & 31
        if insn & 0x9F000000 == 0x90000000:  # adrp
            regs[rd] = _adrp(insn, pc)
        elif insn & 0xFF800000 == 0x91000000:  # add (immediate), 64-bit
            imm = (insn >> 10) & 0xFFF
            if insn & (1 << 22):
                imm <<= 12
            b = base(rn)
            if b is not None and rn != 31:
                regs[rd] = (b + imm) & _MASK64
                out.append(Ref("address", pc, regs[rd]))  # type: ignore[arg-type]
            else:
                regs.pop(rd, None)
        elif insn & 0xFFE0FFE0 == 0xAA0003E0:  # mov xd, xm (orr xd, xzr, xm)
            v = regs.get((insn >> 16) & 31)
            load(rd, v)
        elif insn & 0x3F000000 == 0x39000000:  # ldr/str (unsigned immediate), integer
            size = 1 << (insn >> 30)
            opc = (insn >> 22) & 3
            b = base(rn)
            at = None if b is None else (b + ((insn >> 10) & 0xFFF) * size) & _MASK64
            if opc == 0:
                if at is not None:
                    out.append(Ref("store", pc, at, size))
            else:
                if at is not None:
                    out.append(Ref("load", pc, at, size))
                load(rd, Loaded(at, size) if at is not None and opc == 1 else None)
        elif insn & 0x3F200400 == 0x38000400:  # ldr/str pre- or post-index, integer
            size = 1 << (insn >> 30)
            imm = (insn >> 12) & 0x1FF
            if imm & 0x100:
                imm -= 0x200
            b = base(rn)
            pre = bool(insn & 0x800)
            at = None if b is None else (b + imm if pre else b) & _MASK64
            if at is not None:
                out.append(Ref("load" if (insn >> 22) & 3 else "store", pc, at, size))
            if rn != 31:  # the base register written back
                load(rn, None if b is None else (b + imm) & _MASK64)
            if (insn >> 22) & 3:
                load(rd, Loaded(at, size) if at is not None and (insn >> 22) & 3 == 1 else None)
        elif insn & 0x3F200C00 == 0x38000000:  # ldur/stur (unscaled), integer
            size = 1 << (insn >> 30)
            imm = (insn >> 12) & 0x1FF
            if imm & 0x100:
                imm -= 0x200
            b = base(rn)
            at = None if b is None else (b + imm) & _MASK64
            if (insn >> 22) & 3 == 0:
                if at is not None:
                    out.append(Ref("store", pc, at, size))
            else:
                if at is not None:
                    out.append(Ref("load", pc, at, size))
                load(rd, Loaded(at, size) if at is not None and (insn >> 22) & 3 == 1 else None)
        elif (insn & 0x3FA07C00 == 0x08A07C00  # cas*
              or insn & 0x3FFF7C00 == 0x085F7C00  # ldxr, ldaxr
              or insn & 0x3F200C00 == 0x38200000):  # LSE ldadd, swp...
            b = base(rn)
            if b is not None:
                out.append(Ref("atomic", pc, b))
            load(rd, None)
            load((insn >> 16) & 31, None)
        elif insn & 0xFC000000 == 0x94000000:  # bl
            imm = insn & 0x3FFFFFF
            if imm & 0x2000000:
                imm -= 1 << 26
            out.append(Ref("call", pc, target=(pc + imm * 4) & _MASK64,
                           args=tuple(regs.get(r) for r in range(3))))
            for r in list(regs):
                if r <= 18 or r == 30:
                    del regs[r]
        elif insn & 0xFFFFFC1F == 0xD63F0000:  # blr
            for r in list(regs):
                if r <= 18 or r == 30:
                    del regs[r]
        elif insn == 0xD65F03C0 and callee_saved:  # ret
            regs.update(saved)
            saved.clear()
        elif (insn >> 26) & 7 == 0b101 and insn & 0xFFF00000 != 0xD5300000:
            pass  # branches, system instructions (not mrs): no register written
        elif (insn >> 25) & 5 == 4:  # other loads and stores
            if insn & (3 << 22):  # a load (L or a signed load): Rt, and Rt2 of a pair
                written = [rd] + ([(insn >> 10) & 31] if (insn >> 27) & 7 == 5 else [])
                for r in written:
                    if callee_saved and rn == 31 and 19 <= r <= 28 and r in regs:
                        saved.setdefault(r, regs[r])  # restored from the stack
                    load(r, None)
        else:  # data processing, mrs: Rd written
            load(rd, None)
    return out
