"""The container's filesystem view, built by its PID 1 inside the new mount namespace.

Runs in the container process between the sync with the monitor and ``execve``::

    prepare(spec, plan, tty_path, hierarchies, cgroup_links)  # /proc, /dev, /sys..., binds, under rootfs
    pivot(spec.rootfs)                                         # the rootfs becomes "/", the host's root is gone
    readonly_paths(spec.readonly_paths); mask_paths(spec.masked_paths)
    if spec.readonly_rootfs: remount_root_readonly()

Every destination inside the rootfs is resolved with ``openat2(RESOLVE_IN_ROOT)`` and mounted
through ``/proc/self/fd/N``: the rootfs comes from an image, and a symlink planted there
(``/dev -> /host/etc``) must not make a mount land on the host (CVE-2014-9356, CVE-2021-30465).
"""

from __future__ import annotations

import errno
import os

from minidocker import kernel
from minidocker.kernel import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    ns,
    pty,
)
from minidocker.kernel.fs import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2
from minidocker.namespaces.spec import DEV_SYMLINKS, DEVICES, Hierarchy, MountPoint, ProcessSpec

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_ST_LOCKED = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC  # same bits as MS_NOSUID|MS_NODEV|MS_NOEXEC
# proc and sysfs must sit on real directories: a symlinked /proc would put the kernel's files
# where the masks do not look (runc's checkProcMount, CVE-2019-19921)
_NO_SYMLINKS = {"/proc", "/sys"}


def open_in_root(
    root_fd: int, path: str, *, directory: bool = True, create: bool = False, no_symlinks: bool = False
) -> int:
    """An ``O_PATH`` fd for ``path`` resolved inside ``root_fd`` (symlinks and ``..`` stay inside).

    With ``create``, missing components are made (dirs 0755, a final file 0644 when not
    ``directory``), each one created relative to its already-resolved parent.
    """
    rel = os.path.normpath("/" + path).lstrip("/") or "."
    resolve = _RESOLVE | (RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    flags = os.O_PATH | (os.O_DIRECTORY if directory else 0)
    try:
        return openat2(root_fd, rel, flags, resolve)
    except FileNotFoundError:
        if not create:
            raise
    _make_path(root_fd, rel, directory, resolve)
    return openat2(root_fd, rel, flags, resolve)


def _make_path(root_fd: int, rel: str, directory: bool, resolve: int) -> None:
    """mkdir -p inside the root, one component at a time, each created relative to its resolved
    parent. A dangling symlink on the way is followed by hand, inside the root (runc's
    MkdirAllInRoot): an image's ``/escape -> /host/dir`` creates ``<rootfs>/host/dir``."""
    parts, i, hops = rel.split("/"), 0, 0
    while i < len(parts):
        try:
            os.close(openat2(root_fd, "/".join(parts[: i + 1]), os.O_PATH, resolve))
            i += 1
            continue
        except FileNotFoundError:
            pass
        prefix = "/".join(parts[:i]) or "."
        parent = openat2(root_fd, prefix, os.O_PATH | os.O_DIRECTORY, resolve)
        try:
            try:
                target: str | None = os.readlink(parts[i], dir_fd=parent)
            except OSError:
                target = None  # missing (ENOENT) or not a symlink (EINVAL)
            if target is not None:
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), rel)
                base = "" if target.startswith("/") else prefix
                parts = os.path.normpath("/".join(["", base, target, *parts[i + 1 :]])).lstrip("/").split("/")
                i = 0
                continue
            if i == len(parts) - 1 and not directory:
                mode = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(parts[i], mode, 0o644, dir_fd=parent))
            else:
                os.mkdir(parts[i], 0o755, dir_fd=parent)
        finally:
            os.close(parent)
        i += 1


def _mount_in(
    root_fd: int,
    dest: str,
    source: str | None,
    fstype: str | None,
    flags: int,
    data: str | None = None,
    *,
    directory: bool = True,
) -> None:
    fd = open_in_root(root_fd, dest, directory=directory, create=True, no_symlinks=dest in _NO_SYMLINKS)
    try:
        ns.mount_fd(source, fd, fstype, flags, data, shown=dest)
    finally:
        os.close(fd)


def _remount_ro(root_fd: int, dest: str, *, directory: bool = True, extra: int = 0) -> None:
    # Reopen: an fd taken before the mount names the directory *under* it, not the new mount.
    fd = open_in_root(root_fd, dest, directory=directory)
    try:
        locked = os.fstatvfs(fd).f_flag & _ST_LOCKED
        ns.mount_fd(None, fd, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked | extra, shown=dest)
    finally:
        os.close(fd)


def _populate_dev(root_fd: int, tty_path: str | None) -> None:
    dev = open_in_root(root_fd, "/dev")
    try:
        for name, major, minor in DEVICES:
            ns.mknod_char(name, major, minor, 0o666, dir_fd=dev, shown=f"/dev/{name}")
        for name, target in DEV_SYMLINKS:
            # runc links /dev/core only when the kernel has a /proc/kcore (CONFIG_PROC_KCORE)
            if target == "/proc/kcore" and not os.path.exists(target):
                continue
            os.symlink(target, name, dir_fd=dev)
    finally:
        os.close(dev)
    if tty_path:
        # /dev/console is the container's terminal: the pty slave the caller handed us as stdio
        _mount_in(root_fd, "/dev/console", tty_path, None, MS_BIND, directory=False)


def _mount_cgroups(
    root_fd: int, m: MountPoint, hierarchies: list[Hierarchy], links: list[tuple[str, str]]
) -> None:
    """/sys/fs/cgroup: the host's hierarchies mounted again inside the container's cgroup namespace,
    so each shows only the container's own subtree; read-only unless privileged.

    On a v1 host this is what Docker 20.10 (runc 1.1) shows: a tmpfs (rw, ``mode=755``, then
    chmod 0555 when read-only) holding the v1 controllers only; a hybrid host's cgroup2
    ``unified`` tree is not mounted (runc in v1 mode knows no such subsystem).
    """
    v2 = [h for h in hierarchies if h.name == ""]
    if v2:
        _mount_in(root_fd, m.destination, "cgroup2", "cgroup2", m.flags, v2[0].options or None)
        return
    _mount_in(root_fd, m.destination, "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755")
    for h in hierarchies:
        if h.fstype == "cgroup2":
            continue
        _mount_in(root_fd, f"{m.destination}/{h.name}", h.fstype, h.fstype, m.flags, h.options or None)
    top = open_in_root(root_fd, m.destination)
    try:
        for name, target in links:  # cpuacct -> cpu,cpuacct on hosts that co-mount controllers
            os.symlink(target, name, dir_fd=top)
    finally:
        os.close(top)
    if m.readonly:
        # the controllers are read-only mounts; the tmpfs itself only loses its w bits, as in Docker
        top = open_in_root(root_fd, m.destination)
        try:
            os.chmod(f"/proc/self/fd/{top}", 0o555)
        finally:
            os.close(top)


def prepare(
    spec: ProcessSpec,
    plan: list[MountPoint],
    tty_path: str | None,
    hierarchies: list[Hierarchy],
    cgroup_links: list[tuple[str, str]],
) -> None:
    """Mount everything the plan lists under ``spec.rootfs`` (still seen from the host's root)."""
    # pivot_root needs the new root to be a mount point; a plain directory (a test's extracted tar)
    # is not one, and the bind also gives the container a mount of its own to remount read-only.
    kernel.mount(spec.rootfs, spec.rootfs, None, MS_BIND | MS_REC)
    root_fd = os.open(spec.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in plan:
            if m.kind == "cgroup":
                _mount_cgroups(root_fd, m, hierarchies, cgroup_links)
            elif m.kind == "bind":
                assert m.source is not None
                directory = os.path.isdir(m.source)  # a host path the caller chose: trusted
                _mount_in(root_fd, m.destination, m.source, None, m.flags, directory=directory)
                if m.readonly:
                    _remount_ro(root_fd, m.destination, directory=directory)
            elif m.fstype == "sysfs":
                try:
                    _mount_in(root_fd, m.destination, m.source, m.fstype, m.flags, m.data)
                except PermissionError:
                    # sysfs refuses a mounter without rights over its network namespace (user
                    # namespaces): show the host's /sys instead, read-only
                    _mount_in(root_fd, m.destination, "/sys", None, MS_BIND | MS_REC)
                    _remount_ro(root_fd, m.destination)
            else:
                _mount_in(root_fd, m.destination, m.source, m.fstype, m.flags, m.data)
                if m.destination == "/dev":
                    _populate_dev(root_fd, tty_path)
    finally:
        os.close(root_fd)


def setup_console(rootfs: str) -> tuple[int, int]:
    """A pty of the container's devpts (``<rootfs>/dev/pts``, just mounted by :func:`prepare`),
    bind-mounted over /dev/console like runc does. Returns (master, slave)."""
    master, slave = pty.open_in(os.path.join(rootfs, "dev", "pts"))
    n = os.readlink(f"/proc/self/fd/{slave}").rsplit("/", 1)[-1]
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mount_in(root_fd, "/dev/console", f"{rootfs}/dev/pts/{n}", None, MS_BIND, directory=False)
    finally:
        os.close(root_fd)
    return master, slave


def pivot(rootfs: str) -> None:
    """Make ``rootfs`` the root and detach the host's. Never chroot: a chroot leaves the host's
    tree reachable (``chdir("..")`` from an fd outside it), pivot_root + detach removes it.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one at "/"; from a handle on the
    old root we detach it, and what stays visible is the new root (runc's trick: no put_old dir).
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        ns.pivot_root(".", ".")
        os.fchdir(old_root)
        # everything is private already; once more so the detach cannot reach another namespace
        kernel.mount(None, ".", None, MS_REC | MS_PRIVATE)
        kernel.umount(".", MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def readonly_paths(paths: list[str]) -> None:
    """runc's ``readonlyPath``: bind each path onto itself, then remount the bind read-only
    keeping nosuid/nodev/noexec. A missing path is skipped (runtime-tools: no error)."""
    for p in paths:
        try:
            kernel.mount(p, p, None, MS_BIND | MS_REC)
        except FileNotFoundError:
            continue
        locked = os.statvfs(p).f_flag & _ST_LOCKED
        kernel.mount(None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)


def thermal_throttle_paths() -> list[str]:
    """Docker also masks ``/sys/devices/system/cpu/cpu<N>/thermal_throttle`` (GHSA-6fw5-f8r9-fgfm)."""
    base = "/sys/devices/system/cpu"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    cpus = sorted((n for n in names if n.startswith("cpu") and n[3:].isdigit()), key=lambda n: int(n[3:]))
    return [p for p in (f"{base}/{n}/thermal_throttle" for n in cpus) if os.path.exists(p)]


def mask_paths(paths: list[str]) -> None:
    """runc's ``maskPath``: /dev/null over files, an empty read-only tmpfs over directories."""
    for p in paths:
        try:
            kernel.mount("/dev/null", p, None, MS_BIND)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            if e.errno != errno.ENOTDIR:  # ENOTDIR: p is a directory
                raise
            kernel.mount("tmpfs", p, "tmpfs", MS_RDONLY)


def remount_root_readonly() -> None:
    """``--read-only``: the container's "/" becomes read-only (binds keep their own mode)."""
    locked = os.statvfs("/").f_flag & _ST_LOCKED
    kernel.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)
