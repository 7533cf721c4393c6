"""Chapter 6's bridge networks, the code behind :mod:`minidocker.network` (see its docstring).

A container on a bridge network goes through three steps, split so a failure anywhere leaves
nothing behind (the runtime's teardown calls :func:`release`, which undoes whatever exists)::

    ep = allocate(stores, cid, "bridge")     # address reserved in the network's record (locked)
    ...                                      # /etc/hosts written with ep.ip; container created
    attach(stores, ep, pid)                  # bridge up (first use), veth, eth0, /run/netns/<id>
    ...
    release(stores, cid)                     # veth, /run/netns, address; the default bridge and
                                             # our iptables chains when nobody needs them any more
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from minidocker import fsutil, trace
from minidocker.errors import Conflict, InvalidInput, MinidockerError
from minidocker.network import helper, ipam, names
from minidocker.network import reaper as reaper_mod
from minidocker.network.store import (
    DEFAULT_NETWORK,
    PREDEFINED,
    NetworkNotFound,
    NetworkSpec,
    NetworkStore,
    network_doc,
)

if TYPE_CHECKING:
    from minidocker.container.lifecycle import Runtime
    from minidocker.container.state import Container, EndpointSettings
    from minidocker.image.store import Stores

__all__ = [
    "Endpoint",
    "NetworkNotFound",
    "NetworkStore",
    "allocate",
    "attach",
    "connect",
    "create_network",
    "disconnect",
    "is_bridge_mode",
    "release",
    "remove_network",
]

BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
# runconfig.ErrUnsupportedNetworkAndIP / ErrUnsupportedNetworkAndAlias, word for word
ERR_IP = "user specified IP address is supported on user defined networks only"
ERR_ALIAS = "network-scoped alias is supported only for containers in user defined networks"


def is_bridge_mode(mode: str) -> bool:
    """Network modes served by this chapter (everything but none/host/container:<x>)."""
    return mode not in ("none", "host") and not mode.startswith("container:")


def network_name(mode: str) -> str:
    return DEFAULT_NETWORK if mode in ("", "default") else mode


@dataclass
class Endpoint:
    """One container's place on one network (kept in the network's ``Endpoints`` record)."""

    network_id: str
    network_name: str
    container_id: str
    endpoint_id: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    bridge: str
    ifname: str = "eth0"
    veth: str = ""
    sandbox_key: str = ""
    requested_ip: str = ""
    internal: bool = False
    name: str = ""  # the container's name and --network-alias values: names.py puts them in
    aliases: tuple[str, ...] = ()  # the other members' /etc/hosts on user networks

    def record(self) -> dict[str, Any]:
        return {
            "EndpointID": self.endpoint_id,
            "IPAddress": self.ip,
            "IPPrefixLen": self.prefixlen,
            "Gateway": self.gateway,
            "MacAddress": self.mac,
            "IfName": self.ifname,
            "Veth": self.veth,
            "SandboxKey": self.sandbox_key,
            "RequestedIP": self.requested_ip,
            "Name": self.name,
            "Aliases": list(self.aliases),
        }

    @classmethod
    def from_record(cls, net: dict[str, Any], cid: str, r: dict[str, Any]) -> Endpoint:
        return cls(
            network_id=net["Id"],
            network_name=net["Name"],
            container_id=cid,
            endpoint_id=r["EndpointID"],
            ip=r["IPAddress"],
            prefixlen=r["IPPrefixLen"],
            gateway=r["Gateway"],
            mac=r["MacAddress"],
            bridge=bridge_of(net),
            ifname=r.get("IfName") or "eth0",
            veth=r.get("Veth") or "",
            sandbox_key=r.get("SandboxKey") or "",
            requested_ip=r.get("RequestedIP") or "",
            internal=bool(net.get("Internal")),
            name=r.get("Name") or "",
            aliases=tuple(r.get("Aliases") or ()),
        )

    def settings(self) -> EndpointSettings:
        """The ``NetworkSettings.Networks[name]`` entry in config.v2.json."""
        from minidocker.container.state import EndpointSettings

        return EndpointSettings(
            ipam_config={"IPv4Address": self.requested_ip} if self.requested_ip else None,
            aliases=[*self.aliases, self.container_id[:12]] if self.network_name != DEFAULT_NETWORK else None,
            network_id=self.network_id,
            endpoint_id=self.endpoint_id,
            gateway=self.gateway,
            ip_address=self.ip,
            ip_prefix_len=self.prefixlen,
            mac_address=self.mac,
        )


def bridge_of(net: dict[str, Any]) -> str:
    name = (net.get("Options") or {}).get(BRIDGE_NAME_OPT)
    return name or "br-" + net["Id"][:12]


def _subnet_of(net: dict[str, Any]) -> tuple[str, str, str]:
    for cfg in (net.get("IPAM") or {}).get("Config") or []:
        if ":" not in cfg.get("Subnet", ""):
            return cfg["Subnet"], cfg.get("Gateway") or "", cfg.get("IPRange") or ""
    return "", "", ""


def _in_use_subnets(store: NetworkStore, skip_id: str = "") -> list[str]:
    from minidocker.network import netlink

    used = [s for n in store.list() if n["Id"] != skip_id for s in [_subnet_of(n)[0]] if s]
    return used + netlink.host_routes()


def _bring_up(net: dict[str, Any]) -> None:
    """The network's Linux bridge, address and iptables rules (host lock held by the caller)."""
    from minidocker.network import iptables, netlink

    subnet, gateway, _ = _subnet_of(net)
    bridge = bridge_of(net)
    prefix = ipaddress.IPv4Network(subnet).prefixlen
    # the helper makes the bridge (or is still importing pyroute2) while we add the rules
    # (rules may name a bridge before it exists: they match nothing until it does); --trace
    # tells the story in order instead: the bridge, then its rules
    pending: helper.Pending | _Done = helper.submit("ensure_bridge", bridge, gateway, prefix)
    if trace.enabled():
        pending = _Done(pending.result())
    rules = iptables.bridge_rules(bridge, subnet, internal=bool(net.get("Internal")))
    try:
        iptables.apply(rules)
        if not net.get("Internal"):
            netlink.enable_ip_forward()
    except Exception:
        with contextlib.suppress(Exception):
            if pending.result():
                helper.call("delete_link", bridge)
        with contextlib.suppress(Exception):
            iptables.remove(rules, prune_chains=True)
        raise
    try:
        pending.result()
    except Exception:
        with contextlib.suppress(Exception):
            iptables.remove(rules, prune_chains=True)
        raise


class _Done:
    """A :class:`helper.Pending` already collected."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def _take_down(net: dict[str, Any]) -> None:
    """Undo :func:`_bring_up`; our chains go with the last rule in them."""
    from minidocker.network import iptables, netlink

    subnet, _, _ = _subnet_of(net)
    bridge = bridge_of(net)
    pruned = False
    # an RCU grace period in the helper while we wait for the rules' (nftables commits wait too);
    # --trace: the rules, then the bridge, in order
    pending = None if trace.enabled() else helper.submit("delete_link", bridge)
    with contextlib.suppress(MinidockerError):
        rules = iptables.bridge_rules(bridge, subnet, internal=bool(net.get("Internal")))
        pruned = iptables.remove(rules, prune_chains=True)
    if pending is None:
        helper.call("delete_link", bridge)
    else:
        pending.result()
    if pruned:
        netlink.restore_ip_forward()


# -- networks ---------------------------------------------------------------------------------------
def create_network(stores: Stores, spec: NetworkSpec) -> dict[str, Any]:
    """``docker network create``: record, bridge, rules; all or nothing. Returns the record."""
    from minidocker.network import netlink

    name, subnet, gateway, ip_range = spec.name, spec.subnet, spec.gateway, spec.ip_range
    if spec.driver != "bridge":
        raise InvalidInput(f'plugin "{spec.driver}" not found', subject=spec.driver)
    if not name or name in PREDEFINED:
        raise Conflict(f"network with name {name} already exists", subject=name)
    store = NetworkStore(stores.root, stores.lock)
    with stores.lock.held(), netlink.host_lock():
        for n in store.list():
            if n["Name"] == name:
                raise Conflict(f"network with name {name} already exists", subject=name)
        if subnet:
            subnet = str(ipam.parse_subnet(subnet))
            for used in _in_use_subnets(store):
                if ipam.overlaps(subnet, used):
                    raise Conflict(
                        f"Pool overlaps with other one on this address space ({used})", subject=subnet
                    )
        else:
            if gateway or ip_range:
                raise InvalidInput("gateway and ip-range need a subnet (--subnet)", subject=name)
            subnet = ipam.pick_subnet(_in_use_subnets(store))
        gateway = ipam.check_in_subnet(subnet, gateway, "gateway") if gateway else ipam.gateway_for(subnet)
        if ip_range:
            rng = ipam.parse_subnet(ip_range)
            if not rng.subnet_of(ipaddress.IPv4Network(subnet)):
                raise InvalidInput(f"ip-range {ip_range} is not in subnet {subnet}", subject=ip_range)
        doc = network_doc(replace(spec, subnet=subnet, gateway=gateway))
        bridge = bridge_of(doc)
        if len(bridge) > 15:
            raise InvalidInput(f"bridge name {bridge} is longer than 15 characters", subject=bridge)
        if helper.call("link_exists", bridge):
            raise Conflict(f"bridge {bridge} already exists on this host", subject=bridge)
        _bring_up(doc)
        try:
            store.save(doc)
        except BaseException:
            _take_down(doc)
            raise
    return doc


def remove_network(stores: Stores, ref: str) -> dict[str, Any]:
    """``docker network rm``: refused while containers are attached; predefined ones stay."""
    from minidocker.network import netlink

    store = NetworkStore(stores.root, stores.lock)
    with stores.lock.held(), netlink.host_lock():
        net = store.get(ref)
        if net["Name"] in PREDEFINED:
            raise Conflict(f"{net['Name']} is a pre-defined network and cannot be removed", subject=net["Id"])
        store.delete(net)  # raises while endpoints exist
        _take_down(net)
    return net


def inspect_doc(net: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``network inspect`` document: ``Containers`` derived from the endpoint records."""
    doc = {k: v for k, v in net.items() if k != "Endpoints"}
    containers = {}
    for cid, r in sorted((net.get("Endpoints") or {}).items()):
        containers[cid] = {
            "Name": (names or {}).get(cid, ""),
            "EndpointID": r["EndpointID"],
            "MacAddress": r["MacAddress"],
            "IPv4Address": f"{r['IPAddress']}/{r['IPPrefixLen']}",
            "IPv6Address": "",
        }
    doc["Containers"] = containers
    return doc


# -- endpoints --------------------------------------------------------------------------------------
def allocate(
    stores: Stores,
    cid: str,
    mode: str,
    *,
    requested_ip: str = "",
    ifname: str = "eth0",
    name: str = "",
    aliases: Sequence[str] = (),
    sandbox_key: str = "",
) -> Endpoint:
    """Reserve an address for container ``cid`` on the network ``mode`` names (persisted).
    ``name``/``aliases`` are what the other members of a user network will call it.

    The record names the host veth and the ``/run/netns`` entry (``sandbox_key``) before either
    exists, so :func:`attach` writes nothing and :func:`release` finds whatever a failure left."""
    from minidocker.network import netlink

    store = NetworkStore(stores.root, stores.lock)
    with stores.lock.held():
        net = store.get(network_name(mode))
        if net["Driver"] != "bridge":
            raise InvalidInput(f"network {net['Name']} has no addresses to give", subject=net["Id"])
        if net["Name"] == DEFAULT_NETWORK and (requested_ip or aliases):
            raise InvalidInput(ERR_IP if requested_ip else ERR_ALIAS, subject=net["Name"])
        if cid in (net.get("Endpoints") or {}):
            raise Conflict(
                f"endpoint with name {cid[:12]} already exists in network {net['Name']}", subject=cid
            )
        subnet, gateway, ip_range = _subnet_of(net)
        if not subnet:  # the default network's first use: pick a subnet nobody on the host routes
            with netlink.host_lock():
                subnet = ipam.pick_subnet(_in_use_subnets(store, skip_id=net["Id"]))
            gateway = ipam.gateway_for(subnet)
            net["IPAM"]["Config"] = [{"Subnet": subnet, "Gateway": gateway}]
        used = [r["IPAddress"] for r in (net.get("Endpoints") or {}).values()]
        ip = ipam.allocate(
            subnet, gateway=gateway, used=used, requested=requested_ip or None, ip_range=ip_range
        )
        ep = Endpoint(
            network_id=net["Id"],
            network_name=net["Name"],
            container_id=cid,
            endpoint_id=fsutil.random_id(),
            ip=ip,
            prefixlen=ipaddress.IPv4Network(subnet).prefixlen,
            gateway=gateway,
            mac=ipam.mac_for(ip),
            bridge=bridge_of(net),
            ifname=ifname,
            veth=netlink.veth_name(),
            sandbox_key=sandbox_key,
            requested_ip=requested_ip,
            internal=bool(net.get("Internal")),
            name=name.lstrip("/"),
            aliases=tuple(aliases),
        )
        net.setdefault("Endpoints", {})[cid] = ep.record()
        store.save(net)
    trace.emit(lambda: f"ipam: {ip}/{ep.prefixlen} for {cid[:12]} on {net['Name']}")
    return ep


def allocate_all(stores: Stores, c: Container, *, sandbox_key: str) -> list[Endpoint]:
    """Every network container ``c`` is recorded on (``NetworkSettings.Networks``): its network
    mode's first, as ``eth0`` with the sandbox, then those ``network connect`` added (while it
    ran, or while it was stopped: Docker applies them at start) as ``eth1``, ``eth2``… in name
    order, each with the ``--ip``/``--alias`` recorded for it. All or nothing."""
    primary = network_name(c.host_config.network_mode)
    recorded = c.network_settings.networks or {}
    order = [primary, *sorted(n for n in recorded if n != primary)]
    endpoints: list[Endpoint] = []
    try:
        for i, name in enumerate(order):
            settings = recorded.get(name)
            ip = str((settings.ipam_config or {}).get("IPv4Address") or "") if settings else ""
            aliases = [a for a in (settings.aliases or []) if a != c.id[:12]] if settings else []
            endpoints.append(
                allocate(
                    stores,
                    c.id,
                    name,
                    requested_ip=ip,
                    ifname=f"eth{i}",
                    name=c.name,
                    aliases=aliases,
                    sandbox_key=sandbox_key if i == 0 else "",
                )
            )
    except BaseException:
        if endpoints:
            release(stores, c.id)
        raise
    return endpoints


def attach(stores: Stores, ep: Endpoint, pid: int) -> Endpoint:
    """Wire the container (PID ``pid``, not yet running its command) to its network: bridge up
    if needed, the veth pair (``ep.veth``) with ``ep.ifname`` configured inside
    (:func:`netlink.plug`, in the helper process when ``run`` started one), and the netns bound
    at ``ep.sandbox_key`` if the endpoint has one. Nothing is written to the store here."""
    from minidocker.network import netlink

    cable = {
        "ifname": ep.ifname,
        "ip": ep.ip,
        "prefixlen": ep.prefixlen,
        "gateway": ep.gateway,
        "mac": ep.mac,
        "default_route": ep.ifname == "eth0" and not ep.internal,
    }
    # Once our endpoint is recorded its bridge cannot go away (``network rm`` refuses, the default
    # network's last endpoint takes it down only when it is the last): a bridge that is there now
    # has its rules, so the locks are needed only to bring it up. (Not holding them meanwhile
    # matters: this first call may wait for the helper to finish importing pyroute2.)
    if not helper.call("plug", pid, ep.bridge, ep.veth, **cable):
        with stores.lock.held(), netlink.host_lock():
            net = NetworkStore(stores.root, stores.lock).get(ep.network_id)
            if not helper.call("link_exists", ep.bridge):
                _bring_up(net)
        if not helper.call("plug", pid, ep.bridge, ep.veth, **cable):
            raise MinidockerError(f"bridge {ep.bridge} does not exist", subject=ep.bridge)
    if ep.sandbox_key:
        try:
            netlink.bind_netns(pid, ep.sandbox_key.rsplit("/", 1)[-1])
        except Exception:
            with contextlib.suppress(Exception):
                helper.call("delete_link", ep.veth)
            raise
    if ep.network_name != DEFAULT_NETWORK:
        names.refresh(stores, [ep.network_id])
    return ep


def endpoints_of(stores: Stores, cid: str) -> list[Endpoint]:
    store = NetworkStore(stores.root, stores.lock)
    return [
        Endpoint.from_record(n, cid, n["Endpoints"][cid])
        for n in store.list()
        if cid in (n.get("Endpoints") or {})
    ]


def release(stores: Stores, cid: str, *, network_ref: str | None = None) -> list[Endpoint]:
    """Undo allocate/attach for ``cid`` (on every network, or only ``network_ref``). Each address
    is released exactly once: the record is removed under the lock and only its remover cleans up.
    """
    from minidocker.network import netlink

    store = NetworkStore(stores.root, stores.lock)
    if not os.path.isdir(store.dir):  # no network was ever used in this data root
        return []
    removed: list[Endpoint] = []
    reaper: tuple[str, str, bool] | None = None  # the default bridge lingers: (bridge, subnet, internal)
    with stores.lock.held():
        wanted = store.get(network_ref)["Id"] if network_ref else None
        for net in store.list():
            if wanted and net["Id"] != wanted:
                continue
            r = (net.get("Endpoints") or {}).pop(cid, None)
            if r is None:
                continue
            ep = Endpoint.from_record(net, cid, r)
            removed.append(ep)
            deleting = _kernel_release(ep)
            trace.emit(f"ipam: released {ep.ip} of {cid[:12]} on {ep.network_name}")
            if net["Name"] == DEFAULT_NETWORK and not net["Endpoints"]:
                grace = reaper_mod.linger_seconds()
                if grace > 0:  # the bridge lingers; a reaper takes it down unless a run comes
                    if reaper_mod.schedule(stores.root, grace):
                        reaper = (ep.bridge, _subnet_of(net)[0], ep.internal)
                    trace.emit(
                        f"bridge {ep.bridge} unused: it lingers {grace:g} s "
                        f"(${reaper_mod.ENV}) for the next container"
                    )
                else:
                    _finish(deleting)
                    deleting = None
                    with netlink.host_lock():
                        _take_down(net)
                    net["IPAM"]["Config"] = []  # the next first use picks a subnet again
                    reaper_mod.clear_state(stores.root)
            store.save(net)  # (its fsync while the helper deletes the veth)
            _finish(deleting)
        user = [ep.network_id for ep in removed if ep.network_name != DEFAULT_NETWORK]
        if user:
            names.refresh(stores, user, also=[cid])
    if reaper is not None:  # forked without the lock held: the child would share its descriptor
        try:
            pid = reaper_mod.spawn(
                stores.root, reaper[0], reaper[1], internal=reaper[2], trace_on=trace.enabled()
            )
            trace.emit(f"reaper {pid} started for bridge {reaper[0]}")
        except OSError as e:  # no reaper: the next release or `network prune` takes the bridge down
            trace.emit(f"reaper for bridge {reaper[0]} not started: {e}")
    return removed


def prune_default(stores: Stores) -> bool:
    """The default network's bridge down now if no container uses it (a lingering bridge, or
    one whose reaper was killed): ``network prune``'s extra step. True if it was up."""
    from minidocker.network import netlink

    store = NetworkStore(stores.root, stores.lock)
    if not os.path.isdir(store.dir):
        return False
    with stores.lock.held():
        try:
            net = store.get(DEFAULT_NETWORK)
        except NetworkNotFound:
            return False
        if net.get("Endpoints") or not _subnet_of(net)[0]:
            return False
        trace.emit(f"bridge {bridge_of(net)} unused: removed now")
        with netlink.host_lock():
            _take_down(net)
        net["IPAM"]["Config"] = []
        store.save(net)
        reaper_mod.clear_state(stores.root)  # a reaper still waiting finds nothing to do
    return True


def _kernel_release(ep: Endpoint) -> helper.Pending | None:
    """Unbind the netns entry; the veth's deletion (its peer goes with it) is handed to the
    helper: :func:`_finish` collects it."""
    from minidocker.network import netlink

    if ep.sandbox_key:
        netlink.unbind_netns(ep.sandbox_key)
    if not ep.veth:
        return None
    try:
        return helper.submit("delete_link", ep.veth)
    except Exception:  # noqa: BLE001 (never stop a release halfway)
        return None


def _finish(pending: helper.Pending | None) -> None:
    if pending is not None:
        with contextlib.suppress(Exception):  # never stop a release halfway
            pending.result()


# -- network connect / disconnect -------------------------------------------------------------------
ERR_HOST = "container cannot be disconnected from host network or connected to host network"
ERR_NONE = (
    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
)
ERR_SHARED = "container sharing network namespace with another container or host cannot be connected to any other network"


def _check_mode(c: Container, net: dict[str, Any]) -> None:
    mode = c.host_config.network_mode
    if mode == "host" or net["Name"] == "host":
        raise Conflict(ERR_HOST, subject=c.id)
    if mode.startswith("container:"):
        raise Conflict(ERR_SHARED, subject=c.id)
    if mode == "none" or net["Name"] == "none":
        raise Conflict(ERR_NONE, subject=c.id)


def connect(
    rt: Runtime, container_ref: str, network_ref: str, *, ip: str = "", aliases: Sequence[str] = ()
) -> Endpoint | None:
    """``docker network connect``. A running container gets one more interface now (eth1,
    eth2…), recorded in its ``NetworkSettings.Networks``; the other members' /etc/hosts learn its
    name. A created or stopped one only gets the record (IPAMConfig, Aliases, NetworkID), and
    every start wires all its recorded networks (:func:`allocate_all`): returns None then."""
    c = rt.get(container_ref)
    net = NetworkStore(rt.stores.root, rt.stores.lock).get(network_ref)
    _check_mode(c, net)
    name = c.name.lstrip("/")
    if c.id in (net.get("Endpoints") or {}) or (
        not c.state.running and net["Name"] in (c.network_settings.networks or {})
    ):
        raise Conflict(f"endpoint with name {name} already exists in network {net['Name']}", subject=c.id)
    if ip or aliases:
        check_endpoint_options(net["Name"], ip, aliases)
    if not c.state.running or not c.state.pid:
        from minidocker.container.state import EndpointSettings

        def remember(x: Container) -> None:
            x.network_settings.networks = {
                **(x.network_settings.networks or {}),
                net["Name"]: EndpointSettings(
                    ipam_config={"IPv4Address": ip} if ip else None,
                    aliases=list(aliases) or None,
                    network_id=net["Id"],
                ),
            }

        rt.update(c.id, remember)
        trace.emit(lambda: f"recorded {c.id[:12]} on {net['Name']}: wired at its next start")
        return None
    taken = {ep.ifname for ep in endpoints_of(rt.stores, c.id)}
    ifname = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
    ep = allocate(rt.stores, c.id, net["Id"], requested_ip=ip, ifname=ifname, name=name, aliases=aliases)
    try:
        attach(rt.stores, ep, c.state.pid)
    except BaseException:
        release(rt.stores, c.id, network_ref=net["Id"])
        raise
    trace.emit(lambda: f"connected {c.id[:12]} to {net['Name']} as {ifname}")
    if ep.ip and not c.host_config.network_mode.startswith("container:"):
        from minidocker.container.etcfiles import own_record
        from minidocker.network import names

        hostname, domainname = c.config.get("Hostname") or "", c.config.get("Domainname") or ""
        names.add_own_record(rt.stores, c.id, own_record(ep.ip, hostname=hostname, domainname=domainname))

    def record(x: Container) -> None:
        x.network_settings.networks = {**(x.network_settings.networks or {}), net["Name"]: ep.settings()}

    rt.update(c.id, record)
    return ep


def disconnect(rt: Runtime, container_ref: str, network_ref: str, *, force: bool = False) -> None:
    """``docker network disconnect``: the interface goes (its veth with it), the address is
    released, ``NetworkSettings.Networks`` forgets the network, the peers' /etc/hosts the name."""
    c = rt.get(container_ref)
    store = NetworkStore(rt.stores.root, rt.stores.lock)
    try:
        net = store.get(network_ref)
    except NetworkNotFound:
        if not force:
            raise
        net = {"Id": network_ref, "Name": network_ref}
    if c.host_config.network_mode == "host" or net["Name"] == "host":
        raise Conflict(ERR_HOST, subject=c.id)
    recorded = net["Name"] in (c.network_settings.networks or {})
    attached = c.id in (net.get("Endpoints") or {})
    if not recorded and not attached:
        raise Conflict(f"container {c.id} is not connected to network {net['Name']}", subject=c.id)
    if attached:
        release(rt.stores, c.id, network_ref=net["Id"])

    def forget(x: Container) -> None:
        (x.network_settings.networks or {}).pop(net["Name"], None)

    rt.update(c.id, forget)


def check_endpoint_options(mode: str, ip: str, aliases: Sequence[str]) -> None:
    """``--ip``/``--network-alias`` at create: Docker's ``verifyNetworkingConfig`` errors.

    >>> check_endpoint_options("default", "10.0.0.5", [])
    Traceback (most recent call last):
    minidocker.errors.InvalidInput: user specified IP address is supported on user defined networks only
    """
    user = is_bridge_mode(mode) and network_name(mode) != DEFAULT_NETWORK
    if ip and not user:
        raise InvalidInput(ERR_IP, subject=mode)
    if aliases and not user:
        raise InvalidInput(ERR_ALIAS, subject=mode)
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidInput(f"invalid IPv4 address: {ip}", subject=ip) from None
