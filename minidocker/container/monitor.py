"""The monitor: one process per running container, forked (not exec'd) from the CLI by ``start``.

Like containerd-shim it outlives the command that started it and owns the container's life::

    CLI ──fork──▶ monitor: setsid; flock monitor.lock; mount overlay; cgroup; etc files
                     │     namespaces.start(spec, on_created=cgroup.add) ──▶ container (PID 1)
       ◀── "ok <pid>" on the report pipe (or "err <code> <message>", everything undone)
                     │  detached: execve a lean interpreter (container.pump: same pid, lock, pipes)
                     │  copy stdout/stderr (or the pty) into <id>-json.log (+ to the CLI when
                     │  foreground); waitpid; OOM?; record ExitCode/FinishedAt
                     └─ teardown: cgroup, overlay, exec dir; --rm removes the container;
                        --restart on-failure/always starts it again

The monitor never returns into the CLI's code: it ends with ``os._exit`` (foreground: with the
container's exit code, which is how ``run`` learns it). It ignores job-control signals: the
container is stopped with ``stop``/``kill`` (which signal the container itself), not through us.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import field

from minidocker import trace
from minidocker.container.state import Container, now_rfc3339
from minidocker.errors import MinidockerError
from minidocker.kernel import sockets
from minidocker.record import Record, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from minidocker.cgroups import Cgroup
    from minidocker.container.lifecycle import Runtime

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_IGNORED = (
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGPIPE,
)


def copy_winsize(src_fd: int, dst_fd: int) -> None:
    """The terminal size of ``src_fd`` onto the pty ``dst_fd`` (TIOCGWINSZ → TIOCSWINSZ)."""
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)


@record
class _Stdio(Record):
    """The container's three fds and the monitor's ends of them."""

    container: tuple[int, int, int]
    outputs: dict[int, str]  # monitor-side fd -> "stdout"/"stderr"
    stdin_src: int | None = None  # what the monitor copies into the container (fd 0, -it)
    stdin_dst: int | None = None
    close_after_start: list[int] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)  # held open for the container's life (-di stdin)
    console: sockets.Socket | None = None  # -t: the pty master arrives here (runc's console socket)
    copy_stdin: bool = False
    # what _launch records in config.v2.json (etc files, mounts, endpoint): saved together with the
    # "running" state (or with the error of a failed start), not in a save of its own: one
    # fsync'd config.v2.json write less per start; Docker records them in that checkpoint too
    record: Callable[[Container], None] | None = None


def _stdio(c: Container, *, foreground: bool, stdin: bool) -> _Stdio:
    if c.config.get("Tty"):
        # the terminal is made inside the container (its own devpts); we get the master back
        ours, theirs = sockets.socketpair()
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        io = _Stdio((null, null, null), {}, close_after_start=[null, theirs.detach()], console=ours)
        io.copy_stdin = foreground and stdin
        return io
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    closers = [out_w, err_w]
    keep: list[int] = []
    if foreground and stdin:
        in_fd = 0  # the caller's stdin, as is: EOF there is EOF in the container
    elif c.config.get("OpenStdin"):
        in_fd, w = os.pipe2(os.O_CLOEXEC)  # never written, never closed: stdin stays open (-di)
        keep.append(w)
        closers.append(in_fd)
    else:
        in_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        closers.append(in_fd)
    return _Stdio(
        (in_fd, out_w, err_w), {out_r: "stdout", err_r: "stderr"}, close_after_start=closers, keep=keep
    )


def _receive_console(io: _Stdio, *, winsize_from: int | None) -> int:
    """The pty master the container sent before it exec'd (it is already in the socket)."""
    assert io.console is not None
    io.console.settimeout(5.0)
    _, fds = sockets.recv_fds(io.console, 16, 1)
    io.console.close()
    if not fds:
        raise MinidockerError("the container did not send its terminal")
    master = fds[0]
    os.set_inheritable(master, False)
    if winsize_from is not None and os.isatty(winsize_from):
        copy_winsize(winsize_from, master)
    io.outputs = {master: "stdout"}
    if io.copy_stdin:
        io.stdin_src, io.stdin_dst = 0, master
    return master


def container_env(c: Container, *, tty: bool | None = None, extra: list[str] | None = None) -> list[str]:
    """``CreateDaemonEnvironment``: PATH, HOSTNAME, TERM (tty), then Config.Env (and ``exec -e``)
    replacing or adding, in that order."""
    use_tty = bool(c.config.get("Tty")) if tty is None else tty
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={c.config.get('Hostname') or ''}"]
    if use_tty:
        env.append("TERM=xterm")
    for entry in [*(c.config.get("Env") or []), *(extra or [])]:
        key = entry.split("=", 1)[0]
        for i, existing in enumerate(env):
            if existing.split("=", 1)[0] == key:
                env[i] = entry
                break
        else:
            env.append(entry)
    return env


def _share_etc_files(x: Container, other: Container) -> None:
    x.hostname_path, x.hosts_path, x.resolv_conf_path = (
        other.hostname_path,
        other.hosts_path,
        other.resolv_conf_path,
    )


@record
class _Launched(Record):
    """The container process the monitor started, its cgroup and stdio."""

    pid: int
    cgroup: Cgroup
    io: _Stdio


def _launch(rt: Runtime, cid: str, io: _Stdio) -> _Launched:
    """Mount, cgroup, etc files, binds, then the container process. Undone by the caller on error."""
    from minidocker import cgroups
    from minidocker.cgroups.resources import Resources
    from minidocker.container import etcfiles
    from minidocker.container.hostconfig import no_new_privileges, seccomp_profile
    from minidocker.namespaces import Bind, ProcessSpec, default_namespaces, start

    c = rt.containers.load(cid)
    hc = c.host_config
    mount = rt.stores.layers.get_mount(cid)
    rootfs = rt.stores.driver.get(mount.mount_id)

    namespaces = default_namespaces()
    netns_path = None
    mode = hc.network_mode
    if mode == "host":
        namespaces.discard("net")
    elif mode.startswith("container:"):
        other = rt.get(mode.split(":", 1)[1])
        if not other.state.running or not other.state.pid:
            raise MinidockerError(f"cannot join network of a non running container: {other.id}", subject=cid)
        namespaces.discard("net")
        netns_path = f"/proc/{other.state.pid}/ns/net"
    endpoints: list[Any] = []
    if netns_path is None and mode != "host" and mode != "none":
        from minidocker import network  # chapter 6: addresses now, the veths once the process exists

        sandbox = _new_sandbox()
        endpoints = network.allocate_all(rt.stores, c, sandbox_key=sandbox[1])
    endpoint = endpoints[0] if endpoints else None
    published = _bind_ports(c) if endpoint is not None else []  # chapter 7: a taken port fails here
    if netns_path is not None:
        # --network container:<x> shares x's etc files as well as its network (initializeNetworking)
        c = rt.update(cid, lambda x: _share_etc_files(x, other))
    else:
        hosts = etcfiles.container_hosts(
            mode,
            hostname=c.config.get("Hostname") or "",
            domainname=c.config.get("Domainname") or "",
            extra_hosts=hc.extra_hosts,
            ips=[ep.ip for ep in endpoints],
        )
        resolv = etcfiles.container_resolv_conf(
            mode, dns=hc.dns, dns_search=hc.dns_search, dns_options=hc.dns_options
        )
        rt.containers.write_start_files(c, hosts=hosts, resolv=resolv)
    binds = [
        Bind(path, dest, readonly=hc.readonly_rootfs)  # --read-only covers them too (NetworkMounts)
        for path, dest in (
            (c.hostname_path, "/etc/hostname"),
            (c.hosts_path, "/etc/hosts"),
            (c.resolv_conf_path, "/etc/resolv.conf"),
        )
        if path and os.path.exists(path)
    ]
    if c.mount_points:
        from minidocker.container import mounts as mnt

        binds += mnt.binds_for_start(c, rt._volumes(), rootfs)

    def record(x: Container) -> None:
        # config.v2.json records what this start set up, as dockerd's does: the etc files'
        # paths (write_start_files) and the volumes' Source and mount ID (binds_for_start);
        # cp and inspect read them from there
        x.mount_points = c.mount_points
        x.hostname_path, x.hosts_path, x.resolv_conf_path = c.hostname_path, c.hosts_path, c.resolv_conf_path
        if endpoint is not None:
            _record_endpoints(x, endpoints, sandbox[0])
            x.network_settings.ports = _port_settings(c, published)

    io.record = record  # saved with the running state by _supervise (or with the error)

    cg = cgroups.open_cgroup(cid)
    cg.create()
    cg.apply(Resources.from_object(hc))

    spec = ProcessSpec(
        args=[c.path, *c.args],
        rootfs=rootfs,
        env=container_env(c),
        cwd=c.config.get("WorkingDir") or "/",
        user=c.config.get("User") or "",
        group_add=list(hc.group_add or []),
        hostname=(c.config.get("Hostname") or "") if mode != "host" else "",
        binds=binds,
        readonly_rootfs=hc.readonly_rootfs,
        privileged=hc.privileged,
        cap_add=list(hc.cap_add or []),
        cap_drop=list(hc.cap_drop or []),
        no_new_privileges=no_new_privileges(hc),
        seccomp=seccomp_profile(hc) or None,
        namespaces=namespaces,
        netns_path=netns_path,
        stdio=io.container,
        tty=bool(c.config.get("Tty")),
        init=bool(hc.init),
        console_socket=io.close_after_start[1] if io.console is not None else None,
        masked_paths=list(hc.masked_paths or []),
        readonly_paths=list(hc.readonly_paths or []),
    )
    if mode == "host":
        spec.hostname = ""

    def on_created(pid: int) -> None:
        cg.add(pid)
        if endpoint is not None:
            from minidocker import network

            for ep in endpoints:
                network.attach(rt.stores, ep, pid)
            if published:
                from minidocker import portmap

                state = os.path.join(rt.exec_dir(cid), portmap.STATE_FILE)
                portmap.publish(published, endpoint.ip, endpoint.bridge, state)

    try:
        started = start(spec, on_created=on_created)
    finally:
        if published:
            from minidocker import portmap

            portmap.close(published)  # the proxies hold their own copies of the sockets
    return _Launched(started.pid, cg, io)


def _bind_ports(c: Container) -> list[Any]:
    """-p/-P: the host ports taken now (sockets held), before anything else is wired."""
    hc = c.host_config
    if not hc.port_bindings and not hc.publish_all_ports:
        return []
    from minidocker import portmap

    bindings = {k: [(b.host_ip, b.host_port) for b in v or []] for k, v in (hc.port_bindings or {}).items()}
    return portmap.bind(portmap.requested(c.config.get("ExposedPorts"), bindings, hc.publish_all_ports))


def _port_settings(c: Container, published: list[Any]) -> Any:
    """NetworkSettings.Ports: exposed ports with their host bindings (null: exposed only)."""
    if not published and not c.config.get("ExposedPorts"):
        return None
    from minidocker import portmap
    from minidocker.container.hostconfig import PortBinding

    return {
        k: None if v is None else [PortBinding(host_ip=ip, host_port=hp) for ip, hp in v]
        for k, v in portmap.port_settings(c.config.get("ExposedPorts"), published).items()
    }


def _new_sandbox() -> tuple[str, str]:
    """(SandboxID, SandboxKey): the /run/netns entry the endpoint record names before it exists."""
    from minidocker.fsutil import random_id
    from minidocker.network.netlink import NETNS_DIR

    sandbox = random_id()
    return sandbox, f"{NETNS_DIR}/{sandbox[:12]}"


def _record_endpoints(x: Container, endpoints: list[Any], sandbox_id: str) -> None:
    """The sandbox and each endpoint's addresses in config.v2.json (cleared again by teardown)."""
    x.network_settings.sandbox_id = sandbox_id
    x.network_settings.sandbox_key = endpoints[0].sandbox_key
    x.network_settings.networks = {ep.network_name: ep.settings() for ep in endpoints}


def _wait(pid: int) -> int:
    from minidocker.namespaces import exit_code

    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    # orphans of the container that the kernel handed to us (we are a child subreaper)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    return exit_code(status)


def _should_restart(c: Container, code: int) -> bool:
    policy = c.host_config.restart_policy
    if c.has_been_manually_stopped or c.host_config.auto_remove:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        return code != 0 and (policy.maximum_retry_count == 0 or c.restart_count < policy.maximum_retry_count)
    return False


def run(rt: Runtime, cid: str, report: sockets.Socket, *, foreground: bool, stdin: bool) -> NoReturn:
    """The monitor's whole life. Never returns."""
    code = 125
    try:
        code = _monitor(rt, cid, report, foreground=foreground, stdin=stdin)
    except BaseException:  # noqa: BLE001 (never return into the CLI)
        with contextlib.suppress(Exception):
            if os.environ.get("MINIDOCKER_DEBUG"):
                import traceback  # not at import: ~1.5 ms of every start for a debug aid

                traceback.print_exc()
    finally:
        os._exit(code)


def run_prepared(
    runtime: Callable[[], Runtime],
    sock: sockets.Socket,
    *,
    foreground: bool,
    stdin: bool,
    exec_root: str | None = None,
) -> NoReturn:
    """A monitor forked before the container exists (:mod:`minidocker.container.prepare`): it
    imports what a start needs and builds the default seccomp filter on the other core while the
    CLI creates the container, then reads ``go <id>`` and is :func:`run` from there (with the
    Runtime ``runtime()`` makes). EOF instead (the create failed, or the CLI died): it exits.
    Never returns."""
    code = 125
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the CLI's: it closes the socket
        with contextlib.suppress(Exception):  # only a head start: the start itself redoes it
            _warm(os.path.join(exec_root or runtime().exec_root, "seccomp"))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        verb, _, cid = data.decode().strip().partition(" ")
        if verb == "go" and cid:
            code = _monitor(runtime(), cid, sock, foreground=foreground, stdin=stdin)
        else:
            code = 0  # cancelled: nothing was started
    except BaseException:  # noqa: BLE001 (never return into the CLI)
        with contextlib.suppress(Exception):
            if os.environ.get("MINIDOCKER_DEBUG"):
                import traceback

                traceback.print_exc()
    finally:
        os._exit(code)


def _warm(filter_cache: str) -> None:
    """Imports of the start path (with this host's cgroup driver, whose version ``detect`` then
    remembers), and Docker's default seccomp filter, compiled once and then read from
    ``filter_cache`` (``<exec-root>/seccomp/``, see ``process.prepare_default_filter``)."""
    import importlib

    from minidocker import cgroups
    from minidocker.container import etcfiles, jsonlog, lifecycle, pump  # noqa: F401
    from minidocker.namespaces import process

    importlib.import_module(f"minidocker.cgroups.{cgroups.detect()}")
    process.prepare_default_filter(filter_cache)


def _report(sock: sockets.Socket | None, text: str, fds: list[int] | None = None) -> None:
    """One message to the starting CLI (with the pty master for -t, so it can resize it)."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        data = text.encode(errors="replace")
        if fds:
            sockets.send_fds(sock, [data], fds)
        else:
            sock.sendall(data)
        sock.close()


def _running(log_path: str, pid: int) -> Callable[[Container], None]:
    def change(x: Container) -> None:
        x.state.running = True
        x.state.paused = x.state.restarting = False
        x.state.oom_killed = False
        x.state.pid = pid
        x.state.exit_code = 0
        x.state.error = ""
        x.state.started_at = now_rfc3339()
        x.has_been_started_before = True
        x.has_been_manually_stopped = False
        x.log_path = log_path

    return change


def _both(
    first: Callable[[Container], None] | None, then: Callable[[Container], None]
) -> Callable[[Container], None]:
    """One read-modify-write of config.v2.json for two changes."""

    def change(x: Container) -> None:
        if first is not None:
            first(x)
        then(x)

    return change


def _exited(code: int, oom: bool) -> Callable[[Container], None]:
    def change(x: Container) -> None:
        x.state.running = x.state.paused = x.state.restarting = False
        x.state.pid = 0
        x.state.exit_code = code
        x.state.oom_killed = oom
        x.state.finished_at = now_rfc3339()

    return change


def _restarting(x: Container) -> None:
    x.restart_count += 1
    x.state.running = x.state.restarting = True  # Docker's "Restarting (1) 2 seconds ago"


def _not_restarting(x: Container) -> None:
    x.state.running = x.state.restarting = False


def _start_failed(
    rt: Runtime, cid: str, e: Exception, record: Callable[[Container], None] | None = None
) -> int:
    from minidocker.container.lifecycle import start_error_state

    code = e.exit_code if isinstance(e, MinidockerError) else 125
    message = str(e)
    with contextlib.suppress(Exception):
        c = rt.update(cid, _both(record, lambda x: start_error_state(x, code, message)))
        rt.teardown(c)
        if c.host_config.auto_remove:
            rt.remove(cid, force=True)
    return code


def _detach_stdio() -> None:
    """Detached: let go of the caller's terminal/pipes (``$(minidocker run -d …)`` must return)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _monitor(rt: Runtime, cid: str, report_sock: sockets.Socket, *, foreground: bool, stdin: bool) -> int:
    os.setsid()  # our own session: the caller's terminal and its hangup are not ours
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    os.makedirs(rt.exec_dir(cid), 0o700, exist_ok=True)
    lock_fd = os.open(rt.lock_path(cid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until we exit: "monitor alive"
    except BlockingIOError:
        _report(report_sock, "err 125 container is already running (its monitor holds the lock)")
        return 125
    return _supervise(rt, cid, report_sock, lock_fd, foreground=foreground, stdin=stdin, first=True)


def _supervise(
    rt: Runtime,
    cid: str,
    report: sockets.Socket | None,
    lock_fd: int,
    *,
    foreground: bool,
    stdin: bool,
    first: bool,
) -> int:
    """Start the container, watch it, and start it again while its restart policy says so."""
    from minidocker.container.jsonlog import JsonLogWriter
    from minidocker.container.pump import pump

    while True:
        attached = first and foreground
        io = _stdio(rt.containers.load(cid), foreground=attached, stdin=attached and stdin)
        master = None
        try:
            launched = _launch(rt, cid, io)
            if io.console is not None:
                master = _receive_console(io, winsize_from=0 if attached else None)
        except Exception as e:  # noqa: BLE001 (reported to the caller as one line)
            err = _start_failed(rt, cid, e, io.record)
            _report(report, f"err {err} {e}")
            return err
        finally:
            for fd in io.close_after_start:
                with contextlib.suppress(OSError):
                    os.close(fd)
        log_path = rt.containers.log_path(cid)
        log = JsonLogWriter(log_path)
        rt.update(cid, _both(io.record, _running(log_path, launched.pid)))
        trace.emit(f"container {cid[:12]} running as pid {launched.pid}")
        _report(report, f"ok {launched.pid}", [master] if master is not None and attached else None)
        report = None
        if not gc.isenabled():
            # Off in `run`'s CLI while it started us (cli/main.py), and we may run for days: on
            # again, for what we allocate from now on. Freeze first (once: frozen objects are never
            # collected), or the ~100k objects of the imports make its first collection a full walk.
            gc.freeze()
            gc.enable()
        if first and not foreground:
            _detach_stdio()
        if not attached:  # nobody to copy to: the rest runs in a lean interpreter (container.pump)
            log.close()
            _exec_lean(
                rt,
                cid,
                launched.pid,
                io,
                lock_fd,
                log_path,
                first=first,
                foreground=foreground,
            )
            log = JsonLogWriter(log_path)  # the exec failed: go on here
        try:
            pump(io.outputs, log, passthrough=attached, stdin_src=io.stdin_src, stdin_dst=io.stdin_dst)
        finally:
            log.close()
        again, code = _after_exit(
            rt,
            cid,
            launched.pid,
            [*io.outputs, *io.keep],
            first=first,
            foreground=foreground,
        )
        if not again:
            return code
        first = False


def resume(
    rt: Runtime,
    cid: str,
    pid: int,
    fds: list[int],
    lock_fd: int,
    *,
    first: bool,
    foreground: bool,
) -> int:
    """The monitor after :func:`minidocker.container.pump.main` saw the container's output close:
    its exit, then a restart (the usual loop) or the teardown. Returns the monitor's exit code."""
    again, code = _after_exit(rt, cid, pid, fds, first=first, foreground=foreground)
    if not again:
        return code
    return _supervise(rt, cid, None, lock_fd, foreground=foreground, stdin=False, first=False)


def _exec_lean(
    rt: Runtime,
    cid: str,
    pid: int,
    io: _Stdio,
    lock_fd: int,
    log_path: str,
    *,
    first: bool,
    foreground: bool,
) -> None:
    """Replace this process (forked from the CLI, with all its modules) by a fresh interpreter that
    only pumps (container.pump): the same pid, children, flock and pipes. Returns only on failure."""
    import json
    import sys

    import minidocker

    fds = [*io.outputs, *io.keep, lock_fd]
    for fd in fds:
        os.set_inheritable(fd, True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(minidocker.__file__)))
    state = {
        "data_root": rt.stores.root,
        "exec_root": rt.exec_root,
        "cid": cid,
        "pid": pid,
        "outputs": {str(fd): stream for fd, stream in io.outputs.items()},
        "keep": io.keep,
        "lock_fd": lock_fd,
        "log_path": log_path,
        "first": first,
        "foreground": foreground,
    }
    code = f"import sys; sys.path[:0] = [{root!r}]; from minidocker.container.pump import main; main()"
    argv = [sys.executable, "-s", "-S", "-c", code, json.dumps(state)]
    trace.emit(lambda: f"execve({sys.executable!r}, {argv[1:5]!r}, ...)")
    with contextlib.suppress(OSError):
        os.execv(sys.executable, argv)
    for fd in fds:
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)


def _after_exit(
    rt: Runtime, cid: str, pid: int, fds: list[int], *, first: bool, foreground: bool
) -> tuple[bool, int]:
    """Reap the container, record its exit; then (True, code) when the restart policy starts it
    again (after the back-off), or (False, code) once it is torn down (or removed: ``--rm``)."""
    from minidocker import cgroups

    code = _wait(pid)
    oom = False
    with contextlib.suppress(Exception):
        oom = cgroups.open_cgroup(cid).oom_killed()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    # --rm (never restarted): the record is removed in a moment, so its "exited" state is written
    # without an fsync (~1 ms on the path to the CLI's exit)
    c = rt.update(cid, _exited(code, oom), sync=lambda x: not x.host_config.auto_remove)
    trace.emit(f"container {cid[:12]} exited with {code}{' (OOM killed)' if oom else ''}")
    again = _should_restart(c, code)
    if again:
        rt.teardown(c, keep_exec_dir=True)  # our lock stays where waiters find it
        if first and foreground:
            _detach_stdio()  # the caller got its exit code; restarts run detached
        rt.update(cid, _restarting)
        time.sleep(min(0.1 * 2 ** min(c.restart_count, 10), 10.0))
        try:
            c = rt.containers.load(cid)
        except MinidockerError:
            again = False
        else:
            if c.has_been_manually_stopped:  # a stop meanwhile wins over the policy
                c = rt.update(cid, _not_restarting)
                again = False
    if again:
        return True, code
    if c.host_config.auto_remove:
        from minidocker.container.lifecycle import record_exit_for_waiters

        record_exit_for_waiters(rt.lock_path(cid), code)  # `wait` reads it once the record is gone
        with contextlib.suppress(MinidockerError):
            rt.remove_stopped(c)  # tears down too
    else:
        rt.teardown(c)
    return False, code
