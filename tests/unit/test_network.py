"""Chapter 6 logic without root: IPAM, MAC derivation, iptables rule building, the network store."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from minidocker import network
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.fsutil import DataRootLock
from minidocker.network import ipam, iptables
from minidocker.network.store import NetworkSpec, NetworkStore, default_bridge_name, network_doc


# -- IPAM ------------------------------------------------------------------------------------------
def test_gateway_is_the_first_address() -> None:
    assert ipam.gateway_for("172.18.0.0/16") == "172.18.0.1"
    assert ipam.gateway_for("10.1.2.0/24") == "10.1.2.1"


def test_allocate_lowest_free_skipping_gateway_and_used() -> None:
    assert ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[]) == "10.0.0.2"
    assert ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=["10.0.0.2", "10.0.0.4"]) == "10.0.0.3"
    # a gateway elsewhere in the subnet frees .1
    assert ipam.allocate("10.0.0.0/24", gateway="10.0.0.254", used=[]) == "10.0.0.1"


def test_allocate_requested_and_conflicts() -> None:
    assert ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[], requested="10.0.0.77") == "10.0.0.77"
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=["10.0.0.77"], requested="10.0.0.77")
    with pytest.raises(Conflict):
        ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[], requested="10.0.0.1")
    with pytest.raises(InvalidInput):
        ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[], requested="10.0.1.5")
    with pytest.raises(InvalidInput):
        ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[], requested="10.0.0.255")


def test_allocate_exhausted_and_ip_range() -> None:
    used = ["10.0.0.2"]
    with pytest.raises(Conflict, match="no available"):
        ipam.allocate("10.0.0.0/30", gateway="10.0.0.1", used=used)
    got = ipam.allocate("10.0.0.0/24", gateway="10.0.0.1", used=[], ip_range="10.0.0.128/25")
    assert got == "10.0.0.129"


def test_mac_from_ip_like_docker() -> None:
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert ipam.mac_for("10.255.1.200") == "02:42:0a:ff:01:c8"


def test_subnets() -> None:
    assert ipam.overlaps("10.0.0.0/16", "10.0.5.0/24")
    assert not ipam.overlaps("10.0.0.0/24", "10.0.1.0/24")
    assert ipam.pick_subnet([]) == "172.18.0.0/16"
    assert ipam.pick_subnet(["172.18.0.0/16", "172.19.5.0/24"]) == "172.20.0.0/16"
    with pytest.raises(InvalidInput):
        ipam.parse_subnet("10.0.0.1/24")  # host bits set
    with pytest.raises(InvalidInput):
        ipam.parse_subnet("nonsense")


# -- iptables rules --------------------------------------------------------------------------------
def test_bridge_rules_in_our_chains() -> None:
    rules = [str(r) for r in iptables.bridge_rules("br0", "10.1.0.0/24")]
    assert rules == [
        "-t filter -A MINIDOCKER-FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-t filter -A MINIDOCKER-FORWARD -i br0 ! -o br0 -j ACCEPT",
        "-t filter -A MINIDOCKER-FORWARD -i br0 -o br0 -j ACCEPT",
        "-t nat -A MINIDOCKER -i br0 -j RETURN",
        "-t nat -A MINIDOCKER-POSTROUTING -s 10.1.0.0/24 ! -o br0 -j MASQUERADE",
    ]
    internal = [str(r) for r in iptables.bridge_rules("br0", "10.1.0.0/24", internal=True)]
    assert not any("MASQUERADE" in r for r in internal)
    assert "-t filter -A MINIDOCKER-FORWARD -i br0 ! -o br0 -j DROP" in internal
    assert all(chain.startswith("MINIDOCKER") for _, chain, _, _ in iptables.JUMPS)


# -- store -----------------------------------------------------------------------------------------
def _stores(tmp_path: object) -> SimpleNamespace:
    root = str(tmp_path)
    return SimpleNamespace(root=root, lock=DataRootLock(root))


def test_default_bridge_name() -> None:
    assert default_bridge_name("/var/lib/minidocker") == "minidocker0"
    other = default_bridge_name("/tmp/x/data")
    assert other.startswith("mdbr") and len(other) <= 15 and other != default_bridge_name("/tmp/y/data")


def test_store_predefined_lookup_and_delete(tmp_path: object) -> None:
    st = _stores(tmp_path)
    store = NetworkStore(st.root, st.lock)
    assert sorted(n["Name"] for n in store.list()) == ["bridge", "host", "none"]
    assert store.get("none")["Driver"] == "null"
    bridge = store.get("bridge")
    assert bridge["Options"]["com.docker.network.bridge.name"] == default_bridge_name(st.root)
    assert store.get(bridge["Id"][:8])["Name"] == "bridge"
    with pytest.raises(NotFound, match="network nope not found"):
        store.get("nope")
    doc = network_doc(NetworkSpec("web", subnet="10.9.0.0/24", gateway="10.9.0.1"))
    doc["Endpoints"] = {"c" * 64: {"IPAddress": "10.9.0.2"}}
    store.save(doc)
    with pytest.raises(Conflict, match="has active endpoints"):
        store.delete(doc)
    doc["Endpoints"] = {}
    store.delete(doc)
    assert not os.path.exists(os.path.join(store.dir, doc["Id"] + ".json"))


def test_allocate_and_release_persist_exactly_once(tmp_path: object) -> None:
    st = _stores(tmp_path)
    store = NetworkStore(st.root, st.lock)
    doc = network_doc(NetworkSpec("web", subnet="10.9.0.0/24", gateway="10.9.0.1"))
    store.save(doc)
    a = network.allocate(st, "a" * 64, "web")  # type: ignore[arg-type]
    b = network.allocate(st, "b" * 64, "web", requested_ip="10.9.0.50")  # type: ignore[arg-type]
    assert (a.ip, a.gateway, a.prefixlen, a.mac) == ("10.9.0.2", "10.9.0.1", 24, "02:42:0a:09:00:02")
    assert b.ip == "10.9.0.50" and b.settings().ipam_config == {"IPv4Address": "10.9.0.50"}
    assert a.bridge == "br-" + doc["Id"][:12]
    with pytest.raises(Conflict):
        network.allocate(st, "a" * 64, "web")  # type: ignore[arg-type]
    with open(os.path.join(store.dir, doc["Id"] + ".json")) as f:
        on_disk = json.load(f)
    assert sorted(r["IPAddress"] for r in on_disk["Endpoints"].values()) == ["10.9.0.2", "10.9.0.50"]
    inspected = network.inspect_doc(on_disk, {"a" * 64: "one"})
    assert inspected["Containers"]["a" * 64]["IPv4Address"] == "10.9.0.2/24"
    assert inspected["Containers"]["a" * 64]["Name"] == "one" and "Endpoints" not in inspected
    assert [e.ip for e in network.release(st, "a" * 64)] == ["10.9.0.2"]  # type: ignore[arg-type]
    assert network.release(st, "a" * 64) == []  # type: ignore[arg-type]
    # the freed address is handed out again
    assert network.allocate(st, "c" * 64, "web").ip == "10.9.0.2"  # type: ignore[arg-type]


def test_is_bridge_mode() -> None:
    assert network.is_bridge_mode("default") and network.is_bridge_mode("mynet")
    assert not any(network.is_bridge_mode(m) for m in ("none", "host", "container:abc"))
