"""``docker exec`` at the library level on this host (root): enter a real running container.

The module builds a busybox image on a real overlay, starts one container running ``sleep 1000``
with ``namespaces.start`` inside a throwaway pids cgroup (v1), and runs commands in it with
``namespaces.enter``. At teardown the container is killed, the cgroup removed and the host's mount
table must be exactly as before. The error messages and exit codes are the ones a real Docker
20.10 printed for the same ``docker exec`` (see minidocker/namespaces/enter.py).
"""

from __future__ import annotations

import errno
import os
import pty
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hostmounts import host_mounts

from minidocker import trace
from minidocker.errors import CannotExecute, InvalidInput, NotFound
from minidocker.kernel import ns as kns
from minidocker.namespaces import ProcessSpec, Started, start
from minidocker.namespaces.caps import DEFAULT_MASK
from minidocker.namespaces.enter import ExecSpec, enter
from minidocker.namespaces.spec import DEFAULT_PATH

pytestmark = pytest.mark.root

PIDS_ROOT = "/sys/fs/cgroup/pids"
ENV = [f"PATH={DEFAULT_PATH}", "HOSTNAME=exec-box"]
NAMESPACES = ("mnt", "uts", "ipc", "net", "pid", "cgroup")
OCI = "OCI runtime exec failed: exec failed: unable to start container process: "


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def status_field(out: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(name + ":"))


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from minidocker.image.base import build_busybox
    from minidocker.image.store import Stores

    before = host_mounts(str(tmp_path_factory.getbasetemp()))
    stores = Stores.open(str(tmp_path_factory.mktemp("data-root")))
    image_id = build_busybox(stores)
    cid = secrets.token_hex(32)
    mount = stores.layers.create_rw_layer(cid, stores.top_layer(image_id))
    merged = stores.driver.get(mount.mount_id)
    try:
        # a user only the container knows: exec -u must read the container's /etc/passwd
        with open(os.path.join(merged, "etc/passwd"), "a") as f:
            f.write("appuser:x:4242:4243:app:/app:/bin/sh\n")
        yield merged
    finally:
        stores.driver.put(mount.mount_id)
        stores.layers.remove_rw_layer(cid)
        after = host_mounts(str(tmp_path_factory.getbasetemp()))
        assert after == before, "the host's mount table changed"


@pytest.fixture(scope="module")
def cgroup() -> Iterator[str]:
    if not os.path.isfile(f"{PIDS_ROOT}/cgroup.procs"):
        pytest.skip("no cgroup v1 pids hierarchy on this host")
    path = f"{PIDS_ROOT}/minidocker-test-{secrets.token_hex(4)}"
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(50):  # the killed processes may take a moment to leave
            try:
                os.rmdir(path)
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.1)
        assert not os.path.exists(path)


def join(cgroup: str) -> Callable[[int], None]:
    def add(pid: int) -> None:
        with open(f"{cgroup}/cgroup.procs", "w") as f:
            f.write(str(pid))

    return add


@dataclass
class Container:
    pid: int  # host pid of its PID 1 (sleep 1000)
    rootfs: str


@pytest.fixture(scope="module")
def box(rootfs: str, cgroup: str) -> Iterator[Container]:
    null = os.open("/dev/null", os.O_RDWR)
    spec = ProcessSpec(
        args=["/bin/sleep", "1000"], rootfs=rootfs, hostname="exec-box", stdio=(null, null, null)
    )
    try:
        started = start(spec, on_created=join(cgroup))
    finally:
        os.close(null)
    try:
        yield Container(started.pid, rootfs)
    finally:
        os.kill(started.pid, signal.SIGKILL)
        assert started.wait() == 137


@dataclass
class Result:
    code: int
    out: str


def ex(
    box: Container, script: str, *, on_started: Callable[[Started], None] | None = None, **kw: Any
) -> Result:
    """``docker exec box sh -c script`` (or ``args=``): stdout and stderr together, stdin /dev/null."""
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    kw.setdefault("args", ["/bin/sh", "-c", script])
    kw.setdefault("env", list(ENV))
    on_created = kw.pop("on_created", None)
    try:
        started = enter(box.pid, ExecSpec(stdio=(null, w, w), **kw), on_created=on_created)
    finally:
        os.close(w)
        os.close(null)
    if on_started:
        on_started(started)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    return Result(started.wait(), b"".join(chunks).decode())


# -- namespaces, root, pid ---------------------------------------------------------------------------
def test_joins_every_namespace_of_the_container(box: Container) -> None:
    script = "hostname; " + "; ".join(f"readlink /proc/self/ns/{n}" for n in NAMESPACES)
    res = ex(box, script)
    assert res.code == 0, res.out
    lines = res.out.splitlines()
    assert lines[0] == "exec-box"
    theirs = [os.readlink(f"/proc/{box.pid}/ns/{n}") for n in NAMESPACES]
    assert lines[1:] == theirs
    assert all(os.readlink(f"/proc/self/ns/{n}") not in theirs for n in NAMESPACES)  # really other ones


def test_sees_the_container_root_and_its_processes(box: Container) -> None:
    with open(os.path.join(box.rootfs, "only-in-the-container"), "w"):
        pass
    try:
        res = ex(box, "ls -a /; echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid,args")
    finally:
        os.unlink(os.path.join(box.rootfs, "only-in-the-container"))
    assert res.code == 0, res.out
    listing, rest = res.out.split("pid=", 1)
    assert sorted(listing.split()) == sorted([".", "..", "only-in-the-container", *os.listdir(box.rootfs)])
    pid = int(rest.splitlines()[0])
    assert pid != 1
    assert rest.splitlines()[1].strip() == "/bin/sleep 1000"  # PID 1 of its pid namespace is the container's
    ps = rest.splitlines()[2:]
    assert any(line.split()[:2] == ["1", "/bin/sleep"] for line in ps), ps
    assert len(ps) <= 4, ps  # header, sleep, sh, ps: no host process is visible


# -- capabilities, fds, user ---------------------------------------------------------------------------
def test_capabilities_are_the_containers(box: Container) -> None:
    res = ex(box, "cat /proc/self/status")
    theirs = _read(f"/proc/{box.pid}/status")
    for name in ("CapEff", "CapPrm", "CapBnd"):
        assert status_field(res.out, name) == status_field(theirs, name), name
        assert int(status_field(res.out, name), 16) == DEFAULT_MASK
    assert status_field(res.out, "CapInh") == "0000000000000000"
    assert status_field(res.out, "CapAmb") == "0000000000000000"
    assert status_field(res.out, "NoNewPrivs") == "0"
    # grep as the command itself: busybox sh would ignore SIGQUIT on its own
    res = ex(box, "", args=["/bin/grep", "-E", "Sig(Ign|Blk)", "/proc/self/status"])
    assert status_field(res.out, "SigBlk") == status_field(res.out, "SigIgn") == "0000000000000000"


def test_cap_add_drop_no_new_privileges_and_privileged(box: Container) -> None:
    res = ex(
        box, "cat /proc/self/status", cap_add=["sys_admin"], cap_drop=["NET_RAW"], no_new_privileges=True
    )
    expected = (DEFAULT_MASK | 1 << 21) & ~(1 << 13)
    assert int(status_field(res.out, "CapEff"), 16) == expected
    assert int(status_field(res.out, "CapBnd"), 16) == expected
    assert status_field(res.out, "NoNewPrivs") == "1"
    res = ex(box, "cat /proc/self/status", privileged=True)
    assert int(status_field(res.out, "CapEff"), 16) == kns.capget().permitted
    assert status_field(res.out, "CapInh") == "0000000000000000"


def test_only_stdio_is_open(box: Container, tmp_path: Any) -> None:
    leaked = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)  # a careless caller's fd
    os.set_inheritable(leaked, True)
    try:
        res = ex(box, "ls /proc/$$/fd; true")  # the shell's own fds (ls would show its dir fd)
    finally:
        os.close(leaked)
    assert res.out.split() == ["0", "1", "2"], res.out


def test_env_cwd_and_home(box: Container) -> None:
    res = ex(box, 'pwd; echo "$FOO"; echo "$HOME"; umask', env=[*ENV, "FOO=bar baz"], cwd="/etc")
    assert res.out.splitlines() == ["/etc", "bar baz", "/root", "0022"]
    res = ex(box, 'echo "$HOME"', env=[*ENV, "HOME=/x"])
    assert res.out == "/x\n"


def test_user_from_the_containers_passwd(box: Container) -> None:
    res = ex(box, "id -u; id -g; echo $HOME; grep CapEff /proc/self/status", user="nobody")
    lines = res.out.splitlines()
    assert lines[:3] == ["65534", "65534", "/home"]
    assert int(lines[3].split()[1], 16) == 0  # non-root after exec: no capability (no ambient set)
    res = ex(box, "id -u; id -g; echo $HOME", user="appuser")  # unknown to the host
    assert res.out.splitlines() == ["4242", "4243", "/app"]
    res = ex(box, "id -u; id -g; echo $HOME", user="1234:5678")
    assert res.out.splitlines() == ["1234", "5678", "/"]


# -- exit codes and errors -----------------------------------------------------------------------------
def test_exit_codes(box: Container) -> None:
    assert ex(box, "exit 0").code == 0
    assert ex(box, "exit 42").code == 42

    def kill(started: Started) -> None:
        time.sleep(0.2)
        os.kill(started.pid, signal.SIGKILL)

    assert ex(box, "exec sleep 30", on_started=kill).code == 137


def test_command_not_found_and_not_executable_are_126_like_docker(box: Container) -> None:
    cases = {
        "nosuchcmd": 'exec: "nosuchcmd": executable file not found in $PATH',
        "/no/such": 'exec: "/no/such": stat /no/such: no such file or directory',
        "/etc": 'exec: "/etc": permission denied',
    }
    for cmd, why in cases.items():
        with pytest.raises(CannotExecute) as exc:
            ex(box, "", args=[cmd])
        assert exc.value.exit_code == 126
        assert str(exc.value) == f"{OCI}{why}: unknown"


def test_missing_cwd_and_unknown_user(box: Container) -> None:
    with pytest.raises(CannotExecute) as exc:
        ex(box, "pwd", cwd="/nonexist")
    assert (
        str(exc.value)
        == f'{OCI}chdir to cwd ("/nonexist") set in config.json failed: no such file or directory: unknown'
    )
    with pytest.raises(CannotExecute, match=r"not a directory: unknown: Are you trying to mount"):
        ex(box, "pwd", cwd="/etc/passwd")
    with pytest.raises(CannotExecute) as exc:
        ex(box, "id", user="nosuchuser")
    assert str(exc.value) == "unable to find user nosuchuser: no matching entries in passwd file"
    assert not os.path.exists(os.path.join(box.rootfs, "nonexist"))  # exec creates no cwd


def test_bad_target(box: Container) -> None:
    with pytest.raises(NotFound, match="is not running"):
        enter(2**22 + 12345, ExecSpec(args=["true"], env=ENV))
    with pytest.raises(InvalidInput, match="shares our mount namespace"):
        enter(os.getpid(), ExecSpec(args=["true"], env=ENV))
    with pytest.raises(InvalidInput, match="absolute"):
        enter(box.pid, ExecSpec(args=["true"], env=ENV, cwd="tmp"))


# -- session, tty, cgroup, trace -----------------------------------------------------------------------
def _stat_fields(line: str) -> list[str]:
    return line.rsplit(")", 1)[1].split()  # state ppid pgrp session tty_nr ...


def test_own_session_without_a_terminal(box: Container) -> None:
    res = ex(box, "echo $$; cat /proc/$$/stat")
    pid, stat = res.out.splitlines()
    fields = _stat_fields(stat)
    assert fields[3] == pid  # session leader
    assert fields[4] == "0"  # no controlling terminal


def test_tty_becomes_the_controlling_terminal(box: Container) -> None:
    master, slave = pty.openpty()
    spec = ExecSpec(args=["/bin/sh", "-c", "test -t 1 && echo is-a-tty; echo $$; cat /proc/$$/stat"],
                    env=ENV, stdio=(slave, slave, slave), tty=True)  # fmt: skip
    started = enter(box.pid, spec)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError as e:
            assert e.errno == errno.EIO  # the slave side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert started.wait() == 0
    lines = out.decode().replace("\r", "").splitlines()
    assert lines[0] == "is-a-tty"
    fields = _stat_fields(lines[2])
    assert fields[3] == lines[1] and fields[4] != "0"


def test_on_created_joins_the_cgroup_before_the_command_runs(box: Container, cgroup: str) -> None:
    seen: list[str] = []

    def created(pid: int) -> None:
        seen.append(status_field(_read(f"/proc/{pid}/status"), "NSpid"))
        join(cgroup)(pid)
        seen.append(_read(f"/proc/{pid}/cmdline"))  # still the python setup process

    res = ex(box, "grep pids /proc/self/cgroup", on_created=created)
    assert res.out.strip().endswith(":pids:/")  # the root of the container's cgroup namespace
    host_pid, ns_pid = seen[0].split()
    assert int(host_pid) != int(ns_pid) and int(ns_pid) > 1
    assert "sh" not in seen[1]
    outside = ex(box, "grep pids /proc/self/cgroup")  # left in our cgroup: outside the container's
    assert not outside.out.strip().endswith(":pids:/"), outside.out

    def broken(pid: int) -> None:
        seen.append(str(pid))
        raise RuntimeError("cgroup join failed")

    with pytest.raises(RuntimeError, match="cgroup join failed"):
        ex(box, "touch /ran", on_created=broken)
    assert not os.path.exists(f"/proc/{seen[-1]}")  # killed and reaped
    assert not os.path.exists(os.path.join(box.rootfs, "ran"))


def test_trace_narrates_each_setns(box: Container) -> None:
    with trace.capture() as events:
        ex(box, "true")
    text = "\n".join(events)
    flags = {"ipc": "IPC", "uts": "UTS", "net": "NET", "pid": "PID", "mnt": "NS", "cgroup": "CGROUP"}
    positions = []
    for name, flag in flags.items():
        event = f"setns(/proc/{box.pid}/ns/{name}, CLONE_NEW{flag})"
        assert event in text, text
        positions.append(text.index(event))
    assert positions == sorted(positions)  # runc's order
    assert text.index("prctl(PR_SET_DUMPABLE, 0)") < positions[0]
    assert positions[-1] < text.index("setsid()") < text.index("capset(") < text.index("execve(")
