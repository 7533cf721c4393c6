"""ImageStore.get_bytes: a config is read and hash-checked once per process (no root)."""

from __future__ import annotations

import json

import pytest

from minidocker.errors import NotFound
from minidocker.image import digest, imagestore
from minidocker.image.store import Stores


def test_a_config_is_verified_once_and_forgotten_when_deleted(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = Stores.open(str(tmp_path / "root"))
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    image_id = stores.images.create(config)
    hashed: list[bytes] = []
    real = digest.sha256_digest

    def counted(data: bytes) -> str:
        hashed.append(data)
        return real(data)

    monkeypatch.setattr(imagestore.digest, "sha256_digest", counted)
    assert stores.images.get_bytes(image_id) == config
    assert stores.images.get(image_id) == json.loads(config)  # `run`: config, then its layers
    assert stores.images.get(image_id) is not stores.images.get(image_id)  # each caller its own dict
    assert hashed == [config]
    stores.images.delete(image_id)
    with pytest.raises(NotFound):
        stores.images.get_bytes(image_id)
