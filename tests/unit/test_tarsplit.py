"""tar-split.json.gz: exact NDJSON lines, gzip header, byte-identical reassembly, corruption."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from minidocker.archive.tarstream import TarHeader, TarReader, TarWriter
from minidocker.errors import CorruptStore, InvalidInput
from minidocker.image import tarsplit
from minidocker.image.tarsplit import TarSplitWriter, assemble, assemble_digest, encode_entry, read_entries


def test_entry_lines_are_go_json():
    crc = base64.b64decode("JLkvipgZnYU=")
    assert (
        encode_entry(1, b"./etc/passwd", 30, crc, 5)
        == b'{"type":1,"name":"./etc/passwd","size":30,"payload":"JLkvipgZnYU=","position":5}\n'
    )
    assert encode_entry(1, b"./", 0, None, 1) == b'{"type":1,"name":"./","payload":null,"position":1}\n'
    assert encode_entry(2, b"", 0, b"", 558) == b'{"type":2,"payload":"","position":558}\n'
    assert encode_entry(2, b"", 0, b"\0\0\0", 0) == b'{"type":2,"payload":"AAAA","position":0}\n'
    assert (
        encode_entry(1, "opt/unicode-é.txt".encode(), 0, None, 3)
        == '{"type":1,"name":"opt/unicode-é.txt","payload":null,"position":3}\n'.encode()
    )
    assert (
        encode_entry(1, b"a<b>&", 0, None, 0)
        == b'{"type":1,"name":"a\\u003cb\\u003e\\u0026","payload":null,"position":0}\n'
    )
    raw = b"bad-\xff"
    assert (
        encode_entry(1, raw, 0, None, 0) == b'{"type":1,"name_raw":"YmFkLf8=","payload":null,"position":0}\n'
    )


def test_gzip_header_like_go(tmp_path):
    path = str(tmp_path / "ts.gz")
    with TarSplitWriter(path) as w:
        w.segment(b"x" * 512)
        w.file_entry(b"a", 0, None)
    data = (tmp_path / "ts.gz").read_bytes()
    assert data[:10] == bytes.fromhex("1f8b08000000000000ff")
    assert gzip.decompress(data) == encode_entry(2, b"", 0, b"x" * 512, 0) + encode_entry(1, b"a", 0, None, 1)
    assert [(e.type, e.name, e.position) for e in read_entries(path)] == [(2, b"", 0), (1, b"a", 1)]


def test_writer_to_file_object():
    buf = io.BytesIO()
    w = TarSplitWriter(buf)
    w.segment(b"")
    w.close()
    assert gzip.decompress(buf.getvalue()) == b'{"type":2,"payload":"","position":0}\n'


def test_duplicate_paths_rejected():
    w = TarSplitWriter(io.BytesIO())
    w.file_entry(b"./etc/passwd", 1, bytes(8))
    with pytest.raises(InvalidInput, match="duplicate"):
        w.file_entry(b"etc//passwd", 1, bytes(8))  # same after filepath.Clean
    assert tarsplit.go_clean(b"//a/../b/") == b"/b" and tarsplit.go_clean(b"") == b"."


# ---- round trips ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "empty").write_bytes(b"")
    os.symlink("passwd", root / "etc" / "link")
    os.link(root / "etc" / "passwd", root / "hard")
    os.mkfifo(root / "fifo")
    deep = root / ("d" * 70) / ("e" * 70)
    deep.mkdir(parents=True)
    (deep / ("n" * 90)).write_bytes(os.urandom(1234))
    (root / "opt").mkdir()
    (root / "opt" / "unicode-é.txt").write_bytes(b"u\n")
    with open(os.path.join(os.fsencode(root), b"raw-\xff\xfe"), "wb") as f:
        f.write(b"raw\n")
    (root / "big").write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    return root


def disassemble(data: bytes, ts_path: str, **kw) -> str:
    with TarSplitWriter(ts_path) as w:
        r = TarReader(io.BytesIO(data), observer=w, **kw)
        for _ in r:
            pass
        r.finish()
    return r.diff_id


def extract(data: bytes, dest) -> None:
    os.makedirs(dest)
    subprocess.run(["tar", "-xf", "-", "-C", str(dest)], input=data, check=True)


def writer_tar(root) -> bytes:
    """A tar made by our TarWriter the way Docker's export does (relative names, lexical order)."""
    from minidocker.archive.tarstream import header_from_stat

    buf = io.BytesIO()
    w = TarWriter(buf)
    seen: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            full = os.path.join(dirpath, n)
            rel = os.fsdecode(os.path.relpath(full, os.fsencode(root)))
            h = header_from_stat(os.fsdecode(full), rel)
            st = os.lstat(full)
            if h.is_reg and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    h.typeflag, h.linkname, h.size = b"1", seen[key], 0
                else:
                    seen[key] = rel
            if h.is_reg and h.size:
                with open(full, "rb") as f:
                    w.add(h, f)
            else:
                w.add(h)
    w.close()
    return buf.getvalue()


def make(kind: str, root) -> bytes:
    if kind in ("gnu", "posix"):
        return subprocess.run(
            ["tar", f"--format={kind}", "-C", str(root), "-cf", "-", "."], check=True, capture_output=True
        ).stdout
    if kind == "python":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            t.add(str(root), arcname=".")
        return buf.getvalue()
    return writer_tar(root)


@pytest.mark.parametrize("kind", ["gnu", "posix", "python", "ours"])
@pytest.mark.parametrize("eof_empty", [True, False])
def test_round_trip_byte_identical(tree, tmp_path, kind, eof_empty):
    data = make(kind, tree)
    ts = str(tmp_path / "tar-split.json.gz")
    diff_id = disassemble(data, ts, eof_empty_segment=eof_empty)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    extract(data, tmp_path / "diff")
    out = io.BytesIO()
    assemble(ts, str(tmp_path / "diff"), out)
    assert out.getvalue() == data
    assert assemble_digest(ts, str(tmp_path / "diff")) == diff_id
    entries = list(read_entries(ts))
    assert [e.position for e in entries] == list(range(len(entries)))
    assert (entries[-1].payload == b"") == (eof_empty or kind == "ours")
    names = {e.name for e in entries if e.type == 1}
    assert any(n.endswith(b"raw-\xff\xfe") for n in names)


def test_docker_commit_layer_shape(tmp_path):
    """docker-layout.md 3.4: a layer written by Go's tar writer has 512-byte header segments."""
    buf = io.BytesIO()
    w = TarWriter(buf)
    w.add(TarHeader(name="data/", typeflag=b"5", mode=0o40755))
    w.add(TarHeader(name="data/hardlink.txt", mode=0o100644, size=6), io.BytesIO(b"hello\n"))
    w.add(TarHeader(name="data/hello.txt", typeflag=b"1", linkname="data/hardlink.txt", mode=0o100644))
    w.add(TarHeader(name="data/sym", typeflag=b"2", linkname="hello.txt", mode=0o120777))
    w.close()
    ts = str(tmp_path / "ts.gz")
    disassemble(buf.getvalue(), ts)
    lines = gzip.decompress((tmp_path / "ts.gz").read_bytes()).splitlines()
    assert lines[1] == b'{"type":1,"name":"data/","payload":null,"position":1}'
    assert lines[3] == b'{"type":1,"name":"data/hardlink.txt","size":6,"payload":"YUw+7uLYEAA=","position":3}'
    seg = [e for e in read_entries(ts) if e.type == 2]
    assert [len(s.payload or b"") for s in seg] == [512, 512, 1018, 512, 1024, 0]


# ---- corrupt diff dirs ----------------------------------------------------------------------


@pytest.fixture
def layer(tmp_path):
    buf = io.BytesIO()
    w = TarWriter(buf)
    w.add(TarHeader(name="dir/", typeflag=b"5", mode=0o40755))
    w.add(TarHeader(name="dir/f", mode=0o100644, size=5), io.BytesIO(b"hello"))
    w.close()
    ts = str(tmp_path / "ts.gz")
    disassemble(buf.getvalue(), ts)
    diff = tmp_path / "diff"
    extract(buf.getvalue(), diff)
    return ts, diff


def test_crc_mismatch(layer):
    ts, diff = layer
    (diff / "dir" / "f").write_bytes(b"HELLO")
    with pytest.raises(CorruptStore, match="checksum"):
        assemble(ts, str(diff), io.BytesIO())
    assemble(ts, str(diff), io.BytesIO(), verify_crc=False)


@pytest.mark.parametrize("content", [b"hell", b"hello!"])
def test_wrong_size(layer, content):
    ts, diff = layer
    (diff / "dir" / "f").write_bytes(content)
    with pytest.raises(CorruptStore):
        assemble_digest(ts, str(diff))


def test_missing_file(layer):
    ts, diff = layer
    os.unlink(diff / "dir" / "f")
    with pytest.raises(CorruptStore, match="cannot be opened"):
        assemble_digest(ts, str(diff))


def test_symlinks_are_not_followed(layer, tmp_path):
    ts, diff = layer
    secret = tmp_path / "secret"
    secret.write_bytes(b"hello")  # same content and CRC: only the symlink check can catch it
    os.unlink(diff / "dir" / "f")
    os.symlink(secret, diff / "dir" / "f")
    with pytest.raises(CorruptStore, match="symlink"):
        assemble_digest(ts, str(diff))
    # a symlinked parent directory is refused as well
    os.unlink(diff / "dir" / "f")
    os.rmdir(diff / "dir")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_bytes(b"hello")
    os.symlink(tmp_path / "elsewhere", diff / "dir")
    with pytest.raises(CorruptStore):
        assemble_digest(ts, str(diff))


def test_walk_fallback_refuses_symlinks(tmp_path, monkeypatch):
    from minidocker.kernel import openat

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    os.symlink("real", tmp_path / "link")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(openat._walk_nofollow(root, b"real/f", os.O_RDONLY))
        with pytest.raises(OSError):
            openat._walk_nofollow(root, b"link/f", os.O_RDONLY)
        with pytest.raises(OSError):
            openat._walk_nofollow(root, b"../x", os.O_RDONLY)
    finally:
        os.close(root)


def test_corrupt_tarsplit_file(tmp_path):
    p = tmp_path / "ts.gz"
    p.write_bytes(gzip.compress(b'{"type":2,"payload":"not base64!","position":0}\n'))
    with pytest.raises(CorruptStore):
        list(read_entries(str(p)))
    p.write_bytes(b"not gzip")
    with pytest.raises(CorruptStore):
        list(read_entries(str(p)))
