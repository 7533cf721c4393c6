"""Chapter 7: port mapping. A published port is two paths to the same container port, like
dockerd with its default ``userland-proxy=true``:

* iptables DNAT in our nat chain ``MINIDOCKER`` (jumped to from PREROUTING for traffic from
  outside, from OUTPUT for the host's own traffic to its non-loopback addresses), a FORWARD
  accept in ``MINIDOCKER-FORWARD`` and a hairpin MASQUERADE in ``MINIDOCKER-POSTROUTING``;
* a userland proxy process bound to hostIP:hostPort (:mod:`minidocker.portmap.proxy`) for what
  DNAT cannot reach: 127.0.0.1. Its socket also reserves the port, so a taken port fails first.

The monitor drives it in three steps; teardown undoes them from the state file alone::

    wanted = requested(config["ExposedPorts"], host_config_bindings, publish_all)
    bound = bind(wanted)                       # sockets held: random ports chosen, conflicts -> 125
    ports = port_settings(config["ExposedPorts"], bound)   # NetworkSettings.Ports
    publish(bound, container_ip, bridge, state_path)        # rules + one proxy process per port
    ...
    unpublish(state_path)                      # proxies killed, rules deleted, file removed

``state_path`` (``<exec-root>/containers/<id>/portmap.json``) lists the rules and proxy pids
before either exists, so a failure halfway, a crashed monitor or ``rm -f`` leave nothing behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from minidocker import fsutil, trace
from minidocker.errors import InvalidInput, MinidockerError
from minidocker.portmap.spec import Bindings, parse_expose, parse_port_range, parse_port_specs

__all__ = [
    "STATE_FILE",
    "Mapping",
    "bind",
    "close",
    "parse_expose",
    "parse_port_specs",
    "port_rules",
    "port_settings",
    "publish",
    "requested",
    "unpublish",
]

STATE_FILE = "portmap.json"


@dataclass
class Mapping:
    """One published port: hostIP:hostPort -> the container's port (host_port 0: any free one)."""

    proto: str
    container_port: int
    host_ip: str = "0.0.0.0"
    host_port: int = 0
    host_port_end: int = 0  # a HostPort range "8000-8010": the first free one in it
    implicit: bool = False  # the "::" twin Docker adds to a binding without HostIp (same port)
    sock: socket.socket | None = field(default=None, repr=False, compare=False)

    @property
    def ipv6(self) -> bool:
        return ":" in self.host_ip

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def _port_key(port: str) -> tuple[int, str]:
    number, _, proto = port.partition("/")
    return (int(number) if number.isdigit() else 0, proto or "tcp")


def requested(
    exposed: dict[str, Any] | None, bindings: Bindings, publish_all: bool, *, v6: bool | None = None
) -> list[Mapping]:
    """What to publish (dockerd's ``buildCreateEndpointOptions``): every binding of
    ``HostConfig.PortBindings``, and with ``-P`` every exposed port that has none (any host port).
    A binding without HostIp is ``0.0.0.0`` plus, as in Docker 20.10 when the host can listen on
    IPv6 (``v6``), a ``::`` twin on the same port: the userland proxy serves it (IPv6 traffic is
    never NATed here). An explicit IPv6 HostIp (``-p [::1]:8080:80``) is proxied the same way.

    >>> [(m.key, m.host_ip, m.host_port) for m in requested({"80/tcp": {}}, {}, True, v6=False)]
    [('80/tcp', '0.0.0.0', 0)]
    >>> [(m.host_ip, m.implicit) for m in requested(None, {"80/tcp": [("", "8080")]}, False, v6=True)]
    [('0.0.0.0', False), ('::', True)]
    """
    if v6 is None:
        from minidocker.portmap.proxy import v6_listenable

        v6 = v6_listenable()
    ports = set(exposed or {}) | set(bindings)
    out = []
    for key in sorted(ports, key=_port_key):
        number, proto = _port_key(key)
        pairs = bindings.get(key) or ([("", "")] if publish_all else [])
        for host_ip, host_port in pairs:
            ip = host_ip or "0.0.0.0"
            try:
                ip = str(ipaddress.ip_address(ip.strip("[]")))
            except ValueError:
                raise InvalidInput(f"Invalid ip address: {ip}", subject=key) from None
            start = end = 0
            if host_port:
                try:
                    start, end = parse_port_range(host_port)
                except ValueError:
                    raise InvalidInput(f"Invalid hostPort: {host_port}", subject=key) from None
            out.append(Mapping(proto, number, ip, start, end if end != start else 0))
            if not host_ip and v6 and proto != "sctp":
                out.append(Mapping(proto, number, "::", start, end if end != start else 0, implicit=True))
    return out


def bind(wanted: list[Mapping]) -> list[Mapping]:
    """Take each host port now (the proxy's socket), choosing free ones where none was given.
    All or nothing: a port in use closes what was taken and raises (exit 125)."""
    from minidocker.portmap import proxy

    done: list[Mapping] = []
    try:
        for m in wanted:
            if m.proto == "sctp":
                done.append(m)  # no userland proxy for SCTP (docker-proxy's is experimental): DNAT only
                continue
            if m.implicit:  # the "::" twin: the port its 0.0.0.0 binding got, if free there too
                twin = done[-1] if done and done[-1].key == m.key and not done[-1].ipv6 else None
                if twin is None:
                    continue
                try:
                    m.sock = proxy.listen(m.proto, m.host_ip, twin.host_port)
                except MinidockerError:
                    continue  # someone else's [::]:port: Docker's twin is best effort too
                m.host_port, m.host_port_end = twin.host_port, 0
                done.append(m)
                continue
            if m.host_port_end:
                m.sock = _bind_in_range(m)
            else:
                m.sock = proxy.listen(m.proto, m.host_ip, m.host_port)
            m.host_port = m.sock.getsockname()[1]
            done.append(m)
    except BaseException:
        close(done)
        raise
    return done


def _bind_in_range(m: Mapping) -> socket.socket:
    from minidocker.portmap import proxy

    err: MinidockerError | None = None
    for port in range(m.host_port, m.host_port_end + 1):
        try:
            return proxy.listen(m.proto, m.host_ip, port)
        except MinidockerError as e:
            err = e
    assert err is not None
    raise err


def close(mappings: list[Mapping]) -> None:
    """Close the sockets still held here (after :func:`publish` the proxies own their copies)."""
    for m in mappings:
        if m.sock is not None:
            m.sock.close()
            m.sock = None


def port_settings(
    exposed: dict[str, Any] | None, mappings: list[Mapping]
) -> dict[str, list[tuple[str, str]] | None]:
    """``NetworkSettings.Ports``: each exposed port with its bindings, or None (exposed only).

    >>> port_settings({"80/tcp": {}, "443/tcp": {}}, [Mapping("tcp", 80, "0.0.0.0", 8080)])
    {'80/tcp': [('0.0.0.0', '8080')], '443/tcp': None}
    """
    out: dict[str, list[tuple[str, str]] | None] = {k: None for k in exposed or {}}
    for m in mappings:
        bound = out.get(m.key) or []
        bound.append((m.host_ip, str(m.host_port)))
        out[m.key] = bound
    return out


def port_rules(m: Mapping, container_ip: str, bridge: str) -> list[Any]:
    """The iptables rules of one mapping (dockerd's, in our chains).

    >>> for r in port_rules(Mapping("tcp", 80, "127.0.0.1", 8080), "10.1.0.2", "br0"): print(r)
    -t nat -A MINIDOCKER -d 127.0.0.1/32 ! -i br0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80
    -t filter -A MINIDOCKER-FORWARD -d 10.1.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT
    -t nat -A MINIDOCKER-POSTROUTING -s 10.1.0.2/32 -d 10.1.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
    """
    from minidocker.network.iptables import FORWARD_CHAIN, NAT_CHAIN, POSTROUTING_CHAIN, Rule

    if m.ipv6:
        return []  # IPv6 host addresses: the userland proxy only (no ip6tables NAT)
    p, cport = m.proto, str(m.container_port)
    dst = ("-d", f"{m.host_ip}/32") if m.host_ip != "0.0.0.0" else ()
    return [
        Rule("nat", NAT_CHAIN, (*dst, "!", "-i", bridge, "-p", p, "-m", p, "--dport", str(m.host_port),
                                "-j", "DNAT", "--to-destination", f"{container_ip}:{cport}")),
        Rule("filter", FORWARD_CHAIN, ("-d", f"{container_ip}/32", "!", "-i", bridge, "-o", bridge,
                                       "-p", p, "-m", p, "--dport", cport, "-j", "ACCEPT")),
        # hairpin: a container reaching its own published port through the host comes back from the host
        Rule("nat", POSTROUTING_CHAIN, ("-s", f"{container_ip}/32", "-d", f"{container_ip}/32",
                                        "-p", p, "-m", p, "--dport", cport, "-j", "MASQUERADE")),
    ]  # fmt: skip


def _write_state(path: str, rules: list[Any], pids: list[int]) -> None:
    doc = {"Rules": [[r.table, r.chain, *r.args] for r in rules], "Proxies": pids}
    fsutil.atomic_write(path, json.dumps(doc).encode())


def publish(mappings: list[Mapping], container_ip: str, bridge: str, state_path: str) -> list[int]:
    """Rules and proxies for bound mappings; returns the proxy pids. On failure everything done
    so far is undone before the error is raised."""
    from minidocker.network import iptables, netlink
    from minidocker.portmap import proxy

    rules: list[Any] = []
    for m in mappings:
        rules += [r for r in port_rules(m, container_ip, bridge) if r not in rules]
    pids: list[int] = []
    try:
        _write_state(state_path, rules, pids)  # first: whatever follows can be found and undone
        with netlink.host_lock():
            iptables.apply(rules)
        for m in mappings:
            if m.sock is not None:
                pids.append(proxy.spawn(m.sock, m.proto, (container_ip, m.container_port)))
                _write_state(state_path, rules, pids)
    except BaseException:
        with contextlib.suppress(Exception):
            unpublish(state_path)
        raise
    finally:
        close(mappings)
    trace.emit(
        lambda: f"portmap: published {', '.join(f'{m.host_ip}:{m.host_port}->{m.key}' for m in mappings)}"
    )
    return pids


def unpublish(state_path: str) -> None:
    """Undo :func:`publish` from its state file: proxies, then rules, then the file. Idempotent."""
    from minidocker.network import iptables, netlink
    from minidocker.portmap import proxy

    try:
        with open(state_path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return
    for pid in doc.get("Proxies") or []:
        proxy.stop(int(pid))
    rules = [iptables.Rule(r[0], r[1], tuple(r[2:])) for r in doc.get("Rules") or []]
    if rules:
        with netlink.host_lock():
            iptables.remove(rules)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path)
