"""docker save / docker load (shared/docker-layout.md section 8, reliability-cases.md G10-G12).

Every image here is built in a temp data root by registering layer tars made with :mod:`tarfile`;
nothing needs a dockerd. The expected v1 IDs and the whole-archive sha256 in ``test_save_*`` were
produced by ``docker save`` (dockerd 20.10.24) of the very same image, after ``docker load`` of
our archive.
"""

from __future__ import annotations

import bz2
import grp
import gzip
import hashlib
import io
import json
import lzma
import os
import pwd
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from minidocker.archive import dockerarchive as da
from minidocker.errors import InvalidInput
from minidocker.image import digest, tarsplit
from minidocker.image.store import Stores

CREATED = "2026-11-23T09:25:03.849961816Z"


# -- building blocks -------------------------------------------------------------------------------


def layer_tar(files: list[tuple[str, bytes | None]], mtime: int = 1700000000) -> bytes:
    """A plain USTAR layer; ``None`` content makes a directory. tarfile pads to a 10240 record."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.mtime = mtime
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LAYERS = [
    layer_tar([("etc/", None), ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")]),
    layer_tar([("app/", None), ("app/hello.txt", b"hello\n")]),
    layer_tar([("app/data.bin", bytes(range(256)) * 9)]),
]
DIFF_IDS = ["sha256:" + hashlib.sha256(t).hexdigest() for t in LAYERS]


def config_bytes(diff_ids: list[str], history: int = 1, **extra: Any) -> bytes:
    cfg: dict[str, Any] = {
        "architecture": "amd64",
        "config": {"Cmd": ["sh"], "Env": ["A=<b>"]},
        "created": CREATED,
        "history": [{"created": CREATED}] * history,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cfg.update(extra)
    return json.dumps({k: cfg[k] for k in sorted(cfg)}, separators=(",", ":")).encode()


# The docker-verified vector (see the module docstring).
VECTOR_CONFIG = config_bytes(DIFF_IDS)
VECTOR_ID = "sha256:d480885d553830fa6ab6ae8708333a677dbbc97bea715ffadcc48ed698f57060"
VECTOR_V1_IDS = [
    "50e961427718714a041d24f42a413e10142f96a357177498f72fbc1d683186b7",
    "f754ee617aff032842983f3c622858a8640ed03a2cdfc96e8ab1626a0162b78c",
    "3e60baa3ac8af6fed053c11cc916b4fc7c3596332570a7946256950efcd6803e",
]
VECTOR_ARCHIVE_SHA256 = "f39668071fe92fa8a68b43bc918321863a02a1d0ee79625cb1ecef3a5bde7255"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Non-top v1 layers carry time.Unix(0,0) in the *local* zone; the vectors were made under UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def new_root(tmp_path: Any, name: str) -> Stores:
    return Stores.open(str(tmp_path / name))


def add_image(stores: Stores, layers: list[bytes], raw: bytes | None = None, tag: str | None = None) -> str:
    parent = None
    for t in layers:
        parent = stores.layers.register(io.BytesIO(t), parent).chain_id
    if raw is None:
        raw = config_bytes(["sha256:" + hashlib.sha256(t).hexdigest() for t in layers])
    image_id = stores.images.create(raw)
    if tag:
        stores.refs.add_tag(tag, image_id)
    return image_id


def save_bytes(stores: Stores, names: list[str]) -> bytes:
    out = io.BytesIO()
    da.save(stores, names, out)
    return out.getvalue()


def load_bytes(stores: Stores, data: bytes, **kw: Any) -> list[str]:
    return da.load(stores, io.BytesIO(data), **kw)


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: m for m in t.getmembers()}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        f = t.extractfile(name)
        assert f is not None
        return f.read()


def assert_pristine(stores: Stores, images: int = 0, layers: int = 0) -> None:
    """After a refused load: nothing new in the stores and no scratch left anywhere."""
    assert len(stores.images.ids()) == images
    assert len(stores.layers.ids()) == layers
    assert os.listdir(os.path.join(stores.root, "tmp")) == []
    assert os.listdir(stores.layers.tmp_dir) == []
    overlay = sorted(os.listdir(os.path.join(stores.root, "overlay2")))
    assert len([d for d in overlay if d != "l"]) == layers


# -- save --------------------------------------------------------------------------------------------


def test_v1_ids_match_docker() -> None:
    image = da.Image.from_json(VECTOR_CONFIG)
    parent = None
    ids = []
    for i, chain in enumerate(digest.chain_ids(DIFF_IDS)):
        v1 = image.v1 if i == len(DIFF_IDS) - 1 else da.V1Image(created=da.GoTime.epoch_local())
        parent = da.create_v1_id(v1, chain, parent)
        ids.append(parent[7:])
    assert ids == VECTOR_V1_IDS


def test_save_single_image_is_byte_identical_to_docker(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    assert add_image(stores, LAYERS, VECTOR_CONFIG, tag="vec:1") == VECTOR_ID
    data = save_bytes(stores, ["vec:1"])

    m = members(data)
    top, mid, base = VECTOR_V1_IDS[2], VECTOR_V1_IDS[1], VECTOR_V1_IDS[0]
    assert list(m) == [
        f"{top}", f"{top}/VERSION", f"{top}/json", f"{top}/layer.tar",
        f"{base}", f"{base}/VERSION", f"{base}/json", f"{base}/layer.tar",
        f"{VECTOR_ID[7:]}.json",
        f"{mid}", f"{mid}/VERSION", f"{mid}/json", f"{mid}/layer.tar",
        "manifest.json", "repositories",
    ]  # fmt: skip
    created = 1795425903  # CREATED, whole seconds
    assert m[f"{top}"].mode == 0o40755 and m[f"{top}"].mtime == created
    assert m[f"{VECTOR_ID[7:]}.json"].mtime == created
    assert m["manifest.json"].mtime == 0 and m["repositories"].mtime == 0
    for i, v1 in enumerate(VECTOR_V1_IDS):
        layer = read_member(data, f"{v1}/layer.tar")
        assert "sha256:" + hashlib.sha256(layer).hexdigest() == DIFF_IDS[i]
        assert read_member(data, f"{v1}/VERSION") == b"1.0"
    assert read_member(data, f"{base}/json") == (
        b'{"id":"' + base.encode() + b'","created":"1970-01-01T00:00:00Z","container_config":{"Hostname":"",'
        b'"Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,'
        b'"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"",'
        b'"Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}'
    )
    assert json.loads(read_member(data, f"{mid}/json"))["parent"] == base
    assert read_member(data, "manifest.json") == (
        b'[{"Config":"'
        + VECTOR_ID[7:].encode()
        + b'.json","RepoTags":["vec:1"],"Layers":['
        + b",".join(b'"' + v.encode() + b'/layer.tar"' for v in VECTOR_V1_IDS)
        + b"]}]\n"
    )
    assert read_member(data, "repositories") == b'{"vec":{"1":"' + top.encode() + b'"}}\n'
    assert read_member(data, f"{VECTOR_ID[7:]}.json") == VECTOR_CONFIG
    # Exactly two zero blocks at the end, no record padding.
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        last = t.getmembers()[-1]
    assert len(data) == last.offset_data + 512 + 1024  # repositories is 1 block of content

    if (os.getuid(), os.getgid()) == (0, 0) and pwd.getpwuid(0).pw_name == grp.getgrgid(0).gr_name == "root":
        assert hashlib.sha256(data).hexdigest() == VECTOR_ARCHIVE_SHA256


def test_save_by_id_writes_no_tags(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    image_id = add_image(stores, LAYERS[:1], tag="x:1")
    data = save_bytes(stores, [image_id[7:19]])
    assert "repositories" not in members(data)
    assert json.loads(read_member(data, "manifest.json"))[0]["RepoTags"] is None


def test_save_unknown_name_fails_before_writing(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    out = io.BytesIO()
    with pytest.raises(Exception, match="reference does not exist|No such image"):
        da.save(stores, ["nope:1"], out)
    assert out.getvalue() == b""


def test_shared_layer_becomes_a_symlink(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    base = add_image(stores, LAYERS[:1], tag="base:1")
    add_image(stores, LAYERS[:2], tag="child:1")
    data = save_bytes(stores, ["base:1", "child:1"])
    manifest = json.loads(read_member(data, "manifest.json"))
    base_top = manifest[0]["Layers"][0]
    child_base = manifest[1]["Layers"][0]
    assert base_top != child_base  # different v1 ids (top vs non-top), same DiffID
    link = members(data)[child_base]
    assert link.issym() and link.linkname == f"../{base_top}"
    assert manifest[0]["Config"] == f"{base[7:]}.json"

    target = new_root(tmp_path, "b")
    assert load_bytes(target, data) == ["Loaded image: base:1", "Loaded image: child:1"]
    assert len(target.layers.ids()) == 2


# -- load --------------------------------------------------------------------------------------------


def decoded_tarsplit(stores: Stores, chain_id: str) -> list[tarsplit.Entry]:
    return list(tarsplit.read_entries(stores.layers.tarsplit_path(chain_id)))


def test_roundtrip_reproduces_the_stores(tmp_path: Any) -> None:
    a = new_root(tmp_path, "a")
    image_id = add_image(a, LAYERS, VECTOR_CONFIG, tag="vec:1")
    a.refs.add_tag("vec:2", image_id)
    data = save_bytes(a, ["vec"])

    b = new_root(tmp_path, "b")
    with open(tmp_path / "img.tar", "wb") as f:
        f.write(data)
    with open(tmp_path / "img.tar", "rb") as f:
        lines = da.load(b, f)
    assert lines == ["Loaded image: vec:1", "Loaded image: vec:2"]
    assert b.images.ids() == [image_id]
    assert b.images.get_bytes(image_id) == VECTOR_CONFIG
    assert b.layers.ids() == a.layers.ids()
    for chain in a.layers.ids():
        la, lb = a.layers.get(chain), b.layers.get(chain)
        assert (la.diff_id, la.size, la.parent) == (lb.diff_id, lb.size, lb.parent)
        assert la.cache_id != lb.cache_id
        assert decoded_tarsplit(a, chain) == decoded_tarsplit(b, chain)
    repos = os.path.join("image", "overlay2", "repositories.json")
    with open(os.path.join(a.root, repos), "rb") as fa, open(os.path.join(b.root, repos), "rb") as fb:
        assert fa.read() == fb.read()
    assert not os.path.exists(os.path.join(b.images.metadata, image_id[7:], "lastUpdated"))
    assert_pristine(b, images=1, layers=3)

    # Loading again reuses every layer and changes nothing.
    assert load_bytes(b, data) == ["Loaded image: vec:1", "Loaded image: vec:2"]
    assert_pristine(b, images=1, layers=3)


def build_archive(
    layers: list[bytes],
    *,
    kinds: list[str] | None = None,
    config: bytes | None = None,
    tags: list[str] | None = None,
    layer_names: list[str] | None = None,
    extra: Callable[[tarfile.TarFile], None] | None = None,
    manifest: Any = None,
) -> bytes:
    """A docker-archive written by hand (so it can be wrong in every way a test needs)."""
    kinds = kinds or ["none"] * len(layers)
    squeeze = {"none": lambda d: d, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}
    if config is None:
        config = config_bytes(["sha256:" + hashlib.sha256(t).hexdigest() for t in layers])
    names = layer_names or [f"l{i}/layer.tar" for i in range(len(layers))]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))

        for i, (layer, kind) in enumerate(zip(layers, kinds, strict=True)):
            add(f"l{i}/layer.tar", squeeze[kind](layer))
        add("config.json", config)
        if extra is not None:
            extra(t)
        if manifest is None:
            manifest = [{"Config": "config.json", "RepoTags": tags or ["t:1"], "Layers": names}]
        if manifest != "absent":
            add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


@pytest.mark.parametrize("outer", ["none", "gzip", "bzip2", "xz"])
def test_load_compressed_archives_and_layers(tmp_path: Any, outer: str) -> None:
    data = build_archive(LAYERS, kinds=["gzip", "bzip2", "xz"], tags=["c:1"])
    data = {"none": lambda d: d, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[outer](
        data
    )
    stores = new_root(tmp_path, "a")
    assert load_bytes(stores, data) == ["Loaded image: c:1"]
    chains = digest.chain_ids(DIFF_IDS)
    assert stores.layers.ids() == sorted(chains)
    # tar-split records how EOF arrived: with the last gzip bytes, or on a read of its own.
    last = [decoded_tarsplit(stores, c)[-1] for c in chains]
    assert [e.payload == b"" for e in last] == [False, True, True]


def test_load_untagged_prints_ids_and_retag_warns(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    data = build_archive(
        LAYERS[:1], manifest=[{"Config": "config.json", "RepoTags": None, "Layers": ["l0/layer.tar"]}]
    )
    image_id = "sha256:" + hashlib.sha256(config_bytes(DIFF_IDS[:1])).hexdigest()
    assert load_bytes(stores, data) == [f"Loaded image ID: {image_id}"]

    other = add_image(stores, LAYERS[:2], tag="t:1")
    lines = load_bytes(stores, build_archive(LAYERS[:1], tags=["t:1"]))
    assert lines == [
        f"The image t:1 already exists, renaming the old one with ID {other} to empty string",
        "Loaded image: t:1",
    ]
    assert stores.refs.get("t:1") == image_id


def test_load_reports_progress(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    seen: list[tuple[str, str, int, int]] = []
    load_bytes(stores, build_archive(LAYERS[:2]), progress=lambda *a: seen.append(a))
    assert seen and seen[-1][1] == "Loading layer" and seen[-1][2] == seen[-1][3]
    seen.clear()
    stores2 = new_root(tmp_path, "b")
    load_bytes(stores2, build_archive(LAYERS[:2]), quiet=True, progress=lambda *a: seen.append(a))
    assert seen == []


def test_parent_links_survive_save_and_load(tmp_path: Any) -> None:
    a = new_root(tmp_path, "a")
    parent = add_image(a, LAYERS[:1], config_bytes(DIFF_IDS[:1], history=1), tag="p:1")
    child = add_image(a, LAYERS[:2], config_bytes(DIFF_IDS[:2], history=2), tag="c:1")
    a.images.set_parent(child, parent)
    data = save_bytes(a, ["p:1", "c:1"])
    manifest = json.loads(read_member(data, "manifest.json"))
    assert "Parent" not in manifest[0] and manifest[1]["Parent"] == parent
    # Only when the parent is in the archive too.
    assert "Parent" not in json.loads(read_member(save_bytes(a, ["c:1"]), "manifest.json"))[0]

    b = new_root(tmp_path, "b")
    load_bytes(b, data)
    assert b.images.get_parent(child) == parent and b.images.get_parent(parent) is None


def test_legacy_archive_without_manifest(tmp_path: Any) -> None:
    a = new_root(tmp_path, "a")
    add_image(a, LAYERS, VECTOR_CONFIG, tag="vec:1")
    saved = save_bytes(a, ["vec:1"])
    legacy = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(saved)) as src, tarfile.open(fileobj=legacy, mode="w") as dst:
        for m in src.getmembers():
            if not m.name.endswith(".json"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    b = new_root(tmp_path, "b")
    assert load_bytes(b, legacy.getvalue()) == []
    # One image per v1 layer, chained by parent; configs rebuilt like MakeConfigFromV1Config.
    assert len(b.images.ids()) == 3 and b.layers.ids() == a.layers.ids()
    top = b.refs.get("vec:1")
    cfg = b.images.get(top)
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": DIFF_IDS}
    assert [h["created"] for h in cfg["history"]] == ["1970-01-01T00:00:00Z"] * 2 + [CREATED]
    assert b.images.get_parent(top) is not None
    assert_pristine(b, images=3, layers=3)


# -- refused archives --------------------------------------------------------------------------------


def _symlink(name: str, target: str) -> Callable[[tarfile.TarFile], None]:
    def add(t: tarfile.TarFile) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        t.addfile(ti)

    return add


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_gzip(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data))
    for i in range(len(z) // 3, len(z) // 3 + 16):
        z[i] ^= 0xFF
    return bytes(z)


BAD_ARCHIVES: dict[str, Callable[[], bytes]] = {
    "not a tar": lambda: b"hello, this is not an image\n" * 40,
    "empty input": lambda: b"",
    "tar without manifest": lambda: build_archive(LAYERS[:1], manifest="absent"),
    "manifest null": lambda: _with_manifest(b"null"),
    "manifest layer traversal": lambda: build_archive(LAYERS[:1], layer_names=["../../../../etc/shadow"]),
    "manifest config traversal": lambda: build_archive(
        LAYERS[:1],
        manifest=[{"Config": "../../../../etc/passwd", "RepoTags": None, "Layers": ["l0/layer.tar"]}],
    ),
    "manifest.json symlink outside": lambda: build_archive(
        LAYERS[:1], manifest="absent", extra=_symlink("manifest.json", "/etc/passwd")
    ),
    "manifest.json relative symlink outside": lambda: build_archive(
        LAYERS[:1], manifest="absent", extra=_symlink("manifest.json", "../../../../../../etc/passwd")
    ),
    "layer symlink to /etc/passwd": lambda: build_archive(
        LAYERS[:1], layer_names=["evil/layer.tar"], extra=_symlink("evil/layer.tar", "/etc/passwd")
    ),
    "layer symlink climbing out": lambda: build_archive(
        LAYERS[:1],
        layer_names=["evil/layer.tar"],
        extra=_symlink("evil/layer.tar", "../../../../../../etc/passwd"),
    ),
    "layer symlink loop": lambda: build_archive(
        LAYERS[:1], layer_names=["evil/layer.tar"], extra=_symlink("evil/layer.tar", "layer.tar")
    ),
    "diff id mismatch": lambda: build_archive(LAYERS[:2], config=config_bytes([DIFF_IDS[0], DIFF_IDS[2]])),
    "invalid diff id": lambda: build_archive(LAYERS[:1], config=config_bytes(["sha256:../../etc"])),
    "layers length mismatch": lambda: build_archive(LAYERS[:2], config=config_bytes(DIFF_IDS[:1])),
    "config without rootfs": lambda: build_archive(LAYERS[:1], config=b'{"os":"linux"}'),
    "config not json": lambda: build_archive(LAYERS[:1], config=b"{nope"),
    "config with bad types": lambda: build_archive(
        LAYERS[:1], config=config_bytes(DIFF_IDS[:1], config={"Cmd": 5})
    ),
    "windows image": lambda: build_archive(LAYERS[:1], config=config_bytes(DIFF_IDS[:1], os="windows")),
    "tag without tag": lambda: build_archive(LAYERS[:1], tags=["busybox@sha256:" + "a" * 64]),
    "invalid tag": lambda: build_archive(LAYERS[:1], tags=["UPPER:1"]),
    "truncated archive": lambda: _truncate(build_archive(LAYERS)),
    "corrupt gzip": lambda: _corrupt_gzip(build_archive(LAYERS)),
    "truncated gzip": lambda: _truncate(gzip.compress(build_archive(LAYERS))),
    "truncated layer inside": lambda: build_archive(
        [LAYERS[0], LAYERS[1][:700]], config=config_bytes(DIFF_IDS[:2])
    ),
    "corrupt gzip layer": lambda: build_archive(
        [LAYERS[0], _corrupt_gzip(LAYERS[1])], config=config_bytes(DIFF_IDS[:2])
    ),
}


def _with_manifest(raw: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(raw)
        t.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_refused_archive_changes_nothing(tmp_path: Any, case: str) -> None:
    stores = new_root(tmp_path, "a")
    with pytest.raises(InvalidInput) as exc:
        load_bytes(stores, BAD_ARCHIVES[case]())
    message = str(exc.value)
    assert "\n" not in message and message
    if case in ("not a tar", "empty input", "tar without manifest", "manifest.json symlink outside"):
        assert message.startswith(da.NOT_AN_IMAGE)
    assert_pristine(stores)
    with open("/etc/passwd", "rb") as f:  # nothing outside was read into the store either
        secret = f.read()
    for dirpath, _dirs, files in os.walk(stores.root):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    assert f.read() != secret


def test_failure_keeps_layers_that_existed(tmp_path: Any) -> None:
    stores = new_root(tmp_path, "a")
    add_image(stores, LAYERS[:1], tag="base:1")
    bad = build_archive(LAYERS, config=config_bytes([DIFF_IDS[0], DIFF_IDS[1], DIFF_IDS[0]]))
    with pytest.raises(InvalidInput, match="invalid layer 2"):
        load_bytes(stores, bad)
    assert_pristine(stores, images=1, layers=1)


# -- safe_path ---------------------------------------------------------------------------------------


def test_safe_path_resolves_inside_the_root(tmp_path: Any) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../..", root / "a" / "up")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    r = str(root)
    assert da.safe_path(r, "abs/passwd") == f"{r}/etc/passwd"
    assert da.safe_path(r, "a/up/x") == f"{r}/x"
    assert da.safe_path(r, "./a/../a") == f"{r}/a"
    with pytest.raises(InvalidInput):
        da.safe_path(r, "../x")
    with pytest.raises(InvalidInput, match="too many links"):
        da.safe_path(r, "loop1")


def test_go_time_round_trip() -> None:
    assert da.GoTime.parse("2026-01-02T03:04:05.120000+02:00").text == "2026-01-02T03:04:05.12+02:00"
    assert da.GoTime.parse("2026-01-02T03:04:05.120000+02:00").unix == 1767315845
    assert da.GoTime.parse("1960-01-01T00:00:00Z").unix < 0
    with pytest.raises(ValueError):
        da.GoTime.parse("yesterday")
