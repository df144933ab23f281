"""What a real kernel printed of ``__show_mem()`` in a global OOM report (the
lines, the slab dump, the arguments), and oomdrgn's ``show_mem()`` over a dump
with those arguments: at the dump's own moment, or at ``__show_mem()``'s call."""

import re
from typing import Callable, List, Optional, Tuple

from oomdrgn.core import show_mem as sm
from oomdrgn.core.formats import parse_bitmap_list
from oomdrgn.core.gfp import gfp_zone
from oomdrgn.core.show_mem import show_mem

from .oracle import header_cpu

_REPORT_END = ("Tasks state", "Unreclaimable slab info:", "excessive unreclaimable slab",
               "Memory cgroup min protection", "[  pid  ]")


def own_lines(reader) -> List[str]:
    """What the OOM task itself printed: the records of the dump's printk ring
    whose caller is that task (saved with every record since v5.10), as console lines."""
    from oomdrgn.core.printk_ring import console_lines, printk_records
    pid = reader.task(reader.current_task()).pid
    return console_lines([r for r in printk_records(reader.target) if r.caller_tid == pid],
                         timestamps=False)


def report(lines: List[str], reader=None) -> Tuple[List[str], List[str], dict]:
    """The first global OOM report's ``__show_mem()`` lines, its slab dump
    lines (if any), and the arguments (``gfp_mask``, ``cpu``, ``nodemask``,
    ``mems_allowed``: None where not printed).

    If another CPU printed into the report (warn_alloc()'s ``page allocation
    failure`` and its own ``Mem-Info:``), the console holds no single
    ``__show_mem()`` output: the report is then read from the lines the OOM task
    itself printed (*reader*'s printk ring, by caller)."""
    first = next(i for i, line in enumerate(lines) if " invoked oom-killer: " in line)
    start = lines.index("Mem-Info:", first)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(_REPORT_END))
    if any(l == "Mem-Info:" or "page allocation failure" in l for l in lines[first:start]
           + lines[start + 1:end]):
        assert reader is not None, "another CPU printed into the report"
        return report(own_lines(reader))
    slab: List[str] = []
    if lines[end] == "Unreclaimable slab info:":
        stop = next(i for i in range(end, len(lines))
                    if lines[i].startswith(("Tasks state", "Memory cgroup min", "[  pid  ]")))
        slab = lines[end:stop]
    invoked = max(i for i in range(start) if " invoked oom-killer: " in lines[i])
    args: dict = {"gfp_mask": int(re.search(r"gfp_mask=(0x[0-9a-f]+)", lines[invoked])[1], 16)}
    args["cpu"] = next(header_cpu(l) for l in lines[invoked:start] if l.startswith("CPU: "))
    summary = next((l for l in lines[end:] if l.startswith("oom-kill:")), None)
    if summary is not None:
        mask = re.search(r",nodemask=([^,]*),", summary)[1]
        args["nodemask"] = None if mask == "(null)" else parse_bitmap_list(mask)
        args["mems_allowed"] = parse_bitmap_list(re.search(r",mems_allowed=([^,]*),", summary)[1])
    return lines[start:end], slab, args


def ours(reader, args: dict, mems_allowed: Optional[List[int]] = None) -> sm.ShowMem:
    return show_mem(reader, args.get("nodemask"),
                    args.get("mems_allowed", mems_allowed) or [0],
                    gfp_zone(reader.target, args["gfp_mask"]), args["cpu"])


def oom_task_mems_allowed(reader) -> List[int]:
    return reader.mems_allowed(reader.current_task())


def at_call(art, vmlinux, count: Callable[..., List[str]]) -> Optional[List[str]]:
    """``count(reader)`` over the dump taken where ``dump_header()`` called
    ``__show_mem()`` (``art.print_vmcores["elf"]``, a scenario's
    ``show_mem_moment``); None where none was taken."""
    from oomdrgn.drgn.backend import reader_for
    from oomdrgn.drgn.program import open_program
    if "elf" not in art.print_vmcores:
        return None
    prog = open_program(core=str(art.print_vmcores["elf"]), vmlinux=[str(vmlinux)])
    return count(reader_for(prog))
