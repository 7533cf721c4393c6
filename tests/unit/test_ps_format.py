"""`ps`: Docker's columns, truncation, quoting, ports, the image column, filters and --format."""

from __future__ import annotations

import time

import pytest

from minidocker import gojson
from minidocker.cli.containers import ContainerContext, displayable_ports, go_quote, ps_lines
from minidocker.container import inspect as svc
from minidocker.container.hostconfig import HostConfig, PortBinding
from minidocker.container.store import ContainerStore
from minidocker.errors import InvalidInput
from minidocker.image import config as imgconfig
from minidocker.image import reference
from minidocker.image.store import Stores

NOW = float(int(time.time()))  # State.describe() reads the real clock


def ts(offset: float) -> str:
    return gojson.rfc3339nano(ns=int((NOW + offset) * 1e9))


@pytest.fixture
def env(tmp_path):  # type: ignore[no-untyped-def]
    stores = Stores.open(str(tmp_path / "root"))
    image_id = stores.images.create(
        imgconfig.image_config(
            config=imgconfig.container_config(Cmd=["sh"]),
            diff_ids=[],
            history=[],
            created=ts(-100),
            comment="",
        )  # fmt: skip
    )
    stores.refs.add_tag(reference.parse("busybox:latest"), image_id)
    return stores, ContainerStore(stores.root, stores.lock), image_id


def make(store: ContainerStore, image_id: str, name: str, cmd: list[str], created: float, **state: object):  # type: ignore[no-untyped-def]
    c = store.create(image_id=image_id, config=imgconfig.container_config(Cmd=cmd, Image="busybox"),
                     host_config=HostConfig.for_run(network_mode="none"), name=name)  # fmt: skip
    c.created = ts(created)
    for k, v in state.items():
        setattr(c.state, k, v)
    store.save(c)
    return store.get(c.id)


def test_default_table_matches_docker(env) -> None:  # type: ignore[no-untyped-def]
    stores, store, image_id = env
    a = make(store, image_id, "c1", ["sh", "-c", 'sleep 100; echo "<a&b>"'], 0)
    b = make(
        store,
        image_id,
        "x1",
        ["sh", "-c", "exit 3"],
        -47,
        exit_code=3,
        started_at=ts(-46),
        finished_at=ts(-46),
    )
    rows = svc.select(store.list(), all_=True)
    assert [c.name for c in rows] == ["/c1", "/x1"]  # newest first
    # columns and padding exactly as docker 20.10 printed them for the same containers
    assert ps_lines(rows[:1], stores, now=NOW) == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS    PORTS     NAMES\n"
        f'{a.id[:12]}   busybox   "sh -c \'sleep 100; e…"   Less than a second ago   Created             c1\n'
    )
    text = ps_lines(rows, stores, now=NOW).splitlines()
    # the widest cell of each column + 3 (docker: "STATUS" padded for "Exited (3) 46 seconds ago")
    assert text[0] == "CONTAINER ID   IMAGE     COMMAND                  CREATED                  " + (
        "STATUS" + " " * 22 + "PORTS     NAMES"
    )
    assert (
        text[2]
        == f"{b.id[:12]}   busybox   \"sh -c 'exit 3'\"         47 seconds ago           Exited (3) 46 seconds ago             x1"
    )
    full = ps_lines(rows, stores, no_trunc=True, now=NOW)
    assert '"sh -c \'sleep 100; echo \\"<a&b>\\"\'"' in full and a.id in full
    assert ps_lines(rows, stores, quiet=True) == f"{a.id[:12]}\n{b.id[:12]}\n"
    # nothing running: the header alone
    assert ps_lines([], stores) == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_status_and_selection(env) -> None:  # type: ignore[no-untyped-def]
    _, store, image_id = env
    make(store, image_id, "created1", ["true"], -30)
    make(store, image_id, "up1", ["sleep", "9"], -20, running=True, pid=1, started_at=ts(-10))
    make(store, image_id, "ex0", ["true"], -10, started_at=ts(-9), finished_at=ts(-125), exit_code=0)
    cs = store.list()
    assert [c.short_name for c in svc.select(cs)] == ["up1"]
    assert [c.short_name for c in svc.select(cs, last=2)] == ["ex0", "up1"]
    assert [
        c.short_name for c in svc.select(cs, filters=svc.parse_filters(["status=exited", "status=created"]))
    ] == [
        "ex0",
        "created1",
    ]
    assert [c.short_name for c in svc.select(cs, all_=True, filters=svc.parse_filters(["name=^/c"]))] == [
        "created1"
    ]
    assert [c.short_name for c in svc.select(cs, all_=True, filters=svc.parse_filters(["exited=0"]))] == [
        "ex0"
    ]
    up = next(c for c in cs if c.short_name == "up1")
    assert svc.select(cs, all_=True, filters=svc.parse_filters([f"id={up.id[:6]}"])) == [up]
    with pytest.raises(InvalidInput, match="Invalid filter 'status=foo'"):
        svc.parse_filters(["status=foo"])
    with pytest.raises(InvalidInput, match="Invalid filter 'foo'"):
        svc.parse_filters(["foo=bar"])
    ex = next(c for c in cs if c.short_name == "ex0")
    assert ex.state.describe(now_ns=int(NOW * 1e9)) == "Exited (0) 2 minutes ago"


def test_image_column_follows_docker(env) -> None:  # type: ignore[no-untyped-def]
    stores, store, image_id = env
    c = make(store, image_id, "c1", ["sh"], -1)
    assert ContainerContext(svc.summary(c, stores)).Image() == "busybox"
    # the name now points elsewhere (or nowhere): the image id, short unless --no-trunc
    stores.refs.delete(reference.parse("busybox:latest"))
    s = svc.summary(c, stores)
    assert s["Image"] == image_id
    assert ContainerContext(s).Image() == image_id[7:19]
    assert ContainerContext(s, trunc=False).Image() == image_id
    s["Image"] = "busybox:1.36@sha256:" + "a" * 64
    assert ContainerContext(s).Image() == "busybox:1.36"


def test_format_fields(env) -> None:  # type: ignore[no-untyped-def]
    stores, store, image_id = env
    c = make(store, image_id, "web", ["echo", "hi"], -90)
    c.config["Labels"] = {"b": "2", "a": "1"}
    c.network_settings.ports = {"80/tcp": [PortBinding("0.0.0.0", "8080")], "443/tcp": None}
    store.save(c)
    rows = svc.select(store.list(), all_=True)
    out = ps_lines(
        rows,
        stores,
        fmt="table {{.Names}}\\t{{.Labels}}\\t{{.Ports}}\\t{{.RunningFor}}\\t{{.State}}",
        now=NOW,
    )
    assert out == (
        "NAMES     LABELS    PORTS                           CREATED              STATE\n"
        "web       a=1,b=2   443/tcp, 0.0.0.0:8080->80/tcp   About a minute ago   created\n"
    )
    assert (
        ps_lines(rows, stores, fmt='{{.Label "a"}}:{{.Networks}}:{{.LocalVolumes}}:{{.Size}}')
        == "1:none:0:0B\n"
    )
    created_at = ContainerContext(svc.summary(rows[0], stores)).CreatedAt()
    assert created_at.startswith(time.strftime("%Y-%m-%d", time.localtime(NOW - 90)))


def test_displayable_ports_and_quote() -> None:
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 81, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert displayable_ports(ports) == "53/udp, 0.0.0.0:80-81->80-81/tcp, 127.0.0.1:2222->22/tcp"
    assert displayable_ports([]) == ""
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'
