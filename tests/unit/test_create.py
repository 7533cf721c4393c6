"""``run``/``create`` flags to Docker's container.Config and HostConfig (minidocker/container/create.py)."""

from __future__ import annotations

import signal

import pytest

from minidocker.container.create import (
    RunOptions,
    container_config,
    expand_env,
    host_config,
    parse_restart_policy,
    parse_signal,
    read_env_file,
)
from minidocker.container.hostconfig import no_new_privileges
from minidocker.errors import InvalidInput

IMAGE = {
    "Env": ["PATH=/usr/bin:/bin", "LANG=C"],
    "Cmd": ["sh"],
    "Entrypoint": None,
    "WorkingDir": "/srv",
    "User": "app",
    "Labels": {"from": "image", "both": "image"},
    "ExposedPorts": {"80/tcp": {}},
    "StopSignal": "SIGQUIT",
}


def test_merge_like_the_daemon() -> None:
    cfg = container_config(
        RunOptions(image="img", env=["LANG=fr", "X=1"], labels={"both": "run"}, detach=True), IMAGE
    )
    assert cfg["Env"] == ["LANG=fr", "X=1", "PATH=/usr/bin:/bin"]  # ours first, the image's after
    assert cfg["Cmd"] == ["sh"] and cfg["Entrypoint"] is None
    assert (cfg["WorkingDir"], cfg["User"], cfg["StopSignal"]) == ("/srv", "app", "SIGQUIT")
    assert cfg["Labels"] == {"both": "run", "from": "image"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["Image"] == "img"
    assert (cfg["AttachStdout"], cfg["AttachStdin"], cfg["OpenStdin"]) == (False, False, False)


def test_entrypoint_and_cmd_rules() -> None:
    image = {"Entrypoint": ["/ep"], "Cmd": ["default"]}
    cfg = container_config(RunOptions(image="i"), image)
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (["/ep"], ["default"])
    cfg = container_config(RunOptions(image="i", cmd=["x"]), image)
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (["/ep"], ["x"])
    # --entrypoint drops the image's CMD too
    cfg = container_config(RunOptions(image="i", entrypoint=["echo"]), image)
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (["echo"], None)
    # --entrypoint "" resets it: the image's CMD is not used either
    cfg = container_config(RunOptions(image="i", entrypoint=[""], cmd=["ls"]), image)
    assert (cfg["Entrypoint"], cfg["Cmd"]) == (None, ["ls"])


def test_attach_flags_for_foreground_interactive() -> None:
    cfg = container_config(RunOptions(image="i", interactive=True, tty=True), {})
    assert (cfg["AttachStdin"], cfg["AttachStdout"], cfg["OpenStdin"], cfg["StdinOnce"], cfg["Tty"]) == (
        True,
        True,
        True,
        True,
        True,
    )


def test_anonymous_volumes_join_the_images() -> None:
    cfg = container_config(RunOptions(image="i", anonymous_volumes=["/data"]), {"Volumes": {"/img": {}}})
    assert cfg["Volumes"] == {"/data": {}, "/img": {}}


@pytest.mark.parametrize(
    ("value", "name", "count"),
    [("no", "no", 0), ("", "no", 0), ("always", "always", 0), ("on-failure:3", "on-failure", 3)],
)
def test_restart_policy(value: str, name: str, count: int) -> None:
    p = parse_restart_policy(value)
    assert (p.name, p.maximum_retry_count) == (name, count)


@pytest.mark.parametrize("bad", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_restart_policy_errors(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_restart_policy(bad)


def test_signals() -> None:
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == signal.SIGTERM
    assert parse_signal("usr1") == signal.SIGUSR1
    for bad in ("NOPE", "0", "999"):
        with pytest.raises(InvalidInput, match="Invalid signal"):
            parse_signal(bad)


def test_env_expansion_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert expand_env(["A=1", "B", "C"], {"B": "2"}) == ["A=1", "B=2"]
    f = tmp_path / "env"
    f.write_text("# comment\n\nX=1\n  Y=two words\nHOME\n")
    out = read_env_file(str(f))
    assert out[:2] == ["X=1", "Y=two words"]
    f.write_text("BAD KEY=1\n")
    with pytest.raises(InvalidInput, match="whitespaces"):
        read_env_file(str(f))
    with pytest.raises(InvalidInput, match="no such file"):
        read_env_file(str(tmp_path / "missing"))


def test_host_config_flags() -> None:
    hc = host_config(RunOptions(image="i", memory=64 << 20, init=True, auto_remove=True), cgroup_v2=False)
    assert (hc.memory, hc.memory_swap) == (64 << 20, 128 << 20)  # swap defaults to twice the memory
    assert hc.init is True and hc.auto_remove is True and hc.cgroupns_mode == "host"
    assert host_config(RunOptions(image="i"), cgroup_v2=True).cgroupns_mode == "private"
    with pytest.raises(InvalidInput, match="Conflicting options"):
        host_config(RunOptions(image="i", auto_remove=True, restart="always"), cgroup_v2=False)
    with pytest.raises(InvalidInput, match="security-opt"):
        host_config(RunOptions(image="i", security_opt=["bogus"]), cgroup_v2=False)
    nnp = host_config(RunOptions(image="i", security_opt=["no-new-privileges"]), cgroup_v2=False)
    assert no_new_privileges(nnp) is True
    assert no_new_privileges(host_config(RunOptions(image="i"), cgroup_v2=False)) is False
