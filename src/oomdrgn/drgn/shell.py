"""``oomdrgn shell``: drgn's interactive console on any target oomdrgn opens
(raw RAM images and ELF dumps without VMCOREINFO included), ``%oom`` loaded."""

from __future__ import annotations

from typing import Any, Dict

from drgn import Program

__all__ = ["run_shell"]


def run_shell(prog: Program, quiet: bool = False) -> int:
    """Run the console until EOF; the exit status."""
    import drgn.cli

    from . import command  # noqa: F401  (registers %oom)

    def banner(text: str) -> str:
        return text + "\n%oom is loaded: %oom tasks, %oom victim, %oom oom-report, ..."

    def names(env: Dict[str, Any]) -> Dict[str, Any]:
        return env

    drgn.cli.run_interactive(prog, banner_func=banner, globals_func=names, quiet=quiet)
    return 0
