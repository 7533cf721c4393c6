#!/usr/bin/env python3
"""Checker for lab 08 (build): a layer made by hand from a container's upper dir, then the same
change through ``commit`` and ``build``, compared by DiffID and by content.

Everything is read as plain files: the lab data root (``containers/<id>/config.v2.json``,
``layerdb/mounts/<id>/mount-id``, ``imagedb``, ``layerdb/sha256/<chainid>/{diff,cache-id}``,
``overlay2/<cache-id>/diff``, ``repositories.json``) and the student's ``layer.tar``, whose DiffID is
recomputed with :mod:`hashlib` and whose entries are read with :mod:`tarfile`. It never imports
minidocker, so a bug there cannot make this lab pass. Run it as root.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak, on purpose
    Checker,
    DataRoot,
    chain_ids,
    data_root,
    describe,
    fail_on_crash,
    find_named_container,
    is_whiteout,
    lab_dir,
    read_answer,
    read_bytes,
    read_text,
    realpath,
    sha256_hex,
)

LAB = lab_dir("08")
ROOT = data_root("08")
ANSWERS = os.path.join(LAB, "answers")
LAYER_TAR = os.path.join(LAB, "layer.tar")
NAME = "lab08"
NEW_FILE, NEW_TEXT = "lab08/new.txt", "hello"
CHANGED_FILE, CHANGED_PREFIX = "etc/passwd", "lab08:"
DELETED = "linuxrc"
BASE = "busybox:latest"
COMMIT_REF, BUILD_REF = "lab08/commit:latest", "lab08/build:latest"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _answer(name: str) -> str | None:
    return read_answer(os.path.join(ANSWERS, name))


def find_container() -> tuple[str | None, str]:
    """lab08's container ID in the lab data root, or None and what was found instead."""
    cid, _cfg, why = find_named_container(ROOT, NAME)
    return cid, why


def layer_dir_problems(d: str) -> list[str]:
    """What a layer directory (an upper dir, or overlay2/<cache-id>/diff) lacks of the lab's three changes."""
    out = []
    text = read_text(os.path.join(d, NEW_FILE))
    if text is None or text.strip() != NEW_TEXT:
        out.append(f"/{NEW_FILE} with the line {NEW_TEXT!r} (found {describe(os.path.join(d, NEW_FILE))})")
    text = read_text(os.path.join(d, CHANGED_FILE))
    if text is None or not any(line.startswith(CHANGED_PREFIX) for line in text.splitlines()):
        out.append(f"/{CHANGED_FILE} with a line starting {CHANGED_PREFIX!r}")
    if not is_whiteout(os.path.join(d, DELETED)):
        out.append(f"a whiteout for /{DELETED} (found {describe(os.path.join(d, DELETED))})")
    return out


# -- the hand-made layer tar ---------------------------------------------------------------------------
def tar_problems(data: bytes) -> list[str]:
    """What ``layer.tar`` gets wrong as a layer carrying the lab's three changes."""
    if data[:2] == b"\x1f\x8b":
        return ["it is gzip-compressed: a layer tar (and its DiffID) is the *uncompressed* tar"]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
            members = t.getmembers()
    except tarfile.TarError as e:
        return [f"it is not a tar archive ({e})"]
    by_name = {m.name.removeprefix("./").rstrip("/"): m for m in members}
    out = []
    devices = [n for n, m in by_name.items() if m.ischr() or m.isblk()]
    if devices:
        out.append(
            f"it holds device entries {devices}: overlayfs whiteouts (char 0/0) must become "
            f"'.wh.<name>' files in a layer tar"
        )
    wh = by_name.get(".wh." + DELETED)
    if wh is None or not wh.isfile():
        out.append(f"no regular file '.wh.{DELETED}' at its top level (the deletion of /{DELETED})")
    for name in (NEW_FILE, CHANGED_FILE):
        m = by_name.get(name)
        if m is None or not m.isfile():
            out.append(f"no regular file {name!r}")
    if DELETED in by_name and not (by_name[DELETED].ischr()):
        out.append(f"an entry {DELETED!r}: a deleted file is a '.wh.' entry, not the file itself")
    absolute = [m.name for m in members if m.name.startswith("/")]
    if absolute:
        out.append(f"absolute names such as {absolute[0]!r}: layer tars hold paths relative to /")
    return out


def diagnose_digest(found: str | None, want: str, what: str) -> str:
    if found is None:
        return f"expected {what}, found no answer file"
    if found == want:
        return ""
    if found == want[7:]:
        return "the value is right but lacks the 'sha256:' prefix; write it as sha256:<64 hex>"
    if found.split()[0] in (want, want[7:]) and len(found.split()) > 1:
        return "write only the digest, without sha256sum's file name"
    return f"expected {what}, found {found!r}"


# -- images --------------------------------------------------------------------------------------------
def image_problems(dr: DataRoot, image_id: str, base: list[str]) -> tuple[list[str], str | None]:
    """Problems of ``image_id`` as busybox plus one layer with the lab's changes; also its top DiffID."""
    cfg = dr.config(image_id)
    if cfg is None:
        return [f"no image config imagedb/content/sha256/{image_id[7:]}"], None
    diffs = dr.diff_ids(image_id)
    if diffs == base:
        return ["it has busybox's layers and no new one"], None
    if len(diffs) == 1:
        return [
            "it has a single layer: that is what `import` makes (the layer as a base, whose whiteout "
            "deletes nothing); stack your layer on busybox's"
        ], diffs[0]
    if diffs[:-1] != base or not diffs:
        return [f"its rootfs.diff_ids are not busybox's layer(s) plus one ({len(diffs)} layers)"], diffs[-1]
    chain = chain_ids(diffs)[-1]
    cache_id = dr.layer_file(chain, "cache-id")
    if cache_id is None:
        return [f"no layerdb/sha256/{chain[7:]} for its top layer"], diffs[-1]
    probs = layer_dir_problems(os.path.join(dr.cache_dir(cache_id), "diff"))
    return [f"its top layer lacks {p}" for p in probs], diffs[-1]


def reaches(dr: DataRoot, image_id: str, ancestor: str) -> bool:
    """``ancestor`` is on the chain of ``metadata/sha256/<id>/parent`` files starting at ``image_id``."""
    cur: str | None = image_id
    for _ in range(64):
        if cur is None:
            return False
        if cur == ancestor:
            return True
        cur = read_answer(os.path.join(dr.image_dir, "imagedb", "metadata", "sha256", cur[7:], "parent"))
    return False


def check_image_answer(c: Checker, dr: DataRoot, name: str, ref: str | None) -> str | None:
    """answers/<name> is a full image ID (of ``ref`` when given); returns it when well-formed."""
    got = _answer(name)
    tagged = dr.image_id(ref) if ref else None
    if got is None:
        c.expect(f"answers/{name}", False, "expected a full image ID sha256:<64 hex>, found no answer file")
        return None
    if not DIGEST.match(got):
        why = (
            "a full image ID is sha256:<64 hex> (`--no-trunc`, or the file name under imagedb)"
            if re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", got)
            else f"expected sha256:<64 hex>, found {got!r}"
        )
        c.expect(f"answers/{name}", False, why)
        return None
    if ref and tagged != got:
        which = "there is no such tag" if tagged is None else "it names another image"
        c.expect(f"answers/{name}", False, f"expected the image tagged {ref} ({which}), found {got[:19]}…")
        return None
    return got


def main() -> int:
    c = Checker("08")
    dr = DataRoot(ROOT)
    if not dr.exists():
        c.expect(
            "lab data root", False, f"no {ROOT}/image/overlay2/repositories.json: run `runner.py start 08`"
        )
        return c.finish()
    base_id = dr.image_id(BASE)
    base = dr.diff_ids(base_id) if base_id else []
    if not base:
        c.expect("busybox:latest in the lab data root", False, "it is gone: run `runner.py start 08` again")
        return c.finish()

    # Steps 1-2: the container and its upper dir.
    cid, found = find_container()
    upper = None
    if cid is None:
        c.expect(f"a container named {NAME} in the lab data root", False, f"expected one, found {found}")
    else:
        mount_id = read_answer(os.path.join(dr.image_dir, "layerdb", "mounts", cid, "mount-id"))
        upper = os.path.join(dr.overlay2, mount_id, "diff") if mount_id else None
        probs = layer_dir_problems(upper) if upper else ["a writable layer (layerdb/mounts/<id>/mount-id)"]
        c.expect(
            f"{NAME}'s upper dir holds the three changes",
            not probs,
            "expected " + "; ".join(probs) + " (the container's command must make them: see step 1)",
        )
    got = _answer("upperdir")
    if upper is None:
        c.blocked("answers/upperdir", f"no container {NAME} with a writable layer")
    elif got is None or not got.startswith("/"):
        c.expect("answers/upperdir", False, f"expected an absolute path, found {got!r}")
    else:
        real, want = realpath(got), realpath(upper)
        why = ""
        if real != want:
            if got.rstrip("/").endswith("/merged"):
                why = (
                    "that is the merged view (mounted only while the container runs); the upper dir is diff/"
                )
            elif got.rstrip("/").endswith("-init") or "-init/" in got:
                why = "that is the init layer (/etc/hosts and friends); take the container's own mount-id"
            elif want and real and want.startswith(real.rstrip("/") + "/"):
                why = "that is the layer's directory; the upper dir is the diff/ inside it"
            else:
                why = (
                    f"expected {NAME}'s upper dir (overlay2/<mount-id>/diff), found {describe(got)} at {got}"
                )
        c.expect("answers/upperdir", not why, why)

    # Steps 3-4: the layer tar and its DiffID.
    data = read_bytes(LAYER_TAR)
    diff_id = None
    if data is None:
        c.expect(f"{LAYER_TAR} is a layer tar", False, f"expected a tar file, found {describe(LAYER_TAR)}")
        c.blocked("answers/diff-id", f"no {LAYER_TAR}")
    else:
        probs = tar_problems(data)
        c.expect(f"{LAYER_TAR} is a layer tar with the three changes", not probs, "; ".join(probs))
        diff_id = "sha256:" + sha256_hex(data)
        why = diagnose_digest(_answer("diff-id"), diff_id, "the sha256 of layer.tar, as sha256:<64 hex>")
        c.expect("answers/diff-id", not why, why)

    # Step 5: the hand-made layer registered on busybox.
    image_id = check_image_answer(c, dr, "image-id", None)
    if image_id is not None:
        probs, top = image_problems(dr, image_id, base)
        if not probs and diff_id is not None and top != diff_id:
            probs = ["its top layer's DiffID is not layer.tar's: register the tar you hashed, unchanged"]
        c.expect("answers/image-id", not probs, "expected busybox plus your layer.tar; " + "; ".join(probs))

    # Step 6: commit.
    commit_id = dr.image_id(COMMIT_REF)
    if commit_id is None:
        c.expect(
            f"image {COMMIT_REF}",
            False,
            f"expected `commit` of {NAME} tagged {COMMIT_REF}, found no such tag",
        )
        c.blocked("answers/commit-diff-id", f"no {COMMIT_REF}")
    else:
        probs, top = image_problems(dr, commit_id, base)
        c.expect(f"image {COMMIT_REF} is busybox plus {NAME}'s changes", not probs, "; ".join(probs))
        if top is None:
            c.blocked("answers/commit-diff-id", f"{COMMIT_REF} has no layer of its own")
        else:
            why = diagnose_digest(_answer("commit-diff-id"), top, f"the DiffID of {COMMIT_REF}'s top layer")
            if why and _answer("commit-diff-id") == diff_id:
                why = "that is your hand-made layer's DiffID; read the one commit made in the image's config"
            c.expect("answers/commit-diff-id", not why, why)

    # Step 7: build.
    build_id = check_image_answer(c, dr, "build-image-id", BUILD_REF)
    if build_id is not None:
        probs, _ = image_problems(dr, build_id, base)
        history = (dr.config(build_id) or {}).get("history") or []
        nops = [h for h in history if h.get("empty_layer") and "#(nop)" in h.get("created_by", "")]
        if not nops:
            probs.append(
                "no empty_layer history entry '/bin/sh -c #(nop) …' (add a metadata instruction: CMD)"
            )
        if base_id and not reaches(dr, build_id, base_id):
            probs.append("its metadata/…/parent chain does not lead back to busybox")
        c.expect("answers/build-image-id", not probs, f"{BUILD_REF}: " + "; ".join(probs))
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
