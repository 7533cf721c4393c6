"""Layout parity with a real dockerd: the same archive loaded by both gives the same files,
each side's archive loads on the other with the same image IDs, and each reads the other's root.

The image (data/make_parity_image.py) has three layers in three tar dialects with hard links,
symlinks of every kind, long and UTF-8 names, a fifo, a device, setuid/setgid/sticky modes, odd
owners, an old mtime, an xattr, a whiteout and an opaque directory. data/compare_roots.py does the
comparison of docker-layout.md section 13 (random ids mapped through chain ids).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.integration import helpers
from tests.integration.helpers import DockerDaemon

DATA = os.path.join(os.path.dirname(__file__), "data")
TAG = "parity/img:1"


@pytest.fixture(scope="module")
def parity_archive(host, busybox_rootfs_tar):  # type: ignore[no-untyped-def]
    root = helpers.make_temp_dir(host, "parity")
    try:
        image_id = helpers.check(
            host, helpers.q("python3", f"{DATA}/make_parity_image.py", root, busybox_rootfs_tar)
        )
        yield f"{root}/image.tar", image_id.strip()
    finally:
        helpers.remove_tree(host, root)


def compare(host, a: str, b: str, *flags: str) -> None:  # type: ignore[no-untyped-def]
    result = helpers.run(host, helpers.q("python3", f"{DATA}/compare_roots.py", a, b, *flags))
    assert result.rc == 0, helpers.describe(result)


def test_load_gives_dockerds_files(host, md, dockerd, parity_archive, data_root):  # type: ignore[no-untyped-def]
    archive, image_id = parity_archive
    dockerd.ok("load", "-i", archive)
    out = md.ok("load", "-i", archive)
    assert out.strip() == f"Loaded image: {TAG}"
    assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
    compare(host, dockerd.data_root, data_root)
    # whiteouts and opaque dirs became overlay objects, exactly as dockerd made them
    layer3 = (
        md.ok("image", "inspect", "--format", "{{json .GraphDriver.Data.UpperDir}}", TAG).strip().strip('"')
    )
    wh = host.file(f"{layer3}/data/to-delete")
    assert (
        wh.exists
        and host.run(f"stat -c %F:%t:%T {layer3}/data/to-delete").stdout.strip()
        == "character special file:0:0"
    )
    getxattr = "import os,sys; print(os.getxattr(sys.argv[1], 'trusted.overlay.opaque').decode(), end='')"
    assert helpers.check(host, helpers.q("python3", "-c", getxattr, f"{layer3}/opaque")) == "y"
    assert md.ok("fsck").rstrip().endswith("0 problems, 0 debris: clean")


def test_archives_cross_over_with_same_ids(host, md, dockerd, parity_archive, scratch):  # type: ignore[no-untyped-def]
    archive, image_id = parity_archive
    out = scratch("xover")
    # Docker's archive -> minidocker
    dockerd.ok("load", "-i", archive)
    dockerd.ok("save", "-o", f"{out}/docker.tar", TAG)
    md.ok("load", "-i", f"{out}/docker.tar")
    assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
    # minidocker's archive is byte-identical to docker save's, and loads back in dockerd
    md.ok("save", "-o", f"{out}/ours.tar", TAG)
    sums = helpers.check(host, f"sha256sum {out}/docker.tar {out}/ours.tar").split()
    assert sums[0] == sums[2], "minidocker save differs from docker save"
    dockerd.ok("rmi", TAG)
    dockerd.ok("load", "-i", f"{out}/ours.tar")
    assert dockerd.ok("images", "-q", "--no-trunc").split() == [image_id]


def test_import_matches_docker_import(host, md, dockerd, busybox_rootfs_tar, data_root):  # type: ignore[no-untyped-def]
    changes = [
        "-c",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "-c",
        'CMD ["sh"]',
    ]
    theirs = dockerd.ok("import", *changes, busybox_rootfs_tar, "imp:1").strip()
    ours = md.ok("import", *changes, busybox_rootfs_tar, "imp:1").strip()
    a = helpers.check(host, f"python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                      f"[d.pop(k) for k in (\"created\",)]; d[\"history\"][0].pop(\"created\"); print(json.dumps(d, sort_keys=True))' "
                      f"{dockerd.data_root}/image/overlay2/imagedb/content/sha256/{theirs[7:]}")  # fmt: skip
    b = helpers.check(host, f"python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                      f"[d.pop(k) for k in (\"created\",)]; d[\"history\"][0].pop(\"created\"); print(json.dumps(d, sort_keys=True))' "
                      f"{data_root}/image/overlay2/imagedb/content/sha256/{ours[7:]}")  # fmt: skip
    assert a == b
    # the layer itself (diff, size, decoded tar-split, diff/ tree) is identical
    compare(host, dockerd.data_root, data_root, "--layers-only")
    assert host.file(f"{data_root}/image/overlay2/imagedb/metadata/sha256/{ours[7:]}/lastUpdated").exists


def test_dockerd_runs_on_a_copy_of_our_root(host, md, parity_archive, data_root, scratch):  # type: ignore[no-untyped-def]
    archive, image_id = parity_archive
    md.ok("load", "-i", archive)
    md.ok("buildbase")
    root = scratch("dockerd-on-ours")
    daemon = DockerDaemon(host, root)
    helpers.check(host, f"mkdir -p {daemon.root} && cp -a {data_root} {daemon.data_root}")
    try:
        daemon.start()
        listed = daemon.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
        assert f"{TAG} {image_id[7:19]}" in listed
        assert any(line.startswith("busybox:latest ") for line in listed)
        # dockerd reassembles our layers from our tar-split + diff dirs: same bytes as ours
        daemon.ok("save", "-o", f"{root}/from-dockerd.tar", TAG)
        md.ok("save", "-o", f"{root}/from-us.tar", TAG)
        sums = helpers.check(host, f"sha256sum {root}/from-dockerd.tar {root}/from-us.tar").split()
        assert sums[0] == sums[2]
        # and it runs our image: layers, whiteouts and opaque dirs mount as dockerd expects
        out = daemon.ok("run", "--rm", "--network", "none", TAG, "sh", "-c",
                        "cat /data/hello.txt; ls /opaque; test -e /data/to-delete || echo deleted")  # fmt: skip
        assert out == "hello, modified\nnew-content\ndeleted\n"
    finally:
        daemon.cleanup()


def test_we_read_dockerds_root(host, md, dockerd, parity_archive, data_root, scratch):  # type: ignore[no-untyped-def]
    archive, image_id = parity_archive
    dockerd.ok("load", "-i", archive)
    dockerd.ok("tag", TAG, "other:2")
    dockerd.stop()
    helpers.check(host, f"cp -a {dockerd.data_root} {data_root}")
    lines = md.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
    assert f"{TAG} {image_id[7:19]}" in lines and f"other:2 {image_id[7:19]}" in lines
    assert md.ok("fsck").rstrip().endswith("0 problems, 0 debris: clean")
    out = scratch("ours-from-theirs")
    md.ok("save", "-o", f"{out}/a.tar", TAG)
    assert helpers.check(host, f"tar -xOf {out}/a.tar manifest.json").startswith('[{"Config":')
    md.ok("rmi", "other:2")
    md.ok("rmi", TAG)
    assert md.ok("images", "-q") == ""
    assert helpers.check(host, f"ls {data_root}/image/overlay2/layerdb/sha256") == ""


def test_cli_output_matches_docker(host, md, dockerd, parity_archive):  # type: ignore[no-untyped-def]
    archive, image_id = parity_archive
    dockerd.ok("load", "-i", archive)
    md.ok("load", "-i", archive)
    for args in (
        ("images",),
        ("images", "--no-trunc"),
        ("images", "-q"),
        ("images", "--digests"),
        ("images", "--format", "{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Size}}"),
        ("history", TAG),
        ("history", "--no-trunc", TAG),
        ("history", "-q", TAG),
        ("history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", TAG),
    ):
        assert md.ok(*args) == dockerd.ok(*args), f"output of {' '.join(args)} differs"
    theirs = json.loads(dockerd.ok("image", "inspect", TAG))[0]
    ours = json.loads(md.ok("image", "inspect", TAG))[0]
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "DockerVersion",
                "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "RootFS"):  # fmt: skip
        assert ours[key] == theirs[key], key
    assert sorted(ours["GraphDriver"]["Data"]) == sorted(theirs["GraphDriver"]["Data"])
    assert ours["GraphDriver"]["Name"] == theirs["GraphDriver"]["Name"] == "overlay2"
