"""The ``<mount-id>-init`` layer Docker puts between an image and a container's writable layer.

It holds the mount points and placeholder files that every container needs, whatever the image
contains (moby ``daemon/initlayer``): ``/proc``, ``/sys``, ``/dev/pts``, ``/dev/shm`` as dirs,
empty ``/.dockerenv``, ``/etc/{resolv.conf,hosts,hostname}`` and ``/dev/console`` for the runtime
to bind-mount over, and ``/etc/mtab -> /proc/mounts``.

The work happens *through the merged view* of the freshly mounted init layer, exactly like
Docker: each path component is unlinked first (so an image's own ``/etc/hosts`` file is replaced by
an empty one, but directories survive), then the entry is created only if ``stat`` no longer finds
it. Entries the image already has as directories (``/proc``) are therefore not duplicated.
"""

from __future__ import annotations

import contextlib
import os

from minidocker import trace

# (path, kind): "dir", "file", or a symlink target. Docker iterates a Go map (random order);
# the result does not depend on the order.
ENTRIES: list[tuple[str, str]] = [
    ("/dev/pts", "dir"),
    ("/dev/shm", "dir"),
    ("/proc", "dir"),
    ("/sys", "dir"),
    ("/.dockerenv", "file"),
    ("/etc/resolv.conf", "file"),
    ("/etc/hosts", "file"),
    ("/etc/hostname", "file"),
    ("/dev/console", "file"),
    ("/etc/mtab", "/proc/mounts"),
]


def _makedirs(path: str) -> None:
    """``idtools.MkdirAllAndChownNew(path, 0755, root)``: create missing dirs 0755 root:root."""
    if os.path.isdir(path):
        return
    _makedirs(os.path.dirname(path))
    os.mkdir(path, 0o755)
    os.chmod(path, 0o755)
    os.chown(path, 0, 0)


def setup(root: str) -> None:
    """Populate the init layer mounted at ``root`` (its merged view)."""
    trace.emit(lambda: f"init layer: placeholders in {root}")
    for path, kind in ENTRIES:
        parts = path.strip("/").split("/")
        prefix = root
        for p in parts:
            prefix = os.path.join(prefix, p)
            with contextlib.suppress(OSError):  # directories and missing entries stay as they are
                os.unlink(prefix)
        target = root + path
        if os.path.lexists(target) and os.path.exists(target):
            continue
        _makedirs(os.path.dirname(target))
        if kind == "dir":
            _makedirs(target)
        elif kind == "file":
            fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755)
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o755)
            os.close(fd)
        else:
            os.symlink(kind, target)
