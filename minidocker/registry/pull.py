"""``pull``: manifest -> (platform) -> config -> layers, writing exactly what ``docker pull`` writes.

Nothing becomes visible before it verifies: the manifest hashes to the digest asked for (G3), the
config to its descriptor (G2), each blob to its digest and size while it streams into a temp file
``<data-root>/tmp/GetImageBlob*`` (G1, G8); each layer is registered through the same path as
``load`` (``LayerStore.register``, one streaming pass) and must give the DiffID the config names
(G4). Up to three blobs download at once; registering stays in layer order (a layer needs its
parent). On any failure the temp files and the layers this pull registered are removed.

Use::

    image_id = pull(stores, "127.0.0.1:5000/busybox", out=print)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from minidocker import trace
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.image import digest as _digest
from minidocker.image import reference
from minidocker.image.store import Stores
from minidocker.registry import auth, manifest
from minidocker.registry.client import DigestMismatch, Registry
from minidocker.registry.distribution import DistributionStore
from minidocker.registry.manifest import Descriptor, Manifest, Platform

MAX_CONFIG_SIZE = 8 << 20
ROOTFS_MISMATCH = "layers from manifest don't match image configuration"

Output = Callable[[str], None]


def distribution_store(stores: Stores) -> DistributionStore:
    return DistributionStore(os.path.join(stores.root, "image", "overlay2"))


def _verify(raw: bytes, expected: str, what: str) -> None:
    if _digest.sha256_digest(raw) != expected:
        raise DigestMismatch(f"{what} verification failed for digest {expected}", subject=expected)


def resolve_manifest(
    reg: Registry, ref: reference.Reference, platform: Platform | None
) -> tuple[Manifest, str]:
    """The image manifest for ``ref`` and the digest Docker records (the *top-level* one: for a
    list or index, the list's digest)."""
    want = ref.digest or ref.tag or "latest"
    try:
        raw, ctype = reg.get_manifest(ref.path, want)
    except NotFound as e:
        shown = ref.familiar_string()
        raise NotFound(f"manifest for {shown} not found: {e}", subject=shown) from None
    top = _digest.sha256_digest(raw)
    if ref.digest:
        _verify(raw, ref.digest, "manifest")  # G3, G9: by digest, on these exact bytes
    doc = manifest.parse(raw, ctype)
    if isinstance(doc, manifest.Index):
        entry = manifest.select(doc, platform or manifest.host_platform())
        trace.emit(lambda: f"pull: index {top} -> {entry.digest} for {platform or manifest.host_platform()}")
        raw2, ctype2 = reg.get_manifest(ref.path, entry.digest)
        _verify(raw2, entry.digest, "manifest")
        doc = manifest.parse(raw2, ctype2)
        if not isinstance(doc, Manifest):
            raise InvalidInput(f"manifest {entry.digest} in an index is itself an index")
    return doc, top


def pull(stores: Stores, name: str, *, platform: Platform | None = None, out: Output = print,
         max_concurrent: int = 3) -> str:  # fmt: skip
    """Pull ``name``; prints Docker's plain (non-terminal) lines through ``out``; returns the image ID."""
    ref = reference.parse(name)
    if ref.is_name_only:
        out(f"Using default tag: {reference.DEFAULT_TAG}")
        ref = ref.with_default_tag()
    try:
        return _pull(stores, ref, platform, out, max_concurrent)
    except MinidockerError as e:
        shown = ref.familiar_string()
        if shown in str(e):
            raise
        raise type(e)(f"pulling {shown}: {e}", subject=shown) from None


def _pull(stores: Stores, ref: reference.Reference, platform: Platform | None, out: Output,
          max_concurrent: int) -> str:  # fmt: skip
    if ref.tag and ref.digest:  # G9: resolve by digest only, the tag is ignored (Docker >= 20.10.20)
        ref = ref.favor_digest()
    reg = Registry(ref.domain, auth.load_credentials(ref.domain))
    out(f"{ref.digest or ref.tag}: Pulling from {ref.path}")
    m, manifest_digest = resolve_manifest(reg, ref, platform)
    image_id = m.config.digest
    if not stores.images.exists(image_id):
        config = _fetch_config(reg, ref, m.config)
        diff_ids = _diff_ids(config, m)
        _fetch_layers(stores, reg, ref, m.layers, diff_ids, out, max_concurrent)
        created = stores.images.create(config)
        if created != image_id:  # cannot happen after _verify, but an image is its config hash
            raise DigestMismatch(f"image config verification failed for digest {image_id}")
    updated = _set_references(stores, ref, manifest_digest, image_id)
    out(f"Digest: {manifest_digest}")
    status = "Downloaded newer image for" if updated else "Image is up to date for"
    out(f"Status: {status} {ref.familiar_string()}")
    return image_id


def _fetch_config(reg: Registry, ref: reference.Reference, desc: Descriptor) -> bytes:
    if desc.size > MAX_CONFIG_SIZE:
        raise InvalidInput(f"image config {desc.digest} is too large ({desc.size} bytes)")
    import io

    buf = io.BytesIO()
    try:
        reg.fetch_blob(ref.path, desc, buf)
    except DigestMismatch:
        raise DigestMismatch(f"image config verification failed for digest {desc.digest}") from None
    return buf.getvalue()


def _diff_ids(config: bytes, m: Manifest) -> list[str]:
    try:
        doc: Any = json.loads(config)
        ids = doc["rootfs"]["diff_ids"] or []
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("invalid image config: no rootfs.diff_ids") from None
    if not isinstance(ids, list) or len(ids) != len(m.layers):
        raise InvalidInput(ROOTFS_MISMATCH)
    for d in ids:
        _digest.validate(str(d))
    return [str(d) for d in ids]


def _fetch_layers(stores: Stores, reg: Registry, ref: reference.Reference, layers: list[Descriptor],
                  diff_ids: list[str], out: Output, max_concurrent: int) -> None:  # fmt: skip
    dist = distribution_store(stores)
    chains = _digest.chain_ids(diff_ids)
    lock = threading.Lock()

    def say(short: str, what: str) -> None:
        with lock:
            out(f"{short}: {what}")

    present = [dist.diff_id(d.digest) == diff_ids[i] and stores.layers.exists(chains[i])
               for i, d in enumerate(layers)]  # fmt: skip
    todo = [i for i, p in enumerate(present) if not p]
    for i, d in enumerate(layers):
        say(d.digest[7:19], "Already exists" if present[i] else "Pulling fs layer")
    for n, i in enumerate(todo):
        if n >= max_concurrent:
            say(layers[i].digest[7:19], "Waiting")
    temps: dict[int, str] = {}
    fresh: list[str] = []
    pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="pull")

    def download(i: int) -> str:
        d = layers[i]
        fd, path = tempfile.mkstemp(prefix="GetImageBlob", dir=stores.tmp)
        with lock:
            temps[i] = path
        with os.fdopen(fd, "wb") as f:
            reg.fetch_blob(ref.path, d, f)
        say(d.digest[7:19], "Verifying Checksum")
        say(d.digest[7:19], "Download complete")
        return path

    futures: dict[int, Future[str]] = {i: pool.submit(download, i) for i in todo}
    try:
        parent: str | None = None
        for i, d in enumerate(layers):
            if i in futures:
                path = futures[i].result()
                _register(stores, path, parent, diff_ids[i], i)
                fresh.append(chains[i])
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                say(d.digest[7:19], "Pull complete")
            # Registered() runs for "Already exists" layers too: a new source repo is recorded.
            dist.add(diff_ids[i], d.digest, ref.name)
            parent = chains[i]
    except BaseException:
        for f in futures.values():
            f.cancel()
        pool.shutdown(wait=True)
        _drop_unused(stores, fresh)
        raise
    finally:
        pool.shutdown(wait=True)
        for path in temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _register(stores: Stores, path: str, parent: str | None, diff_id: str, i: int) -> None:
    """DecompressStream + register, exactly as ``load`` does (gzip, zstd or plain)."""
    from minidocker.archive.compress import decompress

    with open(path, "rb") as raw:
        stream, kind = decompress(raw)
        trace.emit(lambda: f"pull: register layer {i} ({kind}) on {parent or 'no parent'}")
        try:
            # Go's gzip reader hands over EOF with the last data; plain files report it alone.
            stores.layers.register(stream, parent, eof_empty_segment=kind != "gzip", expected_diff_id=diff_id)
        except InvalidInput as e:
            if "diff ID mismatch" in str(e):
                raise InvalidInput(f"{ROOTFS_MISMATCH}: layer {i}: {e}") from None
            raise


def _drop_unused(stores: Stores, chain_ids: list[str]) -> None:
    """Remove the layers this pull registered that nothing uses (top first)."""
    with stores.lock.held():
        used = stores.layers_in_use()
        for chain_id in reversed(chain_ids):
            if chain_id not in used and chain_id not in stores.layers.children():
                with contextlib.suppress(NotFound):
                    stores.layers.remove(chain_id)
                    trace.emit(f"pull: removed unused layer {chain_id}")


def _set_references(stores: Stores, ref: reference.Reference, manifest_digest: str, image_id: str) -> bool:
    """moby's pullV2Tag tail: returns whether anything changed ("Downloaded newer image")."""
    if ref.digest is not None:
        stores.refs.add_digest(ref, image_id, force=True)
        return True
    with contextlib.suppress(NotFound):
        if stores.refs.get(ref) == image_id:
            add_digest_reference(stores, ref, manifest_digest, image_id)
            return False
    add_digest_reference(stores, ref, manifest_digest, image_id)
    stores.refs.add_tag(ref, image_id, force=True)
    return True


def add_digest_reference(
    stores: Stores, ref: reference.Reference, manifest_digest: str, image_id: str
) -> None:
    """``addDigestReference``: a digest reference is never moved once it exists."""
    dref = ref.trim().with_digest(manifest_digest)
    try:
        old = stores.refs.get(dref)
    except NotFound:
        stores.refs.add_digest(dref, image_id, force=True)
        return
    if old != image_id:
        trace.emit(f"Image ID for digest {manifest_digest} changed from {old} to {image_id}, cannot update")
