"""The kernel seam: the only module that calls libc directly (through ctypes).

Every function emits one trace event with its real arguments, so ``minidocker --trace`` narrates
what the kernel was asked to do. Unit tests replace functions here with recording fakes
(``tests/unit/fakes.py``); integration tests run them for real.

Python 3.11 has no ``os.unshare``/``os.setns`` (3.12+), and no ``mount`` at all, hence ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os

from minidocker import trace

# The C library already loaded into this process (no ldconfig lookup: ctypes.util forks one).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class _Statx(ctypes.Structure):
    """``struct statx`` (linux/stat.h, 256 bytes), the fields :func:`is_mountpoint` reads."""

    _fields_ = [
        ("mask", ctypes.c_uint32),
        ("blksize", ctypes.c_uint32),
        ("attributes", ctypes.c_uint64),  # offset 8
        ("_nlink_to_blocks", ctypes.c_uint8 * 40),
        ("attributes_mask", ctypes.c_uint64),  # offset 56: which attribute bits this kernel knows
        ("_rest", ctypes.c_uint8 * 192),
    ]


_statx: ctypes._NamedFuncPointer | None
try:  # glibc >= 2.28
    _statx = _libc.statx
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_Statx)]
except AttributeError:
    _statx = None
AT_FDCWD = -100
AT_NO_AUTOMOUNT = 0x800
STATX_ATTR_MOUNT_ROOT = 0x2000  # Linux 5.8

# mount(2) flags we use (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SHARED = 0x100000
MS_SLAVE = 0x80000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

_MS_NAMES = {
    MS_RDONLY: "MS_RDONLY",
    MS_NOSUID: "MS_NOSUID",
    MS_NODEV: "MS_NODEV",
    MS_NOEXEC: "MS_NOEXEC",
    MS_REMOUNT: "MS_REMOUNT",
    MS_BIND: "MS_BIND",
    MS_SHARED: "MS_SHARED",
    MS_REC: "MS_REC",
    MS_PRIVATE: "MS_PRIVATE",
    MS_SLAVE: "MS_SLAVE",
    MS_STRICTATIME: "MS_STRICTATIME",
}


def _flag_names(flags: int) -> str:
    names = [n for bit, n in _MS_NAMES.items() if flags & bit]
    return "|".join(names) if names else "0"


def _check(ret: int, what: str, path: str | None = None) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _q(s: str | None) -> str:
    """A C string argument as strace shows it: "text" or NULL."""
    return "NULL" if s is None else '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """mount(2). Raises OSError with errno on failure."""
    trace.emit(lambda: f"mount({_q(source)}, {_q(target)}, {_q(fstype)}, {_flag_names(flags)}, {_q(data)})")
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    trace.emit(lambda: f'umount2("{target}", {"MNT_DETACH" if flags & MNT_DETACH else "0"})')
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def mknod_whiteout(path: str, *, dir_fd: int | None = None) -> None:
    """An overlayfs whiteout: a character device 0/0 with mode 0000, as Docker's ``Mknod(path, S_IFCHR, 0)``."""
    trace.emit(lambda: f'mknod("{path}", S_IFCHR, makedev(0, 0))')
    os.mknod(path, 0o020000, os.makedev(0, 0), dir_fd=dir_fd)


def set_opaque(path: str) -> None:
    """Mark an overlayfs directory opaque (hides everything below it in lower layers)."""
    trace.emit(lambda: f'lsetxattr("{path}", "trusted.overlay.opaque", "y")')
    os.setxattr(path, "trusted.overlay.opaque", b"y", follow_symlinks=False)


def is_mountpoint(path: str) -> bool:
    """True if ``path`` is the root of a mount (in this mount namespace).

    ``statx(2)`` answers in one system call (``STATX_ATTR_MOUNT_ROOT``, Linux 5.8); reading and
    parsing /proc/self/mountinfo, what we did before and still do on older kernels, cost ~0.12 ms
    per call, and a ``run`` asks 4-5 times (the overlay's ``merged/`` in create, start, teardown).

    >>> is_mountpoint("/proc"), is_mountpoint("/proc/self/fd")
    (True, False)
    """
    if _statx is not None:
        buf = _Statx()
        if _statx(AT_FDCWD, os.fsencode(path), AT_NO_AUTOMOUNT, 0, ctypes.byref(buf)) == 0:
            if buf.attributes_mask & STATX_ATTR_MOUNT_ROOT:
                return bool(buf.attributes & STATX_ATTR_MOUNT_ROOT)
        elif ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR):
            return False
    return listed_in_mountinfo(path)


def listed_in_mountinfo(path: str) -> bool:
    """True if ``path`` (symlinks resolved) is listed as a mount target in /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            target = os.fsencode(os.path.realpath(path))
            for line in f:
                fields = line.split(b" ")
                mp = fields[4].replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\012", b"\n")
                if mp.replace(b"\\134", b"\\") == target:
                    return True
    except FileNotFoundError:
        pass
    return False
