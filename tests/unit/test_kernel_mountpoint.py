"""kernel.is_mountpoint: statx's STATX_ATTR_MOUNT_ROOT, with /proc/self/mountinfo as the fallback."""

from __future__ import annotations

import os

import pytest

from minidocker import kernel


def _mount_points() -> list[str]:
    out = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            mp = line.split(b" ")[4].decode()
            if "\\" not in mp and os.path.isdir(mp):  # (escaped names: the fallback's own test)
                out.append(mp)
    return out


def test_statx_and_mountinfo_agree(tmp_path) -> None:
    points = _mount_points()
    assert "/" in points and "/proc" in points
    for path in points:
        assert kernel.is_mountpoint(path) is kernel.listed_in_mountinfo(path) is True, path
    for path in (str(tmp_path), "/proc/self/fd", "/proc/sys/kernel"):
        if path not in points:
            assert kernel.is_mountpoint(path) is kernel.listed_in_mountinfo(path) is False, path
    assert kernel.is_mountpoint(str(tmp_path / "missing")) is False
    assert kernel.is_mountpoint(str(tmp_path / "missing" / "deeper")) is False
    (tmp_path / "file").write_text("")
    assert kernel.is_mountpoint(str(tmp_path / "file" / "x")) is False  # ENOTDIR


def test_a_symlink_to_a_mount_point_counts_as_it(tmp_path) -> None:
    (tmp_path / "proc").symlink_to("/proc")
    assert (
        kernel.is_mountpoint(str(tmp_path / "proc"))
        is kernel.listed_in_mountinfo(str(tmp_path / "proc"))
        is True
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_a_bind_mount_of_the_same_filesystem(tmp_path) -> None:
    """Same st_dev as its parent, so only the mount table (or statx) can tell."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    kernel.mount(str(src), str(dst), None, kernel.MS_BIND)
    try:
        assert kernel.is_mountpoint(str(dst)) and kernel.listed_in_mountinfo(str(dst))
        assert not kernel.is_mountpoint(str(src))
    finally:
        kernel.umount(str(dst), kernel.MNT_DETACH)
    assert not kernel.is_mountpoint(str(dst))


def test_without_statx_it_reads_mountinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_statx", None)
    assert kernel.is_mountpoint("/proc") and not kernel.is_mountpoint("/proc/self/fd")
