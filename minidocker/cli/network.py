"""``network create|ls|rm|inspect|connect|disconnect|prune``, with the docker CLI's output.

Errors print one line and exit 125, like every error of ours (issue 5 asks for 125 for a bad or
overlapping subnet, an unknown network, a name collision). The docker CLI exits 1 for its network
verbs; the daemon's "Error response from daemon: …" becomes our "Error: …" either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from minidocker.cli.context import Context
from minidocker.cli.output import inspect_each, key_values, print_formatted, table

if TYPE_CHECKING:
    from minidocker.network import NetworkStore

pass_ctx = click.make_pass_decorator(Context)


@contextlib.contextmanager
def _exit_125() -> Iterator[None]:
    from minidocker.errors import MinidockerError

    try:
        yield
    except MinidockerError as e:
        e.exit_code = 125
        raise


def _store(ctx: Context) -> NetworkStore:
    from minidocker.network import NetworkStore

    return NetworkStore(ctx.stores.root, ctx.stores.lock)


@click.group("network")
def network_group() -> None:
    """Manage networks."""


@network_group.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network")
@click.option("--subnet", default="", help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", default="", help="IPv4 Gateway for the master subnet")
@click.option("--ip-range", default="", help="Allocate container ip from a sub-range")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@pass_ctx
def create(ctx: Context, name: str, driver: str, subnet: str, gateway: str, ip_range: str, internal: bool,
           labels: tuple[str, ...], opts: tuple[str, ...]) -> None:  # fmt: skip
    """Create a network."""
    from minidocker import network

    with _exit_125():
        spec = network.NetworkSpec(
            name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
            internal=internal,
            labels=key_values(labels),
            options=key_values(opts),
        )
        doc = network.create_network(ctx.stores, spec)
    click.echo(doc["Id"])


def _fields(n: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    labels = ",".join(f"{k}={v}" for k, v in sorted((n.get("Labels") or {}).items()))
    return {
        "ID": n["Id"] if no_trunc else n["Id"][:12],
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
        "Internal": str(bool(n.get("Internal"))).lower(),
        "Labels": labels,
        "CreatedAt": n.get("Created", ""),
    }


def _matches(n: dict[str, Any], filters: tuple[str, ...]) -> bool:
    from minidocker.errors import InvalidInput

    for f in filters:
        key, _, value = f.partition("=")
        if key == "name" and value not in n["Name"]:
            return False
        if key == "id" and not n["Id"].startswith(value):
            return False
        if key == "driver" and n["Driver"] != value:
            return False
        if key == "label":
            k, eq, v = value.partition("=")
            labels = n.get("Labels") or {}
            if k not in labels or (eq and labels[k] != v):
                return False
        if key == "type":
            custom = n["Name"] not in ("bridge", "host", "none")
            if (value == "custom") != custom:
                return False
        if key not in ("name", "id", "driver", "label", "type"):
            raise InvalidInput(f"Invalid filter '{key}'", subject=key)
    return True


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.option("--format", "fmt", help="Pretty-print networks using a Go template")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@pass_ctx
def ls(ctx: Context, quiet: bool, filters: tuple[str, ...], fmt: str | None, no_trunc: bool) -> None:
    """List networks."""
    with _exit_125():
        nets = sorted((n for n in _store(ctx).list() if _matches(n, filters)), key=lambda n: n["Name"])
    items = [_fields(n, no_trunc) for n in nets]
    if quiet:
        for it in items:
            click.echo(it["ID"])
        return

    def default() -> None:
        rows = [[it["ID"], it["Name"], it["Driver"], it["Scope"]] for it in items]
        click.echo(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))

    headers = ["NETWORK ID", "NAME", "DRIVER", "SCOPE", "IPV6", "INTERNAL", "LABELS", "CREATED AT"]
    keys = ["ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "CreatedAt"]
    print_formatted(fmt, headers, keys, items, default)


network_group.add_command(ls, "list")


def _names(ctx: Context) -> dict[str, str]:
    return {c.id: c.name.lstrip("/") for c in ctx.runtime.containers.list()}


@network_group.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@pass_ctx
def inspect(ctx: Context, refs: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more networks."""
    from minidocker import network

    store = _store(ctx)
    names = _names(ctx)
    inspect_each(
        refs, lambda ref: network.inspect_doc(store.get(ref), names), "network", fmt, missing_code=125
    )


def _each(refs: tuple[str, ...], action: Callable[[str], Any]) -> None:
    """Docker's loop for rm/disconnect: go on after an error, print each, exit 125 at the end."""
    from minidocker.errors import MinidockerError

    failed = False
    for ref in refs:
        try:
            action(ref)
        except MinidockerError as e:
            failed = True
            click.echo(f"Error: {e}", err=True)
            continue
        click.echo(ref)
    if failed:
        raise SystemExit(125)


@network_group.command("rm")
@click.argument("refs", nargs=-1, required=True)
@pass_ctx
def rm(ctx: Context, refs: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    from minidocker import network

    def remove(ref: str) -> None:
        try:
            network.remove_network(ctx.stores, ref)
        except network.NetworkNotFound as e:
            # the docker CLI's words for the daemon's 404 (client.wrapResponseError), as inspect's
            raise network.NetworkNotFound(f"No such network: {ref}", subject=ref) from e

    _each(refs, remove)


network_group.add_command(rm, "remove")


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_ctx
def prune(ctx: Context, force: bool) -> None:
    """Remove all unused networks."""
    from minidocker import network
    from minidocker.errors import MinidockerError

    if not force:
        click.confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue?",
            abort=True,
        )
    deleted = []
    for n in sorted(_store(ctx).list(), key=lambda n: n["Name"]):
        if n["Name"] in ("bridge", "host", "none") or n.get("Endpoints"):
            continue
        with contextlib.suppress(MinidockerError):
            network.remove_network(ctx.stores, n["Id"])
            deleted.append(n["Name"])
    with contextlib.suppress(MinidockerError):
        network.prune_default(ctx.stores)  # a lingering default bridge: not a network, not listed
    if deleted:
        click.echo("Deleted Networks:\n" + "\n".join(deleted))


@network_group.command("connect")
@click.argument("network")
@click.argument("container")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@pass_ctx
def connect(ctx: Context, network: str, container: str, ip: str, aliases: tuple[str, ...]) -> None:
    """Connect a container to a network."""
    from minidocker import network as net

    with _exit_125():
        if ip:
            net.check_endpoint_options("user", ip, ())  # the address's syntax; the network decides the rest
        net.connect(ctx.runtime, container, network, ip=ip, aliases=aliases)


@network_group.command("disconnect")
@click.argument("network")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@pass_ctx
def disconnect(ctx: Context, network: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    from minidocker import network as net

    with _exit_125():
        net.disconnect(ctx.runtime, container, network, force=force)
