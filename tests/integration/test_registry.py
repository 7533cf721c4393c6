"""Chapter 5 against a real registry (Debian's ``docker-registry``) and a real dockerd.

push by minidocker -> pull into a fresh root -> run; push by dockerd -> pull by minidocker (same
image ID); the same reference pulled by a fresh dockerd and by minidocker leaves the same files
(imagedb, layerdb, distribution, repositories.json); Basic auth with login/logout; failures exit
125 with one line naming the reference, and leave nothing registered and no temp files.
"""

from __future__ import annotations

import json
import os

from tests.integration import helpers
from tests.integration.helpers import DockerDaemon, Minidocker

DATA = os.path.join(os.path.dirname(__file__), "data")


def fresh_md(host, scratch, what: str, home: str | None = None) -> Minidocker:  # type: ignore[no-untyped-def]
    root = scratch(what)
    env = {"HOME": home or root}
    return Minidocker(host=host, binary=helpers.minidocker_binary(host), data_root=f"{root}/data",
                      exec_root=f"{root}/exec", env=env)  # fmt: skip


def nothing_left(host, data_root: str) -> None:  # type: ignore[no-untyped-def]
    """No image, no layer, no overlay2 dir and no temp file stayed behind."""
    assert helpers.check(host, f"ls -A {data_root}/image/overlay2/imagedb/content/sha256") == ""
    assert helpers.check(host, f"ls -A {data_root}/image/overlay2/layerdb/sha256") == ""
    assert helpers.check(host, f"ls -A {data_root}/overlay2 | grep -v '^l$' || true") == ""
    assert helpers.check(host, f"ls -A {data_root}/tmp") == ""


def one_error_line(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.rc == 125, helpers.describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, helpers.describe(result)
    for n in needles:
        assert n in lines[0], helpers.describe(result)


def test_push_then_pull_into_fresh_root_and_run(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    image_id = md.ok("buildbase").split()[1]
    name = f"{registry.address}/mini/busybox"
    md.ok("tag", "busybox", f"{name}:1")
    out = md.ok("push", f"{name}:1").splitlines()
    assert out[0] == f"The push refers to repository [{name}]"
    assert out[-1].startswith("1: digest: sha256:") and " size: " in out[-1]
    pushed_digest = out[-1].split()[2]
    assert any(line.endswith(": Pushed") for line in out)
    again = md.ok("push", f"{name}:1").splitlines()
    assert any(line.endswith(": Layer already exists") for line in again)
    # push recorded the digest reference and an HMAC'd v2metadata entry, like dockerd
    repos = json.loads(host.file(f"{md.data_root}/image/overlay2/repositories.json").content_string)
    assert repos["Repositories"][name][f"{name}@{pushed_digest}"] == image_id

    other = fresh_md(host, scratch, "pull")
    lines = other.ok("pull", f"{name}:1").splitlines()
    assert lines[0] == "1: Pulling from mini/busybox"
    assert lines[-3:] == [
        f"Digest: {pushed_digest}",
        f"Status: Downloaded newer image for {name}:1",
        f"{name}:1",
    ]
    assert any(line.endswith(": Pull complete") for line in lines)
    assert other.ok("images", "-q", "--no-trunc").split() == [image_id]
    digests = json.loads(other.ok("image", "inspect", "--format", "{{json .RepoDigests}}", f"{name}:1"))
    assert digests == [f"{name}@{pushed_digest}"]
    assert other.ok("run", "--rm", "--network", "none", f"{name}:1", "echo", "pulled").strip() == "pulled"
    up = other.ok("pull", f"{name}:1").splitlines()
    assert up[-2] == f"Status: Image is up to date for {name}:1"
    by_digest = other.ok("pull", f"{name}@{pushed_digest}").splitlines()
    assert by_digest[-1] == f"{name}@{pushed_digest}"
    assert helpers.check(host, f"ls -A {other.data_root}/tmp") == ""


def _dockerd_push(host, dockerd: DockerDaemon, tar: str, name: str) -> str:  # type: ignore[no-untyped-def]
    dockerd.ok("import", "-c", 'CMD ["sh"]', tar, name)
    dockerd.ok("push", name)
    return dockerd.ok("image", "inspect", "--format", "{{.Id}}", name).strip()


def test_dockerd_push_then_pull_parity(host, dockerd, registry, busybox_rootfs_tar, scratch, md):  # type: ignore[no-untyped-def]
    name = f"{registry.address}/spec/busybox:1"
    image_id = _dockerd_push(host, dockerd, busybox_rootfs_tar, name)
    # a fresh dockerd pulls the same reference, and so does minidocker
    fresh = DockerDaemon(host, helpers.make_temp_dir(host, "dockerd-pull"))
    try:
        fresh.start()
        fresh.ok("pull", name)
        fresh.stop()
        md.ok("pull", name, env={"HOME": scratch("home")})
        assert md.ok("images", "-q", "--no-trunc").split() == [image_id]
        result = helpers.run(
            host, helpers.q("python3", f"{DATA}/compare_roots.py", fresh.data_root, md.data_root)
        )
        assert result.rc == 0, helpers.describe(result)
        a, b = f"{fresh.data_root}/image/overlay2", f"{md.data_root}/image/overlay2"
        helpers.check(host, helpers.q("cmp", f"{a}/repositories.json", f"{b}/repositories.json"))
        helpers.check(host, helpers.q("diff", "-r", f"{a}/distribution", f"{b}/distribution"))
        assert helpers.check(host, f"stat -c %a {b}/distribution {b}/repositories.json").split() == [
            "700",
            "600",
        ]
    finally:
        fresh.cleanup()


def test_dockerd_pulls_what_minidocker_pushed(host, dockerd, registry, md, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    image_id = md.ok("buildbase").split()[1]
    name = f"{registry.address}/mini/bb:2"
    md.ok("tag", "busybox", name)
    md.ok("push", name)
    dockerd.ok("pull", name)
    assert dockerd.ok("image", "inspect", "--format", "{{.Id}}", name).strip() == image_id
    assert dockerd.ok("run", "--rm", "--network", "none", name, "echo", "ok").strip() == "ok"


def test_basic_auth_login_logout(host, md, registry_auth, scratch):  # type: ignore[no-untyped-def]
    home = scratch("home")
    md.env["HOME"] = home
    md.ok("buildbase")
    name = f"{registry_auth.address}/private/bb:1"
    md.ok("tag", "busybox", name)
    one_error_line(md.fail("push", name, rc=125), name, "unauthorized")
    bad = md.fail(
        "login", "-u", "mdtest", "--password-stdin", registry_auth.address, stdin="/dev/null", rc=125
    )
    assert "unauthorized" in bad.stderr
    assert not host.file(f"{home}/.minidocker/config.json").exists
    pw = f"{home}/pw"
    helpers.check(host, f"printf s3cret > {pw}")
    out = md.ok("login", "-u", "mdtest", "--password-stdin", registry_auth.address, stdin=pw)
    assert out.strip() == "Login Succeeded"
    cfg = host.file(f"{home}/.minidocker/config.json")
    assert cfg.mode == 0o600
    auths = json.loads(cfg.content_string)["auths"]
    assert auths == {registry_auth.address: {"auth": "bWR0ZXN0OnMzY3JldA=="}}
    md.ok("push", name)
    other = fresh_md(host, scratch, "pull-auth", home=home)
    other.ok("pull", name)
    out = md.ok("logout", registry_auth.address)
    assert out.strip() == f"Removing login credentials for {registry_auth.address}"
    assert json.loads(cfg.content_string)["auths"] == {}
    third = fresh_md(host, scratch, "pull-noauth", home=home)
    one_error_line(third.fail("pull", name, rc=125), name, "unauthorized")
    nothing_left(host, third.data_root)


def test_failures_exit_125_and_leave_nothing(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    md.ok("buildbase")
    name = f"{registry.address}/mini/bb"
    md.ok("tag", "busybox", f"{name}:1")
    out = md.ok("push", f"{name}:1")
    blob = next(line for line in out.splitlines() if line.endswith(": Pushed"))
    puller = fresh_md(host, scratch, "fail")
    one_error_line(puller.fail("pull", f"{name}:nope", rc=125), f"{name}:nope", "manifest unknown")
    one_error_line(puller.fail("pull", f"{registry.address}/no/such", rc=125), "no/such")
    one_error_line(puller.fail("pull", "127.0.0.1:1/x:1", rc=125), "127.0.0.1:1/x:1", "connection refused")
    # tamper with the layer blob in the registry's storage (same size, different bytes)
    del blob
    layer = helpers.check(
        host,
        f"find {registry.root}/storage/docker/registry/v2/blobs -name data -size +100k",
    ).split()
    assert len(layer) == 1
    helpers.check(host, f"printf X | dd of={layer[0]} bs=1 seek=100 conv=notrunc status=none")
    r = puller.fail("pull", f"{name}:1", rc=125)
    one_error_line(r, f"{name}:1", "filesystem layer verification failed for digest")
    nothing_left(host, puller.data_root)
    assert (
        helpers.check(host, f"cat {puller.data_root}/image/overlay2/repositories.json")
        == '{"Repositories":{}}'
    )


def test_index_with_two_platforms(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    md.env["HOME"] = scratch("home")
    image_id = md.ok("buildbase").split()[1]
    repo = f"{registry.address}/mini/multi"
    md.ok("tag", "busybox", f"{repo}:single")
    out = md.ok("push", f"{repo}:single").splitlines()[-1].split()
    mdigest, msize = out[2], int(out[4])
    mt = "application/vnd.docker.distribution.manifest.v2+json"
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": mt, "size": msize, "digest": mdigest,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": mt, "size": msize, "digest": mdigest,
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    })  # fmt: skip
    d = scratch("index")
    helpers.check(host, f"printf %s {helpers.q(index)} > {d}/index.json")
    helpers.check(host, helpers.q(
        "curl", "-fsS", "-X", "PUT", "-H", "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json",
        "--data-binary", f"@{d}/index.json", f"http://{registry.address}/v2/mini/multi/manifests/list"))  # fmt: skip
    index_digest = "sha256:" + helpers.check(host, f"sha256sum < {d}/index.json").split()[0]
    puller = fresh_md(host, scratch, "multi")
    arch = helpers.check(host, "uname -m").strip()
    if arch in ("x86_64", "aarch64"):
        lines = puller.ok("pull", f"{repo}:list").splitlines()
        assert f"Digest: {index_digest}" in lines  # the list's digest, as Docker records it
        assert puller.ok("images", "-q", "--no-trunc").split() == [image_id]
        repos = json.loads(host.file(f"{puller.data_root}/image/overlay2/repositories.json").content_string)
        assert repos["Repositories"][repo] == {f"{repo}:list": image_id, f"{repo}@{index_digest}": image_id}
    one_error_line(
        puller.fail("pull", "--platform", "linux/s390x", f"{repo}:list", rc=125),
        "no matching manifest for linux/s390x in the manifest list entries",
    )


def _import_image(host, md, scratch, name: str, size_mib: int = 0, text: str = "") -> str:  # type: ignore[no-untyped-def]
    """A one-layer image from a tar made here: random bytes (``size_mib``) and/or a text file."""
    d = scratch("img")
    helpers.check(host, f"mkdir {d}/rootfs && printf %s {helpers.q(text or name)} > {d}/rootfs/what.txt")
    if size_mib:
        helpers.check(host, f"head -c {size_mib}M /dev/urandom > {d}/rootfs/random.bin")
    helpers.check(host, f"tar -C {d}/rootfs -cf {d}/layer.tar .")
    return md.ok("import", f"{d}/layer.tar", name).strip()


def _access_log(registry) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    """(method, URI, status) of every request in the registry's access log."""
    import re

    text = helpers.check(registry.host, f"cat {registry.root}/registry.log")
    return [(m[1], m[2], int(m[3])) for m in re.finditer(r'"([A-Z]+) (\S+) HTTP/1\.1" (\d{3}) ', text)]


def test_push_all_tags_chunked_monolithic_head_and_mount(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    """``push -a``: every tag once; a layer over one 16 MiB chunk goes up in several PATCHes, a
    small blob in the closing PUT; blobs the registry has are skipped after a HEAD; a second
    repository mounts the blobs of the first instead of uploading them."""
    from urllib.parse import unquote

    md.env["HOME"] = scratch("home")
    small_id = md.ok("buildbase").split()[1]
    repo = f"{registry.address}/mini/alltags"
    big_id = _import_image(host, md, scratch, f"{repo}:big", size_mib=20)
    md.ok("tag", "busybox", f"{repo}:small")
    md.ok("tag", "busybox", f"{repo}:small2")
    md.ok("tag", "busybox", f"{registry.address}/mini/other:x")  # another repository: not pushed
    one_error_line(md.fail("push", "-a", f"{repo}:big", rc=125), "tag can't be used with --all-tags/-a")
    out = md.ok("push", "--all-tags", repo).splitlines()
    assert out[0] == f"The push refers to repository [{repo}]" and out.count(out[0]) == 1
    digests = {line.split(":")[0]: line.split()[2] for line in out if ": digest: sha256:" in line}
    assert list(digests) == ["big", "small", "small2"]  # sorted, like moby's ReferencesByName
    assert digests["small"] == digests["small2"]
    assert sum(1 for line in out if line.endswith(": Pushed")) == 2
    assert any(line.endswith(": Layer already exists") for line in out)  # small2 after small

    log = _access_log(registry)
    uploads: dict[str, list[str]] = {}  # upload UUID -> methods
    committed: dict[str, str] = {}  # blob digest -> upload UUID
    for method, uri, _status in log:
        if "/mini/alltags/blobs/uploads/" not in uri or method not in ("PATCH", "PUT"):
            continue
        uuid = uri.split("/blobs/uploads/")[1].split("?")[0]
        uploads.setdefault(uuid, []).append(method)
        if method == "PUT":
            committed[unquote(uri.split("digest=")[1].split("&")[0])] = uuid
    assert len(committed) == 4  # two layers, two configs
    layer_blobs = json.loads(helpers.check(host, helpers.q(
        "curl", "-fsS", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
        f"http://{registry.address}/v2/mini/alltags/manifests/big")))["layers"]  # fmt: skip
    big_blob = layer_blobs[0]["digest"]
    assert layer_blobs[0]["size"] > 16 << 20
    assert uploads[committed[big_blob]] == ["PATCH", "PATCH", "PUT"]  # chunked
    small_uploads = [uploads[u] for d, u in committed.items() if d != big_blob]
    assert small_uploads == [["PUT"]] * 3  # monolithic: the data rides on the PUT
    assert ("HEAD", f"/v2/mini/alltags/blobs/{big_blob}", 404) in log

    # a pull of each tag into a fresh root gives the pushed images back
    puller = fresh_md(host, scratch, "alltags-pull")
    puller.ok("pull", f"{repo}:big")
    puller.ok("pull", f"{repo}:small")
    assert sorted(puller.ok("images", "-q", "--no-trunc").split()) == sorted([big_id, small_id])

    # cross-repository mount: no data sent for the 20 MiB layer
    md.ok("tag", f"{repo}:big", f"{registry.address}/mini/mounted:1")
    out = md.ok("push", f"{registry.address}/mini/mounted:1").splitlines()
    assert any(line.endswith(": Mounted from mini/alltags") for line in out), out
    log = _access_log(registry)
    assert any(m == "POST" and uri.startswith("/v2/mini/mounted/blobs/uploads/?mount=") and "from=mini%2Falltags" in uri
               and st == 201 for m, uri, st in log)  # fmt: skip
    assert not any(m == "PATCH" and "/mini/mounted/" in uri for m, uri, _ in log)


def test_manifest_list_of_two_images_platform_selection(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    """A Docker manifest list and an OCI index, each naming two different images (amd64, arm64
    without a variant), picked by ``--platform`` (default: the host) with containerd's
    normalisation; no match is one line naming the reference, with nothing registered."""
    md.env["HOME"] = scratch("home")
    amd_id = md.ok("buildbase").split()[1]
    repo = f"{registry.address}/mini/plat"
    arm_id = _import_image(host, md, scratch, f"{repo}:arm", text="arm64 image")
    md.ok("tag", "busybox", f"{repo}:amd")
    pushed = {}
    for tag in ("amd", "arm"):
        last = md.ok("push", f"{repo}:{tag}").splitlines()[-1].split()
        pushed[tag] = (last[2], int(last[4]))
    mt = "application/vnd.docker.distribution.manifest.v2+json"

    def entry(tag: str, plat: dict[str, str]) -> dict[str, object]:
        return {"mediaType": mt, "digest": pushed[tag][0], "size": pushed[tag][1], "platform": plat}

    d = scratch("lists")
    lists = {
        "list": ("application/vnd.docker.distribution.manifest.list.v2+json",
                 [entry("arm", {"architecture": "arm64", "os": "linux"}),
                  entry("amd", {"architecture": "amd64", "os": "linux"})]),
        "index": ("application/vnd.oci.image.index.v1+json",
                  [entry("amd", {"architecture": "amd64", "os": "linux"}),
                   entry("arm", {"architecture": "arm64", "os": "linux", "variant": "v8"})]),
    }  # fmt: skip
    digests = {}
    for tag, (media, items) in lists.items():
        body = json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": items})
        helpers.check(host, f"printf %s {helpers.q(body)} > {d}/{tag}.json")
        helpers.check(host, helpers.q("curl", "-fsS", "-X", "PUT", "-H", f"Content-Type: {media}", "--data-binary",
                                      f"@{d}/{tag}.json", f"http://{registry.address}/v2/mini/plat/manifests/{tag}"))  # fmt: skip
        digests[tag] = "sha256:" + helpers.check(host, f"sha256sum < {d}/{tag}.json").split()[0]

    arch = helpers.check(host, "uname -m").strip()
    host_id = {"x86_64": amd_id, "aarch64": arm_id}.get(arch)
    for tag in ("list", "index"):
        if host_id is not None:
            p = fresh_md(host, scratch, f"plat-{tag}-default")
            lines = p.ok("pull", f"{repo}:{tag}").splitlines()
            assert f"Digest: {digests[tag]}" in lines  # the list's digest, as Docker records it
            assert p.ok("images", "-q", "--no-trunc").split() == [host_id]
        for spec in ("linux/arm64", "linux/arm64/v8", "linux/aarch64"):
            p = fresh_md(host, scratch, f"plat-{tag}-arm")
            p.ok("pull", "--platform", spec, f"{repo}:{tag}")
            assert p.ok("images", "-q", "--no-trunc").split() == [arm_id], (tag, spec)
            repos = json.loads(host.file(f"{p.data_root}/image/overlay2/repositories.json").content_string)
            assert repos["Repositories"][repo] == {f"{repo}:{tag}": arm_id, f"{repo}@{digests[tag]}": arm_id}
        p = fresh_md(host, scratch, f"plat-{tag}-amd")
        p.ok("pull", "--platform", "linux/amd64", f"{repo}:{tag}")
        assert p.ok("images", "-q", "--no-trunc").split() == [amd_id]
        p = fresh_md(host, scratch, f"plat-{tag}-none")
        for spec, shown in (("linux/arm/v7", "linux/arm/v7"), ("linux/arm64/v9", "linux/arm64/v9"),
                            ("windows/amd64", "windows/amd64")):  # fmt: skip
            one_error_line(p.fail("pull", "--platform", spec, f"{repo}:{tag}", rc=125), f"{repo}:{tag}",
                           f"no matching manifest for {shown} in the manifest list entries")  # fmt: skip
        nothing_left(host, p.data_root)
    one_error_line(md.fail("pull", "--platform", "linux/x/y/z", f"{repo}:list", rc=125),
                   "unknown operating system or architecture")  # fmt: skip


def test_schema1_and_malformed_manifests_from_the_registry(host, md, registry, scratch):  # type: ignore[no-untyped-def]
    """The registry serves what its storage holds: a schema 1 document (which it signs on the way
    out) and a schema 2 manifest that is also a list. Both are refused with one line naming the
    reference, and nothing is registered."""
    md.env["HOME"] = scratch("home")
    md.ok("buildbase")
    repo = f"{registry.address}/mini/bad"
    md.ok("tag", "busybox", f"{repo}:1")
    md.ok("push", f"{repo}:1")
    base = f"http://{registry.address}/v2/mini/bad/manifests"
    mt = "application/vnd.docker.distribution.manifest.v2+json"
    good = json.loads(helpers.check(host, helpers.q("curl", "-fsS", "-H", f"Accept: {mt}", f"{base}/1")))
    d = scratch("bad")
    docs = {"both": json.dumps({**good, "manifests": []}), "s1": json.dumps(good, indent=1)}
    for tag, body in docs.items():
        helpers.check(host, f"printf %s {helpers.q(body)} > {d}/{tag}.json")
        helpers.check(host, helpers.q("curl", "-fsS", "-X", "PUT", "-H", f"Content-Type: {mt}", "--data-binary",
                                      f"@{d}/{tag}.json", f"{base}/{tag}"))  # fmt: skip
    # turn the stored "s1" manifest into a schema 1 document behind the registry's back
    s1 = helpers.check(host, f"sha256sum < {d}/s1.json").split()[0]
    schema1 = json.dumps({"schemaVersion": 1, "name": "mini/bad", "tag": "s1", "architecture": "amd64",
                          "fsLayers": [], "history": []})  # fmt: skip
    helpers.check(host, f"printf %s {helpers.q(schema1)} > "
                        f"{registry.root}/storage/docker/registry/v2/blobs/sha256/{s1[:2]}/{s1}/data")  # fmt: skip
    served = helpers.check(
        host, helpers.q("curl", "-fsS", "-o", "/dev/null", "-w", "%{content_type}", f"{base}/s1")
    )
    assert served == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    puller = fresh_md(host, scratch, "bad-pull")
    one_error_line(puller.fail("pull", f"{repo}:s1", rc=125), f"{repo}:s1", "schema 1 support is disabled")
    one_error_line(puller.fail("pull", f"{repo}:both", rc=125), f"{repo}:both",
                   "malformed manifest: has both 'manifests' and 'layers'/'config'")  # fmt: skip
    nothing_left(host, puller.data_root)
