"""minidocker.record.Record: the __eq__ and __repr__ @dataclass would generate, written once (no root)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from minidocker.cgroups.resources import Resources, SysInfo
from minidocker.container.create import RunOptions
from minidocker.container.hostconfig import HostConfig, RestartPolicy
from minidocker.container.state import Container, State
from minidocker.image.layerstore import Layer, Mount, PendingLayer
from minidocker.record import FrozenRecord, Record


@dataclasses.dataclass(eq=False, repr=False)
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


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
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
