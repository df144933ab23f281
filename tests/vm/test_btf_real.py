"""The kernel's own BTF answers the target port's type questions as DWARF does.

On each real kernel, :class:`oomdrgn.core.btf.Btf` over the vmlinux's ``.BTF``
is set beside drgn over the same vmlinux's DWARF (``DrgnPort``, the port the
core runs on today):

- every ``member``/``sizeof``/``constant``/``return_type`` query the core makes
  while it rebuilds the OOM report of a real dump (recorded by wrapping
  ``DrgnPort``), plus ``sizeof`` of every struct it asks about: the same answer,
  exceptions included;
- every named struct, union and typedef of the kernel, each member, every
  enumerator, variable and (a sample of the) functions: the same answer, but
  where BTF cannot hold what DWARF says, each such case proven to be one
  (several definitions of one name, types declared inside functions that drgn
  does not index, pahole's flattened multi-dimensional arrays, ``[0]`` arrays,
  old BTF without enum signedness, assembly whose DWARF drgn refuses);
- :func:`find_btf` finds the blob in the dump's memory, byte for byte the
  vmlinux's ``.BTF``, past the invalid copies a dump holds.
"""

import mmap
import time
from collections import Counter
from typing import Callable, List, Tuple

import drgn
import pytest
from drgn import TypeKind

from oomdrgn.core import btf as B
from oomdrgn.core.btf import Btf, find_btf
from oomdrgn.core.elffile import read_section
from oomdrgn.core.kimage import gnu_build_ids
from oomdrgn.core.memcg_meminfo import mem_cgroup_print_oom_meminfo
from oomdrgn.core.oom import dump_tasks, format_dump_tasks
from oomdrgn.core.oom_report import oom_control, oom_report
from oomdrgn.drgn.backend import reader_for
from oomdrgn.drgn.bootimage import kernel_of
from oomdrgn.drgn.port import DrgnPort
from oomdrgn.drgn.program import open_program

pytestmark = pytest.mark.vm

QUERIES = ("member", "sizeof", "constant", "return_type")


def _answer(fn: Callable, *args) -> Tuple:
    """``("ok", value)``, or the exception's type name."""
    try:
        return ("ok", fn(*args))
    except Exception as e:  # noqa: BLE001 - the exception is the answer
        return (type(e).__name__,)


@pytest.fixture(scope="module")
def blob(kernel) -> bytes:
    data = read_section(str(kernel.vmlinux), ".BTF")
    assert data, f"{kernel.vmlinux} has no .BTF"
    return data


@pytest.fixture(scope="module")
def dwarf(kernel) -> DrgnPort:
    """The vmlinux's DWARF alone (no dump: no Linux-kernel objects such as
    ``PAGE_SHIFT``), through drgn's port."""
    arch = drgn.Architecture.AARCH64 if kernel.arch == "arm64" else drgn.Architecture.X86_64
    prog = drgn.Program(drgn.Platform(arch, drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    prog.set_enabled_debug_info_finders([])
    module = prog.extra_module("vmlinux", create=True)
    module.try_file(str(kernel.vmlinux), force=True)
    assert module.debug_file_path, "drgn did not take the vmlinux's DWARF"
    return DrgnPort(prog)


def test_kernel_image_file(kernel, blob):
    """The build's vmlinuz (x86 bzImage: lz4 on 5.10 and 6.1, zstd after; arm64:
    an uncompressed Image) holds the debug vmlinux's build ID and the same BTF."""
    image, what = kernel_of(str(kernel.vmlinuz))
    assert what == ("arm64 Image" if kernel.arch == "arm64" else
                    f"x86 bzImage, {'lz4' if kernel.name in ('5.10', '6.1') else 'zstd'}")
    want = read_section(str(kernel.vmlinux), ".notes")
    assert any(want.find(bytes.fromhex(i)) > 0 for i in gnu_build_ids(image))
    hit = find_btf(image)
    assert hit is not None and image[hit[0]:hit[0] + hit[1]] == blob


def test_parse_time(kernel, blob, record_property):
    """Parsing plus the first lookup by name (the name index) of a real blob."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        btf = Btf(blob)
        btf.member("struct task_struct", "signal")
        times.append(time.perf_counter() - start)
    record_property("btf_parse_ms", round(min(times) * 1000, 1))
    print(f"\n{kernel.name}: {len(blob)} bytes, {btf.types} types, "
          f"parsed and indexed in {min(times) * 1000:.1f} ms")
    assert min(times) < 0.5


def _run_the_core(kernel, art, monkeypatch) -> Tuple[DrgnPort, List[Tuple[str, tuple]]]:
    """The port's queries, in order, while the core rebuilds the global OOM
    report of *art*'s dump and a memcg report of the root memcg."""
    calls: List[Tuple[str, tuple]] = []

    def recording(name: str):
        method = getattr(DrgnPort, name)

        def wrapper(self, *args):
            calls.append((name, args))
            return method(self, *args)
        return wrapper
    for name in QUERIES:
        monkeypatch.setattr(DrgnPort, name, recording(name))
    prog = open_program(core=str(art.vmcores["elf"]), vmlinux=[str(kernel.vmlinux)])
    reader = reader_for(prog)
    format_dump_tasks(reader, dump_tasks(reader))
    report = oom_report(reader, oom_control(reader))
    assert [s.name for s in report.sections][-1] == "kill"
    mem_cgroup_print_oom_meminfo(reader, "/")
    oom_report(reader, oom_control(reader, memcg="/"))
    monkeypatch.undo()
    port = reader.target
    assert isinstance(port, DrgnPort)
    return port, calls


def test_the_cores_queries_answer_as_dwarf(kernel, killed, blob, dwarf, monkeypatch):
    port, calls = _run_the_core(kernel, killed, monkeypatch)
    btf = Btf(blob)
    queries = list(dict.fromkeys(calls))
    # sizeof of every struct the core asks about, and oom_badness()'s type.
    types = {args[0] for name, args in queries if name in ("member", "sizeof")}
    queries += [("sizeof", (t,)) for t in sorted(types) if ("sizeof", (t,)) not in queries]
    if ("return_type", ("oom_badness",)) not in queries:
        queries.append(("return_type", ("oom_badness",)))
    kinds = Counter(name for name, _ in queries)
    assert kinds["member"] > 50 and kinds["constant"] > 20 and kinds["return_type"]
    wrong, not_in_dwarf = [], []
    for name, args in queries:
        want = _answer(getattr(port, name), *args)
        got = _answer(getattr(btf, name), *args)
        if got == want:
            continue
        # drgn answers a few names from the kernel's memory (PAGE_SHIFT), not from
        # the DWARF's enumerators: BTF has no such thing to hold.
        if (name == "constant" and got == ("ok", None)
                and _answer(dwarf.constant, *args) == ("ok", None)):
            not_in_dwarf.append(args[0])
            continue
        wrong.append((name, args, want, got))
    print(f"\n{kernel.name}: {len(queries)} queries compared ({dict(kinds)}); "
          f"constants drgn takes from memory, not DWARF: {not_in_dwarf}")
    assert wrong == []
    assert btf.return_type("oom_badness") == port.return_type("oom_badness") is not None
    assert set(not_in_dwarf) <= {"PAGE_SHIFT", "PAGE_SIZE", "PAGE_MASK", "THREAD_SIZE",
                                 "PAGE_OFFSET", "UTS_RELEASE"}


def test_find_btf_in_the_dumps_memory(kernel, killed, blob):
    """The ELF dump's PT_LOADs hold RAM, the kernel's .BTF in it: the first
    valid blob is the vmlinux's, byte for byte; every other place that carries
    its header is a copy find_btf() refuses (or the same bytes again)."""
    with open(killed.vmcores["elf"], "rb") as f, \
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as memory:
        found = find_btf(memory)
        assert found is not None
        at, length = found
        assert length == len(blob) and memory[at:at + length] == blob
        copies = {}
        other = memory.find(blob[:24])
        while other >= 0:
            if other != at:
                same = memory[other:other + length] == blob
                valid = find_btf(memory[other:other + length]) == (0, length)
                assert valid == same, hex(other)
                copies[hex(other)] = "the same bytes" if same else "refused"
            other = memory.find(blob[:24], other + 1)
    print(f"\n{kernel.name}: BTF at file offset {at:#x}; other copies: {copies}")


# Every type, member, enumerator, variable: BTF beside DWARF ----------------------


def _dims(t: drgn.Type) -> List[int]:
    """The lengths of a (multi-dimensional) array type, outermost first."""
    out = []
    t = t.unaliased()
    while t.kind == TypeKind.ARRAY:
        out.append(t.length or 0)
        t = t.type.unaliased()
    return out


def _dwarf_member_type(prog: drgn.Program, type_name: str, member: str) -> drgn.Type:
    return prog.type(type_name).unaliased().member(member).type


def _why(btf: Btf, dwarf: DrgnPort, query: str, args: tuple, want: tuple, got: tuple,
         enums_by_name: Counter, old_enums: bool) -> str:
    """Why BTF cannot answer as DWARF here (a proven reason), or "" if no reason."""
    prog = dwarf.prog
    if (query in ("member", "sizeof") and _answer(prog.type, args[0])[0] == "LookupError"
            and _answer(btf.type_id, args[0])[0] == "ok"):
        return "a type drgn does not index (declared inside a function)"
    if got[0] == "ok" and got[1] is not None:
        if want == ("ok", None):  # constant(), return_type(): drgn found nothing
            return "a name drgn does not find (declared inside a function)"
    if query in ("member", "sizeof"):
        words = args[0].split()
        kind = {"struct": B.KIND_STRUCT, "union": B.KIND_UNION}.get(words[0], B.KIND_TYPEDEF)
        if len(btf.find(words[-1], (kind,))) > 1:
            return "several definitions of the name"
    if query == "member" and want[0] == got[0] == "ok":
        w, g = want[1], got[1]
        if w.kind == g.kind == "array" and (w.offset, w.size) == (g.offset, g.size):
            dims = _dims(_dwarf_member_type(prog, args[0], args[1]))
            if len(dims) > 1 and g.length == _product(dims):
                return "a multi-dimensional array, flattened by pahole"
            if w.length == 0 and g.length is None and w.size == 0:
                return "a trailing [0] array (BTF: as a flexible [])"
    if query == "constant":
        if enums_by_name[args[0]] > 1:
            return "several definitions of the name"
        if old_enums and want[0] == got[0] == "ok" and (want[1] - got[1]) % (1 << 32) == 0:
            return "BTF before enum kind_flag/ENUM64: the same low 32 bits, sign or high bits lost"
    if query == "return_type":
        if len(btf.find(args[0], (B.KIND_FUNC,))) > 1 or len(prog.symbols(args[0])) > 1:
            return "several definitions of the name"
        if want[0] not in ("ok", "LookupError"):
            return f"drgn cannot read its DWARF ({want[0]}: assembly)"
        function = prog.function(args[0])
        if btf.parameters(args[0]) != [p.name or "" for p in function.type_.parameters]:
            # pahole keeps one FUNC a name; DWARF's pick is another function.
            return "several definitions of the name (other parameters)"
        if function.absent_ or function.address_ is None:
            # drgn's pick among same-named functions varies from run to run.
            return "drgn took an inline definition (no code); BTF has the one with code"
    return ""


def _product(dims: List[int]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


# The oldest pahole (5.10), the newest kernel and the arm64 16 KiB-page one: every
# type (80k-125k queries a kernel, ~40 s each); the core's own queries run on all seven.
@pytest.mark.kernels("5.10", "7.x", "6.12-arm64-16k")
def test_every_type_answers_as_dwarf(kernel, blob, dwarf):
    btf = Btf(blob)
    enums_by_name: Counter = Counter()
    old_enums = True
    queries: List[Tuple[str, tuple]] = []
    seen = set()
    functions = 0
    for tid in range(1, btf.types + 1):
        kind, name = btf.kind(tid), btf.name(tid)
        if kind in (B.KIND_ENUM, B.KIND_ENUM64):
            if btf.kind_flag(tid):
                old_enums = False
            for enumerator, _ in btf.enumerators(tid):
                enums_by_name[enumerator] += 1
                queries.append(("constant", (enumerator,)))
        if not name:
            continue
        if kind in (B.KIND_STRUCT, B.KIND_UNION, B.KIND_TYPEDEF):
            type_name = {B.KIND_STRUCT: "struct ", B.KIND_UNION: "union "}.get(kind, "") + name
            if type_name in seen:
                continue
            seen.add(type_name)
            queries.append(("sizeof", (type_name,)))
            if kind != B.KIND_TYPEDEF:
                queries += [("member", (type_name, m)) for m, _, _ in btf.members(tid) if m]
        elif kind == B.KIND_FUNC:
            functions += 1
            if functions % 7 == 0:  # a sample: drgn's lookups take ~0.3 ms each
                queries.append(("return_type", (name,)))
        elif kind == B.KIND_VAR:
            queries.append(("variable", (name,)))
    queries = list(dict.fromkeys(queries))
    compared: Counter = Counter()
    reasons: Counter = Counter()
    wrong = []
    for query, args in queries:
        if query == "variable":
            want = _dwarf_variable(dwarf.prog, args[0])
        else:
            want = _answer(getattr(dwarf, query), *args)
        got = _answer(getattr(btf, query), *args)
        compared[query] += 1
        if want == got:
            continue
        why = _why(btf, dwarf, query, args, want, got, enums_by_name, old_enums)
        if why:
            reasons[why] += 1
        else:
            wrong.append((query, args, want, got))
    print(f"\n{kernel.name}: compared {dict(compared)}; "
          f"differences BTF cannot avoid: {dict(reasons)}")
    assert wrong == []
    # The differences stay the exception.
    assert sum(reasons.values()) < sum(compared.values()) // 50


def _dwarf_variable(prog: drgn.Program, name: str) -> Tuple:
    try:
        obj = prog.variable(name)
    except LookupError:
        return ("ok", None)
    try:
        size = drgn.sizeof(obj.type_)
    except TypeError:
        size = 0
    return ("ok", (size, obj.type_.type_name()))
