"""IPAM: which address a container gets, as pure functions over a subnet and the addresses in use.

libnetwork's default IPAM driver, reduced to what a bridge network needs::

    >>> gateway_for("10.77.0.0/24")
    '10.77.0.1'
    >>> allocate("10.77.0.0/24", gateway="10.77.0.1", used={"10.77.0.2"})
    '10.77.0.3'
    >>> mac_for("172.17.0.2")
    '02:42:ac:11:00:02'

The gateway is the subnet's first address (it sits on the bridge); the network and broadcast
addresses are never handed out. Persistence and locking live in :mod:`minidocker.network.store`:
these functions only decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable

from minidocker.errors import Conflict, InvalidInput

# Docker's default address pools for local networks (172.17-31/16, then 192.168.x/20). We skip
# 172.17.0.0/16: that is docker0's, and a dockerd may run on the same host.
DEFAULT_POOLS: tuple[str, ...] = tuple(f"172.{n}.0.0/16" for n in range(18, 32)) + tuple(
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
)


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """``--subnet``: an IPv4 CIDR whose host bits are zero (Docker refuses ``10.0.0.1/24`` too)."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise InvalidInput(f"invalid subnet {text}: {e}", subject=text) from None
    if net.prefixlen > 30:
        raise InvalidInput(f"invalid subnet {text}: too small for a gateway and a container", subject=text)
    return net


def gateway_for(subnet: str) -> str:
    """The first usable address: what libnetwork gives the bridge when ``--gateway`` is not set."""
    return str(next(ipaddress.IPv4Network(subnet).hosts()))


def check_in_subnet(subnet: str, address: str, what: str) -> str:
    """``--gateway``/``--ip``: a host address of ``subnet`` (not its network or broadcast address)."""
    net = ipaddress.IPv4Network(subnet)
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise InvalidInput(f"invalid {what} address {address}", subject=address) from None
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise InvalidInput(f"no matching subnet for {what} {address}", subject=address)
    return str(ip)


def allocate(
    subnet: str,
    *,
    gateway: str,
    used: Collection[str],
    requested: str | None = None,
    ip_range: str | None = None,
) -> str:
    """The address for a new endpoint: ``requested`` if free, else the lowest free one (in
    ``ip_range`` when the network has one). Raises Conflict when taken or exhausted."""
    taken = set(used) | {gateway}
    if requested:
        ip = check_in_subnet(subnet, requested, "IP")
        if ip in taken:
            raise Conflict(f"Address already in use: {ip}", subject=ip)
        return ip
    pool = ipaddress.IPv4Network(ip_range or subnet)
    net = ipaddress.IPv4Network(subnet)
    for host in pool.hosts() if pool.prefixlen < 31 else pool:
        if host in (net.network_address, net.broadcast_address):
            continue
        if str(host) not in taken:
            return str(host)
    raise Conflict(f"no available IPv4 addresses on network {subnet}", subject=subnet)


def mac_for(ip: str) -> str:
    """Docker's ``GenerateMACFromIP``: 02:42 (locally administered) followed by the four IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def overlaps(a: str, b: str) -> bool:
    return ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b))


def pick_subnet(in_use: Iterable[str], pools: Iterable[str] = DEFAULT_POOLS) -> str:
    """The first pool that overlaps nothing in ``in_use`` (other networks, host routes)."""
    busy = [ipaddress.IPv4Network(s, strict=False) for s in in_use]
    for candidate in pools:
        net = ipaddress.IPv4Network(candidate)
        if not any(net.overlaps(b) for b in busy):
            return candidate
    raise Conflict("could not find an available, non-overlapping IPv4 address pool", subject="ipam")
