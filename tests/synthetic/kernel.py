"""Synthetic Linux kernels as drgn programs: types and memory built in Python.

Like drgn's own ``tests/__init__.py`` mock programs: a :class:`drgn.Program`
gets a type finder, an object finder, a symbol index and memory segments, all
made here from a Python description of the processes. No vmlinux, no core
dump.

Each *layout* names a kernel era (see /work/shared/reference/kernel-oom-matrix.md):
which ``mm_struct`` members exist (``rss_stat`` as ``atomic_long_t`` or as
``struct percpu_counter[]``, ``pgtables_bytes`` or ``nr_ptes``/``nr_pmds``),
whether ``MM_SHMEMPAGES`` exists, which printk formats the image's ``.rodata``
holds, and whether the OOM functions' machine code calls
``__percpu_counter_sum``. Struct sizes and member offsets are computed here
from the member lists (natural alignment, LP64), never typed in.

Example::

    prog = build("v6.12", [Process([Thread(1234, "memhog")], mm=Mm(total_vm=10, anon=5))])
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

from drgn import (Architecture, FindObjectFlags, Object, Platform, PlatformFlags, Program,
                  Symbol, SymbolBinding, SymbolIndex, SymbolKind, Type, TypeEnumerator,
                  TypeKind, TypeMember, alignof, sizeof)

from oomdrgn.core.formats import KILL_FORMATS, TABLE_FORMATS

__all__ = ["Layout", "LAYOUTS", "LAYOUT_NAMES", "Thread", "Mm", "Process", "Cpus", "build",
           "PF_KTHREAD", "PF_WQ_WORKER", "PF_EXITING", "UNMAPPED"]

PF_EXITING = 0x00000004
PF_WQ_WORKER = 0x00000020
PF_KTHREAD = 0x00200000

_U64 = (1 << 64) - 1


# --------------------------------------------------------------------------
# Layouts (kernel eras)


@dataclass(frozen=True)
class Layout:
    """What a synthetic kernel of one era looks like."""

    name: str
    table: str  # dump_tasks() format in .rodata: T1..T4
    kill: str  # "Killed process" format in .rodata: K1..K5
    shmem: bool  # enum has MM_SHMEMPAGES (v4.5+)
    pgtables: str  # "ptes": nr_ptes/nr_pmds (< v4.15); "bytes": pgtables_bytes
    counters: str  # "atomic" (< v6.2) or "percpu" (v6.2+)
    exact: bool  # oom_badness/dump_task/__oom_kill_process call __percpu_counter_sum (v7.0)
    state: str = "state"  # task_struct's run state member (__state since v5.14)
    thread_group: bool = True  # task_struct.thread_group (removed in v6.7)
    dying_mask: bool = False  # __cpu_dying_mask (v5.14+)
    printk: str = "printk"  # _printk since v5.15


LAYOUTS: Dict[str, Layout] = {l.name: l for l in (
    Layout("v4.4", "T1", "K1", shmem=False, pgtables="ptes", counters="atomic", exact=False),
    Layout("v4.14", "T1", "K2", shmem=True, pgtables="ptes", counters="atomic", exact=False),
    Layout("v4.15", "T2", "K2", shmem=True, pgtables="bytes", counters="atomic", exact=False),
    Layout("v5.0", "T3", "K2", shmem=True, pgtables="bytes", counters="atomic", exact=False),
    Layout("v5.2", "T3", "K3", shmem=True, pgtables="bytes", counters="atomic", exact=False),
    Layout("v5.10", "T3", "K4", shmem=True, pgtables="bytes", counters="atomic", exact=False),
    Layout("v6.2", "T3", "K4", shmem=True, pgtables="bytes", counters="percpu", exact=False,
           state="__state", dying_mask=True, printk="_printk"),
    Layout("v6.12", "T4", "K4", shmem=True, pgtables="bytes", counters="percpu", exact=False,
           state="__state", thread_group=False, dying_mask=True, printk="_printk"),
    Layout("v7.0", "T4", "K5", shmem=True, pgtables="bytes", counters="percpu", exact=True,
           state="__state", thread_group=False, dying_mask=True, printk="_printk"),
)}
LAYOUT_NAMES = tuple(LAYOUTS)


# --------------------------------------------------------------------------
# Scenario description


@dataclass
class Thread:
    """One ``task_struct`` of a thread group."""

    pid: int
    comm: str
    has_mm: bool = True  # task->mm points to the process's mm (else NULL)
    uid: int = 0  # real_cred->uid.val (u32)
    flags: int = 0  # task->flags (PF_*)


@dataclass
class Mm:
    """One ``mm_struct``. Counter values are what memory holds (may be negative):
    ``atomic_long_t.counter`` before v6.2, ``percpu_counter.count`` since."""

    total_vm: int = 0
    file: int = 0  # MM_FILEPAGES
    anon: int = 0  # MM_ANONPAGES
    swapents: int = 0  # MM_SWAPENTS
    shmem: int = 0  # MM_SHMEMPAGES (not stored before v4.5)
    # Per-CPU s32 deltas of the percpu_counter layout, {"anon": {cpu: delta}};
    # ignored by atomic layouts.
    percpu: Dict[str, Dict[int, int]] = field(default_factory=dict)
    pgtables_bytes: int = 0  # v4.15+
    nr_ptes: int = 0  # before v4.15
    nr_pmds: int = 0  # before v4.15
    unmapped: bool = False  # damage: task->mm points to unmapped memory
    unmapped_percpu: bool = False  # damage: rss_stat[].counters points to unmapped memory


@dataclass
class Process:
    """A thread group: ``threads[0]`` is the group leader (tgid = its pid)."""

    threads: List[Thread]
    mm: Optional[Mm] = None  # shared by the threads with has_mm
    oom_score_adj: int = 0  # signal->oom_score_adj
    unmapped_signal: bool = False  # damage: task->signal points to unmapped memory

    @property
    def tgid(self) -> int:
        return self.threads[0].pid


@dataclass(frozen=True)
class Cpus:
    """CPU masks: CPUs 0..possible-1 are possible (and present)."""

    possible: int = 4
    online: FrozenSet[int] = frozenset({0, 1})
    dying: FrozenSet[int] = frozenset()


# --------------------------------------------------------------------------
# Address space


@dataclass(frozen=True)
class _Map:
    text: int
    rodata: int
    data: int  # kernel image .data (init_task, cpumasks, __per_cpu_offset)
    heap: int  # slab objects (direct map)
    percpu: int  # first percpu chunk: one unit per possible CPU
    pcpu_start: int  # __per_cpu_start: what a percpu pointer is relative to
    unmapped: int  # nothing is mapped here


_MAPS = {
    # x86_64: image at __START_KERNEL_map, objects in the direct map;
    # percpu pointers are offsets from 0 (__per_cpu_start is 0 on SMP).
    "x86_64": _Map(text=0xFFFFFFFF81000000, rodata=0xFFFFFFFF82000000,
                   data=0xFFFFFFFF82A00000, heap=0xFFFF888100000000,
                   percpu=0xFFFF88813FC00000, pcpu_start=0, unmapped=0xFFFF888200000000),
    # aarch64 (v5.4+ VA layout): image in the upper half, linear map below it,
    # so __per_cpu_offset[cpu] = linear - image wraps around 2**64.
    "aarch64": _Map(text=0xFFFF800080010000, rodata=0xFFFF800081000000,
                    data=0xFFFF800081800000, heap=0xFFFF0000C0000000,
                    percpu=0xFFFF0000FF000000, pcpu_start=0xFFFF800082000000,
                    unmapped=0xFFFF000100000000),
}

UNMAPPED = _MAPS["x86_64"].unmapped
_PCPU_UNIT = 0x10000
_NR_CPUS = 64


class _Segment:
    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.buf = bytearray(size)
        self.used = 0

    def alloc(self, size: int, align: int = 8) -> int:
        self.used = (self.used + align - 1) // align * align
        addr = self.base + self.used
        self.used += size
        if self.used > len(self.buf):
            raise MemoryError("synthetic segment full")
        return addr

    def contains(self, addr: int, size: int) -> bool:
        return self.base <= addr and addr + size <= self.base + len(self.buf)

    def read(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        return bytes(self.buf[offset:offset + count])


# --------------------------------------------------------------------------
# Types


class _Ptr:
    """A pointer member whose target struct is defined later (or is itself)."""

    def __init__(self, kind: TypeKind, name: str) -> None:
        self.kind, self.name = kind, name


_MemberType = Union[Type, _Ptr]


class _Types:
    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.by_name: Dict[Tuple[TypeKind, str], Type] = {}

    def add(self, t: Type) -> Type:
        name = t.tag if t.kind in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.ENUM) else t.name
        if name is not None:
            self.by_name[(t.kind, name)] = t
        return t

    def int(self, name: str, size: int, signed: bool) -> Type:
        return self.add(self.prog.int_type(name, size, signed))

    def typedef(self, name: str, t: Type) -> Type:
        return self.add(self.prog.typedef_type(name, t))

    def get(self, kind: TypeKind, name: str) -> Type:
        return self.by_name[(kind, name)]

    def ptr(self, t: Union[Type, str]) -> _MemberType:
        if isinstance(t, str):  # "struct foo"
            return _Ptr(TypeKind.STRUCT, t.split()[1])
        return self.prog.pointer_type(t)

    def struct(self, tag: Optional[str], members: Sequence[Tuple[_MemberType, str]]) -> Type:
        """A struct with C's natural layout: each member at its alignment."""
        offset, align, out = 0, 1, []
        for t, name in members:
            if isinstance(t, _Ptr):
                size = a = 8

                def lazy(ref: _Ptr = t) -> Type:  # the pointee may not be defined yet
                    return self.prog.pointer_type(self.get(ref.kind, ref.name))
                mtype: Union[Type, Callable[[], Type]] = lazy
            else:
                size, a, mtype = sizeof(t), alignof(t), t
            offset = (offset + a - 1) // a * a
            out.append(TypeMember(mtype, name, offset * 8))
            offset += size
            align = max(align, a)
        size = (offset + align - 1) // align * align
        return self.add(self.prog.struct_type(tag, size, out))

    def finder(self, prog: Program, kinds, name: str, filename: Optional[str]) -> Optional[Type]:
        for kind in kinds:
            t = self.by_name.get((kind, name))
            if t is not None:
                return t
        return None


def _define_types(ty: _Types, layout: Layout) -> Dict[str, object]:
    """The kernel's types for *layout*; returns the enum constants."""
    char = ty.int("char", 1, True)
    short = ty.int("short", 2, True)
    ty.int("unsigned short", 2, False)
    int_ = ty.int("int", 4, True)
    uint = ty.int("unsigned int", 4, False)
    long = ty.int("long", 8, True)
    ulong = ty.int("unsigned long", 8, False)
    llong = ty.int("long long", 8, True)
    ty.int("unsigned long long", 8, False)
    ty.int("unsigned char", 1, False)
    ty.int("signed char", 1, True)
    bool_ = ty.add(ty.prog.bool_type("_Bool", 1))
    void_p = ty.prog.pointer_type(ty.prog.void_type())

    s32 = ty.typedef("s32", int_)
    s64 = ty.typedef("s64", llong)
    pid_t = ty.typedef("pid_t", ty.typedef("__kernel_pid_t", int_))
    uid_t = ty.typedef("uid_t", ty.typedef("__kernel_uid32_t", uint))
    gid_t = ty.typedef("gid_t", ty.typedef("__kernel_gid32_t", uint))
    kuid_t = ty.typedef("kuid_t", ty.struct(None, [(uid_t, "val")]))
    kgid_t = ty.typedef("kgid_t", ty.struct(None, [(gid_t, "val")]))
    atomic_t = ty.typedef("atomic_t", ty.struct(None, [(int_, "counter")]))
    atomic64_t = ty.typedef("atomic64_t", ty.struct(None, [(s64, "counter")]))
    atomic_long_t = ty.typedef("atomic_long_t", atomic64_t)
    refcount_t = ty.typedef("refcount_t", ty.struct("refcount_struct", [(atomic_t, "refs")]))
    list_head = ty.struct("list_head", [(ty.ptr("struct list_head"), "next"),
                                        (ty.ptr("struct list_head"), "prev")])
    ty.struct("cpumask", [(ty.prog.array_type(ulong, _NR_CPUS // 64), "bits")])
    arch_spinlock_t = ty.typedef("arch_spinlock_t", ty.struct("qspinlock", [(atomic_t, "val")]))
    raw_spinlock_t = ty.typedef("raw_spinlock_t",
                                ty.struct("raw_spinlock", [(arch_spinlock_t, "raw_lock")]))
    spinlock_t = ty.typedef("spinlock_t", ty.struct("spinlock", [(raw_spinlock_t, "rlock")]))

    names = ["MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS"]
    if layout.shmem:  # since v4.5
        names.append("MM_SHMEMPAGES")
    names.append("NR_MM_COUNTERS")
    mm_enum = ty.prog.enum_type(None, uint, [TypeEnumerator(n, i) for i, n in enumerate(names)])
    constants = {n: (mm_enum, i) for i, n in enumerate(names)}
    nr_mm_counters = len(names) - 1

    if layout.counters == "atomic":
        rss_stat = ty.struct("mm_rss_stat",
                             [(ty.prog.array_type(atomic_long_t, nr_mm_counters), "count")])
    else:
        percpu_counter = ty.struct("percpu_counter", [
            (raw_spinlock_t, "lock"), (s64, "count"), (list_head, "list"),
            (ty.prog.pointer_type(s32), "counters")])
        rss_stat = ty.prog.array_type(percpu_counter, nr_mm_counters)

    ty.struct("cred", [
        (atomic_t, "usage"), (kuid_t, "uid"), (kgid_t, "gid"), (kuid_t, "suid"),
        (kgid_t, "sgid"), (kuid_t, "euid"), (kgid_t, "egid"), (kuid_t, "fsuid"),
        (kgid_t, "fsgid"), (uint, "securebits")])
    ty.struct("signal_struct", [
        (refcount_t if layout.counters == "percpu" else atomic_t, "sigcnt"),
        (atomic_t, "live"), (int_, "nr_threads"), (list_head, "thread_head"),
        (ty.ptr("struct task_struct"), "curr_target"), (int_, "group_exit_code"),
        (int_, "notify_count"), (ty.ptr("struct task_struct"), "group_exec_task"),
        (ulong, "flags"), (ulong, "maxrss"), (bool_, "oom_flag_origin"),
        (short, "oom_score_adj"), (short, "oom_score_adj_min"),
        (ty.ptr("struct mm_struct"), "oom_mm")])

    mm_members: List[Tuple[_MemberType, str]] = [
        (void_p, "mmap"), (ulong, "mmap_base"), (ulong, "task_size"), (void_p, "pgd"),
        (atomic_t, "mm_users"), (atomic_t, "mm_count")]
    if layout.pgtables == "bytes":
        # Since v4.15 (af5b0f6a09e4), one byte count replaces nr_ptes/nr_pmds.
        mm_members.append((atomic_long_t, "pgtables_bytes"))
    else:
        mm_members += [(atomic_long_t, "nr_ptes"), (atomic_long_t, "nr_pmds")]
        if layout.name == "v4.14":  # nr_puds existed in v4.14 only
            mm_members.append((atomic_long_t, "nr_puds"))
    mm_members += [
        (int_, "map_count"), (spinlock_t, "page_table_lock"), (ulong, "hiwater_rss"),
        (ulong, "hiwater_vm"), (ulong, "total_vm"), (ulong, "locked_vm"),
        (ulong, "pinned_vm"), (ulong, "data_vm"), (ulong, "exec_vm"), (ulong, "stack_vm"),
        (ulong, "def_flags"), (ulong, "start_code"), (ulong, "end_code"),
        (ulong, "start_data"), (ulong, "end_data"), (ulong, "start_brk"), (ulong, "brk"),
        (ulong, "start_stack"), (ulong, "arg_start"), (ulong, "arg_end"),
        (rss_stat, "rss_stat"), (ulong, "flags"), (ty.ptr("struct task_struct"), "owner")]
    ty.struct("mm_struct", mm_members)

    state = (long, "state") if layout.state == "state" else (uint, "__state")
    task: List[Tuple[_MemberType, str]] = [
        state, (void_p, "stack"), (refcount_t, "usage"), (uint, "flags"), (uint, "ptrace"),
        (int_, "on_cpu"), (int_, "prio"), (int_, "static_prio"), (uint, "policy"),
        (int_, "nr_cpus_allowed"), (list_head, "tasks"), (ty.ptr("struct mm_struct"), "mm"),
        (ty.ptr("struct mm_struct"), "active_mm"), (int_, "exit_state"), (int_, "exit_code"),
        (int_, "exit_signal"), (pid_t, "pid"), (pid_t, "tgid"),
        (ty.ptr("struct task_struct"), "real_parent"), (ty.ptr("struct task_struct"), "parent"),
        (list_head, "children"), (list_head, "sibling"),
        (ty.ptr("struct task_struct"), "group_leader")]
    if layout.thread_group:  # removed in v6.7 (8e1f385104ac)
        task.append((list_head, "thread_group"))
    task += [
        (list_head, "thread_node"), (void_p, "vfork_done"), (ulong, "nvcsw"), (ulong, "nivcsw"),
        (ty.ptr("struct cred"), "ptracer_cred"), (ty.ptr("struct cred"), "real_cred"),
        (ty.ptr("struct cred"), "cred"), (ty.prog.array_type(char, 16), "comm"),
        (void_p, "fs"), (void_p, "files"), (ty.ptr("struct signal_struct"), "signal"),
        (void_p, "sighand")]
    ty.struct("task_struct", task)
    return constants


# --------------------------------------------------------------------------
# Writing objects


class _Image:
    """Memory of the synthetic kernel, written through the types' layouts."""

    def __init__(self, ty: _Types, segments: Sequence[_Segment]) -> None:
        self.ty = ty
        self.segments = list(segments)

    def write(self, addr: int, data: bytes) -> None:
        for s in self.segments:
            if s.contains(addr, len(data)):
                off = addr - s.base
                s.buf[off:off + len(data)] = data
                return
        raise ValueError(f"synthetic write outside memory at {addr:#x}")

    def struct(self, tag: str) -> Type:
        return self.ty.get(TypeKind.STRUCT, tag)

    def put(self, addr: int, tag: str, path: str, value: Union[int, bytes]) -> None:
        """Store *value* in member *path* (``a.b[2].c``) of the ``struct tag`` at *addr*."""
        t = self.struct(tag)
        offset = 0
        for part in path.replace("[", ".[").split("."):
            t = t.unaliased()
            if part.startswith("["):
                index = int(part[1:-1])
                t = t.type
                offset += index * sizeof(t)
            else:
                m = t.member(part)
                offset += m.offset
                t = m.type
        if isinstance(value, bytes):
            if len(value) > sizeof(t):
                raise ValueError(f"{path}: {len(value)} bytes do not fit")
            self.write(addr + offset, value)
            return
        size = sizeof(t)
        self.write(addr + offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def list_init(self, head: int) -> None:
        self.write(head, head.to_bytes(8, "little") * 2)

    def list_add_tail(self, head: int, node: int) -> None:
        """``list_add_tail(node, head)``: list_head is {next, prev}."""
        prev = int.from_bytes(self.read(head + 8, 8), "little")
        self.write(node, head.to_bytes(8, "little") + prev.to_bytes(8, "little"))
        self.write(prev, node.to_bytes(8, "little"))  # prev->next
        self.write(head + 8, node.to_bytes(8, "little"))  # head->prev

    def read(self, addr: int, size: int) -> bytes:
        for s in self.segments:
            if s.contains(addr, size):
                return bytes(s.buf[addr - s.base:addr - s.base + size])
        raise ValueError(f"synthetic read outside memory at {addr:#x}")


def _offset(ty: _Types, tag: str, member: str) -> int:
    return ty.get(TypeKind.STRUCT, tag).member(member).offset


# --------------------------------------------------------------------------
# Machine code


def _x86_64_function(addr: int, calls: Sequence[int]) -> bytes:
    """A plausible x86-64 function body calling each address in *calls* (E8 rel32)."""
    code = bytearray(b"\xf3\x0f\x1e\xfa"  # endbr64
                     b"\x55\x48\x89\xe5"  # push rbp; mov rbp, rsp
                     b"\x41\x54\x53"  # push r12; push rbx
                     b"\x48\x89\xfb")  # mov rbx, rdi
    for target in calls:
        code += b"\x48\x8d\xbb\xc0\x03\x00\x00"  # lea rdi, [rbx+0x3c0]
        rel = target - (addr + len(code) + 5)
        code += b"\xe8" + rel.to_bytes(4, "little", signed=True)  # call target
        code += b"\x49\x01\xc4"  # add r12, rax
    code += b"\x48\xc7\xc0\xe8\x03\x00\x00"  # mov rax, 1000 (a stray E8 byte)
    code += b"\x5b\x41\x5c\x5d\xc3"  # pop rbx; pop r12; pop rbp; ret
    return bytes(code)


def _aarch64_function(addr: int, calls: Sequence[int]) -> bytes:
    """A plausible AArch64 function body calling each address in *calls* (BL)."""
    insns = [0xD503233F,  # paciasp
             0xA9BE7BFD,  # stp x29, x30, [sp, #-32]!
             0x910003FD,  # mov x29, sp
             0xF9000BF3,  # str x19, [sp, #16]
             0xAA0003F3]  # mov x19, x0
    for target in calls:
        insns.append(0x910F0260)  # add x0, x19, #0x3c0
        pc = addr + 4 * len(insns)
        insns.append(0x94000000 | (((target - pc) >> 2) & 0x3FFFFFF))  # bl target
    insns += [0xF9400BF3,  # ldr x19, [sp, #16]
              0xA8C27BFD,  # ldp x29, x30, [sp], #32
              0xD50323BF,  # autiasp
              0xD65F03C0]  # ret
    return b"".join(i.to_bytes(4, "little") for i in insns)


# --------------------------------------------------------------------------
# .rodata


_UNRELATED_STRINGS = (
    b"\x013Out of memory and no killable processes...\n",
    b"\x016oom_reaper: reaped process %d (%s), now anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB\n",
    b"\x014%s invoked oom-killer: gfp_mask=%#x(%pGg), order=%d, oom_score_adj=%hd\n",
    b"\x016[ pid ]   uid  tgid total_vm      rss cpu oom_adj name\n",  # 2.6-era, not a format we know
    b"Kernel panic - not syncing: %s\n",
    b"\x013Memory cgroup stats for ",
    b"\x016Mem-Info:\n",
    b"sched_getaffinity",
    b"Tasks state (memory values in KiB):\n",
)


def _rodata(layout: Layout) -> bytes:
    table = next(f for f in TABLE_FORMATS if f.name == layout.table)
    kill = next(f for f in KILL_FORMATS if f.name == layout.kill)
    strings = list(_UNRELATED_STRINGS[:4])
    # pr_info() = KERN_SOH "6", pr_err() = KERN_SOH "3"; NUL-terminated C strings.
    strings += [b"\x016" + s.encode() for s in table.lines()]
    strings.append(b"\x016" + table.row.encode())
    if layout.kill in ("K1", "K2"):  # the line before it, in the same function
        strings.append(b"\x013%s: Kill process %d (%s) score %u or sacrifice child\n")
    strings.append(b"\x013" + kill.line.encode())
    strings += _UNRELATED_STRINGS[4:]
    return b"\x00" * 16 + b"\x00".join(strings) + b"\x00" * 16


# --------------------------------------------------------------------------
# The builder


def build(layout: Union[str, Layout], processes: Sequence[Process], *, cpus: Cpus = Cpus(),
          page_shift: int = 12, arch: str = "x86_64", inlined: Sequence[str] = (),
          loop_tasks: bool = False, rodata: bool = True) -> Program:
    """A drgn :class:`Program` of a kernel of *layout* running *processes*.

    :param processes: in ``init_task.tasks`` order (``init_task``, pid 0, is added)
    :param cpus: possible/online/dying CPUs (per-CPU deltas are stored for
        every possible CPU; ``__per_cpu_offset`` beyond them is unmapped)
    :param page_shift: ``PAGE_SHIFT`` (12, 14 or 16)
    :param arch: ``"x86_64"`` or ``"aarch64"``
    :param inlined: OOM functions with no symbol (inlined by the compiler)
    :param loop_tasks: damage: the last process's ``tasks.next`` points back to the
        first process instead of ``init_task.tasks``
    :param rodata: whether ``__start_rodata``/``__end_rodata`` exist
    """
    if isinstance(layout, str):
        layout = LAYOUTS[layout]
    if arch == "x86_64":
        platform = Platform(Architecture.X86_64,
                            PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN)
    elif arch == "aarch64":
        platform = Platform(Architecture.AARCH64,
                            PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    amap = _MAPS[arch]
    prog = Program(platform)
    ty = _Types(prog)
    constants: Dict[str, Tuple[Type, int]] = _define_types(ty, layout)
    constants["PAGE_SHIFT"] = (ty.get(TypeKind.INT, "int"), page_shift)

    text = _Segment(amap.text, 0x10000)
    rodata_bytes = _rodata(layout)
    ro = _Segment(amap.rodata, len(rodata_bytes) + 64)
    data = _Segment(amap.data, 0x20000)
    heap = _Segment(amap.heap, 0x200000)
    percpu = _Segment(amap.percpu, _PCPU_UNIT * cpus.possible)
    img = _Image(ty, [text, ro, data, heap, percpu])
    variables: Dict[str, Tuple[Type, int]] = {}
    symbols: List[Symbol] = []

    def variable(name: str, t: Type, seg: _Segment) -> int:
        addr = seg.alloc(sizeof(t), max(alignof(t), 8))
        variables[name] = (t, addr)
        symbols.append(Symbol(name, addr, sizeof(t), SymbolBinding.GLOBAL, SymbolKind.OBJECT))
        return addr

    ulong = ty.get(TypeKind.INT, "unsigned long")
    uint = ty.get(TypeKind.INT, "unsigned int")
    task_t = img.struct("task_struct")
    signal_t = img.struct("signal_struct")
    cred_t = img.struct("cred")
    mm_t = img.struct("mm_struct")
    tasks_off = _offset(ty, "task_struct", "tasks")
    node_off = _offset(ty, "task_struct", "thread_node")
    head_off = _offset(ty, "signal_struct", "thread_head")

    # CPUs -----------------------------------------------------------------
    mask_t = img.struct("cpumask")
    masks = {"__cpu_possible_mask": set(range(cpus.possible)),
             "__cpu_present_mask": set(range(cpus.possible)),
             "__cpu_online_mask": set(cpus.online)}
    if layout.dying_mask:
        masks["__cpu_dying_mask"] = set(cpus.dying)
    for name, bits in masks.items():
        addr = variable(name, mask_t, data)
        for cpu in bits:
            word = addr + 8 * (cpu // 64)
            old = int.from_bytes(img.read(word, 8), "little")
            img.write(word, (old | 1 << (cpu % 64)).to_bytes(8, "little"))
    img.write(variable("nr_cpu_ids", uint, data), cpus.possible.to_bytes(4, "little"))
    offsets_addr = variable("__per_cpu_offset", prog.array_type(ulong, _NR_CPUS), data)
    for cpu in range(_NR_CPUS):
        if cpu < cpus.possible:
            off = (amap.percpu + cpu * _PCPU_UNIT - amap.pcpu_start) & _U64
        else:  # never set up: reading through it faults
            off = (amap.unmapped - amap.pcpu_start) & _U64
        img.write(offsets_addr + 8 * cpu, off.to_bytes(8, "little"))
    pcpu_used = [0x1000]  # first offset inside a unit handed out by alloc_percpu

    def alloc_percpu(size: int) -> int:
        off = pcpu_used[0]
        pcpu_used[0] += (size + 7) // 8 * 8
        return amap.pcpu_start + off

    # init_task ------------------------------------------------------------
    init_task = variable("init_task", task_t, data)
    init_signal = variable("init_signals", signal_t, data)
    init_cred = variable("init_cred", cred_t, data)
    img.put(init_task, "task_struct", "comm", b"swapper/0")
    img.put(init_task, "task_struct", "flags", PF_KTHREAD)
    img.put(init_task, "task_struct", "signal", init_signal)
    img.put(init_task, "task_struct", "real_cred", init_cred)
    img.put(init_task, "task_struct", "cred", init_cred)
    img.put(init_task, "task_struct", "group_leader", init_task)
    img.list_init(init_task + tasks_off)
    img.list_init(init_signal + head_off)
    img.list_add_tail(init_signal + head_off, init_task + node_off)

    # mm_structs -----------------------------------------------------------
    members = ["file", "anon", "swapents"] + (["shmem"] if layout.shmem else [])
    enum_of = {"file": "MM_FILEPAGES", "anon": "MM_ANONPAGES", "swapents": "MM_SWAPENTS",
               "shmem": "MM_SHMEMPAGES"}
    unmapped_next = [amap.unmapped + 0x1000]

    def make_mm(mm: Mm) -> int:
        if mm.unmapped:
            addr = unmapped_next[0]
            unmapped_next[0] += 0x1000
            return addr
        addr = heap.alloc(sizeof(mm_t), 64)
        img.put(addr, "mm_struct", "total_vm", mm.total_vm)
        img.put(addr, "mm_struct", "mm_users", 1)
        img.put(addr, "mm_struct", "mm_count", 1)
        if layout.pgtables == "bytes":
            img.put(addr, "mm_struct", "pgtables_bytes.counter", mm.pgtables_bytes)
        else:
            img.put(addr, "mm_struct", "nr_ptes.counter", mm.nr_ptes)
            img.put(addr, "mm_struct", "nr_pmds.counter", mm.nr_pmds)
        if layout.counters == "atomic":
            for m in members:
                idx = constants[enum_of[m]][1]
                img.put(addr, "mm_struct", f"rss_stat.count[{idx}].counter", getattr(mm, m))
            return addr
        # percpu_counter_init_many(): one s32 per counter per CPU, one allocation.
        nr = len(members)
        if mm.unmapped_percpu:  # 1 GiB past the units: nothing there
            base = amap.pcpu_start + 0x40000000
        else:
            base = alloc_percpu(4 * nr)
        for m in members:
            idx = constants[enum_of[m]][1]
            counters = base + 4 * idx
            img.put(addr, "mm_struct", f"rss_stat[{idx}].count", getattr(mm, m))
            img.put(addr, "mm_struct", f"rss_stat[{idx}].counters", counters)
            if mm.unmapped_percpu:
                continue
            for cpu, delta in mm.percpu.get(m, {}).items():
                if not 0 <= cpu < cpus.possible:
                    raise ValueError(f"CPU {cpu} is not possible")
                where = (counters + amap.percpu + cpu * _PCPU_UNIT - amap.pcpu_start) & _U64
                img.write(where, (delta & 0xFFFFFFFF).to_bytes(4, "little"))
        for m in mm.percpu:
            if m not in members:
                raise ValueError(f"no counter {m!r} in {layout.name}")
        return addr

    # Processes ------------------------------------------------------------
    first_tasks_node = None
    last_tasks_node = None
    for proc in processes:
        if proc.unmapped_signal:
            signal = unmapped_next[0]
            unmapped_next[0] += 0x1000
        else:
            signal = heap.alloc(sizeof(signal_t), 64)
            img.put(signal, "signal_struct", "oom_score_adj", proc.oom_score_adj)
            img.put(signal, "signal_struct", "nr_threads", len(proc.threads))
            img.list_init(signal + head_off)
        mm_addr = make_mm(proc.mm) if proc.mm is not None else 0
        leader = None
        for th in proc.threads:
            task = heap.alloc(sizeof(task_t), 64)
            cred = heap.alloc(sizeof(cred_t), 8)
            for who in ("uid", "suid", "euid", "fsuid"):
                img.put(cred, "cred", f"{who}.val", th.uid)
            img.put(cred, "cred", "usage.counter", 1)
            if leader is None:
                leader = task
            img.put(task, "task_struct", "pid", th.pid)
            img.put(task, "task_struct", "tgid", proc.tgid)
            img.put(task, "task_struct", "flags", th.flags)
            comm = th.comm.encode()
            if len(comm) > 15:
                raise ValueError(f"comm {th.comm!r} longer than TASK_COMM_LEN - 1")
            img.put(task, "task_struct", "comm", comm)
            img.put(task, "task_struct", "real_cred", cred)
            img.put(task, "task_struct", "cred", cred)
            img.put(task, "task_struct", "signal", signal)
            img.put(task, "task_struct", "group_leader", leader)
            img.put(task, "task_struct", "real_parent", init_task)
            img.put(task, "task_struct", "parent", init_task)
            if th.has_mm and mm_addr:
                img.put(task, "task_struct", "mm", mm_addr)
                img.put(task, "task_struct", "active_mm", mm_addr)
            if not proc.unmapped_signal:
                img.list_add_tail(signal + head_off, task + node_off)
            if task == leader:
                # Only group leaders are on the tasks list (for_each_process).
                img.list_add_tail(init_task + tasks_off, task + tasks_off)
                first_tasks_node = first_tasks_node or task + tasks_off
                last_tasks_node = task + tasks_off
        if proc.mm is not None and mm_addr and not proc.mm.unmapped:
            img.put(mm_addr, "mm_struct", "owner", leader)
    if loop_tasks:
        if first_tasks_node is None:
            raise ValueError("loop_tasks needs processes")
        img.write(last_tasks_node, first_tasks_node.to_bytes(8, "little"))

    # Code -----------------------------------------------------------------
    func = _x86_64_function if arch == "x86_64" else _aarch64_function
    slot = [0]

    def place(name: str, calls: Sequence[int] = ()) -> int:
        addr = text.base + 0x1000 * slot[0]
        slot[0] += 1
        code = func(addr, calls)
        img.write(addr, code)
        if name not in inlined:
            symbols.append(Symbol(name, addr, len(code), SymbolBinding.GLOBAL, SymbolKind.FUNC))
        return addr

    printk = place(layout.printk)
    pid_nr = place("__task_pid_nr_ns")
    find_lock = place("find_lock_task_mm", [pid_nr])
    pcpu_sum = place("__percpu_counter_sum")
    place("percpu_counter_add_batch", [pcpu_sum + 0x400])
    n = len(members)
    sums = [pcpu_sum] * n if layout.exact else []
    # oom_badness: get_mm_rss() + MM_SWAPENTS (+ page tables).
    place("oom_badness", [find_lock] + sums)
    # dump_task: one pr_info per task, counters read before it.
    place("dump_task", [find_lock] + sums + [pid_nr, printk])
    # __oom_kill_process: anon, file, shmem (no swapents).
    place("__oom_kill_process", [find_lock, pid_nr] + sums[:3] + [printk])
    place("oom_kill_process", [printk])

    # .rodata --------------------------------------------------------------
    img.write(ro.base, rodata_bytes)
    if rodata:
        symbols.append(Symbol("__start_rodata", ro.base, 0, SymbolBinding.GLOBAL,
                              SymbolKind.UNKNOWN))
        symbols.append(Symbol("__end_rodata", ro.base + len(rodata_bytes), 0,
                              SymbolBinding.GLOBAL, SymbolKind.UNKNOWN))

    # Wire it into drgn ----------------------------------------------------
    for seg in img.segments:
        prog.add_memory_segment(seg.base, len(seg.buf), seg.read)

    def find_object(prog: Program, name: str, flags: FindObjectFlags,
                    filename: Optional[str]) -> Optional[Object]:
        if flags & FindObjectFlags.VARIABLE and name in variables:
            t, addr = variables[name]
            return Object(prog, t, address=addr)
        if flags & FindObjectFlags.CONSTANT and name in constants:
            t, value = constants[name]
            return Object(prog, t, value)
        return None

    prog.register_type_finder("synthetic", ty.finder, enable_index=0)
    prog.register_object_finder("synthetic", find_object, enable_index=0)
    prog.register_symbol_finder("synthetic", SymbolIndex(symbols), enable_index=0)
    return prog
