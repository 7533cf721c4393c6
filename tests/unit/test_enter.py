"""``namespaces.enter`` without root: the spec checks, the namespaces to join, Docker's error lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from minidocker.errors import CannotExecute, InvalidInput, NotFound
from minidocker.namespaces.enter import JOIN_ORDER, ExecSpec, exec_error, namespaces_to_join

OCI = "OCI runtime exec failed: exec failed: unable to start container process: "


def test_runtime_failures_are_126_with_dockers_prefix() -> None:
    for code in (126, 127):
        err = exec_error(code, 'exec: "nosuchcmd": executable file not found in $PATH')
        assert isinstance(err, CannotExecute) and err.exit_code == 126
        assert str(err) == f'{OCI}exec: "nosuchcmd": executable file not found in $PATH: unknown'


def test_not_a_directory_gets_dockers_hint() -> None:
    err = exec_error(126, 'chdir to cwd ("/etc/passwd") set in config.json failed: not a directory')
    assert str(err).endswith(
        "not a directory: unknown: Are you trying to mount a directory onto a file (or vice-versa)? "
        "Check if the specified host path exists and is the expected type"
    )


def test_daemon_side_failures_are_printed_verbatim() -> None:
    err = exec_error(125, "unable to find user x: no matching entries in passwd file")
    assert str(err) == "unable to find user x: no matching entries in passwd file"
    assert err.exit_code == 126  # what docker exec exits with


def test_spec_validation() -> None:
    with pytest.raises(InvalidInput, match="no command"):
        ExecSpec(args=[], env=[]).validate()
    with pytest.raises(InvalidInput, match="needs to be an absolute path"):
        ExecSpec(args=["sh"], env=[], cwd="tmp").validate()
    with pytest.raises(InvalidInput, match="cannot join namespace.*user"):
        ExecSpec(args=["sh"], env=[], namespaces={"mnt", "user"}).validate()
    ExecSpec(args=["sh"], env=[], namespaces={"mnt", "net"}).validate()


def test_our_own_namespaces_are_not_joined_and_mnt_is_required() -> None:
    with pytest.raises(InvalidInput, match="shares our mount namespace"):
        namespaces_to_join(os.getpid())
    joins = namespaces_to_join(os.getpid(), {"net", "mnt", "uts"})
    assert [j.name for j in joins] == ["uts", "net", "mnt"]  # runc's order, whatever the set's
    assert [j.path for j in joins] == [f"/proc/{os.getpid()}/ns/{n}" for n in ("uts", "net", "mnt")]
    st = os.stat("/proc/self/ns/net")
    assert joins[1].inode == (st.st_dev, st.st_ino)
    assert list(JOIN_ORDER) == ["ipc", "uts", "net", "pid", "mnt", "cgroup"]


def test_a_gone_or_zombie_target_is_not_running() -> None:
    with pytest.raises(NotFound, match="is not running"):
        namespaces_to_join(2**22 + 54321)
    zombie = subprocess.Popen(["true"])
    try:
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            pass
        with pytest.raises(NotFound, match="is not running"):
            namespaces_to_join(zombie.pid, {"mnt"})
    finally:
        zombie.wait()
