"""fsck: what a crash leaves behind is found and repaired; real damage is reported, never deleted."""

from __future__ import annotations

import os

from tarbuild import files_tar

from minidocker.image import fsck
from minidocker.image.store import Stores


def test_crash_debris_is_found_and_repaired(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stores = Stores.open(str(tmp_path))
    layer = stores.layers.register(files_tar({"a": b"hello"}))
    # what a kill -9 in the middle of register leaves: an unowned overlay2 dir with its l/ link,
    # a write-set dir, a half-written atomic file, scratch in <root>/tmp
    stores.driver.create("f" * 64, parent=layer.cache_id)
    os.mkdir(os.path.join(stores.layers.tmp_dir, "write-set-123"))
    open(os.path.join(stores.images.content, ".tmp-abc123"), "w").close()
    os.mkdir(os.path.join(stores.root, "tmp", "docker-import-1"))
    report = fsck.check(stores)
    assert not report.problems
    assert len(report.debris) == 5 and not report.clean  # dir, its link, write-set, .tmp, scratch
    fsck.check(stores, repair=True)
    after = fsck.check(stores)
    assert after.clean and after.layers == 1
    assert stores.layers.get(layer.chain_id).diff_id == layer.diff_id


def test_damaged_layer_is_a_problem_not_debris(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stores = Stores.open(str(tmp_path))
    layer = stores.layers.register(files_tar({"a": b"hello"}))
    with open(os.path.join(stores.driver.diff_path(layer.cache_id), "a"), "wb") as f:
        f.write(b"HELLO")  # same size, different bytes: only the CRC/diff ID check can see it
    report = fsck.check(stores, repair=True)
    assert any("cannot reassemble" in p or "hashes to" in p for p in report.problems)
    assert stores.layers.exists(layer.chain_id)  # --repair never deletes a registered layer
