"""The kernel side of a bridge network, through netlink (pyroute2's ``IPRoute``), no ``ip`` binary.

One ``IPRoute`` socket per operation; a socket opened inside a container's network namespace
talks to that namespace for its whole life, so configuring ``eth0`` in there needs no helper
process: ``setns`` in, open the socket, ``setns`` back (:func:`netns_socket`)::

    ensure_bridge("mdbr0", "10.9.0.1", 16)        # RTM_NEWLINK bridge, RTM_NEWADDR, up
    host, peer = create_veth(pid)                 # RTM_NEWLINK veth…, peer born in the container
    configure_container(pid, peer, ip="10.9.0.2", prefixlen=16, gateway="10.9.0.1",
                        mac="02:42:0a:09:00:02")  # eth0, address, up, default route
    delete_link(host)                             # the peer goes with it

pyroute2 is imported here only, and this module only when a bridge network is used: ``--network
none`` pays nothing for it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from typing import Any

from minidocker import kernel, trace
from minidocker.errors import MinidockerError
from minidocker.kernel import ns

NETNS_DIR = "/run/netns"
HOST_LOCK = "/run/minidocker-network.lock"  # host-wide: bridges, subnets and iptables are global


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialise bridge/subnet/iptables changes across data roots (the data-root lock is per root)."""
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pyroute2() -> Any:
    """``pyroute2.iproute.linux`` without the package's ``__init__``.

    ``import pyroute2`` (any submodule included) runs ``pyroute2/__init__.py``, which imports every
    protocol the library speaks (conntrack, nftables, nl80211, IPDB, NDB…): ~170 ms, more than
    the rest of ``run``. We need IPRoute and NetlinkError only, so the two packages on the way are
    registered as bare modules (found by the import system, their ``__init__`` not executed) and
    the submodules load as usual below them: about half the import time. If another part of the
    process imported pyroute2 fully first, that module is used as it is.
    """
    import importlib.util
    import sys

    for name in ("pyroute2", "pyroute2.iproute"):
        if name not in sys.modules:
            spec = importlib.util.find_spec(name)
            if spec is None:
                raise MinidockerError("pyroute2 is not installed", subject=name)
            sys.modules[name] = importlib.util.module_from_spec(spec)
    from pyroute2.iproute import linux

    return linux


def _iproute() -> Any:
    return _pyroute2().IPRoute()


def _netlink_error() -> type[Exception]:
    _pyroute2()
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _fail(what: str, e: Exception) -> MinidockerError:
    return MinidockerError(f"{what}: {e}", subject=what)


def veth_name() -> str:
    """Docker's veth naming: ``veth`` + 7 hex characters."""
    return "veth" + secrets.token_hex(4)[:7]


def link_exists(name: str) -> bool:
    with _iproute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def host_routes() -> list[str]:
    """Every IPv4 destination the host routes (a new subnet must overlap none, as in Docker)."""
    out = []
    with _iproute() as ipr:
        for r in ipr.get_routes(family=2):
            dst = r.get_attr("RTA_DST")
            if dst and r["dst_len"]:
                out.append(f"{dst}/{r['dst_len']}")
    return out


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> bool:
    """The Linux bridge with the gateway address, up. True if it was created now."""
    created = False
    try:
        with _iproute() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                trace.emit(lambda: f"RTM_NEWLINK bridge {name} mtu {mtu}")
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                created = True
                idx = ipr.link_lookup(ifname=name)
            index = idx[0]
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
            if gateway not in have:
                trace.emit(lambda: f"RTM_NEWADDR {gateway}/{prefixlen} dev {name}")
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            trace.emit(lambda: f"RTM_NEWLINK {name} up")
            ipr.link("set", index=index, state="up")
    except Exception as e:
        if created:
            delete_link(name)
        raise _fail(f"bridge {name}", e) from None
    return created


def delete_link(name: str) -> bool:
    """Remove a link (a bridge, or a veth: its peer goes too). False if it was not there."""
    netlink_error = _netlink_error()
    with _iproute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        trace.emit(lambda: f"RTM_DELLINK {name}")
        try:
            ipr.link("del", index=idx[0])
        except netlink_error as e:
            if getattr(e, "code", None) != errno.ENODEV:
                raise _fail(f"delete {name}", e) from None
            return False
    return True


def create_veth(pid: int, bridge: str, mtu: int = 1500) -> tuple[str, str]:
    """A veth pair: the host end on ``bridge`` and up, the peer created straight inside the
    network namespace of ``pid`` (IFLA_NET_NS_FD). Returns (host name, peer name)."""
    host, peer = veth_name(), veth_name()
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _iproute() as ipr:
            br = ipr.link_lookup(ifname=bridge)
            if not br:
                raise MinidockerError(f"bridge {bridge} does not exist", subject=bridge)
            trace.emit(lambda: f"RTM_NEWLINK veth {host} peer {peer} netns /proc/{pid}/ns/net")
            ipr.link("add", ifname=host, kind="veth", mtu=mtu, peer={"ifname": peer, "net_ns_fd": fd})
            try:
                index = ipr.link_lookup(ifname=host)[0]
                trace.emit(lambda: f"RTM_NEWLINK {host} master {bridge} up")
                ipr.link("set", index=index, master=br[0], state="up")
            except Exception:
                delete_link(host)
                raise
    except MinidockerError:
        raise
    except Exception as e:
        raise _fail(f"veth for pid {pid}", e) from None
    finally:
        os.close(fd)
    return host, peer


@contextlib.contextmanager
def netns_socket(pid: int) -> Iterator[Any]:
    """An IPRoute socket living in the network namespace of ``pid`` (opened there, used from here)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(target, ns.CLONE_NEWNET, path=f"/proc/{pid}/ns/net")
        try:
            ipr = _iproute()
        finally:
            ns.setns(own, ns.CLONE_NEWNET, path="/proc/self/ns/net (back)")
    finally:
        os.close(own)
        os.close(target)
    with ipr:
        yield ipr


def configure_container(
    pid: int, peer: str, *, ifname: str, ip: str, prefixlen: int, gateway: str, mac: str, default_route: bool
) -> None:
    """Inside the container's netns: rename the peer, MAC, address, up, default route, lo up."""
    try:
        with netns_socket(pid) as ipr:
            index = ipr.link_lookup(ifname=peer)[0]
            trace.emit(lambda: f"RTM_NEWLINK {peer} name {ifname} address {mac} (netns of {pid})")
            ipr.link("set", index=index, ifname=ifname, address=mac)
            trace.emit(lambda: f"RTM_NEWADDR {ip}/{prefixlen} dev {ifname} (netns of {pid})")
            ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
            trace.emit(lambda: f"RTM_NEWLINK {ifname} up; lo up (netns of {pid})")
            ipr.link("set", index=index, state="up")
            lo = ipr.link_lookup(ifname="lo")
            if lo:
                ipr.link("set", index=lo[0], state="up")
            if default_route:
                trace.emit(lambda: f"RTM_NEWROUTE default via {gateway} dev {ifname} (netns of {pid})")
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
    except Exception as e:
        raise _fail(f"configure {ifname} in pid {pid}", e) from None


def remove_container_link(pid: int, ifname: str) -> None:
    """``network disconnect``: delete ``ifname`` inside the container (its host end goes with it)."""
    with netns_socket(pid) as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if idx:
            trace.emit(lambda: f"RTM_DELLINK {ifname} (netns of {pid})")
            ipr.link("del", index=idx[0])


# -- /run/netns/<sandbox> ------------------------------------------------------------------------
def bind_netns(pid: int, name: str) -> str:
    """Bind-mount the netns of ``pid`` at /run/netns/<name> (what ``ip netns`` lists)."""
    os.makedirs(NETNS_DIR, 0o755, exist_ok=True)
    path = os.path.join(NETNS_DIR, name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        kernel.mount(f"/proc/{pid}/ns/net", path, None, kernel.MS_BIND)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def unbind_netns(path: str) -> None:
    """Undo :func:`bind_netns` (idempotent)."""
    if not path.startswith(NETNS_DIR + "/"):
        return
    with contextlib.suppress(OSError):
        kernel.umount(path, kernel.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- ip_forward ------------------------------------------------------------------------------------
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_FORWARD_SAVED = "/run/minidocker-ip_forward.orig"


def enable_ip_forward() -> None:
    """Routing between the bridge and the host's other links (dockerd sets it too). The old value
    is kept so :func:`restore_ip_forward` can put the host back when our last network goes."""
    with open(IP_FORWARD) as f:
        current = f.read().strip()
    if current == "1":
        return
    if not os.path.exists(_FORWARD_SAVED):
        with open(_FORWARD_SAVED, "w") as f:
            f.write(current)
    trace.emit(f"write {IP_FORWARD} 1")
    with open(IP_FORWARD, "w") as f:
        f.write("1")


def restore_ip_forward() -> None:
    try:
        with open(_FORWARD_SAVED) as f:
            old = f.read().strip()
    except FileNotFoundError:
        return
    trace.emit(f"write {IP_FORWARD} {old}")
    with open(IP_FORWARD, "w") as f:
        f.write(old)
    os.unlink(_FORWARD_SAVED)
