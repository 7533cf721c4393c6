"""Smoke run of the build benchmark: ``benchmarks/run.py --only build --iterations 1 --warmup 0``
works end to end, prints the table, the ratio and both goal verdicts, and leaves nothing behind
(no dockerd, no scratch root, no mount). Numbers are not checked: other suites run meanwhile."""

from __future__ import annotations

import os
import re
import sys

import pytest

from tests.integration import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO, "benchmarks", "run.py")

pytestmark = pytest.mark.docker


def test_build_benchmark_prints_ratio_and_goals(host, scratch):  # type: ignore[no-untyped-def]
    if not helpers.is_local(host):
        pytest.skip("the benchmark runs on the machine running pytest")
    if host.run("command -v dockerd >/dev/null 2>&1").rc != 0:
        pytest.skip("dockerd is not installed")
    base = scratch("bb")  # short: containerd socket paths must stay < 104 bytes
    cmd = helpers.q(
        "env", f"MINIDOCKER_BENCH_TMP={base}", sys.executable, RUN, "--only", "build", "--iterations", "1",
        "--warmup", "0",
    )  # fmt: skip
    result = helpers.run(host, cmd, timeout=600)
    assert result.rc == 0, helpers.describe(result)
    out = result.stdout
    assert re.search(
        r"^ratio minidocker/docker uncached: \d+\.\d+x \(goal <= 1\.00x\) (PASS|FAIL)$", out, re.M
    ), out
    assert re.search(r"^minidocker cached rebuild: \d+\.\d+s \(goal <= 0\.5s\) (PASS|FAIL)$", out, re.M), out
    for name in ("docker uncached", "minidocker uncached", "docker cached", "minidocker cached"):
        assert re.search(rf"^{name}\s+\d+\.\d+", out, re.M), out
    assert os.listdir(base) == []
    assert helpers.mounts_under(host, base) == []
    assert helpers.processes_mentioning(host, base) == []
