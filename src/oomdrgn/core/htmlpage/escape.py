"""Text from the kernel made safe for HTML: comm names hold ``<``, ``&``, quotes
and bytes that are not UTF-8 (read with ``surrogateescape``)."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["text", "json_blob"]


def text(value: Any) -> str:
    """*value* as HTML text (also safe inside a quoted attribute); bytes that are
    not UTF-8 shown as ``\\xNN``."""
    s = str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return html.escape(s, quote=True)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(_plain(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _plain(value)


def json_blob(value: Any) -> str:
    """*value* as JSON that can sit inside ``<script type="application/json">``:
    no ``<``, ``>`` or ``&`` left to end the element early."""
    out = json.dumps(_clean(value), separators=(",", ":"), sort_keys=True)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
