#!/usr/bin/env python3
"""Checker for lab 05 (registry): compares the answers with the registry's storage and the lab data root.

The registry's own files (``registry/storage/docker/registry/v2/``: ``blobs/sha256/<xx>/<hex>/data``
and ``repositories/lab05/app/_manifests/tags/<tag>/current/link``) say what it serves; the lab data
root (``root/image/overlay2/``: ``repositories.json``, ``imagedb``, ``layerdb``, ``distribution``)
says what the pull wrote. The checker never talks HTTP and never imports minidocker. Expected digests
are not printed; a wrong answer is matched against the usual mistakes (no ``Accept`` header, headers
saved with the body, a reformatted JSON file, a blob digest where a DiffID belongs, ...).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak, on purpose
    Checker,
    DataRoot,
    chain_ids,
    data_root,
    fail_on_crash,
    host,
    lab_dir,
    read_answer,
    read_bytes,
    read_text,
    realpath,
    sha256_hex,
)

LAB = lab_dir("05")
ANSWERS = os.path.join(LAB, "answers")
V2 = os.path.join(LAB, "registry", "storage", "docker", "registry", "v2")
REPO = "lab05/app"
TAG = "v1"
LAYERS = 3


def _answer(name: str) -> str | None:
    return read_answer(os.path.join(ANSWERS, name))


def _sha(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def blob(dgst: str) -> bytes | None:
    """A blob as the registry stores it: ``blobs/sha256/<first two hex>/<hex>/data``."""
    hexd = dgst.removeprefix("sha256:")
    return read_bytes(os.path.join(V2, "blobs", "sha256", hexd[:2], hexd, "data"))


def registry_tags() -> list[str]:
    d = host().file(os.path.join(V2, "repositories", REPO, "_manifests", "tags"))
    return sorted(d.listdir()) if d.is_directory else []


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def diagnose_bytes(name: str, want: str, what: str, others: dict[str, str]) -> str:
    """Why answers/``name`` (a file the student downloaded) is not the blob ``want``; "" when it is."""
    data = read_bytes(os.path.join(ANSWERS, name))
    if data is None:
        return f"expected the file {ANSWERS}/{name}, found none"
    got = _sha(data)
    if got == want:
        return ""
    if data[:5] == b"HTTP/":
        return "the file starts with HTTP headers: save only the body (curl -o FILE, without -i)"
    if got in others:
        return f"that is {others[got]}, not {what}"
    doc = _json(data)
    if isinstance(doc, dict) and "errors" in doc:
        return f"the registry answered an error instead: {data[:160].decode('utf-8', 'replace')}"
    original = blob(want)
    if doc is not None and original is not None and doc == _json(original):
        return ("the JSON is right but the bytes are not: it was reformatted (jq, json.tool, an editor); "
                "a digest covers the exact bytes the registry sent")  # fmt: skip
    return f"expected {what} (the bytes whose sha256 is the digest the registry names), found {len(data)} other bytes"


def main() -> int:
    c = Checker("05")
    address = read_answer(os.path.join(LAB, "address"))
    tags = registry_tags()
    link = read_answer(os.path.join(V2, "repositories", REPO, "_manifests", "tags", TAG, "current", "link"))
    raw = blob(link) if link else None
    manifest = _json(raw) if raw else None
    if not address or not link or not isinstance(manifest, dict):
        why = f"the lab registry's storage is missing under {LAB}/registry: run `minidocker lab start 05`"
        for name in ("answers/api-version", "answers/tags", "answers/manifest.json", "answers/manifest-digest",
                     "answers/config.json", "answers/top-layer.tar.gz", "answers/top-diffid",
                     f"{REPO}:{TAG} pulled into the lab data root",
                     *(f"answers/layers line {i}" for i in range(1, LAYERS + 1)), "answers/image-config"):  # fmt: skip
            c.blocked(name, why)
        return c.finish()

    config_digest = manifest["config"]["digest"]
    blobs = [x["digest"] for x in manifest["layers"]]
    config = blob(config_digest) or b"{}"
    diffs = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
    chains = chain_ids(diffs)
    others = {link: "the manifest", config_digest: "the config blob"}
    for i, (b, d) in enumerate(zip(blobs, diffs, strict=True), 1):
        others[b] = f"layer {i}'s compressed blob"
        others[d] = f"layer {i}'s DiffID (the uncompressed tar)"

    # Step 1: ping.
    got = _answer("api-version")
    if got is None:
        why = f"expected the file {ANSWERS}/api-version, found none"
    elif got == "registry/2.0":
        why = ""
    elif got.lower().startswith("docker-distribution-api-version"):
        why = "write only the header's value, not its name"
    elif got in ("{}", "200", "200 OK"):
        why = "that is the body or the status; the answer is the value of one response *header*"
    else:
        why = f"expected the value of the Docker-Distribution-Api-Version header of GET /v2/, found {got!r}"
    c.expect("answers/api-version", not why, why)

    # Step 2: tags.
    text = read_text(os.path.join(ANSWERS, "tags"))
    lines = sorted({x.strip() for x in (text or "").splitlines() if x.strip()})
    if text is None:
        why = f"expected the file {ANSWERS}/tags, found none"
    elif lines == tags:
        why = ""
    elif any(x.startswith("{") for x in lines):
        why = "write the tag names one per line, not the JSON answer"
    elif set(lines) < set(tags):
        why = f"{len(tags) - len(lines)} tag(s) missing: ask the registry for the list, do not guess"
    else:
        extra = sorted(set(lines) - set(tags))
        why = f"{REPO} has {len(tags)} tags; {extra!r} is not one of them"
    c.expect("answers/tags", not why, why)

    # Step 3: the manifest, exact bytes, and its digest.
    data = read_bytes(os.path.join(ANSWERS, "manifest.json"))
    doc = _json(data) if data else None
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        why = ("that is a schema 1 manifest: the registry converted it because the request did not "
               "accept the schema 2 media type (send an Accept header)")  # fmt: skip
    elif isinstance(doc, dict) and "manifests" in doc:
        why = "that is a manifest list; this tag names a single schema 2 manifest"
    else:
        why = diagnose_bytes("manifest.json", link, f"the manifest of {REPO}:{TAG}", others)
    c.expect("answers/manifest.json", not why, why)

    got = _answer("manifest-digest")
    if got is None:
        why = f"expected the file {ANSWERS}/manifest-digest, found none"
    elif got == link:
        why = ""
    elif got == link[7:]:
        why = "the value is right but lacks the 'sha256:' prefix"
    elif got in others:
        why = f"that is the digest of {others[got]}, not of the manifest"
    elif data is not None and got in (_sha(data), _sha(data)[7:]):
        why = "that is the sha256 of your manifest.json, which is not the manifest the registry stores for the tag"
    else:
        why = f"expected the sha256 of the manifest's exact bytes (the Docker-Content-Digest header), found {got!r}"
    c.expect("answers/manifest-digest", not why, why)

    # Step 4: the config blob.
    why = diagnose_bytes("config.json", config_digest, "the config blob", others)
    c.expect("answers/config.json", not why, why)

    # Step 5: the top layer blob, then its DiffID.
    top = read_bytes(os.path.join(ANSWERS, "top-layer.tar.gz"))
    why = diagnose_bytes("top-layer.tar.gz", blobs[-1], "the top (last) layer's blob", others)
    if why and top is not None and _sha(top) == diffs[-1]:
        why = "that is the top layer decompressed; keep the blob exactly as the registry sends it (gzip)"
    c.expect("answers/top-layer.tar.gz", not why, why)

    got = _answer("top-diffid")
    if got is None:
        why = f"expected the file {ANSWERS}/top-diffid, found none"
    elif got == diffs[-1]:
        why = ""
    elif got == diffs[-1][7:]:
        why = "the value is right but lacks the 'sha256:' prefix"
    elif got == blobs[-1]:
        why = "that is the blob digest (of the gzip bytes); the DiffID is the sha256 of the tar inside it"
    elif got in others:
        why = f"that is {others[got]}; the lab asks for the top (last) layer's DiffID"
    else:
        why = f"expected the sha256 of the decompressed top layer, found {got!r}"
    c.expect("answers/top-diffid", not why, why)

    # Step 6: the pull.
    root = DataRoot(data_root("05"))
    ref = f"{address}/{REPO}:{TAG}"
    image = root.image_id(ref) if root.exists() else None
    pulled = image == config_digest
    c.expect(
        f"{REPO}:{TAG} pulled into the lab data root",
        pulled,
        f"expected repositories.json under {root.root} to tag {ref}, found "
        + ("no data root there yet" if not root.exists() else f"tags {sorted(root.repositories())}"),
    )
    dist = os.path.join(root.image_dir, "distribution", "diffid-by-digest", "sha256")

    # Step 7: each blob's traces, base first: BLOB DIFFID CHAINID.
    text = read_text(os.path.join(ANSWERS, "layers"))
    rows = [x.split() for x in (text or "").splitlines() if x.strip()]
    for n in range(1, LAYERS + 1):
        name = f"answers/layers line {n}"
        if not pulled:
            c.blocked(name, f"{REPO}:{TAG} is not pulled into {root.root}")
            continue
        if text is None:
            c.expect(name, False, f"expected the file {ANSWERS}/layers with {LAYERS} lines, found none")
            continue
        if len(rows) < n:
            c.expect(name, False, f"expected {LAYERS} lines (base layer first), found {len(rows)}")
            continue
        row = rows[n - 1]
        want = [blobs[n - 1], diffs[n - 1], chains[n - 1]]
        trace = read_answer(os.path.join(dist, blobs[n - 1][7:]))
        if len(row) != 3:
            why = f"expected three values separated by spaces (BLOB DIFFID CHAINID), found {len(row)}"
        elif row == want:
            why = "" if trace == diffs[n - 1] else (
                f"your line is right, but distribution/diffid-by-digest/sha256/{blobs[n - 1][7:19]}… in the "
                "lab data root does not hold it: was the image pulled (not loaded) into this data root?")  # fmt: skip
        elif any(x == w[7:] for x, w in zip(row, want, strict=True)):
            why = "write every digest with its 'sha256:' prefix"
        elif row[0] != want[0]:
            why = ("the first value must be this layer's blob digest from the manifest's 'layers' (base first)"
                   + (f"; that is {others[row[0]]}" if row[0] in others else ""))  # fmt: skip
        elif row[1] != want[1]:
            why = ("the second value is what distribution/diffid-by-digest says for that blob"
                   + (f"; you wrote {others[row[1]]}" if row[1] in others else ""))  # fmt: skip
        elif row[2] == want[1]:
            why = (
                "the third value is the layerdb dir's name, the ChainID; above the base it is not the DiffID"
            )
        elif row[2] in chains:
            why = f"that ChainID is layer {chains.index(row[2]) + 1}'s; find the layerdb dir whose diff is this DiffID"
        else:
            why = "the third value must name a dir in image/overlay2/layerdb/sha256/ whose diff file holds the DiffID"
        c.expect(name, not why, why)

    # Step 8: the image config in the data root.
    got = _answer("image-config")
    want_path = os.path.join(root.image_dir, "imagedb", "content", "sha256", config_digest[7:])
    if not pulled:
        c.blocked("answers/image-config", f"{REPO}:{TAG} is not pulled into {root.root}")
        return c.finish()
    if got is None:
        why = f"expected the file {ANSWERS}/image-config, found none"
    elif not os.path.isabs(got):
        why = f"expected an absolute path, found {got!r}"
    else:
        real = realpath(got)
        if real is None:
            why = f"{got!r} does not exist"
        elif real == realpath(want_path):
            why = (
                "" if read_bytes(real) == config else "that file is no longer the config blob, byte for byte"
            )
        elif real == realpath(os.path.join(ANSWERS, "config.json")):
            why = "that is your own download; the answer is the file the pull wrote into the lab data root"
        elif real.startswith(os.path.join(LAB, "registry") + "/"):
            why = "that is the registry's copy; the answer is the file the pull wrote into the lab data root"
        else:
            why = f"expected the image store's file for {REPO}:{TAG}'s config under {root.image_dir}, found {got!r}"
    c.expect("answers/image-config", not why, why)
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
