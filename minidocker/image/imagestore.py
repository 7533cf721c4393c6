"""Docker's image store: ``image/overlay2/imagedb/``.

::

    imagedb/                          0700
      content/sha256/<id>             0600   the image config, exact bytes; id = sha256(bytes)
      metadata/sha256/<id>/           0700   created lazily
        parent                        0600   "sha256:<parent id>"  (commit, build, load)
        lastUpdated                   0600   RFC3339Nano local time  (only when tagged by tag/import/commit)

An image *is* its config: the ID is a content hash, so the same config always gets the same ID and
nothing in the store can lie about it (files whose hash does not match are ignored, as in Docker).
"""

from __future__ import annotations

import contextlib
import json
import os

from minidocker import fsutil, gojson, trace
from minidocker.errors import CorruptStore, InvalidInput, NotFound
from minidocker.image import digest

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any


class ImageStore:
    def __init__(self, root: str, lock: fsutil.DataRootLock) -> None:
        self.root = root
        self.lock = lock
        self.content = os.path.join(root, "content", "sha256")
        self.metadata = os.path.join(root, "metadata", "sha256")
        # configs read and verified by this process: an ID names one content forever, so the
        # second read of a `run` (the image's config, then its layers) skips the file and the hash
        self._verified: dict[str, bytes] = {}

    def setup(self) -> None:
        fsutil.makedirs(self.content, 0o700)
        fsutil.makedirs(self.metadata, 0o700)

    # -- content -------------------------------------------------------------------------------
    def create(self, config: bytes) -> str:
        """Store a config (bytes kept exactly) and return its ID ``sha256:<hex>``."""
        try:
            parsed = json.loads(config)
        except ValueError as e:
            raise InvalidInput(f"invalid image config JSON: {e}") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("rootfs"), dict):
            raise InvalidInput("invalid image JSON, no RootFS key")
        image_id = digest.sha256_digest(config)
        path = os.path.join(self.content, image_id[7:])
        with self.lock.held():
            if not os.path.exists(path):
                fsutil.atomic_write(path, config, 0o600)
        return image_id

    def exists(self, image_id: str) -> bool:
        return os.path.isfile(os.path.join(self.content, digest.validate(image_id)))

    def get_bytes(self, image_id: str) -> bytes:
        """The config's exact bytes, checked against the ID (once per process: content cannot
        change under an ID; whether the image still *exists* is :meth:`exists`'s question)."""
        hexid = digest.validate(image_id)
        known = self._verified.get(hexid)
        if known is not None:
            return known
        path = os.path.join(self.content, hexid)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}", subject=image_id) from None
        if digest.sha256_digest(data) != image_id:  # (read on every `run`: no OpenSSL load)
            raise CorruptStore(f"image {image_id}: content does not match its digest", subject=image_id)
        self._verified[hexid] = data
        return data

    def get(self, image_id: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.get_bytes(image_id))
        return result

    def ids(self) -> list[str]:
        """IDs of all images whose content verifies (Docker ignores the others)."""
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.content) as it:
            for e in it:
                if digest.is_hex64(e.name) and e.is_file():
                    out.append("sha256:" + e.name)
        return sorted(out)

    def delete(self, image_id: str) -> None:
        hexid = digest.validate(image_id)
        self._verified.pop(hexid, None)
        with self.lock.held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.content, hexid))
            from minidocker.storage.overlay2 import remove_tree

            remove_tree(os.path.join(self.metadata, hexid))
        trace.emit(f"delete imagedb/content/sha256/{hexid}")

    def search(self, prefix: str) -> str:
        """Resolve a (possibly short) hex ID, with or without ``sha256:``."""
        p = prefix[7:] if prefix.startswith("sha256:") else prefix
        if not p or any(c not in "0123456789abcdef" for c in p):
            raise NotFound(f"No such image: {prefix}", subject=prefix)
        matches = [i for i in self.ids() if i[7:].startswith(p)]
        if not matches:
            raise NotFound(f"No such image: {prefix}", subject=prefix)
        if len(matches) > 1:
            raise InvalidInput(f"short ID {prefix} is ambiguous", subject=prefix)
        return matches[0]

    # -- metadata ------------------------------------------------------------------------------
    def _meta(self, image_id: str, key: str) -> str:
        return os.path.join(self.metadata, digest.validate(image_id), key)

    def set_metadata(self, image_id: str, key: str, value: bytes) -> None:
        path = self._meta(image_id, key)
        with self.lock.held():
            fsutil.makedirs(os.path.dirname(path), 0o700)
            fsutil.atomic_write(path, value, 0o600)

    def get_metadata(self, image_id: str, key: str) -> str | None:
        try:
            return fsutil.read_text(self._meta(image_id, key))
        except FileNotFoundError:
            return None

    def delete_metadata(self, image_id: str, key: str) -> None:
        """Drop one metadata entry (a child's ``parent`` when the parent goes, as moby's store does)."""
        with self.lock.held(), contextlib.suppress(FileNotFoundError):
            os.unlink(self._meta(image_id, key))

    def set_parent(self, image_id: str, parent_id: str) -> None:
        digest.validate(parent_id)
        self.set_metadata(image_id, "parent", parent_id.encode())

    def get_parent(self, image_id: str) -> str | None:
        return self.get_metadata(image_id, "parent")

    def children(self, image_id: str) -> list[str]:
        return [i for i in self.ids() if self.get_parent(i) == image_id]

    def set_last_updated(self, image_id: str) -> None:
        """``lastUpdated``: Go's ``time.Now().Format(RFC3339Nano)`` in local time."""
        self.set_metadata(image_id, "lastUpdated", local_rfc3339nano().encode())


def local_rfc3339nano() -> str:
    """Now, in local time, as Go's RFC3339Nano (``Z`` when the local zone is UTC)."""
    import datetime as dt  # here: `run` reads this store and must not pay for datetime
    import time

    ns = time.time_ns()
    now = dt.datetime.fromtimestamp(ns / 1e9).astimezone()
    offset = now.utcoffset() or dt.timedelta(0)
    utc_text = gojson.rfc3339nano(ns=ns + int(offset.total_seconds()) * 1_000_000_000)
    if not offset:
        return utc_text
    secs = int(offset.total_seconds())
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return utc_text[:-1] + f"{sign}{secs // 3600:02d}:{secs % 3600 // 60:02d}"
