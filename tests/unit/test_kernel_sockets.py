"""minidocker.kernel.sockets: socket pairs and SCM_RIGHTS on ``_socket`` (no root)."""

from __future__ import annotations

import doctest
import os
import socket

from minidocker import record
from minidocker.kernel import sockets


def test_doctests() -> None:
    assert doctest.testmod(sockets).failed == 0
    assert doctest.testmod(record).failed == 0


def test_descriptors_cross_to_the_stdlib_and_back() -> None:
    """Ours interoperate with ``socket.send_fds``/``recv_fds`` both ways: the same wire format."""
    ours, theirs = sockets.socketpair()
    r, w = os.pipe()
    try:
        peer = socket.socket(fileno=theirs.detach())
        sockets.send_fds(ours, [b"ab"], [r, w])
        data, fds, _, _ = socket.recv_fds(peer, 16, 2)
        assert data == b"ab" and len(fds) == 2
        os.write(fds[1], b"x")
        assert os.read(r, 1) == b"x"
        for fd in fds:
            os.close(fd)
        socket.send_fds(peer, [b"c"], [w])
        data, got = sockets.recv_fds(ours, 16, 1)
        assert data == b"c" and len(got) == 1 and os.path.samestat(os.fstat(got[0]), os.fstat(w))
        os.close(got[0])
        assert os.get_inheritable(ours.fileno()) is False  # close-on-exec, as socket.socketpair's
        peer.close()
        assert sockets.recv_fds(ours, 16, 1) == (b"", [])  # the peer closed
    finally:
        ours.close()
        os.close(r)
        os.close(w)


def test_plain_bytes_and_an_fd_sized_cap() -> None:
    ours, theirs = sockets.socketpair()
    try:
        ours.sendall(b"go 1234\n")
        assert sockets.recv_fds(theirs, 4096, 1) == (b"go 1234\n", [])
        dgram = sockets.inet_dgram()
        assert dgram.type & 0xF == socket.SOCK_DGRAM and not os.get_inheritable(dgram.fileno())
        dgram.close()
    finally:
        ours.close()
        theirs.close()
