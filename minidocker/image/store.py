"""The data root as a whole: the overlay2 driver plus the layer, image and reference stores.

::

    <data-root>/
      .minidocker.lock                     flock serialising store mutations (ours; dockerd ignores it)
      overlay2/                            storage.overlay2.Overlay2Driver
      image/overlay2/                      0700
        layerdb/                           image.layerstore.LayerStore
        imagedb/                           image.imagestore.ImageStore
        repositories.json                  image.reference.ReferenceStore
        distribution/                      (registry chapter)
      containers/  volumes/  network/  tmp/

Reference counts are derived, never stored: a layer is in use while an image's rootfs or a
container mount reaches it.
"""

from __future__ import annotations

import functools
import os

from minidocker import fsutil, trace
from minidocker.errors import CorruptStore, NotFound
from minidocker.image import digest
from minidocker.image.imagestore import ImageStore
from minidocker.image.layerstore import LayerStore
from minidocker.record import Record, record
from minidocker.storage.overlay2 import Overlay2Driver

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from minidocker.image.reference import ReferenceStore


@record
class Stores(Record):
    """Every store of one data root (:meth:`open` makes them)."""

    root: str
    lock: fsutil.DataRootLock
    driver: Overlay2Driver
    layers: LayerStore
    images: ImageStore

    @functools.cached_property
    def refs(self) -> ReferenceStore:
        """``repositories.json``: made on first use, so that a container's monitor, which never
        reads it, does not import the reference grammar (its regexes: ~1.8 ms of ``run``)."""
        from minidocker.image.reference import ReferenceStore

        return ReferenceStore(os.path.join(self.root, "image", "overlay2", "repositories.json"), self.lock)

    @classmethod
    def open(cls, root: str) -> Stores:
        """Open (creating on first use) the data root at ``root``."""
        fsutil.makedirs(root, 0o711)
        lock = fsutil.DataRootLock(root)
        image_root = os.path.join(root, "image", "overlay2")
        driver = Overlay2Driver(os.path.join(root, "overlay2"))
        stores = cls(
            root=root,
            lock=lock,
            driver=driver,
            layers=LayerStore(os.path.join(image_root, "layerdb"), driver, lock),
            images=ImageStore(os.path.join(image_root, "imagedb"), lock),
        )
        if not os.path.isdir(os.path.join(image_root, "layerdb", "tmp")):
            fsutil.makedirs(os.path.join(root, "image"), 0o700)
            fsutil.makedirs(image_root, 0o700)
            driver.setup()
            stores.layers.setup()
            stores.images.setup()
            stores.refs.initialize()  # dockerd writes {"Repositories":{}} at start-up
            fsutil.makedirs(os.path.join(root, "tmp"), 0o700)
        return stores

    @property
    def tmp(self) -> str:
        """Scratch space on the data root's filesystem (renames into the stores stay atomic)."""
        path = os.path.join(self.root, "tmp")
        fsutil.makedirs(path, 0o700)
        return path

    # -- images and their layers -------------------------------------------------------------
    def diff_ids(self, image_id: str) -> list[str]:
        config = self.images.get(image_id)
        rootfs = config.get("rootfs") or {}
        ids = rootfs.get("diff_ids") or []
        if not isinstance(ids, list):
            raise CorruptStore(f"image {image_id}: rootfs.diff_ids is not a list", subject=image_id)
        return [str(d) for d in ids]

    def top_layer(self, image_id: str) -> str | None:
        """The chain id of the image's top layer (None for an image without layers)."""
        ids = self.diff_ids(image_id)
        return digest.chain_id(ids) if ids else None

    def layers_in_use(self, *, exclude_image: str | None = None) -> set[str]:
        """Every chain id reachable from an image (other than ``exclude_image``) or a container mount."""
        used: set[str] = set()
        for image_id in self.images.ids():
            if image_id == exclude_image:
                continue
            try:
                used.update(digest.chain_ids(self.diff_ids(image_id)))
            except (NotFound, CorruptStore, ValueError):
                continue
        for mount in self.layers.mounts():
            if mount.parent:
                used.update(layer.chain_id for layer in self.layers.chain(mount.parent))
        return used

    def delete_image_and_layers(self, image_id: str) -> list[str]:
        """Remove an image's config and metadata, then every layer of it nothing else uses.

        Returns the removed chain ids, top first (what ``rmi`` prints as ``Deleted:``).
        """
        with self.lock.held():
            top = None
            try:
                top = self.top_layer(image_id)
            except (NotFound, CorruptStore):
                pass
            used = self.layers_in_use(exclude_image=image_id)
            self.images.delete(image_id)
            removed: list[str] = []
            current = top
            while current is not None and current not in used:
                try:
                    layer = self.layers.get(current)
                except NotFound:
                    break
                self.layers.remove(current)
                removed.append(current)
                current = layer.parent
        trace.emit(lambda: f"removed image {image_id} and {len(removed)} layer(s)")
        return removed
