"""Volumes on real containers (`run -v`), and `exec`/`logs`/`ps`/`top` on running and exited ones.

Black box through testinfra's ``host``: bind mounts, named and anonymous volumes, image VOLUMEs and
copy-up are checked from inside the container (``exec``) and from the host (the volume's ``_data``,
config.v2.json, the host's mount table); the ``bb`` fixture proves each test leaves no mount,
cgroup, process or volume of its data root behind. One test compares ``inspect`` Mounts and the
MountPoints records with a real dockerd 20.10 running the same container.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers

NONE = ("--network", "none")
ID64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Iterator[Any]:
    """``md`` with the built-in busybox image; the host must be clean afterwards."""
    md.ok("buildbase")
    yield md
    ids = _ids(host, data_root)
    if ids:
        md("rm", "-f", *ids)
    assert helpers.mounts_under(host, data_root) == []
    cgroups = host.run("ls -d /sys/fs/cgroup/*/minidocker/* /sys/fs/cgroup/minidocker/* 2>/dev/null").stdout
    assert [d for d in cgroups.split() if any(cid in d for cid in ids)] == []
    assert helpers.processes_mentioning(host, data_root) == []


def _ids(host: Any, data_root: str) -> list[str]:
    return str(host.run(f"ls {data_root}/containers 2>/dev/null").stdout).split()


def _config(host: Any, data_root: str, cid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        host.file(f"{data_root}/containers/{cid}/config.v2.json").content_string
    )
    return data


def _host_mount_roots(host: Any) -> str:
    """The host's mountinfo (mount roots and mount points): a bind of dir X shows X as its root."""
    return str(host.file("/proc/self/mountinfo").content_string)


def _cgroup_procs(host: Any, cid: str) -> list[int]:
    for path in (
        f"/sys/fs/cgroup/pids/minidocker/{cid}/cgroup.procs",
        f"/sys/fs/cgroup/minidocker/{cid}/cgroup.procs",
    ):
        f = host.file(path)
        if f.exists:
            return [int(x) for x in f.content_string.split()]
    raise AssertionError(f"no cgroup for {cid}")


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _volumes(md: Any) -> list[str]:
    return str(md.ok("volume", "ls", "-q")).split()


# -- binds ---------------------------------------------------------------------------------------
def test_bind_mounts_rw_ro_and_missing_source(bb: Any, host: Any, data_root: str, scratch: Any) -> None:
    h = scratch("binds")
    helpers.check(host, f"mkdir {h}/rw {h}/ro && echo from-host > {h}/rw/f && echo ro-file > {h}/ro/g")
    missing = f"{h}/not/there/yet"
    cid = bb.ok(
        "create", *NONE, "--name", "binds", "-v", f"{h}/rw:/data", "-v", f"{h}/ro:/ro:ro",
        "-v", f"{missing}:/made", "busybox", "sleep", "1000",
    ).strip()  # fmt: skip
    assert not host.file(f"{h}/not").exists  # created at start, not at create (dockerd 20.10)
    bb.ok("start", "binds")
    assert host.file(missing).is_directory and host.file(missing).mode == 0o755
    assert host.file(f"{h}/not").mode == 0o755

    # rw: both directions
    assert bb.ok("exec", "binds", "cat", "/data/f") == "from-host\n"
    bb.ok("exec", "binds", "sh", "-c", "echo from-container > /data/new")
    assert host.file(f"{h}/rw/new").content_string == "from-container\n"
    helpers.check(host, f"echo later > {h}/rw/later")
    assert bb.ok("exec", "binds", "cat", "/data/later") == "later\n"
    # ro: readable, not writable
    assert bb.ok("exec", "binds", "cat", "/ro/g") == "ro-file\n"
    r = bb("exec", "binds", "touch", "/ro/x")
    assert r.rc == 1 and "Read-only file system" in r.stderr
    assert not host.file(f"{h}/ro/x").exists
    mounts = bb.ok("exec", "binds", "cat", "/proc/self/mounts")
    opts = {line.split()[1]: line.split()[3] for line in mounts.splitlines()}
    assert opts["/ro"].startswith("ro,") and opts["/data"].startswith("rw,") and "/made" in opts

    # the binds live in the container's mount namespace only: the host never sees them
    assert f"{h}/rw" not in _host_mount_roots(host)
    cfg = _config(host, data_root, cid)
    hc = json.loads(host.file(f"{data_root}/containers/{cid}/hostconfig.json").content_string)
    assert hc["Binds"] == [f"{h}/rw:/data", f"{h}/ro:/ro:ro", f"{missing}:/made"]
    ro = cfg["MountPoints"]["/ro"]
    assert ro == {
        "Source": f"{h}/ro", "Destination": "/ro", "RW": False, "Name": "", "Driver": "", "Type": "bind",
        "Relabel": "ro", "Propagation": "rprivate",
        "Spec": {"Type": "bind", "Source": f"{h}/ro", "Target": "/ro", "ReadOnly": True},
        "SkipMountpointCreation": False,
    }  # fmt: skip
    mounts_json = json.loads(bb.ok("inspect", "-f", "{{json .Mounts}}", "binds"))
    assert {m["Destination"]: (m["Type"], m["Source"], m["Mode"], m["RW"], m["Propagation"]) for m in mounts_json} == {
        "/data": ("bind", f"{h}/rw", "", True, "rprivate"),
        "/ro": ("bind", f"{h}/ro", "ro", False, "rprivate"),
        "/made": ("bind", missing, "", True, "rprivate"),
    }  # fmt: skip

    bb.ok("stop", "-t", "0", "binds")
    assert f"{h}/rw" not in _host_mount_roots(host) and helpers.mounts_under(host, h) == []
    assert host.file(f"{h}/rw/new").exists  # the data stays on the host
    bb.ok("rm", "-v", "binds")
    assert host.file(f"{h}/rw/f").content_string == "from-host\n"  # rm -v never touches binds


def test_bind_spec_errors_create_nothing(bb: Any, host: Any, data_root: str) -> None:
    for spec, message in (
        ("/a:/", "destination can't be '/'"),
        ("/a:rel", "mount path must be absolute"),
        ("/a:/b:bogus", "invalid mode: bogus"),
        ("x:/b", "volume name is too short"),
        ("vol:/b:rprivate", "field BindOptions must not be specified"),
    ):
        r = bb("run", *NONE, "-v", spec, "busybox", "true")
        assert r.rc == 125, helpers.describe(r)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = bb("run", *NONE, "-v", "/a:/d", "-v", "/b:/d", "busybox", "true")
    assert r.rc == 125 and "Duplicate mount point: /d" in r.stderr
    assert _ids(host, data_root) == [] and _volumes(bb) == []


# -- named volumes -------------------------------------------------------------------------------
def test_named_volume_persists_and_is_protected(bb: Any, host: Any, data_root: str) -> None:
    assert (
        bb.ok("run", *NONE, "--name", "w1", "-v", "vol:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        == ""
    )
    assert _volumes(bb) == ["vol"]
    data = f"{data_root}/volumes/vol/_data"
    assert host.file(f"{data}/f").content_string == "kept\n"
    # a second container sees it, and writes back
    out = bb.ok("run", *NONE, "--rm", "-v", "vol:/v", "busybox", "sh", "-c", "cat /v/f; echo more >> /v/f")
    assert out == "kept\n"
    assert host.file(f"{data}/f").content_string == "kept\nmore\n"
    assert _volumes(bb) == ["vol"]  # --rm never removes a named volume

    cid = _ids(host, data_root)[0]
    r = bb("volume", "rm", "vol")  # w1 exited, but still uses it
    assert r.rc == 1 and f"remove vol: volume is in use - [{cid}]" in r.stderr
    r = bb("volume", "rm", "-f", "vol")
    assert r.rc == 1 and "volume is in use" in r.stderr
    assert bb.ok("volume", "ls", "-q", "-f", "dangling=true") == ""
    bb.ok("rm", "-v", "w1")
    assert _volumes(bb) == ["vol"] and host.file(f"{data}/f").exists  # rm -v keeps named volumes
    assert bb.ok("volume", "ls", "-q", "-f", "dangling=true") == "vol\n"
    assert bb.ok("volume", "rm", "vol") == "vol\n"
    assert not host.file(f"{data_root}/volumes/vol").exists


def test_volume_in_use_by_a_running_container(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok("run", "-d", *NONE, "-v", "busy:/data", "busybox", "sleep", "1000").strip()
    r = bb("volume", "rm", "busy")
    assert r.rc == 1 and f"volume is in use - [{cid}]" in r.stderr
    assert bb.ok("volume", "prune", "-f") == "Total reclaimed space: 0B\n"
    helpers.check(host, f"echo host > {data_root}/volumes/busy/_data/h")
    assert bb.ok("exec", cid, "cat", "/data/h") == "host\n"
    bb.ok("rm", "-f", cid)
    assert _volumes(bb) == ["busy"]
    bb.ok("volume", "rm", "busy")


def test_copy_up_of_image_content_into_a_fresh_volume(bb: Any, host: Any, data_root: str) -> None:
    out = bb.ok(
        "run", *NONE, "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "head -1 /etc/passwd; ls /etc"
    )
    assert out.splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    data = f"{data_root}/volumes/etcvol/_data"
    image_passwd = bb.ok("run", *NONE, "--rm", "busybox", "cat", "/etc/passwd")
    assert host.file(f"{data}/passwd").content_string == image_passwd
    assert host.file(f"{data}/passwd").mode == 0o644
    assert host.file(data).mode == 0o755  # the image dir's own mode comes along
    assert {"group", "passwd"} <= set(host.run(f"ls {data}").stdout.split())
    # not empty any more: a later container sees what is there, no second copy
    helpers.check(host, f"rm {data}/group && echo mine > {data}/mine")
    out = bb.ok("run", *NONE, "--rm", "-v", "etcvol:/etc", "busybox", "ls", "/etc")
    assert "mine" in out.split() and "group" not in out.split()
    # nocopy: the volume stays empty (a path the image has: /root)
    bb.ok("run", *NONE, "--rm", "-v", "nc:/root:nocopy", "busybox", "true")
    assert host.run(f"ls -A {data_root}/volumes/nc/_data").stdout == ""
    assert bb.ok("volume", "rm", "etcvol", "nc") == "etcvol\nnc\n"


# -- anonymous volumes and image VOLUMEs -----------------------------------------------------------
def test_anonymous_volumes_created_and_removed_by_rm_v(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok("create", *NONE, "-v", "/anon", "busybox", "sh", "-c", "echo x > /anon/f").strip()
    vols = _volumes(bb)
    assert len(vols) == 1 and ID64.match(vols[0])  # created at create, with a random name
    anon = vols[0]
    cfg = _config(host, data_root, cid)
    assert cfg["Config"]["Volumes"] == {"/anon": {}}
    hc = json.loads(host.file(f"{data_root}/containers/{cid}/hostconfig.json").content_string)
    assert hc["Binds"] is None
    mp = cfg["MountPoints"]["/anon"]
    assert (mp["Source"], mp["Name"], mp["Driver"], mp["Type"], mp["Spec"]) == (
        "",
        anon,
        "local",
        "volume",
        {},
    )
    assert list(mp) == [
        "Source",
        "Destination",
        "RW",
        "Name",
        "Driver",
        "Type",
        "Spec",
        "SkipMountpointCreation",
    ]
    assert bb("start", "-a", cid).rc == 0
    assert host.file(f"{data_root}/volumes/{anon}/_data/f").content_string == "x\n"
    mp = _config(host, data_root, cid)["MountPoints"]["/anon"]
    assert ID64.match(mp["ID"])  # the mount ID dockerd records at start
    assert list(mp)[-3:] == ["ID", "Spec", "SkipMountpointCreation"]
    [m] = json.loads(bb.ok("inspect", "-f", "{{json .Mounts}}", cid))
    assert m == {
        "Type": "volume", "Name": anon, "Source": f"{data_root}/volumes/{anon}/_data", "Destination": "/anon",
        "Driver": "local", "Mode": "", "RW": True, "Propagation": "",
    }  # fmt: skip
    # plain rm keeps it (dangling now), rm -v of another user removes it
    bb.ok("rm", cid)
    assert _volumes(bb) == [anon]
    cid2 = bb.ok("create", *NONE, "-v", "/anon", "busybox", "true").strip()
    assert len(_volumes(bb)) == 2
    bb.ok("rm", "-v", cid2)
    assert _volumes(bb) == [anon]
    bb.ok("volume", "rm", anon)


def test_run_rm_removes_anonymous_volumes_and_image_volumes(
    bb: Any, host: Any, data_root: str, busybox_rootfs_tar: str
) -> None:
    bb.ok("import", "-c", "VOLUME /vol /cache", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "withvol")
    out = bb.ok(
        "run",
        *NONE,
        "--rm",
        "-v",
        "/anon",
        "withvol",
        "sh",
        "-c",
        "grep -E ' /(vol|cache|anon) ' /proc/mounts | wc -l",
    )
    assert out == "3\n"
    assert _volumes(bb) == [] and _ids(host, data_root) == []
    # run --rm whose start fails: removed, volumes too
    r = bb("run", *NONE, "--rm", "-v", "/anon", "withvol", "nope-not-here")
    assert r.rc == 127
    assert _volumes(bb) == [] and _ids(host, data_root) == []
    # image VOLUMEs are created at create; a -v for the same path wins over the image's
    cid = bb.ok("create", *NONE, "-v", "named:/vol", "withvol").strip()
    cfg = _config(host, data_root, cid)
    assert cfg["Config"]["Volumes"] == {"/cache": {}, "/vol": {}}
    assert cfg["MountPoints"]["/vol"]["Name"] == "named"
    assert ID64.match(cfg["MountPoints"]["/cache"]["Name"])
    assert sorted(_volumes(bb)) == sorted(["named", cfg["MountPoints"]["/cache"]["Name"]])
    bb.ok("rm", "-v", cid)
    assert _volumes(bb) == ["named"]
    bb.ok("volume", "rm", "named")


def test_mounts_and_mountpoints_match_dockerd(
    bb: Any, host: Any, data_root: str, dockerd: Any, busybox_rootfs_tar: str, scratch: Any
) -> None:
    h = scratch("parity-bind")
    specs = ["-v", "vol:/data", "-v", "/anon", "-v", f"{h}:/hb:ro"]
    bb.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "bbx")
    dockerd.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "bbx")
    cmd = ["run", "-d", *NONE, "--name", "par", *specs, "bbx", "sleep", "1000"]
    ours, theirs = bb.ok(*cmd).strip(), dockerd.ok(*cmd).strip()
    try:

        def norm(text: str, root: str) -> str:
            text = text.replace(root, "ROOT").replace(h, "HOST")
            return re.sub(r"[0-9a-f]{64}", "ID", text)

        def mounts(side: Any, root: str) -> list[Any]:
            got = json.loads(norm(side.ok("inspect", "-f", "{{json .Mounts}}", "par"), root))
            return sorted(got, key=lambda m: m["Destination"])

        assert mounts(bb, data_root) == mounts(dockerd, dockerd.data_root)
        mine = json.loads(
            norm(host.file(f"{data_root}/containers/{ours}/config.v2.json").content_string, data_root)
        )
        docker = json.loads(
            norm(
                host.file(f"{dockerd.data_root}/containers/{theirs}/config.v2.json").content_string,
                dockerd.data_root,
            )
        )
        for dest in ("/data", "/hb"):
            assert mine["MountPoints"][dest] == docker["MountPoints"][dest]
            assert list(mine["MountPoints"][dest]) == list(docker["MountPoints"][dest])
        # anonymous: dockerd keeps Source "" on disk; the fields and their order are the same
        assert list(mine["MountPoints"]["/anon"]) == list(docker["MountPoints"]["/anon"])
        assert mine["Config"]["Volumes"] == docker["Config"]["Volumes"] == {"/anon": {}}
        for side in (bb, dockerd):
            binds = side.ok("inspect", "-f", "{{json .HostConfig.Binds}}", "par")
            # (the docker CLI 20.10 builds Binds from a Go map: any order)
            assert sorted(json.loads(binds.replace(h, "HOST"))) == ["HOST:/hb:ro", "vol:/data"]
    finally:
        dockerd.docker("rm", "-f", "-v", "par")
        bb("rm", "-f", "-v", "par")
    assert _volumes(bb) == ["vol"]
    assert dockerd.ok("volume", "ls", "-q").split() == ["vol"]


# -- exec -------------------------------------------------------------------------------------------
@pytest.fixture
def web(bb: Any) -> str:
    """A running container ``web`` (its full id is returned)."""
    cid: str = bb.ok(
        "run", "-d", *NONE, "--name", "web", "-e", "FROM_RUN=1", "-w", "/tmp", "busybox", "sleep", "1000"
    ).strip()
    return cid


def test_exec_output_exit_codes_env_workdir_user(bb: Any, web: str) -> None:
    r = bb("exec", "web", "sh", "-c", "echo out; echo err >&2")
    assert (r.rc, r.stdout, r.stderr) == (0, "out\n", "err\n")
    assert bb("exec", "web", "sh", "-c", "exit 42").rc == 42
    r = bb("exec", "web", "nope-not-here")
    assert r.rc == 126 and 'exec: "nope-not-here": executable file not found in $PATH' in r.stderr
    r = bb("exec", "web", "/etc")
    assert r.rc == 126 and "permission denied" in r.stderr
    # the container's environment and working dir by default; -e/-w/-u override
    out = bb.ok("exec", "web", "sh", "-c", 'echo "$FROM_RUN|$(pwd)|$(id -u)|$HOSTNAME"')
    assert out == f"1|/tmp|0|{web[:12]}\n"
    out = bb.ok(
        "exec", "-e", "FROM_RUN=2", "-e", "NEW=x", "-w", "/etc", "-u", "nobody", "web",
        "sh", "-c", 'echo "$FROM_RUN|$NEW|$(pwd)|$(id -u):$(id -g)"',
    )  # fmt: skip
    assert out == "2|x|/etc|65534:65534\n"
    assert bb.ok("exec", "-u", "1234:5678", "web", "id").startswith("uid=1234 gid=5678")
    r = bb("exec", "-u", "nosuchuser", "web", "true")
    assert r.rc != 0 and "nosuchuser" in r.stderr
    # same namespaces as PID 1
    assert bb.ok("exec", "web", "sh", "-c", "hostname; ls /proc | grep -c '^[0-9]'").split()[0] == web[:12]


def test_exec_joins_the_cgroup_and_detach(bb: Any, host: Any, data_root: str, web: str) -> None:
    t0 = time.monotonic()
    assert bb.ok("exec", "-d", "web", "sleep", "4242") == ""
    assert time.monotonic() - t0 < 5
    _wait_for(lambda: helpers.processes_mentioning(host, "sleep 4242") != [])
    [line] = helpers.processes_mentioning(host, "sleep 4242")
    pid = int(line.split()[0])
    procs = _cgroup_procs(host, web)
    pid1 = _config(host, data_root, web)["State"]["Pid"]
    assert pid in procs and pid1 in procs
    # the exec'd process shares PID 1's namespaces
    for ns in ("pid", "mnt", "uts", "ipc", "net"):
        assert (
            host.run(f"readlink /proc/{pid}/ns/{ns}").stdout
            == host.run(f"readlink /proc/{pid1}/ns/{ns}").stdout
        )
    # a foreground exec is in the cgroup too while it runs
    out = bb.ok("exec", "web", "sh", "-c", "cat /proc/self/cgroup | grep -c minidocker || true")
    assert out.strip() == "0"  # its own cgroup namespace view ("/") ...
    assert len(_cgroup_procs(host, web)) == 2  # ... and on the host only PID 1 + the detached one remain
    bb.ok("stop", "-t", "0", "web")
    assert helpers.processes_mentioning(host, "sleep 4242") == []  # killed with the container


def test_exec_on_stopped_or_created_container_fails(bb: Any) -> None:
    bb.ok("run", *NONE, "--name", "done", "busybox", "true")
    cid = bb.ok("inspect", "-f", "{{.Id}}", "done").strip()
    r = bb("exec", "done", "true")
    assert r.rc == 1 and r.stderr == f"Error: Container {cid} is not running\n"
    bb.ok("create", *NONE, "--name", "fresh", "busybox", "true")
    r = bb("exec", "fresh", "true")
    assert r.rc == 1 and "is not running" in r.stderr
    r = bb("exec", "nosuch", "true")  # (docker exits 1 here; our CLI's not-found is 125)
    assert r.rc != 0 and r.stderr == "Error: No such container: nosuch\n"


# -- logs ------------------------------------------------------------------------------------------
def test_logs_tail_timestamps_since_and_streams(bb: Any) -> None:
    bb.ok("run", *NONE, "--name", "lg", "busybox", "sh", "-c",
          "for i in 1 2 3; do echo $i; done; echo oops >&2; sleep 1.1; echo 4; echo 5")  # fmt: skip
    r = bb("logs", "lg")
    assert (r.rc, r.stdout, r.stderr) == (0, "1\n2\n3\n4\n5\n", "oops\n")
    assert bb.ok("logs", "--tail", "2", "lg") == "4\n5\n"
    assert bb.ok("logs", "-n", "0", "lg") == ""
    assert bb.ok("logs", "--tail", "all", "lg") == "1\n2\n3\n4\n5\n"
    stamped = bb.ok("logs", "-t", "lg").splitlines()
    assert len(stamped) == 5
    for line in stamped:
        ts, _, text = line.partition(" ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z", ts), line
    ts4 = stamped[3].split()[0]
    assert bb.ok("logs", "--since", ts4, "lg") == "4\n5\n"  # inclusive, like dockerd
    assert bb.ok("logs", "--since", "1h", "lg") == "1\n2\n3\n4\n5\n"
    assert bb.ok("logs", "--since", "2999-01-01T00:00:00Z", "lg") == ""
    assert bb.ok("logs", "--until", ts4, "lg").splitlines()[:3] == ["1", "2", "3"]
    r = bb("logs", "--since", "yesterday", "lg")
    assert r.rc != 0 and 'invalid value for "since"' in r.stderr


def test_logs_follow_until_the_container_exits(bb: Any, host: Any) -> None:
    bb.ok("run", "-d", *NONE, "--name", "fl", "busybox", "sh", "-c",
          "echo first; sleep 1.5; echo second; sleep 0.5; echo third")  # fmt: skip
    t0 = time.monotonic()
    r = bb("logs", "-f", "fl", timeout=30)
    elapsed = time.monotonic() - t0
    assert (r.rc, r.stdout) == (0, "first\nsecond\nthird\n")
    assert elapsed > 1.0  # it waited for the lines written after it started
    # on an exited container -f returns at once
    t0 = time.monotonic()
    assert bb.ok("logs", "-f", "--tail", "1", "fl") == "third\n"
    assert time.monotonic() - t0 < 5


# -- ps / top --------------------------------------------------------------------------------------
def test_ps_on_running_and_exited_containers(bb: Any, host: Any, data_root: str) -> None:
    up = bb.ok("run", "-d", *NONE, "--name", "up", "busybox", "sleep", "1000").strip()
    bb("run", *NONE, "--name", "down", "busybox", "sh", "-c", "exit 3")
    down = bb.ok("inspect", "-f", "{{.Id}}", "down").strip()
    lines = bb.ok("ps").splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(lines) == 2 and lines[1].startswith(up[:12]) and lines[1].endswith(" up")
    assert re.search(r"Up (Less than a second|\d+ seconds?)", lines[1])
    lines = bb.ok("ps", "-a").splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["down", "up"]  # newest first
    assert "Exited (3)" in lines[1]
    assert bb.ok("ps", "-q") == up[:12] + "\n"
    assert bb.ok("ps", "-aq") == f"{down[:12]}\n{up[:12]}\n"
    assert bb.ok("ps", "-aq", "--no-trunc") == f"{down}\n{up}\n"
    assert up in bb.ok("ps", "--no-trunc") and '"sleep 1000"' in bb.ok("ps", "--no-trunc")
    assert bb.ok("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}") == "down\n"
    assert bb.ok("ps", "-f", "status=running", "-q") == up[:12] + "\n"
    assert bb.ok("ps", "--format", "{{.Names}}") == "up\n"
    assert bb.ok("ps", "-a", "--format", "{{.Names}} {{.State}}") == "down exited\nup running\n"
    r = bb("ps", "-f", "status=bogus")
    assert r.rc != 0
    bb.ok("stop", "-t", "0", "up")
    assert bb.ok("ps", "-q") == ""
    assert bb.ok("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}").split() == ["down", "up"]


def test_top_on_running_and_exited_containers(bb: Any, host: Any, data_root: str, web: str) -> None:
    bb.ok("exec", "-d", "web", "sleep", "4343")
    _wait_for(lambda: len(_cgroup_procs(host, web)) == 2)
    lines = bb.ok("top", "web").splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = {line.split(None, 7)[7]: line.split() for line in lines[1:]}
    assert set(rows) == {"sleep 1000", "sleep 4343"}
    pid1 = _config(host, data_root, web)["State"]["Pid"]
    assert rows["sleep 1000"][1] == str(pid1) and rows["sleep 1000"][0] == "root"
    custom = bb.ok("top", "web", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 3
    bb.ok("stop", "-t", "0", "web")
    r = bb("top", "web")
    assert r.rc == 1 and f"Container {web} is not running" in r.stderr
