"""Start a container process: the fork, unshare, fork, sync, mount, pivot, drop, exec dance.

Called by the monitor (a single-threaded process that stays on the host)::

    spec = ProcessSpec(args=["sh", "-c", "exit 42"], rootfs=merged, hostname="c1", stdio=(r, w, w))
    started = start(spec, on_created=lambda pid: cgroup.add(pid))   # returns once it exec'd
    assert started.wait() == 42

Process tree and what each one does (design.md §2)::

    monitor ── fork ──▶ middle: PR_SET_DUMPABLE 0, close stray fds, [setns(net)], unshare(mnt|uts|ipc|pid|net),
       ▲                        mount --make-rprivate /   (first: nothing may propagate back to the host)
       │                  └─ fork ──▶ container (PID 1 of the new pid namespace): waits on the sync pipe
       │  "P <pid>"  middle reports the pid and exits; the monitor (a child subreaper, like
       │             containerd-shim) becomes the container's parent and can wait() for it
       │  on_created(pid): cgroup, network ── then one byte on the sync pipe ──▶
       │                                     unshare(cgroup), sethostname, mounts, pivot_root, masks,
       │                                     user, capabilities, no_new_privs, close fds, execve
       └── "E <code> <message>" on the error pipe if anything fails; EOF (the pipe is O_CLOEXEC) = exec'd

``--init``: Docker bind-mounts tini as PID 1. We need no binary for that: PID 1 is already our own
code, so it stays, forks the command as PID 2, forwards signals to it and reaps every orphan until
PID 2 exits, then exits with PID 2's code (128+signal if killed). It runs with the container's user
and capabilities, non-dumpable, in the container's namespaces, and it never imports anything after
pivot_root (``_refuse_imports``): nothing from the image can ever be loaded into it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from minidocker import kernel, trace
from minidocker.errors import CannotExecute, CommandNotFound, MinidockerError
from minidocker.kernel import MS_PRIVATE, MS_REC, ns
from minidocker.namespaces import caps, rootfs, users
from minidocker.namespaces.spec import (
    Hierarchy,
    MountPoint,
    ProcessSpec,
    cgroup_hierarchies,
    clone_flags,
    exit_code_for_exec_error,
    lookpath,
    mount_plan,
)

_HIGH_FD = 10  # where the stdio fds wait, out of the way of 0/1/2, until they are dup'ed there
_FRAME = struct.Struct("!cI")  # kind, payload length
_is_subreaper = False


@dataclass
class Started:
    """A container process that has exec'd its command. ``pid`` is its host pid (PID 1 inside)."""

    pid: int

    def wait(self) -> int:
        """Block until it exits; Docker's exit code (128+signal when killed)."""
        _, status = os.waitpid(self.pid, 0)
        return exit_code(status)


def exit_code(status: int) -> int:
    """A ``waitpid`` status as Docker reports it: the exit code, or 128+signal (SIGKILL → 137)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _SetupFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Child:
    """What the forked processes need; computed in the monitor, where errors are cheap."""

    spec: ProcessSpec
    plan: list[MountPoint]
    cap_mask: int
    last_cap: int
    tty_path: str | None
    monitor_pid: int
    chan: int  # write end of the report pipe
    sync: int  # read end of the sync pipe
    stdio: list[int] = field(default_factory=list)  # the stdio fds, moved to >= _HIGH_FD


# -- the report pipe ------------------------------------------------------------------------------
def _send(fd: int, kind: bytes, payload: str) -> None:
    data = payload.encode(errors="replace")
    buf = _FRAME.pack(kind, len(data)) + data
    while buf:
        buf = buf[os.write(fd, buf) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _frames(fd: int) -> list[tuple[bytes, str]] | None:
    """The next frame (as a one-item list), or None at EOF."""
    head = _read_exact(fd, _FRAME.size)
    if head is None:
        return None
    kind, size = _FRAME.unpack(head)
    body = _read_exact(fd, size) if size else b""
    return [(kind, (body or b"").decode(errors="replace"))]


# -- the monitor's side ---------------------------------------------------------------------------
def container_caps(spec: ProcessSpec, last_cap: int) -> int:
    """The capability mask of the container: Docker's 14 tweaked by the spec. ``--privileged``
    means every capability *we* hold (a capability missing from our bounding set cannot be given)."""
    m = caps.mask(caps.tweak(spec.cap_add, spec.cap_drop, spec.privileged, last_cap=last_cap))
    if spec.privileged:
        m &= ns.capget().permitted
    return m


def start(spec: ProcessSpec, *, on_created: Callable[[int], None] | None = None) -> Started:
    """Create the container process and return once it has exec'd the command.

    ``on_created(pid)`` runs here, in the caller, while the container waits on the sync pipe: the
    place to join it to its cgroup and wire its network. Raises ``CommandNotFound`` (127),
    ``CannotExecute`` (126) or ``MinidockerError`` (125) when the container could not start; the
    process is gone by then. Marks the caller a child subreaper (see module docstring).
    """
    global _is_subreaper
    spec.validate()
    plan = mount_plan(spec)
    last_cap = ns.cap_last_cap()
    mask = container_caps(spec, last_cap)
    tty_path = os.ttyname(spec.stdio[0]) if spec.tty else None
    if not _is_subreaper:
        ns.set_child_subreaper()
        _is_subreaper = True
    chan_r, chan_w = os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    ctx = _Child(spec, plan, mask, last_cap, tty_path, os.getpid(), chan_w, sync_r)
    middle = os.fork()
    if middle == 0:
        _middle(ctx)  # never returns
    os.close(chan_w)
    os.close(sync_r)
    return _supervise(middle, chan_r, sync_w, on_created)


def _supervise(middle: int, chan_r: int, sync_w: int, on_created: Callable[[int], None] | None) -> Started:
    pid: int | None = None
    middle_reaped = False
    error: tuple[int, str] | None = None
    try:
        while (frame := _frames(chan_r)) is not None:
            kind, payload = frame[0]
            if kind == b"T":
                trace.emit(payload)
            elif kind == b"P":
                pid = int(payload)
                # once the middle process is reaped, the container is our child (we are a subreaper)
                os.waitpid(middle, 0)
                middle_reaped = True
                if on_created is not None:
                    on_created(pid)
                os.write(sync_w, b"\0")
            elif kind == b"E":
                code_text, _, message = payload.partition(" ")
                error = (int(code_text), message)
    except BaseException:
        # on_created failed (or we were interrupted): the container has run nothing of its own yet
        if pid is not None:
            _kill_and_reap(pid)
        raise
    finally:
        os.close(chan_r)
        os.close(sync_w)
        if not middle_reaped:
            os.waitpid(middle, 0)
    if error is not None:
        if pid is not None:
            os.waitpid(pid, 0)
        code, message = error
        if code == 127:
            raise CommandNotFound(message)
        if code == 126:
            raise CannotExecute(message)
        raise MinidockerError(message)
    if pid is None:
        raise MinidockerError("container setup process died before creating the container")
    return Started(pid)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


# -- in the children ------------------------------------------------------------------------------
class _RefuseImports:
    """After fork no module may be imported: after pivot_root the host's library is gone and a
    module of the same path could come from the image, into a process with full capabilities."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        raise ImportError(f"minidocker: import of {fullname!r} in the container setup process (preload it)")


def _enter_child(ctx: _Child) -> None:
    sys.meta_path.insert(0, _RefuseImports())
    if trace.enabled():
        # events go back to the monitor, which emits them (so --trace and trace.capture() see them)
        trace._sinks[:] = [lambda text: _send(ctx.chan, b"T", text)]


def _fail(ctx: _Child, code: int, message: str) -> None:
    try:
        _send(ctx.chan, b"E", f"{code} {message}")
    finally:
        os._exit(code)


def _close_stray_fds(keep: set[int]) -> None:
    """Close every fd the monitor had (data-root lock, dir fds...) but ours: a leaked directory fd
    plus ``cwd=/proc/self/fd/N`` is a way out of the container (CVE-2024-21626)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory fd listdir used, already closed


def _middle(ctx: _Child) -> None:
    try:
        _enter_child(ctx)
        # non-dumpable first: from now on a process in the container cannot ptrace us or open our
        # /proc/<pid>/{exe,mem} (CVE-2016-9962, CVE-2019-5736); inherited by the fork below
        ns.set_dumpable(False)
        ctx.stdio = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD) for fd in ctx.spec.stdio]
        _close_stray_fds({ctx.chan, ctx.sync, *ctx.stdio})
        spec = ctx.spec
        if spec.netns_path:
            fd = os.open(spec.netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ns.setns(fd, ns.CLONE_NEWNET, path=spec.netns_path)
            finally:
                os.close(fd)
        # The cgroup namespace waits: its root is the cgroup of whoever unshares it, and the monitor
        # moves the container into its cgroup only in on_created.
        ns.unshare(clone_flags(spec.namespaces) & ~ns.CLONE_NEWCGROUP)
        # Private before anything is mounted: otherwise our mounts would propagate into the host's
        # shared mount tree (and the host's unmounts into ours).
        kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)
        pid = os.fork()
        if pid == 0:
            _container(ctx)  # never returns
        _send(ctx.chan, b"P", str(pid))
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 (the child must never return into the caller's code)
        _fail(ctx, 125, f"container setup: {e}")
    os._exit(125)


def _read_small(path: str) -> bytes | None:
    """A regular file of the container (after pivot_root), or None. Never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _host_ppid() -> int:
    """Our parent's pid as the host sees it. ``getppid()`` returns 0 in a new pid namespace (the
    parent is outside it), but the /proc still mounted here is the host's and translates pids."""
    for line in (_read_small("/proc/self/status") or b"").splitlines():
        if line.startswith(b"PPid:"):
            return int(line.split()[1])
    return -1


def _cgroup_links() -> list[tuple[str, str]]:
    try:
        names = os.listdir("/sys/fs/cgroup")
    except OSError:
        return []
    out = []
    for n in sorted(names):
        p = f"/sys/fs/cgroup/{n}"
        if os.path.islink(p):
            target = os.readlink(p)
            if "/" not in target:
                out.append((n, target))
    return out


def _chdir(cwd: str) -> None:
    """chdir, creating the directory like Docker, then check we really are inside the container:
    with a leaked fd, ``/proc/self/fd/N`` would be a directory of the host (CVE-2024-21626)."""
    trace.emit(lambda: f'mkdir -p "{cwd}"; chdir("{cwd}"); getcwd()')
    os.makedirs(cwd, 0o755, exist_ok=True)
    os.chdir(cwd)
    try:
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise _SetupFailed(
            125,
            "current working directory is outside of container mount namespace root "
            "-- possible container breakout detected",
        )


def _drop_privileges(ctx: _Child, user: users.ExecUser) -> None:
    """runc's order: bounding set (needs CAP_SETPCAP), then the ids with keep-caps (setuid away from
    0 would empty the permitted set), then capset; inheritable and ambient end up empty."""
    for cap in range(ctx.last_cap + 1):
        if not ctx.cap_mask >> cap & 1 and ns.capbset_read(cap):
            ns.capbset_drop(cap, caps.NAMES[cap] if cap < len(caps.NAMES) else "")
    ns.set_keepcaps(True)
    ns.set_ids(user.uid, user.gid, user.groups)
    ns.set_keepcaps(False)
    ns.capset(ctx.cap_mask, ctx.cap_mask, 0)
    ns.ambient_clear_all()
    if ctx.spec.no_new_privileges:
        ns.set_no_new_privs()


def _default_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and ignored signals stay ignored across execve: give the
    command the dispositions and the empty mask any process expects."""
    trace.emit("signal(*, SIG_DFL); sigprocmask(SIG_SETMASK, {})")
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # glibc-reserved real-time signals
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _install_stdio(ctx: _Child) -> None:
    trace.emit(lambda: f"dup2({ctx.stdio[0]}, 0); dup2({ctx.stdio[1]}, 1); dup2({ctx.stdio[2]}, 2)")
    for target, fd in enumerate(ctx.stdio):
        os.dup2(fd, target)  # inheritable: these three survive execve


def _exec(ctx: _Child, path: str, env: list[str]) -> None:
    """The last steps: session, stdio, terminal, umask, fds, execve. Reports failure and exits."""
    _default_signals()
    _install_stdio(ctx)
    if ctx.spec.tty:
        ns.set_controlling_tty(0)
    os.umask(0o022)
    # only 0, 1, 2 and the error pipe (close-on-exec) stay open; exec closes the pipe: EOF = success
    if ctx.chan != 3:
        os.dup2(ctx.chan, 3, inheritable=False)
        ctx.chan = 3
    ns.close_range(4)
    try:
        ns.execve(path, ctx.spec.args, env)
    except OSError as e:
        code = exit_code_for_exec_error(e.errno or errno.EIO)
        _fail(ctx, code, f"exec {path}: {os.strerror(e.errno or errno.EIO).lower()}")


def _init_loop(ctx: _Child, path: str, env: list[str]) -> None:
    """PID 1 for ``--init``: fork the command, forward signals to it, reap everyone."""
    everything = signal.valid_signals()
    # blocked before the fork, so no signal sent meanwhile is lost: it waits for sigwaitinfo
    signal.pthread_sigmask(signal.SIG_BLOCK, everything)
    child = os.fork()
    if child == 0:
        os.setsid()  # the command leads its own session (and gets the terminal), not the init
        _exec(ctx, path, env)
        os._exit(125)
    trace._sinks[:] = []
    _install_stdio(ctx)
    ns.close_range(3)  # the error pipe too: PID 2 alone reports whether exec worked
    waitable = everything - {signal.SIGKILL, signal.SIGSTOP}
    while True:
        info = signal.sigwaitinfo(waitable)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == child:
                os._exit(exit_code(status))


def _container(ctx: _Child) -> None:
    spec = ctx.spec
    try:
        os.umask(0)  # device nodes and created mount points get exactly the modes we ask for
        if os.read(ctx.sync, 1) != b"\0":
            os._exit(125)  # the monitor gave up (on_created failed): leave quietly
        os.close(ctx.sync)
        # Die with the monitor while we are half set up. Only now: the parent until the sync was
        # the middle process, whose exit would have fired it. Cleared before exec (below).
        ns.set_pdeathsig(signal.SIGKILL)
        if _host_ppid() != ctx.monitor_pid:
            os._exit(125)  # the monitor died before the pdeathsig was armed
        trace.emit("setsid()")
        os.setsid()  # own session: the monitor's terminal and job control are not the container's
        hierarchies: list[Hierarchy] = []
        links: list[tuple[str, str]] = []
        if "cgroup" in spec.namespaces:
            hierarchies = cgroup_hierarchies((_read_small("/proc/self/mountinfo") or b"").decode())
            links = _cgroup_links()
            ns.unshare(ns.CLONE_NEWCGROUP)
        if spec.hostname:
            ns.sethostname(spec.hostname)
        rootfs.prepare(spec, ctx.plan, ctx.tty_path, hierarchies, links)
        rootfs.pivot(spec.rootfs)
        if not spec.privileged:
            rootfs.readonly_paths(spec.readonly_paths)
            rootfs.mask_paths(spec.masked_paths + rootfs.thermal_throttle_paths())
        if spec.readonly_rootfs:
            rootfs.remount_root_readonly()
        try:
            user = users.resolve(
                spec.user, _read_small("/etc/passwd"), _read_small("/etc/group"), spec.group_add
            )
        except MinidockerError as e:
            raise _SetupFailed(125, str(e)) from None
        env = list(spec.env)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home}")
        _chdir(spec.cwd)
        _drop_privileges(ctx, user)
        # as the container's user: a file it may not execute is "permission denied", like Docker
        path, code, message = lookpath(spec.args[0], env)
        if path is None:
            raise _SetupFailed(code, message)
        ns.set_pdeathsig(0)  # once running, the container outlives a crashed monitor (as with Docker's shim)
        if spec.init:
            _init_loop(ctx, path, env)
        else:
            _exec(ctx, path, env)
    except _SetupFailed as e:
        _fail(ctx, e.code, str(e))
    except BaseException as e:  # noqa: BLE001
        _fail(ctx, 125, f"container init: {e}")
    os._exit(125)
