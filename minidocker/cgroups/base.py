"""What both drivers share: cgroupfs file I/O with trace events, version detection, the interface.

cgroupfs is not a normal filesystem: each file is a kernel handler, so

* a value must reach the kernel in ONE ``write(2)`` (a partial write is a different value), and the
  error comes back from that write (EINVAL: bad value, EBUSY: not allowed now, ENOSPC: cpuset empty);
* directories are created with ``mkdir`` (the kernel fills them with control files) and removed with
  ``rmdir`` only — never ``rm -rf``: the control files cannot be unlinked, and ``rmdir`` of a cgroup
  that still has tasks (or children) fails with EBUSY.

>>> from minidocker import trace
>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> open(os.path.join(d, "pids.max"), "w").close()  # cgroupfs files exist; we never create them
>>> with trace.capture() as events:
...     write(os.path.join(d, "pids.max"), "50")
>>> events[0].endswith("/pids.max = 50"), read(os.path.join(d, "pids.max"))
(True, '50')
"""

from __future__ import annotations

import errno
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from minidocker import trace
from minidocker.cgroups.resources import Resources
from minidocker.errors import InvalidInput, MinidockerError, NotFound

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import ClassVar, Literal

    Version = Literal["v1", "v2"]
else:
    Version = str  # the same at run time, without importing typing

CGROUP2_SUPER_MAGIC = 0x63677270  # what statfs(2) says for a cgroup2 mount; we read mountinfo instead


class CgroupWriteError(MinidockerError):
    """A cgroupfs write the kernel refused; ``errno`` is the kernel's answer."""

    def __init__(self, message: str, *, path: str, value: str, err: int) -> None:
        super().__init__(message, subject=path)
        self.path, self.value, self.errno = path, value, err


def write(path: str, value: str) -> None:
    """Write ``value`` to a cgroup control file in one ``write(2)`` and trace it.

    Raises ``NotFound`` when the file does not exist (controller not enabled/mounted), and
    ``CgroupWriteError`` (an ``InvalidInput`` flavour for EINVAL/ERANGE) for a refused value.
    """
    trace.emit(lambda: f"write {path} = {value}")
    try:
        _sys_write(path, value)
    except FileNotFoundError:
        raise NotFound(
            f"cgroup file {path} does not exist (controller not available?)", subject=path
        ) from None
    except OSError as e:
        msg = f"write {path} = {value}: {os.strerror(e.errno or 0)}"
        if e.errno in (errno.EINVAL, errno.ERANGE):
            raise _InvalidWrite(msg, path=path, value=value, err=e.errno) from None
        raise CgroupWriteError(msg, path=path, value=value, err=e.errno or 0) from None


# The four system calls of this package, as module functions so that unit tests can put a fake
# cgroupfs "kernel" behind them (tests/unit/test_cgroups.py).
def _sys_write(path: str, value: str) -> None:
    # O_TRUNC is harmless on cgroupfs; no O_CREAT: a missing control file means a missing
    # controller, not that we should make it.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())  # one write(2): the kernel parses each write on its own
    finally:
        os.close(fd)


def _sys_mkdir(path: str) -> None:
    os.mkdir(path, 0o755)


def _sys_rmdir(path: str) -> None:
    os.rmdir(path)


def _sys_kill(pid: int, sig: int) -> None:
    os.kill(pid, sig)


class _InvalidWrite(CgroupWriteError, InvalidInput):
    """The kernel said EINVAL/ERANGE: the value itself is wrong (a user error, exit 125 like Docker)."""


def read(path: str) -> str:
    """A control file's content without the trailing newline ("" when it does not exist)."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def read_keyed(path: str) -> dict[str, int]:
    """Flat keyed files (``memory.events``, ``memory.oom_control``, ``cgroup.events``): key → int."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, val = line.partition(" ")
        if val.strip().lstrip("-").isdigit():
            out[key] = int(val)
    return out


CREATE_TRIES = 5  # see mkdir_path


def mkdir_path(make: Callable[[], None]) -> None:
    """Run ``make`` (mkdir of ``<parent>/<id>`` and its ancestors), again if a directory vanished.

    Another container's ``cleanup_parent`` may ``rmdir`` the shared, momentarily empty ``minidocker``
    parent between our ``mkdir`` of it and of the container's directory (ENOENT), or while we copy
    its ``cpuset.cpus`` into ours: a file of a cgroup being removed answers ENODEV (seen when
    parallel test workers started and removed containers). Once the container's directory exists
    the parent is not empty and stays.
    """
    for attempt in range(CREATE_TRIES):
        try:
            make()
            return
        except (FileNotFoundError, NotFound):
            if attempt == CREATE_TRIES - 1:
                raise
        except (CgroupWriteError, OSError) as e:
            if e.errno != errno.ENODEV or attempt == CREATE_TRIES - 1:
                raise


def mkdir(path: str) -> bool:
    """``mkdir`` a cgroup; False if it already existed. The kernel populates it with control files."""
    try:
        _sys_mkdir(path)
    except FileExistsError:
        return False
    trace.emit(lambda: f"mkdir {path}")
    return True


def rmdir(path: str, *, timeout: float = 0.0) -> bool:
    """``rmdir`` a cgroup, retrying EBUSY until ``timeout`` (tasks still exiting). False if absent.

    Raises ``CgroupWriteError`` with the remaining pids when it stays busy.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            _sys_rmdir(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            left = read(os.path.join(path, "cgroup.procs")).split()
            extra = f" (pids still inside: {' '.join(left)})" if left else ""
            raise CgroupWriteError(
                f"rmdir {path}: {os.strerror(e.errno or 0)}{extra}", path=path, value="", err=e.errno or 0
            ) from None
        trace.emit(lambda: f"rmdir {path}")
        return True


def read_pids(path: str) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file (empty when the cgroup is gone)."""
    return [int(p) for p in read(path).split()]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def mount_fstype(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The filesystem type mounted exactly at ``path`` (last mount wins), or None if not a mount point."""
    target = os.path.realpath(path)
    found: str | None = None
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split(" ")
                if len(fields) > 4 and _unescape(fields[4]) == target:
                    found = right.split(" ", 1)[0]
    except FileNotFoundError:
        return None
    return found


def detect(root: str = "/sys/fs/cgroup", *, mountinfo: str = "/proc/self/mountinfo") -> Version:
    """Say "v2" when ``root`` itself is a cgroup2 mount (unified), else "v1" (a tmpfs of v1 hierarchies).

    The kernel way is ``statfs(root).f_type == CGROUP2_SUPER_MAGIC``; Python has no ``f_type``, so
    we read /proc/self/mountinfo, which says the same thing. A ``root`` that is no mount point at all
    (the fake tree of the unit tests) is judged by its files: only v2 has ``cgroup.controllers``.

    This host is "hybrid": v1 hierarchies under /sys/fs/cgroup plus an empty v2 at
    /sys/fs/cgroup/unified, so ``detect()`` says v1 and ``detect("/sys/fs/cgroup/unified")`` says v2.
    """
    key = root if mountinfo == "/proc/self/mountinfo" else None
    if key is not None and key in _DETECTED:
        return _DETECTED[key]
    fstype = mount_fstype(root, mountinfo)
    if fstype is not None:
        version: Version = "v2" if fstype == "cgroup2" else "v1"
        if key is not None:  # a mounted hierarchy's version does not change under a process
            _DETECTED[key] = version
        return version
    return "v2" if os.path.exists(os.path.join(root, "cgroup.controllers")) else "v1"


# detect()'s answers for mount points, by root (``run`` asks 2-6 times: a mountinfo scan each)
_DETECTED: dict[str, Version] = {}


class Cgroup(ABC):
    """One container's cgroup. Both drivers share this interface.

    Life cycle, as the container monitor uses it::

        cg = open_cgroup(container_id)
        cg.create()                 # mkdir (and v2: enable controllers in the ancestors)
        cg.apply(resources)         # write the limit files
        cg.add(pid)                 # move the container's init into it
        ...
        cg.oom_killed()             # after the exit: was it the OOM killer?
        cg.kill_all()               # stop: nothing may survive
        cg.remove()                 # rmdir
    """

    version: ClassVar[Version]

    def __init__(self, name: str, root: str) -> None:
        self.name = name.strip("/")  # relative to the hierarchy root, e.g. "minidocker/<id>"
        self.root = root

    @abstractmethod
    def paths(self) -> list[str]:
        """Every directory this cgroup is made of (v1: one per hierarchy, v2: one)."""

    @abstractmethod
    def path(self, controller: str | None = None) -> str:
        """The directory holding ``controller``'s files (v2 ignores the controller)."""

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths())

    @abstractmethod
    def create(self) -> None:
        """Make the directories (idempotent) so that a task can be added."""

    @abstractmethod
    def apply(self, resources: Resources, *, devices: bool = True) -> None:
        """Write the limit files for ``resources`` (docker-layout.md 11.1/11.2); ``devices``: v1 rules."""

    @abstractmethod
    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup."""

    @abstractmethod
    def procs(self) -> list[int]:
        """The pids in the cgroup."""

    @abstractmethod
    def oom_killed(self) -> bool:
        """True if the kernel OOM killer killed a process of this cgroup."""

    @abstractmethod
    def freeze(self) -> None:
        """Stop every task (``docker pause``); returns once they are all frozen."""

    @abstractmethod
    def thaw(self) -> None:
        """Undo ``freeze``."""

    @abstractmethod
    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process in the cgroup."""

    @abstractmethod
    def remove(self, *, timeout: float = 5.0) -> None:
        """``rmdir`` the container's directories (not the shared parent); retries while tasks exit."""

    def _signal_each(self, sig: int) -> None:
        """Signal every pid of ``procs()`` under a freeze, so nothing forks past us (runc's way)."""
        try:
            self.freeze()
            frozen = True
        except (NotFound, CgroupWriteError):
            frozen = False  # no freezer: best effort, a fork racing us may survive one round
        try:
            name = signal.Signals(sig).name
            for pid in self.procs():
                trace.emit(f"kill({pid}, {name})")
                try:
                    _sys_kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()


def wait_for(predicate_path: str, want: str, *, key: str | None = None, timeout: float = 5.0) -> bool:
    """Poll a control file until it reads ``want`` (or its ``key`` line has value ``want``)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if key is None:
            got = read(predicate_path)
        else:
            got = str(read_keyed(predicate_path).get(key, ""))
        if got == want:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
