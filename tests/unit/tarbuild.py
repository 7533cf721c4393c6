"""Craft raw tar streams from header descriptions, malicious ones included.

Python's :mod:`tarfile` refuses or rewrites much of what an attacker would send (``..`` names,
absolute link targets, negative sizes), so tests build the bytes themselves::

    from tarbuild import archive, reg, sym, lnk, dir_   # tests/unit is on sys.path under pytest
    data = archive(sym("loophole", "../victim"), reg("loophole/file", b"pwned"))

Every helper returns the bytes of one entry (optional PAX ``x`` header, the header block, the
content padded to 512); :func:`archive` joins them and appends the two zero blocks.
"""

from __future__ import annotations

import io
import tarfile

from minidocker.archive.tarstream import TarReader

BLOCK = 512


def _num(value: int, width: int) -> bytes:
    """An octal field (``width-1`` digits and a NUL), or GNU base-256 when it does not fit."""
    if 0 <= value < 8 ** (width - 1):
        return f"{value:0{width - 1}o}".encode() + b"\0"
    # base-256, two's complement, top bit set
    raw = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def _str(value: bytes | str, width: int) -> bytes:
    b = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(b) > width:
        raise ValueError(f"{b!r} does not fit in {width} bytes (use pax=)")
    return b.ljust(width, b"\0")


def header(
    name: bytes | str,
    typeflag: bytes = b"0",
    *,
    linkname: bytes | str = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    uname: str = "",
    gname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    prefix: bytes = b"",
    magic: bytes = b"ustar\x0000",
    raw_size: bytes | None = None,
) -> bytes:
    """One 512-byte header block with a correct checksum. ``raw_size`` overrides the size field."""
    blk = bytearray(BLOCK)
    blk[0:100] = _str(name, 100)
    blk[100:108] = _num(mode, 8)
    blk[108:116] = _num(uid, 8)
    blk[116:124] = _num(gid, 8)
    blk[124:136] = raw_size if raw_size is not None else _num(size, 12)
    blk[136:148] = _num(mtime, 12)
    blk[148:156] = b" " * 8
    blk[156:157] = typeflag
    blk[157:257] = _str(linkname, 100)
    blk[257:265] = magic
    blk[265:297] = _str(uname, 32)
    blk[297:329] = _str(gname, 32)
    blk[329:337] = _num(devmajor, 8)
    blk[337:345] = _num(devminor, 8)
    blk[345:500] = _str(prefix, 155)
    blk[148:156] = f"{sum(blk):06o}".encode() + b"\0 "
    return bytes(blk)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax_records(records: dict[str, str | bytes]) -> bytes:
    out = b""
    for k, v in records.items():
        body = k.encode() + b"=" + (v if isinstance(v, bytes) else v.encode()) + b"\n"
        n = len(body) + 2
        while len(str(n)) + 1 + len(body) != n:
            n = len(str(n)) + 1 + len(body)
        out += str(n).encode() + b" " + body
    return out


def entry(
    name: bytes | str,
    typeflag: bytes = b"0",
    data: bytes = b"",
    *,
    pax: dict[str, str | bytes] | None = None,
    global_pax: bool = False,
    **fields: object,
) -> bytes:
    """Header (+ PAX header when ``pax`` is given) + padded content."""
    out = b""
    if pax:
        body = pax_records(pax)
        out += header("PaxHeaders/x", b"g" if global_pax else b"x", size=len(body)) + _pad(body)
    size = fields.pop("size", len(data))
    if pax and "path" in pax and len(name) > 100:
        name = "long-name-in-pax"  # the PAX path record overrides the USTAR name field
    return out + header(name, typeflag, size=size, **fields) + _pad(data)  # type: ignore[arg-type]


def reg(name: str, data: bytes = b"", **fields: object) -> bytes:
    return entry(name, b"0", data, **fields)


def dir_(name: str, mode: int = 0o755, **fields: object) -> bytes:
    return entry(name, b"5", mode=mode, **fields)


def sym(name: str, target: str, **fields: object) -> bytes:
    fields.setdefault("mode", 0o777)
    return entry(name, b"2", linkname=target, **fields)


def lnk(name: str, target: str, **fields: object) -> bytes:
    return entry(name, b"1", linkname=target, **fields)


def global_header(name: str, records: dict[str, str | bytes] | None = None) -> bytes:
    body = pax_records(records or {"comment": "hello"})
    return header(name, b"g", size=len(body)) + _pad(body)


def archive(*entries: bytes, end: bool = True) -> bytes:
    return b"".join(entries) + (bytes(2 * BLOCK) if end else b"")


def reader(data: bytes) -> TarReader:
    return TarReader(io.BytesIO(data))


def files_tar(files: dict[str, bytes]) -> io.BytesIO:
    """A well-formed tar of regular files (made by :mod:`tarfile`), rewound: a layer to register.

    ``stores.layers.register(files_tar({"a": b"hello"}))``
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf
