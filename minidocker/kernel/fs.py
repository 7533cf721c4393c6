"""Filesystem syscalls Python's ``os`` module lacks, for the safe tar extractor.

``openat2(2)`` (Linux 5.6+) resolves a path the way a chroot would, without a chroot::

    from minidocker.kernel import fs
    root = fs.open_root("/var/lib/minidocker/overlay2/<id>/diff")
    fd = fs.openat2(root, "usr/lib", os.O_PATH | os.O_DIRECTORY, fs.RESOLVE_IN_ROOT | fs.RESOLVE_NO_MAGICLINKS)

With ``RESOLVE_IN_ROOT`` every ``..`` and every absolute symlink met on the way is taken relative to
``root``, so no path inside an archive, however crafted, can name a file outside it. That is exactly
the view Docker's ``docker-untar`` helper gets from ``chroot(2)``.

Tracing: ``open_root`` emits one event per extraction; ``openat2`` itself emits none, since the
extractor calls it once per directory of a 60k-file layer and a trace line each would swamp ``--trace``.
"""

from __future__ import annotations

import ctypes
import errno
import os

from minidocker import trace
from minidocker.kernel import _libc

# linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# openat2 has the same number on every architecture (it was added after the syscall tables were unified)
_SYS_OPENAT2 = 437
if os.uname().machine not in ("x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "loongarch64"):
    raise ImportError(f"openat2 syscall number unknown for {os.uname().machine}")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


# a private function object: other modules may call libc.syscall with other argtypes
_syscall = _libc["syscall"]
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_OpenHow), ctypes.c_size_t]
_HOW_SIZE = ctypes.sizeof(_OpenHow)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """``openat2(dirfd, path, {flags|O_CLOEXEC, mode, resolve})``; returns the new fd or raises OSError.

    EAGAIN (a concurrent rename raced the lookup under RESOLVE_IN_ROOT) is retried a few times.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    for _ in range(8):
        fd = _syscall(_SYS_OPENAT2, dirfd, raw, ctypes.byref(how), _HOW_SIZE)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def open_root(path: str) -> int:
    """Open a directory to be used as the ``dirfd`` root of ``openat2`` lookups (no symlink at the end)."""
    trace.emit(lambda: f'open("{path}", O_RDONLY|O_DIRECTORY|O_NOFOLLOW)')
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
