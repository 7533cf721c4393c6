"""``run`` without click: its flag table, the fast path of the console script, and the run itself.

``minidocker run`` is the one verb whose start-up time is measured against Docker (issue 3,
"Speed"), and importing click (with inspect, ast, gettext, uuid, ...) was about a fifth of it. So
the flags of ``run``/``create`` are declared once here, as data: :mod:`minidocker.cli.run` builds
its click options from :data:`RUN_FLAGS`, and :func:`parse_run` reads the plain forms of the same
table without click. The console script (:func:`minidocker.cli.main.main`) tries :func:`fast_main`
first; whatever it does not recognise exactly (``--help``, ``--``, an unknown or malformed flag, a
bad number, another verb) goes to click, which then parses, helps or errors as always::

    >>> g, image, cmd, detach, kw = parse_run(["--data-root", "/d", "run", "--rm", "-it", "busybox", "ls"])
    >>> g["data_root"], image, cmd, detach, kw["auto_remove"], kw["tty"], kw["name"]
    ('/d', 'busybox', ['ls'], False, True, True, None)
    >>> parse_run(["run", "--help", "busybox"]) is None
    True

Both paths end in :func:`run_container` with the same :class:`RunOptions` (tests/unit/test_runcore.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from minidocker.cli.context import Context
    from minidocker.container.create import RunOptions
    from minidocker.container.prepare import Prepared

# (option strings, dest, kind, help); kind: "flag" (bool), "str" (default ""), "opt" (default None),
# "multi" (tuple), "int" (default 0), "intopt" (default None). Order = `run --help` order.
RUN_FLAGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("-i", "--interactive"), "interactive", "flag", "Keep STDIN open even if not attached"),
    (("-t", "--tty"), "tty", "flag", "Allocate a pseudo-TTY"),
    (("--name",), "name", "opt", "Assign a name to the container"),
    (("-e", "--env"), "env", "multi", "Set environment variables"),
    (("--env-file",), "env_file", "multi", "Read in a file of environment variables"),
    (("-w", "--workdir"), "workdir", "str", "Working directory inside the container"),
    (("-u", "--user"), "user", "str", "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("-v", "--volume"), "volumes", "multi", "Bind mount a volume"),
    (("--entrypoint",), "entrypoint", "opt", "Overwrite the default ENTRYPOINT of the image"),
    (("-h", "--hostname"), "hostname", "str", "Container host name"),
    (("--domainname",), "domainname", "str", "Container NIS domain name"),
    (
        ("--init",),
        "init",
        "flag",
        "Run an init inside the container that forwards signals and reaps processes",
    ),
    (("--restart",), "restart", "str", "Restart policy to apply when a container exits"),
    (("--rm",), "auto_remove", "flag", "Automatically remove the container when it exits"),
    (("-m", "--memory"), "memory", "str", "Memory limit"),
    (
        ("--memory-swap",),
        "memory_swap",
        "str",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    (("--memory-reservation",), "memory_reservation", "str", "Memory soft limit"),
    (("-c", "--cpu-shares"), "cpu_shares", "int", "CPU shares (relative weight)"),
    (("--cpus",), "cpus", "str", "Number of CPUs"),
    (("--cpuset-cpus",), "cpuset_cpus", "str", "CPUs in which to allow execution (0-3, 0,1)"),
    (("--cpuset-mems",), "cpuset_mems", "str", "MEMs in which to allow execution (0-3, 0,1)"),
    (("--pids-limit",), "pids_limit", "intopt", "Tune container pids limit (set -1 for unlimited)"),
    (("--network", "--net"), "network", "str", "Connect a container to a network"),
    (("--ip",), "ip", "str", "IPv4 address (e.g., 172.30.100.104)"),
    (("--network-alias",), "network_alias", "multi", "Add network-scoped alias for the container"),
    (("--dns",), "dns", "multi", "Set custom DNS servers"),
    (("--dns-search",), "dns_search", "multi", "Set custom DNS search domains"),
    (("--dns-option",), "dns_option", "multi", "Set DNS options"),
    (("--add-host",), "add_host", "multi", "Add a custom host-to-IP mapping (host:ip)"),
    (("-p", "--publish"), "publish", "multi", "Publish a container's port(s) to the host"),
    (("-P", "--publish-all"), "publish_all", "flag", "Publish all exposed ports to random ports"),
    (("--expose",), "expose", "multi", "Expose a port or a range of ports"),
    (("--cap-add",), "cap_add", "multi", "Add Linux capabilities"),
    (("--cap-drop",), "cap_drop", "multi", "Drop Linux capabilities"),
    (("--privileged",), "privileged", "flag", "Give extended privileges to this container"),
    (("--security-opt",), "security_opt", "multi", "Security Options"),
    (("--read-only",), "read_only", "flag", "Mount the container's root filesystem as read only"),
    (("--group-add",), "group_add", "multi", "Add additional groups to join"),
    (("-l", "--label"), "label", "multi", "Set meta data on a container"),
    (("--stop-signal",), "stop_signal", "str", "Signal to stop a container"),
    (("--stop-timeout",), "stop_timeout", "intopt", "Timeout (in seconds) to stop a container"),
]
# defaults that are not the kind's own
DEFAULTS: dict[str, Any] = {"restart": "no", "network": "default"}
DETACH = (("-d", "--detach"), "detach", "flag", "Run container in background and print container ID")


def default(dest: str, kind: str) -> Any:
    """The value a flag has when it is not given (what click's option defaults are set to)."""
    if dest in DEFAULTS:
        return DEFAULTS[dest]
    return {"flag": False, "str": "", "opt": None, "multi": (), "int": 0, "intopt": None}[kind]


class _NotFast(Exception):
    """Leave this command line to click (help, errors, forms the fast parser does not take)."""


def _table(flags: list[tuple[tuple[str, ...], str, str, str]]) -> dict[str, tuple[str, str]]:
    return {decl: (dest, kind) for decls, dest, kind, _ in flags for decl in decls}


def _take(kw: dict[str, Any], dest: str, kind: str, value: str) -> None:
    if kind == "multi":
        kw[dest] = (*kw[dest], value)
    elif kind in ("int", "intopt"):
        try:
            kw[dest] = int(value)
        except ValueError:
            raise _NotFast from None  # click words the error
    else:
        kw[dest] = value


def _parse_options(args: list[str], table: dict[str, tuple[str, str]], kw: dict[str, Any]) -> list[str]:
    """click's option parsing for flags and single-value options, up to the first positional
    argument (``allow_interspersed_args=False``); returns the rest. Raises :class:`_NotFast`."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-" or not arg.startswith("-"):
            return args[i:]
        i += 1
        if arg.startswith("--"):
            name, eq, attached = arg.partition("=")
            dest, kind = table.get(name) or ("", "")
            if not dest or (kind == "flag" and eq):
                raise _NotFast  # unknown (also --help, --), or a value given to a flag
            if kind == "flag":
                kw[dest] = True
            elif eq:
                _take(kw, dest, kind, attached)
            elif i < len(args):
                _take(kw, dest, kind, args[i])
                i += 1
            else:
                raise _NotFast
            continue
        # short options: "-it" (flags), "-eA=1" (value attached), "-e A=1", "-de A=1"
        for j in range(1, len(arg)):
            dest, kind = table.get("-" + arg[j]) or ("", "")
            if not dest:
                raise _NotFast
            if kind == "flag":
                kw[dest] = True
                continue
            if j + 1 < len(arg):
                _take(kw, dest, kind, arg[j + 1 :])
            elif i < len(args):
                _take(kw, dest, kind, args[i])
                i += 1
            else:
                raise _NotFast
            break
    return []


_GLOBAL = {
    "--data-root": ("data_root", "str"),
    "--exec-root": ("exec_root", "str"),
    "--trace": ("trace", "flag"),
    "-D": ("debug", "flag"),
    "--debug": ("debug", "flag"),
}
_RUN = _table([*RUN_FLAGS, DETACH])


def parse_run(argv: list[str]) -> tuple[dict[str, Any], str, list[str], bool, dict[str, Any]] | None:
    """``[global options] run [run options] IMAGE [COMMAND...]`` as (globals, image, command,
    detach, flags); None for anything else, which click then handles."""
    from minidocker.cli.context import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT

    g: dict[str, Any] = {
        "data_root": os.environ.get("MINIDOCKER_DATA_ROOT") or DEFAULT_DATA_ROOT,
        "exec_root": os.environ.get("MINIDOCKER_EXEC_ROOT") or DEFAULT_EXEC_ROOT,
        "trace": False,
        "debug": False,
    }
    kw = {dest: default(dest, kind) for _, dest, kind, _ in [*RUN_FLAGS, DETACH]}
    try:
        rest = _parse_options(argv, _GLOBAL, g)
        if not rest or rest[0] != "run":
            return None
        rest = _parse_options(rest[1:], _RUN, kw)
    except _NotFast:
        return None
    if not rest:
        return None  # click: "Missing argument 'IMAGE'"
    detach = kw.pop("detach")
    return g, rest[0], rest[1:], detach, kw


def options(image: str, command: tuple[str, ...] | list[str], detach: bool, kw: dict[str, Any]) -> RunOptions:
    """The parsed flags (click's or :func:`parse_run`'s) as :class:`RunOptions`."""
    from minidocker import cgroups
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
    labels: dict[str, str] = {}
    for v in kw["label"]:  # output.key_values, without importing click: later ones win
        key, _, value = v.partition("=")
        labels[key] = value
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


def exit_now(code: int) -> None:
    """Leave with the container's code without the interpreter's slow shutdown (module teardown,
    GC): everything is flushed and written already. Saves ~20 ms per ``run``."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
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
def proxy_signals(pid: int, master: int | None) -> Iterator[None]:
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


def attach_and_wait(handle: Any) -> int:
    with proxy_signals(handle.pid, handle.master_fd):
        code: int = handle.wait()
    return code


def run_container(ctx: Context, opts: RunOptions, prepared: Prepared | None = None) -> None:
    """``run`` once its flags are parsed: create, start, and for a foreground run wait and leave
    with the container's exit code (``-d``: print the id and return). ``prepared``: the monitor,
    forked already (:func:`fast_main`); else it is forked here, before ``create``."""
    from minidocker.errors import InvalidInput

    if opts.network not in ("none", "host") and not opts.network.startswith("container:"):
        from minidocker.network import helper  # pyroute2 loads on the other core meanwhile

        helper.start()
    detach = opts.detach
    try:
        if opts.interactive and opts.tty and not detach and not os.isatty(0):
            raise InvalidInput("the input device is not a TTY")
        if detach and opts.auto_remove and opts.restart not in ("", "no"):
            raise InvalidInput("Conflicting options: --restart and --rm")
        rt = ctx.runtime
        if prepared is None:
            sys.stdout.flush()  # nothing buffered may be written twice (the monitor is forked now)
            sys.stderr.flush()
            # the monitor warms up on the other core while we create (container.prepare)
            prepared = rt.prepare(foreground=not detach, stdin=not detach and opts.interactive)
        c, warnings = rt.create(opts)
    except BaseException:
        if prepared is not None:
            prepared.cancel()
        raise
    for w in warnings:
        sys.stderr.write(f"WARNING: {w}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    if detach:
        rt.start(c, prepared=prepared)
        sys.stdout.write(c.id + "\n")
        sys.stdout.flush()
        return
    # raw before the monitor starts the container: it copies our stdin from then on, so the
    # terminal must not change under it
    with raw_terminal(opts.tty and opts.interactive and os.isatty(0)):
        handle = rt.start(c, foreground=True, stdin=opts.interactive, prepared=prepared)
        code = attach_and_wait(handle)
    exit_now(code)


def fast_main(argv: list[str]) -> bool:
    """Run ``argv`` if it is a ``run`` the fast parser takes whole; False (nothing done) otherwise.
    Errors propagate to :func:`minidocker.cli.main.main`, which maps them to exit codes."""
    parsed = parse_run(argv)
    if parsed is None:
        return False
    g, image, command, detach, kw = parsed
    net = kw["network"]
    if net not in ("none", "host") and not net.startswith("container:"):
        from minidocker.network import helper  # pyroute2 loads on the other core from now on

        helper.start()
    # The cgroup warm-up starts now, ~15 ms before the monitor is forked: its first cgroup.procs
    # write waits one RCU grace period (~12 ms here) holding cgroup_mutex, which started at the
    # fork still held up the monitor's cgroup mkdirs ~2 ms (cgroups.warm). After helper.start:
    # that fork should not copy a process with the thread running.
    from minidocker.cgroups.warm import Warmer

    warmer = Warmer.start()
    try:
        from minidocker.cli.context import Context

        if g["trace"]:
            from minidocker import trace as tr

            tr.to_stream(sys.stderr)
        ctx = Context(data_root=g["data_root"], exec_root=g["exec_root"], debug=g["debug"])
        # The monitor is forked once the modules it shares with us are imported (the container
        # record, the stores: forked earlier it would import them again, ~20 ms of CPU) and before
        # what only we need (the flags as RunOptions, the image service, create's half of the
        # container chapter), which then loads beside its warm-up, the longer branch before `go`
        # (benchmarks/README.md, "Round 3"). Nothing is opened yet: bad flags change nothing.
        import minidocker.container.lifecycle  # noqa: F401 (loaded here, shared with the monitor)
        from minidocker.container.prepare import fork_monitor

        sys.stdout.flush()  # nothing buffered may be written twice
        sys.stderr.flush()
        prepared = fork_monitor(
            lambda: ctx.runtime,
            foreground=not detach,
            stdin=not detach and kw["interactive"],
            exec_root=os.path.abspath(ctx.exec_root),
            warmer=warmer,
        )
    except BaseException:
        if warmer is not None:
            warmer.stop()
        raise
    try:
        opts = options(image, command, detach, kw)
    except BaseException:
        prepared.cancel()
        raise
    run_container(ctx, opts, prepared)
    return True
