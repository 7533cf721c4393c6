"""``run`` benchmark: container start-up of ``minidocker run --rm --network none busybox true``
against ``docker run`` and ``runc run`` of the same image, and the memory of the monitor that
stays with a detached container against Docker's ``containerd-shim-runc-v2``.

Everything is measured side by side in one run, on one scratch dir::

    <scratch>/md/{data,exec}   minidocker's roots; ``minidocker buildbase`` makes busybox:latest
    <scratch>/busybox.tar      ``minidocker save busybox``: loaded into the throwaway dockerd
                               (same image ID) and unpacked into the runc bundle
    <scratch>/bundle           OCI bundle: rootfs/ = the image's layers, config.json = ``runc spec``
                               with ``args: ["true"]`` and no terminal (its namespaces already
                               include a network namespace: like ``--network none``)
    <scratch>/runc             ``runc --root``: runc's state dir

* docker: a throwaway dockerd (``tests.integration.helpers.DockerDaemon``, the parity tests'
  daemon: overlay2, cgroupfs, no bridge) started once; timed: the client's
  ``docker run --rm --network none busybox true`` (spawn to exit: create, attach, start, wait,
  and the daemon's auto-remove, all done before the client exits).
* minidocker: ``minidocker --data-root .. --exec-root .. run --rm --network none busybox true``.
* runc: ``runc --root .. run -b <bundle> <id>`` (a foreground ``runc run`` deletes its container
  itself when the process exits; if state is left anyway, ``runc delete -f`` is timed too and
  added). runc does no storage (no overlay mount, no layer) and no json log: it is the floor.

Each iteration: ``sync``, wait until dockerd and containerd are idle, then one run of each,
interleaved (drift hits all alike), back to back, in an order that rotates from one iteration to
the next: what a command leaves to finish after it returns (Docker's shim and daemon winding
down, the kernel releasing a removed cgroup or network namespace) falls on each contender alike.
Warm-up runs go first, untimed.
Reported: median/min/max wall time, CPU, ratios of medians, and PASS/FAIL against the goals.

Memory: ``minidocker run -d --network none busybox sleep 1000`` and the same ``docker run -d``;
the process that watches the container is the parent of its PID 1 (``.State.Pid``): minidocker's
monitor, Docker's ``containerd-shim-runc-v2``. Both are read from ``/proc/<pid>/smaps_rollup``
(RSS, PSS, private) after they settle; the goal compares PSS (shared library pages divided among
their users: what the process really costs the host).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _common as c
from _common import BenchError

GOAL_VS_DOCKER = 0.35  # minidocker's median <= 0.35x docker run's
GOAL_VS_RUNC = 3.0  # ... and <= 3x runc run's
IMAGE = "busybox"
RUN_ARGS = ["run", "--rm", "--network", "none", IMAGE, "true"]
DETACHED_ARGS = ["run", "-d", "--network", "none", IMAGE, "sleep", "1000"]
SETTLE = 1.0  # seconds a detached container runs before its watcher's memory is read


def defaults(quick: bool) -> tuple[int, int]:
    """(iterations, warm-ups) when not given: 15 after 2 (``--quick``: 5 after 1)."""
    return (5, 1) if quick else (15, 2)


# --------------------------------------------------------------------------------------------
# set-up


def make_bundle(archive: str, bundle: str) -> None:
    """An OCI bundle for ``runc run``: the image's layers unpacked in order into ``rootfs``
    (busybox has one layer and no whiteouts), ``config.json`` from ``runc spec`` running ``true``
    without a terminal."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs)
    with tarfile.open(archive) as outer:
        manifest_file = outer.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
        for layer in manifest[0]["Layers"]:
            member = outer.extractfile(layer)
            assert member is not None
            # GNU tar: devices, owners and modes as recorded (root), like an image layer
            subprocess.run(["tar", "-x", "-C", rootfs, "-f", "-"], input=member.read(), check=True)
    c.checked(["runc", "spec", "--bundle", bundle], "runc spec")
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    if not any(ns.get("type") == "network" for ns in spec["linux"]["namespaces"]):
        spec["linux"]["namespaces"].append({"type": "network"})
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


@dataclass
class Contenders:
    root: str  # the scratch dir everything lives in
    md: list[str]  # minidocker --data-root .. --exec-root ..
    daemon: c.helpers.DockerDaemon
    client: str
    bundle: str
    runc_root: str
    image_id: str
    md_env: dict[str, str]  # bytecode cache on, in the scratch dir (see _common.busybox_in_both)

    def daemon_pids(self) -> list[int]:
        return c.daemon_pids(self.daemon)


def set_up(root: str, daemon_root: str, log: Callable[[str], None]) -> Contenders:
    """busybox in minidocker (``buildbase``), the same image in a fresh dockerd, the runc bundle."""
    b = c.busybox_in_both(root, daemon_root, IMAGE)
    bundle = f"{root}/bundle"
    make_bundle(b.archive, bundle)
    os.makedirs(f"{root}/runc", 0o700)
    c.checked([*b.md, *RUN_ARGS], "minidocker run", env=b.md_env)  # works, and fills the bytecode cache
    log(f"run: {IMAGE} {b.image_id[7:19]} in minidocker, dockerd {b.daemon.version()} and a runc bundle")
    log(f"scratch: {root} (dockerd: {daemon_root})")
    return Contenders(root, b.md, b.daemon, b.client, bundle, f"{root}/runc", b.image_id, b.md_env)


def tear_down(k: Contenders | None, root: str, daemon_root: str) -> None:
    """Remove every container, runc state and the daemon, then the scratch dirs (best effort
    each, so one failure does not leave the rest behind)."""
    try:
        c.remove_md_containers(root)
        runc_root = f"{root}/runc"
        if os.path.isdir(runc_root):
            for cid in os.listdir(runc_root):
                subprocess.run(["runc", "--root", runc_root, "delete", "-f", cid], capture_output=True)
    finally:
        try:
            daemon = k.daemon if k is not None else c.helpers.DockerDaemon(c.HOST, daemon_root)
            daemon.cleanup()  # kills its containers, stops dockerd/containerd, removes daemon_root
        finally:
            c.remove_scratch(root)


# --------------------------------------------------------------------------------------------
# one run of each


def docker_once(k: Contenders) -> tuple[c.Run, float]:
    """One timed ``docker run --rm``; also the CPU seconds dockerd and containerd spent meanwhile."""
    run, cpu = c.timed_beside(k.daemon, [k.client, *RUN_ARGS], env=k.daemon.env, timeout=120)
    if run.rc != 0:
        raise BenchError(f"docker run failed (rc {run.rc}):\n{run.stdout}{run.stderr}\n{k.daemon.log_tail()}")
    return run, cpu


def minidocker_once(k: Contenders) -> c.Run:
    run = c.timed([*k.md, *RUN_ARGS], env=k.md_env, timeout=120)
    if run.rc != 0:
        raise BenchError(f"minidocker run failed (rc {run.rc}):\n{run.stdout}{run.stderr}")
    return run


def runc_once(k: Contenders, n: int) -> c.Run:
    """One timed ``runc run`` of the bundle, plus ``runc delete -f`` if it left state."""
    # unique across concurrent benchmark runs: runc names the container's cgroups after it
    cid = f"{os.path.basename(k.root).replace('.', '-')}-{n}"
    run = c.timed(["runc", "--root", k.runc_root, "run", "-b", k.bundle, cid], timeout=120)
    if run.rc != 0:
        raise BenchError(f"runc run failed (rc {run.rc}):\n{run.stdout}{run.stderr}")
    if os.path.exists(os.path.join(k.runc_root, cid)):
        rm = c.timed(["runc", "--root", k.runc_root, "delete", "-f", cid], timeout=60)
        run.wall += rm.wall
        run.user += rm.user
        run.sys += rm.sys
    return run


# --------------------------------------------------------------------------------------------
# memory of the process that watches a detached container


@dataclass
class Watcher:
    name: str
    pid: int
    rss_kib: int
    pss_kib: int
    private_kib: int


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as {field: KiB}."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])  # after ") ": state, ppid


def program(pid: int) -> str:
    """The executable's name (``comm`` would cut ``containerd-shim-runc-v2`` to 15 characters)."""
    return os.path.basename(os.readlink(f"/proc/{pid}/exe"))


def watcher_of(container_pid: int) -> Watcher:
    ppid = parent_of(container_pid)
    m = smaps_rollup(ppid)
    private = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
    return Watcher(program(ppid), ppid, m.get("Rss", 0), m.get("Pss", 0), private)


def memory(k: Contenders) -> tuple[Watcher, Watcher]:
    """(minidocker's monitor, Docker's shim) of a detached ``sleep 1000``; both removed after."""
    md_id = c.checked([*k.md, *DETACHED_ARGS], "minidocker run -d", env=k.md_env).strip()
    try:
        docker_id = c.checked([k.client, *DETACHED_ARGS], "docker run -d", env=k.daemon.env).strip()
        try:
            time.sleep(SETTLE)
            md_pid = int(c.checked([*k.md, "inspect", "-f", "{{.State.Pid}}", md_id], "minidocker inspect"))
            d_pid = int(
                c.checked(
                    [k.client, "inspect", "-f", "{{.State.Pid}}", docker_id],
                    "docker inspect",
                    env=k.daemon.env,
                )
            )
            md_w, d_w = watcher_of(md_pid), watcher_of(d_pid)
            if not d_w.name.startswith("containerd-shim"):
                raise BenchError(f"the parent of docker's container is {d_w.name} ({d_w.pid}), not a shim")
            return md_w, d_w
        finally:
            subprocess.run(
                [k.client, "rm", "-f", docker_id], capture_output=True, env={**os.environ, **k.daemon.env}
            )
    finally:
        subprocess.run([*k.md, "rm", "-f", md_id], capture_output=True)


# --------------------------------------------------------------------------------------------
# the benchmark


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def run(iterations: int, warmup: int, log: Callable[[str], None] = print) -> bool:
    """Run the benchmark and print its report; returns whether every goal was met."""
    if os.geteuid() != 0:
        raise BenchError("the run benchmark needs root (containers, dockerd, runc)")
    for binary in ("runc", "dockerd", "tar"):
        if not shutil.which(binary):
            raise BenchError(f"{binary} is not installed (apt-get install docker.io)")
    root = c.scratch("run")
    daemon_root = c.scratch("run-docker")
    k: Contenders | None = None
    try:
        k = set_up(root, daemon_root, log)
        log(
            f"method: `{' '.join(RUN_ARGS)}`; {warmup} warm-up run(s) each, then {iterations} timed runs "
            "each, interleaved docker, minidocker, runc; sync and an idle dockerd before each; medians"
        )
        docker, md, runc = c.Series("docker run"), c.Series("minidocker run"), c.Series("runc run")
        for i in range(warmup):
            d, _ = docker_once(k)
            m = minidocker_once(k)
            r = runc_once(k, i)
            log(f"  warm-up {i + 1}: docker {d.wall:.3f}s, minidocker {m.wall:.3f}s, runc {r.wall:.3f}s")
        for i in range(iterations):
            c.sync()
            c.wait_idle(k.daemon_pids, window=0.25, quiet_windows=2, timeout=10)
            got: dict[str, Any] = {}
            order = ["docker", "minidocker", "runc"]
            for name in order[i % 3 :] + order[: i % 3]:
                if name == "docker":
                    got[name] = docker_once(k)
                elif name == "minidocker":
                    got[name] = minidocker_once(k)
                else:
                    got[name] = runc_once(k, warmup + i)
            (d, daemon_cpu), m, r = got["docker"], got["minidocker"], got["runc"]
            for series, one, extra in ((docker, d, daemon_cpu), (md, m, 0.0), (runc, r, 0.0)):
                series.walls.append(one.wall)
                series.cpu.append(one.user + one.sys + extra)
                series.rss_kib.append(one.maxrss_kib)
            log(
                f"  run {i + 1}/{iterations}: docker {d.wall:.3f}s, minidocker {m.wall:.3f}s, "
                f"runc {r.wall:.3f}s"
            )
        md_w, shim = memory(k)
    finally:
        tear_down(k, root, daemon_root)

    log("")
    log(c.timing_table([docker, md, runc]))
    log("  (CPU: the command and the children it waited for; docker: + dockerd + containerd, not the shim)")
    goals = c.Goals(log)
    vs_docker = md.median / docker.median
    vs_runc = md.median / runc.median
    goals.check(
        "ratio minidocker/docker", f"{vs_docker:.2f}x", f"<= {GOAL_VS_DOCKER:.2f}x", vs_docker <= GOAL_VS_DOCKER,
        f"minidocker run takes {vs_docker:.2f}x docker run's time (goal <= {GOAL_VS_DOCKER:.2f}x)",
    )  # fmt: skip
    goals.check(
        "ratio minidocker/runc", f"{vs_runc:.2f}x", f"<= {GOAL_VS_RUNC:.2f}x", vs_runc <= GOAL_VS_RUNC,
        f"minidocker run takes {vs_runc:.2f}x runc run's time (goal <= {GOAL_VS_RUNC:.2f}x)",
    )  # fmt: skip
    log(
        f"monitor memory: minidocker monitor ({md_w.name}, pid {md_w.pid}) RSS {_mib(md_w.rss_kib)} MiB, "
        f"PSS {_mib(md_w.pss_kib)} MiB, private {_mib(md_w.private_kib)} MiB; "
        f"{shim.name} (pid {shim.pid}) RSS {_mib(shim.rss_kib)} MiB, PSS {_mib(shim.pss_kib)} MiB, "
        f"private {_mib(shim.private_kib)} MiB"
    )
    pss_ratio = md_w.pss_kib / shim.pss_kib if shim.pss_kib else float("inf")
    goals.check(
        "ratio monitor/shim PSS", f"{pss_ratio:.2f}x", "< 1.00x", pss_ratio < 1.0,
        f"the monitor's PSS {_mib(md_w.pss_kib)} MiB is not below the shim's {_mib(shim.pss_kib)} MiB",
    )  # fmt: skip
    return goals.ok
