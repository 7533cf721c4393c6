#!/usr/bin/env python3
"""Compare two Docker-layout data roots (dockerd's and minidocker's) the way docker-layout.md §13 says.

Usage: compare_roots.py A B [--layers-only]

Random values (cache ids, link ids, lastUpdated) are mapped through chain ids, never compared.
Prints one line per difference and exits 1 if there is any; prints a summary line either way.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import sys


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def tree(root: str) -> dict[str, tuple]:
    """relpath -> (type, mode, uid, gid, size, link, mtime_ns, rdev, xattrs, inode group)."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # walk order decides which hard link names a group: keep it stable
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            try:
                xattrs = tuple(
                    sorted(
                        (k, os.getxattr(p, k, follow_symlinks=False))
                        for k in os.listxattr(p, follow_symlinks=False)
                    )
                )
            except OSError:
                xattrs = ()
            group = ""
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                group = inodes.setdefault((st.st_dev, st.st_ino), rel)
            size = st.st_size if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else 0
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            mtime = st.st_mtime_ns
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                mtime = 0  # whiteouts keep their creation time in dockerd too: not reproducible
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                size,
                link,
                mtime,
                st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 0,
                xattrs,
                group,
                digest,
            )
    return out


def main() -> int:
    a, b = sys.argv[1], sys.argv[2]
    layers_only = "--layers-only" in sys.argv[3:]
    diffs: list[str] = []
    img = "image/overlay2"
    if layers_only:
        return compare_layers(a, b, img, diffs)
    # 1. image configs: same IDs, same bytes, hashes match names
    ca = sorted(os.listdir(f"{a}/{img}/imagedb/content/sha256"))
    cb = sorted(os.listdir(f"{b}/{img}/imagedb/content/sha256"))
    if ca != cb:
        diffs.append(f"imagedb ids differ: {ca} vs {cb}")
    for i in set(ca) & set(cb):
        da, db = read(f"{a}/{img}/imagedb/content/sha256/{i}"), read(f"{b}/{img}/imagedb/content/sha256/{i}")
        if da != db:
            diffs.append(f"imagedb content {i} differs")
        if hashlib.sha256(db or b"").hexdigest() != i:
            diffs.append(f"imagedb content {i} does not hash to its name in B")
    # 2. metadata (parent; lastUpdated only by presence)
    ma = f"{a}/{img}/imagedb/metadata/sha256"
    mb = f"{b}/{img}/imagedb/metadata/sha256"
    la = sorted(os.listdir(ma)) if os.path.isdir(ma) else []
    lb = sorted(os.listdir(mb)) if os.path.isdir(mb) else []
    if la != lb:
        diffs.append(f"imagedb metadata dirs differ: {la} vs {lb}")
    for i in set(la) & set(lb):
        if sorted(os.listdir(f"{ma}/{i}")) != sorted(os.listdir(f"{mb}/{i}")):
            diffs.append(f"metadata {i}: files differ")
        if read(f"{ma}/{i}/parent") != read(f"{mb}/{i}/parent"):
            diffs.append(f"metadata {i}/parent differs")
    return compare_layers(a, b, img, diffs, len(cb))


def compare_layers(a: str, b: str, img: str, diffs: list[str], images: int = 0) -> int:
    # 3. layerdb
    sa = sorted(x for x in os.listdir(f"{a}/{img}/layerdb/sha256"))
    sb = sorted(x for x in os.listdir(f"{b}/{img}/layerdb/sha256"))
    if sa != sb:
        diffs.append(f"layerdb chain ids differ: {sa} vs {sb}")
    for c in set(sa) & set(sb):
        pa, pb = f"{a}/{img}/layerdb/sha256/{c}", f"{b}/{img}/layerdb/sha256/{c}"
        if sorted(os.listdir(pa)) != sorted(os.listdir(pb)):
            diffs.append(f"layer {c}: files differ: {sorted(os.listdir(pa))} vs {sorted(os.listdir(pb))}")
        for f in ("diff", "size", "parent"):
            if read(f"{pa}/{f}") != read(f"{pb}/{f}"):
                diffs.append(f"layer {c}/{f}: {read(f'{pa}/{f}')!r} vs {read(f'{pb}/{f}')!r}")
        if stat.S_IMODE(os.stat(pb).st_mode) != 0o700:
            diffs.append(f"layer dir {c} in B is not 0700")
        ta = gzip.decompress(read(f"{pa}/tar-split.json.gz") or b"")
        tb = gzip.decompress(read(f"{pb}/tar-split.json.gz") or b"")
        if ta != tb:
            la_, lb_ = ta.splitlines(), tb.splitlines()
            first = next(
                (k for k, (x, y) in enumerate(zip(la_, lb_, strict=False)) if x != y), min(len(la_), len(lb_))
            )
            diffs.append(
                f"layer {c}: decoded tar-split differs at line {first}: "
                f"{la_[first][:200] if first < len(la_) else None!r} vs "
                f"{lb_[first][:200] if first < len(lb_) else None!r}"
            )
        ida = (read(f"{pa}/cache-id") or b"").decode()
        idb = (read(f"{pb}/cache-id") or b"").decode()
        link = (read(f"{b}/overlay2/{idb}/link") or b"").decode()
        if os.readlink(f"{b}/overlay2/l/{link}") != f"../{idb}/diff":
            diffs.append(f"layer {c}: l/{link} does not point to ../{idb}/diff")
        for f in ("lower",):
            if (read(f"{a}/overlay2/{ida}/{f}") is None) != (read(f"{b}/overlay2/{idb}/{f}") is None):
                diffs.append(f"layer {c}: presence of overlay2/<id>/{f} differs")
        for f in ("work",):
            if os.path.isdir(f"{a}/overlay2/{ida}/{f}") != os.path.isdir(f"{b}/overlay2/{idb}/{f}"):
                diffs.append(f"layer {c}: presence of overlay2/<id>/{f} differs")
        ta_, tb_ = tree(f"{a}/overlay2/{ida}/diff"), tree(f"{b}/overlay2/{idb}/diff")
        for rel in sorted(set(ta_) | set(tb_)):
            if ta_.get(rel) != tb_.get(rel):
                diffs.append(f"layer {c}: diff/{rel}: {ta_.get(rel)} vs {tb_.get(rel)}")
    # 4. repositories.json byte for byte
    if images and read(f"{a}/{img}/repositories.json") != read(f"{b}/{img}/repositories.json"):
        diffs.append(
            f"repositories.json differs: {read(f'{a}/{img}/repositories.json')!r} vs "
            f"{read(f'{b}/{img}/repositories.json')!r}"
        )
    for d in diffs:
        print("DIFF", d)
    print(f"compared {images} images, {len(sb)} layers: {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
