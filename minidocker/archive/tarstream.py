"""Our own streaming tar reader and writer, byte-exact with what Docker (Go ``archive/tar``) does.

Why not :mod:`tarfile`: it cannot account for raw bytes (tar-split needs every byte between two
files' contents), and it has had infinite-loop bugs on crafted headers (CVE-2025-8194).

Reading a layer while recording its tar-split and DiffID::

    reader = TarReader(stream, observer=TarSplitWriter(path))
    for hdr in reader:            # real entries only; PAX/GNU meta headers are consumed
        if hdr.is_reg:
            reader.copy_to_fd(fd)  # or reader.read(n); unread content is skipped on advance
    reader.finish()               # end-of-archive blocks and trailing padding
    reader.diff_id                # "sha256:<hex>" of every byte read

Reading follows Go's ``archive/tar`` Reader (as forked by vbatts/tar-split v0.11.2, which moby
20.10 vendors), including its leniencies: octal fields padded with spaces/NULs, GNU base-256
numbers, a clean end when the stream stops exactly at a header boundary or inside the padding
after a file's content, and a stream of zero bytes being an empty archive.

Writing follows Go's ``archive/tar`` Writer with ``Format=PAX`` (what moby's ``FileInfoHeader``
asks for): USTAR when the header fits, otherwise a PAX ``x`` header before it::

    w = TarWriter(out)
    w.add(header_from_stat("/src/etc/passwd", "etc/passwd"), open("/src/etc/passwd", "rb"))
    w.close()                     # two zero blocks, no record padding
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as stat_mod
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import fastcrc

from minidocker.errors import InvalidInput

BLOCK = 512
CHUNK = 1 << 20  # read size; also tar-split's trailing-padding chunk size
_MAX_SPECIAL = 1 << 20  # Go's maxSpecialFileSize: PAX data and GNU long names
_ZERO_BLOCK = bytes(BLOCK)

# Types whose size field does not describe any content in the stream (Go isHeaderOnlyType).
_HEADER_ONLY = frozenset((b"1", b"2", b"3", b"4", b"5", b"6"))
_HIGH_BYTES = bytes(range(128, 256))

_crc64 = fastcrc.crc64.go_iso


@dataclass(slots=True)
class TarHeader:
    """One archive member, after PAX and GNU long-name headers have been applied.

    ``size`` is the header's size field as Go reports it (``hdr.Size``); for header-only types
    (links, dirs, devices, fifos) no content follows in the stream whatever it says.
    """

    name: str
    raw_name: bytes = b""
    typeflag: bytes = b"0"
    mode: int = 0
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    size: int = 0
    mtime_ns: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)

    @property
    def is_reg(self) -> bool:
        return self.typeflag in (b"0", b"7")

    @property
    def is_dir(self) -> bool:
        return self.typeflag == b"5"

    @property
    def is_symlink(self) -> bool:
        return self.typeflag == b"2"

    @property
    def is_hardlink(self) -> bool:
        return self.typeflag == b"1"

    @property
    def is_chr(self) -> bool:
        return self.typeflag == b"3"

    @property
    def is_blk(self) -> bool:
        return self.typeflag == b"4"

    @property
    def is_fifo(self) -> bool:
        return self.typeflag == b"6"


class TarObserver(Protocol):
    """Receives the raw accounting of a stream (tar-split's packer implements this).

    ``segment`` gets raw bytes that are not file content; ``file_entry`` gets each entry once its
    content has been consumed, with the big-endian CRC-64/ISO of that content (``None`` when the
    header size is 0).
    """

    def segment(self, raw: bytes) -> None: ...

    def file_entry(self, raw_name: bytes, size: int, crc: bytes | None) -> None: ...


# --------------------------------------------------------------------------------------------
# Field parsing, as Go's archive/tar parser does it


def _cstr(b: bytes) -> bytes:
    """Go ``parseString``: up to the first NUL."""
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


_OCTAL = re.compile(rb"[0-7]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def _parse_octal(b: bytes) -> int:
    b = _cstr(b.strip(b" \0"))
    if not b:
        return 0
    if not _OCTAL.fullmatch(b):
        raise InvalidInput(f"invalid tar header: bad octal field {b!r}")
    x = int(b, 8)
    if x >= 1 << 64:
        raise InvalidInput(f"invalid tar header: octal field {b!r} overflows")
    return x - (1 << 64) if x >= 1 << 63 else x  # Go: int64(uint64)


def _parse_numeric(b: bytes) -> int:
    """Go ``parseNumeric``: octal, or GNU base-256 two's complement when the top bit is set."""
    if b and b[0] & 0x80:
        inv = 0xFF if b[0] & 0x40 else 0
        x = 0
        for i, c in enumerate(b):
            c ^= inv
            if i == 0:
                c &= 0x7F
            if x >> 56:
                raise InvalidInput("invalid tar header: base-256 field overflows")
            x = x << 8 | c
        if x >> 63:
            raise InvalidInput("invalid tar header: base-256 field overflows")
        return ~x if inv else x
    return _parse_octal(b)


def _parse_dec(v: str) -> int:
    if not _DECIMAL.fullmatch(v):
        raise InvalidInput(f"invalid tar header: bad PAX number {v!r}")
    x = int(v)
    if not -(1 << 63) <= x < 1 << 63:
        raise InvalidInput(f"invalid tar header: PAX number {v!r} overflows")
    return x


def _parse_pax_time(v: str) -> int:
    """Go ``parsePAXTime`` to nanoseconds: fraction right-padded or truncated to 9 digits."""
    ss, dot, sn = v.partition(".")
    secs = _parse_dec(ss)
    if not dot or not sn:
        return secs * 1_000_000_000
    if not sn.isascii() or not sn.isdigit():
        raise InvalidInput(f"invalid tar header: bad PAX time {v!r}")
    nsecs = int(sn[:9].ljust(9, "0"))
    if ss.startswith("-"):
        nsecs = -nsecs
    return secs * 1_000_000_000 + nsecs


def _checksum_ok(blk: bytes) -> bool:
    """Go ``GetFormat`` checksum test: unsigned or signed byte sum, checksum field as spaces."""
    try:
        value = _parse_octal(blk[148:156])
    except InvalidInput:
        return False
    field_sum = sum(blk[148:156])
    unsigned = sum(blk) - field_sum + 8 * 32
    high = BLOCK - len(blk.translate(None, _HIGH_BYTES))
    high -= 8 - len(blk[148:156].translate(None, _HIGH_BYTES))
    signed = unsigned - 256 * high
    return value in (unsigned, signed)


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    """Go ``parsePAX``: ``"%d %s=%s\\n"`` records; GNU sparse 0.0 offset/numbytes are joined."""
    records: dict[bytes, bytes] = {}
    sparse: list[bytes] = []
    s = data
    while s:
        sp = s.find(b" ")
        if sp <= 0 or not s[:sp].isdigit():
            raise InvalidInput("invalid tar header: malformed PAX record")
        n = int(s[:sp])
        if n < 5 or n > len(s) or n <= sp + 1:
            raise InvalidInput("invalid tar header: malformed PAX record length")
        rec, nl, s = s[sp + 1 : n - 1], s[n - 1 : n], s[n:]
        if nl != b"\n":
            raise InvalidInput("invalid tar header: PAX record without newline")
        k, eq, v = rec.partition(b"=")
        if not eq or not k:
            raise InvalidInput("invalid tar header: PAX record without key")
        if k in (b"path", b"linkpath", b"uname", b"gname"):
            if b"\0" in v:
                raise InvalidInput("invalid tar header: NUL in PAX record")
        elif b"\0" in k:
            raise InvalidInput("invalid tar header: NUL in PAX key")
        if k in (b"GNU.sparse.offset", b"GNU.sparse.numbytes"):
            sparse.append(v)
        else:
            records[k] = v
    if sparse:
        records[b"GNU.sparse.map"] = b",".join(sparse)
    return records


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------------------------
# Reader


class TarReader:
    """Streaming reader; see the module docstring. Not thread-safe; one pass only."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        observer: TarObserver | None = None,
        eof_empty_segment: bool = True,
        digest: bool = True,
    ) -> None:
        """``digest=False`` skips the SHA-256 of the stream (no :attr:`diff_id`): for archives that
        are only unpacked, like ``load``'s outer tar, where hashing would cost ~1 s per GB.

        ``eof_empty_segment``: tar-split ends with a segment for the read that returned EOF.

        Docker's source decides whether that read carries bytes:

        * ``True`` -- the source returns EOF on a separate 0-byte read, so an empty segment always
          ends the tar-split. This is a plain file or a pipe through ``DecompressStream``'s bufio
          reader: ``docker load`` of an uncompressed ``layer.tar``, ``docker import`` of a file,
          ``docker commit`` (a pipe from the tar writer).
        * ``False`` -- the source hands the last bytes and EOF together (Go's ``compress/gzip``
          reader for pulled/gzip'd layers): no empty segment after trailing data; when nothing
          follows the end-of-archive blocks the empty segment still appears.
        """
        self._stream = stream
        self._obs = observer
        self._eof_empty = eof_empty_segment
        self._sha = hashlib.sha256() if digest else None
        self.bytes_read = 0
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._raw: list[bytes] = []  # raw bytes of the current segment (observer only)
        self._remaining = 0  # unread content of the current entry
        self._pad = 0  # block padding after the current entry's content
        self._crc = 0
        self._pending: tuple[bytes, int] | None = None  # (raw name, size) awaiting its CRC
        self._seen_end = False
        self._finished = False

    # ---- raw input ------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read the next chunk into the buffer (which must be drained). False at EOF."""
        if self._eof:
            return False
        data = self._stream.read(CHUNK)
        if not data:
            self._eof = True
            self._buf = memoryview(b"")
            self._pos = 0
            return False
        if self._sha is not None:
            self._sha.update(data)
        self.bytes_read += len(data)
        self._buf = memoryview(data)
        self._pos = 0
        return True

    def _take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at EOF), accounted as raw (non-content) bytes."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= n:
            self._pos = pos + n
            out = bytes(buf[pos : pos + n])
        else:
            parts = [bytes(buf[pos:])]
            got = len(parts[0])
            self._pos = len(buf)
            while got < n and self._fill():
                k = min(n - got, len(self._buf))
                parts.append(bytes(self._buf[:k]))
                self._pos = k
                got += k
            out = b"".join(parts)
        if self._obs is not None and out:
            self._raw.append(out)
        return out

    def _content_chunks(self, limit: int) -> Iterator[memoryview]:
        """Yield the next ``limit`` content bytes of the current entry as buffer views."""
        want = min(limit, self._remaining)
        while want > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise InvalidInput(f"truncated tar stream: {self._remaining} bytes of content missing")
            k = min(want, len(self._buf) - self._pos)
            view = self._buf[self._pos : self._pos + k]
            self._pos += k
            self._remaining -= k
            want -= k
            if self._pending is not None:
                self._crc = _crc64(view, initial=self._crc)
            yield view

    # ---- content of the current entry -------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the current entry's content (all of the rest when ``n < 0``)."""
        limit = self._remaining if n < 0 else n
        return b"".join(bytes(v) for v in self._content_chunks(limit))

    def copy_to_fd(self, fd: int) -> int:
        """Write the rest of the current entry's content to ``fd``; return the byte count."""
        total = 0
        for view in self._content_chunks(self._remaining):
            while view:
                w = os.write(fd, view)
                view = view[w:]
                total += w
        return total

    def _skip_content(self) -> None:
        for _ in self._content_chunks(self._remaining):
            pass
        if self._pending is not None:
            name, size = self._pending
            self._pending = None
            crc = None if size == 0 else struct.pack(">Q", self._crc)
            assert self._obs is not None
            self._obs.file_entry(name, size, crc)

    def _flush_segment(self) -> None:
        if self._obs is not None and self._raw:
            self._obs.segment(b"".join(self._raw))
        self._raw = []

    # ---- headers --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarHeader]:
        while True:
            hdr = self._next()
            if hdr is None:
                return
            yield hdr

    def _read_header_block(self) -> bytes | None:
        """One header block; None at the end of the archive (Go ``readHeader`` EOF rules)."""
        blk = self._take(BLOCK)
        if not blk:
            return None  # EOF exactly at a header boundary
        if len(blk) < BLOCK:
            raise InvalidInput("truncated tar stream: EOF inside a header")
        if blk == _ZERO_BLOCK:
            blk = self._take(BLOCK)
            if not blk:
                return None  # one zero block, then EOF
            if len(blk) < BLOCK:
                raise InvalidInput("truncated tar stream: EOF inside the end-of-archive blocks")
            if blk == _ZERO_BLOCK:
                return None
            raise InvalidInput("invalid tar header: zero block followed by a non-zero block")
        return blk

    def _read_special(self, size: int, what: str) -> bytes:
        if size < 0 or size > _MAX_SPECIAL:
            raise InvalidInput(f"invalid tar header: {what} of {size} bytes")
        data = self._take(size)
        if len(data) < size:
            raise InvalidInput(f"truncated tar stream: EOF inside {what}")
        self._pad = -size % BLOCK
        return data

    def _next(self) -> TarHeader | None:
        if self._seen_end:
            return None
        self._skip_content()
        pax: dict[bytes, bytes] = {}
        gnu_name: bytes | None = None
        gnu_link: bytes | None = None
        while True:
            pad = self._pad
            self._pad = 0
            if pad and len(self._take(pad)) < pad:
                self._end()  # Go: EOF inside padding is a clean end (tryReadFull)
                return None
            blk = self._read_header_block()
            if blk is None:
                self._end()
                return None
            hdr = self._parse_block(blk)
            flag = hdr.typeflag
            content = 0 if flag in _HEADER_ONLY else hdr.size
            if content < 0:
                raise InvalidInput(f"invalid tar header: negative size for {hdr.name!r}")
            if flag in (b"x", b"g"):
                pax = _parse_pax(self._read_special(content, "a PAX header"))
                if flag == b"g":
                    # Go returns a global header as an entry (moby ignores it; tar-split records it).
                    path = pax.get(b"path")
                    name = path if path else hdr.raw_name
                    self._flush_segment()
                    if self._obs is not None:
                        self._obs.file_entry(name, 0, None)
                    pax = {}
                continue
            if flag in (b"L", b"K"):
                data = _cstr(self._read_special(content, "a GNU long name"))
                if flag == b"L":
                    gnu_name = data
                else:
                    gnu_link = data
                continue
            if flag == b"S":
                raise InvalidInput(f"unsupported tar entry {hdr.name!r}: GNU sparse files")
            self._merge_pax(hdr, pax)
            if gnu_name:
                hdr.raw_name, hdr.name = gnu_name, _dec(gnu_name)
            if gnu_link:
                hdr.linkname = _dec(gnu_link)
            if hdr.typeflag == b"\0":
                hdr.typeflag = b"5" if hdr.raw_name.endswith(b"/") else b"0"
            content = 0 if hdr.typeflag in _HEADER_ONLY else hdr.size
            if content < 0:
                raise InvalidInput(f"invalid tar header: negative size for {hdr.name!r}")
            self._remaining = content
            self._pad = -content % BLOCK
            self._flush_segment()
            if self._obs is not None:
                self._pending = (hdr.raw_name, hdr.size)
                self._crc = 0
            return hdr

    def _end(self) -> None:
        self._seen_end = True
        self._flush_segment()

    def _parse_block(self, blk: bytes) -> TarHeader:
        if not _checksum_ok(blk):
            raise InvalidInput("invalid tar header: checksum mismatch (not a tar archive?)")
        magic, version = blk[257:263], blk[263:265]
        is_gnu = magic == b"ustar " and version == b" \0"
        is_ustar = magic == b"ustar\0"
        is_star = is_ustar and blk[508:512] == b"tar\0"
        raw_name = _cstr(blk[0:100])
        hdr = TarHeader(
            name="",
            typeflag=blk[156:157],
            mode=_parse_numeric(blk[100:108]),
            uid=_parse_numeric(blk[108:116]),
            gid=_parse_numeric(blk[116:124]),
            size=_parse_numeric(blk[124:136]),
            mtime_ns=_parse_numeric(blk[136:148]) * 1_000_000_000,
            linkname=_dec(_cstr(blk[157:257])),
        )
        if is_gnu or is_ustar:
            hdr.uname = _dec(_cstr(blk[265:297]))
            hdr.gname = _dec(_cstr(blk[297:329]))
            hdr.devmajor = _parse_numeric(blk[329:337])
            hdr.devminor = _parse_numeric(blk[337:345])
            prefix = b""
            if is_star:
                prefix = _cstr(blk[345:476])
            elif is_ustar:
                prefix = _cstr(blk[345:500])
            else:
                # Pre-Go1.8 writers put a USTAR prefix in GNU's atime/ctime; Go falls back to it
                # when those fields do not parse (moby's testdata/broken.tar).
                try:
                    for f in (blk[345:357], blk[357:369]):
                        if f[0] != 0:
                            _parse_numeric(f)
                except InvalidInput:
                    candidate = _cstr(blk[345:500])
                    if candidate.isascii():
                        prefix = candidate
            if prefix:
                raw_name = prefix + b"/" + raw_name
        hdr.raw_name = raw_name
        hdr.name = _dec(raw_name)
        hdr.mode &= 0o7777
        return hdr

    @staticmethod
    def _merge_pax(hdr: TarHeader, records: dict[bytes, bytes]) -> None:
        """Go ``mergePAX`` (empty values keep the header's own field)."""
        if not records:
            return
        for k, v in records.items():
            if k in (b"GNU.sparse.major", b"GNU.sparse.map") and v:
                raise InvalidInput(f"unsupported tar entry {hdr.name!r}: GNU sparse files")
            if not v:
                continue
            if k == b"path":
                hdr.raw_name, hdr.name = v, _dec(v)
            elif k == b"linkpath":
                hdr.linkname = _dec(v)
            elif k == b"uname":
                hdr.uname = _dec(v)
            elif k == b"gname":
                hdr.gname = _dec(v)
            elif k == b"uid":
                hdr.uid = _parse_dec(_dec(v))
            elif k == b"gid":
                hdr.gid = _parse_dec(_dec(v))
            elif k == b"mtime":
                hdr.mtime_ns = _parse_pax_time(_dec(v))
            elif k in (b"atime", b"ctime"):
                _parse_pax_time(_dec(v))  # validated like Go, not kept
            elif k == b"size":
                hdr.size = _parse_dec(_dec(v))
            elif k.startswith(b"SCHILY.xattr."):
                hdr.xattrs[_dec(k[13:])] = v
        hdr.pax = {_dec(k): _dec(v) for k, v in records.items()}

    # ---- end of stream --------------------------------------------------------------------

    def finish(self) -> None:
        """Read to EOF: remaining entries (skipped), end-of-archive blocks and trailing bytes."""
        if self._finished:
            return
        while self._next() is not None:
            pass
        had_data = False
        if self._pos < len(self._buf):
            rest = bytes(self._buf[self._pos :])
            self._pos = len(self._buf)
            if self._obs is not None:
                self._obs.segment(rest)
            had_data = True
        while self._fill():
            self._pos = len(self._buf)
            if self._obs is not None:
                self._obs.segment(bytes(self._buf))
            had_data = True
        if self._obs is not None and (self._eof_empty or not had_data):
            self._obs.segment(b"")
        self._finished = True

    @property
    def diff_id(self) -> str:
        """``sha256:<hex>`` of every byte read; the DiffID once :meth:`finish` has run."""
        if not self._finished:
            raise RuntimeError("diff_id is only known after finish()")
        if self._sha is None:
            raise RuntimeError("diff_id was not computed (TarReader(digest=False))")
        return "sha256:" + self._sha.hexdigest()


# --------------------------------------------------------------------------------------------
# Writer: Go archive/tar Writer with Format=PAX (moby pkg/archive)

_NAME, _PREFIX = 100, 155
_BASIC_PAX = frozenset(
    (b"path", b"linkpath", b"size", b"uid", b"gid", b"uname", b"gname", b"mtime", b"atime", b"ctime")
)


def _go_clean(p: bytes) -> bytes:
    """Go ``path.Clean``."""
    out = os.path.normpath(p) if p else b"."
    return b"/" + out.lstrip(b"/") if out.startswith(b"//") else out


def _is_ascii(s: bytes) -> bool:
    """Go ``isASCII``: 7-bit and no NUL."""
    return s.isascii() and b"\0" not in s


def _to_ascii(s: bytes) -> bytes:
    """Go ``toASCII``: drop NUL and every non-ASCII rune (invalid UTF-8 bytes included)."""
    if _is_ascii(s):
        return s
    return bytes(c for c in s if 0 < c < 0x80)


def _fits_octal(width: int, x: int) -> bool:
    return x >= 0 and (width >= 22 or x < 1 << ((width - 1) * 3))


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go ``splitUSTARPath``: (prefix, suffix) when a long ASCII name fits the prefix field."""
    length = len(name)
    if length <= _NAME or not _is_ascii(name):
        return None
    if length > _PREFIX + 1:
        length = _PREFIX + 1
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen, plen = len(name) - i - 1, i
    if i <= 0 or nlen > _NAME or nlen == 0 or plen > _PREFIX:
        return None
    return name[:i], name[i + 1 :]


def _put_str(blk: bytearray, off: int, width: int, s: bytes) -> None:
    """Go ``formatString``: copy, NUL-terminate when shorter, avoid a trailing ``/`` when cut."""
    blk[off : off + min(len(s), width)] = s[:width]
    if len(s) < width:
        blk[off + len(s)] = 0
    if len(s) > width and s[width - 1 : width] == b"/":
        n = len(s[: width - 1].rstrip(b"/"))
        blk[off + n] = 0


def _put_octal(blk: bytearray, off: int, width: int, x: int) -> None:
    """Go ``formatOctal``: zero-padded, room left for a NUL; 0 when it does not fit."""
    if not _fits_octal(width, x):
        x = 0
    s = b"%o" % x
    if width - len(s) - 1 > 0:
        s = b"0" * (width - len(s) - 1) + s
    _put_str(blk, off, width, s)


def _finish_block(blk: bytearray) -> bytes:
    """Go ``SetFormat(USTAR|PAX)``: magic ``ustar\\0`` + ``00`` and the checksum ``%06o\\0 ``."""
    blk[257:263] = b"ustar\0"
    blk[263:265] = b"00"
    blk[148:156] = b"        "
    _put_octal(blk, 148, 7, sum(blk))
    blk[155] = 0x20
    return bytes(blk)


def _pax_record(k: bytes, v: bytes) -> bytes:
    """Go ``formatPAXRecord``: ``"%d %s=%s\\n"`` where %d counts the whole record."""
    size = len(k) + len(v) + 3
    size += len(str(size))
    rec = b"%d %s=%s\n" % (size, k, v)
    if len(rec) != size:
        rec = b"%d %s=%s\n" % (len(rec), k, v)
    return rec


def _valid_pax(k: bytes, v: bytes) -> bool:
    if not k or b"=" in k:
        return False
    if k in (b"path", b"linkpath", b"uname", b"gname"):
        return b"\0" not in v
    return b"\0" not in k


def _format_pax_time(ns: int) -> bytes:
    secs, nsecs = divmod(ns, 1_000_000_000)
    if nsecs == 0:
        return b"%d" % secs
    sign = b""
    if secs < 0:
        sign, secs, nsecs = b"-", -(secs + 1), 1_000_000_000 - nsecs
    return (b"%s%d.%09d" % (sign, secs, nsecs)).rstrip(b"0")


def encode_header(h: TarHeader) -> bytes:
    """The header block(s) Go's Writer emits for ``h`` with ``Format=PAX``: one USTAR block when
    everything fits, else a ``PaxHeaders.0`` ``x`` header plus its records, then the PAX block.

    ``h.mode`` is written verbatim (Docker includes the file-type bits, e.g. ``0o100644``).
    """
    name = h.name.encode("utf-8", "surrogateescape")
    link = h.linkname.encode("utf-8", "surrogateescape")
    uname = h.uname.encode("utf-8", "surrogateescape")
    gname = h.gname.encode("utf-8", "surrogateescape")
    flag = h.typeflag
    if flag == b"\0":
        flag = b"5" if name.endswith(b"/") else b"0"
    given = {
        k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape") for k, v in h.pax.items()
    }
    pax: dict[bytes, bytes] = {}
    ustar_ok = pax_ok = True
    prefer_pax = False

    def verify_str(s: bytes, width: int, key: bytes) -> None:
        nonlocal ustar_ok
        if not _is_ascii(s) or len(s) > width:
            if not (key == b"path" and _split_ustar_path(s) is not None):
                ustar_ok = False
            pax[key] = s
        if given.get(key) == s:
            pax[key] = s

    def verify_num(n: int, width: int, key: bytes | None) -> None:
        nonlocal ustar_ok, pax_ok
        if not _fits_octal(width, n):
            ustar_ok = False
            if key is None:
                pax_ok = False
            else:
                pax[key] = b"%d" % n
        if key is not None and given.get(key) == b"%d" % n:
            pax[key] = b"%d" % n

    verify_str(name, 100, b"path")
    verify_str(link, 100, b"linkpath")
    verify_str(uname, 32, b"uname")
    verify_str(gname, 32, b"gname")
    verify_num(h.mode, 8, None)
    verify_num(h.uid, 8, b"uid")
    verify_num(h.gid, 8, b"gid")
    verify_num(h.size, 12, b"size")
    verify_num(h.devmajor, 8, None)
    verify_num(h.devminor, 8, None)
    secs = h.mtime_ns // 1_000_000_000
    if h.mtime_ns:
        fits = _fits_octal(12, secs)
        if not fits:
            ustar_ok = False
        if not fits or h.mtime_ns % 1_000_000_000:
            prefer_pax = True  # USTAR would truncate sub-second times
            pax[b"mtime"] = _format_pax_time(h.mtime_ns)
        if given.get(b"mtime") == _format_pax_time(h.mtime_ns):
            pax[b"mtime"] = given[b"mtime"]
    if flag in (b"0", b"3", b"4", b"6", b"S") and name.endswith(b"/"):
        raise InvalidInput(f"tar header {h.name!r}: filename may not have trailing slash")
    if flag in (b"x", b"g", b"L", b"K"):
        raise InvalidInput(f"tar header {h.name!r}: meta headers cannot be written directly")
    if flag not in _HEADER_ONLY and h.size < 0:
        raise InvalidInput(f"tar header {h.name!r}: negative size")
    if h.xattrs:
        ustar_ok = False
        for xk, xv in h.xattrs.items():
            pax[b"SCHILY.xattr." + xk.encode("utf-8", "surrogateescape")] = xv
    for k, v in given.items():
        if k in pax or k in _BASIC_PAX:
            continue
        if not _valid_pax(k, v):
            raise InvalidInput(f"tar header {h.name!r}: invalid PAX record {k!r}")
        ustar_ok = False
        pax[k] = v
    for k, v in pax.items():
        if not _valid_pax(k, v):
            raise InvalidInput(f"tar header {h.name!r}: invalid PAX record {k!r}")
    if prefer_pax:
        ustar_ok = False

    def template(name_field: bytes, fmt: bool) -> bytearray:
        conv = _to_ascii if fmt else (lambda b: b)
        blk = bytearray(BLOCK)
        blk[156:157] = flag
        _put_str(blk, 0, 100, conv(name_field))
        _put_str(blk, 157, 100, conv(link))
        _put_octal(blk, 100, 8, h.mode)
        _put_octal(blk, 108, 8, h.uid)
        _put_octal(blk, 116, 8, h.gid)
        _put_octal(blk, 124, 12, h.size)
        _put_octal(blk, 136, 12, secs)
        _put_str(blk, 265, 32, conv(uname))
        _put_str(blk, 297, 32, conv(gname))
        _put_octal(blk, 329, 8, h.devmajor)
        _put_octal(blk, 337, 8, h.devminor)
        return blk

    if ustar_ok:
        split = _split_ustar_path(name)
        blk = template(split[1] if split else name, False)
        _put_str(blk, 345, 155, split[0] if split else b"")
        return _finish_block(blk)
    if not pax_ok:
        raise InvalidInput(f"tar header {h.name!r}: a numeric field does not fit (mode or device numbers)")
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    if len(data) > _MAX_SPECIAL:
        raise InvalidInput(f"tar header {h.name!r}: PAX records too long")
    cut = name.rfind(b"/") + 1  # Go path.Split
    head, tail = name[:cut], name[cut:]
    xname = _to_ascii(_go_clean(b"/".join(p for p in (head, b"PaxHeaders.0", tail) if p)))[:100].rstrip(b"/")
    xblk = bytearray(BLOCK)
    xblk[156:157] = b"x"
    _put_str(xblk, 0, 100, xname)
    _put_octal(xblk, 100, 8, 0)
    _put_octal(xblk, 108, 8, 0)
    _put_octal(xblk, 116, 8, 0)
    _put_octal(xblk, 124, 12, len(data))
    _put_octal(xblk, 136, 12, 0)
    out = [_finish_block(xblk), data, bytes(-len(data) % BLOCK)]
    out.append(_finish_block(template(name, True)))
    return b"".join(out)


class TarWriter:
    """Go ``tar.Writer`` as Docker drives it (docker-layout.md 3.5): see :func:`encode_header`.

    ``add(header, content)`` writes the header, then exactly ``header.size`` content bytes from
    ``content`` (a binary file object or an fd) for regular files, then block padding.
    ``close()`` writes two zero blocks and nothing else (no record padding).
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.bytes_written = 0
        self._closed = False

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self.bytes_written += len(data)

    def add(self, header: TarHeader, content: BinaryIO | int | None = None) -> None:
        if self._closed:
            raise ValueError("TarWriter is closed")
        self._write(encode_header(header))
        flag = header.typeflag
        if flag == b"\0":
            flag = b"5" if header.name.endswith("/") else b"0"
        size = 0 if flag in _HEADER_ONLY else header.size
        if size == 0:
            return
        if content is None:
            raise InvalidInput(f"tar entry {header.name!r}: {size} bytes of content missing")
        left = size
        buf = bytearray(min(size, CHUNK))
        view = memoryview(buf)
        readinto = getattr(content, "readinto", None)
        while left:
            want = view[: min(left, len(buf))]
            if isinstance(content, int):
                n = os.readv(content, [want])
            elif readinto is not None:
                n = readinto(want)
            else:
                chunk = content.read(len(want))
                n = len(chunk)
                want[:n] = chunk
            if not n:
                raise InvalidInput(
                    f"tar entry {header.name!r}: file shrank while archiving ({size - left} of {size})"
                )
            self._write(view[:n])
            left -= n
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def close(self) -> None:
        """End-of-archive: exactly two zero blocks."""
        if not self._closed:
            self._write(bytes(2 * BLOCK))
            self._closed = True


# --------------------------------------------------------------------------------------------
# Headers from the filesystem (moby pkg/archive.FileInfoHeader)

_USERS_FILE = "/etc/passwd"
_GROUPS_FILE = "/etc/group"
_name_cache: dict[tuple[str, int], str] = {}


def _lookup(db: str, ident: int) -> str:
    """Name for a uid/gid from the host's passwd/group file, parsed as text.

    Never ``pwd``/``grp``: they go through glibc NSS, which loads ``libnss_*.so`` -- inside a
    chroot that means the container's libraries (CVE-2019-14271, reliability C4).
    """
    key = (db, ident)
    if key in _name_cache:
        return _name_cache[key]
    name = ""
    try:
        with open(db, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3 and parts[2] == str(ident) and parts[0]:
                    name = parts[0]
                    break
    except OSError:
        pass
    _name_cache[key] = name
    return name


def host_user_name(uid: int) -> str:
    """The host's name for ``uid`` ("" if none), from /etc/passwd parsed as text."""
    return _lookup(_USERS_FILE, uid)


def host_group_name(gid: int) -> str:
    """The host's name for ``gid`` ("" if none), from /etc/group parsed as text."""
    return _lookup(_GROUPS_FILE, gid)


def header_from_stat(path: str, name: str) -> TarHeader:
    """The header moby's ``FileInfoHeader`` builds for ``path`` archived as ``name``.

    Mode keeps the file-type bits, mtime is truncated to seconds, dirs get a trailing ``/``,
    symlinks their target, devices major/minor, and ``security.capability`` becomes a PAX xattr
    (moby ``addTarFile``). Hardlink detection (typeflag ``1``) is the caller's job, as in moby's
    ``tarAppender``. Sockets raise :class:`InvalidInput` (moby skips them).
    """
    st = os.lstat(path)
    fmt = stat_mod.S_IFMT(st.st_mode)
    h = TarHeader(
        name=name,
        mode=fmt | stat_mod.S_IMODE(st.st_mode),  # moby fillGo18FileTypeBits
        uid=st.st_uid,
        gid=st.st_gid,
        uname=_lookup(_USERS_FILE, st.st_uid),
        gname=_lookup(_GROUPS_FILE, st.st_gid),
        mtime_ns=st.st_mtime_ns // 1_000_000_000 * 1_000_000_000,
        devmajor=os.major(st.st_rdev),
        devminor=os.minor(st.st_rdev),
    )
    if fmt == stat_mod.S_IFREG:
        h.typeflag, h.size = b"0", st.st_size
    elif fmt == stat_mod.S_IFDIR:
        h.typeflag = b"5"
        if not name.endswith("/"):
            h.name = name + "/"
    elif fmt == stat_mod.S_IFLNK:
        h.typeflag, h.linkname = b"2", os.readlink(path)
    elif fmt == stat_mod.S_IFCHR:
        h.typeflag = b"3"
    elif fmt == stat_mod.S_IFBLK:
        h.typeflag = b"4"
    elif fmt == stat_mod.S_IFIFO:
        h.typeflag = b"6"
    else:
        raise InvalidInput(f"{path}: sockets not supported in tar archives", subject=path)
    h.raw_name = h.name.encode("utf-8", "surrogateescape")
    try:
        cap = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        cap = None
    if cap is not None:
        h.xattrs["security.capability"] = cap
    return h
