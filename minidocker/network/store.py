"""Networks of a data root: one JSON file per network under ``<root>/network/minidocker/``.

Docker keeps networks and endpoints in libnetwork's BoltDB file ``network/files/local-kv.db``
(docker-layout.md §10); we neither read nor write that file. Our records are the ``docker network
inspect`` document of the network plus an ``Endpoints`` map (container id → its address, MAC, host
veth and sandbox key), which is the IPAM allocation table too: an address is taken exactly while
an endpoint record holds it. Every change is a read-modify-write under the data-root lock, written
atomically (temp file, fsync, rename)::

    store = NetworkStore(stores.root, stores.lock)
    net = store.create("web", subnet="10.77.0.0/24")
    store.get("web")["IPAM"]["Config"]      # [{'Subnet': '10.77.0.0/24', 'Gateway': '10.77.0.1'}]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from minidocker import fsutil, trace
from minidocker.errors import Conflict, NotFound
from minidocker.fsutil import DataRootLock

DEFAULT_NETWORK = "bridge"
PREDEFINED = ("bridge", "host", "none")
DEFAULT_DATA_ROOT = "/var/lib/minidocker"


class NetworkNotFound(NotFound):
    """``network x not found`` (the docker CLI exits 1 for network verbs)."""


def default_bridge_name(root: str) -> str:
    """``minidocker0`` for the default data root. Other data roots (tests, labs) get their own
    bridge, ``mdbr`` + 10 hex of the root's hash, so two runtimes on one host never share one."""
    if os.path.abspath(root) == DEFAULT_DATA_ROOT:
        return "minidocker0"
    return "mdbr" + hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:10]


@dataclass
class NetworkSpec:
    """A network as ``docker network create`` asks for it (its flags). ``create_network`` checks
    it and fills the blanks (a free subnet, the gateway); :func:`network_doc` records it."""

    name: str
    driver: str = "bridge"
    subnet: str = ""  # CIDR; "" = the next free one of the default pools
    gateway: str = ""  # "" = the subnet's first address
    ip_range: str = ""  # containers' addresses come from this part of the subnet
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # -o, e.g. com.docker.network.bridge.name


def network_doc(spec: NetworkSpec) -> dict[str, Any]:
    """A ``docker network inspect`` document (types.NetworkResource) for a new network.

    >>> network_doc(NetworkSpec("web", subnet="10.9.0.0/24", gateway="10.9.0.1"))["IPAM"]["Config"]
    [{'Subnet': '10.9.0.0/24', 'Gateway': '10.9.0.1'}]
    """
    config: list[dict[str, str]] = []
    if spec.subnet:
        entry = {"Subnet": spec.subnet, "Gateway": spec.gateway}
        if spec.ip_range:
            entry["IPRange"] = spec.ip_range
        config.append(entry)
    return {
        "Name": spec.name,
        "Id": fsutil.random_id(),
        "Created": _now(),
        "Scope": "local",
        "Driver": spec.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if spec.name in PREDEFINED else {}, "Config": config},
        "Internal": spec.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": dict(spec.options),
        "Labels": dict(spec.labels),
        "Endpoints": {},
    }


def _now() -> str:
    from minidocker.container.state import now_rfc3339

    return now_rfc3339()


class NetworkStore:
    def __init__(self, root: str, lock: DataRootLock) -> None:
        self.root = root
        self.lock = lock
        self.dir = os.path.join(root, "network", "minidocker")

    def _path(self, network_id: str) -> str:
        return os.path.join(self.dir, f"{network_id}.json")

    def _read_all(self) -> list[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(".json"):
                try:
                    with open(os.path.join(self.dir, n), "rb") as f:
                        out.append(json.load(f))
                except FileNotFoundError:
                    continue
        return out

    def ensure_predefined(self) -> None:
        """``bridge``, ``host`` and ``none`` exist in every data root (dockerd makes them at start).
        The ``bridge`` network gets its subnet when its Linux bridge is first brought up."""
        with self.lock.held():
            have = {n["Name"] for n in self._read_all()}
            for name in PREDEFINED:
                if name in have:
                    continue
                options = {}
                if name == DEFAULT_NETWORK:
                    options = {
                        "com.docker.network.bridge.default_bridge": "true",
                        "com.docker.network.bridge.enable_icc": "true",
                        "com.docker.network.bridge.enable_ip_masquerade": "true",
                        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                        "com.docker.network.bridge.name": default_bridge_name(self.root),
                        "com.docker.network.driver.mtu": "1500",
                    }
                driver = name if name != "none" else "null"
                self.save(network_doc(NetworkSpec(name, driver=driver, options=options)))

    def list(self) -> list[dict[str, Any]]:
        self.ensure_predefined()
        return self._read_all()

    def get(self, ref: str) -> dict[str, Any]:
        """By exact name, full id, or unique id prefix (Docker's order)."""
        nets = self.list()
        for n in nets:
            if n["Name"] == ref or n["Id"] == ref:
                return n
        matches = [n for n in nets if ref and n["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NetworkNotFound(f"network {ref} not found", subject=ref)

    def save(self, doc: dict[str, Any]) -> None:
        os.makedirs(self.dir, 0o700, exist_ok=True)
        # atomic_write narrates the write itself ("write <path> (<n> bytes)")
        fsutil.atomic_write(self._path(doc["Id"]), json.dumps(doc, indent=1).encode(), 0o600)

    def delete(self, doc: dict[str, Any]) -> None:
        if doc.get("Endpoints"):
            raise Conflict(
                f"error while removing network: network {doc['Name']} id {doc['Id']} has active endpoints",
                subject=doc["Id"],
            )
        trace.emit(lambda: f"unlink {self._path(doc['Id'])}")
        os.unlink(self._path(doc["Id"]))
