"""The target port over the kernel GDB is attached to (see :mod:`oomdrgn.core.port`).

Runs inside GDB's embedded Python; never imports drgn. Types and members are
looked up once per symbol file and forgotten on ``gdb.events.new_objfile``
(as ``CachedType`` does in the kernel's ``scripts/gdb/linux/utils.py``).
Faults (``gdb.MemoryError``) become :class:`oomdrgn.core.port.Fault`.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import gdb

from ..core.elffile import elf_machine, symbol_values
from ..core.port import Fault, Member

__all__ = ["GdbPort", "kernel_symbol_file", "kernel_cpu", "elf_symbols", "address_of",
           "read_memory", "user_mode", "have_target", "clear_caches", "cache",
           "USER_MODE_HINT"]

_MASK64 = (1 << 64) - 1
_PART = re.compile(r"[A-Za-z_]\w*|\[\d+\]")

# Lifetime: until the symbol files change (types, members, ELF symbols, decisions).
cache: Dict[object, object] = {}


def clear_caches(event: object = None) -> None:
    """Forget types, offsets and decisions (new or changed symbol files)."""
    cache.clear()


gdb.events.new_objfile.connect(clear_caches)
gdb.events.clear_objfiles.connect(clear_caches)


# Symbols and memory ---------------------------------------------------------

def _lookup(name: str) -> Optional[gdb.Symbol]:
    return gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)


def address_of(name: str) -> Optional[int]:
    """Address of a kernel symbol under the current symbols (debug or ELF-only)."""
    sym = _lookup(name)
    try:
        if sym is not None:
            return int(sym.value().address)
        return int(gdb.parse_and_eval(f"&{name}"))
    except gdb.error:
        return None


def read_memory(address: int, size: int) -> bytes:
    return bytes(gdb.selected_inferior().read_memory(address & _MASK64, size))


def kernel_symbol_file() -> Optional[str]:
    """Path of the symbol file that defines ``init_task`` (the vmlinux), if any."""
    sym = gdb.lookup_global_symbol("init_task")
    if sym is not None and sym.symtab is not None:
        return sym.symtab.objfile.filename
    return gdb.current_progspace().filename


def have_target() -> bool:
    inf = gdb.selected_inferior()
    return inf is not None and inf.pid != 0


def _file_key(path: str) -> Tuple[str, float]:
    return (os.path.realpath(path), os.stat(path).st_mtime)


def elf_symbols(path: str, names: Iterable[str]) -> Dict[str, Tuple[int, int]]:
    """``{name: (st_value, st_size)}`` from the ELF ``.symtab`` of *path*, kept
    per file. GDB's Python API gives no symbol sizes, and a function's block can
    span its ``.cold`` part, so sizes come from the file as drgn takes them."""
    table = cache.setdefault(("elf_symbols",) + _file_key(path), {})
    assert isinstance(table, dict)
    missing = [n for n in names if n not in table]
    if missing:
        found = symbol_values(path, missing)
        for name in missing:
            table[name] = found.get(name)
    return {n: table[n] for n in names if table.get(n) is not None}


def arch_of(path: Optional[str]) -> str:
    name = ""
    if have_target():
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


def user_mode() -> bool:
    try:
        arch = gdb.selected_inferior().architecture().name()
        if "x86-64" not in arch and "i386" not in arch:
            return False
        return bool(int(gdb.parse_and_eval("$cs")) & 3)
    except (gdb.error, AttributeError):
        return False


def _vcpu_stack_pointers() -> List[int]:
    """``$sp`` of every vCPU stopped in kernel mode (the selected one restored)."""
    thread = gdb.selected_thread()
    if thread is None:
        return []
    try:
        frame = gdb.selected_frame()
    except gdb.error:
        frame = None
    out = []
    try:
        for other in gdb.selected_inferior().threads():
            other.switch()
            if not user_mode():
                try:
                    out.append(int(gdb.parse_and_eval("$sp")) & _MASK64)
                except gdb.error:
                    pass
    finally:
        thread.switch()
        if frame is not None and frame.is_valid():
            frame.select()
    return out


@contextlib.contextmanager
def kernel_cpu() -> Iterator[None]:
    """Read through a CPU that runs kernel code.

    QEMU's gdbstub translates addresses with the selected CPU's page tables. With
    page table isolation a CPU stopped in user mode maps almost none of the
    kernel, so select (for the duration) a CPU stopped in ring 0 if there is one.
    """
    thread = gdb.selected_thread()
    if thread is None or not user_mode():
        yield
        return
    try:
        frame = gdb.selected_frame()
    except gdb.error:
        frame = None
    switched = False
    for other in gdb.selected_inferior().threads():
        other.switch()
        if not user_mode():
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


# Types ------------------------------------------------------------------------

_KINDS = {gdb.TYPE_CODE_INT: "int", gdb.TYPE_CODE_BOOL: "bool", gdb.TYPE_CODE_ENUM: "enum",
          gdb.TYPE_CODE_PTR: "pointer", gdb.TYPE_CODE_ARRAY: "array",
          gdb.TYPE_CODE_STRUCT: "struct", gdb.TYPE_CODE_UNION: "union",
          gdb.TYPE_CODE_CHAR: "int"}


def _field(t: gdb.Type, name: str) -> Optional[Tuple[int, gdb.Type]]:
    """(bit position, type) of member *name* of *t*, looking into anonymous members."""
    for f in t.fields():
        if f.name == name:
            return f.bitpos, f.type
        if not f.name and f.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT,
                                                            gdb.TYPE_CODE_UNION):
            inner = _field(f.type.strip_typedefs(), name)
            if inner is not None:
                return f.bitpos + inner[0], inner[1]
    return None


def _signed(t: gdb.Type) -> bool:
    try:
        return bool(t.is_signed)
    except (AttributeError, ValueError):
        return int(gdb.Value(-1).cast(t)) < 0


def _member(offset: int, t: gdb.Type) -> Member:
    t = t.strip_typedefs()
    kind = _KINDS.get(t.code, "other")
    length = None
    members: Tuple[str, ...] = ()
    if kind == "array":
        low, high = t.range()
        length = high - low + 1
    elif kind in ("struct", "union"):
        members = tuple(f.name or "" for f in t.fields())
    signed = _signed(t) if kind in ("int", "enum") else False
    return Member(offset, t.sizeof, kind, signed, length, members)


class GdbPort:
    """:class:`oomdrgn.core.port.Target` over GDB's selected inferior (QEMU's
    gdbstub): memory of the stopped guest, types of the loaded vmlinux."""

    little_endian = True
    #: the guest is stopped while a command runs
    live = False

    def __init__(self) -> None:
        self.path = kernel_symbol_file()
        self.arch = arch_of(self.path)
        try:
            self.little_endian = "big endian" not in gdb.execute("show endian", to_string=True)
        except gdb.error:
            self.little_endian = True

    def read(self, address: int, size: int) -> bytes:
        try:
            return read_memory(address, size)
        except gdb.MemoryError as e:
            raise Fault(str(e), address) from None

    def _type(self, type_name: str) -> gdb.Type:
        key = ("type", type_name)
        t = cache.get(key)
        if t is None:
            try:
                t = cache[key] = gdb.lookup_type(type_name)
            except gdb.error as e:
                raise LookupError(f"no type {type_name}: {e}") from None
        return t

    def member(self, type_name: str, designator: str) -> Member:
        key = ("member", type_name, designator)
        m = cache.get(key)
        if m is None:
            t, offset = self._type(type_name), 0
            for part in _PART.findall(designator):
                t = t.strip_typedefs()
                if part.startswith("["):
                    t = t.target()
                    offset += int(part[1:-1]) * t.sizeof
                    continue
                found = _field(t, part)
                if found is None:
                    raise LookupError(f"{type_name} has no member {designator}")
                offset += found[0] // 8
                t = found[1]
            m = cache[key] = _member(offset, t)
        return m  # type: ignore[return-value]

    def sizeof(self, type_name: str) -> int:
        return self._type(type_name).sizeof

    def constant(self, name: str) -> Optional[int]:
        try:
            sym = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
            if sym is None or sym.addr_class != gdb.SYMBOL_LOC_CONST:
                return None
            return int(sym.value())
        except gdb.error:
            return None

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        address = address_of(name)
        if address is None:
            return self._elf_only_symbol(name)
        size = 0
        if self.path:
            try:
                size = elf_symbols(self.path, (name,)).get(name, (0, 0))[1]
            except (OSError, ValueError):
                size = 0
        return address & _MASK64, size

    def _elf_only_symbol(self, name: str) -> Optional[Tuple[int, int]]:
        """A symbol GDB does not look up by name (a function's ``.cold`` part, a
        ``.constprop.0`` clone), from the vmlinux's symtab, moved by the same
        offset as the function it belongs to (KASLR)."""
        base = name.split(".", 1)[0]
        if base == name or not self.path:
            return None
        try:
            found = elf_symbols(self.path, (name, base))
        except (OSError, ValueError):
            return None
        where = address_of(base)
        if name not in found or base not in found or where is None:
            return None
        return (found[name][0] + where - found[base][0]) & _MASK64, found[name][1]

    def return_type(self, function: str) -> Optional[str]:
        sym = _lookup(function)
        if sym is None or sym.type is None or sym.type.target() is None:
            return None
        t = sym.type.target().strip_typedefs()
        if t.code != gdb.TYPE_CODE_INT:
            return str(t)
        name = {8: "long", 4: "int", 2: "short", 1: "char"}.get(t.sizeof, str(t))
        return name if _signed(t) else f"unsigned {name}"

    def vmlinux_path(self) -> Optional[str]:
        return self.path

    def find_task(self, pid: int) -> Optional[int]:
        return None  # the core walks the tasks

    def symbol_name(self, address: int) -> Optional[str]:
        try:
            block = gdb.block_for_pc(address)
        except (gdb.error, RuntimeError):
            block = None
        while block is not None and block.function is None:
            block = block.superblock
        return block.function.name if block is not None else None

    def stack_functions(self, task: int) -> Optional[List[str]]:
        """The OOM-path functions (:data:`oomdrgn.core.oom.OOM_PATH`) whose code
        addresses sit on *task*'s kernel stack between the ``$sp`` of the vCPU
        running it and the stack's top; None if no vCPU runs it. (GDB unwinds
        only the selected vCPU: the live part of the stack is scanned instead.)"""
        from ..core.oom import OOM_PATH
        try:
            size = self.sizeof("union thread_union")
            stack_off = self.member("struct task_struct", "stack").offset
            base = int.from_bytes(self.read(task + stack_off, 8), "little")
        except (LookupError, Fault):
            return None
        sp = next((s for s in _vcpu_stack_pointers() if base <= s < base + size), None)
        if sp is None:
            return None
        ranges = []
        for name in OOM_PATH:
            sym = self.symbol(name)
            if sym is not None and sym[1]:
                ranges.append((sym[0], sym[0] + sym[1], name))
        if not ranges:
            return None  # no function's extent known: the stack cannot tell
        start = sp & ~7
        try:
            data = self.read(start, base + size - start)
        except Fault:
            return None
        found: Set[str] = set()
        for i in range(0, len(data) - 7, 8):
            word = int.from_bytes(data[i:i + 8], "little")
            found.update(name for lo, hi, name in ranges if lo <= word < hi)
        return sorted(found)

    def stack_frames(self, task: int) -> Optional[List[Tuple[str, int, int, bool]]]:
        # GDB unwinds only what runs on a vCPU, not a task's saved stack: no frames.
        return None

    def oom_control(self, task: int) -> Optional[dict]:
        return None

    def stopped_task(self, tasks: Sequence[int]) -> Optional[int]:
        """Which of *tasks* runs on the selected vCPU: the one whose kernel
        stack (``task->stack``, ``sizeof(union thread_union)``) holds ``$sp``."""
        if user_mode():
            return None
        try:
            sp = int(gdb.parse_and_eval("$sp")) & _MASK64
            size = self.sizeof("union thread_union")
            stack_off = self.member("struct task_struct", "stack").offset
        except (gdb.error, LookupError):
            return None
        for t in tasks:
            try:
                stack = int.from_bytes(self.read(t + stack_off, 8), "little")
            except Fault:
                continue
            if stack <= sp < stack + size:
                return t
        return None

    def vmcoreinfo(self) -> Optional[bytes]:
        return None
