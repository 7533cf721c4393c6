"""``docker exec`` as a library: run one more process inside a running container.

The ``exec`` verb computes the environment and the user Docker's way, then::

    spec = ExecSpec(args=["sh", "-c", "hostname"], env=env, user="nobody", stdio=(null, w, w))
    started = enter(container_pid, spec, on_created=lambda pid: open_cgroup(cid).add(pid))
    code = started.wait()          # Docker's exit code (128+signal when killed)

Nothing is created: the new process joins what the container's PID 1 already has. Process tree::

    caller ── fork ──▶ middle: PR_SET_DUMPABLE 0, close stray fds, open every /proc/<target>/ns/* fd
       ▲                       (all before the first setns: after setns(mnt) /proc is the container's),
       │                       setns(ipc, uts, net, pid, mnt, cgroup) in runc's order
       │                  └─ fork ──▶ command: the first process of ours in the container's pid
       │                              namespace (setns(pid) only applies to children); waits on sync
       │  "P <pid>"  the middle reports the pid and exits; the caller (a child subreaper) becomes the
       │             command's parent and can wait() for it
       │  on_created(pid): cgroup ── one byte on the sync pipe ──▶ setsid, [TIOCSCTTY], user from the
       │                                   container's /etc/passwd, chdir, capabilities, close fds, execve
       └── "E <code> <message>" on the report pipe if anything fails; EOF (O_CLOEXEC) = exec'd

setns(mnt) also moves our root and cwd to the root of the container's mount namespace (the kernel
follows the mounts stacked on "/", so this is the container's pivoted root): no chroot needed.
Nothing is imported after that (``child.RefuseImports``): the host's library is out of reach and a
module of the same path could come from the image.

Errors, as Docker 20.10 reports them (checked against a real dockerd): an exec that cannot start
exits 126, whatever the reason (a missing command too, not 127), with one line on *stdout*::

    OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": \
executable file not found in $PATH: unknown

All are raised as ``CannotExecute`` carrying that line. An unknown ``-u`` user is the daemon's own
error (Docker resolves it before calling the runtime): same exit code, no "OCI runtime" prefix.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from minidocker import trace
from minidocker.errors import CannotExecute, InvalidInput, MinidockerError, NotFound
from minidocker.kernel import ns
from minidocker.namespaces import child, users
from minidocker.namespaces.child import SetupFailed, Started
from minidocker.namespaces.spec import NAMESPACE_FLAGS, lookpath

# runc's order (libcontainer/configs NamespaceTypes, user first when there is one): mnt after the
# others is harmless since every fd is opened beforehand; pid anywhere before the fork
JOIN_ORDER: tuple[str, ...] = ("ipc", "uts", "net", "pid", "mnt", "cgroup")

# E-frame codes of the children: 125 = refused before the runtime's part (Docker's daemon-side
# checks, printed verbatim), anything else = the runtime failed ("OCI runtime exec failed: ...")
_DAEMON = 125
_RUNTIME = 126

_NOT_A_DIRECTORY_HINT = (
    ": Are you trying to mount a directory onto a file (or vice-versa)? "
    "Check if the specified host path exists and is the expected type"
)


@dataclass
class ExecSpec:
    """One ``docker exec``: what the exec verb resolved from its flags and the container's config.

    ``env`` is final (the container's env, Docker's HOSTNAME/PATH/TERM, then ``-e``); ``HOME`` is
    added from the user when missing. ``user`` is ``-u`` or the container's ``Config.User``, resolved
    in the container's /etc/passwd and /etc/group; ``group_add`` is the container's ``--group-add``.
    The capability flags are the container's (``privileged`` also when ``exec --privileged``).
    ``namespaces``: which of the target's namespaces to join; None means each of ``JOIN_ORDER``
    that differs from ours (so a ``--pid host`` container's exec stays in the host's pid namespace).
    """

    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    group_add: list[str] = field(default_factory=list)
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    # the container's seccomp profile (``ProcessSpec.seccomp``; "unconfined" for a privileged
    # container): runc's exec loads the container's filter, built for the container's capabilities,
    # so ``exec --privileged`` does not lift it
    seccomp: str | None = None
    stdio: tuple[int, int, int] = (0, 1, 2)
    tty: bool = False  # stdio are a pty slave: it becomes the controlling terminal
    namespaces: set[str] | None = None

    def validate(self) -> None:
        if not self.args:
            raise InvalidInput("no command specified")
        if not os.path.isabs(self.cwd):
            raise InvalidInput(
                f"the working directory '{self.cwd}' is invalid, it needs to be an absolute path",
                subject=self.cwd,
            )
        if self.namespaces is not None:
            unknown = self.namespaces - set(JOIN_ORDER)
            if unknown:
                raise InvalidInput(f"cannot join namespace(s): {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class Join:
    """One namespace to join: ``/proc/<pid>/ns/<name>``, identified by its inode (as stat'd by the
    caller: the middle process checks that the fd it opens is still that namespace)."""

    name: str
    path: str
    inode: tuple[int, int]  # st_dev, st_ino

    @property
    def flag(self) -> int:
        return NAMESPACE_FLAGS[self.name]


def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def namespaces_to_join(target_pid: int, wanted: set[str] | None = None) -> list[Join]:
    """The target's namespaces to join, in ``JOIN_ORDER``. The mount namespace is required: without
    it the command would run on the host's root, not the container's."""
    gone = NotFound(f"container process {target_pid} is not running", subject=str(target_pid))
    joins = []
    for name in JOIN_ORDER:
        path = f"/proc/{target_pid}/ns/{name}"
        try:
            theirs = _inode(path)
        except FileNotFoundError:
            # no such pid, or a zombie (its namespaces are gone); every kernel has mnt, not cgroup (4.6+)
            if name == "mnt" or not os.path.isdir(f"/proc/{target_pid}/ns"):
                raise gone from None
            continue
        if wanted is None:
            try:
                if theirs == _inode(f"/proc/self/ns/{name}"):
                    continue
            except FileNotFoundError:
                pass
        elif name not in wanted:
            continue
        joins.append(Join(name, path, theirs))
    if "mnt" not in {j.name for j in joins}:
        raise InvalidInput(
            f"process {target_pid} shares our mount namespace: exec would run on the host's root",
            subject=str(target_pid),
        )
    return joins


def exec_error(code: int, message: str) -> MinidockerError:
    """A failure reported by the children, as Docker 20.10 prints it (always exit code 126)."""
    if code == _DAEMON:
        return CannotExecute(message)
    text = f"OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"
    if "not a directory" in message:
        text += _NOT_A_DIRECTORY_HINT
    return CannotExecute(text)


@dataclass
class _Child:
    """What the forked processes need (``child.ChildContext``); computed in the caller."""

    spec: ExecSpec
    joins: list[Join]
    cap_mask: int
    last_cap: int
    chan: int  # write end of the report pipe
    sync: int  # read end of the sync pipe
    stdio: list[int] = field(default_factory=list)  # the stdio fds, moved to >= child.HIGH_FD
    seccomp: bytes | None = None  # the compiled filter, loaded before execve


def enter(target_pid: int, spec: ExecSpec, *, on_created: Callable[[int], None] | None = None) -> Started:
    """Run ``spec`` in the namespaces of process ``target_pid`` (the container's PID 1); return once
    the command exec'd.

    ``on_created(pid)`` runs here, in the caller, while the new process (host pid ``pid``) waits on
    the sync pipe: the place to move it into the container's cgroup(s). Raises ``NotFound`` or
    ``InvalidInput`` before forking (target gone, bad spec), ``CannotExecute`` with Docker's message
    when the command could not start (the process is gone by then), or whatever ``on_created``
    raised (the process is killed and reaped first). Marks the caller a child subreaper.
    """
    spec.validate()
    joins = namespaces_to_join(target_pid, spec.namespaces)
    last_cap = ns.cap_last_cap()
    mask = child.capability_mask(spec.cap_add, spec.cap_drop, spec.privileged, last_cap)
    child.become_subreaper()
    chan_r, chan_w = os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    ctx = _Child(spec, joins, mask, last_cap, chan_w, sync_r)
    # the container's capabilities without exec's --privileged (the filter is the container's)
    filter_caps = child.capability_mask(spec.cap_add, spec.cap_drop, False, last_cap)
    from minidocker.namespaces import seccomp  # (not at import: the start path needs no compiler)

    ctx.seccomp = seccomp.program(spec.seccomp, privileged=False, cap_mask=filter_caps)
    middle = os.fork()
    if middle == 0:
        _middle(ctx)  # never returns
    os.close(chan_w)
    os.close(sync_r)
    return child.supervise(
        middle,
        chan_r,
        sync_w,
        on_created,
        died="exec setup process died before creating the process",
        error=exec_error,
    )


# -- in the children ------------------------------------------------------------------------------
def _middle(ctx: _Child) -> None:
    try:
        child.enter_child(ctx)
        # non-dumpable before joining anything: a process of the container must never be able to
        # ptrace us or open our /proc/<pid>/{exe,mem,fd} (CVE-2016-9962); inherited by the fork
        ns.set_dumpable(False)
        ctx.stdio = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, child.HIGH_FD) for fd in ctx.spec.stdio]
        child.close_stray_fds({ctx.chan, ctx.sync, *ctx.stdio})
        # every fd first: once in the container's mount namespace, /proc/<target> means nothing
        fds = []
        for j in ctx.joins:
            fd = os.open(j.path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != j.inode:  # the pid was reused by another process
                raise SetupFailed(_RUNTIME, f"{j.path}: the container's process exited")
            fds.append(fd)
        for j, fd in zip(ctx.joins, fds, strict=True):
            ns.setns(fd, j.flag, path=j.path)
            os.close(fd)
        try:
            pid = os.fork()
        except OSError as e:
            # forking into a pid namespace whose PID 1 has died fails with ENOMEM
            raise SetupFailed(_RUNTIME, f"fork into the container's pid namespace: {e.strerror}") from None
        if pid == 0:
            _command(ctx)  # never returns
        child.send(ctx.chan, b"P", str(pid))
        os._exit(0)
    except SetupFailed as e:
        child.fail(ctx, e.code, str(e))
    except BaseException as e:  # noqa: BLE001 (the child must never return into the caller's code)
        child.fail(ctx, _RUNTIME, f"exec setup: {e}")
    os._exit(_RUNTIME)


def _chdir(cwd: str) -> None:
    """runc's chdir for exec: the directory must exist (nothing is created, unlike ``run -w``).
    Then check we really are inside the container (CVE-2024-21626: ``/proc/self/fd/N`` of a leaked
    host directory fd; none is left open here, this is the second line of defence)."""
    trace.emit(lambda: f'chdir("{cwd}"); getcwd()')
    try:
        os.chdir(cwd)
    except OSError as e:
        why = os.strerror(e.errno).lower() if e.errno else str(e)
        raise SetupFailed(_RUNTIME, f'chdir to cwd ("{cwd}") set in config.json failed: {why}') from None
    try:
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise SetupFailed(
            _RUNTIME,
            "current working directory is outside of container mount namespace root "
            "-- possible container breakout detected",
        )


def _command(ctx: _Child) -> None:
    spec = ctx.spec
    try:
        if os.read(ctx.sync, 1) != b"\0":
            os._exit(_RUNTIME)  # the caller gave up (on_created failed) or died: leave quietly
        os.close(ctx.sync)
        trace.emit("setsid()")
        os.setsid()  # own session (and, with tty, the terminal), like every runc exec
        try:
            user = users.resolve(
                spec.user, child.read_small("/etc/passwd"), child.read_small("/etc/group"), spec.group_add
            )
        except MinidockerError as e:
            raise SetupFailed(_DAEMON, str(e)) from None
        env = list(spec.env)
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home}")
        if not spec.no_new_privileges:
            child.load_seccomp(ctx)  # while we still hold CAP_SYS_ADMIN (runc's order)
        _chdir(spec.cwd)  # as root, like runc's first attempt (a 0700 directory of the user works too)
        child.drop_privileges(ctx, user)
        # as the container's user: a file it may not execute is "permission denied", like Docker
        path, _, message = lookpath(spec.args[0], env)
        if path is None:
            raise SetupFailed(_RUNTIME, message)
        child.exec_command(ctx, path, env)
    except SetupFailed as e:
        child.fail(ctx, e.code, str(e))
    except BaseException as e:  # noqa: BLE001
        child.fail(ctx, _RUNTIME, f"exec setup: {e}")
    os._exit(_RUNTIME)
