"""Containers that really run: `run`/`create`/`start`/`stop`/`kill`/`rm`/`wait`/`restart` (issue 3).

Black box through testinfra's ``host``: every test runs the minidocker CLI on its own data root
and asserts host state (cgroup files, mount table, processes, files in the data root) as well as
what the container printed. Each test leaves nothing behind: the ``clean`` fixture checks that no
mount, cgroup or process of this test's data root survives it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration import helpers

CAPS_DEFAULT = "00000000a80425fb"  # Docker's 14 default capabilities


@pytest.fixture
def bb(md: Any, host: Any, data_root: str, exec_root: str) -> Any:
    """``md`` with the built-in busybox image loaded; checks the host is clean afterwards."""
    md.ok("buildbase")
    yield md
    # whatever a test left running is its own bug, but the host must be clean anyway
    for cid in md("ps", "-aq", "--no-trunc").stdout.split() if md("ps", "--help").rc == 0 else []:
        md("rm", "-f", cid)
    leftovers = [m for m in helpers.mounts_under(host, data_root)]
    assert leftovers == [], f"mounts left under {data_root}: {leftovers}"
    cg = host.run("ls -d /sys/fs/cgroup/*/minidocker/* /sys/fs/cgroup/minidocker/* 2>/dev/null").stdout
    mine = [line for line in cg.split() if any(cid in line for cid in _ids(host, data_root))]
    assert mine == [], f"cgroups left: {mine}"
    assert helpers.processes_mentioning(host, data_root) == []


def _ids(host: Any, data_root: str) -> list[str]:
    return host.run(f"ls {data_root}/containers 2>/dev/null").stdout.split()


def _config(host: Any, data_root: str, cid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        host.file(f"{data_root}/containers/{cid}/config.v2.json").content_string
    )
    return data


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _cgroup_file(host: Any, controller: str, cid: str, name: str) -> str:
    """The cgroup file of a container on either cgroup version."""
    v1 = f"/sys/fs/cgroup/{controller}/minidocker/{cid}/{name}"
    if host.file(v1).exists:
        return v1
    return f"/sys/fs/cgroup/minidocker/{cid}/{name}"


# -- foreground runs, output and exit codes ------------------------------------------------------
def test_run_prints_output_and_exits_with_the_containers_code(bb: Any, host: Any, data_root: str) -> None:
    r = bb("run", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.rc == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    cid = _ids(host, data_root)[0]
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["ExitCode"] == 3 and cfg["State"]["Running"] is False
    assert cfg["State"]["Pid"] == 0 and cfg["State"]["StartedAt"] != "0001-01-01T00:00:00Z"
    assert cfg["Path"] == "sh" and cfg["Args"] == ["-c", "echo out; echo err >&2; exit 3"]
    assert cfg["Config"]["Image"] == "busybox" and cfg["HasBeenStartedBefore"] is True
    # json-file log: one record per line, stream and RFC3339Nano time
    log = host.file(f"{data_root}/containers/{cid}/{cid}-json.log")
    assert log.mode == 0o640
    records = [json.loads(line) for line in log.content_string.splitlines()]
    assert {(r["log"], r["stream"]) for r in records} == {("out\n", "stdout"), ("err\n", "stderr")}
    assert all(r["time"].endswith("Z") for r in records)
    assert host.file(f"{data_root}/containers/{cid}/hostname").content_string == cid[:12] + "\n"
    bb.ok("rm", cid)
    assert _ids(host, data_root) == []
    assert host.run(f"ls {data_root}/image/overlay2/layerdb/mounts").stdout.split() == []


@pytest.mark.parametrize(
    ("cmd", "rc", "message"),
    [
        (["nope-not-here"], 127, 'exec: "nope-not-here": executable file not found in $PATH'),
        (["/etc"], 126, "permission denied"),
        (["sh", "-c", "exit 255"], 255, ""),
        # PID 1 of a pid namespace gets no signal it has no handler for, even SIGKILL from inside
        (["sh", "-c", "kill -9 $$; echo survived"], 0, ""),
        # with --init the command is PID 2: an ordinary process, killed (128 + 9)
        (["--init", "sh", "-c", "kill -9 $$"], 137, ""),
        (["--init", "sh", "-c", "kill -TERM $$"], 143, ""),
    ],
)
def test_exit_codes_like_docker(
    bb: Any, host: Any, data_root: str, cmd: list[str], rc: int, message: str
) -> None:
    flags = [c for c in cmd if c.startswith("--")]
    cmd = [c for c in cmd if not c.startswith("--")]
    r = bb("run", "--rm", "--network", "none", *flags, "busybox", *cmd)
    assert r.rc == rc, helpers.describe(r)
    if message:
        assert message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert _ids(host, data_root) == []  # --rm removes it even when the start failed


def test_failed_start_leaves_a_created_container_with_the_error(bb: Any, host: Any, data_root: str) -> None:
    r = bb("run", "--network", "none", "--name", "broken", "busybox", "nope")
    assert r.rc == 127
    cid = _ids(host, data_root)[0]
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["ExitCode"] == 127
    assert "executable file not found" in cfg["State"]["Error"]
    assert cfg["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    assert not host.file(f"/sys/fs/cgroup/memory/minidocker/{cid}").exists
    bb.ok("rm", "broken")


def test_entrypoint_cmd_env_workdir_user(bb: Any) -> None:
    out = bb.ok(
        "run", "--rm", "--network", "none", "-e", "A=1", "-e", "B", "-w", "/tmp/new/dir", "-u", "nobody",
        "busybox", "sh", "-c", 'echo "$A|$B|$(pwd)|$(id -u):$(id -g)|$HOME|$HOSTNAME"',
        env={"B": "from-host"},
    )  # fmt: skip
    a, b, cwd, ids, home, hostname = out.strip().split("|")
    assert (a, b, cwd, ids, home) == ("1", "from-host", "/tmp/new/dir", "65534:65534", "/home")
    assert len(hostname) == 12
    out = bb.ok("run", "--rm", "--network", "none", "--entrypoint", "echo", "busybox", "a", "b")
    assert out == "a b\n"


def test_env_file(bb: Any, host: Any, scratch: Any) -> None:
    d = scratch("envfile")
    host.run(f"printf '# comment\\n\\nX=1\\nY=two words\\n' > {d}/env")
    out = bb.ok(
        "run", "--rm", "--network", "none", "--env-file", f"{d}/env", "busybox", "sh", "-c", 'echo "$X/$Y"'
    )
    assert out == "1/two words\n"


# -- namespaces and security defaults -------------------------------------------------------------
def test_namespaces_pid1_hostname_mounts_caps(bb: Any, host: Any) -> None:
    script = (
        "echo pid=$$; hostname; cat /etc/hostname; "
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
        "grep -E ' /proc | /dev | /dev/pts | /dev/shm | /dev/mqueue | /sys ' /proc/self/mounts; "
        "echo timer_list=$(wc -c < /proc/timer_list) acpi=$(ls /proc/acpi | wc -l); "
        "echo x > /proc/sys/kernel/domainname 2>/dev/null || echo procsys=ro; "
        "ls -l /dev/null | cut -c1-10; ls /proc/self/fd | tr '\\n' ' '"
    )
    out = bb.ok("run", "--rm", "--network", "none", "--hostname", "web1", "busybox", "sh", "-c", script)
    lines = out.splitlines()
    assert lines[0] == "pid=1"
    assert lines[1] == "web1" and lines[2] == "web1"
    assert f"CapEff:\t{CAPS_DEFAULT}" in lines and f"CapBnd:\t{CAPS_DEFAULT}" in lines
    assert "CapInh:\t0000000000000000" in lines
    mounts = {
        line.split()[1]: line.split()
        for line in lines
        if line.startswith(("proc ", "tmpfs ", "devpts ", "shm ", "mqueue ", "sysfs "))
    }
    assert "nosuid" in mounts["/proc"][3] and "noexec" in mounts["/proc"][3]
    assert mounts["/sys"][3].startswith("ro")
    assert "ptmxmode=666" in mounts["/dev/pts"][3]
    assert "timer_list=0 acpi=0" in lines  # masked: /dev/null over files, an empty tmpfs over dirs
    assert "procsys=ro" in lines
    assert "crw-rw-rw-" in lines
    assert lines[-1].split() == ["0", "1", "2", "3"]  # 3 = the directory ls itself opened


def test_privileges_flags(bb: Any) -> None:
    run = ("run", "--rm", "--network", "none")
    eff = "grep CapEff /proc/self/status"
    assert bb.ok(*run, "--cap-drop", "ALL", "busybox", "sh", "-c", eff).split()[1] == "0000000000000000"
    added = int(bb.ok(*run, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", eff).split()[1], 16)
    assert added == int(CAPS_DEFAULT, 16) | 1 << 21
    nnp = bb.ok(
        *run, "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"
    )
    assert nnp.split()[1] == "1"
    r = bb(*run, "--read-only", "busybox", "touch", "/x")
    assert r.rc == 1 and "Read-only file system" in r.stderr
    priv = bb.ok(
        *run, "--privileged", "busybox", "sh", "-c", "grep CapEff /proc/self/status; wc -c < /proc/timer_list"
    )
    assert priv.split()[1] != CAPS_DEFAULT and int(priv.split()[2]) > 0


# -- detached containers, cgroups, stop/kill/wait/rm ---------------------------------------------
def test_detached_container_limits_stop_and_cleanup(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok(
        "run", "-d", "--name", "lim", "--network", "none", "-m", "64m", "--memory-swap", "128m",
        "--cpu-shares", "512", "--cpus", "0.5", "--cpuset-cpus", "0", "--pids-limit", "50",
        "busybox", "sleep", "1000",
    ).strip()  # fmt: skip
    assert len(cid) == 64
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["Running"] is True and cfg["State"]["Pid"] > 0
    pid = cfg["State"]["Pid"]
    assert host.process.get(pid=pid).args == "sleep 1000"
    v1 = host.file(f"/sys/fs/cgroup/memory/minidocker/{cid}").exists
    if v1:
        expect = {
            ("memory", "memory.limit_in_bytes"): "67108864",
            ("memory", "memory.memsw.limit_in_bytes"): "134217728",
            ("cpu", "cpu.shares"): "512",
            ("cpu", "cpu.cfs_quota_us"): "50000",
            ("cpu", "cpu.cfs_period_us"): "100000",
            ("cpuset", "cpuset.cpus"): "0",
            ("pids", "pids.max"): "50",
        }
        for (ctl, name), value in expect.items():
            path = f"/sys/fs/cgroup/{ctl}/minidocker/{cid}/{name}"
            if name == "memory.memsw.limit_in_bytes" and not host.file(path).exists:
                continue  # no swap accounting on this kernel
            assert host.file(path).content_string.strip() == value, path
            assert str(pid) in host.file(f"/sys/fs/cgroup/{ctl}/minidocker/{cid}/cgroup.procs").content_string
    else:
        assert host.file(f"/sys/fs/cgroup/minidocker/{cid}/memory.max").content_string.strip() == "67108864"
        assert host.file(f"/sys/fs/cgroup/minidocker/{cid}/pids.max").content_string.strip() == "50"
    mount_id = host.file(f"{data_root}/image/overlay2/layerdb/mounts/{cid}/mount-id").content_string
    merged = f"{data_root}/overlay2/{mount_id}/merged"
    assert host.mount_point(merged).exists and host.mount_point(merged).filesystem == "overlay"
    # config.v2.json and hostconfig.json in Docker's shape
    hc = json.loads(host.file(f"{data_root}/containers/{cid}/hostconfig.json").content_string)
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"], hc["NanoCpus"], hc["PidsLimit"]) == (
        67108864, 134217728, 512, 500000000, 50,
    )  # fmt: skip
    t0 = time.monotonic()
    assert bb.ok("stop", "-t", "1", "lim") == "lim\n"
    assert time.monotonic() - t0 < 5
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["Running"] is False and cfg["State"]["ExitCode"] == 137  # sleep ignores TERM as PID 1
    assert cfg["HasBeenManuallyStopped"] is True
    assert not host.mount_point(merged).exists
    assert not host.file(_cgroup_file(host, "memory", cid, "")).exists
    assert not host.process.filter(pid=pid)
    assert bb.ok("wait", "lim") == "137\n"
    assert bb.ok("rm", "lim") == "lim\n"
    assert _ids(host, data_root) == []


def test_stop_signal_and_kill_signal(bb: Any, host: Any, data_root: str) -> None:
    loop = 'trap "echo got-$1; exit $2" {sig}; echo ready; while true; do sleep 0.05; done'
    cid = bb.ok(
        "run", "-d", "--network", "none", "--stop-signal", "USR1", "busybox", "sh", "-c",
        loop.format(sig="USR1").replace("$1", "usr1").replace("$2", "5"),
    ).strip()  # fmt: skip
    log = f"{data_root}/containers/{cid}/{cid}-json.log"
    _wait_for(lambda: "ready" in host.file(log).content_string)
    t0 = time.monotonic()
    bb.ok("stop", "-t", "10", cid)
    assert time.monotonic() - t0 < 5  # the handler ran: no 10 s wait
    assert bb.ok("wait", cid) == "5\n"
    assert "got-usr1" in host.file(log).content_string
    cid2 = bb.ok(
        "run", "-d", "--network", "none", "busybox", "sh", "-c",
        loop.format(sig="HUP").replace("$1", "hup").replace("$2", "7"),
    ).strip()  # fmt: skip
    log2 = f"{data_root}/containers/{cid2}/{cid2}-json.log"
    _wait_for(lambda: "ready" in host.file(log2).content_string)
    bb.ok("kill", "-s", "HUP", cid2)
    assert bb.ok("wait", cid2) == "7\n"
    r = bb("kill", cid2)
    assert r.rc == 1 and "is not running" in r.stderr
    bb.ok("rm", cid, cid2)


def test_wait_on_an_auto_removed_container_gets_its_exit_code(bb: Any, host: Any, data_root: str) -> None:
    """``docker run -d --rm ...; docker wait`` prints the container's code, though the record is
    gone when the wait returns (the monitor leaves the code in its lock file for waiters)."""
    cid = bb.ok("run", "-d", "--rm", "--network", "none", "busybox", "sh", "-c", "sleep 0.5; exit 3").strip()
    assert bb.ok("wait", cid) == "3\n"
    assert bb("inspect", cid).rc == 1  # removed, as --rm says
    assert not host.file(f"{data_root}/containers/{cid}").exists


def test_rm_refuses_running_and_force_removes(bb: Any, host: Any, data_root: str) -> None:
    bb.ok("run", "-d", "--name", "busy", "--network", "none", "busybox", "sleep", "1000")
    r = bb("rm", "busy")
    assert r.rc == 1 and "You cannot remove a running container" in r.stderr
    assert bb.ok("rm", "-f", "busy") == "busy\n"
    assert _ids(host, data_root) == []
    r = bb("rm", "busy")
    assert r.rc == 1 and "No such container: busy" in r.stderr


def test_create_then_start_and_restart(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok(
        "create", "--name", "c1", "--network", "none", "busybox", "sh", "-c", "echo run; sleep 1000"
    ).strip()
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["StartedAt"] == "0001-01-01T00:00:00Z" and cfg["LogPath"] == ""
    assert sorted(host.run(f"ls {data_root}/containers/{cid}").stdout.split()) == [
        "checkpoints", "config.v2.json", "hostconfig.json",
    ]  # fmt: skip
    assert bb.ok("start", "c1") == "c1\n"
    pid1 = _config(host, data_root, cid)["State"]["Pid"]
    bb.ok("restart", "-t", "0", "c1")
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["Running"] is True and cfg["State"]["Pid"] not in (0, pid1)
    log_path = f"{data_root}/containers/{cid}/{cid}-json.log"
    # `restart` returns once the command runs; its first line reaches the log a moment later
    _wait_for(lambda: host.file(log_path).content_string.count('"log":"run\\n"') == 2)
    bb.ok("rm", "-f", "c1")


def test_start_attach_returns_exit_code(bb: Any) -> None:
    bb.ok("create", "--name", "att", "--network", "none", "busybox", "sh", "-c", "echo hi; exit 4")
    r = bb("start", "-a", "att")
    assert (r.rc, r.stdout) == (4, "hi\n")
    bb.ok("rm", "att")


def test_name_conflict_and_bad_flags_change_nothing(bb: Any, host: Any, data_root: str) -> None:
    bb.ok("create", "--name", "dup", "--network", "none", "busybox", "true")
    before = _ids(host, data_root)
    r = bb("run", "--name", "dup", "--network", "none", "busybox", "true")
    assert r.rc == 125 and 'The container name "/dup" is already in use' in r.stderr
    for bad in (["-m", "1k"], ["--cpus", "99"], ["--restart", "sometimes"], ["--cpuset-cpus", "77"]):
        r = bb("run", *bad, "--network", "none", "busybox", "true")
        assert r.rc == 125, helpers.describe(r)
        assert len(r.stderr.strip().splitlines()) == 1
    r = bb("run", "--network", "none", "nosuchimage", "true")
    assert r.rc == 125 and "nosuchimage" in r.stderr
    assert _ids(host, data_root) == before
    assert host.run(f"ls {data_root}/image/overlay2/layerdb/mounts").stdout.split() == before
    bb.ok("rm", "dup")


def test_oom_kill_is_recorded(bb: Any, host: Any, data_root: str) -> None:
    r = bb(
        "run",
        "--name",
        "oom",
        "--network",
        "none",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "tail",
        "/dev/zero",
    )
    assert r.rc == 137, helpers.describe(r)
    cid = _ids(host, data_root)[0]
    state = _config(host, data_root, cid)["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    bb.ok("rm", "oom")


def test_restart_on_failure(bb: Any, host: Any, data_root: str) -> None:
    cid = bb.ok(
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    ).strip()
    assert bb.ok("wait", cid) == "1\n"
    cfg = _config(host, data_root, cid)
    assert cfg["RestartCount"] == 2
    log = host.file(f"{data_root}/containers/{cid}/{cid}-json.log").content_string
    assert log.count("try") == 3
    bb.ok("rm", cid)


def test_init_reaps_and_forwards(bb: Any) -> None:
    out = bb.ok(
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
    )
    pid, init_cmd = out.splitlines()
    assert pid == "2" and init_cmd.strip() != "sh -c"


def test_tty_gives_a_real_pty(bb: Any, host: Any) -> None:
    # `script` gives the CLI a terminal; the container's own terminal is made in its devpts (so
    # `tty` says /dev/pts/0 as with Docker), sized like ours, and /dev/console is bound to it
    inner = "tty; stty size; stat -c %t:%T /dev/console; echo $TERM; exit 7"
    cmd = bb.command("run", "--rm", "-it", "--network", "none", "busybox", "sh", "-c", inner)
    r = helpers.run(
        host, f"script -qec {helpers.q('stty cols 100 rows 30; ' + cmd)} /dev/null < /dev/null", timeout=60
    )
    assert r.rc == 7, helpers.describe(r)
    # (script's end of input may reach the container's terminal, which echoes it as ^@ or ^D)
    lines = r.stdout.replace("\r", "").replace("^@", "").replace("^D", "").split("\n")
    assert lines[:4] == ["/dev/pts/0", "30 100", "88:0", "xterm"], lines  # 0x88 = 136: a pty slave


def test_monitor_crash_is_reconciled(bb: Any, host: Any, data_root: str, exec_root: str) -> None:
    cid = bb.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    cfg = _config(host, data_root, cid)
    pid = cfg["State"]["Pid"]
    monitor = int(host.file(f"/proc/{pid}/status").content_string.split("PPid:")[1].split()[0])
    host.run(f"kill -9 {monitor}")
    _wait_for(lambda: not host.file(f"/proc/{monitor}").exists)
    assert host.process.filter(pid=pid)  # the container outlives its monitor (as with a shim)
    assert bb.ok("wait", cid) == "137\n"  # the next command sees the dead monitor, kills the rest
    cfg = _config(host, data_root, cid)
    assert cfg["State"]["Running"] is False and cfg["State"]["Pid"] == 0
    _wait_for(lambda: not host.process.filter(pid=pid))  # killed; the host's init reaps it
    mount_id = host.file(f"{data_root}/image/overlay2/layerdb/mounts/{cid}/mount-id").content_string
    assert not host.mount_point(f"{data_root}/overlay2/{mount_id}/merged").exists
    assert not host.file(_cgroup_file(host, "memory", cid, "")).exists
    bb.ok("rm", cid)


def test_trace_narrates_the_kernel_steps(bb: Any) -> None:
    r = bb("run", "--rm", "--network", "none", "busybox", "true", trace=True)
    assert r.rc == 0
    lines = [line[len("trace: ") :] for line in r.stderr.splitlines() if line.startswith("trace: ")]
    text = "\n".join(lines)
    for needle in (
        'mount("overlay"',
        "unshare(CLONE_NEWNS",
        "pivot_root(",
        "mkdir /sys/fs/cgroup",
        "execve(",
    ):
        assert needle in text, f"{needle!r} not in trace:\n{text}"
    # order: overlay before unshare before pivot_root before exec
    order = [
        next(i for i, x in enumerate(lines) if n in x)
        for n in ('mount("overlay"', "unshare(", "pivot_root(", "execve(")
    ]
    assert order == sorted(order)


def test_signals_to_the_foreground_cli_reach_the_container(bb: Any, host: Any, scratch: Any) -> None:
    d = scratch("sigproxy")
    script = 'trap "echo got-term; exit 9" TERM; echo ready; while true; do sleep 0.05; done'
    cmd = bb.command("run", "--rm", "--network", "none", "busybox", "sh", "-c", script)
    wrapper = helpers.q("sh", "-c", f"{cmd} > {d}/out 2>&1; echo $? > {d}/rc")
    shell = host.run(f"{wrapper} > /dev/null 2>&1 & echo $!").stdout.strip()
    # (the background shell may not have created `out` yet: testinfra's content_string raises then)
    _wait_for(lambda: host.file(f"{d}/out").exists and "ready" in host.file(f"{d}/out").content_string)
    cli = host.run(f"pgrep -P {shell}").stdout.split()
    assert len(cli) == 1, cli  # the minidocker CLI, child of that shell
    host.run(f"kill -TERM {cli[0]}")
    _wait_for(lambda: host.file(f"{d}/rc").exists and host.file(f"{d}/rc").content_string.strip() != "")
    assert host.file(f"{d}/rc").content_string.strip() == "9"
    assert "got-term" in host.file(f"{d}/out").content_string


def test_no_zombies_left_by_init_or_monitor(bb: Any, host: Any) -> None:
    # orphans re-parented to PID 1 (our --init) are reaped while the command still runs
    script = "for i in 1 2 3; do (sleep 0.01 &); done; sleep 0.5; ps -o stat,comm | grep -c '^Z' || true"
    assert bb.ok("run", "--rm", "--init", "--network", "none", "busybox", "sh", "-c", script) == "0\n"
    cid = bb.ok("run", "-d", "--network", "none", "busybox", "sh", "-c", "(sleep 0.01 &); sleep 1000").strip()
    pid = _config(host, bb.data_root, cid)["State"]["Pid"]
    monitor = host.file(f"/proc/{pid}/status").content_string.split("PPid:")[1].split()[0]
    time.sleep(0.3)
    zombies = host.run(f"ps -e -o ppid=,stat= | awk '$1 == {monitor} && $2 ~ /Z/'").stdout
    assert zombies == ""
    bb.ok("rm", "-f", cid)


def test_network_modes_host_and_container(bb: Any, host: Any) -> None:
    host_net = host.run("readlink /proc/self/ns/net").stdout.strip()
    out = bb.ok(
        "run", "--rm", "--network", "host", "busybox", "sh", "-c", "readlink /proc/self/ns/net; hostname"
    )
    assert out.split() == [host_net, host.run("hostname").stdout.strip()]
    none = bb.ok(
        "run", "--rm", "--network", "none", "busybox", "sh", "-c", "readlink /proc/self/ns/net; ip -o link"
    )
    assert none.split()[0] != host_net and none.count("\n") == 2  # its own netns: only lo, and it is up
    assert "UP" in none
    bb.ok("run", "-d", "--name", "owner", "--network", "none", "busybox", "sleep", "1000")
    owner = bb.ok("exec", "owner", "sh", "-c", "readlink /proc/1/ns/net; hostname").split()
    joined = bb.ok(
        "run",
        "--rm",
        "--network",
        "container:owner",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; hostname",
    )
    assert joined.split() == owner  # same network namespace, and the owner's name
    bb.ok("rm", "-f", "owner")
    r = bb("run", "--rm", "--network", "container:owner", "busybox", "true")
    assert r.rc == 125 and "No such container: owner" in r.stderr


def test_container_prune_removes_only_stopped(bb: Any, host: Any, data_root: str) -> None:
    keep = bb.ok("run", "-d", "--network", "none", "busybox", "sleep", "1000").strip()
    gone = bb.ok("create", "--network", "none", "busybox", "true").strip()
    bb("run", "--network", "none", "busybox", "true")
    r = bb("container", "prune")  # asks first; no answer (stdin is not a terminal) = no
    assert "Are you sure you want to continue? [y/N]" in r.stdout
    assert len(_ids(host, data_root)) == 3
    out = bb.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and gone in out and keep not in out
    assert out.endswith("Total reclaimed space: 0B\n")
    assert _ids(host, data_root) == [keep]
    bb.ok("rm", "-f", keep)
