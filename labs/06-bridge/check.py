#!/usr/bin/env python3
"""Checker for lab 06 (a bridge and two network namespaces by hand): reads the host's network state.

Everything comes from the host, the way the student looks at it: ``ip netns list``, testinfra's
``host.interface`` (does a link exist, which addresses it has), ``ip -j -d link``/``addr``/``route``
on the host and inside each namespace (``ip -n <ns>``: the veth's kind, its master, its peer's
ifindex, the MAC, the routes) and, last, pings run by the checker itself inside the namespaces
(``ip netns exec``), to addresses of the lab's own subnet only. Run it as root.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import Checker, fail_on_crash, host  # noqa: E402 - after the sys.path tweak, on purpose

SUBNET = ipaddress.IPv4Network("10.66.0.0/24")
BRIDGE = "lab06br"
GATEWAY = "10.66.0.1"


@dataclass(frozen=True)
class Side:
    """One namespace of the lab and what the README asks for in it."""

    netns: str
    veth: str  # the host end of its veth pair
    ip: str

    @property
    def mac(self) -> str:
        """Docker's MAC for an address: 02:42 then the four bytes of the IPv4 address."""
        return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(self.ip).packed)


SIDES = (Side("lab06a", "veth06a", "10.66.0.2"), Side("lab06b", "veth06b", "10.66.0.3"))


def ip_json(args: str, netns: str | None = None) -> list[dict[str, Any]] | None:
    """``ip -j -d <args>`` on the host or inside ``netns``; None if the command failed."""
    where = f"-n {shlex.quote(netns)} " if netns else ""
    out = host().run(f"ip {where}-j -d {args}")
    if out.rc != 0:
        return None
    try:
        data: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return None
    return data


def link(name: str, netns: str | None = None) -> dict[str, Any] | None:
    found = ip_json(f"link show dev {shlex.quote(name)}", netns)
    return found[0] if found else None


def kind(lnk: dict[str, Any]) -> str:
    return str((lnk.get("linkinfo") or {}).get("info_kind") or "a plain link")


def is_up(lnk: dict[str, Any]) -> bool:
    # operstate is UNKNOWN for lo and for a bridge with no port yet: the admin flag UP is the question
    return "UP" in (lnk.get("flags") or [])


def ipv4(netns: str | None, name: str) -> list[str]:
    """``a.b.c.d/len`` for each IPv4 address on the link."""
    found = ip_json(f"-4 addr show dev {shlex.quote(name)}", netns) or []
    return [f"{a['local']}/{a['prefixlen']}" for x in found for a in x.get("addr_info") or []]


def netns_names() -> list[str]:
    out = host().run("ip netns list")
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()] if out.rc == 0 else []


def ping(netns: str | None, address: str) -> bool:
    """One echo request answered, three tries (a loaded host can lose the first to ARP)."""
    tool = "ping" if shutil.which("ping") else "busybox ping"
    prefix = f"ip netns exec {shlex.quote(netns)} " if netns else ""
    return any(host().run(f"{prefix}{tool} -c1 -W2 {address}").rc == 0 for _ in range(3))


# -- the expectations -----------------------------------------------------------------------------
def check_bridge(c: Checker) -> bool:
    h = host()
    br = link(BRIDGE)
    if not h.interface(BRIDGE).exists or br is None:
        c.expect(
            f"{BRIDGE} is a bridge", False, f"expected a link {BRIDGE} on the host, found none (ip link)"
        )
        c.blocked(f"{BRIDGE} has the gateway {GATEWAY}/24", f"no link {BRIDGE}")
        c.blocked(f"{BRIDGE} is up", f"no link {BRIDGE}")
        return False
    c.expect(
        f"{BRIDGE} is a bridge", kind(br) == "bridge", f"expected a link of type bridge, found {kind(br)}"
    )
    have = ipv4(None, BRIDGE)
    if f"{GATEWAY}/24" in have:
        detail = ""
    elif GATEWAY in h.interface(BRIDGE).addresses:
        detail = f"expected {GATEWAY}/24, found {', '.join(have)}: the prefix length decides which addresses are on-link"
    else:
        detail = (
            f"expected {GATEWAY}/24 (the subnet's first address, the containers' gateway), "
            f"found {', '.join(have) or 'no IPv4 address'}"
        )
    c.expect(f"{BRIDGE} has the gateway {GATEWAY}/24", not detail, detail)
    c.expect(
        f"{BRIDGE} is up", is_up(br), f"expected the flag UP, found flags {','.join(br.get('flags') or [])}"
    )
    return True


def check_side(c: Checker, side: Side, namespaces: list[str]) -> bool:
    """Namespace, veth pair, eth0 inside; True when the namespace end is there to ping from."""
    ns, names = (
        side.netns,
        [
            f"{side.veth} is a veth on {BRIDGE}, up",
            f"{side.veth}'s peer is eth0 in {side.netns}",
            f"eth0 in {side.netns} has {side.ip}/24",
            f"eth0 in {side.netns} has Docker's MAC for {side.ip}",
            f"eth0 and lo in {side.netns} are up",
            f"{side.netns} routes by default via {GATEWAY}",
        ],
    )
    if not c.expect(f"namespace {ns} exists", ns in namespaces,
                    f"expected {ns} in `ip netns list`, found {', '.join(namespaces) or 'no named namespace'}"):  # fmt: skip
        for n in names:
            c.blocked(n, f"no namespace {ns}")
        return False

    # The host end: a veth, enslaved to the bridge, up.
    hv = link(side.veth)
    if hv is None:
        detail = f"expected a link {side.veth} on the host, found none"
        if link(side.veth, ns) is not None:
            detail += f" (it is inside {ns}: the end that goes into the namespace is the other one)"
    elif kind(hv) != "veth":
        detail = f"expected a veth, found {kind(hv)}"
    elif hv.get("master") != BRIDGE:
        detail = f"expected master {BRIDGE}, found " + (
            f"master {hv['master']}" if hv.get("master") else "no master"
        )
    elif not is_up(hv):
        detail = f"expected the flag UP, found flags {','.join(hv.get('flags') or [])}"
    else:
        detail = ""
    c.expect(names[0], not detail, detail)

    # Its peer: the link inside the namespace whose ifindex the host end names, called eth0.
    eth0 = link("eth0", ns)
    if hv is None or kind(hv) != "veth":
        c.blocked(names[1], f"no veth {side.veth} on the host")
        paired = False
    else:
        peers = [x for x in ip_json("link show", ns) or [] if x.get("ifindex") == hv.get("link_index")]
        if (
            eth0 is not None
            and eth0.get("ifindex") == hv.get("link_index")
            and eth0.get("link_index") == hv.get("ifindex")
        ):
            detail = ""
        elif peers:
            detail = f"expected the peer inside {ns} to be called eth0, found it as {peers[0]['ifname']}"
        elif "link_netnsid" not in hv:
            detail = (
                f"expected the peer inside {ns}, found it on the host: it was never moved into a namespace"
            )
        else:
            detail = f"expected the peer inside {ns}, found it in another namespace"
        paired = c.expect(names[1], not detail, detail)

    if eth0 is None:
        for n in names[2:]:
            c.blocked(n, f"no eth0 in {ns}")
        return False
    have = ipv4(ns, "eth0")
    c.expect(
        names[2],
        f"{side.ip}/24" in have,
        f"expected {side.ip}/24, found {', '.join(have) or 'no IPv4 address'}",
    )
    mac = str(eth0.get("address", ""))
    c.expect(names[3], mac == side.mac,
             f"expected 02:42 followed by the four bytes of {side.ip} in hex, found {mac}")  # fmt: skip
    lo = link("lo", ns)
    down = [n for n, x in (("eth0", eth0), ("lo", lo)) if x is None or not is_up(x)]
    c.expect(names[4], not down, f"expected both UP, found {' and '.join(down)} down")
    routes = ip_json("-4 route show", ns) or []
    default = [r for r in routes if r.get("dst") == "default"]
    if any(r.get("gateway") == GATEWAY and r.get("dev") == "eth0" for r in default):
        detail = ""
    elif default:
        detail = "expected default via 10.66.0.1 dev eth0, found " + ", ".join(
            f"default via {r.get('gateway', '-')} dev {r.get('dev')}" for r in default
        )
    else:
        detail = f"expected a default route via {GATEWAY} dev eth0, found none (the host beyond the bridge is unreachable)"
    c.expect(names[5], not detail, detail)
    return paired


def check_host_addresses(c: Checker) -> None:
    """The subnet lives on the bridge only: an address on a veth host end (a common slip) confuses routing."""
    stray = []
    for x in ip_json("-4 addr show") or []:
        for a in x.get("addr_info") or []:
            if x.get("ifname") != BRIDGE and ipaddress.IPv4Address(a["local"]) in SUBNET:
                stray.append(f"{a['local']}/{a['prefixlen']} on {x['ifname']}")
    c.expect(f"the host has addresses of {SUBNET} only on {BRIDGE}", not stray,
             f"expected none elsewhere, found {', '.join(stray)}: a bridge port (veth host end) carries no address")  # fmt: skip


def check_pings(c: Checker, ready: dict[str, bool], bridge_ok: bool) -> None:
    a, b = SIDES
    hint = (
        "; the addresses and routes look right, so look at what filters bridged frames: "
        "net.bridge.bridge-nf-call-iptables and `iptables -S FORWARD`"
        if not c.failed
        else "; fix the FAIL lines above first"
    )
    for src, dst in ((a, b), (b, a)):
        name = f"{src.netns} reaches {dst.netns} (ping {dst.ip})"
        if not (ready[src.netns] and ready[dst.netns] and bridge_ok):
            c.blocked(name, "the bridge or a namespace's veth is not in place")
            continue
        c.expect(name, ping(src.netns, dst.ip), f"expected an echo reply from {dst.ip}, found none" + hint)
    name = f"the host reaches {a.netns} through {BRIDGE} (ping {a.ip})"
    if not (ready[a.netns] and bridge_ok):
        c.blocked(name, "the bridge or the namespace's veth is not in place")
    else:
        c.expect(name, ping(None, a.ip), f"expected an echo reply from {a.ip}, found none")


def main() -> int:
    c = Checker("06")
    namespaces = netns_names()
    bridge_ok = check_bridge(c)
    ready = {side.netns: check_side(c, side, namespaces) for side in SIDES}
    check_host_addresses(c)
    check_pings(c, ready, bridge_ok)
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
