"""The pull pipeline's parts without a registry: Docker's progress text, the growing-file reader,
the inflater thread, the resume check, and the extract scheduling."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time

import pytest

from minidocker.errors import InvalidInput
from minidocker.registry import apply, download, progress, unpack
from minidocker.registry.client import DigestMismatch, RegistryError
from minidocker.registry.manifest import Descriptor


def test_human_size_like_go_units() -> None:
    assert progress.human_size(0) == "0B"
    assert progress.human_size(512) == "512B"
    assert progress.human_size(1500) == "1.5kB"
    assert progress.human_size(12_345_678) == "12.35MB"
    assert progress.human_size(45_600_000) == "45.6MB"
    assert progress.human_size(1_100_000_000) == "1.1GB"


def test_bar_text_like_jsonmessage() -> None:
    text = progress.bar_text(12_300_000, 45_600_000)
    # int(12.3/45.6*100) // 2 = 13 "=" then ">" then 37 spaces: 51 chars inside the brackets
    assert text == "[" + "=" * 13 + ">" + " " * 37 + "] " + "  12.3MB/45.6MB"  # "%8v/%v"
    assert progress.bar_text(10, 10).startswith("[" + "=" * 50 + ">]")
    assert progress.bar_text(5, 0) == "      5B"


def test_terminal_redraws_a_layer_line_in_place() -> None:
    out = io.StringIO()
    t = progress.Terminal(out)
    t.status("aaa", "Pulling fs layer")
    t.status("bbb", "Pulling fs layer")
    t.status("aaa", "Download complete")
    t.line("Digest: x")
    assert out.getvalue() == (
        "aaa: Pulling fs layer\n"
        "bbb: Pulling fs layer\n"
        "\x1b[2A\x1b[2K\raaa: Download complete\r\x1b[2B"
        "Digest: x\n"
    )


def test_terminal_throttles_bars_but_plain_prints_none() -> None:
    out = io.StringIO()
    t = progress.Terminal(out)
    t.status("aaa", "Pulling fs layer")
    for n in range(1, 100):
        t.bar("aaa", "Downloading", n, 100)
    assert out.getvalue().count("Downloading") == 1  # within BAR_INTERVAL: one redraw
    t.bar("aaa", "Downloading", 100, 100)  # the last one always shows
    assert out.getvalue().count("Downloading") == 2
    lines: list[str] = []
    p = progress.Plain(lines.append)
    p.bar("aaa", "Downloading", 1, 2)
    p.status("aaa", "Pull complete")
    assert lines == ["aaa: Pull complete"]


def _blob(tmp_path, data: bytes) -> download.Blob:  # type: ignore[no-untyped-def]
    path = tmp_path / "blob"
    path.write_bytes(b"")
    return download.Blobs().add(
        Descriptor("x", "sha256:" + hashlib.sha256(data).hexdigest(), len(data)), str(path)
    )


def test_tail_reader_follows_the_download_and_ends_only_once_verified(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 4096  # 1 MiB
    blob = _blob(tmp_path, data)
    reader = download.TailReader(blob)

    def writer() -> None:
        with open(blob.path, "r+b") as f:
            for off in range(0, len(data), 100_000):
                f.write(data[off : off + 100_000])
                f.flush()
                with blob.owner.cond:
                    blob.written = min(off + 100_000, len(data))
                    blob.owner.cond.notify_all()
                time.sleep(0.002)
        time.sleep(0.05)
        with blob.owner.cond:
            blob.verified = True
            blob.owner.cond.notify_all()

    t = threading.Thread(target=writer)
    t.start()
    got = bytearray()
    while chunk := reader.read(65536):
        got += chunk
    t.join()
    assert bytes(got) == data and blob.verified
    reader.close()


def test_tail_reader_raises_the_download_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blob = _blob(tmp_path, b"abc")
    reader = download.TailReader(blob)
    blob.error = DigestMismatch("filesystem layer verification failed for digest sha256:x")
    with pytest.raises(DigestMismatch, match="verification failed"):
        reader.read(10)
    other = _blob(tmp_path, b"abc")
    other.owner.abort(RuntimeError("another layer failed"))
    with pytest.raises(download.Cancelled):
        download.TailReader(other).read(10)


def test_replayed_prefix_must_hash_like_the_kept_bytes() -> None:
    kept = hashlib.sha256(b"hello ")
    desc = Descriptor("x", "sha256:" + "0" * 64, 11)
    h = download._replay_prefix(_Raw(b"hello world"), kept, 6, desc)
    h.update(b"world")
    assert h.hexdigest() == hashlib.sha256(b"hello world").hexdigest()
    with pytest.raises(DigestMismatch):
        download._replay_prefix(_Raw(b"HELLO world"), hashlib.sha256(b"hello "), 6, desc)
    with pytest.raises(RegistryError):
        download._replay_prefix(_Raw(b"hel"), hashlib.sha256(b"hello "), 6, desc)


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.f = io.BytesIO(data)

    def read(self, n: int, decode_content: bool = False) -> bytes:
        return self.f.read(n)


def test_backoff_doubles_and_is_capped() -> None:
    assert [download._backoff(a) for a in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_inflater_hashes_the_uncompressed_stream() -> None:
    raw = b"layer tar bytes " * 200_000
    inf = unpack.Inflater(io.BytesIO(gzip.compress(raw)))  # type: ignore[arg-type]
    assert inf.kind == "gzip"
    got = bytearray()
    while chunk := inf.read(100_000):
        assert len(chunk) <= 100_000
        got += chunk
    assert bytes(got) == raw
    assert inf.diff_id() == "sha256:" + hashlib.sha256(raw).hexdigest()
    inf.close()


def test_inflater_reports_a_corrupt_stream_and_stops() -> None:
    bad = gzip.compress(b"x" * 100_000)
    bad = bad[:20] + b"\xff" * 40 + bad[60:]
    inf = unpack.Inflater(io.BytesIO(bad))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="gzip"):
        while inf.read(65536):
            pass
    inf.close()
    plain = unpack.Inflater(io.BytesIO(b"not compressed"))  # type: ignore[arg-type]
    assert plain.kind == "none" and plain.read() == b"not compressed"
    plain.close()


def test_schedule_hands_out_the_lowest_layer_and_results_in_order() -> None:
    plan = apply.Schedule([1, 3, 4])
    assert plan.claim() == 1
    assert plan.claim() == 3
    plan.give_back(3)
    assert plan.claim() == 3
    plan.done(3, ("sha256:c", 7))
    assert plan.ready(3) and not plan.ready(1)
    plan.done(1, InvalidInput("boom"))
    with pytest.raises(InvalidInput, match="boom"):
        plan.result(1)
    assert plan.result(3) == ("sha256:c", 7)
    plan.stop()
    assert plan.claim() is None
