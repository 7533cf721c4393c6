"""The default bridge's grace period (issue 5, speed; chapter 6, minidocker.network.reaper).

The default bridge outlives its last container by ``$MINIDOCKER_BRIDGE_LINGER`` seconds: a ``run``
meanwhile reuses it (no bridge created, no iptables command), and a detached reaper removes it,
its rules and the subnet choice once the period is over. The suite runs with the period at 0
(conftest); these tests pass their own value on each command. Every test ends with the host
clean: no bridge, rule or reaper process of this data root.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import helpers

pytestmark = pytest.mark.root

ENV = "MINIDOCKER_BRIDGE_LINGER"


def _bridge(md: Any) -> str:
    return json.loads(md.ok("network", "inspect", "bridge"))[0]["Options"]["com.docker.network.bridge.name"]


def _reapers(host: Any, md: Any) -> list[str]:
    return [p for p in helpers.processes_mentioning(host, md.data_root) if "network.reaper" in p]


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _state(md: Any, host: Any) -> dict[str, Any] | None:
    f = host.file(f"{md.data_root}/network/minidocker/bridge-linger")
    return json.loads(f.content_string) if f.exists else None


def _trace(result: Any) -> list[str]:
    assert result.rc == 0, helpers.describe(result)
    return [line[len("trace: ") :] for line in result.stderr.splitlines() if line.startswith("trace: ")]


def _gone(md: Any, host: Any, bridge: str) -> bool:
    return (
        not host.interface(bridge).exists
        and bridge not in host.run("iptables-save").stdout
        and not _reapers(host, md)
    )


@pytest.fixture
def lmd(md: Any, host: Any) -> Iterator[Any]:
    """``md`` with busybox; afterwards the host carries nothing of this data root."""
    md.ok("buildbase")
    yield md
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    md("network", "prune", "-f")  # takes a lingering default bridge down too
    bridge = _bridge(md)
    try:
        _until(lambda: _gone(md, host, bridge), 10, "the reaper to finish")
    finally:
        for line in _reapers(host, md):
            host.run(f"kill -9 {line.split()[0]}")


def test_a_run_within_the_grace_period_reuses_the_bridge(lmd: Any, host: Any) -> None:
    env = {ENV: "4"}
    first = lmd.ok("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", env=env)
    bridge = _bridge(lmd)
    assert host.interface(bridge).exists, "the bridge went with its last container"
    subnet = json.loads(lmd.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"]
    assert f"-A MINIDOCKER-FORWARD -i {bridge} ! -o {bridge} -j ACCEPT" in host.run("iptables-save").stdout
    assert len(_reapers(host, lmd)) == 1
    # the second container: the bridge is there, its rules too; netlink for the veth only
    second = lmd("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", env=env, trace=True)
    lines = _trace(second)
    assert not [x for x in lines if x.startswith(f"RTM_NEWLINK bridge {bridge}")], lines
    assert not [x for x in lines if x.startswith("iptables")], lines
    assert any(x.startswith(f"bridge {bridge} unused: it lingers 4 s") for x in lines), lines
    assert first.split()[3].rsplit(".", 1)[0] == second.stdout.split()[3].rsplit(".", 1)[0]  # same subnet
    assert json.loads(lmd.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Subnet"] == subnet
    assert len(_reapers(host, lmd)) == 1  # the one reaper, its deadline pushed back
    # after the grace period: bridge, rules, reaper, state and the subnet choice all gone
    _until(lambda: _gone(lmd, host, bridge), 15, "the lingering bridge to go")
    assert _state(lmd, host) is None
    assert json.loads(lmd.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"] == []


def test_the_reaper_leaves_the_bridge_to_a_new_container(lmd: Any, host: Any) -> None:
    lmd.ok("run", "--rm", "busybox", "true", env={ENV: "1"})
    bridge = _bridge(lmd)
    cid = lmd.ok("run", "-d", "busybox", "sleep", "60", env={ENV: "1"}).strip()
    ip = json.loads(lmd.ok("inspect", cid))[0]["NetworkSettings"]["IPAddress"]
    _until(lambda: not _reapers(host, lmd), 10, "the reaper to give up")
    assert host.interface(bridge).exists
    assert host.run(f"busybox ping -c1 -W2 {ip}").rc == 0
    assert f"-A MINIDOCKER-FORWARD -i {bridge} ! -o {bridge} -j ACCEPT" in host.run("iptables-save").stdout
    assert _state(lmd, host) is None  # the reaper that found a user cleared its deadline
    lmd.ok("rm", "-f", cid, env={ENV: "0.5"})
    _until(lambda: _gone(lmd, host, bridge), 10, "the bridge to go after its last container")


def test_runs_racing_reapers_always_get_a_working_network(lmd: Any, host: Any) -> None:
    """Deadlines falling between, before and during runs: every run gets its eth0 and address,
    whether it reused the bridge or brought a new one up after a reaper took the old one down."""
    env = {ENV: "0.3"}
    for pause in (0.0, 0.25, 0.3, 0.35, 0.5, 0.28, 0.32):
        out = lmd.ok("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", env=env)
        assert re.search(r"inet \d+\.\d+\.\d+\.\d+/\d+", out), out
        time.sleep(pause)
    bridge = _bridge(lmd)
    _until(lambda: _gone(lmd, host, bridge), 10, "the bridge to go")


def test_a_killed_reaper_is_recovered(lmd: Any, host: Any) -> None:
    lmd.ok("run", "--rm", "busybox", "true", env={ENV: "60"})
    bridge = _bridge(lmd)
    state = _state(lmd, host)
    assert state
    _until(lambda: bool((_state(lmd, host) or {}).get("reaper")), 5, "the reaper to claim the bridge")
    host.run(f"kill -9 {_state(lmd, host)['reaper']}")  # type: ignore[index]
    _until(lambda: not _reapers(host, lmd), 5, "the reaper to die")
    assert host.interface(bridge).exists
    # the next release of a container on the default network starts a new reaper
    lmd.ok("run", "--rm", "busybox", "true", env={ENV: "0.5"})
    _until(lambda: _gone(lmd, host, bridge), 10, "the new reaper to remove the bridge")
    # and `network prune` removes an unused default bridge whose reaper is gone
    lmd.ok("run", "--rm", "busybox", "true", env={ENV: "60"})
    _until(lambda: bool((_state(lmd, host) or {}).get("reaper")), 5, "the reaper to claim the bridge")
    host.run(f"kill -9 {_state(lmd, host)['reaper']}")  # type: ignore[index]
    assert host.interface(bridge).exists
    lmd.ok("network", "prune", "-f")
    assert not host.interface(bridge).exists
    assert bridge not in host.run("iptables-save").stdout
    assert _state(lmd, host) is None


def test_trace_narrates_the_reaper(lmd: Any, host: Any) -> None:
    """Under --trace the reaper keeps the command's stderr: its decisions follow the run's."""
    lines = _trace(lmd("run", "--rm", "busybox", "true", env={ENV: "0.5"}, trace=True))
    bridge = _bridge(lmd)
    steps = [
        rf"^RTM_NEWLINK bridge {bridge} ",
        rf"^bridge {bridge} unused: it lingers 0\.5 s",
        rf"^reaper (\d+) started for bridge {bridge}$",
        rf"^reaper \d+: bridge {bridge} unused for its grace period: removing it$",
        rf"^iptables -t nat -D MINIDOCKER -i {bridge} -j RETURN$",
        rf"^RTM_DELLINK {bridge}$",
    ]
    at = 0
    for pattern in steps:
        rx = re.compile(pattern)
        hits = [i for i in range(at, len(lines)) if rx.search(lines[i])]
        assert hits, f"no {pattern!r} after line {at}:\n" + "\n".join(lines[at:])
        at = hits[0] + 1
    assert not host.interface(bridge).exists  # the stream ended with the reaper


# -- the netlink helper stays warm as the bridge does (minidocker.network.helper) ----------------
def _helpers_listening(host: Any) -> list[str]:
    from minidocker.network.helper import address

    return [line for line in host.run("ss -xlpH").stdout.splitlines() if f"@{address()[1:]} " in line]


def test_the_netlink_helper_stays_warm_for_the_next_run(lmd: Any, host: Any) -> None:
    """The helper a `run` forked (pyroute2 imported) serves the next `run` within the grace
    period, and goes once the period has passed without one."""
    _until(lambda: not _helpers_listening(host), 15, "an earlier test's helper to go")
    env = {ENV: "2"}
    cmd = ("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    lmd.ok(*cmd, env=env)  # (not traced: under --trace the command would wait for the reaper)
    listening = _helpers_listening(host)
    assert listening, "the helper went with its run"
    pid = re.findall(r"pid=(\d+)", listening[0])[0]
    second = lmd(*cmd, env=env, trace=True)
    lines = _trace(second)
    assert f"netlink helper {pid}: warm: pyroute2 imported before this run" in lines, lines
    assert not [x for x in lines if x.endswith("forked by this run")], lines
    assert re.search(r"inet \d+\.\d+\.\d+\.\d+/\d+", second.stdout), second.stdout  # eth0 wired by it
    _until(lambda: not _helpers_listening(host), 10, "the helper to go after the grace period")
    _until(lambda: host.run(f"ps -o stat= -p {pid} | grep -v Z").rc != 0, 5, "the helper to exit")


IMPOSTOR = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\\0" + sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(2)
    try:
        print("got", len(c.recv(65536)), flush=True)
    except OSError:
        print("nothing", flush=True)
"""


def test_a_socket_of_another_user_on_the_helpers_name_is_not_used(lmd: Any, host: Any) -> None:
    """An abstract socket has no permissions: any user can bind the helper's name first. A run
    then checks the peer (SO_PEERCRED), sends it nothing, and forks a helper of its own."""
    import pathlib
    import shutil
    import tempfile

    from minidocker.network.helper import address

    _until(lambda: not _helpers_listening(host), 15, "an earlier test's helper to go")
    where = pathlib.Path(tempfile.mkdtemp(prefix="mdtest-impostor."))  # (nobody must read the script)
    where.chmod(0o755)
    script, log = where / "impostor.py", where / "impostor.log"
    script.write_text(IMPOSTOR)
    script.chmod(0o644)
    host.run(f"runuser -u nobody -- python3 {script} {helpers.q(address()[1:])} > {log} 2>&1 &")
    try:
        _until(lambda: log.exists() and "ready" in log.read_text(), 10, "the impostor to listen")
        lines = _trace(lmd("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0", trace=True))
        assert [x for x in lines if re.match(r"^netlink helper \d+: forked by this run$", x)], lines
        time.sleep(0.3)
        assert not re.search(r"got [1-9]", log.read_text()), log.read_text()  # not a byte was sent to it
    finally:
        host.run(f"pkill -u nobody -f {script}")
        shutil.rmtree(where, ignore_errors=True)
