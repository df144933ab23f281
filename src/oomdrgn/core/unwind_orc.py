"""x86-64 ORC unwinding from the tables in kernel memory (standard library only).

What ``arch/x86/kernel/unwind_orc.c`` does: ``.orc_unwind_ip`` (32-bit
offsets, each relative to itself, sorted) and ``.orc_unwind`` (one ``struct
orc_entry`` each) say, for every text address, where the caller's stack
pointer is (``sp_reg`` + ``sp_offset``), where its frame pointer was saved
(``bp_reg`` + ``bp_offset``) and what kind of frame this is: a call (the
return address right below the caller's stack pointer), a ``struct pt_regs``
(``REGS``: an interrupt or exception entry) or its hardware part
(``REGS_PARTIAL``: the iret frame), or the end of the stack.

``struct orc_entry``'s bit fields come from BTF (:class:`OrcFormat`); what
BTF has not is read from the table itself (see :meth:`OrcUnwinder._reg_numbers`).
vmlinux and modules are unwound (a module's tables are in its ``struct
module``); other code (BPF, ftrace trampolines: the kernel then guesses with a
frame-pointer entry) ends the trace.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from .port import Fault
from .record import record

__all__ = ["OrcFormat", "OrcTables", "OrcUnwinder", "orc_format", "PT_REGS_FIELDS"]

Read = Callable[[int, int], bytes]
_MASK = (1 << 64) - 1
#: arch/x86/include/asm/orc_lookup.h
LOOKUP_BLOCK_ORDER = 8
#: the ``struct pt_regs`` members the unwinder reads
PT_REGS_FIELDS = ("ip", "sp", "cs", "flags", "ss", "bp", "ax", "dx", "di", "r10", "r13")
#: at most this many frames (a loop in damaged data ends there)
MAX_FRAMES = 128


@record(frozen=True)
class OrcFormat:
    """``struct orc_entry`` of one kernel: its size and ``{field: (bit offset,
    bit size)}`` (``sp_offset``, ``bp_offset``, ``sp_reg``, ``bp_reg``,
    ``type``; ``end`` (v4.14-v6.3), ``signal`` (v6.3+))."""

    size: int
    fields: Mapping[str, Tuple[int, int]]

    def decode(self, raw: bytes) -> Dict[str, int]:
        """The fields of one little-endian entry (the offsets signed)."""
        value = int.from_bytes(raw, "little")
        out = {}
        for name, (bit, width) in self.fields.items():
            v = value >> bit & ((1 << width) - 1)
            if name.endswith("_offset") and v >> (width - 1):
                v -= 1 << width
            out[name] = v
        return out


def orc_format(bit_fields: Mapping[str, Tuple[int, int]], size: int) -> OrcFormat:
    """:class:`OrcFormat` from BTF's ``struct orc_entry`` (``Btf.bit_fields``)."""
    for name in ("sp_offset", "bp_offset", "sp_reg", "bp_reg", "type"):
        if name not in bit_fields:
            raise LookupError(f"struct orc_entry has no {name}")
    return OrcFormat(size, dict(bit_fields))


@record(frozen=True)
class OrcTables:
    """Where the kernel keeps its ORC tables (kallsyms ``__start_orc_unwind_ip``...)."""

    ip_start: int
    ip_stop: int
    unwind_start: int
    lookup: Optional[int] = None
    lookup_end: Optional[int] = None
    text_start: int = 0  # _stext: LOOKUP_START_IP
    text_end: int = 0  # _etext: LOOKUP_STOP_IP
    init_start: int = 0  # _sinittext
    init_end: int = 0  # _einittext

    @classmethod
    def from_symbols(cls, address: Callable[[str], Optional[int]]) -> "OrcTables":
        """From the kernel's symbols (*address* gives one's address or None).

        :raises LookupError: the kernel has no ORC tables (not CONFIG_UNWINDER_ORC)
        """
        need = {n: address(n) for n in ("__start_orc_unwind_ip", "__stop_orc_unwind_ip",
                                        "__start_orc_unwind")}
        missing = [n for n, a in need.items() if a is None]
        if missing:
            raise LookupError("no ORC tables: " + ", ".join(missing))
        return cls(need["__start_orc_unwind_ip"], need["__stop_orc_unwind_ip"],  # type: ignore
                   need["__start_orc_unwind"], address("orc_lookup"),  # type: ignore
                   address("orc_lookup_end"), address("_stext") or 0, address("_etext") or 0,
                   address("_sinittext") or 0, address("_einittext") or 0)


class _Regs:
    """A ``struct pt_regs`` the unwinder found: values given (a CPU's saved
    registers) or read from the stack at *address*; *full* False for the
    hardware iret frame only (``REGS_PARTIAL``)."""

    def __init__(self, read_reg: Callable[[str], int], full: bool = True) -> None:
        self.get = read_reg
        self.full = full


class OrcUnwinder:
    """Unwind a kernel stack as ``unwind_next_frame()`` does.

    :param read: ``read(address, size)`` of kernel memory (raises :class:`Fault`)
    :param fmt: the kernel's ``struct orc_entry``
    :param tables: where its tables are
    :param pt_regs: ``{member: offset}`` of ``struct pt_regs`` (:data:`PT_REGS_FIELDS`)
    :param module_tables: ``orc_module_find()``: the ORC tables of the module
        whose text holds an address, ``(orc_unwind_ip, orc_unwind, num_orcs)``,
        or None
    """

    def __init__(self, read: Read, fmt: OrcFormat, tables: OrcTables,
                 pt_regs: Mapping[str, int],
                 module_tables: Optional[Callable[[int], Optional[Tuple[int, int, int]]]] = None
                 ) -> None:
        self.read = read
        self.module_tables = module_tables
        self.fmt = fmt
        self.tables = tables
        self.pt_regs = dict(pt_regs)
        self.count = (tables.ip_stop - tables.ip_start) // 4
        self._ips: Optional[List[int]] = None
        # Since fb799447ae29 ("x86,objtool: Split UNWIND_HINT_EMPTY in two") (in
        # v6.4) the type is 3 bits (UNDEFINED, END_OF_STACK, CALL, REGS,
        # REGS_PARTIAL) and 'end' is gone; before it CALL, REGS, REGS_PARTIAL,
        # and the end of the stack is sp_reg UNDEFINED (with 'end' set).
        self.new_types = "end" not in fmt.fields
        # Since ffb1b4a41016 ("x86/unwind/orc: Add 'signal' field to ORC
        # metadata") (in v6.3) each entry says whether its frame's ip is exact.
        self.has_signal = "signal" in fmt.fields
        if self.new_types:
            self.t_undefined, self.t_end, self.t_call, self.t_regs, self.t_partial = range(5)
        else:
            self.t_undefined = self.t_end = -1
            self.t_call, self.t_regs, self.t_partial = range(3)
        self.regs_numbers = self._reg_numbers()

    # Tables ------------------------------------------------------------------

    def _word(self, address: int, size: int = 8) -> int:
        return int.from_bytes(self.read(address, size), "little")

    def _entry(self, index: int) -> Dict[str, int]:
        size = self.fmt.size
        return self.fmt.decode(self.read(self.tables.unwind_start + index * size, size))

    def _ip_range(self, start: int, stop: int) -> List[int]:
        """The text addresses of entries ``[start, stop)``."""
        raw = self.read(self.tables.ip_start + 4 * start, 4 * (stop - start))
        base = self.tables.ip_start + 4 * start
        return [(base + 4 * i + v) & _MASK
                for i, v in enumerate(struct.unpack("<%di" % (stop - start), raw))]

    def _all_ips(self) -> List[int]:
        if self._ips is None:
            self._ips = self._ip_range(0, self.count)
        return self._ips

    def find(self, ip: int) -> Optional[Dict[str, int]]:
        """``orc_find()``: the entry for *ip* (the rightmost of equal addresses),
        or None (neither vmlinux's nor a module's text)."""
        t = self.tables
        start = 0
        text = t.text_start <= ip < t.text_end
        if text and t.lookup is not None and t.lookup_end is not None:
            idx = (ip - t.text_start) >> LOOKUP_BLOCK_ORDER
            blocks = (t.lookup_end - t.lookup) // 4
            if idx >= blocks - 1:
                return None
            start, stop = struct.unpack("<II", self.read(t.lookup + 4 * idx, 8))
            stop += 1
            if start >= self.count or stop > self.count or start >= stop:
                return None
            ips = self._ip_range(start, stop)
        elif text or t.init_start <= ip < t.init_end:
            ips = self._all_ips()  # "vmlinux .init slow lookup"
            if not ips:
                return None
        else:
            found = self.module_tables(ip) if self.module_tables is not None else None
            if found is None:
                return None  # an ftrace trampoline, BPF: not followed (never guessed)
            ip_table, unwind_table, count = found
            if not count:
                return None
            raw = self.read(ip_table, 4 * count)
            ips = [(ip_table + 4 * i + v) & _MASK
                   for i, v in enumerate(struct.unpack("<%di" % count, raw))]
            i = max(bisect_right(ips, ip) - 1, 0)
            size = self.fmt.size
            return self.fmt.decode(self.read(unwind_table + i * size, size))
        i = bisect_right(ips, ip) - 1
        if i < 0:
            i = 0  # __orc_find() returns the first entry then
        return self._entry(start + i)

    def _reg_numbers(self) -> Dict[str, int]:
        """``ORC_REG_*``: #defines, not in BTF, renumbered after v6.12 (v7.2's
        orc_types.h; the commit not checked here): ``SP`` 5 -> 3, ``PREV_SP``
        1 -> 8, ``DI`` 3 -> 5, ``AX`` new. Most call entries with
        ``sp_offset`` 8 (a function's first instructions: only the return
        address pushed) have ``sp_reg`` SP: the table itself says which
        numbering it uses."""
        old = {"UNDEFINED": 0, "PREV_SP": 1, "DX": 2, "DI": 3, "BP": 4, "SP": 5, "R10": 6,
               "R13": 7, "BP_INDIRECT": 8, "SP_INDIRECT": 9}
        new = {"UNDEFINED": 0, "AX": 1, "DX": 2, "SP": 3, "BP": 4, "DI": 5, "R10": 6,
               "R13": 7, "PREV_SP": 8, "SP_INDIRECT": 9, "BP_INDIRECT": 10}
        votes: Dict[int, int] = {}
        step = max(1, self.count // 4096)
        raw = self.read(self.tables.unwind_start, self.count * self.fmt.size)
        size = self.fmt.size
        for i in range(0, self.count, step):
            e = self.fmt.decode(raw[i * size:(i + 1) * size])
            if e["type"] == self.t_call and e["sp_offset"] == 8:
                votes[e["sp_reg"]] = votes.get(e["sp_reg"], 0) + 1
        if not votes:
            raise LookupError("ORC table: no call entries")
        sp = max(votes, key=votes.__getitem__)
        if sp == old["SP"]:
            return old
        if sp == new["SP"]:
            return new
        raise LookupError(f"ORC table: unknown register numbering (SP {sp})")

    # Unwinding ---------------------------------------------------------------

    def _memory_regs(self, address: int, full: bool) -> _Regs:
        def get(name: str) -> int:
            return self._word(address + self.pt_regs[name])
        return _Regs(get, full)

    def unwind(self, ip: int, sp: int, bp: int, regs: Optional[Mapping[str, int]] = None,
               signal: bool = False) -> List[Tuple[int, bool]]:
        """``[(pc, interrupted), ...]``, innermost first: the start (*ip*, *sp*,
        *bp*; *regs*: a CPU's saved registers by ``pt_regs`` name, whose ``ip``
        is exact) then each caller. A frame that cannot be unwound ends it."""
        state_regs: Optional[_Regs] = None
        if regs is not None:
            saved = dict(regs)
            state_regs = _Regs(lambda name: saved[name])
            signal = True
            if saved.get("cs", 0) & 3:
                return []  # user mode
        frames = [(ip, signal)]
        prev_regs: Optional[_Regs] = None
        n = self.regs_numbers
        while len(frames) < MAX_FRAMES:
            try:
                step = self._next(ip, sp, bp, signal, state_regs, prev_regs, n)
            except (Fault, ValueError, KeyError, OverflowError):
                break
            if step is None:
                break
            ip, new_sp, bp, signal, state_regs, prev_regs = step
            # "stack going in the wrong direction": the same stack, not deeper
            if new_sp <= sp and new_sp >> 14 == sp >> 14:
                break
            sp = new_sp
            if state_regs is not None and state_regs.get("cs") & 3:
                break  # user mode: the end of the kernel stack
            if not ip >> 63:
                break
            frames.append((ip, signal))
        return frames

    def _get_reg(self, name: str, regs: Optional[_Regs], prev: Optional[_Regs]
                 ) -> Optional[int]:
        """``get_reg()``: from full pt_regs, else from the previous full ones."""
        if regs is None:
            return None
        if regs.full:
            return regs.get(name)
        if prev is not None:
            return prev.get(name)
        return None

    def _next(self, ip: int, sp: int, bp: int, signal: bool, regs: Optional[_Regs],
              prev: Optional[_Regs], n: Mapping[str, int]):
        orc = self.find(ip if signal else ip - 1)
        if orc is None:
            return None  # the kernel would guess a frame pointer: never guess
        if self.new_types:
            if orc["type"] in (self.t_undefined, self.t_end):
                return None
        elif orc["sp_reg"] == n["UNDEFINED"]:
            return None  # end of stack (orc->end) or an error
        reg, off = orc["sp_reg"], orc["sp_offset"]
        indirect = False
        if reg == n["SP"]:
            new_sp = sp + off
        elif reg == n["BP"]:
            new_sp = bp + off
        elif reg == n["SP_INDIRECT"]:
            new_sp, indirect = sp, True
        elif reg == n["BP_INDIRECT"]:
            new_sp, indirect = bp + off, True
        else:
            name = {n.get("R10"): "r10", n.get("R13"): "r13", n.get("DI"): "di",
                    n.get("DX"): "dx", n.get("AX", -1): "ax"}.get(reg)
            value = self._get_reg(name, regs, prev) if name else None
            if value is None:
                return None
            new_sp = value
        new_sp &= _MASK
        if indirect:
            new_sp = self._word(new_sp)
            if reg == n["SP_INDIRECT"]:
                new_sp = (new_sp + off) & _MASK
        kind = orc["type"]
        if kind == self.t_call:
            new_ip = self._word(new_sp - 8)
            new_regs, new_prev = None, None
            signal = False
        elif kind == self.t_regs:
            new_regs = self._memory_regs(new_sp, True)
            new_ip, after_sp = new_regs.get("ip"), new_regs.get("sp")
            new_prev = None
            signal = True
            new_sp, after_sp = after_sp, new_sp
        elif kind == self.t_partial:
            base = new_sp - self.pt_regs["ip"]  # IRET_FRAME_OFFSET
            new_regs = self._memory_regs(base, False)
            new_ip, after_sp = new_regs.get("ip"), new_regs.get("sp")
            new_prev = regs if regs is not None and regs.full else prev
            signal = True
            new_sp, after_sp = after_sp, new_sp
        else:
            return None
        if self.has_signal:
            signal = bool(orc["signal"])  # state->signal = orc->signal
        frame_sp = new_sp if kind == self.t_call else after_sp
        # Find BP.
        breg, boff = orc["bp_reg"], orc["bp_offset"]
        if breg == n["UNDEFINED"]:
            value = self._get_reg("bp", new_regs, new_prev)
            new_bp = bp if value is None else value
        elif breg == n["PREV_SP"]:
            new_bp = self._word((frame_sp + boff) & _MASK)
        elif breg == n["BP"]:
            new_bp = self._word((bp + boff) & _MASK)
        else:
            return None
        return new_ip, new_sp, new_bp, signal, new_regs, new_prev
