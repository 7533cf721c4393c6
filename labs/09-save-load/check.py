#!/usr/bin/env python3
"""Checker for lab 09 (save and load): reads the saved archive and the lab data root.

Setup recorded busybox:latest's image ID and its layer's cache-id in ``.lab-state/``. A layer
registered again after ``rmi`` gets a new random cache-id while its ChainID stays the same. So a
changed cache-id with an unchanged image ID proves that the image really went away and came back
from the archive.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak, on purpose
    Checker,
    DataRoot,
    data_root,
    fail_on_crash,
    host,
    lab_dir,
    read_answer,
    read_bytes,
    sha256_hex,
)

LAB = lab_dir("09")
ARCHIVE = os.path.join(LAB, "busybox.tar")
REF = "busybox:latest"


def _members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    """name -> (header, content of regular files) for the whole (small) archive."""
    out: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name.rstrip("/")] = (m, f.read() if f else None)
    return out


def _file(members: dict[str, tuple[tarfile.TarInfo, bytes | None]], name: str) -> bytes | None:
    entry = members.get(name)
    return entry[1] if entry else None


def main() -> int:
    c = Checker("09")
    root = DataRoot(data_root("09"))
    original_id = read_answer(os.path.join(LAB, ".lab-state", "image-id"))
    original_cache = read_answer(os.path.join(LAB, ".lab-state", "cache-id"))
    if not original_id or not original_cache:
        print(f"BROKEN {LAB}/.lab-state is missing: run `minidocker lab start 09`", file=sys.stderr)
        return 2

    # Step 1: the archive and its structure.
    data = read_bytes(ARCHIVE)
    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    why = ""
    if data is None:
        why = f"expected the file {ARCHIVE}, found it missing"
    else:
        try:
            members = _members(data)
        except tarfile.TarError as e:
            why = f"expected an uncompressed tar, found something tarfile cannot read ({e})"
    c.expect(f"{ARCHIVE} is a tar archive", not why, why)

    manifest: list[dict[str, Any]] | None = None
    raw = _file(members, "manifest.json")
    if raw is not None:
        try:
            manifest = json.loads(raw)
        except ValueError:
            manifest = None
    item = manifest[0] if isinstance(manifest, list) and len(manifest) == 1 else None
    c.expect(
        "manifest.json describes one image tagged busybox:latest",
        item is not None and item.get("RepoTags") == [REF],
        'expected manifest.json = [{Config, RepoTags: ["busybox:latest"], Layers}], found '
        + ("no manifest.json" if raw is None else f"{raw[:200].decode(errors='replace')!r}"),
    )

    config_name = str(item.get("Config", "")) if item else ""
    config = _file(members, config_name) if config_name else None
    config_id = "sha256:" + sha256_hex(config) if config is not None else None
    c.expect(
        "the archive's config is busybox's image config",
        config_id == original_id,
        f"expected {config_name or '<Config>'} whose sha256 is the image ID {original_id}, found "
        + ("no such file in the archive" if config is None else f"sha256 {config_id}"),
    )

    diff_ids: list[str] = []
    if config is not None:
        diff_ids = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
    layers = [str(x) for x in (item.get("Layers") or [])] if item else []
    problems = []
    for rel in layers:
        v1dir = rel.rsplit("/", 1)[0]
        if _file(members, rel) is None:
            problems.append(f"{rel} missing or not a regular file")
        if _file(members, f"{v1dir}/VERSION") != b"1.0":
            problems.append(f"{v1dir}/VERSION is not '1.0'")
        v1json = _file(members, f"{v1dir}/json")
        try:
            if v1json is None or json.loads(v1json).get("id") != v1dir:
                problems.append(f"{v1dir}/json missing or its id is not {v1dir}")
        except ValueError:
            problems.append(f"{v1dir}/json is not JSON")
    c.expect(
        "every layer is <v1id>/{VERSION,json,layer.tar}",
        bool(layers) and not problems,
        "expected one <v1id>/ directory per manifest Layers entry, found "
        + ("no Layers" if not layers else "; ".join(problems)),
    )

    if layers and diff_ids:
        hashes = ["sha256:" + sha256_hex(_file(members, rel) or b"") for rel in layers]
        c.expect(
            "sha256 of each layer.tar is the config's DiffID",
            hashes == diff_ids,
            f"expected layer.tar digests {diff_ids} (rootfs.diff_ids), found {hashes}",
        )
    else:
        c.blocked("sha256 of each layer.tar is the config's DiffID", "no layers or no config in the archive")

    # Step 2: the student's own hash of the layer.
    got = read_answer(os.path.join(LAB, "answers", "layer-diff-id"))
    want = diff_ids[0] if diff_ids else None
    if got is None:
        why = f"expected the file {LAB}/answers/layer-diff-id, found none"
    elif want is None:
        why = "cannot compare: the archive has no config with a DiffID yet"
    elif got == want:
        why = ""
    elif got == want[7:]:
        why = "the value is right but lacks the 'sha256:' prefix"
    elif got == original_id:
        why = "that is the image ID (sha256 of the config); the question is about layer.tar"
    else:
        why = f"expected sha256 of the archive's layer.tar (with the sha256: prefix), found {got!r}"
    c.expect("answers/layer-diff-id is the sha256 of layer.tar", not why, why)

    # Steps 3-4: deleted, loaded back, same ID, new cache-id, consistent store.
    now_id = root.image_id(REF) if root.exists() else None
    c.expect(
        "busybox:latest is in the store with its original image ID",
        now_id == original_id,
        f"expected {REF} -> {original_id} in {root.root}, found "
        + ("no such tag (load the archive back)" if now_id is None else f"{REF} -> {now_id}"),
    )
    # busybox:latest has one layer, so its ChainID is its DiffID; read it from the store's config.
    store_diffs = root.diff_ids(now_id) if now_id else []
    cache_now = root.layer_file(store_diffs[0], "cache-id") if store_diffs else None
    if cache_now is None:
        why = f"expected {REF}'s layer in layerdb, found none (load the archive back)"
    elif cache_now == original_cache:
        why = (f"expected a new cache-id after rmi + load, found the one setup created ({original_cache[:12]}…): "
               "the layer was never deleted")  # fmt: skip
    else:
        why = ""
    c.expect("the layer was deleted and registered again (new cache-id)", not why, why)

    md = os.environ.get("MINIDOCKER", "minidocker")
    res = host().run(f"{md} --data-root {shlex.quote(root.root)} fsck")
    c.expect(
        "minidocker fsck finds the data root clean",
        res.rc == 0,
        f"expected exit 0, found exit {res.rc}: {(res.stdout + res.stderr).strip()[-300:]}",
    )
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
