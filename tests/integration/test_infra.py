"""The integration fixtures themselves: scratch dirs, ``md``, a real dockerd, the busybox tar.

If these fail, every other integration test is suspect, so they check the machine too:
overlayfs upper dirs work in the scratch area, dockerd starts on throwaway roots, ``docker
import/load/save/images/run`` work, and cleanup leaves no process, mount, cgroup or dir behind.
"""

from __future__ import annotations

import json

import pytest

from tests.integration import helpers
from tests.integration.helpers import DockerDaemon


def test_scratch_supports_overlay_and_cleans_mounts(host, scratch):
    root = scratch("infra")
    host.run_expect([0], f"mkdir -p {root}/lower {root}/upper {root}/work {root}/merged")
    host.run_expect([0], f"echo lower > {root}/lower/a")
    opts = f"lowerdir={root}/lower,upperdir={root}/upper,workdir={root}/work"
    host.run_expect([0], f"mount -t overlay overlay -o {opts} {root}/merged")
    host.run_expect([0], f"echo upper > {root}/merged/b")
    assert host.mount_point(f"{root}/merged").filesystem == "overlay"
    assert host.file(f"{root}/upper/b").content_string == "upper\n"
    host.run_expect([0], f"mkdir {root}/merged/t && mount -t tmpfs tmpfs {root}/merged/t")

    helpers.remove_tree(host, root)  # what the fixture does at teardown, even after a failure
    assert not host.file(root).exists
    assert helpers.mounts_under(host, root) == []


def test_remove_tree_refuses_non_scratch_paths(host):
    for bad in ("/", "/var/tmp", "/var/lib/docker", "/var/tmp/mdtest-x/../..", "relative/mdtest-x"):
        with pytest.raises(ValueError):
            helpers.remove_tree(host, bad)


def test_md_runs_the_cli_against_its_own_roots(host, md, data_root, exec_root):
    assert not host.file(data_root).exists  # fresh, and created by minidocker itself
    out = md.ok("--help")
    assert "--data-root" in out
    result = md.fail("no-such-verb")
    assert result.rc != 0
    assert md.command("images") == (f"{md.binary} --data-root {data_root} --exec-root {exec_root} images")
    with pytest.raises(helpers.CommandFailed):
        md.ok("no-such-verb")


def test_busybox_rootfs_tar(host, busybox_rootfs_tar):
    listing = host.run_expect([0], f"tar -tvf {busybox_rootfs_tar}").stdout
    names = {line.split()[5] for line in listing.splitlines()}
    assert {"./bin/busybox", "./bin/sh", "./etc/passwd", "./tmp/"} <= names
    assert (
        "root:x:0:0:root:/root:/bin/sh"
        in host.run_expect([0], f"tar -xOf {busybox_rootfs_tar} ./etc/passwd").stdout
    )
    # deterministic: owners 0/0, mtime 0
    assert all(" root/root " in line or " 0/0 " in line for line in listing.splitlines())


def test_dockerd_import_save_load_images(host, dockerd, busybox_rootfs_tar):
    assert dockerd.ok("info", "--format", "{{.DockerRootDir}}").strip() == dockerd.data_root
    assert dockerd.ok("info", "--format", "{{.Driver}}").strip() == "overlay2"

    image_id = dockerd.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest").strip()
    assert image_id.startswith("sha256:")
    hexid = image_id.split(":", 1)[1]
    assert dockerd.ok("images", "-q", "--no-trunc").split() == [image_id]

    # files in the daemon's own data root, as minidocker's parity tests will compare them
    content = host.file(f"{dockerd.data_root}/image/overlay2/imagedb/content/sha256/{hexid}")
    assert content.exists and content.mode == 0o600
    repos = json.loads(host.file(f"{dockerd.data_root}/image/overlay2/repositories.json").content_string)
    assert repos["Repositories"]["busybox"]["busybox:latest"] == image_id

    saved = f"{dockerd.root}/saved.tar"
    dockerd.ok("save", "-o", saved, "busybox:latest")
    members = host.run_expect([0], f"tar -tf {saved}").stdout.split()
    assert "manifest.json" in members and f"{hexid}.json" in members

    dockerd.ok("rmi", "busybox:latest")
    assert dockerd.ok("images", "-q").strip() == ""
    out = dockerd.ok("load", stdin=saved)
    assert "Loaded image: busybox:latest" in out
    assert dockerd.ok("images", "-q", "--no-trunc").split() == [image_id]


def test_dockerd_runs_containers(dockerd, busybox_rootfs_tar):
    """runc works on this machine: a real container runs and prints."""
    dockerd.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "busybox:latest")
    out = dockerd.ok(
        "run", "--rm", "--network", "none", "busybox:latest", "sh", "-c", "echo hi from $(hostname)"
    )
    assert out.startswith("hi from ")


def test_dockerd_stop_keeps_data_root_then_restart(host, dockerd, busybox_rootfs_tar):
    image_id = dockerd.ok("import", busybox_rootfs_tar, "kept:1").strip()
    dockerd.stop()
    assert not dockerd.is_running()
    assert helpers.processes_mentioning(host, dockerd.root) == []
    assert helpers.mounts_under(host, dockerd.root) == []
    # idle data root, ready for byte comparison
    assert host.file(f"{dockerd.data_root}/image/overlay2/repositories.json").contains("kept:1")
    assert host.file(f"{dockerd.data_root}/overlay2/l").is_directory

    dockerd.start()
    assert dockerd.ok("images", "-q", "--no-trunc").split() == [image_id]


def test_dockerd_cleanup_leaves_nothing(host, busybox_rootfs_tar):
    daemon = DockerDaemon(host, helpers.make_temp_dir(host, "dockerd-cleanup"))
    try:
        daemon.start()
        daemon.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "bb:cleanup")
        # a running container with a network namespace and overlay mount, killed by teardown
        cid = daemon.ok("run", "-d", "--network", "none", "bb:cleanup", "sleep", "4711").strip()
        assert daemon.ok("inspect", "-f", "{{.State.Running}}", cid).strip() == "true"
        assert helpers.mounts_under(host, daemon.root), "expected overlay/netns mounts while running"
        assert daemon.cgroup_pids(), "expected the container in the daemon's private cgroup"
        assert helpers.processes_mentioning(host, daemon.root)
    finally:
        daemon.cleanup()

    assert not host.file(daemon.root).exists
    assert helpers.mounts_under(host, daemon.root) == []
    assert helpers.processes_mentioning(host, daemon.root) == []
    assert helpers.processes_mentioning(host, "sleep 4711") == []
    assert daemon.cgroup_dirs() == []
    # (no check of `ip netns list`: dockerd keeps its netns under its exec root, covered by
    # mounts_under above, and other tests' containers come and go there meanwhile under xdist)


def test_the_provisioned_command_starts_python_without_site(host):
    """scripts/provision.sh writes the ``minidocker`` command on PATH in place of pip's console
    script: the venv's interpreter with ``-S`` (no ``site``: ~1.5 ms of every command), and in
    ``sys.path`` exactly the directories site would have added, so every import resolves as before."""
    found = host.run("readlink -e /usr/local/bin/minidocker")  # (tox puts its env's first on PATH)
    if found.rc != 0:
        pytest.skip("no /usr/local/bin/minidocker (scripts/provision.sh links it)")
    lines = host.file(found.stdout.strip()).content_string.splitlines()
    if "provision.sh" not in "\n".join(lines[:3]):
        pytest.skip("/usr/local/bin/minidocker is not the provisioned command")
    interpreter, flag = lines[0][2:].split()
    assert flag == "-S"
    (added,) = [line for line in lines if line.startswith("sys.path += ")]
    probe = "import json, sys; print(json.dumps(sys.path))"
    with_site = json.loads(host.check_output(f"{interpreter} -c '{probe}'"))
    without = json.loads(host.check_output(f"{interpreter} -S -c '{probe}'"))
    assert eval(added.removeprefix("sys.path += ")) == [p for p in with_site if p and p not in without]
    assert host.check_output("/usr/local/bin/minidocker --version").startswith("minidocker, version")
