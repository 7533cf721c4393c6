"""Image operations behind ``images``, ``tag``, ``rmi``, ``history``, ``inspect`` and ``import``.

These follow dockerd's image service (moby ``daemon/images``): how a name resolves to an image,
when ``rmi`` untags and when it deletes, what ``history`` and ``inspect`` report. The CLI only
parses flags and prints what these return.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from minidocker import gojson, trace
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.image import digest, reference
from minidocker.image.store import Stores
from minidocker.record import Record, record
from minidocker.units import human_duration

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any, BinaryIO


# -- resolving names ---------------------------------------------------------------------------
def resolve(stores: Stores, name: str) -> str:
    """Image ID for a reference (``busybox``, ``busybox:1``, ``x@sha256:…``) or a (short) ID."""
    if name.startswith("sha256:") or digest.is_hex64(name):
        return stores.images.search(name)
    try:
        ref = reference.parse(name)
    except InvalidInput:
        ref = None
    if ref is not None:
        if ref.digest is None and ref.tag is None:
            ref = ref.with_default_tag()
        with contextlib.suppress(NotFound):
            image_id = stores.refs.get(ref)
            if stores.images.exists(image_id):
                return image_id
    with contextlib.suppress(NotFound, InvalidInput):
        return stores.images.search(name)
    raise NotFound(f"No such image: {name}", subject=name)


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


# -- human formatting (go-units in minidocker.units) -------------------------------------------
def created_ago(created: str) -> str:
    try:
        ns = gojson.parse_rfc3339(created)
    except ValueError:
        return "N/A"
    return human_duration(time.time() - ns / 1e9) + " ago"


# -- listing -----------------------------------------------------------------------------------
@record
class ImageRow(Record):
    """One line of ``images``."""

    repository: str
    tag: str
    digest: str
    image_id: str
    created: str  # RFC3339 from the config
    size: int


def image_size(stores: Stores, image_id: str) -> int:
    """Sum of the sizes of the image's layers (Docker's ``Size``/``VirtualSize``)."""
    top = stores.top_layer(image_id)
    if top is None:
        return 0
    return sum(layer.size for layer in stores.layers.chain(top))


def list_images(stores: Stores, *, all_images: bool = False) -> list[ImageRow]:
    """Rows of ``images``: one per tag (digest refs fill the DIGEST column), newest first.

    Untagged images are shown as ``<none>`` when dangling (no children); intermediate images
    (untagged, with children) only with ``-a``.
    """
    rows: list[ImageRow] = []
    by_image: dict[str, list[reference.Reference]] = {}
    for image_id in stores.images.ids():
        by_image[image_id] = stores.refs.references(image_id)
    parents = {stores.images.get_parent(i) for i in by_image}
    for image_id, refs in by_image.items():
        try:
            cfg = stores.images.get(image_id)
            size = image_size(stores, image_id)
        except Exception:  # a corrupt image is listed with what we know (podman 330-corrupt-images)
            cfg, size = {}, 0
        created = str(cfg.get("created", ""))
        tags = [r for r in refs if r.tag is not None]
        digests = [r for r in refs if r.digest is not None]
        if not tags and not digests:
            if image_id in parents and not all_images:
                continue
            rows.append(ImageRow("<none>", "<none>", "<none>", image_id, created, size))
            continue
        for r in tags:
            dig = next((d.digest for d in digests if d.familiar_name == r.familiar_name), None)
            rows.append(
                ImageRow(r.familiar_name, r.tag or "<none>", dig or "<none>", image_id, created, size)
            )
        for d in digests:
            if not any(t.familiar_name == d.familiar_name for t in tags):
                rows.append(
                    ImageRow(d.familiar_name, "<none>", d.digest or "<none>", image_id, created, size)
                )
    rows.sort(key=lambda r: (r.created, r.repository, r.tag), reverse=True)
    return rows


# -- tag and rmi -------------------------------------------------------------------------------
def tag(stores: Stores, source: str, target: str) -> None:
    image_id = resolve(stores, source)
    ref = reference.parse(target)
    if ref.digest is not None:
        raise InvalidInput("refusing to create a tag with a digest reference")
    ref = ref.with_default_tag()
    stores.refs.add_tag(ref, image_id, force=True)
    stores.images.set_last_updated(image_id)
    trace.emit(lambda: f"tag {ref.familiar_string()} -> {image_id}")


def containers_using(stores: Stores, image_id: str) -> list[tuple[str, bool]]:
    """(container id, running) for every container created from ``image_id``."""
    out = []
    cdir = os.path.join(stores.root, "containers")
    with contextlib.suppress(FileNotFoundError), os.scandir(cdir) as it:
        for e in it:
            try:
                with open(os.path.join(e.path, "config.v2.json"), "rb") as f:
                    c = json.load(f)
            except (OSError, ValueError):
                continue
            if c.get("Image") == image_id:
                out.append((e.name, bool((c.get("State") or {}).get("Running"))))
    return out


def _single_reference(refs: list[reference.Reference]) -> bool:
    """moby ``isSingleReference``: one name, or one tag plus digest refs of the same repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    canonical = {r.familiar_name for r in refs if r.digest is not None}
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    return len(canonical) == 1 and single.familiar_name in canonical


def remove_image(stores: Stores, name: str, *, force: bool = False, prune: bool = True) -> list[str]:
    """``rmi``: returns the ``Untagged: …`` / ``Deleted: …`` lines, as Docker prints them."""
    image_id = resolve(stores, name)
    lines: list[str] = []
    with stores.lock.held():
        refs = stores.refs.references(image_id)
        by_reference = not (name.startswith("sha256:") or short_id(image_id).startswith(name.lower()))
        if by_reference:
            ref = reference.parse(name)
            if ref.tag is None and ref.digest is None:
                ref = ref.with_default_tag()
            # moby ImageDelete: the last name of an image a container uses is not removed
            # without force (the image would be left dangling); `image prune -a` relies on it
            if not force and _single_reference(refs):
                users = containers_using(stores, image_id)
                if users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must force) - '
                        f"container {users[0][0][:12]} is using its referenced image {short_id(image_id)}",
                        subject=image_id,
                    )
            stores.refs.delete(ref)
            lines.append(f"Untagged: {ref.familiar_string()}")
            remaining = stores.refs.references(image_id)
            # Removing one of several names only untags (digest refs of the same repo go too).
            if any(r.tag is not None for r in remaining) or (
                remaining and any(r.familiar_name != ref.familiar_name for r in remaining)
            ):
                return lines
            for r in remaining:
                stores.refs.delete(r)
                lines.append(f"Untagged: {r.familiar_string()}")
        else:
            repos = {r.familiar_name for r in refs}
            if len(repos) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                    "image is referenced in multiple repositories",
                    subject=image_id,
                )
        users = containers_using(stores, image_id)
        if users:
            cid, running = users[0]
            if running or not force:
                kind = (
                    "cannot be forced - image is being used by running container"
                    if running
                    else ("must be forced - image is being used by stopped container")
                )
                raise Conflict(f"conflict: unable to delete {short_id(image_id)} ({kind} {cid[:12]})")
        if stores.images.children(image_id):
            if lines:  # untagged by name: an intermediate image stays
                return lines
            raise Conflict(
                f"conflict: unable to delete {short_id(image_id)} (cannot be forced) - image has dependent child images"
            )
        if not by_reference:
            for r in stores.refs.references(image_id):
                stores.refs.delete(r)
                lines.append(f"Untagged: {r.familiar_string()}")
        parent = stores.images.get_parent(image_id)
        removed = stores.delete_image_and_layers(image_id)
        lines.append(f"Deleted: {image_id}")
        lines.extend(f"Deleted: {c}" for c in removed)
        # Docker also removes a parent left dangling (untagged, no other children).
        if (
            prune
            and parent
            and stores.images.exists(parent)
            and not stores.refs.references(parent)
            and not stores.images.children(parent)
        ):
            with contextlib.suppress(Conflict, NotFound):
                lines.extend(remove_image(stores, parent, force=False, prune=True))
    return lines


# -- history and inspect -----------------------------------------------------------------------
@record
class HistoryRow(Record):
    """One line of ``history``."""

    image_id: str  # "<missing>" where no local image corresponds
    created: str
    created_by: str
    size: int
    comment: str


def history(stores: Stores, name: str) -> list[HistoryRow]:
    image_id = resolve(stores, name)
    cfg = stores.images.get(image_id)
    diff_ids = stores.diff_ids(image_id)
    chain = digest.chain_ids(diff_ids)
    rows: list[HistoryRow] = []
    layer_index = 0
    for h in cfg.get("history") or []:
        size = 0
        if not h.get("empty_layer"):
            if layer_index < len(chain):
                with contextlib.suppress(NotFound):
                    size = stores.layers.get(chain[layer_index]).size
            layer_index += 1
        rows.append(
            HistoryRow("<missing>", h.get("created", ""), h.get("created_by", ""), size, h.get("comment", ""))
        )
    rows.reverse()
    # The newest entries belong to this image, older ones to its parents when they exist locally.
    current: str | None = image_id
    for row in rows:
        if current is None:
            break
        row.image_id = current
        current = stores.images.get_parent(current)
        if current is not None and not stores.images.exists(current):
            current = None
    return rows


def inspect(stores: Stores, name: str) -> dict[str, Any]:
    """Docker's ``ImageInspect`` shape (``docker image inspect``)."""
    from minidocker.image import config as imgconfig  # not on `run`'s path: imported when used

    image_id = resolve(stores, name)
    cfg = stores.images.get(image_id)
    refs = stores.refs.references(image_id)
    top = stores.top_layer(image_id)
    graph: dict[str, Any] = {"Data": None, "Name": "overlay2"}
    if top is not None:
        chain = stores.layers.chain(top)
        d = stores.driver
        upper = chain[-1]
        data = {
            "MergedDir": os.path.join(d.dir(upper.cache_id), "merged"),
            "UpperDir": d.diff_path(upper.cache_id),
            "WorkDir": os.path.join(d.dir(upper.cache_id), "work"),
        }
        if len(chain) > 1:
            data = {"LowerDir": ":".join(d.diff_path(x.cache_id) for x in reversed(chain[:-1])), **data}
        graph["Data"] = data
    size = image_size(stores, image_id)
    last = stores.images.get_metadata(image_id, "lastUpdated")
    return {
        "Id": image_id,
        "RepoTags": [r.familiar_string() for r in refs if r.tag is not None],
        "RepoDigests": [r.familiar_string() for r in refs if r.digest is not None],
        "Parent": stores.images.get_parent(image_id) or "",
        "Comment": cfg.get("comment", ""),
        "Created": cfg.get("created", ""),
        "Container": cfg.get("container", ""),
        # dockerd decodes into its structs and encodes again: every field, in Go order
        "ContainerConfig": imgconfig.normalize_container_config(cfg.get("container_config") or {}),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": imgconfig.normalize_container_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": stores.diff_ids(image_id)},
        "Metadata": {"LastTagTime": last or "0001-01-01T00:00:00Z"},
    }


# -- import ------------------------------------------------------------------------------------
def import_image(
    stores: Stores,
    stream: BinaryIO,
    *,
    repo_tag: str | None = None,
    changes: list[str] | None = None,
    message: str = "",
    eof_empty_segment: bool = True,
) -> str:
    """``docker import``: a rootfs tar (already decompressed) becomes a one-layer image."""
    from minidocker.image import config as imgconfig
    from minidocker.image.changes import apply_changes

    ref = None
    if repo_tag:
        ref = reference.parse(repo_tag)
        if ref.digest is not None:
            raise InvalidInput("refusing to create a tag with a digest reference")
        ref = ref.with_default_tag()
    cfg = apply_changes(imgconfig.container_config(), changes or [])
    layer = stores.layers.register(stream, None, eof_empty_segment=eof_empty_segment)
    created = gojson.rfc3339nano()
    comment = message or "Imported from -"
    config_bytes = imgconfig.image_config(
        config=cfg,
        diff_ids=[layer.diff_id],
        history=[imgconfig.history_entry(created, comment=comment)],
        created=created,
        comment=comment,
    )
    image_id = stores.images.create(config_bytes)
    if ref is not None:
        stores.refs.add_tag(ref, image_id, force=True)
        stores.images.set_last_updated(image_id)
    return image_id
