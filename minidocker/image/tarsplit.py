"""``tar-split.json.gz``: the metadata that lets a layer's exact tar stream be rebuilt from its diff dir.

Format (shared/docker-layout.md section 3): gzip'd NDJSON, one ``storage.Entry`` a line::

    {"type":2,"payload":"<base64 raw header bytes>","position":0}
    {"type":1,"name":"./etc/passwd","size":30,"payload":"<base64 big-endian CRC-64/ISO>","position":1}

Recording while a layer is read (``TarSplitWriter`` is the ``TarObserver`` of the reader)::

    with TarSplitWriter(tmp + "/tar-split.json.gz") as ts:
        reader = TarReader(stream, observer=ts)
        ...
        reader.finish()

Rebuilding (``save``, ``push``, ``fsck``)::

    assemble(ts_path, diff_dir, out)             # byte-identical to the original stream
    assemble_digest(ts_path, diff_dir)           # "sha256:..." == DiffID, nothing written
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import posixpath
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, BinaryIO

import fastcrc

from minidocker import gojson
from minidocker.errors import CorruptStore, InvalidInput
from minidocker.kernel.openat import open_beneath

FILE_TYPE = 1
SEGMENT_TYPE = 2

# Go compress/gzip header: magic, CM=deflate, no flags, mtime 0, XFL 0, OS 255 (unknown).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_ZERO_CRC = bytes(8)

try:  # ISA-L is several times faster than zlib; both produce valid deflate.
    from isal import igzip as _gzip_mod
    from isal import isal_zlib as _deflate_mod
except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip as _gzip_mod  # type: ignore[no-redef]

    _deflate_mod = zlib  # type: ignore[misc]


def go_clean(p: bytes) -> bytes:
    """Go ``filepath.Clean`` on Unix (``posixpath.normpath`` keeps a leading ``//``; Go does not)."""
    out = posixpath.normpath(p) if p else b"."
    if out.startswith(b"//"):
        out = b"/" + out.lstrip(b"/")
    return out


def encode_entry(etype: int, raw_name: bytes, size: int, payload: bytes | None, position: int) -> bytes:
    """One NDJSON line exactly as Go's ``json.Encoder`` writes a tar-split ``storage.Entry``."""
    parts = ['{"type":', str(etype)]
    if raw_name:
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:  # Go: NameRaw when the name is not valid UTF-8
            parts += [',"name_raw":"', base64.b64encode(raw_name).decode("ascii"), '"']
        else:
            parts += [',"name":', gojson.encode_str(name)]
    if size:
        parts += [',"size":', str(size)]
    if payload is None:
        parts.append(',"payload":null')
    else:
        parts += [',"payload":"', base64.b64encode(payload).decode("ascii"), '"']
    parts += [',"position":', str(position), "}\n"]
    return "".join(parts).encode("utf-8")


class TarSplitWriter:
    """``storage.NewJSONPacker`` over a gzip writer; implements ``TarObserver``.

    Rejects a second file entry whose name cleans to the same path (tar-split's
    ``ErrDuplicatePath``, which fails ``docker load``/``pull`` of such a layer).
    """

    def __init__(self, dest: str | BinaryIO, *, level: int = 1) -> None:
        self._own = isinstance(dest, str)
        self._out: IO[bytes] = open(dest, "wb") if isinstance(dest, str) else dest  # noqa: SIM115
        self._comp = _deflate_mod.compressobj(level, zlib.DEFLATED, -15)
        self._crc32 = 0
        self._isize = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._seen: set[bytes] = set()
        self.position = 0
        self._closed = False
        self._out.write(_GZIP_HEADER)

    def _emit(self, line: bytes) -> None:
        self._pending.append(line)
        self._pending_len += len(line)
        self.position += 1
        if self._pending_len >= 1 << 16:
            self._compress()

    def _compress(self) -> None:
        data = b"".join(self._pending)
        self._pending, self._pending_len = [], 0
        self._crc32 = zlib.crc32(data, self._crc32)
        self._isize += len(data)
        self._out.write(self._comp.compress(data))

    def segment(self, raw: bytes) -> None:
        self._emit(encode_entry(SEGMENT_TYPE, b"", 0, raw, self.position))

    def file_entry(self, raw_name: bytes, size: int, crc: bytes | None) -> None:
        clean = go_clean(raw_name)
        if clean in self._seen:
            raise InvalidInput(f"duplicate path in layer: {raw_name.decode('utf-8', 'replace')!r}")
        self._seen.add(clean)
        self._emit(encode_entry(FILE_TYPE, raw_name, size, crc, self.position))

    def close(self) -> None:
        """Finish the gzip stream (trailer: CRC-32 and size, little-endian) and close an owned file."""
        if self._closed:
            return
        self._closed = True
        self._compress()
        self._out.write(self._comp.flush())
        self._out.write(struct.pack("<II", self._crc32 & 0xFFFFFFFF, self._isize & 0xFFFFFFFF))
        if self._own:
            self._out.close()
        else:
            self._out.flush()

    def __enter__(self) -> TarSplitWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.close()
        elif self._own:
            self._out.close()


@dataclass(slots=True)
class Entry:
    """One decoded tar-split line. ``name`` is the raw tar name (bytes)."""

    type: int
    name: bytes
    size: int
    payload: bytes | None
    position: int


def _decode_line(line: bytes) -> Entry:
    try:
        obj = json.loads(line)
        if "name_raw" in obj and obj["name_raw"] is not None:
            name = base64.b64decode(obj["name_raw"], validate=True)
        else:
            name = obj.get("name", "").encode("utf-8")
        payload = obj.get("payload")
        return Entry(
            type=int(obj["type"]),
            name=name,
            size=int(obj.get("size", 0)),
            payload=None if payload is None else base64.b64decode(payload, validate=True),
            position=int(obj.get("position", 0)),
        )
    except (ValueError, KeyError, TypeError, UnicodeError) as e:
        raise CorruptStore(f"tar-split: malformed entry {line[:80]!r}: {e}") from e


def read_entries(path: str) -> Iterator[Entry]:
    """Decode ``tar-split.json.gz`` entry by entry (streaming; layers can have many entries)."""
    try:
        with _gzip_mod.open(path, "rb") as f:
            for line in f:
                if line.strip():
                    yield _decode_line(line)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise CorruptStore(f"tar-split: cannot read {path}: {e}", subject=path) from e


def _stream(
    tarsplit_path: str, diff_dir: str, write: Callable[[bytes | memoryview], object], verify_crc: bool
) -> None:
    root = os.open(diff_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        for e in read_entries(tarsplit_path):
            if e.type == SEGMENT_TYPE:
                if e.payload:
                    write(e.payload)
                continue
            if e.type != FILE_TYPE:
                raise CorruptStore(f"tar-split: unknown entry type {e.type}", subject=tarsplit_path)
            if e.size <= 0 or e.payload == _ZERO_CRC:
                # No content in the stream: size 0, or a header-only type (link, dir...) whose header
                # claimed a size -- tar-split then recorded the CRC of nothing.
                continue
            _copy_file(root, e, write, view, verify_crc)
    finally:
        os.close(root)


def _copy_file(
    root: int, e: Entry, write: Callable[[bytes | memoryview], object], view: memoryview, verify_crc: bool
) -> None:
    shown = e.name.decode("utf-8", "replace")
    try:
        fd = open_beneath(root, e.name)
    except OSError as err:
        why = "a symlink on the path" if err.errno == errno.ELOOP else err.strerror
        raise CorruptStore(f"layer content {shown!r} cannot be opened: {why}", subject=shown) from err
    try:
        crc = 0
        left = e.size
        while left:
            n = os.readv(fd, [view[: min(left, len(view))]])
            if n == 0:
                raise CorruptStore(
                    f"layer content {shown!r} is {e.size - left} bytes, expected {e.size}", subject=shown
                )
            chunk = view[:n]
            if verify_crc:
                crc = fastcrc.crc64.go_iso(chunk, initial=crc)
            write(chunk)
            left -= n
        if os.read(fd, 1):
            raise CorruptStore(f"layer content {shown!r} is longer than {e.size} bytes", subject=shown)
    finally:
        os.close(fd)
    if verify_crc and struct.pack(">Q", crc) != e.payload:
        raise CorruptStore(f"layer content {shown!r} does not match its tar-split checksum", subject=shown)


def assemble(tarsplit_path: str, diff_dir: str, out: BinaryIO, *, verify_crc: bool = True) -> None:
    """Write the layer's original tar stream to ``out`` (docker-layout.md 3.3).

    Raises :class:`CorruptStore` when a file is missing, the wrong size, behind a symlink, or its
    CRC-64 differs from the recorded one.
    """
    _stream(tarsplit_path, diff_dir, out.write, verify_crc)


def assemble_digest(tarsplit_path: str, diff_dir: str) -> str:
    """``sha256:<hex>`` of the reassembled stream (the DiffID, when the layer is intact)."""
    h = hashlib.sha256()
    _stream(tarsplit_path, diff_dir, h.update, True)
    return "sha256:" + h.hexdigest()
