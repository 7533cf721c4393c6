"""Lifecycle logic without root: the monitor-lock protocol, env, restart policy, reconcile."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from minidocker.container.hostconfig import HostConfig, RestartPolicy
from minidocker.container.lifecycle import EXIT_UNKNOWN, Runtime
from minidocker.container.monitor import _should_restart, container_env
from minidocker.container.state import Container
from minidocker.image.config import container_config
from minidocker.image.store import Stores

CID = "ab" * 32


@pytest.fixture
def rt(tmp_path) -> Runtime:  # type: ignore[no-untyped-def]
    return Runtime(Stores.open(str(tmp_path / "data")), str(tmp_path / "exec"))


def _hold_lock(rt: Runtime) -> tuple[int, int]:
    """A child process holding the monitor lock, like a live monitor; returns (pid, release fd)."""
    os.makedirs(rt.exec_dir(CID), exist_ok=True)
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        fd = os.open(rt.lock_path(CID), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(ready_w, b"x")
        os.read(r, 1)
        os._exit(0)
    os.read(ready_r, 1)
    return pid, w


def test_monitor_lock_says_alive_and_wait_returns_when_released(rt: Runtime) -> None:
    assert rt.monitor_alive(CID) is False  # no lock file at all
    pid, release = _hold_lock(rt)
    try:
        assert rt.monitor_alive(CID) is True
        t0 = time.monotonic()
        assert rt.wait_monitor(CID, timeout=0.1) is False
        assert time.monotonic() - t0 >= 0.1
    finally:
        os.write(release, b"x")
        os.waitpid(pid, 0)
    assert rt.monitor_alive(CID) is False
    assert rt.wait_monitor(CID, timeout=0.1) is True


def test_reconcile_marks_a_container_whose_monitor_died_as_exited(rt: Runtime) -> None:
    c = rt.containers.create(
        image_id="sha256:" + "0" * 64, config=container_config(Cmd=["sh"]), host_config=HostConfig()
    )
    c.state.running, c.state.pid, c.state.started_at = True, 999999, "2024-01-01T00:00:00Z"
    rt.containers.save(c)
    got = rt.get(c.id)  # no monitor lock held: the monitor is gone
    assert got.state.running is False and got.state.pid == 0
    assert got.state.exit_code == EXIT_UNKNOWN  # nothing of it was left to kill
    assert got.state.finished_at != "0001-01-01T00:00:00Z"


def test_container_env_order_like_docker() -> None:
    c = Container(
        id=CID, name="/x", image="", config=container_config(Hostname="h", Env=["PATH=/x", "A=1"], Tty=True)
    )
    assert container_env(c) == ["PATH=/x", "HOSTNAME=h", "TERM=xterm", "A=1"]
    assert container_env(c, tty=False, extra=["A=2", "B=3"]) == ["PATH=/x", "HOSTNAME=h", "A=2", "B=3"]


@pytest.mark.parametrize(
    ("policy", "count", "code", "manual", "want"),
    [
        ("no", 0, 1, False, False),
        ("always", 5, 0, False, True),
        ("always", 0, 0, True, False),  # a stop wins over the policy
        ("unless-stopped", 0, 1, False, True),
        ("on-failure", 0, 0, False, False),
        ("on-failure", 7, 1, False, True),  # no maximum
        ("on-failure:2", 1, 1, False, True),
        ("on-failure:2", 2, 1, False, False),
    ],
)
def test_restart_policy_decision(policy: str, count: int, code: int, manual: bool, want: bool) -> None:
    name, _, n = policy.partition(":")
    hc = HostConfig(restart_policy=RestartPolicy(name=name, maximum_retry_count=int(n or 0)))
    c = Container(id=CID, name="/x", image="", host_config=hc, restart_count=count)
    c.has_been_manually_stopped = manual
    assert _should_restart(c, code) is want
