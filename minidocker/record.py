"""A base for the container's big dataclasses: ``__eq__`` and ``__repr__`` written once.

``@dataclass`` writes ``__init__``, ``__repr__`` and ``__eq__`` of each class as source text and
compiles them when the module is imported (Python 3.11 and 3.12: one ``exec`` per method). For
the records every ``run`` loads before it can start a container (``HostConfig``: 70 fields,
``RunOptions``: 44, ``Container``: 30, ``State``, ``NetworkSettings``, ``EndpointSettings``...)
that was ~4 ms of CPU per ``run``, two thirds of it for ``__repr__`` and ``__eq__``, which a
``run`` never calls (issue 3, "Speed"; benchmarks/README.md). So those classes, and every other
dataclass ``run``'s CLI and monitor define (tests/unit/test_lean_imports.py checks), are declared
``@dataclass(eq=False, repr=False)`` and inherit both methods from :class:`Record`, which reads
the fields when called: the same answers, paid only by whoever compares or prints (tests,
debugging). ``__init__`` stays generated: it is what the class is for. Frozen dataclasses of the
path (``Layer``, ``Mount``, ``Resources``...) are ``@dataclass(frozen=True, eq=False, repr=False)``
subclasses of :class:`FrozenRecord`, which adds the hash ``@dataclass`` would have generated for
them; their immutability (``__setattr__``, ``__delattr__``) stays generated.

>>> from dataclasses import dataclass, field
>>> @dataclass(eq=False, repr=False)
... class Point(Record):
...     x: int = 0
...     tags: list[str] = field(default_factory=list, repr=False)
>>> Point(1) == Point(1), Point(1) == Point(2), Point(1)
(True, False, Point(x=1))
"""

from __future__ import annotations

from dataclasses import fields


class Record:
    """What ``@dataclass`` would generate for ``__eq__`` and ``__repr__``, for any dataclass."""

    __slots__ = ()

    # (no __hash__: a class that defines __eq__ alone is unhashable, as a mutable dataclass is)
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        # a tuple comparison, as the generated one: identical items are equal (NaN included)
        return all(
            (a := getattr(self, f.name)) is (b := getattr(other, f.name)) or a == b
            for f in fields(self)  # type: ignore[arg-type]
            if f.compare
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"


class FrozenRecord(Record):
    """:class:`Record` for a frozen dataclass: hashable by its compared fields, as generated."""

    __slots__ = ()

    def __hash__(self) -> int:
        hashed = (f for f in fields(self) if (f.compare if f.hash is None else f.hash))  # type: ignore[arg-type]
        return hash(tuple(getattr(self, f.name) for f in hashed))
