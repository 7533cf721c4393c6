"""Decompress a layer blob on the other core while the tar is being extracted.

The extractor (tar parsing, tar-split, file writes) is Python and holds the GIL; inflating gzip
(ISA-L), zstd and hashing the result (the DiffID) are C calls that release it. So they run in a
helper thread, one bounded queue of 1 MiB chunks ahead of the extractor: two cores busy, at most
``DEPTH`` chunks in memory, never a whole layer.

Use::

    with Inflater(open(blob_path, "rb")) as tar:      # or a download.TailReader
        layers.register(tar, parent, eof_empty_segment=tar.kind != "gzip",
                        stream_digest=tar.diff_id)
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from typing import Any, BinaryIO

CHUNK = 1 << 20
DEPTH = 4


class Inflater(io.RawIOBase):
    """A readable of the uncompressed bytes of ``src`` (gzip, zstd, bzip2, xz or plain).

    ``kind`` is the compression found; :meth:`diff_id` is the SHA-256 of everything read, once
    EOF was reached. Errors of the helper thread are raised by ``read``.
    """

    def __init__(self, src: BinaryIO) -> None:
        from minidocker.archive.compress import decompress

        super().__init__()
        self._stream, self.kind = decompress(src)
        self._sha = hashlib.sha256()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="inflate", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            read = self._stream.read
            while not self._stop.is_set():
                data = read(CHUNK)
                if not data:
                    self._put(None)
                    return
                self._sha.update(data)  # C, GIL released (> 2 KiB)
                if not self._put(data):
                    return
        except BaseException as e:
            self._put(e)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._buf:
            if self._eof:
                return b""
            item = self._q.get()
            if item is None:
                self._eof = True
                return b""
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if size is None or size < 0 or size >= len(item):
                return item
            self._buf = memoryview(item)
        n = len(self._buf) if size is None or size < 0 else min(size, len(self._buf))
        out = bytes(self._buf[:n])
        self._buf = self._buf[n:]
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def diff_id(self) -> str:
        """``sha256:<hex>`` of the uncompressed stream (only meaningful after EOF)."""
        if not self._eof:
            raise RuntimeError("diff_id is only known at EOF")
        return "sha256:" + self._sha.hexdigest()

    def close(self) -> None:
        """Stop the helper (draining the queue so it is not blocked) and wait for it."""
        if self.closed:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.05)
            except queue.Empty:
                pass
        super().close()
