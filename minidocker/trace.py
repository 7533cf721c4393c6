"""Trace events: one line per kernel or store step, printed by ``minidocker --trace``.

Every kernel call (``minidocker.kernel``) and every store write emits an event, so a student can
watch what ``run`` or ``load`` really does, and tests can assert on the narration::

    from minidocker import trace
    with trace.capture() as events:
        ...
    assert any(e.startswith("mount(") for e in events)

Events cost nothing when nobody listens: ``emit`` returns at once when no sink is set, and the
formatting happens only when a sink exists (pass a callable for expensive messages).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import TextIO

_sinks: list[Callable[[str], None]] = []


def enabled() -> bool:
    return bool(_sinks)


def emit(message: str | Callable[[], str]) -> None:
    """Send one event line to every sink (no-op without sinks)."""
    if not _sinks:
        return
    text = message() if callable(message) else message
    for sink in _sinks:
        sink(text)


def to_stream(stream: TextIO = sys.stderr) -> None:
    """Print every event as ``trace: <event>`` (what ``--trace`` does)."""

    def sink(text: str) -> None:
        try:
            stream.write(f"trace: {text}\n")
            stream.flush()
        except (OSError, ValueError):
            # the reader went away (`--trace run … 2>&1 | head`): the narration stops, the work
            # must not, or a half-started container is left behind (its netns, veth, cgroup)
            with contextlib.suppress(ValueError):
                _sinks.remove(sink)

    _sinks.append(sink)


@contextlib.contextmanager
def capture() -> Iterator[list[str]]:
    """Collect the events emitted inside the block into a list."""
    events: list[str] = []
    _sinks.append(events.append)
    try:
        yield events
    finally:
        _sinks.remove(events.append)
