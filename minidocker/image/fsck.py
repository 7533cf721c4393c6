"""``minidocker fsck``: verify the data root's invariants and optionally remove debris.

Checks, per shared/docker-layout.md section 13:

* every image config hashes to its file name, and its layers exist;
* every layer's chain id is ``sha256(parent + " " + diff)``; its parent exists; its overlay2 dir,
  ``link`` and ``l/`` symlink agree; ``size`` matches the diff dir; reassembling the tar from
  tar-split + ``diff/`` hashes to ``diff`` (this reads every byte: the slow, thorough part);
* every reference points to an existing image;
* debris a crash can leave (run ``--repair`` while no other minidocker command works on the
  root: a layer being written is not yet owned by anything and would count as debris): ``layerdb/tmp/write-set-*``, ``*-removing`` layer dirs, overlay2 dirs no
  layer or container mount owns, dangling ``l/`` links, ``.tmp-*`` files of atomic writes,
  leftovers in ``<root>/tmp``. ``--repair`` removes exactly these (never a valid layer or image).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field

from minidocker.errors import MinidockerError
from minidocker.image import digest
from minidocker.image.store import Stores
from minidocker.storage.overlay2 import directory_size, remove_tree


@dataclass
class Report:
    images: int = 0
    layers: int = 0
    problems: list[str] = field(default_factory=list)
    debris: list[str] = field(default_factory=list)  # paths safe to delete
    repaired: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"problem: {p}" for p in self.problems]
        out += [f"debris: {d}" for d in self.debris if d not in self.repaired]
        out += [f"removed: {r}" for r in self.repaired]
        state = "clean" if not self.problems and len(self.repaired) == len(self.debris) else "NOT clean"
        out.append(f"{self.images} images, {self.layers} layers, {len(self.problems)} problems, "
                   f"{len(self.debris)} debris: {state}")  # fmt: skip
        return out

    @property
    def clean(self) -> bool:
        return not self.problems and len(self.repaired) == len(self.debris)


def _check_layers(stores: Stores, report: Report, verify_content: bool) -> set[str]:
    from minidocker.image import tarsplit

    owned: set[str] = set()
    for chain in stores.layers.ids():
        report.layers += 1
        try:
            layer = stores.layers.get(chain)
        except MinidockerError as e:
            # A layer dir without its files can only be a half-removed or hand-damaged entry.
            report.problems.append(f"layer {chain}: {e}")
            continue
        owned.add(layer.cache_id)
        try:
            digest.validate(layer.diff_id)
        except MinidockerError:
            report.problems.append(f"layer {chain}: invalid diff {layer.diff_id!r}")
            continue
        if digest.chain_id_step(layer.parent, layer.diff_id) != chain:
            report.problems.append(f"layer {chain}: chain id does not match parent + diff")
        if layer.parent and not stores.layers.exists(layer.parent):
            report.problems.append(f"layer {chain}: parent {layer.parent} missing")
        d = stores.driver
        if not d.exists(layer.cache_id):
            report.problems.append(f"layer {chain}: overlay2/{layer.cache_id} missing")
            continue
        try:
            link = d.link(layer.cache_id)
            target = os.readlink(os.path.join(d.link_dir, link))
            if target != f"../{layer.cache_id}/diff":
                report.problems.append(f"layer {chain}: l/{link} points to {target}")
        except (OSError, MinidockerError) as e:
            report.problems.append(f"layer {chain}: bad link: {e}")
        if directory_size(d.diff_path(layer.cache_id)) != layer.size:
            report.problems.append(f"layer {chain}: size file does not match overlay2/{layer.cache_id}/diff")
        if verify_content:
            try:
                got = tarsplit.assemble_digest(
                    stores.layers.tarsplit_path(chain), d.diff_path(layer.cache_id)
                )
            except MinidockerError as e:
                report.problems.append(f"layer {chain}: cannot reassemble: {e}")
            except OSError as e:
                report.problems.append(f"layer {chain}: cannot reassemble: {e}")
            else:
                if got != layer.diff_id:
                    report.problems.append(
                        f"layer {chain}: reassembled tar hashes to {got}, not {layer.diff_id}"
                    )
    for mount in stores.layers.mounts():
        owned.update({mount.mount_id, mount.init_id})
    return owned


def _find_debris(stores: Stores, report: Report, owned: set[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(stores.layers.tmp_dir):
            report.debris.append(os.path.join(stores.layers.tmp_dir, name))
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(stores.layers.sha_dir):
            if name.endswith("-removing"):
                report.debris.append(os.path.join(stores.layers.sha_dir, name))
    d = stores.driver
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(d.home):
            if name != "l" and name not in owned:
                report.debris.append(os.path.join(d.home, name))
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(d.link_dir):
            path = os.path.join(d.link_dir, name)
            # debris: dangling, or pointing into an orphan dir that --repair removes as well
            target = os.readlink(path).split("/")
            if not os.path.exists(path) or len(target) < 2 or target[1] not in owned:
                report.debris.append(path)
    for base in (stores.images.content, os.path.dirname(stores.refs.path)):
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(base):
                if name.startswith(".tmp-"):
                    report.debris.append(os.path.join(base, name))
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(os.path.join(stores.root, "tmp")):
            report.debris.append(os.path.join(stores.root, "tmp", name))


def check(stores: Stores, *, repair: bool = False, verify_content: bool = True) -> Report:
    report = Report()
    with stores.lock.held():
        owned = _check_layers(stores, report, verify_content)
        images = set(stores.images.ids())
        for image_id in images:
            report.images += 1
            path = os.path.join(stores.images.content, image_id[7:])
            with open(path, "rb") as f:
                if "sha256:" + hashlib.sha256(f.read()).hexdigest() != image_id:
                    report.problems.append(f"image {image_id}: content does not match its digest")
                    continue
            try:
                top = stores.top_layer(image_id)
            except (MinidockerError, ValueError) as e:
                report.problems.append(f"image {image_id}: {e}")
                continue
            if top is not None and not stores.layers.exists(top):
                report.problems.append(f"image {image_id}: top layer {top} missing")
        for refs in stores.refs.all().values():
            for ref, image_id in refs.items():
                if image_id not in images:
                    report.problems.append(f"reference {ref}: image {image_id} missing")
        _find_debris(stores, report, owned)
        if repair:
            for path in report.debris:
                if os.path.islink(path) or os.path.isfile(path):
                    os.unlink(path)
                else:
                    remove_tree(path)
                report.repaired.append(path)
    return report
