"""``-p``/``--expose``/``-P`` parsed the way the docker CLI does (go-connections ``nat.ParsePortSpecs``).

A spec is ``[ip:][hostPort:]containerPort[/proto]``; ports may be ranges (``8000-8001:80-81``)::

    >>> exposed, bindings = parse_port_specs(["127.0.0.1:8080:80", "53/udp"])
    >>> sorted(exposed)
    ['53/udp', '80/tcp']
    >>> bindings
    {'80/tcp': [('127.0.0.1', '8080')], '53/udp': [('', '')]}

The results are Docker's shapes: ``Config.ExposedPorts`` (``{"80/tcp": {}}``) and
``HostConfig.PortBindings`` as (HostIp, HostPort) pairs (an empty ``HostPort`` means "any free
port", chosen at start). This package stays below ``container/``: the caller makes PortBindings.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from minidocker.errors import InvalidInput

PROTOCOLS = ("tcp", "udp", "sctp")
Bindings = dict[str, list[tuple[str, str]]]  # "80/tcp" -> [(HostIp, HostPort), ...]


def split_proto_port(raw: str) -> tuple[str, str]:
    """``nat.SplitProtoPort``: ``"80/udp"`` -> ``("udp", "80")``; no protocol means tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def parse_port_range(ports: str) -> tuple[int, int]:
    """``nat.ParsePortRange``: ``"80"`` -> (80, 80), ``"80-82"`` -> (80, 82); ValueError if bad."""
    if not ports:
        raise ValueError("Empty string specified for ports.")
    start_s, _, end_s = ports.partition("-")
    start = _uint16(start_s)
    end = _uint16(end_s) if "-" in ports else start
    if end < start:
        raise ValueError(f"Invalid range specified for the Port: {ports}")
    return start, end


def _uint16(s: str) -> int:
    if not s.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{s}": invalid syntax')
    n = int(s)
    if n > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{s}": value out of range')
    return n


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def parse_port_spec(raw: str) -> list[tuple[str, tuple[str, str]]]:
    """One ``-p`` value -> ``[("80/tcp", (host_ip, host_port)), ...]`` (``nat.ParsePortSpec``)."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    ip = ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidInput(f"Invalid ip address: {ip}", subject=raw) from None
    if not container_port:
        raise InvalidInput(f"No port specified: {raw}<empty>", subject=raw)
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise InvalidInput(f"Invalid containerPort: {container_port}", subject=raw) from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise InvalidInput(f"Invalid hostPort: {host_port}", subject=raw) from None
        if end - start != host_end - host_start and end != start:
            raise InvalidInput(
                f"Invalid ranges specified for container and host Ports: {container_port} and {host_port}",
                subject=raw,
            )
    if proto.lower() not in PROTOCOLS:
        raise InvalidInput(f"Invalid proto: {proto}", subject=raw)
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:  # one container port, a host range to pick from
            hp = f"{host_start}-{host_end}"
        out.append((f"{start + i}/{proto.lower()}", (ip, hp)))
    return out


def parse_port_specs(specs: list[str]) -> tuple[dict[str, Any], Bindings]:
    """All ``-p`` values -> (``Config.ExposedPorts``, ``HostConfig.PortBindings``)."""
    exposed: dict[str, Any] = {}
    bindings: Bindings = {}
    for raw in specs:
        for port, binding in parse_port_spec(raw):
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    return exposed, bindings


def parse_expose(values: list[str]) -> dict[str, Any]:
    """``--expose 80``, ``--expose 7000-7002/udp`` -> ``Config.ExposedPorts`` entries."""
    exposed: dict[str, Any] = {}
    for e in values:
        if ":" in e:
            raise InvalidInput(f"invalid port format for --expose: {e}", subject=e)
        proto, port = split_proto_port(e)
        try:
            start, end = parse_port_range(port)
        except ValueError as err:
            raise InvalidInput(f"invalid range format for --expose: {e}, error: {err}", subject=e) from None
        for n in range(start, end + 1):
            exposed[f"{n}/{proto}"] = {}
    return exposed
