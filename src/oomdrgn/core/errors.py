"""User-facing errors and the exit status of each class (standard library only)."""

from __future__ import annotations

__all__ = ["OomdrgnError", "EXIT_USAGE", "EXIT_TARGET", "EXIT_DEBUGINFO",
           "EXIT_PERMISSION", "EXIT_QUERY", "EXIT_PARTIAL", "EXIT_INTERNAL",
           "ReadError", "TargetError"]

EXIT_INTERNAL = 1    # a bug in oomdrgn (run with --debug for the traceback)
EXIT_USAGE = 2       # bad command line (argparse's own status)
EXIT_TARGET = 3      # the vmcore / live kernel / QEMU guest cannot be opened
EXIT_DEBUGINFO = 4   # no or mismatched vmlinux debug info
EXIT_PERMISSION = 5  # not root for -k, or a file without permission
EXIT_QUERY = 6       # the question has no answer (unknown PID, ...)
EXIT_PARTIAL = 7     # output printed, but some rows were unreadable


class OomdrgnError(Exception):
    """An error to show the user as one line, with an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ReadError(Exception):
    """A backend could not read one object (the rest can still be read)."""


class TargetError(Exception):
    """The question cannot be answered for this target (e.g. unknown PID)."""
