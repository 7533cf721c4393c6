"""A read-write layer's changes: the upper dir as a layer tar (commit, build) and as A/C/D (``diff``).

overlayfs records a container's changes in its upper dir (``overlay2/<mount-id>/diff``) in its own
format: a deleted file is a 0/0 character device, a directory whose lower contents were thrown
away (``rm -rf d && mkdir d``) carries the xattr ``trusted.overlay.opaque=y``. A layer tar speaks
the aufs dialect instead, which is what :func:`write_layer` writes (moby ``archive.TarWithOptions``
with ``OverlayWhiteoutFormat``)::

    <dir>/<name>   char 0/0            ->  <dir>/.wh.<name>    regular, mode 0600, size 0
    <dir>/         opaque              ->  <dir>/ then <dir>/.wh..wh..opq  (regular, dir's perms)

Entries come in ``filepath.Walk`` order (lexical), names relative without the root, headers as
moby's ``FileInfoHeader`` (:func:`minidocker.archive.tarstream.header_from_stat`), hard links
inside the layer as tar links, sockets skipped.

Use::

    with open("layer.tar", "wb") as f:
        write_layer(driver.diff_path(mount_id), f)
    for ch in changes(driver.diff_path(mount_id), lower_diff_dirs):
        print(ch.kind, ch.path)          # "C /etc", "A /etc/new", "D /etc/motd"

The walk never follows a symlink: every directory is opened relative to its parent's descriptor
with ``O_NOFOLLOW``, so a container that plants links in its upper dir cannot make us read the host.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from minidocker import trace
from minidocker.archive.tarstream import TarHeader, TarWriter, header_from_stat
from minidocker.errors import InvalidInput

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{dir_fd}", OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def write_layer(upper: str, out: BinaryIO) -> int:
    """Write ``upper`` (an overlay upper dir) to ``out`` as a layer tar; returns the entry count."""
    w = TarWriter(out)
    links: dict[tuple[int, int], str] = {}
    count = 0

    def walk(dfd: int, prefix: str) -> None:
        nonlocal count
        for base in sorted(os.listdir(dfd)):
            name = prefix + base
            try:
                h = header_from_stat(f"/proc/self/fd/{dfd}/{base}", name)
                st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
            except (InvalidInput, FileNotFoundError):  # sockets (moby skips them), or gone meanwhile
                continue
            if _is_whiteout(st):
                h = TarHeader(
                    name=prefix + WHITEOUT_PREFIX + base,
                    typeflag=b"0",
                    mode=0o600,
                    uid=h.uid,
                    gid=h.gid,
                    uname=h.uname,
                    gname=h.gname,
                    mtime_ns=h.mtime_ns,
                )
                h.raw_name = h.name.encode("utf-8", "surrogateescape")
                w.add(h)
                count += 1
                continue
            if h.typeflag == b"5":
                child = os.open(base, _DIR_FLAGS, dir_fd=dfd)
                try:
                    w.add(h)
                    count += 1
                    if _is_opaque(child):
                        wo = TarHeader(
                            name=h.name + WHITEOUT_OPAQUE,
                            typeflag=b"0",
                            mode=stat.S_IMODE(h.mode) & 0o777,
                            uid=h.uid,
                            gid=h.gid,
                            uname=h.uname,
                            gname=h.gname,
                            mtime_ns=0,  # moby builds this header without a ModTime
                        )
                        wo.raw_name = wo.name.encode("utf-8", "surrogateescape")
                        w.add(wo)
                        count += 1
                    walk(child, h.name)
                finally:
                    os.close(child)
                continue
            fd = -1
            try:
                if h.typeflag == b"0":
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in links:
                        h.typeflag, h.linkname, h.size = b"1", links[key], 0
                    else:
                        if st.st_nlink > 1:
                            links[key] = h.name
                        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                w.add(h, fd if fd >= 0 else None)
                count += 1
            finally:
                if fd >= 0:
                    os.close(fd)

    root = os.open(upper, _DIR_FLAGS)
    try:
        walk(root, "")
    finally:
        os.close(root)
    w.close()
    trace.emit(lambda: f"layer tar from {upper}: {count} entries, {w.bytes_written} bytes")
    return count


# -- docker diff ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute, as the container sees it


def _lower_stat(lowers: list[str], rel: str) -> os.stat_result | None:
    """The first lower layer's entry for ``rel`` (moby ``os.Stat``: follows a final symlink)."""
    for layer in lowers:
        try:
            return os.stat(os.path.join(layer, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            continue
    return None


def changes(upper: str, lowers: list[str]) -> list[Change]:
    """moby ``archive.OverlayChanges``: what ``docker diff`` lists, in walk order.

    ``lowers`` are the lower layers' diff dirs, nearest first (init layer, image top, ...).
    A path in ``upper`` is ``A`` unless some lower layer has it (then ``C``); whiteouts are ``D``;
    a directory that exists below with the same size, mode and mtime is not a change itself, but
    the parent of any added or deleted entry is listed as ``C``.
    """
    out: list[Change] = []
    changed_dirs: set[str] = set()

    def walk(dfd: int, rel: str) -> None:
        for base in sorted(os.listdir(dfd)):
            crel = f"{rel}/{base}" if rel else base
            path = "/" + crel
            try:
                st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            child = os.open(base, _DIR_FLAGS, dir_fd=dfd) if is_dir else -1
            try:
                kind: str | None
                low = _lower_stat(lowers, crel)
                if _is_whiteout(st):
                    kind = "D"
                elif is_dir and low is not None and _is_opaque(child):
                    kind = "D"  # moby reports a replaced (opaque) dir as deleted
                elif low is None:
                    kind = "A"
                elif (
                    is_dir
                    and stat.S_ISDIR(low.st_mode)
                    and st.st_size == low.st_size
                    and st.st_mode == low.st_mode
                    and st.st_mtime == low.st_mtime
                ):
                    kind = None  # same dir: only a path to a change
                else:
                    kind = "C"
                if kind is not None:
                    if is_dir:
                        changed_dirs.add(path)
                    parent = "/" + rel if rel else "/"
                    if kind in ("A", "D") and parent != "/" and parent not in changed_dirs:
                        out.append(Change("C", parent))
                        changed_dirs.add(parent)
                    out.append(Change(kind, path))
                if child >= 0:
                    walk(child, crel)
            finally:
                if child >= 0:
                    os.close(child)

    root = os.open(upper, _DIR_FLAGS)
    try:
        walk(root, "")
    finally:
        os.close(root)
    return out


def is_empty_dir(path: str) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return not os.listdir(path)
    return True
