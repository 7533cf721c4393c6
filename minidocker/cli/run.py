"""Container verbs that change state: run, create, start, stop, kill, restart, rm, wait, exec, prune.

Thin: flags become a :class:`~minidocker.container.create.RunOptions`, the work happens in
:class:`minidocker.container.lifecycle.Runtime`, and this module prints what Docker prints.
Verbs taking several containers go on after a failure and exit 1 at the end, like the docker CLI;
``run``/``create`` exit 125 on our errors and with the container's own code otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from minidocker.cli import runcore
from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)

# Docker's `run` uses -h for --hostname, so its help is --help only.
_RUN_SETTINGS: dict[str, Any] = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _click_option(flag: tuple[tuple[str, ...], str, str, str]) -> Callable[..., Any]:
    """One row of :data:`minidocker.cli.runcore.RUN_FLAGS` as a click option (same defaults as
    the fast parser's, so both paths build the same RunOptions)."""
    decls, dest, kind, help_text = flag
    value = runcore.default(dest, kind)
    if kind == "flag":
        return click.option(*decls, dest, is_flag=True, help=help_text)
    if kind == "multi":
        return click.option(*decls, dest, multiple=True, help=help_text)
    if kind in ("int", "intopt"):
        return click.option(*decls, dest, type=int, default=value, help=help_text)
    return click.option(*decls, dest, default=value, help=help_text)


def _run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flags ``run`` and ``create`` share (``docker run --help``), from runcore's table."""
    for flag in reversed(runcore.RUN_FLAGS):
        f = _click_option(flag)(f)
    return f


def _options(image: str, command: tuple[str, ...], detach: bool, kw: dict[str, Any]) -> Any:
    return runcore.options(image, command, detach, kw)


# shared with start/exec (the fast path of `run` has them in runcore, without click)
_exit_now = runcore.exit_now
_raw_terminal = runcore.raw_terminal
_proxy_signals = runcore.proxy_signals
_attach_and_wait = runcore.attach_and_wait


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        click.echo(f"WARNING: {w}", err=True)


@click.command("run", context_settings=_RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_click_option(runcore.DETACH)
@_run_options
@pass_ctx
def run(ctx: Context, image: str, command: tuple[str, ...], detach: bool, **kw: Any) -> None:
    """Run a command in a new container."""
    runcore.run_container(ctx, _options(image, command, detach, kw))


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
    from minidocker.container.create import expand_env, read_env_file
    from minidocker.container.hostconfig import no_new_privileges
    from minidocker.container.lifecycle import NotRunning
    from minidocker.container.monitor import container_env
    from minidocker.errors import NotFound
    from minidocker.namespaces.enter import ExecSpec, enter
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
