"""``docker create``: from run flags and an image to a container on disk (no process yet).

The CLI parses flags into :class:`RunOptions`; :func:`container_config` merges them with the
image's config exactly as the daemon does (``daemon/commit.go merge``), and
:func:`host_config` turns them into the HostConfig the daemon stores. The caller
(:meth:`minidocker.container.lifecycle.Runtime.create`) writes both and creates the RW layer.

>>> opts = RunOptions(image="busybox", cmd=["echo", "hi"], env=["A=1"])
>>> cfg = container_config(opts, {"Env": ["PATH=/bin", "A=0"], "Cmd": ["sh"]})
>>> cfg["Env"], cfg["Cmd"]
(['A=1', 'PATH=/bin'], ['echo', 'hi'])
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import field

from minidocker.container.hostconfig import HostConfig, PortBinding, RestartPolicy
from minidocker.errors import InvalidInput
from minidocker.image.config import container_config as go_container_config
from minidocker.record import Record, record

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any


@record
class RunOptions(Record):
    """Everything ``run``/``create`` accept, already parsed (sizes in bytes, cpus in nano-cpus)."""

    image: str
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None  # None: the image's; [""]: --entrypoint "" (reset)
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    name: str | None = None
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    auto_remove: bool = False
    binds: list[str] = field(default_factory=list)
    network: str = "default"
    ip: str = ""  # --ip: IPAMConfig.IPv4Address of the endpoint (user networks only)
    network_aliases: list[str] = field(default_factory=list)  # --network-alias
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    read_only: bool = False
    init: bool = False
    restart: str = "no"
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    cpu_shares: int = 0
    nano_cpus: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    anonymous_volumes: list[str] = field(default_factory=list)  # `-v /path`: Config.Volumes
    publish: list[str] = field(default_factory=list)  # -p specs (chapter 7, minidocker.portmap.spec)
    publish_all: bool = False  # -P
    expose: list[str] = field(default_factory=list)  # --expose


# What the docker 20.10 CLI sends (and dockerd 20.10 stores) for these Resources fields when no
# flag sets them: nil slices, so null in hostconfig.json, where HostConfig()'s defaults model the
# CLI 28 ([]). BlkioWeightDevice is [] with both. Checked against dockerd in test_run_parity.py.
CLI_20_10_NULLS: dict[str, Any] = {
    "blkio_device_read_bps": None,
    "blkio_device_write_bps": None,
    "blkio_device_read_iops": None,
    "blkio_device_write_iops": None,
    "ulimits": None,
}


def parse_restart_policy(value: str) -> RestartPolicy:
    """``--restart no|always|unless-stopped|on-failure[:N]`` (``opts.ParseRestartPolicy``)."""
    name, _, count = value.partition(":")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise InvalidInput(f"invalid restart policy {name}", subject=value)
    if count and name != "on-failure":
        raise InvalidInput(f"maximum retry count cannot be used with restart policy '{name}'", subject=value)
    n = 0
    if count:
        try:
            n = int(count)
        except ValueError:
            raise InvalidInput(f'strconv.Atoi: parsing "{count}": invalid syntax', subject=value) from None
        if n < 0:
            raise InvalidInput("maximum retry count cannot be negative", subject=value)
    return RestartPolicy(name=name if name != "" else "no", maximum_retry_count=n)


def parse_signal(value: str) -> int:
    """A signal by name (``TERM``, ``SIGTERM``) or number, as ``docker kill -s`` and STOPSIGNAL take it."""
    v = value.strip().upper()
    if v.isdigit():
        n = int(v)
        if n <= 0 or n >= signal.NSIG:
            raise InvalidInput(f"Invalid signal: {value}", subject=value)
        return n
    if not v.startswith("SIG"):
        v = "SIG" + v
    try:
        return int(signal.Signals[v])
    except KeyError:
        raise InvalidInput(f"Invalid signal: {value}", subject=value) from None


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def expand_env(entries: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """``-e NAME`` without ``=`` takes the value from our environment, or is dropped (docker CLI)."""
    env = os.environ if environ is None else environ
    out = []
    for e in entries:
        if "=" in e:
            out.append(e)
        elif e in env:
            out.append(f"{e}={env[e]}")
    return out


def read_env_file(path: str) -> list[str]:
    """``--env-file``: ``KEY=VALUE`` lines, ``#`` comments, blank lines; ``KEY`` alone = host value."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidInput(f"open {path}: {e.strerror.lower() if e.strerror else e}", subject=path) from None
    out = []
    for line in lines:
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.split("=", 1)[0]
        if not key or any(c.isspace() for c in key):
            raise InvalidInput(f"variable '{key}' contains whitespaces", subject=path)
        out.append(stripped if "=" in stripped else key)
    return expand_env(out)


def container_config(opts: RunOptions, image_config: dict[str, Any] | None) -> dict[str, Any]:
    """``container.Config`` as the daemon stores it: the CLI's config merged with the image's."""
    img = image_config or {}
    user_env = list(opts.env)
    keys = {_env_key(e) for e in user_env}
    env = user_env + [e for e in (img.get("Env") or []) if _env_key(e) not in keys]
    entrypoint: list[str] | None = opts.entrypoint
    cmd: list[str] | None = list(opts.cmd) or None
    args_escaped = False
    if not entrypoint:
        if not cmd:
            cmd = img.get("Cmd")
            args_escaped = bool(img.get("ArgsEscaped"))
        if entrypoint is None:
            entrypoint = img.get("Entrypoint")
    if entrypoint == [""]:
        entrypoint = None  # --entrypoint "": no entrypoint at all, the image's is reset
    labels = dict(opts.labels)
    for k, v in (img.get("Labels") or {}).items():
        labels.setdefault(k, v)
    volumes: dict[str, Any] | None = {p: {} for p in opts.anonymous_volumes} or None
    if img.get("Volumes"):
        volumes = {**(volumes or {}), **img["Volumes"]}
    exposed = img.get("ExposedPorts") or None
    if opts.publish or opts.expose:  # the CLI's ports, then the image's (daemon/commit.go merge)
        from minidocker.portmap.spec import parse_expose, parse_port_specs

        exposed = {**parse_port_specs(opts.publish)[0], **parse_expose(opts.expose), **(exposed or {})}
    attach = not opts.detach
    return go_container_config(
        Hostname=opts.hostname,
        Domainname=opts.domainname,
        User=opts.user or img.get("User") or "",
        AttachStdin=attach and opts.interactive,
        AttachStdout=attach,
        AttachStderr=attach,
        ExposedPorts=exposed,
        Tty=opts.tty,
        OpenStdin=opts.interactive,
        StdinOnce=attach and opts.interactive,
        Env=env or None,
        Cmd=cmd,
        Healthcheck=img.get("Healthcheck"),
        ArgsEscaped=args_escaped,
        Image=opts.image,
        Volumes=volumes,
        WorkingDir=opts.workdir or img.get("WorkingDir") or "",
        Entrypoint=entrypoint,
        OnBuild=None,
        Labels=labels,
        StopSignal=opts.stop_signal or img.get("StopSignal") or "",
        StopTimeout=opts.stop_timeout,
    )


def host_config(opts: RunOptions, *, cgroup_v2: bool) -> HostConfig:
    """The HostConfig the daemon stores for these flags (after ``HostConfig.for_run`` defaulting)."""
    if opts.auto_remove and opts.restart not in ("", "no"):
        raise InvalidInput("Conflicting options: --restart and --rm", subject=opts.restart)
    security_opt = [_read_seccomp_file(so) for so in opts.security_opt] or None
    for so in opts.security_opt:
        key = so.split("=", 1)[0].split(":", 1)[0]
        if key not in ("no-new-privileges", "seccomp", "apparmor", "label"):
            raise InvalidInput(f'invalid --security-opt 2: "{so}"', subject=so)
    if opts.privileged:
        # generateSecurityOpt: privileged containers get SELinux labelling disabled, stored even
        # on hosts without SELinux (the label package's stub says "disable" too)
        security_opt = [*(security_opt or []), "label=disable"]
    kw: dict[str, Any] = {
        "binds": list(opts.binds) or None,
        "network_mode": opts.network or "default",
        "restart_policy": parse_restart_policy(opts.restart),
        "auto_remove": opts.auto_remove,
        "cap_add": list(opts.cap_add) or None,
        "cap_drop": list(opts.cap_drop) or None,
        "dns": list(opts.dns),
        "dns_options": list(opts.dns_options),
        "dns_search": list(opts.dns_search),
        "extra_hosts": list(opts.extra_hosts) or None,
        "group_add": list(opts.group_add) or None,
        "privileged": opts.privileged,
        "readonly_rootfs": opts.read_only,
        "security_opt": security_opt,
        "memory": opts.memory,
        "memory_swap": opts.memory_swap,
        "memory_reservation": opts.memory_reservation,
        "cpu_shares": opts.cpu_shares,
        "nano_cpus": opts.nano_cpus,
        "cpuset_cpus": opts.cpuset_cpus,
        "cpuset_mems": opts.cpuset_mems,
        "pids_limit": opts.pids_limit,
    }
    if opts.publish:
        from minidocker.portmap.spec import parse_port_specs

        kw["port_bindings"] = {
            port: [PortBinding(host_ip=ip, host_port=hp) for ip, hp in pairs]
            for port, pairs in parse_port_specs(opts.publish)[1].items()
        }
    if opts.publish_all:
        kw["publish_all_ports"] = True
    if opts.init:
        kw["init"] = True
    kw.update(CLI_20_10_NULLS)
    return HostConfig.for_run(cgroup_v2=cgroup_v2, **kw)


def _read_seccomp_file(so: str) -> str:
    """The docker CLI replaces ``seccomp=<file>`` by ``seccomp=<the file's JSON, compacted>``: the
    daemon stores the profile itself (in SecurityOpt and config.v2.json's SeccompProfile)."""
    sep = "=" if "=" in so else ":"
    key, _, value = so.partition(sep)
    if key != "seccomp" or value in ("", "unconfined"):
        return so
    try:
        with open(value, encoding="utf-8") as f:
            profile = json.loads(f.read())
    except OSError as e:
        why = e.strerror.lower() if e.strerror else str(e)
        raise InvalidInput(f"opening seccomp profile ({value}) failed: {why}", subject=value) from None
    except ValueError as e:
        raise InvalidInput(
            f"compacting json for seccomp profile ({value}) failed: {e}", subject=value
        ) from None
    return "seccomp=" + json.dumps(profile, separators=(",", ":"), ensure_ascii=False)
