"""Shared pieces of the benchmarks: a local ``host`` for the test suite's DockerDaemon, scratch
dirs, timed child processes with their peak RSS, cache settling, and the result table.

The throwaway dockerd is ``tests.integration.helpers.DockerDaemon`` itself (same flags, same
start/stop/cleanup logic as the parity tests), driven through :class:`LocalHost`, a minimal
stand-in for testinfra's local ``host`` (``run``, ``file``), so the benchmarks need neither
pytest nor testinfra.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.integration import helpers  # noqa: E402  (needs REPO on sys.path)

# Scratch dirs are <BENCH_TMP>/mdtest-bench-<what>.XXXXXX: the mdtest- prefix is what the test
# helpers' remove_tree() accepts, and where the integration suite's leftovers checks look.
BENCH_TMP = os.environ.get("MINIDOCKER_BENCH_TMP", "/var/tmp")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# a local "host" for tests.integration.helpers


@dataclass
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str


class _Backend:
    NAME = "local"


@dataclass
class _File:
    path: str

    @property
    def exists(self) -> bool:
        return os.path.lexists(self.path)

    @property
    def content_string(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            return f.read()


class LocalHost:
    """What ``helpers.DockerDaemon`` and friends use of testinfra's local host: ``run``, ``file``."""

    backend = _Backend()

    def run(self, command: str) -> CommandResult:
        p = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, errors="replace")
        return CommandResult(command, p.returncode, p.stdout, p.stderr)

    def file(self, path: str) -> _File:
        return _File(path)


HOST = LocalHost()


def scratch(what: str) -> str:
    """A fresh ``<BENCH_TMP>/mdtest-bench-<what>.XXXXXX`` (0700)."""
    os.makedirs(BENCH_TMP, exist_ok=True)
    return helpers.make_temp_dir(HOST, f"bench-{what}", base=BENCH_TMP)


def fresh_fs(root: str, size: int) -> str:
    """Make and mount a fresh ext4 on a sparse file: ``<root>/fs`` (image ``<root>/fs.img``).

    Why: this host's root fs is ext4 *without a journal*, where the inode allocator skips inodes
    freed in the last 60-300 s (``recently_deleted``), scanning them one by one -- after removing
    the previous run's 60k-file root, creating files got 10x slower (0.7 s -> 6 s for the quick
    image), randomly hitting whichever contender came next. A fresh journaled ext4 per run gives
    both contenders the same, history-free filesystem. ``noinit_itable``: no background inode
    table zeroing during the run. Unmounting (the loop device auto-clears) is ``remove_scratch``'s job.
    """
    img, mnt = f"{root}/fs.img", f"{root}/fs"
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(size)
    # one fixed directory-hash seed: both contenders' trees list (readdir) in the same order,
    # every run, so timings do not depend on a random htree layout, and tree comparisons that
    # walk in readdir order see the same order on both sides
    seed = "hash_seed=3c8a6f0e-5d2b-4c1a-9e7f-0b6d5a4c3e21"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", seed, img], check=True, capture_output=True)
    mount_fs(root)
    return mnt


def mount_fs(root: str) -> None:
    """(Re)mount ``<root>/fs.img`` on ``<root>/fs``."""
    subprocess.run(
        ["mount", "-o", "loop,noinit_itable", f"{root}/fs.img", f"{root}/fs"], check=True, capture_output=True
    )


def remove_scratch(path: str) -> None:
    """Unmount anything below ``path`` and delete it (refuses paths that are not scratch dirs)."""
    helpers.remove_tree(HOST, path)


def leftovers() -> list[str]:
    """Scratch dirs of the benchmarks still present under BENCH_TMP (should be none after a run)."""
    try:
        names = os.listdir(BENCH_TMP)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(BENCH_TMP, n) for n in names if n.startswith(helpers.TMP_PREFIX + "bench-"))


# --------------------------------------------------------------------------------------------
# binaries


def minidocker_command() -> list[str]:
    """``$MINIDOCKER_BIN``, else the console script next to this interpreter, else ``python -m``."""
    explicit = os.environ.get("MINIDOCKER_BIN")
    if explicit:
        return shlex.split(explicit)
    candidate = os.path.join(os.path.dirname(sys.executable), "minidocker")
    if os.path.exists(candidate):
        return [candidate]
    return [sys.executable, "-m", "minidocker"]


def docker_client() -> str:
    return helpers.find_docker_client(HOST)


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


# --------------------------------------------------------------------------------------------
# failing, checked commands, busybox in both contenders


class BenchError(RuntimeError):
    """A contender failed; the numbers would mean nothing."""


def checked(argv: list[str], what: str, env: dict[str, str] | None = None, stdin: int | None = None) -> str:
    """Run an untimed set-up command; its stdout, or :class:`BenchError` naming ``what``."""
    p = subprocess.run(
        argv, capture_output=True, text=True, errors="replace", env={**os.environ, **(env or {})}, stdin=stdin
    )
    if p.returncode != 0:
        raise BenchError(f"{what} failed (rc {p.returncode}): {' '.join(argv)}\n{p.stdout}{p.stderr}")
    return p.stdout


def md_argv(root: str) -> list[str]:
    """``minidocker`` with its roots in scratch dir ``root``: ``<root>/md/{data,exec}``."""
    return [*minidocker_command(), "--data-root", f"{root}/md/data", "--exec-root", f"{root}/md/exec"]


@dataclass
class Busybox:
    """One image in both contenders: minidocker's roots in a scratch dir and a fresh dockerd."""

    md: list[str]  # minidocker --data-root .. --exec-root ..
    md_env: dict[str, str]  # bytecode cache on, in the scratch dir (see busybox_in_both)
    image_id: str
    archive: str  # ``minidocker save`` of the image, as loaded into dockerd
    daemon: helpers.DockerDaemon
    client: str


def busybox_in_both(root: str, daemon_root: str, image: str, daemon_args: Sequence[str] = ()) -> Busybox:
    """``image`` in minidocker (``buildbase``) under ``root``, and the same image (same ID, by
    ``save``/``load``) in a dockerd started on ``daemon_root`` with ``daemon_args``."""
    md = md_argv(root)
    # minidocker as installed: with its modules' bytecode cached. A checkout run with
    # PYTHONDONTWRITEBYTECODE set (as in some dev shells) compiles ~100 modules on every start
    # (+~0.1 s); the cache goes into the scratch dir, not into the source tree.
    md_env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": f"{root}/pycache"}
    checked([*md, "buildbase"], "minidocker buildbase", env=md_env)
    image_id = checked([*md, "inspect", "-f", "{{.Id}}", image], "minidocker inspect").strip()
    archive = f"{root}/busybox.tar"
    checked([*md, "save", "-o", archive, image], "minidocker save")
    client = docker_client()
    daemon = helpers.DockerDaemon(HOST, daemon_root, client=client, extra_args=daemon_args)
    daemon.start()
    with open(archive, "rb") as f:
        checked([client, "load"], "docker load", env=daemon.env, stdin=f.fileno())
    docker_id = checked(
        [client, "image", "inspect", "-f", "{{.Id}}", image], "docker inspect", env=daemon.env
    )
    if docker_id.strip() != image_id:
        raise BenchError(f"docker loaded {docker_id.strip()}, minidocker has {image_id}")
    return Busybox(md, md_env, image_id, archive, daemon, client)


def remove_md_containers(root: str) -> None:
    """``minidocker rm -f`` every container under scratch dir ``root`` (monitors, cgroups, mounts
    and the default bridge go with them); nothing if minidocker's data root was never made."""
    if not os.path.isdir(f"{root}/md/data"):
        return
    md = md_argv(root)
    ids = subprocess.run([*md, "ps", "-aq", "--no-trunc"], capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run([*md, "rm", "-f", *ids], capture_output=True)


# --------------------------------------------------------------------------------------------
# measuring


@dataclass
class Run:
    """One timed child process: wall seconds, its own peak RSS (KiB), exit status, output."""

    wall: float
    maxrss_kib: int
    rc: int
    stdout: str
    stderr: str
    user: float = 0.0
    sys: float = 0.0


GNU_TIME = "/usr/bin/time"


def timed(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 1800) -> Run:
    """Run ``argv``, timing it from spawn to exit, with its peak RSS.

    The peak RSS comes from GNU time (apt package ``time``) when installed: ``wait4`` on our own
    child would report at least *our* RSS, since a forked child starts with its parent's pages
    mapped (and ``RUSAGE_CHILDREN`` would mix in every earlier child too). Without GNU time the
    ``wait4`` figure is used, an overestimate by this runner's RSS.
    """
    full_env = {**os.environ, **(env or {})}
    # output goes to anonymous files, not pipes: nothing to drain while the child runs
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as tf,
    ):
        wrapped = list(argv)
        if os.access(GNU_TIME, os.X_OK):
            wrapped = [GNU_TIME, "-q", "-f", "%M %U %S", "-o", tf.name, *argv]
        start = time.perf_counter()
        p = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env)
        # block in wait4 (no polling: the runner must not steal CPU from the contender); a timer
        # kills a hung child
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
        maxrss, user, system = usage.ru_maxrss, usage.ru_utime, usage.ru_stime
        if wrapped is not argv:
            fields = tf.read().decode().split()
            if len(fields) >= 3:  # the last line (GNU time may print "Command exited..." first)
                maxrss, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
    return Run(wall, maxrss, p.returncode, stdout, stderr, user, system)


def sync() -> None:
    """Write back dirty pages (the previous run's output, a removed tree) before timing anything."""
    os.sync()


def drop_caches() -> None:
    """Drop clean page, dentry and inode caches (after a sync)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def warm(path: str) -> None:
    """Read ``path`` once so both contenders find it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 22)
        while f.readinto(buf):
            pass


def cpu_ticks(pids: Sequence[int]) -> int:
    """utime + stime (clock ticks) of ``pids`` and their reaped children; gone pids count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # after ") ": state(0) ... utime(11) stime(12) cutime(13) cstime(14)
        total += sum(int(x) for x in fields[11:15])
    return total


def wait_idle(pids_fn: Any, *, window: float = 0.5, quiet_windows: int = 2, timeout: float = 30.0) -> float:
    """Wait until the processes ``pids_fn()`` use at most one tick per ``window``, ``quiet_windows``
    times in a row (dockerd and containerd finish their start-up work). Returns the seconds waited."""
    start = time.monotonic()
    quiet = 0
    before = cpu_ticks(pids_fn())
    while time.monotonic() - start < timeout:
        time.sleep(window)
        now = cpu_ticks(pids_fn())
        quiet = quiet + 1 if now - before <= 1 else 0
        before = now
        if quiet >= quiet_windows:
            break
    return time.monotonic() - start


def daemon_pids(daemon: helpers.DockerDaemon) -> list[int]:
    """dockerd and its containerd (whose command line names the daemon's root)."""
    return sorted({daemon.pid or 0, *daemon.stray_pids()})


def timed_beside(
    daemon: helpers.DockerDaemon,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> tuple[Run, float]:
    """:func:`timed` ``argv`` (a docker client command), and the CPU seconds dockerd and its
    containerd spent meanwhile."""
    pids = daemon_pids(daemon)
    ticks = cpu_ticks(pids)
    run = timed(argv, env=env, timeout=timeout)
    return run, (cpu_ticks(pids) - ticks) / CLK_TCK


def vm_hwm_kib(pid: int) -> int:
    """Peak RSS (VmHWM) of a running process, KiB; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------
# results


@dataclass
class Series:
    """Repeated measurements of one contender."""

    name: str
    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_rss_mib(self) -> float:
        return max(self.rss_kib) / 1024 if self.rss_kib else 0.0


def timing_table(series: Sequence[Series]) -> str:
    """:func:`table` of each series' median, min and max wall seconds and median CPU seconds."""
    rows = [["contender", "median s", "min s", "max s", "CPU s"]]
    for s in series:
        rows.append([s.name, f"{s.median:.3f}", f"{min(s.walls):.3f}", f"{max(s.walls):.3f}",
                     f"{sorted(s.cpu)[len(s.cpu) // 2]:.3f}"])  # fmt: skip
    return table(rows)


class Goals:
    """A benchmark's PASS/FAIL lines; :attr:`ok` stays True while every goal checked is met:
    ``goals.check("ratio minidocker/docker", f"{r:.2f}x", "<= 1.00x", r <= 1.0, "minidocker is slow")``.
    """

    def __init__(self, log: Any) -> None:
        self.log = log
        self.ok = True

    def check(self, label: str, value: str, target: str, met: bool, missed: str) -> None:
        """``label: value (goal target) PASS|FAIL``; when missed, also ``GOAL MISSED: missed``."""
        self.log(f"{label}: {value} (goal {target}) {'PASS' if met else 'FAIL'}")
        if not met:
            self.ok = False
            self.log(f"GOAL MISSED: {missed}")


def table(rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
