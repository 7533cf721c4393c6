"""The bridge's iptables rules, in our own chains, like dockerd's ``DOCKER*`` chains.

Rules are data (:class:`Rule`): :func:`bridge_rules` says what a network needs, :func:`apply`
adds what is missing (``-C`` then ``-A``: idempotent) and :func:`remove` deletes it. Every rule
lives in a chain of ours; the built-in chains only get one jump each::

    filter  FORWARD     -j MINIDOCKER-FORWARD
    nat     PREROUTING  -m addrtype --dst-type LOCAL -j MINIDOCKER            (ports, chapter 7)
    nat     OUTPUT      ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j MINIDOCKER
    nat     POSTROUTING -j MINIDOCKER-POSTROUTING

    >>> [str(r) for r in bridge_rules("br0", "10.1.0.0/24")][-1]
    '-t nat -A MINIDOCKER-POSTROUTING -s 10.1.0.0/24 ! -o br0 -j MASQUERADE'

When the last rule of ours is gone the jumps and chains go too (:func:`remove_chains_if_unused`),
so ``iptables-save | grep -i minidocker`` is empty on a host without networks. The rules are
host-wide while networks belong to a data root: callers hold the host lock
(:func:`minidocker.network.netlink.host_lock`) around apply/remove.

We run the ``iptables`` binary (``-w``: wait for the xtables lock) rather than speak nftables'
netlink: the rules read exactly as ``iptables-save`` prints them, which is what students compare.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from minidocker import trace
from minidocker.errors import MinidockerError

FORWARD_CHAIN = "MINIDOCKER-FORWARD"
NAT_CHAIN = "MINIDOCKER"
POSTROUTING_CHAIN = "MINIDOCKER-POSTROUTING"


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"-t {self.table} -A {self.chain} {' '.join(self.args)}"


# (table, our chain, built-in chain, the jump's match)
JUMPS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("filter", FORWARD_CHAIN, "FORWARD", ()),
    ("nat", NAT_CHAIN, "PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL")),
    ("nat", NAT_CHAIN, "OUTPUT", ("!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL")),
    ("nat", POSTROUTING_CHAIN, "POSTROUTING", ()),
)


def bridge_rules(bridge: str, subnet: str, *, internal: bool = False) -> list[Rule]:
    """What one bridge network needs (dockerd's setupIPTables for a bridge, in our chains).

    Internal networks (``--internal``) talk only among themselves: traffic in or out of the
    bridge is dropped, and nothing is masqueraded.
    """
    f, n = FORWARD_CHAIN, NAT_CHAIN
    if internal:
        return [
            Rule("filter", f, ("-i", bridge, "!", "-o", bridge, "-j", "DROP")),
            Rule("filter", f, ("!", "-i", bridge, "-o", bridge, "-j", "DROP")),
            Rule("filter", f, ("-i", bridge, "-o", bridge, "-j", "ACCEPT")),
        ]
    return [
        Rule(
            "filter", f, ("-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
        ),
        Rule("filter", f, ("-i", bridge, "!", "-o", bridge, "-j", "ACCEPT")),
        Rule("filter", f, ("-i", bridge, "-o", bridge, "-j", "ACCEPT")),
        Rule("nat", n, ("-i", bridge, "-j", "RETURN")),
        Rule("nat", POSTROUTING_CHAIN, ("-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE")),
    ]


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not args or args[-1] != "--quiet-check":
        trace.emit(lambda: "iptables " + " ".join(shlex.quote(a) for a in args))
    else:
        args = args[:-1]
    res = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise MinidockerError(
            f"iptables {' '.join(args)}: {res.stderr.strip() or res.returncode}", subject="iptables"
        )
    return res


def _exists(table: str, chain: str, args: tuple[str, ...]) -> bool:
    return _iptables("-t", table, "-C", chain, *args, "--quiet-check", check=False).returncode == 0


def _chain_exists(table: str, chain: str) -> bool:
    return _iptables("-t", table, "-n", "-L", chain, "--quiet-check", check=False).returncode == 0


def ensure_chains() -> None:
    """Our chains and the jumps into them, each created only if missing."""
    for table, chain, builtin, match in JUMPS:
        if not _chain_exists(table, chain):
            _iptables("-t", table, "-N", chain)
        jump = (*match, "-j", chain)
        if not _exists(table, builtin, jump):
            _iptables("-t", table, "-A", builtin, *jump)


def apply(rules: list[Rule]) -> None:
    """Add each rule that is not there yet (creating our chains first)."""
    ensure_chains()
    for r in rules:
        if not _exists(r.table, r.chain, r.args):
            _iptables("-t", r.table, "-A", r.chain, *r.args)


def remove(rules: list[Rule]) -> None:
    """Delete each rule that is there (missing ones are fine: removal is idempotent)."""
    for r in rules:
        if _chain_exists(r.table, r.chain) and _exists(r.table, r.chain, r.args):
            _iptables("-t", r.table, "-D", r.chain, *r.args, check=False)


def _chain_rules(table: str, chain: str) -> list[str]:
    res = _iptables("-t", table, "-S", chain, "--quiet-check", check=False)
    if res.returncode != 0:
        return []
    return [line for line in res.stdout.splitlines() if line.startswith("-A ")]


def remove_chains_if_unused() -> bool:
    """No rule left in any chain of ours: delete the jumps and the chains. True if removed."""
    if any(_chain_rules(table, chain) for table, chain, _, _ in JUMPS):
        return False
    for table, chain, builtin, match in JUMPS:
        jump = (*match, "-j", chain)
        while _exists(table, builtin, jump):
            _iptables("-t", table, "-D", builtin, *jump, check=False)
    for table, chain in {(t, c) for t, c, _, _ in JUMPS}:
        if _chain_exists(table, chain):
            _iptables("-t", table, "-X", chain, check=False)
    return True
