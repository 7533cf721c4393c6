"""Deterministic generator of a docker-archive for the load benchmark.

Two profiles:

``full``
    7 layers, ~60k entries, ~1 GB of layer tar: what the issue's goal is stated against.
``quick``
    the same shape scaled to a tenth (~6k entries, ~100 MB), for smoke runs.

The mix is meant to look like a real application image: many small text-like files (source,
docs, configs; compressible), some medium files (half text, half random), a few large
incompressible binaries, directory trees several levels deep, relative and absolute symlinks,
hard links inside a layer, and whiteouts / opaque directories in the upper layers.

Everything is derived from ``(GEN_VERSION, profile, layer index)`` seeds, so two runs write the
same bytes (same DiffIDs, same image ID). The archive is written in one streaming pass by our own
small writer (stdlib ``tarfile`` only builds the header blocks): each ``layer.tar`` member gets a
placeholder header, its content is streamed and hashed, then the header is patched with the real
size. Nothing larger than one 1 MiB chunk (and an 8 MiB text pool) is held in memory.

Archives are cached under ``$MINIDOCKER_BENCH_CACHE`` (default ``/var/tmp/minidocker-bench``) as
``v<GEN_VERSION>-<profile>/image.tar`` plus ``meta.json``; bump ``GEN_VERSION`` whenever the
output changes so stale caches are never reused.

Layout of the archive (as ``docker save`` writes it, layer dirs sorted by name)::

    <v1id>/  <v1id>/VERSION  <v1id>/json  <v1id>/layer.tar     one dir per layer
    <config sha256>.json                                       the image config
    manifest.json  repositories

CLI: ``python benchmarks/imagegen.py [--quick] [--force]`` prints the path of the archive.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import posixpath
import random
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

GEN_VERSION = 1
DEFAULT_CACHE = "/var/tmp/minidocker-bench"
REPO_NAME = "minidocker-bench"
BLOCK = 512
CHUNK = 1 << 20
_POOL_SIZE = 8 << 20
_EPOCH = 1_700_000_000  # mtimes: fixed, so the archive is reproducible

# Token vocabulary for text-like content: code-ish words, so gzip finds ~3-4x, like real sources.
_WORDS_TEXT = (
    "def class return import from self None True False if else elif for while in not and or "
    "try except finally with as yield lambda pass break continue raise assert global async await "
    "int str bytes list dict set tuple len range print open read write close path name value key "
    "data result config error status request response header buffer offset size count index item "
    "node tree layer image store driver mount parent child digest chain cache link lower upper "
    "work merged diff tar split entry payload position stream reader writer file dir mode uid gid "
    "time user group root host port address socket network bridge route table rule chain policy "
    "= == != <= >= + - * / % ( ) [ ] { } : , . ; # -> => && || // /* */ 0 1 2 10 42 255 1024"
)


@dataclass(frozen=True)
class LayerSpec:
    """What one layer holds; counts and sizes are for the ``full`` profile (scaled for ``quick``)."""

    name: str
    tops: tuple[str, ...]  # top-level directories its tree grows under
    small: int  # text-like files, log-normal sizes around small_mean
    small_mean: int
    medium: int  # 64 KiB .. medium_max, half text, half random bytes
    medium_max: int
    large: tuple[int, ...]  # sizes of incompressible binaries
    symlinks: int
    hardlinks: int
    whiteouts: int = 0  # .wh.<file> of files in lower layers
    opaque: int = 0  # .wh..wh..opq in directories of lower layers


_MB = 1 << 20
FULL: tuple[LayerSpec, ...] = (
    LayerSpec("base-os", ("etc", "usr/share", "usr/lib/x86_64-linux-gnu", "var/lib"),
              12000, 2500, 60, 640 << 10, (24 * _MB, 20 * _MB), 1500, 150),
    LayerSpec("runtime", ("usr/lib/python3.11", "usr/local/lib", "usr/include"),
              15000, 4500, 200, 512 << 10, (32 * _MB, 28 * _MB), 800, 100, whiteouts=20),
    LayerSpec("native-libs", ("usr/lib/x86_64-linux-gnu", "opt/libs"),
              3000, 3000, 300, 1 << 20, (40 * _MB, 40 * _MB, 36 * _MB, 36 * _MB), 300, 50, whiteouts=10),
    LayerSpec("node-modules", ("app/node_modules",),
              22000, 1800, 50, 384 << 10, (), 1000, 300, whiteouts=10, opaque=1),
    LayerSpec("assets", ("app/static", "usr/share/fonts"),
              2000, 3500, 200, 1 << 20, (64 * _MB,), 100, 20),
    LayerSpec("app", ("app/src", "app/lib"),
              5000, 3500, 40, 512 << 10, (48 * _MB,), 200, 50, whiteouts=50, opaque=2),
    LayerSpec("config", ("etc/app", "app/config"),
              400, 1500, 0, 0, (), 20, 5, whiteouts=30),
)  # fmt: skip


def scaled(specs: tuple[LayerSpec, ...], factor: float) -> tuple[LayerSpec, ...]:
    """The same shape with counts and large sizes multiplied by ``factor`` (at least 1 where >0)."""

    def n(x: int) -> int:
        return max(1, round(x * factor)) if x else 0

    return tuple(
        dataclasses.replace(
            s,
            small=n(s.small),
            medium=n(s.medium),
            large=tuple(n(x) for x in s.large),
            symlinks=n(s.symlinks),
            hardlinks=n(s.hardlinks),
            whiteouts=n(s.whiteouts),
            opaque=n(s.opaque),
        )
        for s in specs
    )


PROFILES: dict[str, tuple[LayerSpec, ...]] = {"full": FULL, "quick": scaled(FULL, 0.1)}


# --------------------------------------------------------------------------------------------
# planning: every entry of every layer, before any byte is written


@dataclass(slots=True)
class Entry:
    path: str  # no leading "./", no trailing "/"
    kind: str  # dir | text | bin | large | symlink | hardlink | empty (whiteouts, empty files)
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""  # symlink target, or the group key of a hard link
    seed: int = 0


def _pool() -> bytes:
    """~8 MiB of code-like text, the source of every text file (sliced at random offsets)."""
    rnd = hashlib.shake_128(b"minidocker-bench-text-pool").digest(_POOL_SIZE // 5)
    words = [w.encode() for w in _WORDS_TEXT.split()]
    words += [b"\n", b"\n    ", b"\n        "] * 8
    table = [words[b % len(words)] for b in range(256)]
    return b" ".join(table[b] for b in rnd)[:_POOL_SIZE]


def _dirs(r: random.Random, tops: tuple[str, ...], count: int) -> list[str]:
    """A tree of ``count`` directories under ``tops``: each new one a child of an existing one."""
    dirs = list(tops)
    stems = ("lib", "src", "pkg", "mod", "core", "util", "test", "doc", "share", "data", "bin", "res")
    while len(dirs) < count + len(tops):
        parent = r.choice(dirs) if r.random() < 0.7 else r.choice(tops)
        if parent.count("/") >= 9:
            parent = r.choice(tops)
        dirs.append(f"{parent}/{r.choice(stems)}{len(dirs)}")
    return dirs


def plan_layer(
    profile: str, index: int, spec: LayerSpec, lower_files: list[str], lower_dirs: list[str]
) -> list[Entry]:
    """Every entry of layer ``index`` (unsorted; no directory entries yet)."""
    r = random.Random(f"{GEN_VERSION}:{profile}:{index}")
    nfiles = spec.small + spec.medium + len(spec.large)
    dirs = _dirs(r, spec.tops, max(4, nfiles // 14))
    out: list[Entry] = []
    regular: list[Entry] = []
    exts = (".py", ".txt", ".h", ".js", ".json", ".conf", ".md", ".c", ".html", ".css")
    for i in range(spec.small):
        d = r.choice(dirs)
        if r.random() < 0.03:  # __init__.py, .keep, lock files...
            out.append(Entry(f"{d}/empty_{index}_{i:05d}", "empty"))
            continue
        size = min(256 << 10, int(r.lognormvariate(0, 1.1) * spec.small_mean / 1.83))
        mode = 0o755 if r.random() < 0.05 else 0o644
        uid = 1000 if r.random() < 0.02 else 0
        e = Entry(
            f"{d}/f_{index}_{i:05d}{r.choice(exts)}", "text", size, mode, uid, uid, seed=r.getrandbits(32)
        )
        out.append(e)
        regular.append(e)
    for i in range(spec.medium):
        d = r.choice(dirs)
        size = r.randrange(64 << 10, max(spec.medium_max, (64 << 10) + 1))
        kind = "text" if i % 2 else "bin"
        name = f"{d}/m_{index}_{i:04d}" + (".dat" if kind == "text" else ".so")
        out.append(Entry(name, kind, size, 0o755 if kind == "bin" else 0o644, seed=r.getrandbits(32)))
    for i, size in enumerate(spec.large):
        out.append(
            Entry(f"opt/{spec.name}/blob_{index}_{i}.bin", "large", size, 0o755, seed=r.getrandbits(32))
        )
    for i in range(spec.hardlinks):
        src = r.choice(regular)
        out.append(Entry(f"{r.choice(dirs)}/hl_{index}_{i:04d}", "hardlink", target=src.path))
    files = [e.path for e in out if e.kind != "hardlink"]
    for i in range(spec.symlinks):
        d = r.choice(dirs)
        pick = r.random()
        if pick < 0.45:  # relative, to a file of this layer (never above the root)
            target = posixpath.relpath(r.choice(files), d)
        elif pick < 0.75 and lower_files:  # absolute, into a lower layer
            target = "/" + r.choice(lower_files)
        elif pick < 0.9:  # a directory
            target = posixpath.relpath(r.choice(dirs), d)
        else:  # dangling, as plenty of real images have
            target = f"/nonexistent/{index}/{i}"
        out.append(Entry(f"{d}/link_{index}_{i:04d}", "symlink", target=target))
    victims = r.sample(lower_files, min(spec.whiteouts, len(lower_files))) if lower_files else []
    for path in victims:
        d, base = posixpath.split(path)
        out.append(Entry(f"{d}/.wh.{base}", "empty"))
    for d in r.sample(lower_dirs, min(spec.opaque, len(lower_dirs))) if lower_dirs else []:
        out.append(Entry(f"{d}/.wh..wh..opq", "empty"))
        out.append(Entry(f"{d}/after_opaque_{index}.txt", "text", 100, seed=r.getrandbits(32)))
    return out


def _walk_order(entries: list[Entry]) -> list[Entry]:
    """Add the directory entries and sort as a filepath.Walk does (component-wise, by name)."""
    dirs: set[str] = set()
    for e in entries:
        d = posixpath.dirname(e.path)
        while d and d not in dirs:
            dirs.add(d)
            d = posixpath.dirname(d)
    all_entries = [Entry(d, "dir", mode=0o755) for d in dirs] + entries
    all_entries.sort(key=lambda e: e.path.split("/"))
    return all_entries


# --------------------------------------------------------------------------------------------
# writing


class _Out:
    """The output file, hashing and counting the bytes of the member being written."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.h: hashlib._Hash | None = None
        self.n = 0

    def write(self, data: bytes | memoryview) -> None:
        self.f.write(data)
        self.n += len(data)
        if self.h is not None:
            self.h.update(data)


def _header(name: str, kind: bytes, size: int = 0, mode: int = 0o644, uid: int = 0, gid: int = 0,
            linkname: str = "", mtime: int = _EPOCH) -> bytes:  # fmt: skip
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.uid, ti.gid, ti.linkname, ti.mtime = (
        kind,
        size,
        mode,
        uid,
        gid,
        linkname,
        mtime,
    )
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _content(e: Entry, pool: bytes) -> Iterator[bytes]:
    if e.kind == "text":
        off = e.seed % (len(pool) - e.size)
        yield pool[off : off + e.size]
    elif e.kind == "bin":
        yield hashlib.shake_128(e.seed.to_bytes(8, "little") + e.path.encode()).digest(e.size)
    elif e.kind == "large":
        left, i = e.size, 0
        while left:
            n = min(CHUNK, left)
            yield hashlib.shake_128(b"%d:%d:%s" % (e.seed, i, e.path.encode())).digest(n)
            left -= n
            i += 1


def write_layer(out: _Out, entries: list[Entry], pool: bytes, mtime_base: int) -> tuple[int, int]:
    """Write one layer tar (Go-writer style: no record padding); returns (entries, non-directories).

    Hard links: of all names of one inode, the first in walk order carries the content and the
    later ones are links to it, as Docker's tar writer does.
    """
    ordered = _walk_order(entries)
    source: dict[str, Entry] = {}  # inode group (the source's path) -> the entry with the content
    first: dict[str, str] = {}  # inode group -> first name in walk order
    for e in ordered:
        if e.kind in ("dir", "symlink", "empty"):
            continue
        group = e.target if e.kind == "hardlink" else e.path
        first.setdefault(group, e.path)
        if e.kind != "hardlink":
            source[group] = e
    for i, e in enumerate(ordered):
        mtime = mtime_base + i % 86400
        if e.kind == "dir":
            out.write(_header(e.path + "/", tarfile.DIRTYPE, mode=e.mode, mtime=mtime))
            continue
        if e.kind == "symlink":
            out.write(_header(e.path, tarfile.SYMTYPE, mode=0o777, linkname=e.target, mtime=mtime))
            continue
        if e.kind == "empty":
            out.write(_header(e.path, tarfile.REGTYPE, 0, e.mode, mtime=mtime))
            continue
        group = e.target if e.kind == "hardlink" else e.path
        src = source[group]
        if first[group] != e.path:
            out.write(_header(e.path, tarfile.LNKTYPE, mode=src.mode, linkname=first[group], mtime=mtime))
            continue
        out.write(_header(e.path, tarfile.REGTYPE, src.size, src.mode, src.uid, src.gid, mtime=mtime))
        for chunk in _content(src, pool):
            out.write(chunk)
        if src.size % BLOCK:
            out.write(bytes(BLOCK - src.size % BLOCK))
    out.write(bytes(2 * BLOCK))
    return len(ordered), sum(1 for e in ordered if e.kind != "dir")


@dataclass
class Meta:
    profile: str
    path: str
    size: int
    layers: int
    entries: int
    files: int
    layer_bytes: int
    image_id: str
    tag: str
    seconds: float


def generate(profile: str, dest: str) -> Meta:
    """Write the archive for ``profile`` to ``dest`` (via ``dest.part``); returns its description."""
    specs = PROFILES[profile]
    started = time.monotonic()
    pool = _pool()
    plans: list[list[Entry]] = []
    lower_files: list[str] = []
    lower_dirs: list[str] = []
    for i, spec in enumerate(specs):
        plan = plan_layer(profile, i, spec, lower_files, lower_dirs)
        plans.append(plan)
        lower_files += [e.path for e in plan if e.kind in ("text", "bin")]
        lower_dirs += sorted({posixpath.dirname(e.path) for e in plan if e.kind == "text"})
    v1ids = [hashlib.sha256(f"{GEN_VERSION}:{profile}:{i}".encode()).hexdigest() for i in range(len(specs))]
    diff_ids: list[str] = [""] * len(specs)
    entries = files = layer_bytes = 0
    part = dest + ".part"
    with open(part, "wb") as f:
        out = _Out(f)
        for i in sorted(range(len(specs)), key=lambda k: v1ids[k]):  # docker save: sorted names
            v1 = v1ids[i]
            v1json = {"id": v1, "created": "2024-01-01T00:00:00Z", "os": "linux"}
            if i:
                v1json["parent"] = v1ids[i - 1]
            out.write(_header(f"{v1}/", tarfile.DIRTYPE, mode=0o755))
            for name, data in (("VERSION", b"1.0"), ("json", json.dumps(v1json).encode())):
                out.write(_header(f"{v1}/{name}", tarfile.REGTYPE, len(data)))
                out.write(data + bytes(-len(data) % BLOCK))
            # layer.tar: placeholder header, streamed content, then the real header patched in
            at = f.tell()
            out.write(bytes(BLOCK))
            out.h, start = hashlib.sha256(), out.n
            n_entries, n_files = write_layer(out, plans[i], pool, _EPOCH + i * 86400)
            entries, files = entries + n_entries, files + n_files
            size = out.n - start
            diff_ids[i], out.h = "sha256:" + out.h.hexdigest(), None
            out.write(bytes(-size % BLOCK))
            layer_bytes += size
            end = f.tell()
            hdr = _header(f"{v1}/layer.tar", tarfile.REGTYPE, size)
            assert len(hdr) == BLOCK
            f.seek(at)
            f.write(hdr)
            f.seek(end)
        history = [{"created": "2024-01-01T00:00:00Z", "created_by": f"/bin/sh -c #(nop) ADD {s.name}"}
                   for s in specs]  # fmt: skip
        config = {
            "architecture": "amd64",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
            },  # fmt: skip
            "created": "2024-01-01T00:00:00Z",
            "history": history,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        cfg = json.dumps(config, separators=(",", ":")).encode()
        image_id = hashlib.sha256(cfg).hexdigest()
        tag = f"{REPO_NAME}:{profile}"
        manifest = [
            {"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": [f"{v}/layer.tar" for v in v1ids]}
        ]
        repositories = {REPO_NAME: {profile: v1ids[-1]}}
        for name, data in (
            (f"{image_id}.json", cfg),
            ("manifest.json", json.dumps(manifest, separators=(",", ":")).encode() + b"\n"),
            ("repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n"),
        ):
            out.write(_header(name, tarfile.REGTYPE, len(data)))
            out.write(data + bytes(-len(data) % BLOCK))
        out.write(bytes(2 * BLOCK))
        total = out.n
    os.replace(part, dest)
    return Meta(profile, dest, total, len(specs), entries, files, layer_bytes, "sha256:" + image_id, tag,
                round(time.monotonic() - started, 2))  # fmt: skip


def cache_dir() -> str:
    return os.environ.get("MINIDOCKER_BENCH_CACHE", DEFAULT_CACHE)


def ensure(profile: str, *, force: bool = False, log: TextIO | None = None) -> Meta:
    """The cached archive for ``profile``, generated first when missing (or ``force``)."""
    d = os.path.join(cache_dir(), f"v{GEN_VERSION}-{profile}")
    path, meta_path = os.path.join(d, "image.tar"), os.path.join(d, "meta.json")
    if not force and os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = Meta(**json.load(f))
        if meta.path == path and os.path.getsize(path) == meta.size:
            return meta
    os.makedirs(d, exist_ok=True)
    if log is not None:
        print(f"generating the {profile} image into {path} ...", file=log, flush=True)
    meta = generate(profile, path)
    with open(meta_path + ".part", "w") as f:
        json.dump(dataclasses.asdict(meta), f, indent=1)
    os.replace(meta_path + ".part", meta_path)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the ~100 MB profile")
    p.add_argument("--force", action="store_true", help="regenerate even when cached")
    args = p.parse_args(argv)
    meta = ensure("quick" if args.quick else "full", force=args.force, log=sys.stderr)
    print(json.dumps(dataclasses.asdict(meta), indent=1), file=sys.stderr)
    print(meta.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
