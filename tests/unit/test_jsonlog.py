"""The json-file log driver against dockerd 20.10's bytes (docker-layout.md 7.3)."""

from __future__ import annotations

import os
import random
import stat
import threading
import time
from pathlib import Path

from minidocker import gojson
from minidocker.container.jsonlog import (
    MAX_RECORD,
    JsonLogWriter,
    escape_log,
    format_timestamp,
    parse_time,
    read_logs,
)

DOCKER_LINES = [
    '{"log":"out-line\\n","stream":"stdout","time":"2026-11-23T09:27:35.026317941Z"}',
    '{"log":"err-line\\n","stream":"stderr","time":"2026-11-23T09:27:35.030005842Z"}',
    '{"log":"no-newline","stream":"stdout","time":"2026-11-23T09:31:01.392546483Z"}',
    '{"log":"tab\\u0009here \\u003cb\\u003e \\u0026 \\"q\\" \\\\ é\\r\\n","stream":"stdout",'
    '"attrs":{"spec":"yes"},"time":"2026-11-23T09:30:25.631453714Z"}',
    '{"log":"\\u0001ctl\\n","stream":"stdout","attrs":{"spec":"yes"},"time":"2026-11-23T09:30:25.631489337Z"}',
    '{"log":"'
    + "a" * 16384
    + '","stream":"stdout","attrs":{"spec":"yes"},"time":"2026-11-23T09:30:25.63411626Z"}',
]


class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def set(self, ts: str) -> None:
        self.ns = gojson.parse_rfc3339(ts)

    def __call__(self) -> int:
        return self.ns


def _read_lines(path: Path) -> list[str]:
    return path.read_bytes().decode().split("\n")


def test_docker_lines_byte_for_byte(tmp_path: Path) -> None:
    clock = Clock()
    p = tmp_path / "plain-json.log"
    w = JsonLogWriter(str(p), clock=clock)
    clock.set("2026-11-23T09:27:35.026317941Z")
    w.write("stdout", b"out-line\n")
    clock.set("2026-11-23T09:27:35.030005842Z")
    w.write("stderr", b"err-line\n")
    w.write("stdout", b"no-newline")
    clock.set("2026-11-23T09:31:01.392546483Z")
    w.close()
    assert _read_lines(p) == [*DOCKER_LINES[:3], ""]

    p = tmp_path / "attrs-json.log"
    w = JsonLogWriter(str(p), attrs={"spec": "yes"}, clock=clock)
    clock.set("2026-11-23T09:30:25.631453714Z")
    w.write("stdout", 'tab\there <b> & "q" \\ é\r\n'.encode())
    clock.set("2026-11-23T09:30:25.631489337Z")
    w.write("stdout", b"\x01ctl\n")
    clock.set("2026-11-23T09:30:25.63411626Z")
    w.write("stdout", b"a" * 20000 + b"\n")
    clock.set("2026-11-23T09:30:26Z")  # the rest of the long line keeps the first piece's time
    w.close()
    lines = _read_lines(p)
    assert lines[:3] == DOCKER_LINES[3:]
    assert lines[3] == (
        '{"log":"' + "a" * (20000 - 16384) + '\\n","stream":"stdout","attrs":{"spec":"yes"},'
        '"time":"2026-11-23T09:30:25.63411626Z"}'
    )
    assert lines[4:] == [""]
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_partial_records_across_writes(tmp_path: Path) -> None:
    clock = Clock()
    p = tmp_path / "c-json.log"
    w = JsonLogWriter(str(p), clock=clock)
    clock.ns = 1_000_000_000
    w.write("stdout", b"x" * 10000)  # still below 16 KiB: buffered
    assert p.read_bytes() == b""
    w.write("stderr", b"e" * 20000)  # one full 16 KiB piece goes out now
    clock.ns = 2_000_000_000
    w.write("stdout", b"x" * 6384 + b"tail\nnext\n")
    w.write("stderr", b"\n")
    w.close()
    recs = list(read_logs(str(p)))
    assert [(r.stream, len(r.line), r.time_ns) for r in recs] == [
        ("stderr", 16384, 1_000_000_000),
        ("stdout", 16384, 2_000_000_000),
        ("stdout", 5, 2_000_000_000),  # "tail\n": the time of its first piece
        ("stdout", 5, 2_000_000_000),
        ("stderr", 20000 - 16384 + 1, 1_000_000_000),
    ]
    assert recs[2].line == b"tail\n"


def test_line_of_exactly_16k_ends_with_a_lone_newline(tmp_path: Path) -> None:
    p = tmp_path / "c-json.log"
    with JsonLogWriter(str(p), clock=lambda: 5) as w:
        w.write("stdout", b"b" * MAX_RECORD + b"\n" + b"c" * (2 * MAX_RECORD))
    lines = [r.line for r in read_logs(str(p))]
    assert lines == [b"b" * MAX_RECORD, b"\n", b"c" * MAX_RECORD, b"c" * MAX_RECORD]


def test_invalid_utf8_and_split_characters(tmp_path: Path) -> None:
    assert escape_log(b"\xff\xfe ok \xe2\x82\n") == "\\ufffd\\ufffd ok \\ufffd\\ufffd\\n"
    assert escape_log("\u2028\u2029\x7f\t".encode()) == "\\u2028\\u2029\x7f\\u0009"
    p = tmp_path / "c-json.log"
    with JsonLogWriter(str(p), clock=lambda: 0) as w:
        w.write("stdout", b"a" * (MAX_RECORD - 1) + "é".encode() + b"\n")
    raw = p.read_bytes().decode().split("\n")
    assert raw[0].startswith('{"log":"' + "a" * (MAX_RECORD - 1) + '\\ufffd"')
    assert raw[1].startswith('{"log":"\\ufffd\\n"')


def _go_escape(s: bytes) -> str:
    """Oracle: a byte-at-a-time port of ffjsonWriteJSONBytesAsString with utf8.DecodeRune's rules."""
    out = []
    i = 0
    while i < len(s):
        b = s[i]
        if b < 0x80:
            if b == 0x5C or b == 0x22:
                out.append("\\" + chr(b))
            elif b == 0x0A:
                out.append("\\n")
            elif b == 0x0D:
                out.append("\\r")
            elif b < 0x20 or b in (0x3C, 0x3E, 0x26):
                out.append(f"\\u00{b:02x}")
            else:
                out.append(chr(b))
            i += 1
            continue
        size, lo, hi = 0, 0x80, 0xBF
        if 0xC2 <= b <= 0xDF:
            size = 2
        elif 0xE0 <= b <= 0xEF:
            size = 3
            lo, hi = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F)}.get(b, (0x80, 0xBF))
        elif 0xF0 <= b <= 0xF4:
            size = 4
            lo, hi = {0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(b, (0x80, 0xBF))
        ok = size > 0 and i + size <= len(s) and lo <= s[i + 1] <= hi
        ok = ok and all(0x80 <= c <= 0xBF for c in s[i + 2 : i + size])
        if not ok:
            out.append("\\ufffd")
            i += 1
            continue
        ch = s[i : i + size].decode()
        out.append("\\u2028" if ch == "\u2028" else "\\u2029" if ch == "\u2029" else ch)
        i += size
    return "".join(out)


def test_escaping_matches_go_on_random_bytes(tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = [bytes([i]) for i in range(256)] + [
        "é".encode(), "€".encode(), "\u2028".encode(), "😀".encode(), b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    ]  # fmt: skip
    data = b"".join(rng.choice(alphabet) for _ in range(40000))
    p = tmp_path / "c-json.log"
    with JsonLogWriter(str(p), clock=lambda: 0) as w:
        # chunk sizes chosen so both the one-pass fast path and the per-line path run
        pos = 0
        while pos < len(data):
            n = rng.choice([1, 7, 300, 5000, 20000])
            w.write("stdout", data[pos : pos + n])
            pos += n
    got = p.read_bytes().decode().split("\n")[:-1]
    # expected records: one per line (16 KiB pieces for longer ones), the last without \n
    expected: list[str] = []
    lines = data.split(b"\n")
    for k, line in enumerate(lines):
        last = k == len(lines) - 1
        while len(line) >= MAX_RECORD:
            expected.append(_go_escape(line[:MAX_RECORD]))
            line = line[MAX_RECORD:]
        if not last:
            expected.append(_go_escape(line + b"\n"))
        elif line:
            expected.append(_go_escape(line))
    tail = '","stream":"stdout","time":"1970-01-01T00:00:00Z"}'
    assert got == ['{"log":"' + e + tail for e in expected]


def test_hundred_thousand_lines_are_fast(tmp_path: Path) -> None:
    payload = b"".join(b"line %d of the output\n" % i for i in range(100_000))
    p = tmp_path / "c-json.log"
    t0 = time.perf_counter()
    with JsonLogWriter(str(p)) as w:
        for i in range(0, len(payload), 65536):  # pipe-sized reads
            w.write("stdout", payload[i : i + 65536])
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, elapsed
    t0 = time.perf_counter()
    recs = list(read_logs(str(p)))
    assert time.perf_counter() - t0 < 3.0
    assert len(recs) == 100_000
    assert recs[0].line == b"line 0 of the output\n" and recs[-1].line == b"line 99999 of the output\n"


def test_read_logs_tail_since_until_timestamps(tmp_path: Path) -> None:
    p = tmp_path / "c-json.log"
    t = [0]
    with JsonLogWriter(str(p), clock=lambda: t[0]) as w:
        for i in range(10):
            t[0] = (i + 1) * 1_000_000_000 + 500
            w.write("stdout" if i % 2 else "stderr", b"l%d\n" % i)
    assert [r.line for r in read_logs(str(p), tail=3)] == [b"l7\n", b"l8\n", b"l9\n"]
    assert list(read_logs(str(p), tail=0)) == []
    assert len(list(read_logs(str(p), tail=100))) == 10
    assert [r.line for r in read_logs(str(p), since=9_000_000_500)] == [b"l8\n", b"l9\n"]
    assert [r.line for r in read_logs(str(p), until=2_000_000_500)] == [b"l0\n", b"l1\n"]
    assert [r.line for r in read_logs(str(p), tail=5, since=8_000_000_000)] == [b"l7\n", b"l8\n", b"l9\n"]
    (first,) = read_logs(str(p), tail=1, timestamps=True)
    assert first.line == b"1970-01-01T00:00:10.000000500Z l9\n"
    assert first.stream == "stdout"
    assert list(read_logs(str(tmp_path / "missing.log"))) == []


def test_tail_offset_with_small_blocks(tmp_path: Path) -> None:
    p = tmp_path / "c-json.log"
    with JsonLogWriter(str(p), clock=lambda: 0) as w:
        w.write("stdout", b"".join(b"%05d\n" % i for i in range(30000)))  # > one 64 KiB block
    assert [r.line for r in read_logs(str(p), tail=2)] == [b"29998\n", b"29999\n"]
    assert len(list(read_logs(str(p), tail=25000))) == 25000


def test_follow_sees_growth_and_stops(tmp_path: Path) -> None:
    p = tmp_path / "c-json.log"
    w = JsonLogWriter(str(p))
    w.write("stdout", b"before\n")
    done = threading.Event()

    def producer() -> None:
        for i in range(5):
            time.sleep(0.02)
            w.write("stdout", b"after %d\n" % i)
        w.close()
        done.set()

    th = threading.Thread(target=producer)
    th.start()
    got = [r.line for r in read_logs(str(p), follow=True, stop=done.is_set, poll_interval=0.01)]
    th.join()
    assert got == [b"before\n"] + [b"after %d\n" % i for i in range(5)]


def test_time_helpers() -> None:
    ts = "2026-11-23T09:30:25.63411626Z"
    assert parse_time(ts) == gojson.parse_rfc3339(ts)
    assert parse_time("2026-11-23T09:30:25Z") == gojson.parse_rfc3339("2026-11-23T09:30:25Z")
    assert parse_time("2026-11-23T10:30:25+01:00") == gojson.parse_rfc3339("2026-11-23T09:30:25Z")
    assert format_timestamp(parse_time(ts)) == "2026-11-23T09:30:25.634116260Z"
