"""Plain record classes, as :mod:`dataclasses` makes them, at a tenth of the
cost: importing ``dataclasses`` (and the ``inspect``, ``ast`` and ``dis`` it
imports) and processing two dozen classes took ~15 ms of a ~150 ms run.

``@record`` writes ``__init__`` (one ``exec``, at the first record made: a
run makes few of the classes it imports), ``__repr__``, ``__eq__`` and,
for ``frozen=True``, ``__hash__`` and a ``__setattr__`` that refuses, from the
class's annotated fields in order; ``slots=True`` makes a slotted class. A
default is a value or ``field(default_factory=...)``. :func:`replace`,
:func:`asdict` and :func:`fields` are dataclasses' (they take dataclasses too).
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, TypeVar

__all__ = ["record", "field", "replace", "asdict", "fields", "FrozenError"]

T = TypeVar("T")
_FIELDS = "__record_fields__"
_MISSING = object()  # a parameter not given

if TYPE_CHECKING:  # mypy reads @record as it reads @dataclass (PEP 681)
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: Any) -> Callable[[T], T]:
        return lambda f: f


class FrozenError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made anew for each record, by *default_factory*."""
    return _Factory(default_factory)  # type: ignore[return-value]


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _methods(cls: type, names: Tuple[str, ...], frozen: bool) -> Dict[str, Any]:
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    env: Dict[str, Any] = {"_set": object.__setattr__}
    params, body = [], []
    defaulted = False
    for n in names:
        value = defaults.get(n, _MISSING)
        if value is _MISSING:
            if defaulted:
                raise TypeError(f"{cls.__qualname__}.{n}: a field without a default "
                                "after one with a default")
            params.append(n)
            continue
        defaulted = True
        if isinstance(value, (list, dict, set)):  # as dataclasses refuse them
            raise ValueError(f"{cls.__qualname__}.{n}: a mutable default: use "
                             "field(default_factory=...)")
        if isinstance(value, _Factory):
            env[f"_f_{n}"], env["_MISSING"] = value.make, _MISSING
            params.append(f"{n}=_MISSING")
            body.append(f" if {n} is _MISSING: {n} = _f_{n}()")
        else:
            env[f"_d_{n}"] = value
            params.append(f"{n}=_d_{n}")
    body += [f" _set(self, {n!r}, {n})" if frozen else f" self.{n} = {n}" for n in names]
    if "__post_init__" in cls.__dict__:
        body.append(" self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or " pass")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # The first record made: the class's own __init__ compiled, and set.
        ns: Dict[str, Any] = {}
        exec(source, env, ns)
        init = ns["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        owner = next(c for c in type(self).__mro__ if c.__dict__.get("__init__") is __init__)
        setattr(owner, "__init__", init)
        init(self, *args, **kwargs)
    key = attrgetter(*names) if names else (lambda self: ())

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    def __repr__(self: Any) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{n}={getattr(self, n)!r}" for n in names) + ")"

    methods: Dict[str, Any] = {"__init__": __init__, "__eq__": __eq__, "__repr__": __repr__}
    if frozen:
        methods["__hash__"] = lambda self: hash(key(self))
        methods["__setattr__"] = methods["__delattr__"] = _frozen_setattr
    else:
        methods["__hash__"] = None  # as dataclasses: mutable and compared, so unhashable
    return methods


@dataclass_transform(field_specifiers=(field,))
def record(cls: Optional[type] = None, *, frozen: bool = False, slots: bool = False) -> Any:
    """A class decorator: *cls* as a record of its annotated fields."""
    def make(cls: type) -> type:
        names = tuple(cls.__dict__.get("__annotations__", {}))
        methods = _methods(cls, names, frozen)
        if slots:
            ns = {k: v for k, v in cls.__dict__.items()
                  if k not in names and k not in ("__dict__", "__weakref__")}
            ns["__slots__"] = names
            ns.update(methods)
            new = type(cls)(cls.__name__, cls.__bases__, ns)
            new.__qualname__ = cls.__qualname__
            cls = new
        else:
            for k, v in methods.items():
                setattr(cls, k, v)
        setattr(cls, _FIELDS, names)
        return cls
    return make if cls is None else make(cls)


def fields(obj: Any) -> Tuple[str, ...]:
    """The field names of a record or dataclass (or of its class), in order."""
    names = getattr(obj, _FIELDS, None)
    if names is not None:
        return names
    import dataclasses
    return tuple(f.name for f in dataclasses.fields(obj))


def replace(obj: T, **changes: Any) -> T:
    """A copy of record *obj* with *changes* (``dataclasses.replace()``)."""
    names = fields(obj)
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n)
                        for n in names})


def _is_record(obj: Any) -> bool:
    return not isinstance(obj, type) and (hasattr(type(obj), _FIELDS)
                                          or hasattr(type(obj), "__dataclass_fields__"))


def asdict(obj: Any) -> Dict[str, Any]:
    """*obj*'s fields as a dict, records, lists, tuples and dicts within
    converted too (``dataclasses.asdict()``)."""
    if not _is_record(obj):
        raise TypeError(f"asdict() of a {type(obj).__name__}, not a record")
    return _inner(obj)


def _inner(obj: Any) -> Any:
    if _is_record(obj):
        return {n: _inner(getattr(obj, n)) for n in fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a named tuple
        return type(obj)(*map(_inner, obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map(_inner, obj))
    if isinstance(obj, dict):
        return type(obj)((_inner(k), _inner(v)) for k, v in obj.items())
    return obj
