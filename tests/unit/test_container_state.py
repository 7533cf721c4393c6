"""config.v2.json, hostconfig.json and the container store against what dockerd 20.10 wrote."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import pytest

from minidocker import fsutil, gojson
from minidocker.container.etcfiles import ResolvConf
from minidocker.container.hostconfig import HostConfig, PortBinding, RestartPolicy, Ulimit
from minidocker.container.state import (
    ZERO_TIME,
    Container,
    EndpointSettings,
    NetworkSettings,
    State,
    entrypoint_and_args,
)
from minidocker.container.store import AmbiguousPrefix, ContainerStore, random_name, validate_name
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.image.config import container_config

# docker-layout.md 7.2: `docker run busybox` (CLI 28, API 1.41) -> hostconfig.json, one line + \n.
DOCKER_HOSTCONFIG = (
    '{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"default",'
    '"PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"",'
    '"VolumesFrom":null,"CapAdd":null,"CapDrop":null,"CgroupnsMode":"host","Dns":[],"DnsOptions":[],'
    '"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"private","Cgroup":"","Links":null,'
    '"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,'
    '"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":67108864,"Runtime":"runc","ConsoleSize":[0,0],'
    '"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,'
    '"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],'
    '"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,'
    '"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,'
    '"KernelMemory":0,"KernelMemoryTCP":0,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,'
    '"OomKillDisable":false,"PidsLimit":null,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,'
    '"IOMaximumBandwidth":0,"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys",'
    '"/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi",'
    '"/sys/firmware"],"ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}\n'
)
CONFIG_V2_KEYS = [
    "StreamConfig", "State", "ID", "Created", "Managed", "Path", "Args", "Config", "Image", "NetworkSettings",
    "LogPath", "Name", "Driver", "OS", "MountLabel", "ProcessLabel", "RestartCount", "HasBeenStartedBefore",
    "HasBeenManuallyStopped", "MountPoints", "SecretReferences", "ConfigReferences", "AppArmorProfile",
    "HostnamePath", "HostsPath", "ShmPath", "ResolvConfPath", "SeccompProfile", "NoNewPrivileges",
    "LocalLogCacheMeta",
]  # fmt: skip
IMAGE = "sha256:" + "5" * 64


# -- hostconfig.json -------------------------------------------------------------------------------
def test_default_run_hostconfig_is_byte_identical() -> None:
    assert HostConfig().to_json() == DOCKER_HOSTCONFIG.encode()
    assert HostConfig.for_run().to_json() == DOCKER_HOSTCONFIG.encode()


def test_hostconfig_round_trips_the_docker_bytes() -> None:
    hc = HostConfig.from_json(DOCKER_HOSTCONFIG)
    assert hc == HostConfig()
    assert hc.to_json() == DOCKER_HOSTCONFIG.encode()


def test_port_bindings_match_docker() -> None:
    hc = HostConfig(
        port_bindings={
            "81/udp": [PortBinding("127.0.0.1", "18081")],
            "80/tcp": [PortBinding("", "18080")],
        }
    )
    expected = (
        '"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"18080"}],'
        '"81/udp":[{"HostIp":"127.0.0.1","HostPort":"18081"}]}'
    )
    out = hc.to_json().decode()
    assert expected in out
    assert out == DOCKER_HOSTCONFIG.replace('"PortBindings":{}', expected)
    assert HostConfig.from_json(out) == hc


def test_hostconfig_omitempty_and_pointers() -> None:
    hc = HostConfig(
        init=True,
        pids_limit=100,
        sysctls={"net.b": "1", "net.a": "2"},
        tmpfs={"/run": ""},
        restart_policy=RestartPolicy("on-failure", 3),
        ulimits=[Ulimit("nofile", 2048, 1024)],
    )
    d = json.loads(hc.to_json())
    keys = list(d)
    assert keys[-1] == "Init" and d["Init"] is True
    assert d["PidsLimit"] == 100
    assert list(d["Sysctls"]) == ["net.a", "net.b"]
    assert keys[keys.index("SecurityOpt") + 1] == "Tmpfs"  # StorageOpt (nil) omitted before it
    assert "StorageOpt" not in d and "Mounts" not in d
    assert d["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
    assert HostConfig.from_json(hc.to_json()) == hc
    # --init=false is a non-nil *bool: present
    assert b'"Init":false}' in HostConfig(init=False).to_json()
    assert b'"Init"' not in HostConfig().to_json()
    # an empty Runtime is omitted (omitempty string)
    assert b'"Runtime"' not in HostConfig(runtime="").to_json()


def test_for_run_daemon_defaults() -> None:
    hc = HostConfig.for_run(memory=100 << 20)
    assert hc.memory_swap == 200 << 20
    assert HostConfig.for_run(memory=100 << 20, memory_swap=-1).memory_swap == -1
    priv = HostConfig.for_run(privileged=True)
    assert b'"MaskedPaths":null,"ReadonlyPaths":null}' in priv.to_json()
    assert HostConfig.for_run(cgroup_v2=True).cgroupns_mode == "private"
    assert HostConfig.for_run(shm_size=0).shm_size == 64 << 20


# -- config.v2.json --------------------------------------------------------------------------------
def _container(**kw: object) -> Container:
    cfg = container_config(
        Hostname="21609a504392",
        AttachStdout=True,
        Env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Cmd=["sleep", "60"],
        Image="busybox",
        Labels={},
    )
    base: dict[str, object] = {
        "id": "21609a50" + "0" * 52 + "8d7c",
        "name": "/spec-c1",
        "image": IMAGE,
        "path": "sleep",
        "args": ["60"],
        "config": cfg,
        "created": "2026-11-23T09:27:34.5Z",
        "network_settings": NetworkSettings.for_create("default", anonymous=False),
    }
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def test_config_v2_key_order_and_values() -> None:
    c = _container()
    raw = c.to_json()
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
    d = json.loads(raw)
    assert list(d) == CONFIG_V2_KEYS
    assert list(d["State"]) == [
        "Running", "Paused", "Restarting", "OOMKilled", "RemovalInProgress", "Dead", "Pid", "ExitCode",
        "Error", "StartedAt", "FinishedAt", "Health",
    ]  # fmt: skip
    assert d["State"]["StartedAt"] == ZERO_TIME and d["State"]["Health"] is None
    assert d["StreamConfig"] == {} and d["MountPoints"] == {}
    assert d["LocalLogCacheMeta"] == {"HaveNotifyEnabled": False}
    assert d["Config"]["Labels"] == {}
    assert list(d["NetworkSettings"]["Networks"]) == ["bridge"]
    assert list(d["NetworkSettings"]["Networks"]["bridge"]) == [
        "IPAMConfig", "Links", "Aliases", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen",
        "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts", "IPAMOperational",
    ]  # fmt: skip
    assert list(d["NetworkSettings"]) == [
        "Bridge", "SandboxID", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen", "Networks",
        "Service", "Ports", "SandboxKey", "SecondaryIPAddresses", "SecondaryIPv6Addresses",
        "IsAnonymousEndpoint", "HasSwarmEndpoint",
    ]  # fmt: skip


def test_config_v2_round_trip_of_a_running_container() -> None:
    ns = NetworkSettings.for_create("default", anonymous=False)
    ns.sandbox_id = "ab" * 32
    ns.sandbox_key = "/var/run/docker/netns/abababababab"
    ns.ports = {"80/tcp": [PortBinding("0.0.0.0", "18080"), PortBinding("::", "18080")], "443/tcp": None}
    assert ns.networks is not None
    ns.networks["bridge"] = EndpointSettings(
        network_id="n" * 64, endpoint_id="e" * 64, gateway="172.17.0.1", ip_address="172.17.0.2",
        ip_prefix_len=16, mac_address="02:42:ac:11:00:02",
    )  # fmt: skip
    c = _container(
        state=State(running=True, pid=4242, started_at="2026-11-23T09:27:35.026317941Z"),
        network_settings=ns,
        log_path="/var/lib/docker/containers/x/x-json.log",
        mount_points={"/data": {"Source": "/v", "Destination": "/data", "RW": True}},
        has_been_started_before=True,
    )
    raw = c.to_json()
    back = Container.from_json(raw)
    assert back.to_json() == raw
    assert back == c
    assert b'"Ports":{"443/tcp":null,"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"18080"}' in raw


def test_none_network_settings() -> None:
    ns = NetworkSettings.for_create("none", anonymous=True)
    d = ns.to_go()
    assert list(d["Networks"]) == ["none"]
    assert d["Networks"]["none"]["IPAMConfig"] is None and d["Ports"] is None
    assert d["IsAnonymousEndpoint"] is True
    assert NetworkSettings.for_create("container:abc", anonymous=True).networks is None


def test_state_strings() -> None:
    now = gojson.parse_rfc3339("2026-11-23T10:00:00Z")
    assert State().status() == "created" and State().describe(now) == "Created"
    running = State(running=True, started_at="2026-11-23T09:59:57Z")
    assert running.status() == "running" and running.describe(now) == "Up 3 seconds"
    paused = State(running=True, paused=True, started_at="2026-11-23T08:00:00Z")
    assert paused.status() == "paused" and paused.describe(now) == "Up 2 hours (Paused)"
    exited = State(exit_code=137, started_at="2026-11-23T09:00:00Z", finished_at="2026-11-23T09:58:00Z")
    assert exited.status() == "exited" and exited.describe(now) == "Exited (137) 2 minutes ago"
    assert State(dead=True).status() == "dead" and State(dead=True).describe(now) == "Dead"
    assert State(removal_in_progress=True).status() == "removing"
    restarting = State(running=True, restarting=True, exit_code=1, finished_at="2026-11-23T09:59:59Z")
    assert restarting.status() == "restarting" and restarting.describe(now) == "Restarting (1) 1 second ago"
    healthy = State(running=True, started_at="2026-11-23T09:59:00Z", health={"Status": "starting"})
    assert healthy.describe(now) == "Up About a minute (health: starting)"
    assert State(running=True, started_at="2026-11-23T10:00:00Z").describe(now) == "Up Less than a second"


def test_entrypoint_and_args() -> None:
    assert entrypoint_and_args(["/entry", "-x"], ["a"]) == ("/entry", ["-x", "a"])
    assert entrypoint_and_args(None, ["sh"]) == ("sh", [])


# -- the store -------------------------------------------------------------------------------------
@pytest.fixture()
def store(tmp_path: os.PathLike[str]) -> ContainerStore:
    root = str(tmp_path)
    s = ContainerStore(root, fsutil.DataRootLock(root))
    s.setup()
    return s


def _create(store: ContainerStore, name: str | None = None, **hc: Any) -> Container:
    cfg = container_config(Cmd=["sh"], Image="busybox", Labels={})
    return store.create(image_id=IMAGE, config=cfg, host_config=HostConfig.for_run(**hc), name=name)


def _mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_create_layout_matches_docker_create(store: ContainerStore) -> None:
    c = _create(store, "web")
    d = store.dir(c.id)
    assert sorted(os.listdir(d)) == ["checkpoints", "config.v2.json", "hostconfig.json"]
    assert _mode(store.root) == 0o710 and _mode(d) == 0o710
    assert _mode(os.path.join(d, "checkpoints")) == 0o700
    assert _mode(os.path.join(d, "config.v2.json")) == 0o600
    assert _mode(os.path.join(d, "hostconfig.json")) == 0o644
    with open(os.path.join(d, "hostconfig.json"), "rb") as f:
        assert f.read() == DOCKER_HOSTCONFIG.encode()
    with open(os.path.join(d, "config.v2.json"), "rb") as f:
        raw = f.read()
    assert list(json.loads(raw)) == CONFIG_V2_KEYS
    assert c.name == "/web" and c.config["Hostname"] == c.id[:12]
    assert c.path == "sh" and c.args == [] and b'"Args":[]' in raw
    assert c.network_settings.is_anonymous_endpoint is False
    assert store.load(c.id) == c


def test_start_files(store: ContainerStore) -> None:
    c = _create(store)
    store.write_start_files(
        c, hosts=b"127.0.0.1\tlocalhost\n", resolv=ResolvConf(b"nameserver 1.1.1.1\n", "sha256:x")
    )
    d = store.dir(c.id)
    assert _mode(os.path.join(d, "mounts")) == 0o710
    for name in ("hostname", "hosts", "resolv.conf", "resolv.conf.hash"):
        assert _mode(os.path.join(d, name)) == 0o644
    with open(c.hostname_path, "rb") as f:
        assert f.read() == c.id[:12].encode() + b"\n"
    with open(c.resolv_conf_path + ".hash", "rb") as f:
        assert f.read() == b"sha256:x"
    store.save(c)
    assert store.load(c.id).hosts_path == os.path.join(d, "hosts")


def test_generated_names_are_docker_style_and_unique(store: ContainerStore) -> None:
    names = {_create(store).name for _ in range(20)}
    assert len(names) == 20
    for n in names:
        assert n.startswith("/") and "_" in n
    assert all(_create(store).network_settings.is_anonymous_endpoint for _ in range(2))
    assert random_name(1)[-1].isdigit()


def test_name_validation_and_conflict(store: ContainerStore) -> None:
    assert validate_name("/a.b_c-d") == "/a.b_c-d"
    for bad in ("x", "-x", "a b", "_ab", "ü1"):
        with pytest.raises(InvalidInput, match=r"only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed"):
            _create(store, bad)
    c = _create(store, "dup")
    with pytest.raises(Conflict) as e:
        _create(store, "dup")
    assert str(e.value) == (
        f'Conflict. The container name "/dup" is already in use by container "{c.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert len(store.ids()) == 1  # nothing left behind by the failed create


def test_get_resolution_order(store: ContainerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["abc1" + "0" * 60, "abc2" + "0" * 60, "f" * 64])
    monkeypatch.setattr(fsutil, "random_id", lambda: next(ids))
    a = _create(store, "first")
    b = _create(store, "second")
    # a container *named* like another's id prefix: the exact name wins over the prefix
    c = _create(store, "abc1")
    assert store.get(a.id).id == a.id
    assert store.get("first").id == a.id and store.get("/first").id == a.id
    assert store.get("abc1").id == c.id
    assert store.get("abc2").id == b.id
    with pytest.raises(AmbiguousPrefix, match="Multiple IDs found with provided prefix: abc"):
        store.get("abc")
    with pytest.raises(NotFound, match="No such container: zzz"):
        store.get("zzz")
    with pytest.raises(InvalidInput, match='invalid name or ID supplied: ""'):
        store.get("")


def test_rename_and_remove(store: ContainerStore) -> None:
    # names that are no hex id prefix: get("a1") would find a container whose random id starts "a1"
    a = _create(store, "x1")
    _create(store, "y1")
    with pytest.raises(Conflict, match='^Error when allocating new name: Conflict. The container name "/y1"'):
        store.rename("x1", "y1")
    with pytest.raises(InvalidInput, match="same name as its current name"):
        store.rename("x1", "x1")
    with pytest.raises(InvalidInput, match="Neither old nor new names may be empty"):
        store.rename("x1", "")
    renamed = store.rename("x1", "x2")
    assert renamed.name == "/x2" and store.get("x2").id == a.id
    with pytest.raises(NotFound):
        store.get("x1")
    store.remove(a.id)
    assert not os.path.exists(store.dir(a.id))
    assert [c.name for c in store.list()] == ["/y1"]
    with pytest.raises(NotFound):
        store.remove(a.id)


def test_half_removed_container_is_invisible(store: ContainerStore) -> None:
    a = _create(store, "a1")
    os.unlink(os.path.join(store.dir(a.id), "config.v2.json"))  # a crash mid-remove
    assert store.list() == []
    # the name is free again
    assert _create(store, "a1").name == "/a1"


def test_list_is_newest_first_by_time_not_by_string(store: ContainerStore) -> None:
    a, b, c = (_create(store, n) for n in ("a1", "b1", "c1"))
    for cont, created in (
        (a, "2026-11-23T09:27:34Z"),
        (b, "2026-11-23T09:27:34.1Z"),
        (c, "2026-11-23T09:27:33.9Z"),
    ):
        cont.created = created
        store.save(cont)
    assert [x.name for x in store.list()] == ["/b1", "/a1", "/c1"]
