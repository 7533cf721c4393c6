"""cgroups.warm: the CLI keeps cgroup.procs writes warm (a no-op self-move) until the monitor reports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from minidocker.cgroups import warm


def test_own_procs_file_prefers_a_v1_controller_then_v2(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("9:name=systemd:/\n8:pids:/a/b\n0::/c\n")
    root = tmp_path / "fs"
    (root / "pids" / "a" / "b").mkdir(parents=True)
    (root / "pids" / "a" / "b" / "cgroup.procs").write_text("")
    assert warm.own_procs_file(str(root), proc_cgroup=str(proc)) == str(root / "pids/a/b/cgroup.procs")
    proc.write_text("0::/c\n")
    (root / "c").mkdir()
    (root / "c" / "cgroup.procs").write_text("")
    assert warm.own_procs_file(str(root), proc_cgroup=str(proc)) == str(root / "c/cgroup.procs")
    assert warm.own_procs_file(str(tmp_path / "none"), proc_cgroup=str(proc)) is None


def test_pokes_own_pid_until_the_fd_is_readable(tmp_path, monkeypatch):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    monkeypatch.setattr(warm, "own_procs_file", lambda root: str(procs))
    r, w = os.pipe()
    threading.Timer(0.05, lambda: os.write(w, b"ok")).start()
    start = time.monotonic()
    assert warm.warm_attach_until_readable(r, timeout=5.0)
    assert time.monotonic() - start < 2.0
    assert procs.read_text() == str(os.getpid())  # each poke rewrites our own pid
    os.close(r)
    os.close(w)


def test_gives_up_on_a_refused_write_and_honours_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(warm, "own_procs_file", lambda root: str(tmp_path / "missing" / "cgroup.procs"))
    r, w = os.pipe()
    assert not warm.warm_attach_until_readable(r, timeout=0.05)
    os.close(r)
    os.close(w)


def test_the_background_warmer_pokes_from_the_start_until_stopped(tmp_path, monkeypatch):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    monkeypatch.setattr(warm, "own_procs_file", lambda root: str(procs))
    pokes = []
    real_poke = warm._poke
    monkeypatch.setattr(
        warm, "_poke", lambda path, pid: pokes.append(time.monotonic()) or real_poke(path, pid)
    )
    warmer = warm.Warmer.start(limit=5.0)
    assert warmer is not None
    deadline = time.monotonic() + 2.0
    while len(pokes) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pokes) >= 3 and procs.read_text() == str(os.getpid())
    warmer.stop()
    time.sleep(0.05)
    seen = len(pokes)
    time.sleep(0.05)
    assert len(pokes) == seen  # stopped: no more writes


def test_no_warmer_without_a_cgroup_procs_file_and_one_that_stops_by_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(warm, "own_procs_file", lambda root: None)
    assert warm.Warmer.start() is None
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    monkeypatch.setattr(warm, "own_procs_file", lambda root: str(procs))
    pokes = []
    monkeypatch.setattr(warm, "_poke", lambda path, pid: pokes.append(1) or True)
    warm.Warmer.start(limit=0.05)
    time.sleep(0.2)
    seen = len(pokes)
    time.sleep(0.05)
    assert seen >= 1 and len(pokes) == seen  # the limit ended it


def test_the_warmer_thread_runs_at_high_priority_and_ours_is_left_as_it_was(tmp_path):
    """The thread must get a core as soon as it wakes (both are busy right after the fork): nice
    -20 where allowed (root), the caller's nice otherwise; the caller keeps its own (here 5)."""
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    code = f"""
import os, time
from minidocker.cgroups import warm
os.nice(5)
seen = []
warm.own_procs_file = lambda root: {str(procs)!r}
warm._poke = lambda path, pid: seen.append(os.getpriority(os.PRIO_PROCESS, 0)) or True
w = warm.Warmer.start(limit=5.0)
while not seen:
    time.sleep(0.001)
w.stop()
print(seen[0], os.getpriority(os.PRIO_PROCESS, 0))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(warm.PRIORITY if os.geteuid() == 0 else 5), "5"]


def test_stop_ends_the_thread_at_once(tmp_path, monkeypatch):
    """stop() wakes the sleeping thread (a lock, not time.sleep): no warm-up thread is left beside
    the CLI after the monitor reported, nor in a process forked later."""
    import _thread

    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    monkeypatch.setattr(warm, "own_procs_file", lambda root: str(procs))
    monkeypatch.setattr(warm, "INTERVAL_S", 10.0)  # asleep long after its first write
    tids = []
    monkeypatch.setattr(warm, "_poke", lambda path, pid: tids.append(_thread.get_native_id()) or True)
    warmer = warm.Warmer.start(limit=60.0)
    assert warmer is not None
    deadline = time.monotonic() + 2.0
    while not tids and time.monotonic() < deadline:
        time.sleep(0.001)
    task = f"/proc/self/task/{tids[0]}"
    assert os.path.exists(task)
    warmer.stop()
    warmer.stop()  # (twice is fine)
    deadline = time.monotonic() + 1.0
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not os.path.exists(task) and len(tids) == 1
