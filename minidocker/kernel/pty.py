"""A pty inside a container's own devpts instance, for ``exec -t``.

Every container mounts a new devpts (``newinstance``), so a terminal for a process joining it must
come from *that* instance: open its ``ptmx``, unlock the slave (TIOCSPTLCK) and ask its number
(TIOCGPTN). ``tty`` in the container then prints ``/dev/pts/N`` as with Docker; a host pty would
point at a device the container cannot see::

    master, slave = open_in(f"/proc/{pid}/root/dev/pts")   # trace: open .../ptmx; ioctl(TIOCGPTN) = 1
"""

from __future__ import annotations

import fcntl
import os
import struct

from minidocker import trace

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_in(pts_dir: str) -> tuple[int, int]:
    """(master, slave) fds of a new pty of the devpts mounted at ``pts_dir``; both close-on-exec."""
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    master = os.open(os.path.join(pts_dir, "ptmx"), flags)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        (n,) = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))
        trace.emit(lambda: f"open {pts_dir}/ptmx; ioctl(TIOCSPTLCK, 0); ioctl(TIOCGPTN) = {n}")
        slave = os.open(os.path.join(pts_dir, str(n)), flags)
    except BaseException:
        os.close(master)
        raise
    return master, slave
