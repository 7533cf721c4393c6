#!/usr/bin/env python3
"""Write a docker-archive (docker save format) with the layer features parity tests care about.

Usage: make_parity_image.py OUTDIR BUSYBOX_ROOTFS_TAR [TAG]

Layers (built with GNU tar from real trees, in three different tar dialects):
  1. the busybox rootfs tar as given (GNU format, record padding)
  2. POSIX/PAX: hard links, absolute/relative/dangling symlinks, a 150-byte name, UTF-8 names, a fifo,
     a char device, setuid/setgid files, a sticky dir, odd owners, a 1985 mtime, an xattr, empty files
  3. GNU: a whiteout of a layer-2 file, an opaque dir with new content, a modified file, a mode change
Plus a metadata-only history entry (empty_layer). Writes OUTDIR/image.tar and prints its image ID.
Runs on the target host as root (it chowns and mknods).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys


def sh(*args: str, cwd: str | None = None) -> None:
    subprocess.run(args, check=True, cwd=cwd)


def layer2(d: str) -> None:
    os.makedirs(f"{d}/data/sub", exist_ok=True)
    with open(f"{d}/data/hello.txt", "w") as f:
        f.write("hello\n")
    os.link(f"{d}/data/hello.txt", f"{d}/data/hardlink.txt")
    os.symlink("hello.txt", f"{d}/data/rel-link")
    os.symlink("/etc/passwd", f"{d}/data/abs-link")
    os.symlink("../nowhere/at/all", f"{d}/data/dangling")
    os.symlink("../../../../../etc/passwd", f"{d}/data/climbs-above-root")  # fine for dockerd: chroot
    long_name = "n" * 150
    with open(f"{d}/data/sub/{long_name}", "w") as f:
        f.write("long\n")
    with open(f"{d}/data/unicode-é-名前.txt", "w") as f:
        f.write("utf8\n")
    os.mkfifo(f"{d}/data/fifo")
    os.mknod(f"{d}/data/null-dev", 0o666 | 0o020000, os.makedev(1, 3))
    with open(f"{d}/data/setuid", "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(f"{d}/data/setuid", 0o4755)
    with open(f"{d}/data/setgid", "w") as f:
        f.write("g\n")
    os.chmod(f"{d}/data/setgid", 0o2711)
    os.makedirs(f"{d}/data/sticky")
    os.chmod(f"{d}/data/sticky", 0o1777)
    with open(f"{d}/data/owned", "w") as f:
        f.write("owned by 1234:5678\n")
    os.chown(f"{d}/data/owned", 1234, 5678)
    open(f"{d}/data/empty", "w").close()
    with open(f"{d}/data/old", "w") as f:
        f.write("from 1985\n")
    os.utime(f"{d}/data/old", (489024000, 489024000))
    with open(f"{d}/data/xattr", "w") as f:
        f.write("x\n")
    os.setxattr(f"{d}/data/xattr", "user.parity", b"yes")
    os.makedirs(f"{d}/opaque/old-content")
    with open(f"{d}/opaque/old-content/file", "w") as f:
        f.write("hidden later\n")
    with open(f"{d}/data/to-delete", "w") as f:
        f.write("bye\n")
    for p in (f"{d}/data", f"{d}/opaque"):
        os.utime(p, (1_700_000_000, 1_700_000_000))


def layer3(d: str) -> None:
    os.makedirs(f"{d}/data")
    open(f"{d}/data/.wh.to-delete", "w").close()
    with open(f"{d}/data/hello.txt", "w") as f:
        f.write("hello, modified\n")
    os.makedirs(f"{d}/opaque")
    open(f"{d}/opaque/.wh..wh..opq", "w").close()
    with open(f"{d}/opaque/new-content", "w") as f:
        f.write("only this survives\n")
    os.chmod(f"{d}/data", 0o750)
    os.utime(f"{d}/data", (1_700_000_100, 1_700_000_100))


def main() -> None:
    out, busybox_tar = sys.argv[1], sys.argv[2]
    tag = sys.argv[3] if len(sys.argv) > 3 else "parity/img:1"
    work = os.path.join(out, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    layers = []
    os.makedirs(f"{work}/archive/l1")
    shutil.copyfile(busybox_tar, f"{work}/archive/l1/layer.tar")
    layers.append("l1/layer.tar")
    for n, build, fmt in ((2, layer2, "posix"), (3, layer3, "gnu")):
        tree = f"{work}/tree{n}"
        os.makedirs(tree)
        build(tree)
        os.makedirs(f"{work}/archive/l{n}")
        args = ["tar", f"--format={fmt}", "--numeric-owner", "-cf", f"{work}/archive/l{n}/layer.tar"]
        if fmt == "posix":
            args.insert(1, "--xattrs")
            args.insert(2, "--xattrs-include=user.*")
        sh(*args, "-C", tree, ".")
        layers.append(f"l{n}/layer.tar")
    diff_ids = []
    for rel in layers:
        with open(f"{work}/archive/{rel}", "rb") as f:
            diff_ids.append("sha256:" + hashlib.file_digest(f, "sha256").hexdigest())
    created = "2026-01-02T03:04:05.123456789Z"
    config = {
        "architecture": "amd64",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "Labels": {"parity": "yes"},
        },
        "created": created,
        "history": [
            {"created": created, "created_by": "/bin/sh -c #(nop) ADD file:busybox in / "},
            {"created": created, "created_by": "/bin/sh -c #(nop) LABEL parity=yes", "empty_layer": True},
            {"created": created, "created_by": "/bin/sh -c make-layer-2"},
            {"created": created, "created_by": "/bin/sh -c make-layer-3"},
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    data = json.dumps(config, separators=(",", ":")).encode()
    image_id = hashlib.sha256(data).hexdigest()
    with open(f"{work}/archive/{image_id}.json", "wb") as f:
        f.write(data)
    with open(f"{work}/archive/manifest.json", "w") as f:
        json.dump([{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": layers}], f)
    sh("tar", "-cf", os.path.join(out, "image.tar"), "-C", f"{work}/archive", ".")
    shutil.rmtree(work)
    print("sha256:" + image_id)


if __name__ == "__main__":
    main()
