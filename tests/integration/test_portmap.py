"""Port mapping (issue 5, chapter 7): ``run -p/-P``, ``port``, ``ps`` PORTS, ``portmap forward``.

Black box through testinfra's ``host``. Traffic goes only to 127.0.0.1, to the containers these
tests start and to the gateway of the bridge they bring up. Every test ends with the host
checked: no DNAT/ACCEPT rule for the test's host ports, no proxy process, no veth of its
containers (the ``pm`` fixture).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.test_network import assert_gone, kernel_objects

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo page-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(host: Any, url: str) -> str:
    """The page at ``url`` once it answers (httpd starts right after `run -d` returns)."""
    cmd = f"for i in $(seq 100); do wget -T 2 -qO- {shlex.quote(url)} && exit 0; sleep 0.1; done; exit 1"
    return helpers.check(host, cmd)


def rules_for(host: Any, *ports: int) -> list[str]:
    rules = host.run("iptables-save").stdout.splitlines()
    return [r for r in rules if "MINIDOCKER" in r and any(f"--dport {p} " in r + " " for p in ports)]


def proxies(host: Any, data_root: str) -> list[str]:
    """Live relays of this data root (a zombie waiting for init to reap it holds no socket any
    more; a relay's command line is the CLI's that forked its monitor, which names the data root:
    other engineers' relays on the same host are not ours to count)."""
    out = host.run("pgrep -a -x md-proxy").stdout.splitlines()
    return [line for line in out if line.strip() and not line.endswith("<defunct>") and data_root in line]


def state(host: Any, exec_root: str, cid: str) -> dict[str, Any]:
    f = host.file(f"{exec_root}/containers/{cid}/portmap.json")
    return json.loads(f.content_string) if f.exists else {}


@pytest.fixture
def pm(md: Any, host: Any, data_root: str) -> Iterator[Any]:
    """``md`` with busybox; afterwards: containers removed, and no rule for the host ports the
    test used (``pm.ports``), no proxy, no link or netns entry of this data root."""
    md.ok("buildbase")
    md.ports = []
    seen: list[tuple[set[str], set[str]]] = []
    md.snapshot = lambda: seen.append(kernel_objects(md, host))
    yield md
    seen.append(kernel_objects(md, host))
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    for links, sandboxes in seen:
        assert_gone(host, links, sandboxes)
    assert rules_for(host, *md.ports) == []
    assert proxies(host, md.data_root) == []
    assert helpers.mounts_under(host, data_root) == []


def test_publish_reaches_the_container_and_stop_removes_everything(
    pm: Any, host: Any, exec_root: str
) -> None:
    lo, any_ip = free_port(), free_port()
    pm.ports += [lo, any_ip]
    cid = pm.ok(
        "run", "-d", "--name", "web", "-h", "web1", "-p", f"127.0.0.1:{lo}:80", "-p", f"{any_ip}:80",
        "busybox", "sh", "-c", HTTPD,
    ).strip()  # fmt: skip
    pm.snapshot()
    # 127.0.0.1: the userland proxy (DNAT does not see loopback traffic)
    assert get(host, f"http://127.0.0.1:{lo}/") == "page-web1\n"
    ip = pm.ok("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").strip()
    gateway = pm.ok("inspect", "-f", "{{.NetworkSettings.Gateway}}", "web").strip()
    assert get(host, f"http://{ip}:80/") == "page-web1\n"
    # the host's own traffic to a non-loopback address of its own: the OUTPUT jump and our DNAT
    assert get(host, f"http://{gateway}:{any_ip}/") == "page-web1\n"
    counters = host.run("iptables -t nat -L MINIDOCKER -n -v -x").stdout
    dnat = [line for line in counters.splitlines() if f"dpt:{any_ip} " in line + " " and "DNAT" in line]
    assert len(dnat) == 1 and int(dnat[0].split()[0]) >= 1, counters
    assert len(rules_for(host, lo, any_ip)) == 2  # the two DNATs (FORWARD/MASQUERADE match port 80)
    assert f"--to-destination {ip}:80" in "\n".join(rules_for(host, any_ip))

    # a binding without HostIp is 0.0.0.0 and "::" (Docker 20.10 on a host that listens on IPv6)
    assert sorted(pm.ok("port", "web").splitlines()) == sorted(
        [f"80/tcp -> 127.0.0.1:{lo}", f"80/tcp -> 0.0.0.0:{any_ip}", f"80/tcp -> :::{any_ip}"]
    )
    assert pm.ok("port", "web", "80").split() == [f"127.0.0.1:{lo}", f"0.0.0.0:{any_ip}", f":::{any_ip}"]
    ports_col = pm.ok("ps", "--format", "{{.Ports}}").strip()
    assert f"127.0.0.1:{lo}->80/tcp" in ports_col and f"0.0.0.0:{any_ip}->80/tcp" in ports_col
    assert f":::{any_ip}->80/tcp" in ports_col
    assert get(host, f"http://[::1]:{any_ip}/") == "page-web1\n"  # the proxy's IPv6 listener
    inspect = json.loads(pm.ok("inspect", "web"))[0]
    assert inspect["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(lo)}, {"HostIp": "", "HostPort": str(any_ip)}]
    }
    assert inspect["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert inspect["NetworkSettings"]["Ports"]["80/tcp"][0] == {"HostIp": "127.0.0.1", "HostPort": str(lo)}

    pids = state(host, exec_root, cid)["Proxies"]
    assert len(pids) == 3
    assert all(host.file(f"/proc/{p}/comm").content_string.strip() == "md-proxy" for p in pids)

    pm.ok("stop", "-t", "1", "web")
    assert rules_for(host, lo, any_ip) == []
    assert not any(host.file(f"/proc/{p}").exists for p in pids)
    assert pm.ok("port", "web") == ""
    assert json.loads(pm.ok("inspect", "web"))[0]["NetworkSettings"]["Ports"] == {}
    assert host.run(f"wget -T 2 -qO- http://127.0.0.1:{lo}/").rc != 0
    # the bindings stay in HostConfig: a new start publishes again
    pm.ok("start", "web")
    assert get(host, f"http://127.0.0.1:{lo}/") == "page-web1\n"
    pm.ok("rm", "-f", "web")
    assert rules_for(host, lo, any_ip) == [] and proxies(host, pm.data_root) == []


def test_random_host_port_and_publish_all(pm: Any, host: Any, busybox_rootfs_tar: str) -> None:
    pm.ok("run", "-d", "--name", "rnd", "-h", "rnd", "-p", "127.0.0.1::80", "busybox", "sh", "-c", HTTPD)
    pm.snapshot()
    bound = pm.ok("port", "rnd", "80/tcp").strip()
    ip, _, port = bound.partition(":")
    low, high = map(int, host.file("/proc/sys/net/ipv4/ip_local_port_range").content_string.split())
    assert ip == "127.0.0.1" and low <= int(port) <= high
    pm.ports.append(int(port))
    assert get(host, f"http://127.0.0.1:{port}/") == "page-rnd\n"
    hc = json.loads(pm.ok("inspect", "rnd"))[0]["HostConfig"]
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}

    # -P publishes the image's EXPOSEd ports (and --expose'd ones) on random ports
    pm.ok("import", "-c", "EXPOSE 80", busybox_rootfs_tar, "pm-expose:1")
    pm.ok(
        "run",
        "-d",
        "--name",
        "all",
        "-h",
        "all",
        "-P",
        "--expose",
        "9999/udp",
        "pm-expose:1",
        "sh",
        "-c",
        HTTPD,
    )
    pm.snapshot()
    lines = sorted(pm.ok("port", "all").splitlines())
    assert sorted({line.split(" -> ")[0] for line in lines}) == ["80/tcp", "9999/udp"], lines
    lines = [line for line in lines if " -> 0.0.0.0:" in line]  # (each has its ":::" twin too)
    published = int(lines[0].rsplit(":", 1)[1])
    pm.ports += [published, int(lines[1].rsplit(":", 1)[1])]
    assert get(host, f"http://127.0.0.1:{published}/") == "page-all\n"
    doc = json.loads(pm.ok("inspect", "all"))[0]
    assert doc["HostConfig"]["PublishAllPorts"] is True and doc["HostConfig"]["PortBindings"] == {}
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}, "9999/udp": {}}


def test_port_in_use_fails_with_nothing_configured(pm: Any, host: Any, exec_root: str) -> None:
    ok_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        pm.ports += [ok_port, busy]
        res = pm.fail(
            "run", "-d", "--name", "busy", "-p", f"127.0.0.1:{ok_port}:80", "-p", f"127.0.0.1:{busy}:81",
            "busybox", "sleep", "30", rc=125,
        )  # fmt: skip
        assert res.stderr.splitlines() == [
            f"Error: Error starting userland proxy: listen tcp4 127.0.0.1:{busy}: bind: address already in use"
        ]
        assert pm.ok("ps", "-a", "--format", "{{.Names}} {{.State}}").split() == ["busy", "created"]
        cid = pm.ok("inspect", "-f", "{{.Id}}", "busy").strip()
        assert rules_for(host, ok_port, busy) == []
        assert proxies(host, pm.data_root) == []
        assert state(host, exec_root, cid) == {}
        assert json.loads(pm.ok("network", "inspect", "bridge"))[0]["Containers"] == {}  # no address, no veth
        assert json.loads(pm.ok("inspect", "busy"))[0]["NetworkSettings"]["Ports"] == {}
        # the port taken before the failing one was given back
        with socket.socket() as again:
            again.bind(("127.0.0.1", ok_port))
    # once the port is free the same container starts
    pm.ok("start", "busy")
    assert len(state(host, exec_root, cid)["Proxies"]) == 2


def test_explicit_ipv6_host_address_is_served_by_the_proxy(pm: Any, host: Any, exec_root: str) -> None:
    """``-p [::1]:PORT:80``: a userland proxy on ::1 relays to the container's IPv4 address; no
    iptables (or ip6tables) rule for it. ``port``/``ps`` print it the way Docker 20.10 does."""
    port = free_port()
    pm.ports.append(port)
    cid = pm.ok(
        "run", "-d", "--name", "six", "-h", "six", "-p", f"[::1]:{port}:80", "busybox", "sh", "-c", HTTPD
    )
    cid = cid.strip()
    pm.snapshot()
    assert get(host, f"http://[::1]:{port}/") == "page-six\n"
    assert host.run(f"wget -T 2 -qO- http://127.0.0.1:{port}/").rc != 0  # ::1 only
    assert pm.ok("port", "six").splitlines() == [f"80/tcp -> ::1:{port}"]
    assert pm.ok("ps", "--format", "{{.Ports}}").strip() == f"::1:{port}->80/tcp"
    doc = json.loads(pm.ok("inspect", "six"))[0]
    assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "::1", "HostPort": str(port)}]}
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "::1", "HostPort": str(port)}]}
    assert state(host, exec_root, cid)["Rules"] == []
    assert len(state(host, exec_root, cid)["Proxies"]) == 1
    assert str(port) not in host.run("ip6tables-save").stdout
    # taken: 125, one line, the container stays created, nothing left
    res = pm.fail("run", "-d", "--name", "six2", "-p", f"[::1]:{port}:80", "busybox", "sleep", "30", rc=125)
    assert res.stderr.splitlines() == [
        f"Error: Error starting userland proxy: listen tcp6 [::1]:{port}: bind: address already in use"
    ]
    assert pm.ok("inspect", "-f", "{{.State.Status}}", "six2").strip() == "created"
    pm.ok("rm", "-f", "six")
    assert proxies(host, pm.data_root) == []


def _portmap_cmd(pm: Any, *args: Any) -> str:
    """``minidocker portmap …`` (run through the CLI module directly until main.py registers it)."""
    if pm("portmap", "--help").rc == 0:
        return str(pm.command("portmap", *args))
    python = os.path.join(os.path.dirname(pm.binary), "python")
    code = (
        "from minidocker.cli import main; "
        "main.COMMANDS.setdefault('portmap', 'minidocker.cli.portmap:portmap_group'); main.main()"
    )
    words = [python, "-c", code, "--data-root", pm.data_root, "--exec-root", pm.exec_root, "portmap", *args]
    return helpers.q(*words)


def test_portmap_forward_relays_until_interrupted(pm: Any, host: Any) -> None:
    pm.ok("run", "-d", "--name", "fwd", "-h", "fwd", "busybox", "sh", "-c", HTTPD)
    pm.snapshot()
    port = free_port()
    pm.ports.append(port)
    cmd = _portmap_cmd(pm, "forward", "-p", f"127.0.0.1:{port}:80", "-d", "fwd")
    script = (
        f"{cmd} > /dev/null & pid=$!; "
        f"for i in $(seq 100); do wget -T 2 -qO- http://127.0.0.1:{port}/ && break; sleep 0.1; done; "
        "kill -INT $pid; wait $pid; echo rc=$?"
    )
    out = helpers.check(host, f"bash -c {shlex.quote(script)}")
    assert out.splitlines() == ["page-fwd", "rc=0"], out
    assert host.run(f"wget -T 2 -qO- http://127.0.0.1:{port}/").rc != 0  # gone with the command
    # `portmap start`: nothing published by running containers here
    res = host.run(_portmap_cmd(pm, "start"))
    assert res.rc == 0 and "nothing to forward" in res.stderr


def test_crashed_monitor_takes_its_proxies_and_rules_along(pm: Any, host: Any, exec_root: str) -> None:
    port = free_port()
    pm.ports.append(port)
    cid = pm.ok(
        "run", "-d", "--name", "crash", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60"
    ).strip()
    pm.snapshot()
    (pid,) = state(host, exec_root, cid)["Proxies"]
    monitor = int(host.file(f"/proc/{pid}/status").content_string.split("PPid:")[1].split()[0])
    helpers.check(host, f"kill -9 {monitor}")
    # PR_SET_PDEATHSIG: the relay dies with its monitor; the next look at the container tears down
    gone = f"! [ -e /proc/{pid} ] || grep -q 'State:.*Z' /proc/{pid}/status"
    assert host.run(f"for i in $(seq 100); do {gone} && exit 0; sleep 0.05; done; exit 1").rc == 0
    assert "Exited" in pm.ok("ps", "-a", "--format", "{{.Status}}")
    assert rules_for(host, port) == []
    assert state(host, exec_root, cid) == {}
    assert host.run(f"wget -T 2 -qO- http://127.0.0.1:{port}/").rc != 0
