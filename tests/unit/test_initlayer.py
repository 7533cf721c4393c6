"""The container layers Docker creates: init layer content and layerdb/mounts (docker-layout 2.4, 6.4)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from minidocker.image.store import Stores


def _layer_tar(entries: dict[str, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def listing(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
            extra = os.readlink(p) if kind == "l" else str(st.st_size) if kind == "f" else ""
            out.append(f"{os.path.relpath(p, root)} {kind} {stat.S_IMODE(st.st_mode):o} {extra}".rstrip())
    return sorted(out)


@pytest.mark.root
def test_init_layer_matches_docker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stores = Stores.open(str(tmp_path / "root"))
    # an image with /proc and /sys and its own /etc/hosts (which the init layer must replace)
    layer = stores.layers.register(
        _layer_tar({"etc/": None, "etc/hosts": b"image hosts\n", "proc/": None, "sys/": None, "bin/": None})
    )
    cid = "c" * 64
    m = stores.layers.create_rw_layer(cid, layer.chain_id)
    init_diff = stores.driver.diff_path(m.init_id)
    # docker-layout.md 6.4, observed with busybox (which has /proc and /sys)
    assert listing(init_diff) == [
        ".dockerenv f 755 0",
        "dev d 755",
        "dev/console f 755 0",
        "dev/pts d 755",
        "dev/shm d 755",
        "etc d 755",
        "etc/hostname f 755 0",
        "etc/hosts f 755 0",
        "etc/mtab l 777 /proc/mounts",
        "etc/resolv.conf f 755 0",
    ]
    d = os.path.join(stores.layers.mounts_dir, cid)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o755
    assert Path(d, "init-id").read_text() == f"{m.mount_id}-init"
    assert Path(d, "parent").read_text() == layer.chain_id
    # the image layer became committed; the RW layer sits on init + image, nearest first
    assert os.path.exists(os.path.join(stores.driver.dir(layer.cache_id), "committed"))
    assert stores.driver.lower(m.mount_id) == [
        f"l/{stores.driver.link(m.init_id)}",
        f"l/{stores.driver.link(layer.cache_id)}",
    ]
    assert not os.path.exists(os.path.join(stores.driver.dir(m.init_id), "merged"))  # unmounted again
    # the layer is in use while the container exists
    assert layer.chain_id in stores.layers_in_use()
    stores.layers.remove_rw_layer(cid)
    assert (
        not os.path.exists(d) and not stores.driver.exists(m.mount_id) and not stores.driver.exists(m.init_id)
    )
