"""``portmap start|forward``: the seed's userland port forwarding, in the foreground.

``run -p`` already gives each published port its own proxy process next to the DNAT rules
(minidocker.portmap). These verbs show the proxy alone: ``forward`` relays one host port to a
container's port by hand; ``start`` serves every published port of the running containers whose
port is free (one whose proxy is alive is reported and skipped). Both run until Ctrl-C.
"""

from __future__ import annotations

import socket
from typing import Any

import click

from minidocker.cli.context import Context

pass_ctx = click.make_pass_decorator(Context)


def _container_ip(c: Any) -> str:
    for ep in (c.network_settings.networks or {}).values():
        if ep.ip_address:
            return str(ep.ip_address)
    return ""


@click.group("portmap")
def portmap_group() -> None:
    """Userland port forwarding to containers (the seed's portmap)."""


@portmap_group.command("start")
@pass_ctx
def start(ctx: Context) -> None:
    """Serve the published ports of all running containers until Ctrl-C."""
    from minidocker.errors import MinidockerError
    from minidocker.portmap import proxy

    listeners: list[tuple[socket.socket, str, proxy.Target]] = []
    for c in ctx.runtime.list():
        ip = _container_ip(c)
        if not c.state.running or not ip:
            continue
        for key, bindings in sorted((c.network_settings.ports or {}).items()):
            number, _, proto = key.partition("/")
            for b in bindings or []:
                where = f"{b.host_ip}:{b.host_port}"
                if proto not in ("tcp", "udp"):
                    continue
                try:
                    sock = proxy.listen(proto, b.host_ip, int(b.host_port))
                except MinidockerError:
                    click.echo(f"{where}/{proto}: already served, skipped", err=True)
                    continue
                listeners.append((sock, proto, (ip, int(number))))
                click.echo(f"{where} -> {ip}:{number}/{proto} ({c.name.lstrip('/')})")
    if not listeners:
        click.echo("nothing to forward", err=True)
        return
    proxy.run_foreground(listeners)


@portmap_group.command("forward")
@click.option("-p", "spec", required=True, help="[ip:]HOST_PORT:CONTAINER_PORT[/tcp|udp]")
@click.option("-d", "container", required=True, help="The container to forward to")
@pass_ctx
def forward(ctx: Context, spec: str, container: str) -> None:
    """Forward one host port to a running container's port until Ctrl-C."""
    from minidocker.errors import InvalidInput
    from minidocker.portmap import proxy
    from minidocker.portmap.spec import parse_port_spec

    mappings = parse_port_spec(spec)
    if len(mappings) != 1 or not mappings[0][1][1].isdigit():
        raise InvalidInput(f"portmap forward takes one HOST_PORT:CONTAINER_PORT, got {spec}", subject=spec)
    key, (host_ip, host_port) = mappings[0]
    c = ctx.runtime.get(container)
    ip = _container_ip(c)
    if not c.state.running or not ip:
        raise InvalidInput(f"container {container} is not running on a bridge network", subject=c.id)
    number, _, proto = key.partition("/")
    if proto not in ("tcp", "udp"):
        raise InvalidInput(f"portmap forward relays tcp and udp, not {proto}", subject=spec)
    sock = proxy.listen(proto, host_ip, int(host_port))
    click.echo(f"{host_ip or '0.0.0.0'}:{host_port} -> {ip}:{number}/{proto} ({c.name.lstrip('/')})")
    proxy.run_foreground([(sock, proto, (ip, int(number)))])
