"""Open a file strictly beneath a directory, never following a symlink (openat2(2)).

Used to read layer content back out of ``overlay2/<cache-id>/diff`` while reassembling a tar from
tar-split: a layer is untrusted data, and a symlink planted in it must not make us read (and hand
out through ``save``/``push``) a host file.

>>> import os
>>> d = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
>>> fd = open_beneath(d, "hostname")  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import errno
import os

from minidocker import trace

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437  # same number on every architecture (unified syscall table)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_have_openat2: bool | None = None  # unknown until first use


def openat2(dirfd: int, path: str | bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """Raw openat2(2). Raises OSError (ENOSYS on kernels before 5.6)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    bpath = os.fsencode(path)
    fd = _libc.syscall(SYS_OPENAT2, dirfd, bpath, ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2: {os.strerror(err)}", os.fsdecode(bpath))
    return int(fd)


def open_beneath(root_fd: int, path: str | bytes, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` (relative; leading ``/`` ignored) beneath ``root_fd`` with no symlink anywhere.

    A symlink in any component fails with ``ELOOP``, a ``..`` escaping the root with ``EXDEV``.
    Falls back to a walk with ``O_NOFOLLOW`` on every component when openat2 is missing.
    """
    global _have_openat2
    bpath = os.fsencode(path).lstrip(b"/") or b"."
    trace.emit(lambda: f"openat2({root_fd}, {bpath!r}, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)")
    if _have_openat2 is not False:
        try:
            fd = openat2(root_fd, bpath, flags | os.O_NOFOLLOW, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
            _have_openat2 = True
            return fd
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM) or _have_openat2:
                raise
            _have_openat2 = False  # ENOSYS, or EPERM from an old seccomp profile
    return _walk_nofollow(root_fd, bpath, flags)


def _walk_nofollow(root_fd: int, bpath: bytes, flags: int) -> int:
    parts = [p for p in bpath.split(b"/") if p and p != b"."]
    if any(p == b".." for p in parts):
        raise OSError(errno.EXDEV, "path escapes its root", os.fsdecode(bpath))
    if not parts:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=root_fd)
    cur = root_fd
    try:
        for p in parts[:-1]:
            nxt = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            if cur != root_fd:
                os.close(cur)
            cur = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
    finally:
        if cur != root_fd:
            os.close(cur)
