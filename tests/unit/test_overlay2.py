"""overlay2 driver layout (docker-layout.md section 6) and Docker's directory size rule."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from minidocker import kernel, trace
from minidocker.storage.overlay2 import Overlay2Driver, directory_size


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def driver(tmp_path):  # type: ignore[no-untyped-def]
    d = Overlay2Driver(str(tmp_path / "overlay2"))
    d.setup()
    return d


def test_layout_of_a_three_layer_chain(driver: Overlay2Driver) -> None:
    driver.create("base")
    driver.create("mid", parent="base")
    driver.create("top", parent="mid")
    home = driver.home
    assert mode(home) == 0o710 and mode(os.path.join(home, "l")) == 0o700
    for layer in ("base", "mid", "top"):
        d = os.path.join(home, layer)
        assert mode(d) == 0o710
        assert mode(os.path.join(d, "diff")) == 0o755
        link = Path(d, "link").read_text()
        assert re.fullmatch(r"[A-Z2-7]{26}", link)
        assert mode(os.path.join(d, "link")) == 0o644
        assert os.readlink(os.path.join(home, "l", link)) == f"../{layer}/diff"
    # base: no lower, no work; committed once it has a child
    assert not os.path.exists(os.path.join(home, "base", "lower"))
    assert not os.path.exists(os.path.join(home, "base", "work"))
    assert mode(os.path.join(home, "base", "committed")) == 0o600
    assert os.path.getsize(os.path.join(home, "base", "committed")) == 0
    assert not os.path.exists(os.path.join(home, "top", "committed"))
    assert mode(os.path.join(home, "top", "work")) == 0o700
    lower = Path(home, "top", "lower").read_text()
    assert lower == f"l/{driver.link('mid')}:l/{driver.link('base')}"  # nearest first, no newline


def test_mount_options_match_docker(driver: Overlay2Driver) -> None:
    driver.create("base")
    driver.create("rw", parent="base")
    opts = driver.mount_options("rw")
    prefix = "index=off," if os.path.exists("/sys/module/overlay/parameters/index") else ""
    assert opts == (
        f"{prefix}lowerdir={driver.home}/l/{driver.link('base')},"
        f"upperdir={driver.home}/rw/diff,workdir={driver.home}/rw/work"
    )
    driver.create("child", parent="rw")  # rw is now committed: mounted read-only
    assert (
        driver.mount_options("rw")
        == f"{prefix}lowerdir={driver.home}/rw/diff:{driver.home}/l/{driver.link('base')}"
    )


def test_directory_size_counts_like_docker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "diff"
    (d / "data").mkdir(parents=True)
    (d / "data" / "hello.txt").write_bytes(b"hello\n")
    os.link(d / "data" / "hello.txt", d / "data" / "hardlink.txt")
    os.symlink("hello.txt", d / "data" / "sym")
    (d / "empty").write_bytes(b"")
    # docker-layout.md 2.2: 6 (file, counted once) + 9 (symlink target length) = 15
    assert directory_size(str(d)) == 15


@pytest.mark.root
def test_get_mounts_overlay_and_put_unmounts(driver: Overlay2Driver) -> None:
    driver.create("base")
    with open(os.path.join(driver.diff_path("base"), "from-base"), "w") as f:
        f.write("base")
    driver.create("rw", parent="base")
    with trace.capture() as events:
        merged = driver.get("rw")
    assert merged == os.path.join(driver.home, "rw", "merged")
    assert any(e.startswith(f'mount("overlay", "{merged}", "overlay"') for e in events)
    try:
        assert kernel.is_mountpoint(merged)
        assert Path(merged, "from-base").read_text() == "base"
        with open(os.path.join(merged, "new"), "w") as f:
            f.write("x")
        os.unlink(os.path.join(merged, "from-base"))
        # the write lands in upper (diff/), the deletion becomes a whiteout device there
        assert os.path.exists(os.path.join(driver.diff_path("rw"), "new"))
        wh = os.lstat(os.path.join(driver.diff_path("rw"), "from-base"))
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    finally:
        driver.put("rw")
    assert not kernel.is_mountpoint(merged) and not os.path.exists(merged)


@pytest.mark.root
def test_very_deep_chain_uses_relative_mount(driver: Overlay2Driver) -> None:
    # 100 lowers of ~90-byte absolute paths exceed a page: Docker switches to relative paths.
    parent = None
    for i in range(100):
        driver.create(f"layer{i:03d}-" + "x" * 40, parent=parent)
        parent = f"layer{i:03d}-" + "x" * 40
    driver.create("rw", parent=parent)
    assert len(driver.mount_options("rw")) > os.sysconf("SC_PAGESIZE")
    merged = driver.get("rw")
    try:
        assert kernel.is_mountpoint(merged)
    finally:
        driver.put("rw")
    assert not kernel.is_mountpoint(merged)


def _super_options(path: str) -> list[str]:
    """The filesystem's options of the mount at ``path`` (mountinfo, after " - ")."""
    with open("/proc/self/mountinfo") as f:
        line = next((line for line in f if line.split()[4] == path), "")
    return line.partition(" - ")[2].split()[-1].split(",") if line else []


def _volatile(path: str) -> bool:
    return bool({"volatile", "fsync=volatile"} & set(_super_options(path)))  # (6.x shows the latter)


@pytest.mark.root
def test_volatile_mounts_skip_the_sync_and_leave_docker_s_layout(driver: Overlay2Driver) -> None:
    """A --rm container's init layer: mounted volatile (no syncfs at umount); afterwards it
    looks as after a normal mount and mounts normally again (overlayfs's incompat dir is gone)."""
    driver.create("base")
    driver.create("rw", parent="base")
    with driver.volatile_mounts():
        merged = driver.get("rw")
    try:
        assert _volatile(merged), _super_options(merged)
        Path(merged, "file").write_text("x")
    finally:
        driver.put("rw")
    assert sorted(os.listdir(os.path.join(driver.home, "rw", "work"))) == ["work"]
    assert os.listdir(os.path.join(driver.home, "rw", "work", "work")) == []
    merged = driver.get("rw")  # not volatile now, and not refused
    try:
        assert _super_options(merged) and not _volatile(merged)
        assert Path(merged, "file").read_text() == "x"
    finally:
        driver.put("rw")


def test_remove_tree_never_follows_symlinks(tmp_path: Path) -> None:
    from minidocker.storage.overlay2 import remove_tree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("f")
    (tree / "a" / "rel").symlink_to("../../outside")
    (tree / "abs").symlink_to(outside)
    os.chmod(tree / "a" / "b", 0o500)  # read-only dir: emptied anyway (root) or after chmod
    remove_tree(str(tree))
    remove_tree(str(tree))  # gone: nothing to do
    assert not tree.exists()
    assert (outside / "keep").read_text() == "k"
