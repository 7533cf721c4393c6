"""seccomp(2): install a classic-BPF system call filter on the calling process.

A filter is a classic BPF program (``struct sock_filter`` instructions, 8 bytes each) that the kernel
runs on every system call, against a ``struct seccomp_data`` (nr, arch, instruction pointer, six
arguments); its return value decides: allow, fail with an errno, kill... ``namespaces.seccomp``
builds the program; this module only hands it to the kernel::

    from minidocker.kernel import seccomp
    seccomp.set_mode_filter(program)     # from now on, and in every child, and across execve
    seccomp.mode()                       # 2 (SECCOMP_MODE_FILTER): "Seccomp: 2" in /proc/self/status

Loading needs ``no_new_privs`` or CAP_SYS_ADMIN in the effective set (an unprivileged process could
otherwise filter a setuid program into misbehaving). A filter can never be removed, only stacked.
No TSYNC flag: the container setup process is single-threaded.
"""

from __future__ import annotations

import ctypes
import errno
import os

from minidocker import trace
from minidocker.kernel import _libc

# linux/seccomp.h and linux/prctl.h
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
BPF_MAXINSNS = 4096  # the kernel's limit for one classic BPF program

# looked up now: the loading process may no longer be able to look it up (os.uname, not
# platform: importing platform costs ~1-2 ms of every start)
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "arm64": 277, "riscv64": 277, "loongarch64": 277}.get(
    os.uname().machine
)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


# private function objects: other modules set other argtypes on theirs
_syscall = _libc["syscall"]
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
_prctl = _libc["prctl"]
_prctl.restype = ctypes.c_int
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]


def set_mode_filter(program: bytes, flags: int = 0) -> None:
    """Install ``program`` (classic BPF, 8-byte instructions) as a seccomp filter of this process.

    ``seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)``, or ``prctl(PR_SET_SECCOMP, ...)`` on kernels
    before 3.17 (no ``flags`` there). EACCES: neither no_new_privs nor CAP_SYS_ADMIN; EINVAL: the
    kernel's checker refused the program.
    """
    if not program or len(program) % 8 or len(program) // 8 > BPF_MAXINSNS:
        raise ValueError(
            f"a seccomp program is 1 to {BPF_MAXINSNS} 8-byte instructions, got {len(program)} bytes"
        )
    count = len(program) // 8
    trace.emit(lambda: f"seccomp(SECCOMP_SET_MODE_FILTER, {flags}, {{len={count}, filter=...}})")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(count, ctypes.addressof(buf))
    if _SYS_SECCOMP is not None:
        if _syscall(_SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog)) == 0:
            return
        err = ctypes.get_errno()
        if err != errno.ENOSYS:
            raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
    if flags:
        raise OSError(errno.ENOSYS, "seccomp(2) with flags is not available on this kernel")
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): {os.strerror(err)}")


def mode() -> int:
    """``prctl(PR_GET_SECCOMP)``: 0 (none), 2 (filter). Mode 1 (strict) would have killed us."""
    ret = _prctl(PR_GET_SECCOMP, 0, None, 0, 0)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_GET_SECCOMP): {os.strerror(err)}")
    return int(ret)
