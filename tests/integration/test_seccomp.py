"""seccomp next to a real dockerd 20.10: the same filter status, the same denied calls, the same
recorded profile (``Pair`` and its images come from test_run_parity)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration import test_run_parity as parity
from tests.integration.test_run_parity import Pair

pair = parity.pair  # the module-scoped fixture: dockerd and minidocker holding the same images

DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
}


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        ([], "2"),
        (["--security-opt", "seccomp=unconfined"], "0"),
        (["--init"], "2"),
        (["--security-opt", "no-new-privileges", "--init"], "2"),
        (["-u", "nobody", "--cap-add", "SYS_ADMIN"], "2"),
    ],
    ids=["default", "unconfined", "init", "nnp-init", "user-sys-admin"],
)
def test_filter_status_like_docker(pair: Pair, flags: list[str], mode: str) -> None:
    out = pair.same(*flags, "busybox", "grep", "Seccomp", "/proc/self/status", "/proc/1/status")
    assert f"/proc/self/status:Seccomp:\t{mode}\n" in out and f"/proc/1/status:Seccomp:\t{mode}\n" in out


def test_privileged_is_unconfined(pair: Pair) -> None:
    # Docker's --privileged is unconfined too (WithSeccomp), but its runc cannot start one on this
    # host (see test_run_parity.test_privileged_gets_every_capability): ours alone
    out = pair.md.ok(
        "run", "--rm", "--network", "none", "--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status"
    )
    assert out == "Seccomp:\t0\n"
    ours = pair.md("run", "--rm", "--network", "none", "--privileged", "busybox", "unshare", "-m", "true")
    assert ours.rc == 0, helpers.describe(ours)


@pytest.mark.parametrize(
    ("flags", "rc"),
    [
        ([], 1),  # unshare(CLONE_NEWNS): EPERM from the filter (and no CAP_SYS_ADMIN anyway)
        (["--cap-add", "SYS_ADMIN"], 0),  # the profile's CAP_SYS_ADMIN rules allow it
        (["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"], 0),
    ],
    ids=["default", "sys-admin", "sys-admin-unconfined"],
)
def test_unshare_like_docker(pair: Pair, flags: list[str], rc: int) -> None:
    pair.same(*flags, "busybox", "unshare", "-m", "true", rc=rc)


def test_custom_profile_file(pair: Pair, host: Any) -> None:
    root = helpers.make_temp_dir(host, "md-seccomp")
    profile = f"{root}/deny-mkdir.json"
    try:
        helpers.check(host, f"printf %s {helpers.q(json.dumps(DENY_MKDIR))} > {profile}")
        flags = ["--security-opt", f"seccomp={profile}", "busybox"]
        out = pair.same(*flags, "sh", "-c", "mkdir /tmp/x; echo rc=$?; grep ^Seccomp: /proc/self/status")
        assert out.startswith("rc=1") and "Seccomp:\t2" in out
        theirs, ours = pair.run("--security-opt", f"seccomp={root}/missing.json", "busybox", "true")
        assert theirs.rc == ours.rc == 125
        assert "opening seccomp profile" in ours.stderr and "no such file or directory" in ours.stderr
    finally:
        helpers.remove_tree(host, root)


def test_profile_recorded_like_docker(pair: Pair, host: Any) -> None:
    root = helpers.make_temp_dir(host, "md-seccomp")
    profile = f"{root}/deny-mkdir.json"
    name = "par-seccomp"
    try:
        helpers.check(host, f"printf %s {helpers.q(json.dumps(DENY_MKDIR, indent=2))} > {profile}")
        for opt in (None, "seccomp=unconfined", f"seccomp={profile}"):
            flags = ["--security-opt", opt] if opt else []
            got = []
            for side in (pair.docker, pair.md):
                cid = side.ok("create", "--name", name, *flags, "busybox").strip()
                base = f"{side.data_root}/containers/{cid}"
                config = json.loads(host.file(f"{base}/config.v2.json").content_string)
                hostconfig = json.loads(host.file(f"{base}/hostconfig.json").content_string)
                got.append((config["SeccompProfile"], hostconfig["SecurityOpt"]))
                side.ok("rm", name)
            assert got[1] == got[0], opt
        assert json.loads(got[0][0]) == DENY_MKDIR  # the file's JSON itself, compacted
    finally:
        pair.docker.docker("rm", "-f", name)
        pair.md("rm", "-f", name)
        helpers.remove_tree(host, root)


def test_exec_gets_the_containers_filter(pair: Pair) -> None:
    name = "par-sc-exec"
    try:
        for side in (pair.docker, pair.md):
            side.ok("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60")
        argv = ("exec", name, "grep", "^Seccomp:", "/proc/self/status")
        theirs, ours = pair.docker.docker(*argv), pair.md(*argv)
        assert theirs.stdout == ours.stdout == "Seccomp:\t2\n", helpers.describe(ours)
        theirs, ours = (
            pair.docker.docker("exec", name, "unshare", "-m", "true"),
            pair.md("exec", name, "unshare", "-m", "true"),
        )
        assert theirs.rc == ours.rc == 1 and ours.stderr == theirs.stderr, helpers.describe(ours)
        # runc's exec loads the container's filter whatever the exec's own flags
        out = pair.md.ok("exec", "--privileged", name, "grep", "^Seccomp:", "/proc/self/status")
        assert out == "Seccomp:\t2\n"
    finally:
        pair.docker.docker("rm", "-f", name)
        pair.md("rm", "-f", name)


def test_exec_in_a_privileged_container_is_unconfined(pair: Pair) -> None:
    name = "par-sc-exec-priv"  # ours alone: see test_privileged_is_unconfined
    try:
        pair.md.ok("run", "-d", "--name", name, "--network", "none", "--privileged", "busybox", "sleep", "60")
        assert pair.md.ok("exec", name, "grep", "^Seccomp:", "/proc/self/status") == "Seccomp:\t0\n"
    finally:
        pair.md("rm", "-f", name)
