"""Decoding JSON the way Go's ``encoding/json`` decodes it into Docker's structs.

Docker re-encodes image configs through its Go structs in several places (``docker save``'s v1
``json`` files and the hashed form behind v1 IDs, ``docker image inspect``): unknown keys vanish,
keys match case-insensitively, nested configs come out in struct order with ``omitempty`` applied,
a string ``Cmd`` becomes a one-element list, times are re-formatted. Matching those bytes means
decoding through the same rules; a value Go would refuse (a number where a string belongs) is
refused here too, with Go's error text.

>>> go_container_config({"cmd": "sh", "Bogus": 1})["Cmd"]
['sh']
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minidocker import gojson


class GoDecodeError(ValueError):
    """A value Go's encoding/json would refuse to decode into Docker's structs."""


# =============================================================================================
# Go struct decoding: image.Image / image.V1Image / container.Config
#
# The v1 ``json`` files (and the hashed form behind v1 IDs) are Docker *re-encoding* the config
# through its Go structs: unknown keys vanish, nested configs come out in struct order, a string
# Cmd becomes a list, times are re-formatted. Loading decodes through the same structs, so a
# config Docker would refuse (a number where a string belongs...) is refused here too.
# =============================================================================================

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:(Z)|([+-])(\d\d):(\d\d))")


@dataclass(frozen=True)
class GoTime:
    """A ``time.Time`` as Docker round-trips it: the JSON text it marshals to, and its Unix seconds.

    >>> t = GoTime.parse("2026-11-23T09:25:03.849961816Z")
    >>> t.text, t.unix
    ('2026-11-23T09:25:03.849961816Z', 1795425903)
    >>> GoTime.parse("2026-11-23T10:25:03.500+01:00").text
    '2026-11-23T10:25:03.5+01:00'
    """

    text: str
    unix: int  # floor(seconds since the epoch); Docker's Chtimes clamps < 0 to 0

    @classmethod
    def parse(cls, s: str) -> GoTime:
        m = _RFC3339.fullmatch(s)
        if m is None:
            raise GoDecodeError(f'parsing time "{s}" as RFC3339: cannot parse')
        y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
        frac = (m.group(7) or "")[:9].ljust(9, "0")
        offset = 0 if m.group(8) else (int(m.group(10)) * 3600 + int(m.group(11)) * 60)
        if m.group(9) == "-":
            offset = -offset
        try:
            wall = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0))
            dt.datetime(y, mo, d, h, mi, se)  # range checks Go also does (month 13, day 32...)
        except (ValueError, OverflowError):
            raise GoDecodeError(f'parsing time "{s}": value out of range') from None
        return cls(_format_time(wall, int(frac), offset), wall - offset)

    @classmethod
    def epoch_local(cls) -> GoTime:
        """``time.Unix(0, 0)`` in the local zone (what non-top v1 layers carry)."""
        offset = time.localtime(0).tm_gmtoff
        return cls(_format_time(offset, 0, offset), 0)


GO_ZERO_TIME = GoTime("0001-01-01T00:00:00Z", -62135596800)


def _format_time(wall: int, nanos: int, offset: int) -> str:
    """Go's RFC3339Nano of a wall-clock time: fraction trimmed, ``Z`` for a zero offset."""
    base = (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=wall)).strftime("%Y-%m-%dT%H:%M:%S")
    if len(base) < 19:  # strftime drops leading zeros of years < 1000
        base = base.zfill(19)
    if nanos:
        base += "." + f"{nanos:09d}".rstrip("0")
    if offset == 0:
        return base + "Z"
    sign = "+" if offset > 0 else "-"
    offset = abs(offset)
    return f"{base}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"


def _go_fields(obj: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Map JSON keys to Go field names the way encoding/json does: exact match first, else
    case-insensitive; a later key for the same field overwrites an earlier one; others ignored."""
    lower = {n.lower(): n for n in names}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = k if k in names else lower.get(k.lower())
        if name is not None:
            out[name] = v
    return out


def _g_str(v: Any, what: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type string ({what})")
    return v


def _g_bool(v: Any, what: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type bool ({what})")
    return v


def _g_int(v: Any, what: str) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or not -(1 << 63) <= v < (1 << 63):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type int64 ({what})")
    return v


def _g_str_list(v: Any, what: str) -> list[str] | None:
    if v is None:
        return None
    if not isinstance(v, list):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type []string ({what})")
    return [_g_str(x, what) for x in v]


def _g_strslice(v: Any, what: str) -> list[str] | None:
    """``strslice.StrSlice``: a list, or a single string meaning a one-element list."""
    if isinstance(v, str):
        return [v]
    return _g_str_list(v, what)


def _g_set(v: Any, what: str) -> dict[str, Any] | None:
    """``map[string]struct{}`` (ExposedPorts, Volumes): sorted keys, every value ``{}``."""
    if v is None:
        return None
    if not isinstance(v, dict) or not all(x is None or isinstance(x, dict) for x in v.values()):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type map ({what})")
    return gojson.sorted_map(dict.fromkeys(v, {}))


def _g_str_map(v: Any, what: str) -> dict[str, str] | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go map[string]string ({what})")
    return gojson.sorted_map({k: _g_str(x, what) for k, x in v.items()})


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _g_health(v: Any) -> dict[str, Any] | None:
    """``*container.HealthConfig``: Test, Interval, Timeout, StartPeriod, Retries (all omitempty)."""
    if v is None:
        return None
    if not isinstance(v, dict):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type container.HealthConfig")
    f = _go_fields(v, ("Test", "Interval", "Timeout", "StartPeriod", "Retries"))
    out: dict[str, Any] = {}
    test = _g_str_list(f.get("Test"), "Healthcheck.Test")
    if test:
        out["Test"] = test
    for k in ("Interval", "Timeout", "StartPeriod", "Retries"):
        n = _g_int(f.get(k), f"Healthcheck.{k}")
        if n:
            out[k] = n
    return out


_CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
    "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
    "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
    "StopTimeout", "Shell",
)  # fmt: skip
_CONFIG_TYPES: dict[str, Callable[[Any, str], Any]] = {
    "AttachStdin": _g_bool, "AttachStdout": _g_bool, "AttachStderr": _g_bool, "Tty": _g_bool,
    "OpenStdin": _g_bool, "StdinOnce": _g_bool, "ArgsEscaped": _g_bool, "NetworkDisabled": _g_bool,
    "ExposedPorts": _g_set, "Volumes": _g_set, "Env": _g_str_list, "OnBuild": _g_str_list,
    "Cmd": _g_strslice, "Entrypoint": _g_strslice, "Shell": _g_strslice, "Labels": _g_str_map,
    "Healthcheck": lambda v, _w: _g_health(v),
    "StopTimeout": lambda v, w: None if v is None else _g_int(v, w),
}  # fmt: skip
# omitempty fields: dropped when zero (a nil pointer for Healthcheck/StopTimeout, len 0 for the rest)
_CONFIG_OMITEMPTY = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
                     "StopSignal", "StopTimeout", "Shell"}  # fmt: skip


def go_container_config(v: Any) -> dict[str, Any]:
    """Decode + re-encode a ``container.Config`` (all fields, Go order, Go omitempty).

    >>> c = go_container_config({"cmd": "sh", "Bogus": 1})
    >>> c["Cmd"], list(c)[:2], "Bogus" in c
    (['sh'], ['Hostname', 'Domainname'], False)
    """
    if v is None:
        v = {}
    if not isinstance(v, dict):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type container.Config")
    f = _go_fields(v, _CONFIG_FIELDS)
    out: dict[str, Any] = {}
    for name in _CONFIG_FIELDS:
        value = _CONFIG_TYPES.get(name, _g_str)(f.get(name), name)
        empty = value is None or value is False or value in ("", [], {})
        # (a non-nil Healthcheck pointer is kept even when the struct is empty)
        if name in _CONFIG_OMITEMPTY and empty and not (name == "Healthcheck" and value == {}):
            continue
        out[name] = value
    return out
