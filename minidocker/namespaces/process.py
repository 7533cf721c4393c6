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
       │                                     user, [seccomp], capabilities, no_new_privs, close fds,
       │                                     [seccomp if no_new_privs], execve
       └── "E <code> <message>" on the error pipe if anything fails; EOF (the pipe is O_CLOEXEC) = exec'd

``--init``: Docker bind-mounts tini as PID 1. We need no binary for that: PID 1 is already our own
code, so it stays, forks the command as PID 2, forwards signals to it and reaps every orphan until
PID 2 exits, then exits with PID 2's code (128+signal if killed). It runs with the container's user
and capabilities, non-dumpable, in the container's namespaces, and it never imports anything after
pivot_root (``child.RefuseImports``): nothing from the image can ever be loaded into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Callable
from dataclasses import field

from minidocker import kernel, trace
from minidocker.errors import MinidockerError
from minidocker.kernel import MS_PRIVATE, MS_REC, net, ns, sockets
from minidocker.namespaces import child, rootfs, users
from minidocker.namespaces.child import SetupFailed, Started, exit_code
from minidocker.namespaces.spec import (
    Hierarchy,
    MountPoint,
    ProcessSpec,
    cgroup_hierarchies,
    clone_flags,
    lookpath,
    mount_plan,
)
from minidocker.record import Record, record


@record
class _Child(Record):
    """What the forked processes need; computed in the monitor, where errors are cheap."""

    spec: ProcessSpec
    plan: list[MountPoint]
    cap_mask: int
    last_cap: int
    tty_path: str | None
    monitor_pid: int
    chan: int  # write end of the report pipe
    sync: int  # read end of the sync pipe
    stdio: list[int] = field(default_factory=list)  # the stdio fds, moved to >= child.HIGH_FD
    console: int = -1  # spec.console_socket, moved to >= child.HIGH_FD
    seccomp: bytes | None = None  # the compiled filter (built here: no file is read after the fork)


# -- the monitor's side ---------------------------------------------------------------------------
def container_caps(spec: ProcessSpec, last_cap: int) -> int:
    """The capability mask of the container: Docker's 14 tweaked by the spec. ``--privileged``
    means every capability *we* hold (a capability missing from our bounding set cannot be given)."""
    return child.capability_mask(spec.cap_add, spec.cap_drop, spec.privileged, last_cap)


# Docker's default filter by capability mask, made ready by prepare_default_filter: a start with
# the default profile then needs neither the profile compiler nor its tables (namespaces.seccomp,
# seccomp_default, syscalls_x86: ~3-4 ms of imports, ~1 ms to compile, on every ``run``)
_default_filters: dict[int, bytes] = {}
# what the compiled program depends on besides the machine and the capabilities: these files
_FILTER_SOURCES = ("seccomp.py", "seccomp_default.py", "syscalls_x86.py")


def _filter_cache_name(cap_mask: int) -> str:
    """``seccomp-<hash>.bpf``: the hash covers the machine, the capability mask and the size and
    mtime of the compiler's sources, so an edited or upgraded compiler never reads an old program."""
    from minidocker.image.digest import sha256_digest

    here = os.path.dirname(os.path.abspath(__file__))
    key = [f"default-profile v1 {os.uname().machine} {cap_mask:x}"]
    for name in _FILTER_SOURCES:
        st = os.stat(os.path.join(here, name))
        key.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    return "seccomp-" + sha256_digest("\n".join(key).encode()).partition(":")[2][:32] + ".bpf"


def prepare_default_filter(cache_dir: str | None = None) -> None:
    """Have Docker's default seccomp filter for the default capabilities ready for :func:`start`:
    the monitor does this while the CLI is still creating the container. With ``cache_dir`` (the
    exec root's ``seccomp/``) the compiled program is kept there, so that only the first start
    after boot or after an upgrade compiles it::

        prepare_default_filter("/run/minidocker/seccomp")   # builds, or reads seccomp-<hash>.bpf
    """
    mask = child.capability_mask([], [], False, ns.cap_last_cap())
    if mask in _default_filters:
        return
    path = os.path.join(cache_dir, _filter_cache_name(mask)) if cache_dir else None
    if path is not None:
        program = child.read_small(path)
        if program and len(program) % 8 == 0:
            _default_filters[mask] = program
            return
    from minidocker.namespaces import seccomp

    built = seccomp.program(None, privileged=False, cap_mask=mask)
    if built is None:
        return  # a machine without a system call table: no default filter
    _default_filters[mask] = built
    if path is not None:
        from minidocker.fsutil import atomic_write

        with contextlib.suppress(OSError):  # only a cache: the next start compiles again
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
            atomic_write(path, built, 0o600, sync=False)


def start(spec: ProcessSpec, *, on_created: Callable[[int], None] | None = None) -> Started:
    """Create the container process and return once it has exec'd the command.

    ``on_created(pid)`` runs here, in the caller, while the container waits on the sync pipe: the
    place to join it to its cgroup and wire its network. Raises ``CommandNotFound`` (127),
    ``CannotExecute`` (126) or ``MinidockerError`` (125) when the container could not start; the
    process is gone by then. Marks the caller a child subreaper (see module docstring).
    """
    spec.validate()
    plan = mount_plan(spec)
    last_cap = ns.cap_last_cap()
    mask = container_caps(spec, last_cap)
    tty_path = os.ttyname(spec.stdio[0]) if spec.tty and spec.console_socket is None else None
    child.become_subreaper()
    chan_r, chan_w = os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    ctx = _Child(spec, plan, mask, last_cap, tty_path, os.getpid(), chan_w, sync_r)
    if spec.seccomp is None and not spec.privileged and mask in _default_filters:
        ctx.seccomp = _default_filters[mask]
    else:
        from minidocker.namespaces import seccomp

        ctx.seccomp = seccomp.program(spec.seccomp, privileged=spec.privileged, cap_mask=mask)
    middle = os.fork()
    if middle == 0:
        _middle(ctx)  # never returns
    os.close(chan_w)
    os.close(sync_r)
    return child.supervise(middle, chan_r, sync_w, on_created)


# -- in the children ------------------------------------------------------------------------------
def _middle(ctx: _Child) -> None:
    try:
        child.enter_child(ctx)
        # non-dumpable first: from now on a process in the container cannot ptrace us or open our
        # /proc/<pid>/{exe,mem} (CVE-2016-9962, CVE-2019-5736); inherited by the fork below
        ns.set_dumpable(False)
        ctx.stdio = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, child.HIGH_FD) for fd in ctx.spec.stdio]
        if ctx.spec.tty and ctx.spec.console_socket is not None:
            ctx.console = fcntl.fcntl(ctx.spec.console_socket, fcntl.F_DUPFD_CLOEXEC, child.HIGH_FD)
        child.close_stray_fds({ctx.chan, ctx.sync, *ctx.stdio, ctx.console})
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
        if "net" in spec.namespaces:
            net.loopback_up()  # a new netns has a loopback device, down (runc brings it up)
        # Private before anything is mounted: otherwise our mounts would propagate into the host's
        # shared mount tree (and the host's unmounts into ours).
        kernel.mount(None, "/", None, MS_REC | MS_PRIVATE)
        pid = os.fork()
        if pid == 0:
            _container(ctx)  # never returns
        child.send(ctx.chan, b"P", str(pid))
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 (the child must never return into the caller's code)
        child.fail(ctx, 125, f"container setup: {e}")
    os._exit(125)


def _console(ctx: _Child) -> None:
    """The container's terminal, made in its own devpts (mounted by ``prepare``): the slave becomes
    stdio and /dev/console, the master goes to the monitor over the console socket."""
    master, slave = rootfs.setup_console(ctx.spec.rootfs)
    try:
        trace.emit("sendmsg(console socket, SCM_RIGHTS [pty master])")
        sock = sockets.from_fd(ctx.console)
        try:
            sockets.send_fds(sock, [b"M"], [master])
        finally:
            sock.close()
        high = fcntl.fcntl(slave, fcntl.F_DUPFD_CLOEXEC, child.HIGH_FD)
        ctx.stdio = [high, high, high]
        ctx.console = -1
    finally:
        os.close(master)
        os.close(slave)


def _host_ppid() -> int:
    """Our parent's pid as the host sees it. ``getppid()`` returns 0 in a new pid namespace (the
    parent is outside it), but the /proc still mounted here is the host's and translates pids."""
    for line in (child.read_small("/proc/self/status") or b"").splitlines():
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
    # every missing component 0755 like dockerd's MkdirAllAndChownNew (makedirs gives parents
    # 0777 & ~umask, and the umask is 0 here)
    old_umask = os.umask(0o022)
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    finally:
        os.umask(old_umask)
    os.chdir(cwd)
    try:
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise SetupFailed(
            125,
            "current working directory is outside of container mount namespace root "
            "-- possible container breakout detected",
        )


def _init_loop(ctx: _Child, path: str, env: list[str]) -> None:
    """PID 1 for ``--init``: fork the command, forward signals to it, reap everyone."""
    child.load_seccomp(ctx)  # before the fork, as tini runs under Docker's filter
    everything = signal.valid_signals()
    # blocked before the fork, so no signal sent meanwhile is lost: it waits for sigwaitinfo
    signal.pthread_sigmask(signal.SIG_BLOCK, everything)
    command = os.fork()
    if command == 0:
        os.setsid()  # the command leads its own session (and gets the terminal), not the init
        child.exec_command(ctx, path, env)
        os._exit(125)
    trace._sinks[:] = []
    child.install_stdio(ctx)
    ns.close_range(3)  # the error pipe too: PID 2 alone reports whether exec worked
    waitable = everything - {signal.SIGKILL, signal.SIGSTOP}
    while True:
        info = signal.sigwaitinfo(waitable)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(command, info.si_signo)
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
            if pid == command:
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
            hierarchies = cgroup_hierarchies((child.read_small("/proc/self/mountinfo") or b"").decode())
            links = _cgroup_links()
            ns.unshare(ns.CLONE_NEWCGROUP)
        if spec.hostname:
            ns.sethostname(spec.hostname)
        rootfs.prepare(spec, ctx.plan, ctx.tty_path, hierarchies, links)
        if ctx.console >= 0:
            _console(ctx)
        rootfs.pivot(spec.rootfs)
        if not spec.privileged:
            rootfs.readonly_paths(spec.readonly_paths)
            rootfs.mask_paths(spec.masked_paths + rootfs.thermal_throttle_paths())
        if spec.readonly_rootfs:
            rootfs.remount_root_readonly()
        try:
            user = users.resolve(
                spec.user, child.read_small("/etc/passwd"), child.read_small("/etc/group"), spec.group_add
            )
        except MinidockerError as e:
            raise SetupFailed(125, str(e)) from None
        env = list(spec.env)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home}")
        if not spec.no_new_privileges:
            child.load_seccomp(ctx)  # while we still hold CAP_SYS_ADMIN (runc's order)
        _chdir(spec.cwd)
        child.drop_privileges(ctx, user)
        # as the container's user: a file it may not execute is "permission denied", like Docker
        path, code, message = lookpath(spec.args[0], env)
        if path is None:
            raise SetupFailed(code, message)
        ns.set_pdeathsig(0)  # once running, the container outlives a crashed monitor (as with Docker's shim)
        if spec.init:
            _init_loop(ctx, path, env)
        else:
            child.exec_command(ctx, path, env)
    except SetupFailed as e:
        child.fail(ctx, e.code, str(e))
    except BaseException as e:  # noqa: BLE001
        child.fail(ctx, 125, f"container init: {e}")
    os._exit(125)
