"""What ``dump_stack()`` prints in the OOM report, read from memory.

``lib/dump_stack.c`` ``dump_stack_print_info()``: the ``CPU: ... Comm: ...``
line (its format read from the kernel's ``.rodata``: eras and distribution
patches differ), the verbose taint line (v6.12+, when tainted), ``Hardware
name:``; then the architecture's ``show_stack()``: ``Call Trace:`` and
``<TASK>`` (x86-64), ``Call trace:`` (arm64), and the frames.

The header lines are exact. The frames are not: a dump taken after
``dump_stack()`` returned holds the task's stack as it is now (deeper in the
OOM path), which :class:`DumpStack` says in a note that is not kernel text.
"""

from __future__ import annotations

import re
from typing import List, Literal, Optional, Tuple

from .errors import ReadError
from .kstrings import find_format, read_cstring, referenced_strings
from .oom import PF_KTHREAD
from .port import Fault
from .record import record
from .taint import taint_run

__all__ = ["DumpStack", "dump_stack", "dump_stack_header", "dump_stack_frames",
           "dump_stack_print_info", "print_tainted", "print_tainted_verbose", "task_cpu",
           "preempt_model_str", "linux_package_id", "kexec_crash_loaded", "utsname",
           "FRAMES_NOTE"]

FRAMES_NOTE = ("oomdrgn: the frames are the task's stack in this dump, not the ones "
               "dump_stack() printed (the task has gone deeper since)")
_NO_FRAMES = "oomdrgn: no frames: this debugger gives no stack trace"
_PF_WQ_WORKER = 0x20  # include/linux/sched.h, every era since v2.6.36
# The generic dump_stack_print_info() format of upstream kernels, by era, for a
# kernel whose .rodata cannot be read (distribution patches are then missed).
_GUESS_7 = "%sCPU: %d UID: %u PID: %d Comm: %.20s %s%s %s %.*s %s%s\n"
_GUESS_6_10 = "%sCPU: %d UID: %u PID: %d Comm: %.20s %s%s %s %.*s%s\n"
_GUESS = "%sCPU: %d PID: %d Comm: %.20s %s%s %s %.*s%s\n"
_CONV = re.compile(r"%(?:\.\*s|\.\d+s|\d+phN|[sdu])")


@record(frozen=True)
class DumpStack:
    """``dump_stack()``'s output as oomdrgn can rebuild it.

    :param header: the exact lines, through ``Call Trace:`` (and `` <TASK>``)
    :param frames: one line per frame (and `` </TASK>``), not held to the kernel's text
    :param note: a comment about the frames, not kernel text
    """

    header: Tuple[str, ...]
    frames: Tuple[str, ...]
    note: str

    def lines(self) -> List[str]:
        """Header, the note as a ``# `` comment line, frames."""
        return list(self.header) + ["# " + self.note] + list(self.frames)


def _order(target) -> Literal["little", "big"]:
    return "little" if target.little_endian else "big"


def _int(reader, address: int, size: int = 8) -> int:
    return int.from_bytes(reader.target.read(address, size), _order(reader.target))


def _global(reader, name: str) -> Optional[int]:
    sym = reader.target.symbol(name)
    return None if sym is None else sym[0]


def utsname(reader) -> Tuple[str, str]:
    """``(release, version)`` of ``init_uts_ns.name``."""
    base = reader.symbol_address("init_uts_ns")
    out = []
    for field in ("release", "version"):
        m = reader.target.member("struct uts_namespace", f"name.{field}")
        raw = reader.target.read(base + m.offset, m.size)
        out.append(raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
    return out[0], out[1]


def task_cpu(reader, task: int) -> int:
    """``task_cpu(task)``: the CPU the task last ran on (the OOM's current runs there)."""
    t = reader.target
    for designator in ("thread_info.cpu", "cpu"):
        # Since Linux kernel commit bcf9033e5449 ("sched: move CPU field back
        # into thread_info if THREAD_INFO_IN_TASK") (in v5.16) thread_info.cpu;
        # before it task->cpu (v4.9-v5.15, THREAD_INFO_IN_TASK).
        try:
            m = t.member("struct task_struct", designator)
        except LookupError:
            continue
        return _int(reader, task + m.offset, m.size)
    # Without THREAD_INFO_IN_TASK (x86 before v4.9, RHEL 7): task->stack is the thread_info.
    stack = _int(reader, task + t.member("struct task_struct", "stack").offset)
    m = t.member("struct thread_info", "cpu")
    return _int(reader, stack + m.offset, m.size)


def _taint_table(reader) -> Tuple[int, int, int, int, int, Optional[int]]:
    """``(address, count, entry size, c_true offset, c_false offset, bit offset)``."""
    t = reader.target
    sym = t.symbol("taint_flags")
    if sym is not None:
        size = t.sizeof("struct taint_flag")
        on, off = (t.member("struct taint_flag", "c_true").offset,
                   t.member("struct taint_flag", "c_false").offset)
        return (sym[0], _taint_count(t, sym, size, on, off), size, on, off, None)
    # Before Linux kernel commit 7fd8329ba502 ("taint/module: Clean up global
    # and module taint flags handling") (in v4.10): static struct tnt tnts[]
    # of {bit, true, false}.
    sym = t.symbol("tnts")
    if sym is None:
        raise ReadError("no taint_flags (nor tnts) symbol")
    size = t.sizeof("struct tnt")
    return (sym[0], sym[1] // size if sym[1] else 0, size, t.member("struct tnt", "true").offset,
            t.member("struct tnt", "false").offset, t.member("struct tnt", "bit").offset)


def _taint_count(t, sym: Tuple[int, int], size: int, on: int, off: int) -> int:
    """TAINT_FLAGS_COUNT: taint_flags[]'s entries. A size from kallsyms (the
    distance to the next symbol) may hold padding and more: the count ends at
    the first entry that is no taint letter (an upper-case c_true; a blank
    c_false but P's G), which every entry of the kernel's is."""
    if not sym[1]:
        return 0
    return taint_run(t.read(sym[0], sym[1] // size * size), size, on, off)


def print_tainted(reader) -> str:
    """``print_tainted()``: ``Not tainted``, or ``Tainted: `` and one character per flag."""
    mask = _int(reader, reader.symbol_address("tainted_mask"))
    if not mask:
        return "Not tainted"
    address, count, size, c_true, c_false, bit_off = _taint_table(reader)
    if not count:
        raise ReadError("taint table size unknown")
    raw = reader.target.read(address, count * size)
    out = []
    for i in range(count):
        entry = raw[i * size:(i + 1) * size]
        bit = entry[bit_off] if bit_off is not None else i
        out.append(chr(entry[c_true] if mask >> bit & 1 else entry[c_false]))
    return "Tainted: " + "".join(out)


def print_tainted_verbose(reader) -> Optional[str]:
    """``print_tainted_verbose()`` (since v6.12, printed when tainted):
    ``Tainted: [P]=PROPRIETARY_MODULE, [O]=OOT_MODULE``; None where the kernel
    has no such line (no ``taint_flag.desc``) or is not tainted."""
    t = reader.target
    try:
        desc = t.member("struct taint_flag", "desc").offset
    except LookupError:
        return None
    mask = _int(reader, reader.symbol_address("tainted_mask"))
    if not mask:
        return None
    address, count, size, c_true, _, _ = _taint_table(reader)
    parts = []
    for i in range(count):
        if mask >> i & 1:
            entry = t.read(address + i * size, size)
            name = read_cstring(t, int.from_bytes(entry[desc:desc + 8], _order(t))) or ""
            parts.append("[%s]=%s" % (chr(entry[c_true]), name))
    return "Tainted: " + ", ".join(parts)


def kexec_crash_loaded(reader) -> bool:
    """``kexec_crash_loaded()``: a crash kernel is loaded (``kexec_crash_image``)."""
    address = _global(reader, "kexec_crash_image")
    return bool(address and _int(reader, address))


def preempt_model_str(reader) -> Optional[str]:
    """``preempt_model_str()`` (kernel/sched/core.c; on the ``CPU:`` line since
    "lib/dump_stack: Use preempt_model_str()" (v6.16; hash not checked here)), rebuilt from
    the literals its code uses and ``preempt_dynamic_mode``; None where the
    kernel has no such function."""
    t = reader.target
    if t.symbol("preempt_model_str") is None:
        return None
    strings = referenced_strings(t, "preempt_model_str")
    if "PREEMPT" not in strings:  # !CONFIG_PREEMPT_BUILD: a literal is returned
        for name in ("VOLUNTARY", "NONE"):
            if name in strings:
                return name
        return None
    rt = "%sRT%s" in strings
    dynamic = t.symbol("preempt_dynamic_mode") is not None
    lazy = "LAZY%s" in strings
    brace = rt and (dynamic or lazy)
    text = "PREEMPT"
    if rt:
        text += ("_{" if brace else "_") + "RT" + ("," if brace else "")
    if dynamic:
        mode = int.from_bytes(t.read(t.symbol("preempt_dynamic_mode")[0], 4), _order(t),
                              signed=True)
        name = "undef"
        if mode >= 0:
            table = t.symbol("preempt_modes")
            name = (read_cstring(t, _int(reader, table[0] + 8 * mode)) if table else None) or "undef"
        return text + "(%s)%s" % (name, "}" if brace else "")
    if lazy:
        return text + "LAZY" + ("}" if brace else "")
    return text


def linux_package_id(reader) -> Optional[str]:
    """A distribution's ``LINUX_PACKAGE_ID`` literal passed to the ``CPU:`` line
    (Debian's ``" Debian 6.1.176-1"``, include/generated/package.h, with its
    leading space; Debian's 5.10 format has ``%.*s%s``, its 6.1+ formats
    ``%.*s %s``: hence ``#1  Debian`` with two spaces from 6.1 on): the one
    string that ``dump_stack_print_info()``'s code points at and that is not a
    format, ``Kdump: loaded `` or blank. None on kernels without it."""
    found = [s for s in referenced_strings(reader.target, "dump_stack_print_info")
             if s.strip() and "%" not in s and s != "Kdump: loaded "]
    return found[0] if len(found) == 1 else None


def _cpu_format(reader) -> Tuple[str, bool]:
    """The ``CPU:`` line's format and whether it was found in ``.rodata``."""
    fmt = find_format(reader.target, b"%sCPU: %d ")
    if fmt is not None:
        return fmt, True
    if reader.target.symbol("preempt_model_str") is not None:
        return _GUESS_7, False
    if reader.has("struct taint_flag", "desc"):
        return _GUESS_6_10, False
    return _GUESS, False


def _printk(fmt: str, args: List[object]) -> str:
    """The few conversions the ``CPU:`` line uses (``%s %d %u %.20s %.*s %20phN``)."""
    out, pos, it = [], 0, iter(args)
    for m in _CONV.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        conv = m.group(0)
        if conv == "%.*s":
            width = next(it)
            out.append(str(next(it))[:width])  # type: ignore[index]
        elif conv.endswith("phN"):
            out.append(bytes(next(it))[:int(conv[1:-3])].hex())  # type: ignore[call-overload]
        elif conv.startswith("%.") and conv.endswith("s"):
            out.append(str(next(it))[:int(conv[2:-1])])
        else:
            out.append(str(next(it)))
    out.append(fmt[pos:])
    return "".join(out)


def _euid(reader, task: int) -> int:
    t = reader.target
    cred = _int(reader, task + t.member("struct task_struct", "real_cred").offset)
    return _int(reader, cred + t.member("struct cred", "euid").offset, 4)


def _build_id(reader) -> bytes:
    address = _global(reader, "vmlinux_build_id")
    return reader.target.read(address, 20) if address else b""


def cpu_line(reader, task: int, cpu: int) -> str:
    """``dump_stack_print_info()``'s first line for *task* running on *cpu*."""
    fmt, _ = _cpu_format(reader)
    rec = reader.task(task)
    release, version = utsname(reader)
    first_word = len(version.split(" ", 1)[0])  # strcspn(version, " ")
    head = fmt.split(" %.*s", 1)
    if len(head) != 2:
        raise ValueError(f"unknown dump_stack_print_info() format {fmt!r}")
    args: List[object] = ["", cpu]  # log_lvl: KERN_DEFAULT, not printed
    if "UID: %u" in head[0]:
        # Since Suren Baghdasaryan's patch reporting the effective UID (in v6.11;
        # title and hash not checked here): __kuid_val(current_real_cred()->euid).
        args.append(_euid(reader, task))
    args += [rec.pid, rec.comm]
    if "Comm: %.20s %s%s %s" in head[0]:
        # Since v4.6 (kexec_crash_loaded() exported for it) "Kdump: loaded ".
        args.append("Kdump: loaded " if kexec_crash_loaded(reader) else "")
    args += [print_tainted(reader), release, first_word, version]
    tail = _CONV.findall(head[1])
    values: List[object] = []
    preempt = preempt_model_str(reader)
    package = linux_package_id(reader)
    for conv in tail:
        if conv.endswith("phN"):
            values.append(_build_id(reader))
        elif preempt is not None and not values:
            values.append(preempt)
            preempt = None
        elif package is not None:
            values.append(package)
            package = None
        else:
            values.append("")  # BUILD_ID_VAL without CONFIG_STACKTRACE_BUILD_ID
    return _printk(fmt, args + values)


def _task_marker(reader) -> bool:
    """x86-64 prints ``<TASK>`` around the task stack since Linux kernel commit
    ("x86/dumpstack: Add a <TASK> marker") (v5.16; hash not checked here):
    ``stack_type_name()`` then names the task stack ``"TASK"``."""
    return (reader.target.arch == "x86_64"
            and "TASK" in referenced_strings(reader.target, "stack_type_name"))


def dump_stack_print_info(reader, task: int, cpu: int) -> List[str]:
    """The lines ``dump_stack_print_info()`` prints (without newlines): the
    ``CPU:`` line, the verbose taint line (v6.12+, tainted only), ``Hardware
    name:`` (if ``dump_stack_arch_desc_str`` is set)."""
    lines = [cpu_line(reader, task, cpu).rstrip("\n")]
    verbose = print_tainted_verbose(reader)
    if verbose is not None:
        lines.append(verbose)
    desc = _global(reader, "dump_stack_arch_desc_str")
    if desc:
        name = reader.target.read(desc, 128).split(b"\0", 1)[0]
        if name:
            lines.append("Hardware name: " + name.decode("utf-8", "surrogateescape"))
    try:
        worker = print_worker_info(reader, task)
    except LookupError:
        worker = None
    if worker is not None:
        lines.append(worker)
    return lines


def _nofault_word(reader, address: int) -> int:
    """``copy_from_kernel_nofault()`` of a pointer: 0 where it cannot be read."""
    if not address:
        return 0
    try:
        return reader.memory.read_word(address)
    except (Fault, ValueError, OverflowError):
        return 0


def _nofault_string(reader, address: int, type_name: str, member: str) -> str:
    """``copy_from_kernel_nofault(buf, p->member, sizeof(buf) - 1)`` as a C string
    ("" where it cannot be read)."""
    m = reader.target.member(type_name, member)
    if not address:
        return ""
    try:
        raw = reader.target.read(address + m.offset, m.size - 1)
    except (Fault, ValueError, OverflowError):
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def print_worker_info(reader, task: int) -> Optional[str]:
    """``print_worker_info()``: a workqueue worker's ``Workqueue: NAME FN`` line
    (`` (DESC)`` after it where the worker's description is not the workqueue's
    name); None for any other task, where the kernel prints nothing, or where
    the debugger cannot name ``FN`` (``%ps``).

    :raises LookupError: a type or member it reads is unknown to the target
    """
    rec = reader.task(task)
    if not rec.flags & _PF_WQ_WORKER:
        return None
    t = reader.target
    # kthread_probe_data(): __to_kthread(task)->data; the struct kthread is
    # task->worker_private since "kthread: Generalize pf_io_worker so it can
    # point to struct kthread" (in v5.17, hash not checked here), before it
    # task->set_child_tid. NULL unless PF_KTHREAD.
    try:
        link = t.member("struct task_struct", "worker_private").offset
    except LookupError:
        link = t.member("struct task_struct", "set_child_tid").offset
    kthread = _nofault_word(reader, task + link) if rec.flags & PF_KTHREAD else 0
    worker = _nofault_word(reader, kthread + t.member("struct kthread", "data").offset
                           if kthread else 0)
    if not worker:
        return None  # every copy fails: nothing is printed
    fn = _nofault_word(reader, worker + t.member("struct worker", "current_func").offset)
    pwq = _nofault_word(reader, worker + t.member("struct worker", "current_pwq").offset)
    wq = _nofault_word(reader, pwq + t.member("struct pool_workqueue", "wq").offset
                       if pwq else 0)
    name = _nofault_string(reader, wq, "struct workqueue_struct", "name")
    desc = _nofault_string(reader, worker, "struct worker", "desc")
    if not (fn or name or desc):
        return None
    hook = getattr(t, "symbol_name", None)
    fn_name = (hook(fn) if hook is not None else None) if fn else "0x0"
    if fn_name is None:
        return None
    # printk("%sWorkqueue: %s %ps", ...); if (strcmp(name, desc)) pr_cont(" (%s)", desc);
    return f"Workqueue: {name} {fn_name}" + (f" ({desc})" if name != desc else "")


def dump_stack_header(reader, task: int, cpu: int) -> List[str]:
    """``dump_stack()``'s lines before the first frame, as this kernel prints
    them (without newlines): :func:`dump_stack_print_info`, then ``Call Trace:``
    and `` <TASK>`` (x86-64) or ``Call trace:`` (arm64).

    A stopper's and a sched_ext task's lines are not rebuilt.
    """
    lines = dump_stack_print_info(reader, task, cpu)
    if reader.target.arch == "aarch64":
        lines.append("Call trace:")
    else:
        lines.append("Call Trace:")
        if _task_marker(reader):
            lines.append(" <TASK>")
    return lines


def dump_stack_frames(reader, task: int) -> List[str]:
    """One line per frame of *task*'s stack as the architecture prints it
    (x86-64 ``printk_stack_address()``: `` %s%pBb``, ``? `` for unreliable ones;
    arm64: `` %pSb``), then `` </TASK>`` (x86-64, v5.16+); empty if the
    debugger gives no frames (the port's optional ``stack_frames`` hook)."""
    hook = getattr(reader.target, "stack_frames", None)
    frames = hook(task) if hook is not None else None
    if not frames:
        return []
    arm64 = reader.target.arch == "aarch64"
    lines = [" %s%s+%#x/%#x" % ("" if reliable or arm64 else "? ", name, offset, size)
             for name, offset, size, reliable in frames]
    if _task_marker(reader):
        lines.append(" </TASK>")
    return lines


def dump_stack(reader, task: int, cpu: Optional[int] = None) -> DumpStack:
    """``dump_stack()`` of *task* (the OOM's current) on *cpu* (default: :func:`task_cpu`)."""
    if cpu is None:
        cpu = task_cpu(reader, task)
    header = dump_stack_header(reader, task, cpu)
    frames = dump_stack_frames(reader, task)
    note = FRAMES_NOTE if frames else _NO_FRAMES
    try:
        if (reader.task(task).flags & _PF_WQ_WORKER
                and not any(line.startswith("Workqueue: ") for line in header)
                and getattr(reader.target, "symbol_name", None) is None):
            note += ("; a workqueue worker: its Workqueue: line is not rebuilt (the "
                     "debugger names no function by address)")
    except (ReadError, Fault):
        pass
    return DumpStack(tuple(header), tuple(frames), note)
