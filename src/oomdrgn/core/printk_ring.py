"""The kernel's printk buffer over the target port, and its console lines.

Since 896fbe20b4e2 ("printk: use the lockless ringbuffer") (in v5.10) records
live in ``prb``: a ring of descriptors (``desc_ring``), their ``printk_info``
and a text ring (``text_data_ring``). Before it, ``log_buf`` holds
``struct printk_log`` records back to back (``struct log`` before v4.3).
The walk follows ``printk_ringbuffer.c`` (``desc_read()``, ``get_data()``), as
drgn's ``get_printk_records()`` does, and reads only through
:class:`oomdrgn.core.port.Target`.
"""

from __future__ import annotations

import builtins
from typing import List, Literal, Optional, Tuple

from .errors import ReadError
from .port import Fault, Target
from .record import record

__all__ = ["LogRecord", "printk_records", "console_lines"]

# enum desc_state (printk_ringbuffer.h): committed or finalized records are readable.
_DESC_COMMITTED, _DESC_FINALIZED = 1, 2
# enum printk_info_flags (printk.h): LOG_CONT.
_LOG_CONT = 8


@record(frozen=True)
class LogRecord:
    """One printk record.

    :param timestamp: ``ts_nsec``, nanoseconds since boot (local clock)
    :param caller_tid: the task that printed it (``caller_id`` without bit 31)
    :param caller_cpu: the CPU, when printed outside task context
    """

    text: bytes
    seq: int
    timestamp: int
    level: int
    facility: int
    continuation: bool
    caller_tid: Optional[int] = None
    caller_cpu: Optional[int] = None


def _caller(caller_id: int) -> Tuple[Optional[int], Optional[int]]:
    # printk.c printk_caller_id(): bit 31 set means a CPU number.
    if caller_id & 0x80000000:
        return None, caller_id & 0x7FFFFFFF
    return caller_id, None


class _Mem:
    """Integer reads over the port, in the target's byte order."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.order: Literal["little", "big"] = "little" if target.little_endian else "big"
        self.word_size = target.sizeof("unsigned long")

    def int(self, address: int, size: int) -> int:
        return int.from_bytes(self.target.read(address, size), self.order)

    # (builtins.int: in this class, "int" names the method above.)
    def field(self, base: builtins.int, type_name: str, designator: str) -> builtins.int:
        m = self.target.member(type_name, designator)
        return self.int(base + m.offset, m.size)

    def word(self, address: builtins.int) -> builtins.int:
        return self.int(address, self.word_size)


def _const(target: Target, name: str, known: int) -> int:
    value = target.constant(name)
    return known if value is None else value


def _flags_level(mem: _Mem, base: int, type_name: str) -> Tuple[int, int]:
    # "u8 facility; u8 flags:5; u8 level:3;": the bit fields share the byte
    # after facility (a port gives byte offsets only). GCC fills bit fields from
    # the least significant bit on little-endian targets, the most on big.
    m = mem.target.member(type_name, "facility")
    byte = mem.int(base + m.offset + 1, 1)
    if mem.target.little_endian:
        return byte & 0x1F, byte >> 5
    return byte >> 3, byte & 0x7


def _lockless(target: Target, prb: int) -> List[LogRecord]:
    mem = _Mem(target)
    ring = "struct printk_ringbuffer"
    word = mem.word_size
    sv_bits = word * 8
    flags_shift = sv_bits - 2
    id_mask = ((1 << sv_bits) - 1) ^ (3 << flags_shift)
    committed = _const(target, "desc_committed", _DESC_COMMITTED)
    finalized = _const(target, "desc_finalized", _DESC_FINALIZED)
    log_cont = _const(target, "LOG_CONT", _LOG_CONT)

    descs = mem.field(prb, ring, "desc_ring.descs")
    infos = mem.field(prb, ring, "desc_ring.infos")
    desc_mask = (1 << mem.field(prb, ring, "desc_ring.count_bits")) - 1
    data = mem.field(prb, ring, "text_data_ring.data")
    data_mask = (1 << mem.field(prb, ring, "text_data_ring.size_bits")) - 1
    head = mem.field(prb, ring, "desc_ring.head_id.counter")
    tail = mem.field(prb, ring, "desc_ring.tail_id.counter")

    desc_t, info_t = "struct prb_desc", "struct printk_info"
    desc_size, info_size = target.sizeof(desc_t), target.sizeof(info_t)
    state = target.member(desc_t, "state_var.counter")
    begin = target.member(desc_t, "text_blk_lpos.begin")
    nxt = target.member(desc_t, "text_blk_lpos.next")

    records: List[LogRecord] = []

    def add(current: int) -> None:
        index = current & desc_mask
        desc = descs + index * desc_size
        state_var = mem.int(desc + state.offset, state.size)
        if state_var & id_mask != current or (
                (state_var >> flags_shift) & 3) not in (committed, finalized):
            return
        lpos_begin = mem.int(desc + begin.offset, begin.size) & data_mask
        lpos_next = mem.int(desc + nxt.offset, nxt.size) & data_mask
        if lpos_begin == lpos_next:
            return  # a data-less record
        # get_data(): a block that wraps is stored whole at the ring's start;
        # every block starts with its descriptor id (one unsigned long).
        if lpos_begin > lpos_next:
            lpos_begin = 0
        if lpos_next - lpos_begin < word:
            return
        info = infos + index * info_size
        text_len = min(mem.field(info, info_t, "text_len"), lpos_next - lpos_begin - word)
        lpos_begin += word
        flags, level = _flags_level(mem, info, info_t)
        tid, cpu = _caller(mem.field(info, info_t, "caller_id"))
        records.append(LogRecord(
            text=target.read(data + lpos_begin, text_len) if text_len else b"",
            seq=mem.field(info, info_t, "seq"),
            timestamp=mem.field(info, info_t, "ts_nsec"),
            level=level, facility=mem.field(info, info_t, "facility"),
            continuation=bool(flags & log_cont), caller_tid=tid, caller_cpu=cpu))

    current = tail
    while current != head:
        add(current)
        current = (current + 1) & id_mask
    add(current)
    return records


def _structured(target: Target) -> List[LogRecord]:
    mem = _Mem(target)
    log_t = "struct printk_log"
    try:
        header = target.sizeof(log_t)
    except LookupError:
        # 62e32ac3505a ("printk: rename struct log to struct printk_log") (in v3.11)
        log_t = "struct log"
        header = target.sizeof(log_t)
    try:
        target.member(log_t, "caller_id")
        has_caller = True
    except LookupError:
        # 15ff2069cb7f ("printk: Add caller information to printk() output.") (in v5.1)
        has_caller = False
    values = {}
    # char *log_buf; u32 log_first_idx, log_next_idx; u64 log_first_seq
    for name, size in (("log_buf", mem.word_size), ("log_first_idx", 4),
                       ("log_next_idx", 4), ("log_first_seq", 8)):
        sym = target.symbol(name)
        if sym is None:
            raise ReadError(f"no printk buffer: symbol {name} not found")
        values[name] = mem.int(sym[0], size)
    log_buf, seq = values["log_buf"], values["log_first_seq"]
    current, end = values["log_first_idx"], values["log_next_idx"]
    log_cont = _const(target, "LOG_CONT", _LOG_CONT)
    records: List[LogRecord] = []
    while current != end:
        rec = log_buf + current
        length = mem.field(rec, log_t, "len")
        if not length:  # the wrap marker: continue at the buffer's start
            if current < end:
                break
            current = 0
            continue
        text_len = mem.field(rec, log_t, "text_len")
        flags, level = _flags_level(mem, rec, log_t)
        tid, cpu = _caller(mem.field(rec, log_t, "caller_id")) if has_caller else (None, None)
        records.append(LogRecord(
            text=target.read(rec + header, text_len) if text_len else b"",
            seq=seq, timestamp=mem.field(rec, log_t, "ts_nsec"), level=level,
            facility=mem.field(rec, log_t, "facility"),
            continuation=bool(flags & log_cont), caller_tid=tid, caller_cpu=cpu))
        current += length
        seq += 1
    return records


def printk_records(target: Target) -> List[LogRecord]:
    """Every record of the target's printk buffer, oldest first.

    :raises ReadError: no printk buffer, or it cannot be read
    """
    try:
        prb = target.symbol("prb")
        if prb is None:
            return _structured(target)
        return _lockless(target, _Mem(target).word(prb[0]))
    except Fault as e:
        raise ReadError(f"printk buffer unreadable: {e}") from None
    except LookupError as e:
        raise ReadError(f"printk buffer of unknown layout: {e}") from None


def _prefix(rec: LogRecord, timestamps: bool, caller: bool) -> str:
    prefix = ""
    if timestamps:  # printk.c print_time()
        ns = rec.timestamp
        prefix = "[%5d.%06d]" % (ns // 1_000_000_000, ns % 1_000_000_000 // 1000)
    if caller:  # printk.c print_caller(): "[%6s]" of "T<tid>" or "C<cpu>"
        if rec.caller_tid is not None:
            prefix += "[%6s]" % f"T{rec.caller_tid}"
        elif rec.caller_cpu is not None:
            prefix += "[%6s]" % f"C{rec.caller_cpu}"
    return prefix + " " if prefix else ""


def console_lines(records: List[LogRecord], timestamps: bool = True,
                  caller: bool = False) -> List[str]:
    """The records as a console prints them (``record_print_text()``): every
    line of a record's text behind the record's prefix, without newlines.

    :param caller: add ``[%6s]`` with the caller id, as a kernel built with
        ``CONFIG_PRINTK_CALLER`` prints it
    """
    lines: List[str] = []
    for rec in records:
        prefix = _prefix(rec, timestamps, caller)
        text = rec.text.decode("utf-8", "surrogateescape")
        lines.extend(prefix + line for line in text.split("\n"))
    return lines
