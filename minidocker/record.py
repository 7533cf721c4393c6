"""Dataclasses for the start path that compile nothing when their module is imported.

``@dataclass`` writes ``__init__``, ``__repr__`` and ``__eq__`` (and, frozen, ``__setattr__``,
``__delattr__``, ``__hash__``) of each class as source text and compiles them at import (Python
3.11 and 3.12: one ``exec`` per method; 3.13: one per class). Every ``run`` loads ~36 dataclasses before its container
starts (``HostConfig``: 70 fields, ``RunOptions``: 44, ``Container``: 30, ``Layer``, ``Mount``,
the namespaces' specs...), and compiling their methods was ~7 ms of CPU per ``run`` (issue 3,
"Speed"; benchmarks/README.md, rounds 4 and 5), more than a tenth of it.

So those classes (tests/unit/test_lean_imports.py checks every one) are declared with
:func:`record` instead of ``@dataclass`` and inherit from :class:`Record` (or
:class:`FrozenRecord`). The fields, defaults, ``dataclasses.fields``/``replace``/``asdict`` and
the type checking are ``@dataclass``'s own (mypy reads :func:`record` as ``dataclass``); the
methods are written once, here, as plain functions that read the fields:

* ``__init__``: made per class from the fields, without ``exec`` (a closure over the field
  plan): the same parameters, defaults, ``default_factory`` calls and ``TypeError`` s;
* ``__eq__`` and ``__repr__`` (:class:`Record`): read ``dataclasses.fields`` when called, paid
  only by whoever compares or prints (tests, debugging);
* frozen: ``__setattr__``/``__delattr__`` refuse the fields as generated (``FrozenInstanceError``),
  ``__hash__`` (:class:`FrozenRecord`) hashes the compared fields as generated.

tests/unit/test_record.py checks each against what ``@dataclass`` generates.

>>> from dataclasses import field
>>> @record
... class Point(Record):
...     x: int = 0
...     tags: list[str] = field(default_factory=list, repr=False)
>>> Point(1) == Point(1), Point(1) == Point(2), Point(1), Point(x=2).tags
(True, False, Point(x=1), [])
>>> Point(y=2)
Traceback (most recent call last):
  ...
TypeError: Point.__init__() got an unexpected keyword argument 'y'
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, FrozenInstanceError, dataclass, fields

# how @dataclass's generated __eq__ compares on this Python (Record.__eq__ answers the same)
_FIELD_BY_FIELD = sys.version_info >= (3, 13)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # mypy types a class decorated with ``record`` as the ``@dataclass`` it is underneath
    from dataclasses import dataclass as record
    from typing import Any
else:

    def record(cls=None, /, *, frozen=False):
        """``@record`` or ``@record(frozen=True)``: ``@dataclass(eq=False, repr=False[, frozen])``
        whose ``__init__`` (and frozen ``__setattr__``/``__delattr__``) are closures instead of
        compiled source. The class should inherit :class:`Record` (:class:`FrozenRecord`) for
        ``__eq__``, ``__repr__`` (and ``__hash__``)."""

        def wrap(c):
            return _build(c, frozen)

        return wrap if cls is None else wrap(cls)


def _build(cls: type, frozen: bool) -> type:
    # init=False: dataclass collects the fields and sets __dataclass_fields__, __match_args__...
    # and compiles nothing (eq/repr off; not frozen, or it would compile __setattr__/__delattr__).
    # So __dataclass_params__ reads init=False, frozen=False: the methods are ours, not generated
    # (and a class @dataclass(frozen=True) cannot inherit from a frozen record).
    cls = dataclass(cls, init=False, eq=False, repr=False)
    cls.__init__ = _make_init(cls, frozen)  # type: ignore[misc]
    if frozen:
        cls.__setattr__, cls.__delattr__ = _make_frozen(cls)  # type: ignore[assignment, method-assign]
    return cls


def _make_init(cls: type, frozen: bool) -> Callable[..., None]:
    """``cls.__init__``: what ``@dataclass`` generates (positional or keyword parameters in field
    order, ``default``, ``default_factory`` called per instance, ``__post_init__``), as a closure."""
    every = fields(cls)
    if any(f.kw_only for f in every) or len(every) != len(cls.__dataclass_fields__):  # type: ignore[attr-defined]
        raise TypeError(f"record {cls.__qualname__}: kw_only fields and InitVars are not supported")
    plan = tuple((f.name, f.default, f.default_factory) for f in every if f.init)
    # init=False fields with a default are set too, after the parameters (as generated)
    later = tuple(
        (f.name, f.default, f.default_factory)
        for f in every
        if not f.init and (f.default is not MISSING or f.default_factory is not MISSING)
    )
    names = {name: i for i, (name, _, _) in enumerate(plan)}
    count = len(plan)
    required = sum(1 for _, default, factory in plan if default is MISSING and factory is MISSING)
    # CPython's wording, self included: "takes 3 positional arguments", "takes from 2 to 4 ..."
    takes = f"from {required + 1} to {count + 1}" if required < count else f"{count + 1}"
    takes += " positional argument" if count == 0 else " positional arguments"
    qualname = f"{cls.__qualname__}.__init__()"
    post_init = getattr(cls, "__post_init__", None) is not None
    # a frozen class refuses self.x = ..., so its __init__ goes around its __setattr__ (as generated)
    put = object.__setattr__ if frozen else setattr

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        given = len(args)
        if given > count:
            raise TypeError(f"{qualname} takes {takes} but {given + 1} were given")
        for key in kwargs:
            at = names.get(key)
            if at is None:
                raise TypeError(f"{qualname} got an unexpected keyword argument {key!r}")
            if at < given:
                raise TypeError(f"{qualname} got multiple values for argument {key!r}")
        missing = []
        for i, (name, default, factory) in enumerate(plan):
            if i < given:
                value = args[i]
            elif name in kwargs:
                value = kwargs[name]
            elif factory is not MISSING:
                value = factory()
            elif default is not MISSING:
                value = default
            else:
                missing.append(name)
                continue
            put(self, name, value)
        if missing:
            quoted = [repr(m) for m in missing]  # CPython's wording: 'a', 'b', and 'c'
            listed = (
                " and ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
            )
            s = "s" if len(missing) > 1 else ""
            raise TypeError(f"{qualname} missing {len(missing)} required positional argument{s}: {listed}")
        for name, default, factory in later:
            put(self, name, default if factory is MISSING else factory())
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = qualname[:-2]
    return __init__


def _make_frozen(cls: type) -> tuple[Callable[[Any, str, Any], None], Callable[[Any, str], None]]:
    """A frozen dataclass's ``__setattr__`` and ``__delattr__``: the class's own instances refuse
    every attribute, a plain subclass's refuse the fields (as generated)."""
    names = frozenset(f.name for f in fields(cls))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]  # (mypy narrows cls above)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    __setattr__.__qualname__ = f"{cls.__qualname__}.__setattr__"
    __delattr__.__qualname__ = f"{cls.__qualname__}.__delattr__"
    return __setattr__, __delattr__


class Record:
    """What ``@dataclass`` would generate for ``__eq__`` and ``__repr__``, for any dataclass."""

    __slots__ = ()

    # (no __hash__: a class that defines __eq__ alone is unhashable, as a mutable dataclass is)
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        compared = (f for f in fields(self) if f.compare)  # type: ignore[arg-type]
        if _FIELD_BY_FIELD:
            # Python 3.13+ generates `self is other or (self.a == other.a and ...)`
            return self is other or all(getattr(self, f.name) == getattr(other, f.name) for f in compared)
        # before 3.13, a tuple comparison: identical items are equal (NaN included)
        return all((a := getattr(self, f.name)) is (b := getattr(other, f.name)) or a == b for f in compared)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"


class FrozenRecord(Record):
    """:class:`Record` for a frozen dataclass: hashable by its compared fields, as generated."""

    __slots__ = ()

    def __hash__(self) -> int:
        hashed = (f for f in fields(self) if (f.compare if f.hash is None else f.hash))  # type: ignore[arg-type]
        return hash(tuple(getattr(self, f.name) for f in hashed))
