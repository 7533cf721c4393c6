"""cgroups.warm: the CLI keeps cgroup.procs writes warm (a no-op self-move) until the monitor reports."""

from __future__ import annotations

import os
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
