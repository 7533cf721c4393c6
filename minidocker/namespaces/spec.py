"""What a container process is made of: ``ProcessSpec`` and the mount plan derived from it (pure logic).

The defaults are Docker's (moby ``daemon/pkg/oci/defaults.go``, see reliability-cases B.0)::

    >>> spec = ProcessSpec(args=["sh"], rootfs="/var/lib/minidocker/overlay2/abc/merged", hostname="web")
    >>> clone_flags(spec.namespaces) == CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET \
            | (CLONE_NEWCGROUP if "cgroup" in spec.namespaces else 0)
    True
    >>> [m.destination for m in mount_plan(spec)][:3]
    ['/proc', '/dev', '/dev/pts']
"""

from __future__ import annotations

import errno
import os
import stat as st
from dataclasses import field

from minidocker.errors import InvalidInput
from minidocker.kernel import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_STRICTATIME
from minidocker.kernel.ns import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUTS,
)
from minidocker.record import FrozenRecord, Record, record

NAMESPACE_FLAGS: dict[str, int] = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# fmt: off
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
    "/sys/devices/virtual/powercap", "/sys/firmware",
)
# fmt: on
# + /sys/devices/system/cpu/cpu<N>/thermal_throttle for each CPU that has it, found at run time
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# /dev nodes every container gets (runc's defaults): name, major, minor; all mode 0666 root:root
# fmt: off
DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
# fmt: on
# fmt: off
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"), ("ptmx", "pts/ptmx"),
)
# fmt: on


def default_namespaces() -> set[str]:
    """mnt, uts, ipc, pid, net, plus cgroup when the kernel has cgroup namespaces (4.6+)."""
    names = {"mnt", "uts", "ipc", "pid", "net"}
    if os.path.exists("/proc/self/ns/cgroup"):
        names.add("cgroup")
    return names


@record
class Bind(Record):
    """A host path bind-mounted into the container (rprivate): etc files, volumes, ``-v``."""

    source: str
    destination: str
    readonly: bool = False


@record
class ProcessSpec(Record):
    """Everything the runtime needs to start one container process.

    ``user`` is Docker's ``Config.User`` string (``name``, ``uid``, ``uid:gid``, ``name:group``...),
    resolved *inside* the container from its own /etc/passwd and /etc/group (so ``-u nobody`` means
    the image's nobody), which is why it is a string here and not numbers. ``group_add`` is
    ``--group-add``. ``stdio`` are the caller's fds that become 0, 1 and 2 in the container (pipes, or
    a pty slave three times when ``tty``).
    """

    args: list[str]
    rootfs: str  # merged overlay dir (or any directory holding the container's root)
    env: list[str] = field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    cwd: str = "/"
    user: str = ""
    group_add: list[str] = field(default_factory=list)
    hostname: str = ""
    binds: list[Bind] = field(default_factory=list)
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    # the seccomp profile: None = Docker's default, "unconfined" = no filter, else Docker-format JSON
    # text or a path to it (``namespaces.seccomp.program``; ``privileged`` means unconfined)
    seccomp: str | None = None
    namespaces: set[str] = field(default_factory=default_namespaces)
    netns_path: str | None = None  # join this netns (--network container:x) instead of a new one
    stdio: tuple[int, int, int] = (0, 1, 2)
    tty: bool = False
    init: bool = False  # --init: our own reaper stays PID 1, the command runs as PID 2
    # With ``tty``: make the terminal inside the container's own devpts (so ``tty`` says /dev/pts/0)
    # and send its master over this unix socket, like runc's --console-socket; ``stdio`` is unused.
    console_socket: int | None = None
    masked_paths: list[str] = field(default_factory=lambda: list(MASKED_PATHS))
    readonly_paths: list[str] = field(default_factory=lambda: list(READONLY_PATHS))

    def validate(self) -> None:
        """Refuse what the setup could only fail on half-way."""
        if not self.args:
            raise InvalidInput("no command specified")
        unknown = self.namespaces - set(NAMESPACE_FLAGS)
        if unknown:
            raise InvalidInput(f"unknown namespace(s): {', '.join(sorted(unknown))}")
        if "mnt" not in self.namespaces:
            raise InvalidInput(
                "a container needs its own mount namespace (pivot_root would move the host's root)"
            )
        if self.netns_path and "net" in self.namespaces:
            raise InvalidInput(
                "netns_path joins an existing network namespace: leave 'net' out of namespaces"
            )
        if self.hostname and "uts" not in self.namespaces:
            raise InvalidInput("setting a hostname needs a UTS namespace (it would rename the host)")
        if not os.path.isabs(self.rootfs) or not os.path.isabs(self.cwd):
            raise InvalidInput("rootfs and cwd must be absolute paths")
        for b in self.binds:
            if not os.path.isabs(b.destination) or not os.path.isabs(b.source):
                raise InvalidInput(f"bind {b.source}:{b.destination}: paths must be absolute")


def clone_flags(namespaces: set[str]) -> int:
    flags = 0
    for name in namespaces:
        flags |= NAMESPACE_FLAGS[name]
    return flags


@record(frozen=True)
class MountPoint(FrozenRecord):
    """One step of the mount plan. ``kind``: "fs" (a fresh filesystem), "bind", or "cgroup" (the
    read-only /sys/fs/cgroup tree, built from the host's hierarchies at run time)."""

    destination: str
    fstype: str | None
    source: str | None
    flags: int = 0
    data: str | None = None
    kind: str = "fs"
    readonly: bool = False  # binds: remounted read-only after the bind


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def mount_plan(spec: ProcessSpec) -> list[MountPoint]:
    """Docker's default mounts then the binds (sorted parents first, like moby's ``sortMounts``).

    A bind whose destination is a default mount's replaces it (``-v /x:/dev/shm``), as in Docker.
    """
    ro = 0 if spec.privileged else MS_RDONLY
    defaults = [
        MountPoint("/proc", "proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV),
        MountPoint("/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        MountPoint(
            "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"
        ),
        MountPoint("/dev/shm", "tmpfs", "shm", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"),
        MountPoint("/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV),
        MountPoint("/sys", "sysfs", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | ro),
    ]
    if "cgroup" in spec.namespaces:
        defaults.append(
            MountPoint(
                "/sys/fs/cgroup",
                "cgroup",
                None,
                MS_NOSUID | MS_NOEXEC | MS_NODEV | ro,
                kind="cgroup",
                readonly=not spec.privileged,
            )
        )
    overridden = {os.path.normpath(b.destination) for b in spec.binds}
    plan = [m for m in defaults if m.destination not in overridden]
    for b in sorted(spec.binds, key=lambda b: _depth(b.destination)):
        plan.append(
            MountPoint(
                os.path.normpath(b.destination),
                None,
                b.source,
                MS_BIND | MS_REC,
                kind="bind",
                readonly=b.readonly,
            )
        )
    return plan


@record(frozen=True)
class Hierarchy(FrozenRecord):
    """A cgroup filesystem mounted under the host's /sys/fs/cgroup: ``name`` is the directory."""

    name: str  # "memory", "systemd", "unified", or "" for a pure v2 host (mounted at /sys/fs/cgroup)
    fstype: str  # "cgroup" (v1) or "cgroup2"
    options: str  # superblock options to mount it again with (controllers, name=...)


def _unescape(field_: str) -> str:
    return field_.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def cgroup_hierarchies(mountinfo: str, base: str = "/sys/fs/cgroup") -> list[Hierarchy]:
    """The cgroup hierarchies mounted directly under ``base`` according to a mountinfo text.

    Mounting the same hierarchy again inside the container's cgroup namespace shows only the
    container's own subtree. The options must be the host's exactly: a v1 mount with other
    controllers fails with EBUSY, and a cgroup2 mount *applies* its options to the whole hierarchy.
    ``release_agent`` is never copied (CVE-2022-0492).
    """
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(" "), right.split(" ")
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = _unescape(fields[4])
        if mountpoint == base:
            name = ""
        elif os.path.dirname(mountpoint) == base:
            name = os.path.basename(mountpoint)
        else:
            continue
        opts = [o for o in tail[2].split(",") if o not in ("rw", "ro") and not o.startswith("release_agent=")]
        out.append(Hierarchy(name, tail[0], ",".join(opts)))
    return out


def exit_code_for_exec_error(err: int) -> int:
    """Docker's mapping of an execve failure: 127 "not found" (ENOENT), 126 "cannot execute"."""
    return 127 if err in (errno.ENOENT, errno.ENOTDIR) else 126


def lookpath(name: str, env: list[str]) -> tuple[str | None, int, str]:
    """Go's ``exec.LookPath`` as runc runs it inside the container: (path, exit code, message).

    A name with a slash is used as is; otherwise each ``$PATH`` entry of the *container's* env is
    tried (Docker's default PATH when the env has none). Directories and files without an x bit
    are "permission denied" (126), as with the Go runc of Docker 20.10.
    """

    def check(path: str) -> tuple[int, str]:
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            return 127, f"stat {path}: {e.strerror.lower() if e.strerror else e}"
        if st.S_ISDIR(mode) or not mode & 0o111:
            return 126, "permission denied"
        return 0, ""

    if "/" in name:
        code, why = check(name)
        return (name, 0, "") if code == 0 else (None, code, f'exec: "{name}": {why}')
    path_env = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
    for d in path_env.split(":"):
        candidate = os.path.join(d or ".", name)
        if check(candidate)[0] == 0:
            return candidate, 0, ""
    return None, 127, f'exec: "{name}": executable file not found in $PATH'
