"""Smoke run of the benchmarks: ``benchmarks/run.py --quick --iterations 1`` works end to end.

Cheap (~15 s: a ~100 MB image generated in about a second, one warm-up and one timed load per
contender) and hermetic: the image cache and every scratch root go into this test's own scratch
dir (``MINIDOCKER_BENCH_CACHE`` / ``MINIDOCKER_BENCH_TMP``), and afterwards nothing may be left:
no dockerd/containerd of the run, no mount, no loop device, no scratch root. Numbers are not
checked (other tests run in parallel); only that a ratio line is printed.
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


def test_quick_benchmark_prints_a_ratio_and_cleans_up(host, scratch):  # type: ignore[no-untyped-def]
    if not helpers.is_local(host):
        pytest.skip("the benchmark runs on the machine running pytest")
    if host.run("command -v dockerd >/dev/null 2>&1").rc != 0:
        pytest.skip("dockerd is not installed")
    base = scratch("bench")
    env = [f"MINIDOCKER_BENCH_TMP={base}", f"MINIDOCKER_BENCH_CACHE={base}/cache"]
    result = helpers.run(
        host, helpers.q("env", *env, sys.executable, RUN, "--quick", "--iterations", "1"), timeout=300
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
