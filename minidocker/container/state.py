"""``containers/<id>/config.v2.json``: the container and its state, in Docker 20.10's key order.

Docker encodes its ``container.Container`` struct (``json.NewEncoder``: one line + ``\\n``), with the
embedded ``*State`` as the ``"State"`` key and ``HostConfig`` kept out (it goes to hostconfig.json,
see :mod:`minidocker.container.hostconfig`). Times are RFC3339Nano strings kept exactly as written;
the zero time is ``0001-01-01T00:00:00Z`` (shared/docker-layout.md 7.1).

>>> st = State()
>>> st.status(), st.describe()
('created', 'Created')
>>> st = State(exit_code=0, started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:05Z")
>>> st.describe(now_ns=gojson.parse_rfc3339("2024-01-01T00:02:05Z"))
'Exited (0) 2 minutes ago'
"""

from __future__ import annotations

import json
import time
from dataclasses import field

from minidocker import gojson
from minidocker.container.hostconfig import HostConfig, PortMap, port_map_from_go, port_map_to_go
from minidocker.image.config import container_config, normalize_container_config
from minidocker.record import Record, record
from minidocker.units import human_duration

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's time.Time{} in RFC3339Nano


def is_zero_time(t: str) -> bool:
    """``time.Time.IsZero`` for a stored timestamp (``0001-01-01T00:00:00Z``)."""
    if t in ("", ZERO_TIME):  # the common cases without parsing (strptime's first use costs ~5 ms)
        return True
    return t.startswith("0001-01-01T00:00:00") and gojson.parse_rfc3339(t) == _ZERO_NS


_ZERO_NS = (
    -62_135_596_800_000_000_000
)  # gojson.parse_rfc3339(ZERO_TIME), as a constant (no strptime at import)


def now_rfc3339() -> str:
    """``time.Now().UTC()`` as Go's JSON encoder writes it."""
    return gojson.rfc3339nano(ns=time.time_ns())


# -- State ---------------------------------------------------------------------------------------
@record
class State(Record):
    """``container.State``. ``Running`` and ``Paused`` are both true while paused (freezer)."""

    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    removal_in_progress: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None  # types.Health {Status, FailingStreak, Log}; null if none

    def status(self) -> str:
        """``State.StateString``: created, running, paused, restarting, removing, exited, dead."""
        if self.running:
            if self.paused:
                return "paused"
            if self.restarting:
                return "restarting"
            return "running"
        if self.removal_in_progress:
            return "removing"
        if self.dead:
            return "dead"
        if is_zero_time(self.started_at):
            return "created"
        return "exited"

    def describe(self, now_ns: int | None = None) -> str:
        """``State.String``: the STATUS column of ``ps`` (``Up 3 seconds``, ``Exited (0) 2 minutes
        ago``, ``Created``...), durations by go-units ``HumanDuration``."""
        now = time.time_ns() if now_ns is None else now_ns

        def since(t: str) -> str:
            return human_duration((now - gojson.parse_rfc3339(t)) / 1e9)

        if self.running:
            if self.paused:
                return f"Up {since(self.started_at)} (Paused)"
            if self.restarting:
                return f"Restarting ({self.exit_code}) {since(self.finished_at)} ago"
            if self.health is not None:
                status = self.health.get("Status") or ""
                # Health.String: "starting" gets a prefix, healthy/unhealthy speak for themselves
                return (
                    f"Up {since(self.started_at)} ({'health: starting' if status == 'starting' else status})"
                )
            return f"Up {since(self.started_at)}"
        if self.removal_in_progress:
            return "Removal In Progress"
        if self.dead:
            return "Dead"
        if is_zero_time(self.started_at):
            return "Created"
        if is_zero_time(self.finished_at):
            return ""
        return f"Exited ({self.exit_code}) {since(self.finished_at)} ago"

    def to_go(self) -> dict[str, Any]:
        return {
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "RemovalInProgress": self.removal_in_progress,
            "Dead": self.dead,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
            "Health": self.health,
        }

    @classmethod
    def from_go(cls, d: dict[str, Any] | None) -> State:
        d = d or {}
        return cls(
            running=bool(d.get("Running")),
            paused=bool(d.get("Paused")),
            restarting=bool(d.get("Restarting")),
            oom_killed=bool(d.get("OOMKilled")),
            removal_in_progress=bool(d.get("RemovalInProgress")),
            dead=bool(d.get("Dead")),
            pid=int(d.get("Pid") or 0),
            exit_code=int(d.get("ExitCode") or 0),
            error=d.get("Error") or "",
            started_at=d.get("StartedAt") or ZERO_TIME,
            finished_at=d.get("FinishedAt") or ZERO_TIME,
            health=d.get("Health"),
        )


# -- NetworkSettings -----------------------------------------------------------------------------
@record
class EndpointSettings(Record):
    """``daemon/network.EndpointSettings``: the API's EndpointSettings plus ``IPAMOperational``."""

    ipam_config: dict[str, Any] | None = None  # {IPv4Address?, IPv6Address?, LinkLocalIPs?}
    links: list[str] | None = None
    aliases: list[str] | None = None
    network_id: str = ""
    endpoint_id: str = ""
    gateway: str = ""
    ip_address: str = ""
    ip_prefix_len: int = 0
    ipv6_gateway: str = ""
    global_ipv6_address: str = ""
    global_ipv6_prefix_len: int = 0
    mac_address: str = ""
    driver_opts: dict[str, str] | None = None
    ipam_operational: bool = False

    def to_go(self) -> dict[str, Any]:
        ipam = None
        if self.ipam_config is not None:
            # EndpointIPAMConfig: all three fields omitempty, in this order
            ipam = {
                k: self.ipam_config[k]
                for k in ("IPv4Address", "IPv6Address", "LinkLocalIPs")
                if self.ipam_config.get(k)
            }
        return {
            "IPAMConfig": ipam,
            "Links": self.links,
            "Aliases": self.aliases,
            "NetworkID": self.network_id,
            "EndpointID": self.endpoint_id,
            "Gateway": self.gateway,
            "IPAddress": self.ip_address,
            "IPPrefixLen": self.ip_prefix_len,
            "IPv6Gateway": self.ipv6_gateway,
            "GlobalIPv6Address": self.global_ipv6_address,
            "GlobalIPv6PrefixLen": self.global_ipv6_prefix_len,
            "MacAddress": self.mac_address,
            "DriverOpts": None if self.driver_opts is None else gojson.sorted_map(self.driver_opts),
            "IPAMOperational": self.ipam_operational,
        }

    @classmethod
    def from_go(cls, d: dict[str, Any] | None) -> EndpointSettings:
        d = d or {}
        return cls(
            ipam_config=d.get("IPAMConfig"),
            links=d.get("Links"),
            aliases=d.get("Aliases"),
            network_id=d.get("NetworkID") or "",
            endpoint_id=d.get("EndpointID") or "",
            gateway=d.get("Gateway") or "",
            ip_address=d.get("IPAddress") or "",
            ip_prefix_len=int(d.get("IPPrefixLen") or 0),
            ipv6_gateway=d.get("IPv6Gateway") or "",
            global_ipv6_address=d.get("GlobalIPv6Address") or "",
            global_ipv6_prefix_len=int(d.get("GlobalIPv6PrefixLen") or 0),
            mac_address=d.get("MacAddress") or "",
            driver_opts=d.get("DriverOpts"),
            ipam_operational=bool(d.get("IPAMOperational")),
        )


@record
class NetworkSettings(Record):
    """``daemon/network.Settings``. At create time only ``Networks`` (one empty endpoint for the
    network mode) and ``IsAnonymousEndpoint`` are set; the networking code fills in the sandbox,
    endpoint ids, addresses and ``Ports`` at start and clears them again at stop."""

    bridge: str = ""
    sandbox_id: str = ""
    hairpin_mode: bool = False
    link_local_ipv6_address: str = ""
    link_local_ipv6_prefix_len: int = 0
    networks: dict[str, EndpointSettings] | None = None
    service: dict[str, Any] | None = None
    ports: PortMap | None = None
    sandbox_key: str = ""
    secondary_ip_addresses: list[Any] | None = None
    secondary_ipv6_addresses: list[Any] | None = None
    is_anonymous_endpoint: bool = False
    has_swarm_endpoint: bool = False

    @classmethod
    def for_create(
        cls, network_mode: str, *, anonymous: bool, default_network: str = "bridge"
    ) -> NetworkSettings:
        """What ``updateContainerNetworkSettings`` stores at create: ``default`` maps to the
        daemon's default network (``bridge``); ``container:<x>`` gets no Networks at all.

        >>> list(NetworkSettings.for_create("none", anonymous=True).networks or {})
        ['none']
        """
        ns = cls(is_anonymous_endpoint=anonymous)
        if network_mode.startswith("container:"):
            return ns
        name = default_network if network_mode in ("", "default") else network_mode
        ns.networks = {name: EndpointSettings()}
        return ns

    def to_go(self) -> dict[str, Any]:
        return {
            "Bridge": self.bridge,
            "SandboxID": self.sandbox_id,
            "HairpinMode": self.hairpin_mode,
            "LinkLocalIPv6Address": self.link_local_ipv6_address,
            "LinkLocalIPv6PrefixLen": self.link_local_ipv6_prefix_len,
            "Networks": None
            if self.networks is None
            else gojson.sorted_map({k: v.to_go() for k, v in self.networks.items()}),
            "Service": self.service,
            "Ports": port_map_to_go(self.ports),
            "SandboxKey": self.sandbox_key,
            "SecondaryIPAddresses": self.secondary_ip_addresses,
            "SecondaryIPv6Addresses": self.secondary_ipv6_addresses,
            "IsAnonymousEndpoint": self.is_anonymous_endpoint,
            "HasSwarmEndpoint": self.has_swarm_endpoint,
        }

    @classmethod
    def from_go(cls, d: dict[str, Any] | None) -> NetworkSettings:
        d = d or {}
        nets = d.get("Networks")
        return cls(
            bridge=d.get("Bridge") or "",
            sandbox_id=d.get("SandboxID") or "",
            hairpin_mode=bool(d.get("HairpinMode")),
            link_local_ipv6_address=d.get("LinkLocalIPv6Address") or "",
            link_local_ipv6_prefix_len=int(d.get("LinkLocalIPv6PrefixLen") or 0),
            networks=None if nets is None else {k: EndpointSettings.from_go(v) for k, v in nets.items()},
            service=d.get("Service"),
            ports=port_map_from_go(d.get("Ports")),
            sandbox_key=d.get("SandboxKey") or "",
            secondary_ip_addresses=d.get("SecondaryIPAddresses"),
            secondary_ipv6_addresses=d.get("SecondaryIPv6Addresses"),
            is_anonymous_endpoint=bool(d.get("IsAnonymousEndpoint")),
            has_swarm_endpoint=bool(d.get("HasSwarmEndpoint")),
        )


# -- Container -----------------------------------------------------------------------------------
@record
class Container(Record):
    """``container.Container`` as stored in config.v2.json, plus its ``host_config`` (stored in
    hostconfig.json, ``json:"-"`` in Go).

    ``config`` is a ``container.Config`` dict in Go field order (:func:`image.config.container_config`);
    ``mount_points`` maps destination -> ``MountPoint`` dicts in their Go field order (the volumes
    code builds them). ``name`` has Docker's leading ``/``.

    >>> c = Container(id="ab" * 32, name="/x", image="sha256:" + "0" * 64, path="sh")
    >>> c.to_json()[:40]
    b'{"StreamConfig":{},"State":{"Running":fa'
    >>> Container.from_json(c.to_json()) == c
    True
    """

    id: str
    name: str
    image: str
    path: str = ""
    args: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=container_config)
    state: State = field(default_factory=State)
    created: str = field(default_factory=now_rfc3339)
    managed: bool = False
    network_settings: NetworkSettings = field(default_factory=NetworkSettings)
    log_path: str = ""  # set at start (StartLogger), "" after create
    driver: str = "overlay2"
    os: str = "linux"
    mount_label: str = ""
    process_label: str = ""
    restart_count: int = 0
    has_been_started_before: bool = False
    has_been_manually_stopped: bool = False
    mount_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_references: list[Any] | None = None
    config_references: list[Any] | None = None
    app_armor_profile: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    shm_path: str = ""
    resolv_conf_path: str = ""
    seccomp_profile: str = ""
    no_new_privileges: bool = False
    have_notify_enabled: bool = False  # LocalLogCacheMeta.HaveNotifyEnabled
    host_config: HostConfig = field(default_factory=HostConfig)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def short_name(self) -> str:
        """The name without Docker's leading slash (what ``ps`` prints)."""
        return self.name[1:] if self.name.startswith("/") else self.name

    def to_go(self) -> dict[str, Any]:
        return {
            # stream.Config has only unexported fields: always {}
            "StreamConfig": {},
            "State": self.state.to_go(),
            "ID": self.id,
            "Created": self.created,
            "Managed": self.managed,
            "Path": self.path,
            "Args": self.args,
            "Config": self.config,
            "Image": self.image,
            "NetworkSettings": self.network_settings.to_go(),
            "LogPath": self.log_path,
            "Name": self.name,
            "Driver": self.driver,
            "OS": self.os,
            "MountLabel": self.mount_label,
            "ProcessLabel": self.process_label,
            "RestartCount": self.restart_count,
            "HasBeenStartedBefore": self.has_been_started_before,
            "HasBeenManuallyStopped": self.has_been_manually_stopped,
            "MountPoints": gojson.sorted_map(self.mount_points),
            "SecretReferences": self.secret_references,
            "ConfigReferences": self.config_references,
            "AppArmorProfile": self.app_armor_profile,
            "HostnamePath": self.hostname_path,
            "HostsPath": self.hosts_path,
            "ShmPath": self.shm_path,
            "ResolvConfPath": self.resolv_conf_path,
            "SeccompProfile": self.seccomp_profile,
            "NoNewPrivileges": self.no_new_privileges,
            # a struct: `omitempty` never omits it
            "LocalLogCacheMeta": {"HaveNotifyEnabled": self.have_notify_enabled},
        }

    def to_json(self) -> bytes:
        """config.v2.json bytes: one line plus ``\\n``."""
        return gojson.encode_line(self.to_go())

    @classmethod
    def from_go(cls, d: dict[str, Any], host_config: HostConfig | None = None) -> Container:
        return cls(
            id=d.get("ID") or "",
            name=d.get("Name") or "",
            image=d.get("Image") or "",
            path=d.get("Path") or "",
            args=list(d.get("Args") or []),
            config=normalize_container_config(d.get("Config")) or container_config(),
            state=State.from_go(d.get("State")),
            created=d.get("Created") or ZERO_TIME,
            managed=bool(d.get("Managed")),
            network_settings=NetworkSettings.from_go(d.get("NetworkSettings")),
            log_path=d.get("LogPath") or "",
            driver=d.get("Driver") or "",
            os=d.get("OS") or "",
            mount_label=d.get("MountLabel") or "",
            process_label=d.get("ProcessLabel") or "",
            restart_count=int(d.get("RestartCount") or 0),
            has_been_started_before=bool(d.get("HasBeenStartedBefore")),
            has_been_manually_stopped=bool(d.get("HasBeenManuallyStopped")),
            mount_points=dict(d.get("MountPoints") or {}),
            secret_references=d.get("SecretReferences"),
            config_references=d.get("ConfigReferences"),
            app_armor_profile=d.get("AppArmorProfile") or "",
            hostname_path=d.get("HostnamePath") or "",
            hosts_path=d.get("HostsPath") or "",
            shm_path=d.get("ShmPath") or "",
            resolv_conf_path=d.get("ResolvConfPath") or "",
            seccomp_profile=d.get("SeccompProfile") or "",
            no_new_privileges=bool(d.get("NoNewPrivileges")),
            have_notify_enabled=bool((d.get("LocalLogCacheMeta") or {}).get("HaveNotifyEnabled")),
            host_config=host_config if host_config is not None else HostConfig(),
        )

    @classmethod
    def from_json(cls, data: bytes | str, host_config: HostConfig | None = None) -> Container:
        return cls.from_go(json.loads(data), host_config)


def entrypoint_and_args(entrypoint: list[str] | None, cmd: list[str] | None) -> tuple[str, list[str]]:
    """``getEntrypointAndArgs``: ``Path`` is the first word of entrypoint+cmd, ``Args`` the rest
    (always a list, so ``[]`` rather than ``null`` in config.v2.json).

    >>> entrypoint_and_args(None, ["sh", "-c", "x"])
    ('sh', ['-c', 'x'])
    """
    if entrypoint:
        return entrypoint[0], list(entrypoint[1:]) + list(cmd or [])
    words = list(cmd or [])
    if not words:
        return "", []
    return words[0], words[1:]
