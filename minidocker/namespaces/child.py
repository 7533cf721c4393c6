"""What ``start`` (a new container) and ``enter`` (``exec`` into a running one) share.

Both fork a middle process, which forks the process that will exec the command; both talk to it
the same way::

    caller ──────────── report pipe (frames) ◀── children: "T <trace event>", "P <pid>", "E <code> <msg>"
       │  on_created(pid) ── one byte on the sync pipe ──▶ the child goes on and execs
       └── EOF on the report pipe (it is O_CLOEXEC) = the command exec'd

The caller's side is ``supervise``; the children's side is the rest: no import after fork
(``RefuseImports``), the fd sweep, the privilege drop in runc's order, default signal dispositions,
stdio and the final ``execve``. The children code reads its context through ``ChildContext``.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import struct
import sys
from collections.abc import Callable

from minidocker import trace
from minidocker.errors import CannotExecute, CommandNotFound, MinidockerError
from minidocker.kernel import ns, seccomp
from minidocker.namespaces import caps, users
from minidocker.namespaces.spec import exit_code_for_exec_error
from minidocker.record import Record, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import NoReturn, Protocol

HIGH_FD = 10  # where the stdio fds wait, out of the way of 0/1/2, until they are dup'ed there
_FRAME = struct.Struct("!cI")  # kind, payload length
_is_subreaper = False


@record
class Started(Record):
    """A process that has exec'd its command. ``pid`` is its host pid."""

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


class SetupFailed(Exception):
    """Raised inside the children: reported to the caller as ``E <code> <message>``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


if TYPE_CHECKING:  # the children's view of their context, for mypy only (no typing import at run time)

    class _SpecLike(Protocol):
        @property
        def args(self) -> list[str]: ...
        @property
        def tty(self) -> bool: ...
        @property
        def no_new_privileges(self) -> bool: ...

    class ChildContext(Protocol):
        """What the children need; computed in the caller, where errors are cheap."""

        @property
        def spec(self) -> _SpecLike: ...

        cap_mask: int
        last_cap: int
        chan: int  # write end of the report pipe
        sync: int  # read end of the sync pipe
        stdio: list[int]  # the stdio fds, moved to >= HIGH_FD
        seccomp: bytes | None  # the filter still to load (None: none, or loaded already)


def capability_mask(cap_add: list[str], cap_drop: list[str], privileged: bool, last_cap: int) -> int:
    """Docker's 14 capabilities tweaked by ``--cap-add``/``--cap-drop``. ``--privileged`` means every
    capability *we* hold (a capability missing from our bounding set cannot be given)."""
    m = caps.mask(caps.tweak(cap_add, cap_drop, privileged, last_cap=last_cap))
    if privileged:
        m &= ns.capget().permitted
    return m


# -- the report pipe ------------------------------------------------------------------------------
def send(fd: int, kind: bytes, payload: str) -> None:
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


def frames(fd: int) -> list[tuple[bytes, str]] | None:
    """The next frame (as a one-item list), or None at EOF."""
    head = _read_exact(fd, _FRAME.size)
    if head is None:
        return None
    kind, size = _FRAME.unpack(head)
    body = _read_exact(fd, size) if size else b""
    return [(kind, (body or b"").decode(errors="replace"))]


# -- the caller's side ----------------------------------------------------------------------------
def become_subreaper() -> None:
    """Once per process: the middle process exits after the fork, and the command must become
    *our* child (like containerd-shim's) so that ``Started.wait`` can reap it."""
    global _is_subreaper
    if not _is_subreaper:
        ns.set_child_subreaper()
        _is_subreaper = True


def supervise(
    middle: int,
    chan_r: int,
    sync_w: int,
    on_created: Callable[[int], None] | None,
    *,
    died: str = "container setup process died before creating the container",
    error: Callable[[int, str], MinidockerError] | None = None,
) -> Started:
    """Read the children's reports until the command exec'd (EOF) or failed (``E`` frame).

    ``error(code, message)`` turns an ``E`` frame into the exception to raise; by default 127 is
    ``CommandNotFound``, 126 ``CannotExecute``, anything else ``MinidockerError``.
    """
    pid: int | None = None
    middle_reaped = False
    failure: tuple[int, str] | None = None
    try:
        while (frame := frames(chan_r)) is not None:
            kind, payload = frame[0]
            if kind == b"T":
                trace.emit(payload)
            elif kind == b"P":
                pid = int(payload)
                # once the middle process is reaped, the child is ours (we are a subreaper)
                os.waitpid(middle, 0)
                middle_reaped = True
                if on_created is not None:
                    on_created(pid)
                os.write(sync_w, b"\0")
            elif kind == b"E":
                code_text, _, message = payload.partition(" ")
                failure = (int(code_text), message)
    except BaseException:
        # on_created failed (or we were interrupted): the child has run nothing of its own yet
        if pid is not None:
            kill_and_reap(pid)
        raise
    finally:
        os.close(chan_r)
        os.close(sync_w)
        if not middle_reaped:
            os.waitpid(middle, 0)
    if failure is not None:
        if pid is not None:
            os.waitpid(pid, 0)
        raise (error or _default_error)(*failure)
    if pid is None:
        raise MinidockerError(died)
    return Started(pid)


def _default_error(code: int, message: str) -> MinidockerError:
    if code == 127:
        return CommandNotFound(message)
    if code == 126:
        return CannotExecute(message)
    return MinidockerError(message)


def kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


# -- in the children ------------------------------------------------------------------------------
class RefuseImports:
    """After fork no module may be imported: after pivot_root (or setns into the container's mount
    namespace) the host's library is gone and a module of the same path could come from the image,
    into a process with full capabilities."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        raise ImportError(f"minidocker: import of {fullname!r} in the container setup process (preload it)")


def enter_child(ctx: ChildContext) -> None:
    sys.meta_path.insert(0, RefuseImports())
    if trace.enabled():
        # events go back to the caller, which emits them (so --trace and trace.capture() see them);
        # ctx.chan is read at each event: exec_command moves the pipe to fd 3
        trace._sinks[:] = [lambda text: send(ctx.chan, b"T", text)]


def fail(ctx: ChildContext, code: int, message: str) -> NoReturn:
    try:
        send(ctx.chan, b"E", f"{code} {message}")
    finally:
        os._exit(code)


def close_stray_fds(keep: set[int]) -> None:
    """Close every fd the caller had (data-root lock, dir fds...) but ours: a leaked directory fd
    plus ``cwd=/proc/self/fd/N`` is a way out of the container (CVE-2024-21626)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory fd listdir used, already closed


def read_small(path: str) -> bytes | None:
    """A regular file of the container (once inside it), or None. Never blocks on a FIFO."""
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


def drop_privileges(ctx: ChildContext, user: users.ExecUser) -> None:
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


def load_seccomp(ctx: ChildContext) -> None:
    """Install the container's seccomp filter, once (it is inherited by every child and across
    execve). runc's places: right before ``drop_privileges`` without no_new_privs, since loading
    then needs CAP_SYS_ADMIN; with no_new_privs, as late as possible (``exec_command``), so that
    as little of our own setup as possible runs under the container's filter."""
    program, ctx.seccomp = ctx.seccomp, None
    if program is not None:
        try:
            seccomp.set_mode_filter(program)
        except OSError as e:
            raise SetupFailed(125, f"error loading seccomp filter into kernel: {e}") from None


def default_signals() -> None:
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


def install_stdio(ctx: ChildContext) -> None:
    trace.emit(lambda: f"dup2({ctx.stdio[0]}, 0); dup2({ctx.stdio[1]}, 1); dup2({ctx.stdio[2]}, 2)")
    for target, fd in enumerate(ctx.stdio):
        os.dup2(fd, target)  # inheritable: these three survive execve


def exec_command(ctx: ChildContext, path: str, env: list[str]) -> None:
    """The last steps: stdio, terminal, umask, fds, execve. Reports failure and exits."""
    default_signals()
    install_stdio(ctx)
    if ctx.spec.tty:
        ns.set_controlling_tty(0)
    os.umask(0o022)
    # only 0, 1, 2 and the error pipe (close-on-exec) stay open; exec closes the pipe: EOF = success
    if ctx.chan != 3:
        os.dup2(ctx.chan, 3, inheritable=False)
        ctx.chan = 3
    ns.close_range(4)
    try:
        load_seccomp(ctx)  # with no_new_privs: nothing of ours runs under the filter but execve
    except SetupFailed as e:
        fail(ctx, e.code, str(e))
    try:
        ns.execve(path, ctx.spec.args, env)
    except OSError as e:
        code = exit_code_for_exec_error(e.errno or errno.EIO)
        fail(ctx, code, f"exec {path}: {os.strerror(e.errno or errno.EIO).lower()}")
