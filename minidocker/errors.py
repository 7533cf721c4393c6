"""Errors carry the path, id or reference they are about; the CLI maps them to exit codes in one place.

Docker's convention: 125 when the daemon (here: minidocker itself) fails, 126 when the container
command cannot be executed, 127 when it is not found. Every error prints as one line on stderr.
"""

from __future__ import annotations


class MinidockerError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 125

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split("\n"))


class NotFound(MinidockerError):
    """An image, layer, container, reference or file that does not exist."""


class Conflict(MinidockerError):
    """The operation would break an invariant (image in use, name taken...)."""


class InvalidInput(MinidockerError):
    """Malformed user input: a bad reference, flag value, archive or config."""


class BreakoutError(InvalidInput):
    """A tar entry tried to reach outside the directory it is extracted into."""


class CorruptStore(MinidockerError):
    """The data root holds something that does not verify (digest mismatch, missing file)."""


class CannotExecute(MinidockerError):
    exit_code = 126


class CommandNotFound(MinidockerError):
    exit_code = 127
