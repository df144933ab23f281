"""An ELF vmcore read with no debugger: memory through the dump's own
segments, types and symbols from the build's layout cache (see
:mod:`oomdrgn.elfcore.port`)."""

from __future__ import annotations
