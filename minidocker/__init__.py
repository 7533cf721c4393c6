"""minidocker: a container runtime in Python whose data root is laid out exactly like Docker's.

One package per chapter (see docs/chapters/README.md):
``kernel`` (the only libc caller), ``storage`` (overlay2), ``image`` (layer/image/reference stores),
``archive`` (safe tar extraction, docker-archive save/load), ``cli`` (thin click commands).

Start-up is part of ``run``'s time (issue 3, "Speed"), so the modules on its path import only what
they use at run time. Two conventions follow from that: annotations are strings (``from
__future__ import annotations``) and names used only in them come from ``typing`` under
``TYPE_CHECKING = False; if TYPE_CHECKING:`` (mypy and ruff treat that name like
``typing.TYPE_CHECKING``; importing ``typing`` itself costs ~2 ms); and ``dataclasses`` is imported
here, below, without ``inspect``. tests/unit/test_lean_imports.py holds ``run``'s path to both.
"""

__version__ = "0.1.0"
# What we write where Docker writes its own version (image configs' docker_version).
DOCKER_VERSION = "20.10.24+dfsg1"


def _dataclasses_without_inspect() -> None:
    """Import :mod:`dataclasses` without paying for :mod:`inspect` until something uses it.

    ``dataclasses`` imports ``inspect`` (which imports ``ast``, ``dis``, ``tokenize``, ...: ~4 ms,
    on every command) for one call: ``inspect.signature(cls)``, to make a ``__doc__`` for a class
    that has none, and every dataclass here has a docstring. (From Python 3.12 it also reads each
    class's annotations with ``inspect.get_annotations(cls)``: the stand-in answers that itself,
    for a class, as ``inspect`` does without ``eval_str``.) So while ``dataclasses`` is imported,
    ``sys.modules["inspect"]`` is a stand-in whose first other attribute lookup imports the real
    module (PEP 562 ``__getattr__``); right after, the stand-in leaves ``sys.modules``, so any
    later ``import inspect`` gets the real one. Nothing changes if either module was already
    imported. tests/unit/test_lean_imports.py checks both halves.
    """
    import sys

    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = type(sys)("inspect")

    def __getattr__(name: str) -> object:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
        import inspect

        return getattr(inspect, name)

    def get_annotations(obj: object, **kwargs: object) -> dict[str, object]:
        # inspect.get_annotations for a class, unevaluated: a copy of its own __annotations__
        if kwargs or not isinstance(obj, type):
            return __getattr__("get_annotations")(obj, **kwargs)  # type: ignore[operator]
        ann = obj.__dict__.get("__annotations__")
        if ann is None:
            return {}
        if not isinstance(ann, dict):
            return __getattr__("get_annotations")(obj)  # type: ignore[operator]
        return dict(ann)

    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    stand_in.get_annotations = get_annotations  # type: ignore[attr-defined]
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401 (the point: imported now, with the stand-in)
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]


_dataclasses_without_inspect()
