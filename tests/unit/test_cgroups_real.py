"""cgroups for real (root): limits land in the kernel, OOM kills are seen, pids limits bite.

Every test uses its own parent ``minidocker-test-<random>`` so tests can run in parallel and the
real ``minidocker/`` parent is never touched; the fixture kills what is left, ``rmdir``s the
container cgroups and the parent even when the test fails.

The v1 tests need a v1 (or hybrid) host, the v2 tests a cgroup2 mount: ``/sys/fs/cgroup`` on a
v2-only host, ``/sys/fs/cgroup/unified`` on a hybrid one (where it has no controllers: only
create/add/procs/freeze/kill/remove can be tested there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import base
from minidocker.cgroups.v1 import DEFAULT_ALLOWED_DEVICES
from minidocker.errors import InvalidInput, NotFound

pytestmark = pytest.mark.root

ROOT = "/sys/fs/cgroup"


def _v2_root() -> str | None:
    for root in (ROOT, os.path.join(ROOT, "unified")):
        if os.path.isdir(root) and base.mount_fstype(root) == "cgroup2":
            return root
    return None


def _is_v1() -> bool:
    return (
        os.path.isdir(ROOT) and cgroups.detect(ROOT) == "v1" and os.path.isdir(os.path.join(ROOT, "memory"))
    )


needs_v1 = pytest.mark.skipif(not _is_v1(), reason="no cgroup v1 memory hierarchy on this host")


class Harness:
    """Creates cgroups and children for one test and tears all of it down."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.parent = f"minidocker-test-{uuid.uuid4().hex[:8]}"
        self.cgroups: list[cgroups.Cgroup] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def cgroup(self, name: str = "c1") -> cgroups.Cgroup:
        cg = cgroups.open_cgroup(name, parent=self.parent, root=self.root)
        self.cgroups.append(cg)
        return cg

    def spawn(self, script: str, *, gated: bool = False) -> subprocess.Popen[bytes]:
        """Run ``sh -c script``; ``gated``: it waits for a line on stdin (so we can add it first)."""
        if gated:
            script = f"read _go; {script}"
        p = subprocess.Popen(
            ["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.children.append(p)
        return p

    @staticmethod
    def go(p: subprocess.Popen[bytes]) -> None:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()

    def teardown(self) -> None:
        for p in self.children:
            if p.poll() is None:
                p.kill()
        for cg in self.cgroups:
            if cg.exists():
                try:
                    cg.thaw()
                except Exception:
                    pass
                try:
                    cg.kill_all()
                except Exception:
                    pass
        for p in self.children:
            p.wait(timeout=10)
            for f in (p.stdin, p.stderr):
                if f is not None and not f.closed:
                    f.close()
        for cg in self.cgroups:
            try:
                cg.remove(timeout=5)
            except Exception:
                pass
        cgroups.cleanup_parent(parent=self.parent, root=self.root)
        # last resort: nothing named after this test may survive, whatever went wrong above
        for top, dirs, _ in os.walk(self.root):
            if self.parent in dirs:
                for sub, _d, _f in os.walk(os.path.join(top, self.parent), topdown=False):
                    base.rmdir(sub, timeout=5)
            dirs[:] = [d for d in dirs if top == self.root]  # only look one level down

    def leftovers(self) -> list[str]:
        found = []
        for top, dirs, _ in os.walk(self.root):
            found += [os.path.join(top, d) for d in dirs if d == self.parent]
            dirs[:] = [d for d in dirs if top == self.root]
        return found


@pytest.fixture
def v1h() -> Iterator[Harness]:
    if not _is_v1():
        pytest.skip("no cgroup v1 hierarchies on this host")
    h = Harness(ROOT)
    yield h
    h.teardown()
    assert h.leftovers() == []


@pytest.fixture
def v2h() -> Iterator[Harness]:
    root = _v2_root()
    if root is None:
        pytest.skip("no cgroup2 mount on this host")
    h = Harness(root)
    yield h
    h.teardown()
    assert h.leftovers() == []


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def rd(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# ----------------------------------------------------------------------------------------------------
# v1
# ----------------------------------------------------------------------------------------------------
@needs_v1
def test_v1_limits_land_in_the_kernel(v1h: Harness) -> None:
    """``-m 64m --cpu-shares 512 --cpus 0.5 --cpuset-cpus 0 --pids-limit 50``: docker-layout.md 11.1."""
    info = cgroups.sysinfo(ROOT)
    wanted = cgroups.Resources(
        memory=cgroups.parse_bytes("64m"),
        memory_swap=2 * cgroups.parse_bytes("64m"),  # the daemon's default: 2 x memory
        cpu_shares=512,
        nano_cpus=cgroups.parse_cpus("0.5"),
        cpuset_cpus="0",
        pids_limit=50,
    )
    res, _warnings = cgroups.verify(wanted, info)
    cg = v1h.cgroup()
    p = v1h.spawn("exec sleep 30")
    with trace.capture() as events:
        cg.create()
        cg.apply(res)
        cg.add(p.pid)
    mem, cpu = cg.path("memory"), cg.path("cpu")
    assert f"write {mem}/memory.limit_in_bytes = 67108864" in events
    assert rd(f"{mem}/memory.limit_in_bytes") == "67108864"
    if info.swap_limit:
        assert rd(f"{mem}/memory.memsw.limit_in_bytes") == "134217728"
    assert rd(f"{mem}/memory.soft_limit_in_bytes") == "9223372036854771712"
    assert rd(f"{cpu}/cpu.shares") == "512"
    assert (rd(f"{cpu}/cpu.cfs_period_us"), rd(f"{cpu}/cpu.cfs_quota_us")) == ("100000", "50000")
    assert rd(f"{cg.path('cpuset')}/cpuset.cpus") == "0"
    assert rd(f"{cg.path('cpuset')}/cpuset.mems") == rd(f"{ROOT}/cpuset/cpuset.mems")
    assert rd(f"{cg.path('pids')}/pids.max") == "50"
    assert rd(f"{cg.path('devices')}/devices.list").splitlines() == list(DEFAULT_ALLOWED_DEVICES)
    for d in cg.paths():
        assert p.pid in base.read_pids(f"{d}/cgroup.procs"), d
    assert cg.procs() == [p.pid]
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = f.read().splitlines()
    for controller in ("memory", "cpu", "cpuset", "pids", "devices", "freezer", "blkio"):
        assert any(line.split(":")[1] == controller and line.endswith(cg.name) for line in lines), controller
    # name=systemd is not ours
    assert any(line.split(":")[1] == "name=systemd" and not line.endswith(cg.name) for line in lines)


@needs_v1
def test_v1_devices_are_enforced(v1h: Harness) -> None:
    cg = v1h.cgroup()
    cg.create()
    cg.apply(cgroups.Resources())
    p = v1h.spawn("head -c 1 /dev/zero >/dev/null && echo zero-ok >&2; head -c 1 /dev/kmsg", gated=True)
    cg.add(p.pid)
    v1h.go(p)
    p.wait(timeout=10)
    assert p.stderr is not None
    err = p.stderr.read()
    assert b"zero-ok" in err  # c 1:5 is allowed
    assert b"Operation not permitted" in err  # /dev/kmsg (c 1:11) is not
    assert p.returncode != 0


@needs_v1
def test_v1_oom_kill_is_detected(v1h: Harness) -> None:
    cg = v1h.cgroup()
    cg.create()
    res, _ = cgroups.verify(
        cgroups.Resources(memory=16 << 20, memory_swap=16 << 20), cgroups.sysinfo(ROOT)
    )  # no swap to escape into
    cg.apply(res)
    p = v1h.spawn("exec python3 -c 'b = b\"x\" * (64 << 20)'", gated=True)
    cg.add(p.pid)
    assert not cg.oom_killed()
    v1h.go(p)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert cg.oom_killed()


@needs_v1
def test_v1_pids_limit_stops_a_fork_bomb(v1h: Harness) -> None:
    cg = v1h.cgroup()
    cg.create()
    cg.apply(cgroups.Resources(pids_limit=10))
    p = v1h.spawn("for i in $(seq 100); do sleep 5 & done; echo forked >&2; wait", gated=True)
    cg.add(p.pid)
    v1h.go(p)
    assert wait_until(lambda: int(rd(f"{cg.path('pids')}/pids.events").split()[1]) > 0)
    assert len(cg.procs()) <= 10
    assert int(rd(f"{cg.path('pids')}/pids.current")) <= 10
    cg.kill_all()
    p.wait(timeout=10)
    assert p.stderr is not None
    assert b"fork" in p.stderr.read().lower()  # dash: "Cannot fork", bash: "fork: retry..."
    assert wait_until(lambda: cg.procs() == [])


@needs_v1
def test_v1_cpuset_not_available_is_dockers_message(v1h: Harness) -> None:
    cg = v1h.cgroup()
    cg.create()
    available = rd(f"{ROOT}/cpuset/cpuset.effective_cpus")
    with pytest.raises(InvalidInput) as e:
        cg.apply(cgroups.Resources(cpuset_cpus="99"))
    assert str(e.value) == f"Requested CPUs are not available - requested 99, available: {available}"
    with pytest.raises(InvalidInput) as e:  # and verify says the same before anything is written
        cgroups.verify(cgroups.Resources(cpuset_cpus="99"), cgroups.sysinfo(ROOT))
    assert str(e.value) == f"Requested CPUs are not available - requested 99, available: {available}"


@needs_v1
def test_v1_freeze_kill_all_and_remove(v1h: Harness) -> None:
    cg = v1h.cgroup()
    cg.create()
    p = v1h.spawn("sleep 30 & sleep 30 & wait", gated=True)
    cg.add(p.pid)
    v1h.go(p)
    assert wait_until(lambda: len(cg.procs()) == 3)
    cg.freeze()
    assert rd(f"{cg.path('freezer')}/freezer.state") == "FROZEN"
    cg.thaw()
    assert rd(f"{cg.path('freezer')}/freezer.state") == "THAWED"
    cg.kill_all()
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    cg.remove()
    assert not cg.exists()
    assert all(not os.path.exists(d) for d in cg.paths())
    cgroups.cleanup_parent(parent=v1h.parent, root=ROOT)
    assert v1h.leftovers() == []


@needs_v1
def test_v1_two_containers_share_the_parent(v1h: Harness) -> None:
    a, b = v1h.cgroup("a"), v1h.cgroup("b")
    a.create()
    b.create()
    a.remove()
    assert cgroups.cleanup_parent(parent=v1h.parent, root=ROOT) == []  # b still there
    b.remove()
    assert len(cgroups.cleanup_parent(parent=v1h.parent, root=ROOT)) == len(b.paths())


# ----------------------------------------------------------------------------------------------------
# v2
# ----------------------------------------------------------------------------------------------------
def test_v2_lifecycle_on_the_real_unified_tree(v2h: Harness) -> None:
    cg = v2h.cgroup()
    assert isinstance(cg, cgroups.V2Cgroup)
    cg.create()
    parent = os.path.dirname(cg.path())
    available = set(rd(f"{parent}/cgroup.controllers").split())
    # the parent enabled everything it could for its children, and holds no task itself
    assert set(rd(f"{parent}/cgroup.subtree_control").split()) == available & set(cgroups.v2.CONTROLLERS)
    assert base.read_pids(f"{parent}/cgroup.procs") == []

    res = cgroups.Resources(
        memory=64 << 20 if "memory" in available else 0,
        cpu_shares=512 if "cpu" in available else 0,
        nano_cpus=500_000_000 if "cpu" in available else 0,
        pids_limit=50 if "pids" in available else None,
    )
    cg.apply(res)
    if "memory" in available:
        assert rd(f"{cg.path()}/memory.max") == "67108864"
    else:
        with pytest.raises(NotFound, match="memory.max"):
            cg.apply(cgroups.Resources(memory=64 << 20))
    if "cpu" in available:
        assert rd(f"{cg.path()}/cpu.weight") == "20"
        assert rd(f"{cg.path()}/cpu.max") == "50000 100000"
    if "pids" in available:
        assert rd(f"{cg.path()}/pids.max") == "50"

    p = v2h.spawn("sleep 30 & sleep 30 & wait", gated=True)
    cg.add(p.pid)
    v2h.go(p)
    assert wait_until(lambda: len(cg.procs()) == 3)
    assert p.pid in cg.procs()
    with open(f"/proc/{p.pid}/cgroup") as f:
        assert f"0::/{cg.name}" in f.read().splitlines()
    if os.path.exists(f"{cg.path()}/cgroup.freeze"):
        cg.freeze()
        assert "frozen 1" in rd(f"{cg.path()}/cgroup.events")
        cg.thaw()
        assert "frozen 0" in rd(f"{cg.path()}/cgroup.events")
    assert not cg.oom_killed()
    with trace.capture() as events:
        cg.kill_all()
    if os.path.exists(f"{cg.path()}/cgroup.kill"):
        assert events == [f"write {cg.path()}/cgroup.kill = 1"]
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    assert wait_until(lambda: cg.procs() == [])
    cg.remove()
    assert not cg.exists()
    assert cgroups.cleanup_parent(parent=v2h.parent, root=v2h.root) == [parent]


def test_v2_parent_cannot_hold_tasks_when_it_has_controllers(v2h: Harness) -> None:
    cg = v2h.cgroup()
    cg.create()
    parent = os.path.dirname(cg.path())
    if not rd(f"{parent}/cgroup.subtree_control"):
        pytest.skip("no controller available in this cgroup2 tree: the rule does not apply")
    p = v2h.spawn("exec sleep 30")
    with pytest.raises(Exception, match="no internal processes"):
        cgroups.V2Cgroup(v2h.parent, v2h.root).add(p.pid)
