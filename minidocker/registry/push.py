"""``push``: layers (gzip of the exact layer tar), config, then the manifest, like ``docker push``.

A layer is skipped without reading it when ``v2metadata`` says this repository already got its
blob and a ``HEAD`` confirms it; a blob known from another repository on the same registry is
cross-mounted (``POST .../uploads/?mount=&from=``). Otherwise the layer tar is reassembled from
tar-split + ``diff/``, gzipped into a temp file while hashing, and uploaded: ``POST``, then
the data in the closing ``PUT ?digest=`` when it fits one 16 MiB chunk (monolithic), else one
``PATCH`` per chunk and an empty ``PUT`` (chunked). The manifest is Docker's schema 2, serialised
with 3-space indentation as dockerd does. ``all_tags`` pushes every tag of the repository, in
name order, over one connection and token cache.

Use::

    push(stores, "127.0.0.1:5000/busybox:latest", out=print)
    push(stores, "127.0.0.1:5000/busybox", all_tags=True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from minidocker import trace
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.image import digest as _digest
from minidocker.image import reference
from minidocker.image.store import Stores
from minidocker.registry import auth, manifest
from minidocker.registry.client import Registry
from minidocker.registry.distribution import compute_hmac
from minidocker.registry.pull import Output, add_digest_reference, distribution_store

UPLOAD_CHUNK = 16 << 20


class _HashingWriter:
    """A file that hashes and counts what is written to it (the compressed blob)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, b: Any) -> int:
        self.h.update(b)
        self.size += len(b)
        return int(self.f.write(b))

    def flush(self) -> None:
        self.f.flush()


def _compress_layer(stores: Stores, chain_id: str, path: str) -> tuple[str, int]:
    from isal import igzip

    with open(path, "wb") as f:
        w = _HashingWriter(f)
        with igzip.IGzipFile(fileobj=w, mode="wb", mtime=0) as gz:
            stores.layers.tar_stream(chain_id, gz)  # type: ignore[arg-type]
    return "sha256:" + w.h.hexdigest(), w.size


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            yield chunk


def build_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """Docker's schema 2 manifest, ``json.MarshalIndent(m, "", "   ")``."""
    doc = {
        "schemaVersion": 2,
        "mediaType": manifest.DOCKER_MANIFEST,
        "config": {
            "mediaType": manifest.DOCKER_CONFIG,
            "size": len(config),
            "digest": _digest.sha256_digest(config),
        },  # fmt: skip
        "layers": [{"mediaType": manifest.DOCKER_LAYER, "size": s, "digest": d} for d, s in layers],
    }
    return json.dumps(doc, indent=3).encode()


def push(stores: Stores, name: str, *, all_tags: bool = False, out: Output = print) -> str:
    """Push a tagged image (``all_tags``: every tag of the repository, in order); prints Docker's
    plain lines; returns the (last) manifest digest."""
    ref = reference.parse(name)
    if ref.digest is not None:
        raise InvalidInput(f"cannot push a digest reference: {ref.familiar_string()}")
    if all_tags and not ref.is_name_only:
        raise InvalidInput(f"tag can't be used with --all-tags/-a: {ref.familiar_string()}")
    if all_tags:
        tagged = [
            (r, i) for r, i in stores.refs.references_by_name(ref) if r.tag is not None and r.digest is None
        ]
        if not tagged:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    else:
        if ref.is_name_only:
            out(f"Using default tag: {reference.DEFAULT_TAG}")
            ref = ref.with_default_tag()
        try:
            tagged = [(ref, stores.refs.get(ref))]
        except NotFound:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
    out(f"The push refers to repository [{ref.name}]")
    creds = auth.load_credentials(ref.domain)
    reg = Registry(ref.domain, creds)
    dgst = ""
    for one, image_id in tagged:
        try:
            dgst = _push(stores, reg, creds, one, image_id, out)
        except MinidockerError as e:
            shown = one.familiar_string()
            if shown in str(e):
                raise
            raise type(e)(f"pushing {shown}: {e}", subject=shown) from None
    return dgst


def _push(stores: Stores, reg: Registry, creds: auth.Credentials | None, ref: reference.Reference,
          image_id: str, out: Output) -> str:  # fmt: skip
    key = auth.auth_config_key(creds)
    dist = distribution_store(stores)
    diff_ids = stores.diff_ids(image_id)
    chains = _digest.chain_ids(diff_ids)
    for d in reversed(diff_ids):
        out(f"{d[7:19]}: Preparing")
    blobs: list[tuple[str, int]] = []
    for diff_id, chain_id in zip(diff_ids, chains, strict=True):
        short = diff_id[7:19]
        blob, how = _push_layer(stores, reg, ref, dist, diff_id, chain_id)
        out(f"{short}: {how}")
        dist.add(diff_id, blob[0], ref.name, compute_hmac(key, blob[0], ref.name))  # TagAndAdd
        blobs.append(blob)
    config = stores.images.get_bytes(image_id)
    config_digest = _digest.sha256_digest(config)
    if reg.blob_size(ref.path, config_digest, push=True) is None:
        reg.upload_blob(ref.path, config_digest, iter([config]))
    body = build_manifest(config, blobs)
    assert ref.tag is not None
    dgst = reg.put_manifest(ref.path, ref.tag, body, manifest.DOCKER_MANIFEST)
    add_digest_reference(stores, ref, dgst, image_id)
    out(f"{ref.tag}: digest: {dgst} size: {len(body)}")
    return dgst


def _push_layer(stores: Stores, reg: Registry, ref: reference.Reference, dist: Any, diff_id: str,
                chain_id: str) -> tuple[tuple[str, int], str]:  # fmt: skip
    known = dist.metadata(diff_id)
    # 1. this repository already has it (a HEAD confirms; no need to read the layer)
    for entry in reversed(known):
        if entry.get("SourceRepository") == ref.name:
            size = reg.blob_size(ref.path, entry["Digest"], push=True)
            if size is not None:
                return (entry["Digest"], size), "Layer already exists"
    # 2. another repository on the same registry has it: cross-repository mount
    for entry in reversed(known):
        src = str(entry.get("SourceRepository", ""))
        if src.startswith(ref.domain + "/") and src != ref.name:
            source_path = src[len(ref.domain) + 1 :]
            size = reg.blob_size(source_path, entry["Digest"])
            if size is not None:
                with contextlib.suppress(MinidockerError):
                    if (
                        reg.upload_blob(ref.path, entry["Digest"], iter(()), mount_from=source_path)
                        == "mounted"
                    ):
                        return (entry["Digest"], size), f"Mounted from {source_path}"
    # 3. compress and upload
    fd, path = tempfile.mkstemp(prefix="PushLayer", dir=stores.tmp)
    os.close(fd)
    try:
        dgst, size = _compress_layer(stores, chain_id, path)
        trace.emit(lambda: f"push: layer {diff_id} -> blob {dgst} ({size} bytes)")
        if reg.blob_size(ref.path, dgst, push=True) is not None:
            return (dgst, size), "Layer already exists"
        reg.upload_blob(ref.path, dgst, _chunks(path))
        return (dgst, size), "Pushed"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
