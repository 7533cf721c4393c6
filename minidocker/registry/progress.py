"""Per-layer pull output, as the docker CLI shows it: bars on a terminal, plain lines otherwise.

Plain (stdout is a file or a pipe) prints each status change once, nothing else::

    a3ed95caeb02: Pulling fs layer
    a3ed95caeb02: Verifying Checksum
    a3ed95caeb02: Download complete
    a3ed95caeb02: Pull complete

On a terminal every layer keeps one line that is redrawn in place (cursor up, clear line, cursor
down: the escape sequences of docker's ``jsonmessage``), with Docker's bar::

    a3ed95caeb02: Downloading [=================>                                 ]  12.3MB/35.1MB

Use::

    shown = Terminal(sys.stdout) if sys.stdout.isatty() else Plain(print)
    shown.status(short_id, "Pulling fs layer")
    shown.bar(short_id, "Downloading", 12_300_000, 35_100_000)   # no-op when plain
    shown.line("Digest: sha256:...")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from minidocker import units

BAR_WIDTH = 50
BAR_INTERVAL = 0.1  # seconds between redraws of one layer's bar


def human_size(n: float) -> str:
    """go-units ``HumanSize``: 4 significant digits, decimal units (``12.35MB``, ``512B``)."""
    return units.human_size(n, 4)


def bar_text(current: int, total: int) -> str:
    """``jsonmessage.JSONProgress.String()`` for a wide terminal, without the time-left part."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, BAR_WIDTH)
    box = f"[{'=' * pct}>{' ' * (BAR_WIDTH - pct)}] "
    if current > total:
        return box + f"{human_size(current):>8}"
    return box + f"{human_size(current):>8}/{human_size(total)}"


class Plain:
    """Status lines only, through ``out`` (one call per line, thread-safe)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def status(self, layer: str, text: str) -> None:
        with self.lock:
            self.out(f"{layer}: {text}")

    def bar(self, layer: str, action: str, current: int, total: int) -> None:
        pass

    def line(self, text: str) -> None:
        with self.lock:
            self.out(text)

    def close(self) -> None:
        pass


class Terminal(Plain):
    """One redrawn line per layer on ``stream`` (a tty)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(lambda s: None)
        self.stream = stream
        self.order: list[str] = []  # layer ids, top to bottom
        self.last: dict[str, float] = {}

    def _draw(self, layer: str, text: str) -> None:
        w = self.stream.write
        if layer not in self.order:
            self.order.append(layer)
            w(f"{layer}: {text}\n")
        else:
            up = len(self.order) - self.order.index(layer)
            # up N lines, clear the line, print, back down N lines (docker's cursor dance)
            w(f"\x1b[{up}A\x1b[2K\r{layer}: {text}\r\x1b[{up}B")
        self.stream.flush()

    def status(self, layer: str, text: str) -> None:
        with self.lock:
            self.last.pop(layer, None)
            self._draw(layer, text)

    def bar(self, layer: str, action: str, current: int, total: int) -> None:
        now = time.monotonic()
        with self.lock:
            if current < total and now - self.last.get(layer, 0.0) < BAR_INTERVAL:
                return
            self.last[layer] = now
            self._draw(layer, f"{action} {bar_text(current, total)}")

    def line(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()
