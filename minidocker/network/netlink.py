"""The kernel side of a bridge network, through netlink (pyroute2's ``IPRoute``), no ``ip`` binary.

One ``IPRoute`` socket per operation; a socket opened inside a container's network namespace
talks to that namespace for its whole life, so configuring ``eth0`` in there needs no helper
process: ``setns`` in, open the socket, ``setns`` back (:func:`netns_socket`)::

    ensure_bridge("mdbr0", "10.9.0.1", 16)        # RTM_NEWLINK bridge, RTM_NEWADDR, up
    plug(pid, "mdbr0", "veth1234567", ifname="eth0", ip="10.9.0.2", prefixlen=16,
         gateway="10.9.0.1", mac="02:42:0a:09:00:02", default_route=True)
                                                  # veth pair, peer born in the container as eth0;
                                                  # address, up, default route inside
    delete_link("veth1234567")                    # the peer goes with it

pyroute2 is imported here only, and this module only when a bridge network is used: ``--network
none`` pays nothing for it. ``run`` imports it in a helper process on the other core while the
container is being prepared (:mod:`minidocker.network.helper`), which then runs these functions.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
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
    # groups=0: requests only, no multicast notifications piling up in a socket kept open
    return _pyroute2().IPRoute(groups=0)


_HOST: tuple[int, Any] | None = None  # (pid, IPRoute): this process's socket in the host netns


@contextlib.contextmanager
def _host() -> Iterator[Any]:
    """The host-namespace IPRoute socket, opened once per process and kept: the helper opens it
    (and warms it with a lookup) right after importing pyroute2, before the monitor's first
    request, so a container's start pays for no socket but the one inside its namespace."""
    global _HOST
    if _HOST is None or _HOST[0] != os.getpid():
        _HOST = (os.getpid(), _iproute())
    yield _HOST[1]


def warm() -> None:
    """Import pyroute2, open the host socket, make one request (the first costs the most)."""
    with _host() as ipr:
        ipr.link_lookup(ifname="lo")


def _netlink_error() -> type[Exception]:
    _pyroute2()
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _fail(what: str, e: Exception) -> MinidockerError:
    return MinidockerError(f"{what}: {e}", subject=what)


def veth_name() -> str:
    """Docker's veth naming: ``veth`` + 7 hex characters."""
    return "veth" + os.urandom(4).hex()[:7]


def link_exists(name: str) -> bool:
    with _host() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def host_routes(path: str = "/proc/net/route") -> list[str]:
    """Every IPv4 destination in the host's main routing table (a new subnet must overlap none,
    as in Docker, whose ``RouteList`` reads the main table too). Read from ``/proc/net/route``
    rather than through netlink: picking the default network's subnet at its first use then
    never waits for pyroute2's import (the helper's, chapter 6 step 5) while holding the
    data-root lock. Reading, not configuring: the configuring stays netlink.

    Each line: Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask… (little-endian hex).
    """
    import socket
    import struct

    out = []
    with open(path) as f:
        next(f, None)  # the header
        for line in f:
            fields = line.split()
            if len(fields) < 8:
                continue
            mask = int(fields[7], 16)
            if not mask:
                continue  # the default route
            dst = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            out.append(f"{dst}/{bin(mask).count('1')}")
    return out


def ensure_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> bool:
    """The Linux bridge with the gateway address, up. True if it was created now."""
    created = False
    try:
        with _host() as ipr:
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
    with _host() as ipr:
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


def plug(
    pid: int,
    bridge: str,
    host: str,
    *,
    ifname: str,
    ip: str,
    prefixlen: int,
    gateway: str,
    mac: str,
    default_route: bool,
    mtu: int = 1500,
) -> bool:
    """The container's cable, in two sockets and five requests. False (nothing done) if
    ``bridge`` does not exist: the caller brings it up and plugs again.

    On the host, one ``RTM_NEWLINK``: the veth pair, its host end ``host`` enslaved to ``bridge``
    and up, its peer born inside the network namespace of ``pid`` (``IFLA_NET_NS_FD``) already
    named ``ifname`` with the MAC ``mac``. Inside (a socket opened in that namespace): the address,
    up, the default route. ``lo`` is up already (chapter 1 does it when it makes the namespace).
    On failure the pair is deleted (the peer goes with its host end) and the error raised."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    created = False
    try:
        with _host() as ipr:
            br = ipr.link_lookup(ifname=bridge)
            if not br:
                return False
            trace.emit(
                lambda: (
                    f"RTM_NEWLINK veth {host} master {bridge} up, peer {ifname} address {mac} "
                    f"netns /proc/{pid}/ns/net"
                )
            )
            ipr.link(
                "add",
                ifname=host,
                kind="veth",
                mtu=mtu,
                master=br[0],
                state="up",
                peer={"ifname": ifname, "address": mac, "net_ns_fd": fd},
            )
            created = True
        with netns_socket(pid) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            trace.emit(lambda: f"RTM_NEWADDR {ip}/{prefixlen} dev {ifname} (netns of {pid})")
            ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
            trace.emit(lambda: f"RTM_NEWLINK {ifname} up (netns of {pid})")
            ipr.link("set", index=index, state="up")
            if default_route:
                trace.emit(lambda: f"RTM_NEWROUTE default via {gateway} dev {ifname} (netns of {pid})")
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
        return True
    except Exception as e:
        if created:
            with contextlib.suppress(Exception):
                delete_link(host)
        if isinstance(e, MinidockerError):
            raise
        raise _fail(f"{ifname} for pid {pid}", e) from None
    finally:
        os.close(fd)


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


# -- /run/netns/<sandbox> ------------------------------------------------------------------------
def bind_netns(pid: int, name: str) -> str:
    """Bind-mount the netns of ``pid`` at /run/netns/<name> (what ``ip netns`` lists)."""
    os.makedirs(NETNS_DIR, 0o755, exist_ok=True)
    _share_netns_dir()
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


def _share_netns_dir() -> None:
    """Make /run/netns a shared mount point first, exactly as ``ip netns add`` does.

    Why: iproute2 turns /run/netns into a bind mount of itself (``MS_BIND|MS_REC``, then
    ``MS_SHARED``) the first time it finds it is not a mount point yet. Done *after* our nsfs
    entries exist, that new mount covers them: ``umount /run/netns/<id>`` then fails with EINVAL
    and the netns (with its veth) outlives the container. Doing the same dance before our first
    entry means iproute2 finds a shared mount point and leaves it alone; the self-bind stays, as
    it does after any ``ip netns add``.
    """
    try:
        kernel.mount("", NETNS_DIR, None, kernel.MS_SHARED | kernel.MS_REC)
        return
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
    kernel.mount(NETNS_DIR, NETNS_DIR, None, kernel.MS_BIND | kernel.MS_REC)
    kernel.mount("", NETNS_DIR, None, kernel.MS_SHARED | kernel.MS_REC)


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
