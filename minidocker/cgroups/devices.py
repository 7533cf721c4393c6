"""Device rules: which device nodes a container may open or create, shared by both drivers.

A rule is the text cgroup v1 takes in ``devices.allow``: ``<type> <major>:<minor> <access>`` with
type ``c`` (character), ``b`` (block) or ``a`` (all), ``*`` for any number, and access letters
``r`` (read), ``w`` (write), ``m`` (mknod). v1 writes the text as is (``V1Cgroup.restrict_devices``);
v2 compiles the same rules into an eBPF program (``devices_bpf``).

>>> DeviceRule.parse("c 136:* rwm")
DeviceRule(type='c', major=136, minor=None, access='rwm', allow=True)
>>> str(DeviceRule.parse("b *:* m"))
'b *:* m'
"""

from __future__ import annotations

import re

from minidocker.errors import InvalidInput
from minidocker.record import FrozenRecord, record

# Docker's default device rules (oci.DefaultSpec + daemon/oci_linux.go), in the order runc writes
# them after ``devices.deny a``: mknod of anything, then the usual character devices.
DEFAULT_ALLOWED_DEVICES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # /dev/null
    "c 1:5 rwm",  # /dev/zero
    "c 1:7 rwm",  # /dev/full
    "c 1:8 rwm",  # /dev/random
    "c 1:9 rwm",  # /dev/urandom
    "c 5:0 rwm",  # /dev/tty
    "c 5:1 rwm",  # /dev/console
    "c 5:2 rwm",  # /dev/ptmx
    "c 10:200 rwm",  # /dev/net/tun
    "c 136:* rwm",  # /dev/pts/*
)

_RULE_RE = re.compile(r"^([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")
_MAX_NUMBER = (1 << 31) - 1  # eBPF compares with a sign-extended 32-bit immediate


@record(frozen=True)
class DeviceRule(FrozenRecord):
    """One rule; ``None`` as major or minor is ``*``; ``allow=False`` makes it a deny rule."""

    type: str
    major: int | None
    minor: int | None
    access: str
    allow: bool = True

    @classmethod
    def parse(cls, text: str, *, allow: bool = True) -> DeviceRule:
        """A ``devices.allow`` line; ``a`` alone (as in ``devices.deny``) means ``a *:* rwm``.

        >>> DeviceRule.parse("a")
        DeviceRule(type='a', major=None, minor=None, access='rwm', allow=True)
        """
        if text.strip() == "a":
            return cls("a", None, None, "rwm", allow)
        m = _RULE_RE.match(text.strip())
        if m is None or len(set(m.group(4))) != len(m.group(4)):
            raise InvalidInput(f"invalid device rule: {text!r}", subject=text)
        major, minor = (None if g == "*" else int(g) for g in (m.group(2), m.group(3)))
        for n in (major, minor):
            if n is not None and n > _MAX_NUMBER:
                raise InvalidInput(f"invalid device rule: {text!r} (number too large)", subject=text)
        return cls(m.group(1), major, minor, m.group(4), allow)

    def __str__(self) -> str:
        def num(n: int | None) -> str:
            return "*" if n is None else str(n)

        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"
