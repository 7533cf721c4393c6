"""Namespace, capability and process-control syscalls, each traced (chapter 1).

Python 3.11 has no ``os.unshare``/``os.setns`` and nothing at all for ``pivot_root``, ``capset`` or
``prctl``, so they are called through ctypes here, the one place allowed to talk to libc::

    from minidocker.kernel import ns
    ns.unshare(ns.CLONE_NEWNS | ns.CLONE_NEWUTS)   # trace: unshare(CLONE_NEWNS|CLONE_NEWUTS)
    ns.sethostname("web")                          # trace: sethostname("web")
    caps = ns.capget()                             # CapSets(effective=..., permitted=..., inheritable=...)

Everything a container's setup process calls *after* ``pivot_root`` must already be loaded: the
host's Python library is no longer reachable then (and a lazily imported module could even be
found in the image). That is why every function object is created at import time below.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import termios

from minidocker import trace
from minidocker.kernel import _flag_names, _libc, _q
from minidocker.record import FrozenRecord, record

# -- clone(2) namespace flags (linux/sched.h) ----------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

CLONE_NAMES = {
    CLONE_NEWNS: "CLONE_NEWNS",
    CLONE_NEWUTS: "CLONE_NEWUTS",
    CLONE_NEWIPC: "CLONE_NEWIPC",
    CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET",
    CLONE_NEWCGROUP: "CLONE_NEWCGROUP",
    CLONE_NEWUSER: "CLONE_NEWUSER",
    CLONE_NEWTIME: "CLONE_NEWTIME",
}


def clone_flag_names(flags: int) -> str:
    """``CLONE_NEWNS|CLONE_NEWUTS`` for a flag word (``0`` when empty), in a stable order.

    >>> clone_flag_names(CLONE_NEWNS | CLONE_NEWPID)
    'CLONE_NEWNS|CLONE_NEWPID'
    """
    names = [n for bit, n in CLONE_NAMES.items() if flags & bit]
    unknown = flags & ~sum(CLONE_NAMES)
    if unknown:
        names.append(hex(unknown))
    return "|".join(names) if names else "0"


# -- prctl(2) options (linux/prctl.h) ------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# capget/capset header version 3: two 32-bit words per set (capabilities 0..63)
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# close_range(2) flags
CLOSE_RANGE_CLOEXEC = 1 << 2

# pivot_root has no glibc wrapper; close_range has one only since glibc 2.34
_SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "arm64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "ppc64le": 203,
    "s390x": 217,
}.get(os.uname().machine)
_SYS_CLOSE_RANGE = 436  # unified syscall table: same number everywhere

_syscall = _libc["syscall"]  # private function object: other modules set other argtypes
_syscall.restype = ctypes.c_long

_unshare = _libc["unshare"]
_unshare.argtypes = [ctypes.c_int]
_setns = _libc["setns"]
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_sethostname = _libc["sethostname"]
_sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_prctl = _libc["prctl"]
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_capget = _libc["capget"]
_capset = _libc["capset"]
_mount = _libc["mount"]
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_execve = _libc["execve"]
_execve.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]


def _check(ret: int, what: str, path: str | None = None) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


# -- namespaces ----------------------------------------------------------------------------------
def unshare(flags: int) -> None:
    """unshare(2): move the caller into new namespaces (``CLONE_NEWPID`` only affects its children)."""
    trace.emit(lambda: f"unshare({clone_flag_names(flags)})")
    _check(_unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0, *, path: str = "") -> None:
    """setns(2): join the namespace ``fd`` refers to (``/proc/<pid>/ns/net``, ``/run/netns/x``)."""
    # trace: setns(/proc/42/ns/net, CLONE_NEWNET)
    trace.emit(lambda: f"setns({path or fd}, {clone_flag_names(nstype)})")
    _check(_setns(fd, nstype), "setns", path or None)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2). ``pivot_root(".", ".")`` stacks the old root on top of the new one (runc's trick)."""
    trace.emit(lambda: f'pivot_root("{new_root}", "{put_old}")')
    if _SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, f"pivot_root syscall number unknown for {os.uname().machine}")
    _syscall.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p]
    _check(_syscall(_SYS_PIVOT_ROOT, os.fsencode(new_root), os.fsencode(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    """sethostname(2), in the caller's UTS namespace."""
    trace.emit(lambda: f'sethostname("{name}")')
    raw = name.encode()
    _check(_sethostname(raw, len(raw)), "sethostname")


def mount_fd(
    source: str | None,
    target_fd: int,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
    *,
    shown: str,
) -> None:
    """mount(2) onto the directory or file that ``target_fd`` (an ``O_PATH`` fd) refers to.

    The target was resolved beforehand with ``openat2(RESOLVE_IN_ROOT)``: mounting through
    ``/proc/self/fd/N`` then cannot be redirected by a symlink swapped in meanwhile (CVE-2021-30465).
    ``shown`` is the path printed in the trace (the container path, not ``/proc/self/fd/N``).
    """
    trace.emit(lambda: f"mount({_q(source)}, {_q(shown)}, {_q(fstype)}, {_flag_names(flags)}, {_q(data)})")
    target = f"/proc/self/fd/{target_fd}".encode()
    src, fs, opts = (None if v is None else os.fsencode(v) for v in (source, fstype, data))
    _check(_mount(src, target, fs, flags, opts), "mount", shown)


def mknod_char(name: str, major: int, minor: int, mode: int = 0o666, *, dir_fd: int, shown: str) -> None:
    """mknodat a character device (``/dev/null`` is 1:3). The umask applies: the container setup
    runs with umask 0, so the mode is exact."""
    trace.emit(lambda: f'mknod("{shown}", S_IFCHR|{mode:04o}, makedev({major}, {minor}))')
    os.mknod(name, 0o020000 | mode, os.makedev(major, minor), dir_fd=dir_fd)


# -- prctl ---------------------------------------------------------------------------------------
def _prctl_call(option: int, arg2: int = 0, what: str = "prctl") -> int:
    ret = _prctl(option, arg2, 0, 0, 0)
    _check(ret, what)
    return int(ret)


def set_dumpable(dumpable: bool) -> None:
    """PR_SET_DUMPABLE: a non-dumpable process cannot be ptraced nor its /proc/<pid>/{exe,mem,fd}
    opened by anyone without CAP_SYS_PTRACE (CVE-2016-9962, CVE-2019-5736). execve resets it to 1."""
    trace.emit(lambda: f"prctl(PR_SET_DUMPABLE, {int(dumpable)})")
    _prctl_call(PR_SET_DUMPABLE, int(dumpable))


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS 1: execve can no longer grant privileges (setuid bits, file caps). Irreversible."""
    trace.emit("prctl(PR_SET_NO_NEW_PRIVS, 1)")
    _prctl_call(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return bool(_prctl_call(PR_GET_NO_NEW_PRIVS))


def set_pdeathsig(sig: int) -> None:
    """PR_SET_PDEATHSIG: get ``sig`` when the parent *thread* dies (0 clears it)."""
    trace.emit(lambda: f"prctl(PR_SET_PDEATHSIG, {signal.Signals(sig).name if sig else 0})")
    _prctl_call(PR_SET_PDEATHSIG, sig)


def set_keepcaps(keep: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across setuid(0 → non-zero), so capset can follow."""
    trace.emit(lambda: f"prctl(PR_SET_KEEPCAPS, {int(keep)})")
    _prctl_call(PR_SET_KEEPCAPS, int(keep))


def set_child_subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to us, not to the host's init."""
    trace.emit("prctl(PR_SET_CHILD_SUBREAPER, 1)")
    _prctl_call(PR_SET_CHILD_SUBREAPER, 1)


def capbset_drop(cap: int, name: str = "") -> None:
    """PR_CAPBSET_DROP: remove ``cap`` from the bounding set (needs CAP_SETPCAP). Irreversible."""
    trace.emit(lambda: f"prctl(PR_CAPBSET_DROP, {name or cap})")
    _prctl_call(PR_CAPBSET_DROP, cap)


def capbset_read(cap: int) -> bool:
    return bool(_prctl_call(PR_CAPBSET_READ, cap))


def ambient_clear_all() -> None:
    """PR_CAP_AMBIENT_CLEAR_ALL: ambient capabilities would survive execve for non-root users."""
    trace.emit("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)")
    _prctl_call(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


# -- capabilities --------------------------------------------------------------------------------
@record(frozen=True)
class CapSets(FrozenRecord):
    """The three per-thread capability sets as 64-bit masks (bit n = capability n)."""

    effective: int
    permitted: int
    inheritable: int


def capget(pid: int = 0) -> CapSets:
    """capget(2) of ``pid`` (0: the caller)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_capget(ctypes.byref(hdr), data), "capget")
    return CapSets(
        effective=data[0].effective | data[1].effective << 32,
        permitted=data[0].permitted | data[1].permitted << 32,
        inheritable=data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) for the calling thread. Masks are 64-bit; effective must be a subset of permitted."""
    trace.emit(
        lambda: (
            f"capset(effective=0x{effective:016x}, permitted=0x{permitted:016x}, "
            f"inheritable=0x{inheritable:016x})"
        )
    )
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    lo, hi = 0xFFFFFFFF, 32
    data = (_CapData * 2)(
        _CapData(effective & lo, permitted & lo, inheritable & lo),
        _CapData(effective >> hi & lo, permitted >> hi & lo, inheritable >> hi & lo),
    )
    _check(_capset(ctypes.byref(hdr), data), "capset")


def cap_last_cap() -> int:
    """The highest capability number this kernel knows (40 on 5.9+)."""
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


# -- credentials ---------------------------------------------------------------------------------
def set_ids(uid: int, gid: int, groups: list[int]) -> None:
    """setgroups, then setresgid, then setresuid: in this order, since dropping uid 0 first would
    take away the right (CAP_SETGID) to change groups."""
    trace.emit(lambda: f"setgroups({groups}); setresgid({gid}, {gid}, {gid}); setresuid({uid}, {uid}, {uid})")
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


# -- file descriptors, terminal, exec --------------------------------------------------------------
def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """close_range(2) (Linux 5.9); falls back to a sweep of /proc/self/fd on older kernels."""
    trace.emit(
        lambda: (
            f"close_range({first}, {'~0U' if last == 0xFFFFFFFF else last}, "
            f"{'CLOSE_RANGE_CLOEXEC' if flags & CLOSE_RANGE_CLOEXEC else 0})"
        )
    )
    _syscall.argtypes = [ctypes.c_long, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]
    if _syscall(_SYS_CLOSE_RANGE, first, last, flags) == 0:
        return
    if ctypes.get_errno() not in (errno.ENOSYS, errno.EINVAL):
        _check(-1, "close_range")
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if first <= fd <= last:
            try:
                if flags & CLOSE_RANGE_CLOEXEC:
                    os.set_inheritable(fd, False)
                else:
                    os.close(fd)
            except OSError:
                pass  # the fd listdir itself used


def set_controlling_tty(fd: int) -> None:
    """ioctl(TIOCSCTTY): make the terminal on ``fd`` the controlling tty of our (new) session."""
    trace.emit(lambda: f"ioctl({fd}, TIOCSCTTY, 0)")
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def execve(path: str, argv: list[str], envp: list[str]) -> None:
    """execve(2) with the environment exactly as given (``os.execve`` wants a dict: order and
    duplicates would be lost). Returns only by raising OSError."""
    trace.emit(lambda: f'execve("{path}", {argv!r}, [{len(envp)} vars])')
    args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
    env = (ctypes.c_char_p * (len(envp) + 1))(*[os.fsencode(e) for e in envp], None)
    _execve(os.fsencode(path), args, env)
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), path)
