"""Shared helpers for the integration suite.

Everything here acts on the target machine ONLY through a testinfra ``host`` (``host.run``,
``host.file``), never through ``subprocess``/``os`` on the machine running pytest, so the same
suite works locally (``local://``, the default) and over SSH (``--hosts=ssh://...``).

Main pieces:

* :func:`make_temp_dir` / :func:`remove_tree`: per-test scratch dirs that are unmounted and
  removed at teardown, even after a failure.
* :class:`Minidocker`: the ``md`` fixture's callable, ``md("images", "-q")``.
* :class:`DockerDaemon`: a real ``dockerd`` (plus its managed containerd) on throwaway roots.
* :func:`build_busybox_rootfs_tar`: a rootfs tar made from the host's busybox-static, for
  ``docker import`` / ``minidocker import`` without any network.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Every scratch dir the suite makes is called <TMP_BASE>/<TMP_PREFIX><something>.XXXXXX; the
# removal helpers refuse to touch anything else.
TMP_BASE = os.environ.get("MINIDOCKER_TEST_TMP", "/var/tmp")
TMP_PREFIX = "mdtest-"
# Upper bound for one command run on the target (coreutils `timeout`); testinfra's local
# backend has no timeout of its own, so a hung command would otherwise hang the whole suite.
DEFAULT_TIMEOUT = float(os.environ.get("MINIDOCKER_TEST_TIMEOUT", "600"))

# The Docker 20.10 client matches the daemon this suite parity-tests against; the Docker 28
# client (/usr/local/bin/docker on the dev VM) works too, via API negotiation.
DOCKER_CLIENT_CANDIDATES = ("/usr/bin/docker", "docker")


class CommandFailed(AssertionError):
    """A command on the target host did not exit the way the test expected."""


def q(*args: Any) -> str:
    """Shell-quote and join ``args`` (anything str()-able)."""
    return shlex.join(str(a) for a in args)


def describe(result: Any) -> str:
    """A readable account of a testinfra CommandResult, for assertion messages."""
    return (
        f"command: {result.command!r}\n"
        f"rc: {result.rc}\n"
        f"--- stdout ---\n{result.stdout}"
        f"--- stderr ---\n{result.stderr}"
    )


def run(host: Any, command: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    """``host.run`` with a hard time limit (rc 124 when it fires). ``command`` is shell text."""
    if timeout:
        command = f"timeout -k 10 {int(timeout)} sh -c {shlex.quote(command)}"
    return host.run(command)


def check(host: Any, command: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> str:
    """Run ``command``; raise :class:`CommandFailed` unless rc is 0; return stdout."""
    result = run(host, command, timeout=timeout)
    if result.rc != 0:
        raise CommandFailed(describe(result))
    return str(result.stdout)


def is_local(host: Any) -> bool:
    return getattr(host.backend, "NAME", "") == "local"


# --------------------------------------------------------------------------------------------
# scratch directories, mounts


def make_temp_dir(host: Any, what: str = "tmp", base: str = TMP_BASE) -> str:
    """Create ``<base>/mdtest-<what>.XXXXXX`` (mode 0700) on the target host and return its path.

    /var/tmp is on the root filesystem (ext4 here), which overlayfs accepts for upper and work
    dirs; /tmp would be fine too when it is tmpfs.
    """
    return check(host, q("mktemp", "-d", f"{base}/{TMP_PREFIX}{what}.XXXXXX")).strip()


def _unescape_mountinfo(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040 \011 \012 \134
    for octal, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        s = s.replace(octal, char)
    return s


def mounts_under(host: Any, path: str) -> list[str]:
    """Mount points at or below ``path`` on the target host, deepest (and latest) first."""
    path = path.rstrip("/")
    text = check(host, "cat /proc/self/mountinfo", timeout=30)
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        mp = _unescape_mountinfo(fields[4])
        if mp == path or mp.startswith(path + "/"):
            found.append(mp)
    # later mounts stack on earlier ones: unmount them first; deeper paths before parents
    found.reverse()
    found.sort(key=lambda m: m.count("/"), reverse=True)
    return found


def unmount_all_under(host: Any, path: str, attempts: int = 5) -> None:
    """Unmount everything at or below ``path``; fall back to a lazy unmount. Raise if stuck."""
    for _ in range(attempts):
        mps = mounts_under(host, path)
        if not mps:
            return
        for mp in mps:
            r = run(host, q("umount", mp), timeout=60)
            if r.rc != 0:
                run(host, q("umount", "-l", mp), timeout=60)
    left = mounts_under(host, path)
    if left:
        raise CommandFailed(f"could not unmount {left}")


def _assert_scratch(path: str) -> None:
    base = os.path.basename(path.rstrip("/"))
    if not (os.path.isabs(path) and base.startswith(TMP_PREFIX) and os.path.normpath(path) == path):
        raise ValueError(f"refusing to remove {path!r}: not a test scratch dir ({TMP_PREFIX}*)")


def remove_tree(host: Any, path: str) -> None:
    """Unmount everything under ``path``, then delete it (only test scratch dirs are allowed)."""
    _assert_scratch(path)
    unmount_all_under(host, path)
    # chattr +i / +a could make rm fail; clear them if any test set them (best effort).
    run(host, f"chattr -R -ia {shlex.quote(path)} >/dev/null 2>&1; true", timeout=120)
    check(host, q("rm", "-rf", "--one-file-system", "--", path), timeout=300)


def _ere_escape(s: str) -> str:
    return "".join("\\" + c if c in ".[]()*+?{}|^$\\" else c for c in s)


def processes_mentioning(host: Any, needle: str) -> list[str]:
    """``pid cmdline`` of processes whose command line contains ``needle``.

    The pattern is written ``[x]rest`` so it does not match the probing shell's own command line.
    """
    pattern = "[" + _ere_escape(needle[0]) + "]" + _ere_escape(needle[1:])
    r = host.run(q("pgrep", "-af", "--", pattern))
    return [line for line in str(r.stdout).splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------
# minidocker CLI


@dataclass
class Minidocker:
    """Runs ``minidocker --data-root D --exec-root E ARGS...`` on the target via ``host.run``.

    ``md("images", "-q")`` returns testinfra's CommandResult (rc, stdout, stderr);
    ``md.ok(...)`` asserts rc 0 and returns stdout; ``md.fail(...)`` asserts rc != 0 (or a given
    rc) and returns the result. Keyword arguments: ``env={...}`` extra environment,
    ``stdin="/path/on/host"`` to feed a file, ``timeout=seconds``, ``trace=True`` for --trace.
    """

    host: Any
    binary: str
    data_root: str
    exec_root: str
    env: dict[str, str] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)

    def command(
        self,
        *args: Any,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        trace: bool = False,
    ) -> str:
        full_env = {**self.env, **(env or {})}
        words: list[str] = []
        if full_env:
            words += ["env", *(f"{k}={v}" for k, v in full_env.items())]
        words += [self.binary, "--data-root", self.data_root, "--exec-root", self.exec_root]
        if trace:
            words.append("--trace")
        words += [str(a) for a in args]
        cmd = q(*words)
        if stdin is not None:
            cmd += " < " + shlex.quote(stdin)
        return cmd

    def __call__(
        self,
        *args: Any,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        trace: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> Any:
        result = run(self.host, self.command(*args, env=env, stdin=stdin, trace=trace), timeout=timeout)
        self.history.append(result)
        return result

    def ok(self, *args: Any, **kwargs: Any) -> str:
        result = self(*args, **kwargs)
        if result.rc != 0:
            raise CommandFailed("expected success\n" + describe(result))
        return str(result.stdout)

    def fail(self, *args: Any, rc: int | None = None, **kwargs: Any) -> Any:
        result = self(*args, **kwargs)
        if result.rc == 0 or (rc is not None and result.rc != rc):
            want = "non-zero" if rc is None else str(rc)
            raise CommandFailed(f"expected exit status {want}\n" + describe(result))
        return result


def minidocker_binary(host: Any) -> str:
    """The ``minidocker`` console script to test.

    ``$MINIDOCKER_BIN`` wins. Locally, the script next to ``sys.executable`` (so a tox env
    tests its own install); remotely, whatever ``minidocker`` is on the target's PATH.
    """
    explicit = os.environ.get("MINIDOCKER_BIN")
    if explicit:
        return explicit
    if is_local(host):
        import sys

        candidate = os.path.join(os.path.dirname(sys.executable), "minidocker")
        if os.path.exists(candidate):
            return candidate
    return "minidocker"


# --------------------------------------------------------------------------------------------
# a real dockerd on throwaway roots


def find_docker_client(host: Any) -> str:
    explicit = os.environ.get("MINIDOCKER_TEST_DOCKER")
    if explicit:
        return explicit
    for candidate in DOCKER_CLIENT_CANDIDATES:
        if host.run(f"command -v {shlex.quote(candidate)} >/dev/null 2>&1").rc == 0:
            return candidate
    raise CommandFailed("no docker client on the target host (apt-get install docker.io)")


class DockerDaemon:
    """A real ``dockerd`` with its own data root, exec root, pidfile, socket and containerd.

    Layout under one scratch dir ``root``::

        root/data        --data-root (compare this with minidocker's data root)
        root/exec        --exec-root (managed containerd's config, socket and state live here)
        root/dockerd.pid root/docker.sock root/dockerd.log root/daemon.json root/key.json
        root/client      DOCKER_CONFIG for the client (keeps ~/.docker untouched)

    No bridge, no iptables, no userland proxy; containers go under a private cgroup parent
    (``/mdtest-<name>``), removed at cleanup. ``start()`` may be called again after ``stop()``
    (same data root). ``cleanup()`` stops everything and removes ``root``.
    """

    START_TIMEOUT = 60.0
    STOP_TIMEOUT = 30.0

    def __init__(self, host: Any, root: str, client: str | None = None, extra_args: Iterable[str] = ()):
        self.host = host
        self.root = root
        self.data_root = f"{root}/data"
        self.exec_root = f"{root}/exec"
        self.pidfile = f"{root}/dockerd.pid"
        self.socket = f"{root}/docker.sock"
        self.log = f"{root}/dockerd.log"
        self.config_file = f"{root}/daemon.json"
        self.client_config = f"{root}/client"
        self.cgroup_parent = os.path.basename(root).replace(".", "-")
        self.client = client or find_docker_client(host)
        self.extra_args = list(extra_args)
        self.pid: int | None = None
        self._log_offset = 0
        self._version: str | None = None

    # ---- addresses -----------------------------------------------------------------------

    @property
    def host_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a docker client talking to this daemon."""
        return {"DOCKER_HOST": self.host_url, "DOCKER_CONFIG": self.client_config}

    def dockerd_argv(self) -> list[str]:
        return [
            "dockerd",
            "--config-file", self.config_file,
            "--data-root", self.data_root,
            "--exec-root", self.exec_root,
            "--pidfile", self.pidfile,
            "-H", self.host_url,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver", "overlay2",
            # cgroupfs everywhere (systemd hosts would default newer dockerds to the systemd
            # driver, which wants a *.slice parent); containers go below a private parent
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", "/" + self.cgroup_parent,
            *self.extra_args,
        ]  # fmt: skip

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> DockerDaemon:
        timeout = timeout or self.START_TIMEOUT
        host = self.host
        check(host, q("mkdir", "-p", self.client_config))  # dockerd makes its own roots
        # our own daemon.json: ignore /etc/docker/daemon.json and (dockerd < 23, which still
        # makes a libtrust key) keep the key in here instead of creating /etc/docker/key.json.
        settings: dict[str, str] = {}
        if self.version_major() < 23:
            settings["deprecated-key-path"] = f"{self.root}/key.json"
        config = json.dumps(settings)
        check(host, f"printf %s {shlex.quote(config)} > {shlex.quote(self.config_file)}")
        check(host, f"printf '{{}}' > {shlex.quote(self.client_config)}/config.json")
        check(host, q("rm", "-f", self.pidfile, self.socket))
        # the log is appended across restarts: remember where this run's part begins
        self._log_offset = int(
            check(host, f"touch {shlex.quote(self.log)} && stat -c %s {shlex.quote(self.log)}")
        )
        # setsid + nohup + closed stdin: the daemon must outlive the `sh -c` that launched it.
        launch = f"setsid nohup {q(*self.dockerd_argv())} >>{shlex.quote(self.log)} 2>&1 </dev/null & echo $!"
        self.pid = int(check(host, launch, timeout=30).strip())
        pidfile = host.file(self.pidfile)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive([self.pid]):
                raise CommandFailed(f"dockerd exited during startup\n{self.log_tail()}")
            if self.docker("version", "--format", "{{.Server.Version}}", timeout=30).rc == 0:
                if pidfile.exists:  # the daemon's own word on its pid
                    self.pid = int(pidfile.content_string.strip())
                return self
            time.sleep(0.2)
        raise CommandFailed(f"dockerd did not answer on {self.socket} within {timeout}s\n{self.log_tail()}")

    def version(self) -> str:
        """``dockerd --version`` of the target, e.g. ``20.10.24+dfsg1``."""
        if self._version is None:
            # "Docker version 20.10.24+dfsg1, build 5d6db84"
            out = check(self.host, "dockerd --version", timeout=30)
            self._version = out.split("version", 1)[-1].split(",", 1)[0].strip()
        return self._version

    def version_major(self) -> int:
        try:
            return int(self.version().split(".", 1)[0])
        except ValueError:
            return 0

    def is_running(self) -> bool:
        return self.pid is not None and bool(self.alive([self.pid]))

    def stop(self, timeout: float | None = None, kill_containers: bool = True) -> None:
        """Stop the daemon; the data root stays for inspection (byte comparison, restart).

        ``kill_containers``: SIGKILL running containers first (dockerd would otherwise give
        each its 10 s stop timeout). Then SIGTERM dockerd; once it logs "Daemon shutdown
        complete" (everything it persists is written, the graph driver is unmounted) it only
        waits ~2 s more for its containerd, so it gets SIGKILL after a grace of 0.3 s. Leftover
        containerd/shim/container processes are killed and anything still mounted under the
        roots is unmounted.
        """
        timeout = timeout or self.STOP_TIMEOUT
        if self.pid is not None and self.is_running():
            if kill_containers:
                running = self.docker("ps", "-q", timeout=30)
                ids = str(running.stdout).split() if running.rc == 0 else []
                if ids:
                    self.docker("kill", *ids, timeout=60)
            self.host.run(q("kill", "-TERM", self.pid))
            deadline = time.monotonic() + timeout
            completed_at: float | None = None
            while time.monotonic() < deadline and self.is_running():
                if completed_at is None:
                    if self._log_since_start_contains("Daemon shutdown complete"):
                        completed_at = time.monotonic()
                elif time.monotonic() - completed_at > 0.3:
                    break
                time.sleep(0.05)
            self._signal_and_wait([self.pid], "KILL", 10)
        self.pid = None
        # managed containerd, shims and container processes of this daemon, if any survived
        # (they carry the root in their command line, or sit in the daemon's cgroups)
        stragglers = self.stray_pids() + self.cgroup_pids()
        if stragglers:
            self._signal_and_wait(stragglers, "TERM", 5)
            self._signal_and_wait(self.stray_pids() + self.cgroup_pids(), "KILL", 10)
        unmount_all_under(self.host, self.root)

    def cleanup(self) -> None:
        """Stop everything and remove the scratch root and the private cgroups."""
        try:
            self.stop()
        finally:
            self.remove_cgroups()
            remove_tree(self.host, self.root)

    def stray_pids(self) -> list[int]:
        pids = []
        for line in processes_mentioning(self.host, self.root):
            try:
                pids.append(int(line.split(None, 1)[0]))
            except ValueError:
                continue
        return pids

    def alive(self, pids: Iterable[int]) -> list[int]:
        """The ``pids`` that still run. Zombies count as gone: on hosts whose PID 1 reaps
        slowly, a killed daemon stays a zombie for a while and ``kill -0`` still succeeds."""
        pids = list(pids)
        if not pids:
            return []
        out = self.host.run(q("ps", "-o", "pid=,stat=", "-p", ",".join(str(p) for p in pids))).stdout
        return [
            int(f[0])
            for f in (line.split() for line in str(out).splitlines())
            if len(f) == 2 and not f[1].startswith("Z")
        ]

    def _signal_and_wait(self, pids: list[int], sig: str, timeout: float) -> None:
        alive = self.alive(pids)
        if not alive:
            return
        self.host.run(q("kill", f"-{sig}", *alive))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = self.alive(alive)
            if not alive:
                return
            time.sleep(0.05)

    def cgroup_dirs(self) -> list[str]:
        out = self.host.run(
            f"find /sys/fs/cgroup -maxdepth 2 -type d -name {shlex.quote(self.cgroup_parent)} 2>/dev/null"
        ).stdout
        return [line for line in str(out).splitlines() if line]

    def cgroup_pids(self) -> list[int]:
        """Processes still in this daemon's containers' cgroups (e.g. after a SIGKILLed daemon)."""
        pids: set[int] = set()
        for d in self.cgroup_dirs():
            out = self.host.run(
                f"find {shlex.quote(d)} -name cgroup.procs -exec cat {{}} + 2>/dev/null"
            ).stdout
            pids.update(int(x) for x in str(out).split() if x.isdigit())
        return sorted(pids)

    def remove_cgroups(self) -> None:
        for d in self.cgroup_dirs():
            # children first (container cgroups normally vanish with the containers)
            self.host.run(f"find {shlex.quote(d)} -depth -type d -exec rmdir {{}} + 2>/dev/null; true")

    # ---- client --------------------------------------------------------------------------

    def docker_command(self, *args: Any, stdin: str | None = None) -> str:
        env = [f"{k}={v}" for k, v in self.env.items()]
        cmd = q("env", *env, self.client, *args)
        if stdin is not None:
            cmd += " < " + shlex.quote(stdin)
        return cmd

    def docker(self, *args: Any, stdin: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
        """Run the docker client against this daemon; returns the CommandResult."""
        return run(self.host, self.docker_command(*args, stdin=stdin), timeout=timeout)

    def ok(self, *args: Any, **kwargs: Any) -> str:
        result = self.docker(*args, **kwargs)
        if result.rc != 0:
            raise CommandFailed("docker command failed\n" + describe(result) + "\n" + self.log_tail())
        return str(result.stdout)

    def _log_since_start_contains(self, text: str) -> bool:
        since_start = q("tail", "-c", f"+{self._log_offset + 1}", self.log)
        return bool(self.host.run(f"{since_start} | grep -qF -- {shlex.quote(text)}").rc == 0)

    def log_tail(self, lines: int = 40) -> str:
        r = self.host.run(q("tail", "-n", lines, self.log))
        return f"--- {self.log} (last {lines} lines) ---\n{r.stdout}"


# --------------------------------------------------------------------------------------------
# busybox rootfs


BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# Built on the target with GNU tar. Deterministic (sorted names, mtime 0, uid/gid 0), so the
# layer digest is the same every run on the same busybox binary.
_ROOTFS_SCRIPT = r"""
set -eu
bb={busybox}
out={out}
work=$(mktemp -d "$(dirname "$out")/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bb" --list >/dev/null
mkdir -p "$work/bin" "$work/etc" "$work/root" "$work/tmp" "$work/home" "$work/var" \
         "$work/dev" "$work/proc" "$work/sys" "$work/usr/bin" "$work/usr/sbin" "$work/sbin"
chmod 1777 "$work/tmp"
chmod 700 "$work/root"
cp "$bb" "$work/bin/busybox"
chmod 755 "$work/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$work/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$work/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/etc/group"
chmod 644 "$work/etc/passwd" "$work/etc/group"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$work" -cf "$out.part" .
mv "$out.part" "$out"
"""


def build_busybox_rootfs_tar(host: Any, out: str) -> str:
    """Write a busybox rootfs tar to ``out`` on the target (for ``docker import``) and return it."""
    bb = os.environ.get("MINIDOCKER_TEST_BUSYBOX")
    if not bb:
        for candidate in BUSYBOX_CANDIDATES:
            if host.file(candidate).exists:
                bb = candidate
                break
    if not bb:
        raise CommandFailed("busybox not found on the target host (apt-get install busybox-static)")
    script = _ROOTFS_SCRIPT.format(busybox=shlex.quote(bb), out=shlex.quote(out))
    check(host, script, timeout=120)
    return out


# --------------------------------------------------------------------------------------------
# a real registry (Debian's docker-registry, distribution 2.x) on 127.0.0.1


_REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}"""


class RegistryServer:
    """``docker-registry serve`` on a free loopback port with its own storage under ``root``.

    ``htpasswd=("user", "pass")`` turns on Basic auth. ``address`` is ``127.0.0.1:<port>``.
    """

    def __init__(self, host: Any, root: str, htpasswd: tuple[str, str] | None = None) -> None:
        self.host = host
        self.root = root
        self.htpasswd = htpasswd
        self.port = 0
        self.pid: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RegistryServer:
        host = self.host
        self.port = int(
            check(host, "python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));"
                        "print(s.getsockname()[1])'").strip()
        )  # fmt: skip
        auth = ""
        if self.htpasswd:
            user, password = self.htpasswd
            check(host, f"htpasswd -Bbn {q(user, password)} > {shlex.quote(self.root)}/htpasswd")
            auth = f"auth:\n  htpasswd:\n    realm: mdtest\n    path: {self.root}/htpasswd\n"
        config = _REGISTRY_CONFIG.format(root=self.root, port=self.port, auth=auth)
        check(host, f"printf %s {shlex.quote(config)} > {shlex.quote(self.root)}/config.yml")
        launch = (
            f"setsid nohup docker-registry serve {shlex.quote(self.root)}/config.yml "
            f">>{shlex.quote(self.root)}/registry.log 2>&1 </dev/null & echo $!"
        )
        self.pid = int(check(host, launch).strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = host.run(f"curl -s -o /dev/null -w %{{http_code}} http://{self.address}/v2/")
            if r.stdout.strip() in ("200", "401"):
                return self
            time.sleep(0.1)
        raise CommandFailed(f"docker-registry did not answer on {self.address}")

    def stop(self) -> None:
        if self.pid is not None:
            self.host.run(
                f"kill {self.pid} 2>/dev/null; for i in $(seq 50); do kill -0 {self.pid} 2>/dev/null || break; sleep 0.1; done; kill -9 {self.pid} 2>/dev/null; true"
            )
            self.pid = None


# ------------------------------------------------------------------------------------------------
# building: shared by the build tests


def write_file(host: Any, path: str, text: str) -> None:
    """Write ``text`` to ``path`` on the target, as is (no newline added): ``write_file(host, f"{ctx}/Dockerfile", "FROM base\\n")``."""
    check(host, f"printf %s {shlex.quote(text)} > {shlex.quote(path)}")


def with_busybox(
    md: Any, host: Any, data_root: str, *, tag: str = "", no_processes: bool = True
) -> Iterator[Any]:
    """The body of a ``bb`` fixture: ``md`` with busybox (``buildbase``; also tagged ``tag``), and
    after the test every container removed, nothing mounted below ``data_root`` and (with
    ``no_processes``) no process naming it::

        @pytest.fixture
        def bb(md, host, data_root):
            yield from helpers.with_busybox(md, host, data_root, tag="base")
    """
    md.ok("buildbase")
    if tag:
        md.ok("tag", "busybox", tag)
    yield md
    for cid in md("ps", "-aq", "--no-trunc").stdout.split():
        md("rm", "-f", cid)
    assert mounts_under(host, data_root) == []
    if no_processes:
        assert processes_mentioning(host, data_root) == []


def busybox_into_dockerd(md: Any, dockerd: DockerDaemon, out: str, tag: str = "base") -> None:
    """minidocker's busybox into ``dockerd`` (``save`` to ``<out>/busybox.tar``, ``load``: the same
    image ID on both), tagged ``tag`` there."""
    md.ok("save", "-o", f"{out}/busybox.tar", "busybox")
    dockerd.ok("load", "-i", f"{out}/busybox.tar")
    dockerd.ok("tag", "busybox", tag)


def docker_classic_build(host: Any, dockerd: DockerDaemon, *args: Any) -> Any:
    """``docker build --network none ARGS`` with Docker's classic builder (``DOCKER_BUILDKIT=0``,
    the one minidocker build is compared with) on ``dockerd``: the command's result, unchecked."""
    return run(host, "DOCKER_BUILDKIT=0 " + dockerd.docker_command("build", "--network", "none", *args))
