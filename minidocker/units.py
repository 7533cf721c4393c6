"""Docker's human-readable sizes and durations (github.com/docker/go-units): what ``images``,
``ps``, ``system df`` and ``build`` print. A module of its own so that a container's state
(``ps``'s "Up 3 seconds") does not import the image chapter's service layer for one function."""

from __future__ import annotations


def human_size(size: float, precision: int = 3) -> str:
    """``units.HumanSizeWithPrecision(size, 3)``: decimal units, 3 significant digits
    (``precision=4`` is ``units.HumanSize``, what the prune commands print)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    text = f"{size:.{precision}g}"
    if "e" in text:  # Go's %g switches to exponent form only beyond precision; avoid it here
        text = str(round(size))
    return text + units[i]


def human_duration(seconds: float) -> str:
    """``units.HumanDuration``: "Less than a second", "About a minute", "3 days"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
