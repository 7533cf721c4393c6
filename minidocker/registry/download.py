"""Blob downloads for ``pull``: parallel, retried, resumed, and readable while they are written.

Each layer blob streams into its own temp file (``<data-root>/tmp/GetImageBlob*``) in a worker
thread, hashed as it arrives. The extractor does not wait for the end: a :class:`TailReader` reads
the file as it grows (from the page cache, nothing is held in memory) and only reports EOF once the
whole blob is there *and* its size and digest verified, so a layer built from a bad blob never
gets registered (the reader raises instead).

A connection error or 5xx is retried with backoff (``RETRIES`` attempts per blob); a download cut
in the middle resumes with ``Range: bytes=<done>-`` and, when the registry answers ``200`` instead
of ``206``, starts over -- checking that the bytes already written are the same ones again
(their SHA-256 state must match at that point) rather than rewriting them under the reader's feet.

Use::

    blobs = Blobs()
    blob = blobs.add(descriptor, path)                 # a temp file
    pool.submit(fetch, reg, "library/busybox", blob)   # worker thread
    stream = TailReader(blob)                          # any thread; read() blocks for more bytes
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minidocker import trace
from minidocker.errors import MinidockerError, NotFound
from minidocker.registry.client import DigestMismatch, Registry, RegistryError, Unauthorized
from minidocker.registry.manifest import Descriptor

if TYPE_CHECKING:
    import requests

CHUNK = 1 << 20
RETRIES = 5  # like dockerd's maxDownloadAttempts
BACKOFF = 0.25  # seconds before the 2nd attempt, doubling after each failure (capped at 4 s)
MAX_BACKOFF = 4.0

Progress = Callable[[int], None]  # bytes of the blob written so far


class Cancelled(MinidockerError):
    """The pull was abandoned (another layer failed); raised inside the workers only."""


@dataclass(eq=False)
class Blob:
    """One blob's download state, shared by its worker and its readers (guarded by ``Blobs.cond``)."""

    desc: Descriptor
    path: str
    owner: Blobs
    written: int = 0
    started: bool = False
    verified: bool = False
    error: BaseException | None = None

    @property
    def short(self) -> str:
        return self.desc.digest[7:19]

    def outcome(self) -> BaseException | None:
        """Wait until the download ended; its error (None once verified).

        Why: a tampered blob usually breaks the decompressor before the download finishes;
        what the user must hear is the digest mismatch, as Docker reports it."""
        with self.owner.cond:
            while not self.verified and self.error is None and self.owner.failure is None:
                self.owner.cond.wait()
            return self.error


@dataclass(eq=False)
class Blobs:
    """The blobs of one pull. ``abort`` stops every download and wakes every reader."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    items: list[Blob] = field(default_factory=list)
    failure: BaseException | None = None

    def add(self, desc: Descriptor, path: str) -> Blob:
        blob = Blob(desc, path, self)
        self.items.append(blob)
        return blob

    def abort(self, why: BaseException) -> None:
        with self.cond:
            if self.failure is None:
                self.failure = why
            self.cond.notify_all()

    def _check(self) -> None:
        if self.failure is not None:
            raise Cancelled("pull cancelled")


def _retryable_status(code: int) -> bool:
    return code >= 500 or code == 429


def _backoff(attempt: int) -> float:
    return min(BACKOFF * 2**attempt, MAX_BACKOFF)


def fetch(reg: Registry, repo: str, blob: Blob, progress: Progress | None = None,
          verified: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Download ``blob`` into its file; mark it verified, or record the error (and re-raise).

    ``verified`` runs once size and digest matched, before any reader can see EOF (so its
    "Download complete" line comes before the layer's "Pull complete")."""
    try:
        _fetch(reg, repo, blob, progress)
        if verified is not None:
            verified()
    except BaseException as e:
        with blob.owner.cond:
            blob.error = e
            blob.owner.cond.notify_all()
        raise
    with blob.owner.cond:
        blob.verified = True
        blob.owner.cond.notify_all()


def _fetch(reg: Registry, repo: str, blob: Blob, progress: Progress | None) -> None:
    import requests
    import urllib3.exceptions

    desc = blob.desc
    owner = blob.owner
    with owner.cond:
        owner._check()
        blob.started = True
    url = f"/v2/{repo}/blobs/{desc.digest}"
    scope = f"repository:{repo}:pull"
    h = hashlib.sha256()
    done = 0  # bytes in the file (== written), all hashed into h
    transient = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, RegistryError)
    fd = os.open(blob.path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        attempt = 0
        while True:
            headers = {"Range": f"bytes={done}-"} if done else {}
            try:
                resp = reg.request("GET", url, scope, headers=headers, stream=True)
            except Unauthorized:
                raise
            except transient as e:
                attempt = _retry_or_raise(attempt, desc, e)
                continue
            with resp:
                code = resp.status_code
                if code == 404:
                    raise NotFound(f"blob unknown to registry: {desc.digest}", subject=desc.digest)
                if _retryable_status(code):
                    attempt = _retry_or_raise(attempt, desc, RegistryError(f"HTTP {code} {resp.reason}"))
                    continue
                if code not in (200, 206) or (code == 206 and not _range_starts_at(resp, done)):
                    raise RegistryError(f"blob {desc.digest}: unexpected status {code} {resp.reason}")
                try:
                    if code == 200 and done:
                        trace.emit(f"registry: {desc.digest}: no range support, re-reading {done} bytes")
                        h = _replay_prefix(resp.raw, h, done, desc)
                    elif done:
                        trace.emit(f"registry: {desc.digest}: resumed at byte {done}")
                    done = _copy(resp.raw, fd, h, done, blob, progress)
                except transient as e:
                    with owner.cond:
                        done = blob.written
                    attempt = _retry_or_raise(attempt, desc, e)
                    continue
            break
    finally:
        os.close(fd)
    if done != desc.size or "sha256:" + h.hexdigest() != desc.digest:
        raise DigestMismatch(
            f"filesystem layer verification failed for digest {desc.digest}", subject=desc.digest
        )


def _retry_or_raise(attempt: int, desc: Descriptor, e: BaseException) -> int:
    """Sleep before the next attempt; raise once ``RETRIES`` attempts have failed."""
    if attempt + 1 >= RETRIES:
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise RegistryError(f"downloading blob {desc.digest}: {text} (after {RETRIES} attempts)") from None
    delay = _backoff(attempt)
    trace.emit(lambda: f"registry: blob {desc.digest}: {type(e).__name__}: {e}; retrying in {delay:.2f}s")
    time.sleep(delay)
    return attempt + 1


def _range_starts_at(resp: requests.Response, done: int) -> bool:
    """A ``206`` must continue where we stopped: ``Content-Range: bytes <done>-...``."""
    value = resp.headers.get("Content-Range", "")
    return value.startswith(f"bytes {done}-")


def _read(raw: Any, n: int) -> bytes:
    return raw.read(n, decode_content=False)


def _replay_prefix(raw: Any, h: Any, done: int, desc: Descriptor) -> Any:
    """A full ``200`` reply after a cut: its first ``done`` bytes must hash like the ones kept."""
    want = h.hexdigest()
    again = hashlib.sha256()
    left = done
    while left:
        data = _read(raw, min(CHUNK, left))
        if not data:
            raise RegistryError(f"blob {desc.digest}: connection closed while re-reading")
        again.update(data)
        left -= len(data)
    if again.hexdigest() != want:
        raise DigestMismatch(
            f"filesystem layer verification failed for digest {desc.digest}", subject=desc.digest
        )
    return again


def _copy(raw: Any, fd: int, h: Any, done: int, blob: Blob, progress: Progress | None) -> int:
    """Body -> file, hashing; publishes each chunk to the readers. Returns the bytes written."""
    size = blob.desc.size
    owner = blob.owner
    while True:
        data = _read(raw, CHUNK)
        if not data:
            return done
        if done + len(data) > size:
            raise DigestMismatch(f"blob {blob.desc.digest} is larger than its descriptor says ({size} bytes)")
        view = memoryview(data)
        at = done
        while view:  # pwrite at the published length: a failed write never shifts a resume
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
        h.update(data)  # only bytes that are in the file (releases the GIL: > 2 KiB)
        done += len(data)
        with owner.cond:
            owner._check()
            blob.written = done
            owner.cond.notify_all()
        if progress is not None:
            progress(done)


class TailReader(io.RawIOBase):
    """Read a blob's temp file while it is being downloaded. EOF only after it verified.

    ``progress(n)`` is called with the bytes read so far (``Extracting`` bars)."""

    def __init__(self, blob: Blob, progress: Progress | None = None) -> None:
        super().__init__()
        self.blob = blob
        self.pos = 0
        self.progress = progress
        self.fd = os.open(blob.path, os.O_RDONLY | os.O_CLOEXEC)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        blob, cond = self.blob, self.blob.owner.cond
        with cond:
            while True:
                if blob.error is not None:
                    raise reraise(blob.error)
                blob.owner._check()
                if blob.written > self.pos:
                    avail = blob.written - self.pos
                    break
                if blob.verified:
                    return 0
                cond.wait()
        view = memoryview(b).cast("B")
        n = os.preadv(self.fd, [view[: min(len(view), avail)]], self.pos)
        self.pos += n
        if self.progress is not None:
            self.progress(self.pos)
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        super().close()


def reraise(e: BaseException) -> BaseException:
    """The download's own error, raised again in the reader's thread (same type and text)."""
    if isinstance(e, MinidockerError):
        return type(e)(str(e), subject=e.subject)
    return RegistryError(str(e))
