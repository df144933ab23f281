"""Values computed once per reader or target: layouts, format tables, the
kernel's ``.rodata`` do not change under it (standard library only)."""

from __future__ import annotations

import functools
import weakref
from typing import Callable, TypeVar

__all__ = ["once_per"]

K = TypeVar("K")
V = TypeVar("V")


def once_per(fn: Callable[[K], V]) -> Callable[[K], V]:
    """*fn(key)* computed once per *key*, held weakly (dropped with the key);
    a key that cannot be weakly referenced gets *fn(key)* every time."""
    cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    @functools.wraps(fn)
    def get(key: K) -> V:
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = fn(key)
            return value
        except TypeError:
            return fn(key)
    return get
