"""``load`` benchmark: ``minidocker load -i image.tar`` against ``docker load -i image.tar``.

Both load the same generated archive (:mod:`imagegen`) in the same run, each on a fresh data root
every time:

* docker: a throwaway dockerd (``tests.integration.helpers.DockerDaemon``: overlay2, own data,
  exec root and containerd) is started on a fresh root, waited on until it and its containerd
  are idle, then the client's ``docker load -i`` is timed (wall clock, spawn to exit). The
  daemon is stopped and its root removed afterwards.
* minidocker: ``minidocker --data-root <fresh> --exec-root <fresh> load -i`` is timed the same
  way; ``wait4`` gives its peak RSS.

Before every timed run: ``sync`` (the previous run's dirty pages and removed trees are written
back, so no writeback overlaps the next run) and the archive is read once (both find it in the
page cache; ``--drop-caches`` drops dentries/inodes/pages first). Warm-up runs (not counted) go
first; then timed runs alternate docker, minidocker, so drift hits both alike. Reported: the
median of each, the ratio of medians, peak RSS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import _common as c
import imagegen
from _common import BenchError

GOAL_RATIO = 1.0
GOAL_RSS_MIB = 200.0
COMPARE = os.path.join(c.REPO, "tests", "integration", "data", "compare_roots.py")


@dataclass
class Options:
    iterations: int = 3
    warmup: int = 1
    drop_caches: bool = False
    verify: bool = False
    fresh_fs: bool = True  # a fresh loop-mounted ext4 per run (see _common.fresh_fs)


def _data_root(root: str, meta: imagegen.Meta, opts: Options) -> str:
    """The contender's data root inside scratch dir ``root``: on a fresh fs unless told otherwise."""
    if not opts.fresh_fs:
        return f"{root}/data"
    # room for Docker's temp copy of the archive plus the extracted layers, with a margin
    return c.fresh_fs(root, max(4 << 30, 4 * meta.size)) + "/data"


def _prepare(image: str, drop: bool) -> None:
    if drop:
        c.drop_caches()
    else:
        c.sync()
    c.warm(image)


@dataclass
class DockerRun:
    run: c.Run
    daemon_hwm_kib: int
    daemon_cpu: float  # seconds of dockerd + containerd CPU during the load
    idle_wait: float


def docker_once(
    meta: imagegen.Meta,
    opts: Options,
    client: str,
    args: list[str],
    expect: str,
    prepare: Callable[[], None],
    *,
    keep: list[str] | None = None,
) -> DockerRun:
    """One ``docker <args>`` by a fresh daemon, idle first, ``prepare()`` just before, failed
    unless its stdout holds ``expect``; the daemon's root is removed unless ``keep`` takes it.

    ``docker_once(meta, opts, client, ["load", "-i", meta.path], "Loaded image: ...", prep)``
    """
    root = c.scratch("docker")
    daemon = c.helpers.DockerDaemon(c.HOST, root, client=client)
    kept = False
    try:
        daemon.data_root = _data_root(root, meta, opts)
        daemon.start()
        assert daemon.pid is not None
        waited = c.wait_idle(lambda: c.daemon_pids(daemon))
        prepare()
        run, cpu = c.timed_beside(daemon, [client, *args], env=daemon.env)
        hwm = c.vm_hwm_kib(daemon.pid)
        if run.rc != 0 or expect not in run.stdout:
            raise BenchError(
                f"docker {args[0]} failed (rc {run.rc}):\n{run.stdout}{run.stderr}\n{daemon.log_tail()}"
            )
        if keep is not None:
            daemon.stop()  # unmounts everything below root, our fs included: mount it again
            if opts.fresh_fs:
                c.mount_fs(root)
            keep.append(daemon.data_root)
            kept = True
        return DockerRun(run, hwm, cpu, waited)
    finally:
        if not kept:
            daemon.cleanup()


def minidocker_once(
    meta: imagegen.Meta,
    opts: Options,
    args: list[str],
    expect: str,
    prepare: Callable[[], None],
    *,
    home: bool = False,
    keep: list[str] | None = None,
) -> c.Run:
    """One ``minidocker <args>`` into a fresh data root (``home``: with ``$HOME`` in its scratch
    dir), ``prepare()`` just before, failed unless its stdout holds ``expect``; the root is removed
    unless ``keep`` takes it."""
    root = c.scratch("md")
    kept = False
    try:
        data_root = _data_root(root, meta, opts)
        prepare()
        argv = [*c.minidocker_command(), "--data-root", data_root, "--exec-root", f"{root}/exec"]
        run = c.timed([*argv, *args], env={"HOME": root} if home else None)
        if run.rc != 0 or expect not in run.stdout:
            raise BenchError(f"minidocker {args[0]} failed (rc {run.rc}):\n{run.stdout}{run.stderr}")
        if keep is not None:
            keep.append(data_root)
            kept = True
        return run
    finally:
        if not kept:
            c.remove_scratch(root)


def compare(
    opts: Options,
    verb: str,
    docker: Callable[[list[str] | None], DockerRun],
    minidocker: Callable[[list[str] | None], c.Run],
    detail: Callable[[DockerRun, c.Run], tuple[str, str]],
    log: Callable[[str], None],
) -> tuple[c.Series, c.Series]:
    """Warm-up runs (the first one's data roots compared with ``--verify``), then timed runs,
    interleaved ``docker(keep)``, ``minidocker(keep)``; ``detail`` adds to each run's log line
    (after docker's time, after minidocker's). Returns (docker, minidocker) series."""
    d_series = c.Series(f"docker {verb}")
    md_series = c.Series(f"minidocker {verb}")
    hwm: list[int] = []
    for i in range(opts.warmup):
        keep: list[str] | None = [] if opts.verify and i == 0 else None
        try:
            d = docker(keep)
            m = minidocker(keep)
            log(f"  warm-up {i + 1}: docker {d.run.wall:.2f}s, minidocker {m.wall:.2f}s")
            if keep is not None:  # same files, tar-split, distribution metadata, references
                _verify(keep[0], keep[1], log)
        finally:
            for data_root in keep or ():
                c.remove_scratch(_scratch_of(data_root))
    for i in range(opts.iterations):
        d = docker(None)
        d_series.walls.append(d.run.wall)
        d_series.cpu.append(d.daemon_cpu + d.run.user + d.run.sys)
        hwm.append(d.daemon_hwm_kib)
        m = minidocker(None)
        md_series.walls.append(m.wall)
        md_series.cpu.append(m.user + m.sys)
        md_series.rss_kib.append(m.maxrss_kib)
        d_more, m_more = detail(d, m)
        log(
            f"  run {i + 1}/{opts.iterations}: docker {d.run.wall:.2f}s{d_more}, "
            f"minidocker {m.wall:.2f}s ({m.maxrss_kib / 1024:.0f} MiB{m_more})"
        )
    d_series.rss_kib = hwm
    return d_series, md_series


def report(
    verb: str,
    docker: c.Series,
    md: c.Series,
    size: int,
    notes: list[str],
    goal_ratio: float,
    goal_rss_mib: float,
    log: Callable[[str], None],
) -> bool:
    """The table (MB/s of ``size`` bytes), ``notes`` under it, the ratio and peak RSS against
    their goals; returns whether both were met."""
    rows = [["contender", "median s", "min s", "max s", "CPU s", "MB/s", "peak RSS MiB"]]
    for s in (docker, md):
        rows.append(
            [
                s.name,
                f"{s.median:.2f}",
                f"{min(s.walls):.2f}",
                f"{max(s.walls):.2f}",
                f"{sorted(s.cpu)[len(s.cpu) // 2]:.2f}",
                f"{size / 1e6 / s.median:.0f}",
                f"{s.peak_rss_mib:.0f}",
            ]
        )
    log("")
    log(c.table(rows))
    for note in notes:
        log(note)
    ratio = md.median / docker.median
    rss = md.peak_rss_mib
    log(f"ratio minidocker/docker: {ratio:.2f}x (goal <= {goal_ratio:.2f}x)")
    log(f"peak RSS minidocker: {rss:.0f} MiB (goal < {goal_rss_mib:.0f} MiB)")
    ok = True
    if ratio > goal_ratio:
        log(f"GOAL MISSED: {verb} is {ratio:.2f}x Docker's time (goal <= {goal_ratio:.2f}x)")
        ok = False
    if rss >= goal_rss_mib:
        log(f"GOAL MISSED: minidocker {verb} peak RSS {rss:.0f} MiB (goal < {goal_rss_mib:.0f} MiB)")
        ok = False
    return ok


def _verify(docker_data: str, md_data: str, log: Callable[[str], None]) -> None:
    """Both data roots hold the same image, layer for layer (tests/integration/data/compare_roots.py)."""
    p = subprocess.run([sys.executable, COMPARE, docker_data, md_data], capture_output=True, text=True)
    summary = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
    if p.returncode != 0:
        raise BenchError(f"data roots differ:\n{p.stdout[-4000:]}{p.stderr[-2000:]}")
    log(f"  verify: dockerd's and minidocker's data roots match ({summary})")


def _scratch_of(data_root: str) -> str:
    """The scratch dir a data root lives in (``S/data`` or ``S/fs/data``)."""
    d = os.path.dirname(data_root)
    return os.path.dirname(d) if os.path.basename(d) == "fs" else d


def run(quick: bool, opts: Options, log: Callable[[str], None] = print) -> bool:
    """Run the benchmark and print its report; returns whether both goals were met."""
    if os.geteuid() != 0:
        raise BenchError("the load benchmark needs root (overlay2 data roots, dockerd)")
    profile = "quick" if quick else "full"
    meta = imagegen.ensure(profile, log=sys.stdout)
    client = c.docker_client()
    log(
        f"load: {meta.tag}, {meta.size / 1e6:.0f} MB archive, {meta.layers} layers, "
        f"{meta.entries} tar entries ({meta.files} non-directories); {meta.path}"
    )
    log(
        f"method: fresh data root per run{' on a fresh loop-mounted ext4' if opts.fresh_fs else ''}, "
        f"dockerd idle before each docker load; "
        f"{'drop_caches' if opts.drop_caches else 'sync'} + archive in page cache before every run; "
        f"{opts.warmup} warm-up run(s) each, then {opts.iterations} timed runs each, interleaved; medians"
    )
    args, expect = ["load", "-i", meta.path], f"Loaded image: {meta.tag}"

    def prepare() -> None:
        _prepare(meta.path, opts.drop_caches)

    docker, md = compare(
        opts,
        "load",
        lambda keep: docker_once(meta, opts, client, args, expect, prepare, keep=keep),
        lambda keep: minidocker_once(meta, opts, args, expect, prepare, keep=keep),
        lambda d, m: (f" (dockerd idle after {d.idle_wait:.1f}s)", ""),
        log,
    )
    notes = ["  (docker: CPU = dockerd + containerd + client; peak RSS = dockerd's VmHWM since its start)"]
    return report("load", docker, md, meta.size, notes, GOAL_RATIO, GOAL_RSS_MIB, log)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so every ``finally`` stops dockerd and removes roots."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
