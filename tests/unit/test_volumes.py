"""VolumeStore: Docker 20.10's local-driver layout, names, in-use, rm and prune (tmp dirs)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from minidocker import fsutil
from minidocker.container.hostconfig import HostConfig
from minidocker.container.store import ContainerStore
from minidocker.container.volumes import VolumeStore
from minidocker.errors import Conflict, InvalidInput, NotFound

IMAGE = "sha256:" + "0" * 64


@pytest.fixture
def vols(tmp_path):
    return VolumeStore(str(tmp_path), fsutil.DataRootLock(str(tmp_path)))


def _mode(p: str) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_layout_like_dockerd(vols: VolumeStore, tmp_path) -> None:
    old = os.umask(0o077)
    try:
        v = vols.create("v1", labels={}, driver_opts={})  # what `volume create` sends
    finally:
        os.umask(old)
    assert v.mountpoint == str(tmp_path / "volumes" / "v1" / "_data")
    assert (_mode(vols.root), _mode(vols.dir("v1")), _mode(v.mountpoint)) == (0o701, 0o701, 0o755)
    assert os.listdir(v.mountpoint) == []
    assert v.to_inspect() == {
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": {},
        "Mountpoint": v.mountpoint,
        "Name": "v1",
        "Options": {},
        "Scope": "local",
    }
    assert v.created_at.endswith(("Z", ":00")) and len(v.created_at) >= 20
    # volumes made for a container carry no labels/options: inspect shows null like dockerd
    assert vols.create("v2").to_inspect()["Labels"] is None


def test_create_is_idempotent_and_anonymous_names_are_random(vols: VolumeStore) -> None:
    a = vols.create("same", labels={"k": "v"})
    assert vols.create("same").labels == {"k": "v"} == a.labels
    anon = vols.create(None)
    assert len(anon.name) == 64 and all(ch in "0123456789abcdef" for ch in anon.name)
    assert vols.names() == sorted([anon.name, "same"])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
        (
            "bad/name",
            'create bad/name: "bad/name" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
        ),
        ("_x", None),
        ("..", None),
    ],
)
def test_invalid_names(vols: VolumeStore, name: str, message: str | None) -> None:
    with pytest.raises(InvalidInput) as e:
        vols.create(name)
    if message:
        assert str(e.value) == message
    assert vols.names() == []


def test_options_are_written_in_dockerds_opts_json(vols: VolumeStore) -> None:
    v = vols.create("t1", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with open(os.path.join(vols.dir("t1"), "opts.json")) as f:
        assert json.load(f) == {"MountType": "tmpfs", "MountOpts": "size=1m", "MountDevice": "tmpfs",
                                "Quota": {"Size": 0}}  # fmt: skip
    assert v.options == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert vols.has_mount_options("t1")
    with pytest.raises(InvalidInput, match="invalid option key"):
        vols.create("t2", driver_opts={"bogus": "1"})


def test_hand_made_volume_dirs_are_volumes(vols: VolumeStore) -> None:
    # what dockerd's local driver does: every directory under volumes/ is a volume
    os.makedirs(os.path.join(vols.root, "handmade", "_data"))
    v = vols.get("handmade")
    assert (v.labels, v.options) == (None, None)
    assert v.to_inspect()["Labels"] is None
    with open(os.path.join(vols.root, "metadata.db"), "wb"):
        pass
    assert vols.names() == ["handmade"]


def test_get_and_remove_missing(vols: VolumeStore) -> None:
    with pytest.raises(NotFound, match="^No such volume: nope$"):
        vols.get("nope")
    with pytest.raises(NotFound, match="^No such volume: nope$"):
        vols.remove("nope")
    vols.remove("nope", force=True)


def _use(store: ContainerStore, names: list[str]) -> str:
    c = store.create(image_id=IMAGE, config={}, host_config=HostConfig())
    c.mount_points = {
        f"/m{i}": {"Source": "", "Destination": f"/m{i}", "RW": True, "Name": n, "Driver": "local",
                   "Type": "volume", "Spec": {}, "SkipMountpointCreation": False}
        for i, n in enumerate(names)
    }  # fmt: skip
    store.save(c)
    return c.id


def test_in_use_refused_even_with_force(vols: VolumeStore, tmp_path) -> None:
    store = ContainerStore(str(tmp_path), vols.lock)
    vols.create("v1")
    cid = _use(store, ["v1"])
    for force in (False, True):
        with pytest.raises(Conflict) as e:
            vols.remove("v1", force=force)
        assert str(e.value) == f"remove v1: volume is in use - [{cid}]"
    assert vols.users() == {"v1": [cid]}
    vols.remove("v1", ignore=[cid])
    assert not os.path.exists(vols.dir("v1"))


def test_prune_removes_every_unused_volume(vols: VolumeStore, tmp_path) -> None:
    store = ContainerStore(str(tmp_path), vols.lock)
    for n in ("used", "named"):
        vols.create(n)
    anon = vols.create(None).name
    with open(os.path.join(vols.data_path("named"), "f"), "wb") as f:
        f.write(b"x" * 1500)
    _use(store, ["used"])
    assert [v.name for v in vols.dangling()] == sorted([anon, "named"])
    removed, reclaimed = vols.prune()
    assert sorted(removed) == sorted([anon, "named"]) and reclaimed == 1500
    assert vols.names() == ["used"]


def test_prune_label_filter(vols: VolumeStore) -> None:
    vols.create("keep1")
    vols.create("gone1", labels={"tmp": "1"})
    assert vols.prune(label_filters=["tmp=1"]) == (["gone1"], 0)
    assert vols.names() == ["keep1"]
