"""Open a drgn Program on a vmcore, the live kernel or a QEMU guest, with clear errors."""

from __future__ import annotations

import os
import sys
import struct
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import drgn
from drgn import Architecture, FaultError, Platform, PlatformFlags, Program

from ..core.diskdump import DiskDump, DiskDumpError, block_size_mismatch
from ..core.elffile import core_note_names, elf_machine, load_segments
from ..core.rawimage import RawImageError, elf_banks, is_bank_spec, open_banks
from ..core.errors import (EXIT_DEBUGINFO, EXIT_PERMISSION, EXIT_TARGET, OomdrgnError)

if TYPE_CHECKING:  # socket, json, platform: imported where used (a vmcore needs none)
    import socket

__all__ = ["open_program", "core_format", "DEBUG_INFO", "BOOT_IMAGE", "NODEBUG_VMLINUX"]

_ARCH = {"x86_64": Architecture.X86_64, "aarch64": Architecture.AARCH64}


def core_format(path: str) -> str:
    """``elf``, ``kdump`` or ``flattened`` from the file's magic; raises if none."""
    try:
        with open(path, "rb") as f:
            magic = f.read(16)
    except IsADirectoryError:
        raise OomdrgnError(f"{path}: is a directory, not a vmcore", EXIT_TARGET) from None
    except PermissionError:
        raise OomdrgnError(f"{path}: permission denied (run as a user who may read it)",
                           EXIT_PERMISSION) from None
    except FileNotFoundError:
        raise OomdrgnError(f"{path}: no such vmcore", EXIT_TARGET) from None
    if not magic:
        raise OomdrgnError(f"{path}: empty file, not a vmcore", EXIT_TARGET)
    if magic.startswith(b"\x7fELF"):
        return "elf"
    if magic.startswith(b"KDUMP   "):
        return "kdump"
    if magic.startswith(b"makedumpfile"):
        return "flattened"
    raise OomdrgnError(f"{path}: not a vmcore (neither ELF nor kdump format; a raw RAM "
                       "image? give its physical address: FILE@PADDR)", EXIT_TARGET)


def elf_core_extent(path: str) -> int:
    """Bytes an ELF core's program headers say it holds (end of the last segment)."""
    return max((offset + size for _, offset, size in load_segments(path)), default=0)


def _warn_if_truncated(path: str) -> None:
    size = os.path.getsize(path)
    want = elf_core_extent(path)
    if want > size:
        print(f"oomdrgn: warning: {path} is truncated: {size} of {want} bytes; "
              "objects beyond the end are reported unreadable", file=sys.stderr)


def _platform(vmlinux: Sequence[str], guess: Optional[str] = None) -> Platform:
    # QEMU's kdump-zlib dumps carry no architecture name, and libkdumpfile then
    # fails ("KDUMP_ATTR_ARCH_NAME: Key has no value"): name it ourselves, from
    # the vmlinux if given, else ``guess``, else the host.
    arch = None
    for path in vmlinux:
        try:
            arch = elf_machine(path)
        except (OSError, ValueError):
            continue
        if arch:
            break
    if not arch and not guess:
        import platform
        guess = platform.machine()  # the host's
    arch = arch or guess
    if arch not in _ARCH:
        raise OomdrgnError(f"unsupported architecture {arch!r}", EXIT_TARGET)
    return Platform(_ARCH[arch], PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN)


#: ``prog.config`` key: the QEMU guest was paused when oomdrgn attached (its
#: memory read as a vmcore's: once)
PAUSED = "oomdrgn.qemu_paused"


def _qmp_running(s: "socket.socket") -> Optional[bool]:
    """``query-status``'s ``running`` over a fresh QMP connection (None: no answer)."""
    import json
    try:
        stream = s.makefile("rwb")
        for command in (b'{"execute": "qmp_capabilities"}', b'{"execute": "query-status"}'):
            stream.write(command + b"\n")
            stream.flush()
            while True:  # events may come first
                line = stream.readline()
                if not line:
                    return None
                reply = json.loads(line)
                if "return" in reply or "error" in reply:
                    break
        ret = reply.get("return")
        return bool(ret["running"]) if isinstance(ret, dict) and "running" in ret else None
    except (OSError, ValueError):
        return None


def _probe_qmp(address: str, timeout: float) -> Optional[bool]:
    """Fail fast, with a clear message, when the QMP socket is gone or mute;
    else whether the guest runs (None: not told)."""
    import socket
    target: Union[str, Tuple[str, int]]
    if ":" in address and not address.startswith(("/", ".")):
        host, _, port = address.rpartition(":")
        family, target = socket.AF_INET, (host or "127.0.0.1", int(port))
    else:
        family, target = socket.AF_UNIX, address
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(target)
            greeting = s.recv(4096)
            running = _qmp_running(s) if b'"QMP"' in greeting else None
    except socket.timeout:
        raise OomdrgnError(f"{address}: no answer from the QMP socket within {timeout:g} s "
                           "(is another client holding it? QEMU serves one QMP client per "
                           "socket: give QEMU a second -qmp)", EXIT_TARGET) from None
    except OSError as e:
        raise OomdrgnError(f"{address}: cannot attach to the QEMU guest over QMP: {e}",
                           EXIT_TARGET) from None
    if b'"QMP"' not in greeting:
        raise OomdrgnError(f"{address}: not a QMP socket (no QMP greeting)", EXIT_TARGET)
    return running


def _kdump_by_blocks(core: str, vmlinux: Sequence[str]) -> Program:
    """A Program on kdump file ``core`` whose blocks are not the kernel's pages
    (QEMU's aarch64 dumps: 64 KiB blocks, 4 KiB pages), which libkdumpfile
    misreads: the pages come from :class:`DiskDump`, drgn walks the page
    tables itself (``set_linux_kernel_custom``)."""
    try:
        dump = DiskDump(core)
    except (DiskDumpError, OSError) as e:
        raise OomdrgnError(f"{core}: cannot read vmcore: {e}", EXIT_TARGET) from None
    # Only arm64 kernels put kimage_voffset in their vmcoreinfo.
    guess = "aarch64" if b"NUMBER(kimage_voffset)=" in dump.vmcoreinfo else None
    prog = Program(_platform(vmlinux, guess))

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        try:
            return dump.read(address, count)
        except LookupError as e:
            raise FaultError(str(e), address) from None
        except (DiskDumpError, OSError) as e:
            raise FaultError(f"could not read memory from kdump: {e}", address) from None

    prog.add_memory_segment(0, dump.max_mapnr * dump.block_size, read, physical=True)
    try:
        prog.set_linux_kernel_custom(dump.vmcoreinfo, False)
    except Exception as e:
        raise OomdrgnError(f"{core}: cannot read vmcore: {e}", EXIT_TARGET) from None
    # Keeps the file open as long as the Program lives.
    prog.cache["oomdrgn_diskdump"] = dump
    return prog


def _physical_target(cores: Sequence[str], vmlinux: Sequence[str],
                     vmcoreinfo: Optional[str], kaslr_offset: Optional[int]) -> Optional[Program]:
    """A Program over physical memory for raw images (``FILE@PADDR``), an ELF
    dump without VMCOREINFO, or any dump with ``--vmcoreinfo``/``--kaslr-offset``;
    ``None`` for a dump drgn opens itself."""
    from .physical import open_physical
    override = vmcoreinfo is not None or kaslr_offset is not None
    if len(cores) > 1 or any(is_bank_spec(c) for c in cores):
        try:
            banks = open_banks(cores)
        except RawImageError as e:
            raise OomdrgnError(str(e), EXIT_TARGET) from None
        return open_physical(banks, vmlinux, vmcoreinfo, kaslr_offset,
                             label=", ".join(str(b) for b in banks))
    core = cores[0]
    if core_format(core) != "elf":
        if override:
            raise OomdrgnError("--vmcoreinfo and --kaslr-offset apply to raw RAM images "
                               "and ELF dumps, not to kdump files", EXIT_TARGET)
        return None
    try:
        has_note = b"VMCOREINFO" in core_note_names(core)
    except (OSError, struct.error) as e:
        raise OomdrgnError(f"{core}: cannot read vmcore: {e}", EXIT_TARGET) from None
    if has_note and not override:
        return None
    _warn_if_truncated(core)
    banks = elf_banks(core, load_segments(core))
    if not banks:
        raise OomdrgnError(f"{core}: an ELF file with no memory (no PT_LOAD segments)",
                           EXIT_TARGET)
    return open_physical(banks, vmlinux, vmcoreinfo, kaslr_offset,
                         label=core if has_note else f"{core} (no VMCOREINFO note)")


def _set_target(prog_args: dict, core: Union[str, Sequence[str], None], kcore: bool,
                qemu: Optional[str], vmlinux: Sequence[str], timeout: float = 10.0,
                vmcoreinfo: Optional[str] = None,
                kaslr_offset: Optional[int] = None) -> Program:
    if isinstance(core, str):
        core = [core]
    if core:
        physical = _physical_target(core, vmlinux, vmcoreinfo, kaslr_offset)
        if physical is not None:
            return physical
        core = core[0]
        fmt = core_format(core)
        if fmt == "kdump" and block_size_mismatch(core):
            return _kdump_by_blocks(core, vmlinux)
        prog = Program(_platform(vmlinux)) if fmt != "elf" else Program()
        try:
            prog.set_core_dump(core)
        except Exception as e:  # libelf/libkdumpfile raise plain Exception too
            raise OomdrgnError(f"{core}: cannot read vmcore: {e} (truncated or damaged?)",
                               EXIT_TARGET) from None
        if fmt == "elf":
            _warn_if_truncated(core)
            prog.config[ELF_CORE] = core
        return prog
    if vmcoreinfo is not None or kaslr_offset is not None:
        raise OomdrgnError("--vmcoreinfo and --kaslr-offset apply to dumps and RAM images "
                           "(-c), not to a running kernel", EXIT_TARGET)
    prog = Program()
    if qemu is not None:
        running = _probe_qmp(qemu, timeout)
        try:
            prog.set_qemu_qmp(qemu)
        except (OSError, ValueError) as e:
            raise OomdrgnError(f"{qemu}: cannot attach to the QEMU guest over QMP: {e}",
                               EXIT_TARGET) from None
        # A paused guest's memory does not change while oomdrgn reads it: read
        # once, as a vmcore's (a running guest is read live, every time).
        prog.config[PAUSED] = running is False
        return prog
    if os.geteuid() != 0:
        raise OomdrgnError("-k reads /proc/kcore and needs root: run it with sudo",
                           EXIT_PERMISSION)
    if not os.path.exists("/proc/kcore"):
        raise OomdrgnError("/proc/kcore does not exist (kernel built without "
                           "CONFIG_PROC_KCORE): use a vmcore instead", EXIT_TARGET)
    try:
        prog.set_kernel()
        prog.config[LIVE_KERNEL] = True
    except PermissionError as e:
        raise OomdrgnError(f"cannot read /proc/kcore ({e}); kernel lockdown may forbid it",
                           EXIT_PERMISSION) from None
    except (OSError, ValueError) as e:
        raise OomdrgnError(f"cannot attach to the live kernel: {e}", EXIT_TARGET) from None
    return prog


#: ``prog.config`` key: ``dwarf`` (the debug vmlinux loaded) or ``btf`` (no debug
#: info: types from the kernel's BTF, symbols from its kallsyms)
DEBUG_INFO = "oomdrgn.debug_info"
#: ``prog.config`` key: the path of the ELF vmcore drgn opened (its memory is
#: also read directly, by physical address: :mod:`oomdrgn.drgn.port`)
ELF_CORE = "oomdrgn.elf_core"
#: ``prog.config`` key: True for the running kernel (``-k``, /proc/kcore)
LIVE_KERNEL = "oomdrgn.live_kernel"
#: ``prog.config`` key: a vmlinux of the target's build without DWARF (``-s``)
NODEBUG_VMLINUX = "oomdrgn.nodebug_vmlinux"
#: ``prog.config`` key: ``(path, what, BTF blob or None)`` of a kernel image
#: file (``-s vmlinuz``) of the target's build
BOOT_IMAGE = "oomdrgn.boot_image"


def _load_debug_info(prog: Program, vmlinux: Sequence[str], mode: str = "auto") -> None:
    """Load DWARF (``dwarf``), or nothing (``btf``), or DWARF if there is any
    (``auto``: else BTF); raises where ``dwarf`` finds none."""
    for path in vmlinux:
        if not os.path.isfile(path):
            raise OomdrgnError(f"{path}: no such vmlinux", EXIT_DEBUGINFO)
    if vmlinux and _is_boot_image(vmlinux[0]):
        _boot_image(prog, vmlinux[0], mode)
        return
    if mode == "btf":
        prog.config[DEBUG_INFO] = "btf"
        if vmlinux and _same_build(prog, vmlinux[0]):
            prog.config[NODEBUG_VMLINUX] = vmlinux[0]
        return
    try:
        if vmlinux:
            prog.load_debug_info(vmlinux)
        else:
            prog.load_debug_info(main=True)
    except drgn.MissingDebugInfoError:
        pass  # judged below, for the main module only
    try:
        main = prog.main_module()
    except LookupError:  # drgn took none of the files
        main = None
    if main is not None and main.debug_file_path is not None:
        prog.config[DEBUG_INFO] = "dwarf"
        return
    if mode == "auto" and not vmlinux:
        prog.config[DEBUG_INFO] = "btf"  # the kernel's own BTF and kallsyms
        return
    if mode == "auto" and _same_build(prog, vmlinux[0]):
        # This build's vmlinux without DWARF (a stripped or non-debug image):
        # BTF and kallsyms from memory, .rodata from the file.
        prog.config[DEBUG_INFO] = "btf"
        prog.config[NODEBUG_VMLINUX] = vmlinux[0]
        return
    release = _release(prog)
    if vmlinux:
        raise OomdrgnError(
            f"{', '.join(vmlinux)} does not match the kernel in the target "
            f"({release}; build ID mismatch or no debug info): pass the debug vmlinux of "
            "that exact build", EXIT_DEBUGINFO)
    raise OomdrgnError(
        f"no debug info found for kernel {release}: install linux-image-{release}-dbg "
        "or pass -s VMLINUX", EXIT_DEBUGINFO)


def _is_boot_image(path: str) -> bool:
    """Whether *path* is a kernel image file (vmlinuz), not an ELF vmlinux."""
    try:
        with open(path, "rb") as f:
            return f.read(4) != b"\x7fELF"
    except OSError:
        return False


def _boot_image(prog: Program, path: str, mode: str) -> None:
    """``-s vmlinuz``: no DWARF in it; its BTF backs the kernel's own (same
    build ID as VMCOREINFO's), for a target whose memory lacks it."""
    from ..core.kimage import KimageError, gnu_build_ids
    from ..core.rawimage import parse_vmcoreinfo
    from .bootimage import kernel_of
    if mode == "dwarf":
        raise OomdrgnError(f"{path} is a kernel image (vmlinuz), without DWARF: pass the "
                           f"debug vmlinux (linux-image-{_release(prog)}-dbg)", EXIT_DEBUGINFO)
    try:
        kernel, what = kernel_of(path)
    except KimageError as e:
        raise OomdrgnError(f"{path}: {e}", EXIT_DEBUGINFO) from None
    try:
        want = parse_vmcoreinfo(prog["VMCOREINFO"].string_()).get("BUILD-ID", "")
    except (LookupError, FaultError, ValueError):
        want = ""
    if not want or not any(have.startswith(want) for have in gnu_build_ids(kernel)):
        raise OomdrgnError(f"{path} ({what}) does not match the kernel in the target "
                           f"({_release(prog)}; build ID mismatch)", EXIT_DEBUGINFO)
    from ..core.btf import find_btf
    hit = find_btf(kernel)
    prog.config[DEBUG_INFO] = "btf"
    prog.config[BOOT_IMAGE] = (path, what, kernel[hit[0]:hit[0] + hit[1]] if hit else None)


def _same_build(prog: Program, path: str) -> bool:
    """Whether vmlinux *path* has the GNU build ID the target's VMCOREINFO gives."""
    from ..core.rawimage import parse_vmcoreinfo
    from ..core.rawkernel import LocateError, vmlinux_image
    try:
        want = parse_vmcoreinfo(prog["VMCOREINFO"].string_()).get("BUILD-ID")
        have = vmlinux_image(path).build_id
    except (LookupError, FaultError, ValueError, LocateError):
        return False
    return bool(want and have and have.startswith(want))


def _release(prog: Program) -> str:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except Exception:
        try:
            return prog.main_module().name
        except Exception:
            return "unknown"


def open_program(core: Union[str, Sequence[str], None] = None, kcore: bool = False,
                 qemu: Optional[str] = None, vmlinux: Sequence[str] = (),
                 timeout: float = 10.0, vmcoreinfo: Optional[str] = None,
                 kaslr_offset: Optional[int] = None, debug_info: str = "auto") -> Program:
    """A Program for one target, with the main kernel's debug info loaded (or,
    without any, marked to read types from BTF and symbols from kallsyms).

    :param core: path of a vmcore (ELF or kdump; QEMU's kdump-zlib included),
        or raw RAM images, one ``FILE@PADDR`` per bank (a list)
    :param kcore: the live kernel through /proc/kcore (root)
    :param qemu: a QEMU QMP socket
    :param vmlinux: explicit debug vmlinux files (default: drgn's search)
    :param timeout: seconds to wait for a QMP socket's greeting
    :param vmcoreinfo: a file with the kernel's VMCOREINFO text, for images without it
    :param kaslr_offset: the kernel's KASLR offset, over what the images say
    :param debug_info: ``auto`` (DWARF if found, else BTF), ``dwarf`` or ``btf``
    :raises OomdrgnError: one-line, user-facing, with an exit status
    """
    prog = _set_target({}, core, kcore, qemu, vmlinux, timeout, vmcoreinfo, kaslr_offset)
    _load_debug_info(prog, vmlinux, debug_info)
    return prog
