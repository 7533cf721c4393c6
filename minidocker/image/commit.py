"""New images from read-write layers: ``docker commit`` and every step of a classic build.

An image step is always the same three moves (moby ``daemon.CommitImage`` / ``image.NewChildImage``):

1. the container's upper dir becomes a layer tar (:func:`minidocker.storage.diff.write_layer`) and
   is registered on top of the parent image's top layer -- unless the tar is empty, then the
   step is an *empty layer* (history ``empty_layer: true``, no new diff ID);
2. the child config: the parent's rootfs plus the new diff ID, the parent's history plus one
   entry whose ``created_by`` is the container config's Cmd joined with spaces;
3. the config is stored (its sha256 is the image ID) and ``metadata/<id>/parent`` names the parent.

Use::

    layer = register_upper(stores, upper_dir, parent_chain_id)    # None: nothing changed
    image_id = child_image(stores, parent_id, config=cfg, container_cfg=ccfg, layer=layer)
    image_id = commit_container(stores, container, changes=["ENV A=1"], author="me")
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

from minidocker import gojson, trace
from minidocker.errors import InvalidInput
from minidocker.image import config as imgconfig
from minidocker.image import reference

if TYPE_CHECKING:
    from minidocker.container.state import Container
    from minidocker.image.layerstore import Layer
    from minidocker.image.store import Stores

# sha256 of 1024 zero bytes: the tar of an empty directory (moby layer.DigestSHA256EmptyTar)
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def register_upper(stores: Stores, upper: str, parent: str | None) -> Layer | None:
    """Turn an upper dir into a registered layer on ``parent`` (a chain id); None if it is empty."""
    from minidocker.storage import diff

    fd, path = tempfile.mkstemp(prefix="commit-", suffix=".tar", dir=stores.tmp)
    try:
        with os.fdopen(fd, "w+b") as f:
            diff.write_layer(upper, f)
            if f.tell() == 1024:  # just the two end blocks: nothing changed
                trace.emit(lambda: f"{upper}: empty diff, no layer")
                return None
            f.seek(0)
            return stores.layers.register(f, parent)
    finally:
        os.unlink(path)


def child_image(
    stores: Stores,
    parent_id: str | None,
    *,
    config: dict[str, Any],
    container_cfg: dict[str, Any],
    layer: Layer | None,
    author: str = "",
    comment: str = "",
    container_id: str = "",
    created_by: str | None = None,
) -> str:
    """Store the child of ``parent_id`` (None: from scratch) and return its image ID."""
    parent = stores.images.get(parent_id) if parent_id else {}
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if layer is not None:
        diff_ids.append(layer.diff_id)
    created = gojson.rfc3339nano()
    if created_by is None:
        created_by = " ".join(container_cfg.get("Cmd") or [])
    entry = imgconfig.history_entry(
        created, author=author, created_by=created_by, comment=comment, empty_layer=layer is None
    )
    data = imgconfig.image_config(
        config=imgconfig.container_config(**config),
        diff_ids=diff_ids,
        history=[*(parent.get("history") or []), entry],
        created=created,
        author=author,
        container=container_id,
        container_cfg=imgconfig.normalize_container_config(container_cfg),
    )
    image_id = stores.images.create(data)
    if parent_id:
        stores.images.set_parent(image_id, parent_id)
    trace.emit(lambda: f"image {image_id} = {parent_id or 'scratch'} + {layer.diff_id if layer else 'empty'}")
    return image_id


def merge_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby ``daemon/commit.go merge``: fill what the changes left unset from the container's config."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = image.get("User") or ""
    ports = dict(out.get("ExposedPorts") or {})
    for p in image.get("ExposedPorts") or {}:
        ports.setdefault(p, {})
    out["ExposedPorts"] = ports or image.get("ExposedPorts")
    env = list(out.get("Env") or [])
    if not env:
        out["Env"] = image.get("Env")
    else:
        keys = {e.split("=", 1)[0] for e in env}
        out["Env"] = env + [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    labels = dict(out.get("Labels") or {})
    for k, v in (image.get("Labels") or {}).items():
        labels.setdefault(k, v)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            out["ArgsEscaped"] = image.get("ArgsEscaped", False)
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    if image.get("Healthcheck") and not out.get("Healthcheck"):
        out["Healthcheck"] = image["Healthcheck"]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = image.get("WorkingDir") or ""
    vols = dict(out.get("Volumes") or {})
    for v in image.get("Volumes") or {}:
        vols.setdefault(v, {})
    out["Volumes"] = vols or image.get("Volumes")
    if not out.get("StopSignal"):
        out["StopSignal"] = image.get("StopSignal") or ""
    return out


def commit_container(
    stores: Stores,
    c: Container,
    *,
    repo_tag: str | None = None,
    changes: list[str] | None = None,
    author: str = "",
    message: str = "",
) -> str:
    """``docker commit``: the container's RW layer on top of its image; returns the image ID."""
    from minidocker.image.changes import apply_changes

    ref = None
    if repo_tag:
        ref = reference.parse(repo_tag)
        if ref.digest is not None:
            raise InvalidInput("refusing to create a tag with a digest reference", subject=repo_tag)
        ref = ref.with_default_tag()
    user_cfg = apply_changes(imgconfig.container_config(), changes or [])
    config = merge_config(user_cfg, c.config)
    mount = stores.layers.get_mount(c.id)
    layer = register_upper(stores, stores.driver.diff_path(mount.mount_id), mount.parent)
    image_id = child_image(
        stores,
        c.image or None,
        config=config,
        container_cfg=c.config,
        layer=layer,
        author=author,
        comment=message,
        container_id=c.id,
    )
    if ref is not None:
        stores.refs.add_tag(ref, image_id, force=True)
        stores.images.set_last_updated(image_id)
    return image_id


def container_changes(stores: Stores, c: Container) -> list[tuple[str, str]]:
    """``docker diff``: (kind, path) for the container's RW layer against its init layer and image."""
    from minidocker.storage import diff

    mount = stores.layers.get_mount(c.id)
    d = stores.driver
    lowers = [os.path.join(d.home, entry) for entry in d.lower(mount.mount_id)]
    return [(ch.kind, ch.path) for ch in diff.changes(d.diff_path(mount.mount_id), lowers)]
