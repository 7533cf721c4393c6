"""``-v`` parsing (Docker 20.10's linux_parser + CLI), the MountPoints plan, start binds, copy-up, rm -v."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from minidocker import fsutil
from minidocker.container.mounts import (
    binds_for_start,
    config_volumes,
    parse_volume,
    plan_mounts,
    release,
    split_volume_flags,
)
from minidocker.container.state import Container
from minidocker.container.store import ContainerStore
from minidocker.container.volumes import VolumeStore
from minidocker.errors import InvalidInput

IMAGE = "sha256:" + "0" * 64


@pytest.fixture
def vols(tmp_path):
    return VolumeStore(str(tmp_path), fsutil.DataRootLock(str(tmp_path)))


# -- parsing: messages from dockerd 20.10.24 ----------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/x:/y:rw:ro", "invalid volume specification: '/x:/y:rw:ro'"),
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        (
            "/x:rel",
            "invalid volume specification: '/x:rel': invalid mount config for type \"bind\": "
            "invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            "/x:/",
            "invalid volume specification: '/x:/': invalid mount config for type \"bind\": "
            "invalid specification: destination can't be '/'",
        ),
        ("/x:/y:zz", "invalid mode: zz"),
        ("/anon:ro", "invalid volume specification: '/anon:ro'"),
        (":/y", "invalid volume specification: ':/y'"),
        ("/x:/y:ro,rw", "invalid mode: ro,rw"),
        (
            "/x:/y:nocopy",
            "invalid volume specification: '/x:/y:nocopy': invalid mount config for type \"bind\": "
            "field VolumeOptions must not be specified",
        ),
    ],
)
def test_parse_errors_match_docker(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_volume(spec)
    assert str(e.value) == message


def test_parse_forms() -> None:
    b = parse_volume("/srv//x/:/data/:ro,z")
    assert (b.type, b.source, b.destination, b.rw, b.mode) == ("bind", "/srv/x", "/data", False, "ro,z")
    assert b.spec() == {"Type": "bind", "Source": "/srv//x/", "Target": "/data/", "ReadOnly": True}
    v = parse_volume("cache:/c:nocopy")
    assert (v.type, v.source, v.nocopy, v.rw) == ("volume", "cache", True, True)
    assert v.spec() == {
        "Type": "volume",
        "Source": "cache",
        "Target": "/c",
        "VolumeOptions": {"NoCopy": True},
    }
    assert parse_volume("/a:/b:rshared").propagation == "rshared"


def test_cli_split() -> None:
    assert split_volume_flags(["/anon", "./d:/d", ".:/w", "n:/n"], cwd="/home/u") == (
        ["/home/u/d:/d", "/home/u:/w", "n:/n"],
        ["/anon"],
    )
    assert config_volumes(["/anon", "/a:/b"]) == {"/anon": {}}
    assert config_volumes(["/a:/b"]) is None


# -- plan: the config.v2.json MountPoints dockerd wrote for the same flags ------------------------
def test_plan_matches_dockerd(vols: VolumeStore, tmp_path) -> None:
    binds, points = plan_mounts(
        vols, ["v1:/data", "/h/newhostdir:/h:ro", "/anon", "/f.tar:/f.tar"], {"/img": {}, "/data": {}}
    )
    assert binds == ["v1:/data", "/h/newhostdir:/h:ro", "/f.tar:/f.tar"]
    assert not os.path.exists("/h/newhostdir")  # dockerd creates -v sources at start, not create
    data = vols.data_path("v1")
    assert json.dumps(points["/data"], separators=(",", ":")) == (
        f'{{"Source":"{data}","Destination":"/data","RW":true,"Name":"v1","Driver":"local","Type":"volume",'
        '"Relabel":"z","Spec":{"Type":"volume","Source":"v1","Target":"/data"},"SkipMountpointCreation":false}'
    )
    assert json.dumps(points["/h"], separators=(",", ":")) == (
        '{"Source":"/h/newhostdir","Destination":"/h","RW":false,"Name":"","Driver":"","Type":"bind",'
        '"Relabel":"ro","Propagation":"rprivate","Spec":{"Type":"bind","Source":"/h/newhostdir","Target":"/h",'
        '"ReadOnly":true},"SkipMountpointCreation":false}'
    )
    assert list(points["/f.tar"]) == [
        "Source", "Destination", "RW", "Name", "Driver", "Type", "Propagation", "Spec", "SkipMountpointCreation",
    ]  # fmt: skip
    anon = points["/anon"]
    assert json.dumps(anon, separators=(",", ":")) == (
        f'{{"Source":"","Destination":"/anon","RW":true,"Name":"{anon["Name"]}","Driver":"local",'
        '"Type":"volume","Spec":{},"SkipMountpointCreation":false}'
    )
    assert len(anon["Name"]) == 64 and vols.exists(anon["Name"])
    assert points["/img"]["Spec"] == {} and vols.exists(points["/img"]["Name"])
    assert points["/data"]["Name"] == "v1"  # the -v covers the image volume: no anonymous one
    assert len(vols.names()) == 3


def test_plan_without_v_has_null_binds(vols: VolumeStore) -> None:
    assert plan_mounts(vols, [], None) == (None, {})


@pytest.mark.parametrize(
    "bad", [["ok1:/a", "x:/b"], ["ok1:/a", "/h:/a"], ["ok1:/a", "/x:rel"], ["ok1:/a", "rel"]]
)
def test_plan_creates_nothing_when_any_spec_is_invalid(vols: VolumeStore, bad: list[str]) -> None:
    with pytest.raises(InvalidInput):
        plan_mounts(vols, bad, None)
    assert vols.names() == []


def test_duplicate_mount_point(vols: VolumeStore) -> None:
    with pytest.raises(InvalidInput, match="Duplicate mount point: /a"):
        plan_mounts(vols, ["/x:/a", "vv:/a/"], None)


# -- start -----------------------------------------------------------------------------------------
def _container(points) -> Container:
    return Container(id="ab" * 32, name="/c", image=IMAGE, mount_points=points)


def test_binds_for_start_creates_bind_source_and_copies_up(vols: VolumeStore, tmp_path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data" / "sub").mkdir(parents=True)
    (rootfs / "data" / "f").write_bytes(b"image content")
    os.chmod(rootfs / "data", 0o750)
    os.chmod(rootfs / "data" / "f", 0o640)
    os.symlink("/etc/passwd", rootfs / "data" / "abs-link")  # copied as a link, never followed
    (rootfs / "link").symlink_to("/data")
    src = tmp_path / "host" / "new"
    _, points = plan_mounts(vols, ["v1:/data", f"{src}:/h", "v2:/link", "/empty"], None)
    c = _container(points)
    binds = binds_for_start(c, vols, str(rootfs))
    assert [(b.destination, b.readonly) for b in binds] == [
        ("/data", False), ("/empty", False), ("/h", False), ("/link", False),
    ]  # fmt: skip
    assert stat.S_IMODE(os.stat(src).st_mode) == 0o755
    data = vols.data_path("v1")
    assert (Path(data) / "f").read_bytes() == b"image content"
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o750  # the directory's own mode comes along
    assert stat.S_IMODE(os.stat(os.path.join(data, "f")).st_mode) == 0o640
    assert os.readlink(os.path.join(data, "abs-link")) == "/etc/passwd"
    # /link -> /data is resolved inside the rootfs
    assert sorted(os.listdir(vols.data_path("v2"))) == sorted(os.listdir(data)) == ["abs-link", "f", "sub"]
    anon = c.mount_points["/empty"]
    assert anon["Source"] == vols.data_path(anon["Name"])
    assert list(anon)[-3:] == ["ID", "Spec", "SkipMountpointCreation"] and len(anon["ID"]) == 64


def test_copy_up_only_into_empty_volumes_and_not_with_nocopy(vols: VolumeStore, tmp_path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "f").write_bytes(b"image")
    v = vols.create("full")
    with open(os.path.join(v.mountpoint, "mine"), "wb") as f:
        f.write(b"x")
    _, points = plan_mounts(vols, ["full:/data", "nc:/data2:nocopy"], None)
    (rootfs / "data2").mkdir()
    (rootfs / "data2" / "g").write_bytes(b"g")
    binds_for_start(_container(points), vols, str(rootfs))
    assert os.listdir(v.mountpoint) == ["mine"]
    assert os.listdir(vols.data_path("nc")) == []


def test_copy_up_cannot_escape_the_rootfs(vols: VolumeStore, tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_bytes(b"host secret")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "data").symlink_to(str(secret))  # absolute: resolved inside the rootfs
    (rootfs / "data2").symlink_to("../secret")  # relative, climbing: stops at the container's /
    _, points = plan_mounts(vols, ["v1:/data", "v2:/data2"], None)
    binds_for_start(_container(points), vols, str(rootfs))
    assert os.listdir(vols.data_path("v1")) == [] and os.listdir(vols.data_path("v2")) == []


def test_release_removes_only_anonymous_unused_volumes(vols: VolumeStore, tmp_path) -> None:
    _, points = plan_mounts(vols, ["named:/n", "/anon"], None)
    c = _container(points)
    anon = points["/anon"]["Name"]
    assert release(c, vols, remove_anonymous=False) == []
    assert release(c, vols, remove_anonymous=True) == [anon]
    assert vols.names() == ["named"]


def test_release_keeps_an_anonymous_volume_another_container_uses(vols: VolumeStore, tmp_path) -> None:
    from minidocker.container.hostconfig import HostConfig

    store = ContainerStore(str(tmp_path), vols.lock)
    _, points = plan_mounts(vols, ["/anon"], None)
    other = store.create(image_id=IMAGE, config={}, host_config=HostConfig())
    other.mount_points = dict(points)
    store.save(other)
    mine = _container(points)
    assert release(mine, vols, remove_anonymous=True) == []
    assert vols.exists(points["/anon"]["Name"])
