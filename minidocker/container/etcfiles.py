"""The files bind-mounted over the container's ``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf``.

They live in ``containers/<id>/`` (all 0644) and are written at **start**, not at create, exactly as
Docker 20.10 + libnetwork do it (``container.BuildHostnameFile``, ``sandbox.setupResolutionFiles``,
``endpoint.sbJoin``; shared/docker-layout.md 7):

* ``hostname``: ``Config.Hostname + "\\n"`` (the domain name is not included).
* ``hosts``: the six default records, then ``--add-host`` records, then one ``<ip>\\t<hostname>``
  line per address of the joined endpoint (none for ``--network none``). Host networking copies
  the host's ``/etc/hosts`` instead (unless ``--add-host`` is given).
* ``resolv.conf``: the host file filtered by libnetwork's ``FilterResolvDNS`` twice, once when the
  sandbox is created (IPv6 assumed on) and once when the endpoint joins (the network's IPv6
  setting). Localhost nameservers are dropped; when none are left Google's servers are appended
  *after a blank line*, so the bytes depend on the host file (``\\nnameserver 8.8.8.8\\n...``).
  ``--dns/--dns-search/--dns-option`` instead rebuild the file from scratch. Host networking copies
  the host file and writes **no** ``resolv.conf.hash``.
* ``resolv.conf.hash``: ``sha256:<hex>`` of the content (no newline), used to spot user edits.

>>> hosts_file(ips=["172.17.0.2"], hostname="21609a504392").splitlines()[-1]
b'172.17.0.2\\t21609a504392'
>>> sandbox_resolv_conf(b"nameserver 127.0.0.53\\noptions edns0\\n", network_mode="default").content
b'options edns0\\n\\nnameserver 8.8.8.8\\nnameserver 8.8.4.4\\n'
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from minidocker.errors import InvalidInput
from minidocker.record import FrozenRecord, record

# -- hostname -------------------------------------------------------------------------------------


def hostname_file(hostname: str) -> bytes:
    """``containers/<id>/hostname``: the default hostname is the short id.

    >>> hostname_file("21609a504392")
    b'21609a504392\\n'
    """
    return hostname.encode() + b"\n"


# -- hosts ----------------------------------------------------------------------------------------
DEFAULT_HOSTS: list[tuple[str, str]] = [  # (ip, names), etchosts.defaultContent
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
]
HOST_GATEWAY = "host-gateway"  # --add-host name:host-gateway


def _record(ip: str, names: str) -> bytes:
    return f"{ip}\t{names}\n".encode()


def parse_extra_hosts(
    extra_hosts: Sequence[str] | None, *, host_gateway_ip: str | None = None
) -> list[tuple[str, str]]:
    """``--add-host name:ip`` values to (ip, name) records; split on the first ``:`` so IPv6
    addresses work; ``host-gateway`` becomes the daemon's host gateway address.

    >>> parse_extra_hosts(["db:10.0.0.5", "v6:::1"])
    [('10.0.0.5', 'db'), ('::1', 'v6')]
    """
    out: list[tuple[str, str]] = []
    for item in extra_hosts or ():
        name, sep, ip = item.partition(":")
        if not sep or not name:
            raise InvalidInput(f"bad format for add-host: {item!r}")
        if ip == HOST_GATEWAY:
            if not host_gateway_ip:
                raise InvalidInput("unable to derive the IP value for host-gateway")
            ip = host_gateway_ip
        else:
            import ipaddress  # only for --add-host: not on every start

            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidInput(f"invalid IP address in add-host: {ip!r}") from None
        out.append((ip, name))
    return out


def _main_names(hostname: str, domainname: str) -> str:
    # "fqdn short" when the name has a dot, as libnetwork writes the container's own record
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short, dot, _ = fqdn.partition(".")
    return f"{fqdn} {short}" if dot else fqdn


def own_record(ip: str, *, hostname: str, domainname: str = "") -> bytes:
    """The container's own line for one of its addresses (``sandbox.updateHostsFile``), as
    libnetwork appends it when an endpoint joins: at start, and at ``network connect``.

    >>> own_record("10.0.1.5", hostname="web", domainname="example.com")
    b'10.0.1.5\\tweb.example.com web\\n'
    """
    return _record(ip, _main_names(hostname, domainname))


def hosts_file(
    *,
    hostname: str,
    domainname: str = "",
    ips: Sequence[str] = (),
    extra_hosts: Sequence[tuple[str, str]] = (),
) -> bytes:
    """``etchosts.Build`` (defaults + extra records) followed by ``updateHostsFile`` (one record
    per endpoint address, IPv4 first, appended when the endpoint joins).

    >>> hosts_file(hostname="c1").count(b"\\n")
    6
    """
    parts = [_record(ip, names) for ip, names in DEFAULT_HOSTS]
    parts += [_record(ip, name) for ip, name in extra_hosts]
    parts += [own_record(ip, hostname=hostname, domainname=domainname) for ip in ips]
    return b"".join(parts)


def container_hosts(
    network_mode: str,
    *,
    hostname: str,
    domainname: str = "",
    ips: Sequence[str] = (),
    extra_hosts: Sequence[str] | None = None,
    host_gateway_ip: str | None = None,
    origin_path: str = "/etc/hosts",
) -> bytes | None:
    """The ``hosts`` file for a container on ``network_mode``. ``None`` means Docker writes no
    file (host networking and the host has no ``/etc/hosts``)."""
    records = parse_extra_hosts(extra_hosts, host_gateway_ip=host_gateway_ip)
    if network_mode == "host":
        if not records:
            try:
                with open(origin_path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        # with --add-host the file is built, but no own-address line (origin path is set)
        return hosts_file(hostname=hostname, domainname=domainname, extra_hosts=records)
    return hosts_file(hostname=hostname, domainname=domainname, ips=ips, extra_hosts=records)


# -- resolv.conf ----------------------------------------------------------------------------------
# libnetwork/resolvconf's Go regexps, translated: Go's \s is [\t\n\f\r ] (no \v), a Go `$` without
# (?m) is end of text (\Z here).
_WS = rb"[\t\n\f\r ]"
_IPV4_BLOCK = rb"(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_IPV4 = rb"(" + _IPV4_BLOCK + rb"\.){3}" + _IPV4_BLOCK
_IPV6 = rb"([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})(%[0-9A-Za-z_]+)?"
_IP_LOCALHOST = rb"((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1)$)"
_LOCALHOST_NS = re.compile(rb"(?m)^nameserver" + _WS + rb"+" + _IP_LOCALHOST + _WS + rb"*\n*")
_NS_IPV6 = re.compile(rb"(?m)^nameserver" + _WS + rb"+" + _IPV6 + _WS + rb"*\n*")
_NS_ANY = re.compile(
    rb"^" + _WS + rb"*nameserver" + _WS + rb"*((" + _IPV4 + rb")|(" + _IPV6 + rb"))" + _WS + rb"*\Z"
)
_NS_V4 = re.compile(rb"^" + _WS + rb"*nameserver" + _WS + rb"*((" + _IPV4 + rb"))" + _WS + rb"*\Z")
_NS_V6 = re.compile(rb"^" + _WS + rb"*nameserver" + _WS + rb"*((" + _IPV6 + rb"))" + _WS + rb"*\Z")
_SEARCH = re.compile(rb"^" + _WS + rb"*search" + _WS + rb"*(([^\t\n\f\r ]+" + _WS + rb"*)*)\Z")
_OPTIONS = re.compile(rb"^" + _WS + rb"*options" + _WS + rb"*(([^\t\n\f\r ]+" + _WS + rb"*)*)\Z")

DEFAULT_IPV4_DNS = ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
DEFAULT_IPV6_DNS = ["nameserver 2001:4860:4860::8888", "nameserver 2001:4860:4860::8844"]
EMBEDDED_DNS = "127.0.0.11"  # user-defined networks' resolver


def hash_data(data: bytes) -> str:
    """``ioutils.HashData``: the ``resolv.conf.hash`` content.

    >>> hash_data(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    from minidocker.image.digest import sha256_digest  # no OpenSSL load for ~100 bytes

    return sha256_digest(data)


def _lines(content: bytes) -> list[bytes]:
    # getLines: split on \n and cut each line at its first '#'
    return [line.split(b"#", 1)[0] for line in content.split(b"\n")]


def get_nameservers(content: bytes, kind: str = "ip") -> list[str]:
    """``GetNameservers``: kind ``ip`` (both), ``ipv4`` or ``ipv6``."""
    rx = {"ip": _NS_ANY, "ipv4": _NS_V4, "ipv6": _NS_V6}[kind]
    out = []
    for line in _lines(content):
        m = rx.match(line)
        if m:
            out.append(m.group(1).decode())
    return out


def get_search_domains(content: bytes) -> list[str]:
    """``GetSearchDomains``: the words of the *last* ``search`` line."""
    domains: list[str] = []
    for line in _lines(content):
        m = _SEARCH.match(line)
        if m:
            domains = m.group(1).decode().split()
    return domains


def get_options(content: bytes) -> list[str]:
    """``GetOptions``: the words of the *last* ``options`` line."""
    options: list[str] = []
    for line in _lines(content):
        m = _OPTIONS.match(line)
        if m:
            options = m.group(1).decode().split()
    return options


def filter_resolv_dns(content: bytes, ipv6_enabled: bool) -> bytes:
    """``FilterResolvDNS``: drop localhost nameservers (and IPv6 ones unless IPv6 is enabled);
    if no nameserver is left, append ``"\\n" + "\\n".join(defaults)`` -- note: no final newline.

    >>> filter_resolv_dns(b"nameserver 127.0.0.1\\n", False)
    b'\\nnameserver 8.8.8.8\\nnameserver 8.8.4.4'
    """
    cleaned = _LOCALHOST_NS.sub(b"", content)
    if not ipv6_enabled:
        cleaned = _NS_IPV6.sub(b"", cleaned)
    if not get_nameservers(cleaned):
        dns = DEFAULT_IPV4_DNS + (DEFAULT_IPV6_DNS if ipv6_enabled else [])
        cleaned += ("\n" + "\n".join(dns)).encode()
    return cleaned


def build_resolv_conf(dns: Sequence[str], dns_search: Sequence[str], dns_options: Sequence[str]) -> bytes:
    """``resolvconf.Build``: ``search``, ``nameserver`` lines, ``options``, each ending in ``\\n``;
    a search list of just ``.`` writes no search line.

    >>> build_resolv_conf(["1.1.1.1"], ["example.com"], ["ndots:2"])
    b'search example.com\\nnameserver 1.1.1.1\\noptions ndots:2\\n'
    """
    out = []
    if dns_search:
        search = " ".join(dns_search)
        if search.strip(" ") != ".":
            out.append(f"search {search}\n")
    out += [f"nameserver {d}\n" for d in dns]
    if dns_options:
        opts = " ".join(dns_options)
        if opts.strip(" "):
            out.append(f"options {opts}\n")
    return "".join(out).encode()


def host_resolv_conf_path(default: str = "/etc/resolv.conf") -> str:
    """``resolvconf.Path``: systemd-resolved's upstream file when the host's only nameserver is
    its stub 127.0.0.53 (that address means nothing inside a container)."""
    try:
        with open(default, "rb") as f:
            ns = get_nameservers(f.read())
    except OSError:
        return default
    if ns == ["127.0.0.53"]:
        return "/run/systemd/resolve/resolv.conf"
    return default


@record(frozen=True)
class ResolvConf(FrozenRecord):
    """A container's ``resolv.conf`` and the ``resolv.conf.hash`` Docker writes next to it
    (``hash`` None: no hash file, the host-network copy case)."""

    content: bytes
    hash: str | None


def sandbox_resolv_conf(
    origin: bytes | None,
    *,
    network_mode: str,
    dns: Sequence[str] | None = None,
    dns_search: Sequence[str] | None = None,
    dns_options: Sequence[str] | None = None,
    ipv6_enabled: bool = False,
    embedded_dns: str | None = None,
) -> ResolvConf:
    """libnetwork's ``setupDNS`` + ``updateDNS`` (+ ``rebuildDNS`` with ``embedded_dns``).

    ``origin`` is the host file (None when it does not exist): ``/etc/resolv.conf`` for host and
    user-defined networks, :func:`host_resolv_conf_path` otherwise. ``ipv6_enabled`` is the joined
    network's setting (the default bridge: off). ``embedded_dns`` (``127.0.0.11``, user-defined
    networks) replaces the IPv4 nameservers and adds ``ndots:0``; the hash file keeps the hash
    of the file *before* that rewrite, as libnetwork leaves it.
    """
    user_dns = bool(dns or dns_search or dns_options)
    if network_mode == "host" and not user_dns:
        return ResolvConf(origin if origin is not None else b"", None)
    current = origin if origin is not None else b""
    if user_dns:
        content = build_resolv_conf(
            list(dns) if dns else get_nameservers(current),
            list(dns_search) if dns_search else get_search_domains(current),
            list(dns_options) if dns_options else get_options(current),
        )
        return ResolvConf(content, hash_data(content))  # updateDNS leaves user config alone
    content = filter_resolv_dns(current, True)  # sandbox creation: IPv6 state not known yet
    content = filter_resolv_dns(content, ipv6_enabled)  # the endpoint joins (updateDNS)
    digest = hash_data(content)
    if embedded_dns:
        options = get_options(content)
        if not any("ndots" in o for o in options):
            options.append("ndots:0")
        content = build_resolv_conf(
            [embedded_dns, *get_nameservers(content, "ipv6")], get_search_domains(content), options
        )
    return ResolvConf(content, digest)


def read_origin(path: str) -> bytes | None:
    """The host file's bytes, None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def container_resolv_conf(
    network_mode: str,
    *,
    dns: Sequence[str] | None = None,
    dns_search: Sequence[str] | None = None,
    dns_options: Sequence[str] | None = None,
    ipv6_enabled: bool = False,
    user_defined: bool = False,
) -> ResolvConf:
    """:func:`sandbox_resolv_conf` reading the host file Docker would pick for ``network_mode``."""
    if network_mode == "host" or user_defined:
        origin_path = "/etc/resolv.conf"
    else:
        origin_path = host_resolv_conf_path()
    return sandbox_resolv_conf(
        read_origin(origin_path),
        network_mode=network_mode,
        dns=dns,
        dns_search=dns_search,
        dns_options=dns_options,
        ipv6_enabled=ipv6_enabled,
        embedded_dns=EMBEDDED_DNS if user_defined else None,
    )


def host_hostname() -> str:
    """``os.Hostname()``: the default ``Config.Hostname`` with ``--network host``."""
    return os.uname().nodename
