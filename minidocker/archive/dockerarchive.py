"""``docker save`` / ``docker load``: the docker-archive format of Docker 20.10, byte for byte.

An archive is an uncompressed tar (shared/docker-layout.md section 8.1)::

    <v1id>/VERSION          "1.0"
    <v1id>/json             legacy v1 image JSON (struct order, no layer_id)
    <v1id>/layer.tar        the layer tar exactly as registered (sha256 == DiffID), or a symlink
                            ../<other v1id>/layer.tar when the same DiffID was already written
    <config hex>.json       the image config, exact bytes
    manifest.json           [{"Config":...,"RepoTags":[...]|null,"Layers":[...],"Parent":...}]\\n
    repositories            {"<name>":{"<tag>":"<top v1id>"}}\\n   (only when saved by tag)

Saving streams every ``layer.tar`` straight from tar-split + overlay2 ``diff/`` into the output
(nothing is held in memory, nothing is staged on disk); a single image saves to the same bytes as
``docker save``. Loading untars into a scratch dir under ``<root>/tmp`` with the safe extractor,
then opens every path named by the archive strictly inside that dir (``safe_path``), registers
missing layers (verifying each DiffID), stores the configs and tags them::

    stores = Stores.open("/var/lib/minidocker")
    with open("busybox.tar", "wb") as f:
        save(stores, ["busybox:latest"], f)
    with open("busybox.tar", "rb") as f:
        for line in load(stores, f):
            print(line)                       # Loaded image: busybox:latest
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from minidocker import gojson, trace
from minidocker.archive import tarstream
from minidocker.errors import CorruptStore, InvalidInput, NotFound
from minidocker.image import digest, reference
from minidocker.image.goconfig import (
    GO_ZERO_TIME,
    GoDecodeError,
    GoTime,
    _g_bool,
    _g_int,
    _g_str,
    _g_str_list,
    _go_fields,
    _kind,
    go_container_config,
)
from minidocker.image.layerstore import Layer
from minidocker.image.store import Stores
from minidocker.storage.overlay2 import remove_tree

MANIFEST = "manifest.json"
REPOSITORIES = "repositories"
LAYER_TAR = "layer.tar"
V1_JSON = "json"
VERSION = "VERSION"

NOT_AN_IMAGE = "payload does not match any of the supported image formats"

# (short id, action, bytes done, bytes total): how ``docker load`` reports "Loading layer".
Progress = Callable[[str, str, int, int], None]


@dataclass
class V1Image:
    """``image.V1Image``: the legacy per-layer JSON of docker-archive ``<v1id>/json``."""

    id: str = ""
    parent: str = ""
    comment: str = ""
    created: GoTime = GO_ZERO_TIME
    container: str = ""
    container_config: dict[str, Any] = field(default_factory=lambda: go_container_config(None))
    docker_version: str = ""
    author: str = ""
    config: dict[str, Any] | None = None
    architecture: str = ""
    variant: str = ""
    os: str = ""
    size: int = 0

    _KEYS = ("id", "parent", "comment", "created", "container", "container_config", "docker_version",
             "author", "config", "architecture", "variant", "os", "Size")  # fmt: skip

    @classmethod
    def decode(cls, obj: dict[str, Any], *, with_parent: bool = True) -> V1Image:
        """Decode a JSON object into V1Image. ``with_parent=False`` for an ``image.Image``, where the
        outer ``Parent`` field shadows V1Image's (so V1Image.Parent stays empty)."""
        keys = cls._KEYS if with_parent else tuple(k for k in cls._KEYS if k != "parent")
        f = _go_fields(obj, keys)
        created = f.get("created")
        if created is not None and not isinstance(created, str):
            raise GoDecodeError(f"json: cannot unmarshal {_kind(created)} into Go value of type time.Time")
        config = f.get("config")
        return cls(
            id=_g_str(f.get("id"), "id"),
            parent=_g_str(f.get("parent"), "parent"),
            comment=_g_str(f.get("comment"), "comment"),
            created=GoTime.parse(created) if created is not None else GO_ZERO_TIME,
            container=_g_str(f.get("container"), "container"),
            container_config=go_container_config(f.get("container_config")),
            docker_version=_g_str(f.get("docker_version"), "docker_version"),
            author=_g_str(f.get("author"), "author"),
            config=None if config is None else go_container_config(config),
            architecture=_g_str(f.get("architecture"), "architecture"),
            variant=_g_str(f.get("variant"), "variant"),
            os=_g_str(f.get("os"), "os"),
            size=_g_int(f.get("Size"), "Size"),
        )

    def to_go(self) -> dict[str, Any]:
        """The struct as ``json.Marshal`` emits it (field order, omitempty)."""
        out: dict[str, Any] = {}
        for key, value in (("id", self.id), ("parent", self.parent), ("comment", self.comment)):
            if value:
                out[key] = value
        out["created"] = self.created.text
        if self.container:
            out["container"] = self.container
        out["container_config"] = self.container_config
        for key, value in (("docker_version", self.docker_version), ("author", self.author)):
            if value:
                out[key] = value
        if self.config is not None:
            out["config"] = self.config
        for key, value in (("architecture", self.architecture), ("variant", self.variant), ("os", self.os)):
            if value:
                out[key] = value
        if self.size:
            out["Size"] = self.size
        return out


_HISTORY_FIELDS = ("created", "author", "created_by", "comment", "empty_layer")


def _go_history(v: Any) -> dict[str, Any]:
    """``image.History`` re-encoded: created, author?, created_by?, comment?, empty_layer?."""
    if not isinstance(v, dict):
        raise GoDecodeError(f"json: cannot unmarshal {_kind(v)} into Go value of type image.History")
    f = _go_fields(v, _HISTORY_FIELDS)
    created = f.get("created")
    if created is not None and not isinstance(created, str):
        raise GoDecodeError("json: cannot unmarshal into Go value of type time.Time")
    out: dict[str, Any] = {
        "created": GoTime.parse(created).text if created is not None else GO_ZERO_TIME.text
    }
    for k in ("author", "created_by", "comment"):
        s = _g_str(f.get(k), f"history.{k}")
        if s:
            out[k] = s
    if _g_bool(f.get("empty_layer"), "history.empty_layer"):
        out["empty_layer"] = True
    return out


@dataclass
class Image:
    """The parts of ``image.Image`` that save and load need, decoded as ``image.NewFromJSON`` does."""

    raw: bytes
    id: str  # "sha256:<hex>" of raw
    v1: V1Image
    diff_ids: list[str]
    history: list[dict[str, Any]]

    @classmethod
    def from_json(cls, raw: bytes) -> Image:
        """Raises InvalidInput (one line) for anything ``NewFromJSON`` refuses, and for diff IDs
        that are not ``sha256:<64 hex>`` (they become path components: CVE-2014-9358)."""
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInput(f"invalid image config: {e}") from None
        if not isinstance(obj, dict):
            raise InvalidInput(
                "invalid image config: json: cannot unmarshal into Go value of type image.Image"
            )
        try:
            v1 = V1Image.decode(obj, with_parent=False)
            f = _go_fields(obj, ("parent", "rootfs", "history", "os.version", "os.features"))
            _g_str(f.get("parent"), "parent")
            _g_str(f.get("os.version"), "os.version")
            _g_str_list(f.get("os.features"), "os.features")
            rootfs = f.get("rootfs")
            if rootfs is None:
                raise InvalidInput("invalid image JSON, no RootFS key")
            if not isinstance(rootfs, dict):
                raise GoDecodeError(
                    f"json: cannot unmarshal {_kind(rootfs)} into Go value of type image.RootFS"
                )
            rf = _go_fields(rootfs, ("type", "diff_ids"))
            _g_str(rf.get("type"), "rootfs.type")
            diff_ids = _g_str_list(rf.get("diff_ids"), "rootfs.diff_ids") or []
            hist = f.get("history")
            if hist is not None and not isinstance(hist, list):
                raise GoDecodeError(
                    f"json: cannot unmarshal {_kind(hist)} into Go value of type []image.History"
                )
            history = [_go_history(h) for h in hist or []]
        except GoDecodeError as e:
            raise InvalidInput(f"invalid image config: {e}") from None
        for d in diff_ids:
            if not digest.is_hex64(d.removeprefix("sha256:")) or not d.startswith("sha256:"):
                raise InvalidInput(f"invalid image config: diff ID {d!r} is not a sha256 digest", subject=d)
        return cls(raw, digest.sha256_digest(raw), v1, diff_ids, history)


def create_v1_id(v1: V1Image, layer_id: str, parent: str | None) -> str:
    """``v1.CreateID``: sha256 of the V1Image (no id, top-level keys sorted) + layer_id + parent."""
    obj = v1.to_go()
    obj.pop("id", None)
    obj["layer_id"] = layer_id
    if parent:
        obj["parent"] = parent
    return digest.sha256_digest(gojson.marshal(gojson.sorted_map(obj)))


# =============================================================================================
# save
# =============================================================================================

_BLOCK = 512
_MAX_OCTAL_SIZE = 0o77777777777  # 11 octal digits: the USTAR size field


def _octal(value: int, width: int) -> bytes:
    """Go ``formatOctal``: zero-padded, leaving room for a NUL terminator."""
    s = f"{value:o}"
    return s.rjust(width - 1, "0").encode() + (b"\0" if len(s) < width else b"")


def _field(value: bytes, width: int) -> bytes:
    return value[:width].ljust(width, b"\0")


def ustar_header(
    name: str,
    *,
    mode: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: str = "",
    owner: tuple[int, int],
) -> bytes:
    """One 512-byte header exactly as Go's ``archive/tar`` writes a USTAR-fitting PAX header
    (shared/docker-layout.md 3.5): mode with file-type bits, ``ustar\\0`` ``00``, uname/gname from
    the host's user db, devmajor/devminor ``0000000\\0``, checksum ``NNNNNN\\0 ``."""
    uid, gid = owner
    blk = bytearray(
        _field(name.encode(), 100)
        + _octal(mode, 8)
        + _octal(uid, 8)
        + _octal(gid, 8)
        + _octal(size, 12)
        + _octal(max(mtime, 0), 12)
        + b" " * 8
        + typeflag
        + _field(linkname.encode(), 100)
        + b"ustar\x0000"
        + _field(_user_name(uid).encode(), 32)
        + _field(_group_name(gid).encode(), 32)
        + _octal(0, 8)
        + _octal(0, 8)
        + bytes(155 + 12)
    )
    blk[148:156] = _octal(sum(blk), 7) + b" "
    return bytes(blk)


# uname/gname of Docker's headers come from the host's user db -- parsed as text, never through
# NSS (pwd/grp load libnss_*.so: reliability C4).
_user_name = tarstream.host_user_name
_group_name = tarstream.host_group_name


@dataclass
class _Entry:
    """One member of the archive being planned. ``layer`` is a chain id whose tar is streamed."""

    name: str
    kind: str  # "dir" | "file" | "layer" | "symlink"
    mtime: int
    data: bytes = b""
    layer: str = ""
    diff_id: str = ""
    size: int = 0
    linkname: str = ""


@dataclass
class _Saving:
    image: Image
    refs: list[reference.Reference] = field(default_factory=list)
    v1_ids: list[str] = field(default_factory=list)


def _resolve_names(stores: Stores, names: list[str]) -> dict[str, _Saving]:
    """moby ``parseNames``: image ID -> what to save, in first-mention order."""
    out: dict[str, _Saving] = {}

    def add(image_id: str, ref: reference.Reference | None) -> None:
        if image_id not in out:
            raw = stores.images.get_bytes(image_id)
            try:
                image = Image.from_json(raw)
            except InvalidInput as e:
                raise CorruptStore(f"image {image_id}: {e}", subject=image_id) from None
            os_name = image.v1.os or "linux"
            if os_name.lower() != "linux":
                raise InvalidInput(f'os "{os_name}" is not supported', subject=image_id)
            if image.diff_ids:
                stores.layers.get(digest.chain_id(image.diff_ids))  # NotFound if the layer is gone
            out[image_id] = _Saving(image)
        if ref is None or ref.digest is not None:
            return  # saved by ID or digest: no tag in the archive
        tagged = ref.with_default_tag()
        if all(str(t) != str(tagged) for t in out[image_id].refs):
            out[image_id].refs.append(tagged)

    for name in names:
        parsed = reference.parse_any_reference(name)
        if isinstance(parsed, str):
            add(parsed, None)
        elif parsed.familiar_name == "sha256":
            add(stores.images.search(name), None)
        elif parsed.is_name_only:
            assocs = stores.refs.references_by_name(parsed)
            for ref, image_id in assocs:
                add(image_id, ref)
            if not assocs:
                add(stores.images.search(name), None)
        else:
            add(stores.refs.get(parsed), parsed)
    return out


def _tar_length(stores: Stores, chain_id: str) -> int:
    """Length of the layer's tar, from its tar-split alone: raw segments + file contents.

    Needed for the ``layer.tar`` header before its content is streamed (no second assembly pass).
    Counts exactly what ``tarsplit.assemble`` writes: file entries with size > 0 whose CRC is not
    the CRC of nothing (a header-only type that claimed a size has no content in the stream).
    """
    from minidocker.image import tarsplit

    total = 0
    for e in tarsplit.read_entries(stores.layers.tarsplit_path(chain_id)):
        if e.type == tarsplit.SEGMENT_TYPE:
            total += len(e.payload or b"")
        elif e.size > 0 and e.payload != bytes(8):
            total += e.size
    return total


class _LayerSink(io.RawIOBase):
    """Passes the assembled layer through to the archive while counting and hashing it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b)
        self.out.write(view)
        self.sha.update(view)
        self.count += len(view)
        return len(view)


def save(stores: Stores, names: list[str], out: BinaryIO) -> None:
    """Write a docker-archive of the named images (refs, IDs, short IDs, bare repo names) to ``out``.

    Raises NotFound/InvalidInput before writing anything if a name does not resolve.
    """
    images = _resolve_names(stores, names)
    now = int(time.time())
    owner = (os.getuid(), os.getgid())
    entries: dict[str, _Entry] = {}
    saved: set[str] = set()  # v1 ids already written
    diff_id_paths: dict[str, str] = {}  # DiffID -> the layer.tar holding it
    repos_legacy: dict[str, dict[str, str]] = {}
    manifest: list[dict[str, Any]] = []

    for image_id, item in images.items():
        image = item.image
        if not image.diff_ids:
            raise InvalidInput("empty export - not implemented", subject=image_id)
        created = max(image.v1.created.unix, 0)
        parent: str | None = None
        for i, chain_id in enumerate(digest.chain_ids(image.diff_ids)):
            top = i == len(image.diff_ids) - 1
            # Non-top layers get an empty V1Image dated time.Unix(0,0); the top one the image's own.
            v1 = image.v1 if top else V1Image(created=GoTime.epoch_local())
            v1_id = create_v1_id(v1, chain_id, parent)
            hexid = v1_id[7:]
            if hexid not in saved:
                on_disk = dataclasses.replace(
                    v1, id=hexid, parent=parent[7:] if parent else "", os=image.v1.os
                )
                diff_id = image.diff_ids[i]
                layer_path = f"{hexid}/{LAYER_TAR}"
                if diff_id in diff_id_paths:
                    # Same bytes already in the archive: a symlink, dated "now" like Docker's.
                    mtime = now
                    layer = _Entry(layer_path, "symlink", now, linkname=f"../{diff_id_paths[diff_id]}")
                else:
                    mtime = created
                    size = _tar_length(stores, chain_id)
                    layer = _Entry(layer_path, "layer", created, layer=chain_id, diff_id=diff_id, size=size)
                    diff_id_paths[diff_id] = layer_path
                entries[f"{hexid}/"] = _Entry(f"{hexid}/", "dir", mtime)
                entries[f"{hexid}/{VERSION}"] = _Entry(f"{hexid}/{VERSION}", "file", mtime, b"1.0")
                entries[f"{hexid}/{V1_JSON}"] = _Entry(
                    f"{hexid}/{V1_JSON}", "file", mtime, gojson.marshal(on_disk.to_go())
                )
                entries[layer_path] = layer
                saved.add(hexid)
                trace.emit(f"save: layer {chain_id} as v1 {hexid} ({layer.kind})")
            item.v1_ids.append(hexid)
            parent = v1_id
        config_name = f"{image_id[7:]}.json"
        entries[config_name] = _Entry(config_name, "file", created, image.raw)
        for ref in item.refs:
            repos_legacy.setdefault(ref.familiar_name, {})[ref.tag or ""] = item.v1_ids[-1]
        manifest.append(
            {
                "Config": config_name,
                "RepoTags": [r.familiar_string() for r in item.refs] or None,
                "Layers": [f"{v}/{LAYER_TAR}" for v in item.v1_ids],
            }
        )

    # Parent links are kept only when the parent image is in the archive too.
    for entry, image_id in zip(manifest, images, strict=True):
        parent_id = stores.images.get_parent(image_id)
        if parent_id and parent_id != image_id and parent_id in images:
            entry["Parent"] = parent_id

    if repos_legacy:
        body = gojson.encode_line(
            gojson.sorted_map({k: gojson.sorted_map(v) for k, v in repos_legacy.items()})
        )
        entries[REPOSITORIES] = _Entry(REPOSITORIES, "file", 0, body)
    entries[MANIFEST] = _Entry(MANIFEST, "file", 0, gojson.encode_line(manifest or None))

    _write_archive(stores, sorted(entries.values(), key=lambda e: _walk_key(e.name)), out, owner)


def _walk_key(name: str) -> list[bytes]:
    """``filepath.Walk`` order: lexical per directory level, a directory before its contents."""
    return [p.encode() for p in name.rstrip("/").split("/")]


def _write_archive(stores: Stores, entries: list[_Entry], out: BinaryIO, owner: tuple[int, int]) -> None:
    for e in entries:
        if e.kind == "dir":
            out.write(ustar_header(e.name, mode=0o40755, size=0, mtime=e.mtime, typeflag=b"5", owner=owner))
        elif e.kind == "symlink":
            out.write(
                ustar_header(
                    e.name,
                    mode=0o120777,
                    size=0,
                    mtime=e.mtime,
                    typeflag=b"2",
                    linkname=e.linkname,
                    owner=owner,
                )
            )
        elif e.kind == "file":
            out.write(
                ustar_header(
                    e.name, mode=0o100644, size=len(e.data), mtime=e.mtime, typeflag=b"0", owner=owner
                )
            )
            out.write(e.data)
            out.write(bytes(-len(e.data) % _BLOCK))
        else:
            if e.size > _MAX_OCTAL_SIZE:
                raise InvalidInput(f"layer {e.layer} is too large for this archive writer ({e.size} bytes)")
            out.write(
                ustar_header(e.name, mode=0o100644, size=e.size, mtime=e.mtime, typeflag=b"0", owner=owner)
            )
            sink = _LayerSink(out)
            stores.layers.tar_stream(e.layer, cast(BinaryIO, sink))
            got = "sha256:" + sink.sha.hexdigest()
            if sink.count != e.size or got != e.diff_id:
                # Docker's TarStream verifies too ("layer content doesn't match"); the archive is broken.
                raise CorruptStore(
                    f"layer {e.layer}: reassembled tar does not match (diff {got}, {sink.count} bytes; "
                    f"expected {e.diff_id}, {e.size} bytes)",
                    subject=e.layer,
                )
            out.write(bytes(-e.size % _BLOCK))
        trace.emit(f"save: {e.kind} {e.name}")
    out.write(bytes(2 * _BLOCK))
    out.flush()


# =============================================================================================
# load
# =============================================================================================


def safe_path(root: str, rel: str) -> str:
    """moby ``FollowSymlinkInScope(join(root, rel), root)``: resolve symlinks as if ``root`` were
    ``/`` (absolute targets and ``..`` never leave it). A name that lexically escapes is refused.

    >>> safe_path("/tmp/x", "a/../b")
    '/tmp/x/b'
    """
    root = os.path.normpath(root)
    path = os.path.normpath(os.path.join(root, rel))
    if path != root and not path.startswith(root + "/"):
        raise InvalidInput(f"invalid path in archive: {rel!r} is outside the archive", subject=rel)
    remaining = path[len(root) :]
    resolved = ""  # current path inside root, "" == root, always "/a/b" form
    for _ in range(256):
        if not remaining:
            return root + resolved if resolved else root
        head, _, remaining = remaining.lstrip("/").partition("/")
        if head in ("", "."):
            continue
        if head == "..":
            resolved = resolved.rsplit("/", 1)[0]
            continue
        candidate = resolved + "/" + head
        try:
            st = os.lstat(root + candidate)
        except FileNotFoundError:
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        target = os.readlink(root + candidate)
        if target.startswith("/"):
            resolved = ""
        remaining = target + "/" + remaining
    raise InvalidInput(f"invalid path in archive: too many links in {rel!r}", subject=rel)


class _MissingInArchive(InvalidInput):
    pass


def _open_inside(root: str, rel: str) -> BinaryIO:
    """Open a regular file named by the archive, resolved inside ``root`` (never a fifo or device)."""
    path = safe_path(root, rel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _MissingInArchive(f"invalid archive: {rel} not found in the archive", subject=rel) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidInput(f"invalid archive: {rel} is a symlink", subject=rel) from None
        raise InvalidInput(f"invalid archive: cannot open {rel}: {e.strerror}", subject=rel) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidInput(f"invalid archive: {rel} is not a regular file", subject=rel)
    os.set_blocking(fd, True)
    return open(fd, "rb", buffering=1 << 20)


def _read_inside(root: str, rel: str) -> bytes:
    with _open_inside(root, rel) as f:
        return f.read()


@dataclass
class _LoadItem:
    image: Image
    layers: list[str]  # archive paths, one per diff id
    tags: list[reference.Reference]
    parent: str | None


def _parse_manifest(root: str, raw: bytes) -> list[_LoadItem]:
    """Validate everything that can be checked before a single layer is registered."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"invalid manifest.json: {e}") from None
    if doc is None:
        raise InvalidInput("invalid manifest.json: no images in the archive")
    if not isinstance(doc, list) or not all(isinstance(m, dict) for m in doc):
        raise InvalidInput("invalid manifest.json: not a list of objects")
    items = []
    for m in doc:
        f = _go_fields(m, ("Config", "RepoTags", "Layers", "Parent", "LayerSources"))
        try:
            config_path = _g_str(f.get("Config"), "Config")
            tags = _g_str_list(f.get("RepoTags"), "RepoTags") or []
            layers = _g_str_list(f.get("Layers"), "Layers") or []
            parent = _g_str(f.get("Parent"), "Parent") or None
        except GoDecodeError as e:
            raise InvalidInput(f"invalid manifest.json: {e}") from None
        image = Image.from_json(_read_inside(root, config_path))
        os_name = image.v1.os
        if os_name not in ("", "linux"):
            raise InvalidInput(f"cannot load {os_name} image on linux", subject=image.id)
        if len(layers) != len(image.diff_ids):
            raise InvalidInput(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(image.diff_ids)}"
            )
        for rel in layers:
            safe_path(root, rel)  # refuse escapes before anything is registered
        refs = []
        for tag in tags:
            ref = reference.parse(tag)
            if ref.tag is None:
                raise InvalidInput(f'invalid tag "{tag}"', subject=tag)
            refs.append(ref)
        if parent is not None:
            digest.validate(parent)
        items.append(_LoadItem(image, layers, refs, parent))
    return items


class _ProgressReader(io.RawIOBase):
    """Reports bytes read from a layer file as Docker's "Loading layer" progress."""

    STEP = 512 * 1024

    def __init__(self, f: BinaryIO, short_id: str, total: int, progress: Progress) -> None:
        self.f = f
        self.short_id = short_id
        self.total = total
        self.progress = progress
        self.done = 0
        self.reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)  # type: ignore[attr-defined]
        self.done += n
        if self.done - self.reported >= self.STEP or (n == 0 and self.done != self.reported):
            self.reported = self.done
            self.progress(self.short_id, "Loading layer", self.done, self.total)
        return int(n)


def _register_layer(
    stores: Stores, root: str, rel: str, parent: str | None, diff_id: str | None, progress: Progress | None
) -> Layer:
    """``loadLayer``: DecompressStream the file, then register it, checking its DiffID."""
    from minidocker.archive.compress import decompress

    with _open_inside(root, rel) as raw:
        source: BinaryIO = raw
        if progress is not None:
            total = os.fstat(raw.fileno()).st_size
            short = diff_id[7:19] if diff_id else rel.split("/")[0][:12]
            source = cast(BinaryIO, _ProgressReader(raw, short, total, progress))
        stream, kind = decompress(source)
        # tar-split records whether EOF came with the last bytes: Go's gzip reader hands them over
        # together (no empty final segment); a plain file, bzip2 and xz (a pipe) report EOF alone.
        trace.emit(lambda: f"load: register {rel} ({kind}) on {parent or 'no parent'}")
        return stores.layers.register(
            stream, parent, eof_empty_segment=kind != "gzip", expected_diff_id=diff_id
        )


def _untar(stream: BinaryIO, dest: str) -> None:
    from minidocker.archive import compress, extract, tarstream

    plain, kind = compress.decompress(stream)
    try:
        reader = tarstream.TarReader(plain, digest=False)  # unpacked only: layers are hashed later
        extract.untar(reader, dest)
        reader.finish()
    except InvalidInput as e:
        # Garbage fails at the very first header: that is "not an image", not a damaged one.
        if kind == "none" and not os.listdir(dest):
            raise InvalidInput(f"{NOT_AN_IMAGE}: {e}") from None
        raise InvalidInput(f"invalid archive: {e}") from None
    trace.emit(lambda: f"load: untarred archive ({kind}) into {dest}")


def load(
    stores: Stores, stream: BinaryIO, *, quiet: bool = False, progress: Progress | None = None
) -> list[str]:
    """Load a docker-archive (plain, gzip, bzip2 or xz); returns Docker's output lines.

    An item whose layers fail (truncated, corrupt, DiffID mismatch) leaves nothing behind: its
    freshly registered layers are removed, like Docker releasing them. Items loaded before it
    stay, as in Docker. Everything checkable without reading layers (manifest shape, configs,
    layer counts, paths, tags) is checked for *all* items first, so those errors change nothing.
    """
    if quiet:
        progress = None
    scratch = tempfile.mkdtemp(prefix="docker-import-", dir=stores.tmp)
    trace.emit(lambda: f"load: scratch dir {scratch}")
    try:
        _untar(stream, scratch)
        try:
            manifest = _read_inside(scratch, MANIFEST)
        except _MissingInArchive:
            try:
                safe_path(scratch, REPOSITORIES)
                _read_inside(scratch, REPOSITORIES)
            except _MissingInArchive:
                raise InvalidInput(
                    f"{NOT_AN_IMAGE}: no manifest.json or repositories in the archive"
                ) from None
            return _legacy_load(stores, scratch, progress)
        return _load_items(stores, scratch, _parse_manifest(scratch, manifest), progress)
    finally:
        remove_tree(scratch)


def _load_items(stores: Stores, root: str, items: list[_LoadItem], progress: Progress | None) -> list[str]:
    lines: list[str] = []
    id_lines: list[str] = []
    ref_count = 0
    loaded: list[tuple[str, str | None]] = []
    for item in items:
        _load_layers(stores, root, item.image.diff_ids, item.layers, progress)
        image_id = stores.images.create(item.image.raw)
        trace.emit(f"load: image {image_id}")
        id_lines.append(f"Loaded image ID: {image_id}")
        ref_count = 0
        for ref in item.tags:
            lines.extend(_set_loaded_tag(stores, ref, image_id))
            lines.append(f"Loaded image: {ref.familiar_string()}")
            ref_count += 1
        loaded.append((image_id, item.parent))
    # validatedParentLinks: a Parent counts only if that image was loaded from this archive too.
    ids = {i for i, _ in loaded}
    for image_id, parent in loaded:
        if parent and parent != image_id and parent in ids:
            _set_parent(stores, image_id, parent)
    if ref_count == 0:  # Docker's quirk: the IDs are printed when the *last* item had no tags
        lines.extend(id_lines)
    return lines


def _load_layers(
    stores: Stores, root: str, diff_ids: list[str], paths: list[str], progress: Progress | None
) -> None:
    fresh: list[str] = []
    parent: str | None = None
    try:
        for i, (diff_id, rel) in enumerate(zip(diff_ids, paths, strict=True)):
            chain_id = digest.chain_id_step(parent, diff_id, narrate=False)  # register narrates it
            if stores.layers.exists(chain_id):
                trace.emit(f"load: layer {chain_id} already exists")
            else:
                try:
                    _register_layer(stores, root, rel, parent, diff_id, progress)
                except InvalidInput as e:
                    raise InvalidInput(f"invalid layer {i} ({rel}): {e}", subject=rel) from None
                fresh.append(chain_id)
            parent = chain_id
    except BaseException:
        _drop_unused(stores, fresh)
        raise


def _drop_unused(stores: Stores, chain_ids: list[str]) -> None:
    """Remove layers this load registered that no image or container uses (top first)."""
    with stores.lock.held():
        used = stores.layers_in_use()
        for chain_id in reversed(chain_ids):
            if chain_id not in used and chain_id not in stores.layers.children():
                with contextlib.suppress(NotFound):
                    stores.layers.remove(chain_id)
                    trace.emit(f"load: removed unused layer {chain_id}")


def _set_loaded_tag(stores: Stores, ref: reference.Reference, image_id: str) -> list[str]:
    lines = []
    with contextlib.suppress(NotFound):
        previous = stores.refs.get(ref)
        if previous != image_id:
            lines.append(
                f"The image {ref.familiar_string()} already exists, renaming the old one with ID "
                f"{previous} to empty string"
            )
    try:
        stores.refs.add_tag(ref, image_id, force=True)
    except InvalidInput as e:  # Docker ignores AddTag's error here (e.g. a tag@digest RepoTag)
        trace.emit(f"load: tag {ref.familiar_string()} not set: {e}")
    return lines


def _set_parent(stores: Stores, image_id: str, parent_id: str) -> None:
    """``setParentID`` with ``checkValidParent``: the child's history extends the parent's by one."""
    child = Image.from_json(stores.images.get_bytes(image_id))
    parent = Image.from_json(stores.images.get_bytes(parent_id))
    ok = (not child.history and not parent.history) or (
        len(child.history) - len(parent.history) == 1
        and child.history[: len(parent.history)] == parent.history
    )
    if not ok:
        raise InvalidInput(f"image {parent_id} is not a valid parent for {image_id}", subject=image_id)
    stores.images.set_parent(image_id, parent_id)


# -- legacy archives (pre-1.10: repositories + <v1id>/json + <v1id>/layer.tar) ---------------------


def _legacy_load(stores: Stores, root: str, progress: Progress | None) -> list[str]:
    """moby ``legacyLoad``: every directory is a v1 image; configs are rebuilt from the v1 JSON."""
    loaded: dict[str, str] = {}
    fresh: list[str] = []
    try:
        for name in sorted(os.listdir(root)):
            if os.path.isdir(os.path.join(root, name)) and not os.path.islink(os.path.join(root, name)):
                _legacy_load_image(stores, root, name, loaded, fresh, progress, depth=0)
    except BaseException:
        _drop_unused(stores, fresh)
        raise
    try:
        repos = json.loads(_read_inside(root, REPOSITORIES))
    except ValueError as e:
        raise InvalidInput(f"invalid repositories file: {e}") from None
    if not isinstance(repos, dict):
        raise InvalidInput("invalid repositories file: not an object")
    lines: list[str] = []
    for name, tags in repos.items():
        if not isinstance(tags, dict):
            raise InvalidInput(f"invalid repositories file: bad entry for {name!r}")
        for tag, old_id in tags.items():
            image_id = loaded.get(old_id) if isinstance(old_id, str) else None
            if image_id is None:
                raise InvalidInput(f"invalid target ID: {old_id}")
            ref = reference.parse(name).with_tag(tag)
            lines.extend(_set_loaded_tag(stores, ref, image_id))
    return lines


def _legacy_load_image(
    stores: Stores,
    root: str,
    old_id: str,
    loaded: dict[str, str],
    fresh: list[str],
    progress: Progress | None,
    depth: int,
) -> None:
    if old_id in loaded:
        return
    if depth > 1000:
        raise InvalidInput("invalid archive: parent chain too long or cyclic")
    raw = _read_inside(root, f"{old_id}/{V1_JSON}")
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise GoDecodeError("not an object")
        f = _go_fields(obj, ("OS", "Parent"))
        os_name, parent_old = _g_str(f.get("OS"), "os"), _g_str(f.get("Parent"), "parent")
        v1 = V1Image.decode(obj)
    except (ValueError, GoDecodeError) as e:
        raise InvalidInput(f"invalid v1 image {old_id}: {e}") from None
    if os_name not in ("", "linux"):
        raise InvalidInput(f"cannot load {os_name} image on linux")
    parent_id: str | None = None
    diff_ids: list[str] = []
    history: list[dict[str, Any]] = []
    if parent_old:
        _legacy_load_image(stores, root, parent_old, loaded, fresh, progress, depth + 1)
        parent_id = loaded[parent_old]
        parent = Image.from_json(stores.images.get_bytes(parent_id))
        diff_ids, history = list(parent.diff_ids), list(parent.history)
    # No DiffID to check against: the v1 format predates them; the layer is what the tar hashes to.
    rel = f"{old_id}/{LAYER_TAR}"
    chain_parent = digest.chain_id(diff_ids) if diff_ids else None
    before = set(stores.layers.ids())
    try:
        layer = _register_layer(stores, root, rel, chain_parent, None, progress)
    except InvalidInput as e:
        raise InvalidInput(f"invalid layer {rel}: {e}", subject=rel) from None
    if layer.chain_id not in before:
        fresh.append(layer.chain_id)
    diff_ids.append(layer.diff_id)
    h: dict[str, Any] = {"created": v1.created.text}
    if v1.author:
        h["author"] = v1.author
    created_by = " ".join(v1.container_config.get("Cmd") or [])
    if created_by:
        h["created_by"] = created_by
    if v1.comment:
        h["comment"] = v1.comment
    history.append(h)
    config = _config_from_v1(raw, v1, diff_ids, history)
    image_id = stores.images.create(config)
    if parent_id:
        stores.images.set_parent(image_id, parent_id)
    trace.emit(lambda: f"load: legacy v1 image {old_id} -> {image_id}")
    loaded[old_id] = image_id


def _config_from_v1(raw: bytes, v1: V1Image, diff_ids: list[str], history: list[dict[str, Any]]) -> bytes:
    """``MakeConfigFromV1Config``: the v1 JSON minus id/parent/Size/..., plus rootfs and history,
    top-level keys sorted, values kept as written (compacted)."""
    version = re.findall(r"\d+", v1.docker_version)
    if [int(x) for x in version[:3]] < [1, 8, 3]:  # versions.LessThan(docker_version, "1.8.3")
        top: dict[str, Any] = {k: gojson.RawJSON(gojson.marshal(v).decode()) for k, v in v1.to_go().items()}
    else:
        top = {k: gojson.RawJSON(_compact(v)) for k, v in _raw_members(raw).items()}
    for k in ("id", "parent", "Size", "parent_id", "layer_id", "throwaway"):
        top.pop(k, None)
    top["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    top["history"] = history
    return gojson.marshal(gojson.sorted_map(top))


def _raw_members(raw: bytes) -> dict[str, bytes]:
    """Top-level members of a JSON object as their raw text (Go's ``map[string]*json.RawMessage``)."""
    dec = json.JSONDecoder()
    text = raw.decode("utf-8", "surrogateescape")
    out: dict[str, bytes] = {}
    i = text.index("{") + 1  # the caller has already parsed ``raw`` as an object
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        if text[i] == "}":
            return out
        key, i = dec.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        _, end = dec.raw_decode(text, i)
        out[key] = text[i:end].encode("utf-8", "surrogateescape")
        i = end


def _compact(value: bytes) -> str:
    """Go ``json.Compact`` with HTML escaping (what Marshal does to a RawMessage)."""
    out: list[str] = []
    in_str = esc = False
    for ch in value.decode("utf-8", "surrogateescape"):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            elif ch in "<>&\u2028\u2029":
                out.append(f"\\u{ord(ch):04x}")
                continue
            out.append(ch)
        elif ch not in " \t\r\n":
            in_str = ch == '"'
            out.append(ch)
    return "".join(out)
