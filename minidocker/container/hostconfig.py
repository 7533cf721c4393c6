"""``containers/<id>/hostconfig.json``: Docker 20.10's ``container.HostConfig``, byte for byte.

Docker writes the struct with ``json.NewEncoder(f).Encode`` (one line + ``\\n``), so every field of
``api/types/container/host_config.go`` appears in declaration order, including the embedded
``Resources`` struct whose fields are spliced in after ``Isolation``; only ``StorageOpt``, ``Tmpfs``,
``Sysctls``, ``Runtime``, ``Mounts`` and ``Init`` are ``omitempty`` (shared/docker-layout.md 7.2).

The dataclass defaults are what a plain ``docker run busybox`` stores (CLI 28 over API 1.41 plus the
daemon's ``adaptContainerSettings``/``createContainerOSSpecificSettings`` defaults on cgroup v1):

>>> hc = HostConfig()
>>> hc.to_json()[:60]
b'{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json'
>>> HostConfig.from_json(hc.to_json()) == hc
True
>>> hc = HostConfig.for_run(memory=64 << 20, privileged=True)
>>> hc.memory_swap, hc.masked_paths
(134217728, None)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import field, fields

from minidocker import gojson
from minidocker.record import Record, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

# oci.DefaultSpec().Linux.MaskedPaths / ReadonlyPaths: copied into HostConfig at create unless
# the container is privileged (daemon/create_unix.go).
DEFAULT_MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # config.DefaultShmSize


@record
class PortBinding(Record):
    """``nat.PortBinding``: ``{"HostIp":"","HostPort":"18080"}`` (empty HostIp = all addresses)."""

    host_ip: str = ""
    host_port: str = ""

    def to_go(self) -> dict[str, Any]:
        return {"HostIp": self.host_ip, "HostPort": self.host_port}

    @classmethod
    def from_go(cls, d: dict[str, Any]) -> PortBinding:
        return cls(host_ip=d.get("HostIp") or "", host_port=d.get("HostPort") or "")


# nat.PortMap: "80/tcp" -> bindings; a null list means "exposed, not published".
PortMap = dict[str, list[PortBinding] | None]


def port_map_to_go(pm: PortMap | None) -> dict[str, Any] | None:
    """A ``nat.PortMap`` as Go encodes it: keys sorted, ``null`` for nil binding lists."""
    if pm is None:
        return None
    return gojson.sorted_map({k: None if v is None else [b.to_go() for b in v] for k, v in pm.items()})


def port_map_from_go(d: dict[str, Any] | None) -> PortMap | None:
    if d is None:
        return None
    return {k: None if v is None else [PortBinding.from_go(b) for b in v] for k, v in d.items()}


@record
class RestartPolicy(Record):
    """``--restart``: ``no`` | ``always`` | ``unless-stopped`` | ``on-failure[:N]``."""

    name: str = "no"
    maximum_retry_count: int = 0

    def to_go(self) -> dict[str, Any]:
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}

    @classmethod
    def from_go(cls, d: dict[str, Any] | None) -> RestartPolicy:
        d = d or {}
        return cls(name=d.get("Name") or "", maximum_retry_count=int(d.get("MaximumRetryCount") or 0))


@record
class LogConfig(Record):
    """``--log-driver``/``--log-opt``; ``Config`` is a Go map (keys sorted, ``{}`` when empty)."""

    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)

    def to_go(self) -> dict[str, Any]:
        return {"Type": self.type, "Config": gojson.sorted_map(self.config)}

    @classmethod
    def from_go(cls, d: dict[str, Any] | None) -> LogConfig:
        d = d or {}
        return cls(type=d.get("Type") or "", config=dict(d.get("Config") or {}))


@record
class DeviceMapping(Record):
    """``--device /dev/x:/dev/y:rwm``."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"

    def to_go(self) -> dict[str, Any]:
        return {
            "PathOnHost": self.path_on_host,
            "PathInContainer": self.path_in_container,
            "CgroupPermissions": self.cgroup_permissions,
        }

    @classmethod
    def from_go(cls, d: dict[str, Any]) -> DeviceMapping:
        return cls(
            d.get("PathOnHost") or "", d.get("PathInContainer") or "", d.get("CgroupPermissions") or ""
        )


@record
class Ulimit(Record):
    """``units.Ulimit`` (``--ulimit nofile=1024:2048``)."""

    name: str
    hard: int
    soft: int

    def to_go(self) -> dict[str, Any]:
        return {"Name": self.name, "Hard": self.hard, "Soft": self.soft}

    @classmethod
    def from_go(cls, d: dict[str, Any]) -> Ulimit:
        return cls(d.get("Name") or "", int(d.get("Hard") or 0), int(d.get("Soft") or 0))


@record
class HostConfig(Record):
    """Every field of Docker 20.10's ``HostConfig`` (Python names; JSON names in ``_FIELDS``).

    Lists that are ``None`` encode as ``null``, empty lists as ``[]``: Docker distinguishes them
    and so does the CLI (``Dns`` is always ``[]``, ``Binds`` is ``null`` without ``-v``).
    Opaque nested structures nobody here interprets (blkio devices, device requests, mounts,
    ``--mount`` specs) are kept as parsed JSON values, in the order they were given.
    """

    binds: list[str] | None = None
    container_id_file: str = ""
    log_config: LogConfig = field(default_factory=LogConfig)
    network_mode: str = "default"
    port_bindings: PortMap | None = field(default_factory=dict)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = "host"
    dns: list[str] | None = field(default_factory=list)
    dns_options: list[str] | None = field(default_factory=list)
    dns_search: list[str] | None = field(default_factory=list)
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = "private"
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: dict[str, str] | None = None  # omitempty
    tmpfs: dict[str, str] | None = None  # omitempty
    uts_mode: str = ""
    userns_mode: str = ""
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: dict[str, str] | None = None  # omitempty
    runtime: str = "runc"  # omitempty
    console_size: tuple[int, int] = (0, 0)
    isolation: str = ""
    # -- embedded Resources ---------------------------------------------------------------------
    cpu_shares: int = 0
    memory: int = 0
    nano_cpus: int = 0
    cgroup_parent: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[Any] | None = field(default_factory=list)
    blkio_device_read_bps: list[Any] | None = field(default_factory=list)
    blkio_device_write_bps: list[Any] | None = field(default_factory=list)
    blkio_device_read_iops: list[Any] | None = field(default_factory=list)
    blkio_device_write_iops: list[Any] | None = field(default_factory=list)
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list[DeviceMapping] | None = field(default_factory=list)
    device_cgroup_rules: list[str] | None = None
    device_requests: list[Any] | None = None
    kernel_memory: int = 0
    kernel_memory_tcp: int = 0
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None  # *int64: null = kernel default
    oom_kill_disable: bool | None = False  # *bool, the daemon fills in false
    pids_limit: int | None = None  # *int64: null = unlimited/unchanged
    ulimits: list[Ulimit] | None = field(default_factory=list)
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_iops: int = 0
    io_maximum_bandwidth: int = 0
    # -- end of Resources -----------------------------------------------------------------------
    mounts: list[Any] | None = None  # omitempty
    masked_paths: list[str] | None = field(default_factory=lambda: list(DEFAULT_MASKED_PATHS))
    readonly_paths: list[str] | None = field(default_factory=lambda: list(DEFAULT_READONLY_PATHS))
    init: bool | None = None  # *bool, omitempty: only present when --init was given

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def for_run(cls, *, cgroup_v2: bool = False, **kw: Any) -> HostConfig:
        """The HostConfig the daemon stores for ``run``/``create`` with the given flag values,
        after its create-time defaulting (``adaptContainerSettings``, ``create_unix.go``):

        * ``MemorySwap`` = 2 x ``Memory`` when a memory limit is set without a swap limit;
        * ``ShmSize`` 64 MiB, ``IpcMode`` ``private`` when not given;
        * ``CgroupnsMode``: ``host`` on cgroup v1, ``private`` on v2 (privileged v1: ``host``);
        * privileged containers get ``null`` Masked/ReadonlyPaths instead of the defaults.

        >>> HostConfig.for_run(cgroup_v2=True).cgroupns_mode
        'private'
        """
        hc = cls(**kw)
        if hc.memory > 0 and hc.memory_swap == 0:
            hc.memory_swap = hc.memory * 2
        if hc.shm_size == 0:
            hc.shm_size = DEFAULT_SHM_SIZE
        if not hc.ipc_mode:
            hc.ipc_mode = "private"
        if "cgroupns_mode" not in kw or not hc.cgroupns_mode:
            hc.cgroupns_mode = "private" if cgroup_v2 else "host"
        if hc.oom_kill_disable is None:
            hc.oom_kill_disable = False
        if hc.privileged:
            if "masked_paths" not in kw:
                hc.masked_paths = None
            if "readonly_paths" not in kw:
                hc.readonly_paths = None
        return hc

    # -- serialisation --------------------------------------------------------------------------
    def to_go(self) -> dict[str, Any]:
        """The struct as an ordered dict ready for :func:`gojson.marshal`."""
        out: dict[str, Any] = {}
        for key, attr, omitempty in _FIELDS:
            value = getattr(self, attr)
            if omitempty and (value is None or value == "" or value == {} or value == []):
                continue  # Go's omitempty: nil pointer, "", empty map/slice (Init=false stays)
            enc = _ENCODERS.get(attr)
            out[key] = enc(value) if enc is not None else value
        return out

    def to_json(self) -> bytes:
        """``hostconfig.json`` bytes: one line plus ``\\n``."""
        return gojson.encode_line(self.to_go())

    @classmethod
    def from_go(cls, d: dict[str, Any]) -> HostConfig:
        """Inverse of :meth:`to_go`; missing keys take Go's zero value, not our run defaults."""
        kw: dict[str, Any] = {}
        for key, attr, _ in _FIELDS:
            value = d.get(key, _ZERO.get(attr))
            dec = _DECODERS.get(attr)
            kw[attr] = dec(value) if dec is not None else value
        return cls(**kw)

    @classmethod
    def from_json(cls, data: bytes | str) -> HostConfig:
        return cls.from_go(json.loads(data))


def _list_of(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else [conv(x) for x in v]


def _map(v: dict[str, str] | None) -> dict[str, str] | None:
    return None if v is None else gojson.sorted_map(v)


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "log_config": lambda v: v.to_go(),
    "port_bindings": port_map_to_go,
    "restart_policy": lambda v: v.to_go(),
    "storage_opt": _map,
    "tmpfs": _map,
    "sysctls": _map,
    "console_size": list,
    "devices": _list_of(lambda x: x.to_go()),
    "ulimits": _list_of(lambda x: x.to_go()),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "log_config": LogConfig.from_go,
    "port_bindings": port_map_from_go,
    "restart_policy": RestartPolicy.from_go,
    "console_size": lambda v: (int(v[0]), int(v[1])) if v else (0, 0),
    "devices": _list_of(DeviceMapping.from_go),
    "ulimits": _list_of(Ulimit.from_go),
}

# (JSON key, attribute, omitempty) in Go declaration order, Resources spliced in after Isolation.
_FIELDS: list[tuple[str, str, bool]] = [
    ("Binds", "binds", False),
    ("ContainerIDFile", "container_id_file", False),
    ("LogConfig", "log_config", False),
    ("NetworkMode", "network_mode", False),
    ("PortBindings", "port_bindings", False),
    ("RestartPolicy", "restart_policy", False),
    ("AutoRemove", "auto_remove", False),
    ("VolumeDriver", "volume_driver", False),
    ("VolumesFrom", "volumes_from", False),
    ("CapAdd", "cap_add", False),
    ("CapDrop", "cap_drop", False),
    ("CgroupnsMode", "cgroupns_mode", False),
    ("Dns", "dns", False),
    ("DnsOptions", "dns_options", False),
    ("DnsSearch", "dns_search", False),
    ("ExtraHosts", "extra_hosts", False),
    ("GroupAdd", "group_add", False),
    ("IpcMode", "ipc_mode", False),
    ("Cgroup", "cgroup", False),
    ("Links", "links", False),
    ("OomScoreAdj", "oom_score_adj", False),
    ("PidMode", "pid_mode", False),
    ("Privileged", "privileged", False),
    ("PublishAllPorts", "publish_all_ports", False),
    ("ReadonlyRootfs", "readonly_rootfs", False),
    ("SecurityOpt", "security_opt", False),
    ("StorageOpt", "storage_opt", True),
    ("Tmpfs", "tmpfs", True),
    ("UTSMode", "uts_mode", False),
    ("UsernsMode", "userns_mode", False),
    ("ShmSize", "shm_size", False),
    ("Sysctls", "sysctls", True),
    ("Runtime", "runtime", True),
    ("ConsoleSize", "console_size", False),
    ("Isolation", "isolation", False),
    ("CpuShares", "cpu_shares", False),
    ("Memory", "memory", False),
    ("NanoCpus", "nano_cpus", False),
    ("CgroupParent", "cgroup_parent", False),
    ("BlkioWeight", "blkio_weight", False),
    ("BlkioWeightDevice", "blkio_weight_device", False),
    ("BlkioDeviceReadBps", "blkio_device_read_bps", False),
    ("BlkioDeviceWriteBps", "blkio_device_write_bps", False),
    ("BlkioDeviceReadIOps", "blkio_device_read_iops", False),
    ("BlkioDeviceWriteIOps", "blkio_device_write_iops", False),
    ("CpuPeriod", "cpu_period", False),
    ("CpuQuota", "cpu_quota", False),
    ("CpuRealtimePeriod", "cpu_realtime_period", False),
    ("CpuRealtimeRuntime", "cpu_realtime_runtime", False),
    ("CpusetCpus", "cpuset_cpus", False),
    ("CpusetMems", "cpuset_mems", False),
    ("Devices", "devices", False),
    ("DeviceCgroupRules", "device_cgroup_rules", False),
    ("DeviceRequests", "device_requests", False),
    ("KernelMemory", "kernel_memory", False),
    ("KernelMemoryTCP", "kernel_memory_tcp", False),
    ("MemoryReservation", "memory_reservation", False),
    ("MemorySwap", "memory_swap", False),
    ("MemorySwappiness", "memory_swappiness", False),
    ("OomKillDisable", "oom_kill_disable", False),
    ("PidsLimit", "pids_limit", False),
    ("Ulimits", "ulimits", False),
    ("CpuCount", "cpu_count", False),
    ("CpuPercent", "cpu_percent", False),
    ("IOMaximumIOps", "io_maximum_iops", False),
    ("IOMaximumBandwidth", "io_maximum_bandwidth", False),
    ("Mounts", "mounts", True),
    ("MaskedPaths", "masked_paths", False),
    ("ReadonlyPaths", "readonly_paths", False),
    ("Init", "init", True),
]

# Go zero values for keys absent from a file being read (pointers, slices and maps: nil).
_ZERO: dict[str, Any] = {}
for _f in fields(HostConfig):
    if _f.type in ("str",):
        _ZERO[_f.name] = ""
    elif _f.type in ("int",):
        _ZERO[_f.name] = 0
    elif _f.type in ("bool",):
        _ZERO[_f.name] = False
_ZERO["console_size"] = [0, 0]
assert {a for _, a, _ in _FIELDS} == {f.name for f in fields(HostConfig)}, "HostConfig fields drift"


def seccomp_profile(hc: HostConfig) -> str:
    """config.v2.json's ``SeccompProfile`` (daemon ``parseSecurityOpt``): "" for Docker's default,
    "unconfined", or the profile's JSON. ``--privileged`` leaves it "" (it is unconfined anyway)."""
    if not hc.security_opt:
        return ""  # (without importing the namespaces chapter: the monitor does, meanwhile)
    from minidocker.namespaces.seccomp import option

    return option(hc.security_opt) or ""


def no_new_privileges(hc: HostConfig) -> bool:
    """``--security-opt no-new-privileges[=true|:true]``."""
    for so in hc.security_opt or []:
        key, _, value = so.replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            return value in ("", "true")
    return False
