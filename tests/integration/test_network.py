"""Bridge networks (issue 5, chapter 6): user networks, the default bridge, IPAM, cleanup.

Black box through testinfra's ``host``. Traffic goes only to addresses inside the bridges these
tests create (10.23x.0.0/24 subnets). Every test ends with the host checked: no veth, bridge,
``/run/netns`` entry or iptables rule of this test's data root survives it. The default bridge's
grace period is 0 here (conftest): it goes with its last container; test_network_linger.py covers
the period itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers

pytestmark = pytest.mark.root


def _links(host: Any) -> set[str]:
    out = host.run("ip -o link show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def _netns(host: Any) -> set[str]:
    return set(host.run("ls /run/netns 2>/dev/null").stdout.split())


def kernel_objects(md: Any, host: Any) -> tuple[set[str], set[str]]:
    """(links, /run/netns names) this data root's networks use now: bridges, veths, sandboxes."""
    links, sandboxes = set(), set()
    for ref in md.ok("network", "ls", "-q").split():
        doc = json.loads(md.ok("network", "inspect", ref))[0]
        if doc["Driver"] != "bridge":
            continue
        links.add(doc["Options"].get("com.docker.network.bridge.name") or f"br-{doc['Id'][:12]}")
        store = f"{md.data_root}/network/minidocker/{doc['Id']}.json"
        record = json.loads(host.file(store).content_string)
        for ep in record["Endpoints"].values():
            links.add(ep["Veth"])
            sandboxes.add(ep["SandboxKey"].rsplit("/", 1)[-1])
    return links - {""}, sandboxes - {""}


def assert_gone(host: Any, links: set[str], sandboxes: set[str]) -> None:
    assert not links & _links(host), "links left behind"
    assert not sandboxes & _netns(host), "/run/netns entries left behind"
    rules = host.run("iptables-save").stdout
    assert not [link for link in links if link in rules], "iptables rules left behind"


@pytest.fixture
def net(md: Any, host: Any, data_root: str) -> Iterator[Any]:
    """``md`` with busybox; afterwards everything is removed and the host must be clean of every
    bridge, veth, netns entry and rule this data root had."""
    md.ok("buildbase")
    seen: list[tuple[set[str], set[str]]] = []
    md.snapshot = lambda: seen.append(kernel_objects(md, host))  # tests call it while things run
    yield md
    seen.append(kernel_objects(md, host))
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    md("network", "prune", "-f")
    for links, sandboxes in seen:
        assert_gone(host, links, sandboxes)
    assert helpers.mounts_under(host, data_root) == []


def _ip(md: Any, name: str, network: str) -> str:
    return md.ok("inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}", name).strip()


def test_user_network_containers_reach_each_other_and_the_host(net: Any, host: Any) -> None:
    nid = net.ok("network", "create", "--subnet", "10.231.0.0/24", "--label", "t=1", "tn1").strip()
    bridge = f"br-{nid[:12]}"
    assert host.interface(bridge).exists
    assert "10.231.0.1" in host.interface(bridge).addresses
    ls = net.ok("network", "ls")
    assert ls.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert f"{nid[:12]}   tn1       bridge    local" in ls
    net.ok("run", "-d", "--name", "one", "--network", "tn1", "busybox", "sleep", "60")
    net.ok("run", "-d", "--name", "two", "--network", "tn1", "busybox", "sleep", "60")
    one, two = _ip(net, "one", "tn1"), _ip(net, "two", "tn1")
    assert {one, two} == {"10.231.0.2", "10.231.0.3"}
    # container to container, by IP, across the bridge
    assert "1 packets received" in net.ok("exec", "one", "ping", "-c1", "-W2", two)
    # host to container (the host has the gateway address on the bridge)
    assert host.run(f"busybox ping -c1 -W2 {one}").rc == 0
    # eth0 inside: address, Docker's MAC, default route via the gateway
    addr = net.ok("exec", "two", "ip", "addr", "show", "eth0")
    assert f"inet {two}/24" in addr and "02:42:0a:e7:00:0" in addr
    assert "default via 10.231.0.1 dev eth0" in net.ok("exec", "two", "ip", "route")
    # /etc/hosts has the container's own address and hostname
    cfg = json.loads(net.ok("inspect", "two"))[0]
    hosts = net.ok("exec", "two", "cat", "/etc/hosts")
    assert f"{two}\t{cfg['Config']['Hostname']}" in hosts
    # the netns is visible to `ip netns` and the sandbox key says where
    key = cfg["NetworkSettings"]["SandboxKey"]
    assert key.startswith("/run/netns/") and key.rsplit("/", 1)[1] in host.run("ip netns list").stdout
    assert "eth0" in host.run(f"ip netns exec {key.rsplit('/', 1)[1]} ip -o link").stdout
    # network inspect lists both
    doc = json.loads(net.ok("network", "inspect", "tn1"))[0]
    assert sorted(c["Name"] for c in doc["Containers"].values()) == ["one", "two"]
    assert doc["Labels"] == {"t": "1"}
    # rm refused while attached, nothing changed
    r = net.fail("network", "rm", "tn1", rc=125)
    assert "has active endpoints" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert host.interface(bridge).exists
    net.snapshot()
    net.ok("rm", "-f", "one", "two")
    assert key.rsplit("/", 1)[1] not in host.run("ip netns list").stdout
    assert json.loads(net.ok("network", "inspect", "tn1"))[0]["Containers"] == {}
    assert net.ok("network", "rm", "tn1").strip() == "tn1"
    assert not host.interface(bridge).exists
    assert "br-" + nid[:12] not in host.run("iptables-save").stdout


def test_network_create_errors_leave_nothing(net: Any, host: Any) -> None:
    net.ok("network", "create", "--subnet", "10.232.0.0/24", "tn2")
    before = kernel_objects(net, host)
    r = net.fail("network", "create", "--subnet", "10.232.0.128/25", "tn3", rc=125)
    assert "overlaps" in r.stderr
    r = net.fail("network", "create", "--subnet", "10.233.0.0/24", "tn2", rc=125)
    assert "already exists" in r.stderr
    r = net.fail("network", "create", "--subnet", "10.233.0.1/24", "tn4", rc=125)
    assert "invalid subnet" in r.stderr
    r = net.fail("network", "rm", "nosuchnet", rc=125)
    assert r.stderr.strip() == "Error: No such network: nosuchnet"  # the docker CLI's words
    r = net.fail("run", "--rm", "--network", "nosuchnet", "busybox", "true", rc=125)
    assert "network nosuchnet not found" in r.stderr
    assert kernel_objects(net, host) == before
    assert [line.split()[1] for line in net.ok("network", "ls").splitlines()[1:]] == [
        "bridge",
        "host",
        "none",
        "tn2",
    ]
    assert "Deleted Networks:\ntn2" in net.ok("network", "prune", "-f")


def test_default_bridge_up_with_containers_and_gone_after(net: Any, host: Any) -> None:
    bridge = json.loads(net.ok("network", "inspect", "bridge"))[0]["Options"][
        "com.docker.network.bridge.name"
    ]
    assert not host.interface(bridge).exists
    out = net.ok("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    assert "eth0" in out and ("inet 172." in out or "inet 192.168." in out)
    assert not host.interface(bridge).exists  # the last container took it down
    cid = net.ok("run", "-d", "busybox", "sleep", "60").strip()
    assert host.interface(bridge).exists
    net.snapshot()
    cfg = json.loads(net.ok("inspect", cid))[0]
    ip = cfg["NetworkSettings"]["IPAddress"]
    assert ip and cfg["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ip
    assert cfg["NetworkSettings"]["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    assert host.run(f"busybox ping -c1 -W2 {ip}").rc == 0
    assert f"-A MINIDOCKER-FORWARD -i {bridge} ! -o {bridge} -j ACCEPT" in host.run("iptables-save").stdout
    net.ok("stop", "-t", "0", cid)
    stopped = json.loads(net.ok("inspect", cid))[0]["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["SandboxKey"] == ""
    assert not host.interface(bridge).exists
    assert bridge not in host.run("iptables-save").stdout
    # restart: wired again
    net.ok("start", cid)
    assert json.loads(net.ok("inspect", cid))[0]["NetworkSettings"]["IPAddress"]
    net.ok("rm", "-f", cid)
    assert not host.interface(bridge).exists


def test_concurrent_runs_get_distinct_addresses(net: Any, host: Any) -> None:
    nid = net.ok("network", "create", "--subnet", "10.234.0.0/24", "tn5").strip()
    cmd = net.command("run", "-d", "--network", "tn5", "busybox", "sleep", "60")
    r = host.run(f"for i in $(seq 10); do {cmd} & done; wait")
    assert r.rc == 0
    ids = net.ok("ps", "-q", "--no-trunc").split()
    assert len(ids) == 10
    ips = [_ip(net, cid, "tn5") for cid in ids]
    assert len(set(ips)) == 10 and all(ip.startswith("10.234.0.") for ip in ips)
    doc = json.loads(net.ok("network", "inspect", "tn5"))[0]
    assert len(doc["Containers"]) == 10
    links, sandboxes = kernel_objects(net, host)
    assert len([link for link in links if link.startswith("veth")]) == 10 and len(sandboxes) == 10, (
        links,
        sandboxes,
    )
    host.run(f"{net.command('rm', '-f', *ids)}")
    assert_gone(host, links - {f"br-{nid[:12]}"}, sandboxes)
    assert json.loads(net.ok("network", "inspect", "tn5"))[0]["Containers"] == {}


def test_none_and_host_modes_untouched(net: Any, host: Any) -> None:
    out = net.ok("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert "eth0" not in out and "lo" in out
    out = net.ok("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert "eth0" in out  # the host's own links
    bridge = json.loads(net.ok("network", "inspect", "bridge"))[0]["Options"][
        "com.docker.network.bridge.name"
    ]
    assert not host.interface(bridge).exists  # neither mode brought the default bridge up


def _programs(net: Any, host: Any, *args: str) -> list[str]:
    """The programs ``minidocker ARGS`` executes (strace), minidocker itself left out."""
    log = f"{net.data_root}/execve.log"
    r = host.run(f"strace -f -qq -e trace=execve -e signal=none -o {log} {net.command(*args)}")
    assert r.rc == 0, r.stderr
    lines = host.file(log).content_string.splitlines()
    host.run(f"rm -f {log}")
    found = [
        ln.split('execve("', 1)[1].split('"', 1)[0] for ln in lines if 'execve("' in ln and "ENOENT" not in ln
    ]
    return found[1:]


def test_no_process_is_spawned_per_container_on_a_bridge_that_is_up(net: Any, host: Any) -> None:
    """Issue 5, speed: with the bridge up, a container's network is netlink only (no `ip`, no
    `iptables`); the only program executed is the container's command. Bringing the default
    bridge's rules up and down is one iptables-save and one iptables-restore each way."""
    if host.run("command -v strace").rc != 0:
        pytest.skip("strace is not installed")
    first = _programs(net, host, "run", "--rm", "busybox", "true")
    assert [os.path.basename(p) for p in first] == [
        "iptables-save", "iptables-restore", "true", "iptables-save", "iptables-restore"
    ], first  # fmt: skip
    net.ok("run", "-d", "--name", "keeper", "busybox", "sleep", "60")  # keeps the default bridge up
    assert _programs(net, host, "run", "--rm", "busybox", "true") == ["/bin/true"]
