"""The layout cache: the few answers oomdrgn asks of a kernel build's types and
symbols (member offsets, sizes, constants, return types, symbol addresses,
whether ``.rodata`` holds a printk format),
kept per build ID in a small JSON file, so that the next dump of that build
opens without parsing its BTF and kallsyms (standard library only).

An entry is used only for the same build ID and only if the BTF it was made
from is still where it was, byte for byte (a checksum of its first 64 KiB);
symbol addresses are kept without the KASLR offset.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any, Dict, List, Optional, Tuple

from .port import Member
from .record import field, record

__all__ = ["Layout", "cache_dir", "layout_path", "load_layout", "save_layout", "btf_check",
           "CHECK_BYTES"]

VERSION = 1
#: bytes of the BTF blob the check covers
CHECK_BYTES = 64 << 10
_MISSING = "missing"


def cache_dir() -> str:
    """``$OOMDRGN_LAYOUT_CACHE``, else ``$XDG_CACHE_HOME/oomdrgn/layouts``."""
    env = os.environ.get("OOMDRGN_LAYOUT_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "oomdrgn", "layouts")


def btf_check(head: bytes) -> str:
    """The check of a BTF blob: its length-limited head's CRC-32 and size."""
    return f"{zlib.crc32(head[:CHECK_BYTES]):08x}:{len(head[:CHECK_BYTES])}"


class _Noted(dict):
    """A dict that marks its layout changed when an answer is added."""

    def __init__(self, layout: "Layout", items: Dict[str, bool]) -> None:
        super().__init__(items)
        self._layout = layout

    def __setitem__(self, key: str, value: bool) -> None:
        super().__setitem__(key, value)
        self._layout.changed = True


@record
class Layout:
    """One build's answers. ``symbols`` hold ``(address - offset, size)`` for
    addresses in the kernel's upper half (moved by KASLR), the address itself
    below (x86-64's zero-based per-CPU symbols), or None for a symbol the
    kernel lacks."""

    build_id: str
    btf_at: int  # __start_BTF without the KASLR offset
    btf_check: str
    members: Dict[str, Any] = field(default_factory=dict)
    sizes: Dict[str, Any] = field(default_factory=dict)
    constants: Dict[str, Optional[int]] = field(default_factory=dict)
    return_types: Dict[str, Optional[str]] = field(default_factory=dict)
    symbols: Dict[str, Optional[Tuple[int, int]]] = field(default_factory=dict)
    #: whether .rodata holds a string (its bytes in hex): the era's printk formats
    strings: Dict[str, bool] = field(default_factory=dict)
    changed: bool = False

    def __post_init__(self) -> None:
        self.strings = _Noted(self, self.strings)

    # Members -----------------------------------------------------------------

    def member(self, type_name: str, designator: str) -> Optional[Member]:
        """The cached member; raises LookupError if cached as missing; None if unknown."""
        hit = self.members.get(f"{type_name}\0{designator}")
        if hit is None:
            return None
        if hit == _MISSING:
            raise LookupError(f"{type_name} has no member {designator}")
        offset, size, kind, signed, length, members = hit
        return Member(offset, size, kind, signed, length, tuple(members))

    def put_member(self, type_name: str, designator: str, m: Optional[Member]) -> None:
        self.changed = True
        self.members[f"{type_name}\0{designator}"] = _MISSING if m is None else [
            m.offset, m.size, m.kind, m.signed, m.length, list(m.members)]

    def size(self, type_name: str) -> Optional[int]:
        hit = self.sizes.get(type_name)
        if hit == _MISSING:
            raise LookupError(f"no type {type_name}")
        return hit

    def put_size(self, type_name: str, size: Optional[int]) -> None:
        self.changed = True
        self.sizes[type_name] = _MISSING if size is None else size

    # Symbols ------------------------------------------------------------------

    def symbol(self, name: str, offset: int) -> Tuple[bool, Optional[Tuple[int, int]]]:
        """``(known, (address, size) or None)`` at KASLR ``offset``."""
        if name not in self.symbols:
            return False, None
        hit = self.symbols[name]
        if hit is None:
            return True, None
        address, size = hit
        return True, ((address + offset) & (2**64 - 1) if address >> 63 else address, size)

    def put_symbol(self, name: str, found: Optional[Tuple[int, int]], offset: int) -> None:
        self.changed = True
        if found is None:
            self.symbols[name] = None
            return
        address, size = found
        self.symbols[name] = ((address - offset) & (2**64 - 1) if address >> 63 else address,
                              size)


def layout_path(build_id: str) -> str:
    """Where build *build_id*'s layout is kept."""
    return os.path.join(cache_dir(), f"{build_id}.json")


def load_layout(build_id: str) -> Optional[Layout]:
    """The cached layout of build ``build_id`` (None: none, or unreadable)."""
    if not build_id or not all(c in "0123456789abcdef" for c in build_id):
        return None
    try:
        with open(layout_path(build_id)) as f:
            data = json.load(f)
        if data.get("version") != VERSION or data.get("build_id") != build_id:
            return None
        symbols = {k: (tuple(v) if v is not None else None)
                   for k, v in data["symbols"].items()}
        return Layout(build_id, int(data["btf_at"]), data["btf_check"], data["members"],
                      data["sizes"], data["constants"], data["return_types"],
                      symbols, dict(data.get("strings", {})))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_layout(layout: Layout) -> Optional[str]:
    """Write ``layout`` (atomically); None if the cache cannot be written."""
    data: Dict[str, Any] = {"version": VERSION, "build_id": layout.build_id,
                            "btf_at": layout.btf_at, "btf_check": layout.btf_check,
                            "members": layout.members, "sizes": layout.sizes,
                            "constants": layout.constants,
                            "return_types": layout.return_types,
                            "symbols": {k: (list(v) if v is not None else None)
                                        for k, v in layout.symbols.items()},
                            "strings": dict(layout.strings)}
    path = layout_path(layout.build_id)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(json.dumps(data, separators=(",", ":"), sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        return None
    layout.changed = False
    return path


def keys(layout: Layout) -> List[str]:
    """What the layout holds (for tests and stderr)."""
    return [f"{len(layout.members)} members", f"{len(layout.sizes)} sizes",
            f"{len(layout.constants)} constants", f"{len(layout.symbols)} symbols"]
