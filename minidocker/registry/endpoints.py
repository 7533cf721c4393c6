"""Which URLs a registry is spoken to at: HTTPS, plain HTTP, or HTTPS falling back to HTTP.

Docker's rule (``registry/config.go``, ``daemon.json`` key ``insecure-registries``): a registry is
*insecure* when its ``host[:port]`` is listed, or when its host (resolved, for a name) has an
address inside a listed CIDR; ``127.0.0.0/8`` is always listed. An insecure registry is tried over
HTTPS without certificate checks first and over plain HTTP when that fails; any other registry
over verified HTTPS only. minidocker takes one shortcut: a literal loopback IPv4 address or
``localhost`` goes straight to plain HTTP, which is what every local test registry speaks.

The list is read from ``daemon.json`` files (Docker's format; unknown keys are ignored)::

    {"insecure-registries": ["10.0.0.0/8", "myregistry.lan:5000", "[fd00::1]:5000"]}

``$MINIDOCKER_DAEMON_CONFIG`` names the one file to read (tests use it); otherwise
``/etc/minidocker/daemon.json`` and ``~/.minidocker/daemon.json`` are both read when present.

>>> cfg = InsecureConfig.from_entries(["10.1.0.0/16", "reg.lan:5000"], "daemon.json")
>>> [(e.url, e.verify) for e in endpoints("reg.lan:5000", cfg)]
[('https://reg.lan:5000', False), ('http://reg.lan:5000', True)]
>>> [e.url for e in endpoints("127.0.0.1:5000", cfg)], [e.url for e in endpoints("10.1.2.3", cfg)]
(['http://127.0.0.1:5000'], ['https://10.1.2.3', 'http://10.1.2.3'])
>>> [e.url for e in endpoints("192.0.2.7:5000", cfg)]
['https://192.0.2.7:5000']
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field

from minidocker.errors import InvalidInput

ENV_CONFIG = "MINIDOCKER_DAEMON_CONFIG"
SYSTEM_CONFIG = "/etc/minidocker/daemon.json"
DEFAULT_CIDRS = ("127.0.0.0/8",)  # Docker adds it whatever the configuration says
HUB_DOMAINS = ("docker.io", "index.docker.io", "registry-1.docker.io")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Endpoint:
    """One URL to try: ``verify=False`` is HTTPS without certificate checks (insecure registries)."""

    url: str
    verify: bool = True

    @property
    def is_http(self) -> bool:
        return self.url.startswith("http://")


@dataclass(frozen=True)
class InsecureConfig:
    """The ``insecure-registries`` entries: CIDRs and ``host[:port]`` index names."""

    cidrs: tuple[Network, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: list[object], source: str) -> InsecureConfig:
        """Docker's ``LoadInsecureRegistries``: no scheme, a CIDR or an index name per entry."""
        cidrs: list[Network] = [ipaddress.ip_network(c) for c in DEFAULT_CIDRS]
        names: set[str] = set()
        for raw in entries:
            if not isinstance(raw, str) or not raw.strip():
                raise InvalidInput(f"{source}: insecure-registries: invalid entry {raw!r}", subject=source)
            entry = raw.strip().removesuffix("/")
            if "://" in entry:
                raise InvalidInput(f"{source}: insecure registry {entry} should not contain '://'",
                                   subject=source)  # fmt: skip
            if "/" in entry:
                try:
                    cidrs.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise InvalidInput(f"{source}: insecure registry {entry} is not a valid CIDR",
                                       subject=source) from None  # fmt: skip
                continue
            names.add(entry.lower())
        return cls(tuple(cidrs), frozenset(names))


def config_files() -> list[str]:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return [explicit]
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return [SYSTEM_CONFIG, os.path.join(home, ".minidocker", "daemon.json")]


def load_config() -> InsecureConfig:
    """Every ``insecure-registries`` entry of the daemon.json files (an explicit file must exist)."""
    entries: list[object] = []
    explicit = bool(os.environ.get(ENV_CONFIG))
    sources = []
    for path in config_files():
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            if explicit:
                raise InvalidInput(f"unable to configure the registry client: open {path}: "
                                   "no such file or directory", subject=path) from None  # fmt: skip
            continue
        except ValueError as e:
            raise InvalidInput(f"{path}: invalid JSON: {e}", subject=path) from None
        if not isinstance(doc, dict):
            raise InvalidInput(f"{path}: not a JSON object", subject=path)
        items = doc.get("insecure-registries") or []
        if not isinstance(items, list):
            raise InvalidInput(f"{path}: insecure-registries must be a list", subject=path)
        entries.extend(items)
        sources.append(path)
    return InsecureConfig.from_entries(entries, " ".join(sources) or "daemon.json")


def split_host(domain: str) -> str:
    """The host of ``host[:port]`` (brackets of an IPv6 literal removed)."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_local(domain: str) -> bool:
    """A literal 127.0.0.0/8 address or ``localhost``: plain HTTP straight away."""
    host = split_host(domain).lower()
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.version == 4 and addr.is_loopback


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:  # Docker resolves the name too (isCIDRMatch); a failed lookup just means "no match"
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


def is_insecure(domain: str, config: InsecureConfig) -> bool:
    """Docker's ``isSecureIndex``, negated: a listed index name, or an address in a listed CIDR."""
    if domain.lower() in config.names:
        return True
    addrs = _addresses(split_host(domain))
    return any(a in net for a in addrs for net in config.cidrs if a.version == net.version)


def endpoints(domain: str, config: InsecureConfig | None = None) -> list[Endpoint]:
    """The URLs to try, in order, for ``domain`` (``host[:port]`` as in a reference)."""
    if domain in HUB_DOMAINS:
        return [Endpoint("https://registry-1.docker.io")]
    if is_local(domain):
        return [Endpoint("http://" + domain)]
    if config is None:
        config = load_config()
    if is_insecure(domain, config):
        return [Endpoint("https://" + domain, verify=False), Endpoint("http://" + domain)]
    return [Endpoint("https://" + domain)]
