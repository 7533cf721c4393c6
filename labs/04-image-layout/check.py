#!/usr/bin/env python3
"""Checker for lab 04 (image layout): recomputes IDs from the lab data root and compares the answers.

The expected values are never printed (they are what the student computes); a wrong answer is
matched against the usual mistakes (trailing newline, bare hex, reversed order, DiffID instead of
ChainID, ...) so the message says what went wrong.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
    read_text,
    realpath,
    sha256_hex,
)

LAB = lab_dir("04")
ANSWERS = os.path.join(LAB, "answers")
REF = "lab04/app:v1"
LAYERS = 3


def _answer(name: str) -> str | None:
    return read_answer(os.path.join(ANSWERS, name))


def _h(s: str) -> str:
    return "sha256:" + sha256_hex(s.encode())


def diagnose_chain(found: str, n: int, diffs: list[str], chains: list[str], others: dict[str, str]) -> str:
    """Why ``found`` is not ChainID(layers 1..n); ``n`` counts from 1. Empty string means it is right."""
    expected = chains[n - 1]
    if found == expected:
        return ""
    if found == expected[7:]:
        return "the value is right but lacks the 'sha256:' prefix; write it as sha256:<64 hex>"
    if n == 1:
        if found in chains[1:]:
            return (
                "that is the ChainID of a higher layer; line 1 is the base layer, whose ChainID is its DiffID"
            )
        if found in others:
            return f"that is {others[found]}; the base layer's ChainID is simply its DiffID"
        return f"expected the base layer's DiffID (rootfs.diff_ids[0] of the image config), found {found!r}"
    prev, diff = chains[n - 2], diffs[n - 1]
    newline = "you hashed the string with a trailing newline (echo adds one; printf does not)"
    bare = "you hashed the bare hex values; the hashed string keeps both 'sha256:' prefixes"
    spacing = "the two IDs must be joined by exactly one space"
    via_diff = f"you combined with layer {n - 1}'s DiffID; the recursion uses its ChainID"
    mistakes = {
        _h(f"{prev} {diff}\n"): newline,
        _h(f"{prev[7:]} {diff[7:]}"): bare,
        _h(f"{diff} {prev}"): "you hashed the two IDs in reverse order: the parent ChainID comes first",
        _h(f"{prev}{diff}"): spacing,
        _h(f"{prev}  {diff}"): spacing,
        diff: f"that is layer {n}'s DiffID; a ChainID above the base combines the parent ChainID with it",
        _h(f"{diffs[n - 2]} {diff}"): via_diff,
    }
    for value, why in mistakes.items():
        if found in (value, value[7:]):
            return why
    if found in others:
        return f"that is {others[found]}, not a ChainID"
    return (f"expected sha256 of the string 'ChainID(layer {n - 1}) DiffID(layer {n})', found {found!r}, "
            f"which matches none of the usual mistakes")  # fmt: skip


def main() -> int:
    c = Checker("04")
    root = DataRoot(data_root("04"))

    # Steps 1-2: the store and the two images.
    bb = root.image_id("busybox:latest") if root.exists() else None
    c.expect(
        "busybox:latest exists in the lab data root",
        bb is not None,
        f"expected repositories.json under {root.root} to tag busybox:latest, found "
        + ("no data root there yet" if not root.exists() else f"tags {sorted(root.repositories())}"),
    )
    app = root.image_id(REF) if root.exists() else None
    diffs = root.diff_ids(app) if app else []
    c.expect(
        f"{REF} is loaded with {LAYERS} layers",
        app is not None and len(diffs) == LAYERS,
        f"expected {REF} in {root.root} with {LAYERS} DiffIDs, found "
        + ("no such tag" if app is None else f"{len(diffs)} DiffIDs"),
    )
    if app is None or len(diffs) != LAYERS:
        for name in ("answers/image-id", *(f"answers/chain-ids line {i}" for i in range(1, LAYERS + 1)),
                     "answers/cache-id", "answers/base-diff"):  # fmt: skip
            c.blocked(name, f"{REF} is not loaded into {root.root}")
        return c.finish()

    chains = chain_ids(diffs)
    caches = [root.layer_file(ch, "cache-id") or "" for ch in chains]
    others = {app: "the image ID", app[7:]: "the image ID"}
    for i, (ch, ca) in enumerate(zip(chains, caches, strict=True), 1):
        others[ca] = f"layer {i}'s cache-id"
        others.setdefault(ch[7:], f"layer {i}'s ChainID without the prefix")

    # Step 3: image ID.
    got = _answer("image-id")
    config = root.config_bytes(app) or b""
    if got is None:
        why = f"expected the file {ANSWERS}/image-id, found none"
    elif got == app:
        why = ""
    elif got == app[7:]:
        why = "the value is right but lacks the 'sha256:' prefix"
    elif len(got) < 64 and app[7:].startswith(got.removeprefix("sha256:")):
        why = f"that is the short ID ({len(got.removeprefix('sha256:'))} hex digits); write the full sha256:<64 hex>"
    elif got in others:
        why = f"that is {others[got]}; the image ID is the sha256 of the image's config file"
    else:
        why = f"expected the sha256 of {REF}'s config file ({len(config)} bytes in imagedb/content), found {got!r}"
    c.expect("answers/image-id", not why, why)

    # Step 4: chain IDs, one per line, base first.
    text = read_text(os.path.join(ANSWERS, "chain-ids"))
    lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
    for n in range(1, LAYERS + 1):
        name = f"answers/chain-ids line {n}"
        if text is None:
            c.expect(name, False, f"expected the file {ANSWERS}/chain-ids with {LAYERS} lines, found none")
        elif len(lines) < n:
            c.expect(name, False, f"expected {LAYERS} non-empty lines (base layer first), found {len(lines)}")
        else:
            why = diagnose_chain(lines[n - 1], n, diffs, chains, others)
            c.expect(name, not why, why)
    if len(lines) > LAYERS:
        c.expect(
            "answers/chain-ids has no extra lines", False, f"expected {LAYERS} lines, found {len(lines)}"
        )

    # Step 5: cache-id of the top layer.
    got = _answer("cache-id")
    top_cache = caches[-1]
    if got is None:
        why = f"expected the file {ANSWERS}/cache-id, found none"
    elif got == top_cache:
        why = ""
    elif got in others:
        why = f"that is {others[got]}; the lab asks for the top (third) layer's cache-id"
    elif host().file(os.path.join(root.overlay2, "l", got)).is_symlink:
        why = "that is a link ID (overlay2/l/<LINKID>); the cache-id names the overlay2/<cache-id>/ dir"
    elif got in chains or got in [x[7:] for x in chains]:
        why = "that is a ChainID (the layerdb dir name); the cache-id is a file inside that dir"
    else:
        why = f"expected the content of layerdb/sha256/<top ChainID>/cache-id, found {got!r}"
    c.expect("answers/cache-id", not why, why)

    # Step 6: the base layer's diff dir, reached through the top layer's `lower`.
    got = _answer("base-diff")
    want = realpath(os.path.join(root.overlay2, caches[0], "diff"))
    if got is None:
        why = f"expected the file {ANSWERS}/base-diff, found none"
    elif not os.path.isabs(got):
        why = f"expected an absolute path, found {got!r}"
    else:
        real = realpath(got)
        layer_of = {realpath(os.path.join(root.overlay2, ca, "diff")): i for i, ca in enumerate(caches, 1)}
        if real is None:
            why = f"{got!r} does not exist"
        elif real == want:
            why = ""
        elif real in layer_of:
            why = f"that is layer {layer_of[real]}'s diff dir; the base layer is the LAST entry of the top layer's lower"
        elif real == realpath(os.path.join(root.overlay2, caches[0])):
            why = "that is the base layer's overlay2 dir; the answer is its diff/ subdirectory"
        else:
            why = f"expected the base layer's overlay2/<cache-id>/diff, found {got!r} (-> {real})"
    c.expect("answers/base-diff", not why, why)
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
