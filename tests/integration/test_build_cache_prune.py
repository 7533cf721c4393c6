"""The build cache key of COPY and the prune verbs (issue 6), black box, next to a real dockerd 20.10
with its classic builder (``DOCKER_BUILDKIT=0``) where Docker has an answer:

* COPY's cache key is the sources' content and metadata: a changed byte or mode misses the cache,
  a touched mtime or a chown in the context does not -- on both sides, with the same history;
* ``image prune`` removes what dockerd removes (the same kinds and number of entries, the same
  reclaimed space), spares images containers use, and leaves an fsck-clean store;
* ``builder prune`` (classic builder: the cache is the chain of step images) removes the steps
  nothing reaches, ``-a`` the intermediate steps of tagged images as well.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration import helpers


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Any:
    yield from helpers.with_busybox(md, host, data_root, tag="base")


@pytest.fixture
def both(bb: Any, dockerd: Any, scratch: Any) -> tuple[Any, Any]:
    """minidocker and dockerd with the same busybox (same image ID), tagged ``base`` on both."""
    out = scratch("bcp-img")
    helpers.busybox_into_dockerd(bb, dockerd, out)
    return bb, dockerd


def _docker_build(host: Any, dockerd: Any, *args: str) -> str:
    r = helpers.docker_classic_build(host, dockerd, *args)
    assert r.rc == 0, helpers.describe(r) + dockerd.log_tail()
    return str(r.stdout)


def _fsck_clean(md: Any) -> None:
    assert md.ok("fsck").splitlines()[-1].endswith(": clean")


def test_copy_cache_key_follows_content_and_mode_not_mtime_or_owner(host, both, scratch):  # type: ignore[no-untyped-def]
    md, dockerd = both
    ctx = scratch("bcp-ctx")
    helpers.write_file(host, f"{ctx}/Dockerfile", "FROM base\nCOPY f /f\nRUN cat /f\n")
    helpers.check(host, f"echo one > {ctx}/f && chmod 644 {ctx}/f && touch -d 2020-01-01 {ctx}/f")

    def hits() -> tuple[int, int]:
        ours = md.ok("build", "-t", "bcp:1", ctx)
        theirs = _docker_build(host, dockerd, "-t", "bcp:1", ctx)
        ours_h = md.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "bcp:1").splitlines()
        theirs_h = dockerd.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "bcp:1").splitlines()
        assert ours_h == theirs_h  # the same "COPY file:<hash> in /f " line: dockerd's key
        return ours.count("Using cache"), theirs.count("Using cache")

    assert hits() == (0, 0)
    assert hits() == (2, 2)
    helpers.check(host, f"touch -d 2021-06-01 {ctx}/f")
    assert hits() == (2, 2), "a new mtime alone must not miss the cache"
    helpers.check(host, f"chown 1234:1234 {ctx}/f")
    assert hits() == (2, 2), "the context's owners do not count (the CLI sends root-owned files)"
    helpers.check(host, f"chmod 600 {ctx}/f")
    assert hits() == (0, 0), "a mode change must miss the cache"
    # same size, same mtime, other bytes
    helpers.check(host, f"echo two > {ctx}/f && touch -d 2021-06-01 {ctx}/f")
    assert hits() == (0, 0), "a content change must miss the cache"
    assert md.ok("run", "--rm", "bcp:1", "cat", "/f").strip() == "two"


def _entries(text: str) -> tuple[list[str], str]:
    """(sorted kinds of the "Deleted Images:" lines, the "Total reclaimed space" line)."""
    lines = text.splitlines()
    kinds = sorted(line.split(":", 1)[0] for line in lines if line.startswith(("deleted:", "untagged:")))
    return kinds, lines[-1]


def test_image_prune_like_docker_and_spares_containers(host, both, scratch):  # type: ignore[no-untyped-def]
    md, dockerd = both
    ctx = scratch("bcp-prune")
    helpers.write_file(
        host, f"{ctx}/Dockerfile", "FROM base\nCOPY f /f\nRUN echo built > /built\nLABEL x=y\n"
    )
    helpers.check(host, f"echo one > {ctx}/f")
    for tool in ("md", "docker"):
        build = (
            (lambda *a: md.ok("build", *a)) if tool == "md" else (lambda *a: _docker_build(host, dockerd, *a))
        )
        build("-q", "-t", "app:1", ctx)
        helpers.check(host, f"echo two > {ctx}/f")
        build("-q", "-t", "app:1", ctx)  # the first chain (from its COPY step on) is dangling now
        helpers.check(host, f"echo one > {ctx}/f")
    # a container of the tagged image: -a must leave that image alone
    md.ok("create", "--name", "bcp-user", "app:1", "true")
    dockerd.ok("create", "--name", "bcp-user", "app:1", "true")

    ours = md.ok("image", "prune", "-f")
    theirs = dockerd.ok("image", "prune", "-f")
    assert ours.startswith("Deleted Images:\n") and "\n\nTotal reclaimed space: " in ours
    assert _entries(ours) == _entries(theirs)
    assert _entries(ours)[0].count("deleted") == 5  # the COPY, RUN, LABEL images, the COPY, RUN layers
    _fsck_clean(md)
    assert md.ok("image", "prune", "-f").strip() == "Total reclaimed space: 0B"

    ours = md.ok("image", "prune", "-a", "-f")
    theirs = dockerd.ok("image", "prune", "-a", "-f")
    assert _entries(ours) == _entries(theirs)
    assert "untagged: busybox:latest" in ours and "untagged: app:1" not in ours
    tags = md.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert tags == ["app:1"]  # base/busybox untagged (app:1 still needs the image: not deleted)
    assert md.ok("run", "--rm", "app:1", "cat", "/built").strip() == "built"
    _fsck_clean(md)

    # the prompt: anything but y/yes changes nothing
    res = helpers.run(host, "echo n | " + md.command("image", "prune", "-a"))
    assert res.rc == 0 and "Are you sure you want to continue? [y/N]" in res.stdout
    assert res.stdout.rstrip().endswith("Total reclaimed space: 0B")
    # rmi of the last name of an image a container uses is refused, as dockerd does (not untagged)
    r = md.fail("rmi", "app:1", rc=1)
    assert 'unable to remove repository reference "app:1" (must force) - container' in r.stderr
    assert "app:1" in dockerd.docker("rmi", "app:1").stderr
    assert md.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split() == ["app:1"]
    md.ok("rm", "bcp-user")
    ours = md.ok("image", "prune", "-a", "-f")
    assert "untagged: app:1" in ours and md.ok("images", "-aq") == ""
    _fsck_clean(md)
    with pytest.raises(AssertionError):
        md.ok("image", "prune", "-f", "--filter", "color=red")


def test_builder_prune_removes_unreachable_steps(host, bb, scratch):  # type: ignore[no-untyped-def]
    ctx = scratch("bcp-bprune")
    helpers.write_file(host, f"{ctx}/Dockerfile", 'FROM base\nENV A=1\nRUN echo a > /a\nCMD ["cat", "/a"]\n')
    bb.ok("build", "-t", "keep:1", ctx)
    # a failed build leaves its committed steps behind: ENV B, RUN echo b
    helpers.write_file(host, f"{ctx}/Dockerfile.bad", "FROM base\nENV B=1\nRUN echo b > /b\nRUN exit 7\n")
    bb.fail("build", "-f", f"{ctx}/Dockerfile.bad", "-t", "bad:1", ctx, rc=7)
    leftovers = set(bb.ok("images", "-aq", "--no-trunc").split())
    assert len(leftovers) == 6  # busybox, keep's 3 steps, bad's 2 committed steps; no bad:1 tag
    # a container of one leftover: its image (and its parent) are never pruned
    env_b = [i for i in leftovers
             if "B=1" in json.loads(bb.ok("image", "inspect", i))[0]["Config"]["Env"]]  # fmt: skip
    assert len(env_b) == 2  # ENV B and RUN echo b
    run_b_id = next(
        i
        for i in env_b
        if "echo b" in json.loads(bb.ok("image", "inspect", i))[0]["ContainerConfig"]["Cmd"][-1]
    )
    bb.ok("create", "--name", "bcp-leftover", run_b_id, "true")
    out = bb.ok("builder", "prune", "-f")
    assert out.strip() == "Total reclaimed space: 0B"  # both of bad's steps are in use
    bb.ok("rm", "bcp-leftover")
    out = bb.ok("builder", "prune", "-f")
    assert out.startswith("Deleted build cache objects:\n")
    for i in env_b:
        assert i in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert out.rstrip().splitlines()[-1] != "Total reclaimed space: 0B"  # RUN echo b's layer
    _fsck_clean(bb)
    # keep:1's chain is cache still in use: the rebuild hits every step
    assert bb.ok("build", "-t", "keep:1", ctx).count("Using cache") == 3
    # -a: the intermediate steps go too; keep:1 itself stays whole and runs
    out = bb.ok("builder", "prune", "-a", "-f")
    assert out.count("sha256:") >= 2
    assert sorted(bb.ok("images", "-a", "--format", "{{.Repository}}").split()) == ["base", "busybox", "keep"]
    assert bb.ok("run", "--rm", "keep:1").strip() == "a"
    assert bb.ok("image", "inspect", "--format", "{{.Parent}}", "keep:1").strip() == ""
    _fsck_clean(bb)
    assert bb.ok("build", "-t", "keep:1", ctx).count("Using cache") == 0
