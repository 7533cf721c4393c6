"""Chapter 1 pure logic, no root: spec checks, mount plan, capability masks, users, flag names."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from minidocker.errors import InvalidInput
from minidocker.kernel import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC
from minidocker.kernel import ns as kns
from minidocker.namespaces import caps, users
from minidocker.namespaces.process import exit_code
from minidocker.namespaces.spec import (
    MASKED_PATHS,
    Bind,
    Hierarchy,
    ProcessSpec,
    cgroup_hierarchies,
    clone_flags,
    exit_code_for_exec_error,
    lookpath,
    mount_plan,
)


def spec(**kw: object) -> ProcessSpec:
    kw.setdefault("args", ["sh"])
    kw.setdefault("rootfs", "/r")
    kw.setdefault("namespaces", {"mnt", "uts", "ipc", "pid", "net", "cgroup"})
    return ProcessSpec(**kw)  # type: ignore[arg-type]


# -- flag names ------------------------------------------------------------------------------------
def test_clone_flag_names() -> None:
    assert kns.clone_flag_names(0) == "0"
    flags = clone_flags({"mnt", "uts", "ipc", "pid", "net"})
    assert kns.clone_flag_names(flags) == "CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET"
    assert flags == 0x20000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000
    assert kns.clone_flag_names(kns.CLONE_NEWCGROUP | 0x1) == "CLONE_NEWCGROUP|0x1"


# -- spec validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"args": []}, "no command"),
        ({"namespaces": {"uts", "pid"}}, "mount namespace"),
        ({"namespaces": {"mnt", "bogus"}}, "unknown namespace"),
        ({"netns_path": "/run/netns/x"}, "leave 'net' out"),
        ({"hostname": "x", "namespaces": {"mnt"}}, "UTS namespace"),
        ({"cwd": "relative"}, "absolute"),
        ({"binds": [Bind("/a", "rel")]}, "absolute"),
    ],
)
def test_validate_refuses(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        spec(**kw).validate()


def test_defaults_are_dockers() -> None:
    s = ProcessSpec(args=["sh"], rootfs="/r")
    assert {"mnt", "uts", "ipc", "pid", "net"} <= s.namespaces
    assert ("cgroup" in s.namespaces) == os.path.exists("/proc/self/ns/cgroup")
    assert s.masked_paths == list(MASKED_PATHS) and "/proc/kcore" in s.masked_paths
    assert s.readonly_paths == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert s.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    s.validate()


# -- mount plan ------------------------------------------------------------------------------------
def test_mount_plan_defaults() -> None:
    plan = mount_plan(spec())
    assert [m.destination for m in plan] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
    ]  # fmt: skip
    by = {m.destination: m for m in plan}
    assert by["/proc"].flags == MS_NOSUID | MS_NOEXEC | MS_NODEV
    assert by["/dev"].data == "mode=755,size=65536k"
    assert by["/dev/pts"].data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert by["/dev/shm"].data == "mode=1777,size=65536k"
    assert by["/sys"].flags & MS_RDONLY and by["/sys/fs/cgroup"].readonly
    assert by["/sys/fs/cgroup"].kind == "cgroup"


def test_mount_plan_privileged_and_without_cgroupns() -> None:
    by = {m.destination: m for m in mount_plan(spec(privileged=True))}
    assert not by["/sys"].flags & MS_RDONLY and not by["/sys/fs/cgroup"].readonly
    plan = mount_plan(spec(namespaces={"mnt", "pid"}))
    assert "/sys/fs/cgroup" not in [m.destination for m in plan]


def test_binds_come_last_parents_first_and_override_defaults() -> None:
    binds = [Bind("/v/b", "/data/sub/b"), Bind("/v/a", "/data", readonly=True), Bind("/h/shm", "/dev/shm/")]
    plan = mount_plan(spec(binds=binds))
    dests = [m.destination for m in plan]
    assert dests.count("/dev/shm") == 1  # the bind replaced the default tmpfs
    assert dests[-3:] == ["/data", "/dev/shm", "/data/sub/b"]
    data = plan[-3]
    assert (data.kind, data.source, data.flags, data.readonly) == ("bind", "/v/a", MS_BIND | MS_REC, True)


# -- cgroup hierarchies ------------------------------------------------------------------------------
MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 27 0:40 / /mnt/other rw,relatime - cgroup cgroup rw,pids
51 35 0:32 /sub /sys/fs/cgroup/memory/sub rw - cgroup cgroup rw,memory
"""


def test_cgroup_hierarchies_v1() -> None:
    assert cgroup_hierarchies(MOUNTINFO) == [
        Hierarchy("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
        Hierarchy("memory", "cgroup", "memory"),
        Hierarchy("systemd", "cgroup", "xattr,name=systemd"),  # never release_agent (CVE-2022-0492)
        Hierarchy("unified", "cgroup2", "nsdelegate"),
    ]


def test_cgroup_hierarchies_v2_only() -> None:
    text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    assert cgroup_hierarchies(text) == [Hierarchy("", "cgroup2", "nsdelegate,memory_recursiveprot")]


# -- capabilities --------------------------------------------------------------------------------
def test_default_mask_is_the_14() -> None:
    assert len(caps.DEFAULT) == 14
    assert caps.mask(list(caps.DEFAULT)) == caps.DEFAULT_MASK == 0x00000000A80425FB
    assert caps.tweak() == list(caps.DEFAULT)
    assert caps.names_of(caps.DEFAULT_MASK) == sorted(caps.DEFAULT, key=caps.NUMBERS.__getitem__)
    assert caps.NUMBERS["CAP_SYS_ADMIN"] == 21 and caps.NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40


def test_tweak_like_docker() -> None:
    assert caps.mask(caps.tweak(cap_drop=["net_raw"])) == caps.DEFAULT_MASK & ~(1 << 13)
    assert "CAP_SYS_ADMIN" in caps.tweak(cap_add=["SYS_ADMIN"])
    assert caps.tweak(cap_drop=["ALL"], cap_add=["chown"]) == ["CAP_CHOWN"]
    everything = caps.tweak(cap_add=["all"], cap_drop=["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in everything and len(everything) == 40
    assert caps.mask(caps.tweak(privileged=True)) == (1 << 41) - 1
    assert caps.mask(caps.tweak(privileged=True, last_cap=37)) == (1 << 38) - 1
    with pytest.raises(InvalidInput, match="unknown capability"):
        caps.tweak(cap_add=["CAP_FLY"])


# -- users --------------------------------------------------------------------------------------------
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = b"root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n"


@pytest.mark.parametrize(
    ("user", "group_add", "expected"),
    [
        ("", [], users.ExecUser(0, 0, [0, 10], "/root")),  # the primary gid always first
        ("app", [], users.ExecUser(1000, 1000, [1000, 10, 50], "/home/app")),
        ("1000", [], users.ExecUser(1000, 1000, [1000, 10, 50], "/home/app")),
        ("app:staff", [], users.ExecUser(1000, 50, [50], "/home/app")),  # explicit group: no supplementary
        ("app:4242", [], users.ExecUser(1000, 4242, [4242], "/home/app")),
        ("777", [], users.ExecUser(777, 0, [0], "/")),  # numeric, not in passwd
        ("nobody", ["staff", "99", "wheel"], users.ExecUser(65534, 65534, [65534, 50, 99, 10], "/")),
    ],
)
def test_resolve_user(user: str, group_add: list[str], expected: users.ExecUser) -> None:
    assert users.resolve(user, PASSWD, GROUP, group_add) == expected


def test_resolve_user_errors_and_missing_files() -> None:
    with pytest.raises(InvalidInput, match="unable to find user ghost: no matching entries in passwd file"):
        users.resolve("ghost", PASSWD, GROUP)
    with pytest.raises(InvalidInput, match="unable to find group ghosts"):
        users.resolve("app:ghosts", PASSWD, GROUP)
    with pytest.raises(InvalidInput, match="Unable to find group ghosts"):
        users.resolve("app", PASSWD, GROUP, ["ghosts"])
    assert users.resolve("", None, None) == users.ExecUser(0, 0, [0], "/")  # an image without /etc/passwd
    assert users.resolve("5:6", None, None) == users.ExecUser(5, 6, [6], "/")


# -- exec lookup and exit codes ---------------------------------------------------------------------
def test_lookpath(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    plain = bindir / "plain"
    plain.write_text("x")
    plain.chmod(0o644)
    env = [f"PATH=/nonexistent:{bindir}"]
    assert lookpath("tool", env) == (str(tool), 0, "")
    assert lookpath("nope", env) == (None, 127, 'exec: "nope": executable file not found in $PATH')
    assert lookpath("plain", env)[1] == 127  # not executable: PATH search goes on, then "not found"
    assert lookpath(str(plain), env) == (None, 126, f'exec: "{plain}": permission denied')
    assert lookpath(str(bindir), env) == (None, 126, f'exec: "{bindir}": permission denied')
    missing = lookpath(str(tmp_path / "missing"), env)
    assert missing[1] == 127 and missing[2].endswith("no such file or directory")
    assert stat.S_ISREG(os.stat(tool).st_mode)


def test_exit_codes() -> None:
    import errno

    assert exit_code_for_exec_error(errno.ENOENT) == 127
    assert exit_code_for_exec_error(errno.EACCES) == 126
    assert exit_code_for_exec_error(errno.ENOEXEC) == 126
    assert exit_code(42 << 8) == 42
    assert exit_code(9) == 137  # killed by SIGKILL
    assert exit_code(15) == 143
