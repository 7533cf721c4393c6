"""Docker's layer store: ``image/overlay2/layerdb/``, byte for byte.

::

    layerdb/                       0700
      sha256/<chain-id hex>/       0700   diff  size  cache-id  [parent]  tar-split.json.gz   (all 0644)
      mounts/<container-id>/       0755   mount-id  init-id  parent
      tmp/                         0755   write-set-* transaction dirs, empty at rest

Registering a layer is one streaming pass over the uncompressed tar: the bytes are hashed (DiffID),
split into tar-split entries and extracted into a fresh overlay2 ``diff/`` at the same time.
The layer becomes visible only at the end, when its ``write-set-*`` dir is renamed into
``sha256/<chain-id>`` under the data-root lock; until then a crash leaves only a temp dir and an
unreferenced overlay2 dir, which ``fsck`` reports and removes.

Use::

    layers = LayerStore(root, driver, lock)
    layer = layers.register(open("layer.tar", "rb"), parent=None)
    layer.chain_id, layer.diff_id, layer.size
    with open("out.tar", "wb") as f:
        layers.tar_stream(layer.chain_id, f)   # reproduces layer.tar exactly (sha256 == diff_id)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from minidocker import fsutil, trace
from minidocker.errors import CorruptStore, InvalidInput, NotFound
from minidocker.image import digest
from minidocker.record import FrozenRecord, record
from minidocker.storage.overlay2 import Overlay2Driver, remove_tree

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import BinaryIO

TARSPLIT = "tar-split.json.gz"


@record(frozen=True)
class Layer(FrozenRecord):
    """One ``layerdb/sha256/<chain-id>`` entry."""

    chain_id: str  # "sha256:<hex>"
    diff_id: str
    parent: str | None  # parent chain id
    cache_id: str
    size: int


@record(frozen=True)
class PendingLayer(FrozenRecord):
    """A layer between :meth:`LayerStore.begin` and :meth:`LayerStore.commit`."""

    cache_id: str
    tmp: str  # layerdb/tmp/write-set-*
    parent_cache_id: str | None

    @property
    def tarsplit(self) -> str:
        return os.path.join(self.tmp, TARSPLIT)


def extract_into(
    stream: BinaryIO,
    diff_dir: str,
    tarsplit_path: str,
    *,
    eof_empty_segment: bool = True,
    stream_digest: Callable[[], str] | None = None,
) -> str:
    """One streaming pass: extract the layer tar into ``diff_dir``, record its tar-split at
    ``tarsplit_path``; returns the DiffID. (``register``'s middle; ``pull``'s extract worker.)"""
    from minidocker.archive import extract, tarstream
    from minidocker.image import tarsplit

    writer = tarsplit.TarSplitWriter(tarsplit_path)
    try:
        reader = tarstream.TarReader(
            stream, observer=writer, eof_empty_segment=eof_empty_segment, digest=stream_digest is None
        )
        # symlinks="chroot": like dockerd, which applies layers inside a chroot, a relative
        # link may climb above the root (usr/lib/x -> ../../../lib/x); every later
        # operation resolves inside the root anyway (RESOLVE_IN_ROOT), so nothing escapes.
        extract.apply_layer(reader, diff_dir, symlinks="chroot")
        reader.finish()
    finally:
        writer.close()
    return reader.diff_id if stream_digest is None else stream_digest()


@record(frozen=True)
class Mount(FrozenRecord):
    """A container's read-write layer (``layerdb/mounts/<container-id>``)."""

    container_id: str
    mount_id: str
    init_id: str
    parent: str | None  # chain id of the image's top layer


class LayerStore:
    def __init__(self, root: str, driver: Overlay2Driver, lock: fsutil.DataRootLock) -> None:
        self.root = root
        self.driver = driver
        self.lock = lock
        self.sha_dir = os.path.join(root, "sha256")
        self.mounts_dir = os.path.join(root, "mounts")
        self.tmp_dir = os.path.join(root, "tmp")

    def setup(self) -> None:
        fsutil.makedirs(self.root, 0o700)
        for d in (self.sha_dir, self.mounts_dir, self.tmp_dir):
            fsutil.makedirs(d, 0o755)

    # -- reading -------------------------------------------------------------------------------
    def _dir(self, chain_id: str) -> str:
        return os.path.join(self.sha_dir, digest.validate(chain_id))

    def exists(self, chain_id: str) -> bool:
        return os.path.isfile(os.path.join(self._dir(chain_id), "diff"))

    def get(self, chain_id: str) -> Layer:
        d = self._dir(chain_id)
        try:
            diff_id = fsutil.read_text(os.path.join(d, "diff"))
            cache_id = fsutil.read_text(os.path.join(d, "cache-id"))
            size = int(fsutil.read_text(os.path.join(d, "size")))
        except FileNotFoundError:
            raise NotFound(f"layer does not exist: {chain_id}", subject=chain_id) from None
        except ValueError:
            raise CorruptStore(f"layer {chain_id}: bad size file", subject=chain_id) from None
        parent: str | None = None
        with contextlib.suppress(FileNotFoundError):
            parent = fsutil.read_text(os.path.join(d, "parent")) or None
        return Layer(chain_id, diff_id, parent, cache_id, size)

    def ids(self) -> list[str]:
        """Every registered chain id (dirs being written or removed are skipped)."""
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.sha_dir) as it:
            for e in it:
                if digest.is_hex64(e.name) and e.is_dir():
                    out.append("sha256:" + e.name)
        return sorted(out)

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and all its parents, base first."""
        out = []
        current: str | None = chain_id
        while current is not None:
            layer = self.get(current)
            out.append(layer)
            current = layer.parent
        return out[::-1]

    def tarsplit_path(self, chain_id: str) -> str:
        return os.path.join(self._dir(chain_id), TARSPLIT)

    def tar_stream(self, chain_id: str, out: BinaryIO) -> None:
        """Write the layer's original tar, reassembled from tar-split + ``diff/`` (byte-exact)."""
        from minidocker.image import tarsplit

        layer = self.get(chain_id)
        trace.emit(lambda: f"assemble {chain_id} from tar-split + overlay2/{layer.cache_id}/diff")
        tarsplit.assemble(self.tarsplit_path(chain_id), self.driver.diff_path(layer.cache_id), out)

    # -- registering ---------------------------------------------------------------------------
    def register(
        self,
        stream: BinaryIO,
        parent: str | None = None,
        *,
        eof_empty_segment: bool = True,
        expected_diff_id: str | None = None,
        stream_digest: Callable[[], str] | None = None,
    ) -> Layer:
        """Apply an uncompressed layer tar on top of ``parent`` (a chain id) and register it.

        ``eof_empty_segment``: whether the source reports EOF with a separate empty read (a plain
        file) or together with the last data (gzip); tar-split records the difference.
        Raises InvalidInput if the DiffID differs from ``expected_diff_id``; nothing stays behind.
        ``stream_digest``: the stream hashes itself (``pull`` does it on the other core); called
        after EOF, it returns the DiffID, and the tar reader skips its own SHA-256.
        """
        parent_layer = self.get(parent) if parent else None
        pending = self.begin(parent_layer.cache_id if parent_layer else None)
        try:
            diff_id = extract_into(
                stream,
                self.driver.diff_path(pending.cache_id),
                pending.tarsplit,
                eof_empty_segment=eof_empty_segment,
                stream_digest=stream_digest,
            )
            size = self.driver.size(pending.cache_id)
            return self.commit(pending, parent, diff_id, size, expected_diff_id=expected_diff_id)
        except BaseException:
            self.abandon(pending)
            raise

    def begin(self, parent_cache_id: str | None) -> PendingLayer:
        """The first half of :meth:`register`: an empty overlay2 layer on ``parent_cache_id`` and
        its ``write-set-*`` dir. Fill ``diff_path(cache_id)`` and ``tarsplit`` (any process may),
        then :meth:`commit` in layer order, or :meth:`abandon`.

        ``pull`` begins every layer first, then extracts several at once (a layer's ``diff``
        does not depend on its parent's content), and commits them base first.
        """
        import tempfile  # only registering needs it (not `run`)

        cache_id = fsutil.random_id()
        tmp = tempfile.mkdtemp(prefix="write-set-", dir=self.tmp_dir)  # 0700, like os.MkdirTemp
        try:
            self.driver.create(cache_id, parent_cache_id)
        except BaseException:
            remove_tree(tmp)
            raise
        return PendingLayer(cache_id, tmp, parent_cache_id)

    def commit(
        self,
        pending: PendingLayer,
        parent: str | None,
        diff_id: str,
        size: int,
        *,
        expected_diff_id: str | None = None,
    ) -> Layer:
        """Make a begun layer visible as ``sha256/<chain-id>`` (``parent`` must be registered).

        On error the caller still owns ``pending`` (:meth:`abandon` it)."""
        trace.emit(lambda: f"diffID = sha256(layer tar) = {diff_id}")
        if expected_diff_id is not None and diff_id != expected_diff_id:
            raise InvalidInput(
                f"layer diff ID mismatch: expected {expected_diff_id}, got {diff_id}", subject=diff_id
            )
        parent_cache_id = self.get(parent).cache_id if parent else None
        if parent_cache_id != pending.parent_cache_id:
            # begun on a parent that lost a race to an identical layer: point ``lower`` at the winner
            lowers = (
                [f"l/{self.driver.link(parent_cache_id)}", *self.driver.lower(parent_cache_id)]
                if parent_cache_id
                else []
            )
            fsutil.atomic_write(
                os.path.join(self.driver.dir(pending.cache_id), "lower"), ":".join(lowers).encode(), 0o644
            )
        chain_id = digest.chain_id_step(parent, diff_id)
        tmp, cache_id = pending.tmp, pending.cache_id
        files = {"diff": diff_id, "size": str(size), "cache-id": cache_id}
        if parent:
            files["parent"] = parent
        for name, value in files.items():
            fsutil.write_new(os.path.join(tmp, name), value.encode(), 0o644)
        os.chmod(os.path.join(tmp, TARSPLIT), 0o644)
        final = self._dir(chain_id)
        with self.lock.held():
            if os.path.exists(final):
                # Someone registered the same chain meanwhile (or it existed): keep theirs.
                existing = self.get(chain_id)
                self.abandon(pending)
                return existing
            os.rename(tmp, final)
            trace.emit(lambda: f"rename {tmp} -> {final}")
        return Layer(chain_id, diff_id, parent, cache_id, size)

    def abandon(self, pending: PendingLayer) -> None:
        """Remove a begun, uncommitted layer (its overlay2 dir and write-set dir)."""
        with contextlib.suppress(Exception):
            self.driver.remove(pending.cache_id)
        remove_tree(pending.tmp)

    # -- removing ------------------------------------------------------------------------------
    def remove(self, chain_id: str) -> None:
        """Delete one layer (callers ensure no image, child layer or mount uses it).

        Like Docker: rename to ``<hex>-<random>-removing`` first so a crash never leaves a
        half-deleted layer that looks valid, then delete the driver dir, then the renamed dir.
        """
        layer = self.get(chain_id)
        d = self._dir(chain_id)
        doomed = f"{d}-{fsutil.random_id()}-removing"
        with self.lock.held():
            os.rename(d, doomed)
        trace.emit(lambda: f"remove layer {chain_id} (cache-id {layer.cache_id})")
        self.driver.remove(layer.cache_id)
        remove_tree(doomed)

    def children(self) -> dict[str, list[str]]:
        """parent chain id -> child chain ids, computed from the parent files."""
        out: dict[str, list[str]] = {}
        for cid in self.ids():
            with contextlib.suppress(NotFound):
                p = self.get(cid).parent
                if p:
                    out.setdefault(p, []).append(cid)
        return out

    # -- container mounts ----------------------------------------------------------------------
    def mounts(self) -> Iterator[Mount]:
        with contextlib.suppress(FileNotFoundError), os.scandir(self.mounts_dir) as it:
            for e in it:
                if e.is_dir():
                    with contextlib.suppress(FileNotFoundError):
                        yield self.get_mount(e.name)

    def create_rw_layer(self, container_id: str, parent: str | None) -> Mount:
        """Docker's ``CreateRWLayer``: ``<mount-id>-init`` on the image's top layer, populated
        through its mounted merged view, then the container's writable ``<mount-id>`` on top.

        Recorded in ``layerdb/mounts/<container-id>/{mount-id,init-id,parent}`` (dir 0755, files
        0644, no newline); the mount id is random, not the container id.
        """
        from minidocker.storage import initlayer

        digest.validate_hex(container_id)
        parent_layer = self.get(parent) if parent else None
        mount_id = fsutil.random_id()
        init_id = f"{mount_id}-init"
        d = os.path.join(self.mounts_dir, container_id)
        try:
            self.driver.create(init_id, parent_layer.cache_id if parent_layer else None)
            root = self.driver.get(init_id)
            try:
                initlayer.setup(root)
            finally:
                self.driver.put(init_id)
            self.driver.create(mount_id, init_id)
            with self.lock.held():
                fsutil.makedirs(d, 0o755)
                files = {"mount-id": mount_id, "init-id": init_id}
                if parent:
                    files["parent"] = parent
                for name, value in files.items():
                    # no fsync: moby's SetMountID/SetInitID/SetMountParent are plain os.WriteFile
                    # (on create's critical path, 3 fsyncs cost 1-4 ms); still renamed into place
                    fsutil.atomic_write(os.path.join(d, name), value.encode(), 0o644, sync=False)
        except BaseException:
            for layer_id in (mount_id, init_id):
                with contextlib.suppress(Exception):
                    if self.driver.exists(layer_id):
                        self.driver.remove(layer_id)
            remove_tree(d)
            raise
        return Mount(container_id, mount_id, init_id, parent)

    def remove_rw_layer(self, container_id: str) -> None:
        """Delete a container's writable and init layers and its ``mounts/`` record."""
        m = self.get_mount(container_id)
        for layer_id in (m.mount_id, m.init_id):
            self.driver.put(layer_id)
            self.driver.remove(layer_id)
        with self.lock.held():
            remove_tree(os.path.join(self.mounts_dir, container_id))

    def get_mount(self, container_id: str) -> Mount:
        d = os.path.join(self.mounts_dir, digest.validate_hex(container_id))
        mount_id = fsutil.read_text(os.path.join(d, "mount-id"))
        init_id = fsutil.read_text(os.path.join(d, "init-id"))
        parent: str | None = None
        with contextlib.suppress(FileNotFoundError):
            parent = fsutil.read_text(os.path.join(d, "parent")) or None
        return Mount(container_id, mount_id, init_id, parent)
