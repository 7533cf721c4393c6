"""Real containers on this host (root): a busybox image on a real overlay, started by namespaces.start().

Each test runs a shell in a container and reads what it prints through a pipe. The module builds
one data root with the busybox image and one container layer; the overlay is mounted here and
unmounted at teardown, and the host's mount table must be exactly as before.
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
from minidocker.errors import CannotExecute, CommandNotFound, MinidockerError
from minidocker.namespaces import Bind, ProcessSpec, start
from minidocker.namespaces.caps import DEFAULT_MASK

pytestmark = pytest.mark.root


@dataclass
class Rootfs:
    path: str  # the mounted overlay (merged)
    upper: str  # the container's writable layer (diff), to plant files without going through merged


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rootfs]:
    from minidocker.image.base import build_busybox
    from minidocker.image.store import Stores

    before = host_mounts(str(tmp_path_factory.getbasetemp()))
    stores = Stores.open(str(tmp_path_factory.mktemp("data-root")))
    image_id = build_busybox(stores)
    cid = secrets.token_hex(32)
    mount = stores.layers.create_rw_layer(cid, stores.top_layer(image_id))
    merged = stores.driver.get(mount.mount_id)
    try:
        yield Rootfs(merged, stores.driver.diff_path(mount.mount_id))
    finally:
        stores.driver.put(mount.mount_id)
        stores.layers.remove_rw_layer(cid)
        after = host_mounts(str(tmp_path_factory.getbasetemp()))
        assert after == before, "the host's mount table changed"


@dataclass
class Result:
    code: int
    out: str


def run(rootfs: Rootfs, script: str, *, on_started: Callable[[int], None] | None = None, **kw: Any) -> Result:
    """Run ``sh -c script`` (or ``args=``) in a container; stdout and stderr together, stdin /dev/null."""
    r, w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    kw.setdefault("hostname", "box")
    kw.setdefault("args", ["/bin/sh", "-c", script])
    spec = ProcessSpec(rootfs=rootfs.path, stdio=(null, w, w), **kw)
    try:
        started = start(spec)
    finally:
        os.close(w)
        os.close(null)
    if on_started:
        on_started(started.pid)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    return Result(started.wait(), b"".join(chunks).decode())


def status_field(out: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith(name + ":"))


# -- identity: pid, hostname, capabilities ----------------------------------------------------------
def test_pid_1_hostname_and_docker_capabilities(rootfs: Rootfs) -> None:
    res = run(rootfs, "echo pid=$$; hostname; cat /proc/1/status", hostname="web-1")
    assert res.code == 0, res.out
    lines = res.out.splitlines()
    assert lines[0] == "pid=1"
    assert lines[1] == "web-1"
    for field in ("CapBnd", "CapPrm", "CapEff"):
        assert int(status_field(res.out, field), 16) == DEFAULT_MASK == 0xA80425FB, field
    assert status_field(res.out, "CapInh") == "0000000000000000"  # CVE-2022-24769
    assert status_field(res.out, "CapAmb") == "0000000000000000"
    assert status_field(res.out, "NoNewPrivs") == "0"  # Docker's default


def test_cap_add_drop_and_no_new_privileges(rootfs: Rootfs) -> None:
    res = run(
        rootfs, "cat /proc/self/status", cap_add=["sys_admin"], cap_drop=["NET_RAW"], no_new_privileges=True
    )
    expected = (DEFAULT_MASK | 1 << 21) & ~(1 << 13)
    assert int(status_field(res.out, "CapEff"), 16) == expected
    assert int(status_field(res.out, "CapBnd"), 16) == expected
    assert status_field(res.out, "NoNewPrivs") == "1"


def test_non_root_user_from_the_image_passwd(rootfs: Rootfs) -> None:
    res = run(rootfs, "id -u; id -g; echo $HOME; cat /proc/self/status", user="nobody")
    lines = res.out.splitlines()
    assert lines[:3] == ["65534", "65534", "/home"]
    # after execve a non-root process keeps no capability (no ambient set), like Docker's -u
    assert int(status_field(res.out, "CapEff"), 16) == 0
    assert int(status_field(res.out, "CapBnd"), 16) == DEFAULT_MASK


def test_unknown_user_is_an_error(rootfs: Rootfs) -> None:
    with pytest.raises(MinidockerError, match="unable to find user nosuchuser"):
        run(rootfs, "true", user="nosuchuser")


# -- masked and read-only paths, /sys ---------------------------------------------------------------
def test_masked_paths_read_empty(rootfs: Rootfs) -> None:
    files = [
        p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts") if os.path.exists(p)
    ]
    assert files, "no masked /proc file exists on this host"
    script = (
        "; ".join(f"echo {p}=$(cat {p} | wc -c)" for p in files) + "; echo fw=$(ls -A /sys/firmware | wc -l)"
    )
    res = run(rootfs, script)
    for p in files:
        assert f"{p}=0" in res.out, res.out
    assert "fw=0" in res.out  # a masked directory is an empty tmpfs


def test_readonly_paths_and_sys(rootfs: Rootfs) -> None:
    script = (
        "echo x > /proc/sys/kernel/domainname || echo sys-denied; "
        "echo h > /proc/sysrq-trigger || echo sysrq-denied; "
        "touch /sys/kernel/x || echo sysfs-denied; "
        "mkdir /sys/fs/cgroup/memory/x || echo cgroup-denied; "
        "grep ' /sys ' /proc/mounts"
    )
    res = run(rootfs, script)
    assert res.out.count("Read-only file system") >= 3, res.out
    for marker in ("sys-denied", "sysrq-denied", "sysfs-denied", "cgroup-denied"):
        assert marker in res.out
    assert "sysfs /sys sysfs ro," in res.out


def test_dev_has_docker_nodes(rootfs: Rootfs) -> None:
    res = run(rootfs, "ls -l /dev; echo hi > /dev/null && echo null-ok; head -c 4 /dev/zero | wc -c")
    for name, majmin in (("null", "1,   3"), ("zero", "1,   5"), ("urandom", "1,   9"), ("tty", "5,   0")):
        assert any(line.startswith("crw-rw-rw-") and line.endswith(" " + name) and majmin in line
                   for line in res.out.splitlines()), (name, res.out)  # fmt: skip
    assert "ptmx -> pts/ptmx" in res.out and "fd -> /proc/self/fd" in res.out
    assert "null-ok" in res.out and res.out.rstrip().endswith("4")


# -- file descriptors, cwd -------------------------------------------------------------------------
def test_only_stdio_is_open_in_the_container(rootfs: Rootfs, tmp_path: Any) -> None:
    leaked = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)  # a careless monitor's fd
    os.set_inheritable(leaked, True)
    try:
        res = run(rootfs, "ls /proc/1/fd; true")  # PID 1 is the shell (not ls): nothing but 0, 1, 2
    finally:
        os.close(leaked)
    assert res.out.split() == ["0", "1", "2"], res.out


def test_cwd_is_created_and_checked(rootfs: Rootfs, tmp_path: Any) -> None:
    assert run(rootfs, "pwd", cwd="/srv/app").out.strip() == "/srv/app"
    leaked = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leaked, True)
    try:
        for n in [leaked, *range(3, 11)]:  # CVE-2024-21626: cwd through a leaked host fd
            with pytest.raises(MinidockerError) as exc:
                run(rootfs, "pwd; touch escaped", cwd=f"/proc/self/fd/{n}")
            assert exc.value.exit_code == 125
    finally:
        os.close(leaked)
    assert not os.path.exists(tmp_path / "escaped")


# -- exit codes and signals -----------------------------------------------------------------------
def test_exit_code_propagates(rootfs: Rootfs) -> None:
    assert run(rootfs, "exit 42").code == 42
    assert run(rootfs, "exit 0").code == 0


def test_missing_command_is_127(rootfs: Rootfs) -> None:
    with pytest.raises(CommandNotFound) as exc:
        start(ProcessSpec(args=["nosuchcmd"], rootfs=rootfs.path))
    assert exc.value.exit_code == 127
    assert str(exc.value) == 'exec: "nosuchcmd": executable file not found in $PATH'
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        start(ProcessSpec(args=["/no/such"], rootfs=rootfs.path))


def test_not_executable_is_126(rootfs: Rootfs) -> None:
    with pytest.raises(CannotExecute) as exc:
        start(ProcessSpec(args=["/etc"], rootfs=rootfs.path))
    assert exc.value.exit_code == 126 and "permission denied" in str(exc.value)
    with open(os.path.join(rootfs.upper, "noexec.sh"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(rootfs.upper, "noexec.sh"), 0o644)
    with pytest.raises(CannotExecute):
        start(ProcessSpec(args=["/noexec.sh"], rootfs=rootfs.path))


def test_bad_interpreter_is_reported_by_execve(rootfs: Rootfs) -> None:
    with open(os.path.join(rootfs.upper, "bad.sh"), "w") as f:
        f.write("#!/mmnnttbb\n")
    os.chmod(os.path.join(rootfs.upper, "bad.sh"), 0o755)
    with pytest.raises(CommandNotFound, match=r"^exec /bad.sh: no such file or directory$"):
        start(ProcessSpec(args=["/bad.sh"], rootfs=rootfs.path))


def test_pid_1_ignores_sigterm_without_handler_and_dies_of_sigkill(rootfs: Rootfs) -> None:
    def signals(pid: int) -> None:
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)  # PID 1 with SIG_DFL: the kernel drops it
        time.sleep(0.3)
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        os.kill(pid, signal.SIGKILL)

    assert run(rootfs, "exec sleep 30", on_started=signals).code == 137


def test_default_signal_dispositions(rootfs: Rootfs) -> None:
    # grep as the command itself: busybox sh would ignore SIGQUIT on its own
    res = run(rootfs, "", args=["/bin/grep", "-E", "Sig(Ign|Blk)", "/proc/self/status"])
    assert status_field(res.out, "SigBlk") == "0000000000000000"
    assert status_field(res.out, "SigIgn") == "0000000000000000"  # Python's SIG_IGN for SIGPIPE is gone


# -- mounts: binds, read-only root, symlinks in the image ------------------------------------------
def test_binds_and_readonly_rootfs(rootfs: Rootfs, tmp_path: Any) -> None:
    hostname = tmp_path / "hostname"
    hostname.write_text("web-1\n")
    volume = tmp_path / "vol"
    volume.mkdir()
    binds = [Bind(str(hostname), "/etc/hostname", readonly=True), Bind(str(volume), "/data")]
    script = "cat /etc/hostname; echo x > /etc/hostname || echo ro-bind; echo v > /data/f; touch /x || echo ro-root"
    res = run(rootfs, script, binds=binds, readonly_rootfs=True)
    assert res.out.startswith("web-1\n")
    assert "ro-bind" in res.out and "ro-root" in res.out
    assert (volume / "f").read_text() == "v\n"
    assert hostname.read_text() == "web-1\n"


def test_bind_destination_cannot_escape_through_a_symlink(rootfs: Rootfs, tmp_path: Any) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    src = tmp_path / "src"
    src.write_text("payload")
    os.symlink(str(victim), os.path.join(rootfs.upper, "escape"))  # absolute symlink planted by the image
    try:
        res = run(rootfs, "cat /escape/file", binds=[Bind(str(src), "/escape/file")])
        assert res.out == "payload"
        assert os.listdir(victim) == []  # the mount point was made inside the rootfs, not on the host
    finally:
        os.unlink(os.path.join(rootfs.upper, "escape"))
        victim_in_root = os.path.join(rootfs.upper, str(victim).lstrip("/"))
        if os.path.exists(victim_in_root):
            os.remove(os.path.join(victim_in_root, "file"))


# -- --init, tty, joining a network namespace, on_created -------------------------------------------
def test_init_reaps_forwards_and_propagates(rootfs: Rootfs) -> None:
    script = "echo pid=$$; (sleep 0.1 &); sleep 0.5; ps -o stat | grep -c '^Z' ; readlink /proc/1/exe || echo hidden; exit 3"
    res = run(rootfs, script, init=True)
    lines = res.out.splitlines()
    assert lines[0] == "pid=2"
    assert lines[1] == "0"  # the orphaned sleep was reaped by our PID 1
    assert "hidden" in res.out  # PID 1 (python) is non-dumpable: its exe is not reachable
    assert res.code == 3

    def term(pid: int) -> None:
        time.sleep(0.3)
        os.kill(pid, signal.SIGTERM)  # forwarded to the shell, which has the default action

    assert run(rootfs, "sleep 30", init=True, on_started=term).code == 143


def test_tty(rootfs: Rootfs) -> None:
    master, slave = pty.openpty()
    spec = ProcessSpec(args=["/bin/sh", "-c", "tty; test -t 1 && echo is-a-tty"], rootfs=rootfs.path,
                       stdio=(slave, slave, slave), tty=True)  # fmt: skip
    started = start(spec)
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
    assert b"is-a-tty" in out and b"/dev/" in out


def test_join_another_containers_netns(rootfs: Rootfs) -> None:
    r, w = os.pipe()
    first = start(ProcessSpec(args=["/bin/sh", "-c", "readlink /proc/self/ns/net; exec sleep 30"],
                              rootfs=rootfs.path, stdio=(0, w, w)))  # fmt: skip
    os.close(w)
    try:
        theirs = b""
        while not theirs.endswith(b"\n"):
            theirs += os.read(r, 100)
        namespaces = {"mnt", "uts", "ipc", "pid"}
        res = run(
            rootfs,
            "readlink /proc/self/ns/net",
            namespaces=namespaces,
            netns_path=f"/proc/{first.pid}/ns/net",
        )
        assert res.out == theirs.decode()
        assert res.out != os.readlink("/proc/self/ns/net") + "\n"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        os.close(r)


def test_on_created_runs_before_the_command(rootfs: Rootfs, tmp_path: Any) -> None:
    seen: list[str] = []

    def created(pid: int) -> None:
        with open(f"/proc/{pid}/status") as f:
            seen.append(status_field(f.read(), "NSpid"))

    r, w = os.pipe()
    started = start(ProcessSpec(args=["/bin/true"], rootfs=rootfs.path, stdio=(0, w, w)), on_created=created)
    os.close(w)
    os.close(r)
    assert started.wait() == 0
    assert seen == [f"{started.pid}\t1"]  # host pid, and 1 in its own pid namespace

    def broken(pid: int) -> None:
        seen.append(str(pid))
        raise RuntimeError("cgroup setup failed")

    with pytest.raises(RuntimeError, match="cgroup setup failed"):
        start(
            ProcessSpec(args=["/bin/sh", "-c", f"touch {tmp_path}/ran"], rootfs=rootfs.path),
            on_created=broken,
        )
    assert not os.path.exists(f"/proc/{seen[-1]}")  # killed and reaped


def test_trace_narrates_the_kernel_steps(rootfs: Rootfs) -> None:
    with trace.capture() as events:
        run(rootfs, "true")
    text = "\n".join(events)
    assert "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET)" in text
    assert 'mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)' in text
    assert 'pivot_root(".", ".")' in text and 'sethostname("box")' in text
    assert (
        "capset(effective=0x00000000a80425fb, permitted=0x00000000a80425fb, inheritable=0x0000000000000000)"
        in text
    )
    assert text.index("unshare(") < text.index("pivot_root(") < text.index("capset(") < text.index("execve(")


def test_privileged_keeps_every_capability_and_no_masks(rootfs: Rootfs) -> None:
    from minidocker.kernel import ns as kns

    res = run(rootfs, "cat /proc/self/status; echo timer=$(cat /proc/timer_list | wc -c)", privileged=True)
    ours = kns.capget().permitted
    assert int(status_field(res.out, "CapEff"), 16) == ours
    assert int(status_field(res.out, "CapBnd"), 16) == ours
    assert status_field(res.out, "CapInh") == "0000000000000000"
    if os.path.exists("/proc/timer_list"):
        assert "timer=0" not in res.out


def test_custom_masked_and_readonly_paths_missing_ones_skipped(rootfs: Rootfs) -> None:
    script = (
        "echo group=$(cat /etc/group | wc -c); touch /tmp/x || echo tmp-ro; touch /root/x && echo root-rw"
    )
    res = run(rootfs, script, masked_paths=["/etc/group", "/no/such"], readonly_paths=["/tmp", "/nope"])
    assert res.code == 0
    assert "group=0" in res.out and "tmp-ro" in res.out and "root-rw" in res.out
    assert "Read-only file system" in res.out
