"""Smoke runs of the benchmarks: ``benchmarks/run.py --only load --quick --iterations 1`` and
``--only run --iterations 2 --warmup 1`` work end to end.

load: cheap (~15 s: a ~100 MB image generated in about a second, one warm-up and one timed load per
contender) and hermetic: the image cache and every scratch root go into this test's own scratch
dir (``MINIDOCKER_BENCH_CACHE`` / ``MINIDOCKER_BENCH_TMP``), and afterwards nothing may be left:
no dockerd/containerd of the run, no mount, no loop device, no scratch root. run (~20 s): the
table, the ratios, the memory line and their verdicts are printed; no container, runc state,
dockerd, cgroup or scratch root is left. Numbers are not checked (other tests run in parallel):
only that they exist.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from tests.integration import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "benchmarks", "run.py")

pytestmark = pytest.mark.docker  # needs dockerd, like the parity tests (deselect with -m "not docker")


def test_quick_load_benchmark_prints_a_ratio_and_cleans_up(host, scratch):  # type: ignore[no-untyped-def]
    if not helpers.is_local(host):
        pytest.skip("the benchmark runs on the machine running pytest")
    if host.run("command -v dockerd >/dev/null 2>&1").rc != 0:
        pytest.skip("dockerd is not installed")
    base = scratch("bench")
    env = [f"MINIDOCKER_BENCH_TMP={base}", f"MINIDOCKER_BENCH_CACHE={base}/cache"]
    result = helpers.run(
        host,
        helpers.q("env", *env, sys.executable, RUN, "--only", "load", "--quick", "--iterations", "1"),
        timeout=300,
    )
    assert result.rc == 0, helpers.describe(result)
    assert re.search(r"^ratio minidocker/docker: \d+\.\d+x", result.stdout, re.M), helpers.describe(result)

    # everything the run made is gone (the cache stays until the scratch fixture removes it)
    assert sorted(os.listdir(base)) == ["cache"], os.listdir(base)
    assert helpers.mounts_under(host, base) == []
    loops = host.run("losetup -l -n -O BACK-FILE").stdout
    assert base not in loops, loops
    procs = host.run(helpers.q("ps", "-eo", "pid=,stat=,args=")).stdout
    alive = [
        line
        for line in procs.splitlines()
        if base in line and not line.split()[1].startswith("Z") and "ps -eo" not in line
    ]
    assert alive == [], alive


def test_quick_run_benchmark_prints_ratios_and_memory_and_cleans_up(host, scratch):  # type: ignore[no-untyped-def]
    """``run.py --only run``: docker run, minidocker run and runc run timed side by side, the
    monitor's and the shim's memory read, every container, runc state and dockerd removed."""
    if not helpers.is_local(host):
        pytest.skip("the benchmark runs on the machine running pytest")
    if host.run("command -v dockerd >/dev/null 2>&1 && command -v runc >/dev/null 2>&1").rc != 0:
        pytest.skip("dockerd or runc is not installed")
    base = scratch("bench")
    argv = [sys.executable, RUN, "--only", "run", "--iterations", "2", "--warmup", "1"]
    result = helpers.run(host, helpers.q("env", f"MINIDOCKER_BENCH_TMP={base}", *argv), timeout=300)
    assert result.rc == 0, helpers.describe(result)
    out = result.stdout
    for contender in ("docker run", "minidocker run", "runc run"):  # the table: median, min, max, CPU
        assert re.search(
            rf"^{contender} +\d+\.\d{{3}} +\d+\.\d{{3}} +\d+\.\d{{3}} +\d+\.\d{{3}}$", out, re.M
        ), out
    assert (
        len(re.findall(r"^  run \d/2: docker \d+\.\d+s, minidocker \d+\.\d+s, runc \d+\.\d+s$", out, re.M))
        == 2
    )
    # the ratios and the verdicts exist (their values are not checked: the machine is shared)
    for line in (
        r"ratio minidocker/docker: \d+\.\d\dx \(goal <= 0\.35x\) (PASS|FAIL)",
        r"ratio minidocker/runc: \d+\.\d\dx \(goal <= 3\.00x\) (PASS|FAIL)",
        r"ratio monitor/shim PSS: \d+\.\d\dx \(goal < 1\.00x\) (PASS|FAIL)",
    ):
        assert re.search(rf"^{line}$", out, re.M), out
    mem = re.search(
        r"^monitor memory: minidocker monitor \(\S+, pid \d+\) RSS (\d+\.\d) MiB, PSS (\d+\.\d) MiB, "
        r"private \d+\.\d MiB; containerd-shim-runc-v2 \(pid \d+\) RSS (\d+\.\d) MiB, PSS (\d+\.\d) MiB",
        out,
        re.M,
    )
    assert mem, out
    assert all(float(x) > 0 for x in mem.groups()), mem.group(0)

    # everything the run made is gone: scratch roots, mounts, processes, runc's and docker's cgroups
    # (both are named after the scratch roots: runc's container ids, dockerd's --cgroup-parent)
    roots = re.search(r"^scratch: (\S+) \(dockerd: (\S+)\)$", out, re.M)
    assert roots and all(r.startswith(base + "/") for r in roots.groups()), out
    assert os.listdir(base) == [], os.listdir(base)
    assert helpers.mounts_under(host, base) == []
    assert helpers.processes_mentioning(host, base) == []
    for root in roots.groups():
        name = os.path.basename(root).replace(".", "-")
        left = host.run(f"find /sys/fs/cgroup -maxdepth 3 -name '{name}*'").stdout.split()
        assert left == [], left
