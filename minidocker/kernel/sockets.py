"""The few sockets a container start needs, on ``_socket`` (the C module) instead of ``socket``.

``run`` talks to its monitor over a unix socket pair (``go <id>``, the start report, the pty
master passed as a file descriptor) and sets ``lo`` up with an ioctl on a datagram socket.
``import socket`` costs ~2 ms per ``run`` before the monitor is forked (issue 3, "Speed";
benchmarks/README.md round 5): at import it turns four groups of ``_socket``'s constants into
``IntEnum`` classes and imports ``selectors``. Everything here is what the C socket type already
does; only :func:`send_fds` and :func:`recv_fds` (``SCM_RIGHTS`` over ``sendmsg``/``recvmsg``)
are written out. The sockets are ``_socket.socket`` objects: the same methods (``recv``,
``sendall``, ``fileno``, ``settimeout``, ``detach``, ``close``), close-on-exec, but no ``with``.

>>> import os
>>> ours, theirs = socketpair()
>>> send_fds(ours, [b"M"], [0])
1
>>> data, fds = recv_fds(theirs, 16, 1)
>>> data, len(fds)
(b'M', 1)
>>> for fd in fds: os.close(fd)
>>> ours.close(); theirs.close()
"""

from __future__ import annotations

import _socket
import array

Socket = _socket.socket


def socketpair() -> tuple[Socket, Socket]:
    """A connected ``AF_UNIX``/``SOCK_STREAM`` pair, both ends close-on-exec."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def from_fd(fd: int) -> Socket:
    """The socket open at ``fd`` (the object owns it from now on: ``close()`` closes ``fd``)."""
    return _socket.socket(fileno=fd)


def inet_dgram() -> Socket:
    """An ``AF_INET`` datagram socket: a handle for the interface ioctls (``kernel.net``)."""
    return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)


def send_fds(sock: Socket, buffers: list[bytes], fds: list[int]) -> int:
    """Send ``buffers`` with copies of ``fds`` attached (``SCM_RIGHTS``); the bytes sent."""
    rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds).tobytes())
    return sock.sendmsg(buffers, [rights])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """Up to ``bufsize`` bytes and the descriptors that came with them (at most ``maxfds``;
    inheritable, as from ``socket.recv_fds``). ``b""`` once the peer closed."""
    ints = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * ints.itemsize))
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            ints.frombytes(payload[: len(payload) - len(payload) % ints.itemsize])
    return data, list(ints)
