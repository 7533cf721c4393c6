"""Craft a small multi-layer docker-archive, the way a registry-less classroom gets a layered image.

``minidocker import`` only ever makes one-layer images and there is no ``build`` yet, so lab 04 (and the
bonus of lab 03) load an archive made here. The image is ``lab04/app:v1`` with three layers:

1. the busybox rootfs layer, taken byte for byte from a ``minidocker save`` of ``busybox:latest``
   (so loading it next to ``busybox:latest`` *shares* that layer: same DiffID, same ChainID);
2. an "app" layer: ``app/hello.sh`` and ``etc/motd``;
3. a "config" layer: ``app/config.txt`` holding a random nonce (so every ``setup`` gives new
   IDs and answers cannot be copied from a neighbour) and a whiteout ``etc/.wh.motd`` deleting
   the motd of layer 2.

The archive uses the layout newer Docker releases (25+) write: blobs named by their digest under
``blobs/sha256/`` and a ``manifest.json`` pointing at them. ``docker load`` (and ``minidocker load``)
only follow ``manifest.json``, so the file names do not matter to the loader.

Usage::

    python3 mkarchive.py --base-from-save busybox-save.tar --tag lab04/app:v1 -o app.tar [--nonce N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import sys
import tarfile

# A fixed date keeps everything but the nonce reproducible.
CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE) -> None:  # fmt: skip
    """Append one entry with root ownership and a fixed mtime (deterministic bytes)."""
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.type = kind
    info.mode = mode
    if kind == tarfile.DIRTYPE:
        tar.addfile(info)
        return
    payload = data or b""
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _layer(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A layer tar: ``(name, data, mode)``; data None means a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in entries:
            if data is None:
                _add(tar, name, mode=mode, kind=tarfile.DIRTYPE)
            else:
                _add(tar, name, data, mode=mode)
    return buf.getvalue()


def base_layer_from_save(path: str) -> bytes:
    """The single ``layer.tar`` of a one-image, one-layer docker-archive (e.g. ``save busybox``)."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise SystemExit(f"{path}: manifest.json is not a regular file")
        manifest = json.load(member)
        layers = manifest[0]["Layers"]
        if len(layers) != 1:
            raise SystemExit(f"{path}: expected a one-layer image, found {len(layers)} layers")
        layer = tar.extractfile(layers[0])
        if layer is None:
            raise SystemExit(f"{path}: {layers[0]} is not a regular file")
        return layer.read()


def build(base: bytes, tag: str, nonce: str) -> bytes:
    """Return the whole archive as bytes (a few MB: fine in memory)."""
    app = _layer(
        [
            ("app/", None, 0o755),
            ("app/hello.sh", b'#!/bin/sh\necho "hello from layer 2"\n', 0o755),
            ("etc/", None, 0o755),
            ("etc/motd", b"welcome to lab 04 (layer 2)\n", 0o644),
        ]
    )
    conf = _layer(
        [
            ("app/", None, 0o755),
            ("app/config.txt", f"nonce={nonce}\n".encode(), 0o644),
            ("etc/", None, 0o755),
            ("etc/.wh.motd", b"", 0o600),  # whiteout: layer 3 deletes layer 2's etc/motd
        ]
    )
    layers = [base, app, conf]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    history = [
        {"created": CREATED, "created_by": "minidocker buildbase (busybox-static)"},
        {"created": CREATED, "created_by": "COPY hello.sh motd (lab 04 layer 2)"},
        {"created": CREATED, "created_by": "COPY config.txt; RUN rm /etc/motd (lab 04 layer 3)"},
    ]
    config = {
        "architecture": "amd64",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/app/hello.sh"],
        },
        "created": CREATED,
        "history": history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    blobs = {f"blobs/sha256/{d[7:]}": layer for d, layer in zip(diff_ids, layers, strict=True)}
    blobs[f"blobs/sha256/{config_hex}"] = config_bytes
    manifest = [{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [tag], "Layers": list(blobs)[:3]}]

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            _add(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        for name, data in sorted(blobs.items()):
            _add(tar, name, data)
        _add(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode() + b"\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-from-save", required=True, help="docker-archive of a one-layer base image")
    p.add_argument("--tag", default="lab04/app:v1")
    p.add_argument("--nonce", default=None, help="default: random")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    data = build(base_layer_from_save(args.base_from_save), args.tag, args.nonce or secrets.token_hex(8))
    tmp = f"{args.output}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
