"""GDB backend: :class:`~oomdrgn.core.kernel.KernelReader` over
:class:`~oomdrgn.gdb.port.GdbPort`.

Make one reader per command: the guest is stopped while it runs, so its
reads are served from blocks read once (lifetime: the command); the
decisions are kept per symbol file (dropped on ``new_objfile``).
"""

from __future__ import annotations

from typing import Optional

import gdb

from ..core.kernel import KernelReader
from ..core.kernelinfo import KernelInfo
from .port import GdbPort, cache

__all__ = ["GdbReader"]


class GdbReader(KernelReader):
    """:class:`oomdrgn.core.oom.Reader` over the kernel GDB is attached to."""

    def __init__(self, counter_rule: Optional[str] = None) -> None:
        port = GdbPort()
        try:
            port.member("struct task_struct", "tasks")
        except LookupError as e:
            raise gdb.GdbError(f"no kernel debug info ({e}): load the debug vmlinux, "
                               "e.g. lx-oom-kaslr /path/to/vmlinux") from None
        key = ("info", counter_rule)
        info = cache.get(key)
        super().__init__(port, counter_rule, info if isinstance(info, KernelInfo) else None)
        cache[key] = self.info
