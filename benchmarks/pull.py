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
from _common import BenchError

GOAL_RATIO = 0.7
GOAL_RSS_MIB = 200.0
REPO_PATH = "bench/pull"


def _storage_root(meta: imagegen.Meta) -> str:
    return os.path.join(os.path.dirname(meta.path), "registry")


def _blob_files(root: str) -> list[str]:
    out: list[str] = []
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
                raise BenchError(f"minidocker {args[0]} failed (rc {r.rc}):\n{r.stdout}{r.stderr}")
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


def run(quick: bool, opts: load.Options, log: Callable[[str], None] = print) -> bool:
    """Run the benchmark and print its report; returns whether both goals were met."""
    if os.geteuid() != 0:
        raise BenchError("the pull benchmark needs root (overlay2 data roots, dockerd)")
    if not c.have("docker-registry"):
        raise BenchError("docker-registry is not installed (run scripts/provision.sh)")
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
        args, expect = ["pull", ref], "Digest: sha256:"

        def prepare() -> None:
            _prepare(blobs)

        docker, md = load.compare(
            opts,
            "pull",
            lambda keep: load.docker_once(meta, opts, client, args, expect, prepare, keep=keep),
            lambda keep: load.minidocker_once(meta, opts, args, expect, prepare, home=True, keep=keep),
            lambda d, m: ("", f", CPU {m.user + m.sys:.1f}s"),
            log,
        )
    finally:
        server.stop()
    notes = [
        "  (docker: CPU = dockerd + containerd + client; peak RSS = dockerd's VmHWM since its start;",
        "   CPU of the registry process is not counted for either)",
    ]
    ok = load.report("pull", docker, md, compressed, notes, GOAL_RATIO, GOAL_RSS_MIB, log)
    if ok:
        log("GOAL MET: pull")
    return ok
