"""The kernel's own types without debug info: a BTF reader (standard library only).

BTF (BPF Type Format, ``include/uapi/linux/btf.h``) is the kernel's compact type
information: the ``.BTF`` section of a vmlinux, ``/sys/kernel/btf/vmlinux``, or
the same blob in a dump's memory (:func:`find_btf`). :class:`Btf` answers the
target port's type questions (:meth:`Btf.member`, :meth:`Btf.sizeof`,
:meth:`Btf.constant`, :meth:`Btf.return_type`) exactly as
``oomdrgn.drgn.port.DrgnPort`` answers them from DWARF, except where BTF does
not hold what DWARF says: pahole flattens a multi-dimensional array into one
dimension (``length`` is the product), writes ``[0]`` as ``[]`` (a trailing one
is taken as flexible: ``length`` None), and, before v1.24 (no enum kind_flag,
no ENUM64), loses enums' signedness and the high half of 64-bit enumerators.
Where one name has several definitions (static types and functions of
different files), the first type id is taken; drgn may take another.

Parsing walks the type section once (type id -> position) and indexes type
names by string offset; members, enumerators and names are decoded on demand.
Lifetime of every cache: the :class:`Btf` object (one blob).
"""

from __future__ import annotations

import mmap
import re
import struct
import sys
from array import array
from bisect import bisect_right
from itertools import accumulate, count
from operator import add, itemgetter
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

from .port import Member

__all__ = ["Btf", "BtfError", "find_btf"]

#: What :func:`find_btf` searches: file contents or a memory map of them.
Buffer = Union[bytes, bytearray, mmap.mmap]
#: a blob: its bytes, or a view of them
Blob = Union[bytes, memoryview]

BTF_MAGIC = 0xEB9F
(KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF,
 KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC,
 KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(1, 20)
_INT_SIGNED, _INT_BOOL = 1, 4
# 32-bit words after struct btf_type: fixed, and per vlen element (btf.h).
_FIXED = {KIND_INT: 1, KIND_ARRAY: 3, KIND_VAR: 1, KIND_DECL_TAG: 1}
_PER_VLEN = {KIND_STRUCT: 3, KIND_UNION: 3, KIND_ENUM: 2, KIND_FUNC_PROTO: 2, KIND_DATASEC: 3,
             KIND_ENUM64: 3}
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
#: lookups of a string's offset searched for before the index is made
_SEARCHES = 64
#: VARs whose names are decoded at once (more: each name searched for)
_FEW_VARS = 4096
_NO_KIND = 1 << 40  # an unknown kind's size: the walk overruns the section
#: the kind of an info word's top byte (its kind_flag dropped)
_KIND_OF_TOP = bytes(top & 0x7F for top in range(256))
# Qualifiers and tags: seen through like drgn's qualified types.
_QUALIFIERS = {KIND_CONST: "const", KIND_VOLATILE: "volatile", KIND_RESTRICT: "restrict"}
_SEE_THROUGH = frozenset((KIND_CONST, KIND_VOLATILE, KIND_RESTRICT, KIND_TYPE_TAG))
_TAGGED = {KIND_STRUCT: "struct", KIND_UNION: "union", KIND_ENUM: "enum", KIND_ENUM64: "enum"}
_PART = re.compile(r"[A-Za-z_]\w*|\[\d+\]")
_SPECIFIERS = frozenset(("signed", "unsigned", "short", "long", "int", "char", "_Bool",
                         "float", "double"))
# drgn's default sizes where the kernel has no such base type (64-bit kernels).
_DEFAULT_SIZES = {"char": 1, "signed char": 1, "unsigned char": 1, "short": 2,
                  "unsigned short": 2, "int": 4, "unsigned int": 4, "long": 8,
                  "unsigned long": 8, "long long": 8, "unsigned long long": 8, "_Bool": 1,
                  "float": 4, "double": 8, "long double": 16}


class BtfError(ValueError):
    """A blob that is not valid BTF."""


class _Primitive(LookupError):
    """A C base type the blob lacks (drgn would make one up: its size is known)."""

    def __init__(self, size: int, decl: List[Tuple[str, int]]) -> None:
        super().__init__("no such base type in the BTF")
        self.size, self.decl = size, decl


def _canonical(name: str) -> Optional[str]:
    """drgn's spelling of a C base type (``long unsigned int`` -> ``unsigned long``),
    or None if *name* is not one."""
    words = name.split()
    if not words or any(w not in _SPECIFIERS for w in words):
        return None
    longs = words.count("long")
    unsigned = "unsigned" in words
    if "_Bool" in words:
        return "_Bool"
    if "float" in words:
        return "float"
    if "double" in words:
        return "long double" if longs else "double"
    if "char" in words:
        return "unsigned char" if unsigned else "signed char" if "signed" in words else "char"
    base = "short" if "short" in words else "long long" if longs > 1 else \
        "long" if longs else "int"
    return f"unsigned {base}" if unsigned else base


class Btf:
    """One BTF blob (either byte order), parsed for the target port's questions.

    :param data: the blob, header first
    :param char_signed: whether ``char`` is signed on the kernel's architecture
        (x86-64: yes, arm64: no), for blobs that do not say (see
        :meth:`_int_signed`); by default guessed from ``struct pt_regs``
    :raises BtfError: not BTF, or its sections or types do not parse
    """

    def __init__(self, data: Blob, char_signed: Optional[bool] = None) -> None:
        if len(data) < 24:
            raise BtfError("BTF: shorter than its header")
        if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
            e = "<"
        elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
            e = ">"
        else:
            raise BtfError("BTF: bad magic")
        self.little_endian = e == "<"
        _, version, self.flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from(e + "HBBIIIII", data)
        if version != 1:
            raise BtfError(f"BTF: version {version}")
        if not 24 <= hdr_len <= len(data) or hdr_len % 4:
            raise BtfError(f"BTF: header length {hdr_len}")
        layout: Sequence[Tuple[int, int]] = ()
        ends = [type_off + type_len, str_off + str_len]
        if hdr_len >= 32:  # the layout section (v7.0): each kind's sizes
            layout_off, layout_len = struct.unpack_from(e + "II", data, 24)
            if layout_len:
                start = hdr_len + layout_off
                if layout_len % 4 or start + layout_len > len(data):
                    raise BtfError("BTF: layout section outside the blob")
                layout = [struct.unpack_from("BB", data, start + i)
                          for i in range(0, layout_len, 4)]
                ends.append(layout_off + layout_len)
        if type_off % 4 or type_len % 4 or hdr_len + type_off + type_len > len(data):
            raise BtfError("BTF: type section outside the blob")
        if not str_len or hdr_len + str_off + str_len > len(data):
            raise BtfError("BTF: string section outside the blob")
        self.strings = bytes(data[hdr_len + str_off:hdr_len + str_off + str_len])
        if self.strings[0] or self.strings[-1]:
            raise BtfError("BTF: string section not NUL-delimited")
        types = memoryview(data)[hdr_len + type_off:hdr_len + type_off + type_len]
        if self.little_endian == (sys.byteorder == "little"):
            # A view, not a copy: a blob viewed in a dump's mapping is not
            # copied into fresh memory (its page faults: ~4 ms on 6.1).
            self._w: Union[array, memoryview] = types.cast(_U32)  # type: ignore[call-overload]
        else:
            self._w = array(_U32, types.tobytes())
            self._w.byteswap()
        self._offsets, self._kinds = self._walk(self._w, layout)
        #: the blob's length: its header and sections
        self.size = hdr_len + max(ends)
        self._names = b""
        self._searches = 0
        self._string_offsets: Dict[str, FrozenSet[int]] = {}
        self._strings_by_name: Optional[Dict[bytes, int]] = None
        self._by_name: Dict[Tuple[str, Tuple[int, ...]], List[int]] = {}
        self._members: Dict[Tuple[str, str], Member] = {}
        self._enumerators: Optional[Dict[int, int]] = None
        self._variables: Optional[Dict[str, int]] = None
        self._vars_counted = False
        self._pointer_size: Optional[int] = None
        self._signed_flags = False
        self._char_arg = char_signed
        self._char_signed: Optional[Tuple[Optional[bool]]] = None  # detected once

    @staticmethod
    def _walk(w: Union[array, memoryview], layout: Sequence[Tuple[int, int]]
              ) -> Tuple[List[int], bytearray]:
        """Each type's word position and its kind (index = type id; 0 for void)."""
        # Indexed by the info word's top byte: the kind and kind_flag.
        fixed, per = [_NO_KIND] * 256, [0] * 256
        sizes = {kind: (_FIXED.get(kind, 0), _PER_VLEN.get(kind, 0)) for kind in range(1, 20)}
        for kind, (info_sz, elem_sz) in enumerate(layout):
            if kind >= 20 and not info_sz % 4 and not elem_sz % 4:
                sizes[kind] = info_sz // 4, elem_sz // 4
        for top in range(256):
            if top & 0x7F in sizes:
                fixed[top], per[top] = 3 + sizes[top & 0x7F][0], sizes[top & 0x7F][1]
        pos, end = 0, len(w)
        offsets = [0]
        tops = bytearray(1)
        add, add_top = offsets.append, tops.append
        try:
            while pos < end:
                add(pos)
                info = w[pos + 1]
                top = info >> 24
                add_top(top)
                pos += fixed[top] + per[top] * (info & 0xFFFFFF)
        except IndexError:
            pos = end + 1
        if pos != end:
            raise BtfError(f"BTF: type {len(offsets) - 1} runs past the type section")
        return offsets, tops.translate(_KIND_OF_TOP)

    def _of_kind(self, *kinds: int) -> List[int]:
        """The ids of the types of *kinds*, in id order (found at C speed)."""
        out: List[int] = []
        for kind in kinds:
            at = self._kinds.find(kind, 1)
            while at > 0:
                out.append(at)
                at = self._kinds.find(kind, at + 1)
        return sorted(out) if len(kinds) > 1 else out

    def check(self) -> None:
        """Every type's name inside the string section and every referenced type
        id inside the type section (what a damaged copy fails).

        :raises BtfError: one is not
        """
        w, n, slen = self._w, len(self._offsets), len(self.strings)
        refs = (KIND_PTR, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC,
                KIND_FUNC_PROTO, KIND_VAR, KIND_DECL_TAG, KIND_TYPE_TAG)
        for tid in range(1, n):
            pos = self._offsets[tid]
            info = w[pos + 1]
            kind = info >> 24 & 0x7F
            if w[pos] >= slen or (kind in refs and w[pos + 2] >= n):
                raise BtfError(f"BTF: type {tid} ({kind}) names or refers outside the blob")
            if kind == KIND_ARRAY and (w[pos + 3] >= n or w[pos + 4] >= n):
                raise BtfError(f"BTF: array {tid} refers outside the blob")
            if kind in (KIND_STRUCT, KIND_UNION):
                for p in range(pos + 3, pos + 3 + 3 * (info & 0xFFFFFF), 3):
                    if w[p] >= slen or w[p + 1] >= n:
                        raise BtfError(f"BTF: member of {tid} outside the blob")

    # Types -------------------------------------------------------------------

    @property
    def types(self) -> int:
        """The number of types (void, id 0, not counted)."""
        return len(self._offsets) - 1

    def kind(self, tid: int) -> int:
        """The ``BTF_KIND_*`` of type *tid* (0 for void)."""
        return self._kinds[tid]

    def kind_flag(self, tid: int) -> bool:
        """The kind_flag of type *tid* (bit fields, signed enums, union FWDs)."""
        return bool(self._w[self._offsets[tid] + 1] >> 31) if tid else False

    def name(self, tid: int) -> str:
        """The name of type *tid* ("" if anonymous)."""
        return self._string(self._w[self._offsets[tid]]) if tid else ""

    def _string(self, off: int) -> str:
        s = self.strings
        if off >= len(s):
            raise BtfError(f"BTF: name offset {off} outside the string section")
        return s[off:s.index(b"\0", off)].decode("utf-8", "replace")

    def _ref(self, tid: int) -> int:
        """The type *tid* refers to (PTR, TYPEDEF, qualifiers, FUNC, VAR...)."""
        return self._w[self._offsets[tid] + 2]

    def _check_id(self, tid: int) -> int:
        if not 0 <= tid < len(self._offsets):
            raise BtfError(f"BTF: type id {tid} out of range")
        return tid

    def _strip(self, tid: int, typedefs: bool = True) -> int:
        """*tid* without qualifiers and tags (and typedefs, as drgn's ``unaliased()``)."""
        for _ in range(64):
            kind = self.kind(tid)
            if kind in _SEE_THROUGH or (typedefs and kind == KIND_TYPEDEF):
                tid = self._check_id(self._ref(tid))
            else:
                return tid
        raise BtfError(f"BTF: type {tid}: a loop of qualifiers or typedefs")

    def _offsets_of(self, name: str) -> FrozenSet[int]:
        """The string-section offsets of *name* (deduplicated BTF has one):
        searched for by the first lookups, from an index made once after."""
        found = self._string_offsets.get(name)
        if found is not None:
            return found
        self._searches += 1
        index = self._string_index() if self._searches > _SEARCHES else None
        if index is not None:
            off = index.get(name.encode())
            found = frozenset((off,) if off else ())
        else:
            needle = b"\0" + name.encode() + b"\0"
            s, out, at = self.strings, [], self.strings.find(needle)
            while at >= 0:
                out.append(at + 1)
                at = s.find(needle, at + 1)
            found = frozenset(out)
        self._string_offsets[name] = found
        return found

    def _string_index(self) -> Optional[Dict[bytes, int]]:
        """Each string's offset (made once, at C speed), unless some string is
        there twice (a blob not deduplicated: each is then searched)."""
        if self._strings_by_name is None:
            parts = self.strings.split(b"\0")
            index = dict(zip(parts, map(add, accumulate(map(len, parts), initial=0), count())))
            twice = len(parts) - len(index) - (parts.count(b"") - 1)
            self._strings_by_name = {} if twice else index
        return self._strings_by_name or None

    def find(self, name: str, kinds: Sequence[int]) -> List[int]:
        """The ids of the types called *name* whose kind is in *kinds*, those of
        the first kind listed first, each in id order."""
        key = (name, tuple(kinds))
        ids = self._by_name.get(key)
        if ids is None:
            names = self._name_words()
            found = []
            for off in self._offsets_of(name):
                # Every type id whose name is *off*: aligned hits in the
                # array of name offsets (at C speed).
                needle = array(_U32, (off,)).tobytes()
                at = names.find(needle)
                while at >= 0:
                    if not at % 4:
                        found.append(at // 4)
                    at = names.find(needle, at + 1)
            rank = {k: i for i, k in enumerate(kinds)}
            ids = sorted((t for t in found if self.kind(t) in rank),
                         key=lambda t: (rank[self.kind(t)], t))
            self._by_name[key] = ids
        return ids

    def _name_words(self) -> bytes:
        """Each type's name offset (index = type id), as native 32-bit words,
        made at the first lookup by name."""
        if not self._names:
            offsets = self._offsets
            names = (0,) + (tuple(self._w[o] for o in offsets[1:]) if len(offsets) < 3
                            else itemgetter(*offsets[1:])(self._w))
            self._names = array(_U32, names).tobytes()
        return self._names

    def type_id(self, type_name: str) -> int:
        """The type a C type name names, as drgn's ``prog.type()`` parses it:
        ``struct zone``, ``nodemask_t``, ``unsigned long`` (no ``*`` or ``[]``:
        BTF need not hold such a type; :meth:`sizeof` takes them).

        :raises LookupError: no such type; ``ValueError``: declarators
        """
        tid, decl = self._parse_type(type_name)
        if decl:
            raise ValueError(f"'{type_name}': a pointer or array type")
        return tid

    def _parse_type(self, type_name: str) -> Tuple[int, List[Tuple[str, int]]]:
        """(base type, declarators outermost last) of a type name; declarators
        are ``("*", 0)`` and ``("[]", length)``."""
        text = type_name.strip()
        decl: List[Tuple[str, int]] = []
        while True:
            m = re.search(r"(\*|\[\s*(\d*)\s*\])\s*$", text)
            if m is None:
                break
            decl.insert(0, ("*", 0) if m.group(1) == "*" else ("[]", int(m.group(2) or -1)))
            text = text[:m.start()].strip()
        words = [w for w in text.split() if w not in ("const", "volatile", "restrict")]
        if len(words) == 2 and words[0] in ("struct", "union", "enum"):
            kinds = {"struct": (KIND_STRUCT, KIND_FWD), "union": (KIND_UNION, KIND_FWD),
                     "enum": (KIND_ENUM, KIND_ENUM64, KIND_FWD)}[words[0]]
            ids = [t for t in self.find(words[1], kinds)
                   if self.kind(t) != KIND_FWD
                   or bool(self._w[self._offsets[t] + 1] >> 31) == (words[0] == "union")]
            if not ids:
                raise LookupError(f"could not find '{type_name}'")
            return ids[0], decl
        if words == ["void"]:
            return 0, decl
        canonical = _canonical(" ".join(words))
        if canonical is not None:
            base = self._base_type(canonical)
            if base is None:  # drgn makes one of the platform's size: sizeof() only
                raise _Primitive(_DEFAULT_SIZES[canonical], decl)
            return base, decl
        if len(words) == 1:
            ids = self.find(words[0], (KIND_TYPEDEF,))
            if ids:
                return ids[0], decl
        raise LookupError(f"could not find '{type_name}'")

    def _ints(self) -> List[int]:
        """The ids of the INT and FLOAT types."""
        key = ("", (KIND_INT, KIND_FLOAT))
        ids = self._by_name.get(key)
        if ids is None:
            ids = self._by_name[key] = self._of_kind(*key[1])
        return ids

    def _base_type(self, canonical: str) -> Optional[int]:
        """The INT or FLOAT type drgn spells *canonical*, or None."""
        for t in self._ints():
            if self._int_name(t) == canonical:
                return t
        return None

    def _int_name(self, tid: int) -> str:
        """drgn's name of an INT or FLOAT type: C's base types canonical."""
        name = self.name(tid)
        canonical = _canonical(name)
        if canonical is None or self.kind(tid) != KIND_INT:
            return name
        if canonical == "char" or canonical == "_Bool" \
                or canonical.startswith("unsigned") != self._int_signed(tid):
            return canonical
        return name

    def _int_signed(self, tid: int) -> bool:
        """Whether INT *tid* is signed: its encoding's BTF_INT_SIGNED, except for
        the char types of a blob that does not encode theirs (pahole before
        v1.2x left every char unsigned): ``signed char`` by its name, ``char``
        by the architecture's ABI."""
        if self._w[self._offsets[tid] + 3] >> 24 & _INT_SIGNED:
            return True
        if self._ref(tid) != 1:
            return False
        if self._char_signed is None:
            self._char_signed = (self._detect_char_signed(self._char_arg),)
        if self._char_signed[0] is None:
            return False
        name = self.name(tid)
        return name == "signed char" or (name == "char" and self._char_signed[0])

    def _detect_char_signed(self, char_signed: Optional[bool]) -> Optional[bool]:
        """None where the blob encodes the char types' signedness (a 1-byte INT
        is signed); otherwise *char_signed*, or the x86 ABI's (signed) if
        ``struct pt_regs`` has ``orig_ax``, unsigned on the others (arm64)."""
        if any(self._ref(t) == 1 and self.kind(t) == KIND_INT
               and self._w[self._offsets[t] + 3] >> 24 & _INT_SIGNED for t in self._ints()):
            return None
        if char_signed is not None:
            return char_signed
        try:
            self.member("struct pt_regs", "orig_ax")
            return True
        except (LookupError, TypeError, ValueError):
            return False

    @property
    def pointer_size(self) -> int:
        """``sizeof(void *)``: that of ``long`` (8 if the blob has no ``long``)."""
        if self._pointer_size is None:
            t = self._base_type("long") or self._base_type("unsigned long")
            self._pointer_size = self._size(t) if t else 8
        return self._pointer_size

    def _array(self, tid: int) -> Tuple[int, int]:
        """(element type, nelems) of an ARRAY."""
        p = self._offsets[tid] + 3
        return self._check_id(self._w[p]), self._w[p + 2]

    def _size(self, tid: int, top_level: bool = False) -> int:
        """``sizeof`` of type *tid* (drgn's, including its errors).

        :raises TypeError: void, a function, an incomplete type"""
        tid = self._strip(tid)
        kind = self.kind(tid)
        if kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
                    KIND_DATASEC):
            return self._ref(tid)
        if kind == KIND_PTR:
            return self.pointer_size
        if kind == KIND_ARRAY:
            elem, n = self._array(tid)
            if not n and top_level:
                raise TypeError("cannot get size of incomplete array type")
            return n * self._size(elem) if n else 0
        what = {0: "void", KIND_FWD: "incomplete", KIND_FUNC: "function",
                KIND_FUNC_PROTO: "function"}.get(kind, f"kind {kind}")
        raise TypeError(f"cannot get size of {what} type")

    def sizeof(self, type_name: str) -> int:
        """``sizeof(type_name)``, typedefs seen through, as drgn's ``sizeof()``.

        :raises LookupError: no such type; ``TypeError``: it has no size
        """
        size: Optional[int] = None
        try:
            tid, decl = self._parse_type(type_name)
        except _Primitive as e:
            tid, decl, size = -1, e.decl, e.size
        for op, n in decl:  # innermost first: "int *[4]" is [("*", 0), ("[]", 4)]
            if op == "*":
                size = self.pointer_size
            else:
                if n < 0:
                    raise TypeError(f"cannot get size of incomplete array type '{type_name}'")
                size = n * (self._size(tid) if size is None else size)
        return self._size(tid, True) if size is None else size

    # Members -----------------------------------------------------------------

    def _compound(self, tid: int) -> List[Tuple[int, int, int]]:
        """(name offset, type, bit offset) of each member of a STRUCT or UNION."""
        pos = self._offsets[tid]
        info = self._w[pos + 1]
        kflag = info >> 31
        w = self._w
        out = []
        for p in range(pos + 3, pos + 3 + 3 * (info & 0xFFFFFF), 3):
            bit = w[p + 2]
            if kflag:
                bit &= 0xFFFFFF
            else:
                # Old-style bit fields: the INT's own BTF_INT_OFFSET adds.
                t = self._check_id(w[p + 1])
                if t and self.kind(t) == KIND_INT:
                    bit += w[self._offsets[t] + 3] >> 16 & 0xFF
            out.append((w[p], self._check_id(w[p + 1]), bit))
        return out

    def _find_member(self, tid: int, name: bytes) -> Optional[Tuple[int, int, bool]]:
        """(bit offset, type, may be an incomplete array) of the member of
        STRUCT/UNION *tid* whose name is *name* (NUL-terminated; an anonymous
        member's members too)."""
        members = self._compound(tid)
        flexible = self.kind(tid) == KIND_STRUCT and len(members) > 1
        starts = self.strings.startswith
        for i, (off, t, bit) in enumerate(members):
            if off and starts(name, off):
                return bit, self._check_id(t), flexible and i == len(members) - 1
            if off == 0 and t:
                inner = self._strip(self._check_id(t))
                if self.kind(inner) in (KIND_STRUCT, KIND_UNION):
                    found = self._find_member(inner, name)
                    if found is not None:
                        return bit + found[0], found[1], found[2]
        return None

    def member(self, type_name: str, designator: str) -> Member:
        """Offset and type of *designator* (``rss_stat[1].count``) in ``type_name``.

        :raises LookupError: no such type or member; ``TypeError``: a member of a
            non-compound or a subscript of a non-array; ``ValueError``: a bit
            field not on a byte boundary
        """
        key = (type_name, designator)
        found = self._members.get(key)
        if found is not None:
            return found
        t, decl = self._parse_type(type_name)
        if decl:
            raise TypeError(f"'{type_name}' is not a structure or union")
        bits = 0
        flexible = False
        for part in _PART.findall(designator):
            t = self._strip(t)
            kind = self.kind(t)
            if part.startswith("["):
                if kind != KIND_ARRAY:
                    raise TypeError(f"'{self.type_name(t)}' is not an array")
                t, _ = self._array(t)
                bits += int(part[1:-1]) * self._size(t) * 8
                flexible = False
            else:
                if kind not in (KIND_STRUCT, KIND_UNION):
                    raise TypeError(f"'{self.type_name(t)}' is not a structure or union")
                m = self._find_member(t, part.encode() + b"\0")
                if m is None:
                    raise LookupError(f"'{self.type_name(t)}' has no member '{part}'")
                bits += m[0]
                t, flexible = m[1], m[2]
        if bits % 8:
            raise ValueError(f"{type_name}.{designator} is not byte-aligned")
        found = self._members[key] = self._member(bits // 8, t, flexible)
        return found

    def _member(self, offset: int, t: int, flexible: bool) -> Member:
        """The :class:`Member` drgn's port makes of type *t* at *offset*."""
        t = self._strip(t)
        kind = self.kind(t)
        signed = False
        length: Optional[int] = None
        members: Tuple[str, ...] = ()
        if kind == KIND_INT:
            encoding = self._w[self._offsets[t] + 3] >> 24
            name = "bool" if encoding & _INT_BOOL else "int"
            signed = self._int_signed(t)
        elif kind in (KIND_ENUM, KIND_ENUM64):
            name = "enum"
            signed = self._enum_signed(t)
        elif kind == KIND_PTR:
            name = "pointer"
        elif kind == KIND_ARRAY:
            name = "array"
            length = self._array(t)[1]
            if not length and flexible:
                length = None  # a flexible array member (drgn: incomplete)
        elif kind in (KIND_STRUCT, KIND_UNION):
            name = "struct" if kind == KIND_STRUCT else "union"
            members = tuple(self._string(n) for n, _, _ in self._compound(t))
        else:
            name = "other"
        try:
            size = self._size(t)
        except TypeError:
            size = 0
        return Member(offset, size, name, signed, length, members)

    # Enumerators, functions, variables -------------------------------------------

    def _enum_signed(self, tid: int) -> bool:
        """Whether an ENUM/ENUM64's values are signed: its kind_flag (pahole
        v1.24 on). Older blobs (no enum has the flag) do not record it; then,
        as GCC's choice of the enum's type would most often go: an 8-byte enum
        unsigned (the kernel's are masks), a 4-byte one signed if a value is a
        small negative number (-1, -EINVAL) rather than a high bit."""
        if self.kind_flag(tid):
            return True
        if self._enumerators is None:
            self._index_enumerators()
        if self._signed_flags or self.kind(tid) != KIND_ENUM or self._ref(tid) == 8:
            return False
        pos = self._offsets[tid]
        vlen = self._w[pos + 1] & 0xFFFFFF
        return any(self._w[p] >= 0xFFFF0000 for p in range(pos + 4, pos + 3 + 2 * vlen, 2))

    def _index_enumerators(self) -> None:
        """Enumerator name offset -> word position; the first definition wins."""
        index: Dict[int, int] = {}
        w = self._w
        self._signed_flags = False
        for tid in reversed(self._of_kind(KIND_ENUM, KIND_ENUM64)):
            pos = self._offsets[tid]
            info = w[pos + 1]
            step = 2 if info >> 24 & 0x7F == KIND_ENUM else 3
            if info >> 31:
                self._signed_flags = True
            for p in range(pos + 3 + step * ((info & 0xFFFFFF) - 1), pos + 2, -step):
                index[w[p]] = p
        self._enumerators = index

    def constant(self, name: str) -> Optional[int]:
        """The value of enumerator *name* (``MM_ANONPAGES``), or None; the
        first enum (in type id order) that defines it decides."""
        if self._enumerators is None:
            self._index_enumerators()
        assert self._enumerators is not None
        found = [p for p in map(self._enumerators.get, self._offsets_of(name)) if p is not None]
        if not found:
            return None
        p = min(found)
        return self._enumerator_value(bisect_right(self._offsets, p) - 1, p)

    def _enumerator_value(self, tid: int, p: int) -> int:
        """The value of the enumerator at word *p* of ENUM/ENUM64 *tid*."""
        w = self._w
        if self.kind(tid) == KIND_ENUM64:
            raw, width = w[p + 1] | w[p + 2] << 32, 64
        else:
            raw, width = w[p + 1], 32
        if self._enum_signed(tid):
            return raw - (1 << width) if raw >> (width - 1) else raw
        if width == 32 and self._ref(tid) == 8 and raw >> 31:
            return raw | 0xFFFFFFFF << 32  # before ENUM64: the low 32 bits, sign-extended
        return raw

    def enumerators(self, tid: int) -> List[Tuple[str, int]]:
        """``(name, value)`` of each enumerator of ENUM/ENUM64 *tid*."""
        pos = self._offsets[tid]
        step = 3 if self.kind(tid) == KIND_ENUM64 else 2
        return [(self._string(self._w[p]), self._enumerator_value(tid, p))
                for p in range(pos + 3, pos + 3 + step * (self._w[pos + 1] & 0xFFFFFF), step)]

    def members(self, tid: int) -> List[Tuple[str, int, int]]:
        """``(name, type id, bit offset)`` of each member of STRUCT/UNION *tid*
        ("" for an anonymous one)."""
        return [(self._string(n), t, bit) for n, t, bit in self._compound(tid)]

    def bit_fields(self, type_name: str) -> Dict[str, Tuple[int, int]]:
        """``{member: (bit offset, bit size)}`` of each named member of struct
        *type_name* (``struct orc_entry``); a member that is not a bit field has
        its type's size in bits.

        :raises LookupError: no such type
        """
        tid = self._strip(self.type_id(type_name))
        pos = self._offsets[tid]
        kflag = self._w[pos + 1] >> 31
        out: Dict[str, Tuple[int, int]] = {}
        for i, (name, t, bit) in enumerate(self._compound(tid)):
            size = self._w[pos + 3 + 3 * i + 2] >> 24 if kflag else 0
            if not size:
                inner = self._strip(t)
                if not kflag and self.kind(inner) == KIND_INT:
                    size = self._w[self._offsets[inner] + 3] & 0xFF  # BTF_INT_BITS
                else:
                    size = self._size(t) * 8
            if name:
                out[self._string(name)] = (bit, size)
        return out

    def function(self, name: str) -> Optional[int]:
        """The FUNC type id of function *name*, or None."""
        ids = self.find(name, (KIND_FUNC,))
        return ids[0] if ids else None

    def _proto(self, function: str) -> Optional[int]:
        """The FUNC_PROTO type id of *function*, or None."""
        tid = self.function(function)
        if tid is None:
            return None
        proto = self._check_id(self._ref(tid))
        return proto if self.kind(proto) == KIND_FUNC_PROTO else None

    def return_type(self, function: str) -> Optional[str]:
        """The C return type of *function* as drgn spells it (``long``,
        ``unsigned long``, ``bool``, ``struct page *``), or None."""
        proto = self._proto(function)
        return None if proto is None else self.type_name(self._check_id(self._ref(proto)))

    def parameters(self, function: str) -> Optional[List[str]]:
        """The parameter names of *function* ("" for an unnamed one), or None."""
        proto = self._proto(function)
        if proto is None:
            return None
        pos = self._offsets[proto]
        return [self._string(self._w[p])
                for p in range(pos + 3, pos + 3 + 2 * (self._w[pos + 1] & 0xFFFF), 2)]

    def variable(self, name: str) -> Optional[Tuple[int, str]]:
        """``(size, type name)`` of variable *name* (a VAR: per-CPU variables,
        every global where pahole encodes them), or None. The size is 0 for an
        array without bounds, as drgn's."""
        if not self._vars_counted:
            self._vars_counted = True
            # Few VARs (per-CPU variables only, without pahole's global_var):
            # their names decoded once, rather than each name searched for.
            ids = self._of_kind(KIND_VAR)
            self._variables = None if len(ids) > _FEW_VARS else dict(
                zip(map(self.name, reversed(ids)), reversed(ids)))
        if self._variables is not None:
            var = self._variables.get(name)
        else:
            var = next(iter(self.find(name, (KIND_VAR,))), None)
        if var is None:
            return None
        t = self._check_id(self._ref(var))
        try:
            size = self._size(t, True)
        except TypeError:
            size = 0
        return size, self.type_name(t)

    def datasec(self, section: str) -> Dict[str, Tuple[int, int]]:
        """``{variable: (offset, size)}`` of the VARs in DATASEC *section*
        (``.data..percpu``: each per-CPU variable's offset in it); empty if none."""
        out: Dict[str, Tuple[int, int]] = {}
        for tid in self.find(section, (KIND_DATASEC,)):
            pos = self._offsets[tid]
            for p in range(pos + 3, pos + 3 + 3 * (self._w[pos + 1] & 0xFFFFFF), 3):
                var, offset, size = self._w[p], self._w[p + 1], self._w[p + 2]
                if self.kind(self._check_id(var)) == KIND_VAR:
                    out.setdefault(self.name(var), (offset, size))
        return out

    # Type names, as drgn's C formatter writes them ----------------------------------

    def type_name(self, tid: int) -> str:
        """The C name of type *tid* as drgn's ``Type.type_name()`` gives it."""
        if self.kind(self._strip(tid, False)) == KIND_FUNC_PROTO:
            return self._declare(tid, "")
        return self._declare(tid, None)

    def _declare(self, tid: int, name: Optional[str]) -> str:
        """drgn's ``c_declare_variable()``: *tid* declaring *name* (None: none)."""
        quals = set()
        for _ in range(64):
            kind = self.kind(tid)
            if kind not in _SEE_THROUGH:
                break
            if kind in _QUALIFIERS:
                quals.add(_QUALIFIERS[kind])
            tid = self._check_id(self._ref(tid))
        q = " ".join(x for x in ("const", "volatile", "restrict") if x in quals)
        prefix = q + " " if q else ""
        suffix = "" if name is None else " " + name
        if kind == 0:
            return prefix + "void" + suffix
        if kind in (KIND_INT, KIND_FLOAT):
            return prefix + self._int_name(tid) + suffix
        if kind == KIND_TYPEDEF:
            return prefix + self.name(tid) + suffix
        if kind in _TAGGED or kind == KIND_FWD:
            keyword = _TAGGED.get(kind) or ("union" if self.kind_flag(tid) else "struct")
            tag = self.name(tid)
            return prefix + keyword + (" " + tag if tag else " <anonymous>") + suffix
        if kind == KIND_PTR:
            ref = self._check_id(self._ref(tid))
            paren = self.kind(self._strip(ref, False)) in (KIND_ARRAY, KIND_FUNC_PROTO)
            inner = "*" + (" " + q + ("" if name is None else " ") if q else "") + (name or "")
            return self._declare(ref, f"({inner})" if paren else inner)
        if kind == KIND_ARRAY:
            elem, n = self._array(tid)
            return self._declare(elem, f"{name or ''}[{n if n else ''}]")
        if kind == KIND_FUNC_PROTO:
            params = []
            pos = self._offsets[tid]
            vlen = self._w[pos + 1] & 0xFFFFFF
            variadic = False
            for p in range(pos + 3, pos + 3 + 2 * vlen, 2):
                pname, ptype = self._w[p], self._w[p + 1]
                if not pname and not ptype:
                    variadic = True
                    continue
                params.append(self._declare(self._check_id(ptype),
                                            self._string(pname) or None))
            if variadic and params:
                params.append("...")
            return self._declare(self._check_id(self._ref(tid)), name or "") + \
                "(" + (", ".join(params) or ("" if variadic else "void")) + ")"
        return prefix + self.name(tid) + suffix


def find_btf(data: Buffer, start: int = 0) -> Optional[Tuple[int, int]]:
    """``(offset, length)`` of the first valid vmlinux BTF blob in *data* at or
    after *start* (memory of a dump, a kernel image): magic and version, a
    header whose sections lie inside *data*, a string section that starts and
    ends with NUL, a type section that parses to its end with every referenced
    type id inside it. Zeroed or damaged copies are skipped.
    """
    hits = []
    for magic in (b"\x9f\xeb\x01", b"\xeb\x9f\x01"):
        at = data.find(magic, start)
        hits.append(at if at >= 0 else len(data))
    while True:
        at = min(hits)
        if at >= len(data):
            return None
        length = _blob_length(data, at)
        if length is not None:
            return at, length
        i = hits.index(at)
        nxt = data.find((b"\x9f\xeb\x01", b"\xeb\x9f\x01")[i], at + 1)
        hits[i] = nxt if nxt >= 0 else len(data)


def _blob_length(data: Buffer, at: int) -> Optional[int]:
    """The length of the valid vmlinux BTF blob at *at*, or None."""
    head = bytes(data[at:at + 32])
    if len(head) < 24:
        return None
    e = "<" if head[0] == 0x9F else ">"
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIIII", head, 4)
    if not 24 <= hdr_len <= 256 or hdr_len % 4 or not type_len or str_len < 2:
        return None
    ends = [type_off + type_len, str_off + str_len]
    if hdr_len >= 32:
        layout_off, layout_len = struct.unpack_from(e + "II", head, 24)
        ends.append(layout_off + layout_len)
    size = hdr_len + max(ends)
    if at + size > len(data) or type_off % 4:
        return None
    s0, s1 = at + hdr_len + str_off, at + hdr_len + str_off + str_len
    if data[s0] != 0 or data[s1 - 1] != 0:
        return None
    try:
        btf = Btf(bytes(data[at:at + size]))
        btf.check()
    except BtfError:
        return None
    return size

