"""``inspect`` of a container: Docker 20.10's document, byte for byte, and its parts."""

from __future__ import annotations

import json
import os

import pytest

from minidocker import fsutil
from minidocker.cli.output import go_indent_json
from minidocker.container.hostconfig import HostConfig, PortBinding
from minidocker.container.inspect import command_line, container_json, graph_driver, mount_points
from minidocker.container.state import Container, EndpointSettings, NetworkSettings, State
from minidocker.image.config import container_config
from minidocker.image.store import Stores

CID = "2a21cb911caf25a3b07d72835cc9ed09189ab912271b3d50354a211ad7b82bb9"
IMAGE = "sha256:e70343032da67178f3e554df378475b2a3ab98293b1f5c0be7268fc72e7ff70d"
CREATED = "2026-12-01T23:18:08.377414611Z"
MOUNT = "8a49014b8adedaffffc655401e011b848972c703f43b7813d5956fdca2af1327"
LAYER = "58daf3c06c7a7bed0bfbf8090b5fb476a0620b2c5d3381748c50bbe1ce283ba4"

# `docker inspect c1` (dockerd + CLI 20.10.24) after
# `docker create --network none --name c1 busybox sh -c 'sleep 100; echo "<a&b>"'`; `<>&` stay raw.
DOCKER_INSPECT = r"""[
    {{
        "Id": "{cid}",
        "Created": "{created}",
        "Path": "sh",
        "Args": [
            "-c",
            "sleep 100; echo \"<a&b>\""
        ],
        "State": {{
            "Status": "created",
            "Running": false,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z"
        }},
        "Image": "{image}",
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": "/c1",
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {{
            "Binds": null,
            "ContainerIDFile": "",
            "LogConfig": {{
                "Type": "json-file",
                "Config": {{}}
            }},
            "NetworkMode": "none",
            "PortBindings": {{}},
            "RestartPolicy": {{
                "Name": "no",
                "MaximumRetryCount": 0
            }},
            "AutoRemove": false,
            "VolumeDriver": "",
            "VolumesFrom": null,
            "CapAdd": null,
            "CapDrop": null,
            "CgroupnsMode": "host",
            "Dns": [],
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": null,
            "GroupAdd": null,
            "IpcMode": "private",
            "Cgroup": "",
            "Links": null,
            "OomScoreAdj": 0,
            "PidMode": "",
            "Privileged": false,
            "PublishAllPorts": false,
            "ReadonlyRootfs": false,
            "SecurityOpt": null,
            "UTSMode": "",
            "UsernsMode": "",
            "ShmSize": 67108864,
            "Runtime": "runc",
            "ConsoleSize": [
                0,
                0
            ],
            "Isolation": "",
            "CpuShares": 0,
            "Memory": 0,
            "NanoCpus": 0,
            "CgroupParent": "",
            "BlkioWeight": 0,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": null,
            "BlkioDeviceWriteBps": null,
            "BlkioDeviceReadIOps": null,
            "BlkioDeviceWriteIOps": null,
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": "",
            "CpusetMems": "",
            "Devices": [],
            "DeviceCgroupRules": null,
            "DeviceRequests": null,
            "KernelMemory": 0,
            "KernelMemoryTCP": 0,
            "MemoryReservation": 0,
            "MemorySwap": 0,
            "MemorySwappiness": null,
            "OomKillDisable": false,
            "PidsLimit": null,
            "Ulimits": null,
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "MaskedPaths": [
                "/proc/asound",
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware"
            ],
            "ReadonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ]
        }},
        "GraphDriver": {{
            "Data": {{
                "LowerDir": "{root}/overlay2/{mount}-init/diff:{root}/overlay2/{layer}/diff",
                "MergedDir": "{root}/overlay2/{mount}/merged",
                "UpperDir": "{root}/overlay2/{mount}/diff",
                "WorkDir": "{root}/overlay2/{mount}/work"
            }},
            "Name": "overlay2"
        }},
        "Mounts": [],
        "Config": {{
            "Hostname": "{short}",
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": null,
            "Cmd": [
                "sh",
                "-c",
                "sleep 100; echo \"<a&b>\""
            ],
            "Image": "busybox",
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": {{}}
        }},
        "NetworkSettings": {{
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": {{}},
            "SandboxKey": "",
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": "",
            "Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": {{
                "none": {{
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": null,
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "MacAddress": "",
                    "DriverOpts": null
                }}
            }}
        }}
    }}
]
"""


def fake_layers(root: str) -> None:
    """The on-disk records of a container's RW layer (what ``create_rw_layer`` writes, no mount)."""
    ov = os.path.join(root, "overlay2")
    os.makedirs(os.path.join(ov, "l"), exist_ok=True)
    for layer, link, lower in (
        (LAYER, "AAAA", None),
        (MOUNT + "-init", "BBBB", "l/AAAA"),
        (MOUNT, "CCCC", "l/BBBB:l/AAAA"),
    ):
        os.makedirs(os.path.join(ov, layer, "diff"))
        os.symlink(f"../{layer}/diff", os.path.join(ov, "l", link))
        fsutil.write_new(os.path.join(ov, layer, "link"), link.encode(), 0o644)
        if lower:
            fsutil.write_new(os.path.join(ov, layer, "lower"), lower.encode(), 0o644)
    m = os.path.join(root, "image", "overlay2", "layerdb", "mounts", CID)
    os.makedirs(m, exist_ok=True)
    for name, value in (("mount-id", MOUNT), ("init-id", MOUNT + "-init"), ("parent", "sha256:" + "1" * 64)):
        fsutil.write_new(os.path.join(m, name), value.encode(), 0o644)


@pytest.fixture
def stores(tmp_path) -> Stores:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "root")
    s = Stores.open(root)
    fake_layers(root)
    return s


def docker_c1() -> Container:
    cmd = ["sh", "-c", 'sleep 100; echo "<a&b>"']
    return Container(
        id=CID,
        name="/c1",
        image=IMAGE,
        path="sh",
        args=cmd[1:],
        created=CREATED,
        config=container_config(
            Hostname=CID[:12], AttachStdout=True, AttachStderr=True, Cmd=cmd, Image="busybox", Labels={}
        ),  # fmt: skip
        network_settings=NetworkSettings.for_create("none", anonymous=False),
        # what the 20.10 CLI sends (CLI 28 sends [] for these): null device lists and ulimits
        host_config=HostConfig.for_run(
            network_mode="none",
            blkio_device_read_bps=None,
            blkio_device_write_bps=None,
            blkio_device_read_iops=None,
            blkio_device_write_iops=None,
            ulimits=None,
        ),  # fmt: skip
    )


def test_created_container_is_byte_identical_to_docker(stores: Stores) -> None:
    expected = DOCKER_INSPECT.format(cid=CID, short=CID[:12], image=IMAGE, created=CREATED, root=stores.root,
                                     mount=MOUNT, layer=LAYER)  # fmt: skip
    got = go_indent_json([container_json(docker_c1(), stores)]) + "\n"
    assert got == expected


def test_key_order_and_state(stores: Stores) -> None:
    c = docker_c1()
    c.state = State(running=True, pid=42, started_at="2026-12-01T23:18:09Z", health={"Status": "healthy"})
    doc = container_json(c, stores, size=True)
    assert list(doc)[:6] == ["Id", "Created", "Path", "Args", "State", "Image"]
    assert list(doc)[-5:] == ["SizeRw", "SizeRootFs", "Mounts", "Config", "NetworkSettings"]
    assert doc["State"]["Status"] == "running" and doc["State"]["Pid"] == 42
    assert list(doc["State"])[-1] == "Health"
    assert "RemovalInProgress" not in doc["State"]
    assert doc["SizeRw"] == 0


def test_graph_driver_without_layers_is_null(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Stores.open(str(tmp_path / "r"))
    assert graph_driver(docker_c1(), s) == {"Data": None, "Name": "overlay2"}


def test_network_settings_bridge_and_ports(stores: Stores) -> None:
    c = docker_c1()
    c.network_settings = NetworkSettings(
        networks={
            "bridge": EndpointSettings(
                ip_address="172.17.0.2", ip_prefix_len=16, gateway="172.17.0.1", ipam_operational=True
            )
        },  # fmt: skip
        ports={"80/tcp": [PortBinding("0.0.0.0", "8080")], "53/udp": None},
    )
    ns = container_json(c, stores)["NetworkSettings"]
    assert ns["IPAddress"] == "172.17.0.2" and ns["Gateway"] == "172.17.0.1" and ns["IPPrefixLen"] == 16
    assert list(ns["Ports"]) == ["53/udp", "80/tcp"]
    assert ns["Ports"]["53/udp"] is None
    assert ns["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"}]
    assert "IPAMOperational" not in ns["Networks"]["bridge"]


def test_mounts_use_docker_shape(stores: Stores) -> None:
    # config.v2.json MountPoints as dockerd 20.10 wrote them for -v /src:/data:ro -v named:/nm:z
    c = docker_c1()
    c.mount_points = {
        "/data": {"Source": "/src", "Destination": "/data", "RW": False, "Name": "", "Driver": "", "Type": "bind",
                  "Relabel": "ro", "Propagation": "rprivate", "Spec": {}, "SkipMountpointCreation": False},
        "/nm": {"Source": "", "Destination": "/nm", "RW": True, "Name": "named", "Driver": "local",
                "Type": "volume", "Relabel": "z", "Spec": {}, "SkipMountpointCreation": False},
    }  # fmt: skip
    got = json.dumps(mount_points(c, stores), separators=(",", ":"))
    assert got == (
        '[{"Type":"bind","Source":"/src","Destination":"/data","Mode":"ro","RW":false,"Propagation":"rprivate"},'
        '{"Type":"volume","Name":"named","Source":"'
        + stores.root
        + '/volumes/named/_data","Destination":"/nm",'
        '"Driver":"local","Mode":"z","RW":true,"Propagation":""}]'
    )


def test_command_line_quotes_args_with_spaces() -> None:
    assert command_line(docker_c1()) == "sh -c 'sleep 100; echo \"<a&b>\"'"
    c = docker_c1()
    c.args = []
    assert command_line(c) == "sh"


def test_go_indent_json_escaping() -> None:
    assert (
        go_indent_json(["<&>", "\u2028", "\x01", "é"])
        == '[\n    "<&>",\n    "\\u2028",\n    "\\u0001",\n    "é"\n]'
    )
    assert go_indent_json({"a": {}, "b": []}) == '{\n    "a": {},\n    "b": []\n}'
