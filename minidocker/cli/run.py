"""Container verbs that change state: run, create, start, stop, kill, restart, rm, wait, exec, prune.

Thin: flags become a :class:`~minidocker.container.create.RunOptions`, the work happens in
:class:`minidocker.container.lifecycle.Runtime`, and this module prints what Docker prints.
Verbs taking several containers go on after a failure and exit 1 at the end, like the docker CLI;
``run``/``create`` exit 125 on our errors and with the container's own code otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)

# Docker's `run` uses -h for --hostname, so its help is --help only.
_RUN_SETTINGS: dict[str, Any] = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flags ``run`` and ``create`` share (``docker run --help``)."""
    opts = [
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("--name", help="Assign a name to the container"),
        click.option("-e", "--env", multiple=True, help="Set environment variables"),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables"),
        click.option("-w", "--workdir", default="", help="Working directory inside the container"),
        click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume"),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image"),
        click.option("-h", "--hostname", default="", help="Container host name"),
        click.option("--domainname", default="", help="Container NIS domain name"),
        click.option(
            "--init",
            is_flag=True,
            help="Run an init inside the container that forwards signals and reaps processes",
        ),
        click.option("--restart", default="no", help="Restart policy to apply when a container exits"),
        click.option(
            "--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits"
        ),
        click.option("-m", "--memory", default="", help="Memory limit"),
        click.option(
            "--memory-swap",
            default="",
            help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
        ),
        click.option("--memory-reservation", default="", help="Memory soft limit"),
        click.option("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)"),
        click.option("--cpus", default="", help="Number of CPUs"),
        click.option("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)"),
        click.option("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)"),
        click.option(
            "--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)"
        ),
        click.option(
            "--network", "--net", "network", default="default", help="Connect a container to a network"
        ),
        click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)"),
        click.option("--network-alias", multiple=True, help="Add network-scoped alias for the container"),
        click.option("--dns", multiple=True, help="Set custom DNS servers"),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains"),
        click.option("--dns-option", multiple=True, help="Set DNS options"),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities"),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities"),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container"),
        click.option("--security-opt", multiple=True, help="Security Options"),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("--group-add", multiple=True, help="Add additional groups to join"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container"),
        click.option("--stop-signal", default="", help="Signal to stop a container"),
        click.option(
            "--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container"
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _options(image: str, command: tuple[str, ...], detach: bool, kw: dict[str, Any]) -> Any:
    from minidocker import cgroups
    from minidocker.cli.output import key_values
    from minidocker.container.create import RunOptions, expand_env, read_env_file

    env: list[str] = []
    for path in kw["env_file"]:
        env += read_env_file(path)
    env += expand_env(list(kw["env"]))
    binds: list[str] = []
    anonymous: list[str] = []
    for v in kw["volumes"]:
        # `-v /path` (one absolute path, no colon) is an anonymous volume: Config.Volumes
        (anonymous if v.startswith("/") and ":" not in v else binds).append(v)
    labels = key_values(kw["label"])
    entrypoint = None if kw["entrypoint"] is None else [kw["entrypoint"]]
    return RunOptions(
        image=image,
        cmd=list(command),
        entrypoint=entrypoint,
        env=env,
        workdir=kw["workdir"],
        user=kw["user"],
        name=kw["name"],
        hostname=kw["hostname"],
        domainname=kw["domainname"],
        tty=kw["tty"],
        interactive=kw["interactive"],
        detach=detach,
        auto_remove=kw["auto_remove"],
        binds=binds,
        anonymous_volumes=anonymous,
        network=kw["network"],
        ip=kw["ip"],
        network_aliases=list(kw["network_alias"]),
        cap_add=list(kw["cap_add"]),
        cap_drop=list(kw["cap_drop"]),
        privileged=kw["privileged"],
        security_opt=list(kw["security_opt"]),
        read_only=kw["read_only"],
        init=kw["init"],
        restart=kw["restart"],
        labels=labels,
        stop_signal=kw["stop_signal"],
        stop_timeout=kw["stop_timeout"],
        memory=cgroups.parse_bytes(kw["memory"]) if kw["memory"] else 0,
        memory_swap=cgroups.parse_swap(kw["memory_swap"]) if kw["memory_swap"] else 0,
        memory_reservation=cgroups.parse_bytes(kw["memory_reservation"]) if kw["memory_reservation"] else 0,
        cpu_shares=kw["cpu_shares"],
        nano_cpus=cgroups.parse_cpus(kw["cpus"]) if kw["cpus"] else 0,
        cpuset_cpus=kw["cpuset_cpus"],
        cpuset_mems=kw["cpuset_mems"],
        pids_limit=kw["pids_limit"],
        dns=list(kw["dns"]),
        dns_search=list(kw["dns_search"]),
        dns_options=list(kw["dns_option"]),
        extra_hosts=list(kw["add_host"]),
        group_add=list(kw["group_add"]),
        publish=list(kw["publish"]),
        publish_all=kw["publish_all"],
        expose=list(kw["expose"]),
    )


def _exit_now(code: int) -> None:
    """Leave with the container's code without the interpreter's slow shutdown (module teardown,
    GC): everything is flushed and written already. Saves ~20 ms per ``run``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        click.echo(f"WARNING: {w}", err=True)


@contextlib.contextmanager
def _raw_terminal(enabled: bool) -> Iterator[None]:
    """``-it`` on a terminal: keys go to the container as typed (its pty does the echoing)."""
    if not enabled:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(0)
    # TCSADRAIN, not setraw's default TCSAFLUSH: flushing would discard input the monitor was just
    # told is there (poll), and its read would then block forever
    tty.setraw(0, termios.TCSADRAIN)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _proxy_signals(pid: int, master: int | None) -> Iterator[None]:
    """``--sig-proxy``: signals sent to this CLI go to the container's PID 1; SIGWINCH resizes its pty."""
    from minidocker.container.monitor import copy_winsize

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def resize(_signum: int, _frame: object) -> None:
        if master is not None:
            copy_winsize(0, master)

    skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGPIPE, signal.SIGURG}
    saved: dict[int, Any] = {}
    for sig in signal.valid_signals():
        if sig in skip or sig >= signal.SIGRTMIN:
            continue
        with contextlib.suppress(OSError, ValueError):
            saved[int(sig)] = signal.signal(sig, forward)
    saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, handler)


def _attach_and_wait(handle: Any) -> int:
    with _proxy_signals(handle.pid, handle.master_fd):
        code: int = handle.wait()
    return code


@click.command("run", context_settings=_RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@_run_options
@pass_ctx
def run(ctx: Context, image: str, command: tuple[str, ...], detach: bool, **kw: Any) -> None:
    """Run a command in a new container."""
    from minidocker.errors import InvalidInput

    opts = _options(image, command, detach, kw)
    if opts.interactive and opts.tty and not detach and not os.isatty(0):
        raise InvalidInput("the input device is not a TTY")
    if detach and opts.auto_remove and opts.restart not in ("", "no"):
        raise InvalidInput("Conflicting options: --restart and --rm")
    rt = ctx.runtime
    c, warnings = rt.create(opts)
    _warn(warnings)
    sys.stdout.flush()
    sys.stderr.flush()
    if detach:
        rt.start(c)
        click.echo(c.id)
        return
    # raw before the monitor exists: it starts copying our stdin at once, so the terminal must
    # not change under it
    with _raw_terminal(opts.tty and opts.interactive and os.isatty(0)):
        handle = rt.start(c, foreground=True, stdin=opts.interactive)
        code = _attach_and_wait(handle)
    _exit_now(code)


@click.command("create", context_settings=_RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_run_options
@pass_ctx
def create(ctx: Context, image: str, command: tuple[str, ...], **kw: Any) -> None:
    """Create a new container."""
    c, warnings = ctx.runtime.create(_options(image, command, False, kw))
    _warn(warnings)
    click.echo(c.id)


def _each(refs: tuple[str, ...], action: Callable[[str], str | None]) -> None:
    """Docker's multi-container verbs: act on each, report each failure, exit 1 if any failed."""
    from minidocker.errors import MinidockerError

    failed = False
    for ref in refs:
        try:
            out = action(ref)
        except MinidockerError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
            continue
        if out is not None:
            click.echo(out)
    if failed:
        raise SystemExit(1)


@click.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@pass_ctx
def start(ctx: Context, containers: tuple[str, ...], attach: bool, interactive: bool) -> None:
    """Start one or more stopped containers."""
    from minidocker.errors import InvalidInput

    rt = ctx.runtime
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidInput("you cannot start and attach multiple containers at once")
        c = rt.get(containers[0])
        if c.state.running:
            return
        with _raw_terminal(bool(c.config.get("Tty")) and interactive and os.isatty(0)):
            handle = rt.start(c, foreground=True, stdin=interactive)
            code = _attach_and_wait(handle)
        _exit_now(code)

    def one(ref: str) -> str:
        rt.start(rt.get(ref))
        return ref

    _each(containers, one)


@click.command("stop")
@click.argument("containers", nargs=-1, required=True)
@click.option(
    "-t", "--time", "timeout", type=int, default=None, help="Seconds to wait for stop before killing it"
)
@pass_ctx
def stop(ctx: Context, containers: tuple[str, ...], timeout: int | None) -> None:
    """Stop one or more running containers."""
    rt = ctx.runtime

    def one(ref: str) -> str:
        rt.stop(rt.get(ref), timeout)
        return ref

    _each(containers, one)


@click.command("restart")
@click.argument("containers", nargs=-1, required=True)
@click.option(
    "-t",
    "--time",
    "timeout",
    type=int,
    default=None,
    help="Seconds to wait for stop before killing the container",
)
@pass_ctx
def restart(ctx: Context, containers: tuple[str, ...], timeout: int | None) -> None:
    """Restart one or more containers."""
    rt = ctx.runtime

    def one(ref: str) -> str:
        rt.restart(rt.get(ref), timeout)
        return ref

    _each(containers, one)


@click.command("kill")
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@pass_ctx
def kill(ctx: Context, containers: tuple[str, ...], sig: str) -> None:
    """Kill one or more running containers."""
    from minidocker.container.create import parse_signal

    rt = ctx.runtime
    signum = parse_signal(sig)

    def one(ref: str) -> str:
        rt.kill(rt.get(ref), signum)
        return ref

    _each(containers, one)


@click.command("rm")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@pass_ctx
def rm(ctx: Context, containers: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove one or more containers."""
    rt = ctx.runtime

    def one(ref: str) -> str:
        rt.remove(ref, force=force, volumes=volumes)
        return ref

    _each(containers, one)


@click.command("wait")
@click.argument("containers", nargs=-1, required=True)
@pass_ctx
def wait(ctx: Context, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    rt = ctx.runtime

    def one(ref: str) -> str:
        return str(rt.wait(rt.get(ref)))

    _each(containers, one)


def _pump_tty(master: int, *, stdin: bool) -> None:
    """``exec -t``: the pty to our stdout (and with ``-i`` our stdin to the pty) until it closes."""
    import errno
    import select

    poller = select.poll()
    poller.register(master, select.POLLIN)
    if stdin:
        poller.register(0, select.POLLIN)
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, _ in events:
            try:
                data = os.read(fd, 65536)
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: every slave is closed = the command is done
                    raise
                data = b""
            if fd == master:
                if not data:
                    return
                os.write(1, data)
            elif data:
                os.write(master, data)
            else:
                poller.unregister(0)  # our stdin is at its end; the command may go on


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables")
@click.option("-w", "--workdir", default="", help="Working directory inside the container")
@click.option("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@pass_ctx
def exec_(
    ctx: Context,
    container: str,
    command: tuple[str, ...],
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    workdir: str,
    user: str,
    privileged: bool,
) -> None:
    """Execute a command in a running container."""
    from minidocker import cgroups
    from minidocker.container.create import expand_env, no_new_privileges, read_env_file
    from minidocker.container.lifecycle import NotRunning
    from minidocker.container.monitor import container_env
    from minidocker.errors import NotFound
    from minidocker.namespaces import ExecSpec, enter
    from minidocker.namespaces.seccomp import option as seccomp_option

    rt = ctx.runtime
    try:
        c = rt.get(container)
    except NotFound as e:
        click.echo(f"Error: {e}", err=True)  # the docker CLI exits 1 here, not 125
        raise SystemExit(1) from None
    if not c.state.running or not c.state.pid or c.state.restarting:
        raise NotRunning(f"Container {c.id} is not running", subject=c.id)
    extra: list[str] = []
    for path in env_file:
        extra += read_env_file(path)
    extra += expand_env(list(env))
    hc = c.host_config
    master = None
    if detach:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdio = (null, null, null)
    elif tty:
        from minidocker.kernel import pty

        master, slave = pty.open_in(f"/proc/{c.state.pid}/root/dev/pts")
        if os.isatty(0):
            from minidocker.container.monitor import copy_winsize

            copy_winsize(0, master)
        stdio = (slave, slave, slave)
    else:
        stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stdio = (stdin, 1, 2)
    spec = ExecSpec(
        args=list(command),
        env=container_env(c, tty=tty, extra=extra),
        cwd=workdir or c.config.get("WorkingDir") or "/",
        user=user or c.config.get("User") or "",
        group_add=list(hc.group_add or []),
        privileged=privileged or hc.privileged,
        cap_add=list(hc.cap_add or []),
        cap_drop=list(hc.cap_drop or []),
        no_new_privileges=no_new_privileges(hc),
        seccomp=seccomp_option(hc.security_opt, hc.privileged),
        stdio=stdio,
        tty=tty,
    )
    started = enter(c.state.pid, spec, on_created=cgroups.open_cgroup(c.id).add)
    if detach:
        return
    if master is not None:
        os.close(stdio[0])
        with _raw_terminal(interactive and os.isatty(0)), _proxy_signals(started.pid, master):
            _pump_tty(master, stdin=interactive)
            code = started.wait()
        sys.exit(code)
    with _proxy_signals(started.pid, None):
        code = started.wait()
    sys.exit(code)


@click.group("container")
def container_group() -> None:
    """Manage containers."""


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_ctx
def prune(ctx: Context, force: bool) -> None:
    """Remove all stopped containers."""
    if not force:
        click.echo("WARNING! This will remove all stopped containers.")
        if not click.confirm("Are you sure you want to continue?", default=False, prompt_suffix=" "):
            return
    rt = ctx.runtime
    deleted = []
    for c in rt.list():
        if c.state.running:
            continue
        rt.remove(c.id)
        deleted.append(c.id)
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


def _register_group() -> None:
    from minidocker.cli.containers import GROUP_COMMANDS

    for cmd in (run, create, start, stop, restart, kill, rm, wait, exec_):
        container_group.add_command(cmd)
    container_group.add_command(rm, "remove")
    for name, cmd in GROUP_COMMANDS.items():
        container_group.add_command(cmd, name)


_register_group()
