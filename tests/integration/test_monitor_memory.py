"""The monitor of a detached container is lean (issue 3 "Speed": less memory than containerd-shim).

Once the container runs, the monitor forked from the CLI re-execs into ``minidocker.container.pump``
(same pid: still the parent of the container's PID 1, still holding its lock) and drops the CLI's
modules; the container's logs, exit state, restart policy and teardown must not notice.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration import helpers

SHIM_PSS_KIB = 11.9 * 1024  # containerd-shim-runc-v2 of the same container (benchmarks/README.md)


@pytest.fixture
def bb(md: Any, host: Any, data_root: str) -> Any:
    yield from helpers.with_busybox(md, host, data_root)


def _state(host: Any, data_root: str, cid: str) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(host.file(f"{data_root}/containers/{cid}/config.v2.json").content_string)
    return cfg


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _monitor_of(host: Any, pid: int) -> int:
    stat = host.file(f"/proc/{pid}/stat").content_string
    return int(stat.rsplit(")", 1)[1].split()[1])


def _smaps_kib(host: Any, pid: int, field: str) -> int:
    for line in host.file(f"/proc/{pid}/smaps_rollup").content_string.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/smaps_rollup")


def test_detached_monitor_is_lean_and_smaller_than_the_shim(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok("run", "-d", "--network", "none", "busybox", "sh", "-c", "echo up; sleep 1000").strip()
    pid = _state(host, data_root, cid)["State"]["Pid"]
    monitor = _monitor_of(host, pid)
    _wait_for(lambda: "minidocker.container.pump" in host.file(f"/proc/{monitor}/cmdline").content_string)
    _wait_for(lambda: bb.ok("logs", cid) == "up\n")
    pss = _smaps_kib(host, monitor, "Pss")
    assert pss < SHIM_PSS_KIB, f"monitor PSS {pss} KiB"
    bb.ok("rm", "-f", cid)
    _wait_for(lambda: host.run(f"test -e /proc/{monitor}").rc != 0)  # it exits once torn down


def test_lean_monitor_records_exit_restarts_and_tears_down(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok(
        "run", "-d", "--restart", "on-failure:2", "--network", "none", "busybox", "sh", "-c", "echo r; exit 3"
    ).strip()
    assert bb.ok("wait", cid) == "3\n"
    cfg = _state(host, data_root, cid)
    assert cfg["RestartCount"] == 2 and cfg["State"]["Running"] is False
    assert bb.ok("logs", cid) == "r\nr\nr\n"
    assert helpers.mounts_under(host, data_root) == []
    rm = bb.ok("run", "-d", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 0").strip()
    _wait_for(lambda: host.run(f"test -e {data_root}/containers/{rm}").rc != 0)
    bb.ok("rm", cid)
