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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from minidocker import trace
from minidocker.errors import InvalidInput, MinidockerError, NotFound
from minidocker.image import digest as _digest
from minidocker.image import reference
from minidocker.image.layerstore import PendingLayer
from minidocker.image.store import Stores
from minidocker.registry import auth, manifest, progress
from minidocker.registry.client import DigestMismatch, Registry
from minidocker.registry.distribution import DistributionStore
from minidocker.registry.manifest import Descriptor, Manifest, Platform

MAX_CONFIG_SIZE = 8 << 20
WORKER_MIN_BYTES = 4 << 20  # below this, a second process costs more than it saves
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
         max_concurrent: int = 3, terminal: TextIO | None = None) -> str:  # fmt: skip
    """Pull ``name``; returns the image ID.

    Prints Docker's plain (non-terminal) lines through ``out``, or, given a ``terminal``, draws
    Docker's per-layer progress bars there (and ignores ``out``).
    """
    shown = progress.Terminal(terminal) if terminal is not None else progress.Plain(out)
    ref = reference.parse(name)
    if ref.is_name_only:
        shown.line(f"Using default tag: {reference.DEFAULT_TAG}")
        ref = ref.with_default_tag()
    try:
        return _pull(stores, ref, platform, shown, max_concurrent)
    except MinidockerError as e:
        name = ref.familiar_string()
        if name in str(e):
            raise
        raise type(e)(f"pulling {name}: {e}", subject=name) from None


def _pull(stores: Stores, ref: reference.Reference, platform: Platform | None, shown: progress.Plain,
          max_concurrent: int) -> str:  # fmt: skip
    if ref.tag and ref.digest:  # G9: resolve by digest only, the tag is ignored (Docker >= 20.10.20)
        ref = ref.favor_digest()
    reg = Registry(ref.domain, auth.load_credentials(ref.domain))
    shown.line(f"{ref.digest or ref.tag}: Pulling from {ref.path}")
    m, manifest_digest = resolve_manifest(reg, ref, platform)
    image_id = m.config.digest
    if not stores.images.exists(image_id):
        config = _fetch_config(reg, ref, m.config)
        diff_ids = _diff_ids(config, m)
        _fetch_layers(stores, reg, ref, m.layers, diff_ids, shown, max_concurrent)
        created = stores.images.create(config)
        if created != image_id:  # cannot happen after _verify, but an image is its config hash
            raise DigestMismatch(f"image config verification failed for digest {image_id}")
    updated = _set_references(stores, ref, manifest_digest, image_id)
    shown.line(f"Digest: {manifest_digest}")
    status = "Downloaded newer image for" if updated else "Image is up to date for"
    shown.line(f"Status: {status} {ref.familiar_string()}")
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
                  diff_ids: list[str], shown: progress.Plain, max_concurrent: int) -> None:  # fmt: skip
    """Download the missing layers (``max_concurrent`` at a time), extract them on both cores
    and register them in layer order (:mod:`.apply`).

    The main thread extracts the lowest layer not taken yet while it is still downloading (its
    temp file is read as it grows), so extraction starts with the first bytes; a worker process
    takes the next one once it has downloaded. Each blob verifies before any reader sees its EOF,
    so before its layer can be committed.
    """
    from minidocker.registry import apply, download

    dist = distribution_store(stores)
    chains = _digest.chain_ids(diff_ids)
    present = [dist.diff_id(d.digest) == diff_ids[i] and stores.layers.exists(chains[i])
               for i, d in enumerate(layers)]  # fmt: skip
    todo = [i for i, p in enumerate(present) if not p]
    for i, d in enumerate(layers):
        shown.status(d.digest[7:19], "Already exists" if present[i] else "Pulling fs layer")
    for n, i in enumerate(todo):
        if n >= max_concurrent:
            shown.status(layers[i].digest[7:19], "Waiting")
    blobs = download.Blobs()
    by_index: dict[int, download.Blob] = {}
    pending: dict[int, PendingLayer] = {}
    fresh: list[str] = []
    plan = apply.Schedule(todo)
    helpers: list[apply.Helper] = []
    pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="pull")
    try:
        for i in todo:
            fd, path = tempfile.mkstemp(prefix="GetImageBlob", dir=stores.tmp)
            os.close(fd)
            by_index[i] = blobs.add(layers[i], path)
        for i in todo:  # in layer order: the first layers, needed first, start first
            pool.submit(_download, reg, ref.path, by_index[i], shown)
        # every missing layer begins now, base first: its overlay2 ``lower`` names its parent's
        parent_cache: str | None = None
        for i in range(len(layers)):
            if i in by_index:
                pending[i] = stores.layers.begin(parent_cache)
                parent_cache = pending[i].cache_id
            else:
                parent_cache = stores.layers.get(chains[i]).cache_id

        def job(i: int) -> dict[str, str]:
            p = pending[i]
            return {
                "blob": by_index[i].path,
                "diff": stores.driver.diff_path(p.cache_id),
                "tarsplit": p.tarsplit,
            }

        def wait_blob(i: int) -> bool:
            return by_index[i].outcome() is None and blobs.failure is None

        if apply.enabled() and len(todo) > 1 and sum(layers[i].size for i in todo[1:]) >= WORKER_MIN_BYTES:
            helpers = [apply.Helper(plan, wait_blob, job).start() for _ in range(apply.workers(len(todo)))]

        def extract_some(i: int) -> None:
            """Until layer ``i`` is extracted: extract here whatever nobody has taken yet."""
            while not plan.ready(i):
                k = plan.claim()  # the lowest: ``i`` itself unless someone has it
                for h in helpers:
                    if k is None:
                        k = h.steal()
                if k is None:
                    return  # layer i is being extracted by the worker: wait for it
                try:
                    outcome: apply.Result | BaseException = _extract_here(
                        stores, by_index[k], pending[k], k, shown
                    )
                except BaseException as e:
                    plan.done(k, e)
                    raise
                plan.done(k, outcome)

        parent: str | None = None
        for i, d in enumerate(layers):
            if i in by_index:
                extract_some(i)
                try:
                    diff_id, size = plan.result(i)
                    stores.layers.commit(pending[i], parent, diff_id, size, expected_diff_id=diff_ids[i])
                except InvalidInput as e:
                    if "diff ID mismatch" in str(e):
                        raise InvalidInput(f"{ROOTFS_MISMATCH}: layer {i}: {e}") from None
                    raise
                del pending[i]
                fresh.append(chains[i])
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(by_index[i].path)
                shown.status(d.digest[7:19], "Pull complete")
            # Registered() runs for "Already exists" layers too: a new source repo is recorded.
            dist.add(diff_ids[i], d.digest, ref.name)
            parent = chains[i]
    except BaseException as e:
        blobs.abort(e)
        plan.stop()
        for h in helpers:
            h.stop(kill=True)  # before its layer's dirs go
        pool.shutdown(wait=True)
        for p in pending.values():
            stores.layers.abandon(p)
        _drop_unused(stores, fresh)
        if isinstance(e, download.Cancelled) and blobs.failure is not None and blobs.failure is not e:
            raise blobs.failure from None  # the download that failed first, not the one it stopped
        raise
    finally:
        for h in helpers:
            h.stop()
        pool.shutdown(wait=True)
        for blob in by_index.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob.path)


def _download(reg: Registry, repo: str, blob: Any, shown: progress.Plain) -> None:
    """One worker: the blob into its temp file, with ``Downloading`` bars and status lines."""
    from minidocker.registry import download

    short, size = blob.short, blob.desc.size

    def verified() -> None:
        shown.status(short, "Verifying Checksum")
        shown.status(short, "Download complete")

    try:
        download.fetch(reg, repo, blob, lambda n: shown.bar(short, "Downloading", n, size), verified)
    except BaseException as e:
        blob.owner.abort(e)  # wakes the extractor, stops the other downloads
        raise


def _extract_here(
    stores: Stores, blob: Any, pending: PendingLayer, i: int, shown: progress.Plain
) -> tuple[str, int]:
    """DecompressStream + extract, as ``load`` does (gzip, zstd or plain), reading the blob as it
    downloads and inflating it on the other core (:mod:`.unpack`). Returns (DiffID, size)."""
    from minidocker.image.layerstore import extract_into
    from minidocker.registry import download, unpack

    short, size = blob.short, blob.desc.size

    def extracting(n: int) -> None:
        if blob.verified:
            shown.bar(short, "Extracting", n, size)

    raw = download.TailReader(blob, extracting)
    try:
        stream = unpack.Inflater(raw)  # type: ignore[arg-type]  # a RawIOBase reads bytes
        try:
            kind = stream.kind
            trace.emit(lambda: f"pull: extracting layer {i} ({kind}) in the CLI")
            diff_dir = stores.driver.diff_path(pending.cache_id)
            # Go's gzip reader hands over EOF with the last data; plain files report it alone.
            diff_id = extract_into(
                stream,  # type: ignore[arg-type]  # a RawIOBase reads bytes
                diff_dir,
                pending.tarsplit,
                eof_empty_segment=kind != "gzip",
                stream_digest=stream.diff_id,
            )
        except BaseException as e:
            failed = blob.outcome() if isinstance(e, MinidockerError) else None
            blob.owner.abort(e)  # the inflater may be waiting for bytes: wake it before closing
            if isinstance(failed, DigestMismatch):
                raise download.reraise(failed) from None
            raise
        finally:
            stream.close()
    finally:
        raw.close()
    from minidocker.storage.overlay2 import directory_size

    return diff_id, directory_size(diff_dir)


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
