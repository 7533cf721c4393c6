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
