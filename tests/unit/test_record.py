"""minidocker.record: the methods @dataclass would generate, written once (no root)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

from minidocker.cgroups.resources import Resources, SysInfo
from minidocker.container.create import RunOptions
from minidocker.container.hostconfig import HostConfig, RestartPolicy
from minidocker.container.state import Container, State
from minidocker.image.layerstore import Layer, Mount, PendingLayer
from minidocker.record import FrozenRecord, Record, record


@record
class Ours(Record):
    x: float = 0.0
    note: str = dataclasses.field(default="", compare=False)
    secret: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass
class Generated:  # the same fields, the methods @dataclass generates
    x: float = 0.0
    note: str = dataclasses.field(default="", compare=False)
    secret: str = dataclasses.field(default="", repr=False)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({}, {}),
        ({"x": 1.0}, {"x": 2.0}),
        ({"note": "a"}, {"note": "b"}),  # compare=False
        ({"secret": "a"}, {"secret": "b"}),
        ({"x": math.nan}, {"x": math.nan}),  # two NaNs: unequal
    ],
)
def test_same_answers_as_the_generated_methods(a: dict[str, object], b: dict[str, object]) -> None:
    assert (Ours(**a) == Ours(**b)) == (Generated(**a) == Generated(**b))  # type: ignore[arg-type]
    assert repr(Ours(**a)).replace("Ours", "Generated") == repr(Generated(**a))  # type: ignore[arg-type]
    nan = Ours(math.nan)
    assert nan == nan  # the same object: equal, as in a tuple comparison
    assert (Ours() == Generated()) is False
    with pytest.raises(TypeError):
        hash(Ours())  # mutable and compared by value: unhashable, as a dataclass


def test_the_container_records_use_it() -> None:
    for cls in (HostConfig, RestartPolicy, Container, State, RunOptions):
        assert "__eq__" not in cls.__dict__ and "__repr__" not in cls.__dict__, cls  # nothing generated
        assert issubclass(cls, Record)
    assert HostConfig() == HostConfig()
    assert HostConfig(memory=1) != HostConfig(memory=2)
    assert repr(RestartPolicy("on-failure", 3)) == "RestartPolicy(name='on-failure', maximum_retry_count=3)"


@record(frozen=True)
class OursFrozen(FrozenRecord):
    x: int = 0
    note: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class GeneratedFrozen:
    x: int = 0
    note: str = dataclasses.field(default="", compare=False)


def test_frozen_records_hash_as_generated_and_stay_frozen() -> None:
    for x, note in ((0, ""), (3, "a"), (3, "b")):
        assert hash(OursFrozen(x, note)) == hash(GeneratedFrozen(x, note))
        assert repr(OursFrozen(x, note)).replace("OursFrozen", "GeneratedFrozen") == repr(
            GeneratedFrozen(x, note)
        )
    assert OursFrozen(3, "a") == OursFrozen(3, "b") and len({OursFrozen(3, "a"), OursFrozen(3, "b")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        OursFrozen().x = 1  # type: ignore[misc]
    for cls in (Layer, PendingLayer, Mount, Resources, SysInfo):
        assert issubclass(cls, FrozenRecord) and "__eq__" not in cls.__dict__, cls
    assert Resources(memory=1) == Resources(memory=1) and hash(Resources(memory=1)) == hash(
        Resources(memory=1)
    )


def _built(decorate: Callable[[type], type], base: type = object) -> Any:
    """One set of fields (required, defaults, factories, init=False), decorated both ways."""

    class Built(base):
        a: int
        b: str
        c: int = 3
        d: list[int] = dataclasses.field(default_factory=list)
        e: int = dataclasses.field(default=5, init=False)
        f: list[str] = dataclasses.field(default_factory=lambda: ["x"], init=False)

    return decorate(Built)


Built = _built(record, Record)
BuiltGenerated = _built(dataclasses.dataclass)


def _outcome(cls: type, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
    try:
        made = cls(*args, **kwargs)
    except TypeError as e:
        return str(e).replace(cls.__qualname__, "X")
    return {f.name: getattr(made, f.name) for f in dataclasses.fields(made)}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, "b"), {}),
        ((1,), {"b": "b", "c": 4}),
        ((), {"b": "b", "a": 1, "d": [1]}),
        ((1, "b", 4, [2]), {}),
        ((1, "b", 4, [2], 9), {}),  # too many positional
        ((1,), {"a": 2, "b": "b"}),  # a given twice
        ((1, "b"), {"e": 6}),  # init=False: not a parameter
        ((1, "b"), {"z": 6}),
        ((), {}),  # two missing
        ((1,), {}),  # one missing
        ((1, "b", 4, [2], 9, 10), {}),
    ],
)
def test_init_behaves_as_the_generated_one(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    assert _outcome(Built, args, kwargs) == _outcome(BuiltGenerated, args, kwargs)
    assert _outcome(Ours, args, kwargs) == _outcome(Generated, args, kwargs)  # no required field


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, 2), {}),
        ((), {"x": 1}),
    ],
)
def test_init_without_fields_or_defaults(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    @dataclasses.dataclass
    class Empty:
        pass

    @record
    class EmptyOurs(Record):
        pass

    @dataclasses.dataclass
    class One:
        x: int

    @record
    class OneOurs(Record):
        x: int

    assert _outcome(EmptyOurs, args, kwargs) == _outcome(Empty, args, kwargs)
    assert _outcome(OneOurs, args, kwargs) == _outcome(One, args, kwargs)


def test_init_details() -> None:
    assert Built(1, "b").d is not Built(1, "b").d  # a factory per instance
    assert Built(1, "b").f == ["x"] and Built(1, "b").f is not Built(1, "b").f
    assert "__init__" in vars(Built) and Built.__init__.__module__ == "minidocker.record"
    assert Built.__match_args__ == BuiltGenerated.__match_args__ == ("a", "b", "c", "d")
    assert dataclasses.replace(Built(1, "b"), c=7).c == 7 and dataclasses.asdict(Built(1, "b"))["e"] == 5

    @dataclasses.dataclass
    class Three:
        x: int
        y: int
        z: int

    @record
    class ThreeOurs(Record):
        x: int
        y: int
        z: int

    assert _outcome(ThreeOurs, (), {}) == _outcome(Three, (), {})  # 'x', 'y', and 'z'

    with pytest.raises(TypeError, match="kw_only"):

        @record
        class KwOnly(Record):
            x: int = dataclasses.field(default=0, kw_only=True)


def test_frozen_refuses_as_generated() -> None:
    frozen: tuple[Any, ...] = (OursFrozen(1), GeneratedFrozen(1))
    for obj in frozen:
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
            obj.x = 2
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
            obj.other = 2
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'x'"):
            del obj.x

    class Plain(OursFrozen):  # not a dataclass itself: may set what is not a field (as generated)
        pass

    class PlainGenerated(GeneratedFrozen):
        pass

    subclassed: tuple[Any, ...] = (Plain(1), PlainGenerated(1))
    for obj2 in subclassed:
        obj2.other = 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj2.x = 3
