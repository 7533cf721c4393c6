"""Network extras (issue 5): ``--ip``, names on user networks, ``network connect``/``disconnect``.

Black box through testinfra's ``host``. Traffic only between containers on the bridges these
tests create (10.241-243.0.0/24). The fixture checks the host afterwards: no veth, bridge,
``/run/netns`` entry or iptables rule of this data root survives a test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.test_network import assert_gone, kernel_objects

pytestmark = pytest.mark.root


@pytest.fixture
def nx(md: Any, host: Any, data_root: str) -> Iterator[Any]:
    md.ok("buildbase")
    seen: list[tuple[set[str], set[str]]] = []
    md.snapshot = lambda: seen.append(kernel_objects(md, host))
    yield md
    seen.append(kernel_objects(md, host))
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    md("network", "prune", "-f")
    for links, sandboxes in seen:
        assert_gone(host, links, sandboxes)
    assert helpers.mounts_under(host, data_root) == []


def _networks(md: Any, name: str) -> dict[str, Any]:
    return json.loads(md.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", name))  # type: ignore[no-any-return]


def _addrs(md: Any, name: str) -> dict[str, str]:
    """{ifname: ipv4/prefix} inside the container."""
    out = md.ok("exec", name, "ip", "-o", "-4", "addr", "show")
    return {line.split()[1]: line.split()[3] for line in out.splitlines()}


def test_ip_on_a_user_network_recorded_like_docker(nx: Any, host: Any) -> None:
    nx.ok("network", "create", "--subnet", "10.241.0.0/24", "xip")
    nx.ok("run", "-d", "--name", "fixed", "--network", "xip", "--ip", "10.241.0.77", "busybox", "sleep", "60")
    ep = _networks(nx, "fixed")["xip"]
    assert ep["IPAMConfig"] == {"IPv4Address": "10.241.0.77"}
    assert ep["IPAddress"] == "10.241.0.77"
    assert _addrs(nx, "fixed")["eth0"] == "10.241.0.77/24"
    nx.snapshot()

    # only user-defined networks take --ip (Docker's words), checked at create
    for mode in ("default", "bridge", "none", "host"):
        r = nx.fail("run", "--rm", "--network", mode, "--ip", "10.241.0.78", "busybox", "true", rc=125)
        assert "user specified IP address is supported on user defined networks only" in r.stderr
    # an address in use: 125 at start, the container stays created, nothing wired for it
    r = nx.fail(
        "run", "--name", "clash", "--network", "xip", "--ip", "10.241.0.77", "busybox", "true", rc=125
    )
    assert "Address already in use" in r.stderr
    assert nx.ok("inspect", "-f", "{{.State.Status}}", "clash").strip() == "created"
    doc = json.loads(nx.ok("network", "inspect", "xip"))[0]
    assert [c["IPv4Address"] for c in doc["Containers"].values()] == ["10.241.0.77/24"]


def test_containers_on_a_user_network_resolve_each_other_by_name(nx: Any, host: Any) -> None:
    nx.ok("network", "create", "--subnet", "10.242.0.0/24", "xnames")
    nx.ok(
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        "xnames",
        "--network-alias",
        "db",
        "busybox",
        "sleep",
        "60",
    )
    nx.ok("run", "-d", "--name", "beta", "--network", "xnames", "busybox", "sleep", "60")
    nx.snapshot()
    assert "1 packets received" in nx.ok("exec", "alpha", "ping", "-c1", "-W2", "beta")
    assert "1 packets received" in nx.ok("exec", "beta", "ping", "-c1", "-W2", "alpha")
    assert "1 packets received" in nx.ok("exec", "beta", "ping", "-c1", "-W2", "db")
    assert _networks(nx, "alpha")["xnames"]["Aliases"][0] == "db"

    # the default bridge has no names, as in Docker
    nx.ok("run", "-d", "--name", "gamma", "busybox", "sleep", "60")
    assert "alpha" not in nx.ok("exec", "gamma", "cat", "/etc/hosts")

    # a member leaves: the others' files (bind mounts: same inode, new content) forget it
    nx.ok("rm", "-f", "beta")
    hosts = nx.ok("exec", "alpha", "cat", "/etc/hosts")
    assert "beta" not in hosts
    assert nx("exec", "alpha", "ping", "-c1", "-W1", "beta").rc != 0


def test_network_connect_and_disconnect(nx: Any, host: Any) -> None:
    nx.ok("network", "create", "--subnet", "10.243.0.0/24", "xfront")
    nx.ok("network", "create", "--subnet", "10.243.1.0/24", "xback")
    nx.ok("run", "-d", "--name", "app", "--network", "xfront", "busybox", "sleep", "60")
    nx.ok("run", "-d", "--name", "store", "--network", "xback", "busybox", "sleep", "60")
    assert nx("exec", "app", "ping", "-c1", "-W1", "store").rc != 0

    r = nx.ok("network", "connect", "--alias", "api", "xback", "app")
    assert r == ""
    nx.snapshot()
    addrs = _addrs(nx, "app")
    assert addrs["eth0"].startswith("10.243.0.") and addrs["eth1"].startswith("10.243.1.")
    nets = _networks(nx, "app")
    assert sorted(nets) == ["xback", "xfront"]
    assert nets["xback"]["IPAddress"] == addrs["eth1"].split("/")[0]
    assert "1 packets received" in nx.ok("exec", "app", "ping", "-c1", "-W2", "store")
    assert "1 packets received" in nx.ok("exec", "store", "ping", "-c1", "-W2", "api")
    # eth0 keeps the default route
    assert "default via 10.243.0.1 dev eth0" in nx.ok("exec", "app", "ip", "route")
    # its own hosts file gains "<new address>\t<hostname>" above the peers (libnetwork's
    # updateHostsFile at join), and keeps it after a disconnect, as Docker's does
    own = f"{addrs['eth1'].split('/')[0]}\t{nx.ok('inspect', '-f', '{{.Config.Hostname}}', 'app').strip()}\n"
    hosts = nx.ok("exec", "app", "cat", "/etc/hosts")
    assert own in hosts and hosts.index(own) < hosts.index("# minidocker")

    r = nx.fail("network", "connect", "xback", "app", rc=125)
    assert "endpoint with name app already exists in network xback" in r.stderr
    nx.ok("run", "-d", "--name", "loner", "--network", "none", "busybox", "sleep", "60")
    r = nx.fail("network", "connect", "xback", "loner", rc=125)
    assert "private (none) mode" in r.stderr
    r = nx.fail("network", "connect", "nosuchnet", "app", rc=125)
    assert "nosuchnet" in r.stderr

    nx.ok("network", "disconnect", "xback", "app")
    assert "eth1" not in _addrs(nx, "app")
    assert sorted(_networks(nx, "app")) == ["xfront"]
    assert "api" not in nx.ok("exec", "store", "cat", "/etc/hosts")
    assert own in nx.ok("exec", "app", "cat", "/etc/hosts")
    r = nx.fail("network", "disconnect", "xback", "app", rc=125)
    assert "is not connected to network xback" in r.stderr
    links, _ = kernel_objects(nx, host)
    record = json.loads(nx.ok("network", "inspect", "xback"))[0]
    assert len(record["Containers"]) == 1  # only store
    assert len([link for link in links if link.startswith("veth")]) == 2  # app's eth0, store's (loner: none)


def test_connect_a_stopped_container_applies_at_start_and_survives_restarts(nx: Any, host: Any) -> None:
    """Docker records ``network connect`` of a created/stopped container in its NetworkSettings
    and wires it at start; every network (with its --ip and aliases) is kept across restarts."""
    nx.ok("network", "create", "--subnet", "10.244.0.0/24", "xone")
    nx.ok("network", "create", "--subnet", "10.244.1.0/24", "xtwo")
    nx.ok(
        "create", "--name", "later", "--network", "xone", "--network-alias", "web", "busybox", "sleep", "60"
    )
    assert nx.ok("network", "connect", "--ip", "10.244.1.50", "--alias", "db", "xtwo", "later") == ""
    nets = _networks(nx, "later")
    assert sorted(nets) == ["xone", "xtwo"]
    assert nets["xtwo"]["IPAMConfig"] == {"IPv4Address": "10.244.1.50"}
    assert nets["xtwo"]["IPAddress"] == ""  # recorded, not wired: nothing is running
    assert json.loads(nx.ok("network", "inspect", "xtwo"))[0]["Containers"] == {}
    r = nx.fail("network", "connect", "xtwo", "later", rc=125)
    assert "already exists in network xtwo" in r.stderr

    nx.ok("start", "later")
    nx.snapshot()
    assert _addrs(nx, "later") == {"lo": "127.0.0.1/8", "eth0": "10.244.0.2/24", "eth1": "10.244.1.50/24"}
    nx.ok("run", "-d", "--name", "peer", "--network", "xtwo", "busybox", "sleep", "60")
    assert "1 packets received" in nx.ok("exec", "peer", "ping", "-c1", "-W2", "db")

    for restart in (("restart", "-t", "0", "later"), ("stop", "-t", "0", "later")):
        nx.ok(*restart)
        if restart[0] == "stop":
            stopped = _networks(nx, "later")
            assert sorted(stopped) == ["xone", "xtwo"]
            assert stopped["xtwo"]["IPAMConfig"] == {"IPv4Address": "10.244.1.50"}
            assert "db" in stopped["xtwo"]["Aliases"] and "web" in stopped["xone"]["Aliases"]
            nx.ok("start", "later")
        assert _addrs(nx, "later")["eth1"] == "10.244.1.50/24"
        assert sorted(_networks(nx, "later")) == ["xone", "xtwo"]
        assert "1 packets received" in nx.ok("exec", "peer", "ping", "-c1", "-W2", "db")
        nx.snapshot()

    # disconnect while stopped: the record goes, the next start wires xone only
    nx.ok("stop", "-t", "0", "later")
    nx.ok("network", "disconnect", "xtwo", "later")
    nx.ok("start", "later")
    assert sorted(_addrs(nx, "later")) == ["eth0", "lo"]
    assert sorted(_networks(nx, "later")) == ["xone"]


def test_ip_netns_add_after_a_container_does_not_strand_its_netns(nx: Any, host: Any) -> None:
    """``ip netns add`` bind-mounts /run/netns over itself the first time; our entries survive it.

    Before minidocker made /run/netns a shared mount point itself (as iproute2 does), the
    self-bind covered the container's nsfs entry: ``rm -f`` could not unmount it and the netns,
    its veth and rules outlived the container.
    """
    # start from a /run/netns that is not a mount point yet (plain umount: refused while busy)
    helpers.run(host, "umount /run/netns 2>/dev/null")
    nx.ok("run", "-d", "--name", "nsx", "busybox", "sleep", "60")
    sandbox = nx.ok("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "nsx").strip()
    assert host.file(sandbox).exists
    name = "mdtest-nsx"
    helpers.check(host, f"ip netns add {name}")
    try:
        nx.ok("rm", "-f", "nsx")
        assert not host.file(sandbox).exists
        assert sandbox not in helpers.check(host, "cat /proc/self/mounts")
    finally:
        helpers.run(host, f"ip netns del {name}")
