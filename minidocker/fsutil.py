"""Small filesystem helpers shared by every store: atomic writes, the data-root lock, Docker's ids.

Atomic writes follow Docker's ``ioutils.AtomicWriteFile``: a temp file ``.tmp-<name><digits>`` in
the same directory, write, fsync, chmod, rename over the target. A reader therefore sees either the
old file or the new one, never half of one, even after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from minidocker import trace


def atomic_write(path: str, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with permission ``mode``.

    ``sync=False`` skips the fsync (readers still never see half a file, but a crash may leave an
    empty one): only for files Docker itself writes without one and regenerates when needed."""
    d, base = os.path.split(path)
    # os.urandom, not secrets: importing secrets (random, hmac, base64) costs ~1 ms on every start
    tmp = os.path.join(d, f".tmp-{base}{int.from_bytes(os.urandom(4), 'big') % 10**9}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if sync:
            os.fsync(fd)
        os.fchmod(fd, mode)  # the umask must not change what Docker would write
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    trace.emit(lambda: f"write {path} ({len(data)} bytes)")


def write_new(path: str, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Write a file inside a directory that is not yet visible (a transaction dir): fsync, no rename.

    ``sync=False``: Go's ``os.WriteFile`` (no fsync), for files Docker writes that way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """Read a small metadata file the way Docker does (``strings.TrimSpace``)."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def makedirs(path: str, mode: int) -> None:
    """``os.MkdirAll`` with an exact mode on the directories it creates (umask ignored)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and not os.path.isdir(parent):
        makedirs(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def random_id() -> str:
    """Docker's ``stringid.GenerateRandomID``: 64 hex chars whose first 12 are not all digits."""
    while True:
        value = os.urandom(32).hex()  # what secrets.token_hex(32) does
        if not value[:12].isdigit():
            return value


def link_id() -> str:
    """overlay2's short link name: 17 random bytes, base32, first 26 chars (``[A-Z2-7]{26}``)."""
    import base64

    return base64.b32encode(os.urandom(17)).decode("ascii")[:26]


class DataRootLock:
    """An exclusive ``flock`` on ``<root>/.minidocker.lock`` serialising store mutations.

    Long work (download, decompression, extraction) happens outside the lock; only the step that
    makes results visible (rename into place, reference update) runs under it. Re-entrant within a
    process so store methods can nest.
    """

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, ".minidocker.lock")
        self._fd: int | None = None
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                os.close(self._fd)  # closing releases the flock
                self._fd = None
