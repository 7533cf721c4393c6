"""The built-in base image: ``busybox:latest`` made from the host's busybox-static, no network needed.

The rootfs is written as a tar (every applet a symlink to ``/bin/busybox``) and imported like
``docker import`` would, with ``PATH`` and ``CMD ["sh"]`` set. All mtimes are the busybox binary's,
so building twice on one host gives the same layer (same DiffID).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import BinaryIO

from minidocker.errors import NotFound
from minidocker.image.store import Stores

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700, "sbin": 0o755,
        "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755}  # fmt: skip
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            return path
    found = shutil.which("busybox")
    if found:
        return found
    raise NotFound("busybox not found on this host: install busybox-static (scripts/provision.sh does)")


def applets(busybox: str) -> list[str]:
    """Applet paths (``bin/sh``, ``usr/bin/awk``...) as the host binary lists them.

    Running the *host's* busybox is fine: it is our binary, not one from an image.
    """
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()} - {"bin/busybox"})


def rootfs_tar(busybox: str, out: BinaryIO) -> None:
    """Write the busybox rootfs as an uncompressed tar to ``out``."""
    mtime = int(os.stat(busybox).st_mtime)

    def info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, link, mtime
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        needed = set(DIRS) | {os.path.dirname(a) for a in applets(busybox)}
        for d in sorted(needed - {""}):
            tar.addfile(info(d + "/", tarfile.DIRTYPE, DIRS.get(d, 0o755)))
        with open(busybox, "rb") as f:
            tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, os.fstat(f.fileno()).st_size), f)
        tar.addfile(info("etc/passwd", tarfile.REGTYPE, 0o644, len(PASSWD)), io.BytesIO(PASSWD))
        tar.addfile(info("etc/group", tarfile.REGTYPE, 0o644, len(GROUP)), io.BytesIO(GROUP))
        for a in applets(busybox):
            tar.addfile(info(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))


def build_busybox(stores: Stores, tag: str = "busybox:latest") -> str:
    """Build and tag the base image; returns its ID."""
    from minidocker.image import images as svc

    busybox = find_busybox()
    with tempfile.TemporaryFile(dir=stores.tmp) as f:
        rootfs_tar(busybox, f)
        f.seek(0)
        return svc.import_image(
            stores,
            f,
            repo_tag=tag,
            changes=[f"ENV {DEFAULT_PATH}", 'CMD ["sh"]'],
            message="minidocker buildbase: busybox-static of this host",
        )
