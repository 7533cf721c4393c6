"""``image prune`` and ``builder prune``: remove images nothing needs, and their layers.

``image prune`` follows dockerd 20.10 (moby ``daemon/images/image_prune.go``)::

    report = prune_images(stores)                        # dangling images: untagged chain heads
    report = prune_images(stores, all_images=True)       # + every image no container uses
    report = prune_images(stores, filters=parse_filters(["until=24h", "label=k=v"]))
    report.lines()      # ["untagged: app:1", "deleted: sha256:…"]; report.reclaimed in bytes

* dangling (the default): the images without children (heads) that have no tag are deleted,
  the way ``rmi`` deletes them: their untagged parents left without children go too;
* ``all_images``: every tagged image is untagged (each of its names) and deleted, except the
  images containers use, and untagged intermediate images (with children) are not a start;
* an image a container (running or stopped) was created from is never touched: ``rmi``'s
  conflict check refuses it and the prune goes on with the next one;
* filters: ``until=<duration|timestamp>`` (images created before), ``label=k[=v]`` and
  ``label!=k[=v]`` (on the image config's labels); anything else is refused.
* reclaimed space: the sizes of the layers that were removed (moby sums ``DiffSize``).

``builder prune``: the classic builder has no cache store of its own (BuildKit's is what
``docker builder prune`` empties). Its cache *is* the chain of step images: a step is reused when
a child of its parent image has the same container config. So what ``builder prune`` removes here
is that chain where nothing else needs it::

    report = prune_build_cache(stores)                  # build images no tag and no container reaches
    report = prune_build_cache(stores, all_cache=True)  # + the intermediate steps of tagged images

* default: untagged images made by a build step or a commit (they have a ``parent``) that are
  neither tagged nor an ancestor of a tagged image or of a container's image -- the leftovers of
  failed, abandoned and superseded builds -- children first, with their unused layers;
* ``all_cache``: also the untagged intermediate steps inside tagged images' parent chains (the
  next build of those Dockerfiles starts from scratch). Tagged images keep every layer (their
  rootfs owns them); their ``parent`` link is cut, as Docker's image store does when a parent goes,
  and ``history`` shows ``<missing>`` for those steps like for a pulled image.
* images containers use and their ancestors are never removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from dataclasses import dataclass, field

from minidocker import gojson, trace
from minidocker.errors import Conflict, CorruptStore, InvalidInput, NotFound
from minidocker.image import images
from minidocker.image.store import Stores

IMAGE_FILTERS = ("dangling", "label", "label!", "until")
BUILDER_FILTERS = ("until",)


@dataclass
class PruneReport:
    deleted: list[tuple[str, str]] = field(default_factory=list)  # ("untagged"|"deleted", value)
    reclaimed: int = 0  # bytes of the removed layers

    def lines(self) -> list[str]:
        return [f"{kind}: {value}" for kind, value in self.deleted]


# -- filters -----------------------------------------------------------------------------------
def parse_filters(specs: list[str], accepted: tuple[str, ...] = IMAGE_FILTERS) -> dict[str, list[str]]:
    """``--filter k=v`` flags as {key: [values]}; ``label!=x`` is key ``label!``.

    >>> parse_filters(["label=a=b", "label!=c", "until=1h"])
    {'label': ['a=b'], 'label!': ['c'], 'until': ['1h']}
    """
    out: dict[str, list[str]] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq:
            raise InvalidInput(f"bad format of filter (expected name=value): {spec}", subject=spec)
        key = key.strip().lower()
        if key not in accepted:
            raise InvalidInput(f"invalid filter '{key}'", subject=spec)
        out.setdefault(key, []).append(value)
    return out


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(value: str, now: float | None = None) -> float:
    """Seconds since the epoch for an ``until`` filter, like moby ``timetypes.GetTimestamp``: a Go
    duration (``10m``, ``1h30m``: that long before now), a Unix timestamp, or an RFC3339 date
    (``2006-01-02``, ``2006-01-02T15:04:05``, with ``Z``/offset, or local time without).

    >>> parse_until("90m", now=10_000.0)
    4600.0
    >>> parse_until("1700000000.5")
    1700000000.5
    >>> parse_until("1970-01-02T00:00:00Z")
    86400.0
    """
    now = time.time() if now is None else now
    text = value.strip()
    if text and re.fullmatch(r"(?:" + _GO_DURATION.pattern + r")+", text):
        return now - sum(float(n) * _UNITS[u] for n, u in _GO_DURATION.findall(text))
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return float(text)
    with contextlib.suppress(ValueError):
        return gojson.parse_rfc3339(text) / 1e9
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return dt.datetime.strptime(text, fmt).timestamp()  # local time, as Go's ParseInLocation
    raise InvalidInput(f"failed to parse value as time or duration: {value!r}", subject=value)


def _match_kv(specs: list[str], labels: dict[str, str]) -> bool:
    """moby ``filters.Args.MatchKVList``: every ``k`` / ``k=v`` spec is in ``labels``."""
    for spec in specs:
        k, eq, v = spec.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def _labels_match(filters: dict[str, list[str]], labels: dict[str, str]) -> bool:
    if filters.get("label") and not _match_kv(filters["label"], labels):
        return False
    return not (filters.get("label!") and _match_kv(filters["label!"], labels))


# -- shared bits -------------------------------------------------------------------------------
def _created(cfg: dict[str, object]) -> float:
    try:
        return gojson.parse_rfc3339(str(cfg.get("created", ""))) / 1e9
    except ValueError:
        return 0.0


def _images_used_by_containers(stores: Stores) -> set[str]:
    """Image IDs containers (running or stopped) were created from: one read per container."""
    used: set[str] = set()
    cdir = os.path.join(stores.root, "containers")
    with contextlib.suppress(FileNotFoundError), os.scandir(cdir) as it:
        for e in it:
            try:
                with open(os.path.join(e.path, "config.v2.json"), "rb") as f:
                    image = json.load(f).get("Image")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(image, str) and image:
                used.add(image)
    return used


def _layer_sizes(stores: Stores) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for chain in stores.layers.ids():
        with contextlib.suppress(NotFound, CorruptStore, ValueError, OSError):
            sizes[chain] = stores.layers.get(chain).size
    return sizes


# -- image prune -------------------------------------------------------------------------------
def prune_images(
    stores: Stores, *, all_images: bool = False, filters: dict[str, list[str]] | None = None
) -> PruneReport:
    """``docker image prune [-a] [--filter ...]``; see the module docstring."""
    filters = dict(filters or {})
    dangling = filters.pop("dangling", None)
    if dangling:
        value = dangling[-1].lower()
        if value not in ("true", "false", "1", "0"):
            raise InvalidInput(f"invalid filter 'dangling={dangling[-1]}'")
        all_images = value in ("false", "0")
    until = parse_until(filters["until"][-1]) if filters.get("until") else None
    report = PruneReport()
    with stores.lock.held():
        sizes = _layer_sizes(stores)
        ids = stores.images.ids()
        parents = {p for p in (stores.images.get_parent(i) for i in ids) if p}
        considered = ids if all_images else [i for i in ids if i not in parents]
        tops: list[tuple[float, str]] = []
        for image_id in considered:
            refs = stores.refs.references(image_id)
            if not refs and image_id in parents:
                continue  # an intermediate image: it goes with its child, not on its own
            try:
                cfg = stores.images.get(image_id)
            except (NotFound, CorruptStore, ValueError):
                continue
            created = _created(cfg)
            if until is not None and created > until:
                continue
            labels = (cfg.get("config") or {}).get("Labels") or {}
            if not _labels_match(filters, labels):
                continue
            tops.append((created, image_id))
        # newest first: a deterministic order (dockerd walks a map)
        for _, image_id in sorted(tops, reverse=True):
            if not stores.images.exists(image_id):
                continue  # went with a child deleted before
            refs = stores.refs.references(image_id)
            names: list[str]
            if refs:
                if not all_images and any(r.tag is not None for r in refs):
                    continue  # dangling only: a tagged head stays
                names = [r.familiar_string() for r in refs]
            else:
                names = [image_id]
            for name in names:
                try:
                    lines = images.remove_image(stores, name, force=False, prune=True)
                except (Conflict, NotFound):
                    continue  # used by a container (or gone already): skipped, like dockerd
                for line in lines:
                    kind, _, value = line.partition(": ")
                    report.deleted.append((kind.lower(), value))
                    if kind == "Deleted" and value in sizes:
                        report.reclaimed += sizes[value]
    trace.emit(lambda: f"image prune: {len(report.deleted)} entries, {report.reclaimed} bytes")
    return report


# -- builder prune -----------------------------------------------------------------------------
def _ancestors(stores: Stores, roots: set[str]) -> set[str]:
    out: set[str] = set()
    for image_id in roots:
        current: str | None = image_id
        while current and current not in out:
            out.add(current)
            current = stores.images.get_parent(current)
    return out


def prune_build_cache(
    stores: Stores, *, all_cache: bool = False, filters: dict[str, list[str]] | None = None
) -> PruneReport:
    """``builder prune [-a] [--filter until=...]``; see the module docstring."""
    filters = filters or {}
    until = parse_until(filters["until"][-1]) if filters.get("until") else None
    report = PruneReport()
    with stores.lock.held():
        sizes = _layer_sizes(stores)
        ids = stores.images.ids()
        tagged = {i for i in ids if stores.refs.references(i)}
        used = _images_used_by_containers(stores)
        keep = _ancestors(stores, tagged | used)
        in_use = _ancestors(stores, used)  # never removed, not even with all_cache
        parent_of = {i: stores.images.get_parent(i) for i in ids}
        candidates: set[str] = set()
        for image_id in ids:
            if image_id in tagged or image_id in in_use or not parent_of[image_id]:
                continue  # tagged, in use, or not made by a build step (pulled, loaded, imported)
            if image_id in keep and not all_cache:
                continue
            if until is not None:
                try:
                    if _created(stores.images.get(image_id)) > until:
                        continue
                except (NotFound, CorruptStore, ValueError):
                    pass
            candidates.add(image_id)
        # children first: a candidate goes once none of its children is left, except that with
        # all_cache a kept child (a tagged image, or a step above it) loses its parent link instead
        progress = True
        while candidates and progress:
            progress = False
            for image_id in sorted(candidates):
                children = [c for c, p in parent_of.items() if p == image_id]
                if any(c in candidates for c in children):
                    continue
                if any(c not in keep for c in children) or (children and not all_cache):
                    candidates.discard(image_id)  # a child the filter kept: the step stays
                    progress = True
                    continue
                for child in children:
                    stores.images.delete_metadata(child, "parent")
                    parent_of[child] = None
                removed = stores.delete_image_and_layers(image_id)
                del parent_of[image_id]
                candidates.discard(image_id)
                report.deleted.append(("deleted", image_id))
                report.deleted.extend(("deleted", c) for c in removed)
                report.reclaimed += sum(sizes.get(c, 0) for c in removed)
                progress = True
    trace.emit(lambda: f"builder prune: {len(report.deleted)} entries, {report.reclaimed} bytes")
    return report
