"""Docker's ``json-file`` log driver: ``containers/<id>/<id>-json.log`` (0640), byte for byte.

One JSON object per record, keys ``log, stream, [attrs], time`` (shared/docker-layout.md 7.3)::

    {"log":"out-line\\n","stream":"stdout","time":"2026-11-23T09:27:35.026317941Z"}

Records follow the daemon's ``logger.Copier``: one per line, the ``\\n`` kept in ``log``; a line
reaching 16 KiB is cut into 16384-byte records without ``\\n`` that share the first piece's
timestamp (the record ending the line too); data left without a newline when the stream closes is
written as a last record without ``\\n``. Strings use the driver's own escaper (``jsonlogbytes.go``),
not encoding/json's: ``\\t`` is ``\\u0009``, only ``\\n``/``\\r`` get short escapes, ``<>&`` and
U+2028/2029 are escaped, each invalid UTF-8 byte becomes ``\\ufffd``, other UTF-8 stays raw.

Lines that arrive in one chunk share one timestamp: they did arrive together, and it lets a chunk
of thousands of short lines be escaped and framed with a few C-level string operations instead of a
Python loop per line (Docker stamps each line separately, microseconds apart).

>>> import io, os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "c-json.log")
>>> w = JsonLogWriter(p, clock=lambda: 1_795_000_000_000_000_000)
>>> w.write("stdout", b"out-line\\npart")
>>> w.close()
>>> open(p, "rb").read().decode()
'{"log":"out-line\\\\n","stream":"stdout","time":"2026-11-18T11:06:40Z"}\\n{"log":"part","stream":"stdout","time":"2026-11-18T11:06:40Z"}\\n'
>>> [(r.stream, r.line) for r in read_logs(p)]
[('stdout', b'out-line\\n'), ('stdout', b'part')]
"""

from __future__ import annotations

import json
import os
import re
import time
from _thread import allocate_lock  # threading.Lock without importing threading (~1 ms)
from collections.abc import Callable, Iterator

from minidocker import gojson

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import BinaryIO

MAX_RECORD = 16 * 1024  # logger.Copier's buffer: a longer line is split into partial records
LOG_MODE = 0o640

# Characters the driver escapes (Python str after surrogateescape decoding; \n handled apart).
# \udc80-\udcff are the invalid bytes of the input.
# Compiled on first use (~1 ms for both; a container that prints nothing never needs them).
_ESC_PATTERN = '[\x00-\x09\x0b-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]'
_ESC_NL_PATTERN = '[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]'
_ESC_MAP = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _esc(m: re.Match[str]) -> str:
    c = m.group(0)
    e = _ESC_MAP.get(c)
    if e is not None:
        return e
    if c >= "\udc80":
        return "\\ufffd"
    return f"\\u{ord(c):04x}"  # other control characters, \t included


def escape_log(data: bytes) -> str:
    """``ffjsonWriteJSONBytesAsString`` without the quotes.

    >>> escape_log('tab\\there <b> & "q" \\\\ é\\r\\n'.encode())
    'tab\\\\u0009here \\\\u003cb\\\\u003e \\\\u0026 \\\\"q\\\\" \\\\\\\\ é\\\\r\\\\n'
    >>> escape_log(b"bad\\xff")
    'bad\\\\ufffd'
    """
    s = data.decode("utf-8", "surrogateescape")  # one surrogate per invalid byte, like Go's DecodeRune
    return re.sub(_ESC_NL_PATTERN, _esc, s)  # re caches the compiled pattern


class JsonLogWriter:
    """Append a container's stdout/stderr to its json-file log.

    Feed raw chunks per stream with :meth:`write` (from the monitor's pipe readers; each stream is
    buffered separately, so interleaved partial lines never mix); :meth:`close` flushes what is
    left without a newline. ``attrs`` (``--log-opt labels/env/tag``) is emitted as a sorted map.

    Use::

        w = JsonLogWriter(f"{cdir}/{cid}-json.log")
        w.write("stdout", chunk)
        w.close()
    """

    def __init__(
        self,
        path: str,
        *,
        attrs: dict[str, str] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = path
        self._clock = clock
        self._attrs = "" if not attrs else ',"attrs":' + gojson.marshal(gojson.sorted_map(attrs)).decode()
        existed = os.path.exists(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
        if not existed:
            os.fchmod(self._fd, LOG_MODE)  # the umask must not loosen or tighten Docker's 0640
        self._pending: dict[str, bytes] = {}
        self._partial_ts: dict[str, str | None] = {}
        self._lock = allocate_lock()

    # -- framing --------------------------------------------------------------------------------
    def _tail(self, stream: str, ts: str) -> str:
        return f'","stream":"{stream}"{self._attrs},"time":"{ts}"}}\n'

    def _record(self, stream: str, piece: bytes, ts: str) -> str:
        if not piece:
            return f'{{"stream":"{stream}"{self._attrs},"time":"{ts}"}}\n'  # Log is omitempty
        return '{"log":"' + escape_log(piece) + self._tail(stream, ts)

    def _now(self) -> str:
        return gojson.rfc3339nano(ns=self._clock())

    def _cut_partials(self, stream: str, rest: bytes, out: list[str]) -> bytes:
        """Emit 16 KiB pieces of an unterminated line; return what stays buffered."""
        while len(rest) >= MAX_RECORD:
            ts = self._partial_ts.get(stream)
            if ts is None:
                ts = self._partial_ts[stream] = self._now()
            out.append(self._record(stream, rest[:MAX_RECORD], ts))
            rest = rest[MAX_RECORD:]
        return rest

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` read from ``stream`` (``stdout`` or ``stderr``)."""
        if not data:
            return
        with self._lock:
            buf = self._pending.get(stream, b"") + data
            out: list[str] = []
            nl = buf.rfind(b"\n")
            if nl < 0:
                self._pending[stream] = self._cut_partials(stream, buf, out)
                self._emit(out)
                return
            complete, rest = buf[: nl + 1], buf[nl + 1 :]
            lines = complete.split(b"\n")
            lines.pop()  # the empty piece after the final newline
            now = self._now()
            long_lines = len(complete) > MAX_RECORD and max(map(len, lines)) >= MAX_RECORD
            if self._partial_ts.get(stream) is not None or long_lines:
                for line in lines:
                    line = self._cut_partials(stream, line, out)
                    ts = self._partial_ts.pop(stream, None) or now
                    out.append(self._record(stream, line + b"\n", ts))
            else:
                # fast path: escape the whole chunk once, then frame every line with one join;
                # the escaper never emits a raw "\n", so splitting afterwards is exact.
                text = re.sub(_ESC_PATTERN, _esc, complete.decode("utf-8", "surrogateescape"))
                pieces = text.split("\n")
                pieces.pop()
                sep = "\\n" + self._tail(stream, now) + '{"log":"'
                out.append('{"log":"' + sep.join(pieces) + "\\n" + self._tail(stream, now))
            self._pending[stream] = self._cut_partials(stream, rest, out)
            self._emit(out)

    def _emit(self, out: list[str]) -> None:
        if not out:
            return
        view = memoryview("".join(out).encode("utf-8"))
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def flush_stream(self, stream: str) -> None:
        """The stream hit EOF: write its unterminated rest as a record without ``\\n``."""
        with self._lock:
            rest = self._pending.pop(stream, b"")
            if rest:
                ts = self._partial_ts.pop(stream, None) or self._now()
                self._emit([self._record(stream, rest, ts)])
            self._partial_ts.pop(stream, None)

    def close(self) -> None:
        for stream in list(self._pending):
            self.flush_stream(stream)
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> JsonLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- reading --------------------------------------------------------------------------------------
class LogRecord:
    """One json-file record: stream name, raw bytes of ``log`` and the time in ns since the epoch.
    (A plain class, not a ``typing.NamedTuple``: the monitor imports this module, not ``typing``.)"""

    __slots__ = ("stream", "line", "time_ns")

    def __init__(self, stream: str, line: bytes, time_ns: int) -> None:
        self.stream = stream
        self.line = line
        self.time_ns = time_ns

    def __repr__(self) -> str:
        return f"LogRecord(stream={self.stream!r}, line={self.line!r}, time_ns={self.time_ns!r})"


_sec_cache: dict[str, int] = {}


def parse_time(ts: str) -> int:
    """A record's RFC3339Nano ``time`` to ns; fast for the ``...Z`` form Docker writes.

    >>> parse_time("2026-11-23T09:27:35.026317941Z") % 1_000_000_000
    26317941
    """
    if len(ts) >= 20 and ts[-1] == "Z" and ts[19] in ".Z":
        head = ts[:19]
        secs = _sec_cache.get(head)
        if secs is None:
            import datetime as _dt  # reading logs only: not imported by every monitor

            dt = _dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
            secs = int(dt.timestamp())
            if len(_sec_cache) > 4096:
                _sec_cache.clear()
            _sec_cache[head] = secs
        frac = ts[20:-1] if ts[19] == "." else ""
        return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
    return gojson.parse_rfc3339(ts)


def format_timestamp(ns: int) -> str:
    """``jsonmessage.RFC3339NanoFixed`` (always 9 digits), what ``logs -t`` prefixes lines with.

    >>> format_timestamp(1_795_000_000_634_116_260)
    '2026-11-18T11:06:40.634116260Z'
    """
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}Z"


def decode_record(raw: bytes) -> LogRecord:
    """Parse one line of the log file."""
    d = json.loads(raw)
    line = (d.get("log") or "").encode("utf-8", "surrogatepass")
    return LogRecord(d.get("stream") or "", line, parse_time(d.get("time") or "0001-01-01T00:00:00Z"))


def _tail_offset(f: BinaryIO, n: int) -> int:
    """Offset where the last ``n`` lines of the file start (reads backwards in blocks)."""
    end = f.seek(0, os.SEEK_END)
    if n <= 0:
        return end
    pos = end
    count = 0
    block = 64 * 1024
    skip_last = True  # the file's final "\n" ends the last line, it does not start one
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        i = len(chunk)
        while True:
            i = chunk.rfind(b"\n", 0, i)
            if i < 0:
                break
            if skip_last and start + i == end - 1:
                skip_last = False
                continue
            skip_last = False
            count += 1
            if count == n:
                return start + i + 1
        skip_last = False
        pos = start
    return 0


def read_logs(
    path: str,
    *,
    tail: int | None = None,
    since: int | None = None,
    until: int | None = None,
    timestamps: bool = False,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.1,
) -> Iterator[LogRecord]:
    """The records of a json-file log, as ``docker logs`` selects them.

    ``tail`` keeps the last N records (0: none, None: all) and is applied before ``since``
    (ns; records strictly before it are skipped); reading ends at the first record after
    ``until``. ``timestamps`` prefixes each line with its RFC3339NanoFixed time and a space.
    ``follow`` keeps polling the file for growth until ``stop()`` returns true (e.g. the container
    exited); the data written up to then is still drained.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed in the finally below, generator-style
    except FileNotFoundError:
        return
    try:
        if tail is not None:
            f.seek(_tail_offset(f, tail))
        pending = b""
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                if not follow:
                    break
                if stop is not None and stop():
                    chunk = f.read()  # last writes before the stop
                    if not chunk:
                        break
                else:
                    time.sleep(poll_interval)
                    continue
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            for raw in data[:cut].split(b"\n"):
                if not raw:
                    continue
                rec = decode_record(raw)
                if since is not None and rec.time_ns < since:
                    continue
                if until is not None and rec.time_ns > until:
                    return
                if timestamps:
                    rec.line = format_timestamp(rec.time_ns).encode() + b" " + rec.line
                yield rec
    finally:
        f.close()
