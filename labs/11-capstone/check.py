#!/usr/bin/env python3
"""Checker for lab 11 (the capstone): a server and a client on a user network, a published port and
a volume, all checked from the host.

Everything is read from the host, the way the student looks at it: the lab data root as plain files
(``network/minidocker/<id>.json``, ``volumes/lab11site/_data``, ``containers/<id>/config.v2.json``
and ``hostconfig.json``), ``ip -j -d link``/``addr`` on the host and, through ``nsenter -n``, inside
each container's network namespace, ``/proc/<pid>/mountinfo``, ``/proc/<pid>/net/tcp`` and
``/proc/<pid>/root/etc/hosts`` of each container's PID 1, ``iptables -t nat -S MINIDOCKER`` and the
host's ``/proc/net/tcp``. Then two fetches: from inside the client by the server's *name* (the
client's own ``wget``, run with ``nsenter`` in its mount and network namespaces), and from the host
through the published port 127.0.0.1:8011. Traffic goes only to 127.0.0.1 and to the lab's subnet.
It never imports minidocker, so a bug there cannot make this lab pass. Run it as root.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak
    Checker,
    bridge_problem,
    data_root,
    fail_on_crash,
    fetch,
    host,
    ipv4,
    lab_dir,
    link,
    listening,
    listening_ports,
    read_text,
)

LAB = lab_dir("11")
ROOT = data_root("11")
NETWORK = "lab11net"
BRIDGE = "lab11br"
SUBNET = "10.71.0.0/24"
GATEWAY = "10.71.0.1"
VOLUME = "lab11site"
SERVER = "web"
CLIENT = "client"
HOST_IP = "127.0.0.1"
HOST_PORT = 8011
PORT = 80
DEFAULT_ROOT = "/var/lib/minidocker"  # only to say "you created it there" when the student forgot the export


# -- readers ----------------------------------------------------------------------------------------
def load_json(path: str) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data


def find_network(root: str, name: str) -> dict[str, Any] | None:
    """The network record called ``name`` in ``<root>/network/minidocker/``, or None."""
    d = os.path.join(root, "network", "minidocker")
    f = host().file(d)
    if not f.is_directory:
        return None
    for entry in sorted(f.listdir()):
        net = load_json(os.path.join(d, entry)) if entry.endswith(".json") else None
        if net and net.get("Name") == name:
            return net
    return None


@dataclass
class Container:
    id: str
    config: dict[str, Any]
    host_config: dict[str, Any]

    @property
    def pid(self) -> int:
        return int((self.config.get("State") or {}).get("Pid") or 0)

    @property
    def running(self) -> bool:
        """Running in the state file *and* its PID 1 alive (not a zombie) on the host."""
        if not (self.config.get("State") or {}).get("Running") or self.pid <= 0:
            return False
        status = read_text(f"/proc/{self.pid}/status") or ""
        state = next((x.split()[1] for x in status.splitlines() if x.startswith("State:")), "")
        return bool(status) and state != "Z"

    def address(self, network: str) -> str | None:
        nets = (self.config.get("NetworkSettings") or {}).get("Networks") or {}
        ip: str | None = (nets.get(network) or {}).get("IPAddress") or None
        return ip


def find_container(name: str) -> Container | None:
    d = os.path.join(ROOT, "containers")
    f = host().file(d)
    if not f.is_directory:
        return None
    for cid in sorted(f.listdir()):
        cfg = load_json(os.path.join(d, cid, "config.v2.json"))
        if cfg and cfg.get("Name") == "/" + name:
            return Container(cid, cfg, load_json(os.path.join(d, cid, "hostconfig.json")) or {})
    return None


def volume_mount(pid: int) -> str | None:
    """Where the volume is mounted in the container of ``pid`` (from its mountinfo), or None."""
    source = f"/volumes/{VOLUME}/_data"
    for line in (read_text(f"/proc/{pid}/mountinfo") or "").splitlines():
        f = line.split()
        if len(f) > 4 and f[3].endswith(source):
            return f[4]
    return None


def compare(got: str | None, why: str, page: str, where: str) -> str:
    """The empty string when ``got`` is the lab's page, else a detail saying what came back instead."""
    if got is None:
        return f"expected the lab's page, found no answer ({why})"
    if got != page:
        return f"expected the content of {LAB}/index.html, found {got[:60]!r} ({where})"
    return ""


# -- the expectations -------------------------------------------------------------------------------
def check_network(c: Checker) -> bool:
    """lab11net in the lab's data root, a bridge network on the lab's subnet, its bridge on the host."""
    names = [
        f"{NETWORK} is a bridge network with the subnet {SUBNET}",
        f"its bridge {BRIDGE} is on the host with {GATEWAY}/24, up",
    ]
    net = find_network(ROOT, NETWORK)
    if net is None:
        elsewhere = find_network(DEFAULT_ROOT, NETWORK) is not None
        c.expect(f"network {NETWORK} exists in the lab's data root", False,
                 f"expected a network {NETWORK} in {ROOT}/network/minidocker, found none"
                 + (f" (there is one in {DEFAULT_ROOT}: export MINIDOCKER_DATA_ROOT={ROOT} first)"
                    if elsewhere else ""))  # fmt: skip
        for n in names:
            c.blocked(n, f"no network {NETWORK}")
        return False
    c.expect(f"network {NETWORK} exists in the lab's data root", True)
    subnets = [x.get("Subnet") for x in (net.get("IPAM") or {}).get("Config") or []]
    if net.get("Driver") != "bridge":
        detail = f"expected the driver bridge, found {net.get('Driver')!r}"
    elif SUBNET not in subnets:
        detail = f"expected the subnet {SUBNET} (--subnet), found {', '.join(map(str, subnets)) or 'none'}"
    else:
        detail = ""
    ok = c.expect(names[0], not detail, detail)
    want = (net.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + str(net.get("Id"))[:12]
    if want != BRIDGE:
        detail = (
            f"expected the bridge to be called {BRIDGE} (the driver option com.docker.network.bridge.name), "
            f"found {want}"
        )
    else:
        detail = bridge_problem(BRIDGE, f"{GATEWAY}/24", " (ip -br link)")
    return c.expect(names[1], not detail, detail) and ok


def check_volume(c: Checker, page: str) -> None:
    data = os.path.join(ROOT, "volumes", VOLUME, "_data")
    if not c.expect(f"volume {VOLUME} exists", host().file(data).is_directory,
                    f"expected the directory {data}, found none (minidocker volume ls)"):  # fmt: skip
        c.blocked("the volume holds the lab's page as index.html", f"no volume {VOLUME}")
        return
    got = read_text(os.path.join(data, "index.html"))
    if got is None:
        detail = f"expected {data}/index.html, found " + (
            ", ".join(sorted(host().file(data).listdir())) or "an empty volume"
        )
    elif got != page:
        detail = f"expected the content of {LAB}/index.html, found {got[:60]!r}"
    else:
        detail = ""
    c.expect("the volume holds the lab's page as index.html", not detail, detail)


def check_running(c: Checker, name: str) -> Container | None:
    ctr = find_container(name)
    if ctr is None:
        c.expect(f"container {name} is running", False,
                 f"expected a container named {name} in {ROOT}/containers, found none (minidocker ps -a)")  # fmt: skip
        return None
    state = ctr.config.get("State") or {}
    detail = "" if ctr.running else (
        f"expected it running, found it exited with code {state.get('ExitCode')} (minidocker logs {name})"
        if not state.get("Running") else f"expected its PID 1 ({ctr.pid}) alive on the host, found it gone"
    )  # fmt: skip
    return ctr if c.expect(f"container {name} is running", not detail, detail) else None


def check_attached(c: Checker, ctr: Container | None, name: str, net: dict[str, Any] | None) -> str | None:
    """The container's eth0 has an address of lab11net, and its veth is a port of lab11br; its address."""
    what = f"{name} is attached to {NETWORK} (eth0 in {SUBNET}, its veth a port of {BRIDGE})"
    if ctr is None:
        c.blocked(what, f"{name} is not running")
        return None
    ip = ctr.address(NETWORK)
    if ip is None:
        nets = ", ".join((ctr.config.get("NetworkSettings") or {}).get("Networks") or {}) or "none"
        c.expect(what, False, f"expected {NETWORK} among its networks, found {nets} (--network)")
        return None
    inside = ipv4("eth0", pid=ctr.pid)
    endpoint = ((net or {}).get("Endpoints") or {}).get(ctr.id) or {}
    veth = link(endpoint.get("Veth") or "-")
    if ipaddress.ip_address(ip) not in ipaddress.ip_network(SUBNET):
        detail = f"expected an address in {SUBNET}, found {ip}"
    elif f"{ip}/24" not in inside:
        detail = (
            f"expected {ip}/24 on eth0 inside the container, found {', '.join(inside) or 'no IPv4 address'}"
        )
    elif veth is None or veth.get("master") != BRIDGE:
        detail = (
            f"expected its host-side veth {endpoint.get('Veth') or '?'} to be a port of {BRIDGE}, found "
            + ("no such link" if veth is None else f"master {veth.get('master') or 'none'}")
        )
    else:
        detail = ""
    return ip if c.expect(what, not detail, detail) else None


def check_mounts_volume(c: Checker, ctr: Container | None, name: str) -> str | None:
    what = f"{name} mounts the volume {VOLUME}"
    if ctr is None:
        c.blocked(what, f"{name} is not running")
        return None
    where = volume_mount(ctr.pid)
    others = [
        f"{m.get('Name') or m.get('Source')}:{d}" for d, m in (ctr.config.get("MountPoints") or {}).items()
    ]
    c.expect(what, where is not None,
             f"expected a mount of {ROOT}/volumes/{VOLUME}/_data in /proc/{ctr.pid}/mountinfo, found "
             + (", ".join(others) or "no volume") + " (-v NAME:DIR)")  # fmt: skip
    return where


def check_server(c: Checker, web: Container | None, web_ip: str | None, www: str | None, page: str) -> None:
    names = [
        f"{SERVER} runs an httpd listening on port {PORT} inside",
        f"{SERVER} publishes port {PORT} on {HOST_IP}:{HOST_PORT}",
        f"a DNAT rule in nat MINIDOCKER sends {HOST_IP}:{HOST_PORT} to {SERVER}'s port {PORT}",
        f"the port proxy listens on {HOST_IP}:{HOST_PORT} on the host",
    ]
    if web is None:
        for n in names:
            c.blocked(n, f"{SERVER} is not running")
        return
    args = [str(x) for x in [web.config.get("Path"), *(web.config.get("Args") or [])]]
    ports = listening_ports(f"/proc/{web.pid}/net")
    if "httpd" not in [a.rsplit("/", 1)[-1] for a in args]:
        detail = f"expected the command httpd, found {' '.join(args)!r}"
    elif PORT not in ports:
        detail = f"expected a socket listening on {PORT} inside, found " + (
            ", ".join(map(str, sorted(ports))) or "none"
        )
    elif www and "-h" in args and args.index("-h") + 1 < len(args) and args[args.index("-h") + 1] != www:
        detail = f"expected httpd's home (-h) to be the volume's mount point {www}, found {args[args.index('-h') + 1]}"
    else:
        detail = ""
    c.expect(names[0], not detail, detail)
    bindings = ((web.host_config.get("PortBindings") or {}).get(f"{PORT}/tcp")) or []
    want = {"HostIp": HOST_IP, "HostPort": str(HOST_PORT)}
    published = c.expect(names[1], want in bindings,
                         f"expected -p {HOST_IP}:{HOST_PORT}:{PORT}, found "
                         + (", ".join(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}" for b in bindings)
                            or "no port published (ports are fixed when a container is created)"))  # fmt: skip
    out = host().run("iptables -w -t nat -S MINIDOCKER")
    rules = [r.split() for r in out.stdout.splitlines() if r.startswith("-A ") and "DNAT" in r.split()]
    mine = [w for w in rules if "--dport" in w and w[w.index("--dport") + 1] == str(HOST_PORT)]
    if not published:
        c.blocked(names[2], "the port is not published")
        c.blocked(names[3], "the port is not published")
        return
    target = f"{web_ip}:{PORT}"
    good = [w for w in mine if "--to-destination" in w and w[w.index("--to-destination") + 1] == target]
    c.expect(names[2], bool(good),
             f"expected -j DNAT --to-destination {target} for --dport {HOST_PORT}, found "
             + ("; ".join(" ".join(w) for w in mine) or "no rule for that port (iptables -t nat -S MINIDOCKER)"))  # fmt: skip
    socks = listening(read_text("/proc/net/tcp"))
    c.expect(names[3], (HOST_IP, HOST_PORT) in socks or ("0.0.0.0", HOST_PORT) in socks,
             f"expected a socket listening on {HOST_IP}:{HOST_PORT} (ss -ltnp 'sport = :{HOST_PORT}'), found none")  # fmt: skip


def check_client(c: Checker, client: Container | None, web_ip: str | None, page: str) -> None:
    names = [
        f"the name {SERVER} resolves inside {CLIENT} to {SERVER}'s address",
        f"{CLIENT} fetches the page from http://{SERVER}/ (inside, by name)",
    ]
    if client is None or web_ip is None:
        for n in names:
            c.blocked(n, f"{CLIENT} and {SERVER} must both run, attached to {NETWORK}")
        return
    hosts = read_text(f"/proc/{client.pid}/root/etc/hosts") or ""
    entries = [x.split("#", 1)[0].split() for x in hosts.splitlines()]
    addrs = [e[0] for e in entries if len(e) > 1 and SERVER in e[1:]]
    ok = c.expect(names[0], web_ip in addrs,
                  f"expected a line '{web_ip} {SERVER}' in the client's /etc/hosts, found "
                  + (", ".join(addrs) if addrs else f"no entry for {SERVER} (same user network?)"))  # fmt: skip
    if not ok:
        c.blocked(names[1], f"{SERVER} does not resolve inside {CLIENT}")
        return
    # The client's own wget, in its mount and network namespaces. busybox's -T crashes in some builds:
    # the host's `timeout` bounds it instead.
    out = host().run(f"timeout 8 nsenter -t {client.pid} -m -n -- /bin/busybox wget -qO- http://{SERVER}/")
    got = out.stdout if out.rc == 0 else None
    why = (out.stderr.strip() or f"exit {out.rc}").splitlines()[-1] if out.rc else ""
    detail = compare(got, why, page, "httpd serves its home dir: is it the volume?")
    c.expect(names[1], not detail, detail)


def main() -> int:
    c = Checker("11")
    page = read_text(f"{LAB}/index.html")
    if page is None or not host().file(ROOT).is_directory:
        c.expect("the lab is set up", False,
                 f"expected {LAB}/index.html and the data root {ROOT}, found none: minidocker lab start 11")  # fmt: skip
        return c.finish()
    check_network(c)
    net = find_network(ROOT, NETWORK)
    check_volume(c, page)

    web = check_running(c, SERVER)
    web_ip = check_attached(c, web, SERVER, net)
    www = check_mounts_volume(c, web, SERVER)
    check_server(c, web, web_ip, www, page)

    client = check_running(c, CLIENT)
    check_attached(c, client, CLIENT, net)
    check_mounts_volume(c, client, CLIENT)
    check_client(c, client, web_ip, page)

    name = f"the host fetches the page from http://{HOST_IP}:{HOST_PORT}/"
    if web is None:
        c.blocked(name, f"{SERVER} is not running")
    else:
        got, why = fetch(f"http://{HOST_IP}:{HOST_PORT}/")
        c.expect(name, not compare(got, why, page, "published from the right container?"),
                 compare(got, why, page, "published from the right container?"))  # fmt: skip
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
