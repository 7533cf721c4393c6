"""``volume create|ls|inspect|rm|prune``, with the docker CLI's output."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from minidocker.cli.context import Context
from minidocker.cli.output import inspect_each, key_values, print_formatted, table

if TYPE_CHECKING:
    from minidocker.container.volumes import Volume, VolumeStore

pass_ctx = click.make_pass_decorator(Context)


def _store(ctx: Context) -> VolumeStore:
    from minidocker.container.volumes import VolumeStore

    return VolumeStore(ctx.stores.root, ctx.stores.lock)


@click.group("volume")
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create")
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@click.option("--name", "name_opt", default=None, help="Specify volume name")
@pass_ctx
def create(ctx: Context, name: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
           name_opt: str | None) -> None:  # fmt: skip
    """Create a volume."""
    from minidocker.errors import InvalidInput

    if name and name_opt and name != name_opt:
        raise InvalidInput("conflicting options: either specify --name or provide positional arg, not both")
    v = _store(ctx).create(
        name or name_opt, labels=key_values(labels), driver_opts=key_values(opts), driver=driver
    )
    click.echo(v.name)


def _fields(v: Volume) -> dict[str, str]:
    labels = ",".join(f"{k}={val}" for k, val in sorted((v.labels or {}).items()))
    return {
        "Name": v.name,
        "Driver": v.driver,
        "Scope": v.scope,
        "Mountpoint": v.mountpoint,
        "Labels": labels,
        "CreatedAt": v.created_at,
    }


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.option("--format", "fmt", help="Pretty-print volumes using a Go template")
@pass_ctx
def ls(ctx: Context, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    from minidocker.errors import InvalidInput

    store = _store(ctx)
    vols = store.list()
    used = store.users() if filters else {}
    for f in filters:
        key, _, value = f.partition("=")
        if key == "dangling":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidInput(f"Invalid filter 'dangling={value}'")
            want = value.lower() in ("true", "1")
            vols = [v for v in vols if (v.name not in used) == want]
        elif key == "name":
            vols = [v for v in vols if value in v.name]
        elif key == "driver":
            vols = [v for v in vols if v.driver == value]
        elif key == "label":
            k, eq, val = value.partition("=")
            vols = [v for v in vols if k in (v.labels or {}) and (not eq or (v.labels or {})[k] == val)]
        else:
            raise InvalidInput(f"Invalid filter '{key}'")
    vols.sort(key=lambda v: v.name)
    if quiet:
        for v in vols:
            click.echo(v.name)
        return
    items = [_fields(v) for v in vols]
    heads = ["DRIVER", "VOLUME NAME"]

    def default() -> None:
        click.echo(table(heads, [[i["Driver"], i["Name"]] for i in items]))

    print_formatted(fmt, heads, ["Driver", "Name"], items, default)


@volume_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template")
@pass_ctx
def inspect(ctx: Context, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more volumes."""
    store = _store(ctx)
    inspect_each(names, lambda n: store.get(n).to_inspect(), "volume", fmt, missing_code=1)


@volume_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@pass_ctx
def rm(ctx: Context, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes."""
    from minidocker.errors import Conflict, MinidockerError, NotFound

    store = _store(ctx)
    failed = False
    for n in names:
        try:
            store.remove(n, force=force)
            click.echo(n)
        except MinidockerError as e:
            failed = True
            # the CLI prints daemon errors with this prefix, "No such volume" without it
            prefix = "Error response from daemon: " if isinstance(e, Conflict) else "Error: "
            click.echo(f"{prefix if not isinstance(e, NotFound) else 'Error: '}{e}", err=True)
    if failed:
        raise SystemExit(1)


@volume_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@pass_ctx
def prune(ctx: Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused local volumes."""
    from minidocker.errors import InvalidInput
    from minidocker.units import human_size

    labels = []
    for f in filters:
        key, _, value = f.partition("=")
        if key != "label":
            raise InvalidInput(f"Invalid filter '{key}'")
        labels.append(value)
    if not force:
        click.echo(
            "WARNING! This will remove all local volumes not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] ",
            nl=False,
        )
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return
    removed, reclaimed = _store(ctx).prune(label_filters=labels)
    if removed:
        click.echo("Deleted Volumes:\n" + "".join(n + "\n" for n in removed))
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")
