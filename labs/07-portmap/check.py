#!/usr/bin/env python3
"""Checker for lab 07 (a port published by hand with a DNAT rule): reads the host's network state.

Everything comes from the host, the way the student looks at it: ``ip netns list``, ``ip -j -d
link``/``addr`` on the host and inside the namespace, ``ip netns pids`` and those processes'
``/proc/<pid>/comm`` and ``/proc/<pid>/net/tcp`` (the namespace's own socket table), ``iptables -t
nat -S`` for the chain LAB07 and the jump from OUTPUT, and the host's ``/proc/net/tcp`` (nothing may
listen on 8087 itself). Last, the checker fetches the page twice, itself, with plain HTTP: from the
"container" directly (10.67.0.2:80) and through the published port (10.67.0.1:8087), and compares
it with the lab's ``www/index.html``. Traffic goes only to the lab's own subnet. Run it as root.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak
    Checker,
    bridge_problem,
    fail_on_crash,
    fetch,
    host,
    ipv4,
    is_up,
    lab_dir,
    link,
    listening_ports,
    read_text,
)

NS = "lab07"
BRIDGE = "lab07br"
VETH = "veth07"
GATEWAY = "10.67.0.1"
CONTAINER_IP = "10.67.0.2"
CHAIN = "LAB07"
HOST_PORT = 8087
CONTAINER_PORT = 80


def nat_rules(chain: str) -> list[str] | None:
    """``iptables -t nat -S CHAIN`` as lines (the -N/-P line dropped); None if the chain does not exist."""
    out = host().run(f"iptables -w -t nat -S {shlex.quote(chain)}")
    if out.rc != 0:
        return None
    return [x for x in out.stdout.splitlines() if x.startswith("-A ")]


# -- the expectations -----------------------------------------------------------------------------
def check_network(c: Checker) -> bool:
    """Lab 06's shape, shortened: True when the namespace can be reached through the bridge."""
    names = [
        f"{BRIDGE} is a bridge with {GATEWAY}/24, up",
        f"{VETH} is a port of {BRIDGE}, up",
        f"eth0 in {NS} has {CONTAINER_IP}/24 and is up",
    ]
    namespaces = [x.split()[0] for x in host().run("ip netns list").stdout.splitlines() if x.strip()]
    if not c.expect(f"namespace {NS} exists", NS in namespaces,
                    f"expected {NS} in `ip netns list`, found {', '.join(namespaces) or 'no named namespace'}"):  # fmt: skip
        for n in names:
            c.blocked(n, f"no namespace {NS}")
        return False
    detail = bridge_problem(BRIDGE, f"{GATEWAY}/24")
    ok = c.expect(names[0], not detail, detail)
    veth = link(VETH)
    if veth is None:
        detail = f"expected a link {VETH} on the host, found none"
    elif veth.get("master") != BRIDGE:
        detail = f"expected master {BRIDGE}, found " + (
            f"master {veth['master']}" if veth.get("master") else "no master"
        )
    elif not is_up(veth):
        detail = f"expected the flag UP, found flags {','.join(veth.get('flags') or [])}"
    else:
        detail = ""
    ok = c.expect(names[1], not detail, detail) and ok
    eth0 = link("eth0", NS)
    if eth0 is None:
        detail = f"expected a link eth0 inside {NS}, found none (ip -n {NS} link)"
    elif f"{CONTAINER_IP}/24" not in ipv4("eth0", NS):
        detail = f"expected {CONTAINER_IP}/24, found {', '.join(ipv4('eth0', NS)) or 'no IPv4 address'}"
    elif not is_up(eth0):
        detail = f"expected the flag UP, found flags {','.join(eth0.get('flags') or [])}"
    else:
        detail = ""
    return c.expect(names[2], not detail, detail) and ok


def check_httpd(c: Checker, ns_ok: bool, page: str | None) -> bool:
    """An httpd inside the namespace, listening on 80 there, serving the lab's page."""
    names = [
        f"an httpd runs inside {NS}",
        f"it listens on port {CONTAINER_PORT} inside {NS}",
        f"http://{CONTAINER_IP}:{CONTAINER_PORT}/ serves the lab's www/index.html",
    ]
    if not ns_ok and link("eth0", NS) is None:
        for n in names:
            c.blocked(n, f"the namespace {NS} and its eth0 are not in place")
        return False
    pids = host().run(f"ip netns pids {NS}").stdout.split()
    # busybox's applets keep the comm "busybox": the command line says which applet runs
    comms = {p: " ".join((read_text(f"/proc/{p}/cmdline") or "").split("\0")[:2]).strip() for p in pids}
    httpd = [p for p, cmd in comms.items() if "httpd" in [w.rsplit("/", 1)[-1] for w in cmd.split()]]
    on_host = "" if httpd else _httpd_elsewhere()
    c.expect(names[0], bool(httpd),
             f"expected a process called httpd in `ip netns pids {NS}`, found "
             + (", ".join(f"{p} ({x})" for p, x in comms.items()) or "no process") + on_host)  # fmt: skip
    listening = set().union(*(listening_ports(f"/proc/{p}/net") for p in pids)) if pids else set()
    c.expect(names[1], CONTAINER_PORT in listening,
             f"expected a TCP socket listening on {CONTAINER_PORT} in {NS}, found "
             + (", ".join(map(str, sorted(listening))) or "none") + " (ip netns exec lab07 ss -ltn)")  # fmt: skip
    if not ns_ok:
        return c.blocked(names[2], "the bridge or the veth is not in place")
    got, why = fetch(f"http://{CONTAINER_IP}:{CONTAINER_PORT}/")
    if got is None:
        detail = f"expected the page, found no answer ({why})"
    elif got != page:
        detail = f"expected the content of {lab_dir('07')}/www/index.html, found {got[:60]!r} (httpd -h: its home dir)"
    else:
        detail = ""
    return c.expect(names[2], not detail, detail)


def _httpd_elsewhere() -> str:
    out = host().run("pgrep -a httpd")
    return (
        f" (an httpd runs, but not in {NS}: `ip netns exec {NS} …` starts it inside)"
        if out.stdout.strip()
        else ""
    )


def check_rules(c: Checker) -> bool:
    """The nat chain LAB07 with the DNAT rule, and the jump from OUTPUT for the bridge address only."""
    rules = nat_rules(CHAIN)
    dnat_name = f"{CHAIN} DNATs tcp port {HOST_PORT} to {CONTAINER_IP}:{CONTAINER_PORT}"
    if not c.expect(f"the nat table has a chain {CHAIN}", rules is not None,
                    f"expected `iptables -t nat -S {CHAIN}` to list it, found no such chain (-t nat, -N)"):  # fmt: skip
        c.blocked(dnat_name, f"no chain {CHAIN}")
        ok = False
    else:
        assert rules is not None
        dnat = [r.split() for r in rules if "DNAT" in r.split()]
        good = [
            w for w in dnat
            if "--to-destination" in w and w[w.index("--to-destination") + 1] == f"{CONTAINER_IP}:{CONTAINER_PORT}"
            and "--dport" in w and w[w.index("--dport") + 1] == str(HOST_PORT) and "tcp" in w
        ]  # fmt: skip
        if good:
            detail = ""
        elif not rules:
            detail = f"expected a rule ending in -j DNAT --to-destination …, found the chain {CHAIN} empty"
        elif not dnat:
            detail = f"expected a -j DNAT rule, found: {'; '.join(rules)}"
        else:
            detail = (
                f"expected -p tcp --dport {HOST_PORT} -j DNAT --to-destination {CONTAINER_IP}:{CONTAINER_PORT}, "
                f"found: {'; '.join(' '.join(w) for w in dnat)}"
            )
        ok = c.expect(dnat_name, not detail, detail)
    out = nat_rules("OUTPUT") or []
    jumps = [r.split() for r in out if r.split()[-2:] == ["-j", CHAIN]]
    only = [w for w in jumps if "-d" in w and w[w.index("-d") + 1] == f"{GATEWAY}/32" and "!" not in w]
    if only:
        detail = ""
    elif jumps:
        detail = (
            f"expected the jump limited to -d {GATEWAY}/32 (only the lab's traffic may be rewritten), "
            f"found: {'; '.join(' '.join(w) for w in jumps)}"
        )
    else:
        elsewhere = [r for r in (nat_rules("PREROUTING") or []) if r.split()[-2:] == ["-j", CHAIN]]
        detail = f"expected `-A OUTPUT -d {GATEWAY}/32 -j {CHAIN}` in the nat table, found no jump to {CHAIN} there"
        if elsewhere:
            detail += " (there is one in PREROUTING: the host's own packets never pass PREROUTING)"
    return c.expect(f"nat OUTPUT jumps to {CHAIN} for destination {GATEWAY} only", not detail, detail) and ok


def check_published(c: Checker, ready: bool, page: str | None) -> None:
    listener = HOST_PORT in listening_ports("/proc/self/net")
    c.expect(f"nothing on the host listens on {HOST_PORT} (the DNAT rule alone publishes it)", not listener,
             f"expected no socket on port {HOST_PORT}, found one listening (ss -ltnp 'sport = :{HOST_PORT}'): "
             "a relay is the userland proxy's way, this lab is about the kernel's")  # fmt: skip
    name = f"http://{GATEWAY}:{HOST_PORT}/ serves the namespace's page"
    if not ready:
        c.blocked(name, "the namespace's httpd, the chain or the jump is not in place")
        return
    got, why = fetch(f"http://{GATEWAY}:{HOST_PORT}/")
    if got is None:
        detail = f"expected the page, found no answer ({why})"
    elif got != page:
        detail = f"expected the content of www/index.html, found {got[:60]!r}"
    else:
        detail = ""
    c.expect(name, not detail, detail)


def main() -> int:
    c = Checker("07")
    page = read_text(f"{lab_dir('07')}/www/index.html")
    if page is None:
        c.expect("the lab is set up", False, f"expected {lab_dir('07')}/www/index.html, found none: "
                 "minidocker lab start 07")  # fmt: skip
        return c.finish()
    ns_ok = check_network(c)
    served = check_httpd(c, ns_ok, page)
    rules_ok = check_rules(c)
    check_published(c, served and rules_ok, page)
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
