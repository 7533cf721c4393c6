"""``pull`` benchmark: ``minidocker pull`` against ``docker pull`` from the same loopback registry.

The generated image (:mod:`imagegen`) is pushed once into a Debian ``docker-registry`` whose
storage is cached next to the archive (``$MINIDOCKER_BENCH_CACHE/v<N>-<profile>/registry``):
``minidocker load`` into a scratch root, then ``minidocker push`` (gzip, one blob per layer).
Every run then starts that registry on a free 127.0.0.1 port and times, alternately:

* docker: a throwaway dockerd (``tests.integration.helpers.DockerDaemon``) on a fresh data root on
  a fresh filesystem, idle before the run; ``docker pull <registry>/bench/pull:<profile>`` is timed
  (spawn to exit; default ``max-concurrent-downloads`` 3).
* minidocker: ``minidocker --data-root <fresh> pull ...`` (stdout to a file, so plain lines), timed
  the same way; GNU ``time`` gives its peak RSS.

Before each timed run: ``sync`` and the registry's blob files are read once (both contenders find
them in the page cache). Medians, the ratio of medians, peak RSS and a GOAL line are reported.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable

import _common as c
import imagegen
import load

GOAL_RATIO = 0.7
GOAL_RSS_MIB = 200.0
REPO_PATH = "bench/pull"


def _storage_root(meta: imagegen.Meta) -> str:
    return os.path.join(os.path.dirname(meta.path), "registry")


def _blob_files(root: str) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(os.path.join(root, "storage")):
        out.extend(os.path.join(d, f) for f in files if f == "data")
    return out


def ensure_pushed(meta: imagegen.Meta, log: Callable[[str], None]) -> str:
    """The cached registry root holding ``bench/pull:<profile>`` (pushed by minidocker once)."""
    root = _storage_root(meta)
    marker = os.path.join(root, "pushed")
    if os.path.exists(marker):
        return root
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    log(f"pushing {meta.tag} into a registry cached at {root} (once) ...")
    server = c.helpers.RegistryServer(c.HOST, root).start()
    scratch = c.scratch("push")
    try:
        argv = [*c.minidocker_command(), "--data-root", f"{scratch}/data", "--exec-root", f"{scratch}/exec"]
        name = f"{server.address}/{REPO_PATH}:{meta.profile}"
        for args in (["load", "-i", meta.path], ["tag", meta.tag, name], ["push", name]):
            r = c.timed([*argv, *args], env={"HOME": scratch})
            if r.rc != 0:
                raise load.BenchError(f"minidocker {args[0]} failed (rc {r.rc}):\n{r.stdout}{r.stderr}")
    finally:
        server.stop()
        c.remove_scratch(scratch)
    with open(marker, "w") as f:
        f.write("ok\n")
    return root


def _prepare(blobs: list[str]) -> None:
    c.sync()
    for b in blobs:
        c.warm(b)


def docker_once(
    meta: imagegen.Meta,
    opts: load.Options,
    client: str,
    ref: str,
    blobs: list[str],
    *,
    keep: list[str] | None = None,
) -> load.DockerRun:
    """One ``docker pull`` by a fresh daemon; its root is removed unless ``keep`` takes it."""
    root = c.scratch("docker")
    daemon = c.helpers.DockerDaemon(c.HOST, root, client=client)
    kept = False
    try:
        daemon.data_root = load._data_root(root, meta, opts)
        daemon.start()
        assert daemon.pid is not None

        def pids() -> list[int]:
            return sorted({daemon.pid or 0, *daemon.stray_pids()})

        waited = c.wait_idle(pids)
        _prepare(blobs)
        pid_list = pids()
        ticks = c.cpu_ticks(pid_list)
        run = c.timed([client, "pull", ref], env=daemon.env)
        cpu = (c.cpu_ticks(pid_list) - ticks) / c.CLK_TCK
        hwm = c.vm_hwm_kib(daemon.pid)
        if run.rc != 0 or "Digest: sha256:" not in run.stdout:
            raise load.BenchError(
                f"docker pull failed (rc {run.rc}):\n{run.stdout}{run.stderr}\n{daemon.log_tail()}"
            )
        if keep is not None:
            daemon.stop()  # unmounts everything below root, our fs included: mount it again
            if opts.fresh_fs:
                c.mount_fs(root)
            keep.append(daemon.data_root)
            kept = True
        return load.DockerRun(run, hwm, cpu, waited)
    finally:
        if not kept:
            daemon.cleanup()


def minidocker_once(
    meta: imagegen.Meta, opts: load.Options, ref: str, blobs: list[str], *, keep: list[str] | None = None
) -> c.Run:
    """One ``minidocker pull`` into a fresh data root; removed unless ``keep`` takes it."""
    root = c.scratch("md")
    kept = False
    try:
        data_root = load._data_root(root, meta, opts)
        _prepare(blobs)
        argv = [*c.minidocker_command(), "--data-root", data_root, "--exec-root", f"{root}/exec"]
        run = c.timed([*argv, "pull", ref], env={"HOME": root})
        if run.rc != 0 or "Digest: sha256:" not in run.stdout:
            raise load.BenchError(f"minidocker pull failed (rc {run.rc}):\n{run.stdout}{run.stderr}")
        if keep is not None:
            keep.append(data_root)
            kept = True
        return run
    finally:
        if not kept:
            c.remove_scratch(root)


def run(quick: bool, opts: load.Options, log: Callable[[str], None] = print) -> bool:
    """Run the benchmark and print its report; returns whether both goals were met."""
    if os.geteuid() != 0:
        raise load.BenchError("the pull benchmark needs root (overlay2 data roots, dockerd)")
    if not c.have("docker-registry"):
        raise load.BenchError("docker-registry is not installed (run scripts/provision.sh)")
    profile = "quick" if quick else "full"
    meta = imagegen.ensure(profile, log=sys.stdout)
    client = c.docker_client()
    reg_root = ensure_pushed(meta, log)
    blobs = _blob_files(reg_root)
    compressed = sum(os.path.getsize(b) for b in blobs)
    server = c.helpers.RegistryServer(c.HOST, reg_root).start()
    try:
        ref = f"{server.address}/{REPO_PATH}:{meta.profile}"
        log(
            f"pull: {ref}, {meta.layers} layers, {compressed / 1e6:.0f} MB in the registry "
            f"({meta.layer_bytes / 1e6:.0f} MB of layer tars, {meta.entries} tar entries)"
        )
        log(
            f"method: fresh data root per run{' on a fresh loop-mounted ext4' if opts.fresh_fs else ''}, "
            "dockerd idle before each docker pull; sync + registry blobs in page cache before every run; "
            f"{opts.warmup} warm-up run(s) each, then {opts.iterations} timed runs each, interleaved; medians"
        )
        docker = c.Series("docker pull")
        md = c.Series("minidocker pull")
        hwm: list[int] = []
        for i in range(opts.warmup):
            keep: list[str] | None = [] if opts.verify and i == 0 else None
            try:
                d = docker_once(meta, opts, client, ref, blobs, keep=keep)
                m = minidocker_once(meta, opts, ref, blobs, keep=keep)
                log(f"  warm-up {i + 1}: docker {d.run.wall:.2f}s, minidocker {m.wall:.2f}s")
                if keep is not None:  # same files, tar-split, distribution metadata, references
                    load._verify(keep[0], keep[1], log)
            finally:
                for data_root in keep or ():
                    c.remove_scratch(load._scratch_of(data_root))
        for i in range(opts.iterations):
            d = docker_once(meta, opts, client, ref, blobs)
            docker.walls.append(d.run.wall)
            docker.cpu.append(d.daemon_cpu + d.run.user + d.run.sys)
            hwm.append(d.daemon_hwm_kib)
            m = minidocker_once(meta, opts, ref, blobs)
            md.walls.append(m.wall)
            md.cpu.append(m.user + m.sys)
            md.rss_kib.append(m.maxrss_kib)
            log(
                f"  run {i + 1}/{opts.iterations}: docker {d.run.wall:.2f}s, minidocker {m.wall:.2f}s "
                f"({m.maxrss_kib / 1024:.0f} MiB, CPU {m.user + m.sys:.1f}s)"
            )
    finally:
        server.stop()
    docker.rss_kib = hwm
    rows = [["contender", "median s", "min s", "max s", "CPU s", "MB/s", "peak RSS MiB"]]
    for s in (docker, md):
        rows.append(
            [
                s.name,
                f"{s.median:.2f}",
                f"{min(s.walls):.2f}",
                f"{max(s.walls):.2f}",
                f"{sorted(s.cpu)[len(s.cpu) // 2]:.2f}",
                f"{compressed / 1e6 / s.median:.0f}",
                f"{s.peak_rss_mib:.0f}",
            ]
        )
    log("")
    log(c.table(rows))
    log("  (docker: CPU = dockerd + containerd + client; peak RSS = dockerd's VmHWM since its start;")
    log("   CPU of the registry process is not counted for either)")
    ratio = md.median / docker.median
    rss = md.peak_rss_mib
    log(f"ratio minidocker/docker: {ratio:.2f}x (goal <= {GOAL_RATIO:.2f}x)")
    log(f"peak RSS minidocker: {rss:.0f} MiB (goal < {GOAL_RSS_MIB:.0f} MiB)")
    ok = True
    if ratio > GOAL_RATIO:
        log(f"GOAL MISSED: pull is {ratio:.2f}x Docker's time (goal <= {GOAL_RATIO:.2f}x)")
        ok = False
    if rss >= GOAL_RSS_MIB:
        log(f"GOAL MISSED: minidocker pull peak RSS {rss:.0f} MiB (goal < {GOAL_RSS_MIB:.0f} MiB)")
        ok = False
    if ok:
        log("GOAL MET: pull")
    return ok
