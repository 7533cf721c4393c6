"""``info``, ``version``, ``system df`` and ``system prune`` against a real dockerd on this host.

Both daemons look at the same kernel, cgroup tree and filesystem, so where a field applies to
minidocker it must carry dockerd's key name, type and (host facts) value; fields that do not apply
are absent, never invented. Containers run with ``--network none`` (no bridge to clean up);
the one user network a test makes is pruned by the test itself and again at teardown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.helpers import DockerDaemon, Minidocker

pytestmark = pytest.mark.root

# the list: every one of these must be there, named as dockerd names it
REQUIRED_INFO_KEYS = {
    "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
    "ServerVersion", "Driver", "DriverStatus", "LoggingDriver", "CgroupDriver", "CgroupVersion",
    "KernelVersion", "OperatingSystem", "OSType", "Architecture", "NCPU", "MemTotal", "Name",
    "DockerRootDir", "SecurityOptions",
}  # fmt: skip
# facts about the host, not about either daemon: the same value from both
HOST_FACTS = (
    "Driver", "DriverStatus", "LoggingDriver", "CgroupDriver", "CgroupVersion", "KernelVersion",
    "OperatingSystem", "OSVersion", "OSType", "Architecture", "NCPU", "MemTotal", "Name",
    "SecurityOptions", "MemoryLimit", "SwapLimit", "CpuCfsPeriod", "CpuCfsQuota", "CPUShares",
    "CPUSet", "PidsLimit",
)  # fmt: skip


@pytest.fixture
def smd(md: Minidocker) -> Iterator[Minidocker]:
    """``md`` with busybox; afterwards no container or user network of this data root is left."""
    md.ok("buildbase")
    yield md
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    md("network", "prune", "-f")


def _info(run: Any) -> dict[str, Any]:
    doc = json.loads(run("info", "--format", "{{json .}}"))
    assert isinstance(doc, dict)
    return doc


def _labels(text: str) -> set[str]:
    """``Key`` of every ``  Key: value`` line of ``info``'s text (section headers included)."""
    return {m.group(1) for m in re.finditer(r"^ +([A-Za-z][A-Za-z /_-]*):", text, re.M)}


def test_info_fields_match_dockerd(smd: Minidocker, dockerd_module: DockerDaemon, data_root: str) -> None:
    smd.ok("run", "--network", "none", "--name", "sysinfo-stopped", "busybox", "true")
    ours, theirs = _info(smd.ok), _info(dockerd_module.ok)

    assert set(ours) >= REQUIRED_INFO_KEYS
    assert set(ours) <= set(theirs), f"keys dockerd does not have: {set(ours) - set(theirs)}"
    for key in ours:
        if ours[key] is not None and theirs[key] is not None:
            assert type(ours[key]) is type(theirs[key]), key
    for key in HOST_FACTS:
        assert ours[key] == theirs[key], key
    assert ours["DockerRootDir"] == data_root
    assert theirs["DockerRootDir"] == dockerd_module.data_root
    assert (ours["Containers"], ours["ContainersRunning"], ours["ContainersStopped"]) == (1, 0, 1)
    assert ours["Images"] == 1
    assert ours["CgroupVersion"] in ("1", "2")
    assert smd.ok("info", "--format", "{{.Driver}}").strip() == "overlay2"
    assert smd.ok("system", "info", "--format", "{{.DockerRootDir}}").strip() == data_root

    text, docker_text = smd.ok("info"), dockerd_module.ok("info")
    assert _labels(text) <= _labels(docker_text), _labels(text) - _labels(docker_text)
    for line in (
        "Server:",
        " Storage Driver: overlay2",
        f" Cgroup Version: {ours['CgroupVersion']}",
        f" Docker Root Dir: {data_root}",
        " Containers: 1",
        "  Stopped: 1",
    ):
        assert line in text.splitlines()
    # the host-fact lines read the same as dockerd's
    for label in ("Backing Filesystem", "Supports d_type", "Kernel Version", "Operating System",
                  "Architecture", "CPUs", "Total Memory", "Cgroup Driver", "Logging Driver"):  # fmt: skip
        mine = [x for x in text.splitlines() if x.strip().startswith(label + ":")]
        docker = [x for x in docker_text.splitlines() if x.strip().startswith(label + ":")]
        assert mine == docker, label


def test_version_has_client_and_server(smd: Minidocker) -> None:
    text = smd.ok("version")
    assert text.startswith("Client:\n Version:")
    assert "\nServer:\n Engine:\n  Version:" in text
    doc = json.loads(smd.ok("version", "--format", "{{json .}}"))
    assert doc["Client"]["Version"] == doc["Server"]["Version"]
    assert doc["Server"]["Components"][0]["Name"] == "Engine"
    assert smd.ok("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}").strip().startswith("linux/")


def test_system_df_tables_match_dockerd(
    smd: Minidocker, dockerd_module: DockerDaemon, md: Minidocker, busybox_rootfs_tar: str
) -> None:
    fresh = Minidocker(md.host, md.binary, md.data_root + "-empty", md.exec_root + "-empty")
    # empty stores: byte for byte the same tables
    assert fresh.ok("system", "df") == dockerd_module.ok("system", "df")
    assert fresh.ok("system", "df", "-v") == dockerd_module.ok("system", "df", "-v")

    # the same image on both sides: the same layer size, the same table
    for run in (fresh.ok, dockerd_module.ok):
        run("import", busybox_rootfs_tar, "sysdf:1")
    assert fresh.ok("system", "df") == dockerd_module.ok("system", "df")
    mine, theirs = (
        [re.split(r" {3,}", x) for x in run("system", "df", "-v").splitlines() if x.startswith("sysdf ")]
        for run in (fresh.ok, dockerd_module.ok)
    )
    assert [r[:2] + r[4:] for r in mine] == [r[:2] + r[4:] for r in theirs]  # not ID, CREATED (a clock)

    smd.ok("run", "--network", "none", "--name", "sysdf-stopped", "busybox", "sh", "-c", "echo hello > /f")
    smd.ok("run", "-d", "--network", "none", "--name", "sysdf-running", "busybox", "sleep", "60")
    smd.ok("volume", "create", "sysdf-vol")
    rows = [line.split("   ") for line in smd.ok("system", "df").splitlines()]
    table = {r[0].strip(): [c.strip() for c in r[1:] if c.strip()] for r in rows}
    assert list(table) == ["TYPE", "Images", "Containers", "Local Volumes", "Build Cache"]
    assert table["Images"][:2] == ["1", "1"]
    # one stopped container wrote 6 bytes: they are all reclaimable
    assert table["Containers"] == ["2", "1", "6B", "6B (100%)"]
    assert table["Local Volumes"][:2] == ["1", "0"]
    verbose = smd.ok("system", "df", "-v")
    assert re.search(r"^busybox +latest +[0-9a-f]{12} .* 2$", verbose, re.M)
    assert re.search(r"^[0-9a-f]{12} +busybox +\".*\" +0 +6B .* sysdf-stopped$", verbose, re.M)
    assert re.search(r"^sysdf-vol +0 +0B$", verbose, re.M)


def _prompt(run: Any, *args: str) -> str:
    result = run("system", "prune", *args, stdin="/dev/null")
    assert result.rc == 0, result.stderr
    return str(result.stdout)


def test_system_prune(smd: Minidocker, dockerd_module: DockerDaemon, host: Any) -> None:
    # a stopped container, an unused user network and volume, a dangling image, a tagged one
    smd.ok("run", "--network", "none", "--name", "sysprune-a", "busybox", "sh", "-c", "echo 1 > /a")
    smd.ok("commit", "sysprune-a", "sysprune:img")
    smd.ok("run", "--network", "none", "--name", "sysprune-b", "busybox", "sh", "-c", "echo 2 > /b")
    dangling = smd.ok("inspect", "-f", "{{.Id}}", "sysprune:img").strip()
    smd.ok("commit", "sysprune-b", "sysprune:img")  # retagged: the first commit is dangling now
    tagged = smd.ok("inspect", "-f", "{{.Id}}", "sysprune:img").strip()
    ids = smd.ok("ps", "-aq", "--no-trunc").split()
    busybox = smd.ok("inspect", "-f", "{{.Id}}", "busybox").strip()
    smd.ok("network", "create", "--subnet", "10.239.7.0/24", "sysprune-net")
    smd.ok("volume", "create", "sysprune-vol")

    # without -f: Docker's question, word for word, and nothing happens on "no"
    for args in ((), ("-a", "--volumes")):
        assert _prompt(smd, *args) == _prompt(dockerd_module.docker, *args)
    assert len(smd.ok("ps", "-aq").split()) == 2

    out = smd.ok("system", "prune", "-f")
    assert out.startswith("Deleted Containers:\n")
    assert set(out.split("\n\n")[0].splitlines()[1:]) == set(ids)
    assert "\n\nDeleted Networks:\nsysprune-net\n\n" in out
    assert f"\n\nDeleted Images:\ndeleted: {dangling}\n" in out
    assert re.search(r"\nTotal reclaimed space: [1-9][0-9.]*k?B\n$", out), out
    assert set(smd.ok("images", "-aq", "--no-trunc").split()) == {tagged, busybox}
    assert smd.ok("volume", "ls", "-q").split() == ["sysprune-vol"]
    assert "sysprune-net" not in host.run("ip -o link show").stdout + smd.ok("network", "ls")

    out = smd.ok("system", "prune", "-a", "--volumes", "-f")
    assert "Deleted Volumes:\nsysprune-vol\n\n" in out
    assert "untagged: sysprune:img\n" in out and "untagged: busybox:latest\n" in out
    assert f"deleted: {tagged}\n" in out
    assert smd.ok("images", "-aq") == "" and smd.ok("volume", "ls", "-q") == ""
    assert smd.ok("system", "prune", "-f") == "Total reclaimed space: 0B\n"
