"""The COPY/ADD cache key (minidocker.build.context.content_hash): Docker 20.10's exact values, and
what changes it (content, mode, names) and what does not (mtime, owner). No root needed.

The expected hashes were read from a real dockerd 20.10.24 with its 20.10 client
(``DOCKER_BUILDKIT=0 docker build``, ``docker history --no-trunc``) for the same files; (a docker
28 client gives other values: it leaves the file type bits out of the context tar's modes); tests/integration/test_build.py compares the
whole history with a live dockerd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minidocker.build.context import BuildContext, entry_sum


def _file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


@pytest.fixture
def ctx(tmp_path: Path) -> BuildContext:
    """The parity test's context: a.txt, sub/{s.txt (0640), deep/d}, an ignored skip.log."""
    _file(tmp_path / "a.txt", "hello\n")
    _file(tmp_path / "sub" / "s.txt", "s\n", 0o640)
    _file(tmp_path / "sub" / "deep" / "d", "d\n")
    for d in (tmp_path / "sub", tmp_path / "sub" / "deep"):
        os.chmod(d, 0o755)
    _file(tmp_path / "skip.log", "junk\n")
    _file(tmp_path / ".dockerignore", "*.log\n")
    return BuildContext(str(tmp_path))


def test_file_and_dir_hashes_are_dockers(ctx: BuildContext) -> None:
    assert ctx.content_hash(ctx.sources(["a.txt"])) == (
        "file:679c43c79a56cffbb3b002bda3050542c152a2f09757a0f1a9578871f7cda00d"
    )
    assert ctx.content_hash(ctx.sources(["sub"])) == (
        "dir:7e115589ce8778d22ed7cc90d9fb927658e5fad9d2b769ef0358bb460bf5af93"
    )


def test_entry_sum_of_a_changed_file(tmp_path: Path) -> None:
    _file(tmp_path / "a.txt", "changed\n")
    assert entry_sum("a.txt", str(tmp_path / "a.txt")) == (
        "b15020ac5619072ebf48c855f8efa7c9b6c4235839549c9a76b59c9f69ecb879"
    )


def test_multi_and_glob_sources(ctx: BuildContext) -> None:
    multi = ctx.content_hash(ctx.sources(["a.txt", "sub"]))
    assert multi.startswith("multi:")
    assert ctx.content_hash(ctx.sources(["a.txt", "sub"])) == multi
    assert ctx.content_hash(ctx.sources(["sub", "a.txt"])) != multi  # order counts, as in moby
    assert ctx.content_hash(ctx.sources(["*.txt"])) == ctx.content_hash(ctx.sources(["a.txt"]))


def test_content_and_mode_change_the_key_mtime_and_owner_do_not(ctx: BuildContext) -> None:
    root = Path(ctx.root)
    before_file = ctx.content_hash(ctx.sources(["a.txt"]))
    before_dir = ctx.content_hash(ctx.sources(["sub"]))
    before_all = ctx.content_hash(ctx.sources(["."]))

    # mtime only (and atime): same key, as dockerd 20.10 (tarsum v1 leaves mtime out)
    for p in (root / "a.txt", root / "sub" / "deep" / "d", root / "sub"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    assert ctx.content_hash(ctx.sources(["a.txt"])) == before_file
    assert ctx.content_hash(ctx.sources(["sub"])) == before_dir
    # an ignored file changing does not count either
    (root / "skip.log").write_text("other junk\n")
    assert ctx.content_hash(ctx.sources(["."])) == before_all

    # a mode change misses
    os.chmod(root / "sub" / "deep" / "d", 0o600)
    assert ctx.content_hash(ctx.sources(["sub"])) != before_dir
    os.chmod(root / "sub" / "deep" / "d", 0o644)
    assert ctx.content_hash(ctx.sources(["sub"])) == before_dir

    # a content change misses, even with the same size and mtime
    st = os.stat(root / "a.txt")
    (root / "a.txt").write_text("HELLO\n")
    os.utime(root / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ctx.content_hash(ctx.sources(["a.txt"])) != before_file
    # a new file in a copied directory misses
    _file(root / "sub" / "new", "")
    assert ctx.content_hash(ctx.sources(["sub"])) != before_dir


def test_owner_counts_only_for_image_sources(tmp_path: Path) -> None:
    _file(tmp_path / "f", "x\n")
    ctx = BuildContext(str(tmp_path))
    plain, with_owner = (
        ctx.content_hash(ctx.sources(["f"])),
        ctx.content_hash(ctx.sources(["f"]), owners=True),
    )
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    os.chown(tmp_path / "f", 1234, 1234)
    # the docker CLI sends the context as root-owned files: owners never count for it
    assert ctx.content_hash(ctx.sources(["f"])) == plain
    # COPY --from reads an image's files: uid, gid (and the host's names for them) count
    assert ctx.content_hash(ctx.sources(["f"]), owners=True) != with_owner


def test_symlink_source_hashes_its_target(tmp_path: Path) -> None:
    _file(tmp_path / "real", "data\n")
    os.symlink("real", tmp_path / "link")
    ctx = BuildContext(str(tmp_path))
    assert ctx.content_hash(ctx.sources(["link"])) == ctx.content_hash(ctx.sources(["real"]))


def test_upload_size_is_the_cli_tar_size(ctx: BuildContext) -> None:
    """What ``Sending build context to Docker daemon`` reports: the parity context (plus a
    502-byte Dockerfile) was 7.168kB for the docker CLI."""
    _file(Path(ctx.root) / "Dockerfile", "x" * 502)
    assert ctx.upload_size(os.path.join(ctx.root, "Dockerfile")) == 7168
