"""GDB backend: turns kernel objects read through GDB into plain records.

Runs inside GDB's embedded Python (``import gdb``), e.g. attached to QEMU's
gdbstub; it never imports drgn. It mirrors :mod:`oomdrgn.drgn.backend`: the same
records, the same :class:`~oomdrgn.core.kernelinfo.Evidence`, read the same way.

Types and member offsets are looked up once per symbol file and dropped on
``gdb.events.new_objfile`` (as ``CachedType`` does in the kernel's
``scripts/gdb/linux/utils.py``). Faults (``gdb.MemoryError``) become
:class:`oomdrgn.core.oom.ReadError`.

KASLR: :func:`find_kaslr_offset` finds where the kernel was loaded by looking
for the vmlinux file's own ``linux_banner`` bytes in target memory; the GDB
command that reloads the symbols at that offset is in :mod:`oomdrgn.gdb.command`.
"""

import contextlib
import os
import struct
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import gdb

from ..core.codescan import calls_target
from ..core.elffile import elf_machine, read_section
from ..core.kernelinfo import CONSUMERS, Evidence, KernelInfo, decide
from ..core.klist import list_entries
from ..core.mmcounters import per_cpu_ptrs
from ..core.model import MmRecord, RawCounter, TaskRecord, VmTotals
from ..core.oom import ReadError, TargetError, task_that_hit_the_oom

__all__ = ["GdbReader", "KaslrError", "gather_evidence", "kernel_symbol_file",
           "symbols_match", "percpu_symbols_match", "find_kaslr_offset", "elf_symbols",
           "kernel_cpu", "clear_caches", "USER_MODE_HINT"]

_MASK64 = (1 << 64) - 1


class KaslrError(Exception):
    """The kernel's load offset cannot be found (or the vmlinux is another build)."""


# Caches ---------------------------------------------------------------------

_cache: Dict[str, object] = {}


def clear_caches(event: object = None) -> None:
    """Forget types, offsets and decisions (new or changed symbol files)."""
    _cache.clear()


gdb.events.new_objfile.connect(clear_caches)
gdb.events.clear_objfiles.connect(clear_caches)


# Symbols and memory ---------------------------------------------------------

def _lookup(name: str) -> Optional[gdb.Symbol]:
    return gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)


def _address(name: str) -> Optional[int]:
    """Address of a kernel symbol under the current symbols (debug or ELF-only)."""
    sym = _lookup(name)
    try:
        if sym is not None:
            return int(sym.value().address)
        return int(gdb.parse_and_eval(f"&{name}"))
    except gdb.error:
        return None


def _read(address: int, size: int) -> bytes:
    return bytes(gdb.selected_inferior().read_memory(address & _MASK64, size))


def kernel_symbol_file() -> Optional[str]:
    """Path of the symbol file that defines ``init_task`` (the vmlinux), if any."""
    sym = gdb.lookup_global_symbol("init_task")
    if sym is not None and sym.symtab is not None:
        return sym.symtab.objfile.filename
    return gdb.current_progspace().filename


def _have_target() -> bool:
    inf = gdb.selected_inferior()
    return inf is not None and inf.pid != 0


def _arch(path: Optional[str]) -> str:
    name = ""
    if _have_target():
        try:
            name = gdb.selected_inferior().architecture().name()
        except (gdb.error, AttributeError):
            name = ""
    if "aarch64" in name:
        return "aarch64"
    if "x86-64" in name or "x86_64" in name:
        return "x86_64"
    if path:
        try:
            return elf_machine(path) or "x86_64"
        except (OSError, ValueError):
            pass
    return "x86_64"


USER_MODE_HINT = ("warning: every CPU is stopped in user mode, where page table isolation may "
                  "leave the kernel unmapped: continue and interrupt again (an idle CPU is "
                  "in the kernel), or stop at a kernel breakpoint")


@contextlib.contextmanager
def kernel_cpu() -> Iterator[None]:
    """Read through a CPU that runs kernel code.

    QEMU's gdbstub translates addresses with the selected CPU's page tables. With
    page table isolation a CPU stopped in user mode maps almost none of the
    kernel, so select (for the duration) a CPU stopped in ring 0 if there is one.
    """
    thread = gdb.selected_thread()
    if thread is None or not _user_mode():
        yield
        return
    try:
        frame = gdb.selected_frame()
    except gdb.error:
        frame = None
    switched = False
    for other in gdb.selected_inferior().threads():
        other.switch()
        if not _user_mode():
            switched = True
            break
    if not switched:
        thread.switch()
        gdb.write(USER_MODE_HINT + "\n")
    try:
        yield
    finally:
        if switched:
            thread.switch()
            if frame is not None and frame.is_valid():
                frame.select()


def _user_mode() -> bool:
    try:
        arch = gdb.selected_inferior().architecture().name()
        if "x86-64" not in arch and "i386" not in arch:
            return False
        return bool(int(gdb.parse_and_eval("$cs")) & 3)
    except (gdb.error, AttributeError):
        return False


# The vmlinux file -------------------------------------------------------------

def _file_key(path: str) -> Tuple[str, float]:
    return (os.path.realpath(path), os.stat(path).st_mtime)


# Read from the vmlinux's .symtab in one pass: KASLR detection and code scans.
_PRELOAD = ("linux_banner", "__start_rodata", "_stext", "_etext", "__percpu_counter_sum",
            *CONSUMERS.values())


def elf_symbols(path: str, names: Iterable[str]) -> Dict[str, Tuple[int, int]]:
    """``{name: (st_value, st_size)}`` from the ELF ``.symtab`` of *path*.

    Link-time values (before any KASLR offset). GDB's Python API gives no
    symbol sizes, and a function's block can span its ``.cold`` part, so the
    sizes come from the file as drgn's ``prog.symbol()`` takes them.
    """
    key = ("elf_symbols",) + _file_key(path)
    table = _cache.setdefault(key, {})
    missing = [n for n in names if n not in table]
    if missing:
        missing += [n for n in _PRELOAD if n not in table and n not in missing]
        with open(path, "rb") as f:
            ident = f.read(6)
        if ident[:4] != b"\x7fELF":
            raise ValueError(f"{path}: not an ELF file")
        endian = "<" if ident[5] == 1 else ">"
        fmt = endian + ("IBBHQQ" if ident[4] == 2 else "IIIBBH")
        symtab = read_section(path, ".symtab") or b""
        strtab = read_section(path, ".strtab") or b""
        wanted: Dict[int, str] = {}
        for name in missing:
            needle = name.encode() + b"\0"
            i = strtab.find(needle)
            while i >= 0:
                wanted[i] = name
                i = strtab.find(needle, i + 1)
        whole = len(symtab) - len(symtab) % struct.calcsize(fmt)
        for entry in struct.iter_unpack(fmt, symtab[:whole]):
            if ident[4] == 2:
                st_name, _, _, shndx, value, size = entry
            else:
                st_name, value, size, _, _, shndx = entry
            name = wanted.get(st_name)
            if name is not None and shndx != 0 and name not in table:
                table[name] = (value, size)
        for name in missing:
            table.setdefault(name, None)
    return {n: table[n] for n in names if table.get(n) is not None}


def _file_rodata(path: str) -> Optional[bytes]:
    try:
        key = ("rodata",) + _file_key(path)
        if key not in _cache:
            _cache[key] = read_section(path, ".rodata")
        return _cache[key]
    except (OSError, ValueError):
        return None


def _rodata(path: Optional[str]) -> Optional[bytes]:
    """The kernel image's .rodata: from the vmlinux file, else from memory."""
    data = _file_rodata(path) if path else None
    if data:
        return data
    start, end = _address("__start_rodata"), _address("__end_rodata")
    if start is None or end is None or end <= start:
        return None
    try:
        return _read(start, end - start)
    except gdb.MemoryError:
        return None


def _banner(path: str) -> Tuple[int, bytes]:
    """Link address and bytes (with the NUL) of ``linux_banner`` in the file."""
    syms = elf_symbols(path, ("linux_banner", "__start_rodata"))
    if len(syms) != 2:
        raise KaslrError(f"{path}: no linux_banner/__start_rodata symbols (not a vmlinux?)")
    rodata = _file_rodata(path)
    if not rodata:
        raise KaslrError(f"{path}: no .rodata section")
    start = syms["linux_banner"][0] - syms["__start_rodata"][0]
    end = rodata.find(b"\0", start)
    if start < 0 or end < 0:
        raise KaslrError(f"{path}: linux_banner is not in .rodata")
    return syms["linux_banner"][0], rodata[start:end + 1]


# KASLR ----------------------------------------------------------------------

def symbols_match(path: Optional[str] = None) -> Optional[bool]:
    """Whether the loaded symbols' ``linux_banner`` holds the file's banner in
    target memory (``None`` when no kernel symbols are loaded)."""
    path = path or kernel_symbol_file()
    address = _address("linux_banner")
    if not path or address is None:
        return None
    _, expected = _banner(path)
    try:
        if _read(address, len(expected)) != expected:
            return False
    except gdb.MemoryError:
        return False
    return percpu_symbols_match(path)


def percpu_symbols_match(path: str) -> bool:
    """Whether zero-based per-CPU symbols (x86-64 SMP) were left at 0 by the loader."""
    link = elf_symbols(path, ("__per_cpu_start",)).get("__per_cpu_start")
    return link is None or link[0] != 0 or _address("__per_cpu_start") == 0


def _thread_pcs() -> List[int]:
    pcs = []
    current = gdb.selected_thread()
    try:
        for thread in gdb.selected_inferior().threads():
            thread.switch()
            try:
                pcs.append(int(gdb.parse_and_eval("$pc")) & _MASK64)
            except gdb.error:
                pass
    finally:
        if current is not None:
            current.switch()
    return pcs


def _candidates(path: str, arch: str) -> Iterator[int]:
    # x86-64 places the kernel at a CONFIG_PHYSICAL_ALIGN (>= 2 MiB) multiple
    # inside the 1 GiB kernel image area above __START_KERNEL_map; other
    # architectures are only tried around the stopped CPUs' program counters.
    align = 0x200000 if arch == "x86_64" else 0x10000
    yield 0
    text = elf_symbols(path, ("_stext", "_etext"))
    if len(text) == 2:
        stext, etext = text["_stext"][0], text["_etext"][0]
        for pc in _thread_pcs():
            if pc < 1 << 63:  # user space: no hint
                continue
            low = -(-(pc - etext) // align) * align
            for offset in range(low, pc - stext + 1, align):
                yield offset
    if arch == "x86_64":
        yield from range(align, 1 << 30, align)


def find_kaslr_offset(path: str) -> int:
    """The offset at which the target runs the kernel of vmlinux *path*.

    Looks for the file's ``linux_banner`` (its whole text, build string
    included) at the link address plus each candidate offset.

    :raises KaslrError: not found, or the target runs another build.
    """
    if not _have_target():
        raise KaslrError("no target: connect first (target remote HOST:PORT)")
    link, expected = _banner(path)
    other = None
    seen = set()
    for offset in _candidates(path, _arch(path)):
        if offset in seen:
            continue
        seen.add(offset)
        try:
            data = _read(link + offset, len(expected))
        except gdb.MemoryError:
            continue
        if data == expected:
            return offset
        if other is None and data.startswith(b"Linux version "):
            other = data
    if other is not None:
        running = other.split(b"\0")[0].decode(errors="replace").strip()
        mine = expected[:-1].decode(errors="replace").strip()
        raise KaslrError(f"{path} is not the build the target runs: the target's banner is "
                         f"{running!r}, the file's {mine!r}")
    hint = " (every CPU is stopped in user mode: see the warning)" if _user_mode() else ""
    raise KaslrError(f"the banner of {path} is nowhere in the target's kernel image area "
                     f"(is the kernel booted? is this its vmlinux?){hint}")


# Layout: types and offsets, once per symbol file ---------------------------------

def _fields(t: gdb.Type, name: str) -> Optional[gdb.Field]:
    """Member *name* of struct type *t*, looking into anonymous members."""
    for f in t.strip_typedefs().fields():
        if f.name == name:
            return f
        if not f.name and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT,
                                                            gdb.TYPE_CODE_UNION):
            found = _fields(f.type, name)
            if found is not None:
                return found
    return None


def _offsetof(t: gdb.Type, member: str) -> int:
    return int(gdb.Value(0).cast(t.pointer()).dereference()[member].address)


def _constant(name: str) -> Optional[int]:
    """An enumerator's value (looked up without parsing in the selected frame's scope)."""
    try:
        sym = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
        return int(sym.value()) if sym is not None else None
    except gdb.error:
        return None


class _Layout:
    """What oomdrgn needs to know about the kernel's types, found once."""

    def __init__(self) -> None:
        try:
            self.task_struct = gdb.lookup_type("struct task_struct")
            self.mm_struct = gdb.lookup_type("struct mm_struct")
            signal_struct = gdb.lookup_type("struct signal_struct")
            self.list_head_ptr = gdb.lookup_type("struct list_head").pointer()
        except gdb.error as e:
            raise gdb.GdbError(f"no kernel debug info ({e}): load the debug vmlinux, "
                               "e.g. lx-oom-kaslr /path/to/vmlinux") from None
        self.path = kernel_symbol_file()
        self.task_ptr = self.task_struct.pointer()
        self.mm_ptr = self.mm_struct.pointer()
        self.s32_ptr = gdb.lookup_type("int").pointer()
        self.tasks_offset = _offsetof(self.task_struct, "tasks")
        self.thread_node_offset = _offsetof(self.task_struct, "thread_node")
        self.thread_head_offset = _offsetof(signal_struct, "thread_head")
        self.comm_size = _fields(self.task_struct, "comm").type.sizeof
        rss_stat = _fields(self.mm_struct, "rss_stat").type.strip_typedefs()
        # Since Linux kernel commit f1a7941243c1 ("mm: convert mm's rss stats into
        # percpu_counter") (in v6.2), rss_stat is an array of struct percpu_counter.
        self.counter_layout = "percpu" if rss_stat.code == gdb.TYPE_CODE_ARRAY else "atomic"
        # Since Linux kernel commit af5b0f6a09e4 ("mm: consolidate page table
        # accounting") (in v4.15), mm->pgtables_bytes replaces nr_ptes/nr_pmds.
        self.pgtables = "bytes" if _fields(self.mm_struct, "pgtables_bytes") else "ptes"
        self.has_nr_pmds = _fields(self.mm_struct, "nr_pmds") is not None
        # signal->oom_mm since Linux kernel commit 26db62f179d1 ("oom: keep mm
        # of the killed task available") (in v4.10); before, no such marker.
        self.has_oom_mm = _fields(signal_struct, "oom_mm") is not None
        self.has_oom_flag_origin = _fields(signal_struct, "oom_flag_origin") is not None
        self.has_vfork_done = _fields(self.task_struct, "vfork_done") is not None
        # Since v6.18 mm->flags is an mm_flags_t (struct { unsigned long
        # __mm_flags[1]; }); its first word holds MMF_OOM_SKIP.
        flags = _fields(self.mm_struct, "flags").type.strip_typedefs()
        compound = flags.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION)
        self.mm_flags_word = flags.fields()[0].name if compound else None
        # MM_SHMEMPAGES is new in v4.5.
        self.mm_index = [_constant(n) for n in
                         ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES")]
        self.infos: Dict[Optional[str], KernelInfo] = {}


def _layout() -> _Layout:
    layout = _cache.get("layout")
    if layout is None:
        layout = _cache["layout"] = _Layout()
    return layout


# Evidence ---------------------------------------------------------------------

def _calls_sum(path: Optional[str], func: str, arch: str) -> Optional[bool]:
    """Whether *func* calls ``__percpu_counter_sum``: its bytes read from the target."""
    address, target = _address(func), _address("__percpu_counter_sum")
    if address is None or target is None or not path:
        return None
    try:
        size = elf_symbols(path, (func,)).get(func, (0, 0))[1]
    except (OSError, ValueError):
        size = 0
    if not size:
        return None
    try:
        code = _read(address, size)
    except gdb.MemoryError:
        return None
    return calls_target(code, address, target, arch)


def _page_shift(arch: str) -> int:
    # The kernel's own vmcoreinfo note text says "PAGESIZE=4096".
    try:
        data = int(gdb.lookup_global_symbol("vmcoreinfo_data").value())
        size = int(gdb.lookup_global_symbol("vmcoreinfo_size").value())
        text = _read(data, min(size, 1 << 16))
        for line in text.split(b"\n"):
            if line.startswith(b"PAGESIZE="):
                return int(line[9:]).bit_length() - 1
    except (gdb.error, AttributeError, ValueError):
        pass
    if arch == "x86_64":
        return 12
    raise gdb.GdbError("cannot find the page size (no vmcoreinfo_data)")


def gather_evidence() -> Evidence:
    """Read what :func:`oomdrgn.core.kernelinfo.decide` needs, through GDB."""
    layout = _layout()
    path = layout.path
    arch = _arch(path)
    percpu = layout.counter_layout == "percpu"
    calls = {c: (_calls_sum(path, f, arch) if percpu else None) for c, f in CONSUMERS.items()}
    return Evidence(arch=arch, page_shift=_page_shift(arch), counter_layout=layout.counter_layout,
                    pgtables=layout.pgtables, rodata=_rodata(path), calls_sum=calls,
                    has_shmem=layout.mm_index[3] is not None,
                    badness_return=_return_type("oom_badness"))


def _return_type(func: str) -> Optional[str]:
    """The C return type of *func* as drgn names it (``long``, ``unsigned long``)."""
    sym = _lookup(func)
    if sym is None or sym.type is None or sym.type.target() is None:
        return None
    t = sym.type.target().strip_typedefs()
    if t.code != gdb.TYPE_CODE_INT:
        return str(t)
    unsigned = int(gdb.Value(-1).cast(t)) > 0
    name = {8: "long", 4: "int", 2: "short", 1: "char"}.get(t.sizeof, str(t))
    return f"unsigned {name}" if unsigned else name


# The reader -------------------------------------------------------------------

class GdbReader:
    """:class:`oomdrgn.core.oom.Reader` over the kernel GDB is attached to.

    Make one per command: the decisions are cached per symbol file, the per-CPU
    offsets are read once per reader.
    """

    def __init__(self, counter_rule: Optional[str] = None) -> None:
        self.layout = _layout()
        info = self.layout.infos.get(counter_rule)
        if info is None:
            info = decide(gather_evidence(), counter_rule)
            self.layout.infos[counter_rule] = info
        self.info: KernelInfo = info
        self._percpu_offsets: Optional[List[int]] = None
        self._pids: Optional[Dict[int, int]] = None

    # Lists -----------------------------------------------------------------

    def _next(self, node: int) -> int:
        return int(gdb.Value(node).cast(self.layout.list_head_ptr).dereference()["next"])

    def _walk(self, head: int, offset: int, what: str) -> Iterator[int]:
        """Entries of the list_head at *head* as addresses of the containing struct."""
        return list_entries(head, offset, self._next, what, (gdb.MemoryError,))

    def _task(self, task: int) -> gdb.Value:
        return gdb.Value(task).cast(self.layout.task_ptr).dereference()

    def processes(self) -> Iterator[int]:
        init_task = _address("init_task")
        return self._walk(init_task + self.layout.tasks_offset, self.layout.tasks_offset,
                          "init_task.tasks")

    def threads(self, task: int) -> Iterator[int]:
        try:
            signal = int(self._task(task)["signal"])
        except gdb.MemoryError as e:
            raise ReadError(f"task {task:#x}: signal unreadable: {e}") from None
        return self._walk(signal + self.layout.thread_head_offset,
                          self.layout.thread_node_offset, "thread")

    def find_task(self, pid: int) -> Optional[int]:
        # One walk of every thread (no PID hash / IDR lookup), stepping over
        # processes that cannot be read, as drgn_backend does when its
        # find_task() fails; kept for this reader (one command on a stopped target).
        if self._pids is None:
            pids: Dict[int, int] = {}
            for p in self.processes():
                try:
                    for t in self.threads(p):
                        tid = self.task_pid(t)
                        if tid >= 0:
                            pids.setdefault(tid, t)
                except ReadError:
                    continue
            self._pids = pids
        return self._pids.get(pid)

    def task_pid(self, task: int) -> int:
        try:
            return int(self._task(task)["pid"])
        except gdb.MemoryError:
            return -1

    # Records ---------------------------------------------------------------

    def task(self, task: int) -> TaskRecord:
        t = self._task(task)
        layout = self.layout
        try:
            comm = _read(int(t["comm"].address), layout.comm_size).split(b"\0", 1)[0]
            signal = t["signal"].dereference()
            vfork_done = int(t["vfork_done"]) if layout.has_vfork_done else 0
            return TaskRecord(
                address=task, pid=int(t["pid"]), tgid=int(t["tgid"]),
                comm=comm.decode("utf-8", "surrogateescape"),
                flags=int(t["flags"]),
                uid=int(t["real_cred"]["uid"]["val"]) & 0xFFFFFFFF,
                oom_score_adj=int(signal["oom_score_adj"]),
                mm=int(t["mm"]), vfork_done=vfork_done,
                parent_mm=int(t["real_parent"]["mm"]) if vfork_done else 0,
                oom_mm=int(signal["oom_mm"]) if layout.has_oom_mm else 0,
                oom_flag_origin=(bool(int(signal["oom_flag_origin"]))
                                 if layout.has_oom_flag_origin else False))
        except gdb.MemoryError as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

    def _percpu(self) -> List[int]:
        """``__per_cpu_offset[cpu]`` of every possible CPU."""
        if self._percpu_offsets is None:
            try:
                offsets = gdb.lookup_global_symbol("__per_cpu_offset").value()
                nr = offsets.type.strip_typedefs().range()[1] + 1
                self._percpu_offsets = [int(offsets[cpu]) & _MASK64
                                        for cpu in self._cpus("__cpu_possible_mask") if cpu < nr]
            except gdb.MemoryError as e:
                raise ReadError(f"per-CPU offsets unreadable: {e}") from None
        return self._percpu_offsets

    def _counter(self, rss_stat: gdb.Value, index: Optional[int], percpu: bool) -> RawCounter:
        if index is None:
            return RawCounter(0, () if percpu else None)
        if self.info.counter_layout == "percpu":
            fbc = rss_stat[index]
            deltas = None
            if percpu:
                base = int(fbc["counters"])
                s32 = self.layout.s32_ptr
                deltas = tuple(int(gdb.Value(p).cast(s32).dereference())
                               for p in per_cpu_ptrs(base, self._percpu()))
            return RawCounter(int(fbc["count"]), deltas)
        return RawCounter(int(rss_stat["count"][index]["counter"]))

    def mm(self, mm: int, percpu: bool) -> MmRecord:
        m = gdb.Value(mm).cast(self.layout.mm_ptr).dereference()
        try:
            rss_stat = m["rss_stat"]
            counters = tuple(self._counter(rss_stat, i, percpu) for i in self.layout.mm_index)
            if self.info.pgtables == "bytes":
                pt = dict(pgtables_bytes=int(m["pgtables_bytes"]["counter"]))
            else:
                # mm_nr_pmds() is 0 where the PMD level is folded (no nr_pmds member).
                pt = dict(nr_ptes=int(m["nr_ptes"]["counter"]),
                          nr_pmds=int(m["nr_pmds"]["counter"]) if self.layout.has_nr_pmds else 0)
            flags = m["flags"]
            if self.layout.mm_flags_word:
                flags = flags[self.layout.mm_flags_word][0]
            return MmRecord(address=mm, total_vm=int(m["total_vm"]), counters=counters,
                            flags=int(flags), **pt)
        except gdb.MemoryError as e:
            raise ReadError(f"mm {mm:#x} unreadable: {e}") from None

    # Beyond the table and the kill line: oom_score, victim, summary ----------------

    def vm_totals(self) -> VmTotals:
        """``totalram_pages()``, ``total_swap_pages`` and ``vm_swappiness``."""
        try:
            # _totalram_pages is an atomic_long_t since Linux kernel commit
            # ca79b0c211af ("mm: convert totalram_pages and totalhigh_pages
            # variables to atomic") (in v5.0).
            sym = gdb.lookup_global_symbol("_totalram_pages")
            ram = (int(sym.value()["counter"]) if sym is not None
                   else int(gdb.lookup_global_symbol("totalram_pages").value()))
            return VmTotals(totalram_pages=ram,
                            total_swap_pages=int(_lookup("total_swap_pages").value()),
                            vm_swappiness=int(_lookup("vm_swappiness").value()))
        except gdb.MemoryError as e:
            raise ReadError(f"memory totals unreadable: {e}") from None

    def _cpus(self, mask: str) -> List[int]:
        bits = gdb.lookup_global_symbol(mask).value()["bits"]
        low, high = bits.type.strip_typedefs().range()
        word = bits.type.strip_typedefs().target().sizeof * 8
        return [i * word + b for i in range(low, high + 1)
                for w in (int(bits[i]),) for b in range(word) if w >> b & 1]

    def _cpu_curr(self, cpu: int) -> int:
        offset = int(gdb.lookup_global_symbol("__per_cpu_offset").value()[cpu])
        rq = (_address("runqueues") + offset) & _MASK64
        return int(gdb.Value(rq).cast(gdb.lookup_type("struct rq").pointer()).dereference()["curr"])

    def current_task(self) -> Optional[int]:
        """The panicking CPU's task, else the task of the vCPU GDB stopped
        (its stack holds ``$sp``: the one that hit the breakpoint), else the
        only busy CPU's (see :func:`oomdrgn.core.oom.task_that_hit_the_oom`)."""
        try:
            try:
                cpu = int(_lookup("panic_cpu").value()["counter"])
            except (AttributeError, gdb.error):
                cpu = -1
            if cpu >= 0:
                return task_that_hit_the_oom(self._cpu_curr(cpu), None, [])
            busy = [self._cpu_curr(c) for c in self._cpus("__cpu_online_mask")]
            busy = [t for t in busy if self.task_pid(t) != 0]
            return task_that_hit_the_oom(None, self._stopped_task(busy),
                                         [(t, None) for t in busy])
        except gdb.MemoryError as e:
            raise ReadError(f"runqueues unreadable: {e}") from None

    def _stopped_task(self, tasks: List[int]) -> Optional[int]:
        """Which of *tasks* runs on the selected vCPU: the one whose kernel
        stack (``task->stack``, ``sizeof(union thread_union)``) holds ``$sp``."""
        if _user_mode():
            return None
        try:
            sp = int(gdb.parse_and_eval("$sp")) & _MASK64
            size = gdb.lookup_type("union thread_union").sizeof
        except gdb.error:
            return None
        for t in tasks:
            stack = int(self._task(t)["stack"]) & _MASK64
            if stack <= sp < stack + size:
                return t
        return None

    def _task_cgroup(self, task: int, subsys: str) -> Optional[gdb.Value]:
        ssid = _constant(f"{subsys}_cgrp_id")
        if ssid is None:
            return None  # kernel built without that controller
        return self._task(task)["cgroups"]["subsys"][ssid]["cgroup"].dereference()

    def _kernfs_names(self, kn: gdb.Value) -> List[str]:
        # kernfs_node->parent is __parent since Linux kernel commit 633488947ef6
        # ("kernfs: Use RCU to access kernfs_node::parent.") (in v6.15).
        parent = "parent" if _fields(kn.type, "parent") else "__parent"
        names = []
        while int(kn[parent]):
            names.append(kn["name"].string("utf-8", "surrogateescape"))
            kn = kn[parent].dereference()
        return names

    def cgroup_path(self, task: int, subsys: str) -> Optional[str]:
        try:
            cgrp = self._task_cgroup(task, subsys)
            if cgrp is None:
                return None
            return "/" + "/".join(reversed(self._kernfs_names(cgrp["kn"].dereference())))
        except gdb.MemoryError as e:
            raise ReadError(f"cgroup of task {task:#x} unreadable: {e}") from None

    def cgroup_name(self, task: int, subsys: str) -> Optional[str]:
        try:
            cgrp = self._task_cgroup(task, subsys)
            if cgrp is None:
                return None
            names = self._kernfs_names(cgrp["kn"].dereference())
            return names[0] if names else "/"
        except gdb.MemoryError as e:
            raise ReadError(f"cgroup of task {task:#x} unreadable: {e}") from None

    def mems_allowed(self, task: int) -> list:
        bits = self._task(task)["mems_allowed"]["bits"]
        low, high = bits.type.strip_typedefs().range()
        word = bits.type.strip_typedefs().target().sizeof * 8
        try:
            return [i * word + b for i in range(low, high + 1)
                    for w in (int(bits[i]),) for b in range(word) if w >> b & 1]
        except gdb.MemoryError as e:
            raise ReadError(f"task {task:#x} unreadable: {e}") from None

    def memcg_scan_tasks(self, path: str) -> Iterator[int]:
        raise TargetError("memcg-scoped questions (--memcg PATH) are not read over GDB yet: "
                          "dump the guest and use oomdrgn -c")

    def memcg(self, path: str):
        raise TargetError("memcg-scoped questions (--memcg PATH) are not read over GDB yet: "
                          "dump the guest and use oomdrgn -c")
