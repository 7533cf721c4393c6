"""The one network step every container needs before the network chapter: ``lo`` up.

A new network namespace has only a loopback device, and it is down: ``ping 127.0.0.1`` fails
until someone sets IFF_UP, which runc does for every container (``--network none`` included).
``ioctl(SIOCSIFFLAGS)`` on any socket in the namespace does it without netlink::

    unshare(CLONE_NEWNET); loopback_up()     # trace: ioctl(SIOCSIFFLAGS, "lo", IFF_UP)

Loaded at import (the container setup process may not import after fork).
"""

from __future__ import annotations

import fcntl
import struct

from minidocker import trace
from minidocker.kernel import sockets

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = struct.Struct("16sh14x")  # struct ifreq: name + short flags, padded to 32 bytes


def loopback_up(name: str = "lo") -> None:
    """Set IFF_UP on ``name`` in the current network namespace."""
    trace.emit(lambda: f'ioctl(SIOCSIFFLAGS, "{name}", IFF_UP)')
    s = sockets.inet_dgram()
    try:
        req = _IFREQ.pack(name.encode(), 0)
        flags = _IFREQ.unpack(fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _IFREQ.pack(name.encode(), flags | IFF_UP))
    finally:
        s.close()
