"""``oomdrgn.core.record``: records behave as the dataclasses they replace."""

import dataclasses
from typing import List, Optional

import pytest

from oomdrgn.core.record import FrozenError, asdict, field, fields, record, replace


@record
class Mutable:
    a: int
    b: str = "x"
    items: List[int] = field(default_factory=list)


@record(frozen=True)
class Frozen:
    a: int
    inner: Optional[Mutable] = None


@record(slots=True)
class Slotted:
    a: int
    b: int = 2

    def total(self) -> int:
        return self.a + self.b


@record
class Posted:
    a: int
    doubled: int = 0

    def __post_init__(self) -> None:
        self.doubled = 2 * self.a


@dataclasses.dataclass(frozen=True)
class Dataclass:
    m: Mutable


def test_init_defaults_and_factories():
    assert Mutable.__init__.__qualname__.endswith("<locals>.__init__")  # not made yet
    m = Mutable(1)
    assert Mutable.__init__.__qualname__ == "Mutable.__init__"  # made by the first record
    assert (m.a, m.b, m.items) == (1, "x", [])
    assert Mutable(1).items is not m.items  # a new list each
    assert Mutable(2, b="y", items=[3]).items == [3]
    with pytest.raises(TypeError):
        Mutable()
    assert Posted(4).doubled == 8


def test_eq_repr_hash_as_dataclasses():
    assert Mutable(1) == Mutable(1) and Mutable(1) != Mutable(2)
    assert Mutable(1) != Slotted(1)  # another class: never equal
    assert repr(Mutable(1, "y")) == "Mutable(a=1, b='y', items=[])"
    with pytest.raises(TypeError):
        hash(Mutable(1))  # mutable and compared: unhashable
    assert hash(Frozen(1)) == hash(Frozen(1)) and len({Frozen(1), Frozen(1), Frozen(2)}) == 2
    with pytest.raises(FrozenError):
        Frozen(1).a = 2


def test_slots():
    s = Slotted(1)
    assert Slotted.__slots__ == ("a", "b") and not hasattr(s, "__dict__")
    assert s.total() == 3 and Slotted.__qualname__ == "Slotted"
    with pytest.raises(AttributeError):
        s.c = 1


def test_fields_replace_asdict():
    assert fields(Mutable) == ("a", "b", "items") == fields(Mutable(1))
    assert fields(Dataclass) == ("m",)
    f = Frozen(1, Mutable(2))
    assert replace(f, a=5) == Frozen(5, Mutable(2))
    with pytest.raises(TypeError):
        replace(f, nope=1)
    assert asdict(f) == {"a": 1, "inner": {"a": 2, "b": "x", "items": []}}
    assert asdict(Dataclass(Mutable(3, items=[Mutable(4)]))) == {
        "m": {"a": 3, "b": "x", "items": [{"a": 4, "b": "x", "items": []}]}}
    with pytest.raises(TypeError):
        asdict(Mutable)



def test_mistakes_refused_where_the_class_is_written():
    with pytest.raises(ValueError, match="mutable default"):
        @record
        class Shared:
            items: List[int] = []
    with pytest.raises(TypeError, match="without a default after one"):
        @record
        class Order:
            a: int = 0
            b: int
