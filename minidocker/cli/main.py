"""``minidocker``: global options, lazy command loading, and the one place errors become exit codes.

Commands live in modules of this package and are imported only when invoked, so ``minidocker
--help`` and fast verbs never pay for heavy imports (pyroute2, requests, rich). Even click is
imported only when needed: a plain ``minidocker run ...`` goes through the click-free fast path
of :mod:`minidocker.cli.runcore` (same flags, same RunOptions; anything else falls back to click).
The click group is ``main.cli`` (built on first access).
"""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

# verb -> "module:attribute"; aliases keep the seed mydocker's verbs working.
COMMANDS: dict[str, str] = {
    "images": "minidocker.cli.images:images",
    "image": "minidocker.cli.images:image_group",
    "tag": "minidocker.cli.images:tag",
    "rmi": "minidocker.cli.images:rmi",
    "history": "minidocker.cli.images:history",
    "inspect": "minidocker.cli.images:inspect",
    "load": "minidocker.cli.archive:load",
    "save": "minidocker.cli.archive:save",
    "import": "minidocker.cli.archive:import_",
    "buildbase": "minidocker.cli.archive:buildbase",
    "buildBase": "minidocker.cli.archive:buildbase",
    "fsck": "minidocker.cli.images:fsck",
    "version": "minidocker.cli.system:version",
    "info": "minidocker.cli.system:info",
    "system": "minidocker.cli.system:system_group",
    "run": "minidocker.cli.run:run",
    "create": "minidocker.cli.run:create",
    "start": "minidocker.cli.run:start",
    "stop": "minidocker.cli.run:stop",
    "restart": "minidocker.cli.run:restart",
    "kill": "minidocker.cli.run:kill",
    "rm": "minidocker.cli.run:rm",
    "remove": "minidocker.cli.run:rm",
    "wait": "minidocker.cli.run:wait",
    "container": "minidocker.cli.run:container_group",
    "ps": "minidocker.cli.containers:ps",
    "logs": "minidocker.cli.containers:logs",
    "top": "minidocker.cli.containers:top",
    "rename": "minidocker.cli.containers:rename",
    "port": "minidocker.cli.containers:port",
    "exec": "minidocker.cli.run:exec_",
    "volume": "minidocker.cli.volumes:volume_group",
    "network": "minidocker.cli.network:network_group",
    "portmap": "minidocker.cli.portmap:portmap_group",
    "cp": "minidocker.cli.cp:cp",
    "export": "minidocker.cli.cp:export",
    "pull": "minidocker.cli.registry:pull",
    "push": "minidocker.cli.registry:push",
    "login": "minidocker.cli.registry:login",
    "logout": "minidocker.cli.registry:logout",
    "commit": "minidocker.cli.build:commit",
    "diff": "minidocker.cli.build:diff",
    "build": "minidocker.cli.build:build",
    "lab": "minidocker.cli.lab:lab_group",
    "builder": "minidocker.cli.build:builder_group",
}
HIDDEN = {"buildBase", "remove"}
# One-line help for `minidocker --help`, so listing verbs imports none of their modules.
SUMMARY: dict[str, str] = {
    "images": "List images",
    "image": "Manage images",
    "tag": "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    "rmi": "Remove one or more images",
    "history": "Show the history of an image",
    "inspect": "Return low-level information on Docker objects",
    "load": "Load an image from a tar archive or STDIN",
    "save": "Save one or more images to a tar archive",
    "import": "Import the contents from a tarball to create a filesystem image",
    "buildbase": "Create the built-in base image (busybox:latest from the host's busybox-static)",
    "fsck": "Check the data root's invariants; --repair removes debris",
    "version": "Show the minidocker version information",
    "info": "Display system-wide information",
    "system": "Manage minidocker (info, df, prune)",
    "run": "Run a command in a new container",
    "create": "Create a new container",
    "start": "Start one or more stopped containers",
    "stop": "Stop one or more running containers",
    "restart": "Restart one or more containers",
    "kill": "Kill one or more running containers",
    "rm": "Remove one or more containers",
    "wait": "Block until one or more containers stop, then print their exit codes",
    "container": "Manage containers",
    "ps": "List containers",
    "logs": "Fetch the logs of a container",
    "top": "Display the running processes of a container",
    "rename": "Rename a container",
    "port": "List port mappings or a specific mapping for the container",
    "exec": "Execute a command in a running container",
    "volume": "Manage volumes",
    "network": "Manage networks",
    "portmap": "Userland port forwarding to containers (the seed's portmap)",
    "cp": "Copy files/folders between a container and the local filesystem",
    "export": "Export a container's filesystem as a tar archive",
    "pull": "Download an image from a registry",
    "push": "Upload an image to a registry",
    "login": "Log in to a registry",
    "logout": "Log out from a registry",
    "commit": "Create a new image from a container's changes",
    "diff": "Inspect changes to files or directories on a container's filesystem",
    "build": "Build an image from a Dockerfile",
    "lab": "Run the labs: list, start NN, check NN, hint NN [LEVEL], reset NN",
    "builder": "Manage builds",
}


_CLI: Any = None


def _click_cli() -> Any:
    """The click group, built on first use (importing click is ~20 ms that ``run`` skips)."""
    global _CLI
    if _CLI is None:
        import click

        from minidocker.cli.context import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, Context

        class LazyGroup(click.Group):
            def list_commands(self, ctx: click.Context) -> list[str]:
                return sorted(set(COMMANDS) - HIDDEN)

            def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
                rows = [(name, SUMMARY.get(name, "")) for name in self.list_commands(ctx)]
                with formatter.section("Commands"):
                    formatter.write_dl(rows)

            def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
                target = COMMANDS.get(cmd_name)
                if target is None:
                    return None
                module, attr = target.split(":")
                cmd: click.Command = getattr(importlib.import_module(module), attr)
                return cmd

        @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
        @click.option(
            "--data-root",
            envvar="MINIDOCKER_DATA_ROOT",
            default=DEFAULT_DATA_ROOT,
            show_default=True,
            help="Root of persistent state (laid out like /var/lib/docker).",
        )
        @click.option(
            "--exec-root",
            envvar="MINIDOCKER_EXEC_ROOT",
            default=DEFAULT_EXEC_ROOT,
            show_default=True,
            help="Root of runtime state.",
        )
        @click.option("--trace", is_flag=True, help="Print one line per kernel and store step.")
        @click.option("-D", "--debug", is_flag=True, help="Show tracebacks for errors.")
        @click.version_option(package_name="minidocker", prog_name="minidocker")
        @click.pass_context
        def cli(ctx: click.Context, data_root: str, exec_root: str, trace: bool, debug: bool) -> None:
            """A container runtime whose data root is laid out exactly like Docker's."""
            if trace:
                from minidocker import trace as tr

                tr.to_stream(sys.stderr)
            ctx.obj = Context(data_root=data_root, exec_root=exec_root, debug=debug)

        _CLI = cli
    return _CLI


def __getattr__(name: str) -> Any:
    """``main.cli``: the click group (tests and ``python -c`` callers use it)."""
    if name == "cli":
        return _click_cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _error(message: str, code: int) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning our errors into one stderr line and Docker's exit codes."""
    import gc

    from minidocker.cli import runcore
    from minidocker.errors import MinidockerError

    # `run`'s fast path allocates while it starts (imports, configs) and then only waits: the
    # cyclic collector finds nothing to free there, but walks the young objects again and again
    # during the imports (~5 ms of CPU per run, the forked monitor's included; the wall time on
    # an idle VM moved within noise: benchmarks/README.md "Round 3"). Off for that path; its
    # monitor turns it back on once the container runs (monitor._supervise), and every other
    # verb keeps it.
    gc.disable()
    try:
        if runcore.fast_main(sys.argv[1:] if argv is None else list(argv)):
            return None
        gc.enable()
        import click

        try:
            return _click_cli().main(args=argv, prog_name="minidocker", standalone_mode=False)
        except click.exceptions.Abort:
            _error("Aborted!", 130)
        except click.ClickException as e:
            # Docker exits 125 on flag errors too ("docker: unknown flag ...").
            _error(f"minidocker: {e.format_message()}", 125)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
    except MinidockerError as e:
        if os.environ.get("MINIDOCKER_DEBUG") or "-D" in sys.argv or "--debug" in sys.argv:
            import traceback

            traceback.print_exc()
        _error(f"Error: {e}", e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        _error(f"Error: {e}", 125)
