"""``minidocker --trace``: every kernel and store step, one line each, in order, real arguments.

What the labs point students to, so its narration is asserted here as a student would read it:
``run`` on the default bridge with a published port (overlay mount, cgroup, unshare, veth,
iptables DNAT, pivot_root, execve, then the teardown), ``load``, ``import`` and ``pull`` (untar,
registry GETs, diffID, layerdb, distribution metadata, imagedb, repositories.json) and ``build``
(a chainID line whose arithmetic the test redoes). Traffic: only to the test's own registry on
127.0.0.1; the published port is on 127.0.0.1 and nothing connects to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import Minidocker

pytestmark = pytest.mark.root

H64 = "[0-9a-f]{64}"


@pytest.fixture
def tmd(md: Minidocker, host: Any) -> Iterator[Minidocker]:
    """``md`` with busybox; afterwards nothing of this data root is left running or wired."""
    md.ok("buildbase")
    yield md
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    md("network", "prune", "-f")
    assert helpers.processes_mentioning(host, md.data_root) == []


def events(result: Any) -> list[str]:
    assert result.rc == 0, helpers.describe(result)
    return [line[len("trace: ") :] for line in result.stderr.splitlines() if line.startswith("trace: ")]


def in_order(lines: Sequence[str], patterns: Sequence[str]) -> list[re.Match[str]]:
    """Match each regex on a line after the previous pattern's line; return the matches."""
    found, at = [], 0
    for pattern in patterns:
        rx = re.compile(pattern)
        for i in range(at, len(lines)):
            m = rx.search(lines[i])
            if m:
                found.append(m)
                at = i + 1
                break
        else:
            context = "\n".join(lines[max(0, at - 3) : at + 40])
            raise AssertionError(f"no line matching {pattern!r} after line {at}; from there:\n{context}")
    return found


def _free_port(host: Any) -> int:
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    return int(host.run_expect([0], f'python3 -c "{code}"').stdout)


def test_run_on_the_bridge_with_a_published_port(tmd: Minidocker, host: Any) -> None:
    port = _free_port(host)
    lines = events(tmd("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true", trace=True))
    root = re.escape(tmd.data_root)
    steps = {
        "create": rf"^write {root}/containers/({H64})/config\.v2\.json \(\d+ bytes\)$",
        "init layer": rf"^overlay2 create ({H64})-init parent={H64}$",
        # the container's root: the image's layers (l/ links) under its own upper and work dirs
        "overlay": rf'^mount\("overlay", "{root}/overlay2/({H64})/merged", "overlay", 0, '
        rf'"[^"]*lowerdir={root}/overlay2/l/[A-Z0-9]{{26}}:{root}/overlay2/l/[A-Z0-9]{{26}},'
        rf'upperdir={root}/overlay2/{H64}/diff,workdir={root}/overlay2/{H64}/work"\)$',
        "cgroup": rf"^mkdir /sys/fs/cgroup/(?:\w+/)?minidocker/({H64})$",
        "unshare": r"^unshare\(CLONE_NEWNS\|CLONE_NEWUTS\|CLONE_NEWIPC\|CLONE_NEWPID\|CLONE_NEWNET\)$",
        "join cgroup": rf"^write /sys/fs/cgroup/(?:\w+/)?minidocker/{H64}/cgroup\.procs = (\d+)$",
        "bridge": r"^RTM_NEWLINK bridge (mdbr[0-9a-f]{10}) mtu 1500$",
        "bridge rules": r"^iptables -t nat -A MINIDOCKER -i (mdbr[0-9a-f]{10}) -j RETURN$",
        "veth": r"^RTM_NEWLINK veth (veth[0-9a-f]{7})\b.* netns /proc/(\d+)/ns/net$",
        "address": r"^RTM_NEWADDR ([\d.]+)/\d+ dev eth0 \(netns of (\d+)\)$",
        "dnat": rf"^iptables -t nat -A MINIDOCKER -d 127\.0\.0\.1/32 '?!'? -i (mdbr[0-9a-f]{{10}}) -p tcp -m tcp "
        rf"--dport {port} -j DNAT --to-destination ([\d.]+):80$",
        "hostname": r'^sethostname\("[0-9a-f]{12}"\)$',
        "pivot_root": r'^pivot_root\("\.", "\."\)$',
        "seccomp": r"^seccomp\(SECCOMP_SET_MODE_FILTER, ",
        "capset": r"^capset\(effective=0x[0-9a-f]+, ",
        "exec": r'^execve\("/bin/true", \[\'true\'\], ',
        "exit": r"^container [0-9a-f]{12} exited with 0$",
        "leave cgroup": rf"^rmdir /sys/fs/cgroup/(?:\w+/)?minidocker/({H64})$",
        "unmount": rf'^umount2\("{root}/overlay2/({H64})/merged", MNT_DETACH\)$',
        "undnat": rf"^iptables -t nat -D MINIDOCKER -d 127\.0\.0\.1/32 .* --dport {port} -j DNAT ",
        "bridge gone": r"^RTM_DELLINK (mdbr[0-9a-f]{10})$",
        "removed": rf"^removed container ({H64})$",
    }
    m = dict(zip(steps, in_order(lines, list(steps.values())), strict=True))
    cid, mount_id, bridge = m["create"].group(1), m["overlay"].group(1), m["bridge"].group(1)
    # one story: the same container, layer, bridge, process and address all along
    assert m["init layer"].group(1) == mount_id == m["unmount"].group(1)
    assert m["cgroup"].group(1) == cid == m["leave cgroup"].group(1) == m["removed"].group(1)
    assert bridge == m["bridge rules"].group(1) == m["dnat"].group(1) == m["bridge gone"].group(1)
    veth = m["veth"].group(1)
    assert m["veth"].group(2) == m["join cgroup"].group(1) == m["address"].group(2)
    assert any(re.match(rf"^RTM_NEWLINK (veth )?{veth} master {bridge} up\b", x) for x in lines)
    assert m["dnat"].group(2) == m["address"].group(1)  # DNAT to the address eth0 got
    # and what it narrated is gone from the host
    assert host.run(f"ip link show {bridge}").rc != 0
    assert host.run(f"ip link show {veth}").rc != 0
    assert bridge not in host.run("iptables-save").stdout


def test_load_and_import(tmd: Minidocker, host: Any, scratch: Any, busybox_rootfs_tar: str) -> None:
    root = re.escape(tmd.data_root)
    image_id = tmd.ok("inspect", "-f", "{{.Id}}", "busybox").strip()
    tar = f"{scratch('trace-load')}/busybox.tar"
    tmd.ok("save", "-o", tar, "busybox")
    tmd.ok("rmi", "busybox")
    m = in_order(
        events(tmd("load", "-i", tar, trace=True)),
        [
            rf"^load: scratch dir {root}/tmp/",
            rf"^untar {root}/tmp/\S+ \(\d+ entries, \d+ bytes\)$",
            rf"^overlay2 create ({H64}) parent=None$",
            rf"^untar {root}/overlay2/({H64})/diff \(\d+ entries, \d+ bytes\)$",
            rf"^diffID = sha256\(layer tar\) = (sha256:{H64})$",
            rf"^rename {root}/image/overlay2/layerdb/tmp/\S+ -> {root}/image/overlay2/layerdb/(sha256/{H64})$",
            rf"^write {root}/image/overlay2/imagedb/content/(sha256/{H64}) \(\d+ bytes\)$",
            rf"^write {root}/image/overlay2/repositories\.json \(\d+ bytes\)$",
            rf"^reference busybox:latest -> (sha256:{H64})$",
        ],
    )
    assert m[2].group(1) == m[3].group(1)
    # one layer: its chain ID is its diff ID, and that is where layerdb put it
    assert m[5].group(1) == m[4].group(1).replace(":", "/")
    assert m[6].group(1) == image_id.replace(":", "/") and m[8].group(1) == image_id
    assert host.file(f"{tmd.data_root}/image/overlay2/layerdb/{m[5].group(1)}/diff").exists

    m = in_order(
        events(tmd("import", busybox_rootfs_tar, "traced:import", trace=True)),
        [
            rf"^overlay2 create ({H64}) parent=None$",
            rf"^diffID = sha256\(layer tar\) = (sha256:{H64})$",
            rf"^rename {root}/image/overlay2/layerdb/tmp/\S+ -> {root}/image/overlay2/layerdb/sha256/{H64}$",
            rf"^write {root}/image/overlay2/imagedb/content/sha256/({H64}) \(\d+ bytes\)$",
            rf"^reference traced:import -> sha256:({H64})$",
        ],
    )
    assert m[3].group(1) == m[4].group(1)
    assert tmd.ok("inspect", "-f", "{{.Id}}", "traced:import").strip() == f"sha256:{m[4].group(1)}"


def test_build_narrates_layers_and_chain_ids(tmd: Minidocker, host: Any, scratch: Any) -> None:
    ctx = scratch("trace-build")
    host.run_expect([0], f"printf 'FROM busybox\\nRUN echo hi > /hi\\nCOPY f /f\\n' > {ctx}/Dockerfile")
    host.run_expect([0], f"echo x > {ctx}/f")
    base_diff = json.loads(tmd.ok("inspect", "-f", "{{json .RootFS.Layers}}", "busybox"))[-1]
    root = re.escape(tmd.data_root)
    lines = events(tmd("build", "-t", "traced:build", ctx, trace=True))
    chain = r'^chainID = sha256\("(sha256:[0-9a-f]{64}) (sha256:[0-9a-f]{64})"\) = (sha256:[0-9a-f]{64})$'
    m = in_order(
        lines,
        [
            r"^unshare\(CLONE_NEWNS",
            r"^execve\(\"/bin/sh\", \['/bin/sh', '-c', 'echo hi > /hi'\], ",
            r"^layer tar from \S+/diff: 1 entries, \d+ bytes$",
            rf"^diffID = sha256\(layer tar\) = (sha256:{H64})$",
            chain,
            rf"^rename {root}/image/overlay2/layerdb/tmp/\S+ -> {root}/image/overlay2/layerdb/sha256/({H64})$",
            rf"^write {root}/image/overlay2/imagedb/content/sha256/{H64} \(\d+ bytes\)$",
            rf"^copied 1 entries into {root}/overlay2/{H64}/merged$",
            rf"^diffID = sha256\(layer tar\) = (sha256:{H64})$",
            chain,
            rf"^write {root}/image/overlay2/imagedb/content/sha256/({H64}) \(\d+ bytes\)$",
            rf"^reference traced:build -> sha256:({H64})$",
        ],
    )
    run_diff, run_chain, copy_diff, copy_chain = m[3].group(1), m[4], m[8].group(1), m[9]
    # the arithmetic, redone: chainID(n) = sha256(chainID(n-1) + " " + diffID(n))
    for line in (run_chain, copy_chain):
        parent, diff, result = line.groups()
        assert "sha256:" + hashlib.sha256(f"{parent} {diff}".encode()).hexdigest() == result
    assert run_chain.group(1) == base_diff and run_chain.group(2) == run_diff
    assert copy_chain.group(1) == run_chain.group(3) and copy_chain.group(2) == copy_diff
    assert m[5].group(1) == run_chain.group(3).removeprefix("sha256:")
    assert m[10].group(1) == m[11].group(1)
    assert tmd.ok("inspect", "-f", "{{.Id}}", "traced:build").strip() == f"sha256:{m[11].group(1)}"
    layers = json.loads(tmd.ok("inspect", "-f", "{{json .RootFS.Layers}}", "traced:build"))
    assert layers[-2:] == [run_diff, copy_diff]
    top = copy_chain.group(3).replace(":", "/")
    assert host.file(f"{tmd.data_root}/image/overlay2/layerdb/{top}").is_directory


def test_pull_narrates_registry_and_store_steps(tmd: Minidocker, registry: Any) -> None:
    ref = f"{registry.address}/trace/bb:1"
    tmd.ok("tag", "busybox", ref)
    tmd.ok("push", ref)
    other = Minidocker(tmd.host, tmd.binary, tmd.data_root + "-pull", tmd.exec_root + "-pull")
    root = re.escape(other.data_root)
    url = re.escape(f"http://{registry.address}/v2/")
    m = in_order(
        events(other("pull", ref, trace=True)),
        [
            rf"^registry: GET {url} -> 200$",
            rf"^registry: GET {url}trace/bb/manifests/1 -> 200$",
            rf"^registry: GET {url}trace/bb/blobs/(sha256:{H64}) -> 200$",
            rf"^overlay2 create {H64} parent=None$",
            rf"^diffID = sha256\(layer tar\) = (sha256:{H64})$",
            rf"^rename {root}/image/overlay2/layerdb/tmp/\S+ -> {root}/image/overlay2/layerdb/sha256/({H64})$",
            rf"^write {root}/image/overlay2/distribution/v2metadata-by-diffid/sha256/({H64}) \(\d+ bytes\)$",
            rf"^write {root}/image/overlay2/imagedb/content/sha256/({H64}) \(\d+ bytes\)$",
            rf"^reference {re.escape(ref)} -> sha256:({H64})$",
        ],
    )
    diff_id = m[4].group(1)
    assert m[5].group(1) == m[6].group(1) == diff_id.removeprefix("sha256:")  # one layer: chain = diff
    assert m[7].group(1) == m[8].group(1)
    assert other.ok("inspect", "-f", "{{.Id}}", ref).strip() == f"sha256:{m[8].group(1)}"


def test_a_reader_that_stops_early_does_not_stop_the_work(tmd: Minidocker, host: Any) -> None:
    """``--trace run … 2>&1 | head``: when the pipe closes, the narration stops, the run does not
    (it used to die on EPIPE half-way, leaving a created container with its netns and veth)."""
    for lines in (30, 100):
        r = host.run(tmd.command("run", "--rm", "busybox", "true", trace=True) + f" 2>&1 | head -n {lines}")
        assert r.rc == 0 and len(r.stdout.splitlines()) == lines
    assert tmd.ok("ps", "-aq") == ""
    bridge = json.loads(tmd.ok("network", "inspect", "bridge"))[0]["Options"][
        "com.docker.network.bridge.name"
    ]
    assert host.run(f"ip link show {bridge}").rc != 0
