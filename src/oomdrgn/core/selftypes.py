"""The kernel's own types and symbols, read from its memory through a read
function (standard library and core only): kallsyms where VMCOREINFO or the
image's layout says, the vmlinux BTF between ``__start_BTF`` and ``__stop_BTF``
or found in ``.rodata``. The drgn port (:mod:`oomdrgn.drgn.nodebug`) and the
no-debugger port of ELF vmcores (:mod:`oomdrgn.elfcore.port`) both read them so,
and say the same of where they came from."""

from __future__ import annotations

from typing import Callable, Mapping, Optional, TYPE_CHECKING, Tuple, Union

from .btf import Blob, Btf, BtfError, find_btf
from .errors import EXIT_DEBUGINFO, OomdrgnError
from .kallsyms import Kallsyms, KallsymsError, read_kallsyms, unreadable_kallsyms
from .port import Fault

if TYPE_CHECKING:  # core.symrecover loads only where kallsyms lacks data symbols
    from .symrecover import Recovered

__all__ = ["read_symbols", "locate_btf", "parse_btf", "btf_source", "recover"]

Read = Callable[[int, int], bytes]
#: a read that may answer with a view of the bytes (no copy)
View = Callable[[int, int], Union[bytes, memoryview]]

#: bytes of .rodata read at a time while looking for the BTF blob
_CHUNK = 4 << 20


def read_symbols(read: Read, info: Mapping[str, str], little_endian: bool
                 ) -> Tuple[Kallsyms, str, str]:
    """The kernel's kallsyms, where its tables were found (for stderr), and the
    stderr description of the symbols.

    :raises OomdrgnError: no consistent table (exit status 4)
    """
    try:
        ks = read_kallsyms(read, info, little_endian=little_endian)
    except (KallsymsError, Fault) as e:
        raise unreadable_kallsyms(e) from None
    tables = ("VMCOREINFO's kallsyms tables" if "SYMBOL(kallsyms_names)" in info
              else "kallsyms tables found in the kernel image")
    return ks, tables, f"symbols from {tables}, {len(ks)} symbols"


def locate_btf(read: Read, ks: Kallsyms, view: Optional[View] = None
               ) -> Tuple[Blob, int, str]:
    """The vmlinux BTF, its address and how it was found: ``__start_BTF``..
    ``__stop_BTF`` (read with *view* where given: a read that need not copy),
    else searched in ``.rodata``.

    :raises OomdrgnError: no BTF in memory (exit status 4)
    """
    start, stop = ks.address_of("__start_BTF"), ks.address_of("__stop_BTF")
    if start is not None and stop is not None and stop > start:
        try:
            return (view or read)(start, stop - start), start, "__start_BTF"
        except Fault:
            pass
    lo = ks.address_of("__start_rodata") or ks.address_of("_etext")
    # Function-only kallsyms (no CONFIG_KALLSYMS_ALL) has no _end: the init text
    # follows .rodata (and .data on x86-64).
    hi = (ks.address_of("__end_rodata") or ks.address_of("_end")
          or ks.address_of("_sinittext"))
    if lo is None or hi is None or hi <= lo:
        raise OomdrgnError("no debug info, and kallsyms does not say where the kernel's "
                           "read-only data is (no __start_BTF, __start_rodata)", EXIT_DEBUGINFO)
    # The whole range at once (unreadable chunks as zeros): the blob (4 MB and
    # more) may straddle any chunk.
    data = bytearray()
    address = lo
    while address < hi:
        size = min(_CHUNK, hi - address)
        try:
            data += read(address, size)
        except Fault:
            data += bytes(size)
        address += size
    hit = find_btf(data)
    if hit is not None:
        offset, length = hit
        return bytes(data[offset:offset + length]), lo + offset, "found in .rodata"
    raise OomdrgnError("no debug info, and no BTF in the kernel's memory (a kernel built "
                       "without CONFIG_DEBUG_INFO_BTF): pass the debug vmlinux (-s VMLINUX)",
                       EXIT_DEBUGINFO)


def parse_btf(blob: Blob, arch: str) -> Btf:
    """*blob* parsed (``char`` is signed on x86-64, not on arm64).

    :raises OomdrgnError: damaged (exit status 4)
    """
    try:
        return Btf(blob, char_signed=arch == "x86_64")
    except BtfError as e:
        raise OomdrgnError(f"no debug info, and the kernel's BTF is damaged ({e}): pass the "
                           "debug vmlinux (-s VMLINUX)", EXIT_DEBUGINFO) from None


def btf_source(btf: Btf, at: int, how: str) -> str:
    """The stderr description of types read from memory at *at*."""
    return f"types from the kernel's BTF at {at:#x} ({how}), {btf.types} types"


def recover(read: Read, ks: Kallsyms, info: Mapping[str, str], btf: Btf, arch: str,
            little_endian: bool, btf_at: int, tables: str) -> Tuple["Recovered", str]:
    """The data symbols of a kernel built without CONFIG_KALLSYMS_ALL (Debian's
    6.1 arm64: kallsyms holds functions only), recovered from memory
    (:mod:`oomdrgn.core.symrecover`), and the stderr description of the symbols."""
    from .symrecover import recover_symbols
    recovered = recover_symbols(read, ks, info, btf, arch, little_endian, btf_at)
    return recovered, (f"symbols from {tables} (functions only), {len(ks)} symbols, and "
                       f"{len(recovered.symbols)} data symbols recovered "
                       f"({', '.join(recovered.sources())})")
