"""``image/overlay2/distribution/``: which compressed blob became which layer, and where it came from.

::

    distribution/                               0700
      diffid-by-digest/sha256/<blob hex>        "sha256:<diffid>"   (71 bytes, no newline)
      v2metadata-by-diffid/sha256/<diffid hex>  [{"Digest":...,"SourceRepository":...,"HMAC":...}]

Pull uses ``diffid-by-digest`` to say "Already exists" without downloading; push uses
``v2metadata`` to skip blobs the registry already has. Docker never deletes these files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from minidocker import fsutil, trace
from minidocker.image import digest as _digest

MAX_ENTRIES = 50


class DistributionStore:
    def __init__(self, image_root: str) -> None:
        self.root = os.path.join(image_root, "distribution")

    def _path(self, namespace: str, dgst: str) -> str:
        return os.path.join(self.root, namespace, "sha256", _digest.validate(dgst))

    def _write(self, path: str, data: bytes) -> None:
        fsutil.makedirs(self.root, 0o700)
        fsutil.makedirs(os.path.dirname(path), 0o755)
        fsutil.atomic_write(path, data, 0o644)

    def diff_id(self, blob_digest: str) -> str | None:
        try:
            value = fsutil.read_text(self._path("diffid-by-digest", blob_digest))
            _digest.validate(value)
            return value
        except (FileNotFoundError, ValueError):
            return None
        except Exception:  # an invalid stored value is as good as none
            return None

    def metadata(self, diff_id: str) -> list[dict[str, str]]:
        try:
            with open(self._path("v2metadata-by-diffid", diff_id), "rb") as f:
                doc = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return []
        return [d for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []

    def add(self, diff_id: str, blob_digest: str, source_repository: str, hmac_hex: str = "") -> None:
        """moby's ``V2MetadataService.Add``: drop an identical entry, append, keep the last 50,
        and (re)write ``diffid-by-digest``."""
        entry = {"Digest": blob_digest, "SourceRepository": source_repository, "HMAC": hmac_hex}
        items = [e for e in self.metadata(diff_id) if e != entry]
        items.append(entry)
        items = items[-MAX_ENTRIES:]
        body = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        self._write(self._path("v2metadata-by-diffid", diff_id), body.encode())
        self._write(self._path("diffid-by-digest", blob_digest), diff_id.encode())
        trace.emit(lambda: f"distribution: {blob_digest} <-> {diff_id} from {source_repository}")


def compute_hmac(key: str, blob_digest: str, source_repository: str) -> str:
    """``hex(HMAC-SHA256(key, Digest + SourceRepository))`` (push's ``TagAndAdd``)."""
    return hmac.new(key.encode(), (blob_digest + source_repository).encode(), hashlib.sha256).hexdigest()
