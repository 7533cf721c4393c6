"""Go ``encoding/json`` compatible output, for files that must match Docker byte for byte.

Rules (shared/docker-layout.md section 0.4): no whitespace; struct fields in declaration order
(build ``dict``s in that order, Python keeps it); map keys sorted (use :func:`sorted_map`);
``<>&`` and U+2028/U+2029 escaped as ``\\u003c``...; only ``\\n \\r \\t`` get short escapes (Go 1.19);
other control characters ``\\u00XX``; invalid UTF-8 (lone surrogates here) becomes U+FFFD;
other non-ASCII stays raw UTF-8.

>>> marshal({"b": 1, "a": "<x>"})
b'{"b":1,"a":"\\\\u003cx\\\\u003e"}'
"""

from __future__ import annotations

import re
import time

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    import datetime as _dt
    from typing import Any

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
# Two patterns: the one for ASCII text compiles in ~0.05 ms, the full one (U+2028/9 and the
# surrogates make it a large character set) in ~0.5 ms, on the path of every `run` (issue 3,
# "Speed"); it is compiled the first time a string has anything beyond ASCII (re caches it).
_NEEDS_ESCAPE_ASCII = re.compile('["\\\\\x00-\x1f<>&]')
_NEEDS_ESCAPE = '["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]'


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    esc = _ESCAPES.get(c)
    if esc is not None:
        return esc
    if "\ud800" <= c <= "\udfff":  # lone surrogate: invalid UTF-8 in Go terms
        return "\ufffd"
    return f"\\u{ord(c):04x}"


def encode_str(s: str) -> str:
    """A JSON string literal exactly as Go writes it."""
    if s.isascii():
        return '"' + _NEEDS_ESCAPE_ASCII.sub(_escape_char, s) + '"'
    return '"' + re.sub(_NEEDS_ESCAPE, _escape_char, s) + '"'


def _encode(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(encode_str(obj))
    elif isinstance(obj, int):
        out.append(str(obj))
    elif isinstance(obj, float):
        out.append(_go_float(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for k, v in obj.items():
            if not first:
                out.append(",")
            first = False
            out.append(encode_str(str(k)))
            out.append(":")
            _encode(v, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")
    elif isinstance(obj, RawJSON):
        out.append(obj.text)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as Go JSON")


def _go_float(f: float) -> str:
    # Go uses the shortest repr, and 'e' format only for very small/large magnitudes.
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


class RawJSON:
    """Pre-encoded JSON inserted verbatim (Go's ``json.RawMessage``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def marshal(obj: Any) -> bytes:
    """``json.Marshal``: no trailing newline."""
    out: list[str] = []
    _encode(obj, out)
    return "".join(out).encode("utf-8")


def encode_line(obj: Any) -> bytes:
    """``json.NewEncoder(w).Encode``: ``marshal`` plus a newline."""
    return marshal(obj) + b"\n"


def sorted_map(d: dict[str, Any]) -> dict[str, Any]:
    """A Go map: keys emitted in byte order."""
    return {k: d[k] for k in sorted(d, key=lambda s: s.encode("utf-8", "surrogateescape"))}


def canonical_top_level(obj: dict[str, Any]) -> bytes:
    """Docker's image-config serialisation: marshal the struct, re-marshal through
    ``map[string]RawMessage`` -- top-level keys sorted, nested objects keep struct order."""
    return marshal(sorted_map(obj))


def rfc3339nano(t: _dt.datetime | None = None, *, ns: int | None = None) -> str:
    """Go ``time.Format(RFC3339Nano)`` of a UTC time: fraction trimmed of trailing zeros.

    Pass ``ns`` (nanoseconds since the epoch) for full precision; a ``datetime`` has only
    microseconds.

    >>> rfc3339nano(ns=0)
    '1970-01-01T00:00:00Z'
    >>> rfc3339nano(ns=1_795_000_000_634_116_260)
    '2026-11-18T11:06:40.63411626Z'
    """
    if ns is None:
        if t is None:
            ns = time.time_ns()
        else:
            import datetime as _dt

            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.UTC)
            delta = t - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
            ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    secs, frac = divmod(ns, 1_000_000_000)
    # time.gmtime, not datetime: the same text, without importing datetime on every `run`
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def parse_rfc3339(s: str) -> int:
    """Parse an RFC3339(Nano) timestamp to nanoseconds since the epoch."""
    import datetime as _dt

    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise ValueError(f"not an RFC3339 time: {s!r}")
    base = _dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3)
    offset = 0
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    secs = int(base.replace(tzinfo=_dt.UTC).timestamp()) - offset
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return secs * 1_000_000_000 + frac
