"""Detect and undo compression of a tar stream, in-process (never an external binary: CVE-2014-9357).

Like moby's ``archive.DecompressStream``: gzip, bzip2, xz and zstd are recognised by their magic
bytes; anything else is passed through as a plain tar.

>>> import io
>>> stream, kind = decompress(io.BytesIO(b"plain"))
>>> kind, stream.read()
('none', b'plain')
"""

from __future__ import annotations

import io
from typing import BinaryIO

from minidocker.errors import InvalidInput

GZIP = b"\x1f\x8b\x08"
BZIP2 = b"BZh"
XZ = b"\xfd7zXZ\x00"
ZSTD = b"\x28\xb5\x2f\xfd"


def _decoder_errors(kind: str = "") -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, ValueError)
    if kind == "zstd":  # zstandard's error is a plain Exception too
        import zstandard

        errors = (*errors, zstandard.ZstdError)
    try:  # ISA-L's error is a plain Exception, not an OSError like zlib's
        from isal.igzip_lib import IsalError

        errors = (*errors, IsalError)  # type: ignore[arg-type]  # stubs call it an instance
    except ImportError:
        pass
    return errors


class _GuardedReader(io.RawIOBase):
    """Turn the decompressors' assorted exceptions into one clear InvalidInput."""

    def __init__(self, inner: BinaryIO, kind: str) -> None:
        self.inner = inner
        self.kind = kind
        self.errors = _decoder_errors(kind)

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(len(b))
        except EOFError:
            raise InvalidInput(f"unexpected EOF in {self.kind} stream: the archive is truncated") from None
        except self.errors as e:
            raise InvalidInput(f"corrupt {self.kind} stream: {e}") from None
        n = len(data)
        b[:n] = data
        return n

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self.inner.read(-1 if size is None else size)
        except EOFError:
            raise InvalidInput(f"unexpected EOF in {self.kind} stream: the archive is truncated") from None
        except self.errors as e:
            raise InvalidInput(f"corrupt {self.kind} stream: {e}") from None


def sniff(stream: BinaryIO) -> tuple[io.BufferedReader, str]:
    """Peek at the first bytes; returns a stream positioned at the start and the compression kind."""
    buffered: io.BufferedReader = (
        stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream, 1 << 20)  # type: ignore[arg-type]
    )
    head = buffered.peek(6)[:6]
    if head.startswith(GZIP):
        return buffered, "gzip"
    if head.startswith(BZIP2):
        return buffered, "bzip2"
    if head.startswith(XZ):
        return buffered, "xz"
    if head.startswith(ZSTD):
        return buffered, "zstd"
    return buffered, "none"


def decompress(stream: BinaryIO) -> tuple[BinaryIO, str]:
    """Return a readable of the uncompressed bytes and the kind of compression found."""
    buffered, kind = sniff(stream)
    inner: BinaryIO
    if kind == "none":
        return buffered, kind
    if kind == "gzip":
        from isal import igzip

        inner = igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        import bz2

        inner = bz2.BZ2File(buffered, "rb")  # type: ignore[assignment]  # noqa: SIM115
    elif kind == "xz":
        import lzma

        inner = lzma.LZMAFile(buffered, "rb")  # type: ignore[assignment]  # noqa: SIM115
    else:
        try:
            import zstandard
        except ImportError:
            raise InvalidInput("zstd-compressed input needs the 'zstandard' module") from None
        inner = zstandard.ZstdDecompressor().stream_reader(buffered)
    return _GuardedReader(inner, kind), kind  # type: ignore[return-value]
