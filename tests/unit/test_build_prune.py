"""``image prune`` and ``builder prune`` (minidocker.image.prune) on a small store made by hand:
what goes, what stays (tags, images containers use, their ancestors), the store stays fsck-clean.

    base (busybox:latest, loaded: no parent)
     └─ step1 ── step2 ── app (app:1)            a tagged build
     │             └──── old                    a superseded head: dangling
     └─ failed                                  a failed build's last step: dangling
    used (untagged, no parent; a container was created from it)
     └─ used_child                              dangling: a step on top of it nothing reaches
    loose (untagged, loaded: no parent)          dangling, not build cache
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from tarbuild import files_tar

from minidocker.errors import InvalidInput
from minidocker.image import config as imgconfig
from minidocker.image import fsck, prune, reference
from minidocker.image.commit import child_image
from minidocker.image.store import Stores


def _root_image(stores: Stores, name: str, labels: dict[str, str] | None = None) -> str:
    layer = stores.layers.register(files_tar({name: name.encode() * 100}))
    cfg = imgconfig.container_config(Labels=labels or None)
    data = imgconfig.image_config(config=cfg, diff_ids=[layer.diff_id],
                                  history=[imgconfig.history_entry("2020-01-01T00:00:00Z")],
                                  created="2020-01-01T00:00:00Z")  # fmt: skip
    return stores.images.create(data)


def _step(stores: Stores, parent: str, name: str, *, layer: bool = True) -> str:
    top = stores.top_layer(parent)
    lay = stores.layers.register(files_tar({name: b"x" * 1000}), top) if layer else None
    cfg = dict(stores.images.get(parent)["config"])
    return child_image(stores, parent, config=cfg, container_cfg={"Cmd": ["/bin/sh", "-c", name]}, layer=lay)


def _tag(stores: Stores, image_id: str, name: str) -> None:
    stores.refs.add_tag(reference.parse(name).with_default_tag(), image_id, force=True)


def _container_using(stores: Stores, image_id: str) -> None:
    d = os.path.join(stores.root, "containers", "c" * 64)
    os.makedirs(d)
    with open(os.path.join(d, "config.v2.json"), "w") as f:
        json.dump({"ID": "c" * 64, "Image": image_id, "State": {"Running": False}}, f)


@pytest.fixture
def world(tmp_path: Any) -> tuple[Stores, dict[str, str]]:
    stores = Stores.open(str(tmp_path))
    ids: dict[str, str] = {}
    ids["base"] = _root_image(stores, "base")
    _tag(stores, ids["base"], "busybox")
    ids["step1"] = _step(stores, ids["base"], "step1")
    ids["step2"] = _step(stores, ids["step1"], "step2", layer=False)
    ids["app"] = _step(stores, ids["step2"], "app")
    _tag(stores, ids["app"], "app:1")
    ids["old"] = _step(stores, ids["step2"], "old")
    ids["failed"] = _step(stores, ids["base"], "failed")
    ids["used"] = _root_image(stores, "used")
    _container_using(stores, ids["used"])
    ids["used_child"] = _step(stores, ids["used"], "used_child")
    ids["loose"] = _root_image(stores, "loose", labels={"keep": "no"})
    return stores, ids


def _left(stores: Stores, ids: dict[str, str]) -> set[str]:
    return {name for name, i in ids.items() if stores.images.exists(i)}


def _clean(stores: Stores) -> None:
    report = fsck.check(stores)
    assert report.clean, report.lines()
    for i in stores.images.ids():  # no parent link points at a removed image
        parent = stores.images.get_parent(i)
        assert parent is None or stores.images.exists(parent)


def test_image_prune_removes_dangling_heads_only(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    report = prune.prune_images(stores)
    assert _left(stores, ids) == {"base", "step1", "step2", "app", "used"}
    deleted = {v for k, v in report.deleted if k == "deleted"}
    assert {ids["old"], ids["failed"], ids["used_child"], ids["loose"]} <= deleted
    assert report.reclaimed == 1000 * 3 + 500  # old, failed, used_child layers + loose's 5*100
    assert not any(k == "untagged" for k, _ in report.deleted)
    _clean(stores)
    assert prune.prune_images(stores).deleted == []  # nothing left to do


def test_image_prune_all_spares_what_containers_use(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    report = prune.prune_images(stores, all_images=True)
    # everything goes except the image the container uses
    assert _left(stores, ids) == {"used"}
    assert ("untagged", "app:1") in report.deleted and ("untagged", "busybox:latest") in report.deleted
    _clean(stores)


def test_image_prune_filters(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    prune.prune_images(stores, filters=prune.parse_filters(["label!=keep=no"]))
    assert "loose" in _left(stores, ids) and "old" not in _left(stores, ids)
    prune.prune_images(stores, filters=prune.parse_filters(["until=2019-01-01"]))
    assert "loose" in _left(stores, ids)  # created 2020: after the limit
    prune.prune_images(stores, filters=prune.parse_filters(["label=keep"]))
    assert "loose" not in _left(stores, ids)
    with pytest.raises(InvalidInput, match="invalid filter 'color'"):
        prune.parse_filters(["color=red"])
    with pytest.raises(InvalidInput, match="invalid filter 'label'"):
        prune.parse_filters(["label=x"], prune.BUILDER_FILTERS)


def test_builder_prune_removes_unreachable_build_steps(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    report = prune.prune_build_cache(stores)
    # build leftovers (old, failed, used_child) go; the tagged chain, loaded images and the
    # container's image stay
    assert _left(stores, ids) == {"base", "step1", "step2", "app", "used", "loose"}
    assert report.reclaimed == 3000
    _clean(stores)


def test_builder_prune_all_also_drops_intermediate_steps(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    app_layers = stores.diff_ids(ids["app"])
    prune.prune_build_cache(stores, all_cache=True)
    assert _left(stores, ids) == {"base", "app", "used", "loose"}
    assert stores.images.get_parent(ids["app"]) is None  # the link is cut, as dockerd does
    assert stores.diff_ids(ids["app"]) == app_layers and stores.layers.exists(
        stores.top_layer(ids["app"]) or ""
    )
    _clean(stores)


def test_builder_prune_until_keeps_newer_steps(world: tuple[Stores, dict[str, str]]) -> None:
    stores, ids = world
    prune.prune_build_cache(stores, filters=prune.parse_filters(["until=2000-01-01"], prune.BUILDER_FILTERS))
    assert "old" in _left(stores, ids) and "failed" in _left(stores, ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90m", 10_000.0 - 5400), ("1h30m", 10_000.0 - 5400), ("1.5h", 10_000.0 - 5400), ("12345", 12345.0),
     ("1970-01-01T01:00:00Z", 3600.0), ("1970-01-01T02:00:00+01:00", 3600.0)],
)  # fmt: skip
def test_parse_until(text: str, expected: float) -> None:
    assert prune.parse_until(text, now=10_000.0) == expected


def test_parse_until_rejects_garbage() -> None:
    with pytest.raises(InvalidInput, match="failed to parse"):
        prune.parse_until("yesterday")
