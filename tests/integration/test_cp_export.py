"""`cp` and `export` on real containers, running and stopped (black box through testinfra's ``host``).

Paths, trailing ``/`` and ``/.`` rules, ``-`` tar streams, volumes and binds seen through ``cp``,
Docker's errors and exit codes, the copy-path attacks of shared/reliability-cases.md A.9 (symlinks
in the container that name host paths, a container swapping a directory for such a symlink while
``cp`` runs, container binaries that ``cp`` must never run), and ``export`` compared entry by entry
with a real dockerd 20.10's ``docker export`` of the same image's container.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import helpers

NONE = ("--network", "none")
HOST_TEXT = "I am a host file"


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Iterator[Any]:
    """``md`` with the built-in busybox image; the host must be clean afterwards."""
    md.ok("buildbase")
    yield md
    ids = str(host.run(f"ls {data_root}/containers 2>/dev/null").stdout).split()
    if ids:
        md("rm", "-f", *ids)
    assert helpers.mounts_under(host, data_root) == []
    cgroups = host.run("ls -d /sys/fs/cgroup/*/minidocker/* /sys/fs/cgroup/minidocker/* 2>/dev/null").stdout
    assert [d for d in cgroups.split() if any(cid in d for cid in ids)] == []
    assert helpers.processes_mentioning(host, data_root) == []


def sh(host: Any, script: str) -> str:
    return helpers.check(host, script)


def tar_names(host: Any, md: Any, *args: str) -> list[str]:
    """Names in the tar that ``minidocker ARGS`` writes to stdout."""
    return sh(host, f"{md.command(*args)} | tar -tf -").splitlines()


def merged_of(host: Any, data_root: str, cid: str) -> str:
    mount_id = host.file(f"{data_root}/image/overlay2/layerdb/mounts/{cid}/mount-id").content_string
    return f"{data_root}/overlay2/{mount_id}/merged"


@pytest.fixture
def box(bb: Any, host: Any, scratch: Any) -> dict[str, str]:
    """A container ``box`` (created, not started) with a named volume at /vol and a ro bind at /ro,
    and a host dir with a file and a tree to copy in."""
    h = scratch("cp")
    sh(
        host,
        f"mkdir -p {h}/out {h}/ro {h}/src/tree/sub && echo ro-content > {h}/ro/r && "
        f"echo file-content > {h}/src/file && echo a > {h}/src/tree/a && echo b > {h}/src/tree/sub/b",
    )
    cid = bb.ok(
        "create", *NONE, "--name", "box", "-v", "vol:/vol", "-v", f"{h}/ro:/ro:ro", "busybox", "sleep", "1000"
    ).strip()
    return {"h": h, "cid": cid}


STATES = ["running", "stopped"]


def _set_state(bb: Any, state: str) -> None:
    if state == "running":
        bb.ok("start", "box")
    else:  # started once (volumes filled, etc files written), then stopped
        bb.ok("start", "box")
        bb.ok("stop", "-t", "0", "box")


# -- container -> host ---------------------------------------------------------------------------
@pytest.mark.parametrize("state", STATES)
def test_cp_from_container(bb: Any, host: Any, data_root: str, box: dict[str, str], state: str) -> None:
    h, cid = box["h"], box["cid"]
    _set_state(bb, state)
    out = f"{h}/out"
    image_passwd = sh(host, f"{bb.command('cp', 'box:/etc/passwd', '-')} | tar -xOf -")
    assert image_passwd.startswith("root:x:0:0:")
    # a file into an existing dir, and to a new name
    assert bb.ok("cp", "box:/etc/passwd", out) == ""
    assert host.file(f"{out}/passwd").content_string == image_passwd
    assert host.file(f"{out}/passwd").mode == 0o644
    bb.ok("cp", "box:/etc/passwd", f"{out}/renamed")
    assert host.file(f"{out}/renamed").content_string == image_passwd
    # a dir to a new name, into an existing dir, and its contents only (trailing /.)
    bb.ok("cp", "box:/etc", f"{out}/etc-copy")
    assert {"passwd", "group", "hostname"} <= set(sh(host, f"ls {out}/etc-copy").split())
    sh(host, f"mkdir {out}/into {out}/dot")
    bb.ok("cp", "box:/etc", f"{out}/into")
    assert host.file(f"{out}/into/etc/passwd").exists
    bb.ok("cp", "box:/etc/.", f"{out}/dot")
    assert host.file(f"{out}/dot/passwd").exists and not host.file(f"{out}/dot/etc").exists
    bb.ok("cp", "box:/etc/", f"{out}/slash")
    assert host.file(f"{out}/slash/passwd").exists
    # the volume and the bind, as the container sees them
    sh(host, f"echo in-volume > {data_root}/volumes/vol/_data/v")
    bb.ok("cp", "box:/vol/v", f"{out}/v")
    assert host.file(f"{out}/v").content_string == "in-volume\n"
    bb.ok("cp", "box:/ro", f"{out}/ro-copy")
    assert host.file(f"{out}/ro-copy/r").content_string == "ro-content\n"
    assert tar_names(host, bb, "cp", "box:/vol", "-") == ["vol/", "vol/v"]
    # - : a tar on stdout, named after the requested base
    assert tar_names(host, bb, "cp", "box:/etc/passwd", "-") == ["passwd"]
    names = tar_names(host, bb, "cp", "box:/etc/.", "-")
    assert names[0] == "./" and "./passwd" in names
    # /etc/hostname is the container's own file (bound over the image's empty one)
    assert host.file(f"{out}/etc-copy/hostname").content_string == cid[:12] + "\n"
    # the container's /proc is not in its filesystem: nothing of the host's leaks
    r = bb("cp", "box:/proc/1/status", f"{out}/st")
    assert r.rc == 1 and "No such container:path: box:/proc/1/status" in r.stderr
    if state == "stopped":
        assert helpers.mounts_under(host, data_root) == []  # mounted for the copy only
    else:
        assert host.mount_point(merged_of(host, data_root, cid)).exists  # still the container's


@pytest.mark.parametrize(
    ("src", "dest", "message"),
    [
        ("box:/nope", "OUT", "No such container:path: box:/nope"),
        ("nosuch:/etc", "OUT", "No such container:path: nosuch:/etc"),
        ("box:/etc", "OUT/file", "cannot copy directory"),
        ("box:/etc/passwd", "OUT/missing/x", "no such file or directory"),
        ("box:/etc/passwd", "OUT/newdir/", "no such directory"),
        ("box:/etc/passwd/", "OUT", "not a directory"),
        ("box:", "OUT", "path cannot be empty"),
        ("box:/etc", "nosuch:/x", "copying between containers is not supported"),
        ("OUT", "OUT", "must specify at least one container source"),
    ],
)
def test_cp_from_container_errors(
    bb: Any, host: Any, box: dict[str, str], src: str, dest: str, message: str
) -> None:
    out = f"{box['h']}/out"
    sh(host, f"echo keep > {out}/file")
    before = sh(host, f"ls -R {out}")
    r = bb("cp", src.replace("OUT", out), dest.replace("OUT", out))
    assert r.rc == 1, helpers.describe(r)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sh(host, f"ls -R {out}") == before
    assert host.file(f"{out}/file").content_string == "keep\n"


# -- host -> container ---------------------------------------------------------------------------
def _read(bb: Any, host: Any, path: str) -> str:
    """A container file's content, through cp (works running or stopped)."""
    return sh(host, f"{bb.command('cp', 'box:' + path, '-')} | tar -xOf -")


@pytest.mark.parametrize("state", STATES)
def test_cp_to_container(bb: Any, host: Any, data_root: str, box: dict[str, str], state: str) -> None:
    h = box["h"]
    _set_state(bb, state)
    src = f"{h}/src"
    assert bb.ok("cp", f"{src}/file", "box:/tmp/") == ""
    assert _read(bb, host, "/tmp/file") == "file-content\n"
    bb.ok("cp", f"{src}/file", "box:/tmp/renamed")
    assert _read(bb, host, "/tmp/renamed") == "file-content\n"
    bb.ok("cp", f"{src}/file", "box:/tmp/renamed")  # overwrite an existing file
    bb.ok("cp", f"{src}/tree", "box:/tmp/")
    bb.ok("cp", f"{src}/tree", "box:/tmp/tree-new")
    bb.ok("cp", f"{src}/tree/sub", "box:/tmp/dot")  # a dir to a new name: /tmp/dot holds b
    bb.ok("cp", f"{src}/tree/.", "box:/tmp/dot")  # the contents of tree merged into it
    assert _read(bb, host, "/tmp/dot/b") == "b\n"
    assert _read(bb, host, "/tmp/tree/sub/b") == "b\n"
    assert _read(bb, host, "/tmp/tree-new/a") == "a\n"
    assert _read(bb, host, "/tmp/dot/a") == "a\n" and _read(bb, host, "/tmp/dot/sub/b") == "b\n"
    # - : a tar on stdin, into a directory
    sh(host, f"tar -C {src}/tree -cf {h}/in.tar .")
    assert bb.ok("cp", "-", "box:/root", stdin=f"{h}/in.tar") == ""
    assert _read(bb, host, "/root/sub/b") == "b\n"
    r = bb("cp", "-", "box:/tmp/renamed", stdin=f"{h}/in.tar")
    assert r.rc == 1 and 'destination "box:/tmp/renamed" must be a directory' in r.stderr
    # into the volume: the data lands in its _data on the host
    bb.ok("cp", f"{src}/file", "box:/vol/")
    assert host.file(f"{data_root}/volumes/vol/_data/file").content_string == "file-content\n"
    # refused: the ro bind, missing sources and destinations
    r = bb("cp", f"{src}/file", "box:/ro/")
    assert r.rc == 1 and "mounted volume is marked read-only" in r.stderr
    assert not host.file(f"{h}/ro/file").exists
    r = bb("cp", f"{src}/nofile", "box:/tmp/")
    assert r.rc == 1 and f"lstat {src}/nofile: no such file or directory" in r.stderr
    r = bb("cp", f"{src}/file", "box:/nonexist/dir/")
    assert r.rc == 1
    r = bb("cp", f"{src}/tree", "box:/etc/passwd")
    assert r.rc == 1 and "cannot copy directory" in r.stderr
    if state == "running":
        assert bb.ok("exec", "box", "cat", "/tmp/file", "/vol/file") == "file-content\nfile-content\n"
    else:
        assert helpers.mounts_under(host, data_root) == []
        bb.ok("start", "box")
        assert bb.ok("exec", "box", "cat", "/tmp/dot/a", "/root/sub/b") == "a\nb\n"


def test_cp_to_a_read_only_rootfs_is_refused(bb: Any, host: Any, scratch: Any) -> None:
    h = scratch("cp-ro")
    sh(host, f"echo x > {h}/f")
    bb.ok("run", "-d", *NONE, "--read-only", "--name", "rofs", "-v", "rw:/data", "busybox", "sleep", "1000")
    r = bb("cp", f"{h}/f", "rofs:/tmp/")
    assert r.rc == 1 and "container rootfs is marked read-only" in r.stderr
    bb.ok("cp", f"{h}/f", "rofs:/data/")  # a volume on a read-only rootfs is writable
    assert bb.ok("exec", "rofs", "cat", "/data/f") == "x\n"


# -- A.9: symlinks that name host paths, races, container binaries ---------------------------------
@pytest.fixture
def trap(bb: Any, host: Any, scratch: Any) -> Iterator[dict[str, str]]:
    """A running container ``trap`` whose filesystem holds symlinks to host paths: ``/safe`` -> a
    host dir holding ``host-file`` (C1/C2 of moby's TestUntarWithMaliciousSymlinks), ``/up`` -> the
    same dir by ``..``, ``/pwn`` -> ``/etc``; and fake ``tar``/``xz``/``gzip``/``unpigz``/``getent``
    that would leave a mark on the host if anything ran them in host context."""
    outside = scratch("cp-outside")
    mark = f"{outside}/container-binary-ran"
    sh(host, f"mkdir {outside}/dir && printf {shlex.quote(HOST_TEXT)} > {outside}/dir/host-file")
    fake = f"#!/bin/sh\\ntouch {mark}\\n"
    setup = (
        f"ln -s {outside}/dir /safe && ln -s ../../../../../../../../..{outside}/dir /up && ln -s /etc /pwn && "
        f"for b in tar xz gzip unpigz getent; do printf '{fake}' > /usr/bin/$b; chmod 755 /usr/bin/$b; done && "
        "echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd"
    )
    bb.ok("run", "-d", *NONE, "--name", "trap", "-u", "nobody", "busybox", "sleep", "1000")
    bb.ok("exec", "-u", "root", "trap", "sh", "-c", setup)
    payload = scratch("cp-payload")
    sh(
        host,
        f"printf pwn3d > {payload}/host-file && mkdir {payload}/d && printf pwn3d > {payload}/d/host-file",
    )
    unique = f"mdtest-cp-{int(time.time() * 1e6)}"
    sh(host, f"printf pwn3d > {payload}/{unique}")
    paths = {"outside": outside, "payload": payload, "mark": mark, "unique": unique}
    try:
        yield paths
    finally:
        # if a bug ever wrote through /pwn, the host's /etc gets its file back out
        host.run(f"rm -f /etc/{unique}")


def _host_file_intact(host: Any, outside: str) -> None:
    assert host.file(f"{outside}/dir/host-file").content_string == HOST_TEXT
    assert sh(host, f"ls -A {outside}/dir").split() == ["host-file"]


def test_cp_into_symlinks_to_host_paths_stays_in_the_container(
    bb: Any, host: Any, trap: dict[str, str]
) -> None:
    outside, payload, unique = trap["outside"], trap["payload"], trap["unique"]
    # C1: extracting host-file "into" /safe must not reach the host dir /safe names
    for dest in ("trap:/safe", "trap:/safe/", "trap:/up/", "trap:/safe/host-file"):
        r = bb("cp", f"{payload}/host-file", dest)
        _host_file_intact(host, outside)
        if r.rc == 0:  # then it wrote into the container's own view of that path
            path = dest.split(":", 1)[1].rstrip("/")
            assert (
                bb.ok("exec", "trap", "sh", "-c", f"cat {path}/host-file 2>/dev/null || cat {path}")
                == "pwn3d"
            )
    for dest in ("trap:/safe", "trap:/up"):
        bb("cp", f"{payload}/d", dest)
        bb("cp", f"{payload}/d/.", dest)
        bb("cp", "-", dest, stdin=f"{payload}/host-file")
        _host_file_intact(host, outside)
    # /pwn -> /etc is the container's /etc
    bb.ok("cp", f"{payload}/{unique}", "trap:/pwn/")
    assert not host.file(f"/etc/{unique}").exists
    assert bb.ok("exec", "trap", "cat", f"/etc/{unique}") == "pwn3d"
    assert not host.file(trap["mark"]).exists


def test_cp_out_of_symlinks_to_host_paths_never_reads_the_host(
    bb: Any, host: Any, trap: dict[str, str]
) -> None:
    outside = trap["outside"]
    out = f"{outside}/out"
    sh(host, f"mkdir {out}")
    # C2: the seven read cases, and the relative climb
    for src in ("/safe", "/safe/", "/safe/host-file", "/safe/.", "/up/host-file", "/up/", "/"):
        for follow in ([], ["-L"]):
            r = helpers.run(
                host, f"{bb.command('cp', *follow, 'trap:' + src, '-')} | grep -ac {shlex.quote(HOST_TEXT)}"
            )
            assert r.stdout.strip() == "0", (src, follow)
    bb.ok("cp", "trap:/safe", f"{out}/safe")  # the link itself, not its target
    assert host.file(f"{out}/safe").is_symlink and host.file(f"{out}/safe").linked_to == f"{outside}/dir"
    r = bb("cp", "-L", "trap:/safe", f"{out}/followed")
    assert r.rc == 1 and "No such container:path" in r.stderr
    # /pwn/ is the container's /etc, not the host's
    bb.ok("cp", "trap:/pwn/", f"{out}/etc")
    assert "evil:x:0:0" in host.file(f"{out}/etc/passwd").content_string
    assert not host.file(f"{out}/etc/shadow").exists  # busybox has none; the host has one
    r = bb("cp", "trap:/pwn/shadow", f"{out}/shadow")
    assert r.rc == 1 and "No such container:path: trap:/pwn/shadow" in r.stderr
    # -a: the owner is the container's user (nobody), looked up in its passwd read as text
    bb.ok("cp", "-a", f"{trap['payload']}/host-file", "trap:/tmp/owned")
    assert bb.ok("exec", "trap", "stat", "-c", "%u:%g", "/tmp/owned") == "65534:65534\n"
    assert not host.file(trap["mark"]).exists  # no container binary ever ran on the host
    _host_file_intact(host, outside)


def test_cp_while_the_container_swaps_a_dir_for_a_host_symlink(
    bb: Any, host: Any, trap: dict[str, str]
) -> None:
    """C3: the container replaces /race (a dir holding host-file) by a symlink to the host dir, in a
    tight loop, while cp reads and writes /race/host-file. Whatever wins a given race, no host
    byte is read and no host file is written."""
    outside, payload = trap["outside"], trap["payload"]
    loop = (
        f"while :; do rm -rf /race; mkdir /race; echo container > /race/host-file; rm -rf /race; "
        f"ln -s {outside}/dir /race; done"
    )
    bb.ok("exec", "-d", "-u", "root", "trap", "sh", "-c", loop)
    n = 15
    reads = " ".join(
        [f"{bb.command('cp', 'trap:/race/host-file', '-')} 2>/dev/null;"] * n
        + [f"{bb.command('cp', 'trap:/race/', '-')} 2>/dev/null;"] * n
    )
    r = helpers.run(host, f"( {reads} ) | grep -ac {shlex.quote(HOST_TEXT)}")
    assert r.stdout.strip() == "0"
    writes = " ".join(
        [f"{bb.command('cp', payload + '/host-file', 'trap:/race/')} 2>/dev/null;"] * n
        + [f"{bb.command('cp', payload + '/d/.', 'trap:/race')} 2>/dev/null;"] * n
    )
    helpers.run(host, writes)
    _host_file_intact(host, outside)
    assert not host.file(trap["mark"]).exists


# -- export ----------------------------------------------------------------------------------------
def _listing(host: Any, tar: str) -> list[str]:
    """``mode uid/gid size name [-> link]`` of each entry (times differ between any two runs)."""
    out = sh(host, f'tar --numeric-owner -tvf {shlex.quote(tar)} | awk \'{{$4=""; $5=""; print}}\'')
    return [" ".join(line.split()) for line in out.splitlines()]


def test_export_matches_docker_export(
    bb: Any, host: Any, data_root: str, dockerd: Any, busybox_rootfs_tar: str, scratch: Any
) -> None:
    out = scratch("export")
    script = (
        "echo hi > /root/new; rm /etc/group; mkdir -p /var/x; ln -s /etc/passwd /var/x/link; echo v > /data/v"
    )
    for side in (bb, dockerd):
        side.ok("import", "-c", 'CMD ["sh"]', busybox_rootfs_tar, "bbx")
        side.ok("run", *NONE, "--name", "ex", "-v", "exvol:/data", "bbx", "sh", "-c", script)
    try:
        bb.ok("export", "-o", f"{out}/ours.tar", "ex")
        dockerd.ok("export", "-o", f"{out}/docker.tar", "ex")
        ours, theirs = _listing(host, f"{out}/ours.tar"), _listing(host, f"{out}/docker.tar")
        assert ours == theirs and len(ours) > 100
        assert "-rw-r--r-- 0/0 3 root/new" in ours and "drwxr-xr-x 0/0 0 data/" in ours
        assert not any(line.endswith(" etc/group") for line in ours)  # deleted: no entry, no whiteout
        assert not any(".wh." in line for line in ours) and not any(" data/v" in line for line in ours)
        assert sh(host, f"tar -xOf {out}/ours.tar root/new") == "hi\n"
        assert helpers.mounts_under(host, data_root) == []
        # stdout gives the same bytes' entries
        assert sh(host, f"{bb.command('export', 'ex')} | tar -tf - | wc -l").strip() == str(len(ours))
    finally:
        dockerd.docker("rm", "-f", "-v", "ex")
        dockerd.docker("volume", "rm", "exvol")


def test_export_of_a_running_container_and_errors(bb: Any, host: Any, data_root: str, scratch: Any) -> None:
    out = scratch("export-run")
    cid = bb.ok(
        "run", "-d", *NONE, "--name", "live", "busybox", "sh", "-c", "echo up > /tmp/up; sleep 1000"
    ).strip()
    merged = merged_of(host, data_root, cid)
    deadline = time.monotonic() + 10
    while not host.file(f"{merged}/tmp/up").exists and time.monotonic() < deadline:
        time.sleep(0.05)
    bb.ok("export", "-o", f"{out}/live.tar", "live")
    names = sh(host, f"tar -tf {out}/live.tar").splitlines()
    assert "tmp/up" in names and ".dockerenv" in names and "bin/busybox" in names
    assert not any(n.startswith(("proc/", "sys/")) and n not in ("proc/", "sys/") for n in names)
    assert host.mount_point(merged).exists  # the container's own mount stays
    assert bb.ok("exec", "live", "cat", "/tmp/up") == "up\n"
    r = bb("export", "nosuch")
    assert r.rc != 0 and "No such container: nosuch" in r.stderr
    r = bb("export", "-o", f"{out}/missing-dir/x.tar", "live")
    assert r.rc != 0 and not host.file(f"{out}/missing-dir").exists
    assert sorted(sh(host, f"ls -A {out}").split()) == ["live.tar"]  # no temp file left
