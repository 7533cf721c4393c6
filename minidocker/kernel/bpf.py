"""bpf(2): load an eBPF program and attach it to a cgroup, the few commands the device filter needs.

cgroup v2 has no ``devices.allow``/``devices.deny`` files. Instead the kernel runs every eBPF program
of type ``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to a task's cgroup (and to its ancestors) whenever
that task opens or mknods a device node; a program returning 0 makes the call fail with EPERM. So
restricting devices is two system calls (``cgroups.devices_bpf`` builds the instructions)::

    from minidocker.kernel import bpf
    fd = bpf.prog_load(code)                                   # BPF_PROG_LOAD: the verifier checks it
    try:
        bpf.prog_attach("/sys/fs/cgroup/minidocker/<id>", fd)  # BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI
    finally:
        os.close(fd)                                           # the attachment keeps the program alive

The attachment belongs to the cgroup, not to our fd: it lives until ``prog_detach`` or until the
cgroup itself is removed (``rmdir``), which is what we rely on. Python has no bpf(2) wrapper, hence
``syscall(SYS_bpf, cmd, &attr, size)`` through ctypes.

``union bpf_attr`` grows with every kernel; each command reads only its own leading fields, the
unused rest must be zero. We pass a zeroed 256-byte buffer (bigger than the union of any kernel
we know; extra bytes that are zero are accepted) so that what the kernel writes back (``BPF_PROG_QUERY``
fills in counts) always lands in memory we own.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from minidocker import trace
from minidocker.kernel import _libc

# linux/bpf.h: commands
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
# program type and attach type of a device filter
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
# attach flags: ALLOW_MULTI lets a child cgroup add its own program below its parent's, and every
# program on the way up must allow the access (runc uses it; without it a parent's plain program
# would forbid any program below).
BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2

CGROUP2_SUPER_MAGIC = 0x63677270  # statfs(2) f_type of a cgroup2 filesystem

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280}
_ATTR_SIZE = 256
_CMD_NAMES = {
    BPF_PROG_LOAD: "BPF_PROG_LOAD",
    BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
    BPF_PROG_DETACH: "BPF_PROG_DETACH",
    BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
    BPF_PROG_QUERY: "BPF_PROG_QUERY",
}
_PROG_TYPE_NAMES = {BPF_PROG_TYPE_CGROUP_DEVICE: "cgroup_device"}
_ATTACH_NAMES = {BPF_CGROUP_DEVICE: "BPF_CGROUP_DEVICE"}


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),  # pointers travel as u64 in bpf_attr, whatever the arch
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),  # shown by bpftool; [A-Za-z0-9_.] only
    ]


class _AttachAttr(ctypes.Structure):  # BPF_PROG_ATTACH and BPF_PROG_DETACH
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


class _QueryAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),  # out
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),  # in: room in prog_ids; out: how many there are
    ]


class _GetIdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


# a private function object: other modules call libc.syscall with other argtypes
_syscall = _libc["syscall"]
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]

_statfs = _libc["statfs"]
_statfs.restype = ctypes.c_int
_statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


def _bpf(cmd: int, attr: ctypes.Structure, subject: str | None = None) -> int:
    """``syscall(SYS_bpf, cmd, attr, 256)``; copies what the kernel wrote back into ``attr``."""
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf syscall number unknown for {os.uname().machine}", subject)
    buf = ctypes.create_string_buffer(bytes(attr), _ATTR_SIZE)  # zero-filled past the struct
    ret = _syscall(nr, cmd, buf, _ATTR_SIZE)
    err = ctypes.get_errno()
    ctypes.memmove(ctypes.addressof(attr), buf, ctypes.sizeof(attr))
    if ret < 0:
        raise OSError(err, f"bpf({_CMD_NAMES.get(cmd, cmd)}): {os.strerror(err)}", subject)
    return int(ret)


def _open_dir(path: str) -> int:
    # the attach target is an fd on the cgroup directory itself (O_RDONLY is enough)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def prog_load(
    code: bytes,
    *,
    prog_type: int = BPF_PROG_TYPE_CGROUP_DEVICE,
    license: str = "Apache",  # the kernel's own name for the field (a MODULE_LICENSE string)
    name: str = "minidocker_dev",
) -> int:
    """BPF_PROG_LOAD ``code`` (8-byte instructions); returns the program fd (close it when done).

    The verifier proves the program safe or refuses it: the OSError then carries the verifier's log.
    Kernels before 5.11 charge programs to RLIMIT_MEMLOCK: on EPERM the limit is lifted for the
    load only (runc lifts it for good; we restore it so that children forked later do not inherit it).
    """
    if len(code) % 8 or not code:
        raise ValueError(f"eBPF code must be a non-empty multiple of 8 bytes, got {len(code)}")
    kind = _PROG_TYPE_NAMES.get(prog_type, str(prog_type))
    trace.emit(lambda: f"bpf(BPF_PROG_LOAD, {kind}, {len(code) // 8} insns)")
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns),
        license=ctypes.addressof(lic),
        prog_name=name.encode()[:15],
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        if e.errno == errno.EPERM:
            fd = _load_without_memlock_limit(attr)
            if fd is not None:
                return fd
        if e.errno not in (errno.EACCES, errno.EINVAL):
            raise
    # the verifier said no: load again with its log to say why
    log = ctypes.create_string_buffer(1 << 16)
    attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        lines = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(e.errno, f"{e.strerror}; verifier: {' | '.join(lines[-4:])}") from None


def _load_without_memlock_limit(attr: _ProgLoadAttr) -> int | None:
    old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if old == (resource.RLIM_INFINITY, resource.RLIM_INFINITY):
        return None  # not the memlock limit: a real EPERM (no CAP_SYS_ADMIN/CAP_BPF)
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return None
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError:
        return None
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, old)


def prog_attach(
    cgroup_dir: str, prog_fd: int, *, attach_type: int = BPF_CGROUP_DEVICE, flags: int = BPF_F_ALLOW_MULTI
) -> None:
    """BPF_PROG_ATTACH the program ``prog_fd`` to the cgroup directory ``cgroup_dir``."""
    kind = _ATTACH_NAMES.get(attach_type, str(attach_type))
    trace.emit(lambda: f"bpf(BPF_PROG_ATTACH, {cgroup_dir}, {kind})")
    fd = _open_dir(cgroup_dir)
    try:
        attr = _AttachAttr(target_fd=fd, attach_bpf_fd=prog_fd, attach_type=attach_type, attach_flags=flags)
        _bpf(BPF_PROG_ATTACH, attr, cgroup_dir)
    finally:
        os.close(fd)


def prog_detach(cgroup_dir: str, prog_fd: int, *, attach_type: int = BPF_CGROUP_DEVICE) -> None:
    """BPF_PROG_DETACH one program (named by an fd on it) from ``cgroup_dir``."""
    kind = _ATTACH_NAMES.get(attach_type, str(attach_type))
    trace.emit(lambda: f"bpf(BPF_PROG_DETACH, {cgroup_dir}, {kind})")
    fd = _open_dir(cgroup_dir)
    try:
        attr = _AttachAttr(target_fd=fd, attach_bpf_fd=prog_fd, attach_type=attach_type)
        _bpf(BPF_PROG_DETACH, attr, cgroup_dir)
    finally:
        os.close(fd)


def prog_query(cgroup_dir: str, *, attach_type: int = BPF_CGROUP_DEVICE) -> list[int]:
    """BPF_PROG_QUERY: the ids of the programs attached to ``cgroup_dir`` itself (not its ancestors)."""
    trace.emit(lambda: f"bpf(BPF_PROG_QUERY, {cgroup_dir}, {_ATTACH_NAMES.get(attach_type, attach_type)})")
    fd = _open_dir(cgroup_dir)
    try:
        room = 64  # the kernel's limit of programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS)
        for _ in range(4):
            ids = (ctypes.c_uint32 * room)()
            attr = _QueryAttr(
                target_fd=fd, attach_type=attach_type, prog_ids=ctypes.addressof(ids), prog_cnt=room
            )
            try:
                _bpf(BPF_PROG_QUERY, attr, cgroup_dir)
            except OSError as e:
                if e.errno == errno.ENOSPC:  # more than we made room for; prog_cnt says how many
                    room = attr.prog_cnt
                    continue
                raise
            return list(ids[: attr.prog_cnt])
        raise OSError(errno.ENOSPC, "bpf(BPF_PROG_QUERY): the program list keeps growing", cgroup_dir)
    finally:
        os.close(fd)


def prog_get_fd_by_id(prog_id: int) -> int:
    """BPF_PROG_GET_FD_BY_ID: an fd on a loaded program (ENOENT once it is freed)."""
    trace.emit(lambda: f"bpf(BPF_PROG_GET_FD_BY_ID, {prog_id})")
    return _bpf(BPF_PROG_GET_FD_BY_ID, _GetIdAttr(prog_id=prog_id))


def is_cgroup2(path: str) -> bool:
    """True if ``path`` lies on a cgroup2 filesystem (``statfs(2)`` f_type; Python's statvfs lacks it)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit; f_type comes first
    if _statfs(os.fsencode(path), buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value == CGROUP2_SUPER_MAGIC
