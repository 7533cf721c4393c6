"""The image commands as a user meets them: output, exit codes, bad input, crashes, the trace."""

from __future__ import annotations

import json

import pytest

from tests.integration import helpers


def layer_dirs(host, data_root: str) -> list[str]:  # type: ignore[no-untyped-def]
    return helpers.check(host, f"ls -A {data_root}/image/overlay2/layerdb/sha256").split()


def assert_nothing_registered(host, data_root: str) -> None:  # type: ignore[no-untyped-def]
    img = f"{data_root}/image/overlay2"
    assert (
        helpers.check(
            host,
            f"ls -A {img}/layerdb/sha256 {img}/layerdb/tmp {img}/imagedb/content/sha256 {data_root}/tmp | grep -v ':$' | grep -v '^$' || true",
        )
        == ""
    )
    assert helpers.check(host, f"ls -A {data_root}/overlay2 | grep -v '^l$' || true") == ""
    assert json.loads(host.file(f"{img}/repositories.json").content_string) == {"Repositories": {}}


def test_buildbase_images_history_inspect(host, md, data_root):  # type: ignore[no-untyped-def]
    out = md.ok("buildbase")
    assert out.startswith("busybox:latest sha256:")
    image_id = out.split()[1]
    lines = md.ok("images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", image_id[7:19]]
    assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
    info = json.loads(md.ok("image", "inspect", "busybox"))[0]
    assert info["Id"] == image_id and info["RepoTags"] == ["busybox:latest"]
    assert info["Config"]["Cmd"] == ["sh"] and info["GraphDriver"]["Name"] == "overlay2"
    assert host.file(info["GraphDriver"]["Data"]["UpperDir"] + "/bin/busybox").mode == 0o755
    hist = md.ok("history", "busybox").splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and hist[1].startswith(image_id[7:19])
    # the base image is deterministic: a second build gives the same layer
    first_layers = layer_dirs(host, data_root)
    md.ok("buildbase")
    assert layer_dirs(host, data_root) == first_layers


def test_tag_and_rmi_semantics(host, md, data_root):  # type: ignore[no-untyped-def]
    image_id = md.ok("buildbase").split()[1]
    md.ok("tag", "busybox", "mine/bb:1")
    assert host.file(f"{data_root}/image/overlay2/imagedb/metadata/sha256/{image_id[7:]}/lastUpdated").exists
    # removing one of two names only untags
    assert md.ok("rmi", "mine/bb:1").splitlines() == ["Untagged: mine/bb:1"]
    md.ok("tag", "busybox", "mine/bb:1")
    r = md.fail("rmi", image_id[7:19], rc=1)
    assert "must be forced" in r.stderr and "multiple repositories" in r.stderr
    lines = md.ok("rmi", "-f", image_id[7:19]).splitlines()
    assert "Untagged: busybox:latest" in lines and "Untagged: mine/bb:1" in lines
    assert f"Deleted: {image_id}" in lines
    assert md.ok("images", "-q") == ""
    assert layer_dirs(host, data_root) == []
    assert helpers.check(host, f"ls -A {data_root}/overlay2").split() == ["l"]
    r = md.fail("rmi", "busybox", rc=1)
    assert "No such image: busybox" in r.stderr


def test_unknown_image_and_bad_reference(md):  # type: ignore[no-untyped-def]
    r = md.fail("history", "nope:1", rc=125)
    assert r.stderr.strip() == "Error: No such image: nope:1"
    r = md.fail("tag", "nope", "UPPER/case", rc=125)
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "kind",
    ["not-a-tar", "truncated", "corrupt-gzip", "diffid-mismatch", "path-traversal", "breakout-layer"],
)
def test_bad_archives_change_nothing(host, md, data_root, scratch, busybox_rootfs_tar, kind):  # type: ignore[no-untyped-def]
    d = scratch("bad")
    md.ok("images")  # create the empty data root first
    bad = f"{d}/bad.tar"
    good = f"{d}/good.tar"
    md2 = helpers.Minidocker(host, md.binary, f"{d}/src", f"{d}/srcexec")
    md2.ok("import", busybox_rootfs_tar, "src:1")
    md2.ok("save", "-o", good, "src:1")
    if kind == "not-a-tar":
        helpers.check(host, f"head -c 4096 /dev/urandom > {bad}")
    elif kind == "truncated":
        helpers.check(host, f"head -c 1000000 {good} > {bad}")
    elif kind == "corrupt-gzip":
        helpers.check(
            host,
            f"gzip -c {good} > {bad}.gz && python3 -c \"import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[len(b)//2]^=0xff; open(sys.argv[2],'wb').write(b)\" {bad}.gz {bad}",
        )
    elif kind in ("diffid-mismatch", "path-traversal", "breakout-layer"):
        helpers.check(host, f"mkdir {d}/x && tar -xf {good} -C {d}/x")
        if kind == "diffid-mismatch":
            helpers.check(
                host,
                f"cd {d}/x && for f in */layer.tar; do printf 'extra' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null; done",
            )
        elif kind == "path-traversal":
            helpers.check(
                host,
                f'cd {d}/x && sed -i \'s#"Layers":\\["#"Layers":["../../../etc/passwd","#\' manifest.json',
            )
        else:
            # a layer whose entries reach outside: the victim must survive, nothing registered
            helpers.check(host, f"mkdir -p {d}/victim && echo precious > {d}/victim/hello")
            script = (
                "import io,sys,tarfile\n"
                "t=tarfile.open(sys.argv[1],'w')\n"
                "i=tarfile.TarInfo('loophole'); i.type=tarfile.SYMTYPE; i.linkname=sys.argv[2]; t.addfile(i)\n"
                "i=tarfile.TarInfo('loophole/hello'); i.size=5; t.addfile(i, io.BytesIO(b'pwned'))\n"
                "t.close()\n"
            )
            helpers.check(host, helpers.q("python3", "-c", script, f"{d}/evil.tar", f"{d}/victim"))
            helpers.check(host, f"cd {d}/x && for f in */layer.tar; do cp {d}/evil.tar $f; done")
        helpers.check(host, f"cd {d}/x && tar -cf {bad} .")
    r = md.fail("load", "-i", bad, rc=125)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: ")
    assert_nothing_registered(host, data_root)
    if kind == "breakout-layer":
        assert host.file(f"{d}/victim/hello").content_string == "precious\n"
    assert md.ok("fsck").rstrip().endswith("debris: clean")


def test_kill_9_during_load_then_fsck_repairs_and_rerun_succeeds(host, md, data_root, scratch):  # type: ignore[no-untyped-def]
    d = scratch("kill9")
    # a ~120 MB, 2-layer image so that a load takes long enough to be killed midway
    src = helpers.Minidocker(host, md.binary, f"{d}/src", f"{d}/srcexec")
    helpers.check(host, f"mkdir -p {d}/t1/big {d}/t2 && head -c 60000000 /dev/urandom > {d}/t1/big/a && "
                        f"for i in $(seq 1 2000); do echo $i > {d}/t2/f$i; done && "
                        f"head -c 60000000 /dev/urandom > {d}/t2/b && tar -cf {d}/l1.tar -C {d}/t1 . && tar -cf {d}/l2.tar -C {d}/t2 .")  # fmt: skip
    src.ok("import", f"{d}/l1.tar", "big:1")
    src.ok("save", "-o", f"{d}/big.tar", "big:1")
    md.ok("images")
    for delay in ("0.05", "0.15", "0.3", "0.5"):
        helpers.run(
            host,
            f"{md.command('load', '-i', f'{d}/big.tar')} & pid=$!; sleep {delay}; kill -9 $pid; wait $pid; true",
        )
        md.ok("fsck", "--repair")
        assert md.ok("fsck").rstrip().endswith("0 problems, 0 debris: clean")
        assert helpers.mounts_under(host, data_root) == []
    assert md.ok("load", "-i", f"{d}/big.tar").strip() == "Loaded image: big:1"
    assert md.ok("fsck").rstrip().endswith("0 problems, 0 debris: clean")


def test_trace_narrates_the_store_steps(md, busybox_rootfs_tar):  # type: ignore[no-untyped-def]
    r = md("import", busybox_rootfs_tar, "traced:1", trace=True)
    assert r.rc == 0
    events = [line[len("trace: ") :] for line in r.stderr.splitlines() if line.startswith("trace: ")]
    assert any(e.startswith("overlay2 create ") for e in events)
    assert any(e.startswith("diffID = sha256(layer tar) = sha256:") for e in events)
    assert any("/image/overlay2/imagedb/content/sha256/" in e and e.startswith("write ") for e in events)
    assert any("repositories.json" in e for e in events)


def test_load_from_stdin_gzip_and_save_to_stdout(host, md, scratch, busybox_rootfs_tar):  # type: ignore[no-untyped-def]
    d = scratch("stdio")
    image_id = md.ok("import", busybox_rootfs_tar, "stdio:1").strip()
    helpers.check(host, f"{md.command('save', 'stdio:1')} > {d}/a.tar")
    helpers.check(host, f"{md.command('save', '-o', f'{d}/b.tar', 'stdio:1')}")
    assert host.file(f"{d}/a.tar").sha256sum == host.file(f"{d}/b.tar").sha256sum
    helpers.check(host, f"gzip -c {d}/a.tar > {d}/a.tar.gz")
    md.ok("rmi", "stdio:1")
    assert md.ok("load", stdin=f"{d}/a.tar.gz").strip() == "Loaded image: stdio:1"
    assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
    md.ok("rmi", "stdio:1")
    # -q hides progress only: Docker still prints what it loaded
    assert md.ok("load", "-q", "-i", f"{d}/a.tar").strip() == "Loaded image: stdio:1"
    assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
